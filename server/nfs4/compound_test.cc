// server/nfs4/compound_test.cc — the COMPOUND loop's rules (compound.h), driven
// as the server runs them: real COMPOUND4args encoded with the generated
// routines (or by hand where the generated encoder cannot produce the bytes:
// unknown op numbers, cut-short or lying lengths), sent through a Dispatcher to
// Nfs4Program (rpc/test_program.h RunCall), and the reply decoded with
// xdr_COMPOUND4res.
#include "server/nfs4/compound.h"

#include <rpc/rpc.h>
#include <stdio.h>
#include <string.h>

#include <deque>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "rpc/dispatch.h"
#include "rpc/nfs4.h"
#include "rpc/test_program.h"
#include "server/nfs4/nfs4_program.h"
#include "server/nfs4/nfs4proc_test_fixture.h"
#include "server/nfs4/client_records.h"
#include "server/nfs4/services.h"
#include "server/nfs4/state.h"
#include "tests/support/temp_dir.h"

namespace localnfs::server::nfs4 {
namespace {

using rpc::testing::U32;
using Reply = rpc::testing::DecodedResult<COMPOUND4res, xdr_COMPOUND4res>;
using OpResult = std::pair<uint32_t, nfsstat4>;

// An XDR string: length, bytes, padding.
std::string Opaque(const std::string& s) {
  return U32(static_cast<uint32_t>(s.size())) + s + std::string((4 - s.size() % 4) % 4, '\0');
}

// A COMPOUND built op by op with the generated nfs_argop4 (strings it points to
// live here).
class Compound {
 public:
  explicit Compound(uint32_t minor = 1, std::string tag = "")
      : minor_(minor), tag_(std::move(tag)) {}

  Compound& Op(nfs_opnum4 op) {
    nfs_argop4 a{};
    a.argop = op;
    ops_.push_back(a);
    return *this;
  }
  Compound& PutFh(const std::string& fh) {
    strings_.push_back(fh);
    nfs_argop4 a{};
    a.argop = OP_PUTFH;
    a.nfs_argop4_u.opputfh.object.nfs_fh4_len = static_cast<u_int>(strings_.back().size());
    a.nfs_argop4_u.opputfh.object.nfs_fh4_val = strings_.back().data();
    ops_.push_back(a);
    return *this;
  }
  Compound& Named(nfs_opnum4 op, const std::string& name) {
    strings_.push_back(name);
    nfs_argop4 a{};
    a.argop = op;
    component4* c =
        op == OP_LOOKUP ? &a.nfs_argop4_u.oplookup.objname : &a.nfs_argop4_u.opremove.target;
    c->utf8string_len = static_cast<u_int>(strings_.back().size());
    c->utf8string_val = strings_.back().data();
    ops_.push_back(a);
    return *this;
  }

  std::string Encode() { return proc_fixture::EncodeCompound(ops_, minor_, tag_); }

 private:
  uint32_t minor_;
  std::string tag_;
  std::vector<nfs_argop4> ops_;
  std::deque<std::string> strings_;  // push_back keeps the others where they are
};

// A COMPOUND header by hand: tag, minorversion, op count; the ops follow.
std::string Header(uint32_t minor, uint32_t numops, const std::string& tag = "") {
  return Opaque(tag) + U32(minor) + U32(numops);
}

class CompoundTest : public ::testing::Test {
 protected:
  void Use(CompoundOptions options) {
    program_.emplace(Nfs4Program::Options{options});
    dispatcher_.emplace(&counters_);
    dispatcher_->AddProgram(&*program_);
  }
  void SetUp() override { Use(CompoundOptions{.require_sequence = false}); }

  std::optional<rpc::testing::TestReply> Raw(const std::string& args) {
    return rpc::testing::RunCall(*dispatcher_, conn_, NFS4_PROGRAM, NFS_V4, NFSPROC4_COMPOUND,
                                 args);
  }
  // The COMPOUND's status and its results (op number, status), as the reply
  // decodes.
  std::pair<nfsstat4, std::vector<OpResult>> Run(const std::string& args) {
    std::optional<rpc::testing::TestReply> r = Raw(args);
    EXPECT_TRUE(r && r->error.is_success());
    if (!r || !r->error.is_success()) return {};
    Reply reply(r->body);
    EXPECT_TRUE(reply.ok());
    std::vector<OpResult> ops;
    for (u_int i = 0; i < reply->resarray.resarray_len; ++i) {
      const nfs_resop4& op = reply->resarray.resarray_val[i];
      ops.emplace_back(op.resop, OpStatus(op));
    }
    return {reply->status, ops};
  }

