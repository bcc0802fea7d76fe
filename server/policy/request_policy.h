// server/policy/request_policy.h — the one NFS access policy of the server.
//
// Owns: the decision whether a request may touch the object of a file handle, and as
// whom. Both doors into the server's files take the same steps: an NFSv3 RPC
// (Nfs3Program::Dispatch, for every procedure that carries a handle: AuthorizeHandle,
// then ResolveObject) and a LOCALIO OPEN_LOCAL_FH on the local socket (Authorize;
// local_socket.h), so a local client can never get an fd that the same client could
// not use over RPC.
//
// The steps, in order, each with the nfsstat3 its errno maps to (nfs_status.h):
//   decode + authenticate the handle           → BADHANDLE (EBADMSG)
//   find the export by id (a Ref for the call) → STALE
//   the client rule of the connection's peer   → ACCES (no rule matches)
//     (cached per connection: client_rules.h; for LOCALIO the "connection" is the
//      export-client domain the uuid was bound with)
//   `secure` and a peer port >= 1024           → PERM
//   a write on a read-only export               → ROFS
//   squash the credentials (root_squash, all_squash)
//   resolve the handle to an O_PATH fd          → STALE (or the resolver's errno;
//                                                  EWOULDBLOCK with must_not_block when
//                                                  it needs an export search: fhandle.h)
//     (ResolveObject: through the file cache's kPath entry when deps.file_cache is
//      set, so a hot handle is opened once, not per request; then one statx,
//      vfs::GetAttrOnMount, whose attributes and mount id CheckResolved() judges
//      and whose attributes the request keeps in obj.st)
// A request's second handle (RENAME, LINK) goes through ResolveInSameExport: the same
// decoding and resolution, in the export Authorize() allowed (another export → XDEV).
// Both run before the request switches credentials (creds.h). AuthorizeHandle() is
// Authorize() without the resolution, for a caller that resolves later.
// Nothing decided here is cached across requests: only the object is, never whether
// a client or a credential may use it.
// The mode-bit check of the object itself belongs to the operation (READ/WRITE check
// it on the file, namespace operations on the directory): vfs.h, with the squashed
// credentials returned here.
//
// Thread-safety: stateless; safe from any RCU-registered thread (the export table is
// an RCU cache). Lifetimes: the result holds a reference on the export and owns the
// object's fd or a reference on the file cache entry that keeps it open; drop it
// when the request is done.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "common/credentials.h"
#include "common/refcount.h"
#include "export_cache/export_options.h"
#include "export_cache/export_table.h"
#include "rpc/program.h"
#include "server/policy/fhandle.h"
#include "server/backend/file_cache.h"
#include "server/backend/vfs.h"

namespace localnfs::server {

// What the policy consults; not owned, must outlive every call.
struct PolicyDeps {
  const exports::ExportTable* exports = nullptr;
  const HandleKey* key = nullptr;
  HandleResolver* resolver = nullptr;
  // Where resolved objects are kept while hot; null: every request resolves anew.
  FileCache* file_cache = nullptr;
};

struct PolicyInput {
  std::string_view handle;              // the file handle as sent
  rpc::ConnectionInfo* conn = nullptr;  // its peer() is the client; never null
  const Credentials* cred = nullptr;    // as sent (AUTH_SYS) or kernel-verified; never null
  bool makes_write = false;             // WRITE-like: refused on ro exports
  // The caller's thread serves others and must not wait for an export search (the
  // RPC event loop, the local socket): such a resolution fails with EWOULDBLOCK, and
  // the caller runs the request again on a thread that may wait.
  bool must_not_block = false;
};

// What Authorize() decided before it resolves the handle (AuthorizeHandle).
struct Authorization {
  Ref<exports::Export> exp;
  exports::ExportOptions options;  // of the client rule that matched
  Credentials cred;                // squashed
  KernelHandle kh;                 // the handle's object, to be resolved in exp
};

struct AuthorizedObject {
  Ref<exports::Export> exp;
  exports::ExportOptions options;  // of the client rule that matched
  vfs::Object obj;                 // obj.exp == exp.get()
  Credentials cred;                // squashed
};

// Errors carry the errno of the failed step (see above); NfsStatusFromStatus()
// turns them into the nfsstat3 to answer with.
absl::StatusOr<AuthorizedObject> Authorize(const PolicyDeps& deps, const PolicyInput& in);

// Authorize() up to the resolution: every step but the last, which the caller takes
// with ResolveObject(deps, *a.exp, a.kh) — possibly later, on another thread (an RPC
// that would block on the event loop continues on a worker without deciding again).
// in.must_not_block is not used here.
absl::StatusOr<Authorization> AuthorizeHandle(const PolicyDeps& deps, const PolicyInput& in);

// A second handle of a request that Authorize() allowed in `exp` (RENAME's and
// LINK's directory): decoded and authenticated (BADHANDLE), in the same export
// (another export → EXDEV, NFS3ERR_XDEV; the rule, squash and ro decisions of `exp`
// then cover it too), and resolved like the first. Runs, like Authorize(), before
// the request switches credentials. must_not_block: as PolicyInput's.
absl::StatusOr<vfs::Object> ResolveInSameExport(const PolicyDeps& deps,
                                                const exports::Export& exp,
                                                std::string_view handle,
                                                bool must_not_block = false);

// The resolution step alone, for a handle already authenticated and authorised in
// `exp`. The result has obj.st set. A cached object that fails CheckResolved
// (removed, moved out of the export) is dropped from the file cache, and the request
// gets ESTALE.
// must_not_block: as PolicyInput's.
absl::StatusOr<vfs::Object> ResolveObject(const PolicyDeps& deps, const exports::Export& exp,
                                          KernelHandle kh, bool must_not_block = false);

}  // namespace localnfs::server
