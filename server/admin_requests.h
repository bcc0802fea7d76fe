// server/admin_requests.h — the control-socket requests that administer the exports
// (protocol: common/control.h):
//
//   "exports"       the live export table as text: per export its path, id and every
//                   client rule with its options, plus the exports file and the last
//                   reload's outcome
//   "exports json"  the same as one JSON object (nlohmann-json)
//   "reload"        reload the exports file through the ReloadQueue (server/reload.h:
//                   on the main thread, exactly as SIGHUP), wait for it, and answer
//                   its report as one JSON object; localnfs-ctl renders it
//
// Owns nothing: the table and the queue are borrowed and must outlive the control
// socket. Thread-safety: call from the control thread (RCU-registered: it lists the
// export table); "reload" blocks it for at most AdminSources::reload_bound.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "export_cache/export_table.h"
#include "server/reload.h"

namespace localnfs::server {

struct AdminSources {
  const exports::ExportTable* exports = nullptr;
  ReloadQueue* reloads = nullptr;
  std::string exports_file;  // --exports ("" when the exports come from --export only)
  absl::Duration reload_bound = absl::Seconds(30);
};

// The answer to an admin request, or nullopt when `request` is not one of them (the
// status requests are server/status.h's).
std::optional<std::string> AnswerAdminRequest(const AdminSources& sources,
                                              std::string_view request);

// A reload report as the JSON object "reload" answers (also what localnfs-ctl reload
// --json prints):
//   {"result": "reloaded"|"refused"|"unknown", "error": "…" (not when reloaded),
//    "cause": "SIGHUP"|"localnfs-ctl", "exports_file": "…", "finished": "RFC 3339",
//    "added": [{"id", "path", "rules"}], "changed": [{"id", "path", "rules",
//    "old_path", "old_rules"}], "removed": [{"id", "path", "rules"}],
//    "unchanged": N, "exports": N, "generation": N}
std::string ReloadReportJson(const ReloadReport& report);

}  // namespace localnfs::server
