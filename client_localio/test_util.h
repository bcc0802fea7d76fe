// client_localio/test_util.h — helpers for client_localio's integration tests: a real
// localnfsd child process (explicit or ephemeral ports, restartable on the same ports),
// temporary directories, free ports, running commands (also a function as another
// user, RunAsUser), polling for an event (WaitUntil) and reading the FUSE mount's
// stats file.
//
// Owns: the server child process and its output pipe (read by one thread that keeps
// everything it printed), and the temporary directories it creates.
// Failure policy: destructors always stop (SIGTERM, then SIGKILL) and reap the server,
// also when the test already failed; the child gets PR_SET_PDEATHSIG=SIGKILL.
// Thread-safety: one test thread drives a TestServer.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace localnfs::client::testing {

// A fresh directory under $TMPDIR or /tmp, removed recursively at scope end.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

// Runs `argv` (argv[0] searched in PATH), waits up to `timeout_s` seconds (then
// SIGKILL); returns the exit status (or 128+signal, -1 on timeout) and the combined
// stdout+stderr in *output.
int RunCommand(const std::vector<std::string>& argv, std::string* output, int timeout_s = 120);

// Runs `body` in a forked child that is uid/gid `uid`/`gid` with no supplementary
// groups (the test runs as root), and returns what `body` returned (0..254: e.g. 0 or
// an errno), or -1 if the child could not become that user or did not exit within
// `timeout_ms` (it is killed then). The child should only make system calls: the
// parent's other threads do not exist in it.
int RunAsUser(uid_t uid, gid_t gid, const std::function<int()>& body, int timeout_ms = 30000);

// Polls `done` (every 10 ms) until it returns true (true) or `timeout_ms` passed (false):
// for the event a negative check waits for.
bool WaitUntil(const std::function<bool()>& done, int timeout_ms);

// The value of counter `name` in a `.localnfs-stats` text ("name value" lines); a test
// failure and 0 when it is missing.
uint64_t StatsCounter(const std::string& stats, const std::string& name);
// The same, nullopt when it is missing (no test failure).
std::optional<uint64_t> FindStatsCounter(const std::string& stats, const std::string& name);

// Sha-256 of a local file, via sha256sum; "" on failure.
std::string Sha256OfFile(const std::string& path);
// `n` pseudo-random bytes from `seed` (deterministic, so a failure reproduces).
std::string RandomBytes(size_t n, uint32_t seed);
// The whole file as the server's own file system has it ("" when missing).
std::string ReadLocalFile(const std::string& path);

// Any child process with its stdout+stderr captured (localnfs-mount -f in tests).
class Child {
 public:
  Child() = default;
  ~Child();  // SIGKILL and reap if still running
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  bool Start(const std::vector<std::string>& argv);
  // Waits up to timeout_ms; true and *status (raw wait status) when it exited.
  bool Wait(int timeout_ms, int* status);
  void Kill(int sig);
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  std::string Output() const;
  // Polls Output() until it contains `text` (true) or timeout_ms passed (false).
  bool WaitForOutput(const std::string& text, int timeout_ms) const;

 private:
  pid_t pid_ = -1;
  std::thread reader_;
  mutable std::mutex mu_;
  std::string output_;  // guarded by mu_
};

// True when `path` is a mount point of type `fstype` in /proc/self/mountinfo.
bool IsMountedAs(const std::string& path, const std::string& fstype);

// $LOCALNFS_MOUNT: the localnfs-mount binary under test ("" when unset).
std::string MountBinary();
// True when `text` holds an ASan, LSan or UBSan report.
bool SanitizerReport(const std::string& text);
// Unmounts the localnfs FUSE mount on `mnt`, lazily when busy; nothing if none.
void UnmountFuse(const std::string& mnt);

// A localnfs-mount running in the foreground (-f) in a child process. The destructor
// unmounts and reaps it on every path (a test that already failed included).
class FuseDaemon {
 public:
  FuseDaemon() = default;
  ~FuseDaemon() { Unmount(); }
  FuseDaemon(const FuseDaemon&) = delete;
  FuseDaemon& operator=(const FuseDaemon&) = delete;

