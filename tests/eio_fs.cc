// tests/eio_fs.cc — a tiny in-memory FUSE file system whose I/O fails on purpose, for
// tests/backend_errors_test.cc (a failing disk without device-mapper).
//
//   eio_fs MOUNTPOINT        # foreground, single-threaded, -o allow_other
//
// One flat directory, the mount's root, holding regular files kept in memory. Whether
// an operation fails depends only on the file's name:
//   bad*      read, write and fsync answer EIO (opened with direct_io: no page cache)
//   syncbad*  fsync answers EIO; read and write work
//   badattr*  lookup and getattr answer EIO (the name is listed by readdir, nothing else)
//   anything else works normally.
// At start the root holds "good" ("good data\n"), "bad" and "syncbad" (4 KiB each) and
// "badattr"; files can be created (mknod/create), written, truncated and removed.
// Each injected failure is reported on stderr as "eio_fs: injected EIO: OP NAME".
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

enum class Fault { kNone, kIo, kSync, kAttr };

Fault FaultOf(std::string_view name) {
  if (name.starts_with("badattr")) return Fault::kAttr;
  if (name.starts_with("syncbad")) return Fault::kSync;
  if (name.starts_with("bad")) return Fault::kIo;
  return Fault::kNone;
}

struct Node {
  std::string name;  // "" for the root
  bool dir = false;
  bool linked = true;  // false once unlinked
  mode_t mode = 0;     // permission bits
  uid_t uid = 0;
  gid_t gid = 0;
  std::string data;
  timespec atime{}, mtime{}, ctime{};
};

constexpr fuse_ino_t kRoot = FUSE_ROOT_ID;

struct Fs {
  // nodes[ino]; index 0 unused. Nodes are never freed (ids stay valid for handles).
  std::vector<Node> nodes;
  std::map<std::string, fuse_ino_t> root_entries;
};

Fs* FsOf(fuse_req_t req) { return static_cast<Fs*>(fuse_req_userdata(req)); }

timespec Now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}

void Injected(const char* op, const Node& n) {
  fprintf(stderr, "eio_fs: injected EIO: %s %s\n", op, n.name.c_str());
}

Node* NodeOf(Fs* fs, fuse_ino_t ino) {
  if (ino == 0 || ino >= fs->nodes.size()) return nullptr;
  return &fs->nodes[ino];
}

struct stat StatOf(const Node& n, fuse_ino_t ino) {
  struct stat st;
  memset(&st, 0, sizeof(st));
  st.st_ino = ino;
  st.st_mode = (n.dir ? S_IFDIR : S_IFREG) | n.mode;
  st.st_nlink = n.dir ? 2 : (n.linked ? 1 : 0);
  st.st_uid = n.uid;
  st.st_gid = n.gid;
  st.st_size = static_cast<off_t>(n.data.size());
  st.st_blksize = 4096;
  st.st_blocks = static_cast<blkcnt_t>((n.data.size() + 511) / 512);
  st.st_atim = n.atime;
  st.st_mtim = n.mtime;
  st.st_ctim = n.ctime;
  return st;
}

fuse_ino_t AddNode(Fs* fs, Node n) {
  fs->nodes.push_back(std::move(n));
  return fs->nodes.size() - 1;
}

fuse_ino_t AddFile(Fs* fs, const std::string& name, mode_t mode, uid_t uid, gid_t gid,
                   std::string data) {
  Node n;
  n.name = name;
  n.mode = mode & 07777;
  n.uid = uid;
  n.gid = gid;
  n.data = std::move(data);
  n.atime = n.mtime = n.ctime = Now();
  const fuse_ino_t ino = AddNode(fs, std::move(n));
  fs->root_entries[name] = ino;
  return ino;
}

void ReplyEntry(fuse_req_t req, const Node& n, fuse_ino_t ino) {
  fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  e.ino = ino;
  e.generation = 1;
  e.attr = StatOf(n, ino);
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
    const fuse_ino_t ino = n == "." ? parent : kRoot;
    return ReplyEntry(req, fs->nodes[ino], ino);
  }
  if (parent != kRoot) return (void)fuse_reply_err(req, ENOTDIR);
  auto it = fs->root_entries.find(std::string(n));
  if (it == fs->root_entries.end()) return (void)fuse_reply_err(req, ENOENT);
  const Node& node = fs->nodes[it->second];
  if (FaultOf(node.name) == Fault::kAttr) {
    Injected("lookup", node);
    return (void)fuse_reply_err(req, EIO);
  }
  ReplyEntry(req, node, it->second);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Node* n = NodeOf(FsOf(req), ino);
  if (n == nullptr) return (void)fuse_reply_err(req, ESTALE);
  if (FaultOf(n->name) == Fault::kAttr) {
    Injected("getattr", *n);
    return (void)fuse_reply_err(req, EIO);
  }
  struct stat st = StatOf(*n, ino);
  fuse_reply_attr(req, &st, 0.0);
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
               fuse_file_info*) {
  Node* n = NodeOf(FsOf(req), ino);
  if (n == nullptr) return (void)fuse_reply_err(req, ESTALE);
  if (FaultOf(n->name) == Fault::kAttr) {
    Injected("setattr", *n);
    return (void)fuse_reply_err(req, EIO);
  }
  const timespec now = Now();
  if (to_set & FUSE_SET_ATTR_MODE) n->mode = attr->st_mode & 07777;
  if (to_set & FUSE_SET_ATTR_UID) n->uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) n->gid = attr->st_gid;
  if (to_set & FUSE_SET_ATTR_SIZE) {
    if (n->dir) return (void)fuse_reply_err(req, EISDIR);
    n->data.resize(static_cast<size_t>(attr->st_size));
    n->mtime = now;
  }
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) n->atime = now;
  else if (to_set & FUSE_SET_ATTR_ATIME) n->atime = attr->st_atim;
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) n->mtime = now;
  else if (to_set & FUSE_SET_ATTR_MTIME) n->mtime = attr->st_mtim;
  n->ctime = (to_set & FUSE_SET_ATTR_CTIME) ? attr->st_ctim : now;
  struct stat st = StatOf(*n, ino);
  fuse_reply_attr(req, &st, 0.0);
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t) {
  Fs* fs = FsOf(req);
  if (parent != kRoot) return (void)fuse_reply_err(req, ENOTDIR);
  if (!S_ISREG(mode)) return (void)fuse_reply_err(req, EPERM);
  if (fs->root_entries.count(name) != 0) return (void)fuse_reply_err(req, EEXIST);
  const fuse_ctx* ctx = fuse_req_ctx(req);
  const fuse_ino_t ino = AddFile(fs, name, mode & ~ctx->umask, ctx->uid, ctx->gid, "");
  fs->nodes[kRoot].mtime = fs->nodes[kRoot].ctime = Now();
  ReplyEntry(req, fs->nodes[ino], ino);
}

