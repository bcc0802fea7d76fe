// tools/tsan/absl_mutex.cc — makes absl::Mutex visible to ThreadSanitizer. Built only
// in the tsan build (tools/tsan/meson.build, -Db_sanitize=thread), as a shared library
// that every target using Abseil links before Abseil's own libraries.
//
// Why: Debian 12's libabsl_synchronization.so is not built with -fsanitize=thread, so its
// Mutex (an atomic word plus futexes, all inside the uninstrumented library) makes no
// happens-before edges TSan can see; Abseil's own TSan annotations are compiled out of it.
// Every access guarded by an absl::Mutex was reported as a data race (e.g. FileCache's
// stopping_, written under mu_ by Shutdown and read under mu_ by the reaper).
//
// How: this library defines the public absl::Mutex / absl::CondVar entry points itself.
// The dynamic linker binds every call — ours and Abseil's own PLT calls, e.g. from
// absl::Notification — to these definitions, because this library comes before
// libabsl_synchronization.so in each executable's search order. Each one reports the
// lock operation with TSan's mutex annotations (sanitizer/tsan_interface.h, the same
// ones a TSan-built Abseil uses) and calls the real function, found with
// dlsym(RTLD_NEXT). Only the outermost call of a thread is reported (one public entry
// point may call another). Between pre- and post- annotations TSan ignores the thread's
// memory accesses, so condition functions Abseil evaluates inside Lock/Unlock/Await are
// not checked (missed reports possible there, no false ones).
//
// Thread-safety: the real-function pointers are resolved once (function-local statics).
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>

// Exported by libtsan, not declared in gcc 12's tsan_interface.h.
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace {

// The mangled names below spell Debian 12's inline namespace, absl::debian3.
#define LOCALNFS_TSAN_STR2(x) #x
#define LOCALNFS_TSAN_STR(x) LOCALNFS_TSAN_STR2(x)
constexpr bool SameString(const char* a, const char* b) {
  while (*a != '\0' && *a == *b) ++a, ++b;
  return *a == *b;
}
static_assert(SameString(LOCALNFS_TSAN_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME), "debian3"),
              "tools/tsan/absl_mutex.cc: the mangled names are for Abseil's debian3 namespace");

// The real definition of `mangled` in the next library of the search order.
template <class Fn>
Fn Real(const char* mangled) {
  void* p = dlsym(RTLD_NEXT, mangled);
  if (p == nullptr) {
    std::fprintf(stderr, "tsan_absl_mutex: %s not found after this library\n", mangled);
    std::abort();
  }
  return reinterpret_cast<Fn>(p);
}

// Nesting depth of wrapped calls on this thread: only depth 0 → 1 annotates.
thread_local int wrap_depth = 0;

class Outer {
 public:
  Outer() : outer_(wrap_depth++ == 0) {}
  ~Outer() { --wrap_depth; }
  explicit operator bool() const { return outer_; }

 private:
  bool outer_;
};

constexpr unsigned kRead = __tsan_mutex_read_lock;
constexpr unsigned kTry = __tsan_mutex_try_lock;
constexpr unsigned kTryFailed = __tsan_mutex_try_lock_failed;

void PreLock(void* m, unsigned flags, bool on) {
  if (on) __tsan_mutex_pre_lock(m, flags);
}
void PostLock(void* m, unsigned flags, bool on) {
  if (on) __tsan_mutex_post_lock(m, flags, 0);
}
void PreUnlock(void* m, unsigned flags, bool on) {
  if (on) __tsan_mutex_pre_unlock(m, flags);
}
void PostUnlock(void* m, unsigned flags, bool on) {
  if (on) __tsan_mutex_post_unlock(m, flags);
}

// Await / CondVar::Wait: the mutex is held before and after, released in between.
// Reported as an unlock followed by a lock, so the waiter acquires what the thread
// that made its condition true released.
template <class F>
auto Reacquire(void* m, unsigned flags, bool on, F call) {
  PreUnlock(m, flags, on);
  auto result = call();
  PostUnlock(m, flags, on);
  PreLock(m, flags, on);
  PostLock(m, flags, on);
  return result;
}

using absl::Condition;
using absl::CondVar;
using absl::Duration;
using absl::Mutex;
using absl::Time;

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

// ~Mutex: forget the mutex's sync state, so a new mutex at the same address (stack
// frames, reused heap blocks) starts fresh. The real destructor removes the mutex from
// Abseil's deadlock-detection graph (a debug-mode build of Abseil, as Debian's is),
// shared by all threads under a SpinLock internal to the library: TSan saw the graph's
// memmoves from two threads destroying mutexes as a race. Its accesses are Abseil's
// own, so they are hidden (inside Lock/Unlock the annotations already hide them).
Mutex::~Mutex() {
  static auto real = Real<void (*)(Mutex*)>("_ZN4absl7debian35MutexD1Ev");
  __tsan_mutex_destroy(this, 0);
  __tsan_ignore_thread_begin();
  real(this);
  __tsan_ignore_thread_end();
}

