#include "common/log.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

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

}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void SetLogProgramName(std::string_view name) { ProgramName() = std::string(name); }

void LogLine(LogLevel level, const char* file, int line, std::string_view message) {
  const char* base = strrchr(file, '/');
  base = base ? base + 1 : file;
  std::string out = absl::StrCat(ProgramName(), "[", getpid(), "]: ", LevelName(level),
                                 " ", base, ":", line, ": ",
                                 absl::string_view(message.data(), message.size()), "\n");
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
