#include "common/status.h"

#include <errno.h>

#include "gtest/gtest.h"

namespace localnfs {
namespace {

absl::StatusOr<int> Half(int x) {
  if (x % 2) return ErrnoToStatus(EINVAL, "odd");
  return x / 2;
}

absl::Status UseHalf(int x, int* out) {
  ASSIGN_OR_RETURN(*out, Half(x));
  RETURN_IF_ERROR(absl::OkStatus());
  return absl::OkStatus();
}

TEST(Status, ErrnoRoundTripsThroughPayload) {
  for (int err : {EPERM, ENOENT, EIO, EEXIST, ENOTDIR, EISDIR, EINVAL, EFBIG, ENOSPC, EROFS,
                  EMLINK, ENAMETOOLONG, ENOTEMPTY, EDQUOT, ESTALE, EXDEV, ELOOP}) {
    absl::Status s = ErrnoToStatus(err, "op");
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(StatusErrno(s), err) << s;
  }
}

TEST(Status, ZeroErrnoIsOk) { EXPECT_TRUE(ErrnoToStatus(0, "x").ok()); }

TEST(Status, PlainStatusMapsByCode) {
  EXPECT_EQ(StatusErrno(absl::NotFoundError("x")), ENOENT);
  EXPECT_EQ(StatusErrno(absl::PermissionDeniedError("x")), EACCES);
  EXPECT_EQ(StatusErrno(absl::InternalError("x")), EIO);
  EXPECT_EQ(StatusErrno(absl::OkStatus()), 0);
}

TEST(Status, MacrosPropagate) {
  int v = 0;
  EXPECT_TRUE(UseHalf(8, &v).ok());
  EXPECT_EQ(v, 4);
  absl::Status s = UseHalf(3, &v);
  EXPECT_EQ(StatusErrno(s), EINVAL);
}

}  // namespace
}  // namespace localnfs
