// server/backend/memory_backend.cc — see memory_backend.h. The comments name the kernel
// function whose rule each step models.
#include "server/backend/memory_backend.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <string>

#include "common/status.h"
#include "export_cache/export.h"
#include "server/backend/range_locks.h"
#include "server/backend/rules.h"
#include "server/policy/creds.h"

namespace localnfs::server::backend {

struct MemoryBackend::Inode final : RefCounted {
  uint32_t export_id = 0;
  uint32_t generation = 1;
  Attrs attrs;         // valid: kAttrBasic; `change` is derived when read (Snapshot)
  std::string data;    // a regular file's bytes, a symlink's target
  uint64_t parent = 0; // a directory's parent (the root's is itself)
  // A directory's entries by cookie, and their names.
  std::map<uint64_t, std::pair<std::string, Ref<Inode>>> entries;
  absl::flat_hash_map<std::string, uint64_t> names;
  uint64_t next_cookie = 3;  // 1 and 2 are "." and ".."
  // Byte-range locks by lock file (MemoryFile), with a mutex of their own: a lock file
  // releases its locks when it is destroyed, wherever its last reference goes.
  absl::Mutex locks_mu;
  RangeLocks locks ABSL_GUARDED_BY(locks_mu);

  uint64_t ino() const { return attrs.fileid; }
  bool is_dir() const { return attrs.is_dir(); }
  // The attributes as a backend gives them: the change attribute from the ctime.
  Attrs Snapshot() const {
    Attrs a = attrs;
    a.change = ChangeFromCtime(a.ctime);
    return a;
  }
  Inode* Child(std::string_view name) const {
    auto it = names.find(absl::string_view(name.data(), name.size()));
    return it == names.end() ? nullptr : entries.at(it->second).second.get();
  }
};

namespace {

using Inode = MemoryBackend::Inode;

// The handle: inode number and generation, after a type of our own.
constexpr int32_t kHandleType = 0x6d656d31;  // "mem1"

Handle HandleOf(const Inode& n) {
  Handle h;
  h.type = kHandleType;
  h.bytes.resize(12);
  const uint64_t ino = n.ino();
  memcpy(h.bytes.data(), &ino, 8);
  memcpy(h.bytes.data() + 8, &n.generation, 4);
  return h;
}

// A node (kPath) or an open file: a reference on the inode, no fd.
class MemoryFile final : public NfsFile {
 public:
  MemoryFile(Ref<Inode> inode, FileMode mode)
      : NfsFile(UniqueFd(), mode), inode_(std::move(inode)) {}
  // As closing an open file description: its locks go with it.
  ~MemoryFile() override {
    if (mode() == FileMode::kPath) return;
    absl::MutexLock l(&inode_->locks_mu);
    inode_->locks.ReleaseAll(this);
  }
  Inode& inode() const { return *inode_; }

 private:
  Ref<Inode> inode_;
};

Inode& InodeOf(NfsFile& f) { return static_cast<MemoryFile&>(f).inode(); }
Inode& InodeOf(const Object& o) { return InodeOf(o.node()); }

Object ObjectOf(const exports::Export& exp, Inode& n) {
  return Object(&exp, HandleOf(n), n.Snapshot(),
                Ref<NfsFile>::Adopt(new MemoryFile(Ref<Inode>::Share(&n), FileMode::kPath)));
}

// Who the kernel judges (see the header): credentials, and whether they carry the
// file-system capabilities (CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_CHOWN, CAP_FSETID).
struct Actor {
  Credentials cred;
  bool caps = false;
};

absl::Status KernelMay(const Attrs& at, const Actor& a, int want) {
  return CheckPermission(at, a.cred, want, /*owner_override=*/false);
}

bool InGroupOrCapable(const Actor& a, uint32_t gid) { return a.caps || a.cred.InGroup(gid); }
bool OwnerOrCapable(const Actor& a, const Attrs& at) {
  return a.caps || a.cred.uid == at.uid;
}

// setattr_should_drop_suidgid, for a write or a truncation by `a`.
void DropPrivs(Inode& n, const Actor& a) {
  if (!n.attrs.is_regular() || a.caps) return;
  if (n.attrs.mode & S_ISUID) n.attrs.mode &= ~S_ISUID;
  if ((n.attrs.mode & S_ISGID) &&
      ((n.attrs.mode & S_IXGRP) || !a.cred.InGroup(n.attrs.gid)))
    n.attrs.mode &= ~S_ISGID;
}

void SetSize(Inode& n, uint64_t size) {
  n.data.resize(size, '\0');
  n.attrs.size = size;
  n.attrs.used = (size + 4095) / 4096 * 4096;  // whole 4 KiB blocks
}

void NotifyAll(const std::vector<uint64_t>& ids,
               const std::function<void(uint64_t)>& notify) {
  std::vector<uint64_t> seen;
  for (uint64_t id : ids) {
    if (std::find(seen.begin(), seen.end(), id) != seen.end()) continue;
    seen.push_back(id);
    notify(id);
  }
}

}  // namespace

class MemoryBackend::Impl {
 public:
  explicit Impl(const MemoryBackendOptions& o) : options(o) {}

  const MemoryBackendOptions& options;
  absl::Mutex mu;
  // Every linked inode (nlink > 0), roots included: what a handle can resolve to.
  absl::flat_hash_map<uint64_t, Inode*> inodes ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<uint32_t, Ref<Inode>> roots ABSL_GUARDED_BY(mu);
  uint64_t next_ino ABSL_GUARDED_BY(mu) = 2;
  timespec last_time ABSL_GUARDED_BY(mu){};

