#include "rpc/message.h"

#include <string>

#include "gtest/gtest.h"
#include "rpc/client.h"

namespace localnfs::rpc {
namespace {

// Decodes `msg` as a call header.
HeaderCheck Decode(std::string msg, CallHeader* h) {
  size_t args_pos = 0;
  return DecodeCallHeader(msg, h, &args_pos);
}

std::string Words(std::initializer_list<uint32_t> words) {
  std::string s;
  for (uint32_t w : words) {
    for (int shift = 24; shift >= 0; shift -= 8)
      s.push_back(static_cast<char>(w >> shift));
  }
  return s;
}

CallAuth Sys(uint32_t uid, uint32_t gid, int ngroups, std::string machine = "host") {
  CallAuth a;
  a.flavor = AuthFlavor::kSys;
  a.cred.uid = uid;
  a.cred.gid = gid;
  for (int i = 0; i < ngroups; ++i) a.cred.groups.push_back(1000 + i);
  a.machine_name = std::move(machine);
  a.stamp = 7;
  return a;
}

TEST(CallHeaderTest, AuthNoneDecodesAsNobody) {
  CallHeader h;
  ASSERT_EQ(Decode(Client::EncodeCall(5, 100003, 3, 1, CallAuth{}, ""), &h),
            HeaderCheck::kOk);
  EXPECT_EQ(h.xid, 5u);
  EXPECT_EQ(h.prog, 100003u);
  EXPECT_EQ(h.vers, 3u);
  EXPECT_EQ(h.proc, 1u);
  EXPECT_EQ(h.flavor, AuthFlavor::kNone);
  EXPECT_EQ(h.cred.uid, kNobodyUid);
  EXPECT_EQ(h.cred.gid, kNobodyGid);
  EXPECT_TRUE(h.cred.groups.empty());
}

TEST(CallHeaderTest, ArgumentsStartRightAfterTheVerifier) {
  // Machine names of every padding (0..3 bytes), so that a reader that gets the
  // padding of an opaque wrong lands beside the arguments.
  for (const std::string name : {"", "a", "ab", "abc", "abcd", "abcde"}) {
    const std::string msg =
        Client::EncodeCall(1, 2, 3, 4, Sys(1000, 100, 2, name), "ARGSARGS");
    CallHeader h;
    size_t args_pos = 0;
    ASSERT_EQ(DecodeCallHeader(msg, &h, &args_pos), HeaderCheck::kOk) << name;
    EXPECT_EQ(msg.substr(args_pos), "ARGSARGS") << name;
    EXPECT_EQ(h.machine_name, name);
    EXPECT_EQ(h.cred.groups.size(), 2u);
  }
}

TEST(CallHeaderTest, AuthSysWithSixteenGroupsIsAccepted) {
  CallHeader h;
  ASSERT_EQ(Decode(Client::EncodeCall(1, 2, 3, 4, Sys(1000, 100, 16, "box"), ""), &h),
            HeaderCheck::kOk);
  EXPECT_EQ(h.flavor, AuthFlavor::kSys);
  EXPECT_EQ(h.cred.uid, 1000u);
  EXPECT_EQ(h.cred.gid, 100u);
  ASSERT_EQ(h.cred.groups.size(), 16u);
  EXPECT_EQ(h.cred.groups[15], 1015u);
  EXPECT_EQ(h.machine_name, "box");
}

TEST(CallHeaderTest, AuthSysWithSeventeenGroupsIsBadCred) {
  CallHeader h;
  EXPECT_EQ(Decode(Client::EncodeCall(1, 2, 3, 4, Sys(1, 1, 17), ""), &h),
            HeaderCheck::kBadCred);
  EXPECT_EQ(h.xid, 1u);
}

TEST(CallHeaderTest, AuthSysMachineNameOver255IsBadCred) {
  CallHeader h;
  EXPECT_EQ(
      Decode(Client::EncodeCall(1, 2, 3, 4, Sys(1, 1, 0, std::string(256, 'm')), ""), &h),
      HeaderCheck::kBadCred);
  EXPECT_EQ(
      Decode(Client::EncodeCall(1, 2, 3, 4, Sys(1, 1, 0, std::string(255, 'm')), ""), &h),
      HeaderCheck::kOk);
}

TEST(CallHeaderTest, AuthSysBodyWithTrailingBytesIsBadCred) {
  // stamp, name "", uid, gid, 0 gids, plus one stray word: body length 24.
  const std::string msg = Words({9, 0, 2, 7, 1, 0, /*cred*/ 1, 24, 0, 0, 5, 5, 0, 99,
                                 /*verf*/ 0, 0});
  CallHeader h;
  EXPECT_EQ(Decode(msg, &h), HeaderCheck::kBadCred);
}

TEST(CallHeaderTest, TruncatedAuthSysBodyIsBadCred) {
  const std::string msg = Words({9, 0, 2, 7, 1, 0, /*cred*/ 1, 8, 0, 0, /*verf*/ 0, 0});
  CallHeader h;
  EXPECT_EQ(Decode(msg, &h), HeaderCheck::kBadCred);
}

TEST(CallHeaderTest, CredentialLongerThan400IsBadCred) {
  std::string msg = Words({9, 0, 2, 7, 1, 0, 1, 404});
  msg += std::string(404, '\0') + Words({0, 0});
  CallHeader h;
  EXPECT_EQ(Decode(msg, &h), HeaderCheck::kBadCred);
}

TEST(CallHeaderTest, UnknownFlavorIsTooWeak) {
  const std::string msg = Words({9, 0, 2, 7, 1, 0, /*RPCSEC_GSS*/ 6, 0, 0, 0});
  CallHeader h;
  EXPECT_EQ(Decode(msg, &h), HeaderCheck::kTooWeak);
}

TEST(CallHeaderTest, TruncatedVerifierIsBadVerf) {
  const std::string msg = Words({9, 0, 2, 7, 1, 0, 0, 0, 0, 8, 1});
  CallHeader h;
  EXPECT_EQ(Decode(msg, &h), HeaderCheck::kBadVerf);
}

TEST(CallHeaderTest, RpcVersionThreeIsRpcMismatch) {
  CallHeader h;
  EXPECT_EQ(Decode(Words({77, 0, 3, 1, 1, 1, 0, 0, 0, 0}), &h),
            HeaderCheck::kRpcMismatch);
  EXPECT_EQ(h.xid, 77u);
}

TEST(CallHeaderTest, ReplyOrShortRecordIsDropped) {
  CallHeader h;
  EXPECT_EQ(Decode(Words({1, 1, 0, 0}), &h), HeaderCheck::kDrop);
  EXPECT_EQ(Decode(Words({1}), &h), HeaderCheck::kDrop);
  EXPECT_EQ(Decode("", &h), HeaderCheck::kDrop);
}

TEST(CallHeaderTest, TruncatedFixedHeaderIsGarbage) {
  CallHeader h;
  EXPECT_EQ(Decode(Words({4, 0}), &h), HeaderCheck::kGarbage);
  EXPECT_EQ(Decode(Words({4, 0, 2, 100003}), &h), HeaderCheck::kGarbage);
  EXPECT_EQ(h.xid, 4u);
}

// Encodes a reply with `fn` and decodes it back.
template <typename Fn>
RpcError RoundTrip(Fn fn, uint32_t* xid) {
  char buf[64];
  XDR x;
  xdrmem_create(&x, buf, sizeof(buf), XDR_ENCODE);
  EXPECT_TRUE(fn(&x));
  const u_int len = xdr_getpos(&x);
  xdr_destroy(&x);
  XDR in;
  xdrmem_create(&in, buf, len, XDR_DECODE);
  RpcError e;
  EXPECT_TRUE(DecodeReplyHeader(&in, xid, &e).ok());
  EXPECT_EQ(xdr_getpos(&in), len);  // nothing left over
  xdr_destroy(&in);
  return e;
}

TEST(ReplyHeaderTest, EveryReplyKindRoundTrips) {
  uint32_t xid = 0;
  RpcError e = RoundTrip(
      [](XDR* x) { return EncodeAcceptedReply(x, 11, AcceptStat::kSuccess); }, &xid);
  EXPECT_EQ(xid, 11u);
  EXPECT_TRUE(e.is_success());
  e = RoundTrip(
      [](XDR* x) { return EncodeAcceptedReply(x, 12, AcceptStat::kProgMismatch, 2, 4); },
      &xid);
  EXPECT_EQ(e.accept_stat, AcceptStat::kProgMismatch);
  EXPECT_EQ(e.low, 2u);
  EXPECT_EQ(e.high, 4u);
  e = RoundTrip([](XDR* x) { return EncodeRpcMismatchReply(x, 13); }, &xid);
  EXPECT_EQ(e.reply_stat, ReplyStat::kDenied);
  EXPECT_EQ(e.reject_stat, RejectStat::kRpcMismatch);
  EXPECT_EQ(e.low, 2u);
  EXPECT_EQ(e.high, 2u);
  e = RoundTrip([](XDR* x) { return EncodeAuthErrorReply(x, 14, AuthStat::kTooWeak); },
                &xid);
  EXPECT_EQ(e.reject_stat, RejectStat::kAuthError);
  EXPECT_EQ(e.auth_stat, AuthStat::kTooWeak);
}

TEST(RpcErrorStatusTest, PayloadCarriesExactValues) {
  RpcError e;
  e.accept_stat = AcceptStat::kProgMismatch;
  e.low = 1;
  e.high = 3;
  absl::Status s = RpcErrorToStatus(e);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("PROG_MISMATCH (low 1, high 3)"), std::string::npos);
  RpcError back;
  ASSERT_TRUE(GetRpcError(s, &back));
  EXPECT_EQ(back, e);
  EXPECT_FALSE(GetRpcError(absl::UnavailableError("x"), &back));
  EXPECT_TRUE(RpcErrorToStatus(RpcError{}).ok());
}

}  // namespace
}  // namespace localnfs::rpc
