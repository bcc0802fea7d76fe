// tests/eio_fs.cc — a tiny in-memory FUSE file system whose I/O fails on purpose, and
// which can write down what was asked of it and when: for tests/backend_errors_test.cc
// (a failing disk without device-mapper), tests/create_attrs_test.cc (a failure after a
// creation) and tests/durability_test.cc (metadata commits before the NFS reply).
//
//   eio_fs MOUNTPOINT [--oplog FILE]     # foreground, single-threaded, -o allow_other
//
// A tree of directories, regular files, symlinks and special files kept in memory. Whether
// an operation fails depends only on the object's name:
//   bad*      read, write and fsync answer EIO (opened with direct_io: no page cache)
//   syncbad*  fsync answers EIO; read and write work
//   badattr*  lookup and getattr answer EIO (the name is listed by readdir, nothing else)
//   setattrbad*  setattr (chmod, chown, utimes, truncate) answers EIO; it can be created
//   anything else works normally.
// At start the root holds "good" ("good data\n"), "bad" and "syncbad" (4 KiB each) and
// "badattr"; objects can be created (create, mknod, mkdir, symlink, link), written,
// truncated, renamed and removed. There are no permission checks (no default_permissions:
// the server checks). Each injected failure is reported on stderr as
// "eio_fs: injected EIO: OP NAME".
//
// --oplog FILE: every change and every fsync / fsyncdir is appended to FILE as one line
//   "<CLOCK_MONOTONIC ns> <op> <ino> [<name> [<ino2> <name2>]]"
// written (write(2), O_APPEND) BEFORE the kernel gets the reply, so a process that saw
// the operation complete finds its line. Ops and their inode fields:
//   create|mknod|mkdir|symlink|unlink|rmdir DIR NAME   link INO DIR NAME
//   rename FROMDIR NAME TODIR NEWNAME   setattr INO   fsync INO   fsyncdir INO
//
// Inode numbers are node ids and are never reused or forgotten, and "." / ".." resolve,
// so the kernel can decode the file handles localnfsd makes (name_to_handle_at /
// open_by_handle_at; FUSE_CAP_EXPORT_SUPPORT).
//
// Prints "eio_fs: ready" on stdout once the mount is in place, then serves until
// SIGTERM / SIGINT / SIGHUP, and unmounts. Exit codes: 0 after a signal, 2 bad usage,
// 3 the mount failed (no usable /dev/fuse), 1 other failures.
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace {

enum class Fault { kNone, kIo, kSync, kAttr, kSetattr };

Fault FaultOf(std::string_view name) {
  if (name.starts_with("badattr")) return Fault::kAttr;
  if (name.starts_with("syncbad")) return Fault::kSync;
  if (name.starts_with("setattrbad")) return Fault::kSetattr;
  if (name.starts_with("bad")) return Fault::kIo;
  return Fault::kNone;
}

struct Node {
  std::string name;  // the name it was created with ("" for the root); faults use it
  mode_t mode = 0;   // type and permission bits
  fuse_ino_t parent = 0;  // directories: where ".." leads
  nlink_t links = 1;      // non-directories: names that lead to it (0 once removed)
  uid_t uid = 0;
  gid_t gid = 0;
  dev_t rdev = 0;
  std::string data;  // file contents, or a symlink's target
  std::map<std::string, fuse_ino_t> children;  // directories
  timespec atime{}, mtime{}, ctime{};
  bool dir() const { return S_ISDIR(mode); }
};

constexpr fuse_ino_t kRoot = FUSE_ROOT_ID;

struct Fs {
  // nodes[ino]; index 0 unused. Nodes are never freed (ids stay valid for handles).
  std::vector<Node> nodes;
  int oplog = -1;  // --oplog, or -1
};

Fs* FsOf(fuse_req_t req) { return static_cast<Fs*>(fuse_req_userdata(req)); }

timespec Now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}

