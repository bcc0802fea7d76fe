// server/backend/conformance_test.cc — one suite, every backend: the POSIX backend on a
// temporary directory, the memory backend, and the caching layer over each. What a test
// here checks holds on disk and in memory alike, so a handler test on the memory backend
// proves what it would prove on the real one.
//
// The suite runs twice (server/meson.build): as root — the server switches to each
// caller, uids 1000 and 1001 act as ordinary users — and as uid 1000
// (LOCALNFS_TEST_AS_UID, dropped before any test runs by server_test_environment.cc),
// where the server is unprivileged: objects belong to it, the caller's mode bits are
// checked by the server, and the kernel judges the server's own user. The memory backend
// is configured to model whichever mode the process is in. Expectations that differ between the modes say so.
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/rcu.h"
#include "common/release_queue.h"
#include "common/status.h"
#include "export_cache/export.h"
#include "gtest/gtest.h"
#include "server/backend/backend.h"
#include "server/backend/caching_backend.h"
#include "server/backend/memory_backend.h"
#include "server/backend/posix_backend.h"
#include "server/policy/creds.h"
#include "server/policy/fhandle.h"
#include "server/server_test_runtime.h"

namespace localnfs::server::backend {
namespace {

enum class Kind { kPosix, kCachingPosix, kMemory, kCachingMemory };

std::string KindName(const ::testing::TestParamInfo<Kind>& info) {
  switch (info.param) {
    case Kind::kPosix: return "Posix";
    case Kind::kCachingPosix: return "CachingPosix";
    case Kind::kMemory: return "Memory";
    case Kind::kCachingMemory: return "CachingMemory";
  }
  return "?";
}

Credentials Cred(uint32_t uid, uint32_t gid, std::vector<uint32_t> groups = {}) {
  Credentials c;
  c.uid = uid;
  c.gid = gid;
  for (uint32_t g : groups) c.groups.push_back(g);
  return c;
}

class Recorder : public CommitObserver {
 public:
  void Committed(const CommitRecord& r) override { records.push_back(r); }
  std::vector<CommitRecord> records;
};

class BackendConformanceTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    umask(0);  // as localnfsd
    privileged_ = CanSwitchCredentials();
    me_ = Cred(geteuid(), getegid());
    owner_ = privileged_ ? Cred(1000, 1000) : me_;
    other_ = Cred(1001, 1001);
    char tmpl[] = "/tmp/backendtestXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    ASSERT_EQ(chmod(base_.c_str(), 0755), 0);
    for (const char* name : {"a", "b"}) {
      auto exp = MakeExportedDir(absl::StrCat(base_, "/", name), 0777);
      ASSERT_TRUE(exp.ok()) << exp.status();
      (exp_a_ ? exp_b_ : exp_a_) = *exp;
    }
    ASSERT_NE(exp_a_->id(), exp_b_->id());
    resolver_ = std::make_unique<HandleResolver>();
    resolver_->Start(*exp_a_);
    ASSERT_EQ(resolver_->privileged(), privileged_);
    const Kind kind = GetParam();
    if (kind == Kind::kPosix || kind == Kind::kCachingPosix) {
      inner_ = std::make_unique<PosixBackend>(*resolver_);
    } else {
      MemoryBackendOptions o;
      o.privileged = privileged_;
      o.server_uid = me_.uid;
      o.server_gid = me_.gid;
      o.root_mode = 0777;
      o.root_uid = me_.uid;
      o.root_gid = me_.gid;
      inner_ = std::make_unique<MemoryBackend>(o);
    }
    if (kind == Kind::kCachingPosix || kind == Kind::kCachingMemory) {
      caching_ = std::make_unique<CachingBackend>(*inner_, FileCacheOptions{});
      backend_ = caching_.get();
    } else {
      backend_ = inner_.get();
    }
    backend_->set_commit_observer(&commits_);
    auto root = b().OpenPath(*exp_a_, "");
    ASSERT_TRUE(root.ok()) << root.status();
    root_ = std::move(*root);
    auto root_b = b().OpenPath(*exp_b_, "");
    ASSERT_TRUE(root_b.ok()) << root_b.status();
    root_b_ = std::move(*root_b);
  }

  void TearDown() override {
    root_ = Object();
    root_b_ = Object();
    caching_.reset();
    inner_.reset();
    if (resolver_) resolver_->Shutdown();
    resolver_.reset();
    exp_a_.reset();
    exp_b_.reset();
    DrainReleases();
    ASSERT_EQ(system(absl::StrCat("rm -rf ", base_).c_str()), 0);
  }

  Backend& b() { return *backend_; }
  bool memory() const { return GetParam() == Kind::kMemory || GetParam() == Kind::kCachingMemory; }

  static Caller As(const Credentials& c, bool sync = false) { return Caller{c, sync}; }
  static SetAttrRequest Mode(mode_t mode) {
    SetAttrRequest r;
    r.mode = mode;
    return r;
  }

  // A new regular file / directory, made by `who` (asserts success).
  Object File(const Object& dir, const std::string& name, mode_t mode, const Credentials& who) {
    auto made = b().Create(dir, name, CreateHow::kGuarded, Mode(mode), 0, As(who));
    EXPECT_TRUE(made.ok()) << name << ": " << made.status();
    return made.ok() ? std::move(*made) : Object();
  }
  Object Dir(const Object& dir, const std::string& name, mode_t mode, const Credentials& who) {
    auto made = b().Mkdir(dir, name, Mode(mode), As(who));
    EXPECT_TRUE(made.ok()) << name << ": " << made.status();
    return made.ok() ? std::move(*made) : Object();
  }
  // The object again, with its attributes of now (a new request's resolution).
  Object Fresh(const Object& o) {
    auto r = b().Resolve(o.exp(), o.handle());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::move(*r) : Object();
  }
  Attrs AttrsNow(const Object& o) {
    auto a = b().GetAttr(o);
    EXPECT_TRUE(a.ok()) << a.status();
    return a.ok() ? *a : Attrs();
  }
  absl::Status WriteText(const Object& o, const Credentials& who, const std::string& text,
                         uint64_t offset = 0, Stability stable = Stability::kUnstable) {
    return b().Write(o, who, offset, absl::MakeConstSpan(text.data(), text.size()), stable)
        .status();
  }
  std::string ReadText(const Object& o, const Credentials& who, uint32_t count = 4096,
                       uint64_t offset = 0) {
    std::string buf(count, '\0');
    auto r = b().Read(o, who, offset, absl::MakeSpan(buf.data(), buf.size()));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return "";
    buf.resize(r->count);
    return buf;
  }
  // The whole listing of `dir` from `cookie`, at most `page` entries per call.
  struct Listed {
    std::string name;
    uint64_t fileid, cookie;
    Attrs attrs;
    std::optional<Handle> handle;
  };
  std::vector<Listed> List(const Object& dir, const Credentials& who, bool plus = false,
                           uint64_t cookie = 0, size_t page = 1000000) {
    std::vector<Listed> out;
    for (;;) {
      size_t taken = 0;
      auto r = b().ReadDir(dir, cookie, plus, who, [&](const DirEntry& e) {
        if (taken == page) return false;
        ++taken;
        out.push_back(Listed{std::string(e.name), e.fileid, e.cookie, e.attrs,
                             e.handle ? std::optional<Handle>(*e.handle) : std::nullopt});
        cookie = e.cookie;
        return true;
      });
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok() || r->eof) return out;
    }
  }
  static std::vector<std::string> Names(const std::vector<Listed>& l) {
    std::vector<std::string> n;
    for (const Listed& e : l) n.push_back(e.name);
    return n;
  }
  std::vector<CommitRecord> TakeCommits() { return std::exchange(commits_.records, {}); }

  bool privileged_ = false;
  Credentials me_, owner_, other_;
  const Credentials root_cred_ = Cred(0, 0);
  std::string base_;
  Ref<exports::Export> exp_a_, exp_b_;
  std::unique_ptr<HandleResolver> resolver_;
  std::unique_ptr<Backend> inner_;
  std::unique_ptr<CachingBackend> caching_;
  Backend* backend_ = nullptr;
  Recorder commits_;
  Object root_, root_b_;
};

