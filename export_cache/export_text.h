// export_cache/export_text.h — exports as text, the way exports(5) (and `exportfs -v`)
// writes them: the options of a client rule with every default spelled out
// ("rw,sync,root_squash,anonuid=65534,anongid=65534"), a rule ("127.0.0.1(ro,…)") and
// all the rules of an export. localnfs-ctl's status, exports and reload answers use
// them (server/status.cc, server/admin_requests.cc), so one export reads the same in all.
//
// Owns: nothing. Thread-safety: stateless.
#pragma once

#include <string>
#include <vector>

#include "export_cache/client_pattern.h"
#include "export_cache/export_options.h"

namespace localnfs::exports {

// "rw|ro,sync|async,root_squash|no_root_squash|all_squash[,anonuid=U,anongid=G]
// [,secure][,fsid=N]" (anonuid/anongid only when a squash applies).
std::string ExportOptionsText(const ExportOptions& options);
// "who(options)"; "*" for a rule for everyone.
std::string ClientRuleText(const ClientRule& rule);
// The rules in order, blank-separated.
std::string ClientRulesText(const std::vector<ClientRule>& rules);
// The pattern as written ("*" when empty).
std::string ClientPatternText(const ClientPattern& pattern);

}  // namespace localnfs::exports
