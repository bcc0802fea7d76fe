// server/nfs4/session_ops.h — the NFSv4.1 client and session operations (the kernel's
// nfsd4_exchange_id, nfsd4_create_session, nfsd4_sequence, …): EXCHANGE_ID,
// CREATE_SESSION, SEQUENCE, DESTROY_SESSION, DESTROY_CLIENTID, BIND_CONN_TO_SESSION,
// RECLAIM_COMPLETE.
//
// Each handler translates its arguments for Nfs4State (state.h), which owns the
// records and their rules, and fills its result; the contract of nfs4proc.h holds (the
// loop has checked the op's place; an error leaves the result without allocations).
// Without services (unit tests of other rules, the fuzz target) they answer
// NFS4ERR_SERVERFAULT.
//
// SEQUENCE also sets the compound state for the rest of the COMPOUND: the slot hold
// (the reply goes into it), a retry's kept reply, and the reply budget the loop
// enforces (compound.h).
//
// Thread-safety: handlers touch their CompoundState and the thread-safe Nfs4State.
#pragma once

#include "rpc/nfs4.h"
#include "server/nfs4/compound.h"

namespace localnfs::server::nfs4 {

nfsstat4 ExchangeId(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 CreateSession(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 Sequence(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 DestroySession(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 DestroyClientId(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 BindConnToSession(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 ReclaimComplete(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);

}  // namespace localnfs::server::nfs4
