// tests/nfs4_security_test.cc — security_test.cc's export rules again over NFSv4.1:
// root_squash, all_squash, ro, a client rule that does not match, another user's 0600
// file, group permission from AUTH_SYS gids — through sessions and COMPOUNDs against a
// real localnfsd (NFSv4 on by default), with the v4 path of the export (its directory path).
// Runs as root (chown of fixtures, squash targets); skips otherwise.
#include <sys/stat.h>
#include <unistd.h>

#include "gtest/gtest.h"
#include "tests/nfs4_wire.h"
#include "tests/support/localnfsd.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

constexpr uint32_t kRead = OPEN4_SHARE_ACCESS_READ;
constexpr uint32_t kWrite = OPEN4_SHARE_ACCESS_WRITE;

AuthSys Uid(uint32_t uid, uint32_t gid, std::vector<uint32_t> gids = {}) {
  AuthSys a;
  a.uid = uid;
  a.gid = gid;
  a.gids = std::move(gids);
  return a;
}

struct Owner {
  bool ok = false;
  uid_t uid = 0;
  gid_t gid = 0;
  mode_t mode = 0;
};
Owner Stat(const std::string& p) {
  struct stat st;
  Owner r;
  if (lstat(p.c_str(), &st) == 0) r = Owner{true, st.st_uid, st.st_gid, st.st_mode};
  return r;
}

class Nfs4SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the security suite needs root";
    // World-writable so that squashed ids can create files in it.
    ASSERT_EQ(chmod(root_.path().c_str(), 0777), 0);
  }
  // Starts a server exporting root_ with `opts` over NFSv4.1 and finds the export's
  // handle by its path, as root.
  void StartWith(const std::string& opts) {
    server_ = std::make_unique<ServerProcess>(std::vector<std::string>{
        "--export", root_.path() + (opts.empty() ? "" : ":" + opts)});
    ASSERT_TRUE(server_->Start());
    ASSERT_TRUE(conn_.Connect(server_->nfs_port()));
    ASSERT_TRUE(v4_.Establish("nfs4-security-test")) << v4_.error();
    ASSERT_EQ(v4_.LookupPath(root_.path(), &rootfh_), NFS4_OK);
  }
  // Creates `name` as `cred` (OPEN with create, then CLOSE).
  nfsstat4 CreateAs(const AuthSys& cred, const std::string& name) {
    v4_.set_cred(cred);
    std::string fh;
    stateid4 sid;
    nfsstat4 s = v4_.OpenFile(rootfh_, name, kRead | kWrite, /*create=*/true, &fh, &sid);
    if (s == NFS4_OK) s = v4_.CloseFile(fh, sid);
    return s;
  }
  // OPEN `name` for `access` as `cred`, READ or WRITE it; the first failing status.
  nfsstat4 ReadAs(const AuthSys& cred, const std::string& name, std::string* data) {
    v4_.set_cred(cred);
    std::string fh;
    stateid4 sid;
    nfsstat4 s = v4_.OpenFile(rootfh_, name, kRead, false, &fh, &sid);
    if (s != NFS4_OK) return s;
    s = v4_.ReadFile(fh, sid, 0, 100, data);
    v4_.CloseFile(fh, sid);
    return s;
  }

  TempDir root_;
  std::unique_ptr<ServerProcess> server_;
  WireConn conn_;
  Nfs4Wire v4_{&conn_};
  std::string rootfh_;
};

TEST_F(Nfs4SecurityTest, RootSquashMapsUid0ToAnonymousOnDisk) {
  StartWith("rw");  // root_squash is the default
  ASSERT_EQ(CreateAs(Uid(0, 0), "by-root"), NFS4_OK);
  Owner st = Stat(root_.Sub("by-root"));
  ASSERT_TRUE(st.ok);
  EXPECT_EQ(st.uid, 65534u);
  EXPECT_EQ(st.gid, 65534u);
  ASSERT_EQ(CreateAs(Uid(1000, 1000), "by-1000"), NFS4_OK);
  st = Stat(root_.Sub("by-1000"));
  EXPECT_EQ(st.uid, 1000u);
  EXPECT_EQ(st.gid, 1000u);
}

TEST_F(Nfs4SecurityTest, RootSquashAlsoAppliesToPermissionChecks) {
  ASSERT_TRUE(WriteFile(root_.Sub("private"), "secret"));
  ASSERT_EQ(chown(root_.Sub("private").c_str(), 1000, 1000), 0);
  ASSERT_EQ(chmod(root_.Sub("private").c_str(), 0600), 0);
  StartWith("rw,root_squash");
  std::string data;
  EXPECT_EQ(ReadAs(Uid(0, 0), "private", &data), NFS4ERR_ACCESS)
      << "squashed root must not open a 0600 file of uid 1000 for reading";
  EXPECT_TRUE(data.empty());
}

