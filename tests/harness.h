// tests/harness.h — run a real localnfsd process from an integration test.
//
// Owns: the server child process (fork/exec), its stdout/stderr pipes and the
// threads that forward them to the test log, and temporary directories.
//
//   TempDir root;                               // removed recursively at scope end
//   ServerProcess srv({"--export", root.path() + ":rw,no_root_squash"});
//   ASSERT_TRUE(srv.Start());                   // waits for "localnfsd: ready nfs=P mount=Q"
//   ... srv.nfs_port(), srv.mount_port() ...
//   ASSERT_TRUE(srv.Restart());                 // SIGTERM (must exit 0), start again
//
// The binary is taken from $LOCALNFSD (tests/meson.build sets it to the built
// server/localnfsd). Every server gets its own --state-dir and --runtime-dir
// (temporary, kept across Restart() so file handles survive), --port 0,
// --mount-port 0 and --bind 127.0.0.1 unless the options say otherwise.
//
// Failure policy (the sanitizer build relies on it): the destructor always stops the
// server (SIGTERM, SIGKILL after a timeout) and reaps it, also when the test already
// failed. A test fails (ADD_FAILURE) when the server exits non-zero after our SIGTERM,
// dies of a signal we did not send, or prints a sanitizer report ("ERROR:
// AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:") on stderr. The child
// gets PR_SET_PDEATHSIG=SIGKILL so nothing survives a crashed test binary.
//
// Thread-safety: one test thread drives a ServerProcess.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace localnfs::testing {

// Path of the localnfsd binary ($LOCALNFSD). Empty when unset.
std::string LocalnfsdPath();

class TempDir {
 public:
  // Creates a fresh directory (mode 0755 so that squashed uids can traverse it)
  // under $TMPDIR or /tmp.
  explicit TempDir(const std::string& prefix = "localnfs-test");
  ~TempDir();  // removes it recursively
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Sub(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// Helpers on the server's side of the file system.
bool WriteFile(const std::string& path, const std::string& data);
std::string ReadFile(const std::string& path);  // "" when missing

struct ServerOptions {
  // Export arguments, e.g. {"--export", "/tmp/x:rw"} or {"--exports", file}.
  std::vector<std::string> args;
  std::string bind = "127.0.0.1";  // "" = do not pass --bind
  int threads = 4;
  std::chrono::milliseconds ready_timeout{30000};
  std::chrono::milliseconds stop_timeout{15000};
  // >= 0: run the server as this uid/gid (no supplementary groups, no capabilities),
  // as an ordinary user would; its state and runtime dirs are chowned to it.
  int run_as_uid = -1;
  int run_as_gid = -1;
};

class ServerProcess {
 public:
  explicit ServerProcess(ServerOptions options);
  // Convenience: exports only.
  explicit ServerProcess(std::vector<std::string> export_args);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Starts the server and waits for the ready line.
  ::testing::AssertionResult Start();
  // SIGTERM, wait; the exit status must be 0 (else failure). Reaps the process.
  ::testing::AssertionResult Stop();
  // Stop() + Start() with the same state and runtime dirs.
  ::testing::AssertionResult Restart();
  // SIGKILL and reap now (an expected, hard crash).
  void Kill9();
  // Sends `sig` to the running server.
  void Signal(int sig);
  // Waits up to `timeout` for the process to exit by itself; returns the raw wait
  // status, or -1 on timeout (the process keeps running).
  int WaitExit(std::chrono::milliseconds timeout);

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int nfs_port() const { return nfs_port_; }
  int mount_port() const { return mount_port_; }
  const std::string& state_dir() const { return state_dir_.path(); }
  const std::string& runtime_dir() const { return runtime_dir_.path(); }
  // Everything the server wrote to stderr so far (all runs).
  std::string StderrText() const;
  // Waits up to `timeout` for `text` to appear on stderr. A line the server logs just
  // before something the test sees (a closed socket) may still be in the pipe: ask
  // this, not StderrText(), when the test's next step races with the log line.
  bool WaitForStderr(const std::string& text,
                     std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // True when stderr contains a sanitizer report.
  bool SanitizerReported() const;

 private:
  void StartReaders(int out_fd, int err_fd);
  void JoinReaders();
  void ReaderLoop(int fd, bool is_stdout);
  // Reaps with timeout; returns wait status or -1.
  int Reap(std::chrono::milliseconds timeout);

  ServerOptions options_;
  TempDir state_dir_{"localnfs-state"};
  TempDir runtime_dir_{"localnfs-run"};
  pid_t pid_ = -1;
  int nfs_port_ = 0;
  int mount_port_ = 0;
  std::thread out_thread_, err_thread_;

  mutable std::mutex mu_;
  std::string stdout_buf_;  // guarded by mu_
  std::string stderr_buf_;  // guarded by mu_
  std::condition_variable_any cv_;
};

// Runs localnfsd with `args` (nothing added) to completion; returns the wait
// status and the combined stderr. Killed after `timeout`.
struct RunResult {
  int wstatus = -1;
  std::string stderr_text;
  std::string stdout_text;
};
RunResult RunLocalnfsdToExit(const std::vector<std::string>& args,
                             std::chrono::milliseconds timeout);

}  // namespace localnfs::testing
