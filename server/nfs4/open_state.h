// server/nfs4/open_state.h — NFSv4.1 open and lock state: stateids, share reservations
// and byte-range locks (RFC 8881 §8 "State Management", §9 "File Locking and Share
// Reservations"; the kernel's fs/nfsd/nfs4state.c nfs4_ol_stateid / nfs4_file).
//
// Owns: every open and lock stateid of every client, by id; per file (export id +
// backend handle) the opens on it and a record of the locks each lock stateid holds;
// and each lock stateid's lock file (Backend::OpenLockFile: an OFD lock file of its
// own, so that the kernel decides conflicts between lock owners, and with the host's
// processes). Not owned: the Backend (outlives the table); client records (the session
// layer: a client is named here by its clientid4 only, and the layer calls
// ReleaseClient when it discards one).
//
// Stateids. `other` (12 bytes) = this table's instance (4 random bytes per start: a
// stateid of another server instance is BAD_STATEID, which 4.1 says for stale ones,
// RFC 8881 §15.1.16.7) + a 64-bit id never reused. `seqid` starts at 1 and grows with
// every change of the state (OPEN upgrade, OPEN_DOWNGRADE, LOCK, LOCKU). Checking a
// stateid the client sends (Check): unknown other → BAD_STATEID; another client's →
// BAD_STATEID; another file's → BAD_STATEID; seqid 0 → the current one (4.1); a seqid
// below the current → OLD_STATEID, above → BAD_STATEID.
//
// Share reservations (RFC 8881 §9.7). An open-owner has one open stateid per file;
// OPENing the file again upgrades it (access and deny are or'ed in). A new access
// conflicts with the deny of every OTHER open of the file and a new deny with their
// access → SHARE_DENIED. OPEN_DOWNGRADE to a subset of what the stateid has (else
// INVAL). CLOSE frees the stateid and, as knfsd does for 4.1, the lock stateids opened
// under it (their locks released with their lock files).
//
// Locks. A lock-owner has one lock stateid per open (LOCK with open_to_lock_owner4
// makes it, with its lock file opened read-write if the open has write access, else
// read-only); LOCK/LOCKU go to the Backend on that lock file; WRITE_LT on an open
// without write access → OPENMODE, READ_LT without read or write access → OPENMODE.
// The table records the ranges each lock stateid holds (RangeLocks, owner = the
// stateid), which answers FREE_STATEID (LOCKS_HELD while it holds any) and names the
// lock owner of a conflict when the conflicting lock is one of ours (another client's
// lock owner in LOCK4denied; a host process's lock has an empty owner, clientid 0).
// Conflicts with expired (courtesy) clients: the caller's `may_discard` decides per
// conflicting clientid; the table releases that client's state and tries once more
// (knfsd's courteous server since 5.19).
//
// Bounds: at most max_states stateids in all and max_states_per_client per client,
// and — since each holds an open file (an fd for POSIX) — at most max_lock_files lock
// stateids in all and max_lock_files_per_client per client, so a client cannot grow
// the server's memory without bound. Beyond: OPEN → NFS4ERR_NOSPC, LOCK →
// NFS4ERR_DELAY (kOpenTableFull, kLockTableFull). Not NFS4ERR_RESOURCE, which "is not a
// valid error in NFSv4.1" (RFC 7863's nfsstat4; it is in no op's list of RFC 8881
// §15.2, and knfsd turns any RESOURCE into REP_TOO_BIG within a session): NOSPC is in
// OPEN's list (an OPEN may create) and fails the open at once — a client at its bound
// would otherwise retry forever — while LOCK's list has no such status, so it gets
// DELAY, as knfsd answers when it cannot make a lock stateid (nfsd4_lock:
// nfserr_jukebox); the client retries and succeeds once its own files close.
// The lock files' bound also answers to the process's RLIMIT_NOFILE
// (Options::ForFileLimit, which localnfsd uses): lock files must not take the
// descriptors that new connections (accept), the file cache and the handle cache need
// — a flood of lock owners under a low limit otherwise left the server unable to
// accept anyone (tests/nfs4_limits_test.cc).
//
// Thread-safety: every method may be called from any thread; one mutex guards the
// table (held across the Backend's lock calls, which do not block: F_OFD_SETLK).
// Lock order: this table's mutex, then the Backend's.
#pragma once

