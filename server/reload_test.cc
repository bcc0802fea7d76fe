// server/reload_test.cc — the ReloadQueue hand-off (a request is answered only by a
// reload that began after it; the bound and Close() end the wait) and DiffExports over
// a real ExportTable.
#include "server/reload.h"

#include <poll.h>
#include <sys/stat.h>

#include <memory>
#include <string>
#include <thread>

#include "export_cache/export_table.h"
#include "export_cache/exports_parser.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace localnfs::server {
namespace {

bool Readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

ReloadReport Report(const std::string& cause) {
  ReloadReport r;
  r.outcome = ReloadReport::Outcome::kReloaded;
  r.cause = cause;
  return r;
}

TEST(ReloadQueueTest, ARequestWakesTheMainLoopAndGetsTheReportOfItsReload) {
  ReloadQueue q;
  EXPECT_FALSE(Readable(q.wake_fd(), 0));
  EXPECT_FALSE(q.Last().has_value());
  ReloadReport got;
  std::thread requester([&] { got = q.RequestAndWait(absl::Seconds(60)); });
  ASSERT_TRUE(Readable(q.wake_fd(), 10000)) << "no wakeup for the request";
  const uint64_t ticket = q.Begin();
  EXPECT_FALSE(Readable(q.wake_fd(), 0)) << "Begin() takes the wakeup of what it covers";
  q.Finish(ticket, Report("localnfs-ctl"));
  requester.join();
  EXPECT_EQ(got.outcome, ReloadReport::Outcome::kReloaded);
  EXPECT_EQ(got.cause, "localnfs-ctl");
  ASSERT_TRUE(q.Last().has_value());
  EXPECT_EQ(q.Last()->cause, "localnfs-ctl");
}

TEST(ReloadQueueTest, AReloadThatBeganBeforeTheRequestDoesNotAnswerIt) {
  ReloadQueue q;
  const uint64_t early = q.Begin();  // e.g. a SIGHUP reload, running
  ReloadReport got;
  std::thread requester([&] { got = q.RequestAndWait(absl::Seconds(60)); });
  ASSERT_TRUE(Readable(q.wake_fd(), 10000));
  // It read the file before the request: its result is not the requester's.
  q.Finish(early, Report("SIGHUP"));
  const uint64_t next = q.Begin();
  q.Finish(next, Report("localnfs-ctl"));
  requester.join();
  EXPECT_EQ(got.cause, "localnfs-ctl");
}

TEST(ReloadQueueTest, ASighupReloadThatBeginsLaterAnswersTheRequestToo) {
  ReloadQueue q;
  ReloadReport got;
  std::thread requester([&] { got = q.RequestAndWait(absl::Seconds(60)); });
  ASSERT_TRUE(Readable(q.wake_fd(), 10000));
  const uint64_t ticket = q.Begin();  // the SIGHUP was read first
  q.Finish(ticket, Report("SIGHUP"));
  requester.join();
  EXPECT_EQ(got.cause, "SIGHUP");
  EXPECT_FALSE(Readable(q.wake_fd(), 0)) << "no second reload for a covered request";
}

TEST(ReloadQueueTest, TheBoundEndsTheWaitWithAnUnknownOutcome) {
  ReloadQueue q;
  const ReloadReport got = q.RequestAndWait(absl::Milliseconds(20));
  EXPECT_EQ(got.outcome, ReloadReport::Outcome::kUnknown);
  EXPECT_NE(got.error.find("outcome is logged"), std::string::npos) << got.error;
  EXPECT_TRUE(Readable(q.wake_fd(), 0)) << "the reload is still asked for";
}

TEST(ReloadQueueTest, CloseRefusesTheWaitingRequestAndLaterOnes) {
  ReloadQueue q;
  ReloadReport got;
  std::thread requester([&] { got = q.RequestAndWait(absl::Seconds(600)); });
  ASSERT_TRUE(Readable(q.wake_fd(), 10000));
  q.Close();
  requester.join();  // at once, not after 600 s
  EXPECT_EQ(got.outcome, ReloadReport::Outcome::kRefused);
  EXPECT_EQ(got.error, "localnfsd is shutting down");
  EXPECT_EQ(q.RequestAndWait(absl::Seconds(600)).outcome, ReloadReport::Outcome::kRefused);
}

// The RCU registration and the release queue are the test program's
// (server_test_environment.cc).
class DiffExportsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* d : {"a", "b", "c", "d"}) ASSERT_EQ(mkdir(Dir(d).c_str(), 0755), 0);
  }
  void TearDown() override { table_.Shutdown(); }
  std::string Dir(const std::string& name) const { return tmp_.Sub(name); }
  exports::ExportSpec Spec(const std::string& name, const std::string& opts) {
    absl::StatusOr<exports::ExportSpec> spec = exports::ParseExportArg(Dir(name) + ":" + opts);
    EXPECT_TRUE(spec.ok()) << spec.status();
    return *spec;
  }
  ExportsById Objects() {
    ExportsById ids;
    for (Ref<exports::Export>& e : table_.List()) ids.emplace(e->id(), std::move(e));
    return ids;
  }

  localnfs::testing::TempDir tmp_;
  exports::ExportTable table_;
};

TEST_F(DiffExportsTest, NamesTheAddedChangedAndRemovedExports) {
  ASSERT_TRUE(table_.Load({Spec("a", "rw"), Spec("b", "rw"), Spec("c", "rw")}).ok());
  const ExportsById before = Objects();
  ASSERT_TRUE(table_.Load({Spec("a", "rw"), Spec("b", "ro"), Spec("d", "rw")}).ok());
  ReloadReport r;
  DiffExports(before, Objects(), &r);
  ASSERT_EQ(r.added.size(), 1u);
  EXPECT_EQ(r.added[0].path, Dir("d"));
  EXPECT_EQ(r.added[0].rules, "*(rw,sync,root_squash,anonuid=65534,anongid=65534)");
  ASSERT_EQ(r.changed.size(), 1u);
  EXPECT_EQ(r.changed[0].path, Dir("b"));
  EXPECT_EQ(r.changed[0].old_path, Dir("b"));
  EXPECT_EQ(r.changed[0].rules, "*(ro,sync,root_squash,anonuid=65534,anongid=65534)");
  EXPECT_EQ(r.changed[0].old_rules, "*(rw,sync,root_squash,anonuid=65534,anongid=65534)");
  ASSERT_EQ(r.removed.size(), 1u);
  EXPECT_EQ(r.removed[0].path, Dir("c"));
  EXPECT_EQ(r.unchanged, 1u);
}

TEST_F(DiffExportsTest, AnFsidKeptAcrossARenameIsAChangeOfPath) {
  ASSERT_TRUE(table_.Load({Spec("a", "rw,fsid=7")}).ok());
  const ExportsById before = Objects();
  ASSERT_TRUE(table_.Load({Spec("b", "rw,fsid=7")}).ok());
  ReloadReport r;
  DiffExports(before, Objects(), &r);
  EXPECT_TRUE(r.added.empty());
  EXPECT_TRUE(r.removed.empty());
  ASSERT_EQ(r.changed.size(), 1u);
  EXPECT_EQ(r.changed[0].id, 7u);
  EXPECT_EQ(r.changed[0].path, Dir("b"));
  EXPECT_EQ(r.changed[0].old_path, Dir("a"));
}

}  // namespace
}  // namespace localnfs::server
