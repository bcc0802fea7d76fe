// rpc/server_listener.cc — the rpc server's sockets before they are connections (the
// kernel's svcsock.c: svc_create_socket, svc_tcp_accept, svc_udp_recvfrom): binding the
// listening TCP socket and its UDP twin (Listen, before Start), arming them on the
// loop's epoll (Start), accepting connections with the connection limits applied at
// accept (max_connections, max_connections_per_client: EvictIdlest), and receiving UDP
// datagrams into work for the workers.
//
// Thread-safety: Bind/Listen run on the caller's thread before Start() (listeners_
// under mu_); Arm runs in Start(); Accept, EvictIdlest and ReadDatagrams run on the
// event-loop thread only (they change the loop's tables: conns_, conns_per_client_).
#include "rpc/server_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace localnfs::rpc {

absl::StatusOr<std::shared_ptr<Listener>> Server::Impl::Bind(const PeerAddress& addr,
                                                             bool udp, bool dual_stack) {
  const std::string where = addr.ToString();
  UniqueFd fd(::socket(
      addr.family(), (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Errno(errno, absl::StrCat("socket ", where));
  int one = 1, zero = 0;
  if (setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
    return Errno(errno, absl::StrCat("SO_REUSEADDR ", where));
  }
  if (dual_stack &&
      setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) != 0) {
    return Errno(errno, absl::StrCat("IPV6_V6ONLY ", where));
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr.addr), addr.len) != 0) {
    return Errno(errno, absl::StrCat("bind ", where));
  }
  if (!udp && ::listen(fd.get(), SOMAXCONN) != 0) {
    return Errno(errno, absl::StrCat("listen ", where));
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return Errno(errno, absl::StrCat("getsockname ", where));
  }
  return std::make_shared<Listener>(
      udp ? Pollable::Kind::kUdpSocket : Pollable::Kind::kTcpListener, std::move(fd),
      PeerAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len));
}

absl::StatusOr<uint16_t> Server::Impl::Listen(const std::string& address, uint16_t port,
                                              bool udp) {
  {
    absl::MutexLock l(&mu_);
    // Listeners are armed by Start(); adding one to a running loop is not needed by
    // anyone and would race with the loop's own listener table.
    if (state_ != State::kNew) {
      return absl::FailedPreconditionError("rpc server: Listen() must precede Start()");
    }
  }
  PeerAddress addr;
  bool dual_stack = false;
  if (address.empty()) {
    PeerAddress::Parse("::", port, &addr);
    dual_stack = true;
  } else if (!PeerAddress::Parse(address, port, &addr)) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address \"", address, "\" is not a numeric IP address"));
  }
  auto tcp = Bind(addr, /*udp=*/false, dual_stack);
  if (!tcp.ok() && address.empty() &&
      (StatusErrno(tcp.status()) == EAFNOSUPPORT ||
       StatusErrno(tcp.status()) == EADDRNOTAVAIL)) {
    // No IPv6 on this host: all interfaces means all IPv4 interfaces.
    PeerAddress::Parse("0.0.0.0", port, &addr);
    dual_stack = false;
    tcp = Bind(addr, false, false);
  }
  if (!tcp.ok()) return tcp.status();
  std::vector<std::shared_ptr<Listener>> bound = {*tcp};
  const uint16_t bound_port = (*tcp)->local.port();
  if (udp) {
    PeerAddress uaddr = addr;
    if (uaddr.family() == AF_INET) {
      reinterpret_cast<sockaddr_in*>(&uaddr.addr)->sin_port = htons(bound_port);
    } else {
      reinterpret_cast<sockaddr_in6*>(&uaddr.addr)->sin6_port = htons(bound_port);
    }
    ASSIGN_OR_RETURN(auto u, Bind(uaddr, /*udp=*/true, dual_stack));
    bound.push_back(std::move(u));
  }
  absl::MutexLock l(&mu_);
  for (auto& b : bound) listeners_.push_back(std::move(b));
  LOG_INFO("rpc: listening on %s (tcp%s)", (*tcp)->local.ToString(), udp ? ", udp" : "");
  return bound_port;
}

absl::Status Server::Impl::Arm(Listener* l) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = static_cast<Pollable*>(l);
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, l->fd.get(), &ev) != 0) {
    return Errno(errno, absl::StrCat("epoll_ctl ", l->local.ToString()));
  }
  return absl::OkStatus();
}

