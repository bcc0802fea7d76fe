// client_localio/fuse_ops.cc — localnfs-mount's FUSE operations (fuse_mount.h) but
// READ and WRITE (fuse_io.cc): lookup, forget, getattr/setattr, the namespace
// operations with the kernel NFS client's silly rename of open files (inode_table.h),
// open/create (close-to-open ACCESS, passthrough choice), flush/fsync/release (COMMIT),
// readdir/readdirplus from a per-open snapshot, statfs, access, and the stats file.
// Every operation runs with the calling process's credentials.
//
// Owns: the DirHandle of each open directory (fi->fh, opendir to releasedir) and the
// stats file's snapshot of each of its opens (fi->fh, open to release). Thread-safety:
// the operations run on any FUSE thread; what they share is in MountState.
#include "client_localio/fuse_mount.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/log.h"

namespace localnfs::client {
namespace {

// An open directory: the snapshot readdir serves offsets from. Offset N (N >= 1) is
// the position after entry N-1; offset 0 refetches, so rewinddir sees changes.
struct DirHandle {
  absl::Mutex mu;
  std::vector<DirEntry> entries ABSL_GUARDED_BY(mu);
};

Credentials CallerCredentials(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  Credentials cred;
  cred.uid = ctx->uid;
  cred.gid = ctx->gid;
  gid_t groups[kMaxAuthSysGroups];
  const int n = fuse_req_getgroups(req, kMaxAuthSysGroups, groups);
  // n > size means the caller has more groups than AUTH_SYS can carry: send the first 16.
  for (int i = 0; i < std::min(n, kMaxAuthSysGroups); ++i) cred.groups.push_back(groups[i]);
  return cred;
}

mode_t TypeBits(FileType t) {
  switch (t) {
    case FileType::kRegular: return S_IFREG;
    case FileType::kDirectory: return S_IFDIR;
    case FileType::kBlock: return S_IFBLK;
    case FileType::kCharacter: return S_IFCHR;
    case FileType::kSymlink: return S_IFLNK;
    case FileType::kSocket: return S_IFSOCK;
    case FileType::kFifo: return S_IFIFO;
  }
  return S_IFREG;
}

struct stat ToStat(const Attributes& a) {
  struct stat st{};
  st.st_ino = a.fileid;
  st.st_mode = TypeBits(a.type) | (a.mode & 07777);
  st.st_nlink = a.nlink;
  st.st_uid = a.uid;
  st.st_gid = a.gid;
  st.st_size = static_cast<off_t>(a.size);
  st.st_blksize = 4096;
  st.st_blocks = static_cast<blkcnt_t>((a.used + 511) / 512);
  st.st_rdev = makedev(a.rdev_major, a.rdev_minor);
  st.st_atim = {a.atime.seconds, a.atime.nanoseconds};
  st.st_mtim = {a.mtime.seconds, a.mtime.nanoseconds};
  st.st_ctim = {a.ctime.seconds, a.ctime.nanoseconds};
  return st;
}

struct stat StatsFileStat() {
  struct stat st{};
  st.st_ino = kStatsIno;
  st.st_mode = S_IFREG | 0444;
  st.st_nlink = 1;
  st.st_blksize = 4096;
  return st;
}

std::string StatsText(const MountState& m) {
  return absl::StrCat(FormatCounters(m.client->Counters()),
                      "resends ", m.client->resends(), "\n",
                      "open_files ", m.inodes->open_count(), "\n",
                      "releases ", m.releases.load(std::memory_order_relaxed), "\n",
                      "silly_renamed ", m.inodes->silly_count(), "\n",
                      "localio_mode ", LocalioModeName(m.localio), "\n",
                      "localio_active ",
                      m.localio_path != nullptr && m.localio_path->local_active() ? 1 : 0,
                      "\n", "localio_handshakes ",
                      m.localio_path != nullptr ? m.localio_path->handshakes() : 0,
                      "\n", "localio_path ",
                      m.localio_path != nullptr ? m.localio_path->Describe() : "rpc", "\n",
                      m.passthrough == nullptr
                          ? std::string("passthrough off\n")
                          : absl::StrCat("passthrough ", m.passthrough->StateName(),
                                         "\npassthrough_opens ",
                                         m.passthrough->passthrough_opens(),
                                         "\npassthrough_backing_files ",
                                         m.passthrough->backing_files(), "\n"));
}

// The handle of `ino`, or replies ESTALE (the kernel forgot it, or never had it) and
// returns nullopt.
std::optional<FileHandle> HandleOr(fuse_req_t req, fuse_ino_t ino) {
  std::optional<FileHandle> fh = State(req)->inodes->Get(ino);
  if (!fh) fuse_reply_err(req, ESTALE);
  return fh;
}

// The attributes of `ino` as the mount reports them: a silly-renamed file's hidden
// name is not counted in st_nlink (inode_table.h).
struct stat InodeStat(const MountState& m, fuse_ino_t ino, const Attributes& attrs) {
  struct stat st = ToStat(attrs);
  if (st.st_nlink > 0 && m.inodes->SillyRenamed(ino)) --st.st_nlink;
  return st;
}

fuse_entry_param EntryParam(const MountState& m, fuse_ino_t ino, const Attributes& attrs) {
  fuse_entry_param e{};
  e.ino = ino;
  e.attr = InodeStat(m, ino, attrs);
  e.attr_timeout = kAttrTimeout;
  e.entry_timeout = kEntryTimeout;
  return e;
}

// Replies an entry, taking one lookup reference; if the kernel never got the reply
// (interrupted request), the reference is dropped again.
void ReplyEntry(fuse_req_t req, const Entry& entry) {
  InodeTable& inodes = *State(req)->inodes;
  const fuse_ino_t ino = inodes.Ref(entry.handle);
  const fuse_entry_param e = EntryParam(*State(req), ino, entry.attributes);
  if (fuse_reply_entry(req, &e) != 0) inodes.Forget(ino, 1);
}

void ReplyEntryOr(fuse_req_t req, const absl::StatusOr<Entry>& entry) {
  if (!entry.ok()) return ReplyStatus(req, entry.status());
  ReplyEntry(req, *entry);
}

// ---- operations ----

void OpInit(void* userdata, fuse_conn_info* conn) {
  conn->max_write = kMaxIo;
  conn->max_read = kMaxIo;  // must equal the max_read mount option
  // The kernel takes the smaller of this and its own read-ahead window.
  conn->max_readahead = kMaxIo;
  // Writes must reach us (and COMMIT) in order with fsync: no kernel write-back cache.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  // open(O_TRUNC) of an existing file: the kernel truncates through setattr (a SETATTR
  // of size 0 with the caller's credentials), as the kernel NFS client does. libfuse
  // offers atomic O_TRUNC by default, which would leave truncation to open, and open
  // does not truncate.
  conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  auto* m = static_cast<MountState*>(userdata);
  if (m->splice_max != 0) {
    conn->max_read = static_cast<unsigned>(m->splice_max);  // the max_read mount option
    if (conn->capable & FUSE_CAP_SPLICE_WRITE) {
      conn->want |= FUSE_CAP_SPLICE_WRITE;
    } else {
      m->splice_max = 0;  // reads are served the copying way (at most max_read anyway)
    }
  }
  if (m->passthrough != nullptr && !m->passthrough->AcceptInInit()) {
    LOG_WARNING("FUSE passthrough: the kernel does not offer it (Linux >= 6.9 with "
                "CONFIG_FUSE_PASSTHROUGH); opens use the FUSE data path");
  }
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  MountState* m = State(req);
  if (parent == FUSE_ROOT_ID && strcmp(name, kStatsName) == 0) {
    fuse_entry_param e{};
    e.ino = kStatsIno;
    e.attr = StatsFileStat();
    e.attr_timeout = kAttrTimeout;
    e.entry_timeout = kEntryTimeout;
    fuse_reply_entry(req, &e);
    return;
  }
  std::optional<FileHandle> dir = HandleOr(req, parent);
  if (!dir) return;
  ReplyEntryOr(req, m->client->Lookup(*dir, name, CallerCredentials(req)));
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  if (ino != kStatsIno) State(req)->inodes->Forget(ino, nlookup);
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  InodeTable& inodes = *State(req)->inodes;
  for (size_t i = 0; i < count; ++i) {
    if (forgets[i].ino != kStatsIno) inodes.Forget(forgets[i].ino, forgets[i].nlookup);
  }
  fuse_reply_none(req);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (ino == kStatsIno) {
    const struct stat st = StatsFileStat();
    fuse_reply_attr(req, &st, kAttrTimeout);
    return;
  }
  std::optional<FileHandle> fh = HandleOr(req, ino);
  if (!fh) return;
  MountState& m = *State(req);
  absl::StatusOr<Attributes> a = m.client->GetAttr(*fh, CallerCredentials(req));
  if (ino == FUSE_ROOT_ID) {
    absl::MutexLock l(&m.root_mu);
    if (a.ok()) {
      m.root_attrs = *a;
    } else if (m.root_attrs) {
      // Not cached (timeout 0): the next check asks the server again.
      const struct stat st = ToStat(*m.root_attrs);
      fuse_reply_attr(req, &st, 0);
      return;
    }
  }
  if (!a.ok()) return ReplyStatus(req, a.status());
  const struct stat st = InodeStat(m, ino, *a);
  fuse_reply_attr(req, &st, kAttrTimeout);
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
               fuse_file_info* fi) {
  if (ino == kStatsIno) return (void)fuse_reply_err(req, EACCES);
  std::optional<FileHandle> fh = HandleOr(req, ino);
  if (!fh) return;
  Nfs3Client& c = *State(req)->client;
  const Credentials cred = CallerCredentials(req);
  // A size change not made through a file open for writing (truncate(2), and
  // open(O_TRUNC), whose truncation comes here without the file) needs write permission,
  // which the kernel NFS client checks with ACCESS before its SETATTR (may_open and
  // vfs_truncate ask MAY_WRITE). The server's SETATTR alone lets a file's owner change
  // the size without it (knfsd's owner override, for writes through an fd opened
  // before a chmod), and default_permissions cannot see a squashed root.
  if ((to_set & FUSE_SET_ATTR_SIZE) && fi == nullptr) {
    absl::StatusOr<uint32_t> granted = c.Access(*fh, kAccessModify, cred);
    if (!granted.ok()) return ReplyStatus(req, granted.status());
    if (!(*granted & kAccessModify)) return (void)fuse_reply_err(req, EACCES);
  }
  SetAttributes s;
  if (to_set & FUSE_SET_ATTR_MODE) s.mode = attr->st_mode & 07777;
  if (to_set & FUSE_SET_ATTR_UID) s.uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) s.gid = attr->st_gid;
  if (to_set & FUSE_SET_ATTR_SIZE) s.size = static_cast<uint64_t>(attr->st_size);
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    s.atime_how = TimeHow::kServerTime;
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    s.atime_how = TimeHow::kClientTime;
    s.atime = {attr->st_atim.tv_sec, static_cast<uint32_t>(attr->st_atim.tv_nsec)};
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    s.mtime_how = TimeHow::kServerTime;
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    s.mtime_how = TimeHow::kClientTime;
    s.mtime = {attr->st_mtim.tv_sec, static_cast<uint32_t>(attr->st_mtim.tv_nsec)};
  }
  absl::StatusOr<Attributes> a = c.SetAttr(*fh, s, cred);
  if (!a.ok()) return ReplyStatus(req, a.status());
  const struct stat st = InodeStat(*State(req), ino, *a);
  fuse_reply_attr(req, &st, kAttrTimeout);
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  std::optional<FileHandle> fh = HandleOr(req, ino);
  if (!fh) return;
  absl::StatusOr<std::string> target =
      State(req)->client->ReadLink(*fh, CallerCredentials(req));
  if (!target.ok()) return ReplyStatus(req, target.status());
  fuse_reply_readlink(req, target->c_str());
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  std::optional<FileHandle> dir = HandleOr(req, parent);
  if (!dir) return;
  Nfs3Client& c = *State(req)->client;
  const Credentials cred = CallerCredentials(req);
  const uint32_t perm = mode & 07777;
  switch (mode & S_IFMT) {
    case S_IFREG:
      return ReplyEntryOr(req, c.Create(*dir, name, CreateMode::kGuarded, perm, cred));
    case S_IFDIR:
      return ReplyEntryOr(req, c.Mkdir(*dir, name, perm, cred));
    case S_IFIFO:
      return ReplyEntryOr(req, c.Mknod(*dir, name, FileType::kFifo, perm, 0, 0, cred));
    case S_IFSOCK:
      return ReplyEntryOr(req, c.Mknod(*dir, name, FileType::kSocket, perm, 0, 0, cred));
    case S_IFCHR:
      return ReplyEntryOr(req, c.Mknod(*dir, name, FileType::kCharacter, perm, major(rdev),
                                       minor(rdev), cred));
    case S_IFBLK:
      return ReplyEntryOr(req, c.Mknod(*dir, name, FileType::kBlock, perm, major(rdev),
                                       minor(rdev), cred));
    default:
      fuse_reply_err(req, EINVAL);
  }
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  std::optional<FileHandle> dir = HandleOr(req, parent);
  if (!dir) return;
  ReplyEntryOr(req, State(req)->client->Mkdir(*dir, name, mode & 07777, CallerCredentials(req)));
}

