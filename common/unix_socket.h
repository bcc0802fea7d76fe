// common/unix_socket.h — AF_UNIX socket files in the runtime directory: the one place
// that binds, connects to and removes them (the LOCALIO local socket and the control
// socket both live there).
//
// Owns nothing beyond the fds it returns. Thread-safety: stateless functions.
#pragma once

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

namespace localnfs {

struct UnixListener {
  UniqueFd fd;
  // The inode of the socket file we created: RemoveUnixSocketFile() unlinks the path
  // only while it is still this file, never one a later server put in its place.
  ino_t inode = 0;
};

// socket(AF_UNIX, `type` | SOCK_NONBLOCK | SOCK_CLOEXEC), replaces a stale socket file
// at `path` (callers make sure no live server owns it), binds, chmods to `mode` (bind
// applies the umask), listens. A path too long for sun_path → kInvalidArgument naming
// it; other failures carry the errno.
absl::StatusOr<UnixListener> ListenUnix(const std::string& path, int type, mode_t mode);
// Unlinks `path` if it is still the socket file `inode` names.
void RemoveUnixSocketFile(const std::string& path, ino_t inode);

// A blocking connection to `path` with SO_RCVTIMEO/SO_SNDTIMEO = `timeout`. No server
// (ENOENT, ECONNREFUSED) → kUnavailable "connect PATH: …".
absl::StatusOr<UniqueFd> ConnectUnix(const std::string& path, int type,
                                     absl::Duration timeout);
// SO_RCVTIMEO and SO_SNDTIMEO.
absl::Status SetSocketTimeouts(int fd, absl::Duration timeout);

}  // namespace localnfs