TEST_F(Nfs4SecurityTest, NoRootSquashKeepsUid0) {
  StartWith("rw,no_root_squash");
  ASSERT_EQ(CreateAs(Uid(0, 0), "by-root"), NFS4_OK);
  Owner st = Stat(root_.Sub("by-root"));
  ASSERT_TRUE(st.ok);
  EXPECT_EQ(st.uid, 0u);
  EXPECT_EQ(st.gid, 0u);
}

TEST_F(Nfs4SecurityTest, AllSquashMapsEveryUidToAnonuid) {
  StartWith("rw,all_squash,anonuid=1234,anongid=1234");
  ASSERT_EQ(CreateAs(Uid(0, 0), "by-root"), NFS4_OK);
  ASSERT_EQ(CreateAs(Uid(1000, 1000), "by-1000"), NFS4_OK);
  ASSERT_EQ(CreateAs(Uid(4321, 99), "by-4321"), NFS4_OK);
  for (const char* f : {"by-root", "by-1000", "by-4321"}) {
    Owner st = Stat(root_.Sub(f));
    ASSERT_TRUE(st.ok) << f;
    EXPECT_EQ(st.uid, 1234u) << f;
    EXPECT_EQ(st.gid, 1234u) << f;
  }
}

TEST_F(Nfs4SecurityTest, ReadOnlyExportRefusesEveryModificationWithRofs) {
  ASSERT_TRUE(WriteFile(root_.Sub("file"), "original"));
  ASSERT_EQ(mkdir(root_.Sub("dir").c_str(), 0755), 0);
  const mode_t mode_before = Stat(root_.Sub("file")).mode;
  StartWith("ro,no_root_squash");
  std::string fh;
  stateid4 sid;
  EXPECT_EQ(v4_.OpenFile(rootfh_, "file", kRead | kWrite, false, &fh, &sid), NFS4ERR_ROFS);
  EXPECT_EQ(v4_.OpenFile(rootfh_, "new", kRead | kWrite, true, &fh, &sid), NFS4ERR_ROFS);
  const auto one = [&](auto add) {
    Nfs4Ops ops;
    ops.PutFh(rootfh_);
    add(ops);
    Nfs4Reply r;
    return v4_.Compound(ops, &r) ? r.status() : NFS4ERR_SERVERFAULT;
  };
  EXPECT_EQ(one([](Nfs4Ops& o) { o.Mkdir("newdir", 0755); }), NFS4ERR_ROFS);
  EXPECT_EQ(one([](Nfs4Ops& o) { o.Remove("file"); }), NFS4ERR_ROFS);
  EXPECT_EQ(one([](Nfs4Ops& o) { o.SaveFh().Rename("file", "moved"); }), NFS4ERR_ROFS);
  stateid4 anonymous{};
  EXPECT_EQ(one([&](Nfs4Ops& o) { o.Lookup("file").SetAttrMode(anonymous, 0600); }),
            NFS4ERR_ROFS);

  // Reading still works, and nothing changed on disk.
  ASSERT_EQ(v4_.OpenFile(rootfh_, "file", kRead, false, &fh, &sid), NFS4_OK);
  std::string data;
  ASSERT_EQ(v4_.ReadFile(fh, sid, 0, 100, &data), NFS4_OK);
  EXPECT_EQ(data, "original");
  EXPECT_EQ(v4_.WriteFile(fh, sid, 0, "changed!"), NFS4ERR_ROFS);
  EXPECT_EQ(v4_.CloseFile(fh, sid), NFS4_OK);
  EXPECT_EQ(ReadFile(root_.Sub("file")), "original");
  EXPECT_EQ(Stat(root_.Sub("file")).mode, mode_before);
  EXPECT_FALSE(Stat(root_.Sub("new")).ok);
  EXPECT_FALSE(Stat(root_.Sub("newdir")).ok);
  EXPECT_FALSE(Stat(root_.Sub("moved")).ok);
}

