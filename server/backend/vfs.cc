// server/backend/vfs.cc — see vfs.h.
#include "server/backend/vfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "export_cache/export.h"
#include "server/backend/rules.h"
#include "server/policy/creds.h"
#include "server/backend/file_cache.h"

namespace localnfs::server::vfs {
namespace {

std::string ProcPath(int fd) { return absl::StrCat("/proc/self/fd/", fd); }

// NUL-terminated copy of a validated name.
std::string CName(std::string_view name) { return std::string(name); }

// The object `fd` found in `exp`: refused (EACCES) when it is not part of the export
// (a mount point below it), else its attributes and identity.
absl::StatusOr<LookupResult> Describe(const exports::Export& exp, UniqueFd fd) {
  ASSIGN_OR_RETURN(AttrsOnMount a, GetAttrOnMount(fd.get()));
  if (!InExportMount(exp, a.st, a.mnt_id)) return ErrnoToStatus(EACCES, "crosses a mount point");
  LookupResult r;
  r.st = a.st;
  ASSIGN_OR_RETURN(r.kh, KernelHandleOfFd(fd.get()));
  r.fd = std::move(fd);
  return r;
}

absl::StatusOr<LookupResult> OpenChild(const Object& dir, const std::string& name) {
  UniqueFd fd(openat(dir.fd.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoToStatus(errno, absl::StrCat("openat ", name));
  return Describe(*dir.exp, std::move(fd));
}

// READDIRPLUS: the attributes and identity of entry `name` of `dirfd`, when it is part
// of the export (not a mount point) and still the object getdents listed, with
// e.fileid as its inode number (as knfsd's compose_entry_fh); else none.
void AddEntryAttrs(const exports::Export& exp, int dirfd, const char* name, DirEntry& e) {
  absl::StatusOr<AttrsOnMount> a = GetAttrOnMount(dirfd, name);
  if (!a.ok() || !InExportMount(exp, a->st, a->mnt_id) ||
      static_cast<uint64_t>(a->st.st_ino) != e.fileid)
    return;
  e.attrs = backend::AttrsFromStat(a->st);
  absl::StatusOr<KernelHandle> kh = KernelHandleAt(dirfd, name);
  if (kh.ok()) e.kh = std::move(*kh);
}

// Directory checks shared by every operation that changes `dir`.
absl::Status CheckDirForChange(const Object& dir, const Credentials& cred) {
  ASSIGN_OR_RETURN(const backend::Attrs a, AttrsOf(dir));
  if (!a.is_dir()) return ErrnoToStatus(ENOTDIR, "not a directory");
  return CheckPermissionIfUnprivileged(a, cred, kMayWrite | kMayExec);
}

absl::Status Truncate(int fd, uint64_t size) {
  if (truncate(ProcPath(fd).c_str(), static_cast<off_t>(size)) != 0)
    return ErrnoToStatus(errno, "truncate");
  return absl::OkStatus();
}

// Mode, owner and times, in that order (the caller holds switched credentials).
absl::Status ApplyModeOwnerTimes(int fd, const backend::Attrs& a, const SetAttrRequest& req,
                                 bool skip_unchanged) {
  if (req.mode && a.type != backend::FileType::kSymlink &&
      !(skip_unchanged && (a.mode & 07777) == (*req.mode & 07777))) {
    if (fchmodat(AT_FDCWD, ProcPath(fd).c_str(), *req.mode & 07777, 0) != 0)
      return ErrnoToStatus(errno, "chmod");
  }
  uid_t uid = req.uid ? *req.uid : static_cast<uid_t>(-1);
  gid_t gid = req.gid ? *req.gid : static_cast<gid_t>(-1);
  if (skip_unchanged) {
    if (uid == a.uid) uid = static_cast<uid_t>(-1);
    if (gid == a.gid) gid = static_cast<gid_t>(-1);
  }
  if (uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) {
    if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH) != 0) return ErrnoToStatus(errno, "chown");
  }
  if (req.atime.how != TimeHow::kDontChange || req.mtime.how != TimeHow::kDontChange) {
    timespec ts[2];
    const SetTime* in[2] = {&req.atime, &req.mtime};
    for (int i = 0; i < 2; ++i) {
      switch (in[i]->how) {
        case TimeHow::kDontChange: ts[i] = {0, UTIME_OMIT}; break;
        case TimeHow::kServerTime: ts[i] = {0, UTIME_NOW}; break;
        case TimeHow::kClientTime: ts[i] = in[i]->time; break;
      }
    }
    if (utimensat(fd, "", ts, AT_EMPTY_PATH) != 0) return ErrnoToStatus(errno, "utimensat");
  }
  return absl::OkStatus();
}

// After creating `r`: applies what the creation itself did not set, and then takes
// its attributes again. With nothing left to apply, the attributes OpenChild took
// after the creation stand: no further system call.
absl::Status ApplyRemainingAttrs(LookupResult& r, const SetAttrRequest& rest,
                                 const Credentials& cred) {
  if (!rest.mode && !rest.uid && !rest.gid && !rest.size &&
      rest.atime.how == TimeHow::kDontChange && rest.mtime.how == TimeHow::kDontChange)
    return absl::OkStatus();
  RETURN_IF_ERROR(ApplyCreateAttrs(r.fd.get(), rest, cred));
  ASSIGN_OR_RETURN(r.st, GetAttr(r.fd.get()));
  return absl::OkStatus();
}

// After a step that follows a creation failed: removes the object the request created at
// `name`, so that its error reply describes the file system as it found it (an error with
// a side effect leaves the client an object it was told was not made). Only while `name`
// still names `made` — another client may have replaced it meanwhile. Returns `failure`.
absl::Status UndoCreate(const Object& dir, const std::string& name, const struct stat& made,
                        absl::Status failure) {
  struct stat now;
  errno = 0;
  if (fstatat(dir.fd.get(), name.c_str(), &now, AT_SYMLINK_NOFOLLOW) == 0 &&
      now.st_dev == made.st_dev && now.st_ino == made.st_ino &&
      unlinkat(dir.fd.get(), name.c_str(), S_ISDIR(now.st_mode) ? AT_REMOVEDIR : 0) == 0)
    return failure;
  const int err = errno;  // of fstatat or unlinkat; 0 when the name is another object's
  // Clients can make this happen at will (replacing the name meanwhile): bounded.
  static LogRateLimit* limit = new LogRateLimit(10, absl::Seconds(1));
  if (uint64_t left_out = 0; limit->Allow(&left_out))
    LOG_WARNING("create %s: %s; the object it made stays (%s; %d earlier not logged)", name,
                failure.ToString(), err != 0 ? strerror(err) : "replaced", left_out);
  return failure;
}

}  // namespace

absl::StatusOr<UniqueFd> OpenBeneath(int root_fd, const std::string& rel, int flags) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC | O_NOFOLLOW);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV;
  int fd = static_cast<int>(syscall(SYS_openat2, root_fd, rel.c_str(), &how, sizeof(how)));
  if (fd < 0) return ErrnoToStatus(errno, absl::StrCat("openat2 ", rel));
  return UniqueFd(fd);
}

