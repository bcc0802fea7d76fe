#include "common/sharded_counter.h"

#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace localnfs {
namespace {

TEST(ShardedCounters, SumsEveryThreadsAddsExactly) {
  enum { kCalls, kBytes, kFields };
  ShardedCounters<kFields> c;
  constexpr int kThreads = 2 * kCounterShards + 5, kEach = 10000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&c, t] {
      for (int i = 0; i < kEach; ++i) c.Add(kCalls, 1, kBytes, static_cast<uint64_t>(t));
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(c.Sum(kCalls), uint64_t{kThreads} * kEach);
  EXPECT_EQ(c.Sum(kBytes), uint64_t{kEach} * (kThreads - 1) * kThreads / 2);
}

TEST(ShardedCounters, LiveThreadsOwnShardsAloneUntilTheyRunOutAndExitedOnesGiveThemBack) {
  // Threads that stay alive until all have claimed: each owns a different shard, except
  // those beyond the free ones (the main thread may hold one already), which share the
  // last shard.
  constexpr int kThreads = kCounterShards + 3;
  std::vector<CounterShard> got(kThreads);
  std::atomic<int> claimed{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      got[t] = ThisThreadsCounterShard();
      ++claimed;
      while (!go.load()) std::this_thread::yield();
    });
  }
  while (claimed.load() < kThreads) std::this_thread::yield();
  go = true;
  for (std::thread& t : threads) t.join();
  std::set<size_t> owned;
  int shared = 0;
  for (const CounterShard& s : got) {
    if (s.exclusive) {
      EXPECT_LT(s.index, kCounterShards - 1);
      EXPECT_TRUE(owned.insert(s.index).second) << "shard " << s.index << " owned twice";
    } else {
      EXPECT_EQ(s.index, kCounterShards - 1);
      ++shared;
    }
  }
  EXPECT_GE(shared, kThreads - static_cast<int>(kCounterShards - 1));
  // They have all exited: a new thread owns one alone again.
  CounterShard later;
  std::thread([&later] { later = ThisThreadsCounterShard(); }).join();
  EXPECT_TRUE(later.exclusive);
  EXPECT_EQ(ThisThreadsCounterShard().index, ThisThreadsCounterShard().index);
}

}  // namespace
}  // namespace localnfs
