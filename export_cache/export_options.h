// export_cache/export_options.h — what one client rule of an export grants: the
// options of exports(5) (rw/ro, sync/async, root_squash/no_root_squash/all_squash,
// anonuid/anongid, secure, fsid) as the parser (exports_parser.h) fills them in.
//
// Owns: nothing (values). Thread-safety: values; immutable once in an Export.
#pragma once

#include <stdint.h>

#include <optional>

#include "common/credentials.h"

namespace localnfs::exports {

enum class Squash { kRoot, kNone, kAll };

struct ExportOptions {
  bool read_only = false;         // rw (default) / ro
  // sync (default) / async: a change of the namespace or of attributes is on stable
  // storage before its reply (knfsd's EX_ISSYNC and commit_metadata). WRITE's stable_how
  // and COMMIT are honoured either way (knfsd's async also skips their syncs).
  bool sync = true;
  Squash squash = Squash::kRoot;  // root_squash (default) / no_root_squash / all_squash
  uint32_t anonuid = kNobodyUid;
  uint32_t anongid = kNobodyGid;
  bool secure = false;           // secure: only peers with source port < 1024
  std::optional<uint32_t> fsid;  // fsid=N (numeric)
  friend bool operator==(const ExportOptions&, const ExportOptions&) = default;
};

}  // namespace localnfs::exports
