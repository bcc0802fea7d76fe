// common/peer_address.h — a socket address of a peer (client) as a value.
//
// Owns: a copy of the sockaddr. Used by rpc/ (connections), export_cache/ (client
// rule matching) and server/ (logging, MOUNT DUMP).
// Thread-safety: a plain value.
#pragma once

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include <string>

namespace localnfs {

struct PeerAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;

  static PeerAddress FromSockaddr(const sockaddr* sa, socklen_t len);
  // Parses a numeric IPv4/IPv6 address ("127.0.0.1", "::1"), port 0 unless given.
  static bool Parse(const std::string& host, uint16_t port, PeerAddress* out);

  int family() const { return addr.ss_family; }
  uint16_t port() const;
  // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is reported as IPv4, so that client
  // rules written for IPv4 match dual-stack listeners.
  bool IsV4() const;
  // The 4 (IPv4, also for mapped addresses) or 16 address bytes in network order.
  std::string AddressBytes() const;
  // "127.0.0.1" or "::1" (no port).
  std::string HostText() const;
  // "127.0.0.1:1234" / "[::1]:1234".
  std::string ToString() const;
};

}  // namespace localnfs
