// rpc/drc.h — the duplicate request cache (DRC): the replies of non-idempotent calls,
// so that a retransmitted call is answered from the cache instead of being executed a
// second time (a retransmitted REMOVE must not turn into NFS3ERR_NOENT). Generic, like
// knfsd's fs/nfsd/nfscache.c: a procedure's ProcedureDesc::kNonIdempotent says which
// procedures are cached; the rpc Dispatcher consults the cache for them.
//
// Owns: the entries — one per call seen — and, for finished calls, a copy of the reply
// message (without record mark, so TCP and UDP replays share it).
//
// Key: the client's IP address WITHOUT the port (a client that reconnects from a new
// port, as it does after a dropped connection, still finds its entry), the XID,
// program, version and procedure, and the length and a 64-bit hash of every byte of
// the call after the XID — credentials and arguments: a reused XID with other
// arguments, or from another user of the same host, is a new call, not a replay.
//
// Entry states and what a lookup (Begin) answers:
//   absent           → kRun: an in-progress entry is created; the caller runs the call
//                      and then calls Complete(reply) or Abandon().
//   in progress      → kWaiting: the retransmit is parked on the entry (its `waiter` is
//                      kept) and gets the original's reply the moment it is completed;
//                      no worker thread blocks. knfsd instead drops such a retransmit
//                      (RC_DROPIT) and relies on the client's next retransmit; over TCP
//                      the Linux client retransmits only after timeo (60 s) or a
//                      reconnect, so parking answers a minute sooner. At most
//                      kMaxWaitersPerEntry are parked per entry; more, or a caller
//                      without a waiter → kDrop, as knfsd does.
//   done             → kReplay with the saved reply bytes (the entry becomes most
//                      recently used).
//   done, too old    → treated as absent (replaced): after max_age the client has long
//                      given up retransmitting, and an XID that comes back is a new call.
// Abandon() (the call produced no reply, or one not worth keeping: GARBAGE_ARGS,
// SYSTEM_ERR, a dropped call) removes the entry and destroys its waiters uncalled —
// those clients retransmit and the call is run again.
//
// Bounds: at most max_entries entries and max_bytes of accounted memory (reply bytes +
// a per-entry overhead). Finished entries are evicted least recently used first; an
// entry in progress is never evicted (their number is bounded by the server's in-flight
// limits). When the cache is full of calls in progress, Begin answers kRunUncached:
// the call runs without protection rather than being refused. A reply larger than
// max_bytes / 16 is not kept (Abandon semantics, counted as uncached).
//
// Thread-safety: every method may be called from any thread; one mutex guards the
// table. Waiters run on the thread that calls Complete(), after the mutex is released.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <functional>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace localnfs::rpc {

struct DrcKey {
  std::string client;  // the peer's address bytes (4 or 16), no port
  uint32_t xid = 0;
  uint32_t prog = 0;
  uint32_t vers = 0;
  uint32_t proc = 0;
  uint32_t call_length = 0;
  uint64_t call_hash = 0;

  // The key of a call whose bytes after the XID are `call`.
  static DrcKey Of(std::string client, uint32_t xid, uint32_t prog, uint32_t vers,
                   uint32_t proc, absl::string_view call);

  friend bool operator==(const DrcKey&, const DrcKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const DrcKey& k) {
    return H::combine(std::move(h), k.client, k.xid, k.prog, k.vers, k.proc,
                      k.call_length, k.call_hash);
  }
};

struct DrcOptions {
  size_t max_entries = 8192;            // 0 disables the cache
  size_t max_bytes = size_t{16} << 20;  // accounted bytes of all entries
  absl::Duration max_age = absl::Minutes(2);
  // Injected for tests.
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

struct DrcStats {
  uint64_t misses = 0;    // kRun
  uint64_t replays = 0;   // kReplay
  uint64_t parked = 0;    // kWaiting
  uint64_t dropped = 0;   // kDrop
  uint64_t uncached = 0;  // kRunUncached, and replies too large to keep
  uint64_t evictions = 0;
  size_t entries = 0;
  size_t bytes = 0;
};

class DuplicateRequestCache {
 public:
  // Invoked with the original's reply message when a parked retransmit's original
  // completes; destroyed without being invoked when it is abandoned.
  using Waiter = absl::AnyInvocable<void(absl::string_view reply)>;

  enum class Outcome { kRun, kRunUncached, kReplay, kWaiting, kDrop };
  struct Lookup {
    Outcome outcome;
    std::string reply;  // kReplay only
  };

  static constexpr size_t kMaxWaitersPerEntry = 8;
  // Accounted per entry in addition to its reply: the key, list and map nodes.
  static constexpr size_t kEntryOverhead = 160;

  explicit DuplicateRequestCache(DrcOptions options);
  DuplicateRequestCache(const DuplicateRequestCache&) = delete;
  DuplicateRequestCache& operator=(const DuplicateRequestCache&) = delete;

  // Looks `key` up; see the header comment. `waiter` is kept only for kWaiting.
  Lookup Begin(const DrcKey& key, Waiter waiter) ABSL_LOCKS_EXCLUDED(mu_);
  // The call of a kRun answer finished with `reply`: saves it (when it fits) and hands
  // it to every parked waiter.
  void Complete(const DrcKey& key, std::string reply) ABSL_LOCKS_EXCLUDED(mu_);
  // The call of a kRun answer finished without a reply worth keeping.
  void Abandon(const DrcKey& key) ABSL_LOCKS_EXCLUDED(mu_);

  DrcStats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry;
  using Lru = std::list<Entry*>;  // finished entries, front = most recently used
  struct Entry {
    DrcKey key;
    bool done = false;
    absl::Time finished;
    std::string reply;
    std::vector<Waiter> waiters;
    Lru::iterator lru;  // valid while done
    size_t Bytes() const { return kEntryOverhead + key.client.size() + reply.size(); }
  };

  // Removes `e` (finished or not) from the table; returns its waiters.
  std::vector<Waiter> EraseLocked(Entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Evicts finished entries, oldest use first, until both bounds leave room for
  // `extra_entries` more entries and `extra_bytes` more bytes. False if impossible.
  bool MakeRoomLocked(size_t extra_entries, size_t extra_bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const DrcOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<DrcKey, std::unique_ptr<Entry>> table_ ABSL_GUARDED_BY(mu_);
  Lru lru_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  DrcStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace localnfs::rpc
