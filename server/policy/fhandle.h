// server/policy/fhandle.h — NFS file handles: encoding, authentication and resolution.
//
// Owns: the handle key (HMAC key, 32 random bytes in <state-dir>/handle.key, created
// 0600 on first start so handles survive restarts), and — in unprivileged mode — a
// bounded cache identity → location used to resolve handles without
// open_by_handle_at.
//
// Wire format (opaque, at most 64 bytes, RFC 1813 allows 64):
//   [0]      version (kHandleVersion)
//   [1]      length n of the kernel handle bytes (≤ kMaxKernelHandleBytes)
//   [2..5]   export id, big endian
//   [6..9]   kernel handle type (file_handle.handle_type), big endian
//   [10..]   n bytes of file_handle.f_handle (from name_to_handle_at)
//   [+8]     MAC: the first 8 bytes of HMAC-SHA256(key, everything before it)
// Decoding: too short/long, wrong version, bad length → BADHANDLE; MAC mismatch
// (forged or made with another key) → BADHANDLE; valid MAC but the export is gone or
// the object no longer exists → STALE. BADHANDLE is carried as errno EBADMSG and
// STALE as ESTALE (server/nfs3/nfs_status.h maps them). The MAC is computed with an
// HMAC context keyed once per thread, and bytes equal to the handle a thread verified
// last are not verified again (constant-time comparison; see fhandle.cc).
//
// The identity inside the handle is the file system's own (inode + generation on
// ext4/xfs), so it survives renames of the object and of its parents and restarts of
// the server. The MAC binds the export id: a handle cannot be replayed against
// another export.
//
// Resolution (HandleResolver):
//  * Privileged (CAP_DAC_READ_SEARCH, detected at Start() by resolving an export
//    root's own handle): open_by_handle_at(export root fd, handle, O_PATH). The
//    object must be on the export's mount and device; a directory must in addition
//    be a descendant of the export root (walked up with "..", as knfsd's
//    nfsd_acceptable does), so a directory moved out of the export, or a handle of
//    the file system root, never reaches outside it. Non-directories are accepted
//    like knfsd with no_subtree_check (a file hard-linked or moved out of the export
//    stays reachable by a client that already holds its handle; the server never
//    gives out a handle of a file reached through a mount point below the export).
//  * Unprivileged: open_by_handle_at is not permitted, so every object the server
//    hands out a handle for (LOOKUP, READDIRPLUS, CREATE, MKDIR, …) is remembered in
//    a bounded LRU: identity → (O_PATH fd of the parent directory, name) or the
//    object's own O_PATH fd for directories. Resolution re-opens parent+name
//    (O_NOFOLLOW) and checks the identity again (name_to_handle_at); a miss or a
//    mismatch (the object was renamed, evicted, or the server restarted) falls back
//    to a breadth-first search of the export, comparing name_to_handle_at
//    identities, which visits at most kMaxSearchEntries entries (symlinks are never
//    followed, other devices never entered). Limits: that search costs one
//    getdents + one name_to_handle_at per entry visited, i.e. seconds on exports
//    with millions of files, and objects beyond the bound get STALE until a LOOKUP
//    path reaches them again; directories the server's user cannot read are not
//    searched. The cache holds up to max_cached entries (one fd each; localnfsd's
//    --handle-cache-size, default kResolverCacheEntries).
//    Because a search takes that long, a thread that serves many clients at once (the
//    RPC event loop running a quick call, the LOCALIO local socket) asks with
//    may_search = false: a handle that would need one fails at once with EWOULDBLOCK,
//    having done nothing, and the caller hands the request to a thread that may wait
//    (an RPC worker: rpc/program.h, CallContext::must_not_block; the local socket's
//    search thread: local_socket.h).
//    A client can ask for searches at will (it keeps the handles of files it removes),
//    so they are bounded too: at most max_searches run at once (localnfsd: one fewer
//    than its workers but at least one, so with two or more workers one always serves
//    other requests) — beyond, Open()
//    fails at once with ETIMEDOUT (NFS3ERR_JUKEBOX: the client retries later, as for
//    knfsd's -ETIMEDOUT) — and a handle whose search found nothing is remembered as
//    stale for kStaleHandleMemory (at most kMaxStaleHandles of them), so repeating it
//    costs a hash lookup, not another search.
//
// Callers that serve requests keep the objects they resolve (request_policy.h:
// ResolveObject, through the file cache) and re-check them on every use with
// CheckResolved(), so open_by_handle_at runs once per object while it is hot.
//
// Thread-safety: HandleKey is immutable after creation (its per-thread MAC state is
// thread_local, never shared). HandleResolver is safe for
// concurrent use (its cache is guarded by a mutex).
#pragma once

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <list>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