INSTANTIATE_TEST_SUITE_P(Backends, BackendConformanceTest,
                         ::testing::Values(Kind::kPosix, Kind::kCachingPosix, Kind::kMemory,
                                           Kind::kCachingMemory),
                         KindName);

int Err(const absl::Status& s) { return StatusErrno(s); }
template <class T>
int Err(const absl::StatusOr<T>& s) {
  return StatusErrno(s.status());
}

// ---- Resolution and lookup

TEST_P(BackendConformanceTest, DotAndDotDotAtTheRootAreTheRoot) {
  auto dot = b().Lookup(root_, ".", me_);
  auto up = b().Lookup(root_, "..", me_);
  ASSERT_TRUE(dot.ok() && up.ok());
  EXPECT_EQ(dot->attrs().fileid, root_.attrs().fileid);
  EXPECT_EQ(up->attrs().fileid, root_.attrs().fileid);
  EXPECT_EQ(up->handle(), root_.handle());
}

TEST_P(BackendConformanceTest, DotDotBelowTheRootIsTheParent) {
  Object d = Dir(root_, "d", 0755, me_);
  Object e = Dir(d, "e", 0755, me_);
  auto up = b().Lookup(e, "..", me_);
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(up->attrs().fileid, d.attrs().fileid);
  EXPECT_EQ(up->handle(), d.handle());
}

TEST_P(BackendConformanceTest, BadNamesAreRefused) {
  EXPECT_EQ(Err(b().Lookup(root_, "", me_)), EACCES);
  EXPECT_EQ(Err(b().Lookup(root_, "a/b", me_)), EACCES);
  EXPECT_EQ(Err(b().Lookup(root_, std::string("a\0b", 3), me_)), EACCES);
  EXPECT_EQ(Err(b().Lookup(root_, std::string(256, 'x'), me_)), ENAMETOOLONG);
  EXPECT_EQ(Err(b().Create(root_, ".", CreateHow::kUnchecked, {}, 0, As(me_))), EEXIST);
  EXPECT_EQ(Err(b().Create(root_, "..", CreateHow::kGuarded, {}, 0, As(me_))), EEXIST);
  EXPECT_EQ(Err(b().Mkdir(root_, "x/y", {}, As(me_))), EACCES);
  EXPECT_EQ(Err(b().Remove(root_, ".", RemoveKind::kNonDirectory, As(me_))), EACCES);
  EXPECT_EQ(Err(b().Remove(root_, "..", RemoveKind::kDirectory, As(me_))), EINVAL);
  EXPECT_EQ(Err(b().Rename(root_, "..", root_, "z", As(me_))), EINVAL);
}

TEST_P(BackendConformanceTest, MissingNameIsENOENTAndLookupInAFileIsENOTDIR) {
  Object f = File(root_, "f", 0644, me_);
  EXPECT_EQ(Err(b().Lookup(root_, "missing", me_)), ENOENT);
  EXPECT_EQ(Err(b().Lookup(f, "x", me_)), ENOTDIR);
}

TEST_P(BackendConformanceTest, HandleResolvesToTheSameObjectAfterARename) {
  Object d = Dir(root_, "d", 0755, me_);
  Object f = File(d, "f", 0640, me_);
  ASSERT_TRUE(b().Rename(d, "f", root_, "g", As(me_)).ok());
  auto again = b().Resolve(*exp_a_, f.handle());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->attrs().fileid, f.attrs().fileid);
  EXPECT_EQ(again->attrs().mode, 0640u);
  EXPECT_TRUE(again->attrs().is_regular());
}

TEST_P(BackendConformanceTest, RemovedObjectIsStale) {
  Object f = File(root_, "f", 0644, me_);
  Object d = Dir(root_, "d", 0755, me_);
  ASSERT_TRUE(b().Remove(root_, "f", RemoveKind::kNonDirectory, As(me_)).ok());
  ASSERT_TRUE(b().Remove(root_, "d", RemoveKind::kDirectory, As(me_)).ok());
  EXPECT_EQ(Err(b().Resolve(*exp_a_, f.handle())), ESTALE);
  EXPECT_EQ(Err(b().Resolve(*exp_a_, d.handle())), ESTALE);
}

TEST_P(BackendConformanceTest, DirectoryOfAnotherExportIsStale) {
  // (A file's handle is bound to its export by the wire handle's MAC: fhandle.h.)
  Object d = Dir(root_, "d", 0755, me_);
  EXPECT_EQ(Err(b().Resolve(*exp_b_, d.handle())), ESTALE);
  EXPECT_EQ(Err(b().Resolve(*exp_b_, root_.handle())), ESTALE);
}

TEST_P(BackendConformanceTest, OpenPathWalksBeneathTheRootOnly) {
  Object sub = Dir(root_, "sub", 0755, me_);
  Object deeper = Dir(sub, "deeper", 0755, me_);
  File(sub, "file", 0644, me_);
  ASSERT_TRUE(b().Symlink(sub, "link", "deeper", {}, As(me_)).ok());
  auto found = b().OpenPath(*exp_a_, "sub/deeper");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->handle(), deeper.handle());
  EXPECT_EQ(Err(b().OpenPath(*exp_a_, "missing")), ENOENT);
  EXPECT_EQ(Err(b().OpenPath(*exp_a_, "sub/file")), ENOTDIR);
  EXPECT_EQ(Err(b().OpenPath(*exp_a_, "sub/link")), ENOTDIR);  // the link itself
  EXPECT_EQ(Err(b().OpenPath(*exp_a_, "sub/link/x")), ELOOP);
  EXPECT_EQ(Err(b().OpenPath(*exp_a_, "../b")), EXDEV);
  EXPECT_EQ(Err(b().OpenPath(*exp_a_, "sub/../..")), EXDEV);
}

// ---- Creation

TEST_P(BackendConformanceTest, ExclusiveCreateRetransmitSucceedsOtherVerifierFails) {
  auto a = b().Create(root_, "f", CreateHow::kExclusive, {}, 0x1122334455667788ull, As(me_));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->attrs().mode, 0600u);
  auto again =
      b().Create(root_, "f", CreateHow::kExclusive, {}, 0x1122334455667788ull, As(me_));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->attrs().fileid, a->attrs().fileid);
  EXPECT_EQ(Err(b().Create(root_, "f", CreateHow::kExclusive, {}, 42, As(me_))), EEXIST);
  EXPECT_EQ(Err(b().Create(root_, "f", CreateHow::kGuarded, {}, 0, As(me_))), EEXIST);
  EXPECT_TRUE(b().Create(root_, "f", CreateHow::kUnchecked, {}, 0, As(me_)).ok());
}

TEST_P(BackendConformanceTest, UncheckedCreateOfAnExistingFileAppliesOnlyTheSize) {
  Object f = File(root_, "f", 0640, me_);
  ASSERT_TRUE(WriteText(f, me_, "0123456789").ok());
  SetAttrRequest attrs = Mode(0777);
  attrs.size = 4;
  auto again = b().Create(root_, "f", CreateHow::kUnchecked, attrs, 0, As(me_));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->attrs().fileid, f.attrs().fileid);
  EXPECT_EQ(again->attrs().size, 4u);
  EXPECT_EQ(again->attrs().mode, 0640u);
  Dir(root_, "d", 0755, me_);
  EXPECT_EQ(Err(b().Create(root_, "d", CreateHow::kUnchecked, {}, 0, As(me_))), EISDIR);
}

