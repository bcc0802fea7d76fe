// tests/nfs4_preview_test.cc — NFSv4 (program 100003 version 4) on a real
// localnfsd, over a raw TCP socket: by default the COMPOUND program answers on the
// NFS port next to NFSv3 and LOCALIO, on the same connection (--nfs4-preview, the
// flag of the preview, is still accepted and means the same); with --nonfs4 nothing
// of v4 is registered (a v4 call is PROG_MISMATCH 3..3). Sessions: EXCHANGE_ID →
// CREATE_SESSION → SEQUENCE, the slot's kept reply sent again byte for byte (after
// the XID) on the same and on another connection, the slot and session errors,
// REQ_TOO_BIG, a second client, BIND_CONN_TO_SESSION, DESTROY_SESSION /
// DESTROY_CLIENTID, RECLAIM_COMPLETE once, a courtesy client past its lease (served
// again; loses to a conflicting principal), --lease-time's range. The namespace
// changes (CREATE, RENAME, LINK, SETATTR, REMOVE) reach the exported directory.
//
// COMPOUNDs are encoded and their replies decoded by hand (tests/wire.h's
// XdrOut / XdrIn, from RFC 8881 §16.2 / RFC 7863), sharing nothing with the
// server's rpcgen output.
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/child.h"
#include "tests/nfs4_wire.h"
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
                   kErrOpNotInSession = 10071, kErrBadHandle = 10001, kErrRofs = 30;
constexpr uint32_t kOpLookup = 15, kOpRemove = 28;

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

// RFC 8881 op numbers of the namespace changes.
constexpr uint32_t kOpCreate = 6, kOpLink = 11, kOpRename = 29, kOpSavefh = 32, kOpSetattr = 34;

// RFC 8881 op numbers and values of the session tests.
constexpr uint32_t kOpBindConn = 41, kOpExchangeId = 42, kOpCreateSession = 43,
                   kOpDestroySession = 44, kOpDestroyClientid = 57, kOpReclaimComplete = 58;
constexpr uint32_t kErrBadSession = 10052, kErrBadSlot = 10053, kErrSeqMisordered = 10063,
                   kErrReqTooBig = 10065, kErrCompleteAlready = 10054, kErrClientidBusy = 10074,
                   kErrStaleClientid = 10022, kErrClidInuse = 10017;
constexpr uint32_t kFlagUseNonPnfs = 0x10000, kFlagConfirmedR = 0x80000000u;

std::string ExchangeId(const std::string& owner, const std::string& verifier = "verifier") {
  // client_owner4, flags, SP4_NONE, no implementation id.
  return XdrOut().U32(kOpExchangeId).Fixed(verifier).Opaque(owner).U32(0).U32(0).U32(0).bytes();
}
std::string ChannelAttrs(uint32_t maxreq, uint32_t maxresp, uint32_t maxresp_cached,
                         uint32_t maxops, uint32_t maxreqs) {
  return XdrOut()
      .U32(0)
      .U32(maxreq)
      .U32(maxresp)
      .U32(maxresp_cached)
      .U32(maxops)
      .U32(maxreqs)
      .U32(0)
      .bytes();
}
std::string CreateSession(uint64_t clientid, uint32_t seq, uint32_t maxreq = 1 << 20,
                          uint32_t maxreqs = 16) {
  return XdrOut().U32(kOpCreateSession).U64(clientid).U32(seq).U32(0).bytes() +
         ChannelAttrs(maxreq, 1 << 20, 4096, 16, maxreqs) + ChannelAttrs(4096, 4096, 0, 2, 1) +
         XdrOut().U32(0x40000000).U32(1).U32(0).bytes();  // cb program, AUTH_NONE
}
std::string Sequence(const std::string& sessionid, uint32_t seqid, uint32_t slot = 0) {
  return XdrOut().U32(kOpSequence).Fixed(sessionid).U32(seqid).U32(slot).U32(slot).U32(0).bytes();
}
std::string WithSession(uint32_t op, const std::string& sessionid) {
  return XdrOut().U32(op).Fixed(sessionid).bytes();
}

// A COMPOUND4res decoded op by op, the successful results of the ops the session
// tests send included.
struct SessionReply {
  bool ok = false;
  uint32_t status = 0;
  std::vector<std::pair<uint32_t, uint32_t>> results;  // (op, status)
  uint64_t clientid = 0;
  uint32_t sequenceid = 0, flags = 0;  // EXCHANGE_ID's, or CREATE_SESSION's
  std::string server_owner;
  std::string sessionid;
  uint32_t fore_maxops = 0, fore_maxreqs = 0;
  uint32_t highest_slotid = 0;
  std::string fh;
  uint32_t bind_dir = 0;
  // change_info4 of CREATE, REMOVE, LINK (one) and RENAME (two): before, after.
  std::vector<std::pair<uint64_t, uint64_t>> cinfo;
  uint32_t attrsset = 0;  // the last word of CREATE's or SETATTR's bitmap
};

bool ReadCinfo(XdrIn& in, SessionReply* r) {
  uint32_t atomic = 0;
  uint64_t before = 0, after = 0;
  if (!in.U32(&atomic) || !in.U64(&before) || !in.U64(&after)) return false;
  r->cinfo.emplace_back(before, after);
  return true;
}