  // The clock, strictly increasing (see the header).
  timespec Now() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    timespec t{};
    if (options.clock)
      t = options.clock();
    else
      clock_gettime(CLOCK_REALTIME, &t);
    if (t.tv_sec < last_time.tv_sec ||
        (t.tv_sec == last_time.tv_sec && t.tv_nsec <= last_time.tv_nsec)) {
      t = last_time;
      if (++t.tv_nsec == 1000000000L) t.tv_sec++, t.tv_nsec = 0;
    }
    last_time = t;
    return t;
  }
  void Changed(Inode& n) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { n.attrs.ctime = Now(); }
  void Modified(Inode& n) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    n.attrs.ctime = n.attrs.mtime = Now();
  }

  Actor Server() const {
    Actor a;
    a.cred.uid = options.privileged ? 0 : options.server_uid;
    a.cred.gid = options.privileged ? 0 : options.server_gid;
    for (uint32_t g : options.server_groups) a.cred.groups.push_back(g);
    a.caps = options.privileged || options.server_uid == 0;
    return a;
  }
  // The identity of a thread switched to `cred` (only a root server switches).
  Actor Kernel(const Credentials& cred) const {
    if (!options.privileged) return Server();
    return Actor{cred, cred.uid == 0};
  }
  // The unprivileged server's own mode-bit checks (creds.h CheckPermissionIfUnprivileged).
  absl::Status ServerMay(const Attrs& at, const Credentials& cred, int want) const {
    if (options.privileged) return absl::OkStatus();
    return CheckPermission(at, cred, want, false);
  }
  // vfs.cc's CheckDirForChange, on the attributes the request resolved `dir` with.
  absl::Status CheckDirForChange(const Object& dir, const Credentials& cred) const {
    if (!dir.attrs().is_dir()) return ErrnoToStatus(ENOTDIR, "not a directory");
    return ServerMay(dir.attrs(), cred, kMayWrite | kMayExec);
  }

  Inode* Find(uint64_t ino) ABSL_SHARED_LOCKS_REQUIRED(mu) {
    auto it = inodes.find(ino);
    return it == inodes.end() ? nullptr : it->second;
  }
  Inode& ParentOf(Inode& d) ABSL_SHARED_LOCKS_REQUIRED(mu) {
    Inode* p = Find(d.parent);
    return p != nullptr ? *p : d;
  }

  Inode& RootOf(const exports::Export& exp) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = roots.find(exp.id());
    if (it != roots.end()) return *it->second;
    auto root = Ref<Inode>::Adopt(new Inode);
    root->export_id = exp.id();
    Attrs& at = root->attrs;
    at.valid = kAttrBasic;
    at.fileid = next_ino++;
    at.fsid = options.fsid;
    at.type = FileType::kDirectory;
    at.mode = options.root_mode & 07777;
    at.nlink = 2;
    at.uid = options.root_uid;
    at.gid = options.root_gid;
    at.size = at.used = 4096;
    at.atime = at.mtime = at.ctime = Now();
    root->parent = root->ino();
    inodes[root->ino()] = root.get();
    Inode& r = *root;
    roots.emplace(exp.id(), std::move(root));
    return r;
  }

  // A new inode made in `dir` by `a` (inode_init_owner, mode_strip_sgid).
  Ref<Inode> NewInode(const Inode& dir, mode_t mode, const Actor& a)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto n = Ref<Inode>::Adopt(new Inode);
    n->export_id = dir.export_id;
    Attrs& at = n->attrs;
    at.valid = kAttrBasic;
    at.fileid = next_ino++;
    at.fsid = options.fsid;
    at.uid = a.cred.uid;
    at.gid = a.cred.gid;
    if (dir.attrs.mode & S_ISGID) {
      at.gid = dir.attrs.gid;
      if (S_ISDIR(mode)) mode |= S_ISGID;
      else if ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) &&
               !InGroupOrCapable(a, dir.attrs.gid))
        mode &= ~S_ISGID;
    }
    at.type = FileTypeOfMode(mode);
    at.mode = mode & 07777;
    at.nlink = S_ISDIR(mode) ? 2 : 1;
    if (S_ISDIR(mode)) at.size = at.used = 4096;
    at.atime = at.mtime = at.ctime = Now();
    inodes[n->ino()] = n.get();
    return n;
  }

  void AddEntry(Inode& dir, std::string_view name, Ref<Inode> child)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const uint64_t cookie = dir.next_cookie++;
    if (child->is_dir()) {
      dir.attrs.nlink++;
      child->parent = dir.ino();
    }
    dir.names.emplace(std::string(name), cookie);
    dir.entries.emplace(cookie, std::make_pair(std::string(name), std::move(child)));
    Modified(dir);
  }

  // Unlinks `name` (which exists) from `dir`; returns the child, which stays alive while
  // referenced (an open file of a removed name).
  Ref<Inode> RemoveEntry(Inode& dir, std::string_view name, bool count_link = true)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = dir.names.find(absl::string_view(name.data(), name.size()));
    auto e = dir.entries.find(it->second);
    Ref<Inode> child = std::move(e->second.second);
    dir.entries.erase(e);
    dir.names.erase(it);
    if (child->is_dir()) dir.attrs.nlink--;
    if (count_link) {
      if (child->is_dir())
        child->attrs.nlink = 0;
      else
        child->attrs.nlink--;
      if (child->attrs.nlink == 0) inodes.erase(child->ino());
      Changed(*child);
    }
    Modified(dir);
    return child;
  }

  // chmod_common → setattr_prepare / setattr_copy.
  absl::Status Chmod(Inode& n, mode_t mode, const Actor& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (!OwnerOrCapable(a, n.attrs)) return ErrnoToStatus(EPERM, "chmod: not the owner");
    mode &= 07777;
    if (!InGroupOrCapable(a, n.attrs.gid)) mode &= ~S_ISGID;
    n.attrs.mode = mode;
    Changed(n);
    return absl::OkStatus();
  }

  // chown_common: chown_ok/chgrp_ok, ATTR_KILL_SUID and setattr_should_drop_sgid for a
  // non-directory, setattr_copy's S_ISGID rule for the new group.
  absl::Status Chown(Inode& n, std::optional<uint32_t> uid, std::optional<uint32_t> gid,
                     const Actor& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const bool owner = a.cred.uid == n.attrs.uid;
    if (uid && !(a.caps || (owner && *uid == n.attrs.uid)))
      return ErrnoToStatus(EPERM, "chown");
    if (gid && !(a.caps || (owner && (a.cred.InGroup(*gid) || *gid == n.attrs.gid))))
      return ErrnoToStatus(EPERM, "chgrp");
    uint32_t mode = n.attrs.mode;
    bool mode_set = false;
    if (!n.is_dir()) {
      const bool kill_sgid =
          (mode & S_ISGID) && ((mode & S_IXGRP) || !InGroupOrCapable(a, n.attrs.gid));
      if (mode & S_ISUID) mode &= ~S_ISUID, mode_set = true;
      if (kill_sgid) mode &= ~S_ISGID, mode_set = true;
    }
    if (uid) n.attrs.uid = *uid;
    if (gid) n.attrs.gid = *gid;
    if (mode_set && !InGroupOrCapable(a, n.attrs.gid)) mode &= ~S_ISGID;
    n.attrs.mode = mode;
    Changed(n);
    return absl::OkStatus();
  }

  // utimensat: explicit times (or one UTIME_NOW beside UTIME_OMIT) for the owner only
  // (EPERM); both "now" for the owner or a writer (EACCES).
  absl::Status Utimes(Inode& n, const SetTime& atime, const SetTime& mtime, const Actor& a)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const bool touch =
        atime.how == TimeHow::kServerTime && mtime.how == TimeHow::kServerTime;
    if (!OwnerOrCapable(a, n.attrs)) {
      if (!touch) return ErrnoToStatus(EPERM, "utimensat: not the owner");
      RETURN_IF_ERROR(KernelMay(n.attrs, a, kMayWrite));
    }
    const timespec now = Now();
    auto apply = [&](const SetTime& t, timespec& out) {
      if (t.how == TimeHow::kServerTime) out = now;
      if (t.how == TimeHow::kClientTime) out = t.time;
    };
    apply(atime, n.attrs.atime);
    apply(mtime, n.attrs.mtime);
    n.attrs.ctime = now;
    return absl::OkStatus();
  }

  // vfs.cc's ApplyModeOwnerTimes.
  absl::Status ModeOwnerTimes(Inode& n, const Attrs& at, const SetAttrRequest& req,
                              const Actor& a, bool skip_unchanged)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (req.mode && at.type != FileType::kSymlink &&
        !(skip_unchanged && (at.mode & 07777) == (*req.mode & 07777)))
      RETURN_IF_ERROR(Chmod(n, *req.mode, a));
    std::optional<uint32_t> uid = req.uid, gid = req.gid;
    if (skip_unchanged) {
      if (uid == at.uid) uid.reset();
      if (gid == at.gid) gid.reset();
    }
    if (uid || gid) RETURN_IF_ERROR(Chown(n, uid, gid, a));
    if (req.atime.how != TimeHow::kDontChange || req.mtime.how != TimeHow::kDontChange)
      RETURN_IF_ERROR(Utimes(n, req.atime, req.mtime, a));
    return absl::OkStatus();
  }

  // do_truncate (through a path: `check` the writer's permission) or ftruncate.
  absl::Status Truncate(Inode& n, uint64_t size, const Actor& a, bool check)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (check) RETURN_IF_ERROR(KernelMay(n.attrs, a, kMayWrite));
    DropPrivs(n, a);
    SetSize(n, size);
    Modified(n);
    return absl::OkStatus();
  }

  // vfs.cc's ApplyCreateAttrs: the owner only for root on a root server.
  absl::Status CreateAttrs(Inode& n, SetAttrRequest req, const Credentials& cred,
                           const Actor& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (!options.privileged || !cred.is_root()) req.uid.reset(), req.gid.reset();
    const Attrs at = n.attrs;
    if (req.size && at.is_regular() && at.size != *req.size)
      RETURN_IF_ERROR(Truncate(n, *req.size, a, /*check=*/true));
    return ModeOwnerTimes(n, at, req, a, /*skip_unchanged=*/true);
  }

  // The kernel's lookup in `dir` by `a`: search permission, and a removed directory has
  // no names.
  absl::Status KernelSearch(const Inode& dir, const Actor& a) {
    RETURN_IF_ERROR(KernelMay(dir.attrs, a, kMayExec));
    if (dir.attrs.nlink == 0) return ErrnoToStatus(ENOENT, "directory was removed");
    return absl::OkStatus();
  }
  // may_delete's sticky-directory rule (check_sticky).
  absl::Status Sticky(const Inode& dir, const Inode& victim, const Actor& a) {
    if ((dir.attrs.mode & S_ISVTX) && !a.caps && a.cred.uid != victim.attrs.uid &&
        a.cred.uid != dir.attrs.uid)
      return ErrnoToStatus(EPERM, "sticky directory");
    return absl::OkStatus();
  }

  // The common part of CREATE (new names), MKDIR, SYMLINK and MKNOD: the kernel's checks
  // for a new name in `d` (EEXIST before the write permission, as filename_create).
  absl::Status MayCreate(Inode& d, std::string_view name, const Actor& a)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    RETURN_IF_ERROR(KernelSearch(d, a));
    if (d.Child(name) != nullptr) return ErrnoToStatus(EEXIST, "create");
    return KernelMay(d.attrs, a, kMayWrite | kMayExec);
  }

  // Makes `name` in `d` and applies `rest`; undoes the creation when that fails.
  absl::StatusOr<Inode*> Make(Inode& d, std::string_view name, mode_t mode,
                              const SetAttrRequest& rest, const Credentials& cred,
                              const Actor& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Ref<Inode> n = NewInode(d, mode, a);
    Inode* made = n.get();
    AddEntry(d, name, std::move(n));
    if (absl::Status s = CreateAttrs(*made, rest, cred, a); !s.ok()) {
      RemoveEntry(d, name);
      return s;
    }
    return made;
  }
};

