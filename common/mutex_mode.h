// common/mutex_mode.h — Abseil's Mutex deadlock detector: off in the programs we ship.
//
// Debian 12 builds Abseil without NDEBUG, so absl::Mutex runs its lock-order cycle
// detector on every Lock and Unlock (absl::SetMutexDeadlockDetectionMode's default is
// kAbort there): a lookup in one process-wide graph under one process-wide spinlock, a
// serialisation point shared by every thread of the server on every lock.
// localnfsd, localnfs-mount and localnfs-bench call this first thing. It keeps the
// detector in sanitizer builds (where the integration tests run those programs and a
// lock-order cycle should abort), and the unit tests never call it.
// LOCALNFS_MUTEX_DEADLOCK_DETECTION=1 keeps it on in any build (to compare, or to hunt a
// lock-order bug in a release binary).
//
// Thread-safety: call once from main() before other threads start.
#pragma once

namespace localnfs {

void ConfigureMutexDeadlockDetection();

}  // namespace localnfs
