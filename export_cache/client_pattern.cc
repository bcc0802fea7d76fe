// export_cache/client_pattern.cc — see client_pattern.h: client patterns, parsing ("*",
// address, CIDR / netmask, wildcard name, host name) and matching a peer against them
// (svcauth_unix's job in the kernel).
//
// Addresses are compared as the network-order bytes of PeerAddress::AddressBytes(),
// which reports a v4-mapped IPv6 peer as its 4 IPv4 bytes; rules are normalised the
// same way when parsed, so an IPv4 rule matches a client on a dual-stack socket.
#include "export_cache/client_pattern.h"

#include <arpa/inet.h>
#include <fnmatch.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

#include <algorithm>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/log.h"

namespace localnfs::exports {
namespace {

// Numeric address → 4 or 16 bytes; a v4-mapped IPv6 address becomes its 4 bytes.
std::optional<std::string> ParseAddressBytes(const std::string& text) {
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1)
    return std::string(reinterpret_cast<const char*>(&v4), 4);
  in6_addr v6;
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    const char* bytes = reinterpret_cast<const char*>(&v6);
    if (IN6_IS_ADDR_V4MAPPED(&v6)) return std::string(bytes + 12, 4);
    return std::string(bytes, 16);
  }
  return std::nullopt;
}

// "255.255.0.0" → 16; not a contiguous mask → nullopt.
std::optional<int> NetmaskPrefix(const std::string& text) {
  in_addr mask;
  if (inet_pton(AF_INET, text.c_str(), &mask) != 1) return std::nullopt;
  uint32_t m = ntohl(mask.s_addr);
  int len = 0;
  while (len < 32 && (m & (0x80000000u >> len))) ++len;
  // Everything after the leading ones must be zero.
  if (len < 32 && (m << len) != 0) return std::nullopt;
  return len;
}

bool PrefixEquals(const std::string& a, const std::string& b, int prefix_len) {
  if (a.size() != b.size()) return false;
  const int full = prefix_len / 8;
  if (memcmp(a.data(), b.data(), full) != 0) return false;
  const int rest = prefix_len % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (static_cast<uint8_t>(a[full]) & mask) == (static_cast<uint8_t>(b[full]) & mask);
}

absl::StatusOr<ClientPattern> ParseCidr(const std::string& text, size_t slash) {
  ClientPattern p;
  p.kind = ClientPattern::Kind::kCidr;
  p.text = text;
  const std::string addr_text = text.substr(0, slash);
  const std::string len_text = text.substr(slash + 1);
  std::optional<std::string> addr = ParseAddressBytes(addr_text);
  if (!addr)
    return absl::InvalidArgumentError(
        absl::StrFormat("'%s' is not an IPv4 or IPv6 address", addr_text));
  // A v4-mapped IPv6 network (::ffff:10.0.0.0/104) is the IPv4 network it contains.
  const bool mapped = addr->size() == 4 && addr_text.find(':') != std::string::npos;
  const int max_len = addr->size() == 4 ? 32 : 128;
  int len;
  if (addr->size() == 4 && !mapped && len_text.find('.') != std::string::npos) {
    std::optional<int> prefix = NetmaskPrefix(len_text);
    if (!prefix)
      return absl::InvalidArgumentError(
          absl::StrFormat("'%s' is not a contiguous netmask", len_text));
    len = *prefix;
  } else if (!absl::SimpleAtoi(len_text, &len) || len_text.empty() ||
             !absl::ascii_isdigit(len_text[0])) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bad prefix length '%s'", len_text));
  } else if (mapped) {
    if (len < 96 || len > 128)
      return absl::InvalidArgumentError(absl::StrFormat(
          "prefix length %d out of range 96..128 for a v4-mapped network", len));
    len -= 96;
  } else if (len < 0 || len > max_len) {
    return absl::InvalidArgumentError(
        absl::StrFormat("prefix length %d out of range 0..%d", len, max_len));
  }
  p.address = *std::move(addr);
  p.prefix_len = len;
  return p;
}

// Every address `name` resolves to (deduplicated, v4-mapped folded to IPv4).
std::vector<std::string> ResolveName(const std::string& name, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  int rc = getaddrinfo(name.c_str(), nullptr, &hints, &result);
  std::vector<std::string> out;
  if (rc != 0) {
    *error = gai_strerror(rc);
    return out;
  }
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    std::string bytes =
        PeerAddress::FromSockaddr(ai->ai_addr, ai->ai_addrlen).AddressBytes();
    if (!bytes.empty() && std::find(out.begin(), out.end(), bytes) == out.end())
      out.push_back(std::move(bytes));
  }
  freeaddrinfo(result);
  return out;
}

