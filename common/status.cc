#include "common/status.h"

#include <errno.h>
#include <string.h>

#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace localnfs {
namespace {

// absl::string_view: Debian's Abseil does not alias it to std::string_view.
constexpr absl::string_view kErrnoPayloadUrl = "localnfs/errno";

absl::StatusCode CodeForErrno(int err) {
  switch (err) {
    case EPERM:
    case EACCES:
      return absl::StatusCode::kPermissionDenied;
    case ENOENT:
    case ENXIO:
    case ESRCH:
      return absl::StatusCode::kNotFound;
    case EEXIST:
      return absl::StatusCode::kAlreadyExists;
    case EINVAL:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR:
    case ELOOP:
    case EBADF:
    case ENOTEMPTY:
    case EXDEV:
    case EMLINK:
    case ESTALE:
      return absl::StatusCode::kFailedPrecondition;
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case EFBIG:
      return absl::StatusCode::kResourceExhausted;
    case EROFS:
      return absl::StatusCode::kPermissionDenied;
    case ENOTSUP:
    case ENOSYS:
      return absl::StatusCode::kUnimplemented;
    case EAGAIN:
    case EINTR:
    case EBUSY:
      return absl::StatusCode::kUnavailable;
    case ETIMEDOUT:
      return absl::StatusCode::kDeadlineExceeded;
    case ERANGE:
    case EOVERFLOW:
      return absl::StatusCode::kOutOfRange;
    default:
      return absl::StatusCode::kInternal;
  }
}

int ErrnoForCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kNotFound:
      return ENOENT;
    case absl::StatusCode::kAlreadyExists:
      return EEXIST;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return EACCES;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
      return EINVAL;
    case absl::StatusCode::kResourceExhausted:
      return ENOSPC;
    case absl::StatusCode::kUnimplemented:
      return ENOTSUP;
    case absl::StatusCode::kUnavailable:
      return EAGAIN;
    case absl::StatusCode::kDeadlineExceeded:
      return ETIMEDOUT;
    case absl::StatusCode::kOutOfRange:
      return ERANGE;
    default:
      return EIO;
  }
}

}  // namespace

absl::Status ErrnoToStatus(int err, std::string_view what) {
  if (err == 0) return absl::OkStatus();
  char buf[128];
  const char* text = strerror_r(err, buf, sizeof(buf));
  absl::Status status(CodeForErrno(err),
                      absl::StrCat(absl::string_view(what.data(), what.size()), ": ", text));
  status.SetPayload(kErrnoPayloadUrl, absl::Cord(std::to_string(err)));
  return status;
}

int StatusErrno(const absl::Status& status) {
  if (status.ok()) return 0;
  if (auto payload = status.GetPayload(kErrnoPayloadUrl)) {
    int err = 0;
    for (char c : std::string(*payload)) {
      if (c < '0' || c > '9') return EIO;
      err = err * 10 + (c - '0');
    }
    return err;
  }
  return ErrnoForCode(status.code());
}

}  // namespace localnfs