  rpc::ServerCounters counters_;
  std::optional<Nfs4Program> program_;
  std::optional<rpc::Dispatcher> dispatcher_;
  rpc::ConnectionInfo conn_{1, PeerAddress{}, PeerAddress{}};
};

using Results = std::vector<OpResult>;

TEST_F(CompoundTest, NullAnswersVoid) {
  std::optional<rpc::testing::TestReply> r =
      rpc::testing::RunCall(*dispatcher_, conn_, NFS4_PROGRAM, NFS_V4, NFSPROC4_NULL, "");
  ASSERT_TRUE(r && r->error.is_success());
  EXPECT_EQ(r->body, "");
}

TEST_F(CompoundTest, MinorVersionsZeroAndThreeAreAMismatchWithNoResults) {
  for (uint32_t minor : {0u, 3u, 0xffffffffu}) {
    auto [status, ops] = Run(Compound(minor).Op(OP_PUTROOTFH).Op(OP_GETFH).Encode());
    EXPECT_EQ(status, NFS4ERR_MINOR_VERS_MISMATCH) << minor;
    EXPECT_TRUE(ops.empty()) << minor;
  }
  // Even ops that would not decode are not looked at.
  auto [status, ops] = Run(Header(0, 3) + U32(99999));
  EXPECT_EQ(status, NFS4ERR_MINOR_VERS_MISMATCH);
  EXPECT_TRUE(ops.empty());
}

TEST_F(CompoundTest, MinorVersionsOneAndTwoAreServed) {
  for (uint32_t minor : {1u, 2u}) {
    auto [status, ops] = Run(Compound(minor).Op(OP_PUTROOTFH).Encode());
    EXPECT_EQ(status, NFS4_OK) << minor;
    EXPECT_EQ(ops, (Results{{OP_PUTROOTFH, NFS4_OK}})) << minor;
  }
}

TEST_F(CompoundTest, EmptyCompoundSucceedsWithNoResultsAndEchoesTheTag) {
  std::optional<rpc::testing::TestReply> r = Raw(Compound(1, "hello tag").Encode());
  ASSERT_TRUE(r && r->error.is_success());
  Reply reply(r->body);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->status, NFS4_OK);
  EXPECT_EQ(std::string(reply->tag.utf8string_val, reply->tag.utf8string_len), "hello tag");
  EXPECT_EQ(reply->resarray.resarray_len, 0u);
}

TEST_F(CompoundTest, UnknownOpNumberIsOpIllegalAndStops) {
  for (uint32_t op : {0u, 1u, 2u, 76u, 99999u, static_cast<uint32_t>(OP_ILLEGAL), 0xffffffffu}) {
    // PUTROOTFH, then the unknown op, then a GETFH that must not run.
    auto [status, ops] = Run(Header(1, 3) + U32(OP_PUTROOTFH) + U32(op) + U32(OP_GETFH));
    EXPECT_EQ(status, NFS4ERR_OP_ILLEGAL) << op;
    EXPECT_EQ(ops, (Results{{OP_PUTROOTFH, NFS4_OK}, {OP_ILLEGAL, NFS4ERR_OP_ILLEGAL}})) << op;
  }
}

TEST_F(CompoundTest, MinorVersionTwoOpsAreIllegalInMinorVersionOne) {
  // SEEK (69) and GETXATTR (72) are 4.2's: OP_ILLEGAL in 4.1 (as knfsd), and
  // in 4.2 they reach the table (GETXATTR has no handler: NOTSUPP).
  for (nfs_opnum4 op : {OP_SEEK, OP_GETXATTR}) {
    std::string wire = Header(1, 2) + U32(OP_PUTROOTFH) + U32(op);
    auto [status, ops] = Run(wire);
    EXPECT_EQ(status, NFS4ERR_OP_ILLEGAL) << op;
    EXPECT_EQ(ops, (Results{{OP_PUTROOTFH, NFS4_OK}, {OP_ILLEGAL, NFS4ERR_OP_ILLEGAL}}));
  }
  Compound c(2);
  c.Op(OP_PUTROOTFH).Op(OP_GETXATTR);
  auto [status, ops] = Run(c.Encode());
  EXPECT_EQ(status, NFS4ERR_NOTSUPP);
  EXPECT_EQ(ops, (Results{{OP_PUTROOTFH, NFS4_OK}, {OP_GETXATTR, NFS4ERR_NOTSUPP}}));
}

TEST_F(CompoundTest, MoreOpsThanTheLimitRunNothing) {
  Compound at_limit;
  for (uint32_t i = 0; i < kMaxOpsPerCompound; ++i) at_limit.Op(OP_PUTROOTFH);
  auto [status, ops] = Run(at_limit.Encode());
  EXPECT_EQ(status, NFS4_OK);
  EXPECT_EQ(ops.size(), kMaxOpsPerCompound);

  Compound over;
  for (uint32_t i = 0; i <= kMaxOpsPerCompound; ++i) over.Op(OP_PUTROOTFH);
  std::tie(status, ops) = Run(over.Encode());
  EXPECT_EQ(status, NFS4ERR_TOO_MANY_OPS);
  EXPECT_EQ(ops, (Results{{OP_PUTROOTFH, NFS4ERR_TOO_MANY_OPS}}));

  // A count that lies (4 billion ops, one sent) is refused the same way,
  // without room for 4 billion results.
  std::tie(status, ops) = Run(Header(1, 0xffffffffu) + U32(OP_GETFH));
  EXPECT_EQ(status, NFS4ERR_TOO_MANY_OPS);
  EXPECT_EQ(ops, (Results{{OP_GETFH, NFS4ERR_TOO_MANY_OPS}}));
}

TEST_F(CompoundTest, FirstOpMustBeSequenceOrAllowedBeforeASession) {
  Use(CompoundOptions{});  // require_sequence, as localnfsd runs
  auto [status, ops] = Run(Compound().Op(OP_PUTROOTFH).Encode());
  EXPECT_EQ(status, NFS4ERR_OP_NOT_IN_SESSION);
  EXPECT_EQ(ops, (Results{{OP_PUTROOTFH, NFS4ERR_OP_NOT_IN_SESSION}}));
  // Nothing after it runs either.
  std::tie(status, ops) = Run(Compound().Op(OP_PUTROOTFH).Op(OP_GETFH).Encode());
  EXPECT_EQ(ops, (Results{{OP_PUTROOTFH, NFS4ERR_OP_NOT_IN_SESSION}}));
  // The ops allowed first pass the rule (and run: without the server's state, which
  // this program has none of, they are SERVERFAULT — session_ops_test.cc runs them
  // with it).
  for (nfs_opnum4 op : {OP_EXCHANGE_ID, OP_CREATE_SESSION, OP_DESTROY_SESSION,
                        OP_BIND_CONN_TO_SESSION, OP_DESTROY_CLIENTID, OP_SEQUENCE}) {
    std::tie(status, ops) = Run(Compound().Op(op).Encode());
    EXPECT_EQ(ops, (Results{{op, NFS4ERR_SERVERFAULT}})) << op;
  }
  // An op number no minor version has is OP_ILLEGAL wherever it is.
  std::tie(status, ops) = Run(Header(1, 1) + U32(99999));
  EXPECT_EQ(ops, (Results{{OP_ILLEGAL, NFS4ERR_OP_ILLEGAL}}));
}

TEST_F(CompoundTest, AFirstOpOtherThanSequenceMustBeTheOnlyOp) {
  for (bool require_sequence : {true, false}) {
    Use(CompoundOptions{.require_sequence = require_sequence});
    for (nfs_opnum4 op : {OP_DESTROY_CLIENTID, OP_EXCHANGE_ID, OP_CREATE_SESSION}) {
      auto [status, ops] = Run(Compound().Op(op).Op(OP_PUTROOTFH).Encode());
      EXPECT_EQ(status, NFS4ERR_NOT_ONLY_OP) << op;
      EXPECT_EQ(ops, (Results{{op, NFS4ERR_NOT_ONLY_OP}})) << op;
    }
  }
  // SEQUENCE may be followed by anything (without state it is SERVERFAULT).
  Use(CompoundOptions{});
  auto [status, ops] = Run(Compound().Op(OP_SEQUENCE).Op(OP_PUTROOTFH).Encode());
  EXPECT_EQ(ops, (Results{{OP_SEQUENCE, NFS4ERR_SERVERFAULT}}));
}

TEST_F(CompoundTest, SequenceAnywhereButFirstIsSequencePos) {
  auto [status, ops] = Run(Compound().Op(OP_PUTROOTFH).Op(OP_SEQUENCE).Op(OP_GETFH).Encode());
  EXPECT_EQ(status, NFS4ERR_SEQUENCE_POS);
  EXPECT_EQ(ops, (Results{{OP_PUTROOTFH, NFS4_OK}, {OP_SEQUENCE, NFS4ERR_SEQUENCE_POS}}));
}

TEST_F(CompoundTest, OpsThatNeedAFilehandleWithoutOneAreNofilehandle) {
  auto [status, ops] = Run(Compound().Op(OP_GETFH).Encode());
  EXPECT_EQ(status, NFS4ERR_NOFILEHANDLE);
  EXPECT_EQ(ops, (Results{{OP_GETFH, NFS4ERR_NOFILEHANDLE}}));
  std::tie(status, ops) = Run(Compound().Op(OP_SAVEFH).Encode());
  EXPECT_EQ(ops, (Results{{OP_SAVEFH, NFS4ERR_NOFILEHANDLE}}));
  // RESTOREFH needs a saved one, a current one is not enough.
  std::tie(status, ops) = Run(Compound().Op(OP_PUTROOTFH).Op(OP_RESTOREFH).Encode());
  EXPECT_EQ(ops, (Results{{OP_PUTROOTFH, NFS4_OK}, {OP_RESTOREFH, NFS4ERR_NOFILEHANDLE}}));
  // The filehandle rule comes before "not implemented".
  std::tie(status, ops) = Run(Compound().Named(OP_LOOKUP, "a").Encode());
  EXPECT_EQ(ops, (Results{{OP_LOOKUP, NFS4ERR_NOFILEHANDLE}}));
}

TEST_F(CompoundTest, ExecutionStopsAtTheFirstErrorWithTheResultsSoFar) {
  std::optional<rpc::testing::TestReply> r =
      Raw(Compound().Op(OP_PUTROOTFH).Op(OP_GETFH).Op(OP_OPENATTR).Op(OP_GETFH).Encode());
  ASSERT_TRUE(r && r->error.is_success());
  Reply reply(r->body);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->status, NFS4ERR_NOTSUPP);  // the last op's
  ASSERT_EQ(reply->resarray.resarray_len, 3u);
  const nfs_resop4* res = reply->resarray.resarray_val;
  EXPECT_EQ(res[0].resop, OP_PUTROOTFH);
  EXPECT_EQ(res[1].resop, OP_GETFH);
  EXPECT_EQ(res[1].nfs_resop4_u.opgetfh.status, NFS4_OK);
  const nfs_fh4& fh = res[1].nfs_resop4_u.opgetfh.GETFH4res_u.resok4.object;
  EXPECT_EQ(std::string(fh.nfs_fh4_val, fh.nfs_fh4_len), PseudoRootHandle().bytes);
  EXPECT_EQ(res[2].resop, OP_OPENATTR);
  EXPECT_EQ(OpStatus(res[2]), NFS4ERR_NOTSUPP);
}

