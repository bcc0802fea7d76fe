// common/mutex_mode.cc — see mutex_mode.h.
#include "common/mutex_mode.h"

#include <stdlib.h>
#include <string.h>

#include "absl/synchronization/mutex.h"

namespace localnfs {

void ConfigureMutexDeadlockDetection() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  constexpr bool kSanitized = true;
#else
  constexpr bool kSanitized = false;
#endif
  const char* env = getenv("LOCALNFS_MUTEX_DEADLOCK_DETECTION");
  if (kSanitized || (env != nullptr && strcmp(env, "1") == 0)) return;
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace localnfs
