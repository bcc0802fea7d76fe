#include "common/release_queue.h"

#include <atomic>
#include <thread>

#include "common/rcu.h"
#include "gtest/gtest.h"
#include "tests/support/rcu_wait.h"

namespace localnfs {
namespace {

class ReleaseQueueTest : public ::testing::Test {
 protected:
  void SetUp() override { StartReleaseQueue(); }
  void TearDown() override { StopReleaseQueue(); }
  RcuThread rcu_;
};

TEST_F(ReleaseQueueTest, DrainWaitsForQueuedReleases) {
  std::atomic<int> ran{0};
  for (int i = 0; i < 100; ++i) QueueReleaseAfterGracePeriod([&] { ran++; });
  DrainReleases();
  EXPECT_EQ(ran.load(), 100);
}

TEST_F(ReleaseQueueTest, ReleaseWaitsForReaderInReadSection) {
  std::atomic<bool> released{false};
  std::atomic<bool> reader_in{false}, reader_go{false};
  std::thread reader([&] {
    RcuThread t;
    RcuReadLock lock;
    reader_in = true;
    while (!reader_go) std::this_thread::yield();
    // Still inside the read section: the release must not have run.
    EXPECT_FALSE(released.load());
  });
  while (!reader_in) std::this_thread::yield();
  QueueReleaseAfterGracePeriod([&] { released = true; });
  // Not released once the grace period for it has begun and waits for our reader: a
  // release that did not wait would have run by then.
  EXPECT_TRUE(testing::WaitForGracePeriodBlockedOnReader());
  EXPECT_FALSE(released.load());
  reader_go = true;
  reader.join();
  DrainReleases();
  EXPECT_TRUE(released.load());
}

TEST_F(ReleaseQueueTest, DrainFlushesOtherThreadsDeferredLists) {
  std::atomic<int> ran{0};
  std::atomic<bool> deferred{false}, done{false};
  std::thread worker([&] {
    RcuThread t;
    {
      RcuReadLock lock;
      DeferRelease([&] { ran++; });  // arises inside a read section: deferred
    }
    deferred = true;
    while (!done) std::this_thread::yield();
  });
  while (!deferred) std::this_thread::yield();
  EXPECT_EQ(ran.load(), 0);
  DrainReleases();  // must not miss the worker's list (seed 004)
  EXPECT_EQ(ran.load(), 1);
  done = true;
  worker.join();
}

}  // namespace
}  // namespace localnfs
