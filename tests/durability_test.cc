// tests/durability_test.cc — with the exports(5) option `sync` (the default) every
// change of the namespace or of attributes is committed before its reply (RFC 1813: on
// stable storage when the reply is sent; knfsd's commit_metadata): the directory after
// CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR; both directories after RENAME (one
// fsync when they are the same); the directory and the inode after LINK; the inode
// after SETATTR; a new regular file or directory before its parent. With `async` nothing
// is committed. Proven on tests/eio_fs.cc, whose --oplog records each change and each
// fsync / fsyncdir with its CLOCK_MONOTONIC time before it answers the kernel: for every
// RPC the change and then the commits must be recorded after the call was sent and before
// its reply arrived. A commit that fails (eio_fs "syncbad*": fsync answers EIO) is
// answered NFS3ERR_IO. Runs as root (FUSE mount); skips without /dev/fuse.
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/eio_fs_mount.h"
#include "tests/support/localnfsd.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

constexpr uint32_t kNf3Fifo = 7;

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

uint64_t InodeOf(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// One line of eio_fs's --oplog: "<ns> <op> <ino> [<name> [<ino2> <name2>]]".
struct OpRecord {
  int64_t ns = 0;
  std::string op;
  uint64_t ino = 0;
  std::string rest;  // the names and second inode, as written
};

std::vector<OpRecord> ReadOplog(const std::string& path) {
  std::vector<OpRecord> out;
  std::istringstream in(ReadFile(path));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    OpRecord r;
    if (!(f >> r.ns >> r.op >> r.ino)) continue;
    std::getline(f, r.rest);
    if (!r.rest.empty() && r.rest[0] == ' ') r.rest.erase(0, 1);
    out.push_back(std::move(r));
  }
  return out;
}

// What one RPC must have caused, in order, inside its [sent, replied] window.
struct Expect {
  std::string op;
  uint64_t ino;
  std::string rest = {};  // checked for the change record only
  std::string path = {};  // when set, `ino` is this path's, taken after the call
};

class DurabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a FUSE file system";
    const int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fd < 0) GTEST_SKIP() << "/dev/fuse is not usable: " << strerror(errno);
    close(fd);
    ASSERT_FALSE(EioFsBinary().empty()) << "$LOCALNFS_EIO_FS unset (tests/meson.build sets it)";
    ASSERT_EQ(mkdir(mnt_.c_str(), 0755), 0);
    fuse_ = std::make_unique<EioFsMount>(mnt_, oplog_);
    std::string why;
    switch (fuse_->Start(&why)) {
      case EioFsMount::Started::kReady: break;
      case EioFsMount::Started::kNoFuse: GTEST_SKIP() << "cannot mount FUSE here: " << why;
      case EioFsMount::Started::kFailed: FAIL() << why;
    }
    // Two exports on the one FUSE file system: the default (sync) and async.
    ASSERT_EQ(mkdir(sync_dir_.c_str(), 0777), 0);
    ASSERT_EQ(mkdir(async_dir_.c_str(), 0777), 0);
    srv_ = std::make_unique<ServerProcess>(std::vector<std::string>{
        "--export", sync_dir_ + ":rw,no_root_squash", "--export",
        async_dir_ + ":rw,no_root_squash,async"});
    ASSERT_TRUE(srv_->Start());
    ASSERT_TRUE(conn_.Connect(srv_->nfs_port()));
    Nfs3Wire n(&conn_);
    ASSERT_EQ(n.Mount(sync_dir_, &sync_fh_), 0u) << n.last_rpc().error;
    ASSERT_EQ(n.Mount(async_dir_, &async_fh_), 0u) << n.last_rpc().error;
  }
  void TearDown() override {
    conn_.Close();
    if (srv_ && srv_->running()) EXPECT_TRUE(srv_->Stop());
    srv_.reset();
    if (fuse_) fuse_->Stop();
  }

  // An NFSv3 call as root; its nfsstat3.
  uint32_t Call(uint32_t proc, const std::string& args) {
    AuthSys root;
    RpcReply r = conn_.Call(kNfsProg, 3, proc, args, &root);
    XdrIn in(r.results);
    uint32_t status = Nfs3Wire::kRpcFailed;
    if (!r.ok || r.accept_stat != kSuccess || !in.U32(&status)) return Nfs3Wire::kRpcFailed;
    return status;
  }
  static std::string Where(const std::string& dir_fh, const std::string& name) {
    return XdrOut().Opaque(dir_fh).Str(name).bytes();
  }
  // The calls of the test, each returning its status.
  uint32_t Create(const std::string& dir, const std::string& name) {
    return Call(NFS3_CREATE, Where(dir, name) + XdrOut().U32(0).Sattr(0644).bytes());
  }
  uint32_t Mkdir(const std::string& dir, const std::string& name) {
    return Call(NFS3_MKDIR, Where(dir, name) + XdrOut().Sattr(0755).bytes());
  }
  uint32_t Symlink(const std::string& dir, const std::string& name) {
    return Call(NFS3_SYMLINK, Where(dir, name) + XdrOut().Sattr().Str("target").bytes());
  }
  uint32_t Mkfifo(const std::string& dir, const std::string& name) {
    return Call(NFS3_MKNOD, Where(dir, name) + XdrOut().U32(kNf3Fifo).Sattr(0644).bytes());
  }
  uint32_t Chmod(const std::string& fh, uint32_t mode) {
    return Call(NFS3_SETATTR, XdrOut().Opaque(fh).Sattr(mode).U32(0).bytes());
  }
  uint32_t Link(const std::string& fh, const std::string& dir, const std::string& name) {
    return Call(NFS3_LINK, XdrOut().Opaque(fh).bytes() + Where(dir, name));
  }
  uint32_t Rename(const std::string& from, const std::string& name, const std::string& to,
                  const std::string& to_name) {
    return Call(NFS3_RENAME, Where(from, name) + Where(to, to_name));
  }
  uint32_t Remove(const std::string& dir, const std::string& name) {
    return Call(NFS3_REMOVE, Where(dir, name));
  }
  uint32_t Rmdir(const std::string& dir, const std::string& name) {
    return Call(NFS3_RMDIR, Where(dir, name));
  }
  std::string Handle(const std::string& dir_fh, const std::string& name) {
    Nfs3Wire n(&conn_);
    std::string fh;
    EXPECT_EQ(n.Lookup(dir_fh, name, &fh), kNfs3Ok) << name;
    return fh;
  }

  // Runs `call` (which must answer OK) and checks that the oplog holds, in this order
  // and within [sent, replied], the records `expected` — the change first (its names
  // too), then the commits — and no other fsync/fsyncdir.
  void ExpectInOrder(const char* what, const std::function<uint32_t()>& call,
                     std::vector<Expect> expected) {
    const int64_t sent = MonotonicNs();
    ASSERT_EQ(call(), kNfs3Ok) << what;
    const int64_t replied = MonotonicNs();
    for (Expect& e : expected)
      if (!e.path.empty()) e.ino = InodeOf(e.path);
    std::vector<OpRecord> window;
    std::string seen;
    for (OpRecord& r : ReadOplog(oplog_)) {
      if (r.ns < sent || r.ns > replied) continue;
      seen += r.op + " " + std::to_string(r.ino) + " " + r.rest + "\n";
      window.push_back(std::move(r));
    }
    size_t at = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      const Expect& e = expected[i];
      auto matches = [&](const OpRecord& r) {
        return r.op == e.op && r.ino == e.ino && (i > 0 || r.rest == e.rest);
      };
      while (at < window.size() && !matches(window[at])) ++at;
      ASSERT_LT(at, window.size()) << what << ": no '" << e.op << " " << e.ino << " " << e.rest
                                   << "' (in this order, before the reply); recorded:\n"
                                   << seen;
      ++at;
    }
    size_t commits = 0;
    for (const OpRecord& r : window) commits += r.op == "fsync" || r.op == "fsyncdir";
    EXPECT_EQ(commits, expected.size() - 1) << what << ": other commits; recorded:\n" << seen;
  }

  TempDir top_{"durability"};
  std::string mnt_ = top_.Sub("eio"), oplog_ = top_.Sub("oplog");
  std::string sync_dir_ = mnt_ + "/s", async_dir_ = mnt_ + "/a";
  std::unique_ptr<EioFsMount> fuse_;  // after top_, before srv_: the server stops first
  std::unique_ptr<ServerProcess> srv_;
  WireConn conn_;
  std::string sync_fh_, async_fh_;
};

