// server/nfs4/nfs4proc_io_test.cc — the stateful file ops (nfs4proc_io.h) as
// the server runs them: COMPOUNDs with SEQUENCE in real sessions (EXCHANGE_ID,
// CREATE_SESSION) sent through a Dispatcher to an Nfs4Program whose services
// hold an Nfs4State (with a fake clock, and its discarded clients wired to the
// open-state table as main.cc does), an OpenStateTable, and the namespace over
// a real export table and Backend (memory, and POSIX under the caching layer on
// a temporary directory).
//
// Exports below a temporary directory T: T/e (rw, no_root_squash) and T/r (ro).
#include <rpc/rpc.h>
#include <string.h>
#include <sys/stat.h>

#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "rpc/nfs4.h"
#include "server/nfs4/client_records.h"
#include "server/nfs4/compound.h"
#include "server/nfs4/nfs4proc_test_fixture.h"
#include "server/nfs4/open_state.h"
#include "server/nfs4/state.h"

// A namespace of its own: unity builds put several test files in one unit.
namespace localnfs::server::nfs4::io_test {
namespace {

using proc_fixture::AllKinds;
using proc_fixture::Cred;
using proc_fixture::EncodeCompound;
using proc_fixture::Kind;
using proc_fixture::KindName;
using proc_fixture::Reply;

constexpr uint64_t kWriteVerifier = 0x1122334455667788ull;

nfs_argop4 Op(nfs_opnum4 n) {
  nfs_argop4 a{};
  a.argop = n;
  return a;
}

stateid4 Special(uint32_t seqid, char other) {
  stateid4 s{};
  s.seqid = seqid;
  memset(s.other, other, sizeof(s.other));
  return s;
}
const stateid4 kAnonymous = Special(0, 0);
const stateid4 kReadBypass = Special(NFS4_UINT32_MAX, '\xff');
const stateid4 kCurrent = Special(1, 0);

// One client with its session: the slot-0 sequence it is at.
struct Client {
  SessionId session{};
  clientid4 id = 0;
  uint32_t seq = 1;
};

class Nfs4IoTest : public proc_fixture::Nfs4ProcFixture {
 protected:
  void SetUp() override {
    MakeTree("nfs4io", {"e", "r"}, 0755);
    StartBackend({Spec("e", /*read_only=*/false, exports::Squash::kNone),
                  Spec("r", /*read_only=*/true, exports::Squash::kNone)});
    {  // T/e may be written by anyone (the memory backend's root is 0755).
      backend::SetAttrRequest mode;
      mode.mode = 0777;
      const Credentials su = Cred(0, 0);
      ASSERT_TRUE(backend_->SetAttr(Root("e"), mode, std::nullopt, backend::Caller{su}).ok());
    }
    ASSERT_EQ(mkdir(tmp_->Sub("state").c_str(), 0700), 0);
    Start();
    Connect();
  }

  // The server's NFSv4 state as localnfsd builds it: the client records in T/state, the
  // open-state table, the client table (with a grace period when the previous instance
  // left records) whose discarded clients lose their opens, the program.
  void Start() {
    records_ = std::make_unique<ClientRecordFile>(tmp_->Sub("state"), 1024);
    open_state_ = std::make_unique<OpenStateTable>(*backend_, OpenStateTable::Options{});
    Nfs4State::Options o;
    o.lease = absl::Seconds(90);
    o.now_ns = [this] { return now_ns_; };
    o.on_client_gone = [this](clientid4 id) { open_state_->ReleaseClient(id); };
    o.records = records_.get();
    o.grace = absl::Seconds(90);
    o.boot = ++boot_;
    state_.emplace(o);
    services_.state = &*state_;
    services_.open_state = open_state_.get();
    services_.write_verifier = kWriteVerifier;
    StartProgram(Nfs4Program::Options{});
  }
  // A restart: every client, session, open and lock is gone; the records stay.
  void Restart() {
    StopProgram();
    state_.reset();
    open_state_.reset();
    records_.reset();
    Start();
  }

  void TearDown() override {
    StopProgram();
    state_.reset();
    records_.reset();
    open_state_.reset();
    Nfs4ProcFixture::TearDown();
  }

  std::string Encode(std::vector<nfs_argop4> ops) { return EncodeCompound(ops); }
  std::unique_ptr<Reply> Raw(std::vector<nfs_argop4> ops, const Credentials& cred) {
    return Send(Encode(std::move(ops)), cred);
  }

  Client Mount(const std::string& owner, bool reclaim_complete = true) {
    Client c;
    nfs_argop4 ex = Op(OP_EXCHANGE_ID);
    EXCHANGE_ID4args& ea = ex.nfs_argop4_u.opexchange_id;
    memset(ea.eia_clientowner.co_verifier, 'v', NFS4_VERIFIER_SIZE);
    const std::string& o = Keep(owner);
    ea.eia_clientowner.co_ownerid.co_ownerid_val = const_cast<char*>(o.data());
    ea.eia_clientowner.co_ownerid.co_ownerid_len = static_cast<u_int>(o.size());
    auto er = Raw({ex}, Cred(0, 0));
    EXPECT_EQ((*er)->status, NFS4_OK);
    const EXCHANGE_ID4resok& eok =
        (*er)->resarray.resarray_val[0].nfs_resop4_u.opexchange_id.EXCHANGE_ID4res_u.eir_resok4;
    c.id = eok.eir_clientid;
    nfs_argop4 cs = Op(OP_CREATE_SESSION);
    CREATE_SESSION4args& ca = cs.nfs_argop4_u.opcreate_session;
    ca.csa_clientid = eok.eir_clientid;
    ca.csa_sequence = eok.eir_sequenceid;
    ca.csa_fore_chan_attrs = {0, 1 << 20, (1 << 20) + 4096, 4096, 16, 4, {0, nullptr}};
    ca.csa_back_chan_attrs = {0, 4096, 4096, 0, 2, 1, {0, nullptr}};
    auto cr = Raw({cs}, Cred(0, 0));
    EXPECT_EQ((*cr)->status, NFS4_OK);
    if ((*cr)->status == NFS4_OK) {
      memcpy(c.session.data(),
             (*cr)
                 ->resarray.resarray_val[0]
                 .nfs_resop4_u.opcreate_session.CREATE_SESSION4res_u.csr_resok4.csr_sessionid,
             c.session.size());
    }
    // As the Linux client after mounting (or reclaiming): no new state before it
    // (state.h, grace).
    if (reclaim_complete) {
      EXPECT_EQ(Last(Run(c, {Op(OP_RECLAIM_COMPLETE)})), NFS4_OK);
    }
    return c;
  }

