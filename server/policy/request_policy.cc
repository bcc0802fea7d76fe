// server/policy/request_policy.cc — see request_policy.h.
#include "server/policy/request_policy.h"

#include <errno.h>

#include "common/status.h"
#include "export_cache/squash.h"
#include "server/policy/client_rules.h"

namespace localnfs::server {

absl::StatusOr<Authorization> AuthorizeHandle(const PolicyDeps& deps, const PolicyInput& in) {
  ASSIGN_OR_RETURN(DecodedHandle handle, deps.key->Decode(in.handle));
  Authorization out;
  out.exp = deps.exports->FindById(handle.export_id);
  if (!out.exp) return ErrnoToStatus(ESTALE, "export of the handle is gone");
  std::optional<exports::ExportOptions> options =
      RuleForConnection(*in.conn, *out.exp, deps.exports->generation());
  if (!options) return ErrnoToStatus(EACCES, "no client rule matches the peer");
  if (options->secure && in.conn->peer().port() >= 1024)
    return ErrnoToStatus(EPERM, "secure export, peer port >= 1024");
  if (in.makes_write && options->read_only)
    return ErrnoToStatus(EROFS, "read-only export");
  out.options = *options;
  out.cred = exports::SquashCredentials(*options, *in.cred);
  out.kh = std::move(handle.kernel);
  return out;
}

}  // namespace localnfs::server