// ---- silly rename (inode_table.h) ----

}  // namespace

void RemoveSillyName(MountState& m, const SillyName& silly) {
  const absl::Status s = m.client->Remove(silly.dir, silly.name, silly.cred);
  if (!s.ok() && ErrnoOf(s) != ENOENT) {
    LOG_WARNING("cannot remove %s of a file unlinked while open: %s", silly.name,
                std::string(s.message()));
    return;
  }
  // LOCALIO's cached fds of it would keep its blocks on the server's disk.
  m.client->data_path().ForgetFile(silly.file);
}

namespace {

// One open of `ino` fewer; at the last close of a silly-renamed file, its hidden name
// goes.
void CloseInode(MountState& m, fuse_ino_t ino) {
  if (std::optional<SillyName> silly = m.inodes->Close(ino)) RemoveSillyName(m, *silly);
}

// Renames the open `file` (`fileid`), named `name` in `dir`, to a silly name in the same
// directory: the first name LOOKUP does not find (NFSv3 RENAME would replace a file
// there), as nfs_sillyrename does. The name, or an errno.
std::variant<SillyName, int> SillyRename(MountState& m, const FileHandle& file,
                                         uint64_t fileid, const FileHandle& dir,
                                         std::string_view name, const Credentials& cred) {
  constexpr int kMaxTries = 64;
  for (int i = 0; i < kMaxTries; ++i) {
    std::string silly = MakeSillyName(fileid, m.silly_counter.fetch_add(1));
    const absl::StatusOr<Entry> taken = m.client->Lookup(dir, silly, cred);
    if (taken.ok()) continue;
    if (ErrnoOf(taken.status()) != ENOENT) return ErrnoOf(taken.status());
    if (const int err = ErrnoOf(m.client->Rename(dir, name, dir, silly, cred)); err != 0)
      return err;
    return SillyName{file, dir, std::move(silly), cred};
  }
  return EBUSY;  // no free name
}

// Before `name` in `dir` is unlinked or renamed over: if it names a regular file open
// through this mount, that file is silly-renamed (*hidden: `name` is free now);
// otherwise the caller goes on with the name as it is. Returns an errno (0: go on).
// Only while some file is open does this cost a LOOKUP; a failed one is left to the
// operation itself to report.
int HideIfOpen(MountState& m, const FileHandle& dir, std::string_view name,
               const Credentials& cred, bool* hidden) {
  *hidden = false;
  if (!m.inodes->AnyOpen()) return 0;
  const absl::StatusOr<Entry> victim = m.client->Lookup(dir, name, cred);
  if (!victim.ok() || victim->attributes.type != FileType::kRegular) return 0;
  switch (m.inodes->PlanRemove(victim->handle, dir, name)) {
    case InodeTable::RemovePlan::kRemove:
      return 0;
    case InodeTable::RemovePlan::kBusy:
      return EBUSY;  // as the kernel answers for a silly-renamed dentry
    case InodeTable::RemovePlan::kSillyRename:
      break;
  }
  std::variant<SillyName, int> silly =
      SillyRename(m, victim->handle, victim->attributes.fileid, dir, name, cred);
  SillyName* renamed = std::get_if<SillyName>(&silly);
  std::optional<SillyName> closed = m.inodes->FinishSillyRename(
      victim->handle, renamed != nullptr ? std::optional<SillyName>(*renamed) : std::nullopt);
  if (closed) RemoveSillyName(m, *closed);  // the last close came meanwhile
  if (renamed == nullptr) return std::get<int>(silly);
  *hidden = true;
  return 0;
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  std::optional<FileHandle> dir = HandleOr(req, parent);
  if (!dir) return;
  MountState& m = *State(req);
  const Credentials cred = CallerCredentials(req);
  bool hidden = false;
  if (const int err = HideIfOpen(m, *dir, name, cred, &hidden); err != 0 || hidden)
    return (void)fuse_reply_err(req, err);
  fuse_reply_err(req, ErrnoOf(m.client->Remove(*dir, name, cred)));
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  std::optional<FileHandle> dir = HandleOr(req, parent);
  if (!dir) return;
  fuse_reply_err(req, ErrnoOf(State(req)->client->Rmdir(*dir, name, CallerCredentials(req))));
}

void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  std::optional<FileHandle> dir = HandleOr(req, parent);
  if (!dir) return;
  ReplyEntryOr(req, State(req)->client->Symlink(*dir, name, link, CallerCredentials(req)));
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags) {
  // NFSv3 RENAME always replaces; RENAME_NOREPLACE / RENAME_EXCHANGE cannot be atomic.
  if (flags != 0) return (void)fuse_reply_err(req, EINVAL);
  std::optional<FileHandle> from = HandleOr(req, parent);
  if (!from) return;
  std::optional<FileHandle> to = HandleOr(req, newparent);
  if (!to) return;
  MountState& m = *State(req);
  const Credentials cred = CallerCredentials(req);
  // An open file renamed over keeps its data under a silly name, as nfs_rename does.
  bool hidden = false;
  if (const int err = HideIfOpen(m, *to, newname, cred, &hidden); err != 0)
    return (void)fuse_reply_err(req, err);
  fuse_reply_err(req, ErrnoOf(m.client->Rename(*from, name, *to, newname, cred)));
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  std::optional<FileHandle> fh = HandleOr(req, ino);
  if (!fh) return;
  std::optional<FileHandle> dir = HandleOr(req, newparent);
  if (!dir) return;
  absl::StatusOr<Attributes> a =
      State(req)->client->Link(*fh, *dir, newname, CallerCredentials(req));
  if (!a.ok()) return ReplyStatus(req, a.status());
  ReplyEntry(req, Entry{*fh, *a});
}

