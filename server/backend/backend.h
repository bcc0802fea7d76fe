// server/backend/backend.h — the file-system backend: what NFS (v3 now, v4.1/4.2 next),
// MOUNT and LOCALIO ask of the files they serve, with no protocol in it.
//
// Owns: the interface and its contracts. Implementations: PosixBackend (posix_backend.h,
// the exported directories through the kernel: what localnfsd serves), MemoryBackend
// (memory_backend.h, an in-memory tree with the same rules, for unit tests of every
// handler) and CachingBackend (caching_backend.h, a layer over either that keeps resolved
// objects and open files hot: the file cache). The conformance suite
// (conformance_test.cc) runs the same tests against all of them, as root and as an
// ordinary user, so that what a handler test proves on memory holds on disk.
// It is shaped like leveldb's Env + memenv (the OS behind an interface, an in-memory fake
// with the same contract), NFS-Ganesha's FSAL with its defaults in one place
// (default_methods.c) and MDCACHE stacked over it, and buildbarn's virtual file system (one
// backend, several protocol front ends).
//
// Objects and handles. A backend names its objects with a Handle: bytes it defines and
// alone interprets — the kernel's file_handle for POSIX (name_to_handle_at: inode and
// generation, so it survives renames and restarts), inode number and generation for
// memory. The protocol wraps a Handle into a wire handle (fhandle.h: export id + MAC) and
// unwraps it again; it never looks inside. Resolve(export, handle) gives an Object, the
// live object for the duration of one request: its export, its handle, its attributes as
// the resolution found them (the one stat of a READ or GETATTR: checks, EOF and the reply
// use them; a change's post-operation attributes are GetAttr's), and the backend's own
// reference to it (`node`: an NfsFile of mode kPath — the O_PATH fd for POSIX, the inode
// for memory). Every object an operation returns (LOOKUP, CREATE, READDIRPLUS entries)
// can be resolved again from its handle: the unprivileged POSIX backend, which cannot
// open_by_handle_at, remembers where each one lives (fhandle.h, HandleResolver), and
// forgets what REMOVE and RENAME made unreachable. An object reached through a mount
// point below the export is never returned (EACCES), and ".." of an export root is the
// root: no object outside the export is ever named (knfsd without crossmnt).
//
// Credentials. Every operation that acts for a client takes the request's (squashed)
// Credentials explicitly; nothing is read from the thread. The semantics are the
// server's of today (creds.h): a root server acts AS the caller — the POSIX backend
// switches the thread's fsuid/fsgid/groups around the system calls of each namespace
// operation, after the operation's objects were resolved (they are passed in resolved;
// resolution needs CAP_DAC_READ_SEARCH, which the switch drops), and switches back before
// it returns: the switch is owned here, and callers must not be switched already
// (ScopedFsCredentials does not nest). An unprivileged server acts as its own user, after
// checking the caller's mode bits itself. READ, WRITE, COMMIT and truncation use files
// the server opened as itself, after an explicit check with owner override; a write to a
// file with set-id bits and every truncation run as the caller, so that the kernel clears
// those bits as for a local writer. The memory backend models the same rules (and the
// kernel's: permission bits, sticky directories, set-id clearing, chown/chmod rights)
// for both modes (MemoryBackendOptions::privileged).
//
// Durability. An operation that changes metadata takes a Caller: the credentials and
// whether the export is `sync` (exports(5), the default). With sync, the backend commits
// what it changed before it returns — knfsd's commit_metadata, in its order: a new object
// before its directory, RENAME's target directory before its source, LINK's directory
// before the linked inode — as the server's own credentials, and a failed commit is the
// operation's error (the change is made but not known to be durable; knfsd answers so
// too). Data: WRITE with kDataSync/kFileSync is durable when it returns; COMMIT makes
// everything written before durable. Each commit is reported to a CommitObserver (tests)
// so the suite can check what was committed, and in which order, on every backend.
//
// The caching layer and lifetimes. CachingBackend keeps, per (export, handle), the
// resolved node (kPath) and the open files per mode (kRead, kReadWrite) in the file
// cache (file_cache.h: its essay says who holds which reference and when an fd closes).
// Resolve goes through it, so a hot handle is opened by handle once, not per request;
// LOOKUP and CREATE results enter it (the client uses a handle it was just given next);
// REMOVE and RENAME drop what they made unreachable; READ, WRITE, COMMIT and truncation
// take their file from it. LOCALIO's OpenForLocalIo shares the RPC path's resolved
// objects but opens a file of its own for each client (a client must not hold the
// server's open file description: see OpenForLocalIo). Nothing decided about access is cached: every request checks
// the export, the rule and the caller's permissions again (request_policy.h), and every
// cached node is validated again on use (removed, moved out of the export → ESTALE, and
// dropped).
//
// The hot path stays as cheap as before the interface: a READ is Resolve (a hash hit on
// the cached node, one statx, CheckResolved) → the permission check on the attributes it
// returned → a hash hit on the cached open file → preadv2. A handful of virtual calls per
// request, none per byte; no system call and no allocation beyond those (the handle's
// bytes move from the decoded handle into the Object; the cache's makers are
// FunctionRefs). A WRITE adds only the set-id switch it always had.
//
// Errors. absl::Status carrying an errno (common/status.h); nfs_status.h maps it to the
// wire in one place. What each operation may return is said with it; all may return EIO
// and ESTALE (an object removed or moved out of the export meanwhile), none throws.
//
// Thread-safety. A Backend is safe for concurrent use from any thread (POSIX: system
// calls on fds the request holds; memory: one mutex; caching: the file cache's). An
// Object belongs to one request at a time; it may move between threads with the request
// (a call handed from the event loop to a worker). NfsFiles are reference counted and
// immutable. Calls that may wait for the disk take `nowait`/`may_search` so that a thread
// serving many clients never waits (rpc/program.h, must_not_block).
//
// Byte-range locks (NFSv4 LOCK, LOCKT, LOCKU). A lock belongs to a lock file: a file of its
// own for one lock owner on one object (OpenLockFile: never the cache's shared file), as
// an OFD lock belongs to one open file description. Locks of one lock file never conflict
// with each other (a new lock over its own range replaces that part: merged, split,
// converted, as fcntl's); locks of different lock files on one object conflict when they
// overlap and one is a write lock — and in the POSIX backend they are the kernel's OFD
// locks (F_OFD_SETLK), so they conflict with the locks processes on the server's host
// take with fcntl (OFD and classic POSIX locks are checked against each other; flock(2)
// locks are separate). Dropping the last reference to a lock file releases its locks.
// Nothing waits: a conflicting request is refused with the conflict (NFSv4 clients poll
// for a blocking lock). The memory backend models the same rules (range_locks.h).
// OPEN's share reservations are the NFSv4 layer's: Linux has no deny modes for the host's
// processes, and knfsd too enforces them among its clients only.
// SEEK, ALLOCATE, DEALLOCATE, COPY, CLONE and READ_PLUS use the optional capabilities
// below, which every backend here implements.
#pragma once

