// server/backend/file_cache.h — open files kept for READ, WRITE and COMMIT (knfsd's filecache),
// and the resolved objects of hot file handles.
//
// Owns: one open fd per (export id, kernel handle, access mode), opened by the server
// itself (not under the request's credentials: callers check permission first,
// see creds.h), an LRU list bounded by count, and a reaper thread that closes
// entries idle for longer than the idle timeout.
//
// What an entry holds is a backend's (server/backend/backend.h): the POSIX backend's
// entries are plain NfsFiles around an fd; a backend whose objects are not fds (the
// memory backend of the unit tests) makes NfsFile subclasses of its own, whose fd() is -1,
// and only that backend looks inside them. The cache never does: it keys, counts and
// drops references. The caching layer (backend/caching_backend.h) owns the one localnfsd
// has; every door reaches it through the Backend (NFSv3 and MOUNT through Resolve and the
// I/O calls, the LOCALIO local socket through Resolve), so all of them share one node per
// object, and REMOVE/RENAME drop it for all. Open files are the server's alone: a LOCALIO
// client gets a file of its own (Backend::OpenForLocalIo), never a cached one.
//
// Mode kPath is the O_PATH fd a handle resolves to (Backend::Resolve),
// so that a handle in use is opened by handle once, not on every request — what the
// dentry cache gives knfsd's fh_verify. It carries no authorisation: every request
// still checks the export, its client rule and the caller's permissions itself, and
// passes the object through CheckResolved (fhandle.h) with its attributes of the
// moment, so a cached object that was removed or moved out of the export is STALE.
// kPath entries are never handed out for I/O and never satisfy kRead/kReadWrite.
//
// Lifetimes (who holds which reference, as in fs/nfsd/filecache.c):
//  * An NfsFile is refcounted. The cache holds one reference while the file is in
//    its table ("hashed"). Acquire() returns a Ref<NfsFile> — a second reference held
//    by the caller for the duration of one READ/WRITE/COMMIT.
//  * Eviction (LRU overflow, idle reaper, Close() after REMOVE/RENAME-over or a
//    removal noticed on use, export removal, Shutdown) unhashes the entry and drops
//    the cache's reference. The fd is closed when the last reference goes: an
//    evicted file stays open until the READ or WRITE using it finishes, and never
//    earlier.
//  * The reaper only evicts entries nobody else holds (refcount == 1) that were not
//    used for `idle_timeout`; in-use entries are touched again when released.
//  * Shutdown() stops the reaper, then unhashes everything and drops the cache's
//    references. It does not wait for callers: the server calls it after
//    rpc::Server::Stop(), when no request runs any more, so every fd is closed by the
//    time Shutdown() returns.
//
// Thread-safety: all methods may be called concurrently; the table is guarded by one
// absl::Mutex (opens happen outside it).
#pragma once

#include <stdint.h>

#include <array>
#include <functional>
#include <list>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/refcount.h"
#include "common/unique_fd.h"
#include "server/policy/fhandle.h"

namespace localnfs::server {

// kPath: the object's O_PATH fd (see above), not an open file.
enum class FileMode : uint8_t { kRead = 0, kReadWrite = 1, kPath = 2 };

// One open file (or, kPath, one resolved object). Immutable after creation except for its
// bookkeeping. Subclassed by backends whose files are not fds (see above).
class NfsFile : public RefCounted {
 public:
  // A new file around `fd` with one reference, the caller's.
  static Ref<NfsFile> Make(UniqueFd fd, FileMode mode) {
    return Ref<NfsFile>::Adopt(new NfsFile(std::move(fd), mode));
  }

  int fd() const { return fd_.get(); }  // -1 for a backend's own subclass
  FileMode mode() const { return mode_; }

  // Held around a large unstable write through this file (vfs::WriteAt). The kernel serialises
  // buffered writes to one inode anyway (i_rwsem, exclusive), but its waiters spin on
  // the owner for as long as the owner copies — a whole 1 MiB WRITE; here they sleep.
  absl::Mutex large_write_mu;

 protected:
  NfsFile(UniqueFd fd, FileMode mode) : fd_(std::move(fd)), mode_(mode) {}
  ~NfsFile() override = default;

