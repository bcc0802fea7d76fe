// tests/support/proc_status.h — what /proc says of a process, for the tests that bound
// a server's memory and descriptors (limits_test, nfs4_limits_test): its VmRSS, VmHWM
// and VmPeak, its RSS once it settled, its open file descriptors.
//
// Owns: nothing. Thread-safety: stateless (reads /proc on each call).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

namespace localnfs::testing {

// A "Vm...:" line of /proc/PID/status ("VmRSS:") in KiB; 0 when unreadable.
long StatusKiB(pid_t pid, const std::string& which);
// VmRSS in KiB.
inline long RssKiB(pid_t pid) { return StatusKiB(pid, "VmRSS:"); }
// VmHWM: the peak of VmRSS over the process's life.
inline long PeakRssKiB(pid_t pid) { return StatusKiB(pid, "VmHWM:"); }
// VmPeak: shows an allocation the size of a declared length even if it is never
// touched (RSS would not). 0 under a sanitizer, whose shadow reservations (> 1 TiB)
// make it meaningless.
long PeakVirtualKiB(pid_t pid);
// RSS once it stopped changing (by less than 2 MiB over 500 ms; at most `limit`). The
// 500 ms are the window the change is measured over, not a wait for an event.
long SettledRssKiB(pid_t pid, std::chrono::milliseconds limit);
// Open file descriptors (entries of /proc/PID/fd); -1 when unreadable.
int FdCount(pid_t pid);

}  // namespace localnfs::testing
