#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/rcu.h"
#include "common/release_queue.h"
#include "export_cache/export_table.h"
#include "export_cache/exports_parser.h"
#include "gtest/gtest.h"
#include "tests/support/rcu_wait.h"
#include "tests/support/temp_dir.h"

namespace localnfs::exports {
namespace {

bool FdValid(int fd) {
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0;
}

class ExportTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StartReleaseQueue();
    tmp_ = std::make_unique<localnfs::testing::TempDir>("export_table_test");
    root_ = tmp_->path();
    for (const char* d : {"a", "b", "c"}) ASSERT_EQ(mkdir(Dir(d).c_str(), 0755), 0);
    base_live_ = Export::LiveCount();
  }
  void TearDown() override {
    DrainReleases();
    EXPECT_EQ(Export::LiveCount(), base_live_) << "an Export was leaked";
    StopReleaseQueue();
    tmp_.reset();
  }

  std::string Dir(const std::string& name) const { return root_ + "/" + name; }
  ExportSpec Spec(const std::string& name, const std::string& opts = "rw") {
    absl::StatusOr<ExportSpec> spec = ParseExportArg(Dir(name) + ":" + opts);
    EXPECT_TRUE(spec.ok()) << spec.status();
    return *spec;
  }

  RcuThread rcu_;
  std::unique_ptr<localnfs::testing::TempDir> tmp_;
  std::string root_;
  int64_t base_live_ = 0;
};

TEST_F(ExportTableTest, CreateOpensRootAndDerivesIdFromPath) {
  absl::StatusOr<Ref<Export>> exp = Export::Create(Spec("a"));
  ASSERT_TRUE(exp.ok()) << exp.status();
  struct stat st;
  ASSERT_EQ(stat(Dir("a").c_str(), &st), 0);
  EXPECT_EQ((*exp)->root_dev(), st.st_dev);
  EXPECT_EQ((*exp)->root_ino(), st.st_ino);
  EXPECT_TRUE(FdValid((*exp)->root_fd()));
  EXPECT_EQ((*exp)->id(), ExportIdForPath(Dir("a")));
  EXPECT_EQ((*exp)->path(), Dir("a"));
  int flags = fcntl((*exp)->root_fd(), F_GETFD);
  EXPECT_TRUE(flags & FD_CLOEXEC);
}

TEST_F(ExportTableTest, CreateUsesFsid) {
  absl::StatusOr<Ref<Export>> exp = Export::Create(Spec("a", "ro,fsid=77"));
  ASSERT_TRUE(exp.ok());
  EXPECT_EQ((*exp)->id(), 77u);
}

TEST_F(ExportTableTest, CreateNamesMissingPath) {
  absl::StatusOr<Ref<Export>> exp = Export::Create(Spec("missing"));
  ASSERT_FALSE(exp.ok());
  EXPECT_EQ(exp.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(exp.status().message(),
            "export " + Dir("missing") + ": No such file or directory");
}

TEST_F(ExportTableTest, CreateRejectsNonDirectory) {
  int fd = open(Dir("file").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  close(fd);
  absl::StatusOr<Ref<Export>> exp = Export::Create(Spec("file"));
  ASSERT_FALSE(exp.ok());
  EXPECT_EQ(exp.status().message(), "export " + Dir("file") + ": Not a directory");
}

TEST_F(ExportTableTest, ExportIdForPathIsStableAndNonZero) {
  // SHA-256("/srv") starts with these bytes; the id must never change across
  // releases, or every client's file handles go stale.
  EXPECT_EQ(ExportIdForPath("/srv"), ExportIdForPath(std::string("/srv")));
  EXPECT_NE(ExportIdForPath("/srv"), ExportIdForPath("/srv2"));
  EXPECT_EQ(ExportIdForPath(""), 0xe3b0c442u);     // SHA-256 of "" = e3b0c442...
  EXPECT_EQ(ExportIdForPath("abc"), 0xba7816bfu);  // SHA-256("abc") = ba7816bf...
  for (int i = 0; i < 1000; ++i) EXPECT_NE(ExportIdForPath("/x" + std::to_string(i)), 0u);
}

TEST_F(ExportTableTest, LoadThenFindByIdPathAndList) {
  ExportTable table;
  EXPECT_EQ(table.generation(), 0u);
  ASSERT_TRUE(table.Load({Spec("a"), Spec("b", "ro,fsid=9")}).ok());
  EXPECT_EQ(table.generation(), 1u);
  Ref<Export> a = table.FindByPath(Dir("a"));
  ASSERT_TRUE(a);
  EXPECT_EQ(table.FindById(a->id()).get(), a.get());
  Ref<Export> b = table.FindById(9);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->path(), Dir("b"));
  EXPECT_FALSE(table.FindByPath(Dir("c")));
  EXPECT_FALSE(table.FindById(12345));
  std::vector<Ref<Export>> list = table.List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]->path(), Dir("a"));  // in the order given
  EXPECT_EQ(list[1]->path(), Dir("b"));
}

