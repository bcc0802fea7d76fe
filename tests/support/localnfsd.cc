// tests/support/localnfsd.cc — see localnfsd.h.
#include "tests/support/localnfsd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iostream>

#include "common/control.h"
#include "nlohmann/json.hpp"
#include "tests/support/sanitizer.h"

namespace localnfs::testing {
namespace {

std::string Describe(int wstatus) {
  if (wstatus < 0) return "still running";
  if (WIFEXITED(wstatus)) return "exit " + std::to_string(WEXITSTATUS(wstatus));
  if (WIFSIGNALED(wstatus)) return std::string("killed by signal ") + strsignal(WTERMSIG(wstatus));
  return "wait status " + std::to_string(wstatus);
}

ChildOptions ServerChildOptions(const ServerOptions& o) {
  ChildOptions c;
  c.separate_stderr = true;  // the ready line on stdout, the log on stderr
  c.log_label = "localnfsd";
  c.uid = o.run_as_uid;
  c.gid = o.run_as_gid;
  c.env = o.env;
  c.new_pid_namespace = o.new_pid_namespace;
  return c;
}

}  // namespace

std::string LocalnfsdPath() {
  const char* p = getenv("LOCALNFSD");
  return p ? p : "";
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ADD_FAILURE() << "no free port: " << strerror(errno);
  }
  if (fd >= 0) close(fd);
  return ntohs(a.sin_port);
}

ServerProcess::ServerProcess(ServerOptions options)
    : options_(std::move(options)), child_(ServerChildOptions(options_)) {
  if (options_.state_dir.empty()) {
    own_state_dir_ = std::make_unique<TempDir>("localnfs-state");
    options_.state_dir = own_state_dir_->path();
  }
  if (options_.runtime_dir.empty() && options_.pass_runtime_dir) {
    own_runtime_dir_ = std::make_unique<TempDir>("localnfs-run");
    options_.runtime_dir = own_runtime_dir_->path();
  }
  state_dir_ = options_.state_dir;
  runtime_dir_ = options_.pass_runtime_dir ? options_.runtime_dir : "";
  next_nfs_port_ = options_.nfs_port;
  next_mount_port_ = options_.mount_port;
}

ServerProcess::ServerProcess(std::vector<std::string> export_args)
    : ServerProcess(ServerOptions{.args = std::move(export_args)}) {}

ServerProcess::~ServerProcess() {
  if (running()) {
    auto r = Stop();
    if (!r) ADD_FAILURE() << "server stop in destructor: " << r.message();
  }
}

::testing::AssertionResult ServerProcess::Start() {
  if (running()) return ::testing::AssertionFailure() << "already running";
  const std::string bin = options_.binary.empty() ? LocalnfsdPath() : options_.binary;
  if (bin.empty()) return ::testing::AssertionFailure() << "LOCALNFSD is not set";
  std::vector<std::string> argv = {bin};
  argv.insert(argv.end(), options_.args.begin(), options_.args.end());
  auto add = [&](const char* flag, const std::string& v) {
    argv.push_back(flag);
    argv.push_back(v);
  };
  add("--port", std::to_string(next_nfs_port_));
  add("--mount-port", std::to_string(next_mount_port_));
  if (!options_.bind.empty()) add("--bind", options_.bind);
  add("--threads", std::to_string(options_.threads));
  add("--state-dir", state_dir_);
  if (options_.pass_runtime_dir) add("--runtime-dir", runtime_dir_);
  if (!options_.exports_file.empty()) {
    struct stat st;
    if (stat(exports_file().c_str(), &st) != 0) {
      std::string text;
      for (const std::string& line : options_.exports_file) text += line + "\n";
      if (!WriteFile(exports_file(), text))
        return ::testing::AssertionFailure() << "cannot write " << exports_file();
    }
    add("--exports", exports_file());
  }
  if (options_.run_as_uid >= 0) {
    for (const auto* own : {own_state_dir_.get(), own_runtime_dir_.get()}) {
      if (own != nullptr &&
          chown(own->path().c_str(), options_.run_as_uid, options_.run_as_gid) != 0)
        return ::testing::AssertionFailure() << "chown " << own->path() << ": " << strerror(errno);
    }
  }

  std::string cmdline;
  for (auto& a : argv) cmdline += a + " ";
  std::cerr << "[harness] starting: " << cmdline << "\n";
  const size_t out_start = child_.OutputSize();
  if (!child_.Start(argv)) return ::testing::AssertionFailure() << "fork: " << strerror(errno);

  // The ready line: "localnfsd: ready nfs=P mount=Q\n" on stdout. WaitForOutput returns
  // early when stdout closes, i.e. the server ended before it was ready.
  const std::string ready = "localnfsd: ready ";
  const bool seen = child_.WaitForOutput(ready, options_.ready_timeout, out_start);
  std::string out = child_.Output();
  const size_t pos = out.find(ready, out_start);
  if (seen && child_.WaitForOutput("\n", std::chrono::seconds(5), pos)) {
    out = child_.Output();
    int n = 0, m = 0;
    if (sscanf(out.c_str() + pos, "localnfsd: ready nfs=%d mount=%d", &n, &m) != 2 || n <= 0 ||
        m <= 0) {
      Kill9();
      return ::testing::AssertionFailure() << "malformed ready line: " << out.substr(pos);
    }
    nfs_port_ = n;
    mount_port_ = m;
    if (options_.keep_ports) {
      next_nfs_port_ = n;
      next_mount_port_ = m;
    }
    return ::testing::AssertionSuccess();
  }
  // Ended by itself (stdout closed), or no ready line in time.
  int status = -1;
  if (child_.Wait(std::chrono::seconds(5), &status)) {
    return ::testing::AssertionFailure() << "localnfsd ended before it was ready ("
                                         << Describe(status) << "); stderr:\n"
                                         << StderrText();
  }
  Kill9();
  return ::testing::AssertionFailure()
         << "no ready line within " << options_.ready_timeout.count() << " ms";
}

