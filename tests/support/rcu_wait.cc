// tests/support/rcu_wait.cc — see rcu_wait.h.
#include "tests/support/rcu_wait.h"

#include <urcu.h>  // the urcu-memb flavour, as common/rcu.h
#include <urcu/static/urcu-common.h>  // struct urcu_gp

#include "tests/support/wait.h"

// liburcu's grace-period state of the memb flavour (exported by liburcu.so for its
// inline read-side fast path; declared in urcu/static/urcu-memb.h).
extern "C" struct urcu_gp urcu_memb_gp;

namespace localnfs::testing {

bool WaitForGracePeriodBlockedOnReader(std::chrono::milliseconds timeout) {
  // -1: wait_for_readers() gave up spinning and sleeps on this futex; the reader's
  // rcu_read_unlock() sets it back to 0 and wakes it.
  return WaitUntil([] { return __atomic_load_n(&urcu_memb_gp.futex, __ATOMIC_ACQUIRE) == -1; },
                   timeout, std::chrono::milliseconds(1));
}

}  // namespace localnfs::testing
