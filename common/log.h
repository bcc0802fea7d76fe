// common/log.h — one-line log messages to stderr.
//
// Owns: the process-wide log level and the line format
//   "localnfsd[pid]: LEVEL file:line: message".
// Abseil 20220623 has no absl/log, so this is the one small logger of the project.
// Messages are formatted with absl::StrFormat; each line is written with a single
// write(2), so lines from different threads never interleave.
//
// Thread-safety: all functions are safe to call from any thread.
#pragma once

#include <string_view>

#include "absl/strings/str_format.h"

namespace localnfs {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below `level` are dropped. Default kInfo; LOCALNFS_LOG=debug overrides.
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
// Sets the program name used as the line prefix (default "localnfs").
void SetLogProgramName(std::string_view name);
void LogLine(LogLevel level, const char* file, int line, std::string_view message);

}  // namespace localnfs

#define LOCALNFS_LOG_(level, ...)                                                  \
  do {                                                                             \
    if (::localnfs::LogEnabled(level))                                             \
      ::localnfs::LogLine(level, __FILE__, __LINE__, absl::StrFormat(__VA_ARGS__)); \
  } while (0)
#define LOG_DEBUG(...) LOCALNFS_LOG_(::localnfs::LogLevel::kDebug, __VA_ARGS__)
#define LOG_INFO(...) LOCALNFS_LOG_(::localnfs::LogLevel::kInfo, __VA_ARGS__)
#define LOG_WARNING(...) LOCALNFS_LOG_(::localnfs::LogLevel::kWarning, __VA_ARGS__)
#define LOG_ERROR(...) LOCALNFS_LOG_(::localnfs::LogLevel::kError, __VA_ARGS__)