int ServerProcess::WaitExit(std::chrono::milliseconds timeout) {
  if (!running()) return -1;
  int status = -1;
  return child_.Wait(timeout, &status) ? status : -1;
}

::testing::AssertionResult ServerProcess::Stop() {
  if (!running()) return ::testing::AssertionFailure() << "not running";
  // Did it die on its own (a crash)?
  int status = -1;
  if (child_.Wait(std::chrono::milliseconds(0), &status)) {
    return ::testing::AssertionFailure() << "localnfsd had already ended: " << Describe(status);
  }
  child_.Kill(SIGTERM);
  if (!child_.Wait(options_.stop_timeout, &status)) {
    child_.Kill(SIGKILL);
    child_.Wait(std::chrono::seconds(10), &status);
    return ::testing::AssertionFailure()
           << "localnfsd did not exit within " << options_.stop_timeout.count()
           << " ms of SIGTERM; killed";
  }
  if (const std::string report = child_.SanitizerReport(); !report.empty())
    return ::testing::AssertionFailure()
           << "localnfsd printed a sanitizer report: " << report
           << " (see the [localnfsd err] lines)";
  if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
    return ::testing::AssertionFailure()
           << "localnfsd did not exit cleanly on SIGTERM: " << Describe(status);
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult ServerProcess::Restart() {
  auto r = Stop();
  if (!r) return r;
  return Start();
}

void ServerProcess::Kill9() {
  if (!running()) return;
  child_.Kill(SIGKILL);
  child_.Wait(std::chrono::seconds(10));
}

void ServerProcess::Signal(int sig) { child_.Kill(sig); }

::testing::AssertionResult ServerProcess::Reload(std::chrono::milliseconds timeout) {
  if (!running()) return ::testing::AssertionFailure() << "not running";
  const size_t mark = StderrMark();
  Signal(SIGHUP);
  // Both outcome lines come after "SIGHUP: reloading exports"; whichever comes first.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (!WaitForStderr("SIGHUP: reloading exports", timeout, mark))
    return ::testing::AssertionFailure() << "no reload after SIGHUP";
  for (;;) {
    const std::string err = StderrText();
    const size_t ok = err.find("exports reloaded", mark), failed = err.find("reload failed", mark);
    if (ok != std::string::npos && (failed == std::string::npos || ok < failed))
      return ::testing::AssertionSuccess();
    if (failed != std::string::npos)
      return ::testing::AssertionFailure() << "the reload failed: "
                                           << err.substr(failed, err.find('\n', failed) - failed);
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    // Any new line may be the outcome: wait for the next newline after what we saw
    // (false: the deadline passed or stderr closed, so one last look).
    if (left.count() <= 0 || !WaitForStderr("\n", left, err.size())) {
      if (StderrText().size() != err.size()) continue;
      return ::testing::AssertionFailure() << "no reload outcome line";
    }
  }
}

::testing::AssertionResult ServerProcess::ReloadExports(const std::vector<std::string>& lines) {
  if (options_.exports_file.empty())
    return ::testing::AssertionFailure() << "ReloadExports needs ServerOptions::exports_file";
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  if (!WriteFile(exports_file(), text))
    return ::testing::AssertionFailure() << "cannot write " << exports_file();
  return Reload();
}

bool ServerProcess::SanitizerReported() const { return HasSanitizerReport(StderrText()); }

std::string ServerProcess::StatusJson() const {
  absl::StatusOr<std::string> status = QueryControl(runtime_dir_, "status json");
  if (!status.ok()) {
    ADD_FAILURE() << "localnfs-ctl status json: " << status.status();
    return "";
  }
  return *status;
}

std::optional<int64_t> ServerProcess::StatusNumber(const std::string& json_pointer) const {
  const std::string text = StatusJson();
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return std::nullopt;
  const nlohmann::json::json_pointer ptr(json_pointer);
  if (!doc.contains(ptr) || !doc.at(ptr).is_number()) return std::nullopt;
  return doc.at(ptr).get<int64_t>();
}

RunResult RunLocalnfsdToExit(const std::vector<std::string>& args,
                             std::chrono::milliseconds timeout) {
  RunResult res;
  Child child(ChildOptions{.separate_stderr = true});
  std::vector<std::string> argv = {LocalnfsdPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  if (!child.Start(argv)) return res;
  int status = -1;
  if (!child.Wait(timeout, &status)) {
    child.Kill(SIGKILL);
    child.Wait(std::chrono::seconds(10));
    status = -1;
  }
  res.wstatus = status;
  res.stdout_text = child.Output();
  res.stderr_text = child.Stderr();
  return res;
}

}  // namespace localnfs::testing
