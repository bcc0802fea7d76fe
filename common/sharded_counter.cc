// common/sharded_counter.cc — who owns which counter shard (common/sharded_counter.h).
#include "common/sharded_counter.h"

namespace localnfs {
namespace {

static_assert(kCounterShards - 1 <= 32, "the free shards are a 32-bit mask");
// Bit i set: exclusive shard i is free. The last shard is the shared one, never owned.
std::atomic<uint32_t> free_shards{(uint32_t{1} << (kCounterShards - 1)) - 1};

// A thread's claim: taken at its first count, given back at its exit (release: the
// next owner's plain loads see this one's last stores).
struct Claim {
  CounterShard shard;
  Claim() {
    uint32_t free = free_shards.load(std::memory_order_acquire);
    while (free != 0) {
      const uint32_t bit = free & -free;
      if (free_shards.compare_exchange_weak(free, free & ~bit, std::memory_order_acquire)) {
        shard.index = static_cast<size_t>(__builtin_ctz(bit));
        shard.exclusive = true;
        return;
      }
    }
  }
  ~Claim() {
    if (shard.exclusive) {
      free_shards.fetch_or(uint32_t{1} << shard.index, std::memory_order_release);
    }
  }
};

}  // namespace

const CounterShard& ThisThreadsCounterShard() {
  thread_local const Claim claim;
  return claim.shard;
}

}  // namespace localnfs