MemoryBackend::MemoryBackend(MemoryBackendOptions options)
    : impl_(nullptr), options_(std::move(options)) {
  impl_ = new Impl(options_);
}

MemoryBackend::~MemoryBackend() { delete impl_; }

absl::StatusOr<Ref<NfsFile>> MemoryBackend::OpenNode(const exports::Export& exp,
                                                     const Handle& handle, bool may_search) {
  if (options_.resolve_needs_search && !may_search)
    return ErrnoToStatus(EWOULDBLOCK, "resolution needs a search (modelled)");
  if (handle.type != kHandleType || handle.bytes.size() != 12)
    return ErrnoToStatus(ESTALE, "not a memory handle");
  uint64_t ino;
  uint32_t generation;
  memcpy(&ino, handle.bytes.data(), 8);
  memcpy(&generation, handle.bytes.data() + 8, 4);
  absl::MutexLock l(&impl_->mu);
  Inode* n = impl_->Find(ino);
  if (n == nullptr || n->generation != generation || n->export_id != exp.id())
    return ErrnoToStatus(ESTALE, "no such object");
  nodes_opened_.fetch_add(1, std::memory_order_relaxed);
  return Ref<NfsFile>::Adopt(new MemoryFile(Ref<Inode>::Share(n), FileMode::kPath));
}

