// tests/support/child.cc — see child.h.
#include "tests/support/child.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/support/sanitizer.h"

namespace localnfs::testing {
namespace {

using Clock = std::chrono::steady_clock;

// The last `max` bytes of `text`, for failure messages.
std::string Tail(const std::string& text, size_t max = 8000) {
  return text.size() <= max ? text : "..." + text.substr(text.size() - max);
}

// waitpid(pid) for up to `timeout`: through a pidfd when there is one (woken by the
// exit), else by polling. True when reaped (raw status in *status).
bool WaitForExit(pid_t pid, int pidfd, std::chrono::milliseconds timeout, int* status) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) {  // not ours to reap (already reaped elsewhere)
      *status = -1;
      return true;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      poll(&p, 1, static_cast<int>(left.count()) + 1);
    } else {
      usleep(static_cast<useconds_t>(std::min<int64_t>(left.count(), 10) * 1000));
    }
  }
}

}  // namespace

Child::Child(ChildOptions options) : options_(std::move(options)) {}

Child::~Child() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    Wait(std::chrono::seconds(10));
  }
  StopReader();
}

bool Child::Start(const std::vector<std::string>& argv) {
  if (pid_ > 0 || argv.empty()) return false;
  StopReader();  // the previous run's, if any
  int out[2] = {-1, -1}, err[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0) return false;
  if (options_.separate_stderr && pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    return false;
  }
  // Everything the child needs is built before fork(): after it, only system calls.
  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::vector<char*> cenv;
  if (options_.env) {
    for (const std::string& e : *options_.env) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);
  }
  const int uid = options_.uid, gid = options_.gid;
  const int err_w = options_.separate_stderr ? err[1] : out[1];
  const pid_t parent = getpid();
  const bool new_pidns = options_.new_pid_namespace;
  // clone() without a stack behaves as fork(), in a new pid namespace.
  const pid_t pid =
      new_pidns ? static_cast<pid_t>(syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, nullptr,
                                             nullptr, nullptr, nullptr))
                : fork();
  if (pid < 0) {
    for (int fd : {out[0], out[1], err[0], err[1]})
      if (fd >= 0) close(fd);
    return false;
  }
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err_w, 2);
    const int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) dup2(devnull, 0);
    if (uid >= 0 && (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0 ||
                     setresuid(uid, uid, uid) != 0)) {
      dprintf(2, "switching to uid %d: %s\n", uid, strerror(errno));
      _exit(127);
    }
    // After the credential change, which clears it.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    // (In a new pid namespace the parent is invisible: getppid() is 0.)
    if (!new_pidns && getppid() != parent) _exit(127);
    if (!cenv.empty()) {
      execvpe(cargv[0], cargv.data(), cenv.data());
    } else {
      execvp(cargv[0], cargv.data());
    }
    dprintf(2, "exec %s: %s\n", cargv[0], strerror(errno));
    _exit(127);
  }
  close(out[1]);
  if (err[1] >= 0) close(err[1]);
  pid_ = pid;
  pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  stop_fd_ = eventfd(0, EFD_CLOEXEC);
  {
    absl::MutexLock l(&mu_);
    for (int s : {kOut, kErr}) run_start_[s] = buf_[s].size();
    eof_[kOut] = false;
    eof_[kErr] = !options_.separate_stderr;
  }
  reader_ = std::thread([this, o = out[0], e = err[0]] { ReadLoop(o, e); });
  return true;
}