 private:
  UniqueFd fd_;  // closed by the destructor, i.e. after the last reference
  const FileMode mode_;
};

// What the cache did, for localnfs-ctl status and the metrics endpoint. Arrays are
// indexed by FileMode (kRead, kReadWrite, kPath).
struct FileCacheStats {
  static constexpr size_t kModes = 3;
  std::array<uint64_t, kModes> entries{};  // hashed now
  std::array<uint64_t, kModes> hits{};     // by the mode asked (a read served by a
                                           // read-write file is a kRead hit)
  std::array<uint64_t, kModes> misses{};   // opened (or made) for the mode asked
  uint64_t evictions = 0;  // the least recently used, beyond max_entries
  uint64_t reaped = 0;     // idle for idle_timeout
  uint64_t closed = 0;     // Close()/CloseExport(): removed, renamed over, unexported
};

struct FileCacheOptions {
  size_t max_entries = 1024;
  absl::Duration idle_timeout = absl::Seconds(30);
  absl::Duration reaper_interval = absl::Seconds(5);
};

class FileCache {
 public:
  // Opens the file; called without the cache's lock held.
  using Opener = std::function<absl::StatusOr<UniqueFd>(FileMode)>;
  // Makes the entry (a new NfsFile, or one the caller already holds, with mode `mode`);
  // called without the cache's lock held. FunctionRef: no allocation per call.
  using Maker = absl::FunctionRef<absl::StatusOr<Ref<NfsFile>>(FileMode)>;

  explicit FileCache(FileCacheOptions options);
  ~FileCache();  // Shutdown() if not done
  FileCache(const FileCache&) = delete;
  FileCache& operator=(const FileCache&) = delete;

  // Starts the reaper thread.
  void Start() ABSL_LOCKS_EXCLUDED(mu_);
  // Stops the reaper and closes every cached fd (see the header comment).
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // Returns a referenced open file for (export_id, kh) with at least `mode`
  // (a read-write file satisfies a read). On a miss calls `open(mode)`. The files are the
  // server's own: LOCALIO hands its clients files of their own (Backend::OpenForLocalIo).
  absl::StatusOr<Ref<NfsFile>> Acquire(uint32_t export_id, const KernelHandle& kh,
                                       FileMode mode, const Opener& open);
  // The same with the entry made by `make` (a backend's; see above). On a hit `make` is
  // not called; on a miss the cache keeps a reference of its own on what it returns,
  // unless a racing miss hashed another file first (then the caller's file serves its
  // one call, as with Acquire).
  absl::StatusOr<Ref<NfsFile>> AcquireFile(uint32_t export_id, const KernelHandle& kh,
                                           FileMode mode, Maker make)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Unhashes every mode of one file, kPath included (after it was removed or replaced
  // by RENAME, so its blocks are freed once in-flight I/O finishes).
  void Close(uint32_t export_id, const KernelHandle& kh) ABSL_LOCKS_EXCLUDED(mu_);
  // Unhashes every file of an export (export removed on reload).
  void CloseExport(uint32_t export_id) ABSL_LOCKS_EXCLUDED(mu_);

  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);
  // A copy of the figures, taken under the lock (they are counted under it anyway, by
  // the paths that take it).
  FileCacheStats stats() const ABSL_LOCKS_EXCLUDED(mu_);
  // Runs one reaper pass as if `now` were the current time.
  void ReapForTesting(absl::Time now);

 private:
  struct Key {
    uint32_t export_id;
    KernelHandle kh;
    FileMode mode;
    friend bool operator==(const Key&, const Key&) = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.export_id, k.kh, k.mode);
    }
  };
  struct Entry {
    Key key;
    NfsFile* file;  // the cache's reference
    absl::Time last_used;
  };
  using Lru = std::list<Entry>;

  Ref<NfsFile> LookupLocked(const Key& key, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the cache's reference of `it` to `out` (dropped outside the lock).
  void UnhashLocked(Lru::iterator it, std::vector<NfsFile*>& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Reap(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  void ReaperLoop() ABSL_LOCKS_EXCLUDED(mu_);

  const FileCacheOptions options_;
  mutable absl::Mutex mu_;
  Lru lru_ ABSL_GUARDED_BY(mu_);  // front = most recently used
  absl::flat_hash_map<Key, Lru::iterator> index_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  FileCacheStats stats_ ABSL_GUARDED_BY(mu_);
  std::thread reaper_;
};

}  // namespace localnfs::server
