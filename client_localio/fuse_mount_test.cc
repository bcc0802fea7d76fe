// Integration tests of localnfs-mount: a real localnfsd, a real /dev/fuse mount, and a
// POSIX workload through the kernel VFS checked against the server's directory.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client_localio/test_util.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"

namespace localnfs::client {
namespace {

using namespace std::chrono_literals;

using ::localnfs::UniqueFd;
using testing::FreePort;
using testing::IsMountedAs;
using testing::MountBinary;
using testing::ReadFile;
using testing::RunAsUser;
using testing::RunCommand;
using testing::Sha256OfFile;
using testing::TempDir;
using testing::ExportsLine;
using testing::UnmountFuse;
using testing::WaitUntil;

// An ordinary user (the test runs as root) for permission checks.
constexpr uid_t kUser = 1000;
constexpr gid_t kUserGroup = 1000;
constexpr uid_t kNobody = 65534;

// The errno of open(path, flags) (0 if it opened), as the calling process.
int OpenErrno(const std::string& path, int flags) {
  const int fd = open(path.c_str(), flags);
  if (fd < 0) return errno;
  close(fd);
  return 0;
}

// The names in `dir` as readdir lists them ("." and ".." included).
std::multiset<std::string> List(const std::string& dir) {
  std::multiset<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    ADD_FAILURE() << "opendir " << dir << ": " << strerror(errno);
    return names;
  }
  while (const dirent* e = readdir(d)) names.insert(e->d_name);
  closedir(d);
  return names;
}

// The silly-renamed files (".nfs…") in the server's directory `dir`.
std::vector<std::string> SillyFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const std::string& n : List(dir))
    if (n.rfind(".nfs", 0) == 0) out.push_back(n);
  return out;
}

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
                              &out, 300s);
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
  ASSERT_TRUE(daemon_.child().Wait(10s, &status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << daemon_.Output();
}

TEST_F(FuseMountTest, DaemonisesAndExitsOnUnmount) {
  std::string out;
  const int rc = RunCommand({MountBinary(), "--mount-port",
                             std::to_string(server_->mount_port()), source_, mnt_.path()},
                            &out, 60s);
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

// ---- permissions (default_permissions, and ACCESS before a truncate) ----

// Makes `rel` in the export on the server's side, with exactly this owner and mode.
void MakeServerFile(const std::string& path, const std::string& content, uid_t uid,
                    mode_t mode) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  ASSERT_EQ(chown(path.c_str(), uid, uid), 0) << path;
  ASSERT_EQ(chmod(path.c_str(), mode), 0) << path;
}

int ErrnoOfCall(int rc) { return rc == 0 ? 0 : errno; }

// The checks the kernel NFS client makes (with ACCESS) and FUSE never asks the daemon
// about: O_TRUNC needs write permission; every directory of a path needs search
// permission, also when another user's lookup left its dentry cached; opens of FIFOs and
// directories need read permission. As an ordinary user, with controls that what the user
// may do still works.
TEST_F(FuseMountTest, OrdinaryUserGetsTheKernelClientsPermissionChecks) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to act as uid " << kUser;
  ASSERT_TRUE(MountForeground());
  ASSERT_NO_FATAL_FAILURE(MakeServerFile(E("mine"), "keep", kUser, 0444));
  ASSERT_NO_FATAL_FAILURE(MakeServerFile(E("theirs"), "keep", 0, 0644));
  ASSERT_NO_FATAL_FAILURE(MakeServerFile(E("mine_rw"), "x", kUser, 0644));
  ASSERT_EQ(mkdir(E("private").c_str(), 0700), 0);
  ASSERT_NO_FATAL_FAILURE(MakeServerFile(E("private/f"), "secret", 0, 0644));
  ASSERT_EQ(mkfifo(E("fifo").c_str(), 0600), 0);
  // As uid kUser, the errno of open / truncate / stat of `path`. Paths are made before
  // the fork: the child only makes system calls.
  auto open_as_user = [](const std::string& path, int flags) {
    return RunAsUser(kUser, kUserGroup, [&] { return OpenErrno(path, flags); });
  };
  auto truncate_as_user = [](const std::string& path) {
    return RunAsUser(kUser, kUserGroup, [&] { return ErrnoOfCall(truncate(path.c_str(), 0)); });
  };
  auto stat_as_user = [](const std::string& path) {
    return RunAsUser(kUser, kUserGroup, [&] {
      struct stat s {};
      return ErrnoOfCall(stat(path.c_str(), &s));
    });
  };

  // open(O_RDONLY | O_TRUNC) of a file the user may not write: refused, nothing lost —
  // also of the user's own read-only file, which the server's SETATTR would truncate
  // (its owner override).
  EXPECT_EQ(open_as_user(M("mine"), O_RDONLY | O_TRUNC), EACCES);
  EXPECT_EQ(open_as_user(M("theirs"), O_RDONLY | O_TRUNC), EACCES);
  EXPECT_EQ(truncate_as_user(M("mine")), EACCES);
  EXPECT_EQ(ReadFile(E("mine")), "keep");
  EXPECT_EQ(ReadFile(E("theirs")), "keep");
  EXPECT_EQ(open_as_user(M("mine"), O_RDONLY), 0);
  EXPECT_EQ(open_as_user(M("mine_rw"), O_WRONLY | O_TRUNC), 0);
  EXPECT_EQ(ReadFile(E("mine_rw")), "");

  // Search permission: root's lookup leaves private/f in the kernel's dentry cache; the
  // user still may not reach it through private (0700 root).
  struct stat st {};
  ASSERT_EQ(stat(M("private/f").c_str(), &st), 0);
  ASSERT_EQ(ReadFile(M("private/f")), "secret");
  EXPECT_EQ(open_as_user(M("private/f"), O_RDONLY), EACCES);
  EXPECT_EQ(stat_as_user(M("private/f")), EACCES);
  // Opening a directory, and a FIFO (which the kernel opens without asking the daemon).
  EXPECT_EQ(open_as_user(M("private"), O_RDONLY | O_DIRECTORY), EACCES);
  ASSERT_EQ(lstat(M("fifo").c_str(), &st), 0);
  ASSERT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(open_as_user(M("fifo"), O_RDONLY | O_NONBLOCK), EACCES);

  // Controls: the same opens once the modes allow them (chmod through the mount).
  ASSERT_EQ(chmod(M("private").c_str(), 0755), 0);
  ASSERT_EQ(chmod(M("fifo").c_str(), 0644), 0);
  EXPECT_EQ(open_as_user(M("private/f"), O_RDONLY), 0);
  EXPECT_EQ(open_as_user(M("private"), O_RDONLY | O_DIRECTORY), 0);
  EXPECT_EQ(open_as_user(M("fifo"), O_RDONLY | O_NONBLOCK), 0);
}

