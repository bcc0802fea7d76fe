// server/backend/vfs.h — the POSIX file system's system calls: every one the NFS procedures need.
//
// The Backend interface (server/backend/backend.h) is what protocol code is moving to; its
// POSIX backend (backend/posix_backend.h) is built on the functions here, and the rules
// every backend shares (names, I/O checks, SETATTR's checks) live in backend/rules.h.
// Every protocol (NFSv3, MOUNT, the LOCALIO local socket) calls the Backend only; what is
// here belongs to the POSIX backend (and the caching layer's file opens) alone.
//
// Owns: nothing long-lived. Functions operate on O_PATH fds of objects inside one
// export (an Object: the export, the object's O_PATH fd and its kernel handle) and
// return values or absl::Status carrying the errno (server/nfs3/nfs_status.h maps it to
// nfsstat3 in one place). There is no protocol in here: sizes, cookies and
// attributes are plain values; protocol code (nfs3proc.cc) makes no syscalls.
//
// Confinement: names are single components (ValidateName rejects '/', NUL, empty and
// over-long names); lookups never follow symlinks (O_NOFOLLOW) and never leave the
// export: ".." of the export root is the root, and an object on another mount (a
// mount point below the export, a bind mount of the same device included) is not
// entered, as knfsd without crossmnt: InExportMount compares the mount id (statx
// STATX_MNT_ID) and the device of every object a lookup or a listing reaches.
//
// Credentials: namespace operations run with the thread switched to the request's
// credentials (creds.h; the POSIX backend switches around them) when the server is root, so the kernel checks
// them; unprivileged, the mode-bit check of creds.h is applied first. READ, WRITE,
// COMMIT and truncation use files opened by the server (OpenFileOf; the caching layer
// keeps them) after an explicit permission check with owner override, like knfsd (the
// Backend's, backend.cc: ReadAt, WriteAt and ApplySetAttr are the steps after it); a
// WRITE to a file with set-id bits and every truncation run as the request's
// credentials, so that the kernel clears those bits as for a local writer (creds.h,
// "Set-id bits").
//
// Thread-safety: stateless functions; safe from any thread.
#pragma once

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/functional/function_ref.h"
#include "absl/types/span.h"
#include "common/credentials.h"
#include "common/refcount.h"
#include "common/unique_fd.h"
#include "server/backend/rules.h"
#include "server/backend/types.h"
#include "server/policy/fhandle.h"

namespace localnfs::exports {
class Export;
}

namespace localnfs::server {
class FileCache;
class NfsFile;
enum class FileMode : uint8_t;
}

namespace localnfs::server::vfs {

// The vocabulary and the name rules are the Backend interface's (server/backend/), which
// the POSIX backend builds on the functions below.
using backend::CreateHow;
using backend::FsStat;
using backend::HasSlashOrNul;
using backend::IsDotOrDotDot;
using backend::kErrNotSync;
using backend::kMaxIoSize;
using backend::kMaxNameLen;
using backend::kPrefDirSize;
using backend::PathConf;
using backend::ReadResult;
using backend::SetAttrRequest;
using backend::SetTime;
using backend::Stability;
using backend::TimeHow;
using backend::ValidateName;
using backend::WriteResult;

// The O_PATH fd of an Object: owned by the request, or shared with the file cache's
// entry for the handle (FileMode::kPath), which the reference held here keeps open
// until the request is done.
class ObjectFd {
 public:
  ObjectFd() = default;
  // An fd the request owns (implicit: tests and one-off resolutions assign UniqueFds).
  ObjectFd(UniqueFd fd) : owned_(std::move(fd)) {}  // NOLINT(google-explicit-constructor)
  // `fd` stays open while `keeper` is referenced.
  ObjectFd(int fd, Ref<RefCounted> keeper) : shared_(fd), keeper_(std::move(keeper)) {}

  int get() const { return keeper_ ? shared_ : owned_.get(); }