TEST_F(CompoundTest, SavefhAndRestorefhRoundTrip) {
  std::optional<rpc::testing::TestReply> r = Raw(Compound()
                                                     .PutFh("handle-A")
                                                     .Op(OP_SAVEFH)
                                                     .PutFh("handle-B")
                                                     .Op(OP_GETFH)
                                                     .Op(OP_RESTOREFH)
                                                     .Op(OP_GETFH)
                                                     .Op(OP_RESTOREFH)  // saved stays saved
                                                     .Op(OP_GETFH)
                                                     .Encode());
  ASSERT_TRUE(r && r->error.is_success());
  Reply reply(r->body);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->status, NFS4_OK);
  ASSERT_EQ(reply->resarray.resarray_len, 8u);
  auto got = [&](int i) {
    const nfs_fh4& fh =
        reply->resarray.resarray_val[i].nfs_resop4_u.opgetfh.GETFH4res_u.resok4.object;
    return std::string(fh.nfs_fh4_val, fh.nfs_fh4_len);
  };
  EXPECT_EQ(got(3), "handle-B");
  EXPECT_EQ(got(5), "handle-A");
  EXPECT_EQ(got(7), "handle-A");
}

TEST_F(CompoundTest, PutfhOfAnEmptyHandleIsBadhandle) {
  auto [status, ops] = Run(Compound().PutFh("").Op(OP_GETFH).Encode());
  EXPECT_EQ(ops, (Results{{OP_PUTFH, NFS4ERR_BADHANDLE}}));
}