// ACCESS3 bits for an open(2) access mode, as the kernel NFS client asks them.
uint32_t AccessForOpen(int flags) {
  switch (flags & O_ACCMODE) {
    case O_RDONLY:
      return kAccessRead;
    case O_WRONLY:
      return kAccessModify | kAccessExtend;
    default:
      return kAccessRead | kAccessModify | kAccessExtend;
  }
}

// With -o passthrough, how the kernel is to serve a new open of `ino`
// (fuse_passthrough.h): from the server's file itself when LOCALIO hands this caller an
// fd of it (or when other opens already use it), else through this daemon. Counted
// until EndOpen.
FuseOpenChoice ChooseOpen(MountState& m, fuse_ino_t ino, const OpenFile& of) {
  if (m.passthrough == nullptr) return {};
  std::optional<FuseOpenChoice> choice;
  if (m.passthrough->usable() && m.localio_path != nullptr) {
    (void)m.localio_path->WithLocalFile(of.handle, of.writable, of.cred, [&](int fd) {
      choice = m.passthrough->ChooseOpen(ino, fd);
      return absl::OkStatus();
    });
  }
  return choice ? *choice : m.passthrough->ChooseOpen(ino, /*local_fd=*/-1);
}

void EndOpen(MountState& m, fuse_ino_t ino, const OpenFile& of) {
  if (m.passthrough != nullptr) m.passthrough->EndOpen(ino, of.mode);
}

