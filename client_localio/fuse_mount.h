// client_localio/fuse_mount.h — localnfs-mount: an NFSv3 export as a FUSE3 file system.
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
//
// The program's files: this header (the state of one mount, what the files share),
// fuse_ops.cc (the FUSE operations but READ and WRITE: names, attributes, opens and
// releases, silly rename, readdir, the stats file), fuse_io.cc (READ and WRITE: the
// spliced and copied read replies), mount_args.h (the command line) and
// localnfs_mount_main.cc (startup: mount, daemonise, the FUSE loop, unmount).
//
// Thread-safety: the FUSE loop calls the operations from up to kMaxThreads threads at
// once; MountState's members say what guards them (the client, the inode table and the
// passthrough serialise their own calls).
#pragma once

// The libfuse API this program is written against: before <fuse_lowlevel.h>, so every
// file of the program includes this header first.
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <stddef.h>
#include <stdint.h>

#include <atomic>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "client_localio/client.h"
#include "client_localio/fuse_passthrough.h"
#include "client_localio/inode_table.h"
#include "client_localio/localio_data_path.h"
#include "common/status.h"

namespace localnfs::client {

inline constexpr double kAttrTimeout = 1.0;
inline constexpr double kEntryTimeout = 1.0;
inline constexpr uint32_t kMaxIo = 1u << 20;
inline constexpr fuse_ino_t kStatsIno = 2;
inline constexpr char kStatsName[] = ".localnfs-stats";
// Reads of at least this size are spliced when they can be: below it, one copy costs
// less than the pipe system calls.
inline constexpr size_t kSpliceMin = 64 * 1024;
// FUSE worker threads: at most this many, all kept when idle.
inline constexpr int kMaxThreads = 64;

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

inline OpenFile* OpenFileOf(const fuse_file_info* fi) {
  return reinterpret_cast<OpenFile*>(fi->fh);
}

inline MountState* State(fuse_req_t req) {
  return static_cast<MountState*>(fuse_req_userdata(req));
}

inline void ReplyStatus(fuse_req_t req, const absl::Status& s) {
  fuse_reply_err(req, ErrnoOf(s));
}

// ---- Across the program's files ----

// fuse_ops.cc: the operations table of a mount whose userdata is a MountState.
fuse_lowlevel_ops MakeOps();
// fuse_ops.cc: removes the hidden name of a silly-renamed file at its last close (or as
// the mount goes away). Nobody waits for the outcome: a failure is logged, and the name
// stays on the server as the kernel client's would.
void RemoveSillyName(MountState& m, const SillyName& silly);

// fuse_io.cc: READ (spliced from a LOCALIO fd when MountState::splice_max allows, else
// copied) and WRITE of an open regular file, or of the stats file's snapshot.
void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
             fuse_file_info* fi);
// fuse_io.cc: the splice_max this process can use (above, "Read replies"):
// half the largest pipe of 2 × kMaxIo or kMaxIo it may make, 0 if neither.
size_t ProbeSpliceMax();

}  // namespace localnfs::client
