// export_cache/client_pattern.h — client rules: who a rule of an export applies to (a
// ClientPattern: "*", an address, a CIDR or netmask, a host name or a wildcard name)
// and what it grants (ExportOptions), and matching a peer against an export's rules
// (svcauth_unix's job in the kernel; implemented in client_pattern.cc).
//
// Owns: nothing (values). Thread-safety: values; matching is stateless (a wildcard
// pattern may block on a reverse DNS lookup).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/peer_address.h"
#include "export_cache/export_options.h"

namespace localnfs::exports {

// Who a rule applies to: "*", a host name or address, "a.b.c.d/len" or "addr6/len",
// or a wildcard host name ("*.example.com" — matched against the peer's reverse DNS
// name only when the resolver gives one; on loopback tests use addresses).
// IPv4 rules match IPv4 peers on a dual-stack socket (::ffff:a.b.c.d); a v4-mapped
// IPv6 rule is stored as the IPv4 rule it means.
struct ClientPattern {
  enum class Kind { kAnyone, kAddress, kCidr, kWildcardName, kHostName };
  Kind kind = Kind::kAnyone;
  std::string text;     // as written
  std::string address;  // 4 or 16 network-order bytes (kAddress, kCidr)
  int prefix_len = 0;   // kCidr
  // kHostName: every address the name resolved to when it was parsed (4 or 16
  // bytes each). Empty when it did not resolve: the rule never matches.
  std::vector<std::string> addresses;
  // kWildcardName does a reverse DNS lookup of the peer (getnameinfo, may block);
  // the other kinds never touch the resolver.
  bool Matches(const PeerAddress& peer) const;
  friend bool operator==(const ClientPattern&, const ClientPattern&) = default;
};

struct ClientRule {
  ClientPattern pattern;
  ExportOptions options;
  friend bool operator==(const ClientRule&, const ClientRule&) = default;
};

// Parses one client pattern ("*", address, CIDR, netmask, wildcard or host name;
// host names are resolved now). The error message does not name a file or line.
absl::StatusOr<ClientPattern> ParseClientPattern(std::string_view text);

// The first of `rules` that matches `peer`, or nullptr. Reverse DNS is done at most
// once, and only if a wildcard rule is reached.
const ClientRule* FirstMatchingRule(const std::vector<ClientRule>& rules,
                                    const PeerAddress& peer);

}  // namespace localnfs::exports