#include <stdint.h>

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "rpc/nfs4.h"
#include "server/backend/backend.h"
#include "server/backend/range_locks.h"

namespace localnfs::server::nfs4 {

// A stateid as the wire has it (stateid4), comparable.
struct StateId {
  uint32_t seqid = 0;
  std::array<char, NFS4_OTHER_SIZE> other{};
  friend bool operator==(const StateId&, const StateId&) = default;
};

// The file an open is of: the export and the backend's handle.
struct FileKey {
  uint32_t export_id = 0;
  backend::Handle handle;
  friend bool operator==(const FileKey&, const FileKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const FileKey& k) {
    return H::combine(std::move(h), k.export_id, k.handle);
  }
};

// What a checked stateid allows (Check): the open's access (OPEN4_SHARE_ACCESS_*).
struct StateAccess {
  uint32_t access = 0;
};

// What OPEN and LOCK answer at the bounds (see "Bounds" above).
inline constexpr nfsstat4 kOpenTableFull = NFS4ERR_NOSPC;
inline constexpr nfsstat4 kLockTableFull = NFS4ERR_DELAY;

class OpenStateTable {
 public:
  struct Options {
    size_t max_states = 1 << 18;        // ~250 bytes each: ~64 MiB at most
    size_t max_states_per_client = 1 << 14;  // opens of a build on one client fit
    size_t max_lock_files = 8192;
    size_t max_lock_files_per_client = 1024;

    // The defaults, with the lock files bounded by what a process allowed `nofile`
    // descriptors can spare after `other_fds` (connections, file cache, handle cache,
    // listeners…): that much, but at least an eighth of `nofile` and at most 8192; per
    // client at most a quarter of that (and 1024).
    static Options ForFileLimit(size_t nofile, size_t other_fds);
  };
  // Decides, for a client whose state conflicts with a request, whether that state may
  // be discarded now (an expired, courtesy client); called with the table's lock held —
  // it must not call back into the table.
  using MayDiscard = std::function<bool(uint64_t clientid)>;

  OpenStateTable(backend::Backend& backend, Options options);
  ~OpenStateTable();
  OpenStateTable(const OpenStateTable&) = delete;
  OpenStateTable& operator=(const OpenStateTable&) = delete;

  // ---- Opens

  struct OpenRequest {
    uint64_t clientid = 0;
    std::string_view owner;       // open_owner4's owner bytes
    const backend::Object* file;  // the regular file opened (resolved, current fh)
    uint32_t access = 0;          // OPEN4_SHARE_ACCESS_READ/WRITE/BOTH (want bits cleared)
    uint32_t deny = 0;            // OPEN4_SHARE_DENY_*
  };
  // OPEN: a new open stateid or the owner's existing one upgraded. SHARE_DENIED,
  // kOpenTableFull, INVAL (access 0 or bits beyond BOTH, deny beyond BOTH).
  nfsstat4 Open(const OpenRequest& req, const MayDiscard& may_discard, StateId* out);
  // OPEN_DOWNGRADE to `access`/`deny`, subsets of the stateid's (else INVAL).
  nfsstat4 Downgrade(uint64_t clientid, const FileKey& file, const StateId& open,
                     uint32_t access, uint32_t deny, StateId* out);
  // CLOSE: the open stateid and its lock stateids (and their locks) are gone.
  nfsstat4 Close(uint64_t clientid, const FileKey& file, const StateId& open);

  // ---- Locks