// One --oplog line; the caller replies to the kernel only after this returns.
void Record(Fs* fs, const char* op, fuse_ino_t ino, std::string_view name = {},
            fuse_ino_t ino2 = 0, std::string_view name2 = {}) {
  if (fs->oplog < 0) return;
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  std::string line =
      std::to_string(static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec) + " " +
      op + " " + std::to_string(ino);
  if (!name.empty()) line += " " + std::string(name);
  if (ino2 != 0) line += " " + std::to_string(ino2) + " " + std::string(name2);
  line += "\n";
  if (write(fs->oplog, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    fprintf(stderr, "eio_fs: oplog write: %s\n", strerror(errno));
}

void Injected(const char* op, const Node& n) {
  fprintf(stderr, "eio_fs: injected EIO: %s %s\n", op, n.name.c_str());
}

Node* NodeOf(Fs* fs, fuse_ino_t ino) {
  if (ino == 0 || ino >= fs->nodes.size()) return nullptr;
  return &fs->nodes[ino];
}

Node* DirOf(Fs* fs, fuse_ino_t ino) {
  Node* n = NodeOf(fs, ino);
  return n != nullptr && n->dir() ? n : nullptr;
}

struct stat StatOf(const Fs* fs, const Node& n, fuse_ino_t ino) {
  struct stat st;
  memset(&st, 0, sizeof(st));
  st.st_ino = ino;
  st.st_mode = n.mode;
  st.st_nlink = n.links;
  if (n.dir()) {
    st.st_nlink = 2;
    for (const auto& [name, child] : n.children) st.st_nlink += fs->nodes[child].dir() ? 1 : 0;
  }
  st.st_uid = n.uid;
  st.st_gid = n.gid;
  st.st_rdev = n.rdev;
  st.st_size = static_cast<off_t>(n.data.size());
  st.st_blksize = 4096;
  st.st_blocks = static_cast<blkcnt_t>((n.data.size() + 511) / 512);
  st.st_atim = n.atime;
  st.st_mtim = n.mtime;
  st.st_ctim = n.ctime;
  return st;
}

// Adds a new node named `name` to directory `parent` (which must not hold the name).
fuse_ino_t AddNode(Fs* fs, fuse_ino_t parent, const std::string& name, mode_t mode, uid_t uid,
                   gid_t gid, std::string data = {}) {
  Node n;
  n.name = name;
  n.mode = mode;
  n.parent = parent;
  n.uid = uid;
  n.gid = gid;
  n.data = std::move(data);
  n.atime = n.mtime = n.ctime = Now();
  fs->nodes.push_back(std::move(n));
  const fuse_ino_t ino = fs->nodes.size() - 1;
  Node& dir = fs->nodes[parent];
  dir.children[name] = ino;
  dir.mtime = dir.ctime = Now();
  return ino;
}

void ReplyEntry(fuse_req_t req, const Fs* fs, fuse_ino_t ino) {
  fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  e.ino = ino;
  e.generation = 1;
  e.attr = StatOf(fs, fs->nodes[ino], ino);
  // No attribute caching: every fstat of the server reaches getattr.
  e.attr_timeout = 0.0;
  e.entry_timeout = 1.0;
  fuse_reply_entry(req, &e);
}

void OpInit(void*, fuse_conn_info* conn) {
  conn->want |= FUSE_CAP_EXPORT_SUPPORT;
  // Writes go through to write() (and its failure to the writer) at once.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Fs* fs = FsOf(req);
  Node* p = NodeOf(fs, parent);
  if (p == nullptr) return (void)fuse_reply_err(req, ESTALE);
  const std::string_view n(name);
  // "." and "..": the kernel resolves file handles of uncached inodes this way.
  if (n == "." || n == "..") {
    const fuse_ino_t ino = n == "." ? parent : (p->dir() ? p->parent : kRoot);
    return ReplyEntry(req, fs, ino);
  }
  if (!p->dir()) return (void)fuse_reply_err(req, ENOTDIR);
  auto it = p->children.find(std::string(n));
  if (it == p->children.end()) return (void)fuse_reply_err(req, ENOENT);
  if (FaultOf(fs->nodes[it->second].name) == Fault::kAttr) {
    Injected("lookup", fs->nodes[it->second]);
    return (void)fuse_reply_err(req, EIO);
  }
  ReplyEntry(req, fs, it->second);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Fs* fs = FsOf(req);
  Node* n = NodeOf(fs, ino);
  if (n == nullptr) return (void)fuse_reply_err(req, ESTALE);
  if (FaultOf(n->name) == Fault::kAttr) {
    Injected("getattr", *n);
    return (void)fuse_reply_err(req, EIO);
  }
  struct stat st = StatOf(fs, *n, ino);
  fuse_reply_attr(req, &st, 0.0);
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
               fuse_file_info*) {
  Fs* fs = FsOf(req);
  Node* n = NodeOf(fs, ino);
  if (n == nullptr) return (void)fuse_reply_err(req, ESTALE);
  const Fault f = FaultOf(n->name);
  if (f == Fault::kAttr || f == Fault::kSetattr) {
    Injected("setattr", *n);
    return (void)fuse_reply_err(req, EIO);
  }
  const timespec now = Now();
  if (to_set & FUSE_SET_ATTR_MODE) n->mode = (n->mode & S_IFMT) | (attr->st_mode & 07777);
  if (to_set & FUSE_SET_ATTR_UID) n->uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) n->gid = attr->st_gid;
  if (to_set & FUSE_SET_ATTR_SIZE) {
    if (n->dir()) return (void)fuse_reply_err(req, EISDIR);
    n->data.resize(static_cast<size_t>(attr->st_size));
    n->mtime = now;
  }
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) n->atime = now;
  else if (to_set & FUSE_SET_ATTR_ATIME) n->atime = attr->st_atim;
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) n->mtime = now;
  else if (to_set & FUSE_SET_ATTR_MTIME) n->mtime = attr->st_mtim;
  n->ctime = (to_set & FUSE_SET_ATTR_CTIME) ? attr->st_ctim : now;
  Record(fs, "setattr", ino);
  struct stat st = StatOf(fs, *n, ino);
  fuse_reply_attr(req, &st, 0.0);
}