void Child::ReadLoop(int out_fd, int err_fd) {
  pollfd fds[3] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  std::string partial[2];
  auto forward = [&](int s, bool flush) {
    if (options_.log_label.empty()) return;
    size_t pos;
    while ((pos = partial[s].find('\n')) != std::string::npos || (flush && !partial[s].empty())) {
      const size_t n = pos == std::string::npos ? partial[s].size() : pos + 1;
      std::string line = "[" + options_.log_label + (s == kOut ? " out] " : " err] ") +
                         partial[s].substr(0, n);
      if (line.back() != '\n') line += '\n';
      partial[s].erase(0, n);
      (void)!write(2, line.data(), line.size());
    }
  };
  auto close_stream = [&](int s) {
    close(fds[s].fd);
    fds[s].fd = -1;
    forward(s, true);
    {
      absl::MutexLock l(&mu_);
      eof_[s] = true;
    }
    cv_.SignalAll();
  };
  // Until both streams ended; once stop_fd_ fired (the child was reaped), only what is
  // already in the pipes (a grandchild may hold them open for ever).
  bool stopping = false;
  while (fds[kOut].fd >= 0 || fds[kErr].fd >= 0) {
    const int n = poll(fds, 3, stopping ? 0 : -1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (fds[2].fd >= 0 && (fds[2].revents & POLLIN)) {
      stopping = true;
      fds[2].fd = -1;
    }
    for (int s : {kOut, kErr}) {
      if (fds[s].fd < 0 || !(fds[s].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[16384];
      const ssize_t got = read(fds[s].fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        close_stream(s);
        continue;
      }
      {
        absl::MutexLock l(&mu_);
        buf_[s].append(buf, static_cast<size_t>(got));
      }
      cv_.SignalAll();
      partial[s].append(buf, static_cast<size_t>(got));
      forward(s, false);
    }
  }
  for (int s : {kOut, kErr})
    if (fds[s].fd >= 0) close_stream(s);
}

void Child::StopReader() {
  if (reader_.joinable()) {
    const uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof one);
    reader_.join();
  }
  if (stop_fd_ >= 0) close(stop_fd_);
  stop_fd_ = -1;
}

bool Child::WaitPid(std::chrono::milliseconds timeout, int* status) {
  return WaitForExit(pid_, pidfd_, timeout, status);
}

bool Child::Wait(std::chrono::milliseconds timeout, int* status) {
  if (pid_ <= 0) {
    if (status != nullptr) *status = last_status_;
    return true;
  }
  int st = -1;
  if (!WaitPid(timeout, &st)) return false;
  pid_ = -1;
  last_status_ = st;
  if (status != nullptr) *status = st;
  if (pidfd_ >= 0) close(pidfd_);
  pidfd_ = -1;
  StopReader();  // the child is gone: what it wrote is in the pipes, read it all
  if (options_.fail_on_sanitizer_report) {
    if (const std::string report = SanitizerReport(); !report.empty()) {
      const std::string who = options_.log_label.empty() ? "a child process" : options_.log_label;
      ADD_FAILURE() << who << " printed a sanitizer report: " << report << "\n"
                    << Tail(Output()) << Tail(Stderr());
    }
  }
  return true;
}

void Child::Kill(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

std::string Child::Output() const {
  absl::MutexLock l(&mu_);
  return buf_[kOut];
}

std::string Child::Stderr() const {
  absl::MutexLock l(&mu_);
  return buf_[kErr];
}

size_t Child::OutputSize() const {
  absl::MutexLock l(&mu_);
  return buf_[kOut].size();
}

size_t Child::StderrSize() const {
  absl::MutexLock l(&mu_);
  return buf_[kErr].size();
}

bool Child::WaitForText(Stream s, const std::string& text, std::chrono::milliseconds timeout,
                        size_t from) const {
  absl::MutexLock l(&mu_);
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (buf_[s].size() > from && buf_[s].find(text, from) != std::string::npos) return true;
    if (eof_[s]) return false;
    if (cv_.WaitWithTimeout(&mu_, absl::FromChrono(deadline - Clock::now())))  // timed out
      return buf_[s].size() > from && buf_[s].find(text, from) != std::string::npos;
  }
}

bool Child::WaitForOutput(const std::string& text, std::chrono::milliseconds timeout,
                          size_t from) const {
  return WaitForText(kOut, text, timeout, from);
}

bool Child::WaitForStderr(const std::string& text, std::chrono::milliseconds timeout,
                          size_t from) const {
  return WaitForText(kErr, text, timeout, from);
}

std::string Child::SanitizerReport() const {
  absl::MutexLock l(&mu_);
  for (int s : {kOut, kErr}) {
    std::string report =
        FindSanitizerReport(std::string_view(buf_[s]).substr(run_start_[s]));
    if (!report.empty()) return report;
  }
  return "";
}

int RunCommand(const std::vector<std::string>& argv, std::string* output,
               std::chrono::milliseconds timeout) {
  Child child;
  if (!child.Start(argv)) return -1;
  int status = 0, rc;
  if (!child.Wait(timeout, &status)) {
    child.Kill(SIGKILL);
    child.Wait(std::chrono::seconds(10), &status);
    rc = -1;
  } else {
    rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  if (output != nullptr) *output = child.Output();
  return rc;
}

int RunAsUser(uid_t uid, gid_t gid, const std::function<int()>& body,
              std::chrono::milliseconds timeout) {
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(255);
    if (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0 ||
        setresuid(uid, uid, uid) != 0) {
      _exit(255);
    }
    _exit(body() & 0xff);
  }
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  int status = 0;
  const bool exited = WaitForExit(pid, pidfd, timeout, &status);
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  if (pidfd >= 0) close(pidfd);
  if (!exited || !WIFEXITED(status) || WEXITSTATUS(status) == 255) return -1;
  return WEXITSTATUS(status);
}

}  // namespace localnfs::testing