TEST_F(ExportTableTest, LoadErrorChangesNothing) {
  ExportTable table;
  ASSERT_TRUE(table.Load({Spec("a")}).ok());
  Ref<Export> a = table.FindByPath(Dir("a"));

  ExportSpec missing = Spec("missing");
  missing.line = 4;
  absl::Status s = table.Load({Spec("b"), missing});
  EXPECT_EQ(s.message(),
            "line 4: export " + Dir("missing") + ": No such file or directory");
  // Read from a file: named like the parser's errors, FILE:LINE.
  missing.file = "/etc/exports";
  s = table.Load({Spec("b"), missing});
  EXPECT_EQ(s.message(),
            "/etc/exports:4: export " + Dir("missing") + ": No such file or directory");

  s = table.Load({Spec("b", "fsid=5"), Spec("c", "fsid=5")});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("id 5 is already used by export " + Dir("b")),
            std::string::npos)
      << s;

  s = table.Load({Spec("b"), Spec("b", "ro")});
  EXPECT_NE(s.message().find("listed twice"), std::string::npos) << s;

  EXPECT_EQ(table.generation(), 1u);
  EXPECT_EQ(table.FindByPath(Dir("a")).get(), a.get());
  EXPECT_FALSE(table.FindByPath(Dir("b")));
  EXPECT_EQ(table.List().size(), 1u);
}

TEST_F(ExportTableTest, LoadRejectsUnnormalisedPath) {
  ExportSpec spec = Spec("a");
  spec.path += "/";
  ExportTable table;
  absl::Status s = table.Load({spec});
  EXPECT_NE(s.message().find("is not absolute and normalised"), std::string::npos) << s;
}

TEST_F(ExportTableTest, ConflictingFsidsInOneExportAreRejected) {
  absl::StatusOr<std::vector<ExportSpec>> specs =
      ParseExports(Dir("a") + " 10.0.0.1(fsid=1) 10.0.0.2(fsid=2)\n", "exports");
  ASSERT_TRUE(specs.ok());
  ExportTable table;
  absl::Status s = table.Load(*specs);
  EXPECT_NE(s.message().find("conflicting fsid=1 and fsid=2"), std::string::npos) << s;
}

TEST_F(ExportTableTest, ReloadKeepsUnchangedReplacesChangedRemovesRemoved) {
  ExportTable table;
  ASSERT_TRUE(table.Load({Spec("a"), Spec("b"), Spec("c")}).ok());
  Ref<Export> a = table.FindByPath(Dir("a"));
  Ref<Export> b = table.FindByPath(Dir("b"));
  const uint32_t c_id = table.FindByPath(Dir("c"))->id();

  ExportSpec a_moved = Spec("a");
  a_moved.line = 17;  // only the line changed: same export
  ASSERT_TRUE(table.Load({a_moved, Spec("b", "ro")}).ok());
  EXPECT_EQ(table.generation(), 2u);
  EXPECT_EQ(table.FindByPath(Dir("a")).get(), a.get());
  Ref<Export> b2 = table.FindByPath(Dir("b"));
  ASSERT_TRUE(b2);
  EXPECT_NE(b2.get(), b.get());
  EXPECT_TRUE(b2->spec().rules[0].options.read_only);
  EXPECT_EQ(b2->id(), b->id());  // same path, same id: handles stay valid
  EXPECT_EQ(table.FindById(b->id()).get(), b2.get());
  EXPECT_FALSE(table.FindById(c_id));
  EXPECT_FALSE(table.FindByPath(Dir("c")));
}