  // SEQUENCE on the client's slot 0, then `ops`.
  std::unique_ptr<Reply> Run(Client& c, std::vector<nfs_argop4> ops,
                             const Credentials& cred = Cred(0, 0)) {
    nfs_argop4 s = Op(OP_SEQUENCE);
    SEQUENCE4args& sa = s.nfs_argop4_u.opsequence;
    memcpy(sa.sa_sessionid, c.session.data(), c.session.size());
    sa.sa_sequenceid = c.seq++;
    ops.insert(ops.begin(), s);
    return Raw(std::move(ops), cred);
  }
  nfs_argop4 Seq(Client& c) {
    nfs_argop4 s = Op(OP_SEQUENCE);
    SEQUENCE4args& sa = s.nfs_argop4_u.opsequence;
    memcpy(sa.sa_sessionid, c.session.data(), c.session.size());
    sa.sa_sequenceid = c.seq;
    return s;
  }
  // COMPOUND bytes as they are: the decoded reply, or nullopt for an RPC-level error
  // (GARBAGE_ARGS: the ops did not decode, nothing ran).
  std::optional<std::string> RawBytes(const std::string& bytes) {
    return SendBytes(bytes, Cred(0, 0));
  }
  static nfsstat4 Last(const std::unique_ptr<Reply>& r) { return (*r)->status; }

  // ---- Op builders (their strings live in the fixture)

  const std::string& Keep(const std::string& s) {
    strings_.push_back(s);
    return strings_.back();
  }
  nfs_argop4 PutFh(const std::string& fh) {
    const std::string& s = Keep(fh);
    nfs_argop4 a = Op(OP_PUTFH);
    a.nfs_argop4_u.opputfh.object.nfs_fh4_len = static_cast<u_int>(s.size());
    a.nfs_argop4_u.opputfh.object.nfs_fh4_val = const_cast<char*>(s.data());
    return a;
  }
  // GETATTR of size and mode.
  nfs_argop4 GetSizeAndMode() {
    words_.emplace_back(std::vector<uint32_t>{1u << FATTR4_SIZE, 1u << (FATTR4_MODE - 32)});
    nfs_argop4 a = Op(OP_GETATTR);
    a.nfs_argop4_u.opgetattr.attr_request = bitmap4{2, words_.back().data()};
    return a;
  }
  // fattr4 with a mode (and a size when given).
  fattr4 ModeAttrs(uint32_t mode, std::optional<uint64_t> size = std::nullopt) {
    words_.emplace_back(
        std::vector<uint32_t>{size ? (1u << FATTR4_SIZE) : 0u, 1u << (FATTR4_MODE - 32), 0u});
    std::string v;
    auto put32 = [&](uint32_t x) {
      for (int i = 3; i >= 0; --i) v.push_back(static_cast<char>(x >> (8 * i)));
    };
    if (size) {
      put32(static_cast<uint32_t>(*size >> 32));
      put32(static_cast<uint32_t>(*size));
    }
    put32(mode);
    const std::string& s = Keep(v);
    fattr4 f{};
    f.attrmask = bitmap4{3, words_.back().data()};
    f.attr_vals.attrlist4_len = static_cast<u_int>(s.size());
    f.attr_vals.attrlist4_val = const_cast<char*>(s.data());
    return f;
  }
  nfs_argop4 Open(const std::string& owner, uint32_t access, uint32_t deny, open_claim_type4 claim,
                  const std::string& name = "") {
    nfs_argop4 a = Op(OP_OPEN);
    OPEN4args& o = a.nfs_argop4_u.opopen;
    o.share_access = access;
    o.share_deny = deny;
    const std::string& ow = Keep(owner);
    o.owner.owner.owner_val = const_cast<char*>(ow.data());
    o.owner.owner.owner_len = static_cast<u_int>(ow.size());
    o.openhow.opentype = OPEN4_NOCREATE;
    o.claim.claim = claim;
    if (claim == CLAIM_NULL) {
      const std::string& n = Keep(name);
      o.claim.open_claim4_u.file.utf8string_val = const_cast<char*>(n.data());
      o.claim.open_claim4_u.file.utf8string_len = static_cast<u_int>(n.size());
    }
    return a;
  }
  nfs_argop4 Create(const std::string& owner, const std::string& name, createmode4 mode,
                    uint32_t access = OPEN4_SHARE_ACCESS_BOTH, uint64_t verifier = 0) {
    nfs_argop4 a = Open(owner, access, OPEN4_SHARE_DENY_NONE, CLAIM_NULL, name);
    OPEN4args& o = a.nfs_argop4_u.opopen;
    o.openhow.opentype = OPEN4_CREATE;
    createhow4& h = o.openhow.openflag4_u.how;
    h.mode = mode;
    char verf[NFS4_VERIFIER_SIZE];
    for (int i = 0; i < NFS4_VERIFIER_SIZE; ++i)
      verf[i] = static_cast<char>(verifier >> (56 - 8 * i));
    if (mode == UNCHECKED4 || mode == GUARDED4) {
      h.createhow4_u.createattrs = ModeAttrs(0644);
    } else if (mode == EXCLUSIVE4) {
      memcpy(h.createhow4_u.createverf, verf, sizeof(verf));
    } else {
      memcpy(h.createhow4_u.ch_createboth.cva_verf, verf, sizeof(verf));
      h.createhow4_u.ch_createboth.cva_attrs = ModeAttrs(0600);
    }
    return a;
  }
  nfs_argop4 Write(const stateid4& sid, uint64_t offset, const std::string& data,
                   stable_how4 stable = UNSTABLE4) {
    nfs_argop4 a = Op(OP_WRITE);
    WRITE4args& w = a.nfs_argop4_u.opwrite;
    w.stateid = sid;
    w.offset = offset;
    w.stable = stable;
    const std::string& kept = Keep(data);
    w.data.data_len = static_cast<u_int>(kept.size());
    w.data.data_val = const_cast<char*>(kept.data());
    return a;
  }
  static nfs_argop4 Read(const stateid4& sid, uint64_t offset, uint32_t count) {
    nfs_argop4 a = Op(OP_READ);
    a.nfs_argop4_u.opread.stateid = sid;
    a.nfs_argop4_u.opread.offset = offset;
    a.nfs_argop4_u.opread.count = count;
    return a;
  }
  static nfs_argop4 Close(const stateid4& sid) {
    nfs_argop4 a = Op(OP_CLOSE);
    a.nfs_argop4_u.opclose.open_stateid = sid;
    return a;
  }
  nfs_argop4 LockNew(nfs_lock_type4 type, uint64_t off, uint64_t len, const stateid4& open,
                     const std::string& owner) {
    nfs_argop4 a = Op(OP_LOCK);
    LOCK4args& l = a.nfs_argop4_u.oplock;
    l.locktype = type;
    l.offset = off;
    l.length = len;
    l.locker.new_lock_owner = TRUE;
    l.locker.locker4_u.open_owner.open_stateid = open;
    const std::string& ow = Keep(owner);
    l.locker.locker4_u.open_owner.lock_owner.owner.owner_val = const_cast<char*>(ow.data());
    l.locker.locker4_u.open_owner.lock_owner.owner.owner_len = static_cast<u_int>(ow.size());
    return a;
  }
  static nfs_argop4 LockU(const stateid4& lock, uint64_t off, uint64_t len) {
    nfs_argop4 a = Op(OP_LOCKU);
    LOCKU4args& u = a.nfs_argop4_u.oplocku;
    u.locktype = WRITE_LT;
    u.lock_stateid = lock;
    u.offset = off;
    u.length = len;
    return a;
  }
  nfs_argop4 LockT(nfs_lock_type4 type, uint64_t off, uint64_t len, const std::string& owner) {
    nfs_argop4 a = Op(OP_LOCKT);
    LOCKT4args& t = a.nfs_argop4_u.oplockt;
    t.locktype = type;
    t.offset = off;
    t.length = len;
    const std::string& ow = Keep(owner);
    t.owner.owner.owner_val = const_cast<char*>(ow.data());
    t.owner.owner.owner_len = static_cast<u_int>(ow.size());
    return a;
  }

