// server/server_test_environment.cc — linked into every gtest program of server code
// (server/meson.build): one ServerTestRuntime (server_test_runtime.h) from before the
// first test to after the last, so that no fixture holds one of its own.
//
// LOCALNFS_TEST_AS_UID=N, for a program run as root: the process becomes uid/gid N (no
// supplementary groups) first, before the runtime records the server's identity — its
// tests then see an unprivileged server (the backend conformance suite runs so).
#include <grp.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <optional>

#include "gtest/gtest.h"
#include "server/server_test_runtime.h"

namespace localnfs::server {
namespace {

class ServerTestEnvironment final : public ::testing::Environment {
 public:
  void SetUp() override {
    DropPrivilegesIfAsked();
    if (::testing::Test::HasFatalFailure()) return;
    runtime_.emplace();
  }
  void TearDown() override { runtime_.reset(); }

 private:
  static void DropPrivilegesIfAsked() {
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

  std::optional<ServerTestRuntime> runtime_;
};

[[maybe_unused]] ::testing::Environment* const kServerTestEnvironment =
    ::testing::AddGlobalTestEnvironment(new ServerTestEnvironment);

}  // namespace
}  // namespace localnfs::server
