// server/nfs4/nfs4proc_io.h — the NFSv4.1 stateful file operations (RFC 8881 §18):
// OPEN, OPEN_DOWNGRADE, CLOSE, READ, WRITE, COMMIT, LOCK, LOCKT, LOCKU, TEST_STATEID,
// FREE_STATEID, DELEGRETURN and BACKCHANNEL_CTL — the kernel's nfsd4_open, nfsd4_read,
// nfsd4_write, nfsd4_lock… on top of the open-state table (open_state.h), the namespace
// (pseudofs.h) and the Backend.
//
// Stateids of READ and WRITE (knfsd's nfs4_preprocess_stateid_op): the anonymous stateid
// (all zeros) and the READ bypass (all ones: a READ ignores share reservations; a WRITE
// with it is anonymous) do I/O without an open, refused with NFS4ERR_LOCKED while an
// open denies that access (NFS4ERR_GRACE in grace);
// the "current" stateid (seqid 1, other zero) is CompoundState's current stateid;
// anything else must be the client's open or lock stateid of the current file with the
// access the I/O needs (OpenStateTable::Check). Permission is the Backend's own check
// as the squashed user (CheckIo: owner override, read-if-exec), as for NFSv3.
//
// No delegations and no layouts are ever granted: a delegation stateid is
// NFS4ERR_BAD_STATEID (CLAIM_DELEG_CUR*, DELEGRETURN), CLAIM_DELEGATE_PREV is NOTSUPP,
// and the layout ops, WANT_DELEGATION and DELEGPURGE have no handler (NFS4ERR_NOTSUPP,
// as knfsd without pNFS). Reclaims (CLAIM_PREVIOUS, CLAIM_DELEG_PREV_FH, LOCK with
// reclaim) and new state ask the grace period (Nfs4State::CheckReclaim, CheckGrace).
//
// Contract as nfs4proc.h: called by RunCompound after the table's rules held; an error
// leaves the result arm without allocations.
//
// Thread-safety: handlers touch only their CompoundState, arguments and the
// thread-safe services.
#pragma once

#include "rpc/nfs4.h"
#include "server/nfs4/compound.h"

namespace localnfs::server::nfs4 {

nfsstat4 Open(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 OpenDowngrade(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 Close(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 Read(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 Write(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 Commit(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 Lock(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 LockT(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 LockU(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 TestStateId(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 FreeStateId(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 DelegReturn(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 BackchannelCtl(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);

}  // namespace localnfs::server::nfs4
