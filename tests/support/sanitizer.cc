// tests/support/sanitizer.cc — see sanitizer.h.
#include "tests/support/sanitizer.h"

#include <algorithm>

namespace localnfs::testing {

std::string FindSanitizerReport(std::string_view text) {
  static constexpr std::string_view kMarkers[] = {
      "ERROR: AddressSanitizer",  "ERROR: LeakSanitizer",  "runtime error:",
      "ERROR: UndefinedBehaviorSanitizer", "WARNING: ThreadSanitizer",
      "FATAL: ThreadSanitizer",
  };
  size_t first = std::string_view::npos;
  for (std::string_view marker : kMarkers) first = std::min(first, text.find(marker));
  if (first == std::string_view::npos) return "";
  const size_t begin = text.rfind('\n', first);
  const size_t from = begin == std::string_view::npos ? 0 : begin + 1;
  const size_t end = text.find('\n', first);
  return std::string(text.substr(from, end == std::string_view::npos ? end : end - from));
}

}  // namespace localnfs::testing
