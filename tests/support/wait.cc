// tests/support/wait.cc — see wait.h.
#include "tests/support/wait.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

namespace localnfs::testing {

bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout,
               std::chrono::milliseconds poll) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return done();
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(poll, deadline - now));
  }
  return true;
}

pid_t ThisThreadId() { return static_cast<pid_t>(syscall(SYS_gettid)); }

bool InSleepSyscall(pid_t tid) {
  // "NR arg1 ... sp pc" while blocked in a system call, "running" or "-1 sp pc" else.
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/syscall");
  long nr = -1;
  if (!(in >> nr)) return false;
  return nr == SYS_nanosleep || nr == SYS_clock_nanosleep;
}

}  // namespace localnfs::testing
