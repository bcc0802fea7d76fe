// common/flags.cc — see flags.h.
#include "common/flags.h"

#include <algorithm>

#include "absl/flags/reflection.h"

namespace localnfs {

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

}  // namespace localnfs