TEST_P(BackendConformanceTest, CreateAppliesModeSizeAndClientTimes) {
  SetAttrRequest attrs = Mode(0604);
  attrs.size = 100;
  attrs.mtime = SetTime{TimeHow::kClientTime, {1000000, 5}};
  auto f = b().Create(root_, "f", CreateHow::kGuarded, attrs, 0, As(owner_));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->attrs().mode, 0604u);
  EXPECT_EQ(f->attrs().size, 100u);
  EXPECT_EQ(f->attrs().mtime.tv_sec, 1000000);
  EXPECT_EQ(f->attrs().mtime.tv_nsec, 5);
  EXPECT_EQ(f->attrs().uid, owner_.uid);
  EXPECT_EQ(f->attrs().nlink, 1u);
}

TEST_P(BackendConformanceTest, OwnerIsSetOnlyForRootOfARootServer) {
  SetAttrRequest attrs = Mode(0644);
  attrs.uid = 4321;
  attrs.gid = 4321;
  auto by_root = b().Create(root_, "r", CreateHow::kGuarded, attrs, 0, As(root_cred_));
  ASSERT_TRUE(by_root.ok()) << by_root.status();
  auto by_user = b().Create(root_, "u", CreateHow::kGuarded, attrs, 0, As(owner_));
  ASSERT_TRUE(by_user.ok()) << by_user.status();
  if (privileged_) {
    EXPECT_EQ(by_root->attrs().uid, 4321u);
    EXPECT_EQ(by_root->attrs().gid, 4321u);
  } else {  // objects belong to the server's user
    EXPECT_EQ(by_root->attrs().uid, me_.uid);
  }
  EXPECT_EQ(by_user->attrs().uid, owner_.uid);  // ignored, as knfsd
}

TEST_P(BackendConformanceTest, CreateWhoseAttributesFailLeavesNoTrace) {
  // A file made read-only cannot then be truncated by its (non-root) owner.
  SetAttrRequest attrs = Mode(0444);
  attrs.size = 10;
  EXPECT_EQ(Err(b().Create(root_, "f", CreateHow::kGuarded, attrs, 0, As(owner_))), EACCES);
  EXPECT_EQ(Err(b().Lookup(root_, "f", me_)), ENOENT);
  SetAttrRequest bad;
  bad.mtime = SetTime{TimeHow::kClientTime, {1, 1000000000L}};
  EXPECT_EQ(Err(b().Mkdir(root_, "d", bad, As(owner_))), EINVAL);
  EXPECT_EQ(Err(b().Lookup(root_, "d", me_)), ENOENT);
}

TEST_P(BackendConformanceTest, MkdirDropsSetIdBitsAndCountsLinks) {
  const uint32_t root_links = AttrsNow(root_).nlink;
  Object d = Dir(root_, "d", 06755, owner_);
  EXPECT_EQ(d.attrs().mode, 0755u);
  EXPECT_EQ(d.attrs().nlink, 2u);
  EXPECT_TRUE(d.attrs().is_dir());
  EXPECT_EQ(AttrsNow(root_).nlink, root_links + 1);
  Object sticky = Dir(root_, "s", 01777, owner_);
  EXPECT_EQ(sticky.attrs().mode, 01777u);
  EXPECT_EQ(AttrsNow(root_).nlink, root_links + 2);
  ASSERT_TRUE(b().Remove(root_, "d", RemoveKind::kDirectory, As(owner_)).ok());
  EXPECT_EQ(AttrsNow(root_).nlink, root_links + 1);
}

TEST_P(BackendConformanceTest, SetGidDirectoryPassesOnItsGroup) {
  if (!privileged_) GTEST_SKIP() << "needs a group the server's user is not in: root";
  Object d = Dir(root_, "d", 0777, root_cred_);
  SetAttrRequest to_group;
  to_group.gid = 4242;
  to_group.mode = 02777;
  ASSERT_TRUE(b().SetAttr(d, to_group, std::nullopt, As(root_cred_)).ok());
  d = Fresh(d);
  EXPECT_EQ(d.attrs().mode, 02777u);
  Object f = File(d, "f", 02755, owner_);  // owner_ is not in group 4242
  EXPECT_EQ(f.attrs().gid, 4242u);
  EXPECT_EQ(f.attrs().mode, 0755u);  // mode_strip_sgid
  Object sub = Dir(d, "sub", 0755, owner_);
  EXPECT_EQ(sub.attrs().gid, 4242u);
  EXPECT_EQ(sub.attrs().mode, 02755u);
  Object g = File(d, "g", 02755, Cred(owner_.uid, owner_.gid, {4242}));
  EXPECT_EQ(g.attrs().mode, 02755u);
}

TEST_P(BackendConformanceTest, SymlinkReadsBackAndIsNeverFollowed) {
  auto l = b().Symlink(root_, "out", "/etc", {}, As(me_));
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->attrs().type, FileType::kSymlink);
  EXPECT_EQ(l->attrs().size, 4u);
  EXPECT_EQ(*b().ReadLink(*l), "/etc");
  EXPECT_EQ(Err(b().Lookup(*l, "passwd", me_)), ENOTDIR);
  Object f = File(root_, "f", 0644, me_);
  EXPECT_EQ(Err(b().ReadLink(f)), EINVAL);
  EXPECT_EQ(Err(b().Symlink(root_, "nul", std::string("a\0b", 3), {}, As(me_))), EINVAL);
  EXPECT_EQ(Err(b().Symlink(root_, "long", std::string(PATH_MAX, 'x'), {}, As(me_))),
            ENAMETOOLONG);
}

TEST_P(BackendConformanceTest, MknodMakesFifosAndSocketsAndDevicesOnlyForRootOnARootServer) {
  auto fifo = b().Mknod(root_, "p", FileType::kFifo, 0, 0, Mode(0640), As(owner_));
  ASSERT_TRUE(fifo.ok()) << fifo.status();
  EXPECT_EQ(fifo->attrs().type, FileType::kFifo);
  EXPECT_EQ(fifo->attrs().mode, 0640u);
  auto sock = b().Mknod(root_, "s", FileType::kSocket, 0, 0, Mode(0600), As(owner_));
  ASSERT_TRUE(sock.ok()) << sock.status();
  EXPECT_EQ(sock->attrs().type, FileType::kSocket);
  EXPECT_EQ(Err(b().Mknod(root_, "r", FileType::kRegular, 0, 0, {}, As(owner_))), EINVAL);
  // A switched fsuid drops CAP_MKNOD with the other file-system capabilities.
  EXPECT_EQ(Err(b().Mknod(root_, "u", FileType::kCharDevice, 1, 3, Mode(0600), As(owner_))),
            EPERM);
  auto dev = b().Mknod(root_, "c", FileType::kCharDevice, 1, 3, Mode(0600), As(root_cred_));
  if (privileged_) {
    ASSERT_TRUE(dev.ok()) << dev.status();
    EXPECT_EQ(dev->attrs().type, FileType::kCharDevice);
    EXPECT_EQ(dev->attrs().rdev_major, 1u);
    EXPECT_EQ(dev->attrs().rdev_minor, 3u);
  } else {
    EXPECT_EQ(Err(dev), EPERM);
  }
  EXPECT_EQ(Err(b().Read(*fifo, owner_, 0, {})), EINVAL);
}

// ---- Directories