 private:
  UniqueFd owned_;
  int shared_ = -1;
  Ref<RefCounted> keeper_;
};

// A resolved file handle, valid for one request.
struct Object {
  const exports::Export* exp = nullptr;
  ObjectFd fd;  // O_PATH
  KernelHandle kh;
  // The attributes the object had when the request resolved it (the one fstat of a
  // READ or GETATTR, request_policy.h); unset when the resolver did not take them.
  // Checks and pre-operation attributes of this request use them; attributes after
  // a change are taken again.
  std::optional<backend::Attrs> attrs;
};

// obj.attrs if set, else the attributes of obj.fd now.
absl::StatusOr<backend::Attrs> AttrsOf(const Object& obj);

// Opens `rel` (a relative path, "." for the root) beneath `root_fd` with `flags`,
// never following symlinks and never leaving the root (openat2 RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV).
absl::StatusOr<UniqueFd> OpenBeneath(int root_fd, const std::string& rel, int flags);

absl::StatusOr<struct stat> GetAttr(int fd);

// Attributes of an object and the id of the mount it was reached through (statx
// STATX_MNT_ID; 0 when the kernel does not report it, before Linux 5.8).
struct AttrsOnMount {
  struct stat st;
  uint64_t mnt_id = 0;
};
// Of `name` in `dirfd`, never following a final symlink; "" is `dirfd` itself. One
// statx, as costly as the fstatat of GetAttr.
absl::StatusOr<AttrsOnMount> GetAttrOnMount(int dirfd, const char* name = "");
// Whether an object with attributes `st`, reached through mount `mnt_id`, is part of
// `exp`'s file system as the export sees it: on the export root's mount and device.
// The mount tells a bind mount of a directory of the same file system (same st_dev)
// from the export's own objects; the device tells apart the subvolumes one btrfs
// mount holds (their inode numbers, the fileids, would collide within the export's
// one fsid).
bool InExportMount(const exports::Export& exp, const struct stat& st, uint64_t mnt_id);
// Whether the object of device `dev` and inode `ino` is the export root itself.
bool IsExportRoot(const exports::Export& exp, uint64_t dev, uint64_t ino);

// LOOKUP: "." is `dir` itself, ".." its parent (the root at the root). Returns an
// O_PATH fd of the object and its identity; EACCES for a mount point (the object
// found is not InExportMount), as for every object the functions below return.
struct LookupResult {
  UniqueFd fd;
  KernelHandle kh;
  struct stat st;
};
absl::StatusOr<LookupResult> Lookup(const Object& dir, std::string_view name,
                                    const Credentials& cred);

// SETATTR's changes after its checks, on the object's O_PATH fd `path_fd` with attributes
// `a`: the size through `resized` (a file open for writing; null: no size change), then
// mode, owner and times — all switched to `cred` here (not expecting switched credentials).
absl::Status ApplySetAttr(int path_fd, const backend::Attrs& a, const SetAttrRequest& req,
                          NfsFile* resized, const Credentials& cred);

// Applies `req` to a newly created object (under the already switched credentials),
// skipping fields that already hold. The owner (uid/gid) only for root, as knfsd: for
// anyone else they are ignored.
absl::Status ApplyCreateAttrs(int fd, const SetAttrRequest& req, const Credentials& cred);

absl::StatusOr<std::string> ReadLink(const Object& obj);

// A file of `path_fd`'s object opened for `mode` (kRead: O_RDONLY, kReadWrite: O_RDWR)
// by the server's own credentials, through /proc/self/fd (what the file cache keeps).
absl::StatusOr<UniqueFd> OpenFileOf(int path_fd, FileMode mode);
// READ's I/O on an open `fd` after its checks (rules.h CheckIo), into `buf` (not empty;
// its size is the count, ≤ kMaxIoSize). `size` is the file's size in the attributes the
// request took: EOF is decided from it (no second fstat), except that data found beyond
// it (the file grew meanwhile) is never EOF. `nowait`: only from the page cache (preadv2
// RWF_NOWAIT); data that would have to be read from the disk (or a file system without
// RWF_NOWAIT) gives would_block.
absl::StatusOr<ReadResult> ReadAt(int fd, uint64_t size, uint64_t offset,
                                  absl::Span<char> buf, bool nowait);

// WRITE's I/O on `file` (open for writing) after its checks: switched to `writer` when
// not null — the caller, for a file whose attributes show set-id bits (creds.h) — and large
// unstable writes serialised.
absl::StatusOr<WriteResult> WriteAt(NfsFile& file, const Credentials* writer,
                                    uint64_t offset, absl::Span<const char> data,
                                    Stability stable);

// CREATE of a regular file. For kExclusive, `verifier` is stored in atime/mtime
// (knfsd's scheme): an existing file with the same verifier is success (a
// retransmit), another is EEXIST. `attrs` (unchecked/guarded) are applied after
// creation; for an existing file under kUnchecked only `attrs.size` etc. apply.
// CREATE, MKDIR, SYMLINK and MKNOD fail without a trace: times the kernel would refuse
// are refused before creating, and when applying `attrs` (or the verifier) to the new
// object fails, the object is removed again before the error is returned (except when
// the new name could not even be opened and described: then it is not known to be ours).
absl::StatusOr<LookupResult> Create(const Object& dir, std::string_view name,
                                    CreateHow how, const SetAttrRequest& attrs,
                                    uint64_t verifier, const Credentials& cred);
absl::StatusOr<LookupResult> Mkdir(const Object& dir, std::string_view name,
                                   const SetAttrRequest& attrs, const Credentials& cred);
absl::StatusOr<LookupResult> Symlink(const Object& dir, std::string_view name,
                                     std::string_view target, const SetAttrRequest& attrs,
                                     const Credentials& cred);
// MKNOD: type is S_IFIFO, S_IFSOCK, S_IFCHR or S_IFBLK. Devices only when the
// server runs as root (else EPERM).
absl::StatusOr<LookupResult> Mknod(const Object& dir, std::string_view name, mode_t type,
                                   dev_t rdev, const SetAttrRequest& attrs,
                                   const Credentials& cred);

// REMOVE / RMDIR. Returns the identity of the removed object (so that its cached
// fds and handle-cache entry can be dropped) when it was its last link.
absl::StatusOr<std::optional<KernelHandle>> Remove(const Object& dir,
                                                   std::string_view name, bool is_dir,
                                                   const Credentials& cred);
// RENAME. Returns the identity of a replaced target that lost its last link.
absl::StatusOr<std::optional<KernelHandle>> Rename(const Object& from_dir,
                                                   std::string_view from_name,
                                                   const Object& to_dir,
                                                   std::string_view to_name,
                                                   const Credentials& cred);
absl::Status Link(const Object& obj, const Object& dir, std::string_view name,
                  const Credentials& cred);

// READDIR / READDIRPLUS. Cookies are the file system's own d_off values
// (getdents64), stable across modifications on ext4/xfs/btrfs, so a listing resumes
// with one lseek and never re-reads from the start: listing n entries is O(n).
// "." and ".." are listed where getdents gives them, with their own d_off cookies,
// as knfsd does (POSIX readdir and `ls -a` on a client show what the server sends);
// the fileid of ".." at the export root is the root's own (LOOKUP ".." there is the
// root). For each entry `emit` is called; it returns false when the entry does not
// fit the reply, which ends the call (the entry is not consumed).
struct DirEntry {
  std::string_view name;
  uint64_t fileid = 0;
  uint64_t cookie = 0;  // resume position after this entry
  // Filled when `plus`, as knfsd's compose_entry_fh does: attributes and identity of
  // the entry — "." is the directory itself — unless the name no longer names the
  // object getdents listed (removed or replaced meanwhile: another inode number), it
  // is a mount point (not InExportMount), or it is ".." of the export root.
  std::optional<backend::Attrs> attrs;
  std::optional<KernelHandle> kh;
};
struct ReadDirResult {
  bool eof = false;
};
absl::StatusOr<ReadDirResult> ReadDir(const Object& dir, uint64_t cookie, bool plus,
                                      const Credentials& cred,
                                      absl::FunctionRef<bool(const DirEntry&)> emit);

// Metadata commits (exports(5) `sync`, knfsd's commit_metadata): the objects a request
// changed, made durable before its reply. Add() keeps a duplicate of the object's O_PATH
// fd (the request's own structures may let the object go first: the file cache takes a
// new object's fd) and skips an inode already added (RENAME within one directory: its
// directory is committed once). Run() commits them in the order added
// — knfsd's: the new object before its directory, RENAME's target directory before its
// source, LINK's directory before the linked inode — each with fsync(2) through a fresh
// open of its O_PATH fd (a directory or a regular file), and stops at the first failure.
// Run it as the server's own credentials (after the request's switch ends): the caller
// may not be allowed to open what it changed (a directory it may write but not read).
// What cannot be opened to be synced — a symlink or special file, or (unprivileged) an
// object the server's user may not read — is committed with syncfs(2) of the export's
// file system (sync(2) if even that cannot be opened); a new one, added with AddCreated()
// before its directory, is left to the directory's fsync (on journaling file systems the
// transaction that adds the name holds the new inode).
// Thread-safety: one request's; not shared.
class MetadataCommits {
 public:
  // `fd`: an O_PATH fd of the object; `a`: its attributes (type and identity: kAttrType,
  // kAttrFsid and kAttrFileid).
  void Add(int fd, const backend::Attrs& a) { Push(fd, a, /*created=*/false); }
  void AddCreated(int fd, const backend::Attrs& a) { Push(fd, a, /*created=*/true); }
  bool empty() const { return entries_.empty(); }
  absl::Status Run(const exports::Export& exp);

 private:
  struct Entry {
    UniqueFd fd;
    uint64_t fsid;
    uint64_t fileid;
    backend::FileType type;
    bool created;
  };
  void Push(int fd, const backend::Attrs& a, bool created);
  std::vector<Entry> entries_;
};

absl::StatusOr<FsStat> StatFs(const Object& obj);
absl::StatusOr<PathConf> GetPathConf(const Object& obj);

}  // namespace localnfs::server::vfs
