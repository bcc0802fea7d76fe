// common/localio/proc_identity_test.cc — the process identity the broker records
// (proc_identity.h): a pid with another start time, a zombie and a reaped child are
// not alive.
#include "common/localio/proc_identity.h"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "gtest/gtest.h"
#include "tests/support/wait.h"

namespace localnfs::broker {
namespace {

TEST(ProcessLiveness, StartTimeAndZombies) {
  const pid_t self = ::getpid();
  const uint64_t start = ProcessStartTime(self);
  ASSERT_NE(start, 0u);
  EXPECT_TRUE(ProcessAlive(self, start));
  EXPECT_FALSE(ProcessAlive(self, start + 1));  // same pid, another process: reused
  EXPECT_FALSE(ProcessAlive(0, start));
  EXPECT_FALSE(ProcessAlive(-1, start));

  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  const uint64_t child_start = ProcessStartTime(child);  // may already be a zombie
  // Wait until it is a zombie (exited, not yet reaped): dead although the pid exists.
  localnfs::testing::WaitUntil([&] { return !ProcessAlive(child, child_start); },
                               std::chrono::seconds(1));
  EXPECT_FALSE(ProcessAlive(child, child_start));
  int status;
  ::waitpid(child, &status, 0);
  EXPECT_FALSE(ProcessAlive(child, child_start));
  EXPECT_EQ(ProcessStartTime(child), 0u);
}

}  // namespace
}  // namespace localnfs::broker
