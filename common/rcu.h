// common/rcu.h — RAII around liburcu (urcu-memb flavour).
//
// Owns: nothing but scopes. Every thread that enters an RCU read-side section must be
// registered first (RcuThread); the registration ends with the object.
//   RcuThread registered;            // once per thread, at the top of its body
//   { RcuReadLock lock; ... rcu_dereference(p) ... }
// Read sections are cheap and may nest; nothing inside one may block or drop a
// reference whose release blocks — use DeferRelease() (common/release_queue.h).
//
// Thread-safety: per-thread objects; never share them between threads.
#pragma once

#include <urcu.h>

#include "common/tsan.h"

namespace localnfs {

class RcuThread {
 public:
  RcuThread() { rcu_register_thread(); }
  ~RcuThread() { rcu_unregister_thread(); }
  RcuThread(const RcuThread&) = delete;
  RcuThread& operator=(const RcuThread&) = delete;
};

class RcuReadLock {
 public:
  RcuReadLock() { rcu_read_lock(); }
  ~RcuReadLock() {
    // liburcu's read-side words are invisible to ThreadSanitizer: tell it that this
    // section's reads happen before any call_rcu callback of a later grace period
    // (common/tsan.h). Nothing without TSan.
    tsan::RcuReaderRelease();
    rcu_read_unlock();
  }
  RcuReadLock(const RcuReadLock&) = delete;
  RcuReadLock& operator=(const RcuReadLock&) = delete;
};

}  // namespace localnfs
