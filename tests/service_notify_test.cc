// tests/service_notify_test.cc — localnfsd tells systemd where it is (Type=notify):
// READY=1 once it serves, RELOADING=1 (with MONOTONIC_USEC) and READY=1 around a
// SIGHUP reload — also one that fails — and around a localnfs-ctl reload, STOPPING=1
// when SIGTERM starts the shutdown.
//
// A real localnfsd (tests/support/localnfsd.h) runs with NOTIFY_SOCKET naming this test's
// AF_UNIX datagram socket, as systemd's is; SO_PASSCRED shows that each message comes
// from the server's own pid (systemd's NotifyAccess=main accepts nothing else).
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "tests/support/localnfsd.h"

namespace localnfs::testing {
namespace {

uint64_t MonotonicUsec() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
}

// The receiving end of NOTIFY_SOCKET, and NOTIFY_SOCKET set to it while it lives.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    const int on = 1;
    ok_ = fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
          setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) == 0;
    setenv("NOTIFY_SOCKET", path.c_str(), 1);
  }
  ~NotifySocket() {
    unsetenv("NOTIFY_SOCKET");
    if (fd_ >= 0) close(fd_);
    unlink(path_.c_str());
  }
  bool ok() const { return ok_; }

  struct Message {
    std::string text;
    pid_t pid = 0;  // the sender's, from SCM_CREDENTIALS
  };
  // The next datagram, or nothing within `timeout`.
  std::optional<Message> Receive(std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char buf[4096];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
    iovec iov{buf, sizeof(buf)};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT);
    if (n < 0) return std::nullopt;
    Message m{std::string(buf, static_cast<size_t>(n)), 0};
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        ucred cred;
        memcpy(&cred, CMSG_DATA(c), sizeof(cred));
        m.pid = cred.pid;
      }
    }
    return m;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool ok_ = false;
};

// "KEY=value" lines → the value of `key`, or nullopt.
std::optional<std::string> Field(const std::string& message, const std::string& key) {
  size_t pos = 0;
  while (pos < message.size()) {
    size_t end = message.find('\n', pos);
    if (end == std::string::npos) end = message.size();
    const std::string line = message.substr(pos, end - pos);
    if (line.compare(0, key.size() + 1, key + "=") == 0) return line.substr(key.size() + 1);
    pos = end + 1;
  }
  return std::nullopt;
}