TEST_P(BackendConformanceTest, ReaddirListsDotEntriesAndEveryEntryOnce) {
  Object d = Dir(root_, "d", 0755, me_);
  std::set<std::string> want = {".", ".."};
  for (int i = 0; i < 40; ++i) {
    const std::string n = absl::StrCat("f", i);
    File(d, n, 0644, me_);
    want.insert(n);
  }
  std::vector<Listed> all = List(d, me_, /*plus=*/false, 0, /*page=*/7);
  std::vector<std::string> names = Names(all);
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), want);
  EXPECT_EQ(names.size(), want.size());  // each once
  for (const Listed& e : all) {
    if (e.name == ".") { EXPECT_EQ(e.fileid, d.attrs().fileid); }
    if (e.name == "..") { EXPECT_EQ(e.fileid, root_.attrs().fileid); }
  }
  // Resuming from any entry's cookie lists exactly the entries after it.
  for (size_t i = 0; i < all.size(); i += 5) {
    std::vector<std::string> rest = Names(List(d, me_, false, all[i].cookie));
    EXPECT_EQ(rest, std::vector<std::string>(names.begin() + i + 1, names.end()));
  }
}

TEST_P(BackendConformanceTest, ReaddirCookiesSurviveChangesToTheDirectory) {
  Object d = Dir(root_, "d", 0755, me_);
  for (int i = 0; i < 30; ++i) File(d, absl::StrCat("f", i), 0644, me_);
  std::vector<Listed> first = List(d, me_, false, 0, 1000000);
  // Stop after ten entries; meanwhile entries come and go.
  const size_t stop = 10;
  std::set<std::string> seen;
  for (size_t i = 0; i < stop; ++i) seen.insert(first[i].name);
  std::string removed;
  for (size_t i = first.size(); i-- > stop;) {
    if (first[i].name[0] == 'f') {
      removed = first[i].name;
      break;
    }
  }
  ASSERT_FALSE(removed.empty());
  ASSERT_TRUE(b().Remove(d, removed, RemoveKind::kNonDirectory, As(me_)).ok());
  File(d, "new", 0644, me_);
  std::vector<Listed> rest = List(d, me_, false, first[stop - 1].cookie);
  for (const Listed& e : rest) {
    EXPECT_FALSE(seen.count(e.name)) << e.name << " listed twice";
    EXPECT_NE(e.name, removed);
    seen.insert(e.name);
  }
  for (const Listed& e : first)  // every entry that stayed is listed
    if (e.name != removed) { EXPECT_TRUE(seen.count(e.name)) << e.name; }
}

TEST_P(BackendConformanceTest, ReaddirPlusDescribesEntriesButNotTheRootsParent) {
  Object f = File(root_, "f", 0640, me_);
  std::vector<Listed> all = List(root_, me_, /*plus=*/true);
  ASSERT_EQ(all.size(), 3u);
  for (const Listed& e : all) {
    if (e.name == "..") {  // never above the export
      EXPECT_EQ(e.fileid, root_.attrs().fileid);
      EXPECT_EQ(e.attrs.valid, 0u);
      EXPECT_FALSE(e.handle);
    } else {
      ASSERT_TRUE(e.handle) << e.name;
      EXPECT_EQ(e.attrs.fileid, e.fileid);
      auto again = b().Resolve(*exp_a_, *e.handle);
      ASSERT_TRUE(again.ok()) << e.name << ": " << again.status();
      EXPECT_EQ(again->attrs().fileid, e.fileid);
    }
    if (e.name == ".") { EXPECT_EQ(*e.handle, root_.handle()); }
    if (e.name == "f") { EXPECT_EQ(e.attrs.mode, 0640u); }
  }
  Object d = Dir(root_, "d", 0755, me_);
  for (const Listed& e : List(d, me_, true)) {
    if (e.name != "..") continue;
    ASSERT_TRUE(e.handle);
    EXPECT_EQ(*e.handle, root_.handle());
  }
}

TEST_P(BackendConformanceTest, ReaddirNeedsReadPermissionAndADirectory) {
  Object f = File(root_, "f", 0644, me_);
  EXPECT_EQ(Err(b().ReadDir(f, 0, false, me_, [](const DirEntry&) { return true; })),
            ENOTDIR);
  Object d = Dir(root_, "d", 0711, owner_);
  EXPECT_EQ(Err(b().ReadDir(d, 0, false, other_, [](const DirEntry&) { return true; })),
            EACCES);
  EXPECT_EQ(Names(List(d, owner_)).size(), 2u);
}

// ---- Rename, link, remove

TEST_P(BackendConformanceTest, RenameOverAFileReportsTheReplacedFile) {
  Object a = File(root_, "a", 0644, me_);
  Object victim = File(root_, "b", 0644, me_);
  auto replaced = b().Rename(root_, "a", root_, "b", As(me_));
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  ASSERT_TRUE(replaced->has_value());
  EXPECT_EQ(**replaced, victim.handle());
  EXPECT_EQ(Err(b().Lookup(root_, "a", me_)), ENOENT);
  EXPECT_EQ(b().Lookup(root_, "b", me_)->attrs().fileid, a.attrs().fileid);
  EXPECT_EQ(Err(b().Resolve(*exp_a_, victim.handle())), ESTALE);
}

TEST_P(BackendConformanceTest, RenameOntoAnotherLinkOfTheSameFileChangesNothing) {
  Object f = File(root_, "f", 0644, me_);
  ASSERT_TRUE(b().Link(f, root_, "g", As(me_)).ok());
  auto replaced = b().Rename(root_, "f", root_, "g", As(me_));
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  EXPECT_FALSE(replaced->has_value());
  EXPECT_TRUE(b().Lookup(root_, "f", me_).ok());
  EXPECT_TRUE(b().Lookup(root_, "g", me_).ok());
  EXPECT_EQ(AttrsNow(f).nlink, 2u);
}

TEST_P(BackendConformanceTest, RenameOfDirectoriesFollowsRename2) {
  Object a = Dir(root_, "a", 0755, me_);
  Object full = Dir(root_, "full", 0755, me_);
  File(full, "x", 0644, me_);
  Object empty = Dir(root_, "empty", 0755, me_);
  File(root_, "file", 0644, me_);
  Object inner = Dir(a, "inner", 0755, me_);
  EXPECT_EQ(Err(b().Rename(root_, "a", root_, "full", As(me_))), ENOTEMPTY);
  EXPECT_EQ(Err(b().Rename(root_, "file", root_, "empty", As(me_))), EISDIR);
  EXPECT_EQ(Err(b().Rename(root_, "a", root_, "file", As(me_))), ENOTDIR);
  EXPECT_EQ(Err(b().Rename(root_, "a", inner, "loop", As(me_))), EINVAL);
  EXPECT_EQ(Err(b().Rename(root_, "missing", root_, "x", As(me_))), ENOENT);
  auto replaced = b().Rename(root_, "a", root_, "empty", As(me_));
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  ASSERT_TRUE(replaced->has_value());
  EXPECT_EQ(**replaced, empty.handle());
  EXPECT_EQ(b().Lookup(root_, "empty", me_)->attrs().fileid, a.attrs().fileid);
}

TEST_P(BackendConformanceTest, DirectoryLinkCountsMoveWithARename) {
  Object from = Dir(root_, "from", 0755, me_);
  Object to = Dir(root_, "to", 0755, me_);
  Dir(from, "moving", 0755, me_);
  EXPECT_EQ(AttrsNow(from).nlink, 3u);
  ASSERT_TRUE(b().Rename(from, "moving", to, "moved", As(me_)).ok());
  EXPECT_EQ(AttrsNow(from).nlink, 2u);
  EXPECT_EQ(AttrsNow(to).nlink, 3u);
  auto moved = b().Lookup(to, "moved", me_);
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(b().Lookup(*moved, "..", me_)->attrs().fileid, to.attrs().fileid);
}

TEST_P(BackendConformanceTest, RenameAndLinkAcrossExportsAreEXDEV) {
  Object f = File(root_, "f", 0644, me_);
  EXPECT_EQ(Err(b().Rename(root_, "f", root_b_, "g", As(me_))), EXDEV);
  EXPECT_EQ(Err(b().Link(f, root_b_, "g", As(me_))), EXDEV);
  EXPECT_TRUE(b().Lookup(root_, "f", me_).ok());
}

