// server/request_policy.cc — see request_policy.h.
#include "server/request_policy.h"

#include <errno.h>

#include "common/status.h"
#include "server/client_rules.h"

namespace localnfs::server {

absl::StatusOr<AuthorizedObject> Authorize(const PolicyDeps& deps, const PolicyInput& in) {
  ASSIGN_OR_RETURN(DecodedHandle handle, deps.key->Decode(in.handle));
  AuthorizedObject out;
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
  ASSIGN_OR_RETURN(out.obj.fd, deps.resolver->Resolve(*out.exp, handle.kernel));
  out.obj.exp = out.exp.get();
  out.obj.kh = std::move(handle.kernel);
  return out;
}

}  // namespace localnfs::server
