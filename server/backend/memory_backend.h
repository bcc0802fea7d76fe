// server/backend/memory_backend.h — an in-memory file system behind the Backend interface,
// for unit tests of the protocol handlers (leveldb's helpers/memenv for our Env).
//
// Owns: a tree of inodes per export (created on first use, rooted at an inode whose
// attributes MemoryBackendOptions gives), each inode's metadata (kept as the Attrs a
// backend gives, so that the server's rules, rules.h, judge it exactly as they judge the
// POSIX backend's),
// file data and symlink targets as bytes, directory entries with their cookies.
//
// It behaves as the POSIX backend does on ext4 — the conformance suite
// (conformance_test.cc) runs the same tests against both and is the proof:
//  * Handles are (inode number, generation); a removed object's handle is ESTALE, as is a
//    handle of another export. Inode numbers are never reused.
//  * Directories list ".", ".." and then their entries in the order they were made, each
//    with a cookie that never changes while the entry exists (1 and 2 for the dot entries,
//    then counting up; a renamed entry gets a new one), so a listing resumes exactly where
//    it stopped whatever else changed; a cookie never given is EBADR. ".." of an export
//    root is the root. nlink counts as the kernel's: 2 + subdirectories for a directory.
//  * Permissions: the server's own checks (rules.h, and creds.h's mode-bit check where the
//    unprivileged server makes it), then what the kernel would check for the identity
//    that acts — the caller on a root server (`privileged`: root keeps its capabilities,
//    anyone else has none, as a switched fsuid), the server's own user otherwise: search
//    and write permission of directories, sticky directories, protected hard links
//    (fs.protected_hardlinks=1), chmod/chown/utimes rights (EPERM, EACCES for a touch),
//    mkdir dropping set-id bits, set-group-ID directories passing on their group, devices
//    only for root on a root server (a switched fsuid drops CAP_MKNOD). Files for I/O are
//    opened as the server: unprivileged, its own user needs the mode bits (a read-only
//    file cannot be opened for writing even for its owner).
//  * Set-id bits are cleared by a write, a truncation, ALLOCATE/DEALLOCATE/COPY into the
//    file and a chown, by the kernel's rules of today (setattr_should_drop_suidgid /
//    setattr_should_drop_sgid): S_ISUID always, S_ISGID with group-exec or for a writer
//    outside the file's group, never for an identity with CAP_FSETID (root on a root
//    server; and as the POSIX backend, a write to a file whose bits were set after the
//    request took its attributes runs as the root server itself, which keeps them).
//  * Times: every change sets ctime (and mtime where the kernel does) from the injected
//    clock, strictly increasing, so the change attribute derived from ctime is monotonic.
//    Reads do not move atime (as a noatime mount).
//  * Commits are reported to the CommitObserver in the POSIX backend's order; stable
//    writes and COMMIT report data commits.
//  * LOCALIO: no fds to hand out (no kCapLocalIo): OpenForLocalIo makes every check, then
//    answers EOPNOTSUPP.
// Not modelled: POSIX ACLs, mount points below an export, quotas and ENOSPC, a full
// statfs (StatFs gives fixed figures), the name cache of a real kernel.
//
// Thread-safety: every method may be called concurrently; one mutex guards the whole
// tree (tests do not need more). Callbacks (ReadDir's `emit`, the commit observer) run
// without it held. Nodes and files it hands out keep their inode alive (reference
// counted), as an open fd keeps a removed file.
#pragma once

#include <stdint.h>

#include <atomic>
#include <functional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "server/backend/backend.h"

namespace localnfs::server::backend {

struct MemoryBackendOptions {
  // Whether the modelled server runs as root (switches to each caller) or as the ordinary
  // user server_uid (creds.h: the unprivileged mode).
  bool privileged = true;
  uint32_t server_uid = 0;
  uint32_t server_gid = 0;
  std::vector<uint32_t> server_groups;
  // Each export's root directory when first used.
  mode_t root_mode = 0755;
  uint32_t root_uid = 0;
  uint32_t root_gid = 0;
  // The file system's device number (Attrs::fsid).
  uint64_t fsid = 0x6d656d;
  // The clock of every time it sets; realtime when unset.
  std::function<timespec()> clock;
  // The waits a thread that must not block avoids (backend.h "Thread-safety"), for tests
  // of the callers that move such a call to a worker. resolve_needs_search: a resolution
  // without may_search fails EWOULDBLOCK, as the unprivileged POSIX backend's when only a
  // search of the export finds the object (fhandle.h). reads_need_disk: a `nowait` read
  // of data gives would_block, as data not in the page cache does. Off: nothing waits.
  bool resolve_needs_search = false;
  bool reads_need_disk = false;
};

class MemoryBackend final : public Backend {
 public:
  explicit MemoryBackend(MemoryBackendOptions options = {});
  ~MemoryBackend() override;

