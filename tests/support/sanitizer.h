// tests/support/sanitizer.h — what a sanitizer report looks like in a process's output:
// the one list of markers every launcher scans for (the shell tests' copy is
// tests/support/sanitizer.sh; tests/support/support_test.cc checks both).
//
//   ASan   "ERROR: AddressSanitizer"            (heap-use-after-free, SEGV, ...)
//   LSan   "ERROR: LeakSanitizer"               (detected memory leaks)
//   UBSan  "runtime error:"                     (file:line: runtime error: ...)
//          "ERROR: UndefinedBehaviorSanitizer"  (UBSan's own DEADLYSIGNAL report)
//   TSan   "WARNING: ThreadSanitizer"           (data race, ...)
//          "FATAL: ThreadSanitizer"             (it could not run)
//
// A report also fails its process where the options say so (halt_on_error, exit codes);
// scanning is what catches the reports of a process whose exit status no test checks —
// one killed on purpose, one that keeps running after UBSan's report.
//
// Thread-safety: stateless functions.
#pragma once

#include <string>
#include <string_view>

namespace localnfs::testing {

// The line of `text` that holds the first sanitizer report marker (without its
// newline), or "" when there is none.
std::string FindSanitizerReport(std::string_view text);

inline bool HasSanitizerReport(std::string_view text) {
  return !FindSanitizerReport(text).empty();
}

}  // namespace localnfs::testing
