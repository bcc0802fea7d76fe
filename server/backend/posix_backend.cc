// server/backend/posix_backend.cc — see posix_backend.h.
#include "server/backend/posix_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "common/status.h"
#include "export_cache/export.h"
#include "server/backend/rules.h"
#include "server/policy/creds.h"

namespace localnfs::server::backend {
namespace {

// The vfs view of an Object: its fd (kept open by the node's reference for the duration
// of the call), its export and the attributes it was resolved with.
vfs::Object View(const Object& o) {
  vfs::Object v;
  v.exp = &o.exp();
  v.fd = vfs::ObjectFd(o.node().fd(), Ref<RefCounted>::Share(&o.node()));
  v.attrs = o.attrs();
  return v;
}

Object MakeObject(const exports::Export& exp, vfs::LookupResult r) {
  return Object(&exp, std::move(r.kh), AttrsFromStat(r.st),
                NfsFile::Make(std::move(r.fd), FileMode::kPath));
}

Attrs AttrsOnMountOf(const vfs::AttrsOnMount& a) {
  Attrs attrs = AttrsFromStat(a.st);
  attrs.mount_id = a.mnt_id;
  attrs.valid |= kAttrMountId;
  return attrs;
}

// Runs `fn` as `cred` (creds.h): the namespace operations the kernel must judge for the
// caller. A failed switch is the operation's error.
template <class Fn>
auto AsCaller(const Credentials& cred, Fn&& fn) -> decltype(fn()) {
  ScopedFsCredentials as(cred);
  if (!as.status().ok()) return as.status();
  return fn();
}

// A write-like change to a file with set-id bits runs as the caller, so that the kernel
// clears them for a caller without CAP_FSETID (creds.h, "Set-id bits").
class AsWriter {
 public:
  AsWriter(const Attrs& attrs, const Credentials& cred) {
    if (HasSetIdBits(attrs)) as_.emplace(cred);
  }
  absl::Status status() const { return as_ ? as_->status() : absl::OkStatus(); }

