// tests/support/temp_dir.h — a temporary directory for the length of a test, and the
// server-side file helpers every harness uses on it.
//
//   TempDir root;                       // $TMPDIR/localnfs-test-XXXXXX, mode 0755
//   WriteFile(root.Sub("f"), "data");   // removed with everything in it at scope end
//
// Owns: the directory and all it holds. The destructor makes every directory below it
// searchable first (tests make 0000 directories), so removal never leaves anything.
// Thread-safety: a TempDir belongs to one test thread; the functions are stateless.
#pragma once

#include <string>

namespace localnfs::testing {

class TempDir {
 public:
  // A fresh directory (mode 0755, so that squashed and other uids can traverse it)
  // under $TMPDIR or /tmp. Aborts when it cannot be made: no test can run then.
  explicit TempDir(const std::string& prefix = "localnfs-test");
  ~TempDir();  // removes it recursively
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Sub(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// Writes `data` to `path` (created or truncated); false on any error.
bool WriteFile(const std::string& path, const std::string& data);
// The whole file as the local file system has it; "" when missing.
std::string ReadFile(const std::string& path);

}  // namespace localnfs::testing
