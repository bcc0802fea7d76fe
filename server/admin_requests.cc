// server/admin_requests.cc — see admin_requests.h.
#include "server/admin_requests.h"

#include <arpa/inet.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "export_cache/export_text.h"
#include "nlohmann/json.hpp"

namespace localnfs::server {
namespace {

// Ordered: members in the order written here. Strings that are not UTF-8 (a path with
// such bytes) have those bytes replaced by U+FFFD when dumped.
using Json = nlohmann::ordered_json;

std::string Dump(const Json& doc) {
  return doc.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

const char* MatchKind(exports::ClientPattern::Kind kind) {
  switch (kind) {
    case exports::ClientPattern::Kind::kAnyone: return "anyone";
    case exports::ClientPattern::Kind::kAddress: return "address";
    case exports::ClientPattern::Kind::kCidr: return "cidr";
    case exports::ClientPattern::Kind::kWildcardName: return "wildcard";
    case exports::ClientPattern::Kind::kHostName: return "hostname";
  }
  return "?";
}

const char* SquashName(exports::Squash squash) {
  switch (squash) {
    case exports::Squash::kRoot: return "root_squash";
    case exports::Squash::kNone: return "no_root_squash";
    case exports::Squash::kAll: return "all_squash";
  }
  return "?";
}

// 4 or 16 network-order bytes as text.
std::string AddressText(const std::string& bytes) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (bytes.size() == 4) inet_ntop(AF_INET, bytes.data(), text, sizeof(text));
  if (bytes.size() == 16) inet_ntop(AF_INET6, bytes.data(), text, sizeof(text));
  return text;
}

std::string TimeText(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

Json RuleJson(const exports::ClientRule& rule) {
  const exports::ExportOptions& o = rule.options;
  Json j = Json::object();
  j["clients"] = exports::ClientPatternText(rule.pattern);
  j["match"] = MatchKind(rule.pattern.kind);
  if (rule.pattern.kind == exports::ClientPattern::Kind::kHostName) {
    Json& addresses = j["addresses"] = Json::array();  // empty: never matches
    for (const std::string& a : rule.pattern.addresses) addresses.push_back(AddressText(a));
  }
  j["options"] = exports::ExportOptionsText(o);
  j["access"] = o.read_only ? "ro" : "rw";
  j["sync"] = o.sync;
  j["squash"] = SquashName(o.squash);
  j["anonuid"] = o.anonuid;
  j["anongid"] = o.anongid;
  j["secure"] = o.secure;
  j["fsid"] = o.fsid ? Json(*o.fsid) : Json(nullptr);
  return j;
}

Json ChangesJson(const std::vector<ExportChange>& changes, bool with_old) {
  Json list = Json::array();
  for (const ExportChange& c : changes) {
    Json j = Json::object();
    j["id"] = c.id;
    j["path"] = c.path;
    j["rules"] = c.rules;
    if (with_old) {
      j["old_path"] = c.old_path;
      j["old_rules"] = c.old_rules;
    }
    list.push_back(std::move(j));
  }
  return list;
}

Json ReportJson(const ReloadReport& r) {
  Json j = Json::object();
  j["result"] = OutcomeName(r.outcome);
  if (r.outcome != ReloadReport::Outcome::kReloaded) j["error"] = r.error;
  j["cause"] = r.cause;
  j["exports_file"] = r.exports_file;
  j["finished"] = r.finished == absl::InfinitePast() ? Json(nullptr) : Json(TimeText(r.finished));
  j["added"] = ChangesJson(r.added, false);
  j["changed"] = ChangesJson(r.changed, true);
  j["removed"] = ChangesJson(r.removed, false);
  j["unchanged"] = r.unchanged;
  j["exports"] = r.exports;
  j["generation"] = r.generation;
  return j;
}

std::string LastReloadText(const std::optional<ReloadReport>& last) {
  if (!last.has_value()) return "last reload: none since start\n";
  const ReloadReport& r = *last;
  std::string out = absl::StrFormat("last reload: %s (%s): ", TimeText(r.finished), r.cause);
  if (r.outcome == ReloadReport::Outcome::kReloaded) {
    absl::StrAppendFormat(&out, "%d added, %d changed, %d removed, %d unchanged\n",
                          r.added.size(), r.changed.size(), r.removed.size(), r.unchanged);
  } else {
    absl::StrAppendFormat(&out, "refused, the exports below kept serving: %s\n", r.error);
  }
  return out;
}

std::string ExportsText(const AdminSources& src, const std::vector<Ref<exports::Export>>& list,
                        const std::optional<ReloadReport>& last) {
  std::string out = absl::StrFormat(
      "exports file: %s; table generation %d\n",
      src.exports_file.empty() ? "none (--export flags only)" : src.exports_file,
      src.exports->generation());
  out += LastReloadText(last);
  absl::StrAppendFormat(&out, "\nexports (%d):\n", list.size());
  for (const Ref<exports::Export>& e : list) {
    absl::StrAppendFormat(&out, "  %s  id %08x\n", e->path(), e->id());
    size_t width = 0;
    for (const exports::ClientRule& r : e->spec().rules)
      width = std::max(width, exports::ClientPatternText(r.pattern).size());
    for (const exports::ClientRule& r : e->spec().rules) {
      std::string note;
      if (r.pattern.kind == exports::ClientPattern::Kind::kHostName) {
        std::vector<std::string> addresses;
        for (const std::string& a : r.pattern.addresses) addresses.push_back(AddressText(a));
        note = addresses.empty()
                   ? "  (did not resolve: matches no one)"
                   : absl::StrCat("  (", absl::StrJoin(addresses, " "), ")");
      }
      absl::StrAppendFormat(&out, "    %-*s  %s%s\n", width,
                            exports::ClientPatternText(r.pattern),
                            exports::ExportOptionsText(r.options), note);
    }
  }
  return out;
}

std::string ExportsJson(const AdminSources& src, const std::vector<Ref<exports::Export>>& list,
                        const std::optional<ReloadReport>& last) {
  Json doc = Json::object();
  doc["exports_file"] = src.exports_file.empty() ? Json(nullptr) : Json(src.exports_file);
  doc["generation"] = src.exports->generation();
  doc["last_reload"] = last.has_value() ? ReportJson(*last) : Json(nullptr);
  Json& exports = doc["exports"] = Json::array();
  for (const Ref<exports::Export>& e : list) {
    Json ex = Json::object();
    ex["id"] = e->id();
    ex["path"] = e->path();
    Json& rules = ex["rules"] = Json::array();
    for (const exports::ClientRule& r : e->spec().rules) rules.push_back(RuleJson(r));
    exports.push_back(std::move(ex));
  }
  return Dump(doc);
}

}  // namespace

std::string ReloadReportJson(const ReloadReport& report) { return Dump(ReportJson(report)); }

std::optional<std::string> AnswerAdminRequest(const AdminSources& src,
                                              std::string_view request) {
  if (request == "exports" || request == "exports json") {
    // Sorted by path: the table's own order is its hash order.
    std::vector<Ref<exports::Export>> list = src.exports->List();
    std::sort(list.begin(), list.end(),
              [](const Ref<exports::Export>& a, const Ref<exports::Export>& b) {
                return a->path() < b->path();
              });
    const std::optional<ReloadReport> last = src.reloads->Last();
    return request == "exports" ? ExportsText(src, list, last) : ExportsJson(src, list, last);
  }
  if (request == "reload") return ReloadReportJson(src.reloads->RequestAndWait(src.reload_bound));
  return std::nullopt;
}

}  // namespace localnfs::server
