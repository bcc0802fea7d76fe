// server/nfs4/nfs4proc.h — the NFSv4 operation handlers (the kernel's
// nfs4proc.c op functions), one per implemented row of the op table
// (compound.cc). PUTFH, PUTROOTFH and LOOKUP make current what the namespace
// (pseudofs.h) authorised and resolved; the other ops use that object.
//
// Contract of every handler: called by RunCompound only after the table's rules
// held (a current or saved filehandle present where the row asks for one, the
// export writable for kModifiesFs, the op in its place in the COMPOUND); it
// fills its own arm of `res` on success and returns the op's status, which the
// loop writes into `res`. On an error it leaves its arm without allocations (an
// error result encodes, and is freed, as the status alone).
//
// Thread-safety: handlers touch only their CompoundState and arguments.
#pragma once

#include <stdint.h>
#include <string.h>

#include <string_view>
#include <type_traits>

#include "rpc/nfs4.h"
#include "rpc/wire_enum.h"
#include "server/nfs4/compound.h"
#include "server/nfs4/pseudofs.h"

namespace localnfs::server::nfs4 {

// ---- What the handler files (nfs4proc.cc, nfs4proc_ns.cc, nfs4proc_io.cc) share

// The namespace, or null without one (tests of the COMPOUND loop alone).
PseudoFs* Namespace(const CompoundState& cs);
// The COMPOUND's connection and credentials as sent (`cs.call` not null).
Requester Who(const CompoundState& cs);
// The object the namespace made current; null without a namespace.
const Nfs4Object* CurrentObject(const CompoundState& cs);
// The status of an op that needs a directory as its current filehandle (knfsd's
// fh_verify(S_IFDIR): a symlink is NFS4ERR_SYMLINK in NFSv4).
nfsstat4 CheckDirectory(const Nfs4Object& o);
// The status of an op that needs a regular file (knfsd's nfsd_check_obj_isreg for
// NFSv4.1 and later): a directory (a pseudo one too) NFS4ERR_ISDIR, a symlink
// NFS4ERR_SYMLINK, anything else NFS4ERR_WRONG_TYPE.
nfsstat4 CheckRegular(const Nfs4Object& o);
// What an op on the current regular file (READ, WRITE, SEEK, …) starts with: *out the
// current filehandle's object; NFS4ERR_SERVERFAULT without a namespace or an object,
// CheckRegular's status for one of another type.
nfsstat4 CurrentRegularFile(const CompoundState& cs, const Nfs4Object** out);
// A component argument (LOOKUP, SECINFO, CREATE, REMOVE, RENAME, LINK), checked as
// knfsd's check_filename and RFC 8881 §18.13.3: empty → INVAL, "." / ".." or a '/' or
// NUL in it → BADNAME, longer than a name may be → NAMETOOLONG. *name views `c`.
nfsstat4 CheckComponent(const component4& c, std::string_view* name);
// Enum fields of the arguments are read as the integer the wire carried.
using rpc::WireEnumValue;

// ---- Handlers

nfsstat4 PutRootFh(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 PutFh(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 GetFh(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 SaveFh(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 RestoreFh(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);

// The namespace and the read-only ops (pseudofs.h, fattr.h). Without a namespace
// (CompoundState::services null: tests of the loop alone) they answer
// NFS4ERR_SERVERFAULT.
nfsstat4 Lookup(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 Lookupp(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 GetAttr(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 Access(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 ReadLink(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 ReadDir(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 SecInfo(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 SecInfoNoName(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 Verify(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);
nfsstat4 NVerify(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);

}  // namespace localnfs::server::nfs4
