// tests/support/localnfsd.h — the one launcher of a real localnfsd process for every
// test (tests/, client_localio/, server/).
//
//   TempDir root;                               // tests/support/temp_dir.h
//   ServerProcess srv({"--export", root.path() + ":rw,no_root_squash"});
//   ASSERT_TRUE(srv.Start());                   // waits for "localnfsd: ready nfs=P mount=Q"
//   ... srv.nfs_port(), srv.mount_port() ...
//   ASSERT_TRUE(srv.Restart());                 // SIGTERM (must exit 0), start again
//
// The binary is $LOCALNFSD (the meson.build of each test folder sets it to the built
// server/localnfsd) unless the options name another. Every server gets a --state-dir
// and a --runtime-dir (temporary ones of the launcher unless the options name them,
// kept across restarts so that file handles and the LOCALIO broker survive), --port and
// --mount-port (0: any free port), --bind 127.0.0.1 and --threads 4, unless the options
// say otherwise. Its stdout and stderr are captured (tests/support/child.h) and copied
// to the test log line by line ("[localnfsd err] ...").
//
// Failure policy (the sanitizer builds rely on it): every path that ends the process —
// Stop(), Kill9() (a crash on purpose), WaitExit() (it ended by itself), a Start() that
// fails, and the destructor — reaps it and scans its output for sanitizer reports
// (tests/support/sanitizer.h); a report fails the test. Stop() fails too when the
// server does not exit 0 on SIGTERM. The destructor always stops the server (SIGTERM,
// SIGKILL after a timeout), also when the test already failed. The child gets
// PR_SET_PDEATHSIG=SIGKILL (of the thread that called Start()), so nothing survives a
// crashed test binary.
//
// Thread-safety: one test thread drives a ServerProcess; StderrText(), WaitForStderr()
// and the status queries may be called from other threads while it runs.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/child.h"
#include "tests/support/temp_dir.h"

