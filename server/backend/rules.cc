// server/backend/rules.cc — see rules.h.
#include "server/backend/rules.h"

#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/status.h"
#include "server/policy/creds.h"
#include "server/backend/file_cache.h"

namespace localnfs::server::backend {

absl::Status ValidateName(std::string_view name) {
  if (name.empty()) return ErrnoToStatus(EACCES, "empty name");
  if (name.size() > kMaxNameLen) return ErrnoToStatus(ENAMETOOLONG, "name");
  if (HasSlashOrNul(name)) return ErrnoToStatus(EACCES, "name contains '/' or NUL");
  return absl::OkStatus();
}

bool HasSlashOrNul(std::string_view name) {
  return name.find_first_of(std::string_view("/\0", 2)) != std::string_view::npos;
}

bool IsDotOrDotDot(std::string_view name) { return name == "." || name == ".."; }

absl::Status CheckNewName(std::string_view name) {
  RETURN_IF_ERROR(ValidateName(name));
  if (IsDotOrDotDot(name)) return ErrnoToStatus(EEXIST, "create . or ..");
  return absl::OkStatus();
}

absl::Status CheckIo(const Attrs& a, const Credentials& cred, int want) {
  if (!a.has(kAttrAccess)) return ErrnoToStatus(EACCES, "I/O: attributes incomplete");
  if (a.is_dir()) return ErrnoToStatus(EISDIR, "is a directory");
  if (!a.is_regular()) return ErrnoToStatus(EINVAL, "not a regular file");
  absl::Status s = CheckPermission(a, cred, want, /*owner_override=*/true);
  if (!s.ok() && want == kMayRead) s = CheckPermission(a, cred, kMayExec, false);
  return s;
}

bool HasSetIdBits(const Attrs& a) {
  if (!a.has(kAttrType | kAttrMode)) return true;  // unknown: the safe side
  return a.is_regular() && (a.mode & (S_ISUID | S_ISGID)) != 0;
}

absl::Status CheckLocalIo(const Attrs& a, const Credentials& cred, FileMode mode) {
  RETURN_IF_ERROR(CheckIo(a, cred, kMayRead));
  if (mode == FileMode::kReadWrite) {
    RETURN_IF_ERROR(CheckIo(a, cred, kMayWrite));
    // The client's writes are judged by the kernel as the client process's, which for a
    // root client acting for a user would keep the set-id bits: such files are written
    // over RPC, where Write() clears them (creds.h, "Set-id bits").
    if (HasSetIdBits(a) && !cred.is_root())
      return ErrnoToStatus(EOPNOTSUPP, "LOCALIO write of a set-id file");
  }
  return absl::OkStatus();
}

absl::Status ValidateTimes(const SetAttrRequest& req) {
  for (const SetTime* t : {&req.atime, &req.mtime}) {
    if (t->how == TimeHow::kClientTime &&
        (t->time.tv_nsec < 0 || t->time.tv_nsec >= 1000000000L))
      return ErrnoToStatus(EINVAL, "time: nanoseconds beyond a second");
  }
  return absl::OkStatus();
}

SetAttrRequest TouchForWriter(const Attrs& a, const SetAttrRequest& req,
                              const Credentials& cred) {
  const bool server_time = req.atime.how == TimeHow::kServerTime ||
                           req.mtime.how == TimeHow::kServerTime;
  const bool client_time = req.atime.how == TimeHow::kClientTime ||
                           req.mtime.how == TimeHow::kClientTime;
  if (!server_time || client_time || cred.is_root() || !a.has(kAttrUid) || cred.uid == a.uid)
    return req;
  SetAttrRequest touch = req;
  touch.atime.how = touch.mtime.how = TimeHow::kServerTime;
  return touch;
}

absl::Status CheckSetAttrUnprivileged(const Attrs& a, const SetAttrRequest& req,
                                      const Credentials& cred) {
  if (cred.is_root()) return absl::OkStatus();
  const bool owner = a.has(kAttrUid) && cred.uid == a.uid;
  if ((req.mode || req.uid || req.gid || req.atime.how == TimeHow::kClientTime ||
       req.mtime.how == TimeHow::kClientTime) &&
      !owner)
    return ErrnoToStatus(EPERM, "setattr: not the owner");
  if ((req.atime.how == TimeHow::kServerTime || req.mtime.how == TimeHow::kServerTime) &&
      !owner)
    return CheckPermission(a, cred, kMayWrite, false);
  return absl::OkStatus();
}

absl::StatusOr<bool> CheckSetAttr(const Attrs& a, const SetAttrRequest& req,
                                  std::optional<timespec> guard_ctime,
                                  const Credentials& cred, bool server_checks) {
  if (guard_ctime && (!a.has(kAttrCtime) || guard_ctime->tv_sec != a.ctime.tv_sec ||
                      guard_ctime->tv_nsec != a.ctime.tv_nsec))
    return ErrnoToStatus(kErrNotSync, "setattr guard: ctime changed");
  RETURN_IF_ERROR(ValidateTimes(req));
  if (server_checks) RETURN_IF_ERROR(CheckSetAttrUnprivileged(a, req, cred));
  if (!req.size) return false;
  if (!a.has(kAttrType | kAttrSize))
    return ErrnoToStatus(EACCES, "truncate: attributes incomplete");
  if (a.is_dir()) return ErrnoToStatus(EISDIR, "truncate a directory");
  if (!a.is_regular()) return ErrnoToStatus(EINVAL, "truncate a special file");
  if (a.size == *req.size && req.mtime.how != TimeHow::kDontChange) return false;
  RETURN_IF_ERROR(CheckPermission(a, cred, kMayWrite, /*owner_override=*/true));
  // NFS sizes are unsigned 64-bit, off_t is signed: beyond it no file can reach (knfsd's
  // nfsd_setattr answers FBIG, "NFSD: Fix ia_size underflow"; ftruncate would say EINVAL).
  if (*req.size > static_cast<uint64_t>(INT64_MAX))
    return ErrnoToStatus(EFBIG, "truncate beyond off_t");
  return true;
}

VerifierTimes ExclusiveVerifierTimes(uint64_t verifier) {
  return VerifierTimes{static_cast<time_t>(verifier & 0x7fffffff),
                       static_cast<time_t>((verifier >> 32) & 0x7fffffff)};
}

bool IsExclusiveRetransmit(const Attrs& a, uint64_t verifier) {
  if (!a.has(kAttrType | kAttrSize | kAttrAtime | kAttrMtime)) return false;
  const VerifierTimes v = ExclusiveVerifierTimes(verifier);
  return a.is_regular() && a.mtime.tv_sec == v.mtime_sec && a.atime.tv_sec == v.atime_sec &&
         a.size == 0;
}

absl::Status CheckLinkSource(const Attrs& a) {
  if (!a.has(kAttrType)) return ErrnoToStatus(EACCES, "link: attributes without type");
  if (a.is_dir()) return ErrnoToStatus(EISDIR, "link a directory");
  return absl::OkStatus();
}

}  // namespace localnfs::server::backend
