// server/nfs4/nfs4proc_ns.h — the NFSv4 operations that change the namespace and the
// attributes (RFC 8881 §18: CREATE, REMOVE, RENAME, LINK, SETATTR) and NFSv4.2's
// operations on file contents (RFC 7862 §15: SEEK, ALLOCATE, DEALLOCATE, COPY, CLONE,
// READ_PLUS, OFFLOAD_CANCEL, OFFLOAD_STATUS, IO_ADVISE). The kernel's nfsd4_create,
// nfsd4_remove, nfsd4_rename, nfsd4_link, nfsd4_setattr, nfsd4_seek, nfsd4_allocate,
// nfsd4_deallocate, nfsd4_copy, nfsd4_clone and nfsd4_encode_read_plus.
//
// Contract: nfs4proc.h's (the loop's rules held before the call; an error leaves the
// op's arm without allocations). Without a namespace (CompoundState::services null:
// tests of the loop alone) every handler answers NFS4ERR_SERVERFAULT.
//
// Ops of the 4.2 table left without a handler answer NFS4ERR_NOTSUPP from the loop, as
// knfsd answers them: COPY_NOTIFY (no inter-server copy), WRITE_SAME, LAYOUTERROR and
// LAYOUTSTATS (no layouts are granted), and the extended-attribute ops (xattr_support is
// false).
//
// Thread-safety: handlers touch only their CompoundState and arguments.
#pragma once

#include "rpc/nfs4.h"
#include "server/nfs4/compound.h"

namespace localnfs::server::nfs4 {

// RFC 8881 §18.4, §18.25, §18.26, §18.9, §18.30.
nfsstat4 Create(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 Remove(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 Rename(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 Link(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 SetAttr(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);

// RFC 7862 §15.11, §15.1, §15.4, §15.2, §15.13, §15.10, §15.8, §15.9, §15.5.
nfsstat4 Seek(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 Allocate(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 Deallocate(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 Copy(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 Clone(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 ReadPlus(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 OffloadCancel(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 OffloadStatus(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 IoAdvise(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);

}  // namespace localnfs::server::nfs4
