// server/policy/creds.h — acting as the request's (squashed) credentials.
//
// Owns: the per-thread switch of fsuid/fsgid and supplementary groups, and the one
// mode-bit permission check of the server (used before READ/WRITE/COMMIT on cached
// fds, for ACCESS, and for namespace operations when the server is unprivileged).
//
// As root: ScopedFsCredentials sets the calling thread's fsuid/fsgid (setfsuid /
// setfsgid are per thread) and supplementary groups (the raw setgroups syscall — the
// glibc wrapper changes every thread of the process) to the request's credentials
// and restores the server's own on destruction. Only what differs from the
// server's own identity is switched (and restored): a request as root on a
// no_root_squash export makes no credential syscall at all, any other one at most
// three each way — each setfsuid/setfsgid/setgroups builds and commits a new cred
// in the kernel, a measurable part of a small request. The kernel then checks every
// namespace operation (lookup, create, unlink, rename, chmod, chown, utimes,
// truncate) exactly as for a local process of that user; a non-zero fsuid also drops
// the file-system capabilities (CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, …) for the
// thread, CAP_DAC_READ_SEARCH among them, which open_by_handle_at needs: every handle
// of a request is resolved before switching, with the server's own credentials. The
// switch is owned by the POSIX backend (backend/posix_backend.h): each operation takes
// objects the request resolved before and switches around its own system calls (SETATTR
// for its size, mode, owner and times steps, after opening the file to truncate as the
// server). Callers must not be switched already: the switch does not nest. NFSv3 goes
// through the Backend; the LOCALIO local socket and MOUNT switch nothing.
//
// Unprivileged (server not running as root): no switching is possible; everything
// acts as the server's user. What is enforced then:
//  * enforced by the kernel for the server's user: everything a local process of
//    that user could not do (chown to another uid → NFS3ERR_PERM, writes to files
//    the server user cannot write, chmod of files it does not own);
//  * enforced by the server, against the request's credentials, with mode bits only:
//    READ/WRITE/COMMIT and truncation (CheckPermission), search (x) permission of
//    the directory for LOOKUP, write+search permission of the parent directory for
//    CREATE/MKDIR/SYMLINK/MKNOD/LINK/REMOVE/RMDIR/RENAME, ownership for chmod and
//    utimes to a client time;
//  * not enforced: POSIX ACLs, the sticky bit of a directory, the client's
//    ownership of created objects (they belong to the server's user; the request's
//    uid/gid are not applied) — which is why a squashed caller defaults to the
//    server's user there (DefaultAnonymousIdentity below).
//
// Set-id bits. The kernel clears S_ISUID, and S_ISGID when group-exec is set or the
// writer is outside the file's group, of a regular file that is written or truncated
// by a thread without CAP_FSETID (file_remove_privs, setattr_should_drop_suidgid), and
// on every chown of a non-directory S_ISUID whoever the caller (chown_common). It judges
// the thread that writes, not the one that opened the file. What holds:
//  * root server: WRITE and truncation go through fds the server opened as itself, so
//    for a file whose attributes at the start of the request show set-id bits they run
//    switched to the request's credentials (vfs.cc); a non-zero fsuid drops CAP_FSETID
//    as knfsd's nfsd_setuser does. Cleared for every non-root caller (the owner too) and
//    for a squashed root; kept for root on no_root_squash; S_ISGID judged with the
//    request's gid and groups. Files without those bits are written unswitched (the
//    cheap path). chown runs as the caller anyway (SETATTR).
//  * unprivileged server: its user never has CAP_FSETID, so every write and truncation
//    clears the bits by the kernel's rule for the server's user — for every caller, root
//    on no_root_squash included (where knfsd would keep them).
//  * LOCALIO: the client process writes on its own fd, and the kernel judges it. A
//    non-root client gets the rule for itself; a root client acting for a user (the
//    FUSE daemon) would keep the bits, so OPEN_LOCAL_FH refuses a write open of a file
//    with set-id bits for non-root credentials (backend/rules.h CheckLocalIo, which
//    Backend::OpenForLocalIo applies) and that client writes over RPC. Bits set after
//    the open are not seen by writes through that fd.
//
// Thread-safety: ScopedFsCredentials affects only the calling thread; nest never.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <vector>

#include "absl/status/status.h"
#include "common/credentials.h"
#include "server/backend/types.h"  // Attrs: a leaf header, no cycle with backend/

namespace localnfs::server {

// Records the server's identity (once, at startup, before any worker runs).
// Returns whether the server can switch credentials (it runs with euid 0).
bool InitServerCredentials();
bool CanSwitchCredentials();

// The identity a squashed caller acts as when its export rule names no anonuid /
// anongid. knfsd's is nobody (65534), and so is a root server's. A server that cannot
// switch credentials makes every file as its own user whatever the caller (above), so
// as nobody a squashed client could not write, truncate or chmod the file it had just
// created (EACCES on the WRITE after the CREATE; knfsd's file would belong to nobody).
// There the squashed caller is the server's own user: it gains nothing that user does
// not already do for every request, and a container's root writes its files as the
// user who started the server, as rootless Podman maps it. After InitServerCredentials().
Credentials DefaultAnonymousIdentity();

class ScopedFsCredentials {
 public:
  // Switches when the server can; otherwise does nothing.
  explicit ScopedFsCredentials(const Credentials& cred);
  ~ScopedFsCredentials();
  ScopedFsCredentials(const ScopedFsCredentials&) = delete;
  ScopedFsCredentials& operator=(const ScopedFsCredentials&) = delete;
  // OK, or the error of the switch (the request must then fail with it).
  const absl::Status& status() const { return status_; }

 private:
  // What the constructor changed, and the destructor restores.
  bool switched_groups_ = false;
  bool switched_gid_ = false;
  bool switched_uid_ = false;
  absl::Status status_;
};

// Permission bits asked for.
inline constexpr int kMayRead = 4;
inline constexpr int kMayWrite = 2;
inline constexpr int kMayExec = 1;

// Mode-bit check of `want` (kMay* bits) on an object with attributes `a` for `cred`,
// like the kernel's generic_permission without ACLs. Root may do everything but
// execute a file with no x bit. With `owner_override` the owner may read and write
// their own file whatever its mode (knfsd's NFSD_MAY_OWNER_OVERRIDE: a client that
// created a file 0444 may still write the data it is writing).
// Returns OK or EACCES — also when `a` lacks a field of kAttrAccess (fails closed).
absl::Status CheckPermission(const backend::Attrs& a, const Credentials& cred, int want,
                             bool owner_override);
// The same check only when the server cannot switch credentials (otherwise the
// kernel checks it for the switched thread): used before namespace operations.
absl::Status CheckPermissionIfUnprivileged(const backend::Attrs& a, const Credentials& cred,
                                           int want);

}  // namespace localnfs::server