TEST_F(ExportTableTest, ReloadReplacesExportWhoseDirectoryWasReplaced) {
  ExportTable table;
  ASSERT_TRUE(table.Load({Spec("a")}).ok());
  Ref<Export> old = table.FindByPath(Dir("a"));
  ASSERT_EQ(rename(Dir("a").c_str(), Dir("a.old").c_str()), 0);
  ASSERT_EQ(mkdir(Dir("a").c_str(), 0755), 0);
  ASSERT_TRUE(table.Load({Spec("a")}).ok());
  Ref<Export> now = table.FindByPath(Dir("a"));
  EXPECT_NE(now.get(), old.get());
  EXPECT_NE(now->root_ino(), old->root_ino());
}

TEST_F(ExportTableTest, RefHeldAcrossReloadKeepsOldExportAndFdAlive) {
  ExportTable table;
  ASSERT_TRUE(table.Load({Spec("a")}).ok());
  Ref<Export> old = table.FindByPath(Dir("a"));
  const int64_t live = Export::LiveCount();

  ASSERT_TRUE(table.Load({Spec("a", "ro")}).ok());  // changed: replaced
  Ref<Export> now = table.FindByPath(Dir("a"));
  ASSERT_NE(now.get(), old.get());
  DrainReleases();
  // The old one is still ours: alive, fd open, not released by the drain.
  EXPECT_EQ(Export::LiveCount(), live + 1);
  EXPECT_TRUE(FdValid(old->root_fd()));
  EXPECT_EQ(old->RefCountForTesting(), 1);

  old.reset();  // last reference: release queued after a grace period
  DrainReleases();
  EXPECT_EQ(Export::LiveCount(), live);
}

TEST_F(ExportTableTest, ReaderInReadSectionDelaysExportRelease) {
  ExportTable table;
  ASSERT_TRUE(table.Load({Spec("a")}).ok());
  const uint32_t id = table.FindByPath(Dir("a"))->id();
  const int64_t live = Export::LiveCount();
  std::atomic<bool> inside{false}, go{false};
  std::atomic<bool> fd_valid_inside{false};
  std::thread reader([&] {
    RcuThread registered;
    RcuReadLock lock;
    Ref<Export> exp = table.FindById(id);
    const Export* raw = exp.get();
    exp.reset();  // dropped inside the read section: only queues
    inside = true;
    while (!go) std::this_thread::yield();
    fd_valid_inside = FdValid(raw->root_fd());
  });
  while (!inside) std::this_thread::yield();
  ASSERT_TRUE(table.Load({}).ok());  // unexport: the table's references are gone
  EXPECT_FALSE(table.FindById(id));
  // The grace period that would allow the release has begun and waits for the reader.
  EXPECT_TRUE(testing::WaitForGracePeriodBlockedOnReader());
  EXPECT_EQ(Export::LiveCount(), live);  // not released while the reader is inside
  go = true;
  reader.join();
  EXPECT_TRUE(fd_valid_inside.load());
  DrainReleases();
  EXPECT_EQ(Export::LiveCount(), live - 1);
}

