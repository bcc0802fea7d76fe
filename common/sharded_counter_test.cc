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

TEST(ShardedCounters, ThreadsTakeShardsInTurn) {
  std::set<size_t> seen;
  for (size_t i = 0; i < kCounterShards; ++i) {
    size_t shard = 0;
    std::thread([&shard] { shard = ThisThreadsCounterShard(); }).join();
    seen.insert(shard);
    EXPECT_LT(shard, kCounterShards);
  }
  EXPECT_EQ(seen.size(), kCounterShards) << "16 threads in a row share a shard";
  EXPECT_EQ(ThisThreadsCounterShard(), ThisThreadsCounterShard());
}

}  // namespace
}  // namespace localnfs
