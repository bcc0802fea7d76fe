#include "rpc/connection.h"

#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>

#include "common/unaligned.h"

namespace localnfs::rpc {
namespace {

bool Retryable(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

}  // namespace

void ServerLoad::WakeLoop() {
  const uint64_t one = 1;
  // A full eventfd counter already means "wake up"; nothing else can fail here.
  (void)!::write(wake_fd, &one, sizeof(one));
}

void ServerLoad::Release(int64_t bytes) {
  if (bytes == 0) return;
  const int64_t after = reply_bytes.fetch_sub(bytes) - bytes;
  // After the subtraction: a waiter that registered before it finds the flag set here,
  // one that registers after it sees the new total when it looks again.
  if (after < max_reply_bytes && room_wanted_.load() && room_wanted_.exchange(false)) {
    WakeLoop();
  }
  if (after <= max_reply_bytes / 16 && trim_armed_.load(std::memory_order_relaxed) &&
      trim_armed_.exchange(false)) {
    trim_wanted_.store(true);
    WakeLoop();
  }
}

void ServerLoad::WaitForRoom(Connection* c) {
  {
    absl::MutexLock l(&waiters_mu_);
    room_waiters_.push_back(c);
  }
  room_wanted_.store(true);
}

std::vector<Connection*> ServerLoad::TakeRoomWaiters() {
  absl::MutexLock l(&waiters_mu_);
  std::vector<Connection*> out;
  out.swap(room_waiters_);
  return out;
}

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
  // Corked, queued replies are the loop's to write at Uncork(): EPOLLOUT stays as it was.
  const bool want_out = corked_ ? (armed_ & EPOLLOUT) != 0 : !out_.empty();
  const uint32_t want = (reading ? uint32_t{EPOLLIN} : 0u) | (want_out ? uint32_t{EPOLLOUT} : 0u);
  if (want == armed_) return reading;
  epoll_event ev{};
  ev.events = want;
  ev.data.ptr = static_cast<Pollable*>(this);
  // EPOLLHUP/EPOLLERR are reported even with an empty set, so a paused connection
  // whose peer vanishes is still noticed.
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd_.get(), &ev) == 0) armed_ = want;
  return reading;
}

Connection::Admission Connection::AdmitLocked(size_t reply_size) {
  if (closed_ || stop_reading_ || requests_ >= limits_.max_requests) {
    return Admission::kOwnLimit;
  }
  // Server-wide request bound: a connection with requests of its own in flight waits
  // for them (it is resumed when one finishes).
  if (requests_ > 0 && limits_.load->inflight.load(std::memory_order_relaxed) >=
                           limits_.max_requests_total) {
    return Admission::kOwnLimit;
  }
  const int64_t mine = ChargedLocked();
  const int64_t want = static_cast<int64_t>(reply_size);
  if (mine > 0 && mine + want > static_cast<int64_t>(limits_.max_reply_bytes)) {
    return Admission::kOwnLimit;
  }
  const int64_t total = limits_.load->reply_bytes.load();
  if (total + want > limits_.load->max_reply_bytes &&
      !(mine == 0 && (reply_size <= kSmallReplyBytes || total == 0))) {
    return Admission::kServerLimit;
  }
  return Admission::kYes;
}

bool Connection::MayStartLocked(size_t reply_size) {
  const Admission a = AdmitLocked(reply_size);
  if (a != Admission::kServerLimit) return a == Admission::kYes;
  if (!room_waiting_) {
    room_waiting_ = true;
    limits_.load->WaitForRoom(this);
  }
  // A release between AdmitLocked and the registration did not wake anyone.
  return AdmitLocked(reply_size) == Admission::kYes;
}

bool Connection::TakeResumeLocked() {
  if (!has_pending_ || resume_requested_ || !MayStartLocked(next_reply_size_)) return false;
  resume_requested_ = true;
  return true;
}

