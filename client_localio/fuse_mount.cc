// client_localio/fuse_mount.cc — localnfs-mount: an NFSv3 export as a FUSE3 file system.
//
//   localnfs-mount [-o localio=auto|on|off,passthrough,OPT...] [--mount-port N] [-f]
//                  HOST[:PORT]:/EXPORT MOUNTPOINT
//   fusermount3 -u MOUNTPOINT
//
// Design: the libfuse 3.14 low-level API. FUSE inode numbers map to NFS file handles
// through an InodeTable (lookup counts, forget); every operation is one or a few calls
// on Nfs3Client with the credentials of the calling process (fuse_req_ctx uid/gid and
// fuse_req_getgroups), so the server decides every operation, as for a kernel NFS
// mount. READ and WRITE use the handle and credentials captured at open (an OpenFile in
// fi->fh), as the kernel NFS client uses its open context: no inode-table lookup and no
// /proc read (fuse_req_getgroups) per I/O.
//
// Permissions: FUSE asks the daemon about an open, never about a path walk through a
// cached dentry, an open of a FIFO, or the MAY_WRITE that open(O_TRUNC) needs — checks
// the kernel NFS client makes with ACCESS. So the mount is made with
// default_permissions: the kernel checks every one of them against the mode, owner
// and group we report (cached for kAttrTimeout; a denial is re-checked with fresh
// attributes), and the server still checks each operation with the caller's
// credentials: an open asks ACCESS, and a size change without a file open for writing
// (truncate(2), open(O_TRUNC)) asks ACCESS for MODIFY first, so that neither a root the
// server squashes (the kernel lets root through) nor an owner (the server's SETATTR
// lets the owner truncate without write permission) truncates what it may not write.
// What the kernel cannot see from mode bits: ACLs on the server, and exports that map
// users to another uid (all_squash, anonuid) — the kernel judges by the uid it sees.
// Since every path walk now starts with a check of the root's mode, a failed GETATTR of
// the root is answered with its last known attributes, so that the stats file stays
// reachable when the export is gone.
//
// Unlink or rename over a file that is open through this mount renames it to a hidden
// ".nfs<fileid><counter>" name in its directory and removes that at its last close (the
// kernel NFS client's silly rename, inode_table.h), so the open file keeps working;
// readdir does not list such names, and fstat shows the nlink without them. A mount
// that a signal ends while such files are open removes their names on the way out; one
// that crashes leaves them behind, as a crashed kernel client does (remove them on the
// server, e.g. find EXPORT -name '.nfs*', once no client has them open).
//
// Read replies: with LOCALIO a read of at least kSpliceMin bytes is spliced from the
// server's file into a per-thread pipe and from there, by fuse_reply_data, into
// /dev/fuse — the only copy is the kernel's into the reader's pages. libfuse splices a
// reply only if its own pipe holds the reply plus a few pages, so the largest pipe this
// process may make (probed at start: 2 MiB with CAP_SYS_RESOURCE, else
// fs.pipe-max-size, 1 MiB by default) decides the read size: half of it, which also
// becomes max_read. Without LOCALIO or such pipes, and for small reads, the data is
// pread (or READ over RPC) into a per-thread buffer and sent with fuse_reply_buf. The
// FUSE loop runs one /dev/fuse fd per thread (clone_fd) and keeps its threads (no
// exit-and-respawn between bursts).
//
// -o passthrough (root, Linux >= 6.9): an open that LOCALIO may have is served by the
// kernel from the server's file itself (FusePassthrough, client_localio/
// fuse_passthrough.h): no read or write reaches this daemon; flush and fsync COMMIT.
//
// Attributes and entries are cached by the kernel for 1 s only
// (correctness first). Writes are UNSTABLE; flush (every close), fsync and release
// COMMIT them, and Nfs3Client resends after a server restart.
//
// Counters: the mount root holds a virtual read-only file `.localnfs-stats` (not listed
// by readdir) whose content is FormatCounters() of the data path plus the LOCALIO mode,
// the files open through the mount (`open_files`), those of them silly-renamed
// (`silly_renamed`) and the releases of files done so far (`releases`: a close's
// release is asynchronous, this says it has happened), e.g.
// `cat MOUNTPOINT/.localnfs-stats`. Each open takes a fresh snapshot.
//
// LOCALIO: the data path is a LocalioDataPath (client_localio/localio_data_path.h)
// looking for the server's broker in `-o runtime_dir=DIR` / `--runtime-dir DIR`
// (default: localnfsd's default). `localio=on` fails the mount when the handshake does
// not succeed ("LOCALIO handshake not available: <why>", exit 1); `auto` (the default)
// logs which path it uses and falls back to RPC silently; `off` never tries. The
// handshake runs before daemonising (so `on` can fail the mount) and again in the
// daemon, because the broker ties the uuid to the pid that registered it. The stats
// file shows local and RPC counters side by side and `localio_active 0|1`.
//
// Exit status: 0 after a clean unmount, 2 for usage errors, 1 for runtime failures
// (server unreachable, MNT refused, FUSE mount failed). The process daemonises after
// the mount is in place unless -f is given.
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "client_localio/client.h"
#include "client_localio/fuse_passthrough.h"
#include "client_localio/inode_table.h"
#include "client_localio/localio_data_path.h"
#include "common/log.h"
#include "common/mutex_mode.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace localnfs::client {
namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;
constexpr double kAttrTimeout = 1.0;
constexpr double kEntryTimeout = 1.0;
constexpr uint32_t kMaxIo = 1u << 20;
constexpr fuse_ino_t kStatsIno = 2;
constexpr char kStatsName[] = ".localnfs-stats";
// Reads of at least this size are spliced when they can be: below it, one copy costs
// less than the pipe system calls.
constexpr size_t kSpliceMin = 64 * 1024;
// FUSE worker threads: at most this many, all kept when idle.
constexpr int kMaxThreads = 64;

