// tests/posix_semantics_test.cc — what third-party suites and hostile clients found in
// the NFSv3 core (issue 15), proven over the wire against a real localnfsd:
//  * READDIR and READDIRPLUS list "." and ".." (with working cookies and the fileids
//    knfsd gives), and the FUSE mount still shows each once;
//  * a non-root user's cross-directory RENAME and LINK work when the second
//    directory's handle is not in the file cache (every handle is resolved before the
//    credentials are switched);
//  * names with an embedded NUL (or a '/') are refused, never cut short;
//  * a bind mount inside an export is not entered (LOOKUP, "..", READDIRPLUS, CREATE
//    over it) and a handle of an object reached through one does not resolve.
// Runs as root (fixtures owned by other uids, bind mounts); skips otherwise. The whole
// binary runs in a private mount namespace (MountNamespace below), so every bind mount
// it makes disappears with it, also when a test crashes.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "client_localio/test_util.h"
#include "common/unique_fd.h"
#include "export_cache/export.h"
#include "gtest/gtest.h"
#include "server/policy/fhandle.h"
#include "tests/support/localnfsd.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

// Made once before any test (and so before any thread): a mount namespace of our own,
// private all the way down, which the servers started by the tests inherit.
class MountNamespace : public ::testing::Environment {
 public:
  void SetUp() override {
    if (geteuid() != 0) return;
    if (unshare(CLONE_NEWNS) != 0) {
      error_ = std::string("unshare(CLONE_NEWNS): ") + strerror(errno);
    } else if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      error_ = std::string("mount --make-rprivate /: ") + strerror(errno);
    } else {
      ok_ = true;
    }
  }
  static bool ok() { return ok_; }
  static const std::string& error() { return error_; }

 private:
  static inline bool ok_ = false;
  static inline std::string error_;
};
[[maybe_unused]] ::testing::Environment* const kMountNamespace =
    ::testing::AddGlobalTestEnvironment(new MountNamespace);

AuthSys User(uint32_t uid, uint32_t gid) {
  AuthSys a;
  a.uid = uid;
  a.gid = gid;
  return a;
}

struct LocalStat {
  bool ok = false;
  struct stat st {};
};
LocalStat LStat(const std::string& path) {
  LocalStat r;
  r.ok = lstat(path.c_str(), &r.st) == 0;
  return r;
}

// One call; the nfsstat3 (or Nfs3Wire::kRpcFailed), with the rest of the reply in *rest.
uint32_t Call(WireConn& conn, const AuthSys& cred, uint32_t proc, const XdrOut& args,
              XdrIn* rest = nullptr) {
  RpcReply r = conn.Call(kNfsProg, 3, proc, args.bytes(), &cred);
  if (!r.ok || r.reply_stat != 0 || r.accept_stat != kSuccess) return Nfs3Wire::kRpcFailed;
  XdrIn in(r.results);
  uint32_t st = 0;
  if (!in.U32(&st)) return Nfs3Wire::kRpcFailed;
  if (rest) *rest = std::move(in);
  return st;
}

struct DirEntry {
  std::string name;
  uint64_t fileid = 0;
  uint64_t cookie = 0;
  bool has_attr = false;  // READDIRPLUS
  Fattr attr;
  bool has_fh = false;
  std::string fh;
};

