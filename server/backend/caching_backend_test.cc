// server/backend/caching_backend_test.cc — what the caching layer keeps, shares and drops
// (the conformance suite shows it changes no answer; these show it saves the work).
#include "server/backend/caching_backend.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/rcu.h"
#include "common/release_queue.h"
#include "common/status.h"
#include "export_cache/export.h"
#include "gtest/gtest.h"
#include "server/backend/memory_backend.h"
#include "server/backend/posix_backend.h"
#include "server/policy/creds.h"
#include "server/server_test_runtime.h"

namespace localnfs::server::backend {
namespace {

// An export of a fresh temporary directory's "export" (the directory around it is outside
// the export), removed after the test with what it holds.
class TempExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cachingtestXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_path_ = base_ + "/export";
    auto exp = MakeExportedDir(root_path_, 0755);
    ASSERT_TRUE(exp.ok()) << exp.status();
    exp_ = *exp;
    me_.uid = geteuid();
    me_.gid = getegid();
  }
  void TearDown() override {
    exp_.reset();
    DrainReleases();  // what the export and the caches queued, before its files go
    ASSERT_EQ(system(absl::StrCat("rm -rf ", base_).c_str()), 0);
  }

  std::string base_, root_path_;
  Ref<exports::Export> exp_;
  Credentials me_;
};

class CachingBackendTest : public TempExportTest {
 protected:
  void SetUp() override {
    TempExportTest::SetUp();
    if (HasFatalFailure()) return;
    MemoryBackendOptions o;
    o.privileged = CanSwitchCredentials();
    o.server_uid = me_.uid;
    o.server_gid = me_.gid;
    o.root_uid = me_.uid;
    o.root_gid = me_.gid;
    memory_ = std::make_unique<MemoryBackend>(o);
    caching_ = std::make_unique<CachingBackend>(*memory_, FileCacheOptions{});
    root_ = *caching_->OpenPath(*exp_, "");
  }
  void TearDown() override {
    root_ = Object();
    caching_.reset();
    memory_.reset();
    TempExportTest::TearDown();
  }

  Object Create(Backend& b, const std::string& name) {
    auto made = b.Create(root_, name, CreateHow::kGuarded, {}, 0, Caller{me_});
    EXPECT_TRUE(made.ok()) << made.status();
    return made.ok() ? std::move(*made) : Object();
  }
  absl::Status Write(const Object& o) {
    const std::string text = "data";
    return caching_->Write(o, me_, 0, absl::MakeConstSpan(text.data(), text.size()),
                           Stability::kUnstable)
        .status();
  }
  absl::Status Read(const Object& o) {
    char buf[8];
    return caching_->Read(o, me_, 0, absl::MakeSpan(buf, sizeof(buf))).status();
  }

  std::unique_ptr<MemoryBackend> memory_;
  std::unique_ptr<CachingBackend> caching_;
  Object root_;
};

TEST_F(CachingBackendTest, AHotHandleIsResolvedByHandleOnce) {
  Object f = Create(*memory_, "f");  // made behind the cache: not in it
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(caching_->Resolve(*exp_, f.handle()).ok());
  EXPECT_EQ(memory_->nodes_opened(), 1u);
}

TEST_F(CachingBackendTest, NewAndLookedUpObjectsAreKeptForTheirNextUse) {
  Object made = Create(*caching_, "made");
  Create(*memory_, "found");
  ASSERT_TRUE(caching_->Lookup(root_, "found", me_).ok());
  ASSERT_TRUE(caching_->Resolve(*exp_, made.handle()).ok());
  ASSERT_TRUE(caching_->Resolve(*exp_, caching_->Lookup(root_, "found", me_)->handle()).ok());
  EXPECT_EQ(memory_->nodes_opened(), 0u);
}

TEST_F(CachingBackendTest, ReadsWritesAndCommitsShareOneOpenFile) {
  Object f = Create(*caching_, "f");
  ASSERT_TRUE(Write(f).ok());
  ASSERT_TRUE(Read(f).ok());  // a read-write file serves a read
  ASSERT_TRUE(Write(f).ok());
  ASSERT_TRUE(caching_->Commit(f, me_).ok());
  EXPECT_EQ(memory_->files_opened(), 1u);
  Object g = Create(*caching_, "g");
  ASSERT_TRUE(Read(g).ok());
  ASSERT_TRUE(Read(g).ok());
  EXPECT_EQ(memory_->files_opened(), 2u);
}

TEST_F(CachingBackendTest, RemoveAndRenameOverDropTheObjectsEntries) {
  Object f = Create(*caching_, "f");
  ASSERT_TRUE(Write(f).ok());
  Object g = Create(*caching_, "g");
  ASSERT_TRUE(Write(g).ok());
  const size_t before = caching_->file_cache().size();  // root + f, g: node and file each
  ASSERT_TRUE(caching_->Remove(root_, "f", RemoveKind::kNonDirectory, Caller{me_}).ok());
  EXPECT_EQ(caching_->file_cache().size(), before - 2);
  Create(*caching_, "h");
  ASSERT_TRUE(caching_->Rename(root_, "h", root_, "g", Caller{me_}).ok());  // g replaced
  EXPECT_EQ(caching_->file_cache().size(), before - 2 - 2 + 1);
}

TEST_F(CachingBackendTest, ACachedObjectRemovedBehindItsBackIsStaleAndDropped) {
  Object f = Create(*caching_, "f");
  ASSERT_TRUE(caching_->Resolve(*exp_, f.handle()).ok());
  const size_t before = caching_->file_cache().size();
  ASSERT_TRUE(memory_->Remove(root_, "f", RemoveKind::kNonDirectory, Caller{me_}).ok());
  EXPECT_EQ(StatusErrno(caching_->Resolve(*exp_, f.handle()).status()), ESTALE);
  EXPECT_EQ(caching_->file_cache().size(), before - 1);
}