TEST_F(DurabilityTest, SyncCommitsEveryChangeBeforeTheReply) {
  const std::string& s = sync_fh_;
  const uint64_t S = InodeOf(sync_dir_);
  ASSERT_NE(S, 0u);
  const std::string in_s = sync_dir_ + "/";
  // CREATE and MKDIR: the new object, then its directory (knfsd's nfsd_create_setattr).
  ExpectInOrder("CREATE", [&] { return Create(s, "f"); },
                {{"mknod", S, "f"}, {"fsync", 0, "", in_s + "f"}, {"fsyncdir", S}});
  const uint64_t F = InodeOf(in_s + "f");
  ExpectInOrder("MKDIR", [&] { return Mkdir(s, "d"); },
                {{"mkdir", S, "d"}, {"fsyncdir", 0, "", in_s + "d"}, {"fsyncdir", S}});
  const uint64_t D = InodeOf(in_s + "d");
  // A symlink or FIFO cannot be opened to be synced: its directory's commit holds it.
  ExpectInOrder("SYMLINK", [&] { return Symlink(s, "l"); }, {{"symlink", S, "l"}, {"fsyncdir", S}});
  ExpectInOrder("MKNOD", [&] { return Mkfifo(s, "p"); }, {{"mknod", S, "p"}, {"fsyncdir", S}});
  const std::string f = Handle(s, "f");
  ExpectInOrder("SETATTR", [&] { return Chmod(f, 0600); }, {{"setattr", F}, {"fsync", F}});
  const std::string d = Handle(s, "d");
  ExpectInOrder("LINK", [&] { return Link(f, d, "hard"); },
                {{"link", F, std::to_string(D) + " hard"}, {"fsyncdir", D}, {"fsync", F}});
  ExpectInOrder("RENAME across directories", [&] { return Rename(s, "f", d, "g"); },
                {{"rename", S, "f " + std::to_string(D) + " g"}, {"fsyncdir", D},
                 {"fsyncdir", S}});
  // One directory: one commit.
  ExpectInOrder("RENAME within a directory", [&] { return Rename(d, "g", d, "h"); },
                {{"rename", D, "g " + std::to_string(D) + " h"}, {"fsyncdir", D}});
  ExpectInOrder("REMOVE", [&] { return Remove(d, "h"); }, {{"unlink", D, "h"}, {"fsyncdir", D}});
  ExpectInOrder("REMOVE of the other link", [&] { return Remove(d, "hard"); },
                {{"unlink", D, "hard"}, {"fsyncdir", D}});
  ExpectInOrder("RMDIR", [&] { return Rmdir(s, "d"); }, {{"rmdir", S, "d"}, {"fsyncdir", S}});
}

TEST_F(DurabilityTest, AsyncCommitsNothing) {
  const std::string& a = async_fh_;
  const int64_t start = MonotonicNs();
  ASSERT_EQ(Create(a, "f"), kNfs3Ok);
  ASSERT_EQ(Mkdir(a, "d"), kNfs3Ok);
  ASSERT_EQ(Symlink(a, "l"), kNfs3Ok);
  ASSERT_EQ(Mkfifo(a, "p"), kNfs3Ok);
  const std::string f = Handle(a, "f"), d = Handle(a, "d");
  ASSERT_EQ(Chmod(f, 0600), kNfs3Ok);
  ASSERT_EQ(Link(f, d, "hard"), kNfs3Ok);
  ASSERT_EQ(Rename(a, "f", d, "g"), kNfs3Ok);
  ASSERT_EQ(Remove(d, "g"), kNfs3Ok);
  ASSERT_EQ(Remove(d, "hard"), kNfs3Ok);
  ASSERT_EQ(Rmdir(a, "d"), kNfs3Ok);
  // Every reply has arrived, and a commit is recorded before its reply: the log is final.
  size_t changes = 0, commits = 0;
  for (const OpRecord& r : ReadOplog(oplog_)) {
    if (r.ns < start) continue;
    if (r.op == "fsync" || r.op == "fsyncdir") ++commits;
    else ++changes;
  }
  EXPECT_EQ(changes, 10u) << "the changes were recorded";
  EXPECT_EQ(commits, 0u);
}

TEST_F(DurabilityTest, AFailedCommitIsAnIoError) {
  // eio_fs answers fsync of "syncbad*" with EIO: the new file is made (as with knfsd,
  // whose commit_metadata fails the same way) but the reply says it may not last.
  EXPECT_EQ(Create(sync_fh_, "syncbad-new"), kNfs3ErrIo);
  EXPECT_TRUE(fuse_->WaitForLog("injected EIO: fsync syncbad-new\n")) << fuse_->Log();
  EXPECT_TRUE(srv_->WaitForStderr("answered NFS3ERR_IO: commit (fsync)")) << srv_->StderrText();
  // On async nothing is synced, so nothing fails.
  EXPECT_EQ(Create(async_fh_, "syncbad-new"), kNfs3Ok);
}

}  // namespace
}  // namespace localnfs::testing