// One READDIR (plus=false) or READDIRPLUS call from `cookie`; `count` bounds the reply.
uint32_t ReaddirOnce(WireConn& conn, const AuthSys& cred, const std::string& dir, bool plus,
                     uint64_t cookie, std::string* verf, uint32_t count,
                     std::vector<DirEntry>* out, bool* eof) {
  XdrOut a;
  a.Opaque(dir).U64(cookie).Fixed(verf->empty() ? std::string(8, '\0') : *verf).U32(count);
  if (plus) a.U32(count);  // maxcount
  XdrIn in("");
  const uint32_t st = Call(conn, cred, plus ? NFS3_READDIRPLUS : NFS3_READDIR, a, &in);
  if (st != kNfs3Ok) return st;
  uint64_t v = 0;  // the cookie verifier, sent back as it came
  if (!ReadPostOpAttr(in, nullptr) || !in.U64(&v)) return Nfs3Wire::kRpcFailed;
  verf->assign(8, '\0');
  for (int i = 0; i < 8; ++i) (*verf)[i] = static_cast<char>(v >> (56 - 8 * i));
  for (;;) {
    uint32_t follows = 0;
    if (!in.U32(&follows)) return Nfs3Wire::kRpcFailed;
    if (!follows) break;
    DirEntry e;
    if (!in.U64(&e.fileid) || !in.Opaque(&e.name, 1024) || !in.U64(&e.cookie))
      return Nfs3Wire::kRpcFailed;
    if (plus) {
      uint32_t fh_follows = 0;
      if (!ReadPostOpAttr(in, &e.attr, &e.has_attr) || !in.U32(&fh_follows))
        return Nfs3Wire::kRpcFailed;
      e.has_fh = fh_follows != 0;
      if (e.has_fh && !in.Opaque(&e.fh, 64)) return Nfs3Wire::kRpcFailed;
    }
    out->push_back(std::move(e));
  }
  uint32_t e = 0;
  if (!in.U32(&e)) return Nfs3Wire::kRpcFailed;
  *eof = e != 0;
  return st;
}

// A whole listing from `cookie`, `count` bytes per reply.
uint32_t Readdir(WireConn& conn, const AuthSys& cred, const std::string& dir, bool plus,
                 std::vector<DirEntry>* out, uint64_t cookie = 0, uint32_t count = 8192,
                 int* calls = nullptr) {
  std::string verf;
  bool eof = false;
  int n = 0;
  while (!eof) {
    const size_t before = out->size();
    const uint32_t st = ReaddirOnce(conn, cred, dir, plus, cookie, &verf, count, out, &eof);
    if (st != kNfs3Ok) return st;
    ++n;
    if (out->size() == before && !eof) return Nfs3Wire::kRpcFailed;
    if (out->size() > before) cookie = out->back().cookie;
    if (n > 10000) return Nfs3Wire::kRpcFailed;
  }
  if (calls) *calls = n;
  return kNfs3Ok;
}

const DirEntry* Find(const std::vector<DirEntry>& list, const std::string& name) {
  for (const DirEntry& e : list)
    if (e.name == name) return &e;
  return nullptr;
}

std::vector<std::string> Names(const std::vector<DirEntry>& list) {
  std::vector<std::string> names;
  for (const DirEntry& e : list) names.push_back(e.name);
  return names;
}

uint32_t Link(WireConn& conn, const AuthSys& cred, const std::string& file,
              const std::string& dir, const std::string& name) {
  return Call(conn, cred, NFS3_LINK, XdrOut().Opaque(file).Opaque(dir).Str(name));
}
uint32_t Symlink(WireConn& conn, const AuthSys& cred, const std::string& dir,
                 const std::string& name, const std::string& target) {
  return Call(conn, cred, NFS3_SYMLINK, XdrOut().Opaque(dir).Str(name).Sattr().Str(target));
}
uint32_t MknodFifo(WireConn& conn, const AuthSys& cred, const std::string& dir,
                   const std::string& name) {
  constexpr uint32_t kNf3Fifo = 7;
  return Call(conn, cred, NFS3_MKNOD, XdrOut().Opaque(dir).Str(name).U32(kNf3Fifo).Sattr(0644));
}
uint32_t Rmdir(WireConn& conn, const AuthSys& cred, const std::string& dir,
               const std::string& name) {
  return Call(conn, cred, NFS3_RMDIR, XdrOut().Opaque(dir).Str(name));
}
// CREATE UNCHECKED with no attributes.
uint32_t CreateUnchecked(WireConn& conn, const AuthSys& cred, const std::string& dir,
                         const std::string& name, std::string* fh) {
  XdrIn in("");
  const uint32_t st =
      Call(conn, cred, NFS3_CREATE, XdrOut().Opaque(dir).Str(name).U32(0).Sattr(), &in);
  uint32_t follows = 0;
  if (st == kNfs3Ok && in.U32(&follows) && follows) in.Opaque(fh, 64);
  return st;
}

class PosixSemanticsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (fixtures of other uids, bind mounts)";
  }
  // Starts a server exporting root_ (rw,no_root_squash + `extra` flags) and mounts it.
  void Start(std::vector<std::string> extra = {}) {
    ASSERT_TRUE(StartServerAndMount(root_.path(), std::move(extra), &server_, &rootfh_));
    ASSERT_TRUE(conn_.Connect(server_->nfs_port()));
  }

  TempDir root_;
  std::unique_ptr<ServerProcess> server_;
  WireConn conn_;
  std::string rootfh_;
  const AuthSys root_cred_{};  // {}: clang 14 will not default-initialise a const member otherwise
};

// --- 1: "." and ".." ------------------------------------------------------------------

TEST_F(PosixSemanticsTest, ReaddirListsDotAndDotDotWithCookiesAndFileids) {
  ASSERT_EQ(mkdir(root_.Sub("sub").c_str(), 0755), 0);
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(WriteFile(root_.Sub("file-" + std::to_string(i)), ""));
    ASSERT_TRUE(WriteFile(root_.Sub("sub/s-" + std::to_string(i)), ""));
  }
  Start();
  const uint64_t root_ino = LStat(root_.path()).st.st_ino;
  const uint64_t sub_ino = LStat(root_.Sub("sub")).st.st_ino;
  Nfs3Wire nfs(&conn_);
  std::string subfh;
  ASSERT_EQ(nfs.Lookup(rootfh_, "sub", &subfh), kNfs3Ok);

  for (const bool plus : {false, true}) {
    SCOPED_TRACE(plus ? "READDIRPLUS" : "READDIR");
    // Small replies: several calls, each resuming at the cookie of the last entry.
    std::vector<DirEntry> all;
    int calls = 0;
    ASSERT_EQ(Readdir(conn_, root_cred_, rootfh_, plus, &all, 0, 600, &calls), kNfs3Ok);
    EXPECT_GT(calls, 2);
    std::vector<std::string> names = Names(all);
    std::sort(names.begin(), names.end());
    EXPECT_TRUE(std::adjacent_find(names.begin(), names.end()) == names.end())
        << "a name listed twice";
    EXPECT_EQ(names.size(), 43u);  // ".", "..", sub, 40 files
    const DirEntry* dot = Find(all, ".");
    const DirEntry* dotdot = Find(all, "..");
    ASSERT_NE(dot, nullptr) << "no \".\" in the listing of the export root";
    ASSERT_NE(dotdot, nullptr) << "no \"..\" in the listing of the export root";
    EXPECT_EQ(dot->fileid, root_ino);
    EXPECT_EQ(dotdot->fileid, root_ino) << "\"..\" of the export root is the root itself";
    if (plus) {
      // ".": the root's attributes and handle; ".." of the export root: neither (knfsd).
      ASSERT_TRUE(dot->has_attr && dot->has_fh);
      EXPECT_EQ(dot->attr.fileid, root_ino);
      EXPECT_EQ(Hex(dot->fh), Hex(rootfh_));
      EXPECT_FALSE(dotdot->has_attr);
      EXPECT_FALSE(dotdot->has_fh);
    }

    // Every cookie resumes right after its entry, those of "." and ".." included.
    for (size_t i = 0; i < all.size(); ++i) {
      if (all[i].name != "." && all[i].name != ".." && i % 10 != 0) continue;
      std::vector<DirEntry> rest;
      ASSERT_EQ(Readdir(conn_, root_cred_, rootfh_, plus, &rest, all[i].cookie), kNfs3Ok);
      std::vector<std::string> want;
      for (size_t j = i + 1; j < all.size(); ++j) want.push_back(all[j].name);
      EXPECT_EQ(Names(rest), want) << "resuming after " << all[i].name;
    }

    // Below the root, ".." is the parent.
    std::vector<DirEntry> sub;
    ASSERT_EQ(Readdir(conn_, root_cred_, subfh, plus, &sub), kNfs3Ok);
    EXPECT_EQ(sub.size(), 42u);
    dot = Find(sub, ".");
    dotdot = Find(sub, "..");
    ASSERT_TRUE(dot != nullptr && dotdot != nullptr);
    EXPECT_EQ(dot->fileid, sub_ino);
    EXPECT_EQ(dotdot->fileid, root_ino);
    if (plus) {
      ASSERT_TRUE(dot->has_attr && dot->has_fh && dotdot->has_attr && dotdot->has_fh);
      EXPECT_EQ(Hex(dot->fh), Hex(subfh));
      EXPECT_EQ(dot->attr.fileid, sub_ino);
      EXPECT_EQ(Hex(dotdot->fh), Hex(rootfh_));
      EXPECT_EQ(dotdot->attr.fileid, root_ino);
    }
  }
}