// The open reply (create reply when `entry` is set) for `of`, in the mode ChooseOpen
// picks; on failure (returned non-zero) that choice is already ended.
int ReplyOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi, OpenFile* of,
              const fuse_entry_param* entry) {
  MountState& m = *State(req);
  const FuseOpenChoice choice = ChooseOpen(m, ino, *of);
  of->mode = choice.mode;
  int rc;
  {
    FusePassthrough::OpenReplyScope mark(
        choice.mode == FuseOpenMode::kPassthrough ? choice.backing_id : 0);
    rc = entry != nullptr ? fuse_reply_create(req, entry, fi) : fuse_reply_open(req, fi);
  }
  if (rc != 0) EndOpen(m, ino, *of);
  return rc;
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (ino == kStatsIno) {
    if ((fi->flags & O_ACCMODE) != O_RDONLY) return (void)fuse_reply_err(req, EACCES);
    // The snapshot lives with the open file; direct_io because its size is not known
    // to the kernel (st_size 0).
    fi->fh = reinterpret_cast<uint64_t>(new std::string(StatsText(*State(req))));
    fi->direct_io = 1;
    if (fuse_reply_open(req, fi) != 0) delete reinterpret_cast<std::string*>(fi->fh);
    return;
  }
  std::optional<FileHandle> fh = HandleOr(req, ino);
  if (!fh) return;
  MountState& m = *State(req);
  // Counted before the server is asked, so that an unlink from now on keeps the file.
  m.inodes->Open(ino);
  absl::Cleanup not_opened = [&] { CloseInode(m, ino); };
  // Close-to-open: permission is checked by the server at open, as NFS clients do.
  const uint32_t want = AccessForOpen(fi->flags);
  absl::StatusOr<uint32_t> granted = m.client->Access(*fh, want, CallerCredentials(req));
  if (!granted.ok()) return ReplyStatus(req, granted.status());
  if ((*granted & want) != want) return (void)fuse_reply_err(req, EACCES);
  OpenFile* of = m.open_files.Add(
      OpenFile{*std::move(fh), CallerCredentials(req), (fi->flags & O_ACCMODE) != O_RDONLY});
  fi->fh = reinterpret_cast<uint64_t>(of);
  fi->keep_cache = 0;  // revalidate cached pages on every open (close-to-open)
  if (ReplyOpen(req, ino, fi, of, nullptr) != 0) {
    m.open_files.Remove(of);
    return;
  }
  std::move(not_opened).Cancel();  // until release
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi) {
  std::optional<FileHandle> dir = HandleOr(req, parent);
  if (!dir) return;
  const CreateMode how = (fi->flags & O_EXCL) ? CreateMode::kGuarded : CreateMode::kUnchecked;
  absl::StatusOr<Entry> e =
      State(req)->client->Create(*dir, name, how, mode & 07777, CallerCredentials(req));
  if (!e.ok()) return ReplyStatus(req, e.status());
  MountState& m = *State(req);
  const fuse_ino_t ino = m.inodes->Ref(e->handle);
  m.inodes->Open(ino);
  const fuse_entry_param param = EntryParam(m, ino, e->attributes);
  OpenFile* of = m.open_files.Add(
      OpenFile{e->handle, CallerCredentials(req), (fi->flags & O_ACCMODE) != O_RDONLY});
  fi->fh = reinterpret_cast<uint64_t>(of);
  fi->keep_cache = 0;
  if (ReplyOpen(req, ino, fi, of, &param) != 0) {
    CloseInode(m, ino);
    m.inodes->Forget(ino, 1);
    m.open_files.Remove(of);
  }
}

