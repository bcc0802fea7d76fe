// common/flags.h — our command lines' spelling on top of Abseil flags.
//
// The documented flags are spelled with dashes (--runtime-dir, --mount-port); absl flag
// names cannot contain '-'. Programs define the flags with '_' and pass each argument
// through AbslFlagSpelling() before parsing, and parse with ParseFlagsOrExitUsage().
// Thread-safety: call from main() before other threads exist.
#pragma once

#include <string>
#include <vector>

namespace localnfs {

// "--a-b[=V]" → "--a_b[=V]" when `a_b` (or, for "--no-a-b", `a_b`) is a registered
// flag; anything else (values, unknown names, "-x", "--") comes back unchanged, so
// absl's error for an unknown flag names it as the user wrote it.
std::string AbslFlagSpelling(std::string arg);

// Exit status of our command lines for bad usage (absl's own is 1).
inline constexpr int kExitUsage = 2;

// absl::ParseCommandLine over `args` (argv[0] first, already respelled), except that a
// bad flag ends the process with kExitUsage instead of absl's 1: while absl parses, an
// atexit hook turns its exit() into _exit(kExitUsage). Returns the positional
// arguments (argv[0] first); the pointers point into `args`.
std::vector<char*> ParseFlagsOrExitUsage(std::vector<std::string>& args);

}  // namespace localnfs
