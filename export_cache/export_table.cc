// export_cache/export_table.cc — see export_table.h: the export table (fs/nfsd/export.c
// on top of the generic cache).
//
// Reload (Load) works in two phases, so that a bad exports file changes nothing:
//  1. validate: create an Export for every spec (opens and stats its root) and check
//     that paths and ids are unique — nothing is published yet;
//  2. publish: for each spec, keep the current Export object if its spec (ignoring
//     the line number) is unchanged and its path still names the same directory
//     through the same mount,
//     else take the new one; then replace the by-id index, then the by-path index.
// The by-id index goes first so that an export found by path (MOUNT) is always
// found by id (every later NFS call with its handles). Exports left out lose the
// table's references; their fd closes after a grace period once the last Ref is gone.
// Unused new Exports from phase 1 are released the same way.
#include "export_cache/export_table.h"

#include <atomic>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "export_cache/exports_parser.h"
#include "export_cache/rcu_cache.h"

namespace localnfs::exports {
namespace {

// "FILE:LINE: " like the parser's errors ("line LINE: " for a spec without its file,
// nothing for a --export).
std::string LinePrefix(const ExportSpec& spec) {
  if (spec.line <= 0) return std::string();
  if (spec.file.empty()) return absl::StrFormat("line %d: ", spec.line);
  return absl::StrFormat("%s:%d: ", spec.file, spec.line);
}

bool SameRules(const ExportSpec& a, const ExportSpec& b) {
  return a.path == b.path && a.rules == b.rules;
}

}  // namespace


class ExportTable::Impl {
 public:
  absl::Status Load(const std::vector<ExportSpec>& specs) ABSL_LOCKS_EXCLUDED(mu_);
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // The two cache instances (nfsd: expkey and export caches).
  RcuCache<uint32_t, Export> by_id;
  RcuCache<std::string, Export> by_path;
  std::atomic<uint64_t> generation{0};

 private:
  absl::Mutex mu_;  // serializes Load and Shutdown
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

absl::Status ExportTable::Impl::Load(const std::vector<ExportSpec>& specs) {
  absl::MutexLock l(&mu_);
  if (shut_down_) return absl::FailedPreconditionError("export table is shut down");

  // Phase 1: validate everything; nothing is visible to readers yet.
  std::vector<Ref<Export>> fresh;
  fresh.reserve(specs.size());
  absl::flat_hash_map<std::string, const ExportSpec*> paths;
  absl::flat_hash_map<uint32_t, const Export*> ids;
  for (const ExportSpec& spec : specs) {
    if (spec.rules.empty())
      return absl::InvalidArgumentError(
          absl::StrFormat("%sexport %s has no client rule", LinePrefix(spec), spec.path));
    // Specs are normally parsed (hence normalised); one built by hand must be too,
    // or FindByPath would never find it.
    absl::StatusOr<std::string> normal = NormalizeExportPath(spec.path);
    if (!normal.ok() || *normal != spec.path)
      return absl::InvalidArgumentError(
          absl::StrFormat("%sexport path '%s' is not absolute and normalised",
                          LinePrefix(spec), spec.path));
    absl::StatusOr<Ref<Export>> exp = Export::Create(spec);
    if (!exp.ok())
      return absl::Status(exp.status().code(),
                          absl::StrCat(LinePrefix(spec), exp.status().message()));
    if (auto [it, ok] = paths.try_emplace(spec.path, &spec); !ok)
      return absl::InvalidArgumentError(absl::StrFormat(
          "%sexport %s is listed twice (also %s)", LinePrefix(spec), spec.path,
          it->second->line > 0 ? absl::StrFormat("at line %d", it->second->line)
                               : std::string("on the command line")));
    if (auto [it, ok] = ids.try_emplace((*exp)->id(), exp->get()); !ok)
      return absl::InvalidArgumentError(absl::StrFormat(
          "%sexport %s: id %u is already used by export %s (set a distinct fsid=)",
          LinePrefix(spec), spec.path, (*exp)->id(), it->second->path()));
    fresh.push_back(*std::move(exp));
  }

  // Phase 2: keep unchanged exports, then publish both indexes.
  std::vector<RcuCache<uint32_t, Export>::Entry> id_entries;
  std::vector<RcuCache<std::string, Export>::Entry> path_entries;
  for (Ref<Export>& exp : fresh) {
    Ref<Export> current = by_path.Lookup(exp->path());
    if (current && SameRules(current->spec(), exp->spec()) &&
        current->id() == exp->id() && current->root_dev() == exp->root_dev() &&
        current->root_ino() == exp->root_ino() &&
        current->root_mnt_id() == exp->root_mnt_id())
      exp = std::move(current);  // the new object is released after a grace period
    id_entries.emplace_back(exp->id(), exp);
    path_entries.emplace_back(exp->path(), exp);
  }
  // Keys were checked unique above, so neither call can fail.
  RETURN_IF_ERROR(by_id.ReplaceAll(std::move(id_entries)));
  RETURN_IF_ERROR(by_path.ReplaceAll(std::move(path_entries)));
  generation.fetch_add(1, std::memory_order_release);
  return absl::OkStatus();
}

void ExportTable::Impl::Shutdown() {
  absl::MutexLock l(&mu_);
  if (shut_down_) return;
  shut_down_ = true;
  // Unregister both, one drain, destroy both (nfsd_export_shutdown).
  TeardownRcuCaches(by_id, by_path);
}

ExportTable::ExportTable() : impl_(std::make_unique<Impl>()) {}

ExportTable::~ExportTable() { Shutdown(); }

absl::Status ExportTable::Load(const std::vector<ExportSpec>& specs) {
  return impl_->Load(specs);
}

Ref<Export> ExportTable::FindById(uint32_t id) const { return impl_->by_id.Lookup(id); }

Ref<Export> ExportTable::FindByPath(std::string_view path) const {
  // Debian's absl::string_view is not std::string_view; the index hashes the former.
  return impl_->by_path.Lookup(absl::string_view(path.data(), path.size()));
}

std::vector<Ref<Export>> ExportTable::List() const { return impl_->by_id.List(); }

uint64_t ExportTable::generation() const {
  return impl_->generation.load(std::memory_order_acquire);
}

void ExportTable::Shutdown() { impl_->Shutdown(); }

}  // namespace localnfs::exports