TEST_F(CompoundTest, ArgumentsThatDoNotDecodeAreBadxdrForThatOp) {
  // PUTFH whose handle is cut short; an op after it is never looked at.
  auto [status, ops] = Run(Header(1, 3) + U32(OP_PUTROOTFH) + U32(OP_PUTFH) + U32(20) + "short");
  EXPECT_EQ(status, NFS4ERR_BADXDR);
  EXPECT_EQ(ops, (Results{{OP_PUTROOTFH, NFS4_OK}, {OP_PUTFH, NFS4ERR_BADXDR}}));
  // A handle longer than NFS4_FHSIZE.
  std::tie(status, ops) =
      Run(Header(1, 1) + U32(OP_PUTFH) + Opaque(std::string(NFS4_FHSIZE + 1, 'h')));
  EXPECT_EQ(ops, (Results{{OP_PUTFH, NFS4ERR_BADXDR}}));
  // A truncated COMPOUND at every length of its last op's arguments.
  const std::string full = Compound().Op(OP_PUTROOTFH).Named(OP_LOOKUP, "name").Encode();
  const size_t lookup_args = full.size() - 8;  // "name" and its length word
  for (size_t len = lookup_args; len < full.size(); ++len) {
    std::tie(status, ops) = Run(full.substr(0, len));
    EXPECT_EQ(ops, (Results{{OP_PUTROOTFH, NFS4_OK}, {OP_LOOKUP, NFS4ERR_BADXDR}})) << len;
  }
}

