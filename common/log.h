// common/log.h — one-line log messages to stderr.
//
// Owns: the process-wide log level and the line format, one line per event on stderr
// (journald stores each as one entry):
//   text (default)  "localnfsd[pid]: LEVEL file:line: message"
//   json            {"time":"2026-01-02T03:04:05.678901Z","level":"info",
//                    "program":"localnfsd","pid":12,"source":"main.cc:415",
//                    "message":"..."}  — built with nlohmann-json; bytes that are
//                   not UTF-8 (a client's file name) become U+FFFD.
// Abseil 20220623 has no absl/log, so this is the one small logger of the project.
// Messages are formatted with absl::StrFormat; each line is written with a single
// write(2), so lines from different threads never interleave. A message below the
// level costs one relaxed atomic load and is never formatted (the LOG_* macros).
//
// Thread-safety: all functions are safe to call from any thread.
#pragma once

#include <stdint.h>

#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace localnfs {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below `level` are dropped. Default kInfo; LOCALNFS_LOG=debug|info|warning|
// error overrides, and SetLogLevel (localnfsd --log-level) overrides both.
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
// "error", "warn" (or "warning"), "info", "debug".
absl::StatusOr<LogLevel> ParseLogLevel(std::string_view name);

enum class LogFormat { kText, kJson };
// Call before threads exist (startup); default kText.
void SetLogFormat(LogFormat format);
// "text", "json".
absl::StatusOr<LogFormat> ParseLogFormat(std::string_view name);
// Sets the program name used as the line prefix (default "localnfs").
void SetLogProgramName(std::string_view name);
void LogLine(LogLevel level, const char* file, int line, std::string_view message);

// The bound on a log line that a client or a failing disk can make us repeat at will
// (refused connections, I/O errors, a full mount list): at most `lines` per `period`.
// Allow() says whether to log this occurrence; when it says yes, *left_out is how many
// occurrences were not logged since the last one that was (say so in the line).
// Thread-safe.
class LogRateLimit {
 public:
  LogRateLimit(int lines, absl::Duration period) : lines_(lines), period_(period) {}
  bool Allow(uint64_t* left_out) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const int lines_;
  const absl::Duration period_;
  absl::Mutex mu_;
  absl::Time window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int logged_in_window_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t left_out_ ABSL_GUARDED_BY(mu_) = 0;
};

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
