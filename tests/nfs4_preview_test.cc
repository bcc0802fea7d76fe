// tests/nfs4_preview_test.cc — NFSv4 (program 100003 version 4) on a real
// localnfsd, over a raw TCP socket: with --nfs4-preview the COMPOUND program
// answers on the NFS port next to NFSv3 and LOCALIO, on the same connection;
// without it nothing of v4 is registered (a v4 call is PROG_MISMATCH 3..3, as
// before).
//
// COMPOUNDs are encoded and their replies decoded by hand (tests/wire.h's
// XdrOut / XdrIn, from RFC 8881 §16.2 / RFC 7863), sharing nothing with the
// server's rpcgen output.
#include <stdint.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/localnfsd.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

constexpr uint32_t kNfs4 = 4;
constexpr uint32_t kCompound = 1;
constexpr uint32_t kLocalioProg = 400122;
// RFC 8881 op numbers and status values the test uses.
constexpr uint32_t kOpGetfh = 10, kOpPutfh = 22, kOpPutrootfh = 24, kOpSequence = 53,
                   kOpIllegal = 10044;
constexpr uint32_t kNfs4Ok = 0, kErrMinorVersMismatch = 10021, kErrOpIllegal = 10044,
                   kErrOpNotInSession = 10071;

// A COMPOUND4args: tag, minorversion, then the ops (each an op number and its
// arguments, already encoded).
std::string CompoundArgs(const std::string& tag, uint32_t minor,
                         const std::vector<std::string>& ops) {
  XdrOut out;
  out.Str(tag).U32(minor).U32(static_cast<uint32_t>(ops.size()));
  std::string bytes = out.bytes();
  for (const std::string& op : ops) bytes += op;
  return bytes;
}
std::string Op(uint32_t op) { return XdrOut().U32(op).bytes(); }

struct CompoundReply {
  bool ok = false;  // the whole reply decoded, nothing left over
  uint32_t status = 0;
  std::string tag;
  std::vector<std::pair<uint32_t, uint32_t>> results;  // (op, status)
};

// Decodes a COMPOUND4res whose results are all errors, or OK for ops whose
// successful result is the status alone (PUTFH, PUTROOTFH) — what these tests
// send.
CompoundReply DecodeCompound(const std::string& body) {
  CompoundReply r;
  XdrIn in(body);
  uint32_t n = 0;
  if (!in.U32(&r.status) || !in.Opaque(&r.tag, 4096) || !in.U32(&n) || n > 1000) return r;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t op = 0, status = 0;
    if (!in.U32(&op) || !in.U32(&status)) return r;
    if (status == kNfs4Ok && op != kOpPutfh && op != kOpPutrootfh) return r;
    r.results.emplace_back(op, status);
  }
  r.ok = in.remaining() == 0;
  return r;
}

class Nfs4PreviewTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> extra) {
    std::vector<std::string> args = {"--export", root_.path() + ":rw,no_root_squash"};
    args.insert(args.end(), extra.begin(), extra.end());
    server_.emplace(std::move(args));
    ASSERT_TRUE(server_->Start());
    ASSERT_TRUE(conn_.Connect(server_->nfs_port()));
  }

  TempDir root_{"nfs4preview"};
  std::optional<ServerProcess> server_;
  WireConn conn_;
};

TEST_F(Nfs4PreviewTest, CompoundAnswersOnTheNfsPortBesideV3AndLocalio) {
  StartServer({"--nfs4-preview"});
  // NULL of v4, v3 and LOCALIO, on the one connection.
  RpcReply r = conn_.Call(kNfsProg, kNfs4, 0, "");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.accept_stat, kSuccess);
  EXPECT_EQ(r.results, "");
  r = conn_.Call(kNfsProg, 3, 0, "");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.accept_stat, kSuccess);
  r = conn_.Call(kLocalioProg, 1, 0, "");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.accept_stat, kSuccess);

  // A version the server lacks: the mismatch reports 3..4 now.
  r = conn_.Call(kNfsProg, 5, 0, "");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.accept_stat, kProgMismatch);
  EXPECT_EQ(r.low, 3u);
  EXPECT_EQ(r.high, 4u);

  // PUTROOTFH without SEQUENCE: not in a session (RFC 8881 §18.46.3); the tag
  // is echoed.
  r = conn_.Call(kNfsProg, kNfs4, kCompound,
                 CompoundArgs("preview", 1, {Op(kOpPutrootfh), Op(kOpGetfh)}));
  ASSERT_TRUE(r.ok) << r.error;
  ASSERT_EQ(r.accept_stat, kSuccess);
  CompoundReply c = DecodeCompound(r.results);
  ASSERT_TRUE(c.ok) << Hex(r.results);
  EXPECT_EQ(c.status, kErrOpNotInSession);
  EXPECT_EQ(c.tag, "preview");
  EXPECT_EQ(c.results,
            (std::vector<std::pair<uint32_t, uint32_t>>{{kOpPutrootfh, kErrOpNotInSession}}));

  // Minor version 0 (and 3): a mismatch with no results.
  for (uint32_t minor : {0u, 3u}) {
    r = conn_.Call(kNfsProg, kNfs4, kCompound, CompoundArgs("", minor, {Op(kOpPutrootfh)}));
    ASSERT_TRUE(r.ok) << r.error;
    c = DecodeCompound(r.results);
    ASSERT_TRUE(c.ok) << Hex(r.results);
    EXPECT_EQ(c.status, kErrMinorVersMismatch) << minor;
    EXPECT_TRUE(c.results.empty()) << minor;
  }

  // An op number nobody defines, and SEQUENCE after it is never reached.
  r = conn_.Call(kNfsProg, kNfs4, kCompound, CompoundArgs("", 2, {Op(99999), Op(kOpSequence)}));
  ASSERT_TRUE(r.ok) << r.error;
  c = DecodeCompound(r.results);
  ASSERT_TRUE(c.ok) << Hex(r.results);
  EXPECT_EQ(c.status, kErrOpIllegal);
  EXPECT_EQ(c.results, (std::vector<std::pair<uint32_t, uint32_t>>{{kOpIllegal, kErrOpIllegal}}));

  // The connection still serves NFSv3 afterwards.
  r = conn_.Call(kNfsProg, 3, 0, "");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.accept_stat, kSuccess);
  ASSERT_TRUE(server_->Stop());
}

TEST_F(Nfs4PreviewTest, WithoutTheFlagVersionFourIsNotThere) {
  StartServer({});
  RpcReply r = conn_.Call(kNfsProg, kNfs4, 0, "");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.accept_stat, kProgMismatch);
  EXPECT_EQ(r.low, 3u);
  EXPECT_EQ(r.high, 3u);
  r = conn_.Call(kLocalioProg, 1, 0, "");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.accept_stat, kSuccess);
  ASSERT_TRUE(server_->Stop());
}

}  // namespace
}  // namespace localnfs::testing
