// common/unix_socket.cc — see unix_socket.h.
#include "common/unix_socket.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace localnfs {
namespace {

absl::StatusOr<sockaddr_un> AddressOf(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path))
    return absl::InvalidArgumentError(absl::StrCat(
        "socket path ", path, " is longer than ", sizeof(addr.sun_path) - 1,
        " bytes (use a shorter --runtime-dir)"));
  memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

}  // namespace

absl::StatusOr<UnixListener> ListenUnix(const std::string& path, int type, mode_t mode) {
  ASSIGN_OR_RETURN(const sockaddr_un addr, AddressOf(path));
  UniqueFd fd(socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoToStatus(errno, "socket(AF_UNIX)");
  if (unlink(path.c_str()) != 0 && errno != ENOENT)
    return ErrnoToStatus(errno, absl::StrCat("unlink stale ", path));
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0)
    return ErrnoToStatus(errno, absl::StrCat("bind ", path));
  // The runtime dir (0700, or the admin's 0750/2770) keeps others out until this chmod.
  struct stat st;
  if (chmod(path.c_str(), mode) != 0 || stat(path.c_str(), &st) != 0) {
    const int err = errno;
    unlink(path.c_str());
    return ErrnoToStatus(err, absl::StrCat("chmod ", path));
  }
  if (listen(fd.get(), 64) != 0) {
    const int err = errno;
    unlink(path.c_str());
    return ErrnoToStatus(err, absl::StrCat("listen ", path));
  }
  return UnixListener{std::move(fd), st.st_ino};
}

void RemoveUnixSocketFile(const std::string& path, ino_t inode) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && st.st_ino == inode) unlink(path.c_str());
}

absl::Status SetSocketTimeouts(int fd, absl::Duration timeout) {
  timeval tv = absl::ToTimeval(timeout);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
    return ErrnoToStatus(errno, "setsockopt SO_RCVTIMEO/SO_SNDTIMEO");
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path, int type,
                                     absl::Duration timeout) {
  ASSIGN_OR_RETURN(const sockaddr_un addr, AddressOf(path));
  UniqueFd fd(socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoToStatus(errno, "socket(AF_UNIX)");
  RETURN_IF_ERROR(SetSocketTimeouts(fd.get(), timeout));
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    return absl::UnavailableError(absl::StrCat("connect ", path, ": ", strerror(err)));
  }
  return fd;
}

}  // namespace localnfs