namespace localnfs::exports {
class Export;
}

namespace localnfs::server {

inline constexpr uint8_t kHandleVersion = 1;
inline constexpr size_t kMaxHandleSize = 64;
inline constexpr size_t kHandleHeaderSize = 10;
inline constexpr size_t kHandleMacSize = 8;
inline constexpr size_t kMaxKernelHandleBytes =
    kMaxHandleSize - kHandleHeaderSize - kHandleMacSize;  // 46
inline constexpr size_t kHandleKeySize = 32;
inline constexpr size_t kResolverCacheEntries = 16384;
inline constexpr size_t kMaxSearchEntries = 1000000;
inline constexpr absl::Duration kStaleHandleMemory = absl::Seconds(10);
inline constexpr size_t kMaxStaleHandles = 4096;

// The file system's identity of an object (struct file_handle without its header).
struct KernelHandle {
  int32_t type = 0;
  std::string bytes;
  friend bool operator==(const KernelHandle&, const KernelHandle&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const KernelHandle& k) {
    return H::combine(std::move(h), k.type, k.bytes);
  }
};

// What a decoded, authenticated handle names.
struct DecodedHandle {
  uint32_t export_id = 0;
  KernelHandle kernel;
};

// Returns the identity of `fd` (any fd, O_PATH included) via name_to_handle_at.
absl::StatusOr<KernelHandle> KernelHandleOfFd(int fd);
// The identity of `name` in directory `dirfd`, without following a final symlink.
absl::StatusOr<KernelHandle> KernelHandleAt(int dirfd, const char* name);

// The MAC key. Immutable; copyable.
class HandleKey {
 public:
  // Reads <state_dir>/handle.key, or creates it (0600, 32 random bytes) with its
  // directory (0700) when absent. A key file of the wrong size is an error.
  static absl::StatusOr<HandleKey> LoadOrCreate(const std::string& state_dir);
  // For tests.
  static HandleKey FromBytes(std::string_view bytes);

  // Encodes a handle; fails (EOVERFLOW) when the kernel handle does not fit.
  absl::StatusOr<std::string> Encode(uint32_t export_id, const KernelHandle& kh) const;
  // Decodes and authenticates; errors carry EBADMSG (BADHANDLE).
  absl::StatusOr<DecodedHandle> Decode(std::string_view wire) const;

  // Handles of other formats authenticated with the same key (NFSv4's pseudo file
  // system: nfs4/pseudofs.h). Sign() returns `body` followed by its MAC; Verify()
  // returns the body of such bytes, or EBADMSG (too short, bad MAC). The body's first
  // byte must be a version other than kHandleVersion, so that no signed body is ever
  // taken for an export's handle (Decode checks the version first).
  absl::StatusOr<std::string> Sign(std::string_view body) const;
  absl::StatusOr<std::string_view> Verify(std::string_view wire) const;

 private:
  explicit HandleKey(std::string key) : key_(std::move(key)) {}
  // The first kHandleMacSize bytes of HMAC-SHA256(key_, data).
  absl::StatusOr<std::string> Mac(std::string_view data) const;
  std::string key_;
};

class HandleResolver {
 public:
  // `max_searches`: unprivileged export searches running at once (see above).
  explicit HandleResolver(size_t max_cached = kResolverCacheEntries, int max_searches = 1)
      : max_cached_(max_cached), max_searches_(max_searches < 1 ? 1 : max_searches) {}
  HandleResolver(const HandleResolver&) = delete;
  HandleResolver& operator=(const HandleResolver&) = delete;

  // Decides the mode by resolving `probe`'s root's own handle with
  // open_by_handle_at. Call once before serving.
  void Start(const exports::Export& probe);
  // Forces a mode (tests, and when there is no export to probe).
  void SetPrivilegedForTesting(bool privileged) { privileged_ = privileged; }
  // Drops the unprivileged cache (its fds).
  void Shutdown() ABSL_LOCKS_EXCLUDED(mount_mu_, mu_);
  bool privileged() const { return privileged_; }

