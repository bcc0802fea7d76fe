// tests/security_test.cc — export security rules proven over the wire with AUTH_SYS
// credentials of different uids, against a real localnfsd. Runs as root (chown of
// fixtures, squash targets); skips otherwise.
#include <sys/stat.h>
#include <unistd.h>

#include "gtest/gtest.h"
#include "tests/support/localnfsd.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

AuthSys Uid(uint32_t uid, uint32_t gid) {
  AuthSys a;
  a.uid = uid;
  a.gid = gid;
  return a;
}

struct StatResult {
  bool ok = false;
  uid_t uid = 0;
  gid_t gid = 0;
  mode_t mode = 0;
};
StatResult Stat(const std::string& p) {
  struct stat st;
  StatResult r;
  if (lstat(p.c_str(), &st) == 0) {
    r.ok = true;
    r.uid = st.st_uid;
    r.gid = st.st_gid;
    r.mode = st.st_mode;
  }
  return r;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the security suite needs root";
    // World-writable so that squashed ids can create files in it.
    ASSERT_EQ(chmod(root_.path().c_str(), 0777), 0);
  }
  // Starts a server exporting root_ with `opts`, connects and mounts as root.
  void StartWith(const std::string& opts) {
    server_ = std::make_unique<ServerProcess>(
        std::vector<std::string>{"--export", root_.path() + (opts.empty() ? "" : ":" + opts)});
    ASSERT_TRUE(server_->Start());
    ASSERT_TRUE(conn_.Connect(server_->nfs_port()));
    Nfs3Wire m(&conn_);
    ASSERT_EQ(m.Mount(root_.path(), &rootfh_), 0u) << m.last_rpc().error;
  }
  uint32_t CreateAs(const AuthSys& cred, const std::string& name) {
    Nfs3Wire n(&conn_, cred);
    std::string fh;
    return n.Create(rootfh_, name, 0644, &fh);
  }

  TempDir root_;
  std::unique_ptr<ServerProcess> server_;
  WireConn conn_;
  std::string rootfh_;
};

TEST_F(SecurityTest, RootSquashMapsUid0ToAnonymousOnDisk) {
  StartWith("rw");  // root_squash is the default
  ASSERT_EQ(CreateAs(Uid(0, 0), "by-root"), kNfs3Ok);
  StatResult st = Stat(root_.Sub("by-root"));
  ASSERT_TRUE(st.ok);
  EXPECT_EQ(st.uid, 65534u);
  EXPECT_EQ(st.gid, 65534u);
  // A non-root uid is kept as is.
  ASSERT_EQ(CreateAs(Uid(1000, 1000), "by-1000"), kNfs3Ok);
  st = Stat(root_.Sub("by-1000"));
  EXPECT_EQ(st.uid, 1000u);
  EXPECT_EQ(st.gid, 1000u);
}

TEST_F(SecurityTest, RootSquashAlsoAppliesToPermissionChecks) {
  ASSERT_TRUE(WriteFile(root_.Sub("private"), "secret"));
  ASSERT_EQ(chown(root_.Sub("private").c_str(), 1000, 1000), 0);
  ASSERT_EQ(chmod(root_.Sub("private").c_str(), 0600), 0);
  StartWith("rw,root_squash");
  Nfs3Wire rootc(&conn_, Uid(0, 0));
  std::string fh, data;
  ASSERT_EQ(rootc.Lookup(rootfh_, "private", &fh), kNfs3Ok);
  EXPECT_EQ(rootc.Read(fh, 0, 100, &data), kNfs3ErrAcces)
      << "squashed root must not read a 0600 file of uid 1000";
}

TEST_F(SecurityTest, NoRootSquashKeepsUid0) {
  StartWith("rw,no_root_squash");
  ASSERT_EQ(CreateAs(Uid(0, 0), "by-root"), kNfs3Ok);
  StatResult st = Stat(root_.Sub("by-root"));
  ASSERT_TRUE(st.ok);
  EXPECT_EQ(st.uid, 0u);
  EXPECT_EQ(st.gid, 0u);
}

