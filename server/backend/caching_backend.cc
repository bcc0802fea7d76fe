// server/backend/caching_backend.cc — see caching_backend.h.
#include "server/backend/caching_backend.h"

#include <errno.h>

#include "common/status.h"
#include "export_cache/export.h"

namespace localnfs::server::backend {

CachingBackend::CachingBackend(Backend& inner, FileCacheOptions options)
    : inner_(inner), cache_(options) {}

CachingBackend::~CachingBackend() { cache_.Shutdown(); }

absl::StatusOr<Object> CachingBackend::Resolve(const exports::Export& exp, Handle handle,
                                               bool may_search) {
  ASSIGN_OR_RETURN(Ref<NfsFile> node,
                   cache_.AcquireFile(exp.id(), handle, FileMode::kPath,
                                      [&](FileMode) {
                                        return inner_.OpenNode(exp, handle, may_search);
                                      }));
  absl::StatusOr<Attrs> attrs = inner_.Validate(exp, *node);
  if (!attrs.ok()) {
    // Removed or moved out while cached: later requests must not find it either.
    if (StatusErrno(attrs.status()) == ESTALE) cache_.Close(exp.id(), handle);
    return attrs.status();
  }
  return Object(&exp, std::move(handle), *attrs, std::move(node));
}

absl::StatusOr<Object> CachingBackend::Keep(absl::StatusOr<Object> made) {
  if (!made.ok()) return made;
  const Object& obj = *made;
  // Takes a reference of its own on the node, unless the object is cached already (a
  // LOOKUP of a hot name): then the cached node stays, and this one serves the request.
  (void)cache_.AcquireFile(obj.exp().id(), obj.handle(), FileMode::kPath,
                           [&obj](FileMode) -> absl::StatusOr<Ref<NfsFile>> {
                             return obj.node_ref();
                           });
  return made;
}

void CachingBackend::Forget(const exports::Export& exp, const std::optional<Handle>& gone) {
  if (gone) cache_.Close(exp.id(), *gone);
}

absl::StatusOr<Object> CachingBackend::OpenPath(const exports::Export& exp,
                                                std::string_view rel) {
  return Keep(inner_.OpenPath(exp, rel));
}

absl::StatusOr<Object> CachingBackend::Lookup(const Object& dir, std::string_view name,
                                              const Credentials& cred) {
  return Keep(inner_.Lookup(dir, name, cred));
}

absl::StatusOr<Object> CachingBackend::Create(const Object& dir, std::string_view name,
                                              CreateHow how, const SetAttrRequest& attrs,
                                              uint64_t verifier, const Caller& caller) {
  return Keep(inner_.Create(dir, name, how, attrs, verifier, caller));
}

absl::StatusOr<Object> CachingBackend::Mkdir(const Object& dir, std::string_view name,
                                             const SetAttrRequest& attrs,
                                             const Caller& caller) {
  return Keep(inner_.Mkdir(dir, name, attrs, caller));
}

absl::StatusOr<Object> CachingBackend::Symlink(const Object& dir, std::string_view name,
                                               std::string_view target,
                                               const SetAttrRequest& attrs,
                                               const Caller& caller) {
  return Keep(inner_.Symlink(dir, name, target, attrs, caller));
}

absl::StatusOr<Object> CachingBackend::Mknod(const Object& dir, std::string_view name,
                                             FileType type, uint32_t rdev_major,
                                             uint32_t rdev_minor, const SetAttrRequest& attrs,
                                             const Caller& caller) {
  return Keep(inner_.Mknod(dir, name, type, rdev_major, rdev_minor, attrs, caller));
}

absl::StatusOr<std::optional<Handle>> CachingBackend::Remove(const Object& dir,
                                                             std::string_view name,
                                                             RemoveKind kind,
                                                             const Caller& caller) {
  absl::StatusOr<std::optional<Handle>> gone = inner_.Remove(dir, name, kind, caller);
  if (gone.ok()) Forget(dir.exp(), *gone);
  return gone;
}

absl::StatusOr<std::optional<Handle>> CachingBackend::Rename(const Object& from_dir,
                                                             std::string_view from_name,
                                                             const Object& to_dir,
                                                             std::string_view to_name,
                                                             const Caller& caller) {
  absl::StatusOr<std::optional<Handle>> replaced =
      inner_.Rename(from_dir, from_name, to_dir, to_name, caller);
  if (replaced.ok()) Forget(to_dir.exp(), *replaced);
  return replaced;
}

absl::StatusOr<Ref<NfsFile>> CachingBackend::AcquireFile(const Object& obj, FileMode mode) {
  return cache_.AcquireFile(obj.exp().id(), obj.handle(), mode,
                            [&](FileMode m) { return inner_.OpenFile(obj, m); });
}

}  // namespace localnfs::server::backend
