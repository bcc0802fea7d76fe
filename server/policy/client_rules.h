// server/policy/client_rules.h — the export-client domain of one connection.
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

#include "export_cache/export_options.h"
#include "export_cache/export_table.h"
#include "rpc/program.h"

namespace localnfs::server {

// The options of the first rule of `exp` that matches the connection's peer, or
// nullopt when none does (the client has no access).
std::optional<exports::ExportOptions> RuleForConnection(rpc::ConnectionInfo& conn,
                                                        const exports::Export& exp,
                                                        uint64_t generation);

// The export this connection has used, when it has used (with access) exactly one
// since the last reload; 0 otherwise. UUID_IS_LOCAL records it in the binding for
// status output — it restricts nothing: OPEN_LOCAL_FH re-checks the client rule of
// each handle's own export, as an RPC would.
uint32_t SoleExportOfConnection(const rpc::ConnectionInfo& conn);

}  // namespace localnfs::server