  // Runs `prefix... localnfs-mount -f --mount-port P extra... source mnt` and waits
  // (10 s) until the kernel shows the mount. `prefix` runs the daemon under another
  // command (e.g. unshare for a pid namespace).
  ::testing::AssertionResult Mount(const std::string& source, int mount_port,
                                   const std::string& mnt,
                                   const std::vector<std::string>& extra = {},
                                   const std::vector<std::string>& prefix = {});
  // Unmounts (lazily when busy) and waits for the daemon to exit; one that does not
  // within 10 s is a test failure and is killed. Idempotent.
  void Unmount();
  Child& child() { return child_; }
  std::string Output() const { return child_.Output(); }

 private:
  std::string mnt_;
  Child child_;
};

class TestServer {
 public:
  // Exports `export_dir` to everyone with "rw,no_root_squash" (an exports file, so that
  // ReloadExports can change it). Ports 0 = ephemeral.
  TestServer(std::string export_dir, int nfs_port = 0, int mount_port = 0);
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  // Starts $LOCALNFSD and waits for "localnfsd: ready nfs=P mount=Q".
  ::testing::AssertionResult Start();
  // SIGTERM and reap; fails unless it exits 0 without a sanitizer report.
  ::testing::AssertionResult Stop();
  // SIGKILL and reap: a crash, no orderly shutdown (the broker record is left for the
  // next start to reap).
  void Kill();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int nfs_port() const { return nfs_port_; }
  int mount_port() const { return mount_port_; }
  // The --runtime-dir the server publishes its LOCALIO broker in (kept across restarts).
  const std::string& runtime_dir() const { return runtime_dir_.path(); }
  // Serves `dirs` with `options` instead: rewrites the exports file, SIGHUP, and waits
  // for the server's "exports reloaded" line.
  ::testing::AssertionResult ReloadExports(const std::vector<std::string>& dirs,
                                           const std::string& options = kDefaultOptions);
  std::string Output() const;

 private:
  void Reap(int timeout_ms, int* status);
  std::string exports_file() const { return state_dir_.path() + "/exports"; }
  static constexpr char kDefaultOptions[] = "rw,no_root_squash";
  bool WriteExports(const std::vector<std::string>& dirs,
                    const std::string& options = kDefaultOptions);
  std::string export_dir_;
  int nfs_port_, mount_port_;
  TempDir state_dir_{"lnfs-cli-state"};
  TempDir runtime_dir_{"lnfs-cli-run"};
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::thread reader_;
  mutable std::mutex mu_;
  std::string output_;  // guarded by mu_
};

// The common base of the FUSE mount tests: a localnfsd exporting a fresh directory, a
// mount point, and the foreground localnfs-mount (daemon_). SetUp skips the test
// without /dev/fuse; TearDown unmounts (also a mount daemonised outside daemon_),
// fails on a sanitizer report in the daemon's output and stops the server.
class FuseMountFixture : public ::testing::Test {
 protected:
  FuseMountFixture(const std::string& export_prefix, const std::string& mnt_prefix)
      : export_(export_prefix), mnt_(mnt_prefix) {}
  void SetUp() override;
  void TearDown() override;
  // localnfs-mount -f of the export on mnt_ (FuseDaemon::Mount).
  ::testing::AssertionResult MountDaemon(const std::vector<std::string>& extra = {},
                                         const std::vector<std::string>& prefix = {}) {
    return daemon_.Mount(source_, server_->mount_port(), mnt_.path(), extra, prefix);
  }
  // The mount's `.localnfs-stats` now, and one counter of it.
  std::string Stats() const;
  uint64_t Stat(const std::string& name) const { return StatsCounter(Stats(), name); }
  // Kernel FUSE passthrough came with Linux 6.9 (CONFIG_FUSE_PASSTHROUGH); a mount with
  // -o passthrough whose kernel does not offer it says so in its stats. ("passthrough
  // refused" would be our mistake, and is not a reason to skip.)
  bool PassthroughNotOffered() const;

  TempDir export_;
  TempDir mnt_;
  std::unique_ptr<TestServer> server_;
  std::string source_;  // host:nfs_port:export, the mount's source argument
  FuseDaemon daemon_;
};

}  // namespace localnfs::client::testing