TEST_F(CompoundTest, ACompoundCutBeforeAnOpNumberIsGarbageArgs) {
  // Two ops announced, one sent: knfsd's answer, GARBAGE_ARGS (nothing ran).
  std::optional<rpc::testing::TestReply> r = Raw(Header(1, 2) + U32(OP_PUTROOTFH));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error.accept_stat, rpc::AcceptStat::kGarbageArgs);
  // A header cut short.
  r = Raw(Opaque("tag") + U32(1));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error.accept_stat, rpc::AcceptStat::kGarbageArgs);
}

TEST_F(CompoundTest, AFourGibComponentIsBadxdr) {
  // LOOKUP whose name claims 4 GiB - 1 bytes: refused by its bound (nfs4.x
  // "Decoding bounds") before anything is allocated for it.
  auto [status, ops] =
      Run(Header(1, 2) + U32(OP_PUTROOTFH) + U32(OP_LOOKUP) + U32(0xffffffffu) + "abcd");
  EXPECT_EQ(status, NFS4ERR_BADXDR);
  EXPECT_EQ(ops, (Results{{OP_PUTROOTFH, NFS4_OK}, {OP_LOOKUP, NFS4ERR_BADXDR}}));
  // A 4 GiB tag: the header does not decode.
  std::optional<rpc::testing::TestReply> r = Raw(U32(0xfffffff0u) + U32(1) + U32(0));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error.accept_stat, rpc::AcceptStat::kGarbageArgs);
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
// The most address space this process has had mapped (VmPeak), in bytes.
size_t PeakMappedBytes() {
  FILE* f = fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  size_t kib = 0;
  while (fgets(line, sizeof line, f) != nullptr) {
    if (sscanf(line, "VmPeak: %zu kB", &kib) == 1) break;
  }
  fclose(f);
  return kib * 1024;
}

TEST_F(CompoundTest, HugeClaimedLengthsAllocateNothingLarge) {
  // Lengths and counts claiming 512 MiB and more (a component, a WRITE's data,
  // an attribute list, a list of stateids) are refused before rpcgen's decoder
  // allocates them: the process's peak mapping does not grow by anything like
  // it. (An unbounded decoder mallocs the claim — glibc maps it, so VmPeak
  // grows — and only then finds the bytes missing. Not under sanitizers, whose
  // allocators map differently.)
  const std::vector<std::string> bodies = {
      U32(OP_LOOKUP) + U32(0x20000000u),
      U32(OP_LOOKUP) + U32(0xffffffffu),
      U32(OP_WRITE) + std::string(16, '\0') + std::string(8, '\0') + U32(FILE_SYNC4) +
          U32(0x20000000u),
      U32(OP_SETATTR) + std::string(16, '\0') + U32(1) + U32(0) + U32(0x20000000u),
      U32(OP_TEST_STATEID) + U32(0x02000000u),  // 16-byte stateids: 512 MiB
  };
  const size_t before = PeakMappedBytes();
  ASSERT_GT(before, 0u);
  for (const std::string& body : bodies) {
    auto [status, ops] = Run(Header(1, 2) + U32(OP_PUTROOTFH) + body + "xxxx");
    EXPECT_EQ(status, NFS4ERR_BADXDR);
    EXPECT_EQ(ops.size(), 2u);
  }
  EXPECT_LT(PeakMappedBytes() - before, size_t{64} << 20);
}
#endif