absl::StatusOr<Attrs> MemoryBackend::Validate(const exports::Export& exp, NfsFile& node) {
  absl::MutexLock l(&impl_->mu);
  const Inode& n = InodeOf(node);
  if (n.attrs.nlink == 0) return ErrnoToStatus(ESTALE, "object was removed");
  if (n.export_id != exp.id()) return ErrnoToStatus(ESTALE, "object of another export");
  return n.Snapshot();
}

absl::StatusOr<Object> MemoryBackend::OpenPath(const exports::Export& exp,
                                               std::string_view rel) {
  absl::MutexLock l(&impl_->mu);
  Inode* cur = &impl_->RootOf(exp);
  const Actor server = impl_->Server();  // MOUNT runs as the server (openat2 beneath)
  while (!rel.empty()) {
    const size_t slash = rel.find('/');
    const std::string_view part = rel.substr(0, slash);
    rel = slash == std::string_view::npos ? std::string_view() : rel.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (cur->is_dir()) RETURN_IF_ERROR(KernelMay(cur->attrs, server, kMayExec));
    if (cur->attrs.type == FileType::kSymlink)
      return ErrnoToStatus(ELOOP, "openat2: through a symlink");
    if (!cur->is_dir()) return ErrnoToStatus(ENOTDIR, "openat2");
    if (part == "..") {
      if (cur->parent == cur->ino()) return ErrnoToStatus(EXDEV, "openat2: above the root");
      cur = &impl_->ParentOf(*cur);
      continue;
    }
    Inode* next = cur->Child(part);
    if (next == nullptr) return ErrnoToStatus(ENOENT, "openat2");
    cur = next;  // a final symlink is opened itself (O_PATH | O_NOFOLLOW)
  }
  if (!cur->is_dir()) return ErrnoToStatus(ENOTDIR, "mount a non-directory");
  return ObjectOf(exp, *cur);
}

absl::StatusOr<Attrs> MemoryBackend::GetAttr(const Object& obj) {
  absl::MutexLock l(&impl_->mu);
  return InodeOf(obj).Snapshot();
}

absl::StatusOr<Object> MemoryBackend::Lookup(const Object& dir, std::string_view name,
                                             const Credentials& cred) {
  RETURN_IF_ERROR(ValidateName(name));
  const Attrs& dst = dir.attrs();
  if (!dst.is_dir()) return ErrnoToStatus(ENOTDIR, "lookup in a non-directory");
  RETURN_IF_ERROR(impl_->ServerMay(dst, cred, kMayExec));
  absl::MutexLock l(&impl_->mu);
  Inode& d = InodeOf(dir);
  RETURN_IF_ERROR(impl_->KernelSearch(d, impl_->Kernel(cred)));
  if (name == ".") return ObjectOf(dir.exp(), d);
  if (name == "..") return ObjectOf(dir.exp(), impl_->ParentOf(d));
  Inode* n = d.Child(name);
  if (n == nullptr) return ErrnoToStatus(ENOENT, "lookup");
  return ObjectOf(dir.exp(), *n);
}

absl::StatusOr<Object> MemoryBackend::Create(const Object& dir, std::string_view name,
                                             CreateHow how, const SetAttrRequest& attrs,
                                             uint64_t verifier, const Caller& caller) {
  RETURN_IF_ERROR(CheckNewName(name));
  if (how != CreateHow::kExclusive) RETURN_IF_ERROR(ValidateTimes(attrs));
  RETURN_IF_ERROR(impl_->CheckDirForChange(dir, caller.cred));
  const Credentials& cred = caller.cred;
  std::optional<Object> out;
  std::vector<uint64_t> changed;
  {
    absl::MutexLock l(&impl_->mu);
    Inode& d = InodeOf(dir);
    const Actor a = impl_->Kernel(cred);
    RETURN_IF_ERROR(impl_->KernelSearch(d, a));
    Inode* e = d.Child(name);
    if (e == nullptr) {
      RETURN_IF_ERROR(KernelMay(d.attrs, a, kMayWrite | kMayExec));
      const mode_t mode =
          how == CreateHow::kExclusive ? 0600 : (attrs.mode ? *attrs.mode & 07777 : 0644);
      SetAttrRequest rest;
      if (how == CreateHow::kExclusive) {
        const VerifierTimes v = ExclusiveVerifierTimes(verifier);
        rest.atime = SetTime{TimeHow::kClientTime, {v.atime_sec, 0}};
        rest.mtime = SetTime{TimeHow::kClientTime, {v.mtime_sec, 0}};
      } else {
        rest = attrs;
        rest.mode.reset();
      }
      ASSIGN_OR_RETURN(Inode * made, impl_->Make(d, name, S_IFREG | mode, rest, cred, a));
      e = made;
    } else if (how == CreateHow::kGuarded) {
      return ErrnoToStatus(EEXIST, "create");
    } else if (how == CreateHow::kExclusive) {
      if (!IsExclusiveRetransmit(e->attrs, verifier))
        return ErrnoToStatus(EEXIST, "exclusive create");
    } else {
      if (!e->attrs.is_regular())
        return ErrnoToStatus(e->is_dir() ? EISDIR : EEXIST, "create");
      // UNCHECKED on an existing file: only the size applies (as knfsd).
      if (attrs.size) {
        RETURN_IF_ERROR(impl_->ServerMay(e->attrs, cred, kMayWrite));
        SetAttrRequest size_only;
        size_only.size = attrs.size;
        RETURN_IF_ERROR(impl_->CreateAttrs(*e, size_only, cred, a));
      }
    }
    out = ObjectOf(dir.exp(), *e);
    changed = {e->ino(), d.ino()};
  }
  if (caller.sync)
    NotifyAll(changed, [this](uint64_t id) { NotifyCommit(CommitRecord::Kind::kMetadata, id); });
  return std::move(*out);
}

