// tests/support/rcu_wait.h — the event a "not released while a reader is inside" check
// waits for: the grace period that would allow the release has begun and is blocked
// on a reader.
//
// A test that holds an RCU read section and queues a release (common/release_queue.h)
// must not conclude "the release waited for my reader" after a fixed sleep: the
// release thread may simply not have got to it yet. liburcu's call_rcu thread runs
// synchronize_rcu() for the queued callback; once that finds a reader still inside a
// section that began before it, it stops spinning and sleeps on the grace-period futex
// (urcu_memb_gp.futex = -1) until the reader leaves. Seen that, a release that does not
// wait for readers would already have run.
//
// Thread-safety: reads one word of liburcu's grace-period state; any thread.
#pragma once

#include <chrono>

namespace localnfs::testing {

// Waits up to `timeout` until a grace period (urcu-memb flavour, ours: common/rcu.h)
// sleeps waiting for a reader; false when none did.
bool WaitForGracePeriodBlockedOnReader(
    std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace localnfs::testing
