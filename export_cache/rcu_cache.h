// export_cache/rcu_cache.h — the generic RCU cache: one implementation, many instances
// (net/sunrpc/cache.c; the export table is two instances, as nfsd's export and expkey
// caches are).
//
// Owns: an index Key → T* (T derived from RefCounted) and ONE reference on every entry
// that the currently published index contains. It does not own the entries' memory:
// that goes when the last reference anywhere is dropped.
//
// Representation — an RCU-published immutable snapshot, not liburcu's rculfhash:
//  * Writers copy the index, change the copy and publish it with one atomic pointer
//    store. A batch (ReplaceAll, e.g. an export reload) therefore becomes visible to
//    readers all at once: a reader sees the old set or the new set, never a mixture,
//    and List() is a consistent view. rculfhash updates one node at a time.
//  * Readers pay one acquire load and one absl::flat_hash_map probe; no per-entry node
//    or hash-function plumbing has to be embedded in T.
//  * The price is O(n) per write. That is right for caches that are small or written
//    rarely (exports, client domains). A cache with many entries and steady churn
//    (an open-file cache) wants rculfhash; the interface below does not expose the
//    representation, so such an instance can change it without touching callers.
//
// Lifetimes (who holds which reference, when it is dropped — cf. fs/nfsd/filecache.c):
//  * The cache holds one reference per entry while the entry is in the published
//    index. Insert/ReplaceAll adopt the Ref they are given for that.
//  * Lookup() runs under the RCU read lock and returns a Ref<T> taken with TryGet():
//    an entry whose count already reached zero is dying and is not found. Such an
//    entry can only be met in an index that was replaced meanwhile, so the lookup
//    is repeated in the newer index: a key present before and after a write is
//    always found. The caller owns the returned Ref and may keep it as long as it
//    likes, across any number of writes.
//  * Removal (Remove, ReplaceAll without the key, Unregister) first publishes an index
//    without the entry, then drops the cache's reference. Readers that loaded the old
//    index may still hold a raw T*; they are safe because of the contract on T below.
//    The old index itself is freed after a grace period on the shared release queue.
//  * Contract on T: its LastReferenceDropped() must not free the object at once but
//    queue the release with QueueReleaseAfterGracePeriod() (common/release_queue.h),
//    as sunrpc's cache_put → queue_rcu_work does. The release may block (close fds):
//    it runs on the release thread, after every RCU reader that could have found the
//    entry has left its read section. Dropping a Ref is therefore legal anywhere, even
//    inside a read section: it only queues.
//  * DrainReleases() (rcu_barrier + flush) waits for every release queued so far: the
//    entries' and the retired indexes'. It cannot wait for an entry somebody still
//    holds a Ref on; that release is queued when the Ref is dropped.
//  * Teardown is TeardownRcuCaches(): Unregister (no lookup succeeds afterwards, every
//    cache reference is dropped), one DrainReleases(), Destroy. Destroy must come after
//    the drain: retired-index releases still point at the cache (they count down
//    retired_), exactly as sunrpc_cache_destroy_net drains before cache_destroy_net.
//
// Thread-safety: Lookup/List/size are lock-free and may run on any RCU-registered
// thread (common/rcu.h) concurrently with writers. Writers (Insert, Remove,
// ReplaceAll, Unregister, Destroy) are serialized by the cache's mutex; they never
// wait for a grace period, so they may be called anywhere a mutex may be taken.
// Every thread that drops a Ref must be RCU-registered (the release uses call_rcu).
#pragma once

#include <atomic>
#include <cassert>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/rcu.h"
#include "common/refcount.h"
#include "common/release_queue.h"

namespace localnfs {

template <class Key, class T>
class RcuCache {
 public:
  using Entry = std::pair<Key, Ref<T>>;

  RcuCache() = default;
  RcuCache(const RcuCache&) = delete;
  RcuCache& operator=(const RcuCache&) = delete;
  // A cache that was not torn down explicitly is torn down here (unregister, drain).
  ~RcuCache();

  // The entry stored under `key`, with a reference for the caller; empty if there is
  // none or it is dying. K may be any type the index accepts for lookup (e.g.
  // std::string_view for std::string keys).
  template <class K>
  Ref<T> Lookup(const K& key) const;
  // Every live entry of one published index, in insertion order.
  std::vector<Ref<T>> List() const;
  size_t size() const;

