// common/release_queue.h — the ONE shared queue for releases that may block (seed 000),
// and the per-thread deferred-release lists for releases that arise where they must
// not run (seed 004).
//
// Pattern (net/sunrpc/cache.c: sunrpc_cache_queue_release / sunrpc_cache_drain):
//  * QueueReleaseAfterGracePeriod(fn): fn runs after an RCU grace period, on the
//    release thread — so no reader that found the object in an RCU read section can
//    still be using it, and fn may block (close fds, join, take mutexes).
//  * DeferRelease(fn): from inside an RCU read section or an event-loop thread. fn goes
//    on the calling thread's lock-free list; the thread flushes it (FlushThisThread())
//    when it is safe, e.g. between two requests. The list is otherwise flushed by
//    DrainReleases().
//  * DrainReleases() — the barrier: first move every thread's deferred list onto the
//    queue (else the barrier would break its promise, see seed 004), then
//    rcu_barrier() so every queued call_rcu callback has pushed its work, then wait
//    until the release thread has run everything queued so far.
//
// Lifetime: StartReleaseQueue() once at startup (before any cache is created);
// StopReleaseQueue() once at shutdown after the last cache was torn down — it drains
// and joins the release thread. Releases queued after Stop run inline.
//
// Thread-safety: all functions may be called from any RCU-registered thread.
#pragma once

#include <functional>

namespace localnfs {

using ReleaseFn = std::function<void()>;

void StartReleaseQueue();
void StopReleaseQueue();

void QueueReleaseAfterGracePeriod(ReleaseFn fn);
void DeferRelease(ReleaseFn fn);
// Queues this thread's deferred releases (after a grace period). Call outside any RCU
// read section.
void FlushThisThread();
void DrainReleases();

}  // namespace localnfs