// An open regular file, in fi->fh from open/create to release: what READ and WRITE need,
// taken once at open.
struct OpenFile {
  FileHandle handle;
  Credentials cred;
  bool writable = false;  // opened O_WRONLY or O_RDWR
  // How the kernel serves it; counted in MountState::passthrough when that exists.
  FuseOpenMode mode = FuseOpenMode::kCached;
};

// Owns the OpenFiles whose addresses the kernel holds as fi->fh: made at open or
// create, freed at release — or with the mount, for those the kernel never released
// (a signal ended the loop while files were open).
class OpenFiles {
 public:
  OpenFile* Add(OpenFile of) {
    auto owned = std::make_unique<OpenFile>(std::move(of));
    OpenFile* raw = owned.get();
    absl::MutexLock l(&mu_);
    files_.emplace(raw, std::move(owned));
    return raw;
  }
  void Remove(OpenFile* of) {
    std::unique_ptr<OpenFile> victim;
    absl::MutexLock l(&mu_);
    auto it = files_.find(of);
    if (it == files_.end()) return;
    victim = std::move(it->second);
    files_.erase(it);
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<OpenFile*, std::unique_ptr<OpenFile>> files_ ABSL_GUARDED_BY(mu_);
};

// The state of one mount, the FUSE userdata.
struct MountState {
  std::unique_ptr<Nfs3Client> client;
  std::unique_ptr<InodeTable> inodes;
  LocalioMode localio = LocalioMode::kAuto;
  LocalioDataPath* localio_path = nullptr;  // owned by `client`
  // Largest read (= max_read) when read replies are spliced (LOCALIO on, pipes of twice
  // that allowed, FUSE_CAP_SPLICE_WRITE offered); 0: never spliced, max_read kMaxIo.
  size_t splice_max = 0;
  // Kernel FUSE passthrough (-o passthrough, fuse_passthrough.h); null when off.
  std::unique_ptr<FusePassthrough> passthrough;
  // The counter part of silly names (MakeSillyName); starts at a random value so that
  // two mounts hiding the same file try different names first.
  std::atomic<uint32_t> silly_counter{0};
  // The root's attributes from its last GETATTR, replied when a GETATTR of the root
  // fails (export gone, server refusing): with default_permissions every path walk
  // first checks the root's mode, and the stats file must stay reachable for diagnosis
  // when the server does not answer. Names under the root still fail as the server says.
  absl::Mutex root_mu;
  std::optional<Attributes> root_attrs ABSL_GUARDED_BY(root_mu);
  OpenFiles open_files;
  // Releases of regular files whose work (commit, silly-name removal) is done.
  std::atomic<uint64_t> releases{0};
};

OpenFile* OpenFileOf(const fuse_file_info* fi) { return reinterpret_cast<OpenFile*>(fi->fh); }

// An open directory: the snapshot readdir serves offsets from. Offset N (N >= 1) is
// the position after entry N-1; offset 0 refetches, so rewinddir sees changes.
struct DirHandle {
  absl::Mutex mu;
  std::vector<DirEntry> entries ABSL_GUARDED_BY(mu);
};

MountState* State(fuse_req_t req) { return static_cast<MountState*>(fuse_req_userdata(req)); }

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

void ReplyStatus(fuse_req_t req, const absl::Status& s) { fuse_reply_err(req, ErrnoOf(s)); }

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

// Removes the hidden name of a silly-renamed file at its last close (or as the mount
// goes away). Nobody waits for the outcome: a failure is logged, and the name stays
// on the server as the kernel client's would.
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

// This thread's reply buffer: grown to the largest read it served, reused (a fresh
// allocation per read would page-fault and zero it every time).
absl::Span<char> ThreadReadBuffer(size_t size) {
  thread_local std::unique_ptr<char[]> buf;
  thread_local size_t capacity = 0;
  if (capacity < size) {
    buf.reset(new char[size]);
    capacity = size;
  }
  return absl::Span<char>(buf.get(), size);
}

// A pipe of `bytes` capacity, or an invalid one if this process may not make it.
struct SplicePipe {
  UniqueFd read_end, write_end;
  bool Open(size_t bytes) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return false;
    read_end.reset(fds[0]);
    write_end.reset(fds[1]);
    if (fcntl(write_end.get(), F_SETPIPE_SZ, static_cast<int>(bytes)) < 0) {
      read_end.reset();
      write_end.reset();
      return false;
    }
    return true;
  }
};

