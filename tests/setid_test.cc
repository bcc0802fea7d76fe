// tests/setid_test.cc — set-user-ID and set-group-ID bits of a regular file after a
// WRITE, a size change (SETATTR size) and a chown (SETATTR uid) over NFS are what the
// kernel leaves after the same operation by the same user locally (file_remove_privs,
// setattr_should_drop_suidgid, chown_common): cleared for every writer without
// CAP_FSETID, the owner included, and for a squashed root; kept for root on
// no_root_squash. The expectation of each case is measured on this kernel: the same
// operation is done on a twin file by a child process with the request's uid, gid and
// groups (the rule for S_ISGID without group-exec changed in Linux 6.x). Also over
// LOCALIO (a root client acting for a user: its writes go over RPC) and with an
// unprivileged server (creds.h "Set-id bits": every write clears them).
// Runs as root (chown of fixtures, setresuid in the twin child); skips otherwise.
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "client_localio/client.h"
#include "client_localio/localio_data_path.h"
#include "gtest/gtest.h"
#include "tests/support/localnfsd.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

constexpr uint32_t kFileSync = 2;

AuthSys Who(uint32_t uid, uint32_t gid, std::vector<uint32_t> gids = {}) {
  AuthSys a;
  a.uid = uid;
  a.gid = gid;
  a.gids = std::move(gids);
  return a;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}

// A regular file with `mode` (set-id bits included) owned by uid:gid.
::testing::AssertionResult MakeFile(const std::string& path, mode_t mode, uid_t uid,
                                    gid_t gid) {
  if (!WriteFile(path, "original contents\n"))
    return ::testing::AssertionFailure() << "write " << path;
  // chown first: it clears set-id bits itself.
  if (chown(path.c_str(), uid, gid) != 0 || chmod(path.c_str(), mode) != 0)
    return ::testing::AssertionFailure() << "chown/chmod " << path << ": " << strerror(errno);
  if (ModeOf(path) != mode) return ::testing::AssertionFailure() << "mode of " << path;
  return ::testing::AssertionSuccess();
}

enum class Op { kWrite, kTruncate };

// What the kernel leaves of `mode` (owned by uid:gid) when `who` does `op` locally: a
// child takes who's groups, gid and uid (dropping every capability unless uid is 0),
// opens a twin file for writing and writes 4 bytes at offset 0 or truncates it to 1
// byte. Returns the twin's mode after, or 0 on failure.
mode_t LocalOutcome(const std::string& dir, Op op, mode_t mode, uid_t uid, gid_t gid,
                    const AuthSys& who) {
  static int n = 0;
  const std::string twin = dir + "/twin" + std::to_string(n++);
  if (!MakeFile(twin, mode, uid, gid)) return 0;
  std::vector<gid_t> groups(who.gids.begin(), who.gids.end());
  const pid_t pid = fork();
  if (pid == 0) {
    // Raw syscalls: they change this thread (the child's only one) and nothing in libc.
    if (syscall(SYS_setgroups, groups.size(), groups.data()) != 0 ||
        syscall(SYS_setresgid, who.gid, who.gid, who.gid) != 0 ||
        syscall(SYS_setresuid, who.uid, who.uid, who.uid) != 0)
      _exit(2);
    const int fd = open(twin.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) _exit(3);
    if (op == Op::kWrite ? pwrite(fd, "DATA", 4, 0) != 4 : ftruncate(fd, 1) != 0) _exit(4);
    _exit(0);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    ADD_FAILURE() << "local twin operation failed, status " << status;
    return 0;
  }
  return ModeOf(twin);
}

std::string Octal(mode_t m) {
  char buf[16];
  snprintf(buf, sizeof(buf), "0%o", static_cast<unsigned>(m));
  return buf;
}

