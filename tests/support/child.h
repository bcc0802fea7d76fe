// tests/support/child.h — child processes of a test: fork/exec with the output
// captured, waits with a deadline, and a sanitizer scan on every path that ends one.
//
//   Child mount;                                    // stdout+stderr in one Output()
//   ASSERT_TRUE(mount.Start({binary, "-f", src, mnt}));
//   ASSERT_TRUE(mount.WaitForOutput("ready", 5s));  // false at once if it exited
//   mount.Kill(SIGTERM);
//   ASSERT_TRUE(mount.Wait(10s, &status));          // reaps; a sanitizer report fails
//
// Owns: the child process, the pipes of its stdout and stderr (one pipe for both unless
// ChildOptions::separate_stderr) and the one thread that drains them into buffers that
// keep everything every run printed (and, with a log label, copies each line to the
// test's stderr). The child gets PR_SET_PDEATHSIG=SIGKILL, so nothing outlives a crashed
// test binary; the destructor kills (SIGKILL) and reaps a child that still runs.
//
// Sanitizer reports (sanitizer.h): every path that reaps the child — Wait(), and so
// every kill, and the destructor — scans what this run printed and fails the test
// (ADD_FAILURE, naming the report) when it holds one, unless
// ChildOptions::fail_on_sanitizer_report is false (a child that prints one on purpose).
// Output a grandchild writes after the child itself exited is not read.
//
// Thread-safety: one test thread starts, waits for and kills a Child; the output
// accessors and WaitFor*() may be called from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace localnfs::testing {

struct ChildOptions {
  // stdout and stderr apart (Output() and Stderr()); else both go to Output().
  bool separate_stderr = false;
  // Non-empty: each line is also copied to the test's stderr as "[LABEL out] ..." or
  // "[LABEL err] ...", and the label names the child in failure messages.
  std::string log_label;
  // >= 0: the child becomes this uid/gid (no supplementary groups, so no capabilities)
  // before it execs, as an ordinary user's process.
  int uid = -1;
  int gid = -1;
  // Set: the child's whole environment ("NAME=value"), as `env -i`.
  std::optional<std::vector<std::string>> env;
  // False: a sanitizer report in the output does not fail the test (the launcher's own
  // test, tests/support/support_test.cc).
  bool fail_on_sanitizer_report = true;
  // True: the child is the first process (pid 1) of a new pid namespace (clone
  // CLONE_NEWPID; needs CAP_SYS_ADMIN), so that no process of the test's namespace is
  // visible to it — e.g. a server that gets pid 0 from SO_PEERCRED for the test's
  // connections, as a server in a container does for clients outside it. pid() is its
  // pid in the test's namespace; it still dies with the test (PR_SET_PDEATHSIG). It has
  // no init to reap its own children: for programs that make none.
  bool new_pid_namespace = false;
};

class Child {
 public:
  Child() : Child(ChildOptions{}) {}
  explicit Child(ChildOptions options);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Runs argv (argv[0] searched in PATH). False when no process could be made; an exec
  // that fails shows as exit 127 with the reason in the output. A Child may be started
  // again once the previous run was reaped; the buffers keep every run's output.
  bool Start(const std::vector<std::string>& argv) ABSL_LOCKS_EXCLUDED(mu_);
  // Waits up to `timeout` for the child to exit: true (and the raw wait status in
  // *status) once it is reaped; false while it still runs. Scans this run's output.
  bool Wait(std::chrono::milliseconds timeout, int* status = nullptr);
  void Kill(int sig);  // nothing when not running

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // Raw wait status of the last run that was reaped; -1 before any.
  int last_status() const { return last_status_; }

  // Everything printed so far (stdout, and stderr too unless separate_stderr).
  std::string Output() const ABSL_LOCKS_EXCLUDED(mu_);
  // Everything printed on stderr so far (separate_stderr only).
  std::string Stderr() const ABSL_LOCKS_EXCLUDED(mu_);
  // The current sizes: offsets a later WaitFor* may search from, so that only text
  // printed after a step counts.
  size_t OutputSize() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t StderrSize() const ABSL_LOCKS_EXCLUDED(mu_);
  // Waits up to `timeout` until Output() (Stderr()) holds `text` at or after offset
  // `from` (true); false at the deadline, or at once when the child closed that
  // stream (it exited: the text cannot come any more).
  bool WaitForOutput(const std::string& text, std::chrono::milliseconds timeout,
                     size_t from = 0) const;
  bool WaitForStderr(const std::string& text, std::chrono::milliseconds timeout,
                     size_t from = 0) const;
  // The first sanitizer report line in what the current (or last) run printed; "".
  std::string SanitizerReport() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  enum Stream { kOut = 0, kErr = 1 };
  bool WaitForText(Stream s, const std::string& text, std::chrono::milliseconds timeout,
                   size_t from) const ABSL_LOCKS_EXCLUDED(mu_);
  void ReadLoop(int out_fd, int err_fd) ABSL_LOCKS_EXCLUDED(mu_);
  void StopReader();
  // Waits for the process to exit (pidfd poll, or polling without one); true when
  // reaped, with the raw status.
  bool WaitPid(std::chrono::milliseconds timeout, int* status);

  const ChildOptions options_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stop_fd_ = -1;  // eventfd: the reader drains what is left and ends
  int last_status_ = -1;
  std::thread reader_;

  mutable absl::Mutex mu_;
  mutable absl::CondVar cv_;
  std::string buf_[2] ABSL_GUARDED_BY(mu_);
  bool eof_[2] ABSL_GUARDED_BY(mu_) = {true, true};
  size_t run_start_[2] ABSL_GUARDED_BY(mu_) = {0, 0};  // where the current run began
};

// Runs `argv` (argv[0] searched in PATH) to completion, waiting up to `timeout` (then
// SIGKILL). Returns the exit code, 128+signal, or -1 on timeout; the combined stdout and
// stderr in *output. A sanitizer report in the output fails the test.
int RunCommand(const std::vector<std::string>& argv, std::string* output,
               std::chrono::milliseconds timeout = std::chrono::seconds(120));

// Runs `body` in a forked child that is uid/gid `uid`/`gid` with no supplementary
// groups (the test runs as root) and returns what `body` returned (0..254: e.g. 0 or
// an errno), or -1 if the child could not become that user or did not exit within
// `timeout` (it is killed then). The child should only make system calls: the parent's
// other threads do not exist in it.
int RunAsUser(uid_t uid, gid_t gid, const std::function<int()>& body,
              std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace localnfs::testing
