// common/control.cc — see control.h.
#include "common/control.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status.h"
#include "common/unix_socket.h"

namespace localnfs {

std::string DefaultRuntimeDir() {
  if (geteuid() == 0) return "/run/localnfs";
  if (const char* x = getenv("XDG_RUNTIME_DIR"); x != nullptr && x[0] == '/')
    return absl::StrCat(x, "/localnfs");
  return absl::StrCat("/tmp/localnfs-", getuid());
}

absl::StatusOr<std::string> QueryControl(const std::string& runtime_dir,
                                         std::string_view request,
                                         absl::Duration timeout) {
  const std::string path = absl::StrCat(runtime_dir, "/", kControlSocketName);
  ASSIGN_OR_RETURN(UniqueFd fd, ConnectUnix(path, SOCK_STREAM, timeout));
  const std::string line = std::string(request) + "\n";
  if (send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(line.size()))
    return ErrnoToStatus(errno, absl::StrCat("send to ", path));
  std::string answer;
  char buf[65536];
  for (;;) {
    const ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoToStatus(errno, absl::StrCat("receive from ", path));
    if (n == 0) break;
    answer.append(buf, static_cast<size_t>(n));
    if (answer.size() > kMaxControlReply)
      return absl::OutOfRangeError(absl::StrCat(path, ": answer larger than ",
                                                kMaxControlReply, " bytes"));
  }
  if (absl::StartsWith(answer, "error: "))
    return absl::InvalidArgumentError(absl::StripSuffix(answer, "\n"));
  return answer;
}

}  // namespace localnfs