// This thread's pipe for spliced read replies: twice splice_max, so a read of
// splice_max at any offset fits.
SplicePipe* ThreadSplicePipe(size_t splice_max) {
  thread_local SplicePipe pipe;
  if (!pipe.read_end.valid() && !pipe.Open(2 * splice_max)) return nullptr;
  return &pipe;
}

// The splice_max this process can use (see the file comment): half the largest pipe
// of 2 × kMaxIo or kMaxIo it may make, 0 if neither.
size_t ProbeSpliceMax() {
  for (size_t pipe_bytes : {2 * size_t{kMaxIo}, size_t{kMaxIo}}) {
    SplicePipe probe;
    if (probe.Open(pipe_bytes)) return pipe_bytes / 2;
  }
  return 0;
}

// LOCALIO read of `size` bytes at `off` spliced into /dev/fuse; false if nothing was
// replied (the caller reads another way).
bool ReplySplicedRead(fuse_req_t req, const OpenFile& of, size_t size, off_t off) {
  MountState* m = State(req);
  SplicePipe* pipe = ThreadSplicePipe(m->splice_max);
  if (pipe == nullptr) return false;
  absl::StatusOr<size_t> n =
      m->localio_path->ReadLocally(of.handle, of.cred, [&](int fd) -> ssize_t {
        loff_t pos = off;
        size_t got = 0;
        while (got < size) {
          // Blocking is safe: the pipe holds twice the largest read.
          const ssize_t r = splice(fd, &pos, pipe->write_end.get(), nullptr, size - got, 0);
          if (r < 0 && errno == EINTR) continue;
          if (r < 0) return -errno;
          if (r == 0) break;  // EOF
          got += static_cast<size_t>(r);
        }
        return static_cast<ssize_t>(got);
      });
  if (n.ok()) {
    fuse_bufvec bv = FUSE_BUFVEC_INIT(*n);
    bv.buf[0].flags = FUSE_BUF_IS_FD;
    bv.buf[0].fd = pipe->read_end.get();
    fuse_reply_data(req, &bv, static_cast<fuse_buf_copy_flags>(0));
  }
  // The reply takes all it was given; anything left (a failed reply or splice) must not
  // reach the next one.
  int left = 0;
  if (ioctl(pipe->read_end.get(), FIONREAD, &left) != 0 || left != 0) {
    pipe->read_end.reset();
    pipe->write_end.reset();
  }
  return n.ok();
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  if (ino == kStatsIno) {
    // Replied from a copy: once the kernel has the reply the reader may close the file,
    // and another FUSE thread's release frees the snapshot — possibly before this
    // thread's writev has returned (ASan's writev interceptor reads the buffer then).
    const std::string& text = *reinterpret_cast<std::string*>(fi->fh);
    const size_t start = std::min(static_cast<size_t>(off), text.size());
    const std::string part = text.substr(start, size);
    fuse_reply_buf(req, part.data(), part.size());
    return;
  }
  MountState* m = State(req);
  const OpenFile& of = *OpenFileOf(fi);
  size = std::min<size_t>(size, kMaxIo);
  if (m->splice_max != 0 && size >= kSpliceMin && size <= m->splice_max &&
      ReplySplicedRead(req, of, size, off)) {
    return;
  }
  const absl::Span<char> buf = ThreadReadBuffer(size);
  absl::StatusOr<ReadIntoResult> r =
      m->client->ReadInto(of.handle, static_cast<uint64_t>(off), buf, of.cred);
  if (!r.ok()) return ReplyStatus(req, r.status());
  fuse_reply_buf(req, buf.data(), r->count);
}

