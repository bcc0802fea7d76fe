// exports_fuzz — the exports parser (export_cache/exports_parser.cc): exports(5) text
// as read from --exports FILE, and the same bytes as a command-line --export
// DIR[:OPTS] argument.
//
// Properties beyond "no crash, no leak": every accepted export path is absolute,
// normalised (NormalizeExportPath leaves it unchanged) and has at least one rule.
//
// Host names in a rule are resolved at parse time (getaddrinfo). A fuzzer must not
// send DNS queries for every name it invents, so this target interposes getaddrinfo:
// every name answers 127.0.0.1 (as a numeric lookup, so libc's freeaddrinfo frees it)
// except names ending in ".invalid", which do not resolve — both outcomes of the
// parser's lookup are reached without touching the network.
#include <dlfcn.h>
#include <netdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <string_view>

#include "export_cache/exports_parser.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int getaddrinfo(const char* node, const char* service, const struct addrinfo* hints,
                           struct addrinfo** res) {
  using Fn = int (*)(const char*, const char*, const struct addrinfo*, struct addrinfo**);
  static const Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "getaddrinfo"));
  const size_t len = node != nullptr ? strlen(node) : 0;
  if (len >= 8 && strcmp(node + len - 8, ".invalid") == 0) return EAI_NONAME;
  struct addrinfo numeric {};
  if (hints != nullptr) numeric = *hints;
  numeric.ai_flags |= AI_NUMERICHOST;
  numeric.ai_family = AF_INET;
  return real("127.0.0.1", service, &numeric, res);
}

namespace {

using namespace localnfs::exports;

void CheckSpec(const ExportSpec& spec) {
  if (spec.path.empty() || spec.path[0] != '/' || spec.rules.empty()) abort();
  absl::StatusOr<std::string> again = NormalizeExportPath(spec.path);
  if (!again.ok() || *again != spec.path) abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  localnfs::fuzz::QuietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (absl::StatusOr<std::vector<ExportSpec>> specs = ParseExports(text, "exports");
      specs.ok()) {
    for (const ExportSpec& spec : *specs) CheckSpec(spec);
  }
  if (absl::StatusOr<ExportSpec> spec = ParseExportArg(text); spec.ok()) CheckSpec(*spec);
  return 0;
}