absl::StatusOr<Object> MemoryBackend::Mkdir(const Object& dir, std::string_view name,
                                            const SetAttrRequest& attrs,
                                            const Caller& caller) {
  RETURN_IF_ERROR(CheckNewName(name));
  RETURN_IF_ERROR(ValidateTimes(attrs));
  RETURN_IF_ERROR(impl_->CheckDirForChange(dir, caller.cred));
  std::optional<Object> out;
  std::vector<uint64_t> changed;
  {
    absl::MutexLock l(&impl_->mu);
    Inode& d = InodeOf(dir);
    const Actor a = impl_->Kernel(caller.cred);
    RETURN_IF_ERROR(impl_->MayCreate(d, name, a));
    // vfs_mkdir keeps only the permission and sticky bits of the mode.
    const mode_t mode = (attrs.mode ? *attrs.mode & 07777 : 0755) & (0777 | S_ISVTX);
    SetAttrRequest rest = attrs;
    rest.mode.reset();
    rest.size.reset();
    ASSIGN_OR_RETURN(Inode * made, impl_->Make(d, name, S_IFDIR | mode, rest, caller.cred, a));
    out = ObjectOf(dir.exp(), *made);
    changed = {made->ino(), d.ino()};
  }
  if (caller.sync)
    NotifyAll(changed, [this](uint64_t id) { NotifyCommit(CommitRecord::Kind::kMetadata, id); });
  return std::move(*out);
}

absl::StatusOr<Object> MemoryBackend::Symlink(const Object& dir, std::string_view name,
                                              std::string_view target,
                                              const SetAttrRequest& attrs,
                                              const Caller& caller) {
  RETURN_IF_ERROR(CheckNewName(name));
  if (target.size() >= PATH_MAX) return ErrnoToStatus(ENAMETOOLONG, "symlink target");
  if (target.find('\0') != std::string_view::npos)
    return ErrnoToStatus(EINVAL, "symlink target contains NUL");
  RETURN_IF_ERROR(ValidateTimes(attrs));
  RETURN_IF_ERROR(impl_->CheckDirForChange(dir, caller.cred));
  // symlinkat refuses an empty target before it looks at the directory.
  if (target.empty()) return ErrnoToStatus(ENOENT, "symlink to an empty target");
  std::optional<Object> out;
  std::vector<uint64_t> changed;
  {
    absl::MutexLock l(&impl_->mu);
    Inode& d = InodeOf(dir);
    const Actor a = impl_->Kernel(caller.cred);
    RETURN_IF_ERROR(impl_->MayCreate(d, name, a));
    Ref<Inode> n = impl_->NewInode(d, S_IFLNK | 0777, a);
    n->data.assign(target);
    n->attrs.size = target.size();
    Inode* made = n.get();
    impl_->AddEntry(d, name, std::move(n));
    SetAttrRequest rest = attrs;
    rest.mode.reset();  // symlinks have no mode of their own on Linux
    rest.size.reset();
    if (absl::Status s = impl_->CreateAttrs(*made, rest, caller.cred, a); !s.ok()) {
      impl_->RemoveEntry(d, name);
      return s;
    }
    out = ObjectOf(dir.exp(), *made);
    changed = {made->ino(), d.ino()};
  }
  if (caller.sync)
    NotifyAll(changed, [this](uint64_t id) { NotifyCommit(CommitRecord::Kind::kMetadata, id); });
  return std::move(*out);
}

absl::StatusOr<Object> MemoryBackend::Mknod(const Object& dir, std::string_view name,
                                            FileType type, uint32_t rdev_major,
                                            uint32_t rdev_minor, const SetAttrRequest& attrs,
                                            const Caller& caller) {
  RETURN_IF_ERROR(CheckNewName(name));
  if (type != FileType::kFifo && type != FileType::kSocket && type != FileType::kCharDevice &&
      type != FileType::kBlockDevice)
    return ErrnoToStatus(EINVAL, "mknod type");
  const bool device = type == FileType::kCharDevice || type == FileType::kBlockDevice;
  if (device && !options_.privileged)
    return ErrnoToStatus(EPERM, "mknod of a device by an unprivileged server");
  RETURN_IF_ERROR(ValidateTimes(attrs));
  RETURN_IF_ERROR(impl_->CheckDirForChange(dir, caller.cred));
  std::optional<Object> out;
  std::vector<uint64_t> changed;
  {
    absl::MutexLock l(&impl_->mu);
    Inode& d = InodeOf(dir);
    const Actor a = impl_->Kernel(caller.cred);
    RETURN_IF_ERROR(impl_->MayCreate(d, name, a));
    // vfs_mknod: CAP_MKNOD, which a switched fsuid drops with the file-system capabilities.
    if (device && !a.caps) return ErrnoToStatus(EPERM, "mknod of a device");
    const mode_t mode = attrs.mode ? *attrs.mode & 07777 : 0644;
    Ref<Inode> n = impl_->NewInode(d, ModeOfFileType(type) | mode, a);
    if (device) n->attrs.rdev_major = rdev_major, n->attrs.rdev_minor = rdev_minor;
    Inode* made = n.get();
    impl_->AddEntry(d, name, std::move(n));
    SetAttrRequest rest = attrs;
    rest.mode.reset();
    rest.size.reset();
    if (absl::Status s = impl_->CreateAttrs(*made, rest, caller.cred, a); !s.ok()) {
      impl_->RemoveEntry(d, name);
      return s;
    }
    out = ObjectOf(dir.exp(), *made);
    changed = {made->ino(), d.ino()};
  }
  if (caller.sync)
    NotifyAll(changed, [this](uint64_t id) { NotifyCommit(CommitRecord::Kind::kMetadata, id); });
  return std::move(*out);
}

