// server/nfs4/session_ops_test.cc — the session ops through the real Nfs4Program with
// an Nfs4State (as localnfsd runs them, on one thread): EXCHANGE_ID → CREATE_SESSION →
// SEQUENCE; the slot's kept reply sent again byte for byte; the reply budget the
// COMPOUND loop enforces (REP_TOO_BIG, REP_TOO_BIG_TO_CACHE); DESTROY_SESSION in its
// own session; RECLAIM_COMPLETE once.
#include "server/nfs4/session_ops.h"

#include <rpc/rpc.h>
#include <string.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "rpc/dispatch.h"
#include "rpc/nfs4.h"
#include "rpc/test_program.h"
#include "server/nfs4/nfs4_program.h"
#include "server/nfs4/nfs4proc_test_fixture.h"
#include "server/nfs4/services.h"
#include "server/nfs4/state.h"

namespace localnfs::server::nfs4 {
namespace {

using Reply = rpc::testing::DecodedResult<COMPOUND4res, xdr_COMPOUND4res>;

std::string Encode(std::vector<nfs_argop4> ops, uint32_t minor = 1, std::string tag = "t") {
  return proc_fixture::EncodeCompound(ops, minor, std::move(tag));
}

nfs_argop4 Op(nfs_opnum4 n) {
  nfs_argop4 a{};
  a.argop = n;
  return a;
}

class SessionOpsTest : public ::testing::Test {
 protected:
  SessionOpsTest() {
    Nfs4State::Options o;
    o.server_owner = "owner-major";
    o.server_scope = "scope";
    state_.emplace(o);
    services_.state = &*state_;
    program_.emplace(Nfs4Program::Options{}, &services_);
    dispatcher_.AddProgram(&*program_);
  }

  std::string Raw(const std::string& args) {
    std::optional<rpc::testing::TestReply> r =
        rpc::testing::RunCall(dispatcher_, conn_, NFS4_PROGRAM, NFS_V4, NFSPROC4_COMPOUND, args);
    EXPECT_TRUE(r && r->error.is_success());
    return r ? r->body : "";
  }

  // EXCHANGE_ID + CREATE_SESSION with these fore channel sizes; the session id.
  SessionId Mount(const std::string& owner, uint32_t maxresp = 1 << 20,
                  uint32_t maxresp_cached = 8192) {
    nfs_argop4 ex = Op(OP_EXCHANGE_ID);
    EXCHANGE_ID4args& ea = ex.nfs_argop4_u.opexchange_id;
    memset(ea.eia_clientowner.co_verifier, 'v', NFS4_VERIFIER_SIZE);
    std::string o = owner;
    ea.eia_clientowner.co_ownerid.co_ownerid_val = o.data();
    ea.eia_clientowner.co_ownerid.co_ownerid_len = static_cast<u_int>(o.size());
    Reply er(Raw(Encode({ex})));
    EXPECT_TRUE(er.ok());
    EXPECT_EQ(er->status, NFS4_OK);
    const EXCHANGE_ID4resok& eok =
        er->resarray.resarray_val[0].nfs_resop4_u.opexchange_id.EXCHANGE_ID4res_u.eir_resok4;
    EXPECT_EQ(std::string(eok.eir_server_owner.so_major_id.so_major_id_val,
                          eok.eir_server_owner.so_major_id.so_major_id_len),
              "owner-major");
    EXPECT_EQ(eok.eir_flags, EXCHGID4_FLAG_USE_NON_PNFS);

    nfs_argop4 cs = Op(OP_CREATE_SESSION);
    CREATE_SESSION4args& ca = cs.nfs_argop4_u.opcreate_session;
    ca.csa_clientid = eok.eir_clientid;
    ca.csa_sequence = eok.eir_sequenceid;
    ca.csa_fore_chan_attrs = {0, 1 << 20, maxresp, maxresp_cached, 8, 4, {0, nullptr}};
    ca.csa_back_chan_attrs = {0, 4096, 4096, 0, 2, 1, {0, nullptr}};
    Reply cr(Raw(Encode({cs})));
    EXPECT_TRUE(cr.ok());
    EXPECT_EQ(cr->status, NFS4_OK);
    SessionId id{};
    if (cr->status == NFS4_OK) {
      memcpy(id.data(),
             cr->resarray.resarray_val[0]
                 .nfs_resop4_u.opcreate_session.CREATE_SESSION4res_u.csr_resok4.csr_sessionid,
             id.size());
    }
    return id;
  }