// The peer's name by reverse DNS, lower case, without a trailing dot; nullopt when
// the resolver has no name for it (NI_NAMEREQD).
std::optional<std::string> ReverseName(const PeerAddress& peer) {
  // Look a v4-mapped peer up as plain IPv4: that is the name the PTR record carries.
  sockaddr_storage ss{};
  socklen_t len = 0;
  const std::string bytes = peer.AddressBytes();
  if (bytes.size() == 4) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    v4->sin_family = AF_INET;
    memcpy(&v4->sin_addr, bytes.data(), 4);
    len = sizeof(sockaddr_in);
  } else if (bytes.size() == 16) {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    v6->sin6_family = AF_INET6;
    memcpy(&v6->sin6_addr, bytes.data(), 16);
    len = sizeof(sockaddr_in6);
  } else {
    return std::nullopt;
  }
  char host[NI_MAXHOST];
  if (getnameinfo(reinterpret_cast<sockaddr*>(&ss), len, host, sizeof(host), nullptr, 0,
                  NI_NAMEREQD) != 0)
    return std::nullopt;
  std::string name = absl::AsciiStrToLower(host);
  if (!name.empty() && name.back() == '.') name.pop_back();
  return name;
}

// `name` is the memoised reverse lookup: filled on first need, shared across rules.
bool MatchesPeer(const ClientPattern& p, const PeerAddress& peer,
                 std::optional<std::optional<std::string>>* name) {
  switch (p.kind) {
    case ClientPattern::Kind::kAnyone:
      return true;
    case ClientPattern::Kind::kAddress:
      return peer.AddressBytes() == p.address;
    case ClientPattern::Kind::kCidr:
      return PrefixEquals(peer.AddressBytes(), p.address, p.prefix_len);
    case ClientPattern::Kind::kHostName: {
      const std::string bytes = peer.AddressBytes();
      return std::find(p.addresses.begin(), p.addresses.end(), bytes) !=
             p.addresses.end();
    }
    case ClientPattern::Kind::kWildcardName: {
      if (!name->has_value()) *name = ReverseName(peer);
      const std::optional<std::string>& n = **name;
      return n.has_value() && fnmatch(p.text.c_str(), n->c_str(), FNM_CASEFOLD) == 0;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<ClientPattern> ParseClientPattern(std::string_view text_view) {
  const std::string text(text_view);
  ClientPattern p;
  p.text = text;
  if (text.empty()) return absl::InvalidArgumentError("empty client");
  if (text == "*") return p;  // kAnyone
  if (text[0] == '@')
    return absl::InvalidArgumentError(
        absl::StrFormat("netgroup '%s' is not supported", text));
  if (size_t slash = text.find('/'); slash != std::string::npos)
    return ParseCidr(text, slash);
  if (std::optional<std::string> addr = ParseAddressBytes(text)) {
    p.kind = ClientPattern::Kind::kAddress;
    p.address = *std::move(addr);
    return p;
  }
  if (text.find_first_of("*?[") != std::string::npos) {
    p.kind = ClientPattern::Kind::kWildcardName;  // fnmatch, case-insensitive
    return p;
  }
  // A host name: resolved once, now. A name that does not resolve is kept (the file
  // stays valid while DNS is down) but never matches.
  p.kind = ClientPattern::Kind::kHostName;
  std::string error;
  p.addresses = ResolveName(text, &error);
  if (p.addresses.empty())
    LOG_WARNING("client '%s' does not resolve (%s); the rule will never match", text,
                error.empty() ? "no addresses" : error);
  return p;
}

bool ClientPattern::Matches(const PeerAddress& peer) const {
  std::optional<std::optional<std::string>> name;
  return MatchesPeer(*this, peer, &name);
}

const ClientRule* FirstMatchingRule(const std::vector<ClientRule>& rules,
                                    const PeerAddress& peer) {
  std::optional<std::optional<std::string>> name;  // reverse DNS, at most once
  for (const ClientRule& rule : rules)
    if (MatchesPeer(rule.pattern, peer, &name)) return &rule;
  return nullptr;
}

}  // namespace localnfs::exports
