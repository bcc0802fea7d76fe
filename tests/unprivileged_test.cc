// tests/unprivileged_test.cc — localnfsd run as an ordinary user (uid 65534, no
// capabilities): it serves, its file handles survive renames and a restart although
// open_by_handle_at is unavailable (server/fhandle.h: the unprivileged resolver), and
// forged handles are refused. Needs root to start the server as another user.
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"
#include "tests/harness.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

constexpr int kUser = 65534;

uint64_t Inode(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0 ? st.st_ino : 0;
}

uid_t Owner(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0 ? st.st_uid : static_cast<uid_t>(-1);
}

class UnprivilegedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to start the server as uid " << kUser;
    ASSERT_EQ(chown(root_.path().c_str(), kUser, kUser), 0);
    ServerOptions o;
    o.args = {"--export", root_.path() + ":rw"};
    o.run_as_uid = kUser;
    o.run_as_gid = kUser;
    srv_ = std::make_unique<ServerProcess>(o);
    ASSERT_TRUE(srv_->Start());
  }

  TempDir root_;
  std::unique_ptr<ServerProcess> srv_;
};

TEST_F(UnprivilegedTest, ServesAndHandlesSurviveRenameAndRestart) {
  AuthSys user;
  user.uid = kUser;
  user.gid = kUser;
  std::string rootfh, dfh, ffh;
  Fattr fattr;
  {
    WireConn c;
    ASSERT_TRUE(c.Connect(srv_->nfs_port()));
    Nfs3Wire n(&c, user);
    ASSERT_EQ(n.Mount(root_.path(), &rootfh), 0u) << n.last_rpc().error;
    ASSERT_EQ(n.Mkdir(rootfh, "d", 0755, &dfh), kNfs3Ok);
    ASSERT_EQ(n.Create(dfh, "f", 0644, &ffh), kNfs3Ok);
    ASSERT_EQ(n.Write(ffh, 0, "unprivileged data", 2 /*FILE_SYNC*/), kNfs3Ok);
    std::string data;
    ASSERT_EQ(n.Read(ffh, 0, 100, &data), kNfs3Ok);
    EXPECT_EQ(data, "unprivileged data");
    ASSERT_EQ(n.Getattr(ffh, &fattr), kNfs3Ok);
    EXPECT_EQ(fattr.fileid, Inode(root_.Sub("d/f")));
    // A server without privilege creates everything as itself.
    EXPECT_EQ(Owner(root_.Sub("d/f")), static_cast<uid_t>(kUser));
    // Renamed over NFS while served: the old handles keep working.
    ASSERT_EQ(n.Rename(rootfh, "d", rootfh, "d2"), kNfs3Ok);
    ASSERT_EQ(n.Read(ffh, 0, 100, &data), kNfs3Ok);
    EXPECT_EQ(data, "unprivileged data");
  }
  ASSERT_TRUE(srv_->Stop());
  // Renamed on disk while the server is down: the handle must still find the file.
  ASSERT_EQ(rename(root_.Sub("d2").c_str(), root_.Sub("e").c_str()), 0);
  ASSERT_EQ(rename(root_.Sub("e/f").c_str(), root_.Sub("e/g").c_str()), 0);
  ASSERT_TRUE(srv_->Start());

  WireConn c;
  ASSERT_TRUE(c.Connect(srv_->nfs_port()));
  Nfs3Wire n(&c, user);
  Fattr after;
  ASSERT_EQ(n.Getattr(ffh, &after), kNfs3Ok) << "file handle after rename + restart";
  EXPECT_EQ(after.fileid, fattr.fileid);
  std::string data;
  ASSERT_EQ(n.Read(ffh, 0, 100, &data), kNfs3Ok);
  EXPECT_EQ(data, "unprivileged data");
  std::string gfh;
  ASSERT_EQ(n.Lookup(dfh, "g", &gfh), kNfs3Ok) << "LOOKUP in the renamed dir's old handle";
  ASSERT_EQ(n.Getattr(rootfh, &after), kNfs3Ok);
  EXPECT_EQ(after.fileid, Inode(root_.path()));
}

TEST_F(UnprivilegedTest, ForgedAndRemovedHandlesAreRefused) {
  WireConn c;
  ASSERT_TRUE(c.Connect(srv_->nfs_port()));
  Nfs3Wire n(&c);
  std::string rootfh, ffh;
  ASSERT_EQ(n.Mount(root_.path(), &rootfh), 0u) << n.last_rpc().error;
  ASSERT_EQ(n.Create(rootfh, "victim", 0644, &ffh), kNfs3Ok);
  for (size_t i = 0; i < ffh.size(); ++i) {
    std::string forged = ffh;
    forged[i] ^= 0x5a;
    uint32_t st = n.Getattr(forged);
    EXPECT_TRUE(st == kNfs3ErrBadhandle || st == kNfs3ErrStale) << "byte " << i << ": " << st;
  }
  ASSERT_EQ(n.Remove(rootfh, "victim"), kNfs3Ok);
  EXPECT_EQ(n.Getattr(ffh), kNfs3ErrStale);
}

}  // namespace
}  // namespace localnfs::testing