absl::StatusOr<struct stat> GetAttr(int fd) {
  struct stat st;
  if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
    return ErrnoToStatus(errno, "fstatat");
  return st;
}

absl::StatusOr<AttrsOnMount> GetAttrOnMount(int dirfd, const char* name) {
  struct statx x;
  const int flags = AT_SYMLINK_NOFOLLOW | (name[0] == '\0' ? AT_EMPTY_PATH : 0);
  if (statx(dirfd, name, flags, STATX_BASIC_STATS | STATX_MNT_ID, &x) != 0)
    return ErrnoToStatus(errno, "statx");
  AttrsOnMount a{};
  struct stat& st = a.st;
  // The encoding of fstatat's st_dev/st_rdev (glibc's makedev, as its own stat).
  st.st_dev = makedev(x.stx_dev_major, x.stx_dev_minor);
  st.st_ino = x.stx_ino;
  st.st_mode = x.stx_mode;
  st.st_nlink = x.stx_nlink;
  st.st_uid = x.stx_uid;
  st.st_gid = x.stx_gid;
  st.st_rdev = makedev(x.stx_rdev_major, x.stx_rdev_minor);
  st.st_size = static_cast<off_t>(x.stx_size);
  st.st_blksize = static_cast<blksize_t>(x.stx_blksize);
  st.st_blocks = static_cast<blkcnt_t>(x.stx_blocks);
  st.st_atim = {x.stx_atime.tv_sec, x.stx_atime.tv_nsec};
  st.st_mtim = {x.stx_mtime.tv_sec, x.stx_mtime.tv_nsec};
  st.st_ctim = {x.stx_ctime.tv_sec, x.stx_ctime.tv_nsec};
  a.mnt_id = (x.stx_mask & STATX_MNT_ID) ? x.stx_mnt_id : 0;
  return a;
}

