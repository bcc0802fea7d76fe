#include "server/nfs3/nfs_status.h"

#include <errno.h>

#include "common/status.h"
#include "gtest/gtest.h"

namespace localnfs::server {
namespace {

TEST(NfsStatusTest, OkIsNfs3Ok) { EXPECT_EQ(NfsStatusFromStatus(absl::OkStatus()), NFS3_OK); }

TEST(NfsStatusTest, ErrnosMapLikeKnfsd) {
  const std::pair<int, nfsstat3> cases[] = {
      {EPERM, NFS3ERR_PERM},         {ENOENT, NFS3ERR_NOENT},
      {EIO, NFS3ERR_IO},             {EACCES, NFS3ERR_ACCES},
      {EEXIST, NFS3ERR_EXIST},       {EXDEV, NFS3ERR_XDEV},
      {ENOTDIR, NFS3ERR_NOTDIR},     {EISDIR, NFS3ERR_ISDIR},
      {EINVAL, NFS3ERR_INVAL},       {EFBIG, NFS3ERR_FBIG},
      {ENOSPC, NFS3ERR_NOSPC},       {EROFS, NFS3ERR_ROFS},
      {EMLINK, NFS3ERR_MLINK},       {ENAMETOOLONG, NFS3ERR_NAMETOOLONG},
      {ENOTEMPTY, NFS3ERR_NOTEMPTY}, {EDQUOT, NFS3ERR_DQUOT},
      {ESTALE, NFS3ERR_STALE},       {EOPNOTSUPP, NFS3ERR_NOTSUPP},
      {EAGAIN, NFS3ERR_JUKEBOX},     {ELOOP, NFS3ERR_INVAL},
  };
  for (const auto& [err, want] : cases)
    EXPECT_EQ(NfsStatusFromStatus(ErrnoToStatus(err, "x")), want) << "errno " << err;
}

TEST(NfsStatusTest, CarrierErrnosGiveTheNfsOnlyErrors) {
  EXPECT_EQ(NfsStatusFromStatus(ErrnoToStatus(EBADMSG, "h")), NFS3ERR_BADHANDLE);
  EXPECT_EQ(NfsStatusFromStatus(ErrnoToStatus(EBADE, "g")), NFS3ERR_NOT_SYNC);
  EXPECT_EQ(NfsStatusFromStatus(ErrnoToStatus(EBADR, "c")), NFS3ERR_BAD_COOKIE);
  EXPECT_EQ(NfsStatusFromStatus(ErrnoToStatus(ENOBUFS, "t")), NFS3ERR_TOOSMALL);
}

TEST(NfsStatusTest, UnknownErrnoIsIo) {
  EXPECT_EQ(NfsStatusFromStatus(ErrnoToStatus(ECHILD, "x")), NFS3ERR_IO);
  EXPECT_EQ(NfsStatusFromStatus(absl::NotFoundError("no errno")), NFS3ERR_NOENT);
}

}  // namespace
}  // namespace localnfs::server
