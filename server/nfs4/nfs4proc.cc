// server/nfs4/nfs4proc.cc — the NFSv4 operation handlers (see nfs4proc.h). The
// filehandle ops only, for now: they set and read the compound state.
#include "server/nfs4/nfs4proc.h"

#include <stdlib.h>
#include <string.h>

namespace localnfs::server::nfs4 {

// RFC 8881 §18.21: the current filehandle becomes the root of the server's
// namespace.
nfsstat4 PutRootFh(CompoundState& cs, const nfs_argop4&, nfs_resop4&) {
  cs.current = PseudoRootHandle();
  return NFS4_OK;
}

// RFC 8881 §18.19: the current filehandle becomes the one given.
// TODO(pseudo-fs, handles): validate it (NFS4ERR_BADHANDLE, NFS4ERR_STALE, the
// export's client rule, NFS4ERR_WRONGSEC); for now any non-empty handle is kept
// as it came, and the pseudo root's bytes give back the pseudo root.
nfsstat4 PutFh(CompoundState& cs, const nfs_argop4& args, nfs_resop4&) {
  const nfs_fh4& fh = args.nfs_argop4_u.opputfh.object;
  if (fh.nfs_fh4_len == 0) return NFS4ERR_BADHANDLE;
  std::string bytes(fh.nfs_fh4_val, fh.nfs_fh4_len);
  FileHandle4 root = PseudoRootHandle();
  cs.current = bytes == root.bytes ? std::move(root) : FileHandle4{std::move(bytes), false};
  return NFS4_OK;
}

// RFC 8881 §18.8: the current filehandle's bytes.
nfsstat4 GetFh(CompoundState& cs, const nfs_argop4&, nfs_resop4& res) {
  const std::string& bytes = cs.current->bytes;
  nfs_fh4& out = res.nfs_resop4_u.opgetfh.GETFH4res_u.resok4.object;
  // Freed with the result (xdr_free: mem_free is free).
  out.nfs_fh4_val = static_cast<char*>(malloc(bytes.empty() ? 1 : bytes.size()));
  if (out.nfs_fh4_val == nullptr) abort();
  memcpy(out.nfs_fh4_val, bytes.data(), bytes.size());
  out.nfs_fh4_len = static_cast<u_int>(bytes.size());
  return NFS4_OK;
}

// RFC 8881 §18.31 and §18.27: save the current filehandle, or make the saved
// one current again (the saved one stays saved).
nfsstat4 SaveFh(CompoundState& cs, const nfs_argop4&, nfs_resop4&) {
  cs.saved = cs.current;
  return NFS4_OK;
}

nfsstat4 RestoreFh(CompoundState& cs, const nfs_argop4&, nfs_resop4&) {
  cs.current = cs.saved;
  return NFS4_OK;
}

}  // namespace localnfs::server::nfs4