#include <stdint.h>
#include <time.h>

#include <optional>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/credentials.h"
#include "common/refcount.h"
#include "server/backend/types.h"
#include "server/policy/fhandle.h"
#include "server/backend/file_cache.h"

namespace localnfs::exports {
class Export;
}

namespace localnfs::server::backend {

// A backend's persistent name for an object (see above). The POSIX backend's is the
// kernel's file_handle; others put what they like in it.
using Handle = KernelHandle;

// Who acts, and how durable the change must be when the call returns (see above).
struct Caller {
  const Credentials& cred;  // squashed; outlives the call
  bool sync = false;        // the export's `sync`: commit metadata before returning
};

// A resolved object, valid for one request (see above). Movable and copyable (a copy
// holds another reference on the node).
class Object {
 public:
  Object() = default;
  Object(const exports::Export* exp, Handle handle, const Attrs& attrs, Ref<NfsFile> node)
      : exp_(exp), handle_(std::move(handle)), attrs_(attrs), node_(std::move(node)) {}

  bool valid() const { return exp_ != nullptr; }
  const exports::Export& exp() const { return *exp_; }
  const Handle& handle() const { return handle_; }
  // The attributes when the object was resolved or made (valid ⊇ kAttrBasic).
  const Attrs& attrs() const { return attrs_; }
  // The backend's own reference to the live object (kPath). Only the backend that made
  // the Object looks inside it.
  NfsFile& node() const { return *node_; }
  const Ref<NfsFile>& node_ref() const { return node_; }