TEST_F(CompoundTest, OpsRemovedInMinorVersionOneAreNotsupp) {
  for (nfs_opnum4 op :
       {OP_SETCLIENTID, OP_SETCLIENTID_CONFIRM, OP_OPEN_CONFIRM, OP_RENEW, OP_RELEASE_LOCKOWNER}) {
    // Their arguments are not even read (as knfsd): the op number alone will
    // do.
    auto [status, ops] = Run(Header(1, 3) + U32(OP_PUTROOTFH) + U32(op) + U32(OP_GETFH));
    EXPECT_EQ(status, NFS4ERR_NOTSUPP) << op;
    EXPECT_EQ(ops, (Results{{OP_PUTROOTFH, NFS4_OK}, {op, NFS4ERR_NOTSUPP}})) << op;
  }
}

TEST_F(CompoundTest, ChangesUnderThePseudoRootAreRofs) {
  auto [status, ops] = Run(Compound().Op(OP_PUTROOTFH).Named(OP_REMOVE, "x").Encode());
  EXPECT_EQ(ops, (Results{{OP_PUTROOTFH, NFS4_OK}, {OP_REMOVE, NFS4ERR_ROFS}}));
  // PUTFH of the pseudo root's bytes is the pseudo root again.
  std::tie(status, ops) =
      Run(Compound().PutFh(PseudoRootHandle().bytes).Named(OP_REMOVE, "x").Encode());
  EXPECT_EQ(ops, (Results{{OP_PUTFH, NFS4_OK}, {OP_REMOVE, NFS4ERR_ROFS}}));
  // Elsewhere the op reaches its handler, which needs a namespace (none here).
  std::tie(status, ops) = Run(Compound().PutFh("elsewhere").Named(OP_REMOVE, "x").Encode());
  EXPECT_EQ(ops, (Results{{OP_PUTFH, NFS4_OK}, {OP_REMOVE, NFS4ERR_SERVERFAULT}}));
}

// Every result the loop returns is counted once per op, run or refused; nothing
// without counters.
TEST(OpCountersTest, TheLoopCountsCallsAndErrorsPerOp) {
  OpCounters counters;
  Nfs4Services services;
  services.op_counters = &counters;
  const CompoundOptions no_sequence{.require_sequence = false};
  auto run = [&](uint32_t numops, const std::string& ops, Nfs4Services* with) {
    COMPOUND4res res{};
    CompoundState cs;
    cs.services = with;
    EXPECT_TRUE(RunCompound(no_sequence, CompoundHeader{1, numops}, ops, &res, cs));
    xdr_free(reinterpret_cast<xdrproc_t>(xdr_COMPOUND4res), reinterpret_cast<char*>(&res));
  };
  // PUTROOTFH, GETFH, then an unknown op (OP_ILLEGAL; nothing after it runs).
  run(4, U32(OP_PUTROOTFH) + U32(OP_GETFH) + U32(99999) + U32(OP_GETFH), &services);
  // GETFH without a filehandle: refused by the loop, counted as an error.
  run(1, U32(OP_GETFH), &services);
  run(1, U32(OP_GETFH), nullptr);  // not counted
  std::vector<std::tuple<uint32_t, uint64_t, uint64_t>> got;
  for (const OpCounters::Entry& e : counters.Read()) got.emplace_back(e.op, e.calls, e.errors);
  EXPECT_EQ(got, (std::vector<std::tuple<uint32_t, uint64_t, uint64_t>>{
                     {OP_GETFH, 2, 1}, {OP_PUTROOTFH, 1, 0}, {OP_ILLEGAL, 1, 1}}));
}