bool Connection::StartNext(std::unique_ptr<Call>* call, size_t* reserved) {
  absl::MutexLock l(&mu);
  if (next == nullptr || !MayStartLocked(next->reply_bound())) return false;
  *reserved = next->reply_bound();
  *call = std::move(next);
  ++requests_;
  reserved_bytes_ += *reserved;
  limits_.load->Charge(static_cast<int64_t>(*reserved));
  has_pending_ = !pending.empty();
  next_reply_size_ = 0;  // the loop receives the next record now
  UpdateInterestLocked();
  return true;
}

void Connection::PendingChanged() {
  absl::MutexLock l(&mu);
  has_pending_ = next != nullptr || !pending.empty();
  next_reply_size_ = next != nullptr ? next->reply_bound() : 0;
  UpdateInterestLocked();
}

bool Connection::RequestFinished(size_t unused) {
  absl::MutexLock l(&mu);
  --requests_;
  reserved_bytes_ -= unused;
  limits_.load->Release(static_cast<int64_t>(unused));
  last_activity_ = absl::Now();
  UpdateInterestLocked();
  return TakeResumeLocked();
}

void Connection::ResumeHandled() {
  absl::MutexLock l(&mu);
  resume_requested_ = false;
}

void Connection::RoomOffered() {
  absl::MutexLock l(&mu);
  room_waiting_ = false;
  UpdateInterestLocked();
}

void Connection::StopReading() {
  absl::MutexLock l(&mu);
  stop_reading_ = true;
  UpdateInterestLocked();
}

SendResult Connection::SendReply(ReplyRecord reply, size_t reservation) {
  absl::MutexLock l(&mu);
  reserved_bytes_ -= reservation;
  if (closed_) {
    limits_.load->Release(static_cast<int64_t>(reservation));
    return {};
  }
  // Replies may go out in any order (RPC matches them by xid), but bytes of one
  // record must not interleave with another: write directly only when nothing is
  // queued before us — then whatever is written belongs to this record.
  const bool write_now = out_.empty() && !corked_;
  out_.push_back(OutRecord{std::move(reply)});
  const size_t total = out_.back().size();
  queued_bytes_ += total;
  // The record replaces its reservation: more when the reply outgrew it (a larger
  // result than the procedure's bound, a reply cache replay), less usually.
  out_bytes_ += total;
  if (total >= reservation) {
    limits_.load->Charge(static_cast<int64_t>(total - reservation));
  } else {
    limits_.load->Release(static_cast<int64_t>(reservation - total));
  }
  SendResult r;
  if (write_now) r = WriteQueuedLocked();
  r.left_queued = static_cast<int64_t>(total) - r.written;
  UpdateInterestLocked();
  return r;
}

SendResult Connection::Flush() {
  absl::MutexLock l(&mu);
  SendResult r = WriteQueuedLocked();
  UpdateInterestLocked();
  return r;
}

void Connection::Cork() {
  absl::MutexLock l(&mu);
  corked_ = true;
}

SendResult Connection::Uncork() {
  {
    absl::MutexLock l(&mu);
    corked_ = false;
  }
  return Flush();
}

ssize_t Connection::SendmsgLocked(msghdr* msg, bool* zerocopy) {
  while (true) {
    const int flags = MSG_NOSIGNAL | MSG_DONTWAIT | (*zerocopy ? MSG_ZEROCOPY : 0);
    const ssize_t n = ::sendmsg(fd_.get(), msg, flags);
    if (n < 0 && errno == EINTR) continue;
    // ENOBUFS: the kernel could not account one more completion notification
    // (optmem): this send is copied instead.
    if (n < 0 && *zerocopy && errno == ENOBUFS) {
      *zerocopy = false;
      continue;
    }
    // The kernel numbers every MSG_ZEROCOPY send that took bytes, from 0.
    if (n > 0 && *zerocopy) ++zc_next_seq_;
    return n;
  }
}

