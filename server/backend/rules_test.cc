// server/backend/rules_test.cc — the rules (rules.h, creds.h CheckPermission) on
// attributes whose mask lacks what they read: each fails closed.
#include "server/backend/rules.h"

#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/status.h"
#include "gtest/gtest.h"
#include "server/backend/file_cache.h"
#include "server/policy/creds.h"

namespace localnfs::server::backend {
namespace {

// A regular file 06777 of uid/gid 1000, empty, with every field of kAttrBasic: what
// each rule allows; the tests take one field out of the mask at a time.
Attrs OpenFile() {
  Attrs a;
  a.valid = kAttrBasic;
  a.type = FileType::kRegular;
  a.mode = 06777;
  a.uid = a.gid = 1000;
  return a;
}

Credentials User(uint32_t uid) {
  Credentials c;
  c.uid = c.gid = uid;
  return c;
}

TEST(RulesTest, CompleteAttributesAreJudged) {
  const Attrs a = OpenFile();
  EXPECT_TRUE(CheckIo(a, User(2000), kMayWrite).ok());
  EXPECT_TRUE(CheckPermission(a, User(2000), kMayRead | kMayExec, false).ok());
  EXPECT_TRUE(HasSetIdBits(a));
  Attrs plain = a;
  plain.mode = 0644;
  EXPECT_FALSE(HasSetIdBits(plain));
  EXPECT_EQ(StatusErrno(CheckIo(plain, User(2000), kMayWrite)), EACCES);
  EXPECT_TRUE(CheckLinkSource(a).ok());
}

TEST(RulesTest, AMissingPermissionFieldRefuses) {
  for (uint32_t field : {kAttrType, kAttrMode, kAttrUid, kAttrGid}) {
    Attrs a = OpenFile();
    a.valid &= ~field;
    EXPECT_EQ(StatusErrno(CheckPermission(a, User(2000), kMayRead, false)), EACCES) << field;
    EXPECT_EQ(StatusErrno(CheckPermission(a, User(0), kMayRead, false)), EACCES) << field;
    EXPECT_EQ(StatusErrno(CheckIo(a, User(1000), kMayRead)), EACCES) << field;
    EXPECT_EQ(StatusErrno(CheckLocalIo(a, User(1000), FileMode::kRead)), EACCES) << field;
  }
}

TEST(RulesTest, UnknownTypeOrModeCountsAsSetId) {
  for (uint32_t field : {kAttrType, kAttrMode}) {
    Attrs a = OpenFile();
    a.mode = 0644;
    a.valid &= ~field;
    EXPECT_TRUE(HasSetIdBits(a)) << field;
  }
}

TEST(RulesTest, SetAttrWithoutWhatItComparesRefuses) {
  Attrs a = OpenFile();
  a.valid &= ~kAttrCtime;
  EXPECT_EQ(StatusErrno(CheckSetAttr(a, {}, a.ctime, User(1000), false).status()),
            kErrNotSync);
  a = OpenFile();
  a.valid &= ~kAttrSize;
  SetAttrRequest truncate;
  truncate.size = 0;
  EXPECT_EQ(StatusErrno(CheckSetAttr(a, truncate, std::nullopt, User(1000), false).status()),
            EACCES);
  // Not known to be the owner: an unprivileged server refuses what only the owner may do.
  a = OpenFile();
  a.valid &= ~kAttrUid;
  SetAttrRequest chmod;
  chmod.mode = 0600;
  EXPECT_EQ(StatusErrno(CheckSetAttrUnprivileged(a, chmod, User(1000))), EPERM);
}

// NFS sizes are unsigned: one beyond off_t is EFBIG (NFSv3 and NFSv4 SETATTR alike),
// after the type and permission checks; INT64_MAX itself is the kernel's to judge.
TEST(RulesTest, ASizeBeyondOffTIsEfbig) {
  const Attrs a = OpenFile();
  SetAttrRequest req;
  for (uint64_t size : {UINT64_MAX, uint64_t{1} << 63}) {
    req.size = size;
    EXPECT_EQ(StatusErrno(CheckSetAttr(a, req, std::nullopt, User(1000), false).status()), EFBIG)
        << size;
    Attrs dir = a;
    dir.type = FileType::kDirectory;
    EXPECT_EQ(StatusErrno(CheckSetAttr(dir, req, std::nullopt, User(1000), false).status()),
              EISDIR);
  }
  req.size = static_cast<uint64_t>(INT64_MAX);
  EXPECT_TRUE(CheckSetAttr(a, req, std::nullopt, User(1000), false).ok());
}

TEST(RulesTest, TouchIsNotWidenedWithoutTheOwner) {
  Attrs a = OpenFile();
  SetAttrRequest mtime_now;
  mtime_now.mtime.how = TimeHow::kServerTime;
  EXPECT_EQ(TouchForWriter(a, mtime_now, User(2000)).atime.how, TimeHow::kServerTime);
  a.valid &= ~kAttrUid;
  EXPECT_EQ(TouchForWriter(a, mtime_now, User(2000)).atime.how, TimeHow::kDontChange);
}

TEST(RulesTest, ExclusiveRetransmitAndLinkNeedTheirFields) {
  const uint64_t verifier = 0x0000000500000007ull;
  const VerifierTimes v = ExclusiveVerifierTimes(verifier);
  Attrs a = OpenFile();
  a.atime.tv_sec = v.atime_sec;
  a.mtime.tv_sec = v.mtime_sec;
  EXPECT_TRUE(IsExclusiveRetransmit(a, verifier));
  for (uint32_t field : {kAttrType, kAttrSize, kAttrAtime, kAttrMtime}) {
    Attrs b = a;
    b.valid &= ~field;
    EXPECT_FALSE(IsExclusiveRetransmit(b, verifier)) << field;
  }
  a.valid &= ~kAttrType;
  EXPECT_EQ(StatusErrno(CheckLinkSource(a)), EACCES);
}

}  // namespace
}  // namespace localnfs::server::backend