TEST_P(BackendConformanceTest, LinkCountsFollowLinkAndRemove) {
  Object f = File(root_, "f", 0644, me_);
  ASSERT_TRUE(b().Link(f, root_, "g", As(me_)).ok());
  EXPECT_EQ(AttrsNow(f).nlink, 2u);
  EXPECT_EQ(Err(b().Link(f, root_, "g", As(me_))), EEXIST);
  auto gone = b().Remove(root_, "f", RemoveKind::kNonDirectory, As(me_));
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_FALSE(gone->has_value());  // still linked as g
  EXPECT_EQ(AttrsNow(f).nlink, 1u);
  gone = b().Remove(root_, "g", RemoveKind::kNonDirectory, As(me_));
  ASSERT_TRUE(gone.ok()) << gone.status();
  ASSERT_TRUE(gone->has_value());
  EXPECT_EQ(**gone, f.handle());
  Object d = Dir(root_, "d", 0755, me_);
  EXPECT_EQ(Err(b().Link(d, root_, "dl", As(me_))), EISDIR);
}

TEST_P(BackendConformanceTest, RemoveAndRmdirCheckTheTypeAndEmptiness) {
  Object d = Dir(root_, "d", 0755, me_);
  File(d, "x", 0644, me_);
  File(root_, "f", 0644, me_);
  EXPECT_EQ(Err(b().Remove(root_, "d", RemoveKind::kNonDirectory, As(me_))), EISDIR);
  EXPECT_EQ(Err(b().Remove(root_, "f", RemoveKind::kDirectory, As(me_))), ENOTDIR);
  EXPECT_EQ(Err(b().Remove(root_, "d", RemoveKind::kDirectory, As(me_))), ENOTEMPTY);
  EXPECT_EQ(Err(b().Remove(root_, "missing", RemoveKind::kAny, As(me_))), ENOENT);
  EXPECT_TRUE(b().Remove(d, "x", RemoveKind::kAny, As(me_)).ok());
  auto gone = b().Remove(root_, "d", RemoveKind::kAny, As(me_));
  ASSERT_TRUE(gone.ok()) << gone.status();
  ASSERT_TRUE(gone->has_value());
  EXPECT_EQ(**gone, d.handle());
}

// ---- Permissions

TEST_P(BackendConformanceTest, NamespaceChangesNeedWriteAndSearchPermission) {
  Object ro = Dir(root_, "ro", 0555, owner_);
  EXPECT_EQ(Err(b().Create(ro, "f", CreateHow::kGuarded, {}, 0, As(other_))), EACCES);
  EXPECT_EQ(Err(b().Mkdir(ro, "d", {}, As(other_))), EACCES);
  EXPECT_EQ(Err(b().Symlink(ro, "l", "x", {}, As(other_))), EACCES);
  Object noexec = Dir(root_, "noexec", 0766, owner_);
  File(noexec, "inside", 0644, owner_);
  EXPECT_EQ(Err(b().Lookup(noexec, "inside", other_)), EACCES);
  Object open = Dir(root_, "open", 0755, owner_);
  File(open, "f", 0666, owner_);
  EXPECT_EQ(Err(b().Remove(open, "f", RemoveKind::kNonDirectory, As(other_))), EACCES);
  EXPECT_EQ(Err(b().Rename(open, "f", root_, "g", As(other_))), EACCES);
  EXPECT_TRUE(b().Remove(open, "f", RemoveKind::kNonDirectory, As(owner_)).ok());
}

TEST_P(BackendConformanceTest, StickyDirectoryProtectsOthersEntriesOnARootServer) {
  Object tmp = Dir(root_, "tmp", 01777, root_cred_);
  File(tmp, "mine", 0666, owner_);
  auto by_other = b().Remove(tmp, "mine", RemoveKind::kNonDirectory, As(other_));
  if (privileged_) {
    EXPECT_EQ(Err(by_other), EPERM);
    EXPECT_EQ(Err(b().Rename(tmp, "mine", tmp, "taken", As(other_))), EPERM);
    EXPECT_TRUE(b().Remove(tmp, "mine", RemoveKind::kNonDirectory, As(owner_)).ok());
  } else {  // not enforced: the kernel sees the server's user, which owns everything
    EXPECT_TRUE(by_other.ok()) << by_other.status();
  }
}

TEST_P(BackendConformanceTest, OwnerMayWriteTheirReadOnlyFileOthersMayNot) {
  Object f = File(root_, "f", 0644, owner_);
  ASSERT_TRUE(WriteText(f, owner_, "mine").ok());
  ASSERT_TRUE(b().SetAttr(f, Mode(0444), std::nullopt, As(owner_)).ok());
  f = Fresh(f);
  // Owner override, as knfsd — where the server opened the file for writing before, or
  // opens it as root. Unprivileged, the server's own user opens it, and the kernel
  // refuses a read-only file to its owner too.
  const absl::Status owner_write = WriteText(f, owner_, "MINE");
  if (privileged_ || caching_) {
    EXPECT_TRUE(owner_write.ok()) << owner_write;
  } else {
    EXPECT_EQ(Err(owner_write), EACCES);
  }
  EXPECT_EQ(Err(WriteText(f, other_, "theirs")), EACCES);
  EXPECT_EQ(ReadText(f, other_), privileged_ || caching_ ? "MINE" : "mine");
  Object secret = File(root_, "secret", 0600, owner_);
  std::string buf(8, '\0');
  EXPECT_EQ(Err(b().Read(secret, other_, 0, absl::MakeSpan(buf.data(), buf.size()))), EACCES);
  Object exec_only = File(root_, "prog", 0711, owner_);
  EXPECT_TRUE(b().Read(exec_only, other_, 0, absl::MakeSpan(buf.data(), buf.size())).ok());
  EXPECT_EQ(Err(b().Commit(f, other_)), EACCES);
  EXPECT_EQ(b().Commit(f, owner_).ok(), privileged_ || caching_);
}

TEST_P(BackendConformanceTest, IoNeedsARegularFile) {
  Object d = Dir(root_, "d", 0777, me_);
  std::string buf(8, '\0');
  EXPECT_EQ(Err(b().Read(d, me_, 0, absl::MakeSpan(buf.data(), buf.size()))), EISDIR);
  EXPECT_EQ(Err(WriteText(d, me_, "x")), EISDIR);
  auto l = b().Symlink(root_, "l", "d", {}, As(me_));
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(Err(b().Read(*l, me_, 0, absl::MakeSpan(buf.data(), buf.size()))), EINVAL);
}

TEST_P(BackendConformanceTest, ChmodChownAndTimesFollowTheKernelsRights) {
  Object f = File(root_, "f", 0666, owner_);
  EXPECT_EQ(Err(b().SetAttr(f, Mode(0777), std::nullopt, As(other_))), EPERM);
  SetAttrRequest chown;
  chown.uid = other_.uid;
  EXPECT_EQ(Err(b().SetAttr(f, chown, std::nullopt, As(owner_))), EPERM);
  SetAttrRequest explicit_time;
  explicit_time.mtime = SetTime{TimeHow::kClientTime, {12345, 0}};
  EXPECT_EQ(Err(b().SetAttr(f, explicit_time, std::nullopt, As(other_))), EPERM);
  // A writer who is not the owner may set the times to the server's clock.
  SetAttrRequest touch;
  touch.mtime.how = TimeHow::kServerTime;
  EXPECT_TRUE(b().SetAttr(f, touch, std::nullopt, As(other_)).ok());
  Object ro = File(root_, "ro", 0644, owner_);
  EXPECT_EQ(Err(b().SetAttr(ro, touch, std::nullopt, As(other_))), EACCES);
  EXPECT_TRUE(b().SetAttr(f, Mode(0640), std::nullopt, As(owner_)).ok());
  EXPECT_TRUE(b().SetAttr(f, explicit_time, std::nullopt, As(owner_)).ok());
  const Attrs now = AttrsNow(f);
  EXPECT_EQ(now.mode, 0640u);
  EXPECT_EQ(now.mtime.tv_sec, 12345);
  if (privileged_) {
    EXPECT_TRUE(b().SetAttr(Fresh(f), chown, std::nullopt, As(root_cred_)).ok());
    EXPECT_EQ(AttrsNow(f).uid, other_.uid);
  }
}

