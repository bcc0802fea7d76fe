// common/flags.h — our command lines' spelling on top of Abseil flags.
//
// The documented flags are spelled with dashes (--runtime-dir, --mount-port); absl flag
// names cannot contain '-'. Programs define the flags with '_' and pass each argument
// through AbslFlagSpelling() before absl::ParseCommandLine.
// Thread-safety: reads the flag registry only.
#pragma once

#include <string>

namespace localnfs {

// "--a-b[=V]" → "--a_b[=V]" when `a_b` (or, for "--no-a-b", `a_b`) is a registered
// flag; anything else (values, unknown names, "-x", "--") comes back unchanged, so
// absl's error for an unknown flag names it as the user wrote it.
std::string AbslFlagSpelling(std::string arg);

}  // namespace localnfs
