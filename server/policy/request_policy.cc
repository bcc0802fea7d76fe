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

absl::StatusOr<AuthorizedObject> Authorize(const PolicyDeps& deps, const PolicyInput& in) {
  ASSIGN_OR_RETURN(Authorization a, AuthorizeHandle(deps, in));
  AuthorizedObject out;
  ASSIGN_OR_RETURN(out.obj, ResolveObject(deps, *a.exp, std::move(a.kh), in.must_not_block));
  out.exp = std::move(a.exp);
  out.options = a.options;
  out.cred = std::move(a.cred);
  return out;
}

absl::StatusOr<vfs::Object> ResolveInSameExport(const PolicyDeps& deps,
                                                const exports::Export& exp,
                                                std::string_view handle,
                                                bool must_not_block) {
  ASSIGN_OR_RETURN(DecodedHandle decoded, deps.key->Decode(handle));
  if (decoded.export_id != exp.id()) return ErrnoToStatus(EXDEV, "handles of different exports");
  return ResolveObject(deps, exp, std::move(decoded.kernel), must_not_block);
}

absl::StatusOr<vfs::Object> ResolveObject(const PolicyDeps& deps, const exports::Export& exp,
                                          KernelHandle kh, bool must_not_block) {
  vfs::Object obj;
  obj.exp = &exp;
  const bool may_search = !must_not_block;
  if (deps.file_cache == nullptr) {
    ASSIGN_OR_RETURN(obj.fd, deps.resolver->Open(exp, kh, may_search));
  } else {
    HandleResolver* resolver = deps.resolver;
    ASSIGN_OR_RETURN(Ref<NfsFile> path,
                     deps.file_cache->Acquire(exp.id(), kh, FileMode::kPath,
                                              [resolver, &exp, &kh, may_search](FileMode) {
                                                return resolver->Open(exp, kh, may_search);
                                              }));
    const int fd = path->fd();
    obj.fd = vfs::ObjectFd(fd, Ref<RefCounted>::Adopt(path.release()));
  }
  // The one stat (statx) of the request: whether the object may still be used, and the
  // attributes its checks and its reply use.
  absl::StatusOr<vfs::AttrsOnMount> a = vfs::GetAttrOnMount(obj.fd.get());
  absl::Status usable =
      a.ok() ? CheckResolved(exp, obj.fd.get(), a->st, a->mnt_id) : a.status();
  if (!usable.ok()) {
    // Removed or moved out while cached: later requests must not find it either.
    if (deps.file_cache != nullptr && StatusErrno(usable) == ESTALE)
      deps.file_cache->Close(exp.id(), kh);
    return usable;
  }
  obj.st = a->st;
  obj.kh = std::move(kh);
  return obj;
}

}  // namespace localnfs::server