 private:
  std::optional<ScopedFsCredentials> as_;
};

}  // namespace

absl::Status PosixBackend::CommitMetadata(const exports::Export& exp,
                                          std::initializer_list<Changed> changed) {
  vfs::MetadataCommits commits;
  std::vector<uint64_t> reported;
  for (const Changed& c : changed) {
    if (c.created)
      commits.AddCreated(c.obj.node().fd(), c.obj.attrs());
    else
      commits.Add(c.obj.node().fd(), c.obj.attrs());
    const uint64_t id = c.obj.attrs().fileid;
    bool seen = false;
    for (uint64_t r : reported) seen |= r == id;
    if (!seen) reported.push_back(id);
  }
  RETURN_IF_ERROR(commits.Run(exp));
  for (uint64_t id : reported) NotifyCommit(CommitRecord::Kind::kMetadata, id);
  return absl::OkStatus();
}

void PosixBackend::Remember(const exports::Export& exp, const vfs::LookupResult& made,
                            int dir_fd, std::string_view name) {
  if (resolver_.privileged()) return;
  if (S_ISDIR(made.st.st_mode) || IsDotOrDotDot(name))
    resolver_.RememberFd(exp.id(), made.kh, made.fd.get());
  else
    resolver_.Remember(exp.id(), made.kh, resolver_.ShareFd(dir_fd), name);
}

absl::StatusOr<Object> PosixBackend::Made(const Object& dir, std::string_view name,
                                          vfs::LookupResult made, const Caller& caller) {
  Remember(dir.exp(), made, dir.node().fd(), name);
  Object obj = MakeObject(dir.exp(), std::move(made));
  if (caller.sync) RETURN_IF_ERROR(CommitMetadata(dir.exp(), {{obj, true}, {dir}}));
  return obj;
}

absl::StatusOr<Ref<NfsFile>> PosixBackend::OpenNode(const exports::Export& exp,
                                                    const Handle& handle, bool may_search) {
  ASSIGN_OR_RETURN(UniqueFd fd, resolver_.Open(exp, handle, may_search));
  return NfsFile::Make(std::move(fd), FileMode::kPath);
}

absl::StatusOr<Attrs> PosixBackend::Validate(const exports::Export& exp, NfsFile& node) {
  // The one stat (statx) of the request: whether the object may still be used, and the
  // attributes its checks and its reply use.
  ASSIGN_OR_RETURN(vfs::AttrsOnMount a, vfs::GetAttrOnMount(node.fd()));
  RETURN_IF_ERROR(CheckResolved(exp, node.fd(), a.st, a.mnt_id));
  return AttrsOnMountOf(a);
}

absl::StatusOr<Object> PosixBackend::OpenPath(const exports::Export& exp,
                                              std::string_view rel) {
  const std::string path = rel.empty() ? std::string(".") : std::string(rel);
  ASSIGN_OR_RETURN(UniqueFd fd, vfs::OpenBeneath(exp.root_fd(), path, O_PATH));
  ASSIGN_OR_RETURN(vfs::AttrsOnMount a, vfs::GetAttrOnMount(fd.get()));
  if (!S_ISDIR(a.st.st_mode)) return ErrnoToStatus(ENOTDIR, "mount a non-directory");
  ASSIGN_OR_RETURN(KernelHandle kh, KernelHandleOfFd(fd.get()));
  resolver_.RememberFd(exp.id(), kh, fd.get());
  return Object(&exp, std::move(kh), AttrsOnMountOf(a),
                NfsFile::Make(std::move(fd), FileMode::kPath));
}

absl::StatusOr<Attrs> PosixBackend::GetAttr(const Object& obj) {
  ASSIGN_OR_RETURN(struct stat st, vfs::GetAttr(obj.node().fd()));
  return AttrsFromStat(st);
}

absl::StatusOr<Object> PosixBackend::Lookup(const Object& dir, std::string_view name,
                                            const Credentials& cred) {
  ASSIGN_OR_RETURN(vfs::LookupResult found,
                   AsCaller(cred, [&] { return vfs::Lookup(View(dir), name, cred); }));
  Remember(dir.exp(), found, dir.node().fd(), name);
  return MakeObject(dir.exp(), std::move(found));
}

absl::StatusOr<Object> PosixBackend::Create(const Object& dir, std::string_view name,
                                            CreateHow how, const SetAttrRequest& attrs,
                                            uint64_t verifier, const Caller& caller) {
  ASSIGN_OR_RETURN(vfs::LookupResult made, AsCaller(caller.cred, [&] {
                     return vfs::Create(View(dir), name, how, attrs, verifier, caller.cred);
                   }));
  return Made(dir, name, std::move(made), caller);
}

absl::StatusOr<Object> PosixBackend::Mkdir(const Object& dir, std::string_view name,
                                           const SetAttrRequest& attrs, const Caller& caller) {
  ASSIGN_OR_RETURN(vfs::LookupResult made, AsCaller(caller.cred, [&] {
                     return vfs::Mkdir(View(dir), name, attrs, caller.cred);
                   }));
  return Made(dir, name, std::move(made), caller);
}

absl::StatusOr<Object> PosixBackend::Symlink(const Object& dir, std::string_view name,
                                             std::string_view target,
                                             const SetAttrRequest& attrs,
                                             const Caller& caller) {
  ASSIGN_OR_RETURN(vfs::LookupResult made, AsCaller(caller.cred, [&] {
                     return vfs::Symlink(View(dir), name, target, attrs, caller.cred);
                   }));
  return Made(dir, name, std::move(made), caller);
}

absl::StatusOr<Object> PosixBackend::Mknod(const Object& dir, std::string_view name,
                                           FileType type, uint32_t rdev_major,
                                           uint32_t rdev_minor, const SetAttrRequest& attrs,
                                           const Caller& caller) {
  ASSIGN_OR_RETURN(vfs::LookupResult made, AsCaller(caller.cred, [&] {
                     return vfs::Mknod(View(dir), name, ModeOfFileType(type),
                                       makedev(rdev_major, rdev_minor), attrs, caller.cred);
                   }));
  return Made(dir, name, std::move(made), caller);
}

absl::StatusOr<std::optional<Handle>> PosixBackend::Remove(const Object& dir,
                                                           std::string_view name,
                                                           RemoveKind kind,
                                                           const Caller& caller) {
  ASSIGN_OR_RETURN(
      std::optional<Handle> gone,
      AsCaller(caller.cred, [&]() -> absl::StatusOr<std::optional<Handle>> {
        bool is_dir = kind == RemoveKind::kDirectory;
        if (kind == RemoveKind::kAny && !HasSlashOrNul(name) && !IsDotOrDotDot(name) &&
            !name.empty()) {
          struct stat st;
          if (fstatat(dir.node().fd(), std::string(name).c_str(), &st,
                      AT_SYMLINK_NOFOLLOW) != 0)
            return ErrnoToStatus(errno, "remove");
          is_dir = S_ISDIR(st.st_mode);
        }
        return vfs::Remove(View(dir), name, is_dir, caller.cred);
      }));
  if (gone) resolver_.Forget(dir.exp().id(), *gone);
  if (caller.sync) RETURN_IF_ERROR(CommitMetadata(dir.exp(), {{dir}}));
  return gone;
}

absl::StatusOr<std::optional<Handle>> PosixBackend::Rename(const Object& from_dir,
                                                           std::string_view from_name,
                                                           const Object& to_dir,
                                                           std::string_view to_name,
                                                           const Caller& caller) {
  if (from_dir.exp().id() != to_dir.exp().id())
    return ErrnoToStatus(EXDEV, "rename across exports");
  ASSIGN_OR_RETURN(std::optional<Handle> replaced, AsCaller(caller.cred, [&] {
                     return vfs::Rename(View(from_dir), from_name, View(to_dir), to_name,
                                        caller.cred);
                   }));
  if (replaced) resolver_.Forget(to_dir.exp().id(), *replaced);
  if (caller.sync)  // knfsd's order: the target directory, then the source
    RETURN_IF_ERROR(CommitMetadata(to_dir.exp(), {{to_dir}, {from_dir}}));
  return replaced;
}

absl::Status PosixBackend::Link(const Object& obj, const Object& dir, std::string_view name,
                                const Caller& caller) {
  if (obj.exp().id() != dir.exp().id()) return ErrnoToStatus(EXDEV, "link across exports");
  RETURN_IF_ERROR(AsCaller(caller.cred, [&] {
    return vfs::Link(View(obj), View(dir), name, caller.cred);
  }));
  if (caller.sync)  // knfsd's order: the directory, then the linked inode
    RETURN_IF_ERROR(CommitMetadata(dir.exp(), {{dir}, {obj}}));
  return absl::OkStatus();
}

absl::StatusOr<std::string> PosixBackend::ReadLink(const Object& obj) {
  return vfs::ReadLink(View(obj));
}

absl::StatusOr<ReadDirResult> PosixBackend::ReadDir(
    const Object& dir, uint64_t cookie, bool plus, const Credentials& cred,
    absl::FunctionRef<bool(const DirEntry&)> emit) {
  vfs::Object view = View(dir);
  view.kh = dir.handle();  // the handle of "."
  // Unprivileged: where the children READDIRPLUS hands out handles for live, one fd for
  // the whole page.
  std::shared_ptr<UniqueFd> share;
  if (plus && !resolver_.privileged()) share = resolver_.ShareFd(dir.node().fd());
  const uint32_t export_id = dir.exp().id();
  ASSIGN_OR_RETURN(vfs::ReadDirResult done, AsCaller(cred, [&] {
                     return vfs::ReadDir(view, cookie, plus, cred,
                                         [&](const vfs::DirEntry& e) {
                                           DirEntry out;
                                           out.name = e.name;
                                           out.fileid = e.fileid;
                                           out.cookie = e.cookie;
                                           if (e.attrs) out.attrs = *e.attrs;
                                           if (e.kh) {
                                             out.handle = &*e.kh;
                                             if (share)
                                               resolver_.Remember(export_id, *e.kh, share,
                                                                  e.name);
                                           }
                                           return emit(out);
                                         });
                   }));
  return ReadDirResult{done.eof};
}

absl::StatusOr<FsStat> PosixBackend::StatFs(const Object& obj) {
  return vfs::StatFs(View(obj));
}

absl::StatusOr<PathConf> PosixBackend::GetPathConf(const Object& obj) {
  return vfs::GetPathConf(View(obj));
}

absl::StatusOr<Ref<NfsFile>> PosixBackend::OpenFile(const Object& obj, FileMode mode) {
  ASSIGN_OR_RETURN(UniqueFd fd, vfs::OpenFileOf(obj.node().fd(), mode));
  return NfsFile::Make(std::move(fd), mode);
}

absl::StatusOr<ReadResult> PosixBackend::ReadFile(NfsFile& file, const Attrs& attrs,
                                                  uint64_t offset, absl::Span<char> buf,
                                                  bool nowait) {
  return vfs::ReadAt(file.fd(), attrs.size, offset, buf, nowait);
}

absl::StatusOr<WriteResult> PosixBackend::WriteFile(NfsFile& file, const Object& obj,
                                                    const Credentials& cred, uint64_t offset,
                                                    absl::Span<const char> data,
                                                    Stability stable) {
  ASSIGN_OR_RETURN(WriteResult done,
                   vfs::WriteAt(file, HasSetIdBits(obj.attrs()) ? &cred : nullptr, offset,
                                data, stable));
  if (stable != Stability::kUnstable) NotifyCommit(CommitRecord::Kind::kData, obj.attrs().fileid);
  return done;
}

absl::StatusOr<std::optional<LockConflict>> PosixBackend::LockFile(NfsFile& lock_file,
                                                                   LockOp op, LockType type,
                                                                   LockRange range) {
  const auto request = [&](short l_type) {
    struct flock fl{};
    fl.l_type = l_type;
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(range.offset);
    fl.l_len = static_cast<off_t>(range.length);  // 0: to the end
    fl.l_pid = 0;                                 // F_OFD_* require it
    return fl;
  };
  const short l_type = op == LockOp::kUnlock ? F_UNLCK : type == LockType::kWrite ? F_WRLCK : F_RDLCK;
  // A refused F_OFD_SETLK does not say by what: F_OFD_GETLK does. The conflicting lock
  // may go between the two calls; then the request is tried again (a few times: a
  // client that keeps racing gets the range it asked for as the conflict).
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (op != LockOp::kTest) {
      struct flock fl = request(l_type);
      if (fcntl(lock_file.fd(), F_OFD_SETLK, &fl) == 0) return std::nullopt;
      if (errno != EAGAIN && errno != EACCES) return ErrnoToStatus(errno, "F_OFD_SETLK");
    }
    struct flock fl = request(l_type);
    if (fcntl(lock_file.fd(), F_OFD_GETLK, &fl) != 0) return ErrnoToStatus(errno, "F_OFD_GETLK");
    if (fl.l_type != F_UNLCK) {
      return LockConflict{fl.l_type == F_WRLCK ? LockType::kWrite : LockType::kRead,
                          static_cast<uint64_t>(fl.l_start), static_cast<uint64_t>(fl.l_len)};
    }
    if (op == LockOp::kTest) return std::nullopt;
  }
  return LockConflict{type, range.offset, range.length};
}