// One server exporting `open_` rw,no_root_squash and `squashed_` rw (root_squash).
class SetIdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (chown of fixtures, setresuid)";
    for (const TempDir* d : {&open_, &squashed_, &local_})
      ASSERT_EQ(chmod(d->path().c_str(), 0777), 0);
    srv_ = std::make_unique<ServerProcess>(std::vector<std::string>{
        "--export", open_.path() + ":rw,no_root_squash", "--export",
        squashed_.path() + ":rw"});
    ASSERT_TRUE(srv_->Start());
    ASSERT_TRUE(conn_.Connect(srv_->nfs_port()));
    Nfs3Wire m(&conn_);
    ASSERT_EQ(m.Mount(open_.path(), &open_fh_), 0u) << m.last_rpc().error;
    ASSERT_EQ(m.Mount(squashed_.path(), &squashed_fh_), 0u) << m.last_rpc().error;
  }

  // Makes `name` in the export `dir` with mode/owner, then has `who` write it over NFS
  // (or change its size); returns the mode after. The NFS status must be OK.
  mode_t OverNfs(const TempDir& dir, const std::string& root_fh, const std::string& name,
                 Op op, mode_t mode, uid_t uid, gid_t gid, const AuthSys& who) {
    if (!MakeFile(dir.Sub(name), mode, uid, gid)) return 0;
    Nfs3Wire n(&conn_, who);
    std::string fh;
    EXPECT_EQ(n.Lookup(root_fh, name, &fh), kNfs3Ok);
    if (op == Op::kWrite) {
      EXPECT_EQ(n.Write(fh, 0, "DATA", kFileSync), kNfs3Ok) << name;
    } else {
      EXPECT_EQ(SetattrStatus(fh, XdrOut().Sattr(-1, -1, -1, /*size=*/1), who), kNfs3Ok)
          << name;
    }
    return ModeOf(dir.Sub(name));
  }

  uint32_t SetattrStatus(const std::string& fh, const XdrOut& sattr, const AuthSys& who) {
    XdrOut a;
    a.Opaque(fh);
    std::string args = a.bytes() + sattr.bytes();
    args += std::string("\0\0\0\0", 4);  // guard: no ctime check
    RpcReply r = conn_.Call(kNfsProg, 3, NFS3_SETATTR, args, &who);
    XdrIn in(r.results);
    uint32_t status = Nfs3Wire::kRpcFailed;
    if (!r.ok || r.accept_stat != kSuccess || !in.U32(&status)) return Nfs3Wire::kRpcFailed;
    return status;
  }

  // The mode over NFS equals the local twin's, and `expected` when given.
  void Check(const char* what, const TempDir& dir, const std::string& root_fh, Op op,
             mode_t mode, uid_t uid, gid_t gid, const AuthSys& who, mode_t expected) {
    static int n = 0;
    const std::string name = "f" + std::to_string(n++);
    const mode_t local = LocalOutcome(local_.path(), op, mode, uid, gid, who);
    const mode_t nfs = OverNfs(dir, root_fh, name, op, mode, uid, gid, who);
    EXPECT_EQ(Octal(nfs), Octal(local)) << what << ": over NFS vs the same operation locally";
    if (expected != 0) EXPECT_EQ(Octal(nfs), Octal(expected)) << what;
  }

  TempDir open_{"setid-open"}, squashed_{"setid-squashed"}, local_{"setid-local"};
  std::unique_ptr<ServerProcess> srv_;
  WireConn conn_;
  std::string open_fh_, squashed_fh_;
};

TEST_F(SetIdTest, WriteByANonOwnerClearsBothBits) {
  Check("root's 06777 written by uid 1000", open_, open_fh_, Op::kWrite, 06777, 0, 0,
        Who(1000, 1000), 0777);
  Check("uid 1001's 04755 written by uid 1000", open_, open_fh_, Op::kWrite, 04757, 1001,
        1001, Who(1000, 1000), 0757);
}

TEST_F(SetIdTest, WriteByTheOwnerClearsToo) {
  // file_remove_privs spares only CAP_FSETID, not the owner.
  Check("uid 1000's 06777 written by uid 1000", open_, open_fh_, Op::kWrite, 06777, 1000,
        1000, Who(1000, 1000), 0777);
}

TEST_F(SetIdTest, WriteByRootOnNoRootSquashKeepsThem) {
  Check("root's 06777 written by root", open_, open_fh_, Op::kWrite, 06777, 0, 0, Who(0, 0),
        06777);
}

TEST_F(SetIdTest, WriteByASquashedRootClearsThem) {
  // The twin is written as nobody, which root becomes on a root_squash export.
  const mode_t local = LocalOutcome(local_.path(), Op::kWrite, 06777, 0, 0, Who(65534, 65534));
  const mode_t nfs = OverNfs(squashed_, squashed_fh_, "sq", Op::kWrite, 06777, 0, 0, Who(0, 0));
  EXPECT_EQ(Octal(nfs), Octal(local));
  EXPECT_EQ(Octal(nfs), "0777");
}

TEST_F(SetIdTest, SetGidWithoutGroupExecFollowsTheKernelsRule) {
  // A writer in the file's group keeps S_ISGID without group-exec (every kernel) ...
  Check("02666 of group 1000 written by uid 1001 in group 1000", open_, open_fh_, Op::kWrite,
        02666, 0, 1000, Who(1001, 1000), 02666);
  Check("02666 of group 1000 written by uid 1001 with 1000 as a supplementary group", open_,
        open_fh_, Op::kWrite, 02666, 0, 1000, Who(1001, 1001, {1000}), 02666);
  // ... one outside it: whatever this kernel does locally (cleared since Linux 6.2).
  Check("02666 of group 1000 written by uid 1001 outside it", open_, open_fh_, Op::kWrite,
        02666, 0, 1000, Who(1001, 1001), 0);
  // With group-exec it goes for everyone but root.
  Check("02777 of group 1000 written by uid 1001 in group 1000", open_, open_fh_, Op::kWrite,
        02777, 0, 1000, Who(1001, 1000), 0777);
}

