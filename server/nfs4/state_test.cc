// server/nfs4/state_test.cc — Nfs4State: the EXCHANGE_ID record cases, CREATE_SESSION's
// sequence and its replay, the slot table as reply cache, leases and courtesy clients,
// and the bounds, with an injected clock.
#include "server/nfs4/state.h"

#include <string.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/nfs4/client_records.h"
#include "tests/support/temp_dir.h"

namespace localnfs::server::nfs4 {
namespace {

constexpr int64_t kSecond = 1000000000;

// EXCHANGE_ID arguments whose strings live here.
struct ExchangeArgs {
  explicit ExchangeArgs(std::string owner_in, char verifier_byte = 'v')
      : owner(std::move(owner_in)) {
    memset(args.eia_clientowner.co_verifier, verifier_byte, NFS4_VERIFIER_SIZE);
    args.eia_clientowner.co_ownerid.co_ownerid_val = owner.data();
    args.eia_clientowner.co_ownerid.co_ownerid_len = static_cast<u_int>(owner.size());
    args.eia_state_protect.spa_how = SP4_NONE;
  }
  std::string owner;
  EXCHANGE_ID4args args{};
};

CREATE_SESSION4args SessionArgs(clientid4 id, sequenceid4 seq, uint32_t slots = 8) {
  CREATE_SESSION4args a{};
  a.csa_clientid = id;
  a.csa_sequence = seq;
  a.csa_flags = CREATE_SESSION4_FLAG_CONN_BACK_CHAN | CREATE_SESSION4_FLAG_PERSIST;
  a.csa_fore_chan_attrs = {0, 1 << 20, 1 << 20, 8192, 16, slots, {0, nullptr}};
  a.csa_back_chan_attrs = {0, 4096, 4096, 0, 2, 16, {0, nullptr}};
  return a;
}

class StateTest : public ::testing::Test {
 protected:
  void Make(Nfs4State::Options o = {}) {
    o.now_ns = [this] { return now_; };
    o.boot = 7;
    state_ = std::make_unique<Nfs4State>(std::move(o));
  }
  void SetUp() override { Make(); }

  // A client with a session: EXCHANGE_ID + CREATE_SESSION.
  Nfs4State::CreateSessionResult Mount(const std::string& owner, Principal who = root_,
                                       clientid4* id = nullptr, uint32_t slots = 8) {
    ExchangeArgs ex(owner);
    Nfs4State::ExchangeIdResult r;
    EXPECT_EQ(state_->ExchangeId(ex.args, who, &r), NFS4_OK);
    Nfs4State::CreateSessionResult s;
    CREATE_SESSION4args cs = SessionArgs(r.clientid, r.sequenceid, slots);
    EXPECT_EQ(state_->CreateSession(cs, who, 1, &s), NFS4_OK);
    if (id != nullptr) *id = r.clientid;
    return s;
  }

  nfsstat4 Seq(const SessionId& id, uint32_t slot, uint32_t seqid, Nfs4State::SequenceResult* out,
               uint64_t hash = 1, uint32_t numops = 2, size_t bytes = 200) {
    SEQUENCE4args a{};
    memcpy(a.sa_sessionid, id.data(), id.size());
    a.sa_sequenceid = seqid;
    a.sa_slotid = slot;
    Nfs4State::SequenceRequest req{&a, numops, bytes, hash, 1};
    return state_->Sequence(req, out);
  }

