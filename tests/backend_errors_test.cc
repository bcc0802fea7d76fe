// tests/backend_errors_test.cc — the file system under an export failing: a full
// tmpfs (ENOSPC), a read-only mount under an export the server thinks is rw (EROFS) and
// a FUSE file system whose reads, writes, fsyncs and lookups fail with EIO
// (tests/eio_fs.cc) reach the client as NFS3ERR_NOSPC, NFS3ERR_ROFS and NFS3ERR_IO —
// and as errno EIO through the client library, over RPC and LOCALIO — the data
// acknowledged before is intact, and the server keeps serving that export's other
// files and its other exports.
// Needs root (mounts a tmpfs, a read-only bind mount and the FUSE file system; all are
// unmounted in TearDown / by their owners' destructors). The EIO tests skip without a
// usable /dev/fuse.
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "client_localio/client.h"
#include "client_localio/localio_data_path.h"
#include "client_localio/test_util.h"
#include "gtest/gtest.h"
#include "tests/eio_fs_mount.h"
#include "tests/support/localnfsd.h"
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

// ---- EIO: a FUSE file system that fails on purpose (tests/eio_fs.cc) ----

constexpr uint32_t kUnstable = 0;

// Exports eio_fs ("good", "bad", "syncbad", "badattr"; see tests/eio_fs.cc) and an
// ordinary directory from one server.
class BackendEioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a FUSE file system";
    const int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fd < 0) GTEST_SKIP() << "/dev/fuse is not usable: " << strerror(errno);
    close(fd);
    ASSERT_FALSE(EioFsBinary().empty()) << "$LOCALNFS_EIO_FS unset (tests/meson.build sets it)";
    ASSERT_EQ(mkdir(mnt_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(other_.c_str(), 0755), 0);
    ASSERT_TRUE(WriteFile(other_ + "/kept", "other data"));
    fuse_ = std::make_unique<EioFsMount>(mnt_);
    std::string why;
    switch (fuse_->Start(&why)) {
      case EioFsMount::Started::kReady: break;
      case EioFsMount::Started::kNoFuse: GTEST_SKIP() << "cannot mount FUSE here: " << why;
      case EioFsMount::Started::kFailed: FAIL() << why;
    }
    srv_ = std::make_unique<ServerProcess>(std::vector<std::string>{
        "--export", mnt_ + ":rw,no_root_squash", "--export", other_ + ":rw,no_root_squash"});
    ASSERT_TRUE(srv_->Start());
    ASSERT_TRUE(conn_.Connect(srv_->nfs_port()));
  }
  void TearDown() override {
    conn_.Close();
    if (srv_ && srv_->running()) {
      EXPECT_TRUE(srv_->Stop());
    }
    srv_.reset();
    if (fuse_) fuse_->Stop();
  }
  std::string Root(const std::string& path) {
    std::string fh;
    Nfs3Wire n(&conn_);
    EXPECT_EQ(n.Mount(path, &fh), 0u) << n.last_rpc().error;
    return fh;
  }
  // COMMIT of the whole file; the nfsstat3, or Nfs3Wire::kRpcFailed.
  uint32_t CommitStatus(const std::string& fh) { return Nfs3Wire(&conn_).Commit(fh); }
  // The server process has not exited and answers NULL on a new connection.
  ::testing::AssertionResult ServerAlive() {
    if (!srv_->running() || srv_->WaitExit(std::chrono::milliseconds(0)) != -1)
      return ::testing::AssertionFailure() << "localnfsd exited: " << srv_->StderrText();
    WireConn fresh;
    if (!fresh.Connect(srv_->nfs_port()))
      return ::testing::AssertionFailure() << "cannot connect to localnfsd";
    Nfs3Wire n(&fresh);
    if (n.Null() != 0) return ::testing::AssertionFailure() << "NULL: " << n.last_rpc().error;
    return ::testing::AssertionSuccess();
  }

  TempDir top_;
  std::string mnt_ = top_.Sub("eio"), other_ = top_.Sub("other");
  // Declared after top_ and before srv_: the server goes first, then the FUSE mount,
  // then the directories.
  std::unique_ptr<EioFsMount> fuse_;
  std::unique_ptr<ServerProcess> srv_;
  WireConn conn_;
};