// A root the server squashes passes the kernel's checks (CAP_DAC_OVERRIDE) but not the
// server's: open(O_TRUNC) and truncate(2) of a file the squashed root owns but may not
// write are refused before any SETATTR, which the server's owner override would allow.
TEST_F(FuseMountTest, SquashedRootCannotTruncateWhatItMayNotWrite) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  ASSERT_TRUE(server_->ReloadExports({ExportsLine(export_.path(), "rw,root_squash")}));
  ASSERT_TRUE(MountForeground());
  ASSERT_NO_FATAL_FAILURE(MakeServerFile(E("nobodys"), "keep", kNobody, 0444));
  ASSERT_NO_FATAL_FAILURE(MakeServerFile(E("writable"), "x", kNobody, 0644));
  EXPECT_EQ(OpenErrno(M("nobodys"), O_RDONLY | O_TRUNC), EACCES);
  EXPECT_EQ(ErrnoOfCall(truncate(M("nobodys").c_str(), 0)), EACCES);
  EXPECT_EQ(ReadFile(E("nobodys")), "keep");
  // Controls: reading it works, and so does truncating a file the squashed root may write.
  EXPECT_EQ(ReadFile(M("nobodys")), "keep");
  EXPECT_EQ(OpenErrno(M("writable"), O_WRONLY | O_TRUNC), 0);
  EXPECT_EQ(ReadFile(E("writable")), "");
}

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

// ---- unlink and rename over open files (silly rename) ----

enum class DataPathMode { kRpc, kLocalio, kPassthrough };

class SillyRenameTest : public FuseMountTest,
                        public ::testing::WithParamInterface<DataPathMode> {
 protected:
  // Mounts with the data path of the parameter; skips when this kernel does not offer
  // passthrough. Callers return on IsSkipped() or HasFatalFailure().
  void MountForMode() {
    std::vector<std::string> options;
    switch (GetParam()) {
      case DataPathMode::kRpc:
        options = {"-o", "localio=off"};
        break;
      case DataPathMode::kLocalio:
        options = {"-o", absl::StrCat("localio=on,runtime_dir=", server_->runtime_dir())};
        break;
      case DataPathMode::kPassthrough:
        options = {"-o",
                   absl::StrCat("localio=on,passthrough,runtime_dir=", server_->runtime_dir())};
        break;
    }
    ASSERT_TRUE(MountForeground(options));
    if (GetParam() == DataPathMode::kPassthrough && PassthroughNotOffered())
      GTEST_SKIP() << "this kernel does not offer FUSE passthrough";
  }
  // Waits until the mount has done `n` releases of files (a close's release is
  // asynchronous: its work, e.g. removing a silly name, is done when it counts). `n` is
  // every open the test made through the mount so far, so all of them are released.
  ::testing::AssertionResult ReleasesBecome(uint64_t n) {
    if (WaitUntil([&] { return testing::FindStatsCounter(Stats(), "releases") >= n; }, 10s))
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "releases is not " << n << ":\n" << Stats();
  }
};

