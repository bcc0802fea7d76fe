// server/backend/backend.cc — the operations every backend shares: resolution in two
// halves, and the I/O operations as checks (rules.h) + a file (AcquireFile, cached by
// CachingBackend) + the backend's primitive. Ganesha keeps such defaults in
// FSAL/default_methods.c.
#include "server/backend/backend.h"

#include <errno.h>

#include "common/status.h"
#include "server/backend/rules.h"
#include "server/policy/creds.h"

namespace localnfs::server::backend {
namespace {

absl::Status Unsupported(const char* what) {
  return ErrnoToStatus(EOPNOTSUPP, what);
}

}  // namespace

absl::StatusOr<Object> Backend::Resolve(const exports::Export& exp, Handle handle,
                                        bool may_search) {
  ASSIGN_OR_RETURN(Ref<NfsFile> node, OpenNode(exp, handle, may_search));
  ASSIGN_OR_RETURN(const Attrs attrs, Validate(exp, *node));
  return Object(&exp, std::move(handle), attrs, std::move(node));
}

absl::Status Backend::SetAttr(const Object& obj, const SetAttrRequest& req,
                              std::optional<timespec> guard_ctime, const Caller& caller) {
  ASSIGN_OR_RETURN(const bool truncate, CheckSetAttr(obj.attrs(), req, guard_ctime,
                                                    caller.cred, server_checks()));
  Ref<NfsFile> resized;  // opened as the server, after the check with owner override
  if (truncate) {
    ASSIGN_OR_RETURN(resized, AcquireFile(obj, FileMode::kReadWrite));
  }
  return ApplySetAttr(obj, req, resized.get(), caller);
}

absl::StatusOr<ReadResult> Backend::Read(const Object& obj, const Credentials& cred,
                                         uint64_t offset, absl::Span<char> buf, bool nowait) {
  RETURN_IF_ERROR(CheckIo(obj.attrs(), cred, kMayRead));
  if (buf.empty()) return ReadResult{0, offset >= obj.attrs().size, false};
  ASSIGN_OR_RETURN(Ref<NfsFile> file, AcquireFile(obj, FileMode::kRead));
  return ReadFile(*file, obj.attrs(), offset, buf, nowait);
}

absl::StatusOr<WriteResult> Backend::Write(const Object& obj, const Credentials& cred,
                                           uint64_t offset, absl::Span<const char> data,
                                           Stability stable) {
  RETURN_IF_ERROR(CheckIo(obj.attrs(), cred, kMayWrite));
  ASSIGN_OR_RETURN(Ref<NfsFile> file, AcquireFile(obj, FileMode::kReadWrite));
  return WriteFile(*file, obj, cred, offset, data, stable);
}

absl::Status Backend::Commit(const Object& obj, const Credentials& cred) {
  RETURN_IF_ERROR(CheckIo(obj.attrs(), cred, kMayWrite));
  ASSIGN_OR_RETURN(Ref<NfsFile> file, AcquireFile(obj, FileMode::kReadWrite));
  return SyncFile(*file, obj);
}

absl::StatusOr<Ref<NfsFile>> Backend::OpenForLocalIo(const Object& obj,
                                                     const Credentials& cred, FileMode mode) {
  if (mode != FileMode::kRead && mode != FileMode::kReadWrite)
    return ErrnoToStatus(EINVAL, "LOCALIO open mode");
  RETURN_IF_ERROR(CheckLocalIo(obj.attrs(), cred, mode));
  if ((capabilities() & kCapLocalIo) == 0) return Unsupported("LOCALIO: no files to hand out");
  // A file of its own, never the cached one that RPC I/O uses (AcquireFile): a client
  // holding a shared open file description could change its status flags under the
  // server — F_SETFL O_APPEND makes every pwrite of RPC WRITEs append, O_DIRECT fails
  // every unaligned RPC READ. (knfsd can hand its nfsd_file to the in-kernel client; ours
  // are processes.) The object itself was resolved through the cache.
  ASSIGN_OR_RETURN(Ref<NfsFile> file, OpenFile(obj, mode));
  if (file->fd() < 0) return Unsupported("LOCALIO: no fd");
  return file;
}

absl::StatusOr<Ref<NfsFile>> Backend::OpenLockFile(const Object& obj, FileMode mode) {
  if ((capabilities() & kCapLocks) == 0) return Unsupported("byte-range locks");
  if (mode != FileMode::kRead && mode != FileMode::kReadWrite)
    return ErrnoToStatus(EINVAL, "lock file mode");
  if (!obj.attrs().is_regular())
    return ErrnoToStatus(obj.attrs().is_dir() ? EISDIR : EINVAL, "lock of a non-file");
  // A file of its own (its locks are its open file description's), never the cached one.
  return OpenFile(obj, mode);
}

namespace {

absl::Status CheckLockRange(LockRange range) {
  if (range.offset > kMaxLockOffset || range.length > kMaxLockOffset - range.offset)
    return ErrnoToStatus(EINVAL, "lock range beyond the largest offset");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::optional<LockConflict>> Backend::SetLock(NfsFile& lock_file, LockType type,
                                                             LockRange range) {
  RETURN_IF_ERROR(CheckLockRange(range));
  if (type == LockType::kWrite && lock_file.mode() != FileMode::kReadWrite)
    return ErrnoToStatus(EBADF, "write lock on a file open for reading");
  return LockFile(lock_file, LockOp::kSet, type, range);
}

absl::StatusOr<std::optional<LockConflict>> Backend::TestLock(NfsFile& lock_file, LockType type,
                                                              LockRange range) {
  RETURN_IF_ERROR(CheckLockRange(range));
  return LockFile(lock_file, LockOp::kTest, type, range);
}

absl::Status Backend::Unlock(NfsFile& lock_file, LockRange range) {
  RETURN_IF_ERROR(CheckLockRange(range));
  return LockFile(lock_file, LockOp::kUnlock, LockType::kRead, range).status();
}

absl::StatusOr<std::optional<LockConflict>> Backend::LockFile(NfsFile&, LockOp, LockType,
                                                              LockRange) {
  return Unsupported("byte-range locks");
}

absl::Status Backend::Allocate(const Object& obj, const Credentials& cred, uint64_t offset,
                               uint64_t length) {
  if ((capabilities() & kCapAllocate) == 0) return Unsupported("ALLOCATE");
  RETURN_IF_ERROR(CheckIo(obj.attrs(), cred, kMayWrite));
  ASSIGN_OR_RETURN(Ref<NfsFile> file, AcquireFile(obj, FileMode::kReadWrite));
  return AllocateFile(*file, obj, cred, offset, length, /*punch_hole=*/false);
}

absl::Status Backend::Deallocate(const Object& obj, const Credentials& cred, uint64_t offset,
                                 uint64_t length) {
  if ((capabilities() & kCapDeallocate) == 0) return Unsupported("DEALLOCATE");
  RETURN_IF_ERROR(CheckIo(obj.attrs(), cred, kMayWrite));
  ASSIGN_OR_RETURN(Ref<NfsFile> file, AcquireFile(obj, FileMode::kReadWrite));
  return AllocateFile(*file, obj, cred, offset, length, /*punch_hole=*/true);
}

absl::StatusOr<SeekResult> Backend::Seek(const Object& obj, const Credentials& cred,
                                         uint64_t offset, SeekWhat what) {
  if ((capabilities() & kCapSeek) == 0) return Unsupported("SEEK");
  RETURN_IF_ERROR(CheckIo(obj.attrs(), cred, kMayRead));
  ASSIGN_OR_RETURN(Ref<NfsFile> file, AcquireFile(obj, FileMode::kRead));
  return SeekFile(*file, obj, offset, what);
}

absl::StatusOr<uint64_t> Backend::CopyRange(const Object& src, const Object& dst,
                                            const Credentials& cred, uint64_t src_offset,
                                            uint64_t dst_offset, uint64_t count) {
  if ((capabilities() & kCapCopy) == 0) return Unsupported("COPY");
  RETURN_IF_ERROR(CheckIo(src.attrs(), cred, kMayRead));
  RETURN_IF_ERROR(CheckIo(dst.attrs(), cred, kMayWrite));
  ASSIGN_OR_RETURN(Ref<NfsFile> in, AcquireFile(src, FileMode::kRead));
  ASSIGN_OR_RETURN(Ref<NfsFile> out, AcquireFile(dst, FileMode::kReadWrite));
  return CopyFile(*in, *out, dst, cred, src_offset, dst_offset, count, /*clone=*/false);
}

absl::Status Backend::Clone(const Object& src, const Object& dst, const Credentials& cred,
                            uint64_t src_offset, uint64_t dst_offset, uint64_t count) {
  if ((capabilities() & kCapClone) == 0) return Unsupported("CLONE");
  RETURN_IF_ERROR(CheckIo(src.attrs(), cred, kMayRead));
  RETURN_IF_ERROR(CheckIo(dst.attrs(), cred, kMayWrite));
  ASSIGN_OR_RETURN(Ref<NfsFile> in, AcquireFile(src, FileMode::kRead));
  ASSIGN_OR_RETURN(Ref<NfsFile> out, AcquireFile(dst, FileMode::kReadWrite));
  return CopyFile(*in, *out, dst, cred, src_offset, dst_offset, count, /*clone=*/true)
      .status();
}

absl::Status Backend::AllocateFile(NfsFile&, const Object&, const Credentials&, uint64_t,
                                   uint64_t, bool) {
  return Unsupported("ALLOCATE");
}

absl::StatusOr<SeekResult> Backend::SeekFile(NfsFile&, const Object&, uint64_t, SeekWhat) {
  return Unsupported("SEEK");
}

absl::StatusOr<uint64_t> Backend::CopyFile(NfsFile&, NfsFile&, const Object&,
                                           const Credentials&, uint64_t, uint64_t, uint64_t,
                                           bool) {
  return Unsupported("COPY");
}

}  // namespace localnfs::server::backend
