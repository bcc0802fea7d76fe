// export_cache/squash.h — squashing: the credentials a request acts as under the
// options of the client rule that admitted it (nfsd_setuser in fs/nfsd/auth.c).
//
// Owns: nothing. Thread-safety: stateless.
#pragma once

#include "common/credentials.h"
#include "export_cache/export_options.h"

namespace localnfs::exports {

// The credentials a request acts as under `options`: root_squash maps uid 0 / gid 0
// to anonuid/anongid (and drops gid 0 from groups), all_squash maps everyone
// (groups cleared), no_root_squash changes nothing.
Credentials SquashCredentials(const ExportOptions& options, const Credentials& cred);

}  // namespace localnfs::exports