 private:
  const exports::Export* exp_ = nullptr;
  Handle handle_;
  Attrs attrs_;
  Ref<NfsFile> node_;
};

// One READDIR entry. Views into the backend's buffers: valid during the `emit` call only.
struct DirEntry {
  std::string_view name;
  uint64_t fileid = 0;
  uint64_t cookie = 0;  // resume position after this entry
  // READDIRPLUS only (`plus`): the entry's attributes and handle, as knfsd's
  // compose_entry_fh gives them — "." is the directory itself — unless the name no longer
  // names the object the listing saw (removed or replaced meanwhile), it is a mount point,
  // it is ".." of the export root, or the caller may not search the directory. attrs.valid
  // is 0 and handle null when absent.
  Attrs attrs;
  const Handle* handle = nullptr;
};
struct ReadDirResult {
  bool eof = false;
};

enum class RemoveKind { kNonDirectory, kDirectory, kAny };

enum class SeekWhat { kData, kHole };
struct SeekResult {
  bool eof = false;  // no data (kData) / no hole but the end (kHole) at or after offset
  uint64_t offset = 0;
};

// Byte-range locks (see "Byte-range locks" above). A range is [offset, offset + length),
// length 0 to the end of the file (fcntl's l_len 0; what an NFSv4 length of all ones
// becomes); offset + length at most 2^63 (off_t): the caller clamps, as knfsd does.
enum class LockType { kRead, kWrite };
struct LockRange {
  uint64_t offset = 0;
  uint64_t length = 0;
};
// A lock that refused a request: its type and range (length 0: to the end).
struct LockConflict {
  LockType type = LockType::kWrite;
  uint64_t offset = 0;
  uint64_t length = 0;
};
// The largest offset and end a lock range may have (off_t's).
inline constexpr uint64_t kMaxLockOffset = static_cast<uint64_t>(INT64_MAX);

// capabilities() bits: the optional operations a backend implements (NFSv4.2).
inline constexpr uint32_t kCapAllocate = 1u << 0;    // ALLOCATE (fallocate)
inline constexpr uint32_t kCapDeallocate = 1u << 1;  // DEALLOCATE (punch a hole)
inline constexpr uint32_t kCapSeek = 1u << 2;        // SEEK data/hole, READ_PLUS
inline constexpr uint32_t kCapCopy = 1u << 3;        // COPY (copy_file_range)
inline constexpr uint32_t kCapClone = 1u << 4;       // CLONE (FICLONERANGE, if the fs has it)
inline constexpr uint32_t kCapLocalIo = 1u << 5;     // OpenForLocalIo gives real fds
inline constexpr uint32_t kCapLocks = 1u << 6;       // byte-range locks (LOCK, LOCKT, LOCKU)

// One commit a backend made (see "Durability"), for tests.
struct CommitRecord {
  enum class Kind { kMetadata, kData };
  Kind kind;
  uint64_t fileid;
  friend bool operator==(const CommitRecord&, const CommitRecord&) = default;
};
class CommitObserver {
 public:
  virtual ~CommitObserver() = default;
  // Called on the committing thread, after the commit succeeded.
  virtual void Committed(const CommitRecord& record) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  virtual const char* name() const = 0;
  virtual uint32_t capabilities() const = 0;

  // ---- Resolution (as the server: before any credential switch)

  // The object of `handle` in `exp`. ESTALE: no such object any more, or not one the
  // export may name (removed, moved out, on another mount); EWOULDBLOCK: !may_search and
  // finding it needs a search of the export (unprivileged POSIX; fhandle.h), nothing done;
  // ETIMEDOUT: every search slot is busy. The handle's bytes move into the Object.
  virtual absl::StatusOr<Object> Resolve(const exports::Export& exp, Handle handle,
                                         bool may_search = true);
  // MOUNT: the directory `rel` ("" or "." for the root; components separated by '/')
  // beneath the export's root, never following a symlink (ELOOP) nor leaving the root
  // (EXDEV) or its mount; ENOENT, ENOTDIR as a path walk gives them.
  virtual absl::StatusOr<Object> OpenPath(const exports::Export& exp, std::string_view rel) = 0;

  // ---- Attributes