absl::StatusOr<std::optional<Handle>> MemoryBackend::Remove(const Object& dir,
                                                            std::string_view name,
                                                            RemoveKind kind,
                                                            const Caller& caller) {
  RETURN_IF_ERROR(ValidateName(name));
  if (IsDotOrDotDot(name))
    return ErrnoToStatus(kind == RemoveKind::kDirectory ? EINVAL : EACCES, "remove . or ..");
  RETURN_IF_ERROR(impl_->CheckDirForChange(dir, caller.cred));
  std::optional<Handle> gone;
  uint64_t dir_id = 0;
  {
    absl::MutexLock l(&impl_->mu);
    Inode& d = InodeOf(dir);
    const Actor a = impl_->Kernel(caller.cred);
    RETURN_IF_ERROR(impl_->KernelSearch(d, a));
    Inode* victim = d.Child(name);
    if (victim == nullptr) return ErrnoToStatus(ENOENT, "remove");
    const bool is_dir = kind == RemoveKind::kDirectory ||
                        (kind == RemoveKind::kAny && victim->is_dir());
    if (!is_dir && victim->is_dir()) return ErrnoToStatus(EISDIR, "remove a directory");
    if (is_dir && !victim->is_dir()) return ErrnoToStatus(ENOTDIR, "rmdir a non-directory");
    RETURN_IF_ERROR(KernelMay(d.attrs, a, kMayWrite | kMayExec));
    RETURN_IF_ERROR(impl_->Sticky(d, *victim, a));
    if (is_dir && !victim->entries.empty()) return ErrnoToStatus(ENOTEMPTY, "rmdir");
    if (is_dir || victim->attrs.nlink <= 1) gone = HandleOf(*victim);
    impl_->RemoveEntry(d, name);
    dir_id = d.ino();
  }
  if (caller.sync) NotifyCommit(CommitRecord::Kind::kMetadata, dir_id);
  return gone;
}

absl::StatusOr<std::optional<Handle>> MemoryBackend::Rename(const Object& from_dir,
                                                            std::string_view from_name,
                                                            const Object& to_dir,
                                                            std::string_view to_name,
                                                            const Caller& caller) {
  if (from_dir.exp().id() != to_dir.exp().id())
    return ErrnoToStatus(EXDEV, "rename across exports");
  RETURN_IF_ERROR(ValidateName(from_name));
  RETURN_IF_ERROR(ValidateName(to_name));
  if (IsDotOrDotDot(from_name) || IsDotOrDotDot(to_name))
    return ErrnoToStatus(EINVAL, "rename . or ..");
  RETURN_IF_ERROR(impl_->CheckDirForChange(from_dir, caller.cred));
  RETURN_IF_ERROR(impl_->CheckDirForChange(to_dir, caller.cred));
  std::optional<Handle> replaced;
  std::vector<uint64_t> changed;
  {
    absl::MutexLock l(&impl_->mu);
    Inode& from = InodeOf(from_dir);
    Inode& to = InodeOf(to_dir);
    const Actor a = impl_->Kernel(caller.cred);
    RETURN_IF_ERROR(impl_->KernelSearch(from, a));
    RETURN_IF_ERROR(impl_->KernelSearch(to, a));
    Inode* src = from.Child(from_name);
    if (src == nullptr) return ErrnoToStatus(ENOENT, "rename");
    if (src->is_dir()) {  // not into itself (lock_rename's trap)
      for (Inode* p = &to;; p = &impl_->ParentOf(*p)) {
        if (p == src) return ErrnoToStatus(EINVAL, "rename a directory into itself");
        if (p->parent == p->ino()) break;
      }
    }
    Inode* tgt = to.Child(to_name);
    if (tgt == src) return replaced;  // another link of the same object: nothing to do
    RETURN_IF_ERROR(KernelMay(from.attrs, a, kMayWrite | kMayExec));
    RETURN_IF_ERROR(impl_->Sticky(from, *src, a));
    if (tgt != nullptr) {
      RETURN_IF_ERROR(KernelMay(to.attrs, a, kMayWrite | kMayExec));
      RETURN_IF_ERROR(impl_->Sticky(to, *tgt, a));
      if (src->is_dir() && !tgt->is_dir()) return ErrnoToStatus(ENOTDIR, "rename");
      if (!src->is_dir() && tgt->is_dir()) return ErrnoToStatus(EISDIR, "rename");
      if (tgt->is_dir() && !tgt->entries.empty()) return ErrnoToStatus(ENOTEMPTY, "rename");
    } else {
      RETURN_IF_ERROR(KernelMay(to.attrs, a, kMayWrite | kMayExec));
    }
    // A directory that changes parent has its ".." rewritten: write permission on it.
    if (src->is_dir() && &from != &to) RETURN_IF_ERROR(KernelMay(src->attrs, a, kMayWrite));
    if (tgt != nullptr) {
      if (tgt->is_dir() || tgt->attrs.nlink <= 1) replaced = HandleOf(*tgt);
      impl_->RemoveEntry(to, to_name);
    }
    Ref<Inode> moving = impl_->RemoveEntry(from, from_name, /*count_link=*/false);
    Inode& m = *moving;
    impl_->AddEntry(to, to_name, std::move(moving));
    impl_->Changed(m);
    changed = {to.ino(), from.ino()};
  }
  if (caller.sync)
    NotifyAll(changed, [this](uint64_t id) { NotifyCommit(CommitRecord::Kind::kMetadata, id); });
  return replaced;
}

