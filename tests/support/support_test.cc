// tests/support/support_test.cc — the test-support library's own tests: the launcher and
// the child-process helper detect every kind of sanitizer report (ASan, LSan, UBSan,
// TSan) on every path that ends a process — a SIGTERM stop, a kill -9 on purpose, a
// process that exits by itself, a start that fails, the destructor, a command run to
// completion — and a clean process passes. The "server" is fake_localnfsd
// ($FAKE_LOCALNFSD), which prints the report asked for; the failures the library
// reports are intercepted (gtest-spi) and checked, so this test passes when they come.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "tests/support/child.h"
#include "tests/support/localnfsd.h"
#include "tests/support/sanitizer.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace localnfs::testing {
namespace {

using namespace std::chrono_literals;

std::string FakeServer() {
  const char* p = getenv("FAKE_LOCALNFSD");
  return p != nullptr ? p : "";
}

// The marker each kind of report must be found by, as fake_localnfsd prints it.
std::string Marker(const std::string& kind) {
  if (kind == "asan") return "ERROR: AddressSanitizer: heap-use-after-free";
  if (kind == "lsan") return "ERROR: LeakSanitizer: detected memory leaks";
  if (kind == "ubsan") return "runtime error: signed integer overflow";
  return "WARNING: ThreadSanitizer: data race";
}

// Runs `f`; returns the messages of the test failures it reported, intercepted (they
// do not fail this test).
std::vector<std::string> FailuresOf(const std::function<void()>& f) {
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    f();
  }
  std::vector<std::string> out;
  for (int i = 0; i < results.size(); ++i) out.push_back(results.GetTestPartResult(i).message());
  return out;
}

// True when one of `failures` names the sanitizer report that holds `marker`.
::testing::AssertionResult ReportsSanitizer(const std::vector<std::string>& failures,
                                            const std::string& marker) {
  for (const std::string& f : failures)
    if (f.find("sanitizer report") != std::string::npos && f.find(marker) != std::string::npos)
      return ::testing::AssertionSuccess();
  ::testing::AssertionResult r = ::testing::AssertionFailure();
  r << "no failure names the report '" << marker << "'; " << failures.size() << " failure(s):";
  for (const std::string& f : failures) r << "\n  " << f;
  return r;
}

ServerOptions Fake(const std::string& kind, const std::string& when) {
  return ServerOptions{.args = {"--report", kind, "--when", when}, .binary = FakeServer()};
}

TEST(FindSanitizerReportTest, FindsEveryKindAndNothingElse) {
  const std::pair<const char*, const char*> reports[] = {
      {"==12==ERROR: AddressSanitizer: SEGV on unknown address", "ERROR: AddressSanitizer"},
      {"==12==ERROR: LeakSanitizer: detected memory leaks", "ERROR: LeakSanitizer"},
      {"rpc/server.cc:1:2: runtime error: load of misaligned address", "runtime error:"},
      {"==12==ERROR: UndefinedBehaviorSanitizer: SEGV on unknown address",
       "ERROR: UndefinedBehaviorSanitizer"},
      {"WARNING: ThreadSanitizer: data race (pid=12)", "WARNING: ThreadSanitizer"},
      {"FATAL: ThreadSanitizer: unexpected memory mapping", "FATAL: ThreadSanitizer"},
  };
  for (const auto& [line, marker] : reports) {
    const std::string text = std::string("localnfsd: ready\nbefore\n") + line + "\nafter\n";
    EXPECT_EQ(FindSanitizerReport(text), line) << marker;
    EXPECT_TRUE(HasSanitizerReport(text)) << marker;
  }
  EXPECT_EQ(FindSanitizerReport(""), "");
  EXPECT_EQ(FindSanitizerReport("INFO main.cc: AddressSanitizer build; no error\n"), "");
  EXPECT_EQ(FindSanitizerReport("a runtime error without its colon\n"), "");
}

class LauncherScanTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override { ASSERT_FALSE(FakeServer().empty()) << "$FAKE_LOCALNFSD unset"; }
  std::string kind() const { return GetParam(); }
};

TEST_P(LauncherScanTest, StopAfterSigtermFails) {
  ServerProcess srv(Fake(kind(), "serving"));
  ASSERT_TRUE(srv.Start());
  ASSERT_TRUE(srv.WaitForStderr(Marker(kind())));
  EXPECT_TRUE(srv.SanitizerReported());
  ::testing::AssertionResult stopped = ::testing::AssertionSuccess();
  EXPECT_TRUE(ReportsSanitizer(FailuresOf([&] { stopped = srv.Stop(); }), Marker(kind())));
  // Exit 0 on SIGTERM, yet Stop() fails: the report alone does it.
  EXPECT_FALSE(stopped);
  EXPECT_TRUE(WIFEXITED(srv.exit_status()) && WEXITSTATUS(srv.exit_status()) == 0);
}

TEST_P(LauncherScanTest, KillNineOnPurposeStillFails) {
  ServerProcess srv(Fake(kind(), "serving"));
  ASSERT_TRUE(srv.Start());
  ASSERT_TRUE(srv.WaitForStderr(Marker(kind())));
  EXPECT_TRUE(ReportsSanitizer(FailuresOf([&] { srv.Kill9(); }), Marker(kind())));
  EXPECT_FALSE(srv.running());
}