TEST_P(BackendConformanceTest, SetAttrGuardMismatchIsNotSync) {
  Object f = File(root_, "f", 0644, me_);
  timespec wrong = f.attrs().ctime;
  wrong.tv_sec -= 10;
  EXPECT_EQ(Err(b().SetAttr(f, Mode(0600), wrong, As(me_))), kErrNotSync);
  EXPECT_TRUE(b().SetAttr(f, Mode(0600), f.attrs().ctime, As(me_)).ok());
}

TEST_P(BackendConformanceTest, TruncateBySetAttrNeedsWritePermissionWithOwnerOverride) {
  Object f = File(root_, "f", 0644, owner_);
  ASSERT_TRUE(WriteText(f, owner_, "0123456789").ok());
  ASSERT_TRUE(b().SetAttr(f, Mode(0444), std::nullopt, As(owner_)).ok());
  if (!privileged_ && !caching_) GTEST_SKIP() << "unprivileged: the server cannot open it";
  SetAttrRequest size;
  size.size = 3;
  EXPECT_EQ(Err(b().SetAttr(Fresh(f), size, std::nullopt, As(other_))), EACCES);
  EXPECT_TRUE(b().SetAttr(Fresh(f), size, std::nullopt, As(owner_)).ok());
  EXPECT_EQ(AttrsNow(f).size, 3u);
  Object d = Dir(root_, "d", 0777, owner_);
  EXPECT_EQ(Err(b().SetAttr(d, size, std::nullopt, As(owner_))), EISDIR);
}

// ---- Set-id bits (creds.h, "Set-id bits")

TEST_P(BackendConformanceTest, WriteByANonRootCallerClearsSetIdBits) {
  Object f = File(root_, "f", 06777, me_);
  ASSERT_EQ(f.attrs().mode, 06777u);
  ASSERT_TRUE(WriteText(f, other_, "x").ok());
  EXPECT_EQ(AttrsNow(f).mode, 0777u);
}

TEST_P(BackendConformanceTest, WriteByRootKeepsSetIdBitsOnlyOnARootServer) {
  Object f = File(root_, "f", 06777, me_);
  ASSERT_TRUE(WriteText(f, root_cred_, "x").ok());
  // Unprivileged, the server's user writes, without CAP_FSETID.
  EXPECT_EQ(AttrsNow(f).mode, privileged_ ? 06777u : 0777u);
}

TEST_P(BackendConformanceTest, SetGidWithoutGroupExecIsKeptForAGroupMember) {
  Object f = File(root_, "f", 02666, me_);
  const uint32_t group = f.attrs().gid;
  ASSERT_TRUE(WriteText(f, Cred(other_.uid, other_.gid, {group}), "x").ok());
  EXPECT_EQ(AttrsNow(f).mode, 02666u);
  ASSERT_TRUE(WriteText(Fresh(f), other_, "y").ok());
  // Unprivileged: the server's user, in the file's group, judges the write.
  EXPECT_EQ(AttrsNow(f).mode, privileged_ ? 0666u : 02666u);
}

TEST_P(BackendConformanceTest, TruncationClearsSetIdBitsLikeAWrite) {
  Object f = File(root_, "f", 06777, me_);
  ASSERT_TRUE(WriteText(f, me_, "0123456789").ok());
  SetAttrRequest size;
  size.size = 2;
  ASSERT_TRUE(b().SetAttr(Fresh(f), size, std::nullopt, As(other_)).ok());
  EXPECT_EQ(AttrsNow(f).mode, 0777u);
  EXPECT_EQ(AttrsNow(f).size, 2u);
}

TEST_P(BackendConformanceTest, ChownClearsSetUidWhoeverTheCaller) {
  Object f = File(root_, "f", 04755, owner_);
  SetAttrRequest same_owner;
  same_owner.uid = owner_.uid;
  ASSERT_TRUE(b().SetAttr(f, same_owner, std::nullopt, As(owner_)).ok());
  EXPECT_EQ(AttrsNow(f).mode, 0755u);
  Object g = File(root_, "g", 04755, me_);
  same_owner.uid = me_.uid;
  ASSERT_TRUE(b().SetAttr(g, same_owner, std::nullopt, As(root_cred_)).ok());
  EXPECT_EQ(AttrsNow(g).mode, 0755u);
}

// ---- Data

TEST_P(BackendConformanceTest, WriteReadRoundTripAndEofFromTheRequestsAttributes) {
  Object f = File(root_, "f", 0644, me_);
  ASSERT_TRUE(WriteText(f, me_, "hello, nfs").ok());
  f = Fresh(f);
  EXPECT_EQ(f.attrs().size, 10u);
  std::string buf(10, '\0');
  auto whole = b().Read(f, me_, 0, absl::MakeSpan(buf.data(), buf.size()));
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->count, 10u);
  EXPECT_TRUE(whole->eof);  // ends at the size the request saw
  EXPECT_EQ(buf, "hello, nfs");
  auto part = b().Read(f, me_, 0, absl::MakeSpan(buf.data(), 5));
  ASSERT_TRUE(part.ok());
  EXPECT_FALSE(part->eof);
  auto past = b().Read(f, me_, 20, absl::MakeSpan(buf.data(), 5));
  ASSERT_TRUE(past.ok());
  EXPECT_EQ(past->count, 0u);
  EXPECT_TRUE(past->eof);
  // The file grows after the request took its attributes: data beyond is never EOF.
  ASSERT_TRUE(WriteText(f, me_, "more", 10).ok());
  auto grown = b().Read(f, me_, 0, absl::MakeSpan(buf.data(), buf.size()));
  ASSERT_TRUE(grown.ok());
  EXPECT_EQ(grown->count, 10u);
  EXPECT_TRUE(grown->eof);
  std::string big(20, '\0');
  auto beyond = b().Read(f, me_, 0, absl::MakeSpan(big.data(), big.size()));
  ASSERT_TRUE(beyond.ok());
  EXPECT_EQ(beyond->count, 14u);
  EXPECT_TRUE(beyond->eof);
  auto empty = b().Read(f, me_, 0, {});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->count, 0u);
  EXPECT_FALSE(empty->eof);
}

TEST_P(BackendConformanceTest, WritesMoveMtimeCtimeAndTheChangeAttribute) {
  Object f = File(root_, "f", 0644, me_);
  const Attrs before = AttrsNow(f);
  ASSERT_TRUE(WriteText(f, me_, "x").ok());
  const Attrs after = AttrsNow(f);
  EXPECT_GT(after.change, before.change);
  EXPECT_TRUE(after.has(kAttrBasic));
  const Attrs dir_before = AttrsNow(root_);
  File(root_, "g", 0644, me_);
  EXPECT_GT(AttrsNow(root_).change, dir_before.change);
}

// ---- Durability

