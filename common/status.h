// common/status.h — errors as values.
//
// Owns: the two propagation macros (Abseil 20220623 has no RETURN_IF_ERROR) and the
// one errno → absl::Status mapping of the project. A Status made from an errno keeps
// that errno as a payload so that protocol layers (nfsstat3, errno at a FUSE reply)
// can map it back exactly; see StatusErrno().
//
// Thread-safety: stateless.
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace localnfs {

// Returns a Status for the errno value `err` (EACCES → kPermissionDenied, ENOENT →
// kNotFound, …) whose message is "<what>: <strerror>" and which carries `err` as a
// payload. err == 0 yields OkStatus().
absl::Status ErrnoToStatus(int err, std::string_view what);

// The errno carried by a Status made with ErrnoToStatus(); for other non-OK
// Statuses the closest errno of their code (kNotFound → ENOENT, …); 0 for OK.
int StatusErrno(const absl::Status& status);

}  // namespace localnfs

#define LOCALNFS_STATUS_CONCAT_INNER_(a, b) a##b
#define LOCALNFS_STATUS_CONCAT_(a, b) LOCALNFS_STATUS_CONCAT_INNER_(a, b)

// RETURN_IF_ERROR(expr): evaluates expr (an absl::Status) and returns it if not OK.
#define RETURN_IF_ERROR(expr)                                         \
  do {                                                                \
    absl::Status localnfs_status_ = (expr);                           \
    if (!localnfs_status_.ok()) return localnfs_status_;              \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates expr (an absl::StatusOr<T>); returns its
// status if not OK, otherwise moves the value into lhs (which may be a declaration).
#define ASSIGN_OR_RETURN(lhs, expr) \
  LOCALNFS_ASSIGN_OR_RETURN_IMPL_(  \
      LOCALNFS_STATUS_CONCAT_(localnfs_statusor_, __LINE__), lhs, expr)
#define LOCALNFS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                    \
  if (!tmp.ok()) return std::move(tmp).status();        \
  lhs = std::move(tmp).value()
