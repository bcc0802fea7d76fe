#include "rpc/connection.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

namespace localnfs::rpc {
namespace {

bool Retryable(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

constexpr char kZeroPad[4] = {};

}  // namespace

bool Connection::Register() {
  absl::MutexLock l(&mu);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = static_cast<Pollable*>(this);
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd_.get(), &ev) != 0) return false;
  armed_ = EPOLLIN;
  return true;
}

bool Connection::UpdateInterestLocked() {
  if (closed_) return false;
  const bool reading = ReadingAllowedLocked();
  const uint32_t want = (reading ? uint32_t{EPOLLIN} : 0u) |
                        (out_.empty() ? 0u : uint32_t{EPOLLOUT});
  if (want == armed_) return reading;
  epoll_event ev{};
  ev.events = want;
  ev.data.ptr = static_cast<Pollable*>(this);
  // EPOLLHUP/EPOLLERR are reported even with an empty set, so a paused connection
  // whose peer vanishes is still noticed.
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd_.get(), &ev) == 0) armed_ = want;
  return reading;
}

bool Connection::StartPending(std::string* record) {
  absl::MutexLock l(&mu);
  if (pending.empty() || !MayStartLocked()) return false;
  *record = std::move(pending.front());
  pending.pop_front();
  ++requests_;
  has_pending_ = !pending.empty();
  UpdateInterestLocked();
  return true;
}

void Connection::PendingChanged() {
  absl::MutexLock l(&mu);
  has_pending_ = !pending.empty();
  UpdateInterestLocked();
}

bool Connection::RequestFinished() {
  absl::MutexLock l(&mu);
  --requests_;
  last_activity_ = absl::Now();
  UpdateInterestLocked();
  if (!has_pending_ || resume_requested_ || !MayStartLocked()) return false;
  resume_requested_ = true;
  return true;
}

void Connection::ResumeHandled() {
  absl::MutexLock l(&mu);
  resume_requested_ = false;
}

void Connection::StopReading() {
  absl::MutexLock l(&mu);
  stop_reading_ = true;
  UpdateInterestLocked();
}

int Connection::OutRecord::Iovecs(size_t offset, iovec* iov) const {
  const std::pair<const char*, size_t> parts[kMaxIovPerRecord] = {
      {head.data(), head.size()}, {payload.data.get(), payload.size}, {kZeroPad, payload.pad}};
  int n = 0;
  for (const auto& [data, len] : parts) {
    if (offset >= len) {
      offset -= len;
      continue;
    }
    iov[n++] = iovec{const_cast<char*>(data + offset), len - offset};
    offset = 0;
  }
  return n;
}

int64_t Connection::SendReply(std::string reply, Payload payload) {
  absl::MutexLock l(&mu);
  if (closed_) return 0;
  OutRecord rec{std::move(reply), std::move(payload)};
  const size_t total = rec.size();
  size_t sent = 0;
  // Replies may go out in any order (RPC matches them by xid), but bytes of one
  // record must not interleave with another: write directly only when nothing is
  // queued before us.
  if (out_.empty()) {
    while (sent < total) {
      iovec iov[kMaxIovPerRecord];
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = rec.Iovecs(sent, iov);
      const ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && !Retryable(errno)) return -1;
      break;  // the socket buffer is full
    }
    if (sent > 0) last_activity_ = absl::Now();
    if (sent == total) return 0;
    out_offset_ = sent;
  }
  const size_t queued = total - sent;
  queued_bytes_ += queued;
  out_.push_back(std::move(rec));
  UpdateInterestLocked();
  return static_cast<int64_t>(queued);
}

int64_t Connection::Flush() {
  absl::MutexLock l(&mu);
  int64_t written = 0;
  while (!out_.empty() && !closed_) {
    constexpr int kMaxIov = 64;
    iovec iov[kMaxIov];
    int n_iov = 0;
    size_t offset = out_offset_;
    for (auto it = out_.begin();
         it != out_.end() && n_iov + kMaxIovPerRecord <= kMaxIov; ++it) {
      n_iov += it->Iovecs(offset, iov + n_iov);
      offset = 0;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = n_iov;
    ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (Retryable(errno)) break;
      return -1;
    }
    written += n;
    if (n > 0) last_activity_ = absl::Now();
    queued_bytes_ -= static_cast<size_t>(n);
    size_t left = static_cast<size_t>(n);
    while (left > 0) {
      const size_t front_left = out_.front().size() - out_offset_;
      if (left < front_left) {
        out_offset_ += left;
        left = 0;
      } else {
        left -= front_left;
        out_.pop_front();
        out_offset_ = 0;
      }
    }
  }
  UpdateInterestLocked();
  return written;
}

bool Connection::Close(uint64_t* dropped_bytes) {
  absl::MutexLock l(&mu);
  if (closed_) return false;
  closed_ = true;
  *dropped_bytes = queued_bytes_;
  out_.clear();
  queued_bytes_ = 0;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd_.get(), nullptr);
  // Tells the peer now; the fd itself stays open until the last reference is gone.
  ::shutdown(fd_.get(), SHUT_RDWR);
  return true;
}

}  // namespace localnfs::rpc
