// server/backend/conformance_test.cc — one suite, every backend: the POSIX backend on a
// temporary directory, the memory backend, and the caching layer over each. What a test
// here checks holds on disk and in memory alike, so a handler test on the memory backend
// proves what it would prove on the real one.
//
// The suite runs twice (server/meson.build): as root — the server switches to each
// caller, uids 1000 and 1001 act as ordinary users — and as uid 1000
// (LOCALNFS_TEST_AS_UID, dropped before any test runs), where the server is unprivileged:
// objects belong to it, the caller's mode bits are checked by the server, and the kernel
// judges the server's own user. The memory backend is configured to model whichever mode
// the process is in. Expectations that differ between the modes say so.
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
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
#include "server/creds.h"
#include "server/fhandle.h"

namespace localnfs::server::backend {
namespace {

// LOCALNFS_TEST_AS_UID=N: become uid/gid N (no supplementary groups) before any test.
class DropPrivileges : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* as = getenv("LOCALNFS_TEST_AS_UID");
    if (as == nullptr || geteuid() != 0) return;
    const uid_t uid = static_cast<uid_t>(atoi(as));
    ASSERT_EQ(setgroups(0, nullptr), 0);
    ASSERT_EQ(setresgid(uid, uid, uid), 0);
    ASSERT_EQ(setresuid(uid, uid, uid), 0);
    // A process that changed its uid is not dumpable, and then /proc/self/fd is root's:
    // the backend opens files through it.
    ASSERT_EQ(prctl(PR_SET_DUMPABLE, 1), 0);
  }
};
const ::testing::Environment* const kDrop =
    ::testing::AddGlobalTestEnvironment(new DropPrivileges);

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
  static void SetUpTestSuite() {
    rcu_ = new RcuThread;
    StartReleaseQueue();
    InitServerCredentials();
    umask(0);  // as localnfsd
  }
  static void TearDownTestSuite() {
    StopReleaseQueue();
    delete rcu_;
  }

  void SetUp() override {
    privileged_ = CanSwitchCredentials();
    me_ = Cred(geteuid(), getegid());
    owner_ = privileged_ ? Cred(1000, 1000) : me_;
    other_ = Cred(1001, 1001);
    char tmpl[] = "/tmp/backendtestXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    ASSERT_EQ(chmod(base_.c_str(), 0755), 0);
    for (const char* name : {"a", "b"}) {
      const std::string path = absl::StrCat(base_, "/", name);
      ASSERT_EQ(mkdir(path.c_str(), 0777), 0);
      exports::ExportSpec spec;
      spec.path = path;
      spec.rules.push_back(exports::ClientRule{});
      auto exp = exports::Export::Create(spec);
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

  static RcuThread* rcu_;
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
RcuThread* BackendConformanceTest::rcu_ = nullptr;

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

}  // namespace
}  // namespace localnfs::server::backend