  // The attributes of `obj` now (valid ⊇ kAttrBasic).
  virtual absl::StatusOr<Attrs> GetAttr(const Object& obj) = 0;
  // SETATTR: the checks of rules.h's CheckSetAttr on obj.attrs() (kErrNotSync, EINVAL,
  // EPERM, EACCES, EISDIR), then the size (through a file opened for writing), mode,
  // owner and times as the caller; EPERM/EACCES from the kernel's own rules (chown to
  // another user, chmod of another's file, explicit times by a non-owner). Stops at the
  // first failure (what was set before it stays, as knfsd). Commits the object with sync.
  absl::Status SetAttr(const Object& obj, const SetAttrRequest& req,
                       std::optional<timespec> guard_ctime, const Caller& caller);

  // ---- Namespace (names are one component: rules.h ValidateName → EACCES/ENAMETOOLONG)

  // LOOKUP: "." is `dir`, ".." its parent (the root at the root). ENOTDIR: dir is not a
  // directory; EACCES: no search permission, or the object is a mount point; ENOENT.
  virtual absl::StatusOr<Object> Lookup(const Object& dir, std::string_view name,
                                        const Credentials& cred) = 0;
  // CREATE of a regular file. kGuarded: EEXIST if the name exists. kUnchecked: an existing
  // regular file is returned with only attrs.size applied (EISDIR for a directory, EEXIST
  // for another type). kExclusive: `verifier` is stored in the times (rules.h); an existing
  // file with the same verifier is the retransmit's success, another is EEXIST; the caller
  // sets the attributes afterwards (NFSv3). New objects get `attrs` (the owner only for a
  // root caller of a root server); times the kernel would refuse are refused before
  // creating (EINVAL), and an object whose attributes could not be applied is removed again
  // before the error returns. EACCES: no write+search permission on dir.
  virtual absl::StatusOr<Object> Create(const Object& dir, std::string_view name,
                                        CreateHow how, const SetAttrRequest& attrs,
                                        uint64_t verifier, const Caller& caller) = 0;
  virtual absl::StatusOr<Object> Mkdir(const Object& dir, std::string_view name,
                                       const SetAttrRequest& attrs, const Caller& caller) = 0;
  // ENAMETOOLONG: target of PATH_MAX bytes or more; EINVAL: a NUL in it.
  virtual absl::StatusOr<Object> Symlink(const Object& dir, std::string_view name,
                                         std::string_view target, const SetAttrRequest& attrs,
                                         const Caller& caller) = 0;
  // type: kFifo, kSocket, kCharDevice, kBlockDevice (EINVAL otherwise). Devices only on a
  // root server (EPERM).
  virtual absl::StatusOr<Object> Mknod(const Object& dir, std::string_view name,
                                       FileType type, uint32_t rdev_major,
                                       uint32_t rdev_minor, const SetAttrRequest& attrs,
                                       const Caller& caller) = 0;
  // REMOVE (kNonDirectory: EISDIR for a directory), RMDIR (kDirectory: ENOTDIR,
  // ENOTEMPTY; EINVAL for "." and ".."), NFSv4's REMOVE (kAny). "." or ".." as a
  // non-directory: EACCES. EPERM: sticky directory, neither owner. Returns the handle of
  // an object that lost its last link (its caches and remembered location are dropped).
  virtual absl::StatusOr<std::optional<Handle>> Remove(const Object& dir,
                                                       std::string_view name, RemoveKind kind,
                                                       const Caller& caller) = 0;
  // RENAME. EXDEV: the directories are in different exports; EINVAL: "." or "..", or a
  // directory into itself; ENOTEMPTY, EISDIR, ENOTDIR as rename(2). Renaming a name onto
  // another link of the same object changes nothing. Returns the handle of a replaced
  // target that lost its last link.
  virtual absl::StatusOr<std::optional<Handle>> Rename(const Object& from_dir,
                                                       std::string_view from_name,
                                                       const Object& to_dir,
                                                       std::string_view to_name,
                                                       const Caller& caller) = 0;
  // LINK `obj` as `name` in `dir`. EXDEV: different exports; EISDIR: obj is a directory;
  // EEXIST.
  virtual absl::Status Link(const Object& obj, const Object& dir, std::string_view name,
                            const Caller& caller) = 0;
  // READLINK. EINVAL: not a symlink.
  virtual absl::StatusOr<std::string> ReadLink(const Object& obj) = 0;
  // READDIR/READDIRPLUS from `cookie` (0: the start). Cookies are stable: a listing
  // resumes where it stopped, O(1) per entry, whatever else changed in the directory;
  // "." and ".." are listed with cookies of their own (as knfsd; ".." of the export root
  // has the root's fileid). `emit` returns false when the entry does not fit the reply,
  // which ends the call without consuming it. ENOTDIR; EACCES: no read permission;
  // EBADR: a cookie the directory never gave (NFS3ERR_BAD_COOKIE).
  virtual absl::StatusOr<ReadDirResult> ReadDir(
      const Object& dir, uint64_t cookie, bool plus, const Credentials& cred,
      absl::FunctionRef<bool(const DirEntry&)> emit) = 0;