namespace localnfs::testing {

// Path of the localnfsd binary ($LOCALNFSD). Empty when unset.
std::string LocalnfsdPath();

// A TCP port on 127.0.0.1 that was free a moment ago (where nothing listens, or a
// fixed port for a server to be started on).
int FreePort();

struct ServerOptions {
  // Export arguments, e.g. {"--export", "/tmp/x:rw"} or {"--exports", file}, and any
  // other flag.
  std::vector<std::string> args;
  // Non-empty: the lines of an exports(5) file the launcher writes as
  // <state_dir>/exports (once: it then belongs to the server's state, so a restart
  // reads what ReloadExports() last wrote) and passes as --exports.
  std::vector<std::string> exports_file;
  std::string bind = "127.0.0.1";  // "" = do not pass --bind
  int threads = 4;
  // The ports of the first start (0 = any free one).
  int nfs_port = 0;
  int mount_port = 0;
  // A Start() after Stop()/Kill9(), and Restart(), bind the ports of the run before:
  // clients reconnect to the same address, as across a real restart.
  bool keep_ports = false;
  // Empty: a temporary directory of the launcher's own (chowned to run_as_uid).
  std::string state_dir;
  std::string runtime_dir;
  // False: no --runtime-dir at all (the server's default; runtime_dir() is "").
  bool pass_runtime_dir = true;
  // Set: the server's whole environment (as env -i), e.g. to give it an XDG_RUNTIME_DIR.
  std::optional<std::vector<std::string>> env;
  // >= 0: run the server as this uid/gid (no supplementary groups, no capabilities),
  // as an ordinary user would; the launcher's own state and runtime dirs are chowned
  // to it.
  int run_as_uid = -1;
  int run_as_gid = -1;
  // True (root only): the server runs as pid 1 of a new pid namespace
  // (ChildOptions::new_pid_namespace), as in a container: the test's processes are
  // invisible to it (their SO_PEERCRED pid is 0 there). pid() stays the test's view.
  bool new_pid_namespace = false;
  // Non-empty: this program instead of $LOCALNFSD (the launcher's own test).
  std::string binary;
  std::chrono::milliseconds ready_timeout{30000};
  std::chrono::milliseconds stop_timeout{15000};
};

class ServerProcess {
 public:
  explicit ServerProcess(ServerOptions options);
  // Convenience: the arguments only.
  explicit ServerProcess(std::vector<std::string> export_args);
  ~ServerProcess();  // Stop() when running; its failure is a test failure
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Starts the server and waits for its ready line. A server that ends before it is
  // ready is reaped (exit_status() says how it ended) and its stderr is in the message.
  ::testing::AssertionResult Start();
  // SIGTERM, wait; the exit status must be 0 and no sanitizer report printed (else
  // failure; SIGKILL after stop_timeout). Reaps the process.
  ::testing::AssertionResult Stop();
  // Stop() + Start() with the same state and runtime dirs.
  ::testing::AssertionResult Restart();
  // SIGKILL and reap now (an expected, hard crash). Its output is still scanned.
  void Kill9();
  // Sends `sig` to the running server.
  void Signal(int sig);
  // Waits up to `timeout` for the process to exit by itself; returns the raw wait
  // status (the process is reaped and scanned), or -1 on timeout (it keeps running).
  int WaitExit(std::chrono::milliseconds timeout);
  // SIGHUP, then waits for the outcome line of that reload: success on "exports
  // reloaded", failure on "reload failed" or none within `timeout`. What the reload
  // does after that line (invalidating LOCALIO clients) may still be running; a second
  // Reload() returns only after the first one's Reload() ran to its end (the server
  // reloads on one thread).
  ::testing::AssertionResult Reload(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Rewrites the options' exports_file with `lines`, then Reload().
  ::testing::AssertionResult ReloadExports(const std::vector<std::string>& lines);

  bool running() const { return child_.running(); }
  pid_t pid() const { return child_.pid(); }
  int nfs_port() const { return nfs_port_; }
  int mount_port() const { return mount_port_; }
  const std::string& state_dir() const { return state_dir_; }
  const std::string& runtime_dir() const { return runtime_dir_; }
  std::string exports_file() const { return state_dir_ + "/exports"; }
  // Raw wait status of the last run that ended (-1: none yet).
  int exit_status() const { return child_.last_status(); }

  // Everything the server wrote to stderr so far (all runs).
  std::string StderrText() const { return child_.Stderr(); }
  // The size of StderrText() now: WaitForStderr(text, timeout, mark) then only counts
  // lines printed after this point.
  size_t StderrMark() const { return child_.StderrSize(); }
  // Waits up to `timeout` for `text` to appear on stderr (at or after `since`). A line
  // the server logs just before something the test sees (a closed socket) may still be
  // in the pipe: ask this, not StderrText(), when the test's next step races with the
  // log line. False at once when the server's stderr closed (it exited).
  bool WaitForStderr(const std::string& text,
                     std::chrono::milliseconds timeout = std::chrono::seconds(5),
                     size_t since = 0) const {
    return child_.WaitForStderr(text, timeout, since);
  }
  // True when stderr (any run) holds a sanitizer report.
  bool SanitizerReported() const;

  // `localnfs-ctl status json` of the running server (its control socket); "" and a
  // test failure when it cannot be read.
  std::string StatusJson() const;
  // One number of that document by JSON pointer ("/rpc/reply_bytes_held",
  // "/programs/nfs/calls/READ"); nullopt when the status or the number is missing.
  std::optional<int64_t> StatusNumber(const std::string& json_pointer) const;

 private:
  ServerOptions options_;
  std::unique_ptr<TempDir> own_state_dir_, own_runtime_dir_;
  std::string state_dir_, runtime_dir_;
  int nfs_port_ = 0;
  int mount_port_ = 0;
  int next_nfs_port_ = 0, next_mount_port_ = 0;
  Child child_;
};

// Runs localnfsd with `args` (nothing added) to completion; returns the wait status
// (-1: killed after `timeout`) and what it printed. A sanitizer report fails the test.
struct RunResult {
  int wstatus = -1;
  std::string stderr_text;
  std::string stdout_text;
};
RunResult RunLocalnfsdToExit(const std::vector<std::string>& args,
                             std::chrono::milliseconds timeout);

}  // namespace localnfs::testing
