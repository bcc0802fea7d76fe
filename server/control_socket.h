// server/control_socket.h — the control socket `<runtime-dir>/control.sock` that
// localnfs-ctl queries (protocol: common/control.h).
//
// Owns: the AF_UNIX SOCK_STREAM listener (mode 0600, unlinked by Stop() if it is still
// ours) and the one thread that serves it, one request at a time: accept, check the
// peer (SO_PEERCRED uid must be 0 or ours — the file mode already keeps others out;
// the check holds even if an admin loosens the directory), read the request line
// (bounded in size and time), write the answer the handler renders, close. A peer
// that stalls costs at most the I/O timeout; nothing it sends is kept.
//
// Lifetimes: Listen() → Start() → Stop(). The handler runs on the control thread (RCU-
// registered, its deferred releases flushed after each request) and
// must stay valid until Stop() returns (main.cc stops this socket first at shutdown,
// before anything the status report reads from).
//
// Thread-safety: Listen/Start/Stop from one controlling thread.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

namespace localnfs::server {

class ControlSocket {
 public:
  // Renders the answer to one request ("status", "status json"); the returned text is
  // sent as is. Unknown requests are the handler's to answer ("error: …\n").
  using Handler = std::function<std::string(std::string_view request)>;

  explicit ControlSocket(Handler handler, absl::Duration io_timeout = absl::Seconds(2))
      : handler_(std::move(handler)), io_timeout_(io_timeout) {}
  ~ControlSocket();  // Stop()
  ControlSocket(const ControlSocket&) = delete;
  ControlSocket& operator=(const ControlSocket&) = delete;

  // Binds `path` (mode 0600). A socket there that still answers belongs to a running
  // server → kFailedPrecondition; a dead one is replaced.
  absl::Status Listen(const std::string& path);
  absl::Status Start();
  void Stop();  // idempotent

 private:
  void Loop();
  void Serve(int fd);

  const Handler handler_;
  const absl::Duration io_timeout_;
  std::string path_;
  ino_t path_ino_ = 0;
  UniqueFd listen_fd_;
  UniqueFd stop_fd_;  // eventfd
  std::thread thread_;
};

}  // namespace localnfs::server