TEST_F(SecurityTest, AllSquashMapsEveryUidToAnonuid) {
  StartWith("rw,all_squash,anonuid=1234,anongid=1234");
  ASSERT_EQ(CreateAs(Uid(0, 0), "by-root"), kNfs3Ok);
  ASSERT_EQ(CreateAs(Uid(1000, 1000), "by-1000"), kNfs3Ok);
  ASSERT_EQ(CreateAs(Uid(4321, 99), "by-4321"), kNfs3Ok);
  for (const char* f : {"by-root", "by-1000", "by-4321"}) {
    StatResult st = Stat(root_.Sub(f));
    ASSERT_TRUE(st.ok) << f;
    EXPECT_EQ(st.uid, 1234u) << f;
    EXPECT_EQ(st.gid, 1234u) << f;
  }
}

TEST_F(SecurityTest, ReadOnlyExportRefusesEveryModificationWithRofs) {
  ASSERT_TRUE(WriteFile(root_.Sub("file"), "original"));
  ASSERT_EQ(mkdir(root_.Sub("dir").c_str(), 0755), 0);
  const mode_t mode_before = Stat(root_.Sub("file")).mode;
  StartWith("ro,no_root_squash");
  Nfs3Wire n(&conn_, Uid(0, 0));
  std::string fh, dirfh, data;
  ASSERT_EQ(n.Lookup(rootfh_, "file", &fh), kNfs3Ok);
  ASSERT_EQ(n.Lookup(rootfh_, "dir", &dirfh), kNfs3Ok);

  EXPECT_EQ(n.Write(fh, 0, "changed!", 2 /*FILE_SYNC*/), kNfs3ErrRofs);
  std::string newfh;
  EXPECT_EQ(n.Create(rootfh_, "new", 0644, &newfh), kNfs3ErrRofs);
  EXPECT_EQ(n.Mkdir(rootfh_, "newdir", 0755, &newfh), kNfs3ErrRofs);
  EXPECT_EQ(n.Remove(rootfh_, "file"), kNfs3ErrRofs);
  EXPECT_EQ(n.SetattrMode(fh, 0600), kNfs3ErrRofs);
  EXPECT_EQ(n.Rename(rootfh_, "file", dirfh, "moved"), kNfs3ErrRofs);

  // Reads still work, and nothing changed on disk.
  bool eof = false;
  ASSERT_EQ(n.Read(fh, 0, 100, &data, &eof), kNfs3Ok);
  EXPECT_EQ(data, "original");
  EXPECT_TRUE(eof);
  EXPECT_EQ(ReadFile(root_.Sub("file")), "original");
  EXPECT_EQ(Stat(root_.Sub("file")).mode, mode_before) << "SETATTR on a ro export changed the mode";
  EXPECT_FALSE(Stat(root_.Sub("new")).ok);
  EXPECT_FALSE(Stat(root_.Sub("newdir")).ok);
  EXPECT_FALSE(Stat(root_.Sub("dir/moved")).ok);
}

TEST_F(SecurityTest, HostWithoutMatchingRuleGetsMountAndNfsAccessDenied) {
  // First an exports file that admits 127.0.0.1: MNT works and yields a handle.
  TempDir cfg("localnfs-cfg");
  std::string exports = cfg.Sub("exports");
  ASSERT_TRUE(WriteFile(exports, root_.path() + " 127.0.0.1(rw,no_root_squash)\n"));
  ServerProcess srv({"--exports", exports});
  ASSERT_TRUE(srv.Start());
  std::string fh;
  {
    WireConn c;
    ASSERT_TRUE(c.Connect(srv.mount_port()));
    Nfs3Wire m(&c);
    ASSERT_EQ(m.Mount(root_.path(), &fh), 0u) << m.last_rpc().error;
  }
  // Now only 10.1.2.3 may mount; restart with the same state so the handle is valid.
  ASSERT_TRUE(WriteFile(exports, root_.path() + " 10.1.2.3(rw,no_root_squash)\n"));
  ASSERT_TRUE(srv.Restart());
  {
    WireConn c;
    ASSERT_TRUE(c.Connect(srv.mount_port()));
    Nfs3Wire m(&c);
    std::string fh2;
    EXPECT_EQ(m.Mount(root_.path(), &fh2), 13u /*MNT3ERR_ACCES*/);
  }
  WireConn c;
  ASSERT_TRUE(c.Connect(srv.nfs_port()));
  Nfs3Wire n(&c, Uid(0, 0));
  EXPECT_EQ(n.Null(), 0u) << "NULL needs no export";
  EXPECT_EQ(n.Getattr(fh), kNfs3ErrAcces);
  std::string sub;
  EXPECT_EQ(n.Lookup(fh, "x", &sub), kNfs3ErrAcces);
  EXPECT_EQ(n.Create(fh, "x", 0644, &sub), kNfs3ErrAcces);
  EXPECT_FALSE(Stat(root_.Sub("x")).ok);
}