void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
             fuse_file_info* fi) {
  const OpenFile& of = *OpenFileOf(fi);
  absl::StatusOr<WriteResult> w = State(req)->client->Write(
      of.handle, static_cast<uint64_t>(off), std::string_view(buf, size), of.cred);
  if (!w.ok()) return ReplyStatus(req, w.status());
  fuse_reply_write(req, w->count);
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

// ---- command line ----

struct Args {
  std::string host;
  uint16_t nfs_port = 2049;
  uint16_t mount_port = 20048;
  std::string export_path;
  std::string source;  // as given, for messages and fsname
  std::string mountpoint;
  bool foreground = false;
  bool debug = false;
  LocalioMode localio = LocalioMode::kAuto;
  std::string runtime_dir;  // empty: DefaultRuntimeDir()
  bool passthrough = false;  // -o passthrough
  std::vector<std::string> fuse_options;  // -o options passed on to FUSE
};

constexpr char kUsage[] =
    "usage: localnfs-mount [-o localio=auto|on|off,OPT...] [--mount-port N] [-f] [-d]\n"
    "                      HOST[:PORT]:/EXPORT MOUNTPOINT\n"
    "  -o localio=MODE   auto (default): LOCALIO when possible, else RPC; on: fail\n"
    "                    the mount unless LOCALIO works; off: always RPC\n"
    "  -o runtime_dir=DIR  where localnfsd's broker is (also --runtime-dir DIR;\n"
    "                    default /run/localnfs as root, $XDG_RUNTIME_DIR/localnfs)\n"
    "  -o passthrough    with LOCALIO, let the kernel read and write open files on\n"
    "                    the server's file itself (Linux >= 6.9, root); an open file\n"
    "                    then keeps that access until closed, even if the server\n"
    "                    stops or unexports (see fuse_passthrough.h)\n"
    "  -o OPT            any other option is passed to FUSE (e.g. allow_other, ro)\n"
    "  --mount-port N    MOUNT v3 port (default 20048); the NFS port is PORT (2049)\n"
    "  -f                stay in the foreground;  -d  FUSE debug output (implies -f)\n"
    "Counters: cat MOUNTPOINT/.localnfs-stats.  Unmount: fusermount3 -u MOUNTPOINT\n";

bool ParsePort(std::string_view text, uint16_t* out) {
  uint32_t v = 0;
  if (!absl::SimpleAtoi(absl::string_view(text.data(), text.size()), &v) || v == 0 ||
      v > 65535) {
    return false;
  }
  *out = static_cast<uint16_t>(v);
  return true;
}

// HOST[:PORT]:/EXPORT, HOST may be [IPv6].
absl::Status ParseSource(const std::string& src, Args* a) {
  const size_t sep = src.find(":/");
  if (sep == std::string::npos || sep == 0) {
    return absl::InvalidArgumentError(absl::StrCat("bad source '", src,
                                                   "': expected HOST[:PORT]:/EXPORT"));
  }
  std::string hostport = src.substr(0, sep);
  a->export_path = src.substr(sep + 1);
  if (hostport.front() == '[') {
    const size_t close = hostport.find(']');
    if (close == std::string::npos) return absl::InvalidArgumentError("bad [IPv6] host");
    a->host = hostport.substr(1, close - 1);
    hostport = hostport.substr(close + 1);
    if (!hostport.empty()) {
      if (hostport[0] != ':' || !ParsePort(hostport.substr(1), &a->nfs_port)) {
        return absl::InvalidArgumentError(absl::StrCat("bad port in '", src, "'"));
      }
    }
  } else {
    const size_t colon = hostport.rfind(':');
    a->host = hostport.substr(0, colon);
    if (colon != std::string::npos &&
        !ParsePort(std::string_view(hostport).substr(colon + 1), &a->nfs_port)) {
      return absl::InvalidArgumentError(absl::StrCat("bad port in '", src, "'"));
    }
  }
  if (a->host.empty()) return absl::InvalidArgumentError("empty host");
  a->source = src;
  return absl::OkStatus();
}

absl::Status ParseOptions(const std::string& list, Args* a) {
  for (absl::string_view opt : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&opt, "localio=")) {
      absl::StatusOr<LocalioMode> mode = ParseLocalioMode(std::string_view(opt.data(), opt.size()));
      if (!mode.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("bad -o localio=", std::string(opt), " (auto, on or off)"));
      }
      a->localio = *mode;
      continue;
    }
    if (opt == "passthrough") {
      a->passthrough = true;
      continue;
    }
    if (absl::ConsumePrefix(&opt, "runtime_dir=")) {
      if (opt.empty()) return absl::InvalidArgumentError("empty -o runtime_dir=");
      a->runtime_dir = std::string(opt);
      continue;
    }
    a->fuse_options.emplace_back(opt);
  }
  return absl::OkStatus();
}