std::string PreadAll(int fd, size_t n) {
  std::string buf(n, '\0');
  const ssize_t got = pread(fd, buf.data(), n, 0);
  buf.resize(got < 0 ? 0 : static_cast<size_t>(got));
  return buf;
}

// The files under `dir` that process `pid` holds open although they were removed.
std::vector<std::string> DeletedFilesOpenIn(pid_t pid, const std::string& dir) {
  std::vector<std::string> out;
  const std::string fds = absl::StrCat("/proc/", pid, "/fd");
  DIR* d = opendir(fds.c_str());
  if (d == nullptr) {
    ADD_FAILURE() << "opendir " << fds << ": " << strerror(errno);
    return out;
  }
  while (const dirent* e = readdir(d)) {
    char target[4096];
    const ssize_t n = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
    if (n <= 0) continue;
    const std::string t(target, static_cast<size_t>(n));
    if (t.rfind(dir + "/", 0) == 0 && t.find(" (deleted)") != std::string::npos)
      out.push_back(t);
  }
  closedir(d);
  return out;
}

// An unlinked open file keeps working through its fds — read, write, fstat (nlink 0),
// ftruncate, fsync — hidden on the server under a silly name that readdir does not
// list, until the last of its opens is closed; a file that is not open goes at once.
TEST_P(SillyRenameTest, UnlinkedOpenFileWorksUntilTheLastClose) {
  MountForMode();
  if (IsSkipped() || HasFatalFailure()) return;
  UniqueFd fd(open(M("a").c_str(), O_CREAT | O_RDWR, 0644));
  ASSERT_TRUE(fd.valid()) << strerror(errno);
  ASSERT_EQ(pwrite(fd.get(), "hello world", 11, 0), 11);
  UniqueFd fd2(open(M("a").c_str(), O_RDONLY));
  ASSERT_TRUE(fd2.valid()) << strerror(errno);
  ASSERT_EQ(unlink(M("a").c_str()), 0) << strerror(errno);
  EXPECT_EQ(access(M("a").c_str(), F_OK), -1);
  EXPECT_EQ(access(E("a").c_str(), F_OK), -1);

  // The fds work on.
  EXPECT_EQ(pwrite(fd.get(), "HELLO", 5, 0), 5) << strerror(errno);
  EXPECT_EQ(PreadAll(fd.get(), 64), "HELLO world");
  struct stat st {};
  EXPECT_EQ(fstat(fd.get(), &st), 0) << strerror(errno);
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_EQ(st.st_size, 11);
  EXPECT_EQ(ftruncate(fd.get(), 5), 0) << strerror(errno);
  EXPECT_EQ(fsync(fd.get()), 0) << strerror(errno);
  EXPECT_EQ(fstat(fd.get(), &st), 0);
  EXPECT_EQ(st.st_size, 5);

  // On the server the file has a silly name, which the mount does not list and which
  // cannot be unlinked while the file is open (EBUSY, as the kernel).
  const std::vector<std::string> silly = SillyFiles(export_.path());
  ASSERT_EQ(silly.size(), 1u);
  EXPECT_EQ(silly[0].size(), 28u) << silly[0];  // ".nfs" + 16 + 8 hex digits
  EXPECT_EQ(ReadFile(E(silly[0])), "HELLO");
  EXPECT_EQ(List(mnt_.path()), (std::multiset<std::string>{".", ".."}));
  EXPECT_EQ(Stat("silly_renamed"), 1u);
  EXPECT_EQ(ErrnoOfCall(unlink(M(silly[0]).c_str())), EBUSY);

  // One close of two: the other open still has the file.
  fd.reset();
  ASSERT_TRUE(ReleasesBecome(1));
  EXPECT_EQ(Stat("open_files"), 1u);
  EXPECT_EQ(SillyFiles(export_.path()), silly);
  EXPECT_EQ(PreadAll(fd2.get(), 64), "HELLO");
  EXPECT_EQ(fstat(fd2.get(), &st), 0) << strerror(errno);
  EXPECT_EQ(st.st_size, 5);

  // The last close removes it from the server. Nothing holds it open either (LOCALIO's
  // cached fds in the mount, the server's own), which would keep its blocks on the disk.
  fd2.reset();
  ASSERT_TRUE(ReleasesBecome(2));
  EXPECT_EQ(Stat("open_files"), 0u);
  EXPECT_EQ(SillyFiles(export_.path()), std::vector<std::string>{});
  EXPECT_EQ(Stat("silly_renamed"), 0u);
  EXPECT_EQ(DeletedFilesOpenIn(daemon_.child().pid(), export_.path()),
            std::vector<std::string>{});
  EXPECT_EQ(DeletedFilesOpenIn(server_->pid(), export_.path()), std::vector<std::string>{});

  // A file that is not open is removed at once, without a silly name.
  Sh("echo gone > $M/b");
  ASSERT_EQ(unlink(M("b").c_str()), 0);
  EXPECT_EQ(access(E("b").c_str(), F_OK), -1);
  EXPECT_EQ(SillyFiles(export_.path()), std::vector<std::string>{});
}

