// tests/support/proc_status.cc — see proc_status.h.
#include "tests/support/proc_status.h"

#include <dirent.h>

#include <cstdlib>
#include <fstream>
#include <thread>

namespace localnfs::testing {

long StatusKiB(pid_t pid, const std::string& which) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == which) {
      long kib = 0;
      in >> kib;
      return kib;
    }
    in.ignore(1 << 16, '\n');
  }
  return 0;
}

long PeakVirtualKiB(pid_t pid) {
  const long peak = StatusKiB(pid, "VmPeak:");
  return peak > (1L << 30) ? 0 : peak;  // > 1 TiB: a sanitizer's reservations
}

long SettledRssKiB(pid_t pid, std::chrono::milliseconds limit) {
  using Clock = std::chrono::steady_clock;
  long last = RssKiB(pid);
  for (auto deadline = Clock::now() + limit; Clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const long now = RssKiB(pid);
    if (std::abs(now - last) < 2048) return now;
    last = now;
  }
  return last;
}

int FdCount(pid_t pid) {
  DIR* d = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n;
}

}  // namespace localnfs::testing