bool InExportMount(const exports::Export& exp, const struct stat& st, uint64_t mnt_id) {
  return static_cast<uint64_t>(st.st_dev) == exp.root_dev() && mnt_id == exp.root_mnt_id();
}

bool IsExportRoot(const exports::Export& exp, uint64_t dev, uint64_t ino) {
  return dev == exp.root_dev() && ino == exp.root_ino();
}

absl::StatusOr<backend::Attrs> AttrsOf(const Object& obj) {
  if (obj.attrs) return *obj.attrs;
  ASSIGN_OR_RETURN(const struct stat st, GetAttr(obj.fd.get()));
  return backend::AttrsFromStat(st);
}

absl::StatusOr<LookupResult> Lookup(const Object& dir, std::string_view name,
                                    const Credentials& cred) {
  RETURN_IF_ERROR(ValidateName(name));
  ASSIGN_OR_RETURN(const backend::Attrs dst, AttrsOf(dir));
  if (!dst.is_dir()) return ErrnoToStatus(ENOTDIR, "lookup in a non-directory");
  RETURN_IF_ERROR(CheckPermissionIfUnprivileged(dst, cred, kMayExec));
  UniqueFd fd;
  if (name == ".") {
    fd = UniqueFd(fcntl(dir.fd.get(), F_DUPFD_CLOEXEC, 0));
  } else if (name == "..") {
    // Never above the export root: its ".." is itself.
    fd = UniqueFd(IsExportRoot(*dir.exp, dst.fsid, dst.fileid)
                      ? fcntl(dir.exp->root_fd(), F_DUPFD_CLOEXEC, 0)
                      : openat(dir.fd.get(), "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
  } else {
    fd = UniqueFd(openat(dir.fd.get(), CName(name).c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  }
  if (!fd) return ErrnoToStatus(errno, "lookup");
  // A mount point below the export (another file system, or a bind mount of this
  // one) is not entered.
  return Describe(*dir.exp, std::move(fd));
}

absl::Status ApplySetAttr(int path_fd, const backend::Attrs& a, const SetAttrRequest& req,
                          NfsFile* resized, const Credentials& cred) {
  // The size changes as the request's credentials too, so that the kernel clears the
  // set-id bits for a caller without CAP_FSETID (ftruncate's rule) as it would for a
  // local one; ftruncate checks no permission of its own on an fd open for writing.
  ScopedFsCredentials as_user(cred);
  RETURN_IF_ERROR(as_user.status());
  if (resized && ftruncate(resized->fd(), static_cast<off_t>(*req.size)) != 0)
    return ErrnoToStatus(errno, "ftruncate");
  return ApplyModeOwnerTimes(path_fd, a, backend::TouchForWriter(a, req, cred),
                             /*skip_unchanged=*/false);
}

absl::Status ApplyCreateAttrs(int fd, const SetAttrRequest& req, const Credentials& cred) {
  ASSIGN_OR_RETURN(struct stat st, GetAttr(fd));
  SetAttrRequest r = req;
  // Setting the owner works only for root: knfsd's nfsd_create_setattr drops the uid and
  // gid for a non-root fsuid and answers OK, rather than failing after the creation.
  // Unprivileged, objects belong to the server's user (creds.h).
  if (!CanSwitchCredentials() || !cred.is_root()) r.uid.reset(), r.gid.reset();
  if (r.size && S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) != *r.size)
    RETURN_IF_ERROR(Truncate(fd, *r.size));
  return ApplyModeOwnerTimes(fd, backend::AttrsFromStat(st), r, /*skip_unchanged=*/true);
}

absl::StatusOr<std::string> ReadLink(const Object& obj) {
  char buf[PATH_MAX + 1];
  ssize_t n = readlinkat(obj.fd.get(), "", buf, sizeof(buf));
  if (n < 0) return ErrnoToStatus(errno == ENOENT ? EINVAL : errno, "readlink");
  return std::string(buf, static_cast<size_t>(n));
}

absl::StatusOr<UniqueFd> OpenFileOf(int path_fd, FileMode mode) {
  const int flags = (mode == FileMode::kRead ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  UniqueFd fd(open(ProcPath(path_fd).c_str(), flags));
  if (!fd) return ErrnoToStatus(errno, "open");
  return fd;
}

absl::StatusOr<ReadResult> ReadAt(int fd, uint64_t size, uint64_t offset,
                                  absl::Span<char> buf, bool nowait) {
  ReadResult r;
  size_t done = 0;
  while (done < buf.size()) {
    iovec iov{buf.data() + done, buf.size() - done};
    ssize_t n = preadv2(fd, &iov, 1, static_cast<off_t>(offset + done),
                        nowait ? RWF_NOWAIT : 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (nowait && (errno == EAGAIN || errno == EOPNOTSUPP)) {
        r.would_block = true;
        return r;
      }
      return ErrnoToStatus(errno, "pread");
    }
    if (n == 0) {
      r.eof = true;
      break;
    }
    done += static_cast<size_t>(n);
  }
  r.count = static_cast<uint32_t>(done);
  // A full read ends at EOF when it ends at the size in the attributes taken before
  // it (which the reply also carries), instead of asking again; data beyond that
  // size means the file grew meanwhile, and then more may follow.
  if (!r.eof) r.eof = offset + done == size;
  return r;
}

absl::StatusOr<WriteResult> WriteAt(NfsFile& file, const Credentials* writer,
                                    uint64_t offset, absl::Span<const char> data,
                                    Stability stable) {
  // Decided on the attributes from the start of the request: bits set after them are not
  // cleared by this write.
  std::optional<ScopedFsCredentials> as_writer;
  if (writer != nullptr) {
    as_writer.emplace(*writer);
    RETURN_IF_ERROR(as_writer->status());
  }
  const int flags = stable == Stability::kFileSync   ? RWF_SYNC
                    : stable == Stability::kDataSync ? RWF_DSYNC
                                                     : 0;
  // Small writes hold the inode briefly: the kernel's spinning is cheaper than a sleep.
  // Stable writes are left alone: their sync runs after the kernel dropped the inode
  // lock, and concurrent ones may overlap there.
  constexpr size_t kLargeWrite = 64 * 1024;
  std::optional<absl::MutexLock> serialised;
  if (data.size() >= kLargeWrite && flags == 0) serialised.emplace(&file.large_write_mu);
  size_t done = 0;
  while (done < data.size() || data.empty()) {
    iovec iov{const_cast<char*>(data.data() + done), data.size() - done};
    ssize_t n = pwritev2(file.fd(), &iov, 1, static_cast<off_t>(offset + done), flags);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (done > 0) break;  // report the short write
      return ErrnoToStatus(errno, "pwrite");
    }
    done += static_cast<size_t>(n);
    if (data.empty()) break;
  }
  return WriteResult{static_cast<uint32_t>(done), stable};
}

absl::StatusOr<LookupResult> Create(const Object& dir, std::string_view name, CreateHow how,
                                    const SetAttrRequest& attrs, uint64_t verifier,
                                    const Credentials& cred) {
  RETURN_IF_ERROR(backend::CheckNewName(name));
  if (how != CreateHow::kExclusive) RETURN_IF_ERROR(backend::ValidateTimes(attrs));
  RETURN_IF_ERROR(CheckDirForChange(dir, cred));
  const std::string n = CName(name);
  const backend::VerifierTimes v = backend::ExclusiveVerifierTimes(verifier);
  mode_t mode = how == CreateHow::kExclusive ? 0600 : (attrs.mode ? *attrs.mode & 07777 : 0644);
  if (mknodat(dir.fd.get(), n.c_str(), S_IFREG | mode, 0) == 0) {
    ASSIGN_OR_RETURN(LookupResult r, OpenChild(dir, n));
    absl::Status s;
    if (how == CreateHow::kExclusive) {
      timespec ts[2] = {{v.atime_sec, 0}, {v.mtime_sec, 0}};
      if (utimensat(r.fd.get(), "", ts, AT_EMPTY_PATH) != 0) {
        s = ErrnoToStatus(errno, "utimensat (verifier)");
      } else {
        absl::StatusOr<struct stat> st = GetAttr(r.fd.get());
        if (st.ok()) r.st = *st;
        s = st.status();
      }
    } else {
      SetAttrRequest rest = attrs;
      rest.mode.reset();
      s = ApplyRemainingAttrs(r, rest, cred);
    }
    if (!s.ok()) return UndoCreate(dir, n, r.st, std::move(s));
    return r;
  }
  if (errno != EEXIST || how == CreateHow::kGuarded) return ErrnoToStatus(errno, "create");
  ASSIGN_OR_RETURN(LookupResult r, OpenChild(dir, n));
  if (how == CreateHow::kExclusive) {
    // A retransmit of our own create.
    if (backend::IsExclusiveRetransmit(backend::AttrsFromStat(r.st), verifier)) return r;
    return ErrnoToStatus(EEXIST, "exclusive create");
  }
  if (!S_ISREG(r.st.st_mode))
    return ErrnoToStatus(S_ISDIR(r.st.st_mode) ? EISDIR : EEXIST, "create");
  // UNCHECKED on an existing file: only the size applies (as knfsd).
  if (attrs.size) {
    SetAttrRequest size_only;
    size_only.size = attrs.size;
    if (!CanSwitchCredentials())
      RETURN_IF_ERROR(CheckPermission(backend::AttrsFromStat(r.st), cred, kMayWrite, false));
    RETURN_IF_ERROR(ApplyCreateAttrs(r.fd.get(), size_only, cred));
    ASSIGN_OR_RETURN(r.st, GetAttr(r.fd.get()));
  }
  return r;
}

// The end of MKDIR, SYMLINK and MKNOD: the new object `n` in `dir`, with the attributes
// the creation call did not already set (mode was given to it, size means nothing here);
// when those fail, the object is removed again and the error returned (no error reply
// with a side effect).
namespace {
absl::StatusOr<LookupResult> FinishCreate(const Object& dir, const std::string& n,
                                          const SetAttrRequest& attrs,
                                          const Credentials& cred) {
  ASSIGN_OR_RETURN(LookupResult r, OpenChild(dir, n));
  SetAttrRequest rest = attrs;
  rest.mode.reset();
  rest.size.reset();
  if (absl::Status s = ApplyRemainingAttrs(r, rest, cred); !s.ok())
    return UndoCreate(dir, n, r.st, std::move(s));
  return r;
}
}  // namespace

absl::StatusOr<LookupResult> Mkdir(const Object& dir, std::string_view name,
                                   const SetAttrRequest& attrs, const Credentials& cred) {
  RETURN_IF_ERROR(backend::CheckNewName(name));
  RETURN_IF_ERROR(backend::ValidateTimes(attrs));
  RETURN_IF_ERROR(CheckDirForChange(dir, cred));
  const std::string n = CName(name);
  if (mkdirat(dir.fd.get(), n.c_str(), attrs.mode ? *attrs.mode & 07777 : 0755) != 0)
    return ErrnoToStatus(errno, "mkdir");
  return FinishCreate(dir, n, attrs, cred);
}

absl::StatusOr<LookupResult> Symlink(const Object& dir, std::string_view name,
                                     std::string_view target, const SetAttrRequest& attrs,
                                     const Credentials& cred) {
  RETURN_IF_ERROR(backend::CheckNewName(name));
  if (target.size() >= PATH_MAX) return ErrnoToStatus(ENAMETOOLONG, "symlink target");
  if (target.find('\0') != std::string_view::npos)
    return ErrnoToStatus(EINVAL, "symlink target contains NUL");
  RETURN_IF_ERROR(backend::ValidateTimes(attrs));
  RETURN_IF_ERROR(CheckDirForChange(dir, cred));
  const std::string n = CName(name);
  if (symlinkat(std::string(target).c_str(), dir.fd.get(), n.c_str()) != 0)
    return ErrnoToStatus(errno, "symlink");
  // (Symlinks have no mode of their own on Linux: FinishCreate sets none.)
  return FinishCreate(dir, n, attrs, cred);
}

absl::StatusOr<LookupResult> Mknod(const Object& dir, std::string_view name, mode_t type,
                                   dev_t rdev, const SetAttrRequest& attrs,
                                   const Credentials& cred) {
  RETURN_IF_ERROR(backend::CheckNewName(name));
  if (type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR && type != S_IFBLK)
    return ErrnoToStatus(EINVAL, "mknod type");
  const bool device = type == S_IFCHR || type == S_IFBLK;
  if (device && !CanSwitchCredentials())
    return ErrnoToStatus(EPERM, "mknod of a device by an unprivileged server");
  RETURN_IF_ERROR(backend::ValidateTimes(attrs));
  RETURN_IF_ERROR(CheckDirForChange(dir, cred));
  const std::string n = CName(name);
  const mode_t mode = attrs.mode ? *attrs.mode & 07777 : 0644;
  if (mknodat(dir.fd.get(), n.c_str(), type | mode, device ? rdev : 0) != 0)
    return ErrnoToStatus(errno, "mknod");
  return FinishCreate(dir, n, attrs, cred);
}

absl::StatusOr<std::optional<KernelHandle>> Remove(const Object& dir, std::string_view name,
                                                   bool is_dir, const Credentials& cred) {
  RETURN_IF_ERROR(ValidateName(name));
  if (IsDotOrDotDot(name)) return ErrnoToStatus(is_dir ? EINVAL : EACCES, "remove . or ..");
  RETURN_IF_ERROR(CheckDirForChange(dir, cred));
  const std::string n = CName(name);
  struct stat st;
  if (fstatat(dir.fd.get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return ErrnoToStatus(errno, "remove");
  if (!is_dir && S_ISDIR(st.st_mode)) return ErrnoToStatus(EISDIR, "remove a directory");
  if (is_dir && !S_ISDIR(st.st_mode)) return ErrnoToStatus(ENOTDIR, "rmdir a non-directory");
  std::optional<KernelHandle> gone;
  if (is_dir || st.st_nlink <= 1) {
    auto kh = KernelHandleAt(dir.fd.get(), n.c_str());
    if (kh.ok()) gone = std::move(*kh);
  }
  if (unlinkat(dir.fd.get(), n.c_str(), is_dir ? AT_REMOVEDIR : 0) != 0)
    return ErrnoToStatus(errno, is_dir ? "rmdir" : "unlink");
  return gone;
}

absl::StatusOr<std::optional<KernelHandle>> Rename(const Object& from_dir,
                                                   std::string_view from_name,
                                                   const Object& to_dir,
                                                   std::string_view to_name,
                                                   const Credentials& cred) {
  RETURN_IF_ERROR(ValidateName(from_name));
  RETURN_IF_ERROR(ValidateName(to_name));
  if (IsDotOrDotDot(from_name) || IsDotOrDotDot(to_name))
    return ErrnoToStatus(EINVAL, "rename . or ..");
  RETURN_IF_ERROR(CheckDirForChange(from_dir, cred));
  RETURN_IF_ERROR(CheckDirForChange(to_dir, cred));
  const std::string f = CName(from_name), t = CName(to_name);
  std::optional<KernelHandle> replaced;
  struct stat tst;
  if (fstatat(to_dir.fd.get(), t.c_str(), &tst, AT_SYMLINK_NOFOLLOW) == 0 &&
      (S_ISDIR(tst.st_mode) || tst.st_nlink <= 1)) {
    auto kh = KernelHandleAt(to_dir.fd.get(), t.c_str());
    if (kh.ok()) replaced = std::move(*kh);
  }
  if (renameat(from_dir.fd.get(), f.c_str(), to_dir.fd.get(), t.c_str()) != 0)
    return ErrnoToStatus(errno, "rename");
  // Renaming a name onto another link of the same object changes nothing.
  if (replaced) {
    auto now = KernelHandleAt(to_dir.fd.get(), t.c_str());
    if (now.ok() && *now == *replaced) replaced.reset();
  }
  return replaced;
}

absl::Status Link(const Object& obj, const Object& dir, std::string_view name,
                  const Credentials& cred) {
  RETURN_IF_ERROR(backend::CheckNewName(name));
  RETURN_IF_ERROR(CheckDirForChange(dir, cred));
  ASSIGN_OR_RETURN(const backend::Attrs a, AttrsOf(obj));
  RETURN_IF_ERROR(backend::CheckLinkSource(a));
  if (linkat(AT_FDCWD, ProcPath(obj.fd.get()).c_str(), dir.fd.get(), CName(name).c_str(),
             AT_SYMLINK_FOLLOW) != 0)
    return ErrnoToStatus(errno, "link");
  return absl::OkStatus();
}

absl::StatusOr<ReadDirResult> ReadDir(const Object& dir, uint64_t cookie, bool plus,
                                      const Credentials& cred,
                                      absl::FunctionRef<bool(const DirEntry&)> emit) {
  ASSIGN_OR_RETURN(const backend::Attrs dst, AttrsOf(dir));
  if (!dst.is_dir()) return ErrnoToStatus(ENOTDIR, "readdir");
  RETURN_IF_ERROR(CheckPermissionIfUnprivileged(dst, cred, kMayRead));
  const bool at_root = IsExportRoot(*dir.exp, dst.fsid, dst.fileid);
  UniqueFd fd(openat(dir.fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoToStatus(errno, "opendir");
  if (cookie != 0 && lseek(fd.get(), static_cast<off_t>(cookie), SEEK_SET) < 0)
    return ErrnoToStatus(errno == EINVAL ? EBADR : errno, "readdir cookie");
  // The buffer bounds what is read ahead of what fits; the rest is re-read from
  // the next cookie, so each entry is read O(1) times over a whole listing.
  alignas(8) char buf[32 * 1024];
  ReadDirResult result;
  for (;;) {
    ssize_t n = getdents64(fd.get(), buf, sizeof(buf));
    if (n < 0) return ErrnoToStatus(errno, "getdents64");
    if (n == 0) {
      result.eof = true;
      return result;
    }
    for (ssize_t pos = 0; pos < n;) {
      auto* d = reinterpret_cast<dirent64*>(buf + pos);
      pos += d->d_reclen;
      DirEntry e;
      e.name = d->d_name;
      e.fileid = d->d_ino;
      e.cookie = static_cast<uint64_t>(d->d_off);
      if (e.name == ".") {
        if (plus) {  // the directory as this request resolved it
          e.attrs = dst;
          if (!dir.kh.bytes.empty()) e.kh = dir.kh;
        }
      } else if (e.name == ".." && at_root) {
        // Never above the export (LOOKUP ".." of the root is the root): the root's
        // fileid, and — as knfsd for the ".." of an export root — no attributes and
        // no handle.
        e.fileid = dst.fileid;
      } else if (plus) {
        AddEntryAttrs(*dir.exp, fd.get(), d->d_name, e);
      }
      if (!emit(e)) return result;
    }
  }
}

void MetadataCommits::Push(int fd, const backend::Attrs& a, bool created) {
  for (const Entry& e : entries_)
    if (e.fsid == a.fsid && e.fileid == a.fileid) return;
  UniqueFd dup(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  // Without a duplicate (EMFILE) the object is committed with its whole file system.
  entries_.push_back(Entry{std::move(dup), a.fsid, a.fileid, a.type, created});
}

absl::Status MetadataCommits::Run(const exports::Export& exp) {
  bool synced_fs = false;  // one syncfs covers every later object
  for (const Entry& e : entries_) {
    if (synced_fs) break;
    const bool is_dir = e.type == backend::FileType::kDirectory;
    const bool is_regular = e.type == backend::FileType::kRegular;
    const bool openable = e.fd && (is_dir || is_regular);
    if (!openable && e.created) continue;  // its directory's commit follows
    UniqueFd fd;
    if (openable) {
      fd.reset(open(ProcPath(e.fd.get()).c_str(),
                    (is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC));
      // Unprivileged: a file its owner (the server's user) may write but not read.
      if (!fd && errno == EACCES && is_regular)
        fd.reset(open(ProcPath(e.fd.get()).c_str(), O_WRONLY | O_CLOEXEC));
      if (!fd && errno != EACCES) return ErrnoToStatus(errno, "open for commit");
    }
    if (fd) {
      if (fsync(fd.get()) != 0) return ErrnoToStatus(errno, "commit (fsync)");
      continue;
    }
    UniqueFd root(open(ProcPath(exp.root_fd()).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root) {
      sync();
    } else if (syncfs(root.get()) != 0) {
      return ErrnoToStatus(errno, "commit (syncfs)");
    }
    synced_fs = true;
  }
  return absl::OkStatus();
}

absl::StatusOr<FsStat> StatFs(const Object& obj) {
  struct statvfs s;
  if (fstatvfs(obj.fd.get(), &s) != 0) return ErrnoToStatus(errno, "statvfs");
  FsStat f;
  f.tbytes = static_cast<uint64_t>(s.f_blocks) * s.f_frsize;
  f.fbytes = static_cast<uint64_t>(s.f_bfree) * s.f_frsize;
  f.abytes = static_cast<uint64_t>(s.f_bavail) * s.f_frsize;
  f.tfiles = s.f_files;
  f.ffiles = s.f_ffree;
  f.afiles = s.f_favail;
  return f;
}

absl::StatusOr<PathConf> GetPathConf(const Object& obj) {
  struct statvfs s;
  if (fstatvfs(obj.fd.get(), &s) != 0) return ErrnoToStatus(errno, "statvfs");
  PathConf p;
  p.name_max = static_cast<uint32_t>(s.f_namemax);
  long link_max = fpathconf(obj.fd.get(), _PC_LINK_MAX);
  p.linkmax = link_max > 0 ? static_cast<uint32_t>(link_max) : 1;
  return p;
}

}  // namespace localnfs::server::vfs
