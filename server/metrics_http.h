// server/metrics_http.h — the --metrics endpoint: the Prometheus text exposition
// format (version 0.0.4) over HTTP, served by libmicrohttpd on a thread of its own.
//
// Owns: the listening TCP socket (bound here, so that a bind failure names address and
// port; libmicrohttpd closes it when it stops) and one libmicrohttpd daemon with its
// internal polling thread (MHD_USE_INTERNAL_POLLING_THREAD), which accepts, reads
// requests, calls the render function and writes the answers for every connection.
// Nothing here runs on the RPC event loop or its workers, and the RPC path never waits
// for it: the render function only reads atomics and copies figures taken under the
// owners' short locks (server/status.h).
//
// Requests: GET or HEAD of /metrics → 200 with the rendered text (Content-Type
// text/plain; version=0.0.4; charset=utf-8); any other path → 404; any other method
// → 405. A request body is read and thrown away. Bounds: at most kConnectionLimit
// connections at once (more are closed as they arrive), each closed after
// kConnectionTimeout without progress — a client that connects and sends nothing, or
// never reads its answer, holds one slot for that long and nothing else; request
// headers beyond libmicrohttpd's per-connection memory (32 KiB) are answered with an
// error.
//
// libmicrohttpd is optional at build time (meson -Dmetrics=auto|enabled|disabled, as
// libsystemd is): without it Available() is false and localnfsd refuses --metrics.
//
// Lifetimes: Listen() → Start() → Stop() (idempotent; the destructor calls it). The
// render function runs on the daemon's thread, one call at a time, registered with
// RCU for the call (it may list the export table) with its deferred releases flushed
// after it; it must stay valid until Stop() returns.
//
// Thread-safety: Listen/Start/Stop/port from one controlling thread.
#pragma once

#include <stdint.h>

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/peer_address.h"
#include "common/unique_fd.h"

struct MHD_Daemon;

namespace localnfs::server {

// "127.0.0.1:9100", "[::1]:0", "0.0.0.0:9100", or ":9100" (every interface, IPv4 and
// IPv6); numeric addresses only, port 0..65535 (0: any free port). The error says what
// was expected.
absl::StatusOr<PeerAddress> ParseMetricsAddress(std::string_view text);

class MetricsHttpServer {
 public:
  using Render = std::function<std::string()>;

  static constexpr unsigned kConnectionLimit = 32;
  static constexpr absl::Duration kConnectionTimeout = absl::Seconds(5);
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

  // Whether this build has libmicrohttpd.
  static bool Available();

  explicit MetricsHttpServer(Render render) : render_(std::move(render)) {}
  ~MetricsHttpServer();  // Stop()
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // Binds and listens on `address` (from ParseMetricsAddress; the unspecified IPv6
  // address "::" listens on IPv4 too). Errors name address and port.
  absl::Status Listen(const PeerAddress& requested);
  // The bound port (after Listen).
  uint16_t port() const { return port_; }
  // Starts the daemon and its thread on the listening socket.
  absl::Status Start();
  void Stop();

  // The answer to one request (the daemon's thread; public for the handler).
  struct Answer {
    unsigned status = 200;
    std::string body;
    bool metrics = false;  // the body is the exposition (Content-Type kContentType)
  };
  Answer Respond(std::string_view method, std::string_view url);

 private:
  const Render render_;
  UniqueFd listen_fd_;  // until Start() hands it to the daemon
  bool v6_ = false;
  uint16_t port_ = 0;
  MHD_Daemon* daemon_ = nullptr;
};

}  // namespace localnfs::server
