// server/nfs3/nfs_status.h — the ONE translation of an internal absl::Status to nfsstat3.
//
// Owns: the errno → nfsstat3 table (like knfsd's nfserrno()). Statuses carry their
// errno (common/status.h). Three NFS errors have no errno of their own; server code
// uses these carrier errnos for them:
//   EBADMSG → NFS3ERR_BADHANDLE   (fhandle.cc: truncated, wrong version, bad MAC)
//   EBADE   → NFS3ERR_NOT_SYNC    (backend/types.h kErrNotSync: SETATTR guard mismatch)
//   EBADR   → NFS3ERR_BAD_COOKIE  (Backend::ReadDir: a cookie the directory never gave;
//                                  nfs3proc.cc: another directory's cookie verifier)
// An answer of NFS3ERR_IO (EIO, or an errno the table does not know) is logged with its
// cause, rate-limited (common/log.h LogRateLimit): the client learns nothing from it.
// Thread-safety: safe from any thread.
#pragma once

#include "absl/status/status.h"
#include "rpc/nfs3.h"

namespace localnfs::server {

nfsstat3 NfsStatusFromStatus(const absl::Status& status);

}  // namespace localnfs::server
