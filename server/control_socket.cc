// server/control_socket.cc — see control_socket.h.
#include "server/control_socket.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/control.h"
#include "common/log.h"
#include "common/rcu.h"
#include "common/release_queue.h"
#include "common/status.h"
#include "common/unix_socket.h"

namespace localnfs::server {

ControlSocket::~ControlSocket() { Stop(); }

absl::Status ControlSocket::Listen(const std::string& path) {
  // With LOCALIO on, the broker has already refused a second live server on this
  // runtime dir; with --no-localio this probe is what keeps two servers apart.
  if (absl::StatusOr<UniqueFd> live = ConnectUnix(path, SOCK_STREAM, absl::Seconds(1));
      live.ok())
    return absl::FailedPreconditionError(
        absl::StrCat("runtime dir of ", path, " is in use by a running localnfsd"));
  ASSIGN_OR_RETURN(UnixListener listener, ListenUnix(path, SOCK_STREAM, 0600));
  path_ = path;
  path_ino_ = listener.inode;
  listen_fd_ = std::move(listener.fd);
  return absl::OkStatus();
}

absl::Status ControlSocket::Start() {
  if (!listen_fd_) return absl::FailedPreconditionError("control socket: Listen() first");
  stop_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_) return ErrnoToStatus(errno, "eventfd");
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void ControlSocket::Stop() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    while (write(stop_fd_.get(), &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    thread_.join();
  }
  if (listen_fd_) {
    listen_fd_.reset();
    RemoveUnixSocketFile(path_, path_ino_);
  }
}

void ControlSocket::Loop() {
  // Handlers read RCU-published tables (the export table) and may drop Refs.
  RcuThread rcu_registration;
  for (;;) {
    pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      LOG_ERROR("control socket: poll: %s", strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    UniqueFd conn(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
        LOG_WARNING("control socket: accept: %s", strerror(errno));
      continue;
    }
    Serve(conn.get());
    FlushThisThread();
  }
}

void ControlSocket::Serve(int fd) {
  auto reply = [fd](std::string_view text) {
    while (!text.empty()) {
      const ssize_t n = send(fd, text.data(), text.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // the peer left or stalled past the timeout
      text.remove_prefix(static_cast<size_t>(n));
    }
  };
  ucred peer{};
  socklen_t len = sizeof(peer);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0) {
    LOG_WARNING("control socket: SO_PEERCRED: %s", strerror(errno));
    return;
  }
  if (!SetSocketTimeouts(fd, io_timeout_).ok()) return;
  std::string request;
  char buf[kMaxControlRequest + 1];
  while (request.find('\n') == std::string::npos) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    request.append(buf, static_cast<size_t>(n));
    if (request.size() > kMaxControlRequest) {
      LOG_WARNING("control socket: request of pid %d longer than %d bytes", peer.pid,
                  kMaxControlRequest);
      reply("error: request too long\n");
      return;
    }
  }
  const size_t eol = request.find('\n');
  if (eol == std::string::npos) return;  // closed or timed out before a whole line
  // Checked after the request is read: closing on unread data would reset the
  // connection, and the peer would never see why.
  if (peer.uid != 0 && peer.uid != geteuid()) {
    LOG_WARNING("control socket: refused pid %d uid %d (not root, not uid %d)", peer.pid,
                peer.uid, geteuid());
    reply("error: permission denied\n");
    return;
  }
  std::string_view line = std::string_view(request).substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  reply(handler_(line));
}

}  // namespace localnfs::server