TEST_F(Nfs4SecurityTest, HostWithoutMatchingRuleSeesNoExportAndItsHandlesAreRefused) {
  // First an exports file that admits 127.0.0.1: the handle of the export.
  TempDir cfg("localnfs-cfg");
  const std::string exports = cfg.Sub("exports");
  ASSERT_TRUE(WriteFile(exports, root_.path() + " 127.0.0.1(rw,no_root_squash)\n"));
  ServerProcess srv({"--exports", exports});
  ASSERT_TRUE(srv.Start());
  std::string fh;
  {
    WireConn c;
    ASSERT_TRUE(c.Connect(srv.nfs_port()));
    Nfs4Wire v4(&c);
    ASSERT_TRUE(v4.Establish("before")) << v4.error();
    ASSERT_EQ(v4.LookupPath(root_.path(), &fh), NFS4_OK);
  }
  // Now only 10.1.2.3 may use it; the same state dir keeps the handle valid.
  ASSERT_TRUE(WriteFile(exports, root_.path() + " 10.1.2.3(rw,no_root_squash)\n"));
  ASSERT_TRUE(srv.Restart());
  WireConn c;
  ASSERT_TRUE(c.Connect(srv.nfs_port()));
  Nfs4Wire v4(&c);
  ASSERT_TRUE(v4.Establish("after")) << v4.error();
  std::string found;
  EXPECT_EQ(v4.LookupPath(root_.path(), &found), NFS4ERR_NOENT)
      << "the pseudo file system must not show an export the client may not use";
  Nfs4Ops ops;
  ops.PutFh(fh).Lookup("x");
  Nfs4Reply r;
  ASSERT_TRUE(v4.Compound(ops, &r)) << r.error;
  EXPECT_EQ(r.status(), NFS4ERR_ACCESS);
  EXPECT_EQ(r.last_op(), OP_PUTFH);
  std::string xfh;
  stateid4 sid;
  EXPECT_EQ(v4.OpenFile(fh, "x", kRead | kWrite, true, &xfh, &sid), NFS4ERR_ACCESS);
  EXPECT_FALSE(Stat(root_.Sub("x")).ok);
}

TEST_F(Nfs4SecurityTest, Mode0600FileOpensForItsOwnerOnly) {
  ASSERT_TRUE(WriteFile(root_.Sub("mine"), "owner data"));
  ASSERT_EQ(chown(root_.Sub("mine").c_str(), 1000, 1000), 0);
  ASSERT_EQ(chmod(root_.Sub("mine").c_str(), 0600), 0);
  StartWith("rw");
  std::string fh, data;
  stateid4 sid;
  v4_.set_cred(Uid(2000, 2000));
  EXPECT_EQ(v4_.OpenFile(rootfh_, "mine", kRead, false, &fh, &sid), NFS4ERR_ACCESS);
  EXPECT_EQ(v4_.OpenFile(rootfh_, "mine", kWrite, false, &fh, &sid), NFS4ERR_ACCESS);
  // Nor with the file's group as a supplementary gid (mode 0600).
  v4_.set_cred(Uid(2000, 2000, {1000}));
  EXPECT_EQ(v4_.OpenFile(rootfh_, "mine", kRead, false, &fh, &sid), NFS4ERR_ACCESS);
  // ACCESS says the same; the handle itself is no secret.
  std::string mine;
  ASSERT_EQ(v4_.LookupPath(root_.path() + "/mine", &mine), NFS4_OK);
  uint32_t granted = 0xffffffff;
  ASSERT_EQ(v4_.AccessOf(mine, ACCESS4_READ | ACCESS4_MODIFY, &granted), NFS4_OK);
  EXPECT_EQ(granted & (ACCESS4_READ | ACCESS4_MODIFY), 0u);
  // Even with a stateid of its own for another file, uid 2000 cannot READ it: the
  // anonymous stateid is checked against the caller's permissions too.
  stateid4 anonymous{};
  EXPECT_EQ(v4_.ReadFile(mine, anonymous, 0, 100, &data), NFS4ERR_ACCESS);

  EXPECT_EQ(ReadAs(Uid(1000, 1000), "mine", &data), NFS4_OK);
  EXPECT_EQ(data, "owner data");
  ASSERT_EQ(v4_.AccessOf(mine, ACCESS4_READ | ACCESS4_MODIFY, &granted), NFS4_OK);
  EXPECT_EQ(granted & (ACCESS4_READ | ACCESS4_MODIFY), ACCESS4_READ | ACCESS4_MODIFY);
}

TEST_F(Nfs4SecurityTest, GroupPermissionComesFromAuthSysSupplementaryGids) {
  ASSERT_TRUE(WriteFile(root_.Sub("grp"), "group data"));
  ASSERT_EQ(chown(root_.Sub("grp").c_str(), 1000, 3000), 0);
  ASSERT_EQ(chmod(root_.Sub("grp").c_str(), 0640), 0);
  StartWith("rw");
  std::string data;
  EXPECT_EQ(ReadAs(Uid(2000, 2000), "grp", &data), NFS4ERR_ACCESS);
  EXPECT_EQ(ReadAs(Uid(2000, 2000, {3000}), "grp", &data), NFS4_OK);
  EXPECT_EQ(data, "group data");
}

}  // namespace
}  // namespace localnfs::testing