  // How many files OpenFile opened (the caching layer's tests count misses with it).
  uint64_t files_opened() const { return files_opened_.load(std::memory_order_relaxed); }
  // How many nodes OpenNode resolved by handle.
  uint64_t nodes_opened() const { return nodes_opened_.load(std::memory_order_relaxed); }

  const char* name() const override { return "memory"; }
  uint32_t capabilities() const override {
    return kCapAllocate | kCapDeallocate | kCapSeek | kCapCopy | kCapClone | kCapLocks;
  }

  absl::StatusOr<Object> OpenPath(const exports::Export& exp, std::string_view rel) override;
  absl::StatusOr<Attrs> GetAttr(const Object& obj) override;
  absl::StatusOr<Object> Lookup(const Object& dir, std::string_view name,
                                const Credentials& cred) override;
  absl::StatusOr<Object> Create(const Object& dir, std::string_view name, CreateHow how,
                                const SetAttrRequest& attrs, uint64_t verifier,
                                const Caller& caller) override;
  absl::StatusOr<Object> Mkdir(const Object& dir, std::string_view name,
                               const SetAttrRequest& attrs, const Caller& caller) override;
  absl::StatusOr<Object> Symlink(const Object& dir, std::string_view name,
                                 std::string_view target, const SetAttrRequest& attrs,
                                 const Caller& caller) override;
  absl::StatusOr<Object> Mknod(const Object& dir, std::string_view name, FileType type,
                               uint32_t rdev_major, uint32_t rdev_minor,
                               const SetAttrRequest& attrs, const Caller& caller) override;
  absl::StatusOr<std::optional<Handle>> Remove(const Object& dir, std::string_view name,
                                               RemoveKind kind, const Caller& caller) override;
  absl::StatusOr<std::optional<Handle>> Rename(const Object& from_dir,
                                               std::string_view from_name,
                                               const Object& to_dir, std::string_view to_name,
                                               const Caller& caller) override;
  absl::Status Link(const Object& obj, const Object& dir, std::string_view name,
                    const Caller& caller) override;
  absl::StatusOr<std::string> ReadLink(const Object& obj) override;
  absl::StatusOr<ReadDirResult> ReadDir(const Object& dir, uint64_t cookie, bool plus,
                                        const Credentials& cred,
                                        absl::FunctionRef<bool(const DirEntry&)> emit) override;
  absl::StatusOr<FsStat> StatFs(const Object& obj) override;
  absl::StatusOr<PathConf> GetPathConf(const Object& obj) override;

  struct Inode;  // memory_backend.cc

 protected:
  absl::StatusOr<Ref<NfsFile>> OpenNode(const exports::Export& exp, const Handle& handle,
                                        bool may_search) override;
  absl::StatusOr<Attrs> Validate(const exports::Export& exp, NfsFile& node) override;
  absl::StatusOr<Ref<NfsFile>> OpenFile(const Object& obj, FileMode mode) override;
  absl::StatusOr<ReadResult> ReadFile(NfsFile& file, const Attrs& attrs, uint64_t offset,
                                      absl::Span<char> buf, bool nowait) override;
  absl::StatusOr<WriteResult> WriteFile(NfsFile& file, const Object& obj,
                                        const Credentials& cred, uint64_t offset,
                                        absl::Span<const char> data, Stability stable) override;
  absl::Status SyncFile(NfsFile& file, const Object& obj) override;
  absl::Status ApplySetAttr(const Object& obj, const SetAttrRequest& req, NfsFile* resized,
                            const Caller& caller) override;
  bool server_checks() const override { return !options_.privileged; }
  absl::Status AllocateFile(NfsFile& file, const Object& obj, const Credentials& cred,
                            uint64_t offset, uint64_t length, bool punch_hole) override;
  absl::StatusOr<std::optional<LockConflict>> LockFile(NfsFile& lock_file, LockOp op,
                                                       LockType type, LockRange range) override;
  absl::StatusOr<SeekResult> SeekFile(NfsFile& file, const Object& obj, uint64_t offset,
                                      SeekWhat what) override;
  absl::StatusOr<uint64_t> CopyFile(NfsFile& src, NfsFile& dst, const Object& dst_obj,
                                    const Credentials& cred, uint64_t src_offset,
                                    uint64_t dst_offset, uint64_t count, bool clone) override;

 private:
  class Impl;
  Impl* impl_;  // owned; the tree and its lock
  const MemoryBackendOptions options_;
  std::atomic<uint64_t> files_opened_{0};
  std::atomic<uint64_t> nodes_opened_{0};
  friend class Impl;
};

}  // namespace localnfs::server::backend
