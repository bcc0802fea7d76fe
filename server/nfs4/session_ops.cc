// server/nfs4/session_ops.cc — the client and session operations (see session_ops.h).
#include "server/nfs4/session_ops.h"

#include <stdlib.h>
#include <string.h>

#include <functional>
#include <string>

#include "rpc/call.h"
#include "rpc/message.h"
#include "server/nfs4/open_state.h"
#include "server/nfs4/services.h"
#include "server/nfs4/state.h"

namespace localnfs::server::nfs4 {
namespace {

Nfs4State* StateOf(const CompoundState& cs) {
  return cs.services != nullptr ? cs.services->state : nullptr;
}

Principal Caller(const CompoundState& cs) {
  return cs.call != nullptr ? Principal::Of(cs.call->ctx()) : Principal{};
}

uint64_t ConnectionId(const CompoundState& cs) {
  return cs.call != nullptr && cs.call->ctx().conn != nullptr ? cs.call->ctx().conn->id() : 0;
}

SessionId SessionIdOf(const sessionid4 id) {
  SessionId out;
  memcpy(out.data(), id, out.size());
  return out;
}

}  // namespace

// RFC 8881 §18.35.
nfsstat4 ExchangeId(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  Nfs4State* state = StateOf(cs);
  if (state == nullptr) return NFS4ERR_SERVERFAULT;
  Nfs4State::ExchangeIdResult r;
  const std::string address = cs.call != nullptr && cs.call->ctx().conn != nullptr
                                  ? cs.call->ctx().conn->peer().ToString()
                                  : std::string();
  // Whether the owner's confirmed record holds opens or locks (state, for case 3 of
  // §18.35.4, as its sessions): asked of the open-state table first, as DestroyClientId
  // does (Nfs4State never calls into it).
  const EXCHANGE_ID4args& a = args.nfs_argop4_u.opexchange_id;
  const std::string_view owner(a.eia_clientowner.co_ownerid.co_ownerid_val,
                               a.eia_clientowner.co_ownerid.co_ownerid_len);
  std::optional<clientid4> holds_opens;
  if (cs.services->open_state != nullptr) {
    if (std::optional<clientid4> conf = state->ConfirmedClientOf(owner);
        conf && cs.services->open_state->states_of(*conf) > 0) {
      holds_opens = conf;
    }
  }
  const nfsstat4 status = state->ExchangeId(a, Caller(cs), &r, address, holds_opens);
  if (status != NFS4_OK) return status;
  EXCHANGE_ID4resok& ok = res.nfs_resop4_u.opexchange_id.EXCHANGE_ID4res_u.eir_resok4;
  ok.eir_clientid = r.clientid;
  ok.eir_sequenceid = r.sequenceid;
  ok.eir_flags = r.flags;
  ok.eir_state_protect.spr_how = SP4_NONE;
  const Nfs4State::Options& o = state->options();
  ok.eir_server_owner.so_minor_id = 0;
  ok.eir_server_owner.so_major_id.so_major_id_val = XdrCopy(o.server_owner);
  ok.eir_server_owner.so_major_id.so_major_id_len = static_cast<u_int>(o.server_owner.size());
  ok.eir_server_scope.eir_server_scope_val = XdrCopy(o.server_scope);
  ok.eir_server_scope.eir_server_scope_len = static_cast<u_int>(o.server_scope.size());
  // eir_server_impl_id: none (optional; knfsd sends none either).
  return NFS4_OK;
}

// RFC 8881 §18.36.
nfsstat4 CreateSession(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  Nfs4State* state = StateOf(cs);
  if (state == nullptr) return NFS4ERR_SERVERFAULT;
  Nfs4State::CreateSessionResult r;
  const nfsstat4 status =
      state->CreateSession(args.nfs_argop4_u.opcreate_session, Caller(cs), ConnectionId(cs), &r);
  if (status != NFS4_OK) return status;
  CREATE_SESSION4resok& ok = res.nfs_resop4_u.opcreate_session.CREATE_SESSION4res_u.csr_resok4;
  memcpy(ok.csr_sessionid, r.sessionid.data(), r.sessionid.size());
  ok.csr_sequence = r.sequence;
  ok.csr_flags = r.flags;
  r.fore.To(&ok.csr_fore_chan_attrs);
  r.back.To(&ok.csr_back_chan_attrs);
  return NFS4_OK;
}

// RFC 8881 §18.46.
nfsstat4 Sequence(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  Nfs4State* state = StateOf(cs);
  if (state == nullptr) return NFS4ERR_SERVERFAULT;
  const SEQUENCE4args& a = args.nfs_argop4_u.opsequence;
  Nfs4State::SequenceRequest req;
  req.args = &a;
  req.numops = cs.numops;
  req.request_bytes = cs.request_bytes;
  req.request_hash = std::hash<std::string_view>()(cs.args_bytes);
  req.conn = ConnectionId(cs);
  Nfs4State::SequenceResult r;
  const nfsstat4 status = state->Sequence(req, &r);
  if (status != NFS4_OK) return status;
  if (r.replay != nullptr) {
    cs.replay = std::move(r.replay);
    return NFS4_OK;
  }
  cs.slot = std::move(r.hold);
  // The reply budget (RPC reply header excluded): the loop refuses the op that
  // crosses it.
  const ChannelAttrs& fore = cs.slot->fore();
  uint32_t limit = fore.maxresponsesize;
  cs.reply_budget_status = NFS4ERR_REP_TOO_BIG;
  if (a.sa_cachethis && fore.maxresponsesize_cached < limit) {
    limit = fore.maxresponsesize_cached;
    cs.reply_budget_status = NFS4ERR_REP_TOO_BIG_TO_CACHE;
  }
  cs.reply_budget =
      limit > rpc::kAcceptedReplyHeaderSize ? limit - rpc::kAcceptedReplyHeaderSize : 1;
  SEQUENCE4resok& ok = res.nfs_resop4_u.opsequence.SEQUENCE4res_u.sr_resok4;
  memcpy(ok.sr_sessionid, a.sa_sessionid, sizeof(ok.sr_sessionid));
  ok.sr_sequenceid = a.sa_sequenceid;
  ok.sr_slotid = a.sa_slotid;
  ok.sr_highest_slotid = r.highest_slotid;
  ok.sr_target_highest_slotid = r.target_highest_slotid;
  ok.sr_status_flags = r.status_flags;
  return NFS4_OK;
}

// RFC 8881 §18.37. In the session of its own COMPOUND it must be the last op (knfsd:
// the COMPOUND's reply still goes into that session's slot).
nfsstat4 DestroySession(CompoundState& cs, const nfs_argop4& args, nfs_resop4&) {
  Nfs4State* state = StateOf(cs);
  if (state == nullptr) return NFS4ERR_SERVERFAULT;
  const SessionId id = SessionIdOf(args.nfs_argop4_u.opdestroy_session.dsa_sessionid);
  const SessionId* own = cs.slot != nullptr ? &cs.slot->session_id() : nullptr;
  if (own != nullptr && *own == id && cs.op_index + 1 != cs.numops) return NFS4ERR_NOT_ONLY_OP;
  return state->DestroySession(id, own);
}

// RFC 8881 §18.50. A client that still holds opens or locks is CLIENTID_BUSY (asked of
// the open-state table first: Nfs4State never calls into it with its mutex held).
nfsstat4 DestroyClientId(CompoundState& cs, const nfs_argop4& args, nfs_resop4&) {
  Nfs4State* state = StateOf(cs);
  if (state == nullptr) return NFS4ERR_SERVERFAULT;
  const clientid4 id = args.nfs_argop4_u.opdestroy_clientid.dca_clientid;
  if (cs.services->open_state != nullptr && cs.services->open_state->states_of(id) > 0)
    return NFS4ERR_CLIENTID_BUSY;
  std::optional<clientid4> own;
  if (cs.slot != nullptr) own = cs.slot->client_id();
  return state->DestroyClientId(id, own);
}

// RFC 8881 §18.34. The connection is the call's; RDMA mode is never used.
nfsstat4 BindConnToSession(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  Nfs4State* state = StateOf(cs);
  if (state == nullptr) return NFS4ERR_SERVERFAULT;
  const BIND_CONN_TO_SESSION4args& a = args.nfs_argop4_u.opbind_conn_to_session;
  channel_dir_from_server4 dir = CDFS4_FORE;
  const SessionId id = SessionIdOf(a.bctsa_sessid);
  // rpcgen decodes an enum without checking its value: read it as the word it is (any
  // value; loading the enum itself would be undefined for one outside it).
  uint32_t from_client = 0;
  static_assert(sizeof(a.bctsa_dir) == sizeof(from_client));
  memcpy(&from_client, &a.bctsa_dir, sizeof(from_client));
  const nfsstat4 status = state->BindConnToSession(id, from_client, ConnectionId(cs), &dir);
  if (status != NFS4_OK) return status;
  BIND_CONN_TO_SESSION4resok& ok =
      res.nfs_resop4_u.opbind_conn_to_session.BIND_CONN_TO_SESSION4res_u.bctsr_resok4;
  memcpy(ok.bctsr_sessid, a.bctsa_sessid, sizeof(ok.bctsr_sessid));
  ok.bctsr_dir = dir;
  ok.bctsr_use_conn_in_rdma_mode = FALSE;
  return NFS4_OK;
}

// RFC 8881 §18.51. rca_one_fs: optional to act on, as knfsd; it needs a current
// filehandle and changes nothing. Otherwise once per client: it writes the client's
// record, and grace ends early once every client of the previous instance has sent it
// (state.h "Restart and grace").
nfsstat4 ReclaimComplete(CompoundState& cs, const nfs_argop4& args, nfs_resop4&) {
  Nfs4State* state = StateOf(cs);
  if (state == nullptr) return NFS4ERR_SERVERFAULT;
  if (args.nfs_argop4_u.opreclaim_complete.rca_one_fs) {
    return cs.current ? NFS4_OK : NFS4ERR_NOFILEHANDLE;
  }
  // Only in a session (the loop requires SEQUENCE first unless a test turned that
  // off).
  if (cs.slot == nullptr) return NFS4ERR_OP_NOT_IN_SESSION;
  return state->ReclaimComplete(cs.slot->client_id());
}

}  // namespace localnfs::server::nfs4
