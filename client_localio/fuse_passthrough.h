// client_localio/fuse_passthrough.h — kernel FUSE passthrough for localnfs-mount
// (`-o passthrough`) on libfuse 3.14.
//
// With passthrough (Linux >= 6.9, CONFIG_FUSE_PASSTHROUGH) the kernel serves read,
// write and mmap of an open FUSE file straight from a "backing" file that the daemon
// registered (FUSE_DEV_IOC_BACKING_OPEN → backing id, named in the open reply with
// FOPEN_PASSTHROUGH): no FUSE request, no daemon thread, no copy per I/O. The mount
// registers the server's own file — the fd LOCALIO's OPEN_LOCAL_FH handed out for the
// caller's credentials after the checks an RPC would get — so a passthrough open is
// exactly as authorised as a LOCALIO one.
//
// libfuse 3.14 (Debian 12) can neither accept passthrough in its INIT reply nor carry a
// backing id in an open reply (both came with 3.16). This class fills in those two
// fields on the wire, through libfuse's own custom-I/O hooks (fuse_session_custom_io):
// the read hook notes whether the kernel's INIT offers FUSE_PASSTHROUGH; the writev hook
// sets FUSE_PASSTHROUGH + max_stack_depth 1 in the INIT reply and FOPEN_PASSTHROUGH +
// the backing id in the open/create reply that the same thread is sending (libfuse
// writes a reply on the thread that called fuse_reply_*, so a thread-local says which
// reply to mark). Every other message passes unchanged.
//
// The kernel's rule per inode: while an open of it uses a backing file, every other
// open must use that same backing file (any other reply fails the open with EIO), and
// while an open of it is in the page-cache mode, a passthrough open fails (ETXTBSY). The
// inode table here follows the kernel's state from our own replies and the RELEASEs
// (the kernel leaves an inode's io mode before it sends the RELEASE, so the table lags
// only on the safe side), and ChooseOpen() picks the mode the kernel will accept.
//
// What passthrough gives up (why it is an option, off by default): the kernel holds the
// backing file until the FUSE file is closed, so an open file keeps its direct access
// after the server exits or unexports — LOCALIO without passthrough falls back to RPC at
// its next I/O. New opens check LOCALIO again and fall back — except that while one
// open of an inode uses the backing file, the kernel takes no other kind of open of it:
// those share the backing file (after the server allowed them over RPC: ACCESS at
// open, as for every open). Writes through a
// passthrough open never reach the daemon: flush and fsync COMMIT them on the server
// (fsync of the server's file), so close-to-open durability stays NFS's.
//
// Thread-safety: all methods may be called from any FUSE worker thread.
#pragma once

#include <stdint.h>

#include <atomic>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

struct fuse_session;

namespace localnfs::client {

// How one open of a regular file is served.
enum class FuseOpenMode {
  kPassthrough,  // the kernel does the I/O on the backing file
  kCached,       // the daemon's data path (the kernel's page cache in front of it)
};

struct FuseOpenChoice {
  FuseOpenMode mode = FuseOpenMode::kCached;
  int32_t backing_id = 0;  // kPassthrough only
};

class FusePassthrough {
 public:
  // Installs the custom I/O on `se`, after fuse_session_mount (same /dev/fuse fd) and
  // before the session loop. Fails without CAP_SYS_ADMIN (the kernel requires it for
  // FUSE_DEV_IOC_BACKING_OPEN) or if libfuse refuses the hooks.
  static absl::StatusOr<std::unique_ptr<FusePassthrough>> Attach(fuse_session* se);
  FusePassthrough(const FusePassthrough&) = delete;
  FusePassthrough& operator=(const FusePassthrough&) = delete;

  // From the init operation: if the kernel offered FUSE_PASSTHROUGH, this thread's INIT
  // reply will accept it. Returns whether it was offered.
  bool AcceptInInit();
  // kOn until the INIT showed the kernel does not offer passthrough (kNotOffered: an
  // older kernel or one built without it) or the kernel refused a backing file
  // (kRefused: it did not take the INIT reply's flag — our mistake, or the kernel's).
  enum class State { kOn, kNotOffered, kRefused };
  State state() const { return state_.load(std::memory_order_relaxed); }
  bool usable() const { return state() == State::kOn; }
  // "on", "not-offered", "refused".
  const char* StateName() const;

  // The mode for a new open of `ino`, which the server has allowed (ACCESS). `local_fd`
  // is the caller's authorised LOCALIO fd of the file, or -1 (no LOCALIO for this
  // open). The choice is counted: every choice must be ended by exactly one EndOpen (on
  // release, or at once if the reply failed).
  FuseOpenChoice ChooseOpen(uint64_t ino, int local_fd) ABSL_LOCKS_EXCLUDED(mu_);
  void EndOpen(uint64_t ino, FuseOpenMode mode) ABSL_LOCKS_EXCLUDED(mu_);

  // Marks the open or create reply this thread sends while the scope lives as a
  // passthrough open of `backing_id` (0: nothing is marked).
  class OpenReplyScope {
   public:
    explicit OpenReplyScope(int32_t backing_id);
    ~OpenReplyScope();
    OpenReplyScope(const OpenReplyScope&) = delete;
    OpenReplyScope& operator=(const OpenReplyScope&) = delete;
  };

  // For the stats file.
  uint64_t passthrough_opens() const { return opens_.load(std::memory_order_relaxed); }
  uint64_t backing_files() const { return backing_files_.load(std::memory_order_relaxed); }

 private:
  explicit FusePassthrough(int dev_fd) : dev_fd_(dev_fd) {}

  struct InodeIo {
    int32_t backing_id = 0;          // registered while passthrough_opens > 0
    uint32_t passthrough_opens = 0;  // opens the kernel serves from backing_id
    uint32_t cached_opens = 0;       // opens in the kernel's page-cache mode
  };

  const int dev_fd_;  // the session's /dev/fuse fd (owned by the session)
  std::atomic<State> state_{State::kOn};
  std::atomic<uint64_t> opens_{0}, backing_files_{0};
  absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, InodeIo> inodes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace localnfs::client