  static constexpr Principal root_{rpc::AuthFlavor::kSys, 0, 0};
  int64_t now_ = 1000 * kSecond;
  std::unique_ptr<Nfs4State> state_;
};

TEST_F(StateTest, NewOwnerGetsAnUnconfirmedRecordThatCreateSessionConfirms) {
  ExchangeArgs ex("host-a");
  Nfs4State::ExchangeIdResult r;
  ASSERT_EQ(state_->ExchangeId(ex.args, root_, &r), NFS4_OK);
  EXPECT_EQ(r.flags, EXCHGID4_FLAG_USE_NON_PNFS);
  EXPECT_EQ(r.sequenceid, 1u);
  EXPECT_EQ(r.clientid >> 32, 7u);
  EXPECT_EQ(state_->counts().unconfirmed, 1u);

  Nfs4State::CreateSessionResult s;
  ASSERT_EQ(state_->CreateSession(SessionArgs(r.clientid, 1), root_, 1, &s), NFS4_OK);
  EXPECT_EQ(s.sequence, 1u);
  // PERSIST is not offered; the back channel is accepted (no callback is sent on it).
  EXPECT_EQ(s.flags, CREATE_SESSION4_FLAG_CONN_BACK_CHAN);
  EXPECT_EQ(s.fore.maxrequests, 8u);
  EXPECT_EQ(s.fore.maxoperations, 16u);
  EXPECT_EQ(s.fore.maxresponsesize_cached, 4096u);  // clamped to max_cached_reply
  EXPECT_EQ(s.back.maxrequests, 1u);
  EXPECT_EQ(state_->counts().confirmed, 1u);
  EXPECT_EQ(state_->counts().sessions, 1u);

  // Its own retry gets the same reply; the next is seqid + 1; others are misordered.
  Nfs4State::CreateSessionResult again;
  ASSERT_EQ(state_->CreateSession(SessionArgs(r.clientid, 1), root_, 1, &again), NFS4_OK);
  EXPECT_EQ(again.sessionid, s.sessionid);
  EXPECT_EQ(state_->counts().sessions, 1u);
  EXPECT_EQ(state_->CreateSession(SessionArgs(r.clientid, 3), root_, 1, &again),
            NFS4ERR_SEQ_MISORDERED);
  ASSERT_EQ(state_->CreateSession(SessionArgs(r.clientid, 2), root_, 1, &again), NFS4_OK);
  EXPECT_NE(again.sessionid, s.sessionid);

  // The same owner, verifier and principal again: the confirmed record, CONFIRMED_R.
  Nfs4State::ExchangeIdResult r2;
  ASSERT_EQ(state_->ExchangeId(ex.args, root_, &r2), NFS4_OK);
  EXPECT_EQ(r2.clientid, r.clientid);
  EXPECT_EQ(r2.flags, EXCHGID4_FLAG_USE_NON_PNFS | EXCHGID4_FLAG_CONFIRMED_R);
  EXPECT_EQ(r2.sequenceid, 3u);
}

TEST_F(StateTest, UnknownClientIdIsStaleAndAnUnconfirmedRetryIsMisordered) {
  Nfs4State::CreateSessionResult s;
  EXPECT_EQ(state_->CreateSession(SessionArgs(12345, 1), root_, 1, &s), NFS4ERR_STALE_CLIENTID);
  ExchangeArgs ex("host-a");
  Nfs4State::ExchangeIdResult r;
  ASSERT_EQ(state_->ExchangeId(ex.args, root_, &r), NFS4_OK);
  EXPECT_EQ(state_->CreateSession(SessionArgs(r.clientid, 0), root_, 1, &s),
            NFS4ERR_SEQ_MISORDERED);
  // Another principal cannot confirm it.
  EXPECT_EQ(state_->CreateSession(SessionArgs(r.clientid, 1),
                                  Principal{rpc::AuthFlavor::kSys, 5, 5}, 1, &s),
            NFS4ERR_CLID_INUSE);
  // Flags no RFC defines; a GSS callback.
  CREATE_SESSION4args odd = SessionArgs(r.clientid, 1);
  odd.csa_flags = 0x10;
  EXPECT_EQ(state_->CreateSession(odd, root_, 1, &s), NFS4ERR_INVAL);
  callback_sec_parms4 gss{};
  gss.cb_secflavor = 6;  // RPCSEC_GSS
  odd = SessionArgs(r.clientid, 1);
  odd.csa_sec_parms.csa_sec_parms_len = 1;
  odd.csa_sec_parms.csa_sec_parms_val = &gss;
  EXPECT_EQ(state_->CreateSession(odd, root_, 1, &s), NFS4ERR_ENCR_ALG_UNSUPP);
  // ...but one among usable ones is passed over (pynfs CSESS16; knfsd's
  // nfsd4_decode_cb_sec takes the first AUTH_NONE or AUTH_SYS).
  {
    callback_sec_parms4 mixed[2]{};
    mixed[0].cb_secflavor = 6;  // RPCSEC_GSS
    mixed[1].cb_secflavor = AUTH_NONE;
    ExchangeArgs other_owner("host-cb");
    Nfs4State::ExchangeIdResult rc;
    ASSERT_EQ(state_->ExchangeId(other_owner.args, root_, &rc), NFS4_OK);
    CREATE_SESSION4args ok = SessionArgs(rc.clientid, rc.sequenceid);
    ok.csa_sec_parms.csa_sec_parms_len = 2;
    ok.csa_sec_parms.csa_sec_parms_val = mixed;
    EXPECT_EQ(state_->CreateSession(ok, root_, 1, &s), NFS4_OK);
  }
  // Too small a channel.
  CREATE_SESSION4args tiny = SessionArgs(r.clientid, 1);
  tiny.csa_fore_chan_attrs.ca_maxrequestsize = 16;
  EXPECT_EQ(state_->CreateSession(tiny, root_, 1, &s), NFS4ERR_TOOSMALL);
}

TEST_F(StateTest, RebootedClientGetsANewRecordAndLosesTheOldOnConfirm) {
  clientid4 old_id = 0;
  const Nfs4State::CreateSessionResult old = Mount("host-a", root_, &old_id);
  ExchangeArgs rebooted("host-a", 'w');
  Nfs4State::ExchangeIdResult r;
  ASSERT_EQ(state_->ExchangeId(rebooted.args, root_, &r), NFS4_OK);
  EXPECT_NE(r.clientid, old_id);
  EXPECT_EQ(r.flags & EXCHGID4_FLAG_CONFIRMED_R, 0u);
  // Until the new record is confirmed the old session still works.
  Nfs4State::SequenceResult q;
  EXPECT_EQ(Seq(old.sessionid, 0, 1, &q), NFS4_OK);
  q = {};
  Nfs4State::CreateSessionResult s;
  ASSERT_EQ(state_->CreateSession(SessionArgs(r.clientid, r.sequenceid), root_, 1, &s), NFS4_OK);
  EXPECT_EQ(Seq(old.sessionid, 0, 2, &q), NFS4ERR_BADSESSION);
  EXPECT_EQ(state_->counts().confirmed, 1u);
  EXPECT_EQ(state_->counts().sessions, 1u);
}

TEST_F(StateTest, AnotherPrincipalIsRefusedWhileTheClientHasStateAndLiveLease) {
  Mount("host-a");
  ExchangeArgs ex("host-a");
  const Principal other{rpc::AuthFlavor::kSys, 1000, 1000};
  Nfs4State::ExchangeIdResult r;
  EXPECT_EQ(state_->ExchangeId(ex.args, other, &r), NFS4ERR_CLID_INUSE);
  // Expired (a courtesy client): it loses to the conflict.
  now_ += 91 * kSecond;
  ASSERT_EQ(state_->ExchangeId(ex.args, other, &r), NFS4_OK);
  EXPECT_EQ(state_->counts().sessions, 0u);
  EXPECT_EQ(state_->counts().courtesy, 0u);
}

// pynfs EID5e / EID5g (RFC 8881 §18.35.4 case 3, as knfsd's nfsd4_exchange_id): a
// confirmed record without state loses to another principal at once — its clientid is
// stale before the new record is confirmed.
TEST_F(StateTest, AnotherPrincipalReplacesAStatelessConfirmedRecordAtOnce) {
  clientid4 old_id = 0;
  const Nfs4State::CreateSessionResult s = Mount("host-a", root_, &old_id);
  ASSERT_EQ(state_->DestroySession(s.sessionid, nullptr), NFS4_OK);
  ASSERT_EQ(state_->ConfirmedClientOf("host-a"), std::optional<clientid4>(old_id));
  ExchangeArgs ex("host-a", 'n');
  const Principal other{rpc::AuthFlavor::kSys, 1111, 37};
  Nfs4State::ExchangeIdResult r;
  ASSERT_EQ(state_->ExchangeId(ex.args, other, &r), NFS4_OK);
  EXPECT_NE(r.clientid, old_id);
  Nfs4State::CreateSessionResult again;
  EXPECT_EQ(state_->CreateSession(SessionArgs(old_id, 2), root_, 1, &again),
            NFS4ERR_STALE_CLIENTID);
  EXPECT_EQ(state_->ConfirmedClientOf("host-a"), std::nullopt);
  EXPECT_EQ(state_->counts().confirmed, 0u);
  EXPECT_EQ(state_->counts().unconfirmed, 1u);
}

// Opens or locks (which the open-state table holds, and the caller reports) are state
// too: the record without sessions but with opens is CLID_INUSE to another principal.
TEST_F(StateTest, AnotherPrincipalIsRefusedWhileTheClientHoldsOpens) {
  clientid4 old_id = 0;
  const Nfs4State::CreateSessionResult s = Mount("host-a", root_, &old_id);
  ASSERT_EQ(state_->DestroySession(s.sessionid, nullptr), NFS4_OK);
  ExchangeArgs ex("host-a", 'n');
  const Principal other{rpc::AuthFlavor::kSys, 1111, 37};
  Nfs4State::ExchangeIdResult r;
  EXPECT_EQ(state_->ExchangeId(ex.args, other, &r, {}, old_id), NFS4ERR_CLID_INUSE);
  EXPECT_EQ(state_->counts().confirmed, 1u);
}

TEST_F(StateTest, UpdateConfirmedRecordCases) {
  ExchangeArgs ex("host-a");
  ex.args.eia_flags = EXCHGID4_FLAG_UPD_CONFIRMED_REC_A;
  Nfs4State::ExchangeIdResult r;
  EXPECT_EQ(state_->ExchangeId(ex.args, root_, &r), NFS4ERR_NOENT);
  Mount("host-a");
  EXPECT_EQ(state_->ExchangeId(ex.args, root_, &r), NFS4_OK);
  EXPECT_NE(r.flags & EXCHGID4_FLAG_CONFIRMED_R, 0u);
  EXPECT_EQ(state_->ExchangeId(ex.args, Principal{rpc::AuthFlavor::kSys, 1, 1}, &r), NFS4ERR_PERM);
  ExchangeArgs other_verf("host-a", 'x');
  other_verf.args.eia_flags = EXCHGID4_FLAG_UPD_CONFIRMED_REC_A;
  EXPECT_EQ(state_->ExchangeId(other_verf.args, root_, &r), NFS4ERR_NOT_SAME);
}

TEST_F(StateTest, StateProtectionAndFlagsThisServerDoesNotDo) {
  ExchangeArgs ex("host-a");
  Nfs4State::ExchangeIdResult r;
  ex.args.eia_state_protect.spa_how = SP4_SSV;
  EXPECT_EQ(state_->ExchangeId(ex.args, root_, &r), NFS4ERR_ENCR_ALG_UNSUPP);
  ex.args.eia_state_protect.spa_how = SP4_MACH_CRED;
  EXPECT_EQ(state_->ExchangeId(ex.args, root_, &r), NFS4ERR_INVAL);
  ex.args.eia_state_protect.spa_how = SP4_NONE;
  ex.args.eia_flags = EXCHGID4_FLAG_CONFIRMED_R;
  EXPECT_EQ(state_->ExchangeId(ex.args, root_, &r), NFS4ERR_INVAL);
}

TEST_F(StateTest, SlotSeqidRulesAndTheKeptReply) {
  const Nfs4State::CreateSessionResult s = Mount("host-a");
  Nfs4State::SequenceResult a;
  ASSERT_EQ(Seq(s.sessionid, 3, 1, &a, /*hash=*/42), NFS4_OK);
  ASSERT_NE(a.hold, nullptr);
  EXPECT_EQ(a.highest_slotid, 7u);
  // While it runs: its retry waits, another seqid is misordered.
  Nfs4State::SequenceResult b;
  EXPECT_EQ(Seq(s.sessionid, 3, 1, &b, 42), NFS4ERR_DELAY);
  EXPECT_EQ(Seq(s.sessionid, 3, 2, &b, 42), NFS4ERR_SEQ_MISORDERED);
  auto reply = std::make_shared<const std::string>("the reply bytes!");
  a.hold->Complete(reply);
  a.hold.reset();
  // The retry: the very bytes.
  ASSERT_EQ(Seq(s.sessionid, 3, 1, &b, 42), NFS4_OK);
  EXPECT_EQ(b.hold, nullptr);
  ASSERT_NE(b.replay, nullptr);
  EXPECT_EQ(*b.replay, "the reply bytes!");
  // The same seqid with other ops: a false retry.
  Nfs4State::SequenceResult c;
  EXPECT_EQ(Seq(s.sessionid, 3, 1, &c, 43), NFS4ERR_SEQ_FALSE_RETRY);
  EXPECT_EQ(Seq(s.sessionid, 3, 3, &c, 42), NFS4ERR_SEQ_MISORDERED);
  // A slot never used: only seqid 1 is good.
  EXPECT_EQ(Seq(s.sessionid, 4, 0, &c), NFS4ERR_SEQ_MISORDERED);
  EXPECT_EQ(Seq(s.sessionid, 8, 1, &c), NFS4ERR_BADSLOT);
  EXPECT_EQ(Seq(s.sessionid, 4, 1, &c, 1, /*numops=*/17), NFS4ERR_TOO_MANY_OPS);
  EXPECT_EQ(Seq(s.sessionid, 4, 1, &c, 1, 2, /*bytes=*/(1 << 20) + 1), NFS4ERR_REQ_TOO_BIG);
  SessionId bad = s.sessionid;
  bad[15] ^= 1;
  EXPECT_EQ(Seq(bad, 0, 1, &c), NFS4ERR_BADSESSION);
}

TEST_F(StateTest, AReplyNotKeptGetsRetryUncachedRep) {
  const Nfs4State::CreateSessionResult s = Mount("host-a");
  Nfs4State::SequenceResult a;
  ASSERT_EQ(Seq(s.sessionid, 0, 1, &a), NFS4_OK);
  a.hold.reset();  // never encoded
  Nfs4State::SequenceResult b;
  EXPECT_EQ(Seq(s.sessionid, 0, 1, &b), NFS4ERR_RETRY_UNCACHED_REP);
  ASSERT_EQ(Seq(s.sessionid, 0, 2, &b), NFS4_OK);
  b.hold->Complete(std::make_shared<const std::string>(5000, 'x'));  // > cached size
  b.hold.reset();
  Nfs4State::SequenceResult c;
  EXPECT_EQ(Seq(s.sessionid, 0, 2, &c), NFS4ERR_RETRY_UNCACHED_REP);
}

TEST_F(StateTest, ExpiredClientIsCourtesyAndSequenceBringsItBack) {
  const Nfs4State::CreateSessionResult s = Mount("host-a");
  now_ += 91 * kSecond;
  EXPECT_EQ(state_->counts().courtesy, 1u);
  Nfs4State::SequenceResult a;
  ASSERT_EQ(Seq(s.sessionid, 0, 1, &a), NFS4_OK);
  EXPECT_EQ(state_->counts().courtesy, 0u);
  EXPECT_EQ(state_->counts().confirmed, 1u);
}

TEST_F(StateTest, CourtesyClientsBeyondTheCapAreDiscardedOldestFirst) {
  Nfs4State::Options o;
  o.max_courtesy_clients = 1;
  Make(o);
  const Nfs4State::CreateSessionResult a = Mount("host-a");
  now_ += kSecond;
  const Nfs4State::CreateSessionResult b = Mount("host-b");
  now_ += 100 * kSecond;
  EXPECT_EQ(state_->counts().courtesy, 2u);
  Mount("host-c");  // its EXCHANGE_ID sweeps
  EXPECT_EQ(state_->counts().courtesy, 1u);
  Nfs4State::SequenceResult r;
  EXPECT_EQ(Seq(a.sessionid, 0, 1, &r), NFS4ERR_BADSESSION);
  EXPECT_EQ(Seq(b.sessionid, 0, 1, &r), NFS4_OK);
}

TEST_F(StateTest, TheClientTableIsBounded) {
  Nfs4State::Options o;
  o.max_clients = 2;
  Make(o);
  Mount("host-a");
  Mount("host-b");
  ExchangeArgs ex("host-c");
  Nfs4State::ExchangeIdResult r;
  EXPECT_EQ(state_->ExchangeId(ex.args, root_, &r), NFS4ERR_DELAY);
  // An unconfirmed record makes room for the next one.
  Make(o);
  Mount("host-a");
  ExchangeArgs lone("host-b");
  ASSERT_EQ(state_->ExchangeId(lone.args, root_, &r), NFS4_OK);
  ASSERT_EQ(state_->ExchangeId(ex.args, root_, &r), NFS4_OK);
  EXPECT_EQ(state_->counts().unconfirmed, 1u);
  // ... and one a lease old is gone anyway.
  now_ += 91 * kSecond;
  EXPECT_EQ(state_->counts().unconfirmed, 1u);
  ExchangeArgs d("host-d");
  ASSERT_EQ(state_->ExchangeId(d.args, root_, &r), NFS4_OK);
}

TEST_F(StateTest, SessionsPerClientAndReplyCacheBytesAreBounded) {
  Nfs4State::Options o;
  o.max_sessions_per_client = 1;
  o.max_cache_bytes = 64 * 4096;
  Make(o);
  clientid4 id = 0;
  const Nfs4State::CreateSessionResult s = Mount("host-a", root_, &id, /*slots=*/64);
  EXPECT_EQ(s.fore.maxrequests, 8u);  // an eighth of the budget
  EXPECT_EQ(state_->counts().cache_bytes_reserved, 8u * 4096);
  Nfs4State::CreateSessionResult t;
  EXPECT_EQ(state_->CreateSession(SessionArgs(id, 2), root_, 1, &t), NFS4ERR_NOSPC);
  // Each further session gets an eighth of what is left, down to one slot — never none
  // (knfsd's nfsd4_get_drc_mem): a new client always gets a session.
  uint32_t last = 8;
  for (int i = 0; i < 40; ++i) {
    ExchangeArgs ex("host-" + std::to_string(i));
    Nfs4State::ExchangeIdResult r;
    ASSERT_EQ(state_->ExchangeId(ex.args, root_, &r), NFS4_OK);
    ASSERT_EQ(state_->CreateSession(SessionArgs(r.clientid, r.sequenceid, 64), root_, 1, &t),
              NFS4_OK)
        << i;
    EXPECT_LE(t.fore.maxrequests, last) << i;
    EXPECT_GE(t.fore.maxrequests, 1u) << i;
    last = t.fore.maxrequests;
  }
  EXPECT_EQ(last, 1u) << "the budget was never short";
  // Over the budget by one slot per session at most.
  const size_t reserved = state_->counts().cache_bytes_reserved;
  EXPECT_LE(reserved, o.max_cache_bytes + 41 * 4096);
  ASSERT_EQ(state_->DestroySession(s.sessionid, nullptr), NFS4_OK);
  EXPECT_EQ(state_->counts().cache_bytes_reserved, reserved - 8u * 4096);
}

TEST_F(StateTest, DestroySessionAndClientId) {
  clientid4 id = 0;
  const Nfs4State::CreateSessionResult s = Mount("host-a", root_, &id);
  Nfs4State::SequenceResult a;
  ASSERT_EQ(Seq(s.sessionid, 0, 1, &a), NFS4_OK);
  // A request is running on it: only its own COMPOUND may destroy it.
  EXPECT_EQ(state_->DestroySession(s.sessionid, nullptr), NFS4ERR_DELAY);
  EXPECT_EQ(state_->DestroyClientId(id, std::nullopt), NFS4ERR_CLIENTID_BUSY);
  EXPECT_EQ(state_->DestroySession(s.sessionid, &s.sessionid), NFS4_OK);
  a.hold->Complete(std::make_shared<const std::string>("late"));  // harmless
  a.hold.reset();
  Nfs4State::SequenceResult b;
  EXPECT_EQ(Seq(s.sessionid, 0, 2, &b), NFS4ERR_BADSESSION);
  EXPECT_EQ(state_->DestroySession(s.sessionid, nullptr), NFS4ERR_BADSESSION);
  EXPECT_EQ(state_->DestroyClientId(id, std::nullopt), NFS4_OK);
  EXPECT_EQ(state_->DestroyClientId(id, std::nullopt), NFS4ERR_STALE_CLIENTID);
  EXPECT_EQ(state_->counts().confirmed, 0u);
}

TEST_F(StateTest, ReclaimCompleteOncePerClient) {
  clientid4 id = 0;
  Mount("host-a", root_, &id);
  EXPECT_FALSE(state_->reclaim_complete(id));
  EXPECT_EQ(state_->ReclaimComplete(id), NFS4_OK);
  EXPECT_TRUE(state_->reclaim_complete(id));
  EXPECT_EQ(state_->ReclaimComplete(id), NFS4ERR_COMPLETE_ALREADY);
}

TEST_F(StateTest, ConnectionsAreBoundAndBounded) {
  Nfs4State::Options o;
  o.max_connections_per_session = 2;
  Make(o);
  const Nfs4State::CreateSessionResult s = Mount("host-a");
  EXPECT_EQ(state_->session_connections(s.sessionid), (std::vector<uint64_t>{1}));
  channel_dir_from_server4 dir;
  ASSERT_EQ(state_->BindConnToSession(s.sessionid, CDFC4_FORE_OR_BOTH, 2, &dir), NFS4_OK);
  EXPECT_EQ(dir, CDFS4_BOTH);
  ASSERT_EQ(state_->BindConnToSession(s.sessionid, CDFC4_BACK, 3, &dir), NFS4_OK);
  EXPECT_EQ(dir, CDFS4_BACK);
  EXPECT_EQ(state_->session_connections(s.sessionid), (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(state_->BindConnToSession(s.sessionid, 9, 3, &dir), NFS4ERR_INVAL);
  SessionId bad{};
  EXPECT_EQ(state_->BindConnToSession(bad, CDFC4_FORE, 3, &dir), NFS4ERR_BADSESSION);
}

TEST_F(StateTest, SlotsOfOneSessionRunConcurrentlyWhileClientsComeAndGo) {
  const Nfs4State::CreateSessionResult s = Mount("host-a");
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (uint32_t slot = 0; slot < 4; ++slot) {
    threads.emplace_back([&, slot] {
      for (uint32_t seq = 1; seq <= 300; ++seq) {
        Nfs4State::SequenceResult r;
        if (Seq(s.sessionid, slot, seq, &r, seq) != NFS4_OK || r.hold == nullptr) {
          failures.fetch_add(1);
          return;
        }
        r.hold->Complete(std::make_shared<const std::string>(std::to_string(seq)));
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 100; ++i) {
      ExchangeArgs ex("churn-" + std::to_string(i % 10));
      Nfs4State::ExchangeIdResult r;
      if (state_->ExchangeId(ex.args, root_, &r) != NFS4_OK) failures.fetch_add(1);
      Nfs4State::CreateSessionResult cs;
      if (state_->CreateSession(SessionArgs(r.clientid, r.sequenceid, 1), root_, 2, &cs) != NFS4_OK)
        failures.fetch_add(1);
      if (state_->DestroySession(cs.sessionid, nullptr) != NFS4_OK) failures.fetch_add(1);
      (void)state_->counts();
    }
  });
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  Nfs4State::SequenceResult r;
  ASSERT_EQ(Seq(s.sessionid, 2, 300, &r, 300), NFS4_OK);
  ASSERT_NE(r.replay, nullptr);
  EXPECT_EQ(*r.replay, "300");
}

// ---- restart and grace (state.h "Restart and grace"), with the records in a temporary
// state dir and the injected clock ----

class GraceTest : public StateTest {
 protected:
  // A new server instance on the same state dir (the old one's records as it left them).
  void Restart(absl::Duration grace = absl::Seconds(90)) {
    state_.reset();
    records_.reset();
    records_ = std::make_unique<ClientRecordFile>(dir_.path(), 1024);
    Nfs4State::Options o;
    o.records = records_.get();
    o.grace = grace;
    Make(o);
  }
  void SetUp() override { Restart(); }

  clientid4 MountAs(const std::string& owner, char verifier = 'v', Principal who = root_) {
    ExchangeArgs ex(owner, verifier);
    Nfs4State::ExchangeIdResult r;
    EXPECT_EQ(state_->ExchangeId(ex.args, who, &r, "127.0.0.1:700"), NFS4_OK);
    Nfs4State::CreateSessionResult s;
    EXPECT_EQ(state_->CreateSession(SessionArgs(r.clientid, r.sequenceid), who, 1, &s), NFS4_OK);
    sessions_[r.clientid] = s.sessionid;
    return r.clientid;
  }
  void Unmount(clientid4 id) {
    ASSERT_EQ(state_->DestroySession(sessions_[id], nullptr), NFS4_OK);
    ASSERT_EQ(state_->DestroyClientId(id, std::nullopt), NFS4_OK);
  }
  // The owners recorded on disk now (what a restart would read).
  std::vector<std::string> OnDisk() {
    std::vector<std::string> out;
    const ClientRecordFile on_disk(dir_.path(), 1024);
    for (const ClientRecord& r : on_disk.loaded()) out.push_back(r.owner);
    std::sort(out.begin(), out.end());
    return out;
  }
  Nfs4State::GraceInfo::Phase Phase() { return state_->grace().phase; }

  localnfs::testing::TempDir dir_{"grace-test"};
  std::unique_ptr<ClientRecordFile> records_;
  std::map<clientid4, SessionId> sessions_;
  using P = Nfs4State::GraceInfo::Phase;
  using V = std::vector<std::string>;
};

TEST_F(GraceTest, ARecordIsWrittenAtReclaimCompleteAndRemovedWithItsClient) {
  EXPECT_EQ(Phase(), P::kNone);  // nothing from before
  const clientid4 a = MountAs("host-a");
  EXPECT_EQ(OnDisk(), V{});  // no state possible yet: nothing to reclaim
  ASSERT_EQ(state_->ReclaimComplete(a), NFS4_OK);
  EXPECT_EQ(OnDisk(), V{"host-a"});
  // DESTROY_CLIENTID.
  Unmount(a);
  EXPECT_EQ(OnDisk(), V{});

  // Discarded as a courtesy client for a conflict (another principal, same owner).
  const clientid4 b = MountAs("host-b");
  ASSERT_EQ(state_->ReclaimComplete(b), NFS4_OK);
  EXPECT_EQ(OnDisk(), V{"host-b"});
  now_ += 91 * kSecond;
  ExchangeArgs other("host-b");
  Nfs4State::ExchangeIdResult r;
  ASSERT_EQ(state_->ExchangeId(other.args, Principal{rpc::AuthFlavor::kSys, 5, 5}, &r), NFS4_OK);
  EXPECT_EQ(OnDisk(), V{});

  // Replaced by a reboot of its owner: the old record goes when the new boot is
  // confirmed, the new one is written at its own RECLAIM_COMPLETE.
  const clientid4 c1 = MountAs("host-c", 'v');
  ASSERT_EQ(state_->ReclaimComplete(c1), NFS4_OK);
  const clientid4 c2 = MountAs("host-c", 'w');
  EXPECT_NE(c1, c2);
  EXPECT_EQ(OnDisk(), V{});
  ASSERT_EQ(state_->ReclaimComplete(c2), NFS4_OK);
  EXPECT_EQ(OnDisk(), V{"host-c"});

  // Courtesy clients past the cap are discarded with their records.
  Nfs4State::Options o;
  o.records = records_.get();
  o.max_courtesy_clients = 0;
  state_.reset();
  Make(o);
  const clientid4 d = MountAs("host-d");
  ASSERT_EQ(state_->ReclaimComplete(d), NFS4_OK);
  EXPECT_EQ(OnDisk(), (V{"host-c", "host-d"}));
  now_ += 91 * kSecond;
  MountAs("host-e");  // its EXCHANGE_ID sweeps
  EXPECT_EQ(OnDisk(), V{"host-c"});
}

TEST_F(GraceTest, WithoutRecordsThereIsNoGraceButReclaimCompleteStillComesFirst) {
  const clientid4 a = MountAs("host-a");
  EXPECT_FALSE(state_->in_grace());
  EXPECT_EQ(state_->CheckGrace(), NFS4_OK);
  EXPECT_EQ(state_->CheckReclaim(a, /*is_reclaim=*/true), NFS4ERR_NO_GRACE);
  // RFC 8881 §18.51.3: no non-reclaim lock before RECLAIM_COMPLETE.
  EXPECT_EQ(state_->CheckReclaim(a, /*is_reclaim=*/false), NFS4ERR_GRACE);
  ASSERT_EQ(state_->ReclaimComplete(a), NFS4_OK);
  EXPECT_EQ(state_->CheckReclaim(a, false), NFS4_OK);
  EXPECT_EQ(state_->CheckReclaim(a, true), NFS4ERR_NO_GRACE);
  EXPECT_EQ(state_->CheckReclaim(12345, false), NFS4ERR_STALE_CLIENTID);
}

TEST_F(GraceTest, AfterARestartGraceLastsUntilEveryPreviousClientSentReclaimComplete) {
  ASSERT_EQ(state_->ReclaimComplete(MountAs("host-a")), NFS4_OK);
  ASSERT_EQ(state_->ReclaimComplete(MountAs("host-b")), NFS4_OK);
  Restart();
  EXPECT_EQ(Phase(), P::kInGrace);
  EXPECT_EQ(state_->grace().previous, 2u);
  EXPECT_EQ(state_->grace().left_ms, 90000);
  EXPECT_EQ(state_->CheckGrace(), NFS4ERR_GRACE);

  // host-a comes back (its verifier need not match: the server restarted, not it).
  const clientid4 a = MountAs("host-a", 'x');
  EXPECT_EQ(state_->CheckReclaim(a, /*is_reclaim=*/true), NFS4_OK);
  EXPECT_EQ(state_->CheckReclaim(a, /*is_reclaim=*/false), NFS4ERR_GRACE);
  // A client not known from before may not reclaim, nor open anything new yet.
  const clientid4 n = MountAs("host-new");
  EXPECT_EQ(state_->CheckReclaim(n, true), NFS4ERR_NO_GRACE);
  ASSERT_EQ(state_->ReclaimComplete(n), NFS4_OK);
  EXPECT_EQ(state_->CheckReclaim(n, false), NFS4ERR_GRACE);
  // host-a is done: no more reclaims for it; grace goes on for host-b.
  now_ += 5 * kSecond;
  ASSERT_EQ(state_->ReclaimComplete(a), NFS4_OK);
  EXPECT_EQ(state_->CheckReclaim(a, true), NFS4ERR_NO_GRACE);
  EXPECT_EQ(state_->CheckReclaim(a, false), NFS4ERR_GRACE);
  EXPECT_EQ(Phase(), P::kInGrace);
  EXPECT_EQ(state_->grace().reclaimed, 1u);
  EXPECT_EQ(state_->grace().pending, 1u);
  EXPECT_EQ(state_->grace().left_ms, 85000);

  // host-b's RECLAIM_COMPLETE ends grace early.
  const clientid4 b = MountAs("host-b");
  EXPECT_EQ(state_->CheckReclaim(b, true), NFS4_OK);
  ASSERT_EQ(state_->ReclaimComplete(b), NFS4_OK);
  EXPECT_EQ(Phase(), P::kEnded);
  EXPECT_NE(state_->grace().why.find("early"), std::string::npos) << state_->grace().why;
  EXPECT_EQ(state_->CheckGrace(), NFS4_OK);
  EXPECT_EQ(state_->CheckReclaim(a, false), NFS4_OK);
  EXPECT_EQ(state_->CheckReclaim(n, false), NFS4_OK);
  EXPECT_EQ(state_->CheckReclaim(b, true), NFS4ERR_NO_GRACE);
  EXPECT_EQ(OnDisk(), (V{"host-a", "host-b", "host-new"}));
}

TEST_F(GraceTest, GraceRunsOutAndTheClientsThatDidNotReclaimAreForgotten) {
  ASSERT_EQ(state_->ReclaimComplete(MountAs("host-a")), NFS4_OK);
  ASSERT_EQ(state_->ReclaimComplete(MountAs("host-b")), NFS4_OK);
  Restart(absl::Seconds(10));
  const clientid4 a = MountAs("host-a");
  ASSERT_EQ(state_->ReclaimComplete(a), NFS4_OK);
  // host-b's record stays while it may still come back (a second restart now would
  // still let it reclaim).
  EXPECT_EQ(OnDisk(), (V{"host-a", "host-b"}));
  now_ += 9 * kSecond;
  EXPECT_EQ(state_->CheckReclaim(a, false), NFS4ERR_GRACE);
  now_ += 1 * kSecond;
  // Shown as over before anything asks...
  EXPECT_EQ(Phase(), P::kEnded);
  // ...and ended for good by the first check, before any new state is granted.
  EXPECT_EQ(state_->CheckReclaim(a, false), NFS4_OK);
  EXPECT_NE(state_->grace().why.find("ran out"), std::string::npos) << state_->grace().why;
  now_ += 3 * kSecond;
  EXPECT_EQ(state_->grace().ended_ago_ms, 3000);  // from its deadline
  EXPECT_EQ(OnDisk(), V{"host-a"});
  // Too late for host-b.
  const clientid4 b = MountAs("host-b");
  EXPECT_EQ(state_->CheckReclaim(b, true), NFS4ERR_NO_GRACE);

  // The next restart knows host-a only.
  Restart();
  EXPECT_EQ(state_->grace().previous, 1u);
}

TEST_F(GraceTest, APreviousClientThatIsDestroyedNoLongerHoldsGraceOpen) {
  ASSERT_EQ(state_->ReclaimComplete(MountAs("host-a")), NFS4_OK);
  ASSERT_EQ(state_->ReclaimComplete(MountAs("host-b")), NFS4_OK);
  Restart();
  ASSERT_EQ(state_->ReclaimComplete(MountAs("host-a")), NFS4_OK);
  EXPECT_EQ(Phase(), P::kInGrace);
  const clientid4 b = MountAs("host-b");
  Unmount(b);
  EXPECT_EQ(Phase(), P::kEnded);
  EXPECT_EQ(state_->grace().gone, 1u);
  EXPECT_EQ(OnDisk(), V{"host-a"});
}

TEST_F(GraceTest, AReclaimNeedsTheSamePrincipal) {
  ASSERT_EQ(state_->ReclaimComplete(MountAs("host-a")), NFS4_OK);
  Restart();
  const clientid4 a = MountAs("host-a", 'v', Principal{rpc::AuthFlavor::kSys, 1000, 1000});
  EXPECT_EQ(state_->CheckReclaim(a, true), NFS4ERR_NO_GRACE);
  // Not the previous client: its RECLAIM_COMPLETE does not end grace either.
  ASSERT_EQ(state_->ReclaimComplete(a), NFS4_OK);
  EXPECT_EQ(Phase(), P::kInGrace);
}

TEST_F(GraceTest, GraceZeroMeansNoneAndDropsThePreviousRecords) {
  ASSERT_EQ(state_->ReclaimComplete(MountAs("host-a")), NFS4_OK);
  Restart(absl::ZeroDuration());
  EXPECT_EQ(Phase(), P::kNone);
  EXPECT_EQ(state_->grace().why, "--grace 0");
  EXPECT_EQ(OnDisk(), V{});
  const clientid4 a = MountAs("host-a");
  EXPECT_EQ(state_->CheckReclaim(a, true), NFS4ERR_NO_GRACE);
  ASSERT_EQ(state_->ReclaimComplete(a), NFS4_OK);
  EXPECT_EQ(state_->CheckReclaim(a, false), NFS4_OK);
}

TEST_F(GraceTest, StatusListsClientsWithAddressOwnerAndLease) {
  const clientid4 a = MountAs("host-a");
  ASSERT_EQ(state_->ReclaimComplete(a), NFS4_OK);
  now_ += 30 * kSecond;
  ExchangeArgs ex("host-u");
  Nfs4State::ExchangeIdResult r;
  ASSERT_EQ(state_->ExchangeId(ex.args, root_, &r, "[::1]:900"), NFS4_OK);
  std::vector<Nfs4State::ClientInfo> list = state_->clients(10);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].id, a);
  EXPECT_EQ(list[0].kind, Nfs4State::ClientKind::kConfirmed);
  EXPECT_EQ(list[0].address, "127.0.0.1:700");
  EXPECT_EQ(list[0].owner, "host-a");
  EXPECT_EQ(list[0].lease_left_ms, 60000);
  EXPECT_EQ(list[0].sessions, 1u);
  EXPECT_TRUE(list[0].reclaim_complete);
  EXPECT_EQ(list[1].kind, Nfs4State::ClientKind::kUnconfirmed);
  EXPECT_EQ(list[1].address, "[::1]:900");
  EXPECT_EQ(state_->clients(1).size(), 1u);
}

}  // namespace
}  // namespace localnfs::server::nfs4
