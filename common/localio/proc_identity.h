// common/localio/proc_identity.h — which process a broker pid names, and whether it
// still runs: the identity the broker records for its server and for each client
// (broker_format.h), read from /proc.
//
// A pid alone is not an identity: pids are reused, and a process in another pid
// namespace (a container sharing the runtime dir) numbers itself differently. So every
// owner is recorded as (pid as its own namespace numbers it, start time in clock ticks
// since boot — the same in every namespace —, the inode of its /proc/self/ns/pid), and
// liveness is judged only within the same namespace.
//
// Owns: nothing (CurrentProcess() caches this process's identity per thread, recomputed
// after fork()). Thread-safety: every function may be called from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace localnfs::broker {

// Field 22 of /proc/PID/stat (start time in clock ticks since boot); 0 if unreadable.
uint64_t ProcessStartTime(pid_t pid);
// True if `pid` runs, is not a zombie, and started at `start_time` (so the pid was not
// reused). When /proc hides the process (hidepid) but kill(pid, 0) says it exists, the
// start time cannot be checked and the process counts as alive.
bool ProcessAlive(pid_t pid, uint64_t start_time);

// This process as the broker records it.
struct ProcessIdentity {
  pid_t pid;            // getpid(): as our own pid namespace numbers us
  uint64_t start_time;  // ProcessStartTime, read through /proc/self
  uint64_t pidns;       // inode of /proc/self/ns/pid
};
// Recomputed after fork() (the cache is keyed by getpid()).
ProcessIdentity CurrentProcess();

// Liveness of a process recorded from pid namespace `pidns`: ProcessAlive() in ours;
// another namespace's pids mean nothing here, so such a process counts as alive (a
// leaked slot is better than revoking a live client).
bool RecordedProcessAlive(pid_t pid, uint64_t start_time, uint64_t pidns);

// The inode of the pid namespace at `proc_path` (/proc/self/ns/pid, /proc/PID/ns/pid);
// 0 if unreadable.
uint64_t PidNamespaceOf(const std::string& proc_path);
// The last field of "NSpid:" in /proc/PID/status: the pid in the process's own (the
// innermost) pid namespace; 0 if unreadable.
pid_t InnermostPid(pid_t pid);

}  // namespace localnfs::broker
