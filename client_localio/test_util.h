// client_localio/test_util.h — helpers for client_localio's integration tests (and the
// FUSE tests of tests/): the FUSE mount daemon (FuseDaemon) and the fixture around a
// localnfsd and a mount (FuseMountFixture), the mount's stats file, file contents.
//
// The processes, temporary directories and waits are the test-support library's
// (tests/support/): a localnfsd is a ServerProcess (localnfsd.h), every other child a
// Child (child.h); they are named here under localnfs::client::testing too, as these
// tests use them.
//
// Owns: FuseDaemon its localnfs-mount child and the mount; FuseMountFixture its server,
// directories and daemon. Failure policy: destructors always unmount and reap, also
// when the test already failed; every child is scanned for sanitizer reports when
// it is reaped (child.h).
// Thread-safety: one test thread drives a fixture.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/child.h"
#include "tests/support/localnfsd.h"
#include "tests/support/sanitizer.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace localnfs::client::testing {

using ::localnfs::testing::Child;
using ::localnfs::testing::FreePort;
using ::localnfs::testing::HasSanitizerReport;
using ::localnfs::testing::InSleepSyscall;
using ::localnfs::testing::ReadFile;
using ::localnfs::testing::RunAsUser;
using ::localnfs::testing::RunCommand;
using ::localnfs::testing::ServerOptions;
using ::localnfs::testing::ServerProcess;
using ::localnfs::testing::TempDir;
using ::localnfs::testing::ThisThreadId;
using ::localnfs::testing::WaitUntil;

// The options of a localnfsd that serves `export_dir` to everyone, rw,no_root_squash,
// through an exports file (so that ReloadExports can change it: ExportsLine), first on
// the given ports (0: any free one), and that restarts on the same ports (keep_ports).
ServerOptions ExportToAll(const std::string& export_dir, int nfs_port = 0, int mount_port = 0);
// An exports(5) line serving `dir` to everyone with `options`.
std::string ExportsLine(const std::string& dir,
                        const std::string& options = "rw,no_root_squash");

// The value of counter `name` in a `.localnfs-stats` text ("name value" lines); a test
// failure and 0 when it is missing.
uint64_t StatsCounter(const std::string& stats, const std::string& name);
// The same, nullopt when it is missing (no test failure).
std::optional<uint64_t> FindStatsCounter(const std::string& stats, const std::string& name);

// Sha-256 of a local file, via sha256sum; "" on failure.
std::string Sha256OfFile(const std::string& path);
// `n` pseudo-random bytes from `seed` (deterministic, so a failure reproduces).
std::string RandomBytes(size_t n, uint32_t seed);

// True when `path` is a mount point of type `fstype` in /proc/self/mountinfo.
bool IsMountedAs(const std::string& path, const std::string& fstype);

// $LOCALNFS_MOUNT: the localnfs-mount binary under test ("" when unset).
std::string MountBinary();
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
  std::unique_ptr<ServerProcess> server_;
  std::string source_;  // host:nfs_port:export, the mount's source argument
  FuseDaemon daemon_;
};

}  // namespace localnfs::client::testing