// In grace (a record left by the previous instance), the loop refuses REMOVE, RENAME,
// SETXATTR and REMOVEXATTR with NFS4ERR_GRACE before any handler; other ops, and these
// once grace is over, go on.
TEST(GraceInTheLoopTest, OpsFlaggedRefusedInGraceAreGraceWhileItLasts) {
  localnfs::testing::TempDir dir("compound-grace");
  {
    ClientRecordFile previous(dir.path(), 16);
    previous.Put({"host-a", Principal{rpc::AuthFlavor::kSys, 0, 0}});
    ASSERT_TRUE(previous.Flush().ok());
  }
  ClientRecordFile records(dir.path(), 16);
  int64_t now = 1;
  Nfs4State::Options o;
  o.records = &records;
  o.grace = absl::Seconds(10);
  o.now_ns = [&now] { return now; };
  Nfs4State state(o);
  Nfs4Services services;
  services.state = &state;
  auto run = [&](const std::string& ops) {
    COMPOUND4res res{};
    CompoundState cs;
    cs.services = &services;
    cs.current = FileHandle4{"fh", /*read_only=*/false};
    cs.saved = cs.current;
    EXPECT_TRUE(RunCompound(CompoundOptions{.require_sequence = false}, CompoundHeader{1, 1}, ops,
                            &res, cs));
    const nfsstat4 status = res.status;
    xdr_free(reinterpret_cast<xdrproc_t>(xdr_COMPOUND4res), reinterpret_cast<char*>(&res));
    return status;
  };
  const std::string remove = U32(OP_REMOVE) + Opaque("x");
  const std::string rename = U32(OP_RENAME) + Opaque("x") + Opaque("y");
  EXPECT_EQ(run(remove), NFS4ERR_GRACE);
  EXPECT_EQ(run(rename), NFS4ERR_GRACE);
  // Whatever else these answer (NOTSUPP until they have handlers), it is not GRACE.
  EXPECT_NE(run(U32(OP_LINK) + Opaque("n")), NFS4ERR_GRACE);  // not refused in grace
  now += absl::ToInt64Nanoseconds(absl::Seconds(10));
  EXPECT_NE(run(remove), NFS4ERR_GRACE);
  EXPECT_NE(run(rename), NFS4ERR_GRACE);
}

TEST(OpTableTest, EveryOpHasARowWithItsMinorVersion) {
  for (uint32_t op = 0; op < 3; ++op) EXPECT_EQ(FindOp(op), nullptr) << op;
  EXPECT_EQ(FindOp(OP_REMOVEXATTR + 1), nullptr);
  EXPECT_EQ(FindOp(OP_ILLEGAL), nullptr);
  for (uint32_t op = OP_ACCESS; op <= OP_REMOVEXATTR; ++op) {
    const OpDesc* d = FindOp(op);
    ASSERT_NE(d, nullptr) << op;
    EXPECT_NE(d->name, nullptr);
    // The filehandle, namespace, read-only and session ops have handlers so far.
    const bool implemented =
        op == OP_PUTFH || op == OP_PUTROOTFH || op == OP_PUTPUBFH || op == OP_GETFH ||
        op == OP_SAVEFH || op == OP_RESTOREFH || op == OP_LOOKUP || op == OP_LOOKUPP ||
        op == OP_GETATTR || op == OP_ACCESS || op == OP_READLINK || op == OP_READDIR ||
        op == OP_SECINFO || op == OP_SECINFO_NO_NAME || op == OP_VERIFY || op == OP_NVERIFY;
    const bool session_op = op == OP_EXCHANGE_ID || op == OP_CREATE_SESSION || op == OP_SEQUENCE ||
                            op == OP_DESTROY_SESSION || op == OP_DESTROY_CLIENTID ||
                            op == OP_BIND_CONN_TO_SESSION || op == OP_RECLAIM_COMPLETE;
    // The stateful file ops (nfs4proc_io.h).
    const bool stateful_op = op == OP_OPEN || op == OP_OPEN_DOWNGRADE || op == OP_CLOSE ||
                             op == OP_READ || op == OP_WRITE || op == OP_COMMIT ||
                             op == OP_LOCK || op == OP_LOCKT || op == OP_LOCKU ||
                             op == OP_TEST_STATEID || op == OP_FREE_STATEID ||
                             op == OP_DELEGRETURN || op == OP_BACKCHANNEL_CTL;
    // The namespace and attribute changes and NFSv4.2's content ops (nfs4proc_ns.h).
    const bool change_op = op == OP_CREATE || op == OP_REMOVE || op == OP_RENAME ||
                           op == OP_LINK || op == OP_SETATTR || op == OP_SEEK ||
                           op == OP_ALLOCATE || op == OP_DEALLOCATE || op == OP_COPY ||
                           op == OP_CLONE || op == OP_READ_PLUS || op == OP_OFFLOAD_CANCEL ||
                           op == OP_OFFLOAD_STATUS || op == OP_IO_ADVISE;
    EXPECT_EQ(d->handler != nullptr, implemented || session_op || stateful_op || change_op)
        << d->name;
  }
  EXPECT_STREQ(FindOp(OP_SEQUENCE)->name, "SEQUENCE");
  EXPECT_TRUE(FindOp(OP_SEQUENCE)->has(OpDesc::kMustBeFirst));
  EXPECT_TRUE(FindOp(OP_WRITE)->has(OpDesc::kModifiesFs));
  EXPECT_TRUE(FindOp(OP_RENAME)->has(OpDesc::kNeedsSavedFh));
  EXPECT_FALSE(FindOp(OP_PUTFH)->has(OpDesc::kNeedsCurrentFh));
}

