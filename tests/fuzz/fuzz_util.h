// tests/fuzz/fuzz_util.h — what the libFuzzer targets of tests/fuzz share.
//
// Owns: a temporary directory for a target's whole run (removed at exit), the quiet
// logging every target wants (a warning per malformed input would dominate the
// run), and tiny helpers to build XDR in a byte string.
//
// Not tests/support/ (the test-support library): it links GoogleTest's main(), which a fuzz target
// (libFuzzer provides main) cannot link.
//
// Thread-safety: none needed; libFuzzer calls a target from one thread.
#pragma once

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"

namespace localnfs::fuzz {

// Drops log lines below kError unless LOCALNFS_LOG asks for more.
inline void QuietLogs() {
  if (getenv("LOCALNFS_LOG") == nullptr) SetLogLevel(LogLevel::kError);
}

// Removes `path` recursively (no symlink is followed). Errors are ignored.
inline void RemoveTree(const std::string& path) {
  nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p), 0; },
      16, FTW_DEPTH | FTW_PHYS);
}

// "/dev/shm" when it is a writable tmpfs, else nullptr (RunDir's default base). For
// fixtures whose files are rewritten per input and whose real home is tmpfs anyway.
inline const char* TmpfsDir() {
  struct statfs fs;
  if (statfs("/dev/shm", &fs) == 0 && fs.f_type == TMPFS_MAGIC && access("/dev/shm", W_OK) == 0)
    return "/dev/shm";
  return nullptr;
}

// A directory under `base` (default $TMPDIR, or /tmp) that lives as long as the
// process: a target creates it once in its setup and keeps it in a static. It is
// removed by the destructor or, for the fixtures targets never destroy (their threads
// run until exit), by an atexit handler; a crash leaves it behind for inspection.
class RunDir {
 public:
  explicit RunDir(const char* prefix, const char* base = nullptr) {
    const char* tmp = base != nullptr ? base : getenv("TMPDIR");
    std::string templ = std::string(tmp != nullptr && tmp[0] == '/' ? tmp : "/tmp") +
                        "/" + prefix + "-XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) {
      perror("mkdtemp");
      abort();
    }
    path_ = templ;
    AtExit().push_back(path_);
    static const bool registered = atexit([] {
      for (const std::string& p : AtExit()) RemoveTree(p);
    }) == 0;
    (void)registered;
  }
  ~RunDir() { RemoveTree(path_); }
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Sub(std::string_view rel) const { return path_ + "/" + std::string(rel); }

 private:
  static std::vector<std::string>& AtExit() {
    static auto* paths = new std::vector<std::string>;
    return *paths;
  }
  std::string path_;
};

// XDR primitives appended to a byte string (big endian, 4-byte padding).
inline void PutU32(std::string* out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out->append(b, 4);
}
inline void PutOpaque(std::string* out, std::string_view bytes) {
  PutU32(out, static_cast<uint32_t>(bytes.size()));
  out->append(bytes.data(), bytes.size());
  out->append((4 - bytes.size() % 4) % 4, '\0');
}

}  // namespace localnfs::fuzz