TEST_F(SetIdTest, SizeChangeClearsThemForNonRootOnly) {
  Check("root's 06777 truncated by uid 1000", open_, open_fh_, Op::kTruncate, 06777, 0, 0,
        Who(1000, 1000), 0777);
  Check("uid 1000's 06777 truncated by uid 1000", open_, open_fh_, Op::kTruncate, 06777, 1000,
        1000, Who(1000, 1000), 0777);
  Check("root's 06777 truncated by root", open_, open_fh_, Op::kTruncate, 06777, 0, 0,
        Who(0, 0), 06777);
}

// What the kernel NFS client sends for ftruncate(2) (truncate -s, open O_TRUNC): the size
// with mtime = the server's clock. A writer who is not the owner may set it (knfsd: write
// permission for a time that is not explicit); the kernel's utimensat would refuse
// UTIME_OMIT + UTIME_NOW to a non-owner, so the server touches both times for it.
TEST_F(SetIdTest, SizeChangeWithServerMtimeByAWriterWhoIsNotTheOwner) {
  ASSERT_TRUE(MakeFile(open_.Sub("shared"), 06777, 0, 0));
  Nfs3Wire n(&conn_, Who(1000, 1000));
  std::string fh;
  ASSERT_EQ(n.Lookup(open_fh_, "shared", &fh), kNfs3Ok);
  EXPECT_EQ(SetattrStatus(fh, XdrOut().Sattr(-1, -1, -1, /*size=*/2, /*atime=*/0,
                                             /*mtime=*/1),
                          Who(1000, 1000)),
            kNfs3Ok);
  EXPECT_EQ(ReadFile(open_.Sub("shared")), "or");
  EXPECT_EQ(Octal(ModeOf(open_.Sub("shared"))), "0777");
  // mtime alone (touch -m by a writer), and a refused explicit time for the non-owner.
  struct stat before;
  ASSERT_EQ(stat(open_.Sub("shared").c_str(), &before), 0);
  EXPECT_EQ(SetattrStatus(fh, XdrOut().Sattr(-1, -1, -1, -1, 0, /*mtime=*/1), Who(1000, 1000)),
            kNfs3Ok);
  // A file the caller may not write: the server clock is refused as well (ACCES).
  ASSERT_TRUE(MakeFile(open_.Sub("readonly"), 0644, 0, 0));
  std::string ro;
  ASSERT_EQ(n.Lookup(open_fh_, "readonly", &ro), kNfs3Ok);
  EXPECT_NE(SetattrStatus(ro, XdrOut().Sattr(-1, -1, -1, -1, 0, /*mtime=*/1), Who(1000, 1000)),
            kNfs3Ok);
}

TEST_F(SetIdTest, ChownClearsSetUidEvenForRoot) {
  // chown_common: S_ISUID of a non-directory goes on every chown; S_ISGID with group-exec.
  ASSERT_TRUE(MakeFile(open_.Sub("owned"), 06755, 0, 0));
  ASSERT_TRUE(MakeFile(local_.Sub("owned"), 06755, 0, 0));
  ASSERT_EQ(chown(local_.Sub("owned").c_str(), 1000, static_cast<gid_t>(-1)), 0);
  Nfs3Wire n(&conn_, Who(0, 0));
  std::string fh;
  ASSERT_EQ(n.Lookup(open_fh_, "owned", &fh), kNfs3Ok);
  ASSERT_EQ(SetattrStatus(fh, XdrOut().Sattr(-1, /*uid=*/1000), Who(0, 0)), kNfs3Ok);
  EXPECT_EQ(Octal(ModeOf(open_.Sub("owned"))), Octal(ModeOf(local_.Sub("owned"))));
  EXPECT_EQ(Octal(ModeOf(open_.Sub("owned"))), "0755");
}

TEST_F(SetIdTest, FilesWithoutSetIdBitsAreWrittenAsBefore) {
  // The cheap path: nothing to clear, the owner-override write of a 0444 file still works.
  ASSERT_TRUE(MakeFile(open_.Sub("plain"), 0444, 1000, 1000));
  Nfs3Wire n(&conn_, Who(1000, 1000));
  std::string fh;
  ASSERT_EQ(n.Lookup(open_fh_, "plain", &fh), kNfs3Ok);
  EXPECT_EQ(n.Write(fh, 0, "DATA", kFileSync), kNfs3Ok);
  EXPECT_EQ(ReadFile(open_.Sub("plain")), "DATAinal contents\n");
  EXPECT_EQ(Octal(ModeOf(open_.Sub("plain"))), "0444");
}