TEST(ServiceNotifyTest, ReadyWhenServingReloadingAroundSighupStoppingOnSigterm) {
#ifndef LOCALNFS_HAVE_LIBSYSTEMD
  GTEST_SKIP() << "built without libsystemd (libsystemd-dev): localnfsd sends no sd_notify";
#endif
  TempDir root;
  TempDir sockdir("localnfs-notify");
  NotifySocket notify(sockdir.Sub("notify"));
  ASSERT_TRUE(notify.ok()) << strerror(errno);
  const std::string exports = sockdir.Sub("exports");
  ASSERT_TRUE(WriteFile(exports, root.path() + " 127.0.0.1(rw,no_root_squash)\n"));
  ServerProcess srv({"--exports", exports});
  ASSERT_TRUE(srv.Start());

  // READY=1 is the first message and names the ports it listens on: sent when serving.
  std::optional<NotifySocket::Message> m = notify.Receive();
  ASSERT_TRUE(m.has_value()) << "no message on NOTIFY_SOCKET after the ready line";
  EXPECT_EQ(m->pid, srv.pid());
  EXPECT_EQ(Field(m->text, "READY"), "1") << m->text;
  EXPECT_EQ(Field(m->text, "STATUS"),
            "serving nfs=" + std::to_string(srv.nfs_port()) + " mount=" +
                std::to_string(srv.mount_port()) + ", 1 export(s)")
      << m->text;

  // A good reload: RELOADING=1 with the time it began, then READY=1.
  const std::string other = root.Sub("other");
  ASSERT_EQ(mkdir(other.c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(exports, root.path() + " 127.0.0.1(rw)\n" + other + " *(ro)\n"));
  const uint64_t before = MonotonicUsec();
  srv.Signal(SIGHUP);
  m = notify.Receive();
  const uint64_t after = MonotonicUsec();
  ASSERT_TRUE(m.has_value()) << "no RELOADING=1 after SIGHUP";
  EXPECT_EQ(m->pid, srv.pid());
  EXPECT_EQ(Field(m->text, "RELOADING"), "1") << m->text;
  const std::optional<std::string> usec = Field(m->text, "MONOTONIC_USEC");
  ASSERT_TRUE(usec.has_value()) << m->text;
  EXPECT_GE(std::stoull(*usec), before);
  EXPECT_LE(std::stoull(*usec), after);
  m = notify.Receive();
  ASSERT_TRUE(m.has_value()) << "no READY=1 after the reload";
  EXPECT_EQ(Field(m->text, "READY"), "1") << m->text;
  EXPECT_NE(Field(m->text, "STATUS").value_or("").find("2 export(s)"), std::string::npos)
      << m->text;

  // A reload that fails keeps the old exports and still ends with READY=1, with the
  // error (file and line) in STATUS=.
  ASSERT_TRUE(WriteFile(exports, "# broken\n" + root.path() + " *(rx)\n"));
  srv.Signal(SIGHUP);
  m = notify.Receive();
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Field(m->text, "RELOADING"), "1") << m->text;
  m = notify.Receive();
  ASSERT_TRUE(m.has_value()) << "no READY=1 after a failed reload";
  EXPECT_EQ(Field(m->text, "READY"), "1") << m->text;
  const std::string status = Field(m->text, "STATUS").value_or("");
  EXPECT_NE(status.find("2 export(s); reload failed: " + exports + ":2: unknown option 'rx'"),
            std::string::npos)
      << m->text;

  // localnfs-ctl reload is the same reload: RELOADING=1 and READY=1 around it, both
  // sent before its answer (exit 3 for the still broken file, 0 once it is fixed).
  const char* ctl = getenv("LOCALNFS_CTL");
  ASSERT_NE(ctl, nullptr) << "$LOCALNFS_CTL unset";
  std::string out;
  EXPECT_EQ(RunCommand({ctl, "--runtime-dir", srv.runtime_dir(), "reload"}, &out,
                       std::chrono::seconds(60)),
            3)
      << out;
  m = notify.Receive(std::chrono::milliseconds(0));
  ASSERT_TRUE(m.has_value()) << "no RELOADING=1 before localnfs-ctl reload answered";
  EXPECT_EQ(Field(m->text, "RELOADING"), "1") << m->text;
  m = notify.Receive(std::chrono::milliseconds(0));
  ASSERT_TRUE(m.has_value()) << "no READY=1 before localnfs-ctl reload answered";
  EXPECT_NE(Field(m->text, "STATUS").value_or("").find("; reload failed: " + exports + ":2:"),
            std::string::npos)
      << m->text;
  ASSERT_TRUE(WriteFile(exports, root.path() + " 127.0.0.1(rw)\n"));
  EXPECT_EQ(RunCommand({ctl, "--runtime-dir", srv.runtime_dir(), "reload"}, &out,
                       std::chrono::seconds(60)),
            0)
      << out;
  m = notify.Receive(std::chrono::milliseconds(0));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Field(m->text, "RELOADING"), "1") << m->text;
  m = notify.Receive(std::chrono::milliseconds(0));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(Field(m->text, "READY"), "1") << m->text;
  EXPECT_EQ(Field(m->text, "STATUS"),
            "serving nfs=" + std::to_string(srv.nfs_port()) + " mount=" +
                std::to_string(srv.mount_port()) + ", 1 export(s)")
      << m->text;

  // SIGTERM: STOPPING=1 first, then the orderly shutdown (exit 0, checked by Stop).
  ASSERT_TRUE(srv.Stop());
  m = notify.Receive(std::chrono::milliseconds(0));
  ASSERT_TRUE(m.has_value()) << "no STOPPING=1 after SIGTERM";
  EXPECT_EQ(Field(m->text, "STOPPING"), "1") << m->text;
  EXPECT_FALSE(notify.Receive(std::chrono::milliseconds(0)).has_value());
}

TEST(ServiceNotifyTest, NothingIsSentWithoutNotifySocket) {
  // Not started by systemd: no NOTIFY_SOCKET, no message and no complaint.
  unsetenv("NOTIFY_SOCKET");
  TempDir root;
  ServerProcess srv({"--export", root.path() + ":rw"});
  ASSERT_TRUE(srv.Start());
  ASSERT_TRUE(srv.Stop());
  EXPECT_EQ(srv.StderrText().find("NOTIFY_SOCKET"), std::string::npos);
  EXPECT_EQ(srv.StderrText().find("sd_notify"), std::string::npos);
}

}  // namespace
}  // namespace localnfs::testing
