// tests/create_attrs_test.cc — CREATE, MKDIR, SYMLINK and MKNOD with attributes: an
// owner (uid/gid) asked for by a non-root caller is ignored and the creation succeeds, as
// knfsd's nfsd_create_setattr does ("Setting uid/gid works only for root"); root's is
// applied. A creation that fails never leaves its object behind: times the kernel would
// refuse are refused before creating, and an attribute that cannot be applied after the
// creation (a size beyond the file system's limit; a FUSE file system whose setattr fails,
// tests/eio_fs.cc "setattrbad*") removes the new object before the error reply.
// Runs as root against a real localnfsd; the FUSE part skips without /dev/fuse.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tests/eio_fs_mount.h"
#include "tests/support/localnfsd.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

constexpr uint32_t kNfs3ErrFbig = 27;
constexpr uint32_t kNf3Fifo = 7;  // ftype3
constexpr uint32_t kSetToServerTime = 1, kSetToClientTime = 2;  // time_how

AuthSys Who(uint32_t uid, uint32_t gid) {
  AuthSys a;
  a.uid = uid;
  a.gid = gid;
  return a;
}

// A sattr3; unset fields (< 0, time kind 0) are not sent.
struct Attrs {
  int64_t mode = -1, uid = -1, gid = -1, size = -1;
  uint32_t mtime_how = 0, mtime_sec = 0, mtime_nsec = 0;
  std::string Encode() const {
    XdrOut x;
    for (int64_t v : {mode, uid, gid}) {
      x.U32(v >= 0 ? 1 : 0);
      if (v >= 0) x.U32(static_cast<uint32_t>(v));
    }
    x.U32(size >= 0 ? 1 : 0);
    if (size >= 0) x.U64(static_cast<uint64_t>(size));
    x.U32(0);  // atime DONT_CHANGE
    x.U32(mtime_how);
    if (mtime_how == kSetToClientTime) x.U32(mtime_sec).U32(mtime_nsec);
    return x.bytes();
  }
};

struct Stat {
  bool exists = false;
  uid_t uid = 0;
  gid_t gid = 0;
  mode_t mode = 0;
};
Stat StatOf(const std::string& path) {
  struct stat st;
  Stat r;
  if (lstat(path.c_str(), &st) == 0) r = {true, st.st_uid, st.st_gid, st.st_mode};
  return r;
}

// NFSv3 calls with an explicit sattr3 over a WireConn (Nfs3Wire sends only a mode).
class Creator {
 public:
  Creator(WireConn* conn, std::string dir_fh) : conn_(conn), dir_(std::move(dir_fh)) {}

  uint32_t Create(const AuthSys& who, const std::string& name, const Attrs& a,
                  bool guarded = false) {
    return Call(who, NFS3_CREATE, Where(name) + XdrOut().U32(guarded ? 1 : 0).bytes() + a.Encode());
  }
  uint32_t Mkdir(const AuthSys& who, const std::string& name, const Attrs& a) {
    return Call(who, NFS3_MKDIR, Where(name) + a.Encode());
  }
  uint32_t Symlink(const AuthSys& who, const std::string& name, const Attrs& a) {
    return Call(who, NFS3_SYMLINK, Where(name) + a.Encode() + XdrOut().Str("target").bytes());
  }
  uint32_t Mkfifo(const AuthSys& who, const std::string& name, const Attrs& a) {
    return Call(who, NFS3_MKNOD, Where(name) + XdrOut().U32(kNf3Fifo).bytes() + a.Encode());
  }
  // Each of the four with the same attributes; `name` gets a suffix per kind.
  template <class Check>
  void All(const AuthSys& who, const std::string& name, const Attrs& a, Check&& check) {
    check(name + "-f", Create(who, name + "-f", a));
    check(name + "-g", Create(who, name + "-g", a, /*guarded=*/true));
    check(name + "-d", Mkdir(who, name + "-d", a));
    check(name + "-s", Symlink(who, name + "-s", a));
    check(name + "-p", Mkfifo(who, name + "-p", a));
  }