  struct LockRequest {
    uint64_t clientid = 0;
    const backend::Object* file;
    backend::LockType type = backend::LockType::kRead;
    backend::LockRange range;  // clamped by the caller (LockRangeOf)
    // Either a new lock owner with the open stateid it locks under…
    std::optional<StateId> open;
    std::string_view lock_owner;
    // …or the lock stateid it already has.
    std::optional<StateId> lock;
  };
  // LOCK: OK with the lock stateid (*out), DENIED with *denied filled (owner bytes in
  // denied_owner), or BAD_STATEID / OLD_STATEID / OPENMODE / kLockTableFull / an errno's.
  struct Denied {
    backend::LockConflict conflict;
    uint64_t clientid = 0;     // 0: not one of ours (a host process)
    std::string owner;         // the lock owner's bytes, empty for a host process
  };
  nfsstat4 Lock(const LockRequest& req, const MayDiscard& may_discard, StateId* out,
                Denied* denied);
  // LOCKT for `lock_owner` of `clientid` (a lock owner without state tests with a fresh
  // lock file). OK: no conflict; DENIED with *denied.
  nfsstat4 TestLock(uint64_t clientid, std::string_view lock_owner, const backend::Object& file,
                    backend::LockType type, backend::LockRange range, Denied* denied);
  // LOCKU.
  nfsstat4 Unlock(uint64_t clientid, const FileKey& file, const StateId& lock,
                  backend::LockRange range, StateId* out);

  // ---- Any stateid

  // READ, WRITE, SETATTR of size: the stateid is one of `clientid`'s for `file`, with the
  // access an I/O of `need` (OPEN4_SHARE_ACCESS_READ or _WRITE) requires; a lock
  // stateid stands for its open. Special stateids are the caller's (anonymous I/O).
  nfsstat4 Check(uint64_t clientid, const FileKey& file, const StateId& id, uint32_t need) const;
  // READ and WRITE with a special stateid (anonymous, READ bypass): NFS4ERR_LOCKED when
  // an open of the file denies the access `need` asks (knfsd's nfs4_share_conflict).
  nfsstat4 CheckAnonymous(const FileKey& file, uint32_t need) const;
  // TEST_STATEID of one stateid: OK, BAD_STATEID, OLD_STATEID.
  nfsstat4 Test(uint64_t clientid, const StateId& id) const;
  // FREE_STATEID: a lock stateid that holds no lock (else LOCKS_HELD); an open stateid
  // is LOCKS_HELD (CLOSE frees it).
  nfsstat4 Free(uint64_t clientid, const StateId& id);
  // The client is gone (expired and discarded, DESTROY_CLIENTID, a new boot of it):
  // all its state, locks released.
  void ReleaseClient(uint64_t clientid);

  // For status and tests.
  struct Counts {
    size_t opens = 0, lock_states = 0, files = 0;
  };
  Counts counts() const;
  size_t states_of(uint64_t clientid) const;

  // NFSv4 lock ranges (offset, length with all ones = to the end) as the Backend's: INVAL
  // for length 0 or an end past 2^64 (RFC 8881 §18.10.3), ranges beyond off_t clamped to
  // it as knfsd does (a lock up to 2^64-1 is a lock to the end).
  static std::optional<backend::LockRange> LockRangeOf(uint64_t offset, uint64_t length);

 private:
  struct State;
  struct File;

  State* Find(const StateId& id) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The stateid's state if `clientid` owns it and its seqid is current (or 0).
  nfsstat4 Lookup(uint64_t clientid, const StateId& id, State** out) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  StateId IdOf(const State& s) const;
  // Room for one more stateid of `clientid` (max_states, max_states_per_client).
  bool Admit(uint64_t clientid) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  State* NewState(uint64_t clientid, File* file) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  File* FileOf(const backend::Object& obj) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Drop(State* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The opens of `file` whose deny refuses `access` (`self`, the owner's own open,
  // included) or, other than `self`, whose access `deny` refuses: their clients.
  std::vector<uint64_t> ShareConflicts(const File& file, const State* self, uint32_t access,
                                       uint32_t deny) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void FillDenied(const File& file, const State* self, const backend::LockConflict& c,
                  Denied* denied) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void ReleaseClientLocked(uint64_t clientid) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  backend::Backend& backend_;
  const Options options_;
  const std::array<char, 4> instance_;  // random per table: the first bytes of `other`

  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint64_t, std::unique_ptr<State>> states_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<FileKey, std::unique_ptr<File>> files_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, size_t> per_client_ ABSL_GUARDED_BY(mu_);
  // Lock stateids (each with its lock file), in all and per client.
  size_t lock_files_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, size_t> lock_files_per_client_ ABSL_GUARDED_BY(mu_);
};

}  // namespace localnfs::server::nfs4
