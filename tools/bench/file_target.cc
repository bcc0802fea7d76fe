// tools/bench/file_target.cc — the file:// target: the local file system, the limit
// that LOCALIO is measured against. Reads are pread on one shared fd, the write job is
// pwrite + one fsync (what a COMMIT costs the server), the meta cycle is
// open(O_CREAT|O_EXCL) + close + stat + unlink.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "tools/bench/targets.h"

namespace localnfs::bench {
namespace {

class FileTarget final : public ThreadedTarget {
 public:
  explicit FileTarget(std::string dir) : dir_(std::move(dir)) {}

  std::string Describe() const override { return absl::StrCat("local files in ", dir_); }

  absl::Status PrepareReadFile(const std::string& name, uint64_t size) override {
    std::string path = Path(name);
    UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd) return ErrnoToStatus(errno, absl::StrCat("open ", path));
    struct stat st {};
    if (fstat(fd.get(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("fstat ", path));
    if (static_cast<uint64_t>(st.st_size) < size) {
      constexpr uint32_t kChunk = 1 << 20;
      const std::string pattern = FillPattern(kChunk);
      for (uint64_t off = 0; off < size; off += kChunk) {
        size_t n = std::min<uint64_t>(kChunk, size - off);
        if (pwrite(fd.get(), pattern.data(), n, off) != static_cast<ssize_t>(n))
          return ErrnoToStatus(errno ? errno : EIO, absl::StrCat("pwrite ", path));
      }
      if (fsync(fd.get()) != 0) return ErrnoToStatus(errno, absl::StrCat("fsync ", path));
    }
    fd_ = std::move(fd);
    return absl::OkStatus();
  }

  absl::Status PrepareWriteFile(const std::string& name) override {
    std::string path = Path(name);
    if (unlink(path.c_str()) != 0 && errno != ENOENT)
      return ErrnoToStatus(errno, absl::StrCat("unlink ", path));
    UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd) return ErrnoToStatus(errno, absl::StrCat("create ", path));
    fd_ = std::move(fd);
    return absl::OkStatus();
  }

  absl::Status RemoveFile(const std::string& name) override {
    fd_.reset();
    std::string path = Path(name);
    if (unlink(path.c_str()) != 0 && errno != ENOENT)
      return ErrnoToStatus(errno, absl::StrCat("unlink ", path));
    return absl::OkStatus();
  }

 protected:
  absl::Status Read(uint64_t offset, uint32_t length, char* buffer) override {
    ssize_t n = pread(fd_.get(), buffer, length, offset);
    if (n < 0) return ErrnoToStatus(errno, "pread");
    if (static_cast<uint32_t>(n) != length) return absl::OutOfRangeError("short pread");
    return absl::OkStatus();
  }

  absl::Status Write(uint64_t offset, absl::string_view data) override {
    ssize_t n = pwrite(fd_.get(), data.data(), data.size(), offset);
    if (n < 0) return ErrnoToStatus(errno, "pwrite");
    if (static_cast<size_t>(n) != data.size()) return absl::DataLossError("short pwrite");
    return absl::OkStatus();
  }

  absl::Status Commit() override {
    if (fsync(fd_.get()) != 0) return ErrnoToStatus(errno, "fsync");
    return absl::OkStatus();
  }

  absl::Status MetaCycle(const std::string& name) override {
    std::string path = Path(name);
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("create ", path));
    close(fd);
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("stat ", path));
    if (unlink(path.c_str()) != 0) return ErrnoToStatus(errno, absl::StrCat("unlink ", path));
    return absl::OkStatus();
  }

 private:
  std::string Path(const std::string& name) const { return absl::StrCat(dir_, "/", name); }

  const std::string dir_;
  UniqueFd fd_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Target>> OpenFileTarget(const std::string& dir) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("stat ", dir));
  if (!S_ISDIR(st.st_mode)) return absl::InvalidArgumentError(dir + " is not a directory");
  return std::make_unique<FileTarget>(dir);
}

}  // namespace localnfs::bench
