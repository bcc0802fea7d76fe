#include "common/peer_address.h"

#include <arpa/inet.h>
#include <string.h>

#include "absl/strings/str_cat.h"

namespace localnfs {
namespace {

bool IsMappedV4(const sockaddr_in6& a) { return IN6_IS_ADDR_V4MAPPED(&a.sin6_addr); }

}  // namespace

PeerAddress PeerAddress::FromSockaddr(const sockaddr* sa, socklen_t len) {
  PeerAddress p;
  if (len > sizeof(p.addr)) len = sizeof(p.addr);
  memcpy(&p.addr, sa, len);
  p.len = len;
  return p;
}

bool PeerAddress::Parse(const std::string& host, uint16_t port, PeerAddress* out) {
  PeerAddress p;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&p.addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&p.addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    p.len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    p.len = sizeof(sockaddr_in6);
  } else {
    return false;
  }
  *out = p;
  return true;
}

uint16_t PeerAddress::port() const {
  if (addr.ss_family == AF_INET)
    return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
  return 0;
}

bool PeerAddress::IsV4() const {
  if (addr.ss_family == AF_INET) return true;
  if (addr.ss_family == AF_INET6)
    return IsMappedV4(*reinterpret_cast<const sockaddr_in6*>(&addr));
  return false;
}

std::string PeerAddress::AddressBytes() const {
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    return std::string(reinterpret_cast<const char*>(&a->sin_addr), 4);
  }
  if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    const char* bytes = reinterpret_cast<const char*>(&a->sin6_addr);
    if (IsMappedV4(*a)) return std::string(bytes + 12, 4);
    return std::string(bytes, 16);
  }
  return std::string();
}

std::string PeerAddress::HostText() const {
  std::string bytes = AddressBytes();
  char buf[INET6_ADDRSTRLEN] = "?";
  if (bytes.size() == 4)
    inet_ntop(AF_INET, bytes.data(), buf, sizeof(buf));
  else if (bytes.size() == 16)
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
  return buf;
}

std::string PeerAddress::ToString() const {
  if (IsV4()) return absl::StrCat(HostText(), ":", port());
  return absl::StrCat("[", HostText(), "]:", port());
}

}  // namespace localnfs