  // Stores `entry` under `key`, replacing (and dropping the cache's reference on) any
  // previous entry. FailedPrecondition after Unregister().
  absl::Status Insert(Key key, Ref<T> entry) ABSL_LOCKS_EXCLUDED(mu_);
  // Unlinks the entry under `key`; false if there was none.
  template <class K>
  bool Remove(const K& key) ABSL_LOCKS_EXCLUDED(mu_);
  // Makes `entries` the whole contents in one publish. An entry that is the same
  // object as before stays (its count goes +1 −1). Duplicate keys → AlreadyExists and
  // nothing changes; after Unregister() → FailedPrecondition.
  absl::Status ReplaceAll(std::vector<Entry> entries) ABSL_LOCKS_EXCLUDED(mu_);

  // Step 1 of teardown: unlink everything and refuse further writes. No lookup
  // succeeds afterwards. Idempotent.
  void Unregister() ABSL_LOCKS_EXCLUDED(mu_);
  // Step 3 of teardown: requires Unregister() and a DrainReleases() after it. The
  // object stays valid (lookups keep failing) until it is deleted.
  void Destroy() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Immutable once published. The cache holds one reference on each entry of the
  // published index (not of retired ones).
  struct Index {
    std::vector<std::pair<Key, T*>> order;
    absl::flat_hash_map<Key, T*> by_key;
  };

