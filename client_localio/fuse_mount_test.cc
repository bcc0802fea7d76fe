// Integration tests of localnfs-mount: a real localnfsd, a real /dev/fuse mount, and a
// POSIX workload through the kernel VFS checked against the server's directory.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client_localio/test_util.h"
#include "gtest/gtest.h"

namespace localnfs::client {
namespace {

using testing::FreePort;
using testing::IsMountedAs;
using testing::MountBinary;
using testing::RunCommand;
using testing::SanitizerReport;
using testing::Sha256OfFile;
using testing::TempDir;
using testing::TestServer;
using testing::UnmountFuse;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class FuseMountTest : public testing::FuseMountFixture {
 protected:
  FuseMountTest() : FuseMountFixture("lnfs-fuse-export", "lnfs-fuse-mnt") {}

  // localnfs-mount -f in a child; waits until the kernel shows the mount.
  ::testing::AssertionResult MountForeground(const std::vector<std::string>& extra = {}) {
    return MountDaemon(extra);
  }

  // Runs a shell script with $M = mount point and $E = export dir; returns its output
  // and fails the test on a non-zero exit.
  std::string Sh(const std::string& script) {
    std::string out;
    const int rc = RunCommand({"sh", "-ec", absl::StrCat("M='", mnt_.path(), "'; E='",
                                                          export_.path(), "'; ", script)},
                              &out, 300);
    EXPECT_EQ(rc, 0) << script << "\n" << out;
    return out;
  }

  std::string M(const std::string& rel) const { return mnt_.path() + "/" + rel; }
  std::string E(const std::string& rel) const { return export_.path() + "/" + rel; }

};

TEST_F(FuseMountTest, PosixWorkloadMatchesServerDirectory) {
  ASSERT_TRUE(MountForeground());

  Sh("mkdir -p $M/a/b/c");
  struct stat st {};
  ASSERT_EQ(stat(E("a/b/c").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));

  // 64 MiB through the VFS, fsync'd, read back.
  Sh("dd if=/dev/urandom of=$M/big bs=1M count=64 conv=fsync status=none");
  const std::string sum_server = Sha256OfFile(E("big"));
  ASSERT_FALSE(sum_server.empty());
  Sh("echo 3 > /proc/sys/vm/drop_caches || true");
  EXPECT_EQ(Sha256OfFile(M("big")), sum_server);
  ASSERT_EQ(stat(E("big").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 64 << 20);

  // Attributes.
  Sh("chmod 640 $M/big && chown 12:34 $M/big && truncate -s 1000 $M/big && "
     "touch -m -d '2020-01-02 03:04:05 UTC' $M/big");
  ASSERT_EQ(stat(E("big").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_uid, 12u);
  EXPECT_EQ(st.st_gid, 34u);
  EXPECT_EQ(st.st_size, 1000);
  EXPECT_EQ(st.st_mtime, 1577934245);
  Sh("touch $M/big");  // UTIME_NOW
  ASSERT_EQ(stat(E("big").c_str(), &st), 0);
  EXPECT_GT(st.st_mtime, 1577934245);
  struct stat via_mount {};
  ASSERT_EQ(stat(M("big").c_str(), &via_mount), 0);
  EXPECT_EQ(via_mount.st_ino, st.st_ino);  // st_ino is the NFS fileid
  EXPECT_EQ(via_mount.st_size, 1000);

  // open(O_TRUNC) of an existing file truncates it.
  Sh("seq 1 1000 > $M/trunc && echo hi > $M/trunc");
  EXPECT_EQ(Slurp(E("trunc")), "hi\n");
  EXPECT_EQ(Sh("stat -c %s $M/trunc"), "3\n");
  Sh("rm $M/trunc");

  // Links.
  Sh("ln $M/big $M/a/hard && ln -s ../big $M/a/sym");
  EXPECT_EQ(Sh("readlink $M/a/sym"), "../big\n");
  ASSERT_EQ(stat(E("big").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
  char target[64] = {};
  ASSERT_GT(readlink(E("a/sym").c_str(), target, sizeof(target) - 1), 0);
  EXPECT_STREQ(target, "../big");
  EXPECT_EQ(Sh("cat $M/a/sym | wc -c"), "1000\n");

  // Rename across directories.
  Sh("mv $M/a/hard $M/a/b/c/moved");
  EXPECT_EQ(access(E("a/hard").c_str(), F_OK), -1);
  EXPECT_EQ(access(E("a/b/c/moved").c_str(), F_OK), 0);

  // Special files.
  Sh("mkfifo $M/fifo");
  ASSERT_EQ(lstat(E("fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));

  // A 1 000-entry directory listing.
  Sh("mkdir $M/many && cd $M/many && i=0; while [ $i -lt 1000 ]; do : > f$i; "
     "i=$((i+1)); done");
  EXPECT_EQ(Sh("ls $M/many | wc -l"), "1000\n");
  EXPECT_EQ(Sh("ls $M/many | sort"), Sh("ls $E/many | sort"));

  // statfs: the export's file system, seen through NFS FSSTAT.
  struct statvfs mv {}, ev {};
  ASSERT_EQ(statvfs(mnt_.path().c_str(), &mv), 0);
  ASSERT_EQ(statvfs(export_.path().c_str(), &ev), 0);
  const double mount_total = static_cast<double>(mv.f_blocks) * mv.f_frsize;
  const double export_total = static_cast<double>(ev.f_blocks) * ev.f_frsize;
  EXPECT_NEAR(mount_total, export_total, export_total * 0.01);
  EXPECT_NE(Sh("df $M").find("localnfs"), std::string::npos);

  // The counters file: readable, hidden from readdir.
  const std::string stats = Slurp(M(".localnfs-stats"));
  EXPECT_NE(stats.find("rpc_writes "), std::string::npos) << stats;
  EXPECT_NE(stats.find("local_writes 0"), std::string::npos) << stats;
  EXPECT_EQ(Sh("ls -a $M | grep -c localnfs-stats || true"), "0\n");

  // rm -rf and the server side is empty again.
  Sh("rm -rf $M/a $M/many $M/big $M/fifo");
  EXPECT_EQ(Sh("ls -A $E | wc -l"), "0\n");

  std::string out;
  ASSERT_EQ(RunCommand({"fusermount3", "-u", mnt_.path()}, &out), 0) << out;
  int status = 0;
  ASSERT_TRUE(daemon_.child().Wait(10000, &status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << daemon_.Output();
}

TEST_F(FuseMountTest, DaemonisesAndExitsOnUnmount) {
  std::string out;
  const int rc = RunCommand({MountBinary(), "--mount-port",
                             std::to_string(server_->mount_port()), source_, mnt_.path()},
                            &out, 60);
  ASSERT_EQ(rc, 0) << out;
  ASSERT_TRUE(IsMountedAs(mnt_.path(), "fuse.localnfs"));
  Sh("echo hi > $M/f && cat $M/f && test \"$(cat $E/f)\" = hi");
  ASSERT_EQ(RunCommand({"fusermount3", "-u", mnt_.path()}, &out), 0) << out;
  EXPECT_FALSE(IsMountedAs(mnt_.path(), "fuse.localnfs"));
}

TEST_F(FuseMountTest, UsageAndMountErrorsExitWithDocumentedCodes) {
  std::string out;
  EXPECT_EQ(RunCommand({MountBinary()}, &out), 2) << out;
  EXPECT_EQ(RunCommand({MountBinary(), "-o", "localio=maybe", source_, mnt_.path()}, &out), 2)
      << out;
  EXPECT_EQ(RunCommand({MountBinary(), "nocolon", mnt_.path()}, &out), 2) << out;

  const std::string port = std::to_string(server_->mount_port());
  EXPECT_EQ(RunCommand({MountBinary(), "--mount-port", port,
                        absl::StrCat("127.0.0.1:", server_->nfs_port(), ":/x"), mnt_.path()},
                       &out),
            1);
  EXPECT_NE(out.find("localnfs-mount: mount 127.0.0.1:/x: MNT3ERR_"), std::string::npos)
      << out;

  EXPECT_EQ(RunCommand({MountBinary(), "-o", "localio=on", "--mount-port", port, source_,
                        mnt_.path()},
                       &out),
            1);
  EXPECT_NE(out.find("LOCALIO handshake not available"), std::string::npos) << out;
  EXPECT_FALSE(IsMountedAs(mnt_.path(), "fuse.localnfs"));

  EXPECT_EQ(RunCommand({MountBinary(), "--mount-port", std::to_string(FreePort()),
                        absl::StrCat("127.0.0.1:", FreePort(), ":/x"), mnt_.path()},
                       &out),
            1);
  EXPECT_NE(out.find("localnfs-mount: mount 127.0.0.1:/x:"), std::string::npos) << out;
}

int ErrnoOfCall(int rc) { return rc == 0 ? 0 : errno; }

// ---- timestamps ----

// nfstime3 has unsigned 32-bit seconds: times outside it are clamped to 0 and
// 4294967295 (2106-02-07) with 0 ns, as the kernel NFSv3 client clamps them — never
// wrapped to another date.
TEST_F(FuseMountTest, TimesOutsideNfstime3AreClampedLikeTheKernelClient) {
  ASSERT_TRUE(MountForeground());
  Sh("touch $M/t");
  auto set = [&](timespec atime, timespec mtime) {
    const timespec ts[2] = {atime, mtime};
    return ErrnoOfCall(utimensat(AT_FDCWD, M("t").c_str(), ts, 0));
  };
  auto expect_times = [&](const std::string& path, timespec atime, timespec mtime) {
    struct stat st {};
    ASSERT_EQ(stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_atim.tv_sec, atime.tv_sec) << path;
    EXPECT_EQ(st.st_atim.tv_nsec, atime.tv_nsec) << path;
    EXPECT_EQ(st.st_mtim.tv_sec, mtime.tv_sec) << path;
    EXPECT_EQ(st.st_mtim.tv_nsec, mtime.tv_nsec) << path;
  };
  constexpr time_t kYear2200 = 7258118400;
  constexpr time_t kYear1960 = -315619200;
  constexpr time_t kMax = 4294967295;
  ASSERT_EQ(set({kYear2200, 5}, {kMax + 1, 6}), 0);
  expect_times(E("t"), {kMax, 0}, {kMax, 0});
  expect_times(M("t"), {kMax, 0}, {kMax, 0});
  ASSERT_EQ(set({kYear1960, 5}, {-1, 999999999}), 0);
  expect_times(E("t"), {0, 0}, {0, 0});
  expect_times(M("t"), {0, 0}, {0, 0});
  // In range, to the nanosecond.
  ASSERT_EQ(set({1700000000, 123456789}, {kMax - 1, 7}), 0);
  expect_times(E("t"), {1700000000, 123456789}, {kMax - 1, 7});
  expect_times(M("t"), {1700000000, 123456789}, {kMax - 1, 7});
}

}  // namespace
}  // namespace localnfs::client
