// server/client_rules.h — the export-client domain of one connection.
//
// Owns: per connection (stored in rpc::ConnectionInfo::attachment()), the options of
// the client rule that matched this peer, per export id, computed once and reused by
// every request on the connection; dropped when ExportTable::generation() changes
// (a reload may have changed the rules). The LOCALIO program binds a client uuid to
// this same domain.
//
// Thread-safety: RuleForConnection() may be called concurrently for one connection.
#pragma once

#include <optional>

#include "export_cache/export.h"
#include "rpc/program.h"

namespace localnfs::server {

// The options of the first rule of `exp` that matches the connection's peer, or
// nullopt when none does (the client has no access).
std::optional<exports::ExportOptions> RuleForConnection(rpc::ConnectionInfo& conn,
                                                        const exports::Export& exp,
                                                        uint64_t generation);

}  // namespace localnfs::server
