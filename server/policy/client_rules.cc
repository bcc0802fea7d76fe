// server/policy/client_rules.cc — see client_rules.h.
#include "server/policy/client_rules.h"

#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace localnfs::server {
namespace {

struct ConnectionRules {
  absl::Mutex mu;
  uint64_t generation ABSL_GUARDED_BY(mu) = 0;
  absl::flat_hash_map<uint32_t, std::optional<exports::ExportOptions>> by_export
      ABSL_GUARDED_BY(mu);
};

std::shared_ptr<ConnectionRules> RulesOf(rpc::ConnectionInfo& conn) {
  if (auto a = conn.attachment()) return std::static_pointer_cast<ConnectionRules>(a);
  // Two racing first requests may both create one; either is correct, the loser's
  // matches are only redone.
  auto rules = std::make_shared<ConnectionRules>();
  conn.set_attachment(rules);
  return rules;
}

}  // namespace

std::optional<exports::ExportOptions> RuleForConnection(rpc::ConnectionInfo& conn,
                                                        const exports::Export& exp,
                                                        uint64_t generation) {
  std::shared_ptr<ConnectionRules> rules = RulesOf(conn);
  {
    absl::MutexLock l(&rules->mu);
    if (rules->generation != generation) {
      rules->by_export.clear();
      rules->generation = generation;
    }
    auto it = rules->by_export.find(exp.id());
    if (it != rules->by_export.end()) return it->second;
  }
  // Matching may do reverse DNS (wildcard rules): not under the lock.
  std::optional<exports::ExportOptions> options;
  if (const exports::ClientRule* rule = exp.MatchClient(conn.peer())) options = rule->options;
  absl::MutexLock l(&rules->mu);
  if (rules->generation == generation) rules->by_export[exp.id()] = options;
  return options;
}

uint32_t SoleExportOfConnection(const rpc::ConnectionInfo& conn) {
  std::shared_ptr<void> a = conn.attachment();
  if (!a) return 0;
  auto rules = std::static_pointer_cast<ConnectionRules>(a);
  absl::MutexLock l(&rules->mu);
  uint32_t sole = 0;
  for (const auto& [id, options] : rules->by_export) {
    if (!options) continue;
    if (sole != 0) return 0;
    sole = id;
  }
  return sole;
}

}  // namespace localnfs::server
