// server/nfs3/nfs_status.cc — see nfs_status.h.
#include "server/nfs3/nfs_status.h"

#include <errno.h>
#include <stdint.h>

#include "absl/time/time.h"
#include "common/log.h"
#include "common/status.h"

namespace localnfs::server {
namespace {

// NFS3ERR_IO tells the client nothing it can act on: the cause (an I/O error of the
// file system, or an errno the table below does not know) is logged here, at most
// 10 lines a second so that a failing disk cannot flood the log; the next line logged
// says how many were left out.
void LogIoError(const absl::Status& status) {
  static LogRateLimit* limit = new LogRateLimit(10, absl::Seconds(1));
  uint64_t left_out = 0;
  if (!limit->Allow(&left_out)) return;
  if (left_out > 0) {
    LOG_WARNING("I/O error, answered NFS3ERR_IO: %s (%d earlier ones not logged)",
                status.message(), left_out);
  } else {
    LOG_WARNING("I/O error, answered NFS3ERR_IO: %s", status.message());
  }
}

nfsstat3 NfsStatusOfErrno(int err) {
  switch (err) {
    case EPERM: return NFS3ERR_PERM;
    case ENOENT: return NFS3ERR_NOENT;
    case EIO: return NFS3ERR_IO;
    case ENXIO: return NFS3ERR_NXIO;
    case EACCES:
    case ETXTBSY: return NFS3ERR_ACCES;
    case EEXIST: return NFS3ERR_EXIST;
    case EXDEV: return NFS3ERR_XDEV;
    case ENODEV: return NFS3ERR_NODEV;
    case ENOTDIR: return NFS3ERR_NOTDIR;
    case EISDIR: return NFS3ERR_ISDIR;
    case EINVAL:
    case ELOOP:  // O_NOFOLLOW met a symlink where an object was expected
    case EOVERFLOW: return NFS3ERR_INVAL;
    case EFBIG: return NFS3ERR_FBIG;
    case ENOSPC: return NFS3ERR_NOSPC;
    case EROFS: return NFS3ERR_ROFS;
    case EMLINK: return NFS3ERR_MLINK;
    case ENAMETOOLONG: return NFS3ERR_NAMETOOLONG;
    case ENOTEMPTY: return NFS3ERR_NOTEMPTY;
    case EDQUOT: return NFS3ERR_DQUOT;
    case ESTALE: return NFS3ERR_STALE;
    case EBADMSG: return NFS3ERR_BADHANDLE;
    case EBADE: return NFS3ERR_NOT_SYNC;
    case EBADR: return NFS3ERR_BAD_COOKIE;
    case EOPNOTSUPP: return NFS3ERR_NOTSUPP;
    case ENOBUFS: return NFS3ERR_TOOSMALL;
    // Transient shortage: the client retries later.
    case EAGAIN:
    case ETIMEDOUT:  // as knfsd's nfserrno: e.g. every handle-search slot busy (fhandle.h)
    case ENOMEM:
    case EMFILE:
    case ENFILE: return NFS3ERR_JUKEBOX;
    default: return NFS3ERR_IO;
  }
}

}  // namespace

nfsstat3 NfsStatusFromStatus(const absl::Status& status) {
  if (status.ok()) return NFS3_OK;
  const nfsstat3 s = NfsStatusOfErrno(StatusErrno(status));
  if (s == NFS3ERR_IO) LogIoError(status);
  return s;
}

}  // namespace localnfs::server