TEST_F(BackendEioTest, ReadWriteAndCommitFailingWithEioGiveNfs3ErrIoAndTheServerKeepsServing) {
  Nfs3Wire n(&conn_);
  const std::string root = Root(mnt_), other = Root(other_);
  std::string good, bad, syncbad, kept;
  ASSERT_EQ(n.Lookup(root, "good", &good), 0u);
  ASSERT_EQ(n.Lookup(root, "bad", &bad), 0u);
  ASSERT_EQ(n.Lookup(root, "syncbad", &syncbad), 0u);
  ASSERT_EQ(n.Lookup(other, "kept", &kept), 0u);
  auto other_export_serves = [&] {
    std::string d;
    const uint32_t st = n.Read(kept, 0, 100, &d);
    return st == 0 && d == "other data";
  };
  std::string data;

  // READ and WRITE of a file whose I/O fails.
  EXPECT_EQ(n.Read(bad, 0, 4096, &data), kNfs3ErrIo);
  EXPECT_TRUE(other_export_serves());
  EXPECT_EQ(n.Write(bad, 0, "x", kUnstable), kNfs3ErrIo);
  EXPECT_EQ(n.Write(bad, 0, "x", kFileSync), kNfs3ErrIo);
  EXPECT_TRUE(other_export_serves());
  // A file whose writes work but whose fsync fails: the UNSTABLE write is acknowledged,
  // the COMMIT that would make it stable is not, nor is a FILE_SYNC write.
  uint32_t count = 0;
  EXPECT_EQ(n.Write(syncbad, 0, "unstable", kUnstable, &count), 0u);
  EXPECT_EQ(count, 8u);
  EXPECT_EQ(CommitStatus(syncbad), kNfs3ErrIo);
  EXPECT_EQ(n.Write(syncbad, 0, "stable", kFileSync), kNfs3ErrIo);
  EXPECT_EQ(CommitStatus(syncbad), kNfs3ErrIo);
  EXPECT_TRUE(other_export_serves());
  // A new file on the failing file system fails the same way (the name decides): its
  // CREATE already, whose commit (the export is `sync`) fsyncs it; the file is there.
  std::string bad_new;
  EXPECT_EQ(n.Create(root, "bad-new", 0644, &bad_new), kNfs3ErrIo);
  ASSERT_EQ(n.Lookup(root, "bad-new", &bad_new), 0u);
  EXPECT_EQ(n.Write(bad_new, 0, "y", kFileSync), kNfs3ErrIo);

  // The same export's healthy files: read, written stably, committed, read back.
  ASSERT_EQ(n.Read(good, 0, 100, &data), 0u);
  EXPECT_EQ(data, "good data\n");
  EXPECT_EQ(n.Write(good, 0, "GOOD", kFileSync), 0u);
  EXPECT_EQ(CommitStatus(good), 0u);
  ASSERT_EQ(n.Read(good, 0, 100, &data), 0u);
  EXPECT_EQ(data, "GOOD data\n");
  EXPECT_EQ(ReadFile(mnt_ + "/good"), "GOOD data\n");
  std::string fresh;
  ASSERT_EQ(n.Create(root, "fresh", 0644, &fresh), 0u);
  EXPECT_EQ(n.Write(fresh, 0, "fresh data", kUnstable), 0u);
  EXPECT_EQ(CommitStatus(fresh), 0u);
  EXPECT_EQ(ReadFile(mnt_ + "/fresh"), "fresh data");
  // syncbad's reads still work.
  ASSERT_EQ(n.Read(syncbad, 0, 6, &data), 0u);
  EXPECT_EQ(data, "stable");

  // The other export, after: writes and reads as before.
  std::string ok;
  ASSERT_EQ(n.Create(other, "ok", 0644, &ok), 0u);
  EXPECT_EQ(n.Write(ok, 0, "after", kFileSync), 0u);
  EXPECT_EQ(ReadFile(other_ + "/ok"), "after");
  EXPECT_TRUE(other_export_serves());

  // The failures came from the file system (not from some other server error) ...
  for (const char* line : {"injected EIO: read bad\n", "injected EIO: write bad\n",
                           "injected EIO: fsync syncbad\n", "injected EIO: write bad-new\n"})
    EXPECT_TRUE(fuse_->WaitForLog(line)) << line << fuse_->Log();
  // ... the server said so in its log ...
  const std::string log = srv_->StderrText();
  EXPECT_NE(log.find("I/O error, answered NFS3ERR_IO: pread: Input/output error"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("I/O error, answered NFS3ERR_IO: fsync: Input/output error"),
            std::string::npos)
      << log;
  // ... and it is still up.
  EXPECT_TRUE(ServerAlive());
}

TEST_F(BackendEioTest, LookupFailingWithEioGivesNfs3ErrIo) {
  Nfs3Wire n(&conn_);
  const std::string root = Root(mnt_);
  std::string fh;
  EXPECT_EQ(n.Lookup(root, "badattr", &fh), kNfs3ErrIo);
  EXPECT_EQ(n.Lookup(root, "good", &fh), 0u);
  EXPECT_EQ(n.Lookup(root, "missing", &fh), kNfs3ErrNoent);
  EXPECT_EQ(n.Getattr(root), 0u);
  EXPECT_TRUE(fuse_->WaitForLog("injected EIO: lookup badattr\n")) << fuse_->Log();
  EXPECT_TRUE(ServerAlive());
}

TEST_F(BackendEioTest, FileSystemDaemonDyingGivesNfs3ErrIoAndTheOtherExportKeepsServing) {
  Nfs3Wire n(&conn_);
  const std::string root = Root(mnt_), other = Root(other_);
  std::string good, kept, fh, data;
  ASSERT_EQ(n.Lookup(root, "good", &good), 0u);
  ASSERT_EQ(n.Lookup(other, "kept", &kept), 0u);
  ASSERT_EQ(n.Read(good, 0, 100, &data), 0u);
  fuse_->Kill9();
  // Every call on the dead file system fails (ENOTCONN): NFS3ERR_IO.
  EXPECT_EQ(n.Read(good, 0, 100, &data), kNfs3ErrIo);
  EXPECT_EQ(n.Write(good, 0, "x", kFileSync), kNfs3ErrIo);
  EXPECT_EQ(n.Getattr(root), kNfs3ErrIo);
  EXPECT_EQ(n.Lookup(root, "good", &fh), kNfs3ErrIo);
  // The other export does not notice.
  ASSERT_EQ(n.Read(kept, 0, 100, &data), 0u);
  EXPECT_EQ(data, "other data");
  ASSERT_EQ(n.Create(other, "after", 0644, &fh), 0u);
  EXPECT_EQ(n.Write(fh, 0, "after", kFileSync), 0u);
  EXPECT_EQ(ReadFile(other_ + "/after"), "after");
  const std::string log = srv_->StderrText();
  EXPECT_NE(log.find("answered NFS3ERR_IO"), std::string::npos) << log;
  EXPECT_TRUE(ServerAlive());
}

const Credentials kRootCred{.uid = 0, .gid = 0, .groups = {}};

// What a caller of the client library sees: errno EIO (ErrnoOf) carrying NFS3ERR_IO.
::testing::AssertionResult IsEio(const absl::Status& s) {
  if (s.ok()) return ::testing::AssertionFailure() << "succeeded";
  if (client::ErrnoOf(s) != EIO || client::NfsStatusOf(s) != std::optional<uint32_t>(kNfs3ErrIo))
    return ::testing::AssertionFailure() << "errno " << client::ErrnoOf(s) << ": " << s;
  return ::testing::AssertionSuccess();
}

// Over the client library: RPC only, then with the LOCALIO data path (whose local
// pread / pwrite / fsync fail with EIO, and the RPC it falls back to as well).
void CheckEioThroughTheClient(client::Nfs3Client* c, const std::string& mnt) {
  auto bad = c->Lookup(c->root(), "bad", kRootCred);
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_TRUE(IsEio(c->Read(bad->handle, 0, 4096, kRootCred).status()));
  EXPECT_TRUE(IsEio(c->Write(bad->handle, 0, "x", kRootCred).status()));
  EXPECT_TRUE(IsEio(c->Write(bad->handle, 0, "x", kRootCred, client::StableHow::kFileSync)
                        .status()));
  auto syncbad = c->Lookup(c->root(), "syncbad", kRootCred);
  ASSERT_TRUE(syncbad.ok()) << syncbad.status();
  EXPECT_TRUE(c->Write(syncbad->handle, 0, "pending", kRootCred).ok());
  EXPECT_TRUE(IsEio(c->Commit(syncbad->handle, kRootCred).status()));
  EXPECT_TRUE(IsEio(c->Lookup(c->root(), "badattr", kRootCred).status()));
  auto good = c->Lookup(c->root(), "good", kRootCred);
  ASSERT_TRUE(good.ok()) << good.status();
  auto r = c->Read(good->handle, 0, 100, kRootCred);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->data, "good data\n");
  EXPECT_TRUE(c->Write(good->handle, 0, "Good", kRootCred).ok());
  EXPECT_TRUE(c->Commit(good->handle, kRootCred).ok());
  EXPECT_EQ(ReadFile(mnt + "/good"), "Good data\n");
}