  // Creates T/e/name through OPEN (UNCHECKED, read-write) by `c`: the open
  // stateid and the file's handle.
  std::pair<stateid4, std::string> CreateFile(Client& c, const std::string& name,
                                              const std::string& owner = "oo") {
    auto r = Run(c, {PutFh(RootHandle("e")), Create(owner, name, UNCHECKED4), Op(OP_GETFH)});
    EXPECT_EQ(Last(r), NFS4_OK);
    if (Last(r) != NFS4_OK) return {};
    const stateid4 sid = At(r, 2).nfs_resop4_u.opopen.OPEN4res_u.resok4.stateid;
    const nfs_fh4& fh = At(r, 3).nfs_resop4_u.opgetfh.GETFH4res_u.resok4.object;
    return {sid, std::string(fh.nfs_fh4_val, fh.nfs_fh4_len)};
  }

  std::unique_ptr<OpenStateTable> open_state_;
  int64_t now_ns_ = 1'000'000'000;
  std::unique_ptr<ClientRecordFile> records_;
  uint32_t boot_ = 0;
  std::optional<Nfs4State> state_;
  std::deque<std::string> strings_;
  std::deque<std::vector<uint32_t>> words_;
};

uint64_t Verf(const verifier4 v) {
  uint64_t out = 0;
  for (int i = 0; i < NFS4_VERIFIER_SIZE; ++i) out = (out << 8) | static_cast<uint8_t>(v[i]);
  return out;
}

TEST_P(Nfs4IoTest, CreateWriteReadCommitCloseWithTheCurrentStateid) {
  Client c = Mount("host-a");
  const std::string data = "hello, nfs4";
  auto r = Run(c, {PutFh(RootHandle("e")), Create("oo", "f", UNCHECKED4),
                   Write(kCurrent, 0, data, FILE_SYNC4), Read(kCurrent, 0, 100), Op(OP_COMMIT),
                   Close(kCurrent)});
  ASSERT_EQ(Last(r), NFS4_OK) << ::testing::PrintToString(Statuses(r));
  const OPEN4resok& open = At(r, 2).nfs_resop4_u.opopen.OPEN4res_u.resok4;
  EXPECT_EQ(open.rflags, static_cast<uint32_t>(OPEN4_RESULT_LOCKTYPE_POSIX));
  EXPECT_EQ(open.delegation.delegation_type, OPEN_DELEGATE_NONE);
  EXPECT_NE(open.cinfo.before, 0u);
  ASSERT_GE(open.attrset.bitmap4_len, 2u);
  EXPECT_TRUE(open.attrset.bitmap4_val[1] & (1u << (FATTR4_MODE - 32)));
  const WRITE4resok& w = At(r, 3).nfs_resop4_u.opwrite.WRITE4res_u.resok4;
  EXPECT_EQ(w.count, data.size());
  EXPECT_EQ(w.committed, FILE_SYNC4);
  EXPECT_EQ(Verf(w.writeverf), kWriteVerifier);
  const READ4resok& rd = At(r, 4).nfs_resop4_u.opread.READ4res_u.resok4;
  EXPECT_EQ(std::string(rd.data.data_val, rd.data.data_len), data);
  EXPECT_TRUE(rd.eof);
  EXPECT_EQ(Verf(At(r, 5).nfs_resop4_u.opcommit.COMMIT4res_u.resok4.writeverf), kWriteVerifier);
  // CLOSE answers the special invalid stateid (RFC 8881 §18.2.4).
  const stateid4& closed = At(r, 6).nfs_resop4_u.opclose.CLOSE4res_u.open_stateid;
  EXPECT_EQ(closed.seqid, NFS4_UINT32_MAX);
  EXPECT_EQ(std::string(closed.other, NFS4_OTHER_SIZE), std::string(NFS4_OTHER_SIZE, '\0'));
  EXPECT_EQ(open_state_->counts().opens, 0u);
  // The stateid is gone with the open.
  auto again =
      Run(c, {PutFh(RootHandle("e")), Open("oo", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_NULL, "f"),
              Close(open.stateid)});
  EXPECT_EQ(Last(again), NFS4ERR_BAD_STATEID);
}

// As knfsd (RFC 8881 §16.2.3.1.2): PUTFH clears the current stateid, even of the same
// file; SAVEFH saves it with the filehandle and RESTOREFH brings both back, after
// another file's OPEN changed it.
TEST_P(Nfs4IoTest, PutfhClearsTheCurrentStateidAndSavefhRestorefhCarryIt) {
  Client c = Mount("host-a");
  auto [sid_f, f] = CreateFile(c, "f");
  auto [sid_g, g] = CreateFile(c, "g");
  EXPECT_EQ(Last(Run(c, {PutFh(f), Open("o2", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_FH),
                         Read(kCurrent, 0, 10)})),
            NFS4_OK);
  EXPECT_EQ(Last(Run(c, {PutFh(f), Open("o2", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_FH), PutFh(f),
                         Read(kCurrent, 0, 10)})),
            NFS4ERR_BAD_STATEID);
  auto r = Run(c, {PutFh(f), Open("o3", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_FH), Op(OP_SAVEFH),
                   PutFh(g), Open("o3", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_FH), Op(OP_RESTOREFH),
                   Read(kCurrent, 0, 10)});
  EXPECT_EQ(Last(r), NFS4_OK) << ::testing::PrintToString(Statuses(r));
  // Without a saved stateid, RESTOREFH leaves the current one (g's), which is not for f.
  auto none = Run(c, {PutFh(f), Op(OP_SAVEFH), PutFh(g),
                      Open("o4", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_FH), Op(OP_RESTOREFH),
                      Read(kCurrent, 0, 10)});
  EXPECT_EQ(Last(none), NFS4ERR_BAD_STATEID);
}

// GETATTR right after the PUTFH that resolved the file answers from the attributes that
// PUTFH read (CompoundState::resolved); after an op that changed the file in between, or
// a change by another COMPOUND, it reads them again: never stale.
TEST_P(Nfs4IoTest, GetattrAfterPutfhAnswersFromItsStatButNeverStale) {
  Client c = Mount("host-a");
  auto [sid, fh] = CreateFile(c, "f");
  auto size_and_mode = [&](const std::unique_ptr<Reply>& r, u_int i) {
    proc_fixture::Parsed p = AttrsAt(r, i);
    EXPECT_TRUE(p.ok);
    return std::make_pair(p.num[FATTR4_SIZE], p.num[FATTR4_MODE]);
  };
  auto r = Run(c, {PutFh(fh), GetSizeAndMode(), Write(sid, 0, "abcdef", FILE_SYNC4),
                   GetSizeAndMode()});
  ASSERT_EQ(Last(r), NFS4_OK) << ::testing::PrintToString(Statuses(r));
  EXPECT_EQ(size_and_mode(r, 2), std::make_pair(uint64_t{0}, uint64_t{0644}));
  EXPECT_EQ(size_and_mode(r, 4), std::make_pair(uint64_t{6}, uint64_t{0644}));
  // Another COMPOUND changes the file; the next PUTFH's own stat sees it.
  ASSERT_EQ(Last(Run(c, {PutFh(fh), Write(sid, 0, "0123456789", FILE_SYNC4)})), NFS4_OK);
  auto again = Run(c, {PutFh(fh), GetSizeAndMode()});
  ASSERT_EQ(Last(again), NFS4_OK);
  EXPECT_EQ(size_and_mode(again, 2).first, 10u);
}

TEST_P(Nfs4IoTest, StatefulOpsNeedTheirStateidAndTheCurrentOneOnlyForItsFile) {
  Client c = Mount("host-a");
  auto [sid, fh] = CreateFile(c, "f");
  // No current stateid in this COMPOUND yet.
  EXPECT_EQ(Last(Run(c, {PutFh(fh), Read(kCurrent, 0, 10)})), NFS4ERR_BAD_STATEID);
  // The READ bypass and the anonymous stateid read and write without an open.
  EXPECT_EQ(Last(Run(c, {PutFh(fh), Read(kReadBypass, 0, 10)})), NFS4_OK);
  EXPECT_EQ(Last(Run(c, {PutFh(fh), Write(kReadBypass, 0, "x")})), NFS4_OK);
  EXPECT_EQ(Last(Run(c, {PutFh(fh), Write(kAnonymous, 0, "x")})), NFS4_OK);
  // Another client's stateid is not this one's.
  Client other = Mount("host-b");
  EXPECT_EQ(Last(Run(other, {PutFh(fh), Read(sid, 0, 10)})), NFS4ERR_BAD_STATEID);
  // A read-only open cannot write.
  auto ro = Run(
      c, {PutFh(fh), Open("ro", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_FH), Write(kCurrent, 0, "x")});
  EXPECT_EQ(Statuses(ro).back(), NFS4ERR_OPENMODE);
  // An older seqid of an upgraded open is OLD_STATEID.
  auto up = Run(c, {PutFh(fh), Open("oo", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_FH)});
  ASSERT_EQ(Last(up), NFS4_OK);
  EXPECT_EQ(Last(Run(c, {PutFh(fh), Read(sid, 0, 10)})), NFS4ERR_OLD_STATEID);
  // TEST_STATEID: current, special, unknown.
  nfs_argop4 t = Op(OP_TEST_STATEID);
  stateid4 ids[3] = {At(up, 2).nfs_resop4_u.opopen.OPEN4res_u.resok4.stateid, kAnonymous,
                     Special(5, 'q')};
  t.nfs_argop4_u.optest_stateid.ts_stateids.ts_stateids_len = 3;
  t.nfs_argop4_u.optest_stateid.ts_stateids.ts_stateids_val = ids;
  auto tr = Run(c, {t});
  ASSERT_EQ(Last(tr), NFS4_OK);
  const auto& codes =
      At(tr, 1).nfs_resop4_u.optest_stateid.TEST_STATEID4res_u.tsr_resok4.tsr_status_codes;
  ASSERT_EQ(codes.tsr_status_codes_len, 3u);
  EXPECT_EQ(codes.tsr_status_codes_val[0], NFS4_OK);
  EXPECT_EQ(codes.tsr_status_codes_val[1], NFS4ERR_BAD_STATEID);
  EXPECT_EQ(codes.tsr_status_codes_val[2], NFS4ERR_BAD_STATEID);
}

TEST_P(Nfs4IoTest, CreateModesAndTheErrorsOfWhatCannotBeOpened) {
  Client c = Mount("host-a");
  CreateFile(c, "f");
  const std::string e = RootHandle("e");
  EXPECT_EQ(Last(Run(c, {PutFh(e), Create("oo", "f", GUARDED4)})), NFS4ERR_EXIST);
  // EXCLUSIVE4_1: a retransmit (same verifier) opens the file it made, another
  // is EXIST.
  EXPECT_EQ(Last(Run(c, {PutFh(e), Create("oo", "x", EXCLUSIVE4_1, OPEN4_SHARE_ACCESS_BOTH, 7)})),
            NFS4_OK);
  EXPECT_EQ(Last(Run(c, {PutFh(e), Create("oo", "x", EXCLUSIVE4_1, OPEN4_SHARE_ACCESS_BOTH, 7)})),
            NFS4_OK);
  EXPECT_EQ(Last(Run(c, {PutFh(e), Create("oo", "x", EXCLUSIVE4_1, OPEN4_SHARE_ACCESS_BOTH, 8)})),
            NFS4ERR_EXIST);
  EXPECT_EQ(Last(Run(c, {PutFh(e), Create("oo", "y", EXCLUSIVE4, OPEN4_SHARE_ACCESS_BOTH, 9)})),
            NFS4_OK);
  // Not there, a directory, a read-only export, a create by handle.
  EXPECT_EQ(Last(Run(c, {PutFh(e), Open("oo", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_NULL, "nope")})),
            NFS4ERR_NOENT);
  EXPECT_EQ(Last(Run(c, {PutFh(e), Open("oo", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_FH)})),
            NFS4ERR_ISDIR);
  const std::string r = RootHandle("r");
  EXPECT_EQ(Last(Run(c, {PutFh(r), Create("oo", "z", UNCHECKED4)})), NFS4ERR_ROFS);
  // Share access 0 and unknown deny bits.
  EXPECT_EQ(Last(Run(c, {PutFh(e), Open("oo", 0, 0, CLAIM_NULL, "f")})), NFS4ERR_INVAL);
  EXPECT_EQ(Last(Run(c, {PutFh(e), Open("oo", OPEN4_SHARE_ACCESS_READ, 8, CLAIM_NULL, "f")})),
            NFS4ERR_INVAL);
  // Reclaims outside a grace period, delegations never granted.
  EXPECT_EQ(Last(Run(c, {PutFh(e), Open("oo", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_PREVIOUS)})),
            NFS4ERR_NO_GRACE);
  EXPECT_EQ(Last(Run(c, {PutFh(e), Open("oo", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_DELEG_CUR_FH)})),
            NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Last(Run(c, {PutFh(e), Open("oo", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_DELEGATE_PREV)})),
            NFS4ERR_NOTSUPP);
  // A client that wants a delegation hears why there is none.
  auto want =
      Run(c, {PutFh(e), Open("oo", OPEN4_SHARE_ACCESS_READ | OPEN4_SHARE_ACCESS_WANT_READ_DELEG, 0,
                             CLAIM_NULL, "f")});
  ASSERT_EQ(Last(want), NFS4_OK);
  const open_delegation4& d = At(want, 2).nfs_resop4_u.opopen.OPEN4res_u.resok4.delegation;
  EXPECT_EQ(d.delegation_type, OPEN_DELEGATE_NONE_EXT);
  EXPECT_EQ(d.open_delegation4_u.od_whynone.ond_why, WND4_RESOURCE);
}

// pynfs OPEN2: an UNCHECKED4 create of a file that exists ignores its attributes but a
// size of 0, which truncates it (knfsd's do_open_lookup: op_truncate only for size 0;
// NFSv3's CREATE applies any size, as the Backend does).
TEST_P(Nfs4IoTest, AnUncheckedCreateOfAnExistingFileAppliesOnlyASizeOfZero) {
  Client c = Mount("host-a");
  const std::string e = RootHandle("e");
  auto create = [&](uint32_t mode, uint64_t size) {
    nfs_argop4 open = Create("oo", "f", UNCHECKED4);
    open.nfs_argop4_u.opopen.openhow.openflag4_u.how.createhow4_u.createattrs =
        ModeAttrs(mode, size);
    auto r = Run(c, {PutFh(e), open, GetSizeAndMode()});
    EXPECT_EQ(Last(r), NFS4_OK) << ::testing::PrintToString(Statuses(r));
    if (Last(r) != NFS4_OK) return std::make_tuple(uint64_t{}, uint64_t{}, false);
    proc_fixture::Parsed p = AttrsAt(r, 3);  // after SEQUENCE, PUTFH, OPEN
    const bitmap4& set = At(r, 2).nfs_resop4_u.opopen.OPEN4res_u.resok4.attrset;
    const bool size_set = set.bitmap4_len > 0 && (set.bitmap4_val[0] & (1u << FATTR4_SIZE));
    return std::make_tuple(p.num[FATTR4_SIZE], p.num[FATTR4_MODE], size_set);
  };
  EXPECT_EQ(create(0644, 32), std::make_tuple(uint64_t{32}, uint64_t{0644}, true));  // made
  EXPECT_EQ(create(0600, 16), std::make_tuple(uint64_t{32}, uint64_t{0644}, false));
  EXPECT_EQ(create(0600, 0), std::make_tuple(uint64_t{0}, uint64_t{0644}, true));
}

// pynfs RD12, WRT19: the open stateid of root's 0600 file, sent by another user, lets
// that user neither read nor write: the caller's permission is checked on each READ and
// WRITE (the Backend's, as NFSv3's), not only at OPEN.
TEST_P(Nfs4IoTest, AnotherUserCannotUseAStateidToPassTheModeBits) {
  Client c = Mount("host-a");
  const std::string e = RootHandle("e");
  nfs_argop4 open = Create("oo", "private", UNCHECKED4);
  open.nfs_argop4_u.opopen.openhow.openflag4_u.how.createhow4_u.createattrs = ModeAttrs(0600);
  auto r = Run(c, {PutFh(e), open, Op(OP_GETFH)});
  ASSERT_EQ(Last(r), NFS4_OK);
  const stateid4 sid = At(r, 2).nfs_resop4_u.opopen.OPEN4res_u.resok4.stateid;
  const nfs_fh4& got = At(r, 3).nfs_resop4_u.opgetfh.GETFH4res_u.resok4.object;
  const std::string fh(got.nfs_fh4_val, got.nfs_fh4_len);
  const Credentials stranger = Cred(3912, 2422);
  EXPECT_EQ(Last(Run(c, {PutFh(fh), Read(sid, 0, 10)}, stranger)), NFS4ERR_ACCESS);
  EXPECT_EQ(Last(Run(c, {PutFh(fh), Write(sid, 0, "data")}, stranger)), NFS4ERR_ACCESS);
  // The owner's own I/O with it goes on.
  EXPECT_EQ(Last(Run(c, {PutFh(fh), Write(sid, 0, "data"), Read(sid, 0, 10)})), NFS4_OK);
}

TEST_P(Nfs4IoTest, OpenChecksThePermissionOfTheSquashedUser) {
  Client c = Mount("host-a");
  auto [sid, fh] = CreateFile(c, "mine");  // root's, 0644
  const std::string e = RootHandle("e");
  const Credentials user = Cred(1000, 1000);
  EXPECT_EQ(
      Last(Run(c, {PutFh(e), Open("u", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_NULL, "mine")}, user)),
      NFS4_OK);
  EXPECT_EQ(
      Last(Run(c, {PutFh(e), Open("u", OPEN4_SHARE_ACCESS_WRITE, 0, CLAIM_NULL, "mine")}, user)),
      NFS4ERR_ACCESS);
  // The user may create in the (0777) export root.
  EXPECT_EQ(Last(Run(c, {PutFh(e), Create("u", "theirs", UNCHECKED4)}, user)), NFS4_OK);
}

TEST_P(Nfs4IoTest, ShareReservationsRefuseOtherClientsAndAnonymousIo) {
  Client a = Mount("host-a");
  Client b = Mount("host-b");
  auto [sid, fh] = CreateFile(a, "f");
  ASSERT_EQ(Last(Run(a, {PutFh(fh), Close(sid)})), NFS4_OK);
  ASSERT_EQ(Last(Run(a, {PutFh(fh),
                         Open("deny", OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_WRITE, CLAIM_FH)})),
            NFS4_OK);
  EXPECT_EQ(Last(Run(b, {PutFh(fh), Open("b", OPEN4_SHARE_ACCESS_WRITE, 0, CLAIM_FH)})),
            NFS4ERR_SHARE_DENIED);
  EXPECT_EQ(Last(Run(b, {PutFh(fh), Open("b", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_FH)})), NFS4_OK);
  EXPECT_EQ(Last(Run(b, {PutFh(fh), Write(kAnonymous, 0, "x")})), NFS4ERR_LOCKED);
  // The holder's lease runs out: a courtesy client loses the conflict, and its
  // record.
  now_ns_ += absl::ToInt64Nanoseconds(absl::Seconds(91));
  EXPECT_EQ(Last(Run(b, {PutFh(fh), Open("b", OPEN4_SHARE_ACCESS_WRITE, 0, CLAIM_FH)})), NFS4_OK);
  EXPECT_EQ(open_state_->states_of(a.id), 0u);
  EXPECT_EQ(state_->counts().confirmed, 1u);
  EXPECT_EQ(Statuses(Run(a, {})).front(), NFS4ERR_BADSESSION);
}

TEST_P(Nfs4IoTest, LocksConflictBetweenClientsWithTheOwnerNamed) {
  Client a = Mount("host-a");
  Client b = Mount("host-b");
  auto [sa, fh] = CreateFile(a, "f");
  auto lr = Run(a, {PutFh(fh), LockNew(WRITE_LT, 0, 100, sa, "lock-a")});
  ASSERT_EQ(Last(lr), NFS4_OK) << ::testing::PrintToString(Statuses(lr));
  const stateid4 la = At(lr, 2).nfs_resop4_u.oplock.LOCK4res_u.resok4.lock_stateid;
  auto ob = Run(b, {PutFh(fh), Open("ob", OPEN4_SHARE_ACCESS_BOTH, 0, CLAIM_FH)});
  ASSERT_EQ(Last(ob), NFS4_OK);
  const stateid4 sb = At(ob, 2).nfs_resop4_u.opopen.OPEN4res_u.resok4.stateid;
  auto denied = Run(b, {PutFh(fh), LockNew(READ_LT, 50, 10, sb, "lock-b")});
  ASSERT_EQ(Last(denied), NFS4ERR_DENIED);
  const LOCK4denied& d = At(denied, 2).nfs_resop4_u.oplock.LOCK4res_u.denied;
  EXPECT_EQ(d.offset, 0u);
  EXPECT_EQ(d.length, 100u);
  EXPECT_EQ(d.locktype, WRITE_LT);
  EXPECT_EQ(d.owner.clientid, a.id);
  EXPECT_EQ(std::string(d.owner.owner.owner_val, d.owner.owner.owner_len), "lock-a");
  EXPECT_EQ(Last(Run(b, {PutFh(fh), LockT(WRITE_LT, 99, 1, "lock-b")})), NFS4ERR_DENIED);
  EXPECT_EQ(Last(Run(b, {PutFh(fh), LockT(WRITE_LT, 100, NFS4_UINT64_MAX, "lock-b")})), NFS4_OK);
  // Bad ranges.
  EXPECT_EQ(Last(Run(b, {PutFh(fh), LockNew(READ_LT, 50, 0, sb, "lock-b")})), NFS4ERR_INVAL);
  // A lock stateid with locks cannot be freed; once unlocked it can.
  nfs_argop4 fr = Op(OP_FREE_STATEID);
  fr.nfs_argop4_u.opfree_stateid.fsa_stateid = la;
  EXPECT_EQ(Last(Run(a, {fr})), NFS4ERR_LOCKS_HELD);
  auto un = Run(a, {PutFh(fh), LockU(la, 0, NFS4_UINT64_MAX)});
  ASSERT_EQ(Last(un), NFS4_OK);
  EXPECT_EQ(Last(Run(b, {PutFh(fh), LockNew(READ_LT, 50, 10, sb, "lock-b")})), NFS4_OK);
  fr.nfs_argop4_u.opfree_stateid.fsa_stateid =
      At(un, 2).nfs_resop4_u.oplocku.LOCKU4res_u.lock_stateid;
  EXPECT_EQ(Last(Run(a, {fr})), NFS4_OK);
  // Locks on a directory: ISDIR.
  EXPECT_EQ(Last(Run(a, {PutFh(RootHandle("e")), LockT(WRITE_LT, 0, 1, "x")})), NFS4ERR_ISDIR);
}

TEST_P(Nfs4IoTest, ALockOfAVanishedClientGoesWhenAnotherClientWantsItAfterTheLease) {
  Client a = Mount("host-a");
  Client b = Mount("host-b");
  auto [sa, fh] = CreateFile(a, "f");
  ASSERT_EQ(Last(Run(a, {PutFh(fh), LockNew(WRITE_LT, 0, 10, sa, "la")})), NFS4_OK);
  auto ob = Run(b, {PutFh(fh), Open("ob", OPEN4_SHARE_ACCESS_BOTH, 0, CLAIM_FH)});
  ASSERT_EQ(Last(ob), NFS4_OK);
  const stateid4 sb = At(ob, 2).nfs_resop4_u.opopen.OPEN4res_u.resok4.stateid;
  // Within a's lease its lock holds (b keeps its lease by its SEQUENCEs).
  now_ns_ += absl::ToInt64Nanoseconds(absl::Seconds(60));
  EXPECT_EQ(Last(Run(b, {PutFh(fh), LockNew(WRITE_LT, 5, 1, sb, "lb")})), NFS4ERR_DENIED);
  // a is silent past its lease: a courtesy client, until b wants the range.
  now_ns_ += absl::ToInt64Nanoseconds(absl::Seconds(40));
  EXPECT_EQ(state_->counts().courtesy, 1u);
  EXPECT_EQ(Last(Run(b, {PutFh(fh), LockNew(WRITE_LT, 5, 1, sb, "lb")})), NFS4_OK);
  EXPECT_EQ(open_state_->states_of(a.id), 0u);
  EXPECT_EQ(state_->counts().courtesy, 0u);
}

TEST_P(Nfs4IoTest, DestroyClientIdIsBusyWhileTheClientHoldsOpens) {
  Client a = Mount("host-a");
  auto [sid, fh] = CreateFile(a, "f");
  Client b = Mount("host-b");
  nfs_argop4 d = Op(OP_DESTROY_CLIENTID);
  d.nfs_argop4_u.opdestroy_clientid.dca_clientid = a.id;
  EXPECT_EQ(Last(Run(b, {d})), NFS4ERR_CLIENTID_BUSY);
  ASSERT_EQ(Last(Run(a, {PutFh(fh), Close(sid)})), NFS4_OK);
  nfs_argop4 ds = Op(OP_DESTROY_SESSION);
  memcpy(ds.nfs_argop4_u.opdestroy_session.dsa_sessionid, a.session.data(), a.session.size());
  ASSERT_EQ(Last(Raw({ds}, Cred(0, 0))), NFS4_OK);
  EXPECT_EQ(Last(Raw({d}, Cred(0, 0))), NFS4_OK);
}

// RFC 8881 §18.35.4 case 3 (pynfs EID5e): another principal's EXCHANGE_ID for the
// owner takes a confirmed record without state at once, but not one whose opens live
// on after its session is gone (knfsd's client_has_state: CLID_INUSE).
TEST_P(Nfs4IoTest, AnotherPrincipalCannotTakeAClientThatHoldsOpens) {
  Client a = Mount("host-a");
  CreateFile(a, "f");
  nfs_argop4 ds = Op(OP_DESTROY_SESSION);
  memcpy(ds.nfs_argop4_u.opdestroy_session.dsa_sessionid, a.session.data(), a.session.size());
  ASSERT_EQ(Last(Raw({ds}, Cred(0, 0))), NFS4_OK);
  nfs_argop4 ex = Op(OP_EXCHANGE_ID);
  EXCHANGE_ID4args& ea = ex.nfs_argop4_u.opexchange_id;
  memset(ea.eia_clientowner.co_verifier, 'w', NFS4_VERIFIER_SIZE);
  const std::string& o = Keep("host-a");
  ea.eia_clientowner.co_ownerid.co_ownerid_val = const_cast<char*>(o.data());
  ea.eia_clientowner.co_ownerid.co_ownerid_len = static_cast<u_int>(o.size());
  EXPECT_EQ(Last(Raw({ex}, Cred(1111, 37))), NFS4ERR_CLID_INUSE);
  EXPECT_EQ(open_state_->states_of(a.id), 1u);
  // Its opens gone (released here directly), the record is stateless and goes.
  open_state_->ReleaseClient(a.id);
  EXPECT_EQ(Last(Raw({ex}, Cred(1111, 37))), NFS4_OK);
  EXPECT_EQ(state_->counts().confirmed, 0u);
}

TEST_P(Nfs4IoTest, ADiscardedClientLosesItsOpensAndLocks) {
  Client a = Mount("host-a");
  auto [sid, fh] = CreateFile(a, "f");
  ASSERT_EQ(Last(Run(a, {PutFh(fh), LockNew(WRITE_LT, 0, 10, sid, "l")})), NFS4_OK);
  EXPECT_EQ(open_state_->states_of(a.id), 2u);
  // The client reboots (a new verifier) and confirms its new record: the old
  // one goes.
  nfs_argop4 ex = Op(OP_EXCHANGE_ID);
  EXCHANGE_ID4args& ea = ex.nfs_argop4_u.opexchange_id;
  memset(ea.eia_clientowner.co_verifier, 'w', NFS4_VERIFIER_SIZE);
  const std::string& o = Keep("host-a");
  ea.eia_clientowner.co_ownerid.co_ownerid_val = const_cast<char*>(o.data());
  ea.eia_clientowner.co_ownerid.co_ownerid_len = static_cast<u_int>(o.size());
  auto er = Raw({ex}, Cred(0, 0));
  ASSERT_EQ(Last(er), NFS4_OK);
  const EXCHANGE_ID4resok& eok = At(er, 0).nfs_resop4_u.opexchange_id.EXCHANGE_ID4res_u.eir_resok4;
  nfs_argop4 cs = Op(OP_CREATE_SESSION);
  CREATE_SESSION4args& ca = cs.nfs_argop4_u.opcreate_session;
  ca.csa_clientid = eok.eir_clientid;
  ca.csa_sequence = eok.eir_sequenceid;
  ca.csa_fore_chan_attrs = {0, 1 << 20, 1 << 20, 4096, 16, 4, {0, nullptr}};
  ca.csa_back_chan_attrs = {0, 4096, 4096, 0, 2, 1, {0, nullptr}};
  ASSERT_EQ(Last(Raw({cs}, Cred(0, 0))), NFS4_OK);
  EXPECT_EQ(open_state_->states_of(a.id), 0u);
  EXPECT_EQ(open_state_->counts().opens, 0u);
}

TEST_P(Nfs4IoTest, BadArgumentsAreErrorsNeverCrashes) {
  Client c = Mount("host-a");
  auto [sid, fh] = CreateFile(c, "f");
  nfs_argop4 w = Write(sid, 0, "x");
  memset(&w.nfs_argop4_u.opwrite.stable, 0x7f, sizeof(w.nfs_argop4_u.opwrite.stable));
  EXPECT_NE(Last(Run(c, {PutFh(fh), w})), NFS4_OK);
  EXPECT_EQ(Last(Run(c, {PutFh(fh), Write(sid, INT64_MAX, "xy")})), NFS4ERR_FBIG);
  nfs_argop4 l = LockNew(WRITE_LT, 0, 1, sid, "l");
  memset(&l.nfs_argop4_u.oplock.locktype, 0x7f, sizeof(l.nfs_argop4_u.oplock.locktype));
  EXPECT_NE(Last(Run(c, {PutFh(fh), l})), NFS4_OK);
  // READ and WRITE of a directory, of the pseudo root.
  EXPECT_EQ(Last(Run(c, {PutFh(RootHandle("e")), Read(kAnonymous, 0, 1)})), NFS4ERR_ISDIR);
  EXPECT_EQ(Last(Run(c, {Op(OP_PUTROOTFH), Read(kAnonymous, 0, 1)})), NFS4ERR_ISDIR);
  EXPECT_EQ(Last(Run(c, {Op(OP_PUTROOTFH), Close(sid)})), NFS4ERR_ISDIR);
  // DELEGRETURN of anything: no delegation exists.
  nfs_argop4 dr = Op(OP_DELEGRETURN);
  dr.nfs_argop4_u.opdelegreturn.deleg_stateid = sid;
  EXPECT_EQ(Last(Run(c, {PutFh(fh), dr})), NFS4ERR_BAD_STATEID);
}

// What is not a regular file answers as knfsd's nfsd_check_obj_isreg: a directory
// ISDIR (above), a symlink SYMLINK, anything else WRONG_TYPE — for READ, WRITE, OPEN and
// the lock ops alike (nfs4proc.h CheckRegular).
TEST_P(Nfs4IoTest, IoOnASymlinkIsSymlinkAndOnAFifoWrongType) {
  Client c = Mount("host-a");
  const backend::Caller su{Cred(0, 0)};
  auto link = backend_->Symlink(Root("e"), "link", "target", {}, su);
  ASSERT_TRUE(link.ok()) << link.status();
  auto fifo = backend_->Mknod(Root("e"), "fifo", backend::FileType::kFifo, 0, 0, {}, su);
  ASSERT_TRUE(fifo.ok()) << fifo.status();
  const std::pair<std::string, nfsstat4> cases[] = {{ExportHandle("e", *link), NFS4ERR_SYMLINK},
                                                    {ExportHandle("e", *fifo), NFS4ERR_WRONG_TYPE}};
  for (const auto& [fh, want] : cases) {
    EXPECT_EQ(Last(Run(c, {PutFh(fh), Read(kAnonymous, 0, 1)})), want);
    EXPECT_EQ(Last(Run(c, {PutFh(fh), Write(kAnonymous, 0, "x")})), want);
    EXPECT_EQ(Last(Run(c, {PutFh(fh), LockT(WRITE_LT, 0, 1, "x")})), want);
    EXPECT_EQ(Last(Run(c, {PutFh(fh), Open("oo", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_FH)})), want);
  }
}

TEST_P(Nfs4IoTest, AfterARestartTheClientReclaimsItsOpenAndLockInGrace) {
  Client a = Mount("host-a");
  auto [sid, fh] = CreateFile(a, "f");
  ASSERT_EQ(Last(Run(a, {PutFh(fh), Write(sid, 0, "abc", FILE_SYNC4),
                         LockNew(WRITE_LT, 0, 10, sid, "l")})),
            NFS4_OK);
  Restart();
  Client again = Mount("host-a", /*reclaim_complete=*/false);
  Client newcomer = Mount("host-b", /*reclaim_complete=*/false);
  const std::string e = RootHandle("e");
  // In grace: new opens wait, reclaims by a client of the previous instance succeed.
  EXPECT_EQ(Last(Run(again, {PutFh(e), Open("oo", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_NULL, "f")})),
            NFS4ERR_GRACE);
  EXPECT_EQ(Last(Run(newcomer, {PutFh(fh), Open("n", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_PREVIOUS)})),
            NFS4ERR_NO_GRACE);
  nfs_argop4 reclaim = Open("oo", OPEN4_SHARE_ACCESS_BOTH, 0, CLAIM_PREVIOUS);
  reclaim.nfs_argop4_u.opopen.claim.open_claim4_u.delegate_type = OPEN_DELEGATE_NONE;
  nfs_argop4 lock = LockNew(WRITE_LT, 0, 10, kCurrent, "l");
  lock.nfs_argop4_u.oplock.reclaim = TRUE;
  auto r = Run(again, {PutFh(fh), reclaim, lock, Read(kCurrent, 0, 10)});
  ASSERT_EQ(Last(r), NFS4_OK) << ::testing::PrintToString(Statuses(r));
  const READ4resok& rd = At(r, 4).nfs_resop4_u.opread.READ4res_u.resok4;
  EXPECT_EQ(std::string(rd.data.data_val, rd.data.data_len), "abc");
  // A new lock is not a reclaim.
  const stateid4 open = At(r, 2).nfs_resop4_u.opopen.OPEN4res_u.resok4.stateid;
  EXPECT_EQ(Last(Run(again, {PutFh(fh), LockNew(READ_LT, 50, 1, open, "m")})), NFS4ERR_GRACE);
  // The only previous client is done: grace ends, and the reclaimed lock holds.
  EXPECT_EQ(Last(Run(again, {Op(OP_RECLAIM_COMPLETE)})), NFS4_OK);
  EXPECT_FALSE(state_->in_grace());
  EXPECT_EQ(Last(Run(newcomer, {Op(OP_RECLAIM_COMPLETE)})), NFS4_OK);
  auto ob = Run(newcomer, {PutFh(fh), Open("n", OPEN4_SHARE_ACCESS_BOTH, 0, CLAIM_FH),
                           LockNew(WRITE_LT, 5, 1, kCurrent, "x")});
  EXPECT_EQ(Last(ob), NFS4ERR_DENIED) << ::testing::PrintToString(Statuses(ob));
}

TEST_P(Nfs4IoTest, MutatedArgumentsAreAnsweredNeverCrash) {
  Client c = Mount("host-a");
  auto [sid, fh] = CreateFile(c, "f");
  auto lr = Run(c, {PutFh(fh), Write(sid, 0, "0123456789"), LockNew(WRITE_LT, 0, 5, sid, "l")});
  ASSERT_EQ(Last(lr), NFS4_OK);
  const stateid4 lock = At(lr, 3).nfs_resop4_u.oplock.LOCK4res_u.resok4.lock_stateid;
  const std::string e = RootHandle("e");
  nfs_argop4 exist = LockNew(READ_LT, 20, 5, sid, "");
  exist.nfs_argop4_u.oplock.locker.new_lock_owner = FALSE;
  exist.nfs_argop4_u.oplock.locker.locker4_u.lock_owner.lock_stateid = lock;
  nfs_argop4 down = Op(OP_OPEN_DOWNGRADE);
  down.nfs_argop4_u.opopen_downgrade.open_stateid = sid;
  down.nfs_argop4_u.opopen_downgrade.share_access = OPEN4_SHARE_ACCESS_READ;
  nfs_argop4 test = Op(OP_TEST_STATEID);
  stateid4 ids[2] = {sid, lock};
  test.nfs_argop4_u.optest_stateid.ts_stateids.ts_stateids_len = 2;
  test.nfs_argop4_u.optest_stateid.ts_stateids.ts_stateids_val = ids;
  nfs_argop4 fr = Op(OP_FREE_STATEID);
  fr.nfs_argop4_u.opfree_stateid.fsa_stateid = lock;
  nfs_argop4 dr = Op(OP_DELEGRETURN);
  dr.nfs_argop4_u.opdelegreturn.deleg_stateid = sid;
  struct Case {
    std::string fh;
    nfs_argop4 op;
  };
  const std::vector<Case> cases = {
      {e, Create("m", "g1", UNCHECKED4)},
      {e, Create("m", "g2", GUARDED4)},
      {e, Create("m", "g3", EXCLUSIVE4, OPEN4_SHARE_ACCESS_BOTH, 3)},
      {e, Create("m", "g4", EXCLUSIVE4_1, OPEN4_SHARE_ACCESS_BOTH, 4)},
      {e, Open("m", OPEN4_SHARE_ACCESS_READ, 0, CLAIM_NULL, "f")},
      {fh, Open("m", OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE, CLAIM_FH)},
      {fh, down},
      {fh, Close(sid)},
      {fh, Read(sid, 0, 100)},
      {fh, Write(sid, 3, "abc", DATA_SYNC4)},
      {fh, Op(OP_COMMIT)},
      {fh, LockNew(WRITE_LT, 10, 5, sid, "n")},
      {fh, exist},
      {fh, LockT(WRITE_LT, 0, 100, "t")},
      {fh, LockU(lock, 0, 5)},
      {fh, test},
      {fh, fr},
      {fh, dr},
      {fh, Op(OP_BACKCHANNEL_CTL)},
  };
  std::mt19937 rng(29);
  size_t answered = 0;
  for (size_t k = 0; k < cases.size(); ++k) {
    for (int i = 0; i < 200; ++i) {
      const size_t args_at = Encode({Seq(c), PutFh(cases[k].fh)}).size() + 4;
      std::string bytes = Encode({Seq(c), PutFh(cases[k].fh), cases[k].op});
      if (bytes.size() > args_at) {
        const int flips = 1 + static_cast<int>(rng() % 3);
        for (int f = 0; f < flips; ++f)
          bytes[args_at + rng() % (bytes.size() - args_at)] = static_cast<char>(rng());
        if (rng() % 4 == 0) bytes.resize(args_at + rng() % (bytes.size() - args_at));
      }
      std::optional<std::string> body = RawBytes(bytes);
      if (!body) continue;  // did not decode: nothing ran, the slot's seqid is unused
      Reply r(*body);
      ASSERT_TRUE(r.ok()) << "case " << k << " mutation " << i;
      ASSERT_GE(r->resarray.resarray_len, 1u) << "case " << k;
      ASSERT_EQ(OpStatus(r->resarray.resarray_val[0]), NFS4_OK) << "case " << k;
      ++c.seq;
      ++answered;
    }
  }
  // Most mutations decode (and run); the server answers as before.
  EXPECT_GT(answered, cases.size() * 100);
  auto after = Run(c, {PutFh(fh), Read(kAnonymous, 0, 100)});
  EXPECT_EQ(Last(after), NFS4_OK);
}

INSTANTIATE_TEST_SUITE_P(Backends, Nfs4IoTest, AllKinds(), KindName);

}  // namespace
}  // namespace localnfs::server::nfs4::io_test
