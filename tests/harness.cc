// tests/harness.cc — see harness.h.
#include "tests/harness.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace localnfs::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string Describe(int wstatus) {
  if (wstatus < 0) return "still running";
  if (WIFEXITED(wstatus)) return "exit " + std::to_string(WEXITSTATUS(wstatus));
  if (WIFSIGNALED(wstatus)) return std::string("killed by signal ") + strsignal(WTERMSIG(wstatus));
  return "wait status " + std::to_string(wstatus);
}

}  // namespace

std::string LocalnfsdPath() {
  const char* p = getenv("LOCALNFSD");
  return p ? p : "";
}

TempDir::TempDir(const std::string& prefix) {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) {
    perror("mkdtemp");
    abort();
  }
  path_ = buf.data();
  chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  std::error_code ec;
  // Make everything writable/searchable first (tests create 0000 dirs and files).
  for (auto it = std::filesystem::recursive_directory_iterator(
           path_, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) chmod(it->path().c_str(), 0700);
  }
  std::filesystem::remove_all(path_, ec);
  if (ec) std::cerr << "TempDir: cannot remove " << path_ << ": " << ec.message() << "\n";
}

bool WriteFile(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << data;
  return static_cast<bool>(f);
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

ServerProcess::ServerProcess(ServerOptions options) : options_(std::move(options)) {}
ServerProcess::ServerProcess(std::vector<std::string> export_args)
    : ServerProcess(ServerOptions{.args = std::move(export_args)}) {}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    auto r = Stop();
    if (!r) ADD_FAILURE() << "server stop in destructor: " << r.message();
  }
  JoinReaders();
}

void ServerProcess::ReaderLoop(int fd, bool is_stdout) {
  char buf[4096];
  std::string line;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    {
      std::lock_guard<std::mutex> l(mu_);
      (is_stdout ? stdout_buf_ : stderr_buf_).append(buf, n);
    }
    cv_.notify_all();
    // Forward whole lines to the test log.
    line.append(buf, n);
    size_t pos;
    while ((pos = line.find('\n')) != std::string::npos) {
      std::string one = line.substr(0, pos + 1);
      line.erase(0, pos + 1);
      std::string out = std::string("[localnfsd ") + (is_stdout ? "out" : "err") + "] " + one;
      (void)!write(2, out.data(), out.size());
    }
  }
  if (!line.empty()) {
    std::string out = std::string("[localnfsd] ") + line + "\n";
    (void)!write(2, out.data(), out.size());
  }
  close(fd);
  {
    std::lock_guard<std::mutex> l(mu_);
  }
  cv_.notify_all();
}

void ServerProcess::StartReaders(int out_fd, int err_fd) {
  out_thread_ = std::thread([this, out_fd] { ReaderLoop(out_fd, true); });
  err_thread_ = std::thread([this, err_fd] { ReaderLoop(err_fd, false); });
}

void ServerProcess::JoinReaders() {
  if (out_thread_.joinable()) out_thread_.join();
  if (err_thread_.joinable()) err_thread_.join();
}

std::string ServerProcess::StderrText() const {
  std::lock_guard<std::mutex> l(mu_);
  return stderr_buf_;
}

bool ServerProcess::WaitForStderr(const std::string& text,
                                  std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, timeout,
                      [&] { return stderr_buf_.find(text) != std::string::npos; });
}

bool ServerProcess::SanitizerReported() const {
  std::string e = StderrText();
  return e.find("ERROR: AddressSanitizer") != std::string::npos ||
         e.find("ERROR: LeakSanitizer") != std::string::npos ||
         e.find("runtime error:") != std::string::npos ||
         e.find("WARNING: ThreadSanitizer") != std::string::npos;
}