TEST_P(BackendConformanceTest, SyncCommitsAreMadeInKnfsdsOrder) {
  using K = CommitRecord::Kind;
  auto meta = [](const Object& o) { return CommitRecord{K::kMetadata, o.attrs().fileid}; };
  Object a = Dir(root_, "a", 0777, me_);
  Object c = Dir(root_, "c", 0777, me_);
  TakeCommits();
  auto f = b().Create(a, "f", CreateHow::kGuarded, Mode(0644), 0, As(me_, true));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(TakeCommits(), (std::vector<CommitRecord>{meta(*f), meta(a)}));
  auto d = b().Mkdir(a, "d", {}, As(me_, true));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(TakeCommits(), (std::vector<CommitRecord>{meta(*d), meta(a)}));
  ASSERT_TRUE(b().Rename(a, "f", c, "f", As(me_, true)).ok());
  EXPECT_EQ(TakeCommits(), (std::vector<CommitRecord>{meta(c), meta(a)}));
  ASSERT_TRUE(b().Rename(c, "f", c, "g", As(me_, true)).ok());
  EXPECT_EQ(TakeCommits(), (std::vector<CommitRecord>{meta(c)}));  // one directory, once
  ASSERT_TRUE(b().Link(*f, a, "h", As(me_, true)).ok());
  EXPECT_EQ(TakeCommits(), (std::vector<CommitRecord>{meta(a), meta(*f)}));
  ASSERT_TRUE(b().SetAttr(*f, Mode(0600), std::nullopt, As(me_, true)).ok());
  EXPECT_EQ(TakeCommits(), (std::vector<CommitRecord>{meta(*f)}));
  ASSERT_TRUE(b().Remove(a, "h", RemoveKind::kNonDirectory, As(me_, true)).ok());
  EXPECT_EQ(TakeCommits(), (std::vector<CommitRecord>{meta(a)}));
  // async: nothing
  ASSERT_TRUE(b().Create(a, "x", CreateHow::kGuarded, {}, 0, As(me_, false)).ok());
  ASSERT_TRUE(b().Remove(a, "x", RemoveKind::kAny, As(me_, false)).ok());
  EXPECT_TRUE(TakeCommits().empty());
  // Data: stable writes and COMMIT.
  Object file = Fresh(*f);
  ASSERT_TRUE(WriteText(file, me_, "u").ok());
  EXPECT_TRUE(TakeCommits().empty());
  ASSERT_TRUE(WriteText(file, me_, "s", 0, Stability::kFileSync).ok());
  ASSERT_TRUE(b().Commit(file, me_).ok());
  EXPECT_EQ(TakeCommits(), (std::vector<CommitRecord>{{K::kData, file.attrs().fileid},
                                                      {K::kData, file.attrs().fileid}}));
}

// ---- LOCALIO

TEST_P(BackendConformanceTest, OpenForLocalIoChecksExactlyWhatReadAndWriteCheck) {
  Object secret = File(root_, "secret", 0600, owner_);
  EXPECT_EQ(Err(b().OpenForLocalIo(secret, other_, FileMode::kRead)), EACCES);
  Object shared = File(root_, "shared", 0644, owner_);
  EXPECT_EQ(Err(b().OpenForLocalIo(shared, other_, FileMode::kReadWrite)), EACCES);
  Object setid = File(root_, "setid", 06777, owner_);
  EXPECT_EQ(Err(b().OpenForLocalIo(setid, other_, FileMode::kReadWrite)), EOPNOTSUPP);
  Object d = Dir(root_, "d", 0777, owner_);
  EXPECT_EQ(Err(b().OpenForLocalIo(d, owner_, FileMode::kRead)), EISDIR);
  auto ro = b().OpenForLocalIo(shared, other_, FileMode::kRead);
  if (memory()) {  // no fds to hand out, after the same checks
    EXPECT_EQ(Err(ro), EOPNOTSUPP);
    return;
  }
  ASSERT_TRUE(ro.ok()) << ro.status();
  // Even with a read-write file open for WRITE, a read open gets a read-only fd.
  ASSERT_TRUE(WriteText(shared, owner_, "data").ok());
  ro = b().OpenForLocalIo(shared, other_, FileMode::kRead);
  ASSERT_TRUE(ro.ok()) << ro.status();
  EXPECT_EQ(fcntl((*ro)->fd(), F_GETFL) & O_ACCMODE, O_RDONLY);
  auto rw = b().OpenForLocalIo(shared, owner_, FileMode::kReadWrite);
  ASSERT_TRUE(rw.ok()) << rw.status();
  EXPECT_EQ(fcntl((*rw)->fd(), F_GETFL) & O_ACCMODE, O_RDWR);
}

// ---- NFSv4.2's optional operations

TEST_P(BackendConformanceTest, AllocateExtendsAndDeallocateZeroesKeepingTheSize) {
  ASSERT_TRUE(b().capabilities() & kCapAllocate);
  Object f = File(root_, "f", 0644, me_);
  ASSERT_TRUE(WriteText(f, me_, std::string(8192, 'a')).ok());
  ASSERT_TRUE(b().Allocate(f, me_, 0, 16384).ok());
  EXPECT_EQ(AttrsNow(f).size, 16384u);
  ASSERT_TRUE(b().Deallocate(f, me_, 0, 4096).ok());
  EXPECT_EQ(AttrsNow(f).size, 16384u);
  EXPECT_EQ(ReadText(Fresh(f), me_, 4, 0), std::string(4, '\0'));
  EXPECT_EQ(ReadText(Fresh(f), me_, 4, 4096), "aaaa");
  Object ro = File(root_, "ro", 0644, owner_);
  EXPECT_EQ(Err(b().Allocate(ro, other_, 0, 10)), EACCES);
}

TEST_P(BackendConformanceTest, SeekFindsDataAndTheHoleAtTheEnd) {
  Object f = File(root_, "f", 0644, me_);
  ASSERT_TRUE(WriteText(f, me_, std::string(100, 'a')).ok());
  auto data = b().Seek(f, me_, 10, SeekWhat::kData);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_FALSE(data->eof);
  EXPECT_EQ(data->offset, 10u);
  auto hole = b().Seek(f, me_, 10, SeekWhat::kHole);
  ASSERT_TRUE(hole.ok()) << hole.status();
  EXPECT_TRUE(hole->eof);
  EXPECT_EQ(hole->offset, 100u);
  auto past = b().Seek(f, me_, 200, SeekWhat::kData);
  ASSERT_TRUE(past.ok()) << past.status();
  EXPECT_TRUE(past->eof);
}

TEST_P(BackendConformanceTest, CopyRangeCopiesUpToTheEndAndCloneCopiesOrIsNotSupported) {
  Object src = File(root_, "src", 0644, me_);
  Object dst = File(root_, "dst", 0644, me_);
  ASSERT_TRUE(WriteText(src, me_, "0123456789").ok());
  src = Fresh(src);
  auto copied = b().CopyRange(src, dst, me_, 2, 0, 100);
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_EQ(*copied, 8u);
  EXPECT_EQ(ReadText(Fresh(dst), me_), "23456789");
  auto all = b().CopyRange(src, dst, me_, 0, 0, 0);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(*all, 10u);
  Object setid = File(root_, "setid", 06666, me_);
  ASSERT_TRUE(b().CopyRange(src, setid, other_, 0, 0, 4).ok());
  // As a write: S_ISGID stays where the writer (the server's user, unprivileged) is in
  // the file's group.
  EXPECT_EQ(AttrsNow(setid).mode, privileged_ ? 0666u : 02666u);
  Object clone = File(root_, "clone", 0644, me_);
  absl::Status s = b().Clone(src, clone, me_, 0, 0, 0);
  if (s.ok())
    EXPECT_EQ(ReadText(Fresh(clone), me_), "0123456789");
  else
    EXPECT_EQ(Err(s), EOPNOTSUPP) << s;  // ext4 shares no blocks
}

// ---- File system

// ---- Byte-range locks