  static nfs_argop4 Seq(const SessionId& id, uint32_t seqid, uint32_t slot = 0,
                        bool cachethis = false) {
    nfs_argop4 a = Op(OP_SEQUENCE);
    SEQUENCE4args& s = a.nfs_argop4_u.opsequence;
    memcpy(s.sa_sessionid, id.data(), id.size());
    s.sa_sequenceid = seqid;
    s.sa_slotid = slot;
    s.sa_highest_slotid = slot;
    s.sa_cachethis = cachethis;
    return a;
  }

  // The statuses of a COMPOUND's results.
  std::vector<std::pair<uint32_t, nfsstat4>> StatusesOf(const std::string& body) {
    Reply r(body);
    EXPECT_TRUE(r.ok());
    std::vector<std::pair<uint32_t, nfsstat4>> out;
    if (!r.ok()) return out;
    for (u_int i = 0; i < r->resarray.resarray_len; ++i) {
      out.emplace_back(r->resarray.resarray_val[i].resop, OpStatus(r->resarray.resarray_val[i]));
    }
    return out;
  }

  std::optional<Nfs4State> state_;
  Nfs4Services services_;
  std::optional<Nfs4Program> program_;
  rpc::ServerCounters counters_;
  rpc::Dispatcher dispatcher_{&counters_};
  rpc::ConnectionInfo conn_{1, PeerAddress{}, PeerAddress{}};
};

using Statuses = std::vector<std::pair<uint32_t, nfsstat4>>;

TEST_F(SessionOpsTest, SequenceRunsTheCompoundAndARetryGetsTheSameBytes) {
  const SessionId id = Mount("host-a");
  const std::string call = Encode({Seq(id, 1), Op(OP_PUTROOTFH), Op(OP_GETFH)});
  const std::string first = Raw(call);
  EXPECT_EQ(StatusesOf(first),
            (Statuses{{OP_SEQUENCE, NFS4_OK}, {OP_PUTROOTFH, NFS4_OK}, {OP_GETFH, NFS4_OK}}));
  Reply r(first);
  ASSERT_TRUE(r.ok());
  const SEQUENCE4resok& ok =
      r->resarray.resarray_val[0].nfs_resop4_u.opsequence.SEQUENCE4res_u.sr_resok4;
  EXPECT_EQ(ok.sr_sequenceid, 1u);
  EXPECT_EQ(ok.sr_highest_slotid, 3u);
  EXPECT_EQ(ok.sr_target_highest_slotid, 3u);
  EXPECT_EQ(ok.sr_status_flags, 0u);
  // The retry: nothing runs again, the bytes are the first reply's.
  EXPECT_EQ(Raw(call), first);
  // The same ops under another tag, or another COMPOUND with the same slot and seqid: a
  // false retry.
  EXPECT_EQ(StatusesOf(Raw(Encode({Seq(id, 1), Op(OP_PUTROOTFH), Op(OP_GETFH)}, 1, "u"))),
            (Statuses{{OP_SEQUENCE, NFS4ERR_SEQ_FALSE_RETRY}}));
  EXPECT_EQ(StatusesOf(Raw(Encode({Seq(id, 1), Op(OP_PUTROOTFH)}))),
            (Statuses{{OP_SEQUENCE, NFS4ERR_SEQ_FALSE_RETRY}}));
  EXPECT_EQ(StatusesOf(Raw(Encode({Seq(id, 3)}))),
            (Statuses{{OP_SEQUENCE, NFS4ERR_SEQ_MISORDERED}}));
  EXPECT_EQ(StatusesOf(Raw(Encode({Seq(id, 1, /*slot=*/4)}))),
            (Statuses{{OP_SEQUENCE, NFS4ERR_BADSLOT}}));
  // Too many ops for the session (ca_maxoperations 8).
  std::vector<nfs_argop4> many = {Seq(id, 2)};
  for (int i = 0; i < 8; ++i) many.push_back(Op(OP_PUTROOTFH));
  EXPECT_EQ(StatusesOf(Raw(Encode(many))), (Statuses{{OP_SEQUENCE, NFS4ERR_TOO_MANY_OPS}}));
  EXPECT_EQ(StatusesOf(Raw(Encode({Seq(id, 2)}))), (Statuses{{OP_SEQUENCE, NFS4_OK}}));
}

TEST_F(SessionOpsTest, TheReplyBudgetStopsAtTheOpThatCrossesIt) {
  // Room for SEQUENCE and PUTROOTFH, not for GETFH's handle.
  const SessionId id = Mount("host-a", /*maxresp=*/1 << 20, /*maxresp_cached=*/100);
  EXPECT_EQ(
      StatusesOf(Raw(Encode({Seq(id, 1, 0, /*cachethis=*/true), Op(OP_PUTROOTFH), Op(OP_GETFH)}))),
      (Statuses{{OP_SEQUENCE, NFS4_OK},
                {OP_PUTROOTFH, NFS4_OK},
                {OP_GETFH, NFS4ERR_REP_TOO_BIG_TO_CACHE}}));
  // Not asked to cache: the whole reply goes out (and is not kept: a retry is
  // RETRY_UNCACHED_REP).
  const std::string call = Encode({Seq(id, 2, 0, false), Op(OP_PUTROOTFH), Op(OP_GETFH)});
  EXPECT_EQ(StatusesOf(Raw(call)),
            (Statuses{{OP_SEQUENCE, NFS4_OK}, {OP_PUTROOTFH, NFS4_OK}, {OP_GETFH, NFS4_OK}}));
  EXPECT_EQ(StatusesOf(Raw(call)), (Statuses{{OP_SEQUENCE, NFS4ERR_RETRY_UNCACHED_REP}}));

  const SessionId small = Mount("host-b", /*maxresp=*/100, /*maxresp_cached=*/100);
  EXPECT_EQ(
      StatusesOf(Raw(Encode({Seq(small, 1), Op(OP_PUTROOTFH), Op(OP_GETFH)}))),
      (Statuses{{OP_SEQUENCE, NFS4_OK}, {OP_PUTROOTFH, NFS4_OK}, {OP_GETFH, NFS4ERR_REP_TOO_BIG}}));
}

TEST_F(SessionOpsTest, DestroySessionInItsOwnCompoundMustBeLast) {
  const SessionId id = Mount("host-a");
  nfs_argop4 destroy = Op(OP_DESTROY_SESSION);
  memcpy(destroy.nfs_argop4_u.opdestroy_session.dsa_sessionid, id.data(), id.size());
  EXPECT_EQ(StatusesOf(Raw(Encode({Seq(id, 1), destroy, Op(OP_PUTROOTFH)}))),
            (Statuses{{OP_SEQUENCE, NFS4_OK}, {OP_DESTROY_SESSION, NFS4ERR_NOT_ONLY_OP}}));
  EXPECT_EQ(StatusesOf(Raw(Encode({Seq(id, 2), destroy}))),
            (Statuses{{OP_SEQUENCE, NFS4_OK}, {OP_DESTROY_SESSION, NFS4_OK}}));
  EXPECT_EQ(StatusesOf(Raw(Encode({Seq(id, 3)}))), (Statuses{{OP_SEQUENCE, NFS4ERR_BADSESSION}}));
  EXPECT_EQ(state_->counts().sessions, 0u);
}

TEST_F(SessionOpsTest, ReclaimCompleteOnceAndOneFsNeedsAFilehandle) {
  const SessionId id = Mount("host-a");
  nfs_argop4 rc = Op(OP_RECLAIM_COMPLETE);
  EXPECT_EQ(StatusesOf(Raw(Encode({Seq(id, 1), rc}))),
            (Statuses{{OP_SEQUENCE, NFS4_OK}, {OP_RECLAIM_COMPLETE, NFS4_OK}}));
  EXPECT_EQ(StatusesOf(Raw(Encode({Seq(id, 2), rc}))),
            (Statuses{{OP_SEQUENCE, NFS4_OK}, {OP_RECLAIM_COMPLETE, NFS4ERR_COMPLETE_ALREADY}}));
  rc.nfs_argop4_u.opreclaim_complete.rca_one_fs = TRUE;
  EXPECT_EQ(StatusesOf(Raw(Encode({Seq(id, 3), rc}))),
            (Statuses{{OP_SEQUENCE, NFS4_OK}, {OP_RECLAIM_COMPLETE, NFS4ERR_NOFILEHANDLE}}));
  EXPECT_EQ(
      StatusesOf(Raw(Encode({Seq(id, 4), Op(OP_PUTROOTFH), rc}))),
      (Statuses{{OP_SEQUENCE, NFS4_OK}, {OP_PUTROOTFH, NFS4_OK}, {OP_RECLAIM_COMPLETE, NFS4_OK}}));
}

// pynfs CSESS16 / CSESS16a: csa_sec_parms lists the client's choices; RPCSEC_GSS among
// AUTH_NONE or AUTH_SYS is decoded and passed over (knfsd's nfsd4_decode_cb_sec), only
// a list of RPCSEC_GSS alone is NFS4ERR_ENCR_ALG_UNSUPP.
TEST_F(SessionOpsTest, CreateSessionPassesOverGssCallbackSecurity) {
  std::string machine = "Random machine name";
  std::string from_server = "Handle from server", from_client = "Client handle";
  callback_sec_parms4 gss{};
  gss.cb_secflavor = RPCSEC_GSS;
  gss_cb_handles4& h = gss.callback_sec_parms4_u.cbsp_gss_handles;
  h.gcbp_service = RPC_GSS_SVC_PRIVACY;
  h.gcbp_handle_from_server.gsshandle4_t_val = from_server.data();
  h.gcbp_handle_from_server.gsshandle4_t_len = static_cast<u_int>(from_server.size());
  h.gcbp_handle_from_client.gsshandle4_t_val = from_client.data();
  h.gcbp_handle_from_client.gsshandle4_t_len = static_cast<u_int>(from_client.size());
  callback_sec_parms4 sys{};
  sys.cb_secflavor = AUTH_SYS;
  sys.callback_sec_parms4_u.cbsp_sys_cred.machinename = machine.data();
  sys.callback_sec_parms4_u.cbsp_sys_cred.uid = 7;
  sys.callback_sec_parms4_u.cbsp_sys_cred.gid = 11;
  callback_sec_parms4 none{};
  none.cb_secflavor = AUTH_NONE;

  // EXCHANGE_ID for `owner`, then CREATE_SESSION with `sec`: its status.
  auto create = [&](const std::string& owner, std::vector<callback_sec_parms4> sec) {
    nfs_argop4 ex = Op(OP_EXCHANGE_ID);
    EXCHANGE_ID4args& ea = ex.nfs_argop4_u.opexchange_id;
    memset(ea.eia_clientowner.co_verifier, 'v', NFS4_VERIFIER_SIZE);
    std::string o = owner;
    ea.eia_clientowner.co_ownerid.co_ownerid_val = o.data();
    ea.eia_clientowner.co_ownerid.co_ownerid_len = static_cast<u_int>(o.size());
    Reply er(Raw(Encode({ex})));
    EXPECT_TRUE(er.ok());
    if (!er.ok() || er->status != NFS4_OK) return NFS4ERR_SERVERFAULT;
    const EXCHANGE_ID4resok& eok =
        er->resarray.resarray_val[0].nfs_resop4_u.opexchange_id.EXCHANGE_ID4res_u.eir_resok4;
    nfs_argop4 cs = Op(OP_CREATE_SESSION);
    CREATE_SESSION4args& ca = cs.nfs_argop4_u.opcreate_session;
    ca.csa_clientid = eok.eir_clientid;
    ca.csa_sequence = eok.eir_sequenceid;
    ca.csa_flags = CREATE_SESSION4_FLAG_CONN_BACK_CHAN;
    ca.csa_fore_chan_attrs = {0, 8192, 8192, 8192, 128, 8, {0, nullptr}};
    ca.csa_back_chan_attrs = {0, 8192, 8192, 8192, 128, 8, {0, nullptr}};
    ca.csa_sec_parms.csa_sec_parms_len = static_cast<u_int>(sec.size());
    ca.csa_sec_parms.csa_sec_parms_val = sec.data();
    Reply cr(Raw(Encode({cs})));
    EXPECT_TRUE(cr.ok());
    return cr.ok() ? cr->status : NFS4ERR_SERVERFAULT;
  };
  EXPECT_EQ(create("csess16", {none, sys, gss}), NFS4_OK);
  EXPECT_EQ(create("csess16a", {none, gss, sys}), NFS4_OK);
  EXPECT_EQ(create("gss-first", {gss, sys}), NFS4_OK);
  EXPECT_EQ(create("gss-only", {gss}), NFS4ERR_ENCR_ALG_UNSUPP);
  EXPECT_EQ(create("empty", {}), NFS4_OK);  // AUTH_NONE, as knfsd takes it
}

}  // namespace
}  // namespace localnfs::server::nfs4
