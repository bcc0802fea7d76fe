// rpc/drc.cc — the duplicate request cache (see drc.h for the contract).
#include "rpc/drc.h"

#include <utility>

#include "absl/hash/hash.h"

namespace localnfs::rpc {

DrcKey DrcKey::Of(std::string client, uint32_t xid, uint32_t prog, uint32_t vers,
                  uint32_t proc, absl::string_view call) {
  DrcKey k;
  k.client = std::move(client);
  k.xid = xid;
  k.prog = prog;
  k.vers = vers;
  k.proc = proc;
  k.call_length = static_cast<uint32_t>(call.size());
  // All of the bytes, not knfsd's first 256 of the arguments: a WRITE retransmit must
  // match its data too, and hashing even 1 MiB costs far less than the write it guards.
  k.call_hash = absl::Hash<absl::string_view>{}(call);
  return k;
}

DuplicateRequestCache::DuplicateRequestCache(DrcOptions options)
    : options_(std::move(options)) {}

DuplicateRequestCache::Lookup DuplicateRequestCache::Begin(const DrcKey& key,
                                                           Waiter waiter) {
  if (options_.max_entries == 0) return {Outcome::kRunUncached, {}};
  const absl::Time now = options_.clock();
  std::vector<Waiter> orphans;  // destroyed after the lock is released
  absl::MutexLock l(&mu_);
  auto it = table_.find(key);
  if (it != table_.end()) {
    Entry* e = it->second.get();
    if (!e->done) {
      if (!waiter || e->waiters.size() >= kMaxWaitersPerEntry) {
        ++stats_.dropped;
        return {Outcome::kDrop, {}};
      }
      e->waiters.push_back(std::move(waiter));
      ++stats_.parked;
      return {Outcome::kWaiting, {}};
    }
    if (now - e->finished <= options_.max_age) {
      lru_.splice(lru_.begin(), lru_, e->lru);
      ++stats_.replays;
      return {Outcome::kReplay, e->reply};
    }
    orphans = EraseLocked(e);  // too old to be a retransmit: a new call
  }
  if (!MakeRoomLocked(1, kEntryOverhead + key.client.size())) {
    ++stats_.uncached;
    return {Outcome::kRunUncached, {}};
  }
  auto e = std::make_unique<Entry>();
  e->key = key;
  bytes_ += e->Bytes();
  table_.emplace(key, std::move(e));
  ++stats_.misses;
  return {Outcome::kRun, {}};
}

void DuplicateRequestCache::Complete(const DrcKey& key, std::string reply) {
  std::vector<Waiter> waiters;
  std::string kept;  // what the waiters are given when the entry does not keep it
  {
    absl::MutexLock l(&mu_);
    auto it = table_.find(key);
    if (it == table_.end() || it->second->done) return;
    Entry* e = it->second.get();
    waiters.swap(e->waiters);
    const size_t before = e->Bytes();
    if (reply.size() > options_.max_bytes / 16) {
      ++stats_.uncached;
      EraseLocked(e);
      kept = std::move(reply);
    } else {
      // Room for the reply among the other finished entries; `e` is not in the LRU
      // yet, so it cannot evict itself.
      bytes_ -= before;
      if (!MakeRoomLocked(0, before + reply.size())) {
        bytes_ += before;
        ++stats_.uncached;
        EraseLocked(e);
        kept = std::move(reply);
      } else {
        e->reply = std::move(reply);
        e->done = true;
        e->finished = options_.clock();
        bytes_ += e->Bytes();
        lru_.push_front(e);
        e->lru = lru_.begin();
        if (!waiters.empty()) kept = e->reply;
      }
    }
  }
  for (Waiter& w : waiters) w(kept);
}

void DuplicateRequestCache::Abandon(const DrcKey& key) {
  std::vector<Waiter> orphans;  // destroyed uncalled, after the lock is released
  absl::MutexLock l(&mu_);
  auto it = table_.find(key);
  if (it == table_.end() || it->second->done) return;
  orphans = EraseLocked(it->second.get());
}

std::vector<DuplicateRequestCache::Waiter> DuplicateRequestCache::EraseLocked(Entry* e) {
  std::vector<Waiter> waiters = std::move(e->waiters);
  bytes_ -= e->Bytes();
  if (e->done) lru_.erase(e->lru);
  table_.erase(e->key);  // destroys *e
  return waiters;
}

bool DuplicateRequestCache::MakeRoomLocked(size_t extra_entries, size_t extra_bytes) {
  auto fits = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return table_.size() + extra_entries <= options_.max_entries &&
           bytes_ + extra_bytes <= options_.max_bytes;
  };
  while (!fits()) {
    if (lru_.empty()) return false;  // only calls in progress are left
    Entry* victim = lru_.back();
    EraseLocked(victim);  // a finished entry has no waiters
    ++stats_.evictions;
  }
  return true;
}

DrcStats DuplicateRequestCache::stats() const {
  absl::MutexLock l(&mu_);
  DrcStats s = stats_;
  s.entries = table_.size();
  s.bytes = bytes_;
  return s;
}

}  // namespace localnfs::rpc
