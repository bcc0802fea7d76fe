// client_localio/fuse_io.cc — localnfs-mount's READ and WRITE (fuse_mount.h, "Read
// replies"): a LOCALIO read of at least kSpliceMin bytes is spliced from the server's
// file through this thread's pipe into /dev/fuse; every other read is copied into this
// thread's reply buffer (pread of the LOCALIO fd, or READ over RPC) and sent from
// there. Writes go to Nfs3Client::Write (UNSTABLE; flush, fsync and release COMMIT in
// fuse_ops.cc).
//
// Owns: one reply buffer and one splice pipe per FUSE thread (thread_local, grown or
// made on first use, kept for the thread's life). Thread-safety: every function runs
// on any FUSE thread; nothing here is shared between threads.
#include "client_localio/fuse_mount.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/unique_fd.h"

namespace localnfs::client {
namespace {

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

}  // namespace

size_t ProbeSpliceMax() {
  for (size_t pipe_bytes : {2 * size_t{kMaxIo}, size_t{kMaxIo}}) {
    SplicePipe probe;
    if (probe.Open(pipe_bytes)) return pipe_bytes / 2;
  }
  return 0;
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

}  // namespace localnfs::client