// The checks every creation of `name` in `parent` shares; 0 or an errno.
int CheckNew(Fs* fs, fuse_ino_t parent, const char* name) {
  Node* dir = DirOf(fs, parent);
  if (dir == nullptr) return ENOTDIR;
  return dir->children.count(name) != 0 ? EEXIST : 0;
}

void MakeNode(fuse_req_t req, const char* op, fuse_ino_t parent, const char* name,
              mode_t mode, dev_t rdev, std::string data = {}) {
  Fs* fs = FsOf(req);
  if (int err = CheckNew(fs, parent, name)) return (void)fuse_reply_err(req, err);
  const fuse_ctx* ctx = fuse_req_ctx(req);
  const mode_t perm = (mode & 07777) & ~(S_ISLNK(mode) ? 0 : ctx->umask);
  const fuse_ino_t ino =
      AddNode(fs, parent, name, (mode & S_IFMT) | perm, ctx->uid, ctx->gid, std::move(data));
  fs->nodes[ino].rdev = rdev;
  Record(fs, op, parent, name);
  ReplyEntry(req, fs, ino);
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  if (S_ISDIR(mode) || S_ISLNK(mode)) return (void)fuse_reply_err(req, EINVAL);
  MakeNode(req, "mknod", parent, name, mode, rdev);
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  MakeNode(req, "mkdir", parent, name, S_IFDIR | (mode & 07777), 0);
}

void OpSymlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  MakeNode(req, "symlink", parent, name, S_IFLNK | 0777, 0, target);
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  Node* n = NodeOf(FsOf(req), ino);
  if (n == nullptr) return (void)fuse_reply_err(req, ESTALE);
  if (!S_ISLNK(n->mode)) return (void)fuse_reply_err(req, EINVAL);
  fuse_reply_readlink(req, n->data.c_str());
}

