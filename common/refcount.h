// common/refcount.h — intrusive reference counts with an explicit last-reference hook.
//
// Owns: the count. A RefCounted object starts with one reference, held by its
// creator. Whoever drops the last reference triggers LastReferenceDropped(), which
// the subclass defines: a plain object deletes itself; a cache entry queues its
// (possibly blocking) release after an RCU grace period on the shared release queue
// (common/release_queue.h), as sunrpc's cache_put → queue_rcu_work does.
//
// TryGet() is the RCU-lookup form: it takes a reference only if the count is not
// already zero (an entry found in an RCU read section may be dying).
//
// Ref<T> holds exactly one reference and drops it in its destructor.
//
// Thread-safety: Get/TryGet/Put are atomic; Ref<T> is a value owned by one thread.
#pragma once

#include <atomic>
#include <cassert>
#include <utility>

namespace localnfs {

class RefCounted {
 public:
  RefCounted() = default;
  RefCounted(const RefCounted&) = delete;
  RefCounted& operator=(const RefCounted&) = delete;

  void Get() {
    [[maybe_unused]] int old = refs_.fetch_add(1, std::memory_order_relaxed);
    assert(old > 0);
  }
  // Takes a reference unless the object is already dying (count 0). Every load is an
  // acquire: a false result has seen the Put (a release) that dropped the count to zero,
  // and so everything its thread did before (rcu_cache.h relies on it).
  bool TryGet() {
    int old = refs_.load(std::memory_order_acquire);
    while (old > 0) {
      if (refs_.compare_exchange_weak(old, old + 1, std::memory_order_acquire,
                                      std::memory_order_acquire))
        return true;
    }
    return false;
  }
  void Put() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) LastReferenceDropped();
  }
  int RefCountForTesting() const { return refs_.load(); }

 protected:
  virtual ~RefCounted() = default;
  // Called exactly once, by whoever dropped the last reference.
  virtual void LastReferenceDropped() { delete this; }

 private:
  std::atomic<int> refs_{1};
};

// Ref<T>: one counted reference to a T derived from RefCounted.
template <class T>
class Ref {
 public:
  Ref() = default;
  // Adopts a reference the caller already holds.
  static Ref Adopt(T* p) { return Ref(p); }
  // Takes a new reference on p (which must be alive).
  static Ref Share(T* p) {
    if (p) p->Get();
    return Ref(p);
  }
  Ref(const Ref& o) : p_(o.p_) {
    if (p_) p_->Get();
  }
  Ref(Ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  Ref& operator=(Ref o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  ~Ref() { reset(); }

  void reset() {
    if (T* p = std::exchange(p_, nullptr)) p->Put();
  }
  // Gives up the reference without dropping it.
  T* release() { return std::exchange(p_, nullptr); }
  T* get() const { return p_; }
  T* operator->() const { return p_; }
  T& operator*() const { return *p_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  explicit Ref(T* p) : p_(p) {}
  T* p_ = nullptr;
};

}  // namespace localnfs
