// client_localio/fuse_passthrough.cc — see fuse_passthrough.h.
#define FUSE_USE_VERSION 312
#include "client_localio/fuse_passthrough.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/unaligned.h"

namespace localnfs::client {
namespace {

// FUSE protocol 7.40 (Linux 6.9) additions that the 7.38 <linux/fuse.h> of Debian 12
// does not have, with the kernel's values.
constexpr uint32_t kFusePassthroughFlags2 = 1u << (37 - 32);  // FUSE_PASSTHROUGH
constexpr uint32_t kFopenPassthrough = 1u << 7;               // FOPEN_PASSTHROUGH
constexpr uint32_t kMaxStackDepth = 1;  // backing files on a non-stacked fs (ext4, xfs…)
struct FuseBackingMap {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
constexpr unsigned long kFuseDevIocBackingOpen = _IOW(229, 1, FuseBackingMap);
constexpr unsigned long kFuseDevIocBackingClose = _IOW(229, 2, uint32_t);
// In 7.40, fuse_init_out's first unused word is max_stack_depth and fuse_open_out's
// padding is backing_id.
constexpr size_t kInitOutMaxStackDepth = offsetof(fuse_init_out, unused);
constexpr size_t kOpenOutBackingId = offsetof(fuse_open_out, padding);
static_assert(offsetof(fuse_init_out, flags2) + 4 == kInitOutMaxStackDepth);
static_assert(sizeof(fuse_open_out) == 16 && kOpenOutBackingId == 12);

// Whether the kernel's INIT offered FUSE_PASSTHROUGH (one FUSE session per process).
std::atomic<bool> g_kernel_offers{false};
// Set by the thread about to send the INIT reply / an open or create reply.
thread_local bool t_accept_init = false;
thread_local int32_t t_open_backing_id = 0;

ssize_t ReadHook(int fd, void* buf, size_t len, void* /*userdata*/) {
  const ssize_t n = read(fd, buf, len);
  if (n >= static_cast<ssize_t>(sizeof(fuse_in_header) + offsetof(fuse_init_in, unused))) {
    const char* p = static_cast<const char*>(buf);
    if (LoadUnaligned<uint32_t>(p + offsetof(fuse_in_header, opcode)) == FUSE_INIT) {
      const char* in = p + sizeof(fuse_in_header);
      const uint32_t flags = LoadUnaligned<uint32_t>(in + offsetof(fuse_init_in, flags));
      const uint32_t flags2 = LoadUnaligned<uint32_t>(in + offsetof(fuse_init_in, flags2));
      g_kernel_offers.store((flags & FUSE_INIT_EXT) && (flags2 & kFusePassthroughFlags2),
                            std::memory_order_relaxed);
    }
  }
  return n;
}

// The reply payload: libfuse sends every reply that carries a struct as the header
// followed by one buffer (send_reply_ok), which is what the patches below expect.
char* SinglePayload(struct iovec* iov, int count, size_t min_len) {
  if (count != 2 || iov[0].iov_len != sizeof(fuse_out_header)) return nullptr;
  if (LoadUnaligned<int32_t>(static_cast<char*>(iov[0].iov_base) + offsetof(fuse_out_header, error)) !=
      0) {
    return nullptr;
  }
  if (iov[1].iov_len < min_len) return nullptr;
  return static_cast<char*>(iov[1].iov_base);
}

ssize_t WritevHook(int fd, struct iovec* iov, int count, void* /*userdata*/) {
  if (t_accept_init) {
    t_accept_init = false;
    if (char* out = SinglePayload(iov, count, kInitOutMaxStackDepth + 4)) {
      const size_t flags_at = offsetof(fuse_init_out, flags);
      const size_t flags2_at = offsetof(fuse_init_out, flags2);
      StoreUnaligned<uint32_t>(out + flags_at, LoadUnaligned<uint32_t>(out + flags_at) | FUSE_INIT_EXT);
      StoreUnaligned<uint32_t>(out + flags2_at, LoadUnaligned<uint32_t>(out + flags2_at) | kFusePassthroughFlags2);
      StoreUnaligned<uint32_t>(out + kInitOutMaxStackDepth, kMaxStackDepth);
    }
  } else if (t_open_backing_id != 0) {
    // OPEN replies fuse_open_out; CREATE replies fuse_entry_out then fuse_open_out.
    if (char* out = SinglePayload(iov, count, sizeof(fuse_open_out))) {
      char* open_out = out + iov[1].iov_len - sizeof(fuse_open_out);
      const size_t flags_at = offsetof(fuse_open_out, open_flags);
      StoreUnaligned<uint32_t>(open_out + flags_at, LoadUnaligned<uint32_t>(open_out + flags_at) | kFopenPassthrough);
      StoreUnaligned<int32_t>(open_out + kOpenOutBackingId, t_open_backing_id);
    }
  }
  return writev(fd, iov, count);
}

ssize_t SpliceSendHook(int fdin, off_t* offin, int fdout, off_t* offout, size_t len,
                       unsigned int flags, void* /*userdata*/) {
  return splice(fdin, offin, fdout, offout, len, flags);
}

}  // namespace

absl::StatusOr<std::unique_ptr<FusePassthrough>> FusePassthrough::Attach(fuse_session* se) {
  if (geteuid() != 0) {
    return absl::FailedPreconditionError(
        "passthrough needs root (CAP_SYS_ADMIN registers backing files)");
  }
  const int fd = fuse_session_fd(se);
  // Splice receive stays off (libfuse reads requests with our read hook); spliced
  // replies go through splice_send as before.
  const fuse_custom_io io = {.writev = WritevHook,
                             .read = ReadHook,
                             .splice_receive = nullptr,
                             .splice_send = SpliceSendHook};
  if (const int rc = fuse_session_custom_io(se, &io, fd); rc != 0) {
    return absl::InternalError(absl::StrCat("fuse_session_custom_io: ", strerror(-rc)));
  }
  return std::unique_ptr<FusePassthrough>(new FusePassthrough(fd));
}

bool FusePassthrough::AcceptInInit() {
  const bool offered = g_kernel_offers.load(std::memory_order_relaxed);
  t_accept_init = offered;
  if (!offered) state_.store(State::kNotOffered, std::memory_order_relaxed);
  return offered;
}

const char* FusePassthrough::StateName() const {
  switch (state()) {
    case State::kOn: return "on";
    case State::kNotOffered: return "not-offered";
    case State::kRefused: return "refused";
  }
  return "?";
}

FuseOpenChoice FusePassthrough::ChooseOpen(uint64_t ino, int local_fd) {
  absl::MutexLock l(&mu_);
  InodeIo& io = inodes_[ino];
  if (io.passthrough_opens > 0) {
    // The kernel serves this inode from io.backing_id and takes no other kind of open
    // until the last of those is closed (see the header).
    ++io.passthrough_opens;
    opens_.fetch_add(1, std::memory_order_relaxed);
    return {FuseOpenMode::kPassthrough, io.backing_id};
  }
  if (local_fd >= 0 && io.cached_opens == 0 && usable()) {
    FuseBackingMap map{.fd = local_fd, .flags = 0, .padding = 0};
    const int id = ioctl(dev_fd_, kFuseDevIocBackingOpen, &map);
    if (id > 0) {
      io.backing_id = id;
      io.passthrough_opens = 1;
      opens_.fetch_add(1, std::memory_order_relaxed);
      backing_files_.fetch_add(1, std::memory_order_relaxed);
      return {FuseOpenMode::kPassthrough, id};
    }
    const int err = errno;
    if (err == EPERM) {  // the kernel did not take passthrough at INIT
      state_.store(State::kRefused, std::memory_order_relaxed);
      LOG_WARNING("FUSE passthrough: the kernel refused backing files (%s); opens use "
                  "the FUSE data path", strerror(err));
    } else {
      LOG_WARNING("FUSE passthrough: backing file for inode %llu: %s; this open uses "
                  "the FUSE data path", static_cast<unsigned long long>(ino), strerror(err));
    }
  }
  ++io.cached_opens;
  return {FuseOpenMode::kCached, 0};
}

void FusePassthrough::EndOpen(uint64_t ino, FuseOpenMode mode) {
  absl::MutexLock l(&mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  InodeIo& io = it->second;
  if (mode == FuseOpenMode::kPassthrough && io.passthrough_opens > 0) {
    if (--io.passthrough_opens == 0) {
      uint32_t id = static_cast<uint32_t>(io.backing_id);
      if (ioctl(dev_fd_, kFuseDevIocBackingClose, &id) != 0) {
        LOG_WARNING("FUSE passthrough: closing backing file %u: %s", id, strerror(errno));
      }
      io.backing_id = 0;
      backing_files_.fetch_sub(1, std::memory_order_relaxed);
    }
  } else if (mode == FuseOpenMode::kCached && io.cached_opens > 0) {
    --io.cached_opens;
  }
  if (io.passthrough_opens == 0 && io.cached_opens == 0) inodes_.erase(it);
}

FusePassthrough::OpenReplyScope::OpenReplyScope(int32_t backing_id) {
  t_open_backing_id = backing_id;
}
FusePassthrough::OpenReplyScope::~OpenReplyScope() { t_open_backing_id = 0; }

}  // namespace localnfs::client