void SetOpenFlags(const Node& n, fuse_file_info* fi) {
  // Failing files bypass the page cache, so every read and write reaches us.
  fi->direct_io = FaultOf(n.name) == Fault::kIo ? 1 : 0;
  fi->keep_cache = 0;
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi) {
  Fs* fs = FsOf(req);
  if (parent != kRoot) return (void)fuse_reply_err(req, ENOTDIR);
  auto it = fs->root_entries.find(name);
  fuse_ino_t ino;
  if (it != fs->root_entries.end()) {
    if (fi->flags & O_EXCL) return (void)fuse_reply_err(req, EEXIST);
    ino = it->second;
  } else {
    const fuse_ctx* ctx = fuse_req_ctx(req);
    ino = AddFile(fs, name, mode & ~ctx->umask, ctx->uid, ctx->gid, "");
    fs->nodes[kRoot].mtime = fs->nodes[kRoot].ctime = Now();
  }
  const Node& n = fs->nodes[ino];
  SetOpenFlags(n, fi);
  fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  e.ino = ino;
  e.generation = 1;
  e.attr = StatOf(n, ino);
  e.entry_timeout = 1.0;
  fuse_reply_create(req, &e, fi);
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Fs* fs = FsOf(req);
  if (parent != kRoot) return (void)fuse_reply_err(req, ENOTDIR);
  auto it = fs->root_entries.find(name);
  if (it == fs->root_entries.end()) return (void)fuse_reply_err(req, ENOENT);
  Node& n = fs->nodes[it->second];
  n.linked = false;
  n.ctime = Now();
  fs->root_entries.erase(it);
  fs->nodes[kRoot].mtime = fs->nodes[kRoot].ctime = Now();
  fuse_reply_err(req, 0);
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Node* n = NodeOf(FsOf(req), ino);
  if (n == nullptr) return (void)fuse_reply_err(req, ESTALE);
  if (n->dir) return (void)fuse_reply_err(req, EISDIR);
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
  Node* n = NodeOf(FsOf(req), ino);
  if (n == nullptr) return (void)fuse_reply_err(req, ESTALE);
  const Fault f = FaultOf(n->name);
  if (f == Fault::kIo || f == Fault::kSync) {
    Injected("fsync", *n);
    return (void)fuse_reply_err(req, EIO);
  }
  fuse_reply_err(req, 0);
}

void OpFlush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Fs* fs = FsOf(req);
  if (ino != kRoot) return (void)fuse_reply_err(req, ENOTDIR);
  // Entry i of: ".", "..", then the names in order; the offset of an entry is i + 1.
  std::vector<std::pair<std::string, fuse_ino_t>> all = {{".", kRoot}, {"..", kRoot}};
  for (const auto& [name, child] : fs->root_entries) all.emplace_back(name, child);
  std::string out;
  for (size_t i = static_cast<size_t>(off); i < all.size(); ++i) {
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_ino = all[i].second;
    st.st_mode = fs->nodes[all[i].second].dir ? S_IFDIR : S_IFREG;
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
  if (argc != 2) {
    fprintf(stderr, "usage: %s MOUNTPOINT\n", argv[0]);
    return 2;
  }
  Fs fs;
  fs.nodes.resize(2);
  Node& root = fs.nodes[kRoot];
  root.dir = true;
  root.mode = 0755;
  root.atime = root.mtime = root.ctime = Now();
  AddFile(&fs, "good", 0644, 0, 0, "good data\n");
  AddFile(&fs, "bad", 0644, 0, 0, std::string(4096, 'b'));
  AddFile(&fs, "syncbad", 0644, 0, 0, std::string(4096, 's'));
  AddFile(&fs, "badattr", 0644, 0, 0, "unreachable\n");

  fuse_lowlevel_ops ops;
  memset(&ops, 0, sizeof(ops));
  ops.init = OpInit;
  ops.lookup = OpLookup;
  ops.getattr = OpGetattr;
  ops.setattr = OpSetattr;
  ops.mknod = OpMknod;
  ops.create = OpCreate;
  ops.unlink = OpUnlink;
  ops.open = OpOpen;
  ops.read = OpRead;
  ops.write = OpWrite;
  ops.fsync = OpFsync;
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
  return rc;
}