TEST_P(BackendConformanceTest, LocksOfDifferentLockFilesConflictAsFcntlSays) {
  ASSERT_TRUE(b().capabilities() & kCapLocks);
  Object f = File(root_, "f", 0666, me_);
  auto one = b().OpenLockFile(f, FileMode::kReadWrite);
  auto two = b().OpenLockFile(f, FileMode::kReadWrite);
  ASSERT_TRUE(one.ok() && two.ok()) << one.status() << two.status();
  // A write lock on [100, 200) refuses an overlapping read lock of another lock file,
  // not one beside it; the conflict says what and where.
  auto w = b().SetLock(**one, LockType::kWrite, {100, 100});
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_FALSE(w->has_value());
  auto r = b().SetLock(**two, LockType::kRead, {150, 10});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->type, LockType::kWrite);
  EXPECT_EQ((*r)->offset, 100u);
  EXPECT_EQ((*r)->length, 100u);
  auto beside = b().SetLock(**two, LockType::kRead, {200, 10});
  ASSERT_TRUE(beside.ok());
  EXPECT_FALSE(beside->has_value());
  // Read locks share; a write over someone's read lock does not.
  auto shared = b().SetLock(**one, LockType::kRead, {205, 1});
  ASSERT_TRUE(shared.ok());
  EXPECT_FALSE(shared->has_value());
  auto over_read = b().TestLock(**one, LockType::kWrite, {0, 0});
  ASSERT_TRUE(over_read.ok());
  ASSERT_TRUE(over_read->has_value()) << "the other file's read lock at 200";
  EXPECT_EQ((*over_read)->type, LockType::kRead);
  EXPECT_EQ((*over_read)->offset, 200u);
  // Unlocked, the range is free for the other file (TestLock changed nothing).
  ASSERT_TRUE(b().Unlock(**one, {100, 100}).ok());
  auto now_free = b().SetLock(**two, LockType::kWrite, {100, 100});
  ASSERT_TRUE(now_free.ok());
  EXPECT_FALSE(now_free->has_value());
}

TEST_P(BackendConformanceTest, AnOwnersLocksReplaceAndSplitEachOther) {
  Object f = File(root_, "f", 0666, me_);
  auto one = b().OpenLockFile(f, FileMode::kReadWrite);
  auto two = b().OpenLockFile(f, FileMode::kReadWrite);
  ASSERT_TRUE(one.ok() && two.ok());
  // [0, end) write; then a read lock and an unlocked hole inside it — its own locks never
  // conflict with it, and what is left stays locked.
  ASSERT_FALSE(b().SetLock(**one, LockType::kWrite, {0, 0})->has_value());
  ASSERT_FALSE(b().SetLock(**one, LockType::kRead, {10, 10})->has_value());
  ASSERT_TRUE(b().Unlock(**one, {30, 10}).ok());
  auto in_read = b().TestLock(**two, LockType::kRead, {12, 1});
  ASSERT_TRUE(in_read.ok());
  EXPECT_FALSE(in_read->has_value()) << "[10, 20) became a read lock";
  auto write_in_read = b().TestLock(**two, LockType::kWrite, {12, 1});
  ASSERT_TRUE(write_in_read->has_value());
  EXPECT_EQ((*write_in_read)->type, LockType::kRead);
  EXPECT_FALSE(b().TestLock(**two, LockType::kWrite, {30, 10})->has_value()) << "the hole";
  auto after_hole = b().TestLock(**two, LockType::kRead, {45, 1});
  ASSERT_TRUE(after_hole->has_value());
  EXPECT_EQ((*after_hole)->type, LockType::kWrite);
  EXPECT_EQ((*after_hole)->offset, 40u);
  EXPECT_EQ((*after_hole)->length, 0u) << "to the end";
}

TEST_P(BackendConformanceTest, ClosingALockFileReleasesItsLocks) {
  Object f = File(root_, "f", 0666, me_);
  auto one = b().OpenLockFile(f, FileMode::kReadWrite);
  auto two = b().OpenLockFile(f, FileMode::kReadWrite);
  ASSERT_TRUE(one.ok() && two.ok());
  ASSERT_FALSE(b().SetLock(**one, LockType::kWrite, {0, 0})->has_value());
  ASSERT_TRUE(b().SetLock(**two, LockType::kWrite, {0, 1})->has_value());
  one->reset();  // the last reference
  EXPECT_FALSE(b().SetLock(**two, LockType::kWrite, {0, 1})->has_value());
}

TEST_P(BackendConformanceTest, LockFilesAreForRegularFilesAndWriteLocksNeedWriting) {
  Object f = File(root_, "f", 0666, me_);
  Object d = Dir(root_, "d", 0777, me_);
  EXPECT_EQ(Err(b().OpenLockFile(d, FileMode::kRead)), EISDIR);
  auto ro = b().OpenLockFile(f, FileMode::kRead);
  ASSERT_TRUE(ro.ok()) << ro.status();
  EXPECT_EQ(Err(b().SetLock(**ro, LockType::kWrite, {0, 1})), EBADF);
  EXPECT_FALSE(b().SetLock(**ro, LockType::kRead, {0, 1})->has_value());
  EXPECT_EQ(Err(b().SetLock(**ro, LockType::kRead, {kMaxLockOffset, 2})), EINVAL);
  EXPECT_FALSE(b().SetLock(**ro, LockType::kRead, {kMaxLockOffset - 1, 1})->has_value());
}

TEST_P(BackendConformanceTest, LocksOfProcessesOnTheHostConflictWithLockFiles) {
  if (memory()) GTEST_SKIP() << "no host file behind a memory object";
  Object f = File(root_, "f", 0666, me_);
  const std::string path = base_ + "/a/f";
  // A process's classic POSIX lock (fcntl F_SETLK, what most programs take) in a child,
  // which holds it until told to go.
  int to_child[2], from_child[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(from_child), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const int fd = open(path.c_str(), O_RDWR);
    struct flock fl{};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 10;
    const char ok = fd >= 0 && fcntl(fd, F_SETLK, &fl) == 0 ? 'y' : 'n';
    (void)!write(from_child[1], &ok, 1);
    char c;
    (void)!read(to_child[0], &c, 1);
    _exit(0);
  }
  char ok = 0;
  ASSERT_EQ(read(from_child[0], &ok, 1), 1);
  ASSERT_EQ(ok, 'y');
  auto lf = b().OpenLockFile(f, FileMode::kReadWrite);
  ASSERT_TRUE(lf.ok()) << lf.status();
  auto refused = b().SetLock(**lf, LockType::kRead, {5, 1});
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_TRUE(refused->has_value()) << "the host process's lock was ignored";
  EXPECT_FALSE(b().SetLock(**lf, LockType::kWrite, {10, 5})->has_value());
  // And the reverse: the client's lock refuses the host's processes (an OFD lock here).
  const int fd = open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  struct flock fl{};
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 12;
  fl.l_len = 1;
  EXPECT_EQ(fcntl(fd, F_OFD_SETLK, &fl), -1);
  EXPECT_TRUE(errno == EAGAIN || errno == EACCES) << strerror(errno);
  close(fd);
  ASSERT_EQ(write(to_child[1], "x", 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  for (int p : {to_child[0], to_child[1], from_child[0], from_child[1]}) close(p);
  // The child is gone, with its lock.
  EXPECT_FALSE(b().SetLock(**lf, LockType::kWrite, {0, 10})->has_value());
}

TEST_P(BackendConformanceTest, StatFsAndPathConfDescribeTheFileSystem) {
  auto fs = b().StatFs(root_);
  ASSERT_TRUE(fs.ok()) << fs.status();
  EXPECT_GT(fs->tbytes, 0u);
  EXPECT_LE(fs->abytes, fs->tbytes);
  auto pc = b().GetPathConf(root_);
  ASSERT_TRUE(pc.ok()) << pc.status();
  EXPECT_EQ(pc->name_max, kMaxNameLen);
  EXPECT_GT(pc->linkmax, 1u);
}

}  // namespace
}  // namespace localnfs::server::backend