void SetOpenFlags(const Node& n, fuse_file_info* fi) {
  // Failing files bypass the page cache, so every read and write reaches us.
  fi->direct_io = FaultOf(n.name) == Fault::kIo ? 1 : 0;
  fi->keep_cache = 0;
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi) {
  Fs* fs = FsOf(req);
  Node* dir = DirOf(fs, parent);
  if (dir == nullptr) return (void)fuse_reply_err(req, ENOTDIR);
  auto it = dir->children.find(name);
  fuse_ino_t ino;
  if (it != dir->children.end()) {
    if (fi->flags & O_EXCL) return (void)fuse_reply_err(req, EEXIST);
    ino = it->second;
  } else {
    const fuse_ctx* ctx = fuse_req_ctx(req);
    ino = AddNode(fs, parent, name, S_IFREG | (mode & 07777 & ~ctx->umask), ctx->uid, ctx->gid);
    Record(fs, "create", parent, name);
  }
  const Node& n = fs->nodes[ino];
  SetOpenFlags(n, fi);
  fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  e.ino = ino;
  e.generation = 1;
  e.attr = StatOf(fs, n, ino);
  e.entry_timeout = 1.0;
  fuse_reply_create(req, &e, fi);
}

// Drops the name `name` of `dir`; the caller checked what it names.
void Unlink(Fs* fs, Node* dir, const std::string& name) {
  auto it = dir->children.find(name);
  Node& n = fs->nodes[it->second];
  if (!n.dir() && n.links > 0) --n.links;
  n.ctime = Now();
  dir->children.erase(it);
  dir->mtime = dir->ctime = Now();
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Fs* fs = FsOf(req);
  Node* dir = DirOf(fs, parent);
  if (dir == nullptr) return (void)fuse_reply_err(req, ENOTDIR);
  auto it = dir->children.find(name);
  if (it == dir->children.end()) return (void)fuse_reply_err(req, ENOENT);
  if (fs->nodes[it->second].dir()) return (void)fuse_reply_err(req, EISDIR);
  Unlink(fs, dir, name);
  Record(fs, "unlink", parent, name);
  fuse_reply_err(req, 0);
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Fs* fs = FsOf(req);
  Node* dir = DirOf(fs, parent);
  if (dir == nullptr) return (void)fuse_reply_err(req, ENOTDIR);
  auto it = dir->children.find(name);
  if (it == dir->children.end()) return (void)fuse_reply_err(req, ENOENT);
  const Node& victim = fs->nodes[it->second];
  if (!victim.dir()) return (void)fuse_reply_err(req, ENOTDIR);
  if (!victim.children.empty()) return (void)fuse_reply_err(req, ENOTEMPTY);
  Unlink(fs, dir, name);
  Record(fs, "rmdir", parent, name);
  fuse_reply_err(req, 0);
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags) {
  Fs* fs = FsOf(req);
  if (flags != 0) return (void)fuse_reply_err(req, EINVAL);
  Node* from = DirOf(fs, parent);
  Node* to = DirOf(fs, newparent);
  if (from == nullptr || to == nullptr) return (void)fuse_reply_err(req, ENOTDIR);
  auto it = from->children.find(name);
  if (it == from->children.end()) return (void)fuse_reply_err(req, ENOENT);
  const fuse_ino_t moved = it->second;
  // A directory never goes below itself.
  for (fuse_ino_t up = newparent; fs->nodes[moved].dir(); up = fs->nodes[up].parent) {
    if (up == moved) return (void)fuse_reply_err(req, EINVAL);
    if (up == kRoot) break;
  }
  if (auto t = to->children.find(newname); t != to->children.end()) {
    if (t->second == moved) return (void)fuse_reply_err(req, 0);  // the same object
    const Node& old = fs->nodes[t->second];
    if (old.dir() != fs->nodes[moved].dir())
      return (void)fuse_reply_err(req, old.dir() ? EISDIR : ENOTDIR);
    if (old.dir() && !old.children.empty()) return (void)fuse_reply_err(req, ENOTEMPTY);
    Unlink(fs, to, newname);
  }
  from->children.erase(name);
  to->children[newname] = moved;
  if (fs->nodes[moved].dir()) fs->nodes[moved].parent = newparent;
  from->mtime = from->ctime = to->mtime = to->ctime = fs->nodes[moved].ctime = Now();
  Record(fs, "rename", parent, name, newparent, newname);
  fuse_reply_err(req, 0);
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  Fs* fs = FsOf(req);
  Node* n = NodeOf(fs, ino);
  if (n == nullptr) return (void)fuse_reply_err(req, ESTALE);
  if (n->dir()) return (void)fuse_reply_err(req, EPERM);
  if (int err = CheckNew(fs, newparent, newname)) return (void)fuse_reply_err(req, err);
  Node& dir = fs->nodes[newparent];
  dir.children[newname] = ino;
  dir.mtime = dir.ctime = Now();
  ++n->links;
  n->ctime = Now();
  Record(fs, "link", ino, "", newparent, newname);
  ReplyEntry(req, fs, ino);
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Node* n = NodeOf(FsOf(req), ino);
  if (n == nullptr) return (void)fuse_reply_err(req, ESTALE);
  if (n->dir()) return (void)fuse_reply_err(req, EISDIR);
  if (fi->flags & O_TRUNC) n->data.clear();
  SetOpenFlags(*n, fi);
  fuse_reply_open(req, fi);
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Node* n = NodeOf(FsOf(req), ino);
  if (n == nullptr) return (void)fuse_reply_err(req, ESTALE);
  if (FaultOf(n->name) == Fault::kIo) {
    Injected("read", *n);
    return (void)fuse_reply_err(req, EIO);
  }
  const size_t start = std::min(static_cast<size_t>(off), n->data.size());
  const size_t len = std::min(size, n->data.size() - start);
  n->atime = Now();
  fuse_reply_buf(req, n->data.data() + start, len);
}