  // Publishes `next` (may be null) and retires the previous index: drops the cache's
  // references on its entries and frees it after a grace period.
  void PublishLocked(std::unique_ptr<Index> next) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a failed TryGet on an entry of `index`: whether a newer index is published.
  bool Superseded(const Index* index) const;
  // A copy of the published index with a new reference on every entry.
  std::unique_ptr<Index> CopyLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  // Written only under mu_ (release store = rcu_assign_pointer); read lock-free
  // (acquire load = rcu_dereference) inside an RCU read section.
  std::atomic<const Index*> published_{nullptr};
  bool registered_ ABSL_GUARDED_BY(mu_) = true;
  bool destroyed_ ABSL_GUARDED_BY(mu_) = false;
  // Retired indexes whose release has not run yet; their releases touch `this`.
  std::atomic<int> retired_{0};
};

// The canonical teardown of one or several caches, in the order of
// sunrpc_cache_destroy_net(): unregister each (stop lookups, drop the cache
// references), ONE drain for all of them (rcu_barrier + flush of the shared release
// queue), then destroy each. Call from an RCU-registered thread outside any read
// section (the drain waits for grace periods).
template <class... Caches>
void TeardownRcuCaches(Caches&... caches) {
  (caches.Unregister(), ...);
  DrainReleases();
  (caches.Destroy(), ...);
}

// ---- implementation ----

template <class Key, class T>
RcuCache<Key, T>::~RcuCache() {
  bool destroyed;
  {
    absl::MutexLock l(&mu_);
    destroyed = destroyed_;
  }
  if (!destroyed) TeardownRcuCaches(*this);
}

template <class Key, class T>
bool RcuCache<Key, T>::Superseded(const Index* index) const {
  // TryGet saw the zero count with an acquire load, which pairs with the release of
  // the writer's Put; that Put came after its publish, so the load below sees it.
  return published_.load(std::memory_order_acquire) != index;
}

template <class Key, class T>
template <class K>
Ref<T> RcuCache<Key, T>::Lookup(const K& key) const {
  RcuReadLock lock;
  for (;;) {
    const Index* index = published_.load(std::memory_order_acquire);
    if (index == nullptr) return Ref<T>();
    auto it = index->by_key.find(key);
    if (it == index->by_key.end()) return Ref<T>();
    // The entry's memory is valid for the whole read section (contract on T).
    if (it->second->TryGet()) return Ref<T>::Adopt(it->second);
    // Its count is zero: it is dying, so a writer has published a newer index since
    // we loaded this one (the cache holds a reference on every entry of the
    // published index). Look again there — the key may have a replacement, and a
    // reload must not make an export look absent for an instant.
    if (!Superseded(index)) return Ref<T>();
  }
}

template <class Key, class T>
std::vector<Ref<T>> RcuCache<Key, T>::List() const {
  std::vector<Ref<T>> out;
  RcuReadLock lock;
  for (;;) {
    out.clear();  // only queues releases, fine inside the read section
    const Index* index = published_.load(std::memory_order_acquire);
    if (index == nullptr) return out;
    out.reserve(index->order.size());
    bool complete = true;
    for (const auto& [key, entry] : index->order) {
      if (entry->TryGet()) {
        out.push_back(Ref<T>::Adopt(entry));
      } else {
        complete = false;
        break;
      }
    }
    // A dying entry means a newer index exists: retry so the result is one whole
    // index, never a mixture of two.
    if (complete || !Superseded(index)) return out;
  }
}

template <class Key, class T>
size_t RcuCache<Key, T>::size() const {
  RcuReadLock lock;
  const Index* index = published_.load(std::memory_order_acquire);
  return index == nullptr ? 0 : index->order.size();
}

template <class Key, class T>
absl::Status RcuCache<Key, T>::Insert(Key key, Ref<T> entry) {
  absl::MutexLock l(&mu_);
  if (!registered_) return absl::FailedPreconditionError("cache is unregistered");
  std::unique_ptr<Index> next = CopyLocked();
  T* raw = entry.release();  // the new index's reference
  auto [it, inserted] = next->by_key.try_emplace(key, raw);
  if (inserted) {
    next->order.emplace_back(std::move(key), raw);
  } else {
    T* previous = std::exchange(it->second, raw);
    for (auto& [k, e] : next->order)
      if (k == it->first) e = raw;  // keys are unique: exactly one
    previous->Put();  // the copy's reference on the replaced entry
  }
  PublishLocked(std::move(next));
  return absl::OkStatus();
}

template <class Key, class T>
template <class K>
bool RcuCache<Key, T>::Remove(const K& key) {
  absl::MutexLock l(&mu_);
  const Index* current = published_.load(std::memory_order_relaxed);
  if (current == nullptr || !current->by_key.contains(key)) return false;
  auto next = std::make_unique<Index>();
  for (const auto& [k, e] : current->order) {
    if (k == key) continue;
    e->Get();
    next->order.emplace_back(k, e);
    next->by_key.emplace(k, e);
  }
  PublishLocked(std::move(next));
  return true;
}

template <class Key, class T>
absl::Status RcuCache<Key, T>::ReplaceAll(std::vector<Entry> entries) {
  absl::MutexLock l(&mu_);
  if (!registered_) return absl::FailedPreconditionError("cache is unregistered");
  auto next = std::make_unique<Index>();
  next->order.reserve(entries.size());
  for (auto& [key, entry] : entries) {
    if (!next->by_key.try_emplace(key, entry.get()).second)
      return absl::AlreadyExistsError("duplicate key in cache update");
    next->order.emplace_back(key, entry.get());
  }
  // Validated: only now take over the references (the Refs in `entries` drop nothing).
  for (auto& [key, entry] : entries) entry.release();
  PublishLocked(std::move(next));
  return absl::OkStatus();
}

template <class Key, class T>
void RcuCache<Key, T>::Unregister() {
  absl::MutexLock l(&mu_);
  if (!registered_) return;
  registered_ = false;
  PublishLocked(nullptr);
}

template <class Key, class T>
void RcuCache<Key, T>::Destroy() {
  absl::MutexLock l(&mu_);
  // Unregistered and drained: nothing published, no retired index pending.
  assert(!registered_);
  assert(retired_.load() == 0);
  destroyed_ = true;
}

template <class Key, class T>
void RcuCache<Key, T>::PublishLocked(std::unique_ptr<Index> next) {
  const Index* old = published_.exchange(next.release(), std::memory_order_acq_rel);
  if (old == nullptr) return;
  // Unlinked first, now drop the cache's references. Readers still walking `old` hold
  // raw pointers; an entry whose count reaches zero here is released only after a
  // grace period (contract on T), so those pointers stay valid for them.
  for (const auto& [key, entry] : old->order) entry->Put();
  retired_.fetch_add(1, std::memory_order_relaxed);
  QueueReleaseAfterGracePeriod([this, old] {
    delete old;
    retired_.fetch_sub(1, std::memory_order_release);
  });
}

template <class Key, class T>
auto RcuCache<Key, T>::CopyLocked() const -> std::unique_ptr<Index> {
  auto next = std::make_unique<Index>();
  const Index* current = published_.load(std::memory_order_relaxed);
  if (current == nullptr) return next;
  next->order = current->order;
  next->by_key = current->by_key;
  for (const auto& [key, entry] : next->order) entry->Get();
  return next;
}

}  // namespace localnfs
