// common/tsan.h — happens-before annotations for ThreadSanitizer (-Db_sanitize=thread,
// tools/build.sh tsan), for synchronisation TSan cannot see by itself. Without TSan
// every function here is an empty inline and compiles to nothing.
//
// TSan sees C++ atomics and the pthread calls it intercepts. It does not see:
//  * liburcu: rcu_read_lock/unlock, grace periods and the call_rcu queue live in the
//    uninstrumented liburcu.so (membarrier + plain volatile words), so "a reader left its
//    read section before the call_rcu callback ran" is invisible — every object read
//    under RcuReadLock and freed after a grace period looked like a use-after-free race.
//    common/rcu.h and common/release_queue.cc annotate that edge (RcuReaderRelease /
//    RcuGracePeriodAcquire below).
//    rcu_barrier() hands records it allocates to the call_rcu thread, which frees them,
//    the same invisible way: release_queue.cc runs it under IgnoreAccesses (it runs
//    none of our code on the calling thread).
//
// What makes the uninstrumented libraries themselves visible (Abseil's mutex, libtirpc)
// is not here but in tools/tsan/, linked only into the tsan build.
//
// Thread-safety: stateless; callable from any thread.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define LOCALNFS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LOCALNFS_TSAN 1
#endif
#endif

#ifdef LOCALNFS_TSAN
#include <sanitizer/tsan_interface.h>
// Exported by libtsan, not declared in gcc 12's tsan_interface.h.
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();
#endif

namespace localnfs::tsan {

// Everything this thread did so far happens-before whatever a later Acquire(addr)
// caller does next (clocks are joined: many releasers, any number of acquirers).
inline void Release([[maybe_unused]] const void* addr) {
#ifdef LOCALNFS_TSAN
  __tsan_release(const_cast<void*>(addr));
#endif
}
inline void Acquire([[maybe_unused]] const void* addr) {
#ifdef LOCALNFS_TSAN
  __tsan_acquire(const_cast<void*>(addr));
#endif
}

// The token every RCU read section releases when it ends. A call_rcu callback runs
// after a grace period, i.e. after every read section that could have seen the object
// ended, so acquiring the token there orders all those readers' accesses before the
// callback (and before whatever it hands the object to). This over-approximates (it
// also orders read sections that could not have seen the object) — TSan may miss a
// race between such a reader and a release, it never reports a false one.
inline char rcu_readers_token;
inline void RcuReaderRelease() { Release(&rcu_readers_token); }
inline void RcuGracePeriodAcquire() { Acquire(&rcu_readers_token); }

// While one exists, TSan ignores this thread's memory accesses, including those of
// malloc/free called from library code (synchronisation is still seen). Only for
// library calls whose internal hand-offs TSan cannot see and that run none of our code.
class IgnoreAccesses {
 public:
#ifdef LOCALNFS_TSAN
  IgnoreAccesses() { __tsan_ignore_thread_begin(); }
  ~IgnoreAccesses() { __tsan_ignore_thread_end(); }
#else
  IgnoreAccesses() {}
#endif
  IgnoreAccesses(const IgnoreAccesses&) = delete;
  IgnoreAccesses& operator=(const IgnoreAccesses&) = delete;
};

}  // namespace localnfs::tsan