::testing::AssertionResult ServerProcess::Start() {
  if (pid_ > 0) return ::testing::AssertionFailure() << "already running";
  std::string bin = LocalnfsdPath();
  if (bin.empty()) return ::testing::AssertionFailure() << "LOCALNFSD is not set";
  JoinReaders();
  {
    std::lock_guard<std::mutex> l(mu_);
    stdout_buf_.clear();
  }
  std::vector<std::string> argv = {bin};
  argv.insert(argv.end(), options_.args.begin(), options_.args.end());
  auto add = [&](const char* flag, const std::string& v) {
    argv.push_back(flag);
    argv.push_back(v);
  };
  add("--port", "0");
  add("--mount-port", "0");
  if (!options_.bind.empty()) add("--bind", options_.bind);
  add("--threads", std::to_string(options_.threads));
  add("--state-dir", state_dir_.path());
  add("--runtime-dir", runtime_dir_.path());

  std::string cmdline;
  for (auto& a : argv) cmdline += a + " ";
  std::cerr << "[harness] starting: " << cmdline << "\n";

  int outp[2], errp[2];
  if (pipe2(outp, O_CLOEXEC) || pipe2(errp, O_CLOEXEC))
    return ::testing::AssertionFailure() << "pipe: " << strerror(errno);
  const bool switch_user = options_.run_as_uid >= 0;
  if (switch_user) {
    for (const std::string& dir : {state_dir_.path(), runtime_dir_.path()}) {
      if (chown(dir.c_str(), options_.run_as_uid, options_.run_as_gid) != 0)
        return ::testing::AssertionFailure() << "chown " << dir << ": " << strerror(errno);
    }
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return ::testing::AssertionFailure() << "fork: " << strerror(errno);
  if (pid == 0) {
    if (switch_user) {
      // Drop every privilege before exec; PDEATHSIG is set afterwards because a
      // credential change clears it.
      if (setgroups(0, nullptr) != 0 ||
          setresgid(options_.run_as_gid, options_.run_as_gid, options_.run_as_gid) != 0 ||
          setresuid(options_.run_as_uid, options_.run_as_uid, options_.run_as_uid) != 0) {
        dprintf(2, "switching to uid %d: %s\n", options_.run_as_uid, strerror(errno));
        _exit(127);
      }
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(outp[1], 1);
    dup2(errp[1], 2);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    execv(cargv[0], cargv.data());
    dprintf(2, "exec %s: %s\n", cargv[0], strerror(errno));
    _exit(127);
  }
  close(outp[1]);
  close(errp[1]);
  pid_ = pid;
  StartReaders(outp[0], errp[0]);

  // Wait for the ready line.
  auto deadline = Clock::now() + options_.ready_timeout;
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    size_t pos = stdout_buf_.find("localnfsd: ready ");
    if (pos != std::string::npos && stdout_buf_.find('\n', pos) != std::string::npos) {
      int n = 0, m = 0;
      if (sscanf(stdout_buf_.c_str() + pos, "localnfsd: ready nfs=%d mount=%d", &n, &m) != 2 ||
          n <= 0 || m <= 0) {
        l.unlock();
        return ::testing::AssertionFailure()
               << "malformed ready line: " << stdout_buf_.substr(pos);
      }
      nfs_port_ = n;
      mount_port_ = m;
      return ::testing::AssertionSuccess();
    }
    int st;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      l.unlock();
      JoinReaders();
      return ::testing::AssertionFailure()
             << "localnfsd ended before it was ready (" << Describe(st)
             << "); stderr:\n" << StderrText();
    }
    if (Clock::now() > deadline) {
      l.unlock();
      Kill9();
      return ::testing::AssertionFailure() << "no ready line within "
                                           << options_.ready_timeout.count() << " ms";
    }
    cv_.wait_for(l, std::chrono::milliseconds(50));
  }
}

int ServerProcess::Reap(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    int st;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) return st;
    if (r < 0 && errno != EINTR) return -2;
    if (Clock::now() > deadline) return -1;
    usleep(10 * 1000);
  }
}

int ServerProcess::WaitExit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  int st = Reap(timeout);
  if (st >= 0) {
    pid_ = -1;
    JoinReaders();
  }
  return st;
}

::testing::AssertionResult ServerProcess::Stop() {
  if (pid_ <= 0) return ::testing::AssertionFailure() << "not running";
  // Did it die on its own (a crash)?
  int st;
  if (waitpid(pid_, &st, WNOHANG) == pid_) {
    pid_ = -1;
    JoinReaders();
    if (SanitizerReported()) ADD_FAILURE() << "localnfsd printed a sanitizer report";
    return ::testing::AssertionFailure() << "localnfsd had already ended: " << Describe(st);
  }
  kill(pid_, SIGTERM);
  st = Reap(options_.stop_timeout);
  bool hard = false;
  if (st == -1) {
    kill(pid_, SIGKILL);
    st = Reap(std::chrono::milliseconds(10000));
    hard = true;
  }
  pid_ = -1;
  JoinReaders();
  if (hard) {
    if (SanitizerReported()) ADD_FAILURE() << "localnfsd printed a sanitizer report";
    return ::testing::AssertionFailure()
           << "localnfsd did not exit within " << options_.stop_timeout.count()
           << " ms of SIGTERM; killed";
  }
  if (SanitizerReported())
    return ::testing::AssertionFailure()
           << "localnfsd printed a sanitizer report (see the [localnfsd err] lines)";
  if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
    return ::testing::AssertionFailure()
           << "localnfsd did not exit cleanly on SIGTERM: " << Describe(st);
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult ServerProcess::Restart() {
  auto r = Stop();
  if (!r) return r;
  return Start();
}

void ServerProcess::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int st = Reap(std::chrono::milliseconds(10000));
  (void)st;
  pid_ = -1;
  JoinReaders();
  if (SanitizerReported()) ADD_FAILURE() << "localnfsd printed a sanitizer report";
}

void ServerProcess::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

RunResult RunLocalnfsdToExit(const std::vector<std::string>& args,
                             std::chrono::milliseconds timeout) {
  RunResult res;
  std::string bin = LocalnfsdPath();
  int outp[2], errp[2];
  if (pipe2(outp, O_CLOEXEC) || pipe2(errp, O_CLOEXEC)) return res;
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(outp[1], 1);
    dup2(errp[1], 2);
    std::vector<char*> cargv{const_cast<char*>(bin.c_str())};
    for (auto& a : args) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  close(outp[1]);
  close(errp[1]);
  auto deadline = Clock::now() + timeout;
  pollfd fds[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0 && Clock::now() < deadline) {
    if (poll(fds, 2, 100) <= 0) continue;
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        open_fds--;
      } else {
        (i == 0 ? res.stdout_text : res.stderr_text).append(buf, n);
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  int st = 0;
  while (Clock::now() < deadline) {
    if (waitpid(pid, &st, WNOHANG) == pid) {
      res.wstatus = st;
      return res;
    }
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  res.wstatus = -1;
  return res;
}

}  // namespace localnfs::testing
