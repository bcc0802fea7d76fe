// export_cache/export_text.cc — see export_text.h.
#include "export_cache/export_text.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace localnfs::exports {

std::string ExportOptionsText(const ExportOptions& o) {
  std::vector<std::string> parts;
  parts.push_back(o.read_only ? "ro" : "rw");
  parts.push_back(o.sync ? "sync" : "async");
  switch (o.squash) {
    case Squash::kRoot: parts.push_back("root_squash"); break;
    case Squash::kNone: parts.push_back("no_root_squash"); break;
    case Squash::kAll: parts.push_back("all_squash"); break;
  }
  if (o.squash != Squash::kNone)
    parts.push_back(absl::StrCat("anonuid=", o.anonuid, ",anongid=", o.anongid));
  if (o.secure) parts.push_back("secure");
  if (o.fsid) parts.push_back(absl::StrCat("fsid=", *o.fsid));
  return absl::StrJoin(parts, ",");
}

std::string ClientPatternText(const ClientPattern& pattern) {
  return pattern.text.empty() ? "*" : pattern.text;
}

std::string ClientRuleText(const ClientRule& rule) {
  return absl::StrCat(ClientPatternText(rule.pattern), "(", ExportOptionsText(rule.options),
                      ")");
}

std::string ClientRulesText(const std::vector<ClientRule>& rules) {
  return absl::StrJoin(rules, " ", [](std::string* out, const ClientRule& r) {
    out->append(ClientRuleText(r));
  });
}

}  // namespace localnfs::exports
