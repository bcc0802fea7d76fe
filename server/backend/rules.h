// server/backend/rules.h — the file-system semantics the server itself enforces, the same
// for every backend (knfsd's checks in fs/nfsd/vfs.c that are not the kernel's own).
//
// Owns: nothing. These are the decisions the POSIX backend (vfs.cc) makes before it asks
// the kernel, and that the memory backend makes before it changes its tree, so that the
// two cannot drift: names (one component, no '/' or NUL, no "." or ".." where an entry is
// made), I/O on regular files with owner override and read-if-exec, SETATTR's order of
// checks (guard, times, the unprivileged server's ownership checks, truncation
// permission), the exclusive-create verifier stored in the times, LOCALIO's open checks.
// What the kernel decides on its own (permission of a switched thread, set-id clearing by
// a write, the sticky bit) the memory backend models itself (memory_backend.h).
//
// They judge the attributes a backend gave (types.h Attrs: the POSIX backend's from its
// one statx, the memory backend's its inodes' own), with the mode-bit check of creds.h.
// A rule given attributes without a field it reads fails closed: a check refuses (EACCES,
// or the rule's own refusal), a question answers on the safe side (named with each).
//
// Errors: absl::Status carrying an errno (common/status.h), named with each function.
// Thread-safety: stateless.
#pragma once

#include <stdint.h>
#include <time.h>

#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/credentials.h"
#include "server/backend/types.h"

namespace localnfs::server {
enum class FileMode : uint8_t;
}

namespace localnfs::server::backend {

// OK for a single path component; EACCES for empty names and names containing '/'
// or NUL (like lookup_one_len), ENAMETOOLONG beyond kMaxNameLen bytes.
absl::Status ValidateName(std::string_view name);
// True when `name` holds a '/' or a NUL: it can never name one directory entry.
bool HasSlashOrNul(std::string_view name);
bool IsDotOrDotDot(std::string_view name);
// A name for a new entry: ValidateName, and EEXIST for "." and "..".
absl::Status CheckNewName(std::string_view name);

// Regular-file I/O by `cred`: EISDIR for a directory, EINVAL for another non-regular
// file, then the mode bits with owner override (knfsd's NFSD_MAY_OWNER_OVERRIDE); a
// file that may be executed may be read (NFSD_MAY_READ_IF_EXEC). EACCES, also without
// the fields of kAttrAccess.
absl::Status CheckIo(const Attrs& a, const Credentials& cred, int want);

// A regular file with a set-user-ID or set-group-ID bit: a write or a size change by a
// caller without CAP_FSETID clears them (creds.h, "Set-id bits"). Without type or mode:
// true (the write then runs as the caller, and LOCALIO refuses a write open).
bool HasSetIdBits(const Attrs& a);

// LOCALIO OPEN_LOCAL_FH of mode kRead or kReadWrite: exactly what READ (and, for
// kReadWrite, also WRITE) checks; a kReadWrite open of a file with set-id bits by
// non-root credentials is refused (EOPNOTSUPP): its writes go over RPC, where the
// server clears the bits (creds.h, "Set-id bits").
absl::Status CheckLocalIo(const Attrs& a, const Credentials& cred, FileMode mode);

// What the kernel would refuse in the times of `req` — nanoseconds beyond a second,
// which utimensat rejects (and two of which are its UTIME_NOW / UTIME_OMIT) — found
// before anything changes (EINVAL).
absl::Status ValidateTimes(const SetAttrRequest& req);

// Setting a time to the server's clock needs only write permission (utimes(2) with NULL
// times; knfsd's notify_change with ATTR_MTIME but not ATTR_MTIME_SET). The kernel takes a
// single UTIME_NOW beside UTIME_OMIT for an explicit time, though, which only the owner
// may set: a writer who is not the owner would get EPERM for what the kernel NFS client
// sends with every ftruncate (size + mtime = server time). For such a caller asking only
// for the server's clock, both times are set to now — the kernel's "touch", for which it
// checks write permission itself. The price: atime moves too when only mtime was asked.
// Without the owner in `a`: `req` unchanged (the kernel judges it as asked).
SetAttrRequest TouchForWriter(const Attrs& a, const SetAttrRequest& req,
                              const Credentials& cred);

// What the kernel would check for the request's user, checked by a server that cannot
// switch to it (unprivileged): mode, owner and client times by the owner only (EPERM),
// server times by the owner or a writer (EACCES). Root passes. Without the owner in `a`:
// EPERM for a non-root caller.
absl::Status CheckSetAttrUnprivileged(const Attrs& a, const SetAttrRequest& req,
                                      const Credentials& cred);

// SETATTR's checks, in knfsd's order, on the object's attributes `a` at the start of the
// request: the guard (kErrNotSync), the times (ValidateTimes), the unprivileged server's
// checks when `server_checks` (CheckSetAttrUnprivileged), and the size: EISDIR for a
// directory, EINVAL for another non-regular file. Returns whether the size must be set
// through a file opened for writing — when it differs, or when no mtime is given (a
// truncate to the same size still updates the times and clears set-id bits) — after the
// write permission with owner override was checked (EACCES); a size beyond off_t's range
// is then EFBIG. Without the ctime a guard needs: kErrNotSync; without the type or size a
// truncation needs: EACCES.
absl::StatusOr<bool> CheckSetAttr(const Attrs& a, const SetAttrRequest& req,
                                  std::optional<timespec> guard_ctime,
                                  const Credentials& cred, bool server_checks);

// EXCLUSIVE CREATE stores the verifier in the new file's times (knfsd's scheme, the high
// bit of each half cleared for file systems without big timestamps).
struct VerifierTimes {
  time_t atime_sec;
  time_t mtime_sec;
};
VerifierTimes ExclusiveVerifierTimes(uint64_t verifier);
// Whether the existing file `a` is the one an EXCLUSIVE CREATE with `verifier` made (a
// retransmit): regular, empty, and its times hold the verifier. False without those
// fields (the create then fails with EEXIST).
bool IsExclusiveRetransmit(const Attrs& a, uint64_t verifier);

// LINK of a directory: EISDIR (before the kernel's EPERM, as knfsd); EACCES without the
// type.
absl::Status CheckLinkSource(const Attrs& a);

// The cookie verifier of a directory with inode number `fileid`: constant for its
// lifetime (not its mtime, so concurrent modifications never invalidate a listing in
// progress; our cookies never expire). Non-zero, so clients tell it from "none".
inline uint64_t DirCookieVerifier(uint64_t fileid) { return fileid | (1ull << 63); }

}  // namespace localnfs::server::backend