  // Returns an O_PATH fd for `kh` inside `exp`, or ESTALE: Open() + CheckResolved().
  absl::StatusOr<UniqueFd> Resolve(const exports::Export& exp, const KernelHandle& kh);
  // The lookup half of Resolve(): an O_PATH fd for `kh` (open_by_handle_at, or the
  // unprivileged cache and search) that the caller must still pass through
  // CheckResolved() with the object's current attributes before using it.
  // !may_search: EWOULDBLOCK instead of searching the export (see above).
  absl::StatusOr<UniqueFd> Open(const exports::Export& exp, const KernelHandle& kh,
                                bool may_search = true);
  // Unprivileged mode: remembers where the object `name` in directory `dir` lives
  // (a no-op when privileged). `dir` is shared by every child remembered from one
  // request (see ShareFd), so a whole READDIRPLUS page costs one fd.
  void Remember(uint32_t export_id, const KernelHandle& kh,
                const std::shared_ptr<UniqueFd>& dir, std::string_view name);
  // A shared duplicate of `fd` for Remember(); nullptr when privileged.
  std::shared_ptr<UniqueFd> ShareFd(int fd) const;
  // Unprivileged mode: remembers an object by its own O_PATH fd (duplicated).
  void RememberFd(uint32_t export_id, const KernelHandle& kh, int fd);
  // Drops an entry (after REMOVE/RMDIR).
  void Forget(uint32_t export_id, const KernelHandle& kh) ABSL_LOCKS_EXCLUDED(mu_);
  size_t CachedEntriesForTesting() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Key {
    uint32_t export_id;
    KernelHandle kh;
    friend bool operator==(const Key&, const Key&) = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.export_id, k.kh);
    }
  };
  struct Location {
    std::shared_ptr<UniqueFd> fd;  // the parent directory, or the object if name empty
    std::string name;
  };
  struct Entry {
    Key key;
    Location loc;
  };
  using Lru = std::list<Entry>;

  absl::StatusOr<UniqueFd> ResolvePrivileged(const exports::Export& exp,
                                             const KernelHandle& kh);
  absl::StatusOr<UniqueFd> ResolveUnprivileged(const exports::Export& exp,
                                               const KernelHandle& kh, bool may_search)
      ABSL_LOCKS_EXCLUDED(mu_);
  // The bounded search (see above): a slot, the stale memory, then SearchExport.
  absl::StatusOr<UniqueFd> Search(const exports::Export& exp, const KernelHandle& kh)
      ABSL_LOCKS_EXCLUDED(search_mu_);
  absl::StatusOr<UniqueFd> SearchExport(const exports::Export& exp, const KernelHandle& kh);
  void Insert(Key key, Location loc) ABSL_LOCKS_EXCLUDED(mu_);

  // open_by_handle_at needs a mount fd that is not O_PATH (Linux ≥ 6.x refuses
  // O_PATH there), and Export::root_fd() is O_PATH: one O_RDONLY directory fd per
  // export id, opened on first use, replaced when the export's device changes.
  absl::StatusOr<std::shared_ptr<UniqueFd>> MountFd(const exports::Export& exp)
      ABSL_LOCKS_EXCLUDED(mount_mu_);
  struct MountFdEntry {
    uint64_t dev;
    std::shared_ptr<UniqueFd> fd;  // shared: a replaced fd stays open for its users
  };

  const size_t max_cached_;
  const int max_searches_;
  bool privileged_ = true;
  absl::Mutex search_mu_;
  int searches_running_ ABSL_GUARDED_BY(search_mu_) = 0;
  // Handles whose search found nothing → until when they are known stale.
  absl::flat_hash_map<Key, absl::Time> stale_ ABSL_GUARDED_BY(search_mu_);
  absl::Mutex mount_mu_;
  absl::flat_hash_map<uint32_t, MountFdEntry> mount_fds_ ABSL_GUARDED_BY(mount_mu_);
  mutable absl::Mutex mu_;
  Lru lru_ ABSL_GUARDED_BY(mu_);  // front = most recently used
  absl::flat_hash_map<Key, Lru::iterator> index_ ABSL_GUARDED_BY(mu_);
};

// True when `fd` is the export root itself or a directory below it (walking "..").
// Used for directories resolved from handles. `dir_st`: the directory's attributes,
// when the caller has them (the export root is then recognised without a syscall).
absl::StatusOr<bool> IsWithinExport(const exports::Export& exp, int dir_fd);
absl::StatusOr<bool> IsWithinExport(const exports::Export& exp, int dir_fd,
                                    const struct stat& dir_st);

// The checks an object found for a handle of `exp` must pass each time it is used,
// given its attributes `st` and the id of the mount `fd` is on, `mnt_id`, now (so a
// cached fd is as good as a fresh resolution; vfs::GetAttrOnMount takes both in one
// statx): on the export's mount and device (vfs::InExportMount — never an object
// reached through a mount point below the export, such as a bind mount of the same
// file system), not removed (st_nlink 0), and a directory must still be inside the
// export (it may have been moved out since). Fails with ESTALE.
absl::Status CheckResolved(const exports::Export& exp, int fd, const struct stat& st,
                           uint64_t mnt_id);

}  // namespace localnfs::server
