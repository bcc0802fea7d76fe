// rpc/connection.h — one accepted TCP connection of the rpc Server.
//
// Owns: the socket (closed only when the object is destroyed), the ConnectionInfo
// handed to programs, the record decoder, and the queue of reply bytes not yet sent.
//
// Lifetime: shared_ptr. The event loop holds one reference while the connection is
// open; every request read from it holds one until its worker has finished. So the
// object (socket and ConnectionInfo included) is destroyed only after it was closed
// AND every request that references it has finished. Closing (by the loop only)
// removes the socket from epoll and shuts it down, but keeps the fd number allocated,
// so that a worker still sending on it can never hit a reused descriptor.
//
// Admission: records decoded from the socket go to `pending` (loop only) and are
// started — handed to the workers — one at a time while MayStartLocked() holds (the
// per-connection and server-wide limits). The socket is read only while `pending` is
// empty, so what one read brings in (at most one 64 KiB chunk of small calls) never
// bypasses the limits. When a finishing request makes room while records are
// pending, RequestFinished() tells the worker to have the loop resume the connection.
// That resume is a self-requeuing work item guarded as in seed 003 (nfsd's
// NFSD4_CALLBACK_RUNNING): resume_requested_ is its RUNNING flag, tested and set under
// `mu` before the worker queues the connection for the loop, and cleared by the loop
// (ResumeHandled) whenever it takes the request — also for a connection that was
// closed meanwhile — so a connection is queued at most once and never left flagged.
// The requests it starts count in ServerLoad::inflight, which Stop() drains; every
// path out of the work queue (run, refused on a closed connection, dropped after a
// timed-out drain) drops that count.
//
// Idle tracking: the time of the last byte read (Touch, by the loop) or written, or of
// the last request finished; IdleSince() is what the loop's idle sweep asks.
//
// Thread-safety: `decoder` is touched only by the event loop. Everything else that
// changes is guarded by `mu`: workers append replies and adjust the in-flight count,
// the loop flushes output, pauses/resumes reading and closes. The epoll interest set
// is changed only under `mu`, so it always matches the state it is computed from.
#pragma once

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/uio.h>

#include <atomic>
#include <deque>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"
#include "rpc/program.h"
#include "rpc/record.h"

namespace localnfs::rpc {

// What an epoll_event's data.ptr points at.
struct Pollable {
  enum class Kind { kWake, kTcpListener, kUdpSocket, kConnection };
  explicit Pollable(Kind k) : kind(k) {}
  const Kind kind;
};

// Server-wide load, owned by the server and shared by its connections: requests
// queued or running, and reply bytes queued on connections. Atomics keep the
// per-request accounting lock-free.
struct ServerLoad {
  std::atomic<int64_t> inflight{0};
  std::atomic<int64_t> unsent_bytes{0};
};

struct ConnectionLimits {
  size_t max_queued_reply_bytes;
  uint32_t max_requests;
  // Server-wide bounds on `load` (see server.h): above them this connection is not
  // read while it has requests, respectively replies, of its own pending.
  const ServerLoad* load;
  int64_t max_requests_total;
  int64_t max_queued_reply_bytes_total;
};

class Connection : public Pollable {
 public:
  Connection(uint64_t id, UniqueFd fd, PeerAddress peer, PeerAddress local,
             uint32_t max_record_size, int epoll_fd, ConnectionLimits limits)
      : Pollable(Kind::kConnection),
        info(id, peer, local),
        decoder(max_record_size),
        fd_(std::move(fd)),
        epoll_fd_(epoll_fd),
        limits_(limits) {}

  int fd() const { return fd_.get(); }

  // Adds the socket to epoll (reading). Loop thread, before any other call.
  bool Register();

  // True if the loop may read more from the socket now. Also brings the epoll interest
  // set up to date: the server-wide limits change without this connection's events,
  // and an EPOLLIN left armed on a connection that may not be read would spin the loop.
  bool ReadingAllowed() {
    absl::MutexLock l(&mu);
    return UpdateInterestLocked();
  }