bool SkipChannelAttrs(XdrIn& in, uint32_t* maxops, uint32_t* maxreqs) {
  uint32_t v = 0, n = 0;
  for (int i = 0; i < 4; ++i)
    if (!in.U32(&v)) return false;
  if (!in.U32(maxops) || !in.U32(maxreqs) || !in.U32(&n) || n > 1) return false;
  return n == 0 || in.U32(&v);
}

SessionReply DecodeSession(const std::string& body) {
  SessionReply r;
  XdrIn in(body);
  std::string tag;
  uint32_t n = 0;
  if (!in.U32(&r.status) || !in.Opaque(&tag, 4096) || !in.U32(&n) || n > 1000) return r;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t op = 0, status = 0, v = 0;
    if (!in.U32(&op) || !in.U32(&status)) return r;
    r.results.emplace_back(op, status);
    // SETATTR4res: the bitmap of the attributes set follows whatever the status.
    if (op == kOpSetattr) {
      if (!in.U32(&v) || v > 3) return r;
      for (uint32_t w = 0; w < v; ++w)
        if (!in.U32(&r.attrsset)) return r;
      continue;
    }
    if (status != kNfs4Ok) continue;
    std::string scope;
    uint64_t minor = 0;
    switch (op) {
      case kOpExchangeId:
        if (!in.U64(&r.clientid) || !in.U32(&r.sequenceid) || !in.U32(&r.flags) || !in.U32(&v) ||
            v != 0 || !in.U64(&minor) || !in.Opaque(&r.server_owner, 1024) ||
            !in.Opaque(&scope, 1024) || !in.U32(&v) || v != 0) {
          return r;
        }
        break;
      case kOpCreateSession: {
        // sessionid4 is fixed: 16 bytes, read as four words.
        std::string id;
        for (int w = 0; w < 4; ++w) {
          if (!in.U32(&v)) return r;
          for (int b = 3; b >= 0; --b) id.push_back(static_cast<char>(v >> (8 * b)));
        }
        r.sessionid = id;
      }
        if (!in.U32(&r.sequenceid) || !in.U32(&r.flags) ||
            !SkipChannelAttrs(in, &r.fore_maxops, &r.fore_maxreqs)) {
          return r;
        }
        {
          uint32_t bops = 0, breqs = 0;
          if (!SkipChannelAttrs(in, &bops, &breqs)) return r;
        }
        break;
      case kOpSequence:
        if (!in.Skip(16)) return r;
        for (int k = 0; k < 5; ++k) {
          if (!in.U32(&v)) return r;
          if (k == 2) r.highest_slotid = v;
        }
        break;
      case kOpGetfh:
        if (!in.Opaque(&r.fh, 128)) return r;
        break;
      case kOpBindConn:
        if (!in.Skip(16) || !in.U32(&r.bind_dir) || !in.U32(&v)) return r;
        break;
      case kOpCreate:
        if (!ReadCinfo(in, &r) || !in.U32(&v) || v > 3) return r;
        for (uint32_t w = 0; w < v; ++w)
          if (!in.U32(&r.attrsset)) return r;
        break;
      case kOpRemove:
      case kOpLink:
        if (!ReadCinfo(in, &r)) return r;
        break;
      case kOpRename:
        if (!ReadCinfo(in, &r) || !ReadCinfo(in, &r)) return r;
        break;
      default:  // the status alone
        break;
    }
  }
  r.ok = in.remaining() == 0;
  return r;
}

using Results = std::vector<std::pair<uint32_t, uint32_t>>;

class Nfs4PreviewTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> extra) {
    std::vector<std::string> args = {"--export", root_.path() + ":rw,no_root_squash"};
    args.insert(args.end(), extra.begin(), extra.end());
    server_.emplace(std::move(args));
    ASSERT_TRUE(server_->Start());
    ASSERT_TRUE(conn_.Connect(server_->nfs_port()));
  }

  // One COMPOUND (minor version 1) on `conn`, decoded.
  SessionReply Compound(WireConn& conn, const std::vector<std::string>& ops) {
    RpcReply r = conn.Call(kNfsProg, kNfs4, kCompound, CompoundArgs("s", 1, ops));
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.accept_stat, kSuccess);
    SessionReply c = DecodeSession(r.results);
    EXPECT_TRUE(c.ok) << Hex(r.results);
    return c;
  }
  // EXCHANGE_ID + CREATE_SESSION: the session id (and the client id).
  std::string Mount(const std::string& owner, uint64_t* clientid = nullptr,
                    uint32_t maxreq = 1 << 20) {
    SessionReply ex = Compound(conn_, {ExchangeId(owner)});
    EXPECT_EQ(ex.status, kNfs4Ok);
    EXPECT_EQ(ex.flags, kFlagUseNonPnfs);
    SessionReply cs = Compound(conn_, {CreateSession(ex.clientid, ex.sequenceid, maxreq)});
    EXPECT_EQ(cs.status, kNfs4Ok);
    EXPECT_EQ(cs.sessionid.size(), 16u);
    if (clientid != nullptr) *clientid = ex.clientid;
    return cs.sessionid;
  }

  TempDir root_{"nfs4preview"};
  std::optional<ServerProcess> server_;
  WireConn conn_;
};