absl::Status ParseArgs(int argc, char** argv, Args* a) {
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* flag) -> absl::StatusOr<std::string> {
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(flag, " needs a value"));
      return std::string(argv[++i]);
    };
    if (arg == "-o") {
      ASSIGN_OR_RETURN(std::string v, value("-o"));
      RETURN_IF_ERROR(ParseOptions(v, a));
    } else if (arg.rfind("-o", 0) == 0 && arg.size() > 2) {
      RETURN_IF_ERROR(ParseOptions(arg.substr(2), a));
    } else if (arg == "--mount-port") {
      ASSIGN_OR_RETURN(std::string v, value("--mount-port"));
      if (!ParsePort(v, &a->mount_port)) {
        return absl::InvalidArgumentError(absl::StrCat("bad --mount-port ", v));
      }
    } else if (arg.rfind("--mount-port=", 0) == 0) {
      if (!ParsePort(std::string_view(arg).substr(13), &a->mount_port)) {
        return absl::InvalidArgumentError(absl::StrCat("bad ", arg));
      }
    } else if (arg == "--runtime-dir") {
      ASSIGN_OR_RETURN(a->runtime_dir, value("--runtime-dir"));
      if (a->runtime_dir.empty()) return absl::InvalidArgumentError("empty --runtime-dir");
    } else if (arg.rfind("--runtime-dir=", 0) == 0) {
      a->runtime_dir = arg.substr(14);
      if (a->runtime_dir.empty()) return absl::InvalidArgumentError("empty --runtime-dir");
    } else if (arg == "-f") {
      a->foreground = true;
    } else if (arg == "-d") {
      a->debug = true;
      a->foreground = true;
    } else if (!arg.empty() && arg[0] == '-') {
      return absl::InvalidArgumentError(absl::StrCat("unknown option ", arg));
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) {
    return absl::InvalidArgumentError("expected HOST[:PORT]:/EXPORT and MOUNTPOINT");
  }
  RETURN_IF_ERROR(ParseSource(positional[0], a));
  a->mountpoint = positional[1];
  return absl::OkStatus();
}