SendResult Connection::WriteQueuedLocked() {
  SendResult r;
  while (!out_.empty() && !closed_) {
    constexpr int kMaxIov = 64;
    iovec iov[kMaxIov];
    int n_iov = 0;
    size_t offset = out_offset_;
    bool zerocopy = false;
    // As many records as the iovecs hold; the last may be cut short (what is sent is
    // accounted by bytes below).
    for (auto it = out_.begin(); it != out_.end() && n_iov < kMaxIov; ++it) {
      n_iov += it->reply.Iovecs(offset, iov + n_iov, kMaxIov - n_iov);
      offset = 0;
      zerocopy |= zc_on_ && it->reply.largest_bulk() >= zc_options_.min_payload_bytes;
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = n_iov;
    const ssize_t n = SendmsgLocked(&msg, &zerocopy);
    if (n < 0) {
      if (Retryable(errno)) break;  // the socket buffer is full
      r.error = true;
      return r;
    }
    if (zerocopy) ++r.zerocopy_sends;
    r.written += n;
    if (n > 0) last_activity_ = absl::Now();
    queued_bytes_ -= static_cast<size_t>(n);
    size_t left = static_cast<size_t>(n);
    while (left > 0) {
      OutRecord& front = out_.front();
      if (zerocopy) {
        front.zerocopy = true;
        front.last_zc_seq = zc_next_seq_ - 1;
      }
      const size_t front_left = front.size() - out_offset_;
      if (left < front_left) {
        out_offset_ += left;
        left = 0;
      } else {
        left -= front_left;
        r.queue_release |= PopSentLocked();
      }
    }
  }
  return r;
}

bool Connection::PopSentLocked() {
  out_offset_ = 0;
  const size_t size = out_.front().size();
  out_bytes_ -= size;
  if (!out_.front().zerocopy) {
    out_.pop_front();
    limits_.load->Release(static_cast<int64_t>(size));
    return false;
  }
  auto held = std::make_unique<HeldRecord>();
  held->record = std::move(out_.front());
  out_.pop_front();
  zc_waiting_.push_back(std::move(held));
  held_bytes_.fetch_add(static_cast<int64_t>(size), std::memory_order_relaxed);
  limits_.load->held_replies.fetch_add(1, std::memory_order_relaxed);
  // Its first bytes went zero-copy, the rest copied (the mode changed, or ENOBUFS):
  // the completion it waits for may have been reaped already.
  return ReleaseCompletedLocked();
}

ReapResult Connection::ReapCompletions() {
  absl::MutexLock l(&mu);
  return ReapCompletionsLocked();
}

ReapResult Connection::ReapCompletionsLocked() {
  ReapResult r;
  while (true) {
    char control[CMSG_SPACE(sizeof(sock_extended_err) + sizeof(sockaddr_in6))];
    msghdr msg{};
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    if (::recvmsg(fd_.get(), &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
      if (errno == EINTR) continue;
      break;  // EAGAIN: the error queue is empty
    }
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
      const bool is_recverr = (cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
                              (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR);
      if (!is_recverr) continue;
      const auto err = LoadUnaligned<sock_extended_err>(CMSG_DATA(cm));
      if (err.ee_origin != SO_EE_ORIGIN_ZEROCOPY || err.ee_errno != 0) continue;
      // [ee_info, ee_data]: a range of sends, numbered modulo 2^32.
      const uint64_t count = static_cast<uint32_t>(err.ee_data - err.ee_info) + uint64_t{1};
      if (err.ee_code & SO_EE_CODE_ZEROCOPY_COPIED) {
        r.sends_copied += count;
        // A local peer: the kernel copies each such send later anyway, so zero-copy
        // only adds the notifications.
        if (!zc_options_.keep_when_copied) zc_on_ = false;
      }
      MarkCompletedLocked(err.ee_info, err.ee_data);
    }
  }
  r.queue_release = ReleaseCompletedLocked();
  int so_error = 0;
  socklen_t len = sizeof(so_error);
  if (getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &so_error, &len) == 0) {
    r.socket_error = so_error;
  }
  return r;
}

void Connection::MarkCompletedLocked(uint32_t lo, uint32_t hi) {
  // Widen relative to zc_done_below_: outstanding sends are far fewer than 2^31.
  const auto widen = [this](uint32_t v) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return zc_done_below_ + static_cast<uint32_t>(v - static_cast<uint32_t>(zc_done_below_));
  };
  const uint64_t first = widen(lo);
  const uint64_t last = first + static_cast<uint32_t>(hi - lo);
  if (last >= zc_next_seq_) return;  // not a send of ours: ignore rather than free early
  if (first > zc_done_below_) {
    zc_done_ranges_[first] = last;
    return;
  }
  zc_done_below_ = std::max(zc_done_below_, last + 1);
  // Ranges that arrived early and now join the completed prefix.
  while (!zc_done_ranges_.empty() && zc_done_ranges_.begin()->first <= zc_done_below_) {
    zc_done_below_ = std::max(zc_done_below_, zc_done_ranges_.begin()->second + 1);
    zc_done_ranges_.erase(zc_done_ranges_.begin());
  }
}

