#include "common/log.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"

namespace localnfs {
namespace {

std::atomic<int> g_level{[] {
  const char* env = getenv("LOCALNFS_LOG");
  if (env == nullptr) return static_cast<int>(LogLevel::kInfo);
  if (strcmp(env, "debug") == 0) return static_cast<int>(LogLevel::kDebug);
  if (strcmp(env, "warning") == 0) return static_cast<int>(LogLevel::kWarning);
  if (strcmp(env, "error") == 0) return static_cast<int>(LogLevel::kError);
  return static_cast<int>(LogLevel::kInfo);
}()};

// Set once at startup, before threads exist.
LogFormat g_format = LogFormat::kText;

// Set once at startup, before threads exist.
std::string& ProgramName() {
  static std::string* name = new std::string("localnfs");
  return *name;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARNING";
    case LogLevel::kError:
      return "ERROR";
  }
  return "?";
}

// The names --log-level takes, used in JSON lines too.
const char* LevelFlagName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "?";
}

std::string JsonLine(LogLevel level, std::string_view source, std::string_view message) {
  nlohmann::ordered_json j;
  j["time"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone());
  j["level"] = LevelFlagName(level);
  j["program"] = ProgramName();
  j["pid"] = getpid();
  j["source"] = source;
  j["message"] = message;
  // replace: a message may quote bytes a client sent (names are not always UTF-8);
  // the default would throw.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace

absl::StatusOr<LogLevel> ParseLogLevel(std::string_view name) {
  if (name == "debug") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warn" || name == "warning") return LogLevel::kWarning;
  if (name == "error") return LogLevel::kError;
  return absl::InvalidArgumentError(absl::StrCat(
      "log level '", absl::string_view(name.data(), name.size()),
      "': must be error, warn, info or debug"));
}

absl::StatusOr<LogFormat> ParseLogFormat(std::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(absl::StrCat(
      "log format '", absl::string_view(name.data(), name.size()), "': must be text or json"));
}

void SetLogFormat(LogFormat format) { g_format = format; }

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void SetLogProgramName(std::string_view name) { ProgramName() = std::string(name); }

void LogLine(LogLevel level, const char* file, int line, std::string_view message) {
  const char* base = strrchr(file, '/');
  base = base ? base + 1 : file;
  std::string out =
      g_format == LogFormat::kJson
          ? JsonLine(level, absl::StrCat(base, ":", line), message)
          : absl::StrCat(ProgramName(), "[", getpid(), "]: ", LevelName(level), " ", base,
                         ":", line, ": ", absl::string_view(message.data(), message.size()),
                         "\n");
  // One write per line; a short write to stderr is not worth retrying.
  [[maybe_unused]] ssize_t n = write(STDERR_FILENO, out.data(), out.size());
}

bool LogRateLimit::Allow(uint64_t* left_out) {
  const absl::Time now = absl::Now();
  absl::MutexLock l(&mu_);
  if (now - window_start_ >= period_) {
    window_start_ = now;
    logged_in_window_ = 0;
  }
  if (logged_in_window_ >= lines_) {
    ++left_out_;
    return false;
  }
  ++logged_in_window_;
  *left_out = left_out_;
  left_out_ = 0;
  return true;
}

}  // namespace localnfs