  // ---- I/O on regular files (rules.h CheckIo first: EISDIR, EINVAL, EACCES)

  // READ into `buf` (≤ kMaxIoSize). EOF is decided from obj.attrs().size (the stat the
  // request took), except that data beyond it (the file grew) is never EOF. `nowait`: only
  // from the page cache; data that would need the disk gives would_block, nothing done.
  absl::StatusOr<ReadResult> Read(const Object& obj, const Credentials& cred, uint64_t offset,
                                  absl::Span<char> buf, bool nowait = false);
  // WRITE. A short write is reported as such; an error only when nothing was written.
  absl::StatusOr<WriteResult> Write(const Object& obj, const Credentials& cred,
                                    uint64_t offset, absl::Span<const char> data,
                                    Stability stable);
  // COMMIT: everything written to obj before is durable.
  absl::Status Commit(const Object& obj, const Credentials& cred);
  // LOCALIO OPEN_LOCAL_FH: a new open file of `obj` with exactly `mode` (kRead or
  // kReadWrite), after rules.h CheckLocalIo (EOPNOTSUPP: a set-id file for writing) —
  // never the cached file RPC I/O uses: the client could change a shared open file
  // description's status flags (O_APPEND, O_DIRECT) under the server's own I/O. Its
  // fd() is what the client gets; EOPNOTSUPP from a backend without fds (no kCapLocalIo).
  // The attributes to send with it are obj.attrs(): opening changes none.
  absl::StatusOr<Ref<NfsFile>> OpenForLocalIo(const Object& obj, const Credentials& cred,
                                              FileMode mode);

  // ---- Optional (capabilities()); EOPNOTSUPP without the capability

  // ALLOCATE / DEALLOCATE [offset, offset+length): a write (CheckIo kMayWrite, set-id
  // bits cleared as for WRITE); DEALLOCATE leaves the size alone.
  absl::Status Allocate(const Object& obj, const Credentials& cred, uint64_t offset,
                        uint64_t length);
  absl::Status Deallocate(const Object& obj, const Credentials& cred, uint64_t offset,
                          uint64_t length);
  // SEEK: the next data or hole at or after `offset` (a read). eof: none before the end.
  absl::StatusOr<SeekResult> Seek(const Object& obj, const Credentials& cred, uint64_t offset,
                                  SeekWhat what);
  // COPY `count` bytes (0: to the end of src) from src at src_offset to dst at dst_offset;
  // returns how many were copied (short at src's end). Read src, write dst.
  absl::StatusOr<uint64_t> CopyRange(const Object& src, const Object& dst,
                                     const Credentials& cred, uint64_t src_offset,
                                     uint64_t dst_offset, uint64_t count);
  // CLONE: as COPY, sharing the blocks; EOPNOTSUPP where the file system cannot, EINVAL
  // for ranges it cannot share (unaligned), as FICLONERANGE.
  absl::Status Clone(const Object& src, const Object& dst, const Credentials& cred,
                     uint64_t src_offset, uint64_t dst_offset, uint64_t count);

  // ---- Byte-range locks (kCapLocks; see "Byte-range locks" above)