// COMMIT pending writes of `ino` (if any, or always when `force`).
int CommitErrno(fuse_req_t req, fuse_ino_t ino, bool force) {
  if (ino == kStatsIno) return 0;
  std::optional<FileHandle> fh = State(req)->inodes->Get(ino);
  if (!fh) return ESTALE;
  Nfs3Client& c = *State(req)->client;
  if (!force && !c.HasUncommitted(*fh)) return 0;
  return ErrnoOf(c.Commit(*fh, CallerCredentials(req)).status());
}

void OpFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  // Every close(2): close-to-open consistency needs the data stable on the server.
  // Writes through a passthrough open went to the server's file without us: COMMIT.
  const bool wrote_around_us = ino != kStatsIno &&
                               OpenFileOf(fi)->mode == FuseOpenMode::kPassthrough &&
                               OpenFileOf(fi)->writable;
  fuse_reply_err(req, CommitErrno(req, ino, /*force=*/wrote_around_us));
}

void OpFsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  fuse_reply_err(req, CommitErrno(req, ino, /*force=*/true));
}

void OpRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (ino == kStatsIno) {
    delete reinterpret_cast<std::string*>(fi->fh);
    return (void)fuse_reply_err(req, 0);
  }
  // flush already committed; this covers writes through a dup'd, never-flushed fd. Its
  // error has nobody to go to.
  (void)CommitErrno(req, ino, /*force=*/false);
  EndOpen(*State(req), ino, *OpenFileOf(fi));
  State(req)->open_files.Remove(OpenFileOf(fi));
  CloseInode(*State(req), ino);  // the last close of an unlinked file removes it
  State(req)->releases.fetch_add(1, std::memory_order_relaxed);
  fuse_reply_err(req, 0);
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (!State(req)->inodes->Get(ino)) return (void)fuse_reply_err(req, ESTALE);
  auto* d = new DirHandle;
  fi->fh = reinterpret_cast<uint64_t>(d);
  if (fuse_reply_open(req, fi) != 0) delete d;
}

void OpReleasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  delete reinterpret_cast<DirHandle*>(fi->fh);
  fuse_reply_err(req, 0);
}

// readdir and readdirplus. Entries come from one full READDIRPLUS listing taken at
// offset 0: "." and ".." first, synthesised here (the server's own, if it lists them,
// are skipped, so they never appear twice); the stats file and silly-renamed files
// (inode_table.h, whoever hid them) are not listed.
//
// The reply is sent only after d->mu is released: once the kernel has the reply, the
// process may close the directory and another FUSE thread may run releasedir, which
// frees `d`.
void DoReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi,
               bool plus) {
  MountState* m = State(req);
  auto* d = reinterpret_cast<DirHandle*>(fi->fh);
  std::string buf(size, '\0');
  size_t used = 0;
  std::vector<fuse_ino_t> refs;  // references to give back if the reply fails
  absl::Status error;
  {
    absl::MutexLock l(&d->mu);
    if (off == 0) {
      std::optional<FileHandle> dir = m->inodes->Get(ino);
      absl::StatusOr<std::vector<DirEntry>> list =
          dir ? m->client->ReadDirPlus(*dir, CallerCredentials(req))
              : absl::StatusOr<std::vector<DirEntry>>(ErrnoToStatus(ESTALE, "READDIR"));
      if (!list.ok()) {
        error = list.status();
      } else {
        d->entries.clear();
        d->entries.push_back(DirEntry{.name = ".", .fileid = ino});
        d->entries.push_back(DirEntry{.name = "..", .fileid = 1});
        for (DirEntry& e : *list) {
          if (e.name == "." || e.name == ".." || IsSillyName(e.name)) continue;
          if (ino == FUSE_ROOT_ID && e.name == kStatsName) continue;
          d->entries.push_back(std::move(e));
        }
      }
    }
    for (size_t i = static_cast<size_t>(off); error.ok() && i < d->entries.size(); ++i) {
      const DirEntry& e = d->entries[i];
      const off_t next = static_cast<off_t>(i + 1);
      const mode_t type =
          e.attributes ? TypeBits(e.attributes->type) : (i < 2 ? S_IFDIR : 0);
      size_t need;
      if (plus) {
        fuse_entry_param p{};
        const bool with_entry = e.handle.has_value() && e.attributes.has_value() && i >= 2;
        if (with_entry) {
          const fuse_ino_t entry_ino = m->inodes->Ref(*e.handle);
          p = EntryParam(*m, entry_ino, *e.attributes);
        } else {
          // ino 0: the kernel lists the name without instantiating an entry.
          p.attr.st_ino = e.fileid;
          p.attr.st_mode = type;
        }
        need = fuse_add_direntry_plus(req, buf.data() + used, size - used, e.name.c_str(),
                                      &p, next);
        if (need > size - used) {
          if (with_entry) m->inodes->Forget(p.ino, 1);
          break;
        }
        if (with_entry) refs.push_back(p.ino);
      } else {
        struct stat st{};
        st.st_ino = e.fileid;
        st.st_mode = type;
        need = fuse_add_direntry(req, buf.data() + used, size - used, e.name.c_str(), &st,
                                 next);
        if (need > size - used) break;
      }
      used += need;
    }
  }
  if (!error.ok()) return ReplyStatus(req, error);
  if (fuse_reply_buf(req, buf.data(), used) != 0) {
    for (fuse_ino_t r : refs) m->inodes->Forget(r, 1);
  }
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  DoReaddir(req, ino, size, off, fi, /*plus=*/false);
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   fuse_file_info* fi) {
  DoReaddir(req, ino, size, off, fi, /*plus=*/true);
}

void OpFsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  // Directory operations are synchronous in NFSv3: nothing to flush.
  fuse_reply_err(req, 0);
}

void OpStatfs(fuse_req_t req, fuse_ino_t ino) {
  MountState* m = State(req);
  absl::StatusOr<FsStat> s = m->client->FsStatus(m->client->root(), CallerCredentials(req));
  if (!s.ok()) return ReplyStatus(req, s.status());
  struct statvfs v{};
  v.f_bsize = 4096;
  v.f_frsize = 4096;
  v.f_blocks = s->total_bytes / v.f_frsize;
  v.f_bfree = s->free_bytes / v.f_frsize;
  v.f_bavail = s->avail_bytes / v.f_frsize;
  v.f_files = s->total_files;
  v.f_ffree = s->free_files;
  v.f_favail = s->avail_files;
  v.f_namemax = 255;
  fuse_reply_statfs(req, &v);
}

void OpAccess(fuse_req_t req, fuse_ino_t ino, int mask) {
  if (ino == kStatsIno) return (void)fuse_reply_err(req, (mask & (W_OK | X_OK)) ? EACCES : 0);
  std::optional<FileHandle> fh = HandleOr(req, ino);
  if (!fh) return;
  uint32_t want = 0;
  if (mask & R_OK) want |= kAccessRead;
  if (mask & W_OK) want |= kAccessModify;
  if (mask & X_OK) want |= kAccessExecute | kAccessLookup;
  Nfs3Client& c = *State(req)->client;
  const Credentials cred = CallerCredentials(req);
  if (want == 0) {  // F_OK: existence only
    return (void)fuse_reply_err(req, ErrnoOf(c.GetAttr(*fh, cred).status()));
  }
  absl::StatusOr<uint32_t> granted = c.Access(*fh, want, cred);
  if (!granted.ok()) return ReplyStatus(req, granted.status());
  bool ok = true;
  if ((mask & R_OK) && !(*granted & kAccessRead)) ok = false;
  if ((mask & W_OK) && !(*granted & kAccessModify)) ok = false;
  if ((mask & X_OK) && !(*granted & (kAccessExecute | kAccessLookup))) ok = false;
  fuse_reply_err(req, ok ? 0 : EACCES);
}

}  // namespace

fuse_lowlevel_ops MakeOps() {
  fuse_lowlevel_ops ops{};
  ops.init = OpInit;
  ops.lookup = OpLookup;
  ops.forget = OpForget;
  ops.forget_multi = OpForgetMulti;
  ops.getattr = OpGetattr;
  ops.setattr = OpSetattr;
  ops.readlink = OpReadlink;
  ops.mknod = OpMknod;
  ops.mkdir = OpMkdir;
  ops.unlink = OpUnlink;
  ops.rmdir = OpRmdir;
  ops.symlink = OpSymlink;
  ops.rename = OpRename;
  ops.link = OpLink;
  ops.open = OpOpen;
  ops.read = OpRead;
  ops.write = OpWrite;
  ops.flush = OpFlush;
  ops.release = OpRelease;
  ops.fsync = OpFsync;
  ops.opendir = OpOpendir;
  ops.readdir = OpReaddir;
  ops.releasedir = OpReleasedir;
  ops.fsyncdir = OpFsyncdir;
  ops.statfs = OpStatfs;
  ops.access = OpAccess;
  ops.create = OpCreate;
  ops.readdirplus = OpReaddirplus;
  return ops;
}

}  // namespace localnfs::client
