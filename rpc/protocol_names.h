// rpc/protocol_names.h — names of the NFSv3 and MOUNT v3 status codes, for logs,
// errors and localnfs-ctl ("NFS3ERR_STALE"). Used by the server and the client library.
// Thread-safety: stateless.
#pragma once

#include <cstdint>
#include <string>

namespace localnfs::rpc {

// "NFS3ERR_NOENT"; unknown values → "nfsstat3 N".
std::string NfsStatusName(uint32_t nfsstat);
// "MNT3ERR_ACCES"; unknown values → "mountstat3 N".
std::string MountStatusName(uint32_t mountstat);

}  // namespace localnfs::rpc
