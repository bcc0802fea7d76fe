// client_localio/unstable_writes.h — written-but-uncommitted data per file, for the
// NFSv3 COMMIT contract. Internal to client_localio/ (Nfs3Client uses it).
//
// Owns: per file handle, a copy of every byte written UNSTABLE and not yet covered by a
// COMMIT, as non-overlapping ranges each tagged with the write verifier of the WRITE
// reply that carried it. A later write over the same bytes replaces them (only the
// newest data may ever be resent); a stable write removes them. This is what the kernel
// NFS client keeps as "unstable pages" — without it, a server restart between WRITE and
// COMMIT would silently lose data.
//
// Copies: each byte is copied once, into a buffer of its own range. A large write (at
// least BufferPool::kMinPooled) gets a recycled buffer from the table's BufferPool,
// copied before the range lock is taken: a fresh allocation of that size is an mmap
// whose every page faults (and is zeroed) on first write, which cost far more than the
// copy. Small sequential writes with one verifier are appended to the range before
// them, up to kMaxMergedBytes, so that a range never grows (and reallocates) without
// bound. Buffers of committed or overwritten ranges go back to the pool.
//
// Concurrency protocol: every FileState has `io_mu`. Writers hold it shared while they
// send WRITEs and record the results; Commit holds it exclusively, so the ranges it
// inspects cannot change under it and a resend can never overwrite newer data on the
// server. An early commit (Nfs3Client, past half the bound) holds it shared, so writers
// go on meanwhile: it notes WrittenSoFar() before sending COMMIT and then drops only
// ranges recorded before that point (CommitWrittenBefore) — their WRITE replies came
// before the COMMIT was sent, so the COMMIT covers them; anything recorded later, also
// an overwrite of an older range, keeps its copy. It never resends: a verifier change
// leaves the ranges to an exclusive Commit. `mu` guards the ranges themselves. The table erases a FileState only when
// nothing is pending and no thread holds a reference (so a waiter never records into an
// orphan).
//
// Thread-safety: all methods are safe to call concurrently. Returned shared_ptrs are
// shared with the table.
#pragma once

#include <stdint.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "client_localio/client.h"

namespace localnfs::client {

// Recycled buffers for the copies of large unstable writes. Keeps at most `max_bytes`
// of capacity (the client's bound on uncommitted data, so it pins no more than pending
// writes may anyway). Thread-safe.
class BufferPool {
 public:
  // Smaller buffers are not pooled: malloc serves them from its free lists.
  static constexpr size_t kMinPooled = 128 * 1024;

  explicit BufferPool(size_t max_bytes) : max_bytes_(max_bytes) {}
  // An empty string with capacity for `size` bytes: a pooled one if any.
  std::string Take(size_t size) ABSL_LOCKS_EXCLUDED(mu_);
  // Returns `buf` to the pool (dropped if small or if the pool is full).
  void Give(std::string buf) ABSL_LOCKS_EXCLUDED(mu_);
  size_t pooled_bytes() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const size_t max_bytes_;
  mutable absl::Mutex mu_;
  std::vector<std::string> free_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

class FileWrites {
 public:
  struct Range {
    uint64_t offset = 0;
    std::string data;
    WriteVerifier verifier{};
    // When its bytes were recorded (WrittenSoFar() order; a grown range: its newest).
    uint64_t recorded = 0;
  };

  // A sequential write is appended to the range before it while that stays this small.
  static constexpr size_t kMaxMergedBytes = 1 << 20;

  // `pool` (may be null: plain allocations) must outlive this object.
  explicit FileWrites(BufferPool* pool = nullptr) : pool_(pool) {}

  // Shared by writers and an early commit, exclusive for COMMIT (the file comment).
  absl::Mutex io_mu;
  // Set while an early commit of this file runs: one at a time is enough.
  std::atomic<bool> early_commit_running{false};

  // Records `data` at `offset`: with a verifier it is pending (UNSTABLE reply), without
  // one it was written stably and only displaces older pending bytes.
  void Record(uint64_t offset, std::string_view data,
              const std::optional<WriteVerifier>& verifier, const Credentials& cred)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Removes the ranges whose verifier equals `committed`; returns the others (to be
  // resent) as copies.
  std::vector<Range> Commit(const WriteVerifier& committed) ABSL_LOCKS_EXCLUDED(mu_);
  // The recording point now: ranges recorded from here on are "after" it.
  uint64_t WrittenSoFar() const ABSL_LOCKS_EXCLUDED(mu_);
  // Removes the ranges recorded before `point` whose verifier equals `committed`.
  // Returns false when one of those carries another verifier (the server restarted:
  // they must be resent by Commit under the exclusive lock); they are kept.
  bool CommitWrittenBefore(uint64_t point, const WriteVerifier& committed) ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets everything.
  void Clear() ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t pending_bytes() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t range_count() const ABSL_LOCKS_EXCLUDED(mu_);
  // The credentials of the last write (used to resend).
  Credentials writer() const ABSL_LOCKS_EXCLUDED(mu_);
  // All pending ranges, in offset order (tests).
  std::vector<Range> Snapshot() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Gives the buffers of `ranges` back to the pool.
  void Recycle(std::vector<std::string> buffers);

  BufferPool* const pool_;
  mutable absl::Mutex mu_;
  std::map<uint64_t, Range> ranges_ ABSL_GUARDED_BY(mu_);  // by offset, non-overlapping
  uint64_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_recorded_ ABSL_GUARDED_BY(mu_) = 0;
  Credentials writer_ ABSL_GUARDED_BY(mu_);
};

class UnstableWrites {
 public:
  // `pool_bytes`: what the BufferPool of the copies may keep.
  explicit UnstableWrites(size_t pool_bytes = 0) : pool_(pool_bytes) {}

  // The state of `fh`, created on first use.
  std::shared_ptr<FileWrites> Get(const FileHandle& fh) ABSL_LOCKS_EXCLUDED(mu_);
  // The state of `fh` if it exists.
  std::shared_ptr<FileWrites> Find(const FileHandle& fh) const ABSL_LOCKS_EXCLUDED(mu_);
  // Drops the table's reference to `state` if nothing is pending and nobody else holds
  // it. The caller passes its own reference in (it is released here).
  void MaybeErase(const FileHandle& fh, std::shared_ptr<FileWrites> state) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  BufferPool pool_;  // outlives files_ (declared first)
  mutable absl::Mutex mu_;
  absl::flat_hash_map<FileHandle, std::shared_ptr<FileWrites>> files_ ABSL_GUARDED_BY(mu_);
};

}  // namespace localnfs::client