TEST_F(ExportTableTest, ShutdownUnregistersAndRunsEveryRelease) {
  const int64_t before = Export::LiveCount();
  ExportTable table;
  ASSERT_TRUE(table.Load({Spec("a"), Spec("b"), Spec("c")}).ok());
  const uint32_t a_id = table.FindByPath(Dir("a"))->id();
  // Reload once so that validation copies and retired indexes are in flight too.
  ASSERT_TRUE(table.Load({Spec("a"), Spec("b", "ro"), Spec("c")}).ok());
  // a, b (new) and c are alive; the old b and the validation copies of a and c may
  // still be queued.
  EXPECT_GE(Export::LiveCount(), before + 3);
  table.Shutdown();
  EXPECT_EQ(Export::LiveCount(), before);  // every release ran, no drain needed
  EXPECT_FALSE(table.FindById(a_id));
  EXPECT_FALSE(table.FindByPath(Dir("a")));
  EXPECT_TRUE(table.List().empty());
  EXPECT_EQ(table.Load({Spec("a")}).code(), absl::StatusCode::kFailedPrecondition);
  table.Shutdown();  // idempotent
}

TEST_F(ExportTableTest, LookupsConcurrentWithReloads) {
  ExportTable table;
  const std::vector<ExportSpec> with_c = {Spec("a"), Spec("b"), Spec("c")};
  const std::vector<ExportSpec> without_c = {Spec("a", "ro"), Spec("b")};
  ASSERT_TRUE(table.Load(with_c).ok());
  const uint32_t a_id = ExportIdForPath(Dir("a"));
  const uint32_t c_id = ExportIdForPath(Dir("c"));
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, found_c{0}, lookups{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      RcuThread registered;
      while (!stop) {
        lookups++;
        Ref<Export> a = table.FindById(a_id);
        if (!a || a->path() != Dir("a") || !FdValid(a->root_fd())) failures++;
        Ref<Export> by_path = table.FindByPath(Dir("b"));
        if (!by_path || !FdValid(by_path->root_fd())) failures++;
        if (Ref<Export> c = table.FindById(c_id)) {
          found_c++;
          if (c->path() != Dir("c") || !FdValid(c->root_fd())) failures++;
        }
        std::vector<Ref<Export>> list = table.List();
        if (list.size() != 2 && list.size() != 3) failures++;
        for (const Ref<Export>& e : list)
          if (!FdValid(e->root_fd())) failures++;
      }
    });
  }
  // At least 200 reloads, and keep going until the readers overlapped with them.
  int reloads = 0;
  while ((reloads < 200 || lookups.load() < 500 || found_c.load() == 0) &&
         reloads < 1000000)
    ASSERT_TRUE(table.Load(++reloads % 2 ? without_c : with_c).ok());
  stop = true;
  for (std::thread& r : readers) r.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(found_c.load(), 0);
  EXPECT_EQ(table.generation(), static_cast<uint64_t>(reloads) + 1);
}

TEST_F(ExportTableTest, MatchClientFirstRuleWins) {
  absl::StatusOr<std::vector<ExportSpec>> specs = ParseExports(
      Dir("a") + " 10.1.2.3(rw,no_root_squash) 10.0.0.0/8(ro) 192.168.0.0/16\n",
      "exports");
  ASSERT_TRUE(specs.ok()) << specs.status();
  absl::StatusOr<Ref<Export>> exp = Export::Create((*specs)[0]);
  ASSERT_TRUE(exp.ok());
  PeerAddress p;
  ASSERT_TRUE(PeerAddress::Parse("10.1.2.3", 700, &p));
  const ClientRule* rule = (*exp)->MatchClient(p);
  ASSERT_NE(rule, nullptr);
  EXPECT_EQ(rule->pattern.text, "10.1.2.3");
  EXPECT_EQ(rule->options.squash, Squash::kNone);
  ASSERT_TRUE(PeerAddress::Parse("::ffff:10.9.9.9", 700, &p));
  rule = (*exp)->MatchClient(p);
  ASSERT_NE(rule, nullptr);
  EXPECT_TRUE(rule->options.read_only);
  ASSERT_TRUE(PeerAddress::Parse("172.16.0.1", 700, &p));
  EXPECT_EQ((*exp)->MatchClient(p), nullptr);
}

}  // namespace
}  // namespace localnfs::exports