// ---- The reply memory a COMPOUND reserves (nfs4_program.h "Reply memory")

// A READ's bytes by hand: stateid (16), offset, count.
std::string ReadOp(uint32_t count) {
  return U32(OP_READ) + std::string(16, '\0') + U32(0) + U32(0) + U32(count);
}
std::string SequenceOp() { return U32(OP_SEQUENCE) + std::string(16 + 16, '\0'); }

TEST(MaxCompoundResultBytes, ReadsCountTheirDataOthersASmallBound) {
  const std::string fh = Opaque("handle");
  const std::string putfh = U32(OP_PUTFH) + fh;
  const size_t read = MaxCompoundResultBytes(Header(1, 3) + SequenceOp() + putfh +
                                             ReadOp(512 * 1024));
  EXPECT_GE(read, 512u * 1024);
  EXPECT_LT(read, 512u * 1024 + 8192);
  // Two READs add up; GETATTR (decoded by rpcgen's routine) is small.
  const std::string getattr = U32(OP_GETATTR) + U32(2) + U32(1) + U32(2);
  const size_t two = MaxCompoundResultBytes(Header(1, 5) + SequenceOp() + putfh +
                                            ReadOp(100000) + getattr + ReadOp(100000));
  EXPECT_GE(two, 200000u);
  EXPECT_LT(two, 200000u + 8192);
  const size_t small = MaxCompoundResultBytes(Header(1, 3) + SequenceOp() + putfh + getattr);
  EXPECT_LT(small, 8192u);
  // READDIR: its maxcount.
  const std::string readdir =
      U32(OP_READDIR) + U32(0) + U32(0) + std::string(8, '\0') + U32(4096) + U32(300000) + U32(0);
  EXPECT_GE(MaxCompoundResultBytes(Header(1, 3) + SequenceOp() + putfh + readdir), 300000u);
}

TEST(MaxCompoundResultBytes, IsCappedAndSmallForGarbage) {
  // A count beyond what a session may answer, and many READs: the cap.
  EXPECT_EQ(MaxCompoundResultBytes(Header(1, 2) + SequenceOp() + ReadOp(0xffffffffu)),
            kMaxCompoundResultBytes);
  std::string many = Header(1, 40) + SequenceOp();
  for (int i = 0; i < 39; ++i) many += ReadOp(1u << 20);
  EXPECT_EQ(MaxCompoundResultBytes(many), kMaxCompoundResultBytes);
  // Cut short, a 4 GiB tag, too many ops, an op removed in 4.1: small.
  EXPECT_LT(MaxCompoundResultBytes(Header(1, 2) + SequenceOp() + U32(OP_READ)), 8192u);
  EXPECT_LT(MaxCompoundResultBytes(U32(0xfffffffcu) + "abcd"), 8192u);
  EXPECT_LT(MaxCompoundResultBytes(Header(1, 0xffffffffu) + ReadOp(1u << 20)), 8192u);
  EXPECT_LT(MaxCompoundResultBytes(Header(1, 3) + U32(OP_RENEW) + ReadOp(1u << 20)), 8192u);
  EXPECT_LT(MaxCompoundResultBytes(""), 8192u);
}

}  // namespace
}  // namespace localnfs::server::nfs4