// The POSIX backend under the caching layer, each test with its own resolver and layer.
class CachingPosixBackendTest : public TempExportTest {};

// On disk, objects change behind the server's back (a local process): a cached node is
// judged again on every use, dropped once stale, and good again when it is back.
TEST_F(CachingPosixBackendTest, CachedObjectsChangedBehindTheServersBackAreJudgedOnUse) {
  for (bool privileged : {true, false}) {
    HandleResolver resolver;
    resolver.SetPrivilegedForTesting(privileged);
    if (privileged) {
      resolver.Start(*exp_);
      if (!resolver.privileged()) continue;  // needs CAP_DAC_READ_SEARCH
    }
    PosixBackend posix(resolver);
    CachingBackend caching(posix, FileCacheOptions{});
    auto root = caching.OpenPath(*exp_, "");
    ASSERT_TRUE(root.ok()) << root.status();
    const std::string name = privileged ? "gone-p" : "gone-u";
    auto f = caching.Create(*root, name, CreateHow::kGuarded, {}, 0, Caller{me_});
    ASSERT_TRUE(f.ok()) << f.status();
    const Handle fh = f->handle();
    *f = Object();
    // Kept by the cache from its creation on: resolving adds no entry.
    const size_t cached = caching.file_cache().size();
    ASSERT_TRUE(caching.Resolve(*exp_, fh).ok());
    ASSERT_TRUE(caching.Resolve(*exp_, fh).ok());
    EXPECT_EQ(caching.file_cache().size(), cached) << privileged;
    // Removed by a local process: no REMOVE reached the cache.
    ASSERT_EQ(unlink((root_path_ + "/" + name).c_str()), 0);
    EXPECT_EQ(StatusErrno(caching.Resolve(*exp_, fh).status()), ESTALE) << privileged;
    EXPECT_EQ(caching.file_cache().size(), cached - 1) << privileged;
    // Recreated under the same name: another object; the old handle stays stale.
    ASSERT_TRUE(caching.Create(*root, name, CreateHow::kGuarded, {}, 0, Caller{me_}).ok());
    EXPECT_EQ(StatusErrno(caching.Resolve(*exp_, fh).status()), ESTALE) << privileged;
    if (privileged) {
      // A directory moved out of the export is stale while out, and good again back in.
      auto d = caching.Mkdir(*root, "d", {}, Caller{me_});
      ASSERT_TRUE(d.ok()) << d.status();
      const Handle dh = d->handle();
      *d = Object();
      ASSERT_TRUE(caching.Resolve(*exp_, dh).ok());
      ASSERT_EQ(rename((root_path_ + "/d").c_str(), (base_ + "/d").c_str()), 0);
      EXPECT_EQ(StatusErrno(caching.Resolve(*exp_, dh).status()), ESTALE);
      ASSERT_EQ(rename((base_ + "/d").c_str(), (root_path_ + "/d").c_str()), 0);
      EXPECT_TRUE(caching.Resolve(*exp_, dh).ok());
    }
    root = Object();
    caching.Shutdown();
    resolver.Shutdown();
  }
}

// LOCALIO opens take the cached object but a file of their own, never the server's cached
// one (backend.h OpenForLocalIo: a shared open file description's flags are the client's
// to change).
TEST_F(CachingPosixBackendTest, LocalIoOpensShareTheNodeButNotTheServersFiles) {
  HandleResolver resolver;
  resolver.Start(*exp_);
  PosixBackend posix(resolver);
  CachingBackend caching(posix, FileCacheOptions{});
  auto root = caching.OpenPath(*exp_, "");
  ASSERT_TRUE(root.ok()) << root.status();
  auto f = caching.Create(*root, "f", CreateHow::kGuarded, {}, 0, Caller{me_});
  ASSERT_TRUE(f.ok()) << f.status();
  const std::string text = "data";
  ASSERT_TRUE(caching
                  .Write(*f, me_, 0, absl::MakeConstSpan(text.data(), text.size()),
                         Stability::kUnstable)
                  .ok());
  auto first = caching.OpenForLocalIo(*f, me_, FileMode::kRead);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(fcntl((*first)->fd(), F_GETFL) & O_ACCMODE, O_RDONLY);
  auto second = caching.OpenForLocalIo(*f, me_, FileMode::kRead);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(first->get(), second->get());  // a file each
  auto rw = caching.OpenForLocalIo(*f, me_, FileMode::kReadWrite);
  ASSERT_TRUE(rw.ok()) << rw.status();
  EXPECT_EQ(fcntl((*rw)->fd(), F_GETFL) & O_ACCMODE, O_RDWR);
  // Status flags set on a client's file do not reach the server's: WRITE at 0 stays at 0.
  ASSERT_EQ(fcntl((*rw)->fd(), F_SETFL, O_APPEND), 0);
  ASSERT_TRUE(caching
                  .Write(*f, me_, 0, absl::MakeConstSpan("DA", 2), Stability::kUnstable)
                  .ok());
  char buf[8] = {};
  auto read = caching.Read(*f, me_, 0, absl::MakeSpan(buf, sizeof(buf)));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(std::string(buf, read->count), "DAta");
  // root and f (kPath) and the server's kReadWrite file of f's WRITEs: nothing of LOCALIO's.
  EXPECT_EQ(caching.file_cache().size(), 3u);
  root = Object();
  f = Object();
  caching.Shutdown();
  resolver.Shutdown();
}

}  // namespace
}  // namespace localnfs::server::backend
