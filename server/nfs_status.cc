// server/nfs_status.cc — see nfs_status.h.
#include "server/nfs_status.h"

#include <errno.h>

#include "common/status.h"

namespace localnfs::server {

nfsstat3 NfsStatusFromStatus(const absl::Status& status) {
  if (status.ok()) return NFS3_OK;
  switch (StatusErrno(status)) {
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
    case ENOMEM:
    case EMFILE:
    case ENFILE: return NFS3ERR_JUKEBOX;
    default: return NFS3ERR_IO;
  }
}

}  // namespace localnfs::server