 private:
  std::string Where(const std::string& name) const {
    return XdrOut().Opaque(dir_).Str(name).bytes();
  }
  uint32_t Call(const AuthSys& who, uint32_t proc, const std::string& args) {
    RpcReply r = conn_->Call(kNfsProg, 3, proc, args, &who);
    XdrIn in(r.results);
    uint32_t status = Nfs3Wire::kRpcFailed;
    if (!r.ok || r.accept_stat != kSuccess || !in.U32(&status)) return Nfs3Wire::kRpcFailed;
    return status;
  }

  WireConn* conn_;
  std::string dir_;
};

class CreateAttrsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (callers of other uids)";
    ASSERT_EQ(chmod(dir_.path().c_str(), 0777), 0);
    ASSERT_TRUE(StartServerAndMount(dir_.path(), {}, &srv_, &root_fh_));
    ASSERT_TRUE(conn_.Connect(srv_->nfs_port()));
  }

  TempDir dir_{"create-attrs"};
  std::unique_ptr<ServerProcess> srv_;
  std::string root_fh_;
  WireConn conn_;
};

TEST_F(CreateAttrsTest, OwnerAskedForByANonRootCallerIsIgnoredAndTheCreationSucceeds) {
  Creator c(&conn_, root_fh_);
  Attrs a;
  a.mode = 0750;
  a.uid = 1234;
  a.gid = 5678;
  c.All(Who(1001, 1001), "other-owner", a, [&](const std::string& name, uint32_t status) {
    EXPECT_EQ(status, kNfs3Ok) << name;
    const Stat st = StatOf(dir_.Sub(name));
    ASSERT_TRUE(st.exists) << name;
    EXPECT_EQ(st.uid, 1001u) << name;
    EXPECT_EQ(st.gid, 1001u) << name;
    if (!S_ISLNK(st.mode)) EXPECT_EQ(st.mode & 07777, 0750u) << name;
  });
}

TEST_F(CreateAttrsTest, OwnerAskedForByRootIsApplied) {
  Creator c(&conn_, root_fh_);
  Attrs a;
  a.uid = 1234;
  a.gid = 5678;
  c.All(Who(0, 0), "root-owner", a, [&](const std::string& name, uint32_t status) {
    EXPECT_EQ(status, kNfs3Ok) << name;
    const Stat st = StatOf(dir_.Sub(name));
    ASSERT_TRUE(st.exists) << name;
    EXPECT_EQ(st.uid, 1234u) << name;
    EXPECT_EQ(st.gid, 5678u) << name;
  });
}

TEST_F(CreateAttrsTest, TimesTheKernelRefusesAreRefusedBeforeCreating) {
  Creator c(&conn_, root_fh_);
  Attrs a;
  a.mtime_how = kSetToClientTime;
  a.mtime_sec = 1000;
  a.mtime_nsec = 2000000000u;  // beyond a second
  c.All(Who(1001, 1001), "bad-time", a, [&](const std::string& name, uint32_t status) {
    EXPECT_EQ(status, kNfs3ErrInval) << name;
    EXPECT_FALSE(StatOf(dir_.Sub(name)).exists) << name << " was left behind";
  });
  // SETATTR likewise changes nothing (the mode with it stays as it was).
  const AuthSys user = Who(1001, 1001);
  Nfs3Wire n(&conn_, user);
  std::string fh;
  ASSERT_EQ(n.Create(root_fh_, "existing", 0644, &fh), kNfs3Ok);
  a.mode = 0600;
  RpcReply r = conn_.Call(kNfsProg, 3, NFS3_SETATTR,
                          XdrOut().Opaque(fh).bytes() + a.Encode() + XdrOut().U32(0).bytes(),
                          &user);
  XdrIn in(r.results);
  uint32_t status = 0;
  ASSERT_TRUE(r.ok && in.U32(&status)) << r.error;
  EXPECT_EQ(status, kNfs3ErrInval);
  EXPECT_EQ(StatOf(dir_.Sub("existing")).mode & 07777, 0644u);
}

