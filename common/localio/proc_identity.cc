// common/localio/proc_identity.cc — see proc_identity.h.
#include "common/localio/proc_identity.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/unique_fd.h"

namespace localnfs::broker {
namespace {

// /proc/PID/stat: "pid (comm) S ppid ... starttime(22) ...". comm may hold spaces and
// parentheses, so fields are counted from the LAST ')'.
// `path` is /proc/PID/stat or /proc/self/stat.
bool ReadProcStat(const std::string& path, char* state, uint64_t* start_time) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  char buf[1024];
  ssize_t n;
  do {
    n = ::read(fd.get(), buf, sizeof buf - 1);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  buf[n] = '\0';
  char* p = strrchr(buf, ')');
  if (p == nullptr || p[1] != ' ') return false;
  p += 2;  // field 3
  *state = *p;
  for (int field = 3; field < 22; ++field) {
    p = strchr(p, ' ');
    if (p == nullptr) return false;
    ++p;
  }
  char* end = nullptr;
  errno = 0;
  unsigned long long value = strtoull(p, &end, 10);
  if (end == p || errno != 0) return false;
  *start_time = value;
  return true;
}

}  // namespace

uint64_t PidNamespaceOf(const std::string& proc_path) {
  struct stat st;
  if (::stat(proc_path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_ino);
}

ProcessIdentity CurrentProcess() {
  static thread_local ProcessIdentity cached{0, 0, 0};
  pid_t pid = ::getpid();
  if (cached.pid != pid) {
    // /proc/self, not /proc/PID: in a pid namespace whose /proc is still the parent's
    // (unshare --pid without --mount-proc), PID names another process there.
    char state;
    uint64_t start = 0;
    if (!ReadProcStat("/proc/self/stat", &state, &start)) start = 0;
    cached = ProcessIdentity{pid, start, PidNamespaceOf("/proc/self/ns/pid")};
  }
  return cached;
}

bool RecordedProcessAlive(pid_t pid, uint64_t start_time, uint64_t pidns) {
  if (pidns != CurrentProcess().pidns) return true;
  return ProcessAlive(pid, start_time);
}

pid_t InnermostPid(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.compare(0, 6, "NSpid:") != 0) continue;
    std::istringstream in(line.substr(6));
    long value = 0, last = 0;
    while (in >> value) last = value;
    return static_cast<pid_t>(last);
  }
  return 0;
}

uint64_t ProcessStartTime(pid_t pid) {
  char state;
  uint64_t start = 0;
  if (pid <= 0 || !ReadProcStat(absl::StrFormat("/proc/%d/stat", pid), &state, &start))
    return 0;
  return start;
}

bool ProcessAlive(pid_t pid, uint64_t start_time) {
  if (pid <= 0) return false;
  char state;
  uint64_t start;
  if (ReadProcStat(absl::StrFormat("/proc/%d/stat", pid), &state, &start))
    return state != 'Z' && state != 'X' && start == start_time;
  // /proc hides it (hidepid) or is absent: kill(0) can still say whether the pid exists.
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

}  // namespace localnfs::broker