TEST_F(Nfs4PreviewTest, CompoundAnswersOnTheNfsPortBesideV3AndLocalio) {
  StartServer({});
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

TEST_F(Nfs4PreviewTest, ExchangeIdCreateSessionSequenceAndTheSlotReplyCache) {
  StartServer({});
  SessionReply ex = Compound(conn_, {ExchangeId("client-one")});
  ASSERT_EQ(ex.status, kNfs4Ok);
  EXPECT_EQ(ex.flags, kFlagUseNonPnfs);  // not confirmed yet
  EXPECT_EQ(ex.sequenceid, 1u);
  EXPECT_FALSE(ex.server_owner.empty());
  // Asking for 1000 slots and 16 ops: what the server grants.
  SessionReply cs = Compound(conn_, {CreateSession(ex.clientid, 1, 1 << 20, 1000)});
  ASSERT_EQ(cs.status, kNfs4Ok);
  EXPECT_EQ(cs.fore_maxreqs, 64u);
  EXPECT_EQ(cs.fore_maxops, 16u);
  const std::string session = cs.sessionid;
  // The record is confirmed now.
  ex = Compound(conn_, {ExchangeId("client-one")});
  EXPECT_EQ(ex.flags, kFlagUseNonPnfs | kFlagConfirmedR);

  // SEQUENCE + PUTROOTFH + GETFH.
  const std::string args =
      CompoundArgs("s", 1, {Sequence(session, 1), Op(kOpPutrootfh), Op(kOpGetfh)});
  RpcReply r = conn_.Call(kNfsProg, kNfs4, kCompound, args);
  ASSERT_TRUE(r.ok) << r.error;
  SessionReply c = DecodeSession(r.results);
  ASSERT_TRUE(c.ok) << Hex(r.results);
  EXPECT_EQ(c.results,
            (Results{{kOpSequence, kNfs4Ok}, {kOpPutrootfh, kNfs4Ok}, {kOpGetfh, kNfs4Ok}}));
  EXPECT_FALSE(c.fh.empty());
  EXPECT_EQ(c.highest_slotid, 63u);

  // The same slot and seqid again, with a new XID and then on a new connection: the
  // reply is the first one byte for byte after the XID.
  ASSERT_TRUE(
      conn_.SendRecord(WireConn::CallMessage(0x5000, kNfsProg, kNfs4, kCompound, args, nullptr)));
  std::optional<std::string> first = conn_.RecvRecord();
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(
      conn_.SendRecord(WireConn::CallMessage(0x5001, kNfsProg, kNfs4, kCompound, args, nullptr)));
  std::optional<std::string> second = conn_.RecvRecord();
  ASSERT_TRUE(second.has_value());
  ASSERT_GT(first->size(), 4u);
  EXPECT_EQ(first->substr(4), second->substr(4));
  EXPECT_EQ(WireConn::ParseReply(*first).results, r.results);
  WireConn other;
  ASSERT_TRUE(other.Connect(server_->nfs_port()));
  ASSERT_TRUE(
      other.SendRecord(WireConn::CallMessage(0x5002, kNfsProg, kNfs4, kCompound, args, nullptr)));
  std::optional<std::string> third = other.RecvRecord();
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(first->substr(4), third->substr(4));

  // seqid + 2: misordered. The next seqid runs.
  c = Compound(conn_, {Sequence(session, 3), Op(kOpPutrootfh)});
  EXPECT_EQ(c.results, (Results{{kOpSequence, kErrSeqMisordered}}));
  c = Compound(conn_, {Sequence(session, 2), Op(kOpPutrootfh)});
  EXPECT_EQ(c.results, (Results{{kOpSequence, kNfs4Ok}, {kOpPutrootfh, kNfs4Ok}}));
  // Another slot starts at 1; past the table is BADSLOT.
  c = Compound(conn_, {Sequence(session, 1, 5)});
  EXPECT_EQ(c.results, (Results{{kOpSequence, kNfs4Ok}}));
  c = Compound(conn_, {Sequence(session, 1, 64)});
  EXPECT_EQ(c.results, (Results{{kOpSequence, kErrBadSlot}}));
  // A session nobody created.
  std::string bad = session;
  bad[15] = static_cast<char>(bad[15] ^ 0x5a);
  c = Compound(conn_, {Sequence(bad, 1), Op(kOpPutrootfh)});
  EXPECT_EQ(c.results, (Results{{kOpSequence, kErrBadSession}}));

  // RECLAIM_COMPLETE: once per client.
  c = Compound(conn_, {Sequence(session, 3), Op(kOpReclaimComplete) + XdrOut().U32(0).bytes()});
  EXPECT_EQ(c.results, (Results{{kOpSequence, kNfs4Ok}, {kOpReclaimComplete, kNfs4Ok}}));
  c = Compound(conn_, {Sequence(session, 4), Op(kOpReclaimComplete) + XdrOut().U32(0).bytes()});
  EXPECT_EQ(c.results,
            (Results{{kOpSequence, kNfs4Ok}, {kOpReclaimComplete, kErrCompleteAlready}}));
  ASSERT_TRUE(server_->Stop());
}

TEST_F(Nfs4PreviewTest, AnExportsV4PathIsItsDirectoryPathAndItsHandleMountsOne) {
  StartServer({});
  const std::string session = Mount("client-ns");
  // SEQUENCE, PUTROOTFH, LOOKUP of each component of the export's path, GETFH.
  std::vector<std::string> ops = {Sequence(session, 1), Op(kOpPutrootfh)};
  Results want = {{kOpSequence, kNfs4Ok}, {kOpPutrootfh, kNfs4Ok}};
  const std::string& path = root_.path();
  for (size_t at = 1; at <= path.size();) {
    size_t end = path.find('/', at);
    if (end == std::string::npos) end = path.size();
    if (end > at) {
      ops.push_back(XdrOut().U32(kOpLookup).Str(path.substr(at, end - at)).bytes());
      want.emplace_back(kOpLookup, kNfs4Ok);
    }
    at = end + 1;
  }
  ops.push_back(Op(kOpGetfh));
  want.emplace_back(kOpGetfh, kNfs4Ok);
  SessionReply c = Compound(conn_, ops);
  EXPECT_EQ(c.results, want);
  // MOUNT v3 (MNT) of the same path gives the same handle.
  WireConn mount;
  ASSERT_TRUE(mount.Connect(server_->mount_port()));
  RpcReply m = mount.Call(kMountProg, 3, 1, XdrOut().Str(path).bytes());
  ASSERT_TRUE(m.ok) << m.error;
  XdrIn in(m.results);
  uint32_t mount_status = 1;
  std::string mount_fh;
  ASSERT_TRUE(in.U32(&mount_status) && in.Opaque(&mount_fh, 64));
  EXPECT_EQ(mount_status, 0u);
  EXPECT_EQ(c.fh, mount_fh);
  // The pseudo root is read-only.
  c = Compound(conn_, {Sequence(session, 2), Op(kOpPutrootfh),
                       XdrOut().U32(kOpRemove).Str("x").bytes()});
  EXPECT_EQ(c.results,
            (Results{{kOpSequence, kNfs4Ok}, {kOpPutrootfh, kNfs4Ok}, {kOpRemove, kErrRofs}}));
}

// A fattr4 of mode alone (FATTR4_MODE is bit 33: the second bitmap word).
std::string ModeAttr(uint32_t mode) {
  return XdrOut().U32(2).U32(0).U32(1u << (33 - 32)).Opaque(XdrOut().U32(mode).bytes()).bytes();
}

TEST_F(Nfs4PreviewTest, NamespaceChangesOverASessionReachTheExportedDirectory) {
  // The COMPOUNDs go as AUTH_NONE: nobody, who may change what follows.
  ASSERT_EQ(chmod(root_.path().c_str(), 0777), 0);
  StartServer({});
  const std::string session = Mount("client-changes");
  WireConn mount;
  ASSERT_TRUE(mount.Connect(server_->mount_port()));
  RpcReply m = mount.Call(kMountProg, 3, 1, XdrOut().Str(root_.path()).bytes());
  ASSERT_TRUE(m.ok) << m.error;
  XdrIn in(m.results);
  uint32_t mount_status = 1;
  std::string root;
  ASSERT_TRUE(in.U32(&mount_status) && in.Opaque(&root, 64));
  ASSERT_EQ(mount_status, 0u);
  const std::string putfh = XdrOut().U32(kOpPutfh).Opaque(root).bytes();
  struct stat st;

  // CREATE of a directory with a mode: made so, its directory's change info moves.
  SessionReply c = Compound(
      conn_, {Sequence(session, 1), putfh,
              XdrOut().U32(kOpCreate).U32(/*NF4DIR*/ 2).Str("made").bytes() + ModeAttr(0700),
              Op(kOpGetfh)});
  ASSERT_EQ(c.results, (Results{{kOpSequence, kNfs4Ok}, {kOpPutfh, kNfs4Ok},
                                {kOpCreate, kNfs4Ok}, {kOpGetfh, kNfs4Ok}}));
  ASSERT_EQ(c.cinfo.size(), 1u);
  EXPECT_NE(c.cinfo[0].first, c.cinfo[0].second);
  EXPECT_EQ(c.attrsset, 1u << (33 - 32));
  ASSERT_EQ(stat((root_.path() + "/made").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);

  // RENAME within the export (saved: the source directory), SETATTR of the mode.
  c = Compound(conn_, {Sequence(session, 2), putfh, Op(kOpSavefh),
                       XdrOut().U32(kOpRename).Str("made").Str("moved").bytes(),
                       XdrOut().U32(kOpLookup).Str("moved").bytes(),
                       XdrOut().U32(kOpSetattr).U32(0).Fixed(std::string(12, '\0')).bytes() +
                           ModeAttr(0755)});
  EXPECT_EQ(c.results, (Results{{kOpSequence, kNfs4Ok},
                                {kOpPutfh, kNfs4Ok},
                                {kOpSavefh, kNfs4Ok},
                                {kOpRename, kNfs4Ok},
                                {kOpLookup, kNfs4Ok},
                                {kOpSetattr, kNfs4Ok}}));
  EXPECT_EQ(c.cinfo.size(), 2u);
  EXPECT_NE(stat((root_.path() + "/made").c_str(), &st), 0);
  ASSERT_EQ(stat((root_.path() + "/moved").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);

  // LINK of a file, REMOVE of both names and the directory; a second REMOVE is NOENT.
  ASSERT_TRUE(WriteFile(root_.path() + "/file", "data"));
  ASSERT_EQ(chown((root_.path() + "/file").c_str(), 65534, 65534), 0);
  c = Compound(conn_, {Sequence(session, 3), putfh,
                       XdrOut().U32(kOpLookup).Str("file").bytes(), Op(kOpSavefh), putfh,
                       XdrOut().U32(kOpLink).Str("second").bytes()});
  EXPECT_EQ(c.status, kNfs4Ok);
  ASSERT_EQ(stat((root_.path() + "/second").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
  c = Compound(conn_, {Sequence(session, 4), putfh, XdrOut().U32(kOpRemove).Str("file").bytes(),
                       XdrOut().U32(kOpRemove).Str("second").bytes(),
                       XdrOut().U32(kOpRemove).Str("moved").bytes(),
                       XdrOut().U32(kOpRemove).Str("moved").bytes()});
  EXPECT_EQ(c.results, (Results{{kOpSequence, kNfs4Ok},
                                {kOpPutfh, kNfs4Ok},
                                {kOpRemove, kNfs4Ok},
                                {kOpRemove, kNfs4Ok},
                                {kOpRemove, kNfs4Ok},
                                {kOpRemove, /*NFS4ERR_NOENT*/ 2}}));
  EXPECT_NE(stat((root_.path() + "/moved").c_str(), &st), 0);
  EXPECT_NE(stat((root_.path() + "/file").c_str(), &st), 0);
}

TEST_F(Nfs4PreviewTest, SecondClientRequestLimitBindDestroy) {
  StartServer({"--lease-time", "30"});
  uint64_t one_id = 0, two_id = 0;
  const std::string one = Mount("client-one", &one_id);
  // A second client, whose session takes requests of at most 200 bytes.
  const std::string two = Mount("client-two", &two_id, /*maxreq=*/200);
  EXPECT_NE(one_id, two_id);
  EXPECT_NE(one, two);
  SessionReply c = Compound(conn_, {Sequence(two, 1), Op(kOpPutrootfh)});
  EXPECT_EQ(c.results, (Results{{kOpSequence, kNfs4Ok}, {kOpPutrootfh, kNfs4Ok}}));
  const std::string big_fh = XdrOut().U32(kOpPutfh).Opaque(std::string(128, 'h')).bytes();
  c = Compound(conn_, {Sequence(two, 2), big_fh, Op(kOpGetfh)});
  EXPECT_EQ(c.results, (Results{{kOpSequence, kErrReqTooBig}}));
  // The first client's session is not limited so: the request runs (and its made-up
  // handle is refused as any forged one).
  c = Compound(conn_, {Sequence(one, 1), big_fh, Op(kOpGetfh)});
  EXPECT_EQ(c.results, (Results{{kOpSequence, kNfs4Ok}, {kOpPutfh, kErrBadHandle}}));

  // Another connection binds itself to the first session.
  WireConn other;
  ASSERT_TRUE(other.Connect(server_->nfs_port()));
  c = Compound(other, {XdrOut().U32(kOpBindConn).Fixed(one).U32(3).U32(0).bytes()});
  EXPECT_EQ(c.results, (Results{{kOpBindConn, kNfs4Ok}}));
  EXPECT_EQ(c.bind_dir, 3u);  // CDFS4_BOTH
  c = Compound(other, {Sequence(one, 2), Op(kOpPutrootfh)});
  EXPECT_EQ(c.results, (Results{{kOpSequence, kNfs4Ok}, {kOpPutrootfh, kNfs4Ok}}));

  // DESTROY_CLIENTID while the client has a session: busy. DESTROY_SESSION, then the
  // session is gone and the client id can go.
  c = Compound(conn_, {XdrOut().U32(kOpDestroyClientid).U64(one_id).bytes()});
  EXPECT_EQ(c.results, (Results{{kOpDestroyClientid, kErrClientidBusy}}));
  c = Compound(conn_, {WithSession(kOpDestroySession, one)});
  EXPECT_EQ(c.results, (Results{{kOpDestroySession, kNfs4Ok}}));
  c = Compound(conn_, {Sequence(one, 3), Op(kOpPutrootfh)});
  EXPECT_EQ(c.results, (Results{{kOpSequence, kErrBadSession}}));
  c = Compound(conn_, {XdrOut().U32(kOpDestroyClientid).U64(one_id).bytes()});
  EXPECT_EQ(c.results, (Results{{kOpDestroyClientid, kNfs4Ok}}));
  c = Compound(conn_, {CreateSession(one_id, 2)});
  EXPECT_EQ(c.results, (Results{{kOpCreateSession, kErrStaleClientid}}));
  // The second client is untouched.
  c = Compound(conn_, {Sequence(two, 2), Op(kOpPutrootfh)});
  EXPECT_EQ(c.results, (Results{{kOpSequence, kNfs4Ok}, {kOpPutrootfh, kNfs4Ok}}));
  ASSERT_TRUE(server_->Stop());
}

TEST_F(Nfs4PreviewTest, AnExpiredClientIsACourtesyClientUntilAnotherConflicts) {
  StartServer({"--lease-time", "2"});
  const std::string session = Mount("client-one");
  // Past its lease: still served, and renewed by the SEQUENCE.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  SessionReply c = Compound(conn_, {Sequence(session, 1), Op(kOpPutrootfh)});
  EXPECT_EQ(c.results, (Results{{kOpSequence, kNfs4Ok}, {kOpPutrootfh, kNfs4Ok}}));
  // Another principal with the same owner while the lease runs: refused.
  const AuthSys other{1000, 1000, {}, "elsewhere"};
  auto exchange_as_other = [&] {
    RpcReply r = conn_.Call(kNfsProg, kNfs4, kCompound,
                            CompoundArgs("s", 1, {ExchangeId("client-one")}), &other);
    EXPECT_TRUE(r.ok) << r.error;
    return DecodeSession(r.results);
  };
  c = exchange_as_other();
  EXPECT_EQ(c.results, (Results{{kOpExchangeId, kErrClidInuse}}));
  // Expired: the courtesy client loses its state to the conflict.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  c = exchange_as_other();
  EXPECT_EQ(c.results, (Results{{kOpExchangeId, kNfs4Ok}}));
  c = Compound(conn_, {Sequence(session, 2), Op(kOpPutrootfh)});
  EXPECT_EQ(c.results, (Results{{kOpSequence, kErrBadSession}}));
  ASSERT_TRUE(server_->Stop());
}

TEST_F(Nfs4PreviewTest, LeaseTimeOutOfRangeIsAUsageError) {
  for (const char* bad : {"0", "3601"}) {
    ServerProcess server({"--export", root_.path() + ":rw", "--lease-time", bad});
    EXPECT_FALSE(server.Start()) << bad;
    EXPECT_TRUE(WIFEXITED(server.exit_status()));
    EXPECT_EQ(WEXITSTATUS(server.exit_status()), 2) << bad;
  }
}

TEST_F(Nfs4PreviewTest, ByDefaultVersionFourAnswersBesideThree) {
  StartServer({});
  RpcReply r = conn_.Call(kNfsProg, kNfs4, 0, "");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.accept_stat, kSuccess);
  r = conn_.Call(kNfsProg, 5, 0, "");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.accept_stat, kProgMismatch);
  EXPECT_EQ(r.low, 3u);
  EXPECT_EQ(r.high, 4u);
  ASSERT_TRUE(server_->Stop());
}

// The flag of the preview still starts a server (scripts may pass it); it means the
// default.
TEST_F(Nfs4PreviewTest, PreviewFlagIsStillAcceptedAndMeansTheDefault) {
  StartServer({"--nfs4-preview"});
  RpcReply r = conn_.Call(kNfsProg, kNfs4, 0, "");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.accept_stat, kSuccess);
  ASSERT_TRUE(server_->Stop());
}

TEST_F(Nfs4PreviewTest, NoNfs4MeansVersionFourIsNotThere) {
  StartServer({"--nonfs4"});
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

// ---- restart and grace (server/nfs4/state.h "Restart and grace") ----

// `localnfs-ctl status` (text) of the test's server.
std::string CtlStatus(const ServerProcess& server) {
  const char* ctl = getenv("LOCALNFS_CTL");
  EXPECT_NE(ctl, nullptr) << "$LOCALNFS_CTL unset";
  if (ctl == nullptr) return "";
  std::string out;
  EXPECT_EQ(RunCommand({ctl, "--runtime-dir", server.runtime_dir(), "status"}, &out,
                       std::chrono::seconds(30)),
            0)
      << out;
  return out;
}

class Nfs4GraceTest : public Nfs4PreviewTest {
 protected:
  // A client as the Linux client mounts: EXCHANGE_ID, CREATE_SESSION, then SEQUENCE +
  // RECLAIM_COMPLETE (which writes its record in the state dir).
  void MountAndReclaimComplete(const std::string& owner) {
    const std::string session = Mount(owner);
    SessionReply c = Compound(conn_, {Sequence(session, 1), ReclaimComplete()});
    EXPECT_EQ(c.results, (Results{{kOpSequence, kNfs4Ok}, {kOpReclaimComplete, kNfs4Ok}}));
  }
  static std::string ReclaimComplete() { return XdrOut().U32(kOpReclaimComplete).U32(0).bytes(); }
  // Starts a server on this test's own state and runtime dirs (kept across servers,
  // so that the next one may run with other flags); `uid` >= 0: as that user.
  void StartOnDirs(std::vector<std::string> extra, int uid = -1) {
    conn_.Close();
    if (server_) {
      ASSERT_TRUE(server_->Stop());
    }
    std::vector<std::string> args = {"--export", root_.path() + ":rw,no_root_squash"};
    args.insert(args.end(), extra.begin(), extra.end());
    ServerOptions o{.args = std::move(args)};
    if (uid < 0) {
      o.state_dir = dirs_.Sub("state");
      o.runtime_dir = dirs_.Sub("run");
    } else {
      o.run_as_uid = o.run_as_gid = uid;
    }
    server_.emplace(std::move(o));
    ASSERT_TRUE(server_->Start());
    ASSERT_TRUE(conn_.Connect(server_->nfs_port()));
  }
  // SIGTERM and start again with the same flags and dirs.
  void RestartServer() {
    conn_.Close();
    ASSERT_TRUE(server_->Restart());
    ASSERT_TRUE(conn_.Connect(server_->nfs_port()));
  }
  std::string GraceState() {
    const nlohmann::json doc =
        nlohmann::json::parse(server_->StatusJson(), nullptr, /*allow_exceptions=*/false);
    const nlohmann::json::json_pointer p("/nfs4/grace/state");
    return doc.is_object() && doc.contains(p) ? doc.at(p).get<std::string>() : "(none)";
  }
  // The restart cycle of a client: recorded, restart → in grace, back and
  // RECLAIM_COMPLETE → grace over at once (not after the 60 s).
  void RestartAndReclaim() {
    EXPECT_EQ(GraceState(), "none");
    MountAndReclaimComplete("Linux NFSv4.1 grace-host");
    size_t mark = server_->StderrMark();
    RestartServer();
    // Grace defaults to the lease time.
    EXPECT_TRUE(server_->WaitForStderr("nfs4: in grace for 60 s: 1 client(s)",
                                       std::chrono::seconds(10), mark))
        << server_->StderrText();
    EXPECT_EQ(GraceState(), "in_grace");
    EXPECT_NE(CtlStatus(*server_).find("grace: in grace"), std::string::npos);
    mark = server_->StderrMark();
    MountAndReclaimComplete("Linux NFSv4.1 grace-host");
    EXPECT_TRUE(server_->WaitForStderr("ended early: every client of the previous instance",
                                       std::chrono::seconds(10), mark))
        << server_->StderrText();
    EXPECT_EQ(GraceState(), "ended");
    EXPECT_EQ(server_->StatusNumber("/nfs4/grace/reclaimed"), 1);
  }

  TempDir dirs_{"nfs4grace"};
};

TEST_F(Nfs4GraceTest, ARestartIsInGraceUntilThePreviousClientSendsReclaimComplete) {
  StartServer({"--lease-time", "60"});
  RestartAndReclaim();
  ASSERT_TRUE(server_->Stop());
}

TEST_F(Nfs4GraceTest, UnprivilegedTheRecordsLiveInTheUsersStateDir) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run the server as another user";
  StartOnDirs({"--lease-time", "60"}, /*uid=*/1000);
  RestartAndReclaim();
  ASSERT_TRUE(server_->Stop());
}

TEST_F(Nfs4GraceTest, AnotherClientDoesNotEndGraceAndGraceZeroMeansNone) {
  StartOnDirs({"--lease-time", "60", "--grace", "0"});
  MountAndReclaimComplete("host-one");
  size_t mark = server_->StderrMark();
  RestartServer();
  EXPECT_TRUE(server_->WaitForStderr("--grace 0: no grace period", std::chrono::seconds(10), mark))
      << server_->StderrText();
  EXPECT_EQ(GraceState(), "none");
  // host-one's record was dropped with --grace 0; host-two is recorded now.
  MountAndReclaimComplete("host-two");

  // Without --grace 0 the next start is in grace for host-two only: host-one (no
  // longer known) sending RECLAIM_COMPLETE changes nothing.
  StartOnDirs({"--lease-time", "60"});
  EXPECT_TRUE(server_->WaitForStderr("nfs4: in grace for 60 s: 1 client(s)",
                                     std::chrono::seconds(10)))
      << server_->StderrText();
  MountAndReclaimComplete("host-one");
  EXPECT_EQ(GraceState(), "in_grace");
  MountAndReclaimComplete("host-two");
  EXPECT_EQ(GraceState(), "ended");
  ASSERT_TRUE(server_->Stop());
}

TEST_F(Nfs4GraceTest, GraceOutOfRangeIsAUsageError) {
  for (const char* bad : {"-2", "3601"}) {
    ServerProcess server({"--export", root_.path() + ":rw", "--grace", bad});
    EXPECT_FALSE(server.Start()) << bad;
    EXPECT_TRUE(WIFEXITED(server.exit_status()));
    EXPECT_EQ(WEXITSTATUS(server.exit_status()), 2) << bad;
  }
}

TEST_F(Nfs4GraceTest, CtlStatusShowsClientsSessionsAndOpCounts) {
  StartServer({});
  // Without a v4 client yet: the section is there, empty.
  std::string text = CtlStatus(*server_);
  EXPECT_NE(text.find("nfs4: 0 clients (0 confirmed, 0 courtesy, 0 unconfirmed), 0 sessions"),
            std::string::npos)
      << text;
  MountAndReclaimComplete(std::string("odd\x01owner\"", 10));
  text = CtlStatus(*server_);
  EXPECT_NE(text.find("nfs4: 1 clients (1 confirmed, 0 courtesy, 0 unconfirmed), 1 sessions, 0 "
                      "opens, 0 lock stateids"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("127.0.0.1:"), std::string::npos) << text;
  EXPECT_NE(text.find("reclaim complete  owner \"odd\\x01owner\\x22\""), std::string::npos) << text;
  EXPECT_NE(text.find("EXCHANGE_ID 1, CREATE_SESSION 1, SEQUENCE 1, RECLAIM_COMPLETE 1"),
            std::string::npos)
      << text;
  // An error is counted as such.
  Compound(conn_, {Sequence(std::string(16, 'x'), 1)});
  text = CtlStatus(*server_);
  EXPECT_NE(text.find("SEQUENCE 2 (1 errors)"), std::string::npos) << text;
  EXPECT_EQ(server_->StatusNumber("/nfs4/clients/confirmed"), 1);
  EXPECT_EQ(server_->StatusNumber("/nfs4/sessions"), 1);
  EXPECT_EQ(server_->StatusNumber("/nfs4/ops/SEQUENCE/errors"), 1);
  EXPECT_EQ(server_->StatusNumber("/nfs4/open_state/opens"), 0);
  ASSERT_TRUE(server_->Stop());
}

TEST_F(Nfs4GraceTest, WithNoNfs4StatusHasNoNfs4Section) {
  StartServer({"--nonfs4"});
  EXPECT_EQ(CtlStatus(*server_).find("nfs4:"), std::string::npos);
  EXPECT_EQ(server_->StatusJson().find("\"nfs4\""), std::string::npos);
  ASSERT_TRUE(server_->Stop());
}

}  // namespace
// READ data by reference (server/nfs4/nfs4_program.h): large READs — two in one
// COMPOUND, beside a small one and a GETATTR — come back whole and in place (the data
// goes out from the READ's own buffer, the rest of the COMPOUND around it), and such a
// reply is not kept by the slot: its retry gets RETRY_UNCACHED_REP.
TEST_F(Nfs4PreviewTest, LargeReadsInOneCompoundComeBackWholeAndAreNotKeptByTheSlot) {
  std::string content(3 << 20, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>((i * 7 + i / 4096) & 0xff);
  {
    int fd = open(root_.Sub("big").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    close(fd);
  }
  StartServer({});
  AuthSys root;
  Nfs4Wire v4(&conn_, root);
  ASSERT_TRUE(v4.Establish("bulk-reads")) << v4.error();
  std::string dir, fh;
  ASSERT_EQ(v4.LookupPath(root_.path(), &dir), NFS4_OK);
  stateid4 sid;
  ASSERT_EQ(v4.OpenFile(dir, "big", OPEN4_SHARE_ACCESS_READ, false, &fh, &sid), NFS4_OK);

  Nfs4Ops ops;
  // Within the session's ca_maxresponsesize (1 MiB): 384 KiB, 5 bytes, the last 300 KiB.
  const size_t tail_at = content.size() - 300 * 1024;
  ops.PutFh(fh).Read(sid, 0, 384 * 1024).Read(sid, 100, 5).Read(sid, tail_at, 384 * 1024);
  Nfs4Reply r;
  ASSERT_TRUE(v4.Compound(ops, &r)) << r.error;
  ASSERT_EQ(r.status(), NFS4_OK);
  auto data_of = [&](int nth) {
    const nfs_resop4* op = r.Find(OP_READ, nth);
    if (op == nullptr) return std::string("<missing>");
    const READ4resok& ok = op->nfs_resop4_u.opread.READ4res_u.resok4;
    return std::string(ok.data.data_val, ok.data.data_len);
  };
  EXPECT_TRUE(data_of(0) == content.substr(0, 384 * 1024)) << "the first 384 KiB";
  EXPECT_EQ(data_of(1), content.substr(100, 5));
  const std::string tail = data_of(2);
  EXPECT_EQ(tail.size(), 300u * 1024);
  EXPECT_TRUE(tail == content.substr(tail_at)) << "the tail";
  EXPECT_TRUE(r.Find(OP_READ, 2)->nfs_resop4_u.opread.READ4res_u.resok4.eof);

  // The same COMPOUND again (slot and sequence id): the large reply was not kept.
  Nfs4Reply again;
  ASSERT_TRUE(v4.Retry(ops, &again)) << again.error;
  EXPECT_EQ(again.status(), NFS4ERR_RETRY_UNCACHED_REP);
  // A small READ's reply is kept: its retry gets the data again.
  Nfs4Ops small;
  small.PutFh(fh).Read(sid, 100, 5);
  Nfs4Reply first, replayed;
  ASSERT_TRUE(v4.Compound(small, &first)) << first.error;
  ASSERT_EQ(first.status(), NFS4_OK);
  ASSERT_TRUE(v4.Retry(small, &replayed)) << replayed.error;
  ASSERT_EQ(replayed.status(), NFS4_OK);
  const READ4resok& kept = replayed.Find(OP_READ)->nfs_resop4_u.opread.READ4res_u.resok4;
  EXPECT_EQ(std::string(kept.data.data_val, kept.data.data_len), content.substr(100, 5));
}

}  // namespace localnfs::testing