TEST_F(CreateAttrsTest, ASizeBeyondTheFileSystemsLimitLeavesNoFile) {
  Creator c(&conn_, root_fh_);
  Attrs a;
  a.size = int64_t{1} << 62;  // ext4/xfs/btrfs/tmpfs limits are below this
  for (bool guarded : {false, true}) {
    const std::string name = guarded ? "huge-guarded" : "huge";
    EXPECT_EQ(c.Create(Who(1001, 1001), name, a, guarded), kNfs3ErrFbig) << name;
    EXPECT_FALSE(StatOf(dir_.Sub(name)).exists) << name << " was left behind";
  }
  // A size that fits is applied.
  a.size = 4096;
  EXPECT_EQ(c.Create(Who(1001, 1001), "sized", a), kNfs3Ok);
  struct stat st;
  ASSERT_EQ(stat(dir_.Sub("sized").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 4096);
}

// On eio_fs, whose setattr fails for "setattrbad*" names: the object is made, the
// attributes after it fail (EIO), and the error reply finds it removed again.
TEST(CreateAttrsEioTest, AttributesFailingAfterTheCreationRemoveTheNewObject) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a FUSE file system";
  const int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) GTEST_SKIP() << "/dev/fuse is not usable: " << strerror(errno);
  close(fd);
  ASSERT_FALSE(EioFsBinary().empty()) << "$LOCALNFS_EIO_FS unset (tests/meson.build sets it)";
  TempDir top("create-attrs-eio");
  const std::string mnt = top.Sub("eio");
  ASSERT_EQ(mkdir(mnt.c_str(), 0755), 0);
  EioFsMount fuse(mnt);
  std::string why;
  switch (fuse.Start(&why)) {
    case EioFsMount::Started::kReady: break;
    case EioFsMount::Started::kNoFuse: GTEST_SKIP() << "cannot mount FUSE here: " << why;
    case EioFsMount::Started::kFailed: FAIL() << why;
  }
  std::unique_ptr<ServerProcess> srv;
  std::string root_fh;
  ASSERT_TRUE(StartServerAndMount(mnt, {}, &srv, &root_fh));
  WireConn conn;
  ASSERT_TRUE(conn.Connect(srv->nfs_port()));
  Creator c(&conn, root_fh);
  Attrs touch;
  touch.mtime_how = kSetToServerTime;
  // A control: the same attributes on names whose setattr works.
  c.All(Who(1001, 1001), "fine", touch, [&](const std::string& name, uint32_t status) {
    EXPECT_EQ(status, kNfs3Ok) << name;
    EXPECT_TRUE(StatOf(mnt + "/" + name).exists) << name;
  });
  c.All(Who(1001, 1001), "setattrbad-touch", touch,
        [&](const std::string& name, uint32_t status) {
          EXPECT_EQ(status, kNfs3ErrIo) << name;
          EXPECT_FALSE(StatOf(mnt + "/" + name).exists) << name << " was left behind";
        });
  // Root's chown failing after the creation, likewise.
  Attrs owner;
  owner.uid = 1234;
  c.All(Who(0, 0), "setattrbad-owner", owner, [&](const std::string& name, uint32_t status) {
    EXPECT_EQ(status, kNfs3ErrIo) << name;
    EXPECT_FALSE(StatOf(mnt + "/" + name).exists) << name << " was left behind";
  });
  EXPECT_TRUE(fuse.WaitForLog("injected EIO: setattr setattrbad-touch-f\n")) << fuse.Log();
  conn.Close();
  EXPECT_TRUE(srv->Stop());
}

}  // namespace
}  // namespace localnfs::testing
