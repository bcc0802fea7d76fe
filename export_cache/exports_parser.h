// export_cache/exports_parser.h — the exports(5) parser and the --export DIR[:OPTS]
// parser (exports_parser.cc says which syntax is accepted).
//
// Owns: nothing. Thread-safety: stateless (host names in client patterns are resolved
// while parsing, which may block).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "export_cache/export_spec.h"

namespace localnfs::exports {

// Parses exports(5) text: "/dir host(opts) 10.0.0.0/8(opts) *(opts)", '#' comments,
// '\' continuation lines, a bare host means default options, a path with no clients
// means "*". Errors name `filename` and the line: "exports:3: unknown option 'rx'".
// Every rule starts from `base` (exports(5)'s defaults; the server passes its own
// anonymous identity when it runs unprivileged — server/policy/creds.h).
absl::StatusOr<std::vector<ExportSpec>> ParseExports(std::string_view text,
                                                     std::string_view filename,
                                                     const ExportOptions& base = {});
// Parses a command-line export "DIR[:OPTS]" (OPTS comma-separated, for everyone "*"),
// starting from `base` as ParseExports. The split is at the last ':'; write "DIR:" for
// a path that contains ':'.
absl::StatusOr<ExportSpec> ParseExportArg(std::string_view arg,
                                          const ExportOptions& base = {});
// Normalises an export path: absolute, "//" and "/./" collapsed, no trailing '/',
// no ".." component (rejected).
absl::StatusOr<std::string> NormalizeExportPath(std::string_view path);

}  // namespace localnfs::exports