TEST_F(SecurityTest, Mode0600FileReadableByOwnerOnly) {
  ASSERT_TRUE(WriteFile(root_.Sub("mine"), "owner data"));
  ASSERT_EQ(chown(root_.Sub("mine").c_str(), 1000, 1000), 0);
  ASSERT_EQ(chmod(root_.Sub("mine").c_str(), 0600), 0);
  StartWith("rw");
  std::string fh, data;
  Nfs3Wire other(&conn_, Uid(2000, 2000));
  ASSERT_EQ(other.Lookup(rootfh_, "mine", &fh), kNfs3Ok);
  EXPECT_EQ(other.Read(fh, 0, 100, &data), kNfs3ErrAcces);
  EXPECT_EQ(other.Write(fh, 0, "x", 2), kNfs3ErrAcces);
  uint32_t granted = 0xffffffff;
  ASSERT_EQ(other.Access(fh, 0x1 /*READ*/ | 0x4 /*MODIFY*/, &granted), kNfs3Ok);
  EXPECT_EQ(granted & 0x5, 0u) << "ACCESS must not grant READ/MODIFY to uid 2000";
  // uid 2000 with gid 1000 as a supplementary group still has no access (mode 0600).
  AuthSys grp = Uid(2000, 2000);
  grp.gids = {1000};
  Nfs3Wire other_grp(&conn_, grp);
  EXPECT_EQ(other_grp.Read(fh, 0, 100, &data), kNfs3ErrAcces);

  Nfs3Wire owner(&conn_, Uid(1000, 1000));
  ASSERT_EQ(owner.Read(fh, 0, 100, &data), kNfs3Ok);
  EXPECT_EQ(data, "owner data");
  ASSERT_EQ(owner.Access(fh, 0x1 | 0x4, &granted), kNfs3Ok);
  EXPECT_EQ(granted & 0x5, 0x5u);
  EXPECT_EQ(ReadFile(root_.Sub("mine")), "owner data");
}

TEST_F(SecurityTest, GroupPermissionComesFromAuthSysSupplementaryGids) {
  ASSERT_TRUE(WriteFile(root_.Sub("grp"), "group data"));
  ASSERT_EQ(chown(root_.Sub("grp").c_str(), 1000, 3000), 0);
  ASSERT_EQ(chmod(root_.Sub("grp").c_str(), 0640), 0);
  StartWith("rw");
  std::string fh, data;
  AuthSys member = Uid(2000, 2000);
  member.gids = {17, 3000};
  Nfs3Wire m(&conn_, member);
  ASSERT_EQ(m.Lookup(rootfh_, "grp", &fh), kNfs3Ok);
  ASSERT_EQ(m.Read(fh, 0, 100, &data), kNfs3Ok);
  EXPECT_EQ(data, "group data");
  Nfs3Wire nonmember(&conn_, Uid(2000, 2000));
  EXPECT_EQ(nonmember.Read(fh, 0, 100, &data), kNfs3ErrAcces);
}

}  // namespace
}  // namespace localnfs::testing