absl::Status PosixBackend::SyncFile(NfsFile& file, const Object& obj) {
  if (fsync(file.fd()) != 0) return ErrnoToStatus(errno, "fsync");
  NotifyCommit(CommitRecord::Kind::kData, obj.attrs().fileid);
  return absl::OkStatus();
}

absl::Status PosixBackend::ApplySetAttr(const Object& obj, const SetAttrRequest& req,
                                        NfsFile* resized, const Caller& caller) {
  RETURN_IF_ERROR(vfs::ApplySetAttr(obj.node().fd(), obj.attrs(), req, resized, caller.cred));
  if (caller.sync) RETURN_IF_ERROR(CommitMetadata(obj.exp(), {{obj}}));
  return absl::OkStatus();
}

bool PosixBackend::server_checks() const { return !CanSwitchCredentials(); }

absl::Status PosixBackend::AllocateFile(NfsFile& file, const Object& obj,
                                        const Credentials& cred, uint64_t offset,
                                        uint64_t length, bool punch_hole) {
  AsWriter as(obj.attrs(), cred);
  RETURN_IF_ERROR(as.status());
  const int mode = punch_hole ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : 0;
  if (fallocate(file.fd(), mode, static_cast<off_t>(offset), static_cast<off_t>(length)) != 0)
    return ErrnoToStatus(errno, punch_hole ? "fallocate (punch hole)" : "fallocate");
  return absl::OkStatus();
}

