// common/sharded_counter.h — statistics counters that many threads add to on a hot path
// and that are read rarely. Each thread adds to a cache line of its own, and a read sums
// the lines. With one shared atomic instead, every add moves the cache line between
// CPUs: two shared counters per LOCALIO read cost a quarter of the local 4 KiB read rate
// with 16 threads on 2 CPUs.
//
// Shards: kCounterShards cells per counter set. A thread claims one of the first
// kCounterShards - 1 for itself at its first count and gives it back when it exits;
// while it owns it, an add is a plain load and store (no locked instruction: nobody
// else writes that line). Threads that find none free share the last cell, where adds
// are fetch_adds. The same index serves every counter set of the process (the broker
// slot's shards too, common/localio/broker_format.h).
//
//   enum { kReads, kReadBytes, kFields };
//   ShardedCounters<kFields> io;
//   io.Add(kReads, 1, kReadBytes, n);   // both fields in this thread's line
//   io.Sum(kReads);
//
// Thread-safety: Add and Sum from any thread (relaxed atomics: a Sum racing with Adds
// sees each add or not, never a torn value; sums of two fields are not a snapshot).
// A forked child keeps its parent's other threads' claims: its new threads share.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <array>
#include <atomic>

namespace localnfs {

inline constexpr size_t kCounterShards = 16;

struct CounterShard {
  size_t index = kCounterShards - 1;
  bool exclusive = false;  // this thread is the only writer of `index`
};
// This thread's shard, the same for its life.
const CounterShard& ThisThreadsCounterShard();

// Adds n to `word` of the calling thread's shard `shard`.
inline void AddToShard(uint64_t& word, uint64_t n, const CounterShard& shard) {
  std::atomic_ref<uint64_t> w(word);
  if (shard.exclusive) {
    w.store(w.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  } else {
    w.fetch_add(n, std::memory_order_relaxed);
  }
}

template <size_t kFields>
class ShardedCounters {
 public:
  void Add(size_t field, uint64_t n) {
    const CounterShard& shard = ThisThreadsCounterShard();
    AddToShard(cells_[shard.index].v[field], n, shard);
  }
  void Add(size_t field1, uint64_t n1, size_t field2, uint64_t n2) {
    const CounterShard& shard = ThisThreadsCounterShard();
    Cell& c = cells_[shard.index];
    AddToShard(c.v[field1], n1, shard);
    AddToShard(c.v[field2], n2, shard);
  }
  uint64_t Sum(size_t field) const {
    uint64_t sum = 0;
    for (const Cell& c : cells_) {
      sum += std::atomic_ref<uint64_t>(const_cast<uint64_t&>(c.v[field]))
                 .load(std::memory_order_relaxed);
    }
    return sum;
  }

 private:
  static_assert(kFields * sizeof(uint64_t) <= 64, "one cache line per shard");
  struct alignas(64) Cell {
    std::array<uint64_t, kFields> v{};
  };
  std::array<Cell, kCounterShards> cells_{};
};

}  // namespace localnfs