// The FUSE mount makes up its own "." and ".." and must not list the server's as well.
class FuseDotEntriesTest : public client::testing::FuseMountFixture {
 protected:
  FuseDotEntriesTest() : FuseMountFixture("lnfs-dots-export", "lnfs-dots-mnt") {}
};

TEST_F(FuseDotEntriesTest, FuseMountListsDotAndDotDotOnce) {
  ASSERT_EQ(mkdir((export_.path() + "/sub").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(export_.path() + "/f", "x"));
  ASSERT_TRUE(WriteFile(export_.path() + "/sub/g", "y"));
  ASSERT_TRUE(MountDaemon());
  std::string out;
  ASSERT_EQ(client::testing::RunCommand(
                {"sh", "-ec", "cd '" + mnt_.path() + "'; ls -a1; echo --; ls -a1 sub; echo --; "
                              "ls -la sub | grep -c ' \\.\\.\\?$'"},
                &out, std::chrono::seconds(60)),
            0)
      << out;
  EXPECT_EQ(out, ".\n..\nf\nsub\n--\n.\n..\ng\n--\n2\n");
}

// --- 3: every handle resolved before the credentials switch ---------------------------

TEST_F(PosixSemanticsTest, CrossDirectoryRenameAndLinkAsUserWithColdSecondHandle) {
  for (const char* d : {"d1", "d2"}) {
    ASSERT_EQ(mkdir(root_.Sub(d).c_str(), 0755), 0);
    ASSERT_EQ(chown(root_.Sub(d).c_str(), 1000, 1000), 0);
  }
  for (const char* f : {"d1/f", "d2/l"}) {
    ASSERT_TRUE(WriteFile(root_.Sub(f), "data"));
    ASSERT_EQ(chown(root_.Sub(f).c_str(), 1000, 1000), 0);
  }
  // One cached object: each handle resolved evicts the one before, so the second
  // directory of a request is never in the cache when the request starts.
  TempDir other;
  Start({"--file-cache-size", "1", "--export", other.path() + ":rw,no_root_squash"});
  const AuthSys user_cred = User(1000, 1000);
  Nfs3Wire user(&conn_, user_cred);
  std::string d1, d2, l;
  ASSERT_EQ(user.Lookup(rootfh_, "d1", &d1), kNfs3Ok);
  ASSERT_EQ(user.Lookup(rootfh_, "d2", &d2), kNfs3Ok);

  // RENAME resolves d1 (evicting d2), then d2.
  EXPECT_EQ(user.Rename(d1, "f", d2, "g"), kNfs3Ok);
  EXPECT_FALSE(LStat(root_.Sub("d1/f")).ok);
  EXPECT_EQ(ReadFile(root_.Sub("d2/g")), "data");

  // LINK resolves the file l (cached by its LOOKUP, which evicted d2), then d1.
  ASSERT_EQ(user.Lookup(d2, "l", &l), kNfs3Ok);
  EXPECT_EQ(Link(conn_, user_cred, l, d1, "h"), kNfs3Ok);
  EXPECT_EQ(ReadFile(root_.Sub("d1/h")), "data");
  EXPECT_EQ(LStat(root_.Sub("d2/l")).st.st_nlink, 2u);

  // A second handle that is bad, or of another export, fails the request before
  // anything is done.
  constexpr uint32_t kNfs3ErrXdev = 18;
  std::string other_root;
  ASSERT_EQ(user.Mount(other.path(), &other_root), 0u);
  EXPECT_EQ(user.Rename(d2, "l", std::string(rootfh_.size(), '\0'), "x"), kNfs3ErrBadhandle);
  EXPECT_EQ(user.Rename(d2, "l", other_root, "x"), kNfs3ErrXdev);
  EXPECT_EQ(Link(conn_, user_cred, l, other_root, "x"), kNfs3ErrXdev);
  EXPECT_TRUE(LStat(root_.Sub("d2/l")).ok);
  EXPECT_FALSE(LStat(other.Sub("x")).ok);
}

// --- 5: names with an embedded NUL ----------------------------------------------------

TEST_F(PosixSemanticsTest, NamesWithNulOrSlashAreRefusedNotCutShort) {
  ASSERT_TRUE(WriteFile(root_.Sub("keep.txt"), "keep"));
  ASSERT_EQ(mkdir(root_.Sub("keepdir").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(root_.Sub("a").c_str(), 0755), 0);
  Start();
  Nfs3Wire nfs(&conn_);
  const std::string nul_keep("keep.txt\0.bak", 13);
  const std::string nul_x("x\0y", 3);
  std::string fh, keepfh;
  ASSERT_EQ(nfs.Lookup(rootfh_, "keep.txt", &keepfh), kNfs3Ok);

  EXPECT_EQ(nfs.Lookup(rootfh_, nul_keep, &fh), kNfs3ErrAcces);
  EXPECT_EQ(nfs.Remove(rootfh_, nul_keep), kNfs3ErrAcces);
  EXPECT_EQ(Rmdir(conn_, root_cred_, rootfh_, std::string("keepdir\0x", 9)), kNfs3ErrAcces);
  EXPECT_EQ(nfs.Create(rootfh_, nul_x, 0644, &fh), kNfs3ErrAcces);
  EXPECT_EQ(nfs.Mkdir(rootfh_, nul_x, 0755, &fh), kNfs3ErrAcces);
  EXPECT_EQ(Symlink(conn_, root_cred_, rootfh_, nul_x, "target"), kNfs3ErrAcces);
  EXPECT_EQ(MknodFifo(conn_, root_cred_, rootfh_, nul_x), kNfs3ErrAcces);
  EXPECT_EQ(nfs.Rename(rootfh_, nul_keep, rootfh_, "moved"), kNfs3ErrAcces);
  EXPECT_EQ(nfs.Rename(rootfh_, "keep.txt", rootfh_, nul_x), kNfs3ErrAcces);
  EXPECT_EQ(Link(conn_, root_cred_, keepfh, rootfh_, nul_x), kNfs3ErrAcces);
  // A symlink target cannot hold a NUL either (knfsd: INVAL).
  EXPECT_EQ(Symlink(conn_, root_cred_, rootfh_, "s", std::string("abc\0def", 7)),
            kNfs3ErrInval);
  // '/' in a name: never a path below the directory.
  EXPECT_EQ(nfs.Create(rootfh_, "a/b", 0644, &fh), kNfs3ErrAcces);
  EXPECT_EQ(nfs.Lookup(rootfh_, "a/..", &fh), kNfs3ErrAcces);

  // Nothing happened on disk.
  EXPECT_EQ(ReadFile(root_.Sub("keep.txt")), "keep");
  EXPECT_TRUE(LStat(root_.Sub("keepdir")).ok);
  EXPECT_FALSE(LStat(root_.Sub("x")).ok);
  EXPECT_FALSE(LStat(root_.Sub("moved")).ok);
  EXPECT_FALSE(LStat(root_.Sub("s")).ok);
  EXPECT_FALSE(LStat(root_.Sub("a/b")).ok);
  EXPECT_TRUE(server_->WaitForStderr("refused a name with a NUL or '/'"));

  // MOUNT's dirpath: a NUL names no directory (cut short it would name the export).
  constexpr uint32_t kMnt3ErrInval = 22;
  std::string mfh;
  EXPECT_EQ(nfs.Mount(root_.path() + std::string("\0junk", 5), &mfh), kMnt3ErrInval);
  EXPECT_TRUE(server_->WaitForStderr("refused a path with a NUL"));
  EXPECT_EQ(nfs.Mount(root_.path(), &mfh), 0u);
}

// --- 6: bind mounts inside an export --------------------------------------------------

// A bind mount for the test, undone when it goes out of scope.
class BindMount {
 public:
  BindMount(const std::string& from, const std::string& to) : to_(to) {
    ok_ = mount(from.c_str(), to.c_str(), nullptr, MS_BIND, nullptr) == 0;
    if (!ok_) error_ = strerror(errno);
  }
  ~BindMount() {
    if (ok_) umount2(to_.c_str(), MNT_DETACH);
  }
  ::testing::AssertionResult ok() const {
    if (ok_) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "bind mount on " << to_ << ": " << error_;
  }

 private:
  std::string to_;
  bool ok_ = false;
  std::string error_;
};

class BindMountTest : public PosixSemanticsTest {
 protected:
  void SetUp() override {
    PosixSemanticsTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_TRUE(MountNamespace::ok()) << MountNamespace::error();
    // outside/ is on the same file system as the export (same st_dev), next to it.
    exp_ = root_.Sub("exp");
    out_ = root_.Sub("outside");
    ASSERT_EQ(mkdir(exp_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(out_.c_str(), 0755), 0);
    ASSERT_TRUE(WriteFile(out_ + "/secret.txt", "top secret"));
    ASSERT_TRUE(WriteFile(exp_ + "/inside.txt", "inside"));
    ASSERT_EQ(mkdir((exp_ + "/sub").c_str(), 0755), 0);
    ASSERT_TRUE(WriteFile(exp_ + "/f", ""));
    ASSERT_EQ(mkdir((exp_ + "/a").c_str(), 0755), 0);
    ASSERT_EQ(mkdir((exp_ + "/a/b").c_str(), 0755), 0);
  }
  // The export's directories mounted over by outside/, and its file by secret.txt.
  void BindOverSubAndF() {
    sub_mount_ = std::make_unique<BindMount>(out_, exp_ + "/sub");
    ASSERT_TRUE(sub_mount_->ok());
    f_mount_ = std::make_unique<BindMount>(out_ + "/secret.txt", exp_ + "/f");
    ASSERT_TRUE(f_mount_->ok());
  }

  std::string exp_, out_;
  // Declared after the server (in the base): unmounted before it is stopped.
  std::unique_ptr<BindMount> sub_mount_, f_mount_, a_mount_;
};

TEST_F(BindMountTest, LookupReaddirplusAndCreateDoNotEnterABindMount) {
  BindOverSubAndF();
  ASSERT_TRUE(StartServerAndMount(exp_, {}, &server_, &rootfh_));
  ASSERT_TRUE(conn_.Connect(server_->nfs_port()));
  Nfs3Wire nfs(&conn_);
  std::string fh, afh, bfh;
  // Not entered, like another file system below the export (knfsd without crossmnt).
  EXPECT_EQ(nfs.Lookup(rootfh_, "sub", &fh), kNfs3ErrAcces);
  EXPECT_EQ(nfs.Lookup(rootfh_, "f", &fh), kNfs3ErrAcces);
  // CREATE UNCHECKED of the existing name must not hand out the mounted file.
  EXPECT_EQ(CreateUnchecked(conn_, root_cred_, rootfh_, "f", &fh), kNfs3ErrAcces);
  // MNT of the mount point was refused already.
  EXPECT_NE(nfs.Mount(exp_ + "/sub", &fh), 0u);
  // Listed, but without attributes or a handle.
  std::vector<DirEntry> list;
  ASSERT_EQ(Readdir(conn_, root_cred_, rootfh_, /*plus=*/true, &list), kNfs3Ok);
  for (const char* name : {"sub", "f"}) {
    const DirEntry* e = Find(list, name);
    ASSERT_NE(e, nullptr) << name;
    EXPECT_FALSE(e->has_attr) << name;
    EXPECT_FALSE(e->has_fh) << name;
  }
  const DirEntry* inside = Find(list, "inside.txt");
  ASSERT_NE(inside, nullptr);
  EXPECT_TRUE(inside->has_attr && inside->has_fh);

  // A directory mounted over while a client holds a handle below it: ".." from
  // there leads onto the mount, which is not entered either.
  ASSERT_EQ(nfs.Lookup(rootfh_, "a", &afh), kNfs3Ok);
  ASSERT_EQ(nfs.Lookup(afh, "b", &bfh), kNfs3Ok);
  a_mount_ = std::make_unique<BindMount>(out_, exp_ + "/a");
  ASSERT_TRUE(a_mount_->ok());
  EXPECT_EQ(nfs.Lookup(bfh, "..", &fh), kNfs3ErrAcces);
  list.clear();
  ASSERT_EQ(Readdir(conn_, root_cred_, bfh, /*plus=*/true, &list), kNfs3Ok);
  const DirEntry* dotdot = Find(list, "..");
  ASSERT_NE(dotdot, nullptr);
  EXPECT_FALSE(dotdot->has_attr);
  EXPECT_FALSE(dotdot->has_fh);
  // The export itself still works.
  std::string data;
  ASSERT_EQ(nfs.Lookup(rootfh_, "inside.txt", &fh), kNfs3Ok);
  ASSERT_EQ(nfs.Read(fh, 0, 100, &data), kNfs3Ok);
  EXPECT_EQ(data, "inside");
}

// A handle of an object reached through a bind mount does not resolve: an
// unprivileged server finds objects by name (its cache and its bounded search of the
// export), and a name below the export can lead onto a bind mount.
TEST_F(BindMountTest, HandleOfAnObjectBehindABindMountIsStale) {
  ASSERT_EQ(chown(exp_.c_str(), 1000, 1000), 0);
  BindOverSubAndF();
  ServerOptions options;
  options.args = {"--export", exp_ + ":rw"};
  options.run_as_uid = 1000;
  options.run_as_gid = 1000;
  server_ = std::make_unique<ServerProcess>(options);
  ASSERT_TRUE(server_->Start());
  ASSERT_TRUE(conn_.Connect(server_->nfs_port()));
  Nfs3Wire nfs(&conn_, User(1000, 1000));
  ASSERT_EQ(nfs.Mount(exp_, &rootfh_), 0u);

  // Handles as the server makes them, with its key: of the bind-mounted directory
  // and file, and (the control) of a file of the export.
  auto key = server::HandleKey::LoadOrCreate(server_->state_dir());
  ASSERT_TRUE(key.ok()) << key.status();
  const uint32_t export_id = exports::ExportIdForPath(exp_);
  auto handle_of = [&](const std::string& path) {
    UniqueFd dir(open(path.c_str(), O_PATH | O_CLOEXEC));
    EXPECT_TRUE(dir) << path;
    auto kh = server::KernelHandleOfFd(dir.get());
    EXPECT_TRUE(kh.ok()) << kh.status();
    auto wire = key->Encode(export_id, kh.ok() ? *kh : server::KernelHandle{});
    EXPECT_TRUE(wire.ok()) << wire.status();
    return wire.ok() ? *wire : std::string();
  };
  const std::string inside = handle_of(exp_ + "/inside.txt");
  const std::string outside_dir = handle_of(out_);
  const std::string secret = handle_of(out_ + "/secret.txt");

  std::string data;
  ASSERT_EQ(nfs.Read(inside, 0, 100, &data), kNfs3Ok) << "the control handle must resolve";
  EXPECT_EQ(data, "inside");
  EXPECT_EQ(nfs.Getattr(outside_dir), kNfs3ErrStale);
  EXPECT_EQ(nfs.Read(secret, 0, 100, &data), kNfs3ErrStale);
  EXPECT_NE(data, "top secret");
}

}  // namespace
}  // namespace localnfs::testing