  // Loop: starts the next pending record if the limits allow it: counts it as a
  // request and moves it to *record. False when nothing may be started now.
  bool StartPending(std::string* record);
  // Loop: `pending` changed (records added or all started).
  void PendingChanged();
  // Worker: a request finished (reply sent or dropped). True when records are pending
  // and may be started now: the caller asks the loop to resume this connection (only
  // once until the loop has done so).
  bool RequestFinished();
  // Loop: a resume asked for by RequestFinished() is being handled.
  void ResumeHandled();
  // Loop: bytes were read at `now`.
  void Touch(absl::Time now) {
    absl::MutexLock l(&mu);
    last_activity_ = now;
  }
  // True when no request is queued or running and nothing was read or written since
  // `cutoff` (queued replies that the client does not read do not keep it alive).
  bool IdleSince(absl::Time cutoff) {
    absl::MutexLock l(&mu);
    return requests_ == 0 && last_activity_ < cutoff;
  }

  // Worker: sends the record `reply` + `payload` (its bulk data, sent from its own
  // buffer: scatter-gather, no copy) or queues what the socket does not take now and
  // arms EPOLLOUT. Returns the number of bytes that were queued (for the server-wide
  // unsent count); -1 on a socket error (the caller has the loop close the
  // connection). Does nothing on a closed connection.
  int64_t SendReply(std::string reply, Payload payload = {});
  // Loop, on EPOLLOUT: writes queued replies with sendmsg (several iovecs). Returns
  // the bytes written; -1 on a socket error.
  int64_t Flush();
  // Loop: stop reading for good (server stopping).
  void StopReading();
  // Loop: marks closed, removes from epoll, shuts the socket down, drops unsent
  // replies. Returns the number of unsent bytes dropped; false → was already closed.
  bool Close(uint64_t* dropped_bytes);
  bool closed() {
    absl::MutexLock l(&mu);
    return closed_;
  }

  ConnectionInfo info;
  RecordDecoder decoder;  // event loop only
  std::deque<std::string> pending;  // event loop only: decoded, not yet started
  absl::Mutex mu;

 private:
  bool ReadingAllowedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return !has_pending_ && MayStartLocked();
  }
  // The limits: may one more request of this connection be started?
  bool MayStartLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return !closed_ && !stop_reading_ &&
           queued_bytes_ <= limits_.max_queued_reply_bytes &&
           requests_ < limits_.max_requests &&
           !(requests_ > 0 && limits_.load->inflight.load(std::memory_order_relaxed) >=
                                  limits_.max_requests_total) &&
           !(queued_bytes_ > 0 &&
             limits_.load->unsent_bytes.load(std::memory_order_relaxed) >
                 limits_.max_queued_reply_bytes_total);
  }
  // Makes the epoll interest set match the state: EPOLLIN while reading is allowed,
  // EPOLLOUT while replies are queued. Returns whether reading is allowed.
  bool UpdateInterestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  const UniqueFd fd_;
  const int epoll_fd_;
  const ConnectionLimits limits_;
  bool closed_ ABSL_GUARDED_BY(mu) = false;
  bool stop_reading_ ABSL_GUARDED_BY(mu) = false;
  uint32_t requests_ ABSL_GUARDED_BY(mu) = 0;
  bool has_pending_ ABSL_GUARDED_BY(mu) = false;       // mirrors !pending.empty()
  bool resume_requested_ ABSL_GUARDED_BY(mu) = false;  // a worker asked the loop
  uint32_t armed_ ABSL_GUARDED_BY(mu) = 0;  // events currently registered with epoll
  // One reply record not yet (wholly) sent: `head`, then the payload and its padding.
  struct OutRecord {
    std::string head;
    Payload payload;
    size_t size() const { return head.size() + payload.wire_size(); }
    // The iovecs (at most kMaxIovPerRecord) of the bytes from `offset` on.
    int Iovecs(size_t offset, iovec* iov) const;
  };
  static constexpr int kMaxIovPerRecord = 3;
  std::deque<OutRecord> out_ ABSL_GUARDED_BY(mu);
  size_t out_offset_ ABSL_GUARDED_BY(mu) = 0;  // bytes of out_.front() already sent
  size_t queued_bytes_ ABSL_GUARDED_BY(mu) = 0;
  absl::Time last_activity_ ABSL_GUARDED_BY(mu) = absl::Now();
};

}  // namespace localnfs::rpc
