// tests/backend_errors_test.cc — the file system under an export failing: a full
// tmpfs (ENOSPC) and a read-only mount under an export the server thinks is rw (EROFS)
// reach the client as NFS3ERR_NOSPC and NFS3ERR_ROFS, the data acknowledged before is
// intact, and the server keeps serving that export's reads and its other exports.
// Needs root (mounts a tmpfs and a read-only bind mount; unmounted in TearDown).
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"
#include "tests/harness.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

constexpr uint32_t kNfs3ErrNospc = 28;
constexpr uint32_t kFileSync = 2;

class BackendErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a tmpfs";
    ASSERT_EQ(mkdir(full_.c_str(), 0755), 0);
    ASSERT_EQ(mount("tmpfs", full_.c_str(), "tmpfs", 0, "size=256k"), 0) << strerror(errno);
    full_mounted_ = true;
    ASSERT_EQ(mkdir(ro_.c_str(), 0755), 0);
    ASSERT_TRUE(WriteFile(ro_ + "/kept", "read-only data"));
    ASSERT_EQ(mount(ro_.c_str(), ro_.c_str(), nullptr, MS_BIND, nullptr), 0) << strerror(errno);
    ro_mounted_ = true;
    ASSERT_EQ(mount(nullptr, ro_.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr), 0)
        << strerror(errno);
    ASSERT_EQ(mkdir(other_.c_str(), 0755), 0);
    srv_ = std::make_unique<ServerProcess>(std::vector<std::string>{
        "--export", full_ + ":rw,no_root_squash", "--export", ro_ + ":rw,no_root_squash",
        "--export", other_ + ":rw,no_root_squash"});
    ASSERT_TRUE(srv_->Start());
    ASSERT_TRUE(conn_.Connect(srv_->nfs_port()));
  }
  void TearDown() override {
    if (srv_ && srv_->running()) {
      EXPECT_TRUE(srv_->Stop());
    }
    if (ro_mounted_) umount2(ro_.c_str(), MNT_DETACH);
    if (full_mounted_) umount2(full_.c_str(), MNT_DETACH);
  }
  std::string Root(const std::string& path) {
    std::string fh;
    Nfs3Wire n(&conn_);
    EXPECT_EQ(n.Mount(path, &fh), 0u) << n.last_rpc().error;
    return fh;
  }

  TempDir top_;
  std::string full_ = top_.Sub("full"), ro_ = top_.Sub("ro"), other_ = top_.Sub("other");
  bool full_mounted_ = false, ro_mounted_ = false;
  std::unique_ptr<ServerProcess> srv_;
  WireConn conn_;
};

TEST_F(BackendErrorsTest, FullFileSystemGivesNospcAndKeepsServing) {
  Nfs3Wire n(&conn_);
  const std::string root = Root(full_);
  std::string fh;
  ASSERT_EQ(n.Create(root, "big", 0644, &fh), 0u);
  const std::string chunk(64 * 1024, 'z');
  uint64_t off = 0;
  uint32_t status = 0;
  for (int i = 0; i < 64 && status == 0; ++i) {
    uint32_t count = 0;
    status = n.Write(fh, off, chunk, kFileSync, &count);
    if (status == 0) off += count;
  }
  EXPECT_EQ(status, kNfs3ErrNospc) << "after " << off << " bytes";
  EXPECT_GT(off, 0u);
  // What was acknowledged FILE_SYNC is there; the export still answers.
  std::string back;
  ASSERT_EQ(n.Read(fh, 0, 64 * 1024, &back), 0u);
  EXPECT_EQ(back, chunk);
  EXPECT_EQ(ReadFile(full_ + "/big").substr(0, chunk.size()), chunk);
  // The other export is not affected.
  const std::string other = Root(other_);
  std::string ofh;
  ASSERT_EQ(n.Create(other, "ok", 0644, &ofh), 0u);
  EXPECT_EQ(n.Write(ofh, 0, chunk, kFileSync), 0u);
  EXPECT_EQ(ReadFile(other_ + "/ok"), chunk);
  // Space freed on the server: writes succeed again.
  ASSERT_EQ(n.Remove(root, "big"), 0u);
  ASSERT_EQ(n.Create(root, "again", 0644, &fh), 0u);
  EXPECT_EQ(n.Write(fh, 0, chunk, kFileSync), 0u);
}

TEST_F(BackendErrorsTest, ReadOnlyFileSystemUnderARwExportGivesRofs) {
  Nfs3Wire n(&conn_);
  const std::string root = Root(ro_);
  std::string fh;
  EXPECT_EQ(n.Create(root, "new", 0644, &fh), kNfs3ErrRofs);
  EXPECT_EQ(n.Mkdir(root, "dir", 0755, &fh), kNfs3ErrRofs);
  std::string kept;
  ASSERT_EQ(n.Lookup(root, "kept", &kept), 0u);
  EXPECT_EQ(n.Write(kept, 0, "x", kFileSync), kNfs3ErrRofs);
  EXPECT_EQ(n.Remove(root, "kept"), kNfs3ErrRofs);
  std::string data;
  ASSERT_EQ(n.Read(kept, 0, 100, &data), 0u);
  EXPECT_EQ(data, "read-only data");
  // The other export is writable as before.
  const std::string other = Root(other_);
  EXPECT_EQ(n.Create(other, "fine", 0644, &fh), 0u);
}

}  // namespace
}  // namespace localnfs::testing
