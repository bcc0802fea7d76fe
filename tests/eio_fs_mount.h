// tests/eio_fs_mount.h — tests/eio_fs (the in-memory FUSE file system that fails on
// purpose and can log its operations) mounted for the length of a test.
//
// Owns: the eio_fs child process (tests/support/child.h Child: fork, exec, output
// capture, sanitizer scan when reaped) and its mount. The destructor (and Stop()) ends
// the process — SIGTERM, SIGKILL after 10 s — and detaches the mount if it is still
// there, also when the test failed half-way; the child gets PR_SET_PDEATHSIG=SIGKILL,
// so a crashed test binary leaves no daemon behind. A sanitizer report or an unclean
// exit of eio_fs fails the test.
//
// Thread-safety: one test thread drives an EioFsMount.
#pragma once

#include <chrono>
#include <string>

#include "tests/support/child.h"

namespace localnfs::testing {

// $LOCALNFS_EIO_FS: the eio_fs binary (tests/meson.build sets it), "" when unset.
std::string EioFsBinary();

// True when `dir` is a mount point (a mountinfo line names it; our temp paths need no
// unescaping).
bool IsMountPoint(const std::string& dir);

class EioFsMount {
 public:
  enum class Started { kReady, kNoFuse, kFailed };

  // `oplog`: passed as --oplog (eio_fs.cc: every change and fsync, timed); "" for none.
  explicit EioFsMount(std::string mountpoint, std::string oplog = "")
      : mnt_(std::move(mountpoint)), oplog_(std::move(oplog)) {}
  ~EioFsMount() { Stop(); }
  EioFsMount(const EioFsMount&) = delete;
  EioFsMount& operator=(const EioFsMount&) = delete;

  // Runs eio_fs and waits for its ready line. kNoFuse: it could not mount (exit 3).
  // *why says what happened otherwise.
  Started Start(std::string* why);
  void Stop();
  // SIGKILL now: the daemon dies, its mount stays, and every call on it fails with
  // ENOTCONN until Stop() detaches it.
  void Kill9();

  // What eio_fs printed so far (stdout and stderr).
  std::string Log() const { return child_.Output(); }
  // Waits up to 5 s for `text` in Log(): a line eio_fs printed before it replied may
  // still be in the pipe when the test sees the reply.
  bool WaitForLog(const std::string& text) const {
    return child_.WaitForOutput(text, std::chrono::seconds(5));
  }

 private:
  std::string mnt_;
  std::string oplog_;
  Child child_;
};

}  // namespace localnfs::testing
