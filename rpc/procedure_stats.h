// rpc/procedure_stats.h — what the server counts per procedure of every program: calls
// and their latency, in one place for all programs (the kernel's per-procedure
// vs_count[], plus the latency knfsd leaves to tracepoints).
//
// Owns: plain counters. The dispatcher (rpc/dispatch.h) keeps one ProcedureStats per
// procedure of each registered program version and records every call once, when the
// call ends (Dispatcher::Run returns anything but kWouldBlock): the time from
// Dispatcher::Receive (the call header decoded, the moment the server takes up the
// call — a call the connection's limits hold back is already received) to that end
// (the reply encoded, or the call dropped, parked on its original or answered from the
// duplicate request cache). A call whose header or procedure lookup fails is not a
// call of any procedure and is not recorded here (ServerCounters counts it).
//
// Cost on the request path: one monotonic clock read at Receive and one at the end,
// then two relaxed atomic additions (the call's bucket, the sum) — no lock, no
// allocation. The number of calls is the sum of the buckets, so a reader's calls()
// and its histogram always agree with each other.
//
// Buckets: fixed upper bounds from 1 µs to 10 s, three per decade (1, 2.5, 5), and one
// above the last bound; what Prometheus calls le="..." buckets, kept here not
// cumulative (Read() makes them cumulative).
//
// Thread-safety: Record from any number of threads; Read from any thread (each counter
// is read atomically, the set is not a snapshot: a call recorded during a Read may be
// seen in its bucket and not yet in the sum).
#pragma once

#include <stdint.h>
#include <time.h>

#include <array>
#include <atomic>

namespace localnfs::rpc {

// Aligned to a cache line: procedures that run at once on different threads do not
// share one.
class alignas(64) ProcedureStats {
 public:
  // The upper bounds of the latency buckets, in nanoseconds (le="1e-06" … le="10").
  static constexpr std::array<int64_t, 22> kBucketBoundsNs = {
      1'000,       2'500,       5'000,         10'000,        25'000,        50'000,
      100'000,     250'000,     500'000,       1'000'000,     2'500'000,     5'000'000,
      10'000'000,  25'000'000,  50'000'000,    100'000'000,   250'000'000,   500'000'000,
      1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
  static constexpr size_t kBuckets = kBucketBoundsNs.size() + 1;  // + the one above 10 s

  // One call that took `ns` nanoseconds (negative: counted as 0).
  void Record(int64_t ns) {
    size_t i = 0;
    while (i < kBucketBoundsNs.size() && ns > kBucketBoundsNs[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(static_cast<uint64_t>(ns > 0 ? ns : 0), std::memory_order_relaxed);
  }

  struct Snapshot {
    // cumulative[i]: calls that took at most kBucketBoundsNs[i] (i < kBuckets - 1);
    // cumulative[kBuckets - 1] = calls, every call (le="+Inf").
    std::array<uint64_t, kBuckets> cumulative{};
    uint64_t calls = 0;
    uint64_t sum_ns = 0;
  };
  Snapshot Read() const {
    Snapshot s;
    uint64_t total = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      total += buckets_[i].load(std::memory_order_relaxed);
      s.cumulative[i] = total;
    }
    s.calls = total;
    s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
    return s;
  }
  // Calls recorded so far (Read().calls).
  uint64_t calls() const { return Read().calls; }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
};

// Nanoseconds of CLOCK_MONOTONIC (the vDSO: no system call).
inline int64_t MonotonicNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace localnfs::rpc