void Mutex::Lock() {
  static auto real = Real<void (*)(Mutex*)>("_ZN4absl7debian35Mutex4LockEv");
  Outer o;
  PreLock(this, 0, bool(o));
  real(this);
  PostLock(this, 0, bool(o));
}

void Mutex::ReaderLock() {
  static auto real = Real<void (*)(Mutex*)>("_ZN4absl7debian35Mutex10ReaderLockEv");
  Outer o;
  PreLock(this, kRead, bool(o));
  real(this);
  PostLock(this, kRead, bool(o));
}

bool Mutex::TryLock() {
  static auto real = Real<bool (*)(Mutex*)>("_ZN4absl7debian35Mutex7TryLockEv");
  Outer o;
  PreLock(this, kTry, bool(o));
  bool locked = real(this);
  PostLock(this, kTry | (locked ? 0 : kTryFailed), bool(o));
  return locked;
}

bool Mutex::ReaderTryLock() {
  static auto real = Real<bool (*)(Mutex*)>("_ZN4absl7debian35Mutex13ReaderTryLockEv");
  Outer o;
  PreLock(this, kRead | kTry, bool(o));
  bool locked = real(this);
  PostLock(this, kRead | kTry | (locked ? 0 : kTryFailed), bool(o));
  return locked;
}

void Mutex::Unlock() {
  static auto real = Real<void (*)(Mutex*)>("_ZN4absl7debian35Mutex6UnlockEv");
  Outer o;
  PreUnlock(this, 0, bool(o));
  real(this);
  PostUnlock(this, 0, bool(o));
}

void Mutex::ReaderUnlock() {
  static auto real = Real<void (*)(Mutex*)>("_ZN4absl7debian35Mutex12ReaderUnlockEv");
  Outer o;
  PreUnlock(this, kRead, bool(o));
  real(this);
  PostUnlock(this, kRead, bool(o));
}

void Mutex::LockWhen(const Condition& cond) {
  static auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  Outer o;
  PreLock(this, 0, bool(o));
  real(this, cond);
  PostLock(this, 0, bool(o));
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Outer o;
  PreLock(this, kRead, bool(o));
  real(this, cond);
  PostLock(this, kRead, bool(o));
}

// The timed LockWhen variants hold the mutex on return whatever they return.
bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Outer o;
  PreLock(this, 0, bool(o));
  bool r = real(this, cond, timeout);
  PostLock(this, 0, bool(o));
  return r;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Outer o;
  PreLock(this, 0, bool(o));
  bool r = real(this, cond, deadline);
  PostLock(this, 0, bool(o));
  return r;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "_ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Outer o;
  PreLock(this, kRead, bool(o));
  bool r = real(this, cond, timeout);
  PostLock(this, kRead, bool(o));
  return r;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "_ZN4absl7debian35Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Outer o;
  PreLock(this, kRead, bool(o));
  bool r = real(this, cond, deadline);
  PostLock(this, kRead, bool(o));
  return r;
}

// Await with the mutex held exclusively, the only way localnfs uses it (a reader-held
// Await would be reported as an exclusive unlock of a read-locked mutex).
void Mutex::Await(const Condition& cond) {
  static auto real = Real<void (*)(Mutex*, const Condition&)>(
      "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  Outer o;
  Reacquire(this, 0, bool(o), [&] {
    real(this, cond);
    return 0;
  });
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Outer o;
  return Reacquire(this, 0, bool(o), [&] { return real(this, cond, timeout); });
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Outer o;
  return Reacquire(this, 0, bool(o), [&] { return real(this, cond, deadline); });
}

void CondVar::Wait(Mutex* mu) {
  static auto real = Real<void (*)(CondVar*, Mutex*)>(
      "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  Outer o;
  Reacquire(mu, 0, bool(o), [&] {
    real(this, mu);
    return 0;
  });
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static auto real = Real<bool (*)(CondVar*, Mutex*, Duration)>(
      "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  Outer o;
  return Reacquire(mu, 0, bool(o), [&] { return real(this, mu, timeout); });
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static auto real = Real<bool (*)(CondVar*, Mutex*, Time)>(
      "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  Outer o;
  return Reacquire(mu, 0, bool(o), [&] { return real(this, mu, deadline); });
}

ABSL_NAMESPACE_END
}  // namespace absl