int Run(int argc, char** argv) {
  ConfigureMutexDeadlockDetection();
  SetLogProgramName("localnfs-mount");
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(kUsage, stdout);
      return 0;
    }
  }
  Args args;
  if (absl::Status s = ParseArgs(argc, argv, &args); !s.ok()) {
    fprintf(stderr, "localnfs-mount: %s\n%s", std::string(s.message()).c_str(), kUsage);
    return kExitUsage;
  }
  const std::string what = absl::StrCat(args.host, ":", args.export_path);

  MountState state;
  state.localio = args.localio;
  MountOptions options;
  absl::StatusOr<std::unique_ptr<Nfs3Client>> client = Nfs3Client::Mount(
      args.host, args.nfs_port, args.mount_port, args.export_path, options);
  if (!client.ok()) {
    fprintf(stderr, "localnfs-mount: mount %s: %s\n", what.c_str(),
            std::string(client.status().message()).c_str());
    return kExitRuntime;
  }
  state.client = *std::move(client);
  state.inodes = std::make_unique<InodeTable>(state.client->root());
  state.silly_counter.store(std::random_device{}(), std::memory_order_relaxed);
  LocalioOptions lio_options;
  lio_options.mode = args.localio;
  lio_options.runtime_dir = args.runtime_dir;
  absl::StatusOr<LocalioDataPath*> lio = LocalioDataPath::Install(state.client.get(), lio_options);
  if (!lio.ok()) {  // only localio=on fails here
    fprintf(stderr, "localnfs-mount: mount %s: localio=on: %s\n", what.c_str(),
            std::string(lio.status().message()).c_str());
    return kExitRuntime;
  }
  state.localio_path = *lio;
  if (args.localio != LocalioMode::kOff) state.splice_max = ProbeSpliceMax();
  LOG_INFO("mount %s: localio=%s: data path %s", what, LocalioModeName(args.localio),
           state.localio_path->Describe());

  std::vector<std::string> fuse_argv_storage = {"localnfs-mount"};
  std::vector<std::string> mount_opts = {
      absl::StrCat("fsname=localnfs:", what), "subtype=localnfs",
      absl::StrCat("max_read=", state.splice_max != 0 ? state.splice_max : kMaxIo)};
  // The kernel checks permissions on the attributes we report (the file comment,
  // "Permissions"); the server checks every operation again with the caller's
  // credentials. As root, serve every user like a kernel NFS mount.
  mount_opts.push_back("default_permissions");
  if (geteuid() == 0) mount_opts.push_back("allow_other");
  for (const std::string& o : args.fuse_options) mount_opts.push_back(o);
  fuse_argv_storage.push_back("-o");
  fuse_argv_storage.push_back(absl::StrJoin(mount_opts, ","));
  if (args.debug) fuse_argv_storage.push_back("-d");
  std::vector<char*> fuse_argv;
  for (std::string& s : fuse_argv_storage) fuse_argv.push_back(s.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(fuse_argv.size()), fuse_argv.data());

  const fuse_lowlevel_ops ops = MakeOps();
  fuse_session* se = fuse_session_new(&fargs, &ops, sizeof(ops), &state);
  if (se == nullptr) {
    fprintf(stderr, "localnfs-mount: mount %s: bad FUSE options '%s'\n", what.c_str(),
            fuse_argv_storage[2].c_str());
    return kExitUsage;
  }
  int rc = kExitRuntime;
  if (fuse_set_signal_handlers(se) != 0) {
    fprintf(stderr, "localnfs-mount: cannot install signal handlers\n");
  } else {
    if (fuse_session_mount(se, args.mountpoint.c_str()) != 0) {
      fprintf(stderr, "localnfs-mount: mount %s on %s: FUSE mount failed\n", what.c_str(),
              args.mountpoint.c_str());
    } else {
      // The NFS connections are plain sockets and survive the fork of fuse_daemonize;
      // no thread exists yet. The LOCALIO uuid does not (it names our pid).
      if (!args.foreground && args.localio != LocalioMode::kOff)
        state.localio_path->ReleaseBeforeFork();
      fuse_daemonize(args.foreground ? 1 : 0);
      if (!args.foreground && args.localio != LocalioMode::kOff) {
        // The daemon is a new pid: its parent's uuid does not authenticate it.
        absl::Status s = state.localio_path->RehandshakeAfterFork();
        LOG_INFO("mount %s: daemon data path %s", what,
                 s.ok() ? state.localio_path->Describe() : std::string(s.message()));
      }
      if (args.passthrough && args.localio == LocalioMode::kOff) {
        LOG_WARNING("mount %s: passthrough needs LOCALIO (localio=off): not used", what);
      } else if (args.passthrough) {
        absl::StatusOr<std::unique_ptr<FusePassthrough>> pt = FusePassthrough::Attach(se);
        if (pt.ok()) {
          state.passthrough = *std::move(pt);
        } else {
          LOG_WARNING("mount %s: passthrough: %s; opens use the FUSE data path", what,
                      std::string(pt.status().message()));
        }
      }
      fuse_loop_config* cfg = fuse_loop_cfg_create();
      // One /dev/fuse fd per worker thread; threads stay once started, so a burst of
      // I/O never pays for thread creation again.
      fuse_loop_cfg_set_clone_fd(cfg, 1);
      fuse_loop_cfg_set_idle_threads(cfg, kMaxThreads);
      fuse_loop_cfg_set_max_threads(cfg, kMaxThreads);
      rc = fuse_session_loop_mt(se, cfg) == 0 ? 0 : kExitRuntime;
      fuse_loop_cfg_destroy(cfg);
      // Files unlinked while open and still open now (a signal ended the loop) can
      // never be reached again: their hidden names go with us.
      for (const SillyName& silly : state.inodes->TakeSillyNames())
        RemoveSillyName(state, silly);
      fuse_session_unmount(se);
    }
    fuse_remove_signal_handlers(se);
  }
  fuse_session_destroy(se);
  fuse_opt_free_args(&fargs);
  return rc;
}

}  // namespace
}  // namespace localnfs::client

int main(int argc, char** argv) { return localnfs::client::Run(argc, argv); }