void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
             fuse_file_info*) {
  Node* n = NodeOf(FsOf(req), ino);
  if (n == nullptr) return (void)fuse_reply_err(req, ESTALE);
  if (FaultOf(n->name) == Fault::kIo) {
    Injected("write", *n);
    return (void)fuse_reply_err(req, EIO);
  }
  const size_t end = static_cast<size_t>(off) + size;
  if (n->data.size() < end) n->data.resize(end);
  memcpy(n->data.data() + off, buf, size);
  n->mtime = n->ctime = Now();
  fuse_reply_write(req, size);
}

void OpFsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  Fs* fs = FsOf(req);
  Node* n = NodeOf(fs, ino);
  if (n == nullptr) return (void)fuse_reply_err(req, ESTALE);
  const Fault f = FaultOf(n->name);
  if (f == Fault::kIo || f == Fault::kSync) {
    Injected("fsync", *n);
    return (void)fuse_reply_err(req, EIO);
  }
  Record(fs, "fsync", ino);
  fuse_reply_err(req, 0);
}

void OpFsyncdir(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  Fs* fs = FsOf(req);
  if (DirOf(fs, ino) == nullptr) return (void)fuse_reply_err(req, ENOTDIR);
  Record(fs, "fsyncdir", ino);
  fuse_reply_err(req, 0);
}