// Renaming another file over an open one: the name gets the new file at once, the open
// fd keeps the old file (silly-renamed first), which goes with its last close.
TEST_P(SillyRenameTest, RenameOverAnOpenFileKeepsItForItsFd) {
  MountForMode();
  if (IsSkipped() || HasFatalFailure()) return;
  Sh("printf old > $M/b; printf new > $M/c");
  UniqueFd fd(open(M("b").c_str(), O_RDWR));
  ASSERT_TRUE(fd.valid()) << strerror(errno);
  ASSERT_EQ(rename(M("c").c_str(), M("b").c_str()), 0) << strerror(errno);
  EXPECT_EQ(ReadFile(M("b")), "new");
  EXPECT_EQ(ReadFile(E("b")), "new");
  EXPECT_EQ(access(E("c").c_str(), F_OK), -1);

  EXPECT_EQ(PreadAll(fd.get(), 64), "old");
  EXPECT_EQ(pwrite(fd.get(), "OLD", 3, 0), 3) << strerror(errno);
  EXPECT_EQ(fsync(fd.get()), 0) << strerror(errno);
  EXPECT_EQ(ReadFile(E("b")), "new");
  const std::vector<std::string> silly = SillyFiles(export_.path());
  ASSERT_EQ(silly.size(), 1u);
  EXPECT_EQ(ReadFile(E(silly[0])), "OLD");
  EXPECT_EQ(List(mnt_.path()), (std::multiset<std::string>{".", "..", "b"}));

  fd.reset();
  // The shell's two printf, the read of b through the mount, then ours.
  ASSERT_TRUE(ReleasesBecome(4));
  EXPECT_EQ(Stat("open_files"), 0u);
  EXPECT_EQ(SillyFiles(export_.path()), std::vector<std::string>{});
  EXPECT_EQ(DeletedFilesOpenIn(daemon_.child().pid(), export_.path()),
            std::vector<std::string>{});
  EXPECT_EQ(ReadFile(E("b")), "new");
}

INSTANTIATE_TEST_SUITE_P(DataPaths, SillyRenameTest,
                         ::testing::Values(DataPathMode::kRpc, DataPathMode::kLocalio,
                                           DataPathMode::kPassthrough),
                         [](const ::testing::TestParamInfo<DataPathMode>& info) {
                           switch (info.param) {
                             case DataPathMode::kRpc: return "Rpc";
                             case DataPathMode::kLocalio: return "Localio";
                             case DataPathMode::kPassthrough: return "Passthrough";
                           }
                           return "Unknown";
                         });

// A mount that ends while an unlinked file is still open (here: SIGTERM) removes the
// file's silly name on its way out; nobody can reach that file any more. (A mount that
// is killed leaves it, as a crashed kernel client does.)
TEST_F(FuseMountTest, MountEndingWithAnUnlinkedOpenFileRemovesIt) {
  ASSERT_TRUE(MountForeground());
  UniqueFd fd(open(M("a").c_str(), O_CREAT | O_RDWR, 0644));
  ASSERT_TRUE(fd.valid()) << strerror(errno);
  ASSERT_EQ(unlink(M("a").c_str()), 0);
  ASSERT_EQ(SillyFiles(export_.path()).size(), 1u);
  daemon_.child().Kill(SIGTERM);
  int status = 0;
  ASSERT_TRUE(daemon_.child().Wait(10s, &status)) << daemon_.Output();
  EXPECT_TRUE(WIFEXITED(status)) << daemon_.Output();
  EXPECT_EQ(SillyFiles(export_.path()), std::vector<std::string>{});
}

}  // namespace
}  // namespace localnfs::client
