// common/credentials.h — the identity a request acts as.
//
// Owns: the value type shared by rpc/ (decoded AUTH_SYS), export_cache/ (squashing)
// and server/ (switching the worker thread's fsuid/fsgid/groups).
// Thread-safety: a plain value.
#pragma once

#include <stdint.h>

#include "absl/container/inlined_vector.h"

namespace localnfs {

// AUTH_SYS allows at most 16 supplementary groups (RFC 5531 appendix A).
inline constexpr int kMaxAuthSysGroups = 16;
// The conventional "nobody" ids used for AUTH_NONE and squashing by default.
inline constexpr uint32_t kNobodyUid = 65534;
inline constexpr uint32_t kNobodyGid = 65534;

struct Credentials {
  uint32_t uid = kNobodyUid;
  uint32_t gid = kNobodyGid;
  absl::InlinedVector<uint32_t, kMaxAuthSysGroups> groups;

  bool is_root() const { return uid == 0; }
  bool InGroup(uint32_t g) const {
    if (g == gid) return true;
    for (uint32_t x : groups)
      if (x == g) return true;
    return false;
  }
  friend bool operator==(const Credentials&, const Credentials&) = default;
};

}  // namespace localnfs