void Server::Impl::Accept(Listener* l) {
  for (int i = 0; i < kAcceptsPerWakeup; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    UniqueFd fd(accept4(l->fd.get(), reinterpret_cast<sockaddr*>(&ss), &len,
                        SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      const int err = errno;
      // Out of descriptors, the listener stays readable: log once a second and pause
      // briefly instead of spinning the loop (and the log) at full speed.
      if (uint64_t left_out = 0; accept_error_log_.Allow(&left_out)) {
        LOG_WARNING("rpc: accept on %s: %s (%d more since the last line)",
                    l->local.ToString(), strerror(err), left_out);
      }
      if (err == EMFILE || err == ENFILE) absl::SleepFor(absl::Milliseconds(1));
      return;
    }
    const PeerAddress peer =
        PeerAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    const std::string client = opts_.max_connections_per_client > 0
                                   ? peer.AddressBytes() : std::string();
    const char* full = nullptr;  // the limit that refuses it
    if (auto it = conns_per_client_.find(client);
        opts_.max_connections_per_client > 0 && it != conns_per_client_.end() &&
        it->second >= opts_.max_connections_per_client && !EvictIdlest(peer, true)) {
      full = "--max-connections-per-client";
    } else if (conns_.size() >= std::max<uint32_t>(1, opts_.max_connections) &&
               !EvictIdlest(peer, false)) {
      full = "--max-connections";
    }
    if (full != nullptr) {
      // Every connection is busy. Closing at once (fd goes out of scope) tells the
      // client now; leaving it in the backlog would leave it hanging and the listener
      // readable (a busy loop).
      counters_.connections_refused.fetch_add(1, std::memory_order_relaxed);
      if (uint64_t left_out = 0; refused_log_.Allow(&left_out)) {
        LOG_WARNING(
            "rpc: %u connections open (%s), none idle: refused %u new connection(s), "
            "the latest from %s",
            conns_.size(), full, left_out + 1, peer.ToString());
      }
      continue;
    }
    sockaddr_storage ls{};
    socklen_t llen = sizeof(ls);
    getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ls), &llen);
    int one = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ZerocopyOptions zerocopy{false, opts_.zerocopy_min_bytes,
                             opts_.zerocopy == ZerocopyMode::kAlways};
    // Fails on kernels (or sockets) without MSG_ZEROCOPY: then sends copy, as always.
    zerocopy.enabled = opts_.zerocopy != ZerocopyMode::kOff &&
                       setsockopt(fd.get(), SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) == 0;
    auto conn = std::make_shared<Connection>(
        next_conn_id_.fetch_add(1), std::move(fd), peer,
        PeerAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ls), llen),
        opts_.max_record_size, epoll_fd_.get(),
        ConnectionLimits{opts_.max_reply_bytes_per_connection,
                         std::max<uint32_t>(1, opts_.max_requests_per_connection), &load_,
                         static_cast<int64_t>(opts_.max_requests_total)},
        zerocopy);
    if (!conn->Register()) {
      LOG_WARNING("rpc: epoll_ctl for connection from %s: %s", peer.ToString(),
                  strerror(errno));
      continue;
    }
    counters_.connections_accepted.fetch_add(1, std::memory_order_relaxed);
    if (opts_.max_connections_per_client > 0) ++conns_per_client_[client];
    conns_.emplace(conn.get(), std::move(conn));
  }
}

bool Server::Impl::EvictIdlest(const PeerAddress& peer, bool same_client) {
  const std::string client = same_client ? peer.AddressBytes() : std::string();
  Connection* victim = nullptr;
  absl::Time oldest = absl::InfiniteFuture();
  for (auto& [c, ref] : conns_) {
    absl::Time since;
    if (c->IdleForEviction(&since) && since < oldest &&
        (!same_client || c->info.peer().AddressBytes() == client)) {
      oldest = since;
      victim = c;
    }
  }
  if (victim == nullptr) return false;
  counters_.connections_evicted.fetch_add(1, std::memory_order_relaxed);
  if (uint64_t left_out = 0; evicted_log_.Allow(&left_out)) {
    LOG_WARNING(
        "rpc: %u connections open (%s): closed the one idle longest (from %s, idle for "
        "%s) to admit one from %s (%u closed so since the last line)",
        same_client ? conns_per_client_[client] : conns_.size(),
        same_client ? "--max-connections-per-client" : "--max-connections",
        victim->info.peer().ToString(),
        absl::FormatDuration(absl::Trunc(absl::Now() - oldest, absl::Milliseconds(1))),
        peer.ToString(), left_out + 1);
  }
  CloseConnection(victim, false);
  return true;
}

void Server::Impl::ReadDatagrams(const std::shared_ptr<Listener>& l) {
  for (int i = 0; i < kDatagramsPerWakeup; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    const ssize_t n = recvfrom(l->fd.get(), read_buf_.data(), kMaxDatagram, MSG_TRUNC,
                               reinterpret_cast<sockaddr*>(&ss), &len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN, or an ICMP error reported on the socket: nothing to read
    }
    if (static_cast<size_t>(n) > kMaxDatagram ||
        static_cast<size_t>(n) > opts_.max_record_size) {
      continue;  // truncated: cannot be a valid call
    }
    {
      absl::MutexLock lock(&work_mu_);
      if (work_.size() >= opts_.max_queued_datagrams) continue;
    }
    Work w;
    w.udp = l;
    w.udp_peer = PeerAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    w.datagram.assign(read_buf_.data(), static_cast<size_t>(n));
    Enqueue(std::move(w));
  }
}

}  // namespace localnfs::rpc
