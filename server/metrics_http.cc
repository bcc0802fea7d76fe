// server/metrics_http.cc — see metrics_http.h.
#include "server/metrics_http.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <charconv>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/rcu.h"
#include "common/release_queue.h"
#include "common/status.h"

#if LOCALNFS_HAVE_MICROHTTPD
#include <microhttpd.h>
#endif

namespace localnfs::server {

absl::StatusOr<PeerAddress> ParseMetricsAddress(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics=", absl::string_view(text.data(), text.size()), ": ",
        absl::string_view(why.data(), why.size()),
        " (expected ADDR:PORT, [IPV6-ADDR]:PORT or :PORT; numeric addresses, port 0 = any)"));
  };
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return bad("no ']:' after the IPv6 address");
    host = std::string(text.substr(1, close - 1));
    if (host.find(':') == std::string::npos) return bad("brackets are for IPv6 addresses");
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    host = std::string(text.substr(0, colon));
    if (host.find(':') != std::string::npos) return bad("write an IPv6 address in brackets");
    port_text = text.substr(colon + 1);
  }
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535)
    return bad("not a port");
  PeerAddress out;
  if (host.empty()) host = "::";  // every interface, IPv4 too (Listen)
  if (!PeerAddress::Parse(host, static_cast<uint16_t>(port), &out))
    return bad(absl::StrCat("'", host, "' is not a numeric IP address"));
  return out;
}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

absl::Status MetricsHttpServer::Listen(const PeerAddress& requested) {
  PeerAddress address = requested;
  UniqueFd fd(socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd && errno == EAFNOSUPPORT && address.family() == AF_INET6 &&
      IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6*>(&address.addr)->sin6_addr)) {
    // ":PORT" on a host without IPv6: every IPv4 interface.
    PeerAddress::Parse("0.0.0.0", address.port(), &address);
    fd.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  }
  const std::string where = address.ToString();
  v6_ = address.family() == AF_INET6;
  if (!fd) return ErrnoToStatus(errno, absl::StrCat("metrics: socket for ", where));
  const int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (v6_) {
    // "::" (":PORT") listens on IPv4 too; a named IPv6 address only on itself.
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&address.addr);
    const int v6only = IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr) ? 0 : 1;
    setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
  }
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&address.addr), address.len) != 0)
    return ErrnoToStatus(errno, absl::StrCat("metrics: bind ", where));
  if (listen(fd.get(), 64) != 0)
    return ErrnoToStatus(errno, absl::StrCat("metrics: listen on ", where));
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len) != 0)
    return ErrnoToStatus(errno, absl::StrCat("metrics: getsockname of ", where));
  port_ = PeerAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&bound), len).port();
  listen_fd_ = std::move(fd);
  return absl::OkStatus();
}

MetricsHttpServer::Answer MetricsHttpServer::Respond(std::string_view method,
                                                     std::string_view url) {
  if (method != "GET" && method != "HEAD") return {405, "only GET and HEAD\n", false};
  if (url != "/metrics") return {404, "not found: try /metrics\n", false};
  // The render function may list RCU-published tables and drop references: this
  // thread is registered for the call, and what it deferred is queued before it leaves.
  std::string body;
  {
    RcuThread rcu_registration;
    body = render_();
    FlushThisThread();
  }
  return {200, std::move(body), true};
}

#if LOCALNFS_HAVE_MICROHTTPD

namespace {

void LogFromMhd(void*, const char* format, va_list args) {
  char line[512];
  vsnprintf(line, sizeof(line), format, args);
  std::string_view text(line);
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  LOG_WARNING("metrics: %s", text);
}

// libmicrohttpd's access handler: called once when the headers are in (*request is
// null), again for each piece of a body (thrown away), and a last time to answer.
MHD_Result HandleRequest(void* cls, MHD_Connection* connection, const char* url,
                         const char* method, const char* /*version*/,
                         const char* /*upload_data*/, size_t* upload_data_size,
                         void** request) {
  static int headers_seen;
  if (*request == nullptr) {
    *request = &headers_seen;
    return MHD_YES;
  }
  if (*upload_data_size != 0) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  auto* self = static_cast<MetricsHttpServer*>(cls);
  MetricsHttpServer::Answer answer = self->Respond(method, url);
  MHD_Response* response = MHD_create_response_from_buffer(
      answer.body.size(), answer.body.data(), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  const std::string content_type(answer.metrics ? MetricsHttpServer::kContentType
                                                : "text/plain; charset=utf-8");
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type.c_str());
  if (answer.status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  const MHD_Result queued = MHD_queue_response(connection, answer.status, response);
  MHD_destroy_response(response);
  return queued;
}

}  // namespace

bool MetricsHttpServer::Available() { return true; }

absl::Status MetricsHttpServer::Start() {
  if (!listen_fd_) return absl::FailedPreconditionError("metrics: Listen() first");
  const unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG |
                         (v6_ ? MHD_USE_IPv6 : 0);
  // The daemon's from here on: MHD_stop_daemon closes it. (Should the start fail, one
  // fd may stay open: localnfsd then exits.)
  const int fd = listen_fd_.release();
  daemon_ = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &HandleRequest, this,
      MHD_OPTION_EXTERNAL_LOGGER, &LogFromMhd, nullptr,  // first: startup messages too
      MHD_OPTION_LISTEN_SOCKET, fd,
      MHD_OPTION_CONNECTION_LIMIT, kConnectionLimit,
      MHD_OPTION_CONNECTION_TIMEOUT,
      static_cast<unsigned>(absl::ToInt64Seconds(kConnectionTimeout)),
      MHD_OPTION_END);
  if (daemon_ == nullptr)
    return absl::InternalError(
        absl::StrCat("metrics: libmicrohttpd did not start on port ", port_));
  return absl::OkStatus();
}

void MetricsHttpServer::Stop() {
  if (daemon_ != nullptr) {
    MHD_stop_daemon(daemon_);  // joins its thread, closes every connection and the socket
    daemon_ = nullptr;
  }
  listen_fd_.reset();
}

#else  // !LOCALNFS_HAVE_MICROHTTPD

bool MetricsHttpServer::Available() { return false; }

absl::Status MetricsHttpServer::Start() {
  return absl::UnimplementedError(
      "--metrics: this localnfsd was built without libmicrohttpd (apt-get install "
      "libmicrohttpd-dev, then rebuild)");
}

void MetricsHttpServer::Stop() { listen_fd_.reset(); }

#endif  // LOCALNFS_HAVE_MICROHTTPD

}  // namespace localnfs::server