bool Connection::ReleaseCompletedLocked() {
  bool became_non_empty = false;
  while (!zc_waiting_.empty() && zc_waiting_.front()->record.last_zc_seq < zc_done_below_) {
    // A record may span several sends; all of them are <= its last and complete.
    became_non_empty |= released_.Push(zc_waiting_.front().release());
    zc_waiting_.pop_front();
  }
  return became_non_empty;
}

uint64_t Connection::FreeList(HeldRecord* r) {
  int64_t freed = 0, bytes = 0;
  while (r != nullptr) {
    HeldRecord* next = r->next;
    bytes += static_cast<int64_t>(r->record.size());
    delete r;
    r = next;
    ++freed;
  }
  if (freed > 0) {
    held_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    limits_.load->held_replies.fetch_sub(freed, std::memory_order_relaxed);
    limits_.load->Release(bytes);
  }
  return static_cast<uint64_t>(freed);
}

uint64_t Connection::FreeReleasedReplies(bool* resume) {
  *resume = false;
  if (released_.empty()) return 0;
  const uint64_t freed = FreeList(released_.TakeAll());
  if (freed > 0) {
    // The memory given back may be what this connection's limit waited for.
    absl::MutexLock l(&mu);
    UpdateInterestLocked();
    *resume = TakeResumeLocked();
  }
  return freed;
}

bool Connection::Close(uint64_t* dropped_bytes) {
  absl::MutexLock l(&mu);
  if (closed_) return false;
  closed_ = true;
  *dropped_bytes = queued_bytes_;
  // A record partly sent with MSG_ZEROCOPY is partly in the kernel's hands: held
  // like the others (the rest of it is never sent). What has completed by now is
  // released; the rest stays until the destructor.
  if (!out_.empty() && out_.front().zerocopy) PopSentLocked();  // freed at destruction
  if (zc_next_seq_ > 0) ReapCompletionsLocked();
  out_.clear();
  queued_bytes_ = 0;
  limits_.load->Release(static_cast<int64_t>(out_bytes_));
  out_bytes_ = 0;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd_.get(), nullptr);
  // Tells the peer now; the fd itself stays open until the last reference is gone.
  ::shutdown(fd_.get(), SHUT_RDWR);
  return true;
}

Connection::~Connection() {
  absl::MutexLock l(&mu);
  if (!zc_waiting_.empty()) {
    // The kernel may still read these records' pages: abort the connection so it
    // drops its write queue (and its references) before the memory can be reused.
    const linger abort_on_close{1, 0};
    setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
  }
  fd_.reset();
  for (auto& held : zc_waiting_) released_.Push(held.release());
  zc_waiting_.clear();
  FreeList(released_.TakeAll());
}

}  // namespace localnfs::rpc