// LOCALIO: the client writes on its own fd and the kernel judges the client process. A
// root client (the FUSE daemon) writing for uid 1000 would keep the bits: the server
// refuses it a write fd for such a file and the write goes over RPC.
TEST_F(SetIdTest, LocalioWriteOfARootClientForAUserClearsThem) {
  ASSERT_TRUE(MakeFile(open_.Sub("lio"), 06777, 0, 0));
  ASSERT_TRUE(MakeFile(open_.Sub("lio-root"), 06777, 0, 0));
  ASSERT_TRUE(MakeFile(open_.Sub("lio-plain"), 0666, 0, 0));
  auto c = client::Nfs3Client::Mount("127.0.0.1", srv_->nfs_port(), srv_->mount_port(),
                                     open_.path(), {});
  ASSERT_TRUE(c.ok()) << c.status();
  auto lio = client::LocalioDataPath::Install(
      c->get(), {.mode = client::LocalioMode::kOn, .runtime_dir = srv_->runtime_dir()});
  ASSERT_TRUE(lio.ok()) << lio.status();
  const Credentials user{.uid = 1000, .gid = 1000, .groups = {}};
  const Credentials root{.uid = 0, .gid = 0, .groups = {}};
  auto write = [&](const std::string& name, const Credentials& as) {
    auto f = (*c)->Lookup((*c)->root(), name, as);
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_TRUE((*c)->Write(f->handle, 0, "DATA", as, client::StableHow::kFileSync).ok());
  };
  // A control: a file without set-id bits is written locally for the user.
  write("lio-plain", user);
  const client::IoCounters before = (*c)->Counters();
  EXPECT_EQ(before.local_writes, 1u) << client::FormatCounters(before);
  write("lio", user);
  EXPECT_EQ(Octal(ModeOf(open_.Sub("lio"))), "0777");
  const client::IoCounters after = (*c)->Counters();
  EXPECT_EQ(after.local_writes, before.local_writes) << client::FormatCounters(after);
  EXPECT_GT(after.rpc_writes, before.rpc_writes) << client::FormatCounters(after);
  // Root acting as root on no_root_squash keeps them, locally.
  write("lio-root", root);
  EXPECT_EQ(Octal(ModeOf(open_.Sub("lio-root"))), "06777");
  EXPECT_EQ((*c)->Counters().local_writes, before.local_writes + 1);
  EXPECT_EQ(ReadFile(open_.Sub("lio")), "DATAinal contents\n");
}

// An unprivileged server: its user has no CAP_FSETID, so the kernel clears the bits on
// every write it makes, root's on no_root_squash included (knfsd would keep those).
TEST(SetIdUnprivilegedTest, EveryWriteClearsThemByTheServersUsersRule) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to start the server as uid 1000";
  TempDir dir("setid-unpriv");
  ASSERT_EQ(chown(dir.path().c_str(), 1000, 1000), 0);
  ServerOptions o;
  o.args = {"--export", dir.path() + ":rw,no_root_squash"};
  o.run_as_uid = 1000;
  o.run_as_gid = 1000;
  ServerProcess srv(o);
  ASSERT_TRUE(srv.Start());
  ASSERT_TRUE(MakeFile(dir.Sub("by-root"), 06777, 1000, 1000));
  ASSERT_TRUE(MakeFile(dir.Sub("by-user"), 06777, 1000, 1000));
  ASSERT_TRUE(MakeFile(dir.Sub("sgid-only"), 02666, 1000, 1000));
  WireConn conn;
  ASSERT_TRUE(conn.Connect(srv.nfs_port()));
  Nfs3Wire n(&conn, Who(0, 0));
  std::string root_fh, fh;
  ASSERT_EQ(n.Mount(dir.path(), &root_fh), 0u) << n.last_rpc().error;
  ASSERT_EQ(n.Lookup(root_fh, "by-root", &fh), kNfs3Ok);
  ASSERT_EQ(n.Write(fh, 0, "DATA", kFileSync), kNfs3Ok);
  EXPECT_EQ(Octal(ModeOf(dir.Sub("by-root"))), "0777");
  n.set_cred(Who(1001, 1001));
  ASSERT_EQ(n.Lookup(root_fh, "by-user", &fh), kNfs3Ok);
  ASSERT_EQ(n.Write(fh, 0, "DATA", kFileSync), kNfs3Ok);
  EXPECT_EQ(Octal(ModeOf(dir.Sub("by-user"))), "0777");
  // The server's user is in the file's group: S_ISGID without group-exec stays.
  ASSERT_EQ(n.Lookup(root_fh, "sgid-only", &fh), kNfs3Ok);
  ASSERT_EQ(n.Write(fh, 0, "DATA", kFileSync), kNfs3Ok);
  EXPECT_EQ(Octal(ModeOf(dir.Sub("sgid-only"))), "02666");
}

}  // namespace
}  // namespace localnfs::testing