absl::StatusOr<SeekResult> PosixBackend::SeekFile(NfsFile& file, const Object&,
                                                  uint64_t offset, SeekWhat what) {
  struct stat st;
  if (fstat(file.fd(), &st) != 0) return ErrnoToStatus(errno, "fstat");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  // lseek moves the shared file's offset, which no reader or writer uses (pread/pwrite).
  const off_t at = lseek(file.fd(), static_cast<off_t>(offset),
                         what == SeekWhat::kData ? SEEK_DATA : SEEK_HOLE);
  if (at < 0) {
    if (errno == ENXIO) return SeekResult{true, size};
    return ErrnoToStatus(errno, "lseek");
  }
  const uint64_t found = static_cast<uint64_t>(at);
  return SeekResult{what == SeekWhat::kHole && found >= size, found};
}

absl::StatusOr<uint64_t> PosixBackend::CopyFile(NfsFile& src, NfsFile& dst,
                                                const Object& dst_obj,
                                                const Credentials& cred, uint64_t src_offset,
                                                uint64_t dst_offset, uint64_t count,
                                                bool clone) {
  AsWriter as(dst_obj.attrs(), cred);
  RETURN_IF_ERROR(as.status());
  if (clone) {
    file_clone_range range{};
    range.src_fd = src.fd();
    range.src_offset = src_offset;
    range.src_length = count;
    range.dest_offset = dst_offset;
    if (ioctl(dst.fd(), FICLONERANGE, &range) != 0) {
      // EXDEV and ENOTTY, as EOPNOTSUPP: the file system cannot share these blocks.
      const int err = errno == EXDEV || errno == ENOTTY ? EOPNOTSUPP : errno;
      return ErrnoToStatus(err, "FICLONERANGE");
    }
    return count;
  }
  if (count == 0) {
    struct stat st;
    if (fstat(src.fd(), &st) != 0) return ErrnoToStatus(errno, "fstat");
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    count = size > src_offset ? size - src_offset : 0;
  }
  loff_t in = static_cast<loff_t>(src_offset), out = static_cast<loff_t>(dst_offset);
  uint64_t done = 0;
  while (done < count) {
    const ssize_t n = copy_file_range(src.fd(), &in, dst.fd(), &out, count - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (done > 0) break;  // report the short copy
      return ErrnoToStatus(errno, "copy_file_range");
    }
    if (n == 0) break;  // the end of src
    done += static_cast<uint64_t>(n);
  }
  return done;
}

}  // namespace localnfs::server::backend