void OpFlush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Fs* fs = FsOf(req);
  const Node* dir = DirOf(fs, ino);
  if (dir == nullptr) return (void)fuse_reply_err(req, ENOTDIR);
  // Entry i of: ".", "..", then the names in order; the offset of an entry is i + 1.
  std::vector<std::pair<std::string, fuse_ino_t>> all = {{".", ino}, {"..", dir->parent}};
  for (const auto& [name, child] : dir->children) all.emplace_back(name, child);
  std::string out;
  for (size_t i = static_cast<size_t>(off); i < all.size(); ++i) {
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_ino = all[i].second;
    st.st_mode = fs->nodes[all[i].second].mode & S_IFMT;
    const size_t need = fuse_add_direntry(req, nullptr, 0, all[i].first.c_str(), nullptr, 0);
    if (out.size() + need > size) break;
    const size_t at = out.size();
    out.resize(at + need);
    fuse_add_direntry(req, out.data() + at, need, all[i].first.c_str(), &st,
                      static_cast<off_t>(i + 1));
  }
  fuse_reply_buf(req, out.data(), out.size());
}

}  // namespace

int main(int argc, char** argv) {
  Fs fs;
  const bool with_log = argc == 4 && strcmp(argv[2], "--oplog") == 0;
  if (argc != 2 && !with_log) {
    fprintf(stderr, "usage: %s MOUNTPOINT [--oplog FILE]\n", argv[0]);
    return 2;
  }
  if (with_log) {
    fs.oplog = open(argv[3], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fs.oplog < 0) {
      fprintf(stderr, "eio_fs: %s: %s\n", argv[3], strerror(errno));
      return 1;
    }
  }
  fs.nodes.resize(2);
  Node& root = fs.nodes[kRoot];
  root.mode = S_IFDIR | 0755;
  root.parent = kRoot;
  root.atime = root.mtime = root.ctime = Now();
  AddNode(&fs, kRoot, "good", S_IFREG | 0644, 0, 0, "good data\n");
  AddNode(&fs, kRoot, "bad", S_IFREG | 0644, 0, 0, std::string(4096, 'b'));
  AddNode(&fs, kRoot, "syncbad", S_IFREG | 0644, 0, 0, std::string(4096, 's'));
  AddNode(&fs, kRoot, "badattr", S_IFREG | 0644, 0, 0, "unreachable\n");

  fuse_lowlevel_ops ops;
  memset(&ops, 0, sizeof(ops));
  ops.init = OpInit;
  ops.lookup = OpLookup;
  ops.getattr = OpGetattr;
  ops.setattr = OpSetattr;
  ops.mknod = OpMknod;
  ops.mkdir = OpMkdir;
  ops.symlink = OpSymlink;
  ops.readlink = OpReadlink;
  ops.create = OpCreate;
  ops.unlink = OpUnlink;
  ops.rmdir = OpRmdir;
  ops.rename = OpRename;
  ops.link = OpLink;
  ops.open = OpOpen;
  ops.read = OpRead;
  ops.write = OpWrite;
  ops.fsync = OpFsync;
  ops.fsyncdir = OpFsyncdir;
  ops.flush = OpFlush;
  ops.release = OpRelease;
  ops.readdir = OpReaddir;

  // The server (root, but with switched fs credentials) must reach the mount.
  char arg0[] = "eio_fs";
  char opt_o[] = "-o";
  char opts[] = "allow_other,fsname=eio_fs,subtype=eio_fs";
  char* fargv[] = {arg0, opt_o, opts, nullptr};
  fuse_args args = FUSE_ARGS_INIT(3, fargv);
  fuse_session* se = fuse_session_new(&args, &ops, sizeof(ops), &fs);
  fuse_opt_free_args(&args);  // fuse_session_new may have added to them
  if (se == nullptr) return 1;
  int rc = 1;
  if (fuse_set_signal_handlers(se) == 0) {
    if (fuse_session_mount(se, argv[1]) == 0) {
      printf("eio_fs: ready\n");
      fflush(stdout);
      // > 0: the signal that ended the loop (an orderly stop); < 0: -errno.
      rc = fuse_session_loop(se) < 0 ? 1 : 0;
      fuse_session_unmount(se);
    } else {
      rc = 3;
    }
    fuse_remove_signal_handlers(se);
  }
  fuse_session_destroy(se);
  if (fs.oplog >= 0) close(fs.oplog);
  return rc;
}
