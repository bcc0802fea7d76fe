// server/policy/creds.cc — see creds.h.
#include "server/policy/creds.h"

#include <errno.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "common/status.h"

namespace localnfs::server {
namespace {

// Written once by InitServerCredentials() before any worker thread starts, then
// only read.
bool g_can_switch = false;
uid_t g_server_uid = 0;  // euid/egid: what a thread's fsuid/fsgid are between requests
gid_t g_server_gid = 0;
std::vector<gid_t> g_server_groups;

int SetThreadGroups(size_t n, const gid_t* groups) {
  return static_cast<int>(syscall(SYS_setgroups, n, groups));
}

}  // namespace

bool InitServerCredentials() {
  g_server_uid = geteuid();
  g_server_gid = getegid();
  g_can_switch = g_server_uid == 0;
  int n = getgroups(0, nullptr);
  g_server_groups.resize(n > 0 ? n : 0);
  if (n > 0) getgroups(n, g_server_groups.data());
  return g_can_switch;
}

bool CanSwitchCredentials() { return g_can_switch; }

Credentials DefaultAnonymousIdentity() {
  Credentials anon;  // nobody
  if (!g_can_switch) {
    anon.uid = g_server_uid;
    anon.gid = g_server_gid;
  }
  return anon;
}

ScopedFsCredentials::ScopedFsCredentials(const Credentials& cred) {
  if (!g_can_switch) return;
  gid_t groups[kMaxAuthSysGroups];
  size_t n = 0;
  for (uint32_t g : cred.groups) {
    if (n == kMaxAuthSysGroups) break;
    groups[n++] = g;
  }
  if (!std::equal(groups, groups + n, g_server_groups.begin(), g_server_groups.end())) {
    if (SetThreadGroups(n, groups) != 0) {
      status_ = ErrnoToStatus(errno, "setgroups");
      return;
    }
    switched_groups_ = true;
  }
  // setfsuid/setfsgid report no errors; the kernel accepts any id for a caller
  // with CAP_SETUID/CAP_SETGID. gid first: after a non-zero fsuid we keep
  // CAP_SETGID anyway (it is not a file-system capability).
  if (cred.gid != g_server_gid) {
    setfsgid(cred.gid);
    switched_gid_ = true;
  }
  if (cred.uid != g_server_uid) {
    setfsuid(cred.uid);
    switched_uid_ = true;
  }
}

ScopedFsCredentials::~ScopedFsCredentials() {
  if (switched_uid_) setfsuid(g_server_uid);
  if (switched_gid_) setfsgid(g_server_gid);
  if (switched_groups_) SetThreadGroups(g_server_groups.size(), g_server_groups.data());
}

absl::Status CheckPermission(const backend::Attrs& a, const Credentials& cred, int want,
                             bool owner_override) {
  if (want == 0) return absl::OkStatus();
  if (!a.has(backend::kAttrAccess))
    return ErrnoToStatus(EACCES, "permission: attributes without type, mode or owner");
  if (cred.uid == 0) {
    if (!(want & kMayExec) || a.is_dir() || (a.mode & 0111)) return absl::OkStatus();
    return ErrnoToStatus(EACCES, "permission");
  }
  if (owner_override && cred.uid == a.uid && !(want & kMayExec)) return absl::OkStatus();
  uint32_t bits;
  if (cred.uid == a.uid)
    bits = (a.mode >> 6) & 7;
  else if (cred.InGroup(a.gid))
    bits = (a.mode >> 3) & 7;
  else
    bits = a.mode & 7;
  if ((bits & static_cast<uint32_t>(want)) == static_cast<uint32_t>(want))
    return absl::OkStatus();
  return ErrnoToStatus(EACCES, "permission");
}

absl::Status CheckPermissionIfUnprivileged(const backend::Attrs& a, const Credentials& cred,
                                           int want) {
  if (g_can_switch) return absl::OkStatus();
  return CheckPermission(a, cred, want, false);
}

}  // namespace localnfs::server