TEST_P(LauncherScanTest, ServerThatExitsByItselfFails) {
  ServerProcess srv(Fake(kind(), "exit"));
  ASSERT_TRUE(srv.Start());
  int status = -1;
  EXPECT_TRUE(ReportsSanitizer(FailuresOf([&] { status = srv.WaitExit(10s); }), Marker(kind())));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST_P(LauncherScanTest, StartThatFailsBeforeReadyFails) {
  ServerProcess srv(Fake(kind(), "before-ready"));
  ::testing::AssertionResult started = ::testing::AssertionSuccess();
  EXPECT_TRUE(ReportsSanitizer(FailuresOf([&] { started = srv.Start(); }), Marker(kind())));
  EXPECT_FALSE(started);
  EXPECT_TRUE(WIFEXITED(srv.exit_status()) && WEXITSTATUS(srv.exit_status()) == 1);
}

TEST_P(LauncherScanTest, DestructorOfARunningServerFails) {
  auto srv = std::make_unique<ServerProcess>(Fake(kind(), "serving"));
  ASSERT_TRUE(srv->Start());
  ASSERT_TRUE(srv->WaitForStderr(Marker(kind())));
  EXPECT_TRUE(ReportsSanitizer(FailuresOf([&] { srv.reset(); }), Marker(kind())));
}

TEST_P(LauncherScanTest, RunCommandAndChildFail) {
  std::string out;
  int rc = -1;
  EXPECT_TRUE(ReportsSanitizer(FailuresOf([&] {
                                 rc = RunCommand({FakeServer(), "--report", kind(), "--when",
                                                  "exit"},
                                                 &out, 10s);
                               }),
                               Marker(kind())));
  EXPECT_EQ(rc, 0) << out;
  // A Child that is killed (SIGKILL by its destructor) is scanned too.
  EXPECT_TRUE(ReportsSanitizer(FailuresOf([&] {
                                 Child child;
                                 ASSERT_TRUE(child.Start({FakeServer(), "--report", kind()}));
                                 ASSERT_TRUE(child.WaitForOutput(Marker(kind()), 10s));
                               }),
                               Marker(kind())));
}

TEST_P(LauncherScanTest, ExpectedReportDoesNotFail) {
  Child child(ChildOptions{.fail_on_sanitizer_report = false});
  ASSERT_TRUE(child.Start({FakeServer(), "--report", kind(), "--when", "exit"}));
  int status = -1;
  ASSERT_TRUE(child.Wait(10s, &status));
  EXPECT_NE(child.SanitizerReport().find(Marker(kind())), std::string::npos) << child.Output();
}

INSTANTIATE_TEST_SUITE_P(Kinds, LauncherScanTest,
                         ::testing::Values("asan", "lsan", "ubsan", "tsan"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

TEST(LauncherTest, CleanServerStopsStartsAgainAndPasses) {
  ASSERT_FALSE(FakeServer().empty()) << "$FAKE_LOCALNFSD unset";
  ServerOptions o = Fake("none", "serving");
  o.keep_ports = true;
  ServerProcess srv(o);
  EXPECT_TRUE(FailuresOf([&] {
                ASSERT_TRUE(srv.Start());
                EXPECT_EQ(srv.nfs_port(), 1);
                EXPECT_EQ(srv.mount_port(), 2);
                ASSERT_TRUE(srv.Restart());
                EXPECT_TRUE(srv.Stop());
              }).empty());
  EXPECT_FALSE(srv.SanitizerReported());
  // keep_ports: the first start got ports 0, the second the ports the first reported.
  const std::string err = srv.StderrText();
  const size_t first = err.find("--port 0 --mount-port 0 ");
  EXPECT_NE(first, std::string::npos) << err;
  EXPECT_NE(err.find("--port 1 --mount-port 2 ", first), std::string::npos) << err;
}

TEST(ChildTest, WaitsForOutputAndStopsWaitingWhenTheChildExits) {
  Child child;
  ASSERT_TRUE(child.Start({"sh", "-c", "echo one; echo two >&2; exit 3"}));
  EXPECT_TRUE(child.WaitForOutput("two\n", 10s));
  // The text never comes and the child is gone: false at once, not at the deadline.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(child.WaitForOutput("three", 60s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);
  int status = -1;
  ASSERT_TRUE(child.Wait(10s, &status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3);
  EXPECT_EQ(child.Output(), "one\ntwo\n");
}

TEST(ChildTest, SeparateStderrAndAnotherUser) {
  Child child(ChildOptions{.separate_stderr = true, .uid = 65534, .gid = 65534,
                           .env = std::vector<std::string>{"PATH=/usr/bin:/bin", "X=y"}});
  ASSERT_TRUE(child.Start({"sh", "-c", "id -u; echo \"$X\" >&2"}));
  int status = -1;
  ASSERT_TRUE(child.Wait(10s, &status));
  EXPECT_EQ(child.Output(), geteuid() == 0 ? "65534\n" : "");
  if (geteuid() == 0) {
    EXPECT_EQ(child.Stderr(), "y\n");
  }
}

TEST(WaitUntilTest, TrueOnTheEventFalseAtTheDeadline) {
  int n = 0;
  EXPECT_TRUE(WaitUntil([&] { return ++n >= 3; }, 10s, 1ms));
  EXPECT_EQ(n, 3);
  EXPECT_FALSE(WaitUntil([] { return false; }, 20ms));
}

TEST(TempDirTest, RemovesEverythingAlsoUnreadableDirectories) {
  std::string path;
  {
    TempDir dir("support-test");
    path = dir.path();
    ASSERT_EQ(mkdir(dir.Sub("locked").c_str(), 0755), 0);
    ASSERT_TRUE(WriteFile(dir.Sub("locked/f"), "data"));
    EXPECT_EQ(ReadFile(dir.Sub("locked/f")), "data");
    ASSERT_EQ(chmod(dir.Sub("locked").c_str(), 0), 0);
  }
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace localnfs::testing