  // A new lock file of the regular file `obj` for one lock owner: kRead takes read locks
  // only, kReadWrite both. Opened as the server, with no permission check: the client's
  // OPEN was checked, and a lock changes no data. EINVAL: not a regular file.
  absl::StatusOr<Ref<NfsFile>> OpenLockFile(const Object& obj, FileMode mode);
  // LOCK: granted (nullopt) or refused with the conflicting lock. EBADF: a write lock on
  // a kRead lock file. EINVAL: a range beyond kMaxLockOffset.
  absl::StatusOr<std::optional<LockConflict>> SetLock(NfsFile& lock_file, LockType type,
                                                      LockRange range);
  // LOCKT: the lock that would refuse SetLock on `lock_file` (a fresh one for an owner
  // that holds none), changing nothing.
  absl::StatusOr<std::optional<LockConflict>> TestLock(NfsFile& lock_file, LockType type,
                                                       LockRange range);
  // LOCKU: no lock of lock_file is left in `range` (unlocking nothing is no error).
  absl::Status Unlock(NfsFile& lock_file, LockRange range);

  // ---- File system

  virtual absl::StatusOr<FsStat> StatFs(const Object& obj) = 0;
  virtual absl::StatusOr<PathConf> GetPathConf(const Object& obj) = 0;

  // Reported every commit (see "Durability"); set before the backend is used, null: none.
  virtual void set_commit_observer(CommitObserver* observer) { observer_ = observer; }

 protected:
  friend class CachingBackend;  // composes another backend's primitives

  // Resolution, in two halves so that the caching layer can keep the first: the node of
  // `handle` (expensive: open_by_handle_at, a search), and its validation now (cheap: one
  // statx, CheckResolved), which gives the attributes.
  virtual absl::StatusOr<Ref<NfsFile>> OpenNode(const exports::Export& exp,
                                                const Handle& handle, bool may_search) = 0;
  virtual absl::StatusOr<Attrs> Validate(const exports::Export& exp, NfsFile& node) = 0;

  // The file of `obj` for `mode` (at least: CachingBackend may return its cached
  // read-write file for a kRead), for the server's own I/O only — never handed out.
  virtual absl::StatusOr<Ref<NfsFile>> AcquireFile(const Object& obj, FileMode mode) {
    return OpenFile(obj, mode);
  }
  // Opens a new file (as the server) — no checks: the callers above made them.
  virtual absl::StatusOr<Ref<NfsFile>> OpenFile(const Object& obj, FileMode mode) = 0;
  virtual absl::StatusOr<ReadResult> ReadFile(NfsFile& file, const Attrs& attrs,
                                              uint64_t offset, absl::Span<char> buf,
                                              bool nowait) = 0;
  // As `cred` where the kernel must judge the writer (set-id bits in obj.attrs()).
  virtual absl::StatusOr<WriteResult> WriteFile(NfsFile& file, const Object& obj,
                                                const Credentials& cred, uint64_t offset,
                                                absl::Span<const char> data,
                                                Stability stable) = 0;
  virtual absl::Status SyncFile(NfsFile& file, const Object& obj) = 0;
  // SETATTR after its checks: `resized` (open for writing) when the size is set.
  virtual absl::Status ApplySetAttr(const Object& obj, const SetAttrRequest& req,
                                    NfsFile* resized, const Caller& caller) = 0;
  // Whether SETATTR's unprivileged checks apply (rules.h CheckSetAttr's server_checks).
  virtual bool server_checks() const = 0;
  virtual absl::Status AllocateFile(NfsFile& file, const Object& obj, const Credentials& cred,
                                    uint64_t offset, uint64_t length, bool punch_hole);
  virtual absl::StatusOr<SeekResult> SeekFile(NfsFile& file, const Object& obj,
                                              uint64_t offset, SeekWhat what);
  // A lock request on a lock file after the checks of SetLock/TestLock/Unlock (`test`:
  // LOCKT; `unlock`: LOCKU, type ignored).
  enum class LockOp { kSet, kTest, kUnlock };
  virtual absl::StatusOr<std::optional<LockConflict>> LockFile(NfsFile& lock_file, LockOp op,
                                                               LockType type, LockRange range);
  virtual absl::StatusOr<uint64_t> CopyFile(NfsFile& src, NfsFile& dst, const Object& dst_obj,
                                            const Credentials& cred, uint64_t src_offset,
                                            uint64_t dst_offset, uint64_t count, bool clone);

  // For implementations: report a commit to the observer.
  void NotifyCommit(CommitRecord::Kind kind, uint64_t fileid) const {
    if (observer_ != nullptr) observer_->Committed(CommitRecord{kind, fileid});
  }

 private:
  CommitObserver* observer_ = nullptr;
};

}  // namespace localnfs::server::backend
