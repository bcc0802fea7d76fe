// server/nfs4/nfs4proc_io.h — the NFSv4.1 stateful file operations (RFC 8881 §18):
// OPEN, OPEN_DOWNGRADE, CLOSE, READ, WRITE, COMMIT, LOCK, LOCKT, LOCKU, TEST_STATEID,
// FREE_STATEID, DELEGRETURN and BACKCHANNEL_CTL — the kernel's nfsd4_open, nfsd4_read,
// nfsd4_write, nfsd4_lock… on top of the open-state table (open_state.h), the namespace
// (pseudofs.h) and the Backend.
//
// Stateids of I/O (CheckIoStateId; knfsd's nfs4_preprocess_stateid_op), for READ and
// WRITE here and for the ops of nfs4proc_ns.cc that carry one: the anonymous stateid
// (all zeros) and the READ bypass (all ones: a READ ignores share reservations; a WRITE
// with it is anonymous) do I/O without an open, refused with NFS4ERR_LOCKED while an
// open denies that access (NFS4ERR_GRACE in grace);
// the "current" stateid (seqid 1, other zero) is CompoundState's current stateid (RFC
// 8881 §16.2.3.1.2), NFS4ERR_BAD_STATEID when none is set for the current filehandle;
// other stateids with a special `other` are NFS4ERR_BAD_STATEID; anything else must be
// the client's open or lock stateid of the file with the access the I/O needs
// (OpenStateTable::Check). Permission is the Backend's own check as the squashed user
// (CheckIo: owner override, read-if-exec), as for NFSv3.
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

#include <stdint.h>

#include "rpc/nfs4.h"
#include "server/nfs4/compound.h"
#include "server/nfs4/pseudofs.h"

namespace localnfs::server::nfs4 {

// ---- What nfs4proc_ns.cc shares: the stateids and the write verifier, kept here

// The stateid check of I/O on `o` (the current or saved file) that needs `need`
// (OPEN4_SHARE_ACCESS_READ or _WRITE), as above: READ and WRITE, and SETATTR of the
// size, SEEK, ALLOCATE, DEALLOCATE, COPY, CLONE, READ_PLUS and IO_ADVISE. Tests of the
// ops alone may run without parts of the state: without a session the client is 0,
// without a client table there is no grace, without an open-state table no open denies
// anonymous I/O and any other stateid is NFS4ERR_BAD_STATEID (none is ours).
nfsstat4 CheckIoStateId(const CompoundState& cs, const Nfs4Object& o, const stateid4& stateid,
                        uint32_t need);
// The write verifier of this server instance (RFC 8881 §18.32.3: what WRITE, COMMIT and
// COPY answer): Nfs4Services::write_verifier, NFSv3's; 0 without services.
void WriteVerifier(const CompoundState& cs, verifier4 out);

// ---- Handlers

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
