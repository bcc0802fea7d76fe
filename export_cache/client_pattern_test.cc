#include <netdb.h>
#include <string.h>

#include <string>

#include "export_cache/client_pattern.h"
#include "gtest/gtest.h"

namespace localnfs::exports {
namespace {

PeerAddress Peer(const std::string& text) {
  PeerAddress p;
  EXPECT_TRUE(PeerAddress::Parse(text, 1023, &p)) << text;
  return p;
}

ClientPattern Pattern(const std::string& text) {
  absl::StatusOr<ClientPattern> p = ParseClientPattern(text);
  EXPECT_TRUE(p.ok()) << text << ": " << p.status();
  return p.ok() ? *p : ClientPattern();
}

TEST(ClientPatternTest, AnyoneMatchesEveryPeer) {
  ClientPattern p = Pattern("*");
  EXPECT_EQ(p.kind, ClientPattern::Kind::kAnyone);
  EXPECT_TRUE(p.Matches(Peer("10.0.0.1")));
  EXPECT_TRUE(p.Matches(Peer("::1")));
}

TEST(ClientPatternTest, IPv4Address) {
  ClientPattern p = Pattern("192.168.1.20");
  EXPECT_EQ(p.kind, ClientPattern::Kind::kAddress);
  EXPECT_EQ(p.address.size(), 4u);
  EXPECT_TRUE(p.Matches(Peer("192.168.1.20")));
  EXPECT_FALSE(p.Matches(Peer("192.168.1.21")));
}

TEST(ClientPatternTest, IPv4RuleMatchesMappedPeerOnDualStackSocket) {
  EXPECT_TRUE(Pattern("192.168.1.20").Matches(Peer("::ffff:192.168.1.20")));
  EXPECT_TRUE(Pattern("192.168.0.0/16").Matches(Peer("::ffff:192.168.7.7")));
  EXPECT_FALSE(Pattern("192.168.0.0/16").Matches(Peer("::ffff:192.169.7.7")));
}

TEST(ClientPatternTest, MappedRuleIsTheIPv4Rule) {
  ClientPattern addr = Pattern("::ffff:10.1.2.3");
  EXPECT_EQ(addr.address.size(), 4u);
  EXPECT_TRUE(addr.Matches(Peer("10.1.2.3")));
  ClientPattern net = Pattern("::ffff:10.0.0.0/104");
  EXPECT_EQ(net.address.size(), 4u);
  EXPECT_EQ(net.prefix_len, 8);
  EXPECT_TRUE(net.Matches(Peer("10.200.0.1")));
  EXPECT_FALSE(ParseClientPattern("::ffff:10.0.0.0/90").ok());
}

TEST(ClientPatternTest, IPv6Address) {
  ClientPattern p = Pattern("fd00::1");
  EXPECT_EQ(p.address.size(), 16u);
  EXPECT_TRUE(p.Matches(Peer("fd00:0::1")));
  EXPECT_FALSE(p.Matches(Peer("fd00::2")));
  EXPECT_FALSE(Pattern("::1").Matches(Peer("127.0.0.1")));
  EXPECT_FALSE(Pattern("127.0.0.1").Matches(Peer("::1")));
}

TEST(ClientPatternTest, IPv4Cidr) {
  ClientPattern p = Pattern("10.0.0.0/8");
  EXPECT_EQ(p.kind, ClientPattern::Kind::kCidr);
  EXPECT_TRUE(p.Matches(Peer("10.255.1.1")));
  EXPECT_FALSE(p.Matches(Peer("11.0.0.1")));
  EXPECT_FALSE(p.Matches(Peer("fd00::1")));
  ClientPattern odd = Pattern("172.16.0.0/12");
  EXPECT_TRUE(odd.Matches(Peer("172.31.255.255")));
  EXPECT_FALSE(odd.Matches(Peer("172.32.0.0")));
  EXPECT_TRUE(Pattern("0.0.0.0/0").Matches(Peer("8.8.8.8")));
  EXPECT_TRUE(Pattern("10.1.2.3/32").Matches(Peer("10.1.2.3")));
  EXPECT_FALSE(Pattern("10.1.2.3/32").Matches(Peer("10.1.2.4")));
  // Host bits in the rule do not matter.
  EXPECT_TRUE(Pattern("10.1.2.3/8").Matches(Peer("10.9.9.9")));
}

TEST(ClientPatternTest, IPv4NetmaskForm) {
  ClientPattern p = Pattern("192.168.0.0/255.255.0.0");
  EXPECT_EQ(p.kind, ClientPattern::Kind::kCidr);
  EXPECT_EQ(p.prefix_len, 16);
  EXPECT_TRUE(p.Matches(Peer("192.168.44.1")));
  EXPECT_FALSE(p.Matches(Peer("192.169.0.1")));
  EXPECT_EQ(Pattern("10.0.0.0/255.255.255.255").prefix_len, 32);
  EXPECT_EQ(Pattern("10.0.0.0/0.0.0.0").prefix_len, 0);
}

TEST(ClientPatternTest, IPv6Cidr) {
  ClientPattern p = Pattern("fd00:1:2:3::/64");
  EXPECT_TRUE(p.Matches(Peer("fd00:1:2:3:aaaa::1")));
  EXPECT_FALSE(p.Matches(Peer("fd00:1:2:4::1")));
  EXPECT_FALSE(p.Matches(Peer("10.0.0.1")));
  ClientPattern odd = Pattern("fd00::/7");
  EXPECT_TRUE(odd.Matches(Peer("fc12::1")));
  EXPECT_FALSE(odd.Matches(Peer("fe80::1")));
}

TEST(ClientPatternTest, HostNameResolvesAtParseTime) {
  ClientPattern p = Pattern("localhost");
  EXPECT_EQ(p.kind, ClientPattern::Kind::kHostName);
  ASSERT_FALSE(p.addresses.empty());
  EXPECT_TRUE(p.Matches(Peer("127.0.0.1")));
  EXPECT_TRUE(p.Matches(Peer("::ffff:127.0.0.1")));
  EXPECT_FALSE(p.Matches(Peer("10.0.0.1")));
}

TEST(ClientPatternTest, UnresolvableHostIsKeptAndNeverMatches) {
  absl::StatusOr<ClientPattern> p = ParseClientPattern("no-such-host.invalid");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->kind, ClientPattern::Kind::kHostName);
  EXPECT_TRUE(p->addresses.empty());
  EXPECT_FALSE(p->Matches(Peer("127.0.0.1")));
}

// The reverse name of 127.0.0.1 on this machine, if the resolver has one.
std::string LoopbackName() {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  char host[NI_MAXHOST];
  if (getnameinfo(reinterpret_cast<sockaddr*>(&sin), sizeof(sin), host, sizeof(host),
                  nullptr, 0, NI_NAMEREQD) != 0)
    return "";
  return host;
}

TEST(ClientPatternTest, WildcardMatchesReverseName) {
  const std::string name = LoopbackName();
  if (name.empty()) GTEST_SKIP() << "no reverse name for 127.0.0.1 here";
  ClientPattern star = Pattern(name.substr(0, 1) + "*");
  EXPECT_EQ(star.kind, ClientPattern::Kind::kWildcardName);
  EXPECT_TRUE(star.Matches(Peer("127.0.0.1")));
  EXPECT_TRUE(star.Matches(Peer("::ffff:127.0.0.1")));
  std::string upper = name;
  for (char& c : upper) c = toupper(c);
  upper.back() = '?';
  EXPECT_TRUE(Pattern(upper).Matches(Peer("127.0.0.1")));  // case-insensitive, '?'
  EXPECT_FALSE(Pattern("*.example.com").Matches(Peer("127.0.0.1")));
}

TEST(ClientPatternTest, WildcardNeverMatchesPeerWithoutName) {
  // TEST-NET-1 has no PTR record anywhere.
  EXPECT_FALSE(Pattern("*").kind == ClientPattern::Kind::kWildcardName);
  EXPECT_FALSE(Pattern("*.example.com").Matches(Peer("192.0.2.1")));
}

TEST(ClientPatternTest, BadPatterns) {
  EXPECT_FALSE(ParseClientPattern("").ok());
  EXPECT_FALSE(ParseClientPattern("@netgroup").ok());
  EXPECT_FALSE(ParseClientPattern("10.0.0.0/-1").ok());
  EXPECT_FALSE(ParseClientPattern("10.0.0.0/+8").ok());
  EXPECT_FALSE(ParseClientPattern("host/8").ok());
}

}  // namespace
}  // namespace localnfs::exports
