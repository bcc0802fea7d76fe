// server/policy/request_policy.h — the one NFS access policy of the server.
//
// Owns: the decision whether a request may touch the object of a file handle, and as
// whom. Both doors into the server's files take the same steps: an NFSv3 RPC
// (Nfs3Program::Dispatch, for every procedure that carries a handle: AuthorizeHandle,
// then Backend::Resolve of every handle — backend/backend.h) and a LOCALIO OPEN_LOCAL_FH on the local socket
// (AuthorizeHandle, then the backend's Resolve; local_socket.h), so a local client can
// never get an fd that the same client could not use over RPC.
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
// and then the caller resolves the handle with Backend::Resolve (backend/backend.h:
// through the caching layer's node, so a hot handle is opened once, not per request;
// one statx whose attributes and mount id CheckResolved() judges, kept in the Object)
//                                               → STALE (or the resolver's errno;
//                                                  EWOULDBLOCK when it may not search
//                                                  the export: fhandle.h)
// An NFSv3 request's second handle (RENAME, LINK) is decoded the same way and must be
// of the export AuthorizeHandle() allowed (another export → XDEV; Nfs3Program::Prepare).
// Resolution runs before anything switches credentials (creds.h), possibly later and on
// another thread than the authorisation (an RPC that would block on the event loop
// continues on a worker without deciding again).
// Nothing decided here is cached across requests: only the object is, never whether
// a client or a credential may use it.
// The mode-bit check of the object itself belongs to the operation (READ/WRITE check
// it on the file, namespace operations on the directory): the Backend's, with the
// squashed credentials returned here.
//
// Thread-safety: stateless; safe from any RCU-registered thread (the export table is
// an RCU cache). Lifetimes: the result holds a reference on the export; drop it when
// the request is done.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "common/credentials.h"
#include "common/refcount.h"
#include "export_cache/export_options.h"
#include "export_cache/export_table.h"
#include "rpc/program.h"
#include "server/policy/fhandle.h"

namespace localnfs::server {

// What the policy consults; not owned, must outlive every call.
struct PolicyDeps {
  const exports::ExportTable* exports = nullptr;
  const HandleKey* key = nullptr;
};

struct PolicyInput {
  std::string_view handle;              // the file handle as sent
  rpc::ConnectionInfo* conn = nullptr;  // its peer() is the client; never null
  const Credentials* cred = nullptr;    // as sent (AUTH_SYS) or kernel-verified; never null
  bool makes_write = false;             // WRITE-like: refused on ro exports
};

// What AuthorizeHandle() decided: the handle's object is still to be resolved in exp.
struct Authorization {
  Ref<exports::Export> exp;
  exports::ExportOptions options;  // of the client rule that matched
  Credentials cred;                // squashed
  KernelHandle kh;                 // the handle's object, to be resolved in exp
};

// Every step above but the resolution. Errors carry the errno of the failed step (see
// above); NfsStatusFromStatus() turns them into the nfsstat3 to answer with.
absl::StatusOr<Authorization> AuthorizeHandle(const PolicyDeps& deps, const PolicyInput& in);

}  // namespace localnfs::server
