// common/flags.cc — see flags.h.
#include "common/flags.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>

#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"

namespace localnfs {
namespace {

bool g_parsing_flags = false;
void ExitUsageIfParsing() {
  if (g_parsing_flags) _exit(kExitUsage);
}

}  // namespace

std::string AbslFlagSpelling(std::string arg) {
  if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) return arg;
  const size_t end = std::min(arg.find('='), arg.size());
  std::string name = arg.substr(2, end - 2);
  std::replace(name.begin(), name.end(), '-', '_');
  const bool known = absl::FindCommandLineFlag(name) != nullptr ||
                     (name.compare(0, 3, "no_") == 0 &&
                      absl::FindCommandLineFlag(name.substr(3)) != nullptr);
  if (!known) return arg;
  // "--no_x" is absl's negation only as "--nox".
  if (absl::FindCommandLineFlag(name) == nullptr) name = "no" + name.substr(3);
  return "--" + name + arg.substr(end);
}

std::vector<char*> ParseFlagsOrExitUsage(std::vector<std::string>& args) {
  static const bool hooked = atexit(ExitUsageIfParsing) == 0;
  (void)hooked;
  std::vector<char*> ptrs;
  for (std::string& a : args) ptrs.push_back(a.data());
  g_parsing_flags = true;
  std::vector<char*> rest = absl::ParseCommandLine(static_cast<int>(ptrs.size()), ptrs.data());
  g_parsing_flags = false;
  return rest;
}

}  // namespace localnfs
