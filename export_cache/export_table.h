// export_cache/export_table.h — the export table: which exports are live, by export
// id and by path (fs/nfsd/export.c's expkey and export caches), each an instance of the
// generic RCU cache (export_cache/rcu_cache.h, seed 000).
//
// Owns: one reference on each live Export (export.h) per index. Lifetimes: lookups
// return a Ref<Export> taken under the RCU read lock (TryGet: a dying export is not
// found). When an export is removed (reload) or the table shuts down, the table drops
// its references; the export is released after a grace period once the last Ref is
// gone (export.h). Teardown = Unregister (no more lookups succeed) → DrainReleases() →
// destroy.
//
// Thread-safety: FindById/FindByPath/List are lock-free (RCU) and may be called from
// any RCU-registered thread concurrently with Load(); Load/Shutdown are serialized by
// the table's own mutex. Every thread that touches the table or drops a Ref<Export>
// must be RCU-registered (common/rcu.h: the release uses call_rcu). Shutdown() and
// the destructor wait for grace periods: call them outside any RCU read section.
// A lookup racing with a reload finds either the old or the new export of a path,
// never nothing, unless the reload removed it.
#pragma once

#include <stdint.h>

#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "common/refcount.h"
#include "export_cache/export.h"
#include "export_cache/export_spec.h"

namespace localnfs::exports {

class ExportTable {
 public:
  ExportTable();
  ~ExportTable();  // Shutdown() if not done

  // Replaces the table's contents by `specs`: new exports appear, changed ones
  // (rules/options) are replaced, removed ones disappear (their ids are no longer
  // found → their handles become stale). Validates everything first: on error nothing
  // changes and the status names the export (and file line). Duplicate ids → error.
  // An export whose spec (path and rules; the file and line are ignored) is unchanged
  // and whose path is still the same directory (through the same mount) keeps its
  // Export object. After Shutdown() → FailedPrecondition.
  absl::Status Load(const std::vector<ExportSpec>& specs);

  Ref<Export> FindById(uint32_t id) const;
  // The export whose path equals `path` exactly.
  Ref<Export> FindByPath(std::string_view path) const;
  std::vector<Ref<Export>> List() const;
  // Bumped by every successful Load(); lets per-connection caches notice reloads.
  uint64_t generation() const;

  // Teardown, in the order of sunrpc_cache_destroy_net(): unregister (empty the table,
  // no lookup succeeds after this), DrainReleases(), destroy.
  void Shutdown();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace localnfs::exports