TEST_F(BackendEioTest, EioArrivesAsErrnoEioAtTheClientLibrary) {
  auto c = client::Nfs3Client::Mount("127.0.0.1", srv_->nfs_port(), srv_->mount_port(), mnt_,
                                     {});
  ASSERT_TRUE(c.ok()) << c.status();
  CheckEioThroughTheClient(c->get(), mnt_);
  // The other export, through its own client.
  auto o = client::Nfs3Client::Mount("127.0.0.1", srv_->nfs_port(), srv_->mount_port(),
                                     other_, {});
  ASSERT_TRUE(o.ok()) << o.status();
  auto kept = (*o)->Lookup((*o)->root(), "kept", kRootCred);
  ASSERT_TRUE(kept.ok()) << kept.status();
  auto r = (*o)->Read(kept->handle, 0, 100, kRootCred);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->data, "other data");
  EXPECT_TRUE(ServerAlive());
}

TEST_F(BackendEioTest, EioOnTheLocalioPathArrivesAsErrnoEio) {
  auto c = client::Nfs3Client::Mount("127.0.0.1", srv_->nfs_port(), srv_->mount_port(), mnt_,
                                     {});
  ASSERT_TRUE(c.ok()) << c.status();
  auto lio = client::LocalioDataPath::Install(
      c->get(), {.mode = client::LocalioMode::kOn, .runtime_dir = srv_->runtime_dir()});
  ASSERT_TRUE(lio.ok()) << lio.status();
  CheckEioThroughTheClient(c->get(), mnt_);
  const client::IoCounters counters = (*c)->Counters();
  // The healthy file went local; the failing calls fell back to RPC, which failed too.
  EXPECT_GT(counters.local_reads, 0u) << client::FormatCounters(counters);
  EXPECT_GT(counters.local_fallbacks, 0u) << client::FormatCounters(counters);
  EXPECT_TRUE(ServerAlive());
}

}  // namespace
}  // namespace localnfs::testing
