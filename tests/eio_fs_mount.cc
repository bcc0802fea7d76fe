// tests/eio_fs_mount.cc — see eio_fs_mount.h.
#include "tests/eio_fs_mount.h"

#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/sanitizer.h"
#include "tests/support/wait.h"

namespace localnfs::testing {

std::string EioFsBinary() {
  const char* p = getenv("LOCALNFS_EIO_FS");
  return p != nullptr ? p : "";
}

bool IsMountPoint(const std::string& dir) {
  char real[PATH_MAX];
  const std::string path = realpath(dir.c_str(), real) != nullptr ? real : dir;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mnt;
    if (fields >> id >> parent >> dev >> root >> mnt && mnt == path) return true;
  }
  return false;
}

EioFsMount::Started EioFsMount::Start(std::string* why) {
  std::vector<std::string> argv = {EioFsBinary(), mnt_};
  if (!oplog_.empty()) argv.insert(argv.end(), {"--oplog", oplog_});
  if (!child_.Start(argv)) {
    *why = std::string("fork: ") + strerror(errno);
    return Started::kFailed;
  }
  int st = 0;
  bool exited = false;
  const bool ready = WaitUntil(
      [&] {
        exited = child_.Wait(std::chrono::milliseconds(0), &st);
        return exited || (Log().find("eio_fs: ready") != std::string::npos && IsMountPoint(mnt_));
      },
      std::chrono::seconds(20));
  if (exited) {
    *why = "eio_fs exited (status " + std::to_string(st) + "): " + Log();
    return WIFEXITED(st) && WEXITSTATUS(st) == 3 ? Started::kNoFuse : Started::kFailed;
  }
  if (ready) return Started::kReady;
  *why = "eio_fs not ready after 20 s: " + Log();
  return Started::kFailed;
}

void EioFsMount::Stop() {
  if (child_.running()) {
    child_.Kill(SIGTERM);
    int st = 0;
    if (!child_.Wait(std::chrono::seconds(10), &st)) {
      ADD_FAILURE() << "eio_fs ignored SIGTERM for 10 s; killed";
      child_.Kill(SIGKILL);
      child_.Wait(std::chrono::seconds(5), &st);
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      ADD_FAILURE() << "eio_fs exited with status " << st << ": " << Log();
    }
    if (HasSanitizerReport(Log()))
      ADD_FAILURE() << "sanitizer report from eio_fs: " << Log();
  }
  // eio_fs unmounts on SIGTERM; after a SIGKILL (or a daemon that never got to it)
  // the dead mount is detached here.
  if (IsMountPoint(mnt_) && umount2(mnt_.c_str(), MNT_DETACH) != 0)
    ADD_FAILURE() << "umount " << mnt_ << ": " << strerror(errno);
}

void EioFsMount::Kill9() {
  if (!child_.running()) return;
  child_.Kill(SIGKILL);
  int st = 0;
  child_.Wait(std::chrono::seconds(5), &st);
}

}  // namespace localnfs::testing
