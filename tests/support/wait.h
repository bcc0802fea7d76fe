// tests/support/wait.h — waiting for the event a test step depends on, with a deadline:
// the one polling loop of the tests, and probes for events no log line announces.
//
// A negative check ("X did not happen") waits for the event that would have falsified
// it — a log line (ServerProcess::WaitForStderr), a counter, a reply, a thread's state —
// never for a fixed time. A sleep stays only where the time is what is tested (an idle
// timeout, the pace of an "active" client, an outage), with a comment saying so.
//
// Thread-safety: stateless functions; `done` runs on the calling thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>

namespace localnfs::testing {

// Asks `done` until it returns true (→ true) or `timeout` has passed (→ false; `done`
// is asked once more at the deadline). Between two asks it sleeps `poll`.
bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout,
               std::chrono::milliseconds poll = std::chrono::milliseconds(10));

// The calling thread's id (gettid), for InSleepSyscall.
pid_t ThisThreadId();

// True when thread `tid` of this process is blocked in nanosleep or clock_nanosleep
// (/proc/self/task/TID/syscall) — e.g. a client call in its retry back-off, which shows
// that the call met the dead server and is retrying.
bool InSleepSyscall(pid_t tid);

}  // namespace localnfs::testing
