// export_cache/export_spec.h — one export as written (exports(5) or --export), parsed
// but not yet validated against the file system: its path and its client rules. The
// parser (exports_parser.h) makes them, Export::Create (export.h) opens them, the
// table (export_table.h) loads them.
//
// Owns: nothing (values). Thread-safety: values.
#pragma once

#include <string>
#include <vector>

#include "export_cache/client_pattern.h"

namespace localnfs::exports {

struct ExportSpec {
  std::string path;               // absolute, normalised (no trailing '/', no '..')
  std::vector<ClientRule> rules;  // first match wins, in the order written
  int line = 0;                   // line in the exports file (0 for --export)
  std::string file;               // the exports file's name as given ("" for --export)
  friend bool operator==(const ExportSpec&, const ExportSpec&) = default;
};

}  // namespace localnfs::exports