absl::Status MemoryBackend::Link(const Object& obj, const Object& dir, std::string_view name,
                                 const Caller& caller) {
  if (obj.exp().id() != dir.exp().id()) return ErrnoToStatus(EXDEV, "link across exports");
  RETURN_IF_ERROR(CheckNewName(name));
  RETURN_IF_ERROR(impl_->CheckDirForChange(dir, caller.cred));
  RETURN_IF_ERROR(CheckLinkSource(obj.attrs()));
  std::vector<uint64_t> changed;
  {
    absl::MutexLock l(&impl_->mu);
    Inode& d = InodeOf(dir);
    Inode& n = InodeOf(obj);
    const Actor a = impl_->Kernel(caller.cred);
    RETURN_IF_ERROR(impl_->MayCreate(d, name, a));
    if (n.attrs.nlink == 0) return ErrnoToStatus(ENOENT, "link of a removed file");
    // may_linkat with fs.protected_hardlinks=1.
    if (!a.caps && a.cred.uid != n.attrs.uid) {
      const uint32_t m = n.attrs.mode;
      const bool safe = n.attrs.is_regular() && !(m & S_ISUID) &&
                        (m & (S_ISGID | S_IXGRP)) != (S_ISGID | S_IXGRP) &&
                        KernelMay(n.attrs, a, kMayRead | kMayWrite).ok();
      if (!safe) return ErrnoToStatus(EPERM, "link: protected hard link");
    }
    n.attrs.nlink++;
    impl_->AddEntry(d, name, Ref<Inode>::Share(&n));
    impl_->Changed(n);
    changed = {d.ino(), n.ino()};
  }
  if (caller.sync)
    NotifyAll(changed, [this](uint64_t id) { NotifyCommit(CommitRecord::Kind::kMetadata, id); });
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemoryBackend::ReadLink(const Object& obj) {
  absl::MutexLock l(&impl_->mu);
  const Inode& n = InodeOf(obj);
  if (n.attrs.type != FileType::kSymlink)
    return ErrnoToStatus(EINVAL, "readlink of a non-symlink");
  return n.data;
}

absl::StatusOr<ReadDirResult> MemoryBackend::ReadDir(
    const Object& dir, uint64_t cookie, bool plus, const Credentials& cred,
    absl::FunctionRef<bool(const DirEntry&)> emit) {
  const Attrs& dst = dir.attrs();
  if (!dst.is_dir()) return ErrnoToStatus(ENOTDIR, "readdir");
  RETURN_IF_ERROR(impl_->ServerMay(dst, cred, kMayRead));
  struct Row {
    std::string name;
    uint64_t fileid, cookie;
    Attrs attrs;
    std::optional<Handle> handle;
  };
  std::vector<Row> rows;
  {
    absl::MutexLock l(&impl_->mu);
    Inode& d = InodeOf(dir);
    const Actor a = impl_->Kernel(cred);
    RETURN_IF_ERROR(KernelMay(d.attrs, a, kMayRead));
    if (d.attrs.nlink == 0) return ErrnoToStatus(ENOENT, "readdir of a removed directory");
    if (cookie > 2 && cookie >= d.next_cookie) return ErrnoToStatus(EBADR, "readdir cookie");
    // READDIRPLUS describes the entries only where a stat by name may (search permission).
    const bool search = KernelMay(d.attrs, a, kMayExec).ok();
    const bool at_root = d.parent == d.ino();
    auto add = [&](std::string_view name, uint64_t c, Inode* n, uint64_t fileid) {
      if (c <= cookie) return;
      Row r{std::string(name), fileid, c, {}, std::nullopt};
      if (plus && n != nullptr && search) {
        r.attrs = n->Snapshot();
        r.handle = HandleOf(*n);
      }
      rows.push_back(std::move(r));
    };
    if (cookie < 1) {  // the directory as this request resolved it
      Row r{".", d.ino(), 1, {}, std::nullopt};
      if (plus) r.attrs = dir.attrs(), r.handle = dir.handle();
      rows.push_back(std::move(r));
    }
    if (at_root)  // never above the export: the root's fileid, nothing more
      add("..", 2, nullptr, d.ino());
    else
      add("..", 2, &impl_->ParentOf(d), impl_->ParentOf(d).ino());
    for (auto it = d.entries.upper_bound(cookie); it != d.entries.end(); ++it)
      add(it->second.first, it->first, it->second.second.get(), it->second.second->ino());
  }
  for (const Row& r : rows) {
    DirEntry e;
    e.name = r.name;
    e.fileid = r.fileid;
    e.cookie = r.cookie;
    e.attrs = r.attrs;
    e.handle = r.handle ? &*r.handle : nullptr;
    if (!emit(e)) return ReadDirResult{false};
  }
  return ReadDirResult{true};
}

absl::StatusOr<FsStat> MemoryBackend::StatFs(const Object&) {
  absl::MutexLock l(&impl_->mu);
  FsStat f;
  f.tbytes = 1ull << 40;
  f.fbytes = f.abytes = 1ull << 39;
  f.tfiles = 1ull << 20;
  f.ffiles = f.afiles = f.tfiles - impl_->inodes.size();
  return f;
}

absl::StatusOr<PathConf> MemoryBackend::GetPathConf(const Object&) {
  return PathConf{65000, static_cast<uint32_t>(kMaxNameLen)};  // ext4's EXT4_LINK_MAX
}

absl::StatusOr<Ref<NfsFile>> MemoryBackend::OpenFile(const Object& obj, FileMode mode) {
  Inode& n = InodeOf(obj);
  {
    // The server opens as itself (O_RDONLY or O_RDWR): root may, its own user only
    // what the mode bits allow it — a read-only file is refused to its owner too.
    absl::MutexLock l(&impl_->mu);
    RETURN_IF_ERROR(KernelMay(n.attrs, impl_->Server(),
                              mode == FileMode::kRead ? kMayRead : kMayRead | kMayWrite));
  }
  files_opened_.fetch_add(1, std::memory_order_relaxed);
  return Ref<NfsFile>::Adopt(new MemoryFile(Ref<Inode>::Share(&n), mode));
}

absl::StatusOr<std::optional<LockConflict>> MemoryBackend::LockFile(NfsFile& lock_file,
                                                                    LockOp op, LockType type,
                                                                    LockRange range) {
  Inode& n = InodeOf(lock_file);
  const uint64_t end = range.length == 0 ? RangeLocks::kToEnd : range.offset + range.length;
  absl::MutexLock l(&n.locks_mu);
  switch (op) {
    case LockOp::kSet:
      return n.locks.Set(&lock_file, type, range.offset, end);
    case LockOp::kTest:
      return n.locks.Test(&lock_file, type, range.offset, end);
    case LockOp::kUnlock:
      n.locks.Unlock(&lock_file, range.offset, end);
      return std::nullopt;
  }
  return std::nullopt;
}

absl::StatusOr<ReadResult> MemoryBackend::ReadFile(NfsFile& file, const Attrs& attrs,
                                                   uint64_t offset, absl::Span<char> buf,
                                                   bool nowait) {
  if (nowait && options_.reads_need_disk) return ReadResult{0, false, /*would_block=*/true};
  absl::MutexLock l(&impl_->mu);
  const std::string& data = InodeOf(file).data;
  ReadResult r;
  const uint64_t size = data.size();
  const uint64_t n = offset >= size ? 0 : std::min<uint64_t>(buf.size(), size - offset);
  if (n > 0) memcpy(buf.data(), data.data() + offset, n);
  r.count = static_cast<uint32_t>(n);
  // As vfs::ReadAt: a short read met the end; a full one ends at EOF when it ends at the
  // size the request's attributes gave.
  r.eof = n < buf.size() || offset + n == attrs.size;
  return r;
}

absl::StatusOr<WriteResult> MemoryBackend::WriteFile(NfsFile& file, const Object& obj,
                                                     const Credentials& cred, uint64_t offset,
                                                     absl::Span<const char> data,
                                                     Stability stable) {
  {
    absl::MutexLock l(&impl_->mu);
    Inode& n = InodeOf(file);
    if (!data.empty()) {
      if (offset + data.size() > n.data.size()) SetSize(n, offset + data.size());
      memcpy(n.data.data() + offset, data.data(), data.size());
      // The thread that writes: the caller for a file that had set-id bits when the
      // request took its attributes, else the server itself.
      DropPrivs(n, HasSetIdBits(obj.attrs()) ? impl_->Kernel(cred) : impl_->Server());
      impl_->Modified(n);
    }
  }
  if (stable != Stability::kUnstable) NotifyCommit(CommitRecord::Kind::kData, obj.attrs().fileid);
  return WriteResult{static_cast<uint32_t>(data.size()), stable};
}

absl::Status MemoryBackend::SyncFile(NfsFile&, const Object& obj) {
  NotifyCommit(CommitRecord::Kind::kData, obj.attrs().fileid);
  return absl::OkStatus();
}

absl::Status MemoryBackend::ApplySetAttr(const Object& obj, const SetAttrRequest& req,
                                         NfsFile* resized, const Caller& caller) {
  const Attrs& at = obj.attrs();
  {
    absl::MutexLock l(&impl_->mu);
    Inode& n = InodeOf(obj);
    const Actor a = impl_->Kernel(caller.cred);
    // ftruncate on a file open for writing checks no permission of its own.
    if (resized != nullptr) RETURN_IF_ERROR(impl_->Truncate(n, *req.size, a, false));
    RETURN_IF_ERROR(impl_->ModeOwnerTimes(n, at, TouchForWriter(at, req, caller.cred), a,
                                          /*skip_unchanged=*/false));
  }
  if (caller.sync) NotifyCommit(CommitRecord::Kind::kMetadata, obj.attrs().fileid);
  return absl::OkStatus();
}

absl::Status MemoryBackend::AllocateFile(NfsFile& file, const Object& obj,
                                         const Credentials& cred, uint64_t offset,
                                         uint64_t length, bool punch_hole) {
  absl::MutexLock l(&impl_->mu);
  Inode& n = InodeOf(file);
  if (length == 0) return ErrnoToStatus(EINVAL, "fallocate of nothing");
  const uint64_t end = offset + length;
  if (punch_hole) {
    if (offset < n.data.size())
      memset(n.data.data() + offset, 0, std::min<uint64_t>(end, n.data.size()) - offset);
  } else if (end > n.data.size()) {
    SetSize(n, end);
  }
  DropPrivs(n, HasSetIdBits(obj.attrs()) ? impl_->Kernel(cred) : impl_->Server());
  impl_->Modified(n);
  return absl::OkStatus();
}

absl::StatusOr<SeekResult> MemoryBackend::SeekFile(NfsFile& file, const Object&,
                                                   uint64_t offset, SeekWhat what) {
  absl::MutexLock l(&impl_->mu);
  const uint64_t size = InodeOf(file).data.size();
  // Every byte is data (holes are not tracked): the only hole is the one at the end.
  if (offset >= size) return SeekResult{true, size};
  if (what == SeekWhat::kData) return SeekResult{false, offset};
  return SeekResult{true, size};
}

absl::StatusOr<uint64_t> MemoryBackend::CopyFile(NfsFile& src, NfsFile& dst,
                                                 const Object& dst_obj,
                                                 const Credentials& cred, uint64_t src_offset,
                                                 uint64_t dst_offset, uint64_t count, bool) {
  absl::MutexLock l(&impl_->mu);
  const std::string from = InodeOf(src).data;  // a copy: src and dst may be one file
  Inode& to = InodeOf(dst);
  const uint64_t avail = src_offset >= from.size() ? 0 : from.size() - src_offset;
  const uint64_t n = count == 0 ? avail : std::min(count, avail);
  if (n == 0) return uint64_t{0};
  if (dst_offset + n > to.data.size()) SetSize(to, dst_offset + n);
  memcpy(to.data.data() + dst_offset, from.data() + src_offset, n);
  DropPrivs(to, HasSetIdBits(dst_obj.attrs()) ? impl_->Kernel(cred) : impl_->Server());
  impl_->Modified(to);
  return n;
}

}  // namespace localnfs::server::backend
