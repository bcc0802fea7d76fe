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
// per-connection and server-wide limits). The oldest is received first (its call
// header decoded once: rpc/call.h) as `next`, whose reply bound (Call::reply_bound)
// is what the limits weigh; the others stay bytes until their turn, so a burst of tiny
// calls costs its bytes, not a call object each. The socket is read only while nothing
// is pending, so what one read brings in (at most one 64 KiB chunk of small calls)
// never bypasses the limits. When a finishing request (or freed reply memory) makes room
// while records are pending, RequestFinished() / FreeReleasedReplies() tell the worker
// to have the loop resume the connection. That resume is a self-requeuing work item
// guarded as in seed 003 (nfsd's NFSD4_CALLBACK_RUNNING): resume_requested_ is its
// RUNNING flag, tested and set under `mu` before the worker queues the connection for
// the loop, and cleared by the loop (ResumeHandled) whenever it takes the request —
// also for a connection that was closed meanwhile — so a connection is queued at most
// once and never left flagged. The requests it starts count in ServerLoad::inflight,
// which Stop() drains; every path out of the work queue (run, refused on a closed
// connection, dropped after a timed-out drain) drops that count.
//
// Reply memory: every byte the server holds for a connection's replies is charged to
// it and to ServerLoad::reply_bytes, from the moment a request is started until the
// bytes are freed: the reply size reserved for a request queued or running (a READ's
// count is known before it runs), then the reply record itself while it is queued or
// partly written, and while the kernel may still read it after a zero-copy send
// (held, below). A request may start only while its reservation fits under both caps
// (limits.max_reply_bytes per connection, load.max_reply_bytes server-wide); so the
// server stops reading requests when the caps are reached, and never drops a reply it
// owes. Two exceptions keep every client served: a connection that holds nothing may
// start one request whatever its size (a READ larger than the per-connection cap
// still runs), and one whose reply is small (kSmallReplyBytes) even when the
// server-wide cap is reached — that is what lets a fresh client's NULL or GETATTR
// through while others hold the whole cap, at a cost bounded by max connections ×
// kSmallReplyBytes. A connection refused by the server-wide cap waits for room:
// it registers with ServerLoad (WaitForRoom), and the release that next leaves room
// wakes the loop, which offers it to the waiters in order (Server, RoomOffered).
//
// Replies are records of segments (rpc/reply.h: the encoded bytes and bulk buffers
// between them), written with sendmsg as iovecs — several records per call.
//
// Zero-copy sends (ZerocopyOptions; server.h "Zero-copy sends"): a send that carries a
// large bulk segment may go out with MSG_ZEROCOPY, so the kernel reads the reply from our
// buffers until the peer has acknowledged it. A record sent that way is not freed when
// its last byte leaves our queue: it waits in `zc_waiting_` under the number of the
// last zero-copy send that covered it. The kernel reports finished sends on the
// socket's error queue (EPOLLERR, read by the loop: ReapCompletions); the records
// they free are only PUSHED onto the lock-free `released_` list there, and a worker
// frees them between RPCs (FreeReleasedReplies) — seed 001's svcrdma send contexts.
// The push that makes `released_` non-empty tells the loop to queue this connection
// to a worker as well, so a connection that goes idle never pins its last replies.
// Close() reaps what has completed; records the kernel may still read stay with the
// object until it is destroyed, and the destructor then aborts the socket (RST,
// SO_LINGER 0: the kernel drops its write queue and with it the pages) before it
// frees them. Every held record counts in ServerLoad::held_replies until freed, and
// its bytes stay charged as reply memory (above); Stop() drains that count too. A
// client that does not read keeps the kernel from completing those sends, so held
// bytes are what the caps stop first.
//
// Idle tracking: the time of the last byte read (Touch, by the loop) or written, or of
// the last request finished; IdleSince() is what the loop's idle sweep asks, and
// IdleForEviction() what it asks when --max-connections is reached (server.h).
//
// Thread-safety: `decoder`, `pending` and `next` are touched only by the event loop. Everything
// else that changes is guarded by `mu`: workers append replies and adjust the
// in-flight count, the loop flushes output, pauses/resumes reading and closes. The
// epoll interest set is changed only under `mu`, so it always matches the state it is
// computed from. Held bytes are freed lock-free (an atomic). Lock order: `mu`, then
// ServerLoad's waiter list.
#pragma once

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/uio.h>

#include <atomic>
#include <deque>
#include <vector>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/lockfree_list.h"
#include "common/unique_fd.h"
#include "rpc/call.h"
#include "rpc/program.h"
#include "rpc/record.h"
#include "rpc/reply.h"

namespace localnfs::rpc {

// What an epoll_event's data.ptr points at.
struct Pollable {
  enum class Kind { kWake, kTcpListener, kUdpSocket, kConnection };
  explicit Pollable(Kind k) : kind(k) {}
  const Kind kind;
};

class Connection;

// A reply of at most this many bytes may be started by a connection that holds no
// reply memory even when the server-wide cap is reached (see "Reply memory" above):
// a NULL, a GETATTR, a LOOKUP, a small READ.
inline constexpr size_t kSmallReplyBytes = 16 * 1024;

// Server-wide load, owned by the server and shared by its connections: requests
// queued or running, reply bytes queued on connections and not yet written, sent
// replies whose buffers the kernel may still read (zero-copy) or that wait to be
// freed, and the reply memory of all connections with its cap. Atomics keep the
// per-request accounting lock-free.
struct ServerLoad {
  std::atomic<int64_t> inflight{0};
  std::atomic<int64_t> unsent_bytes{0};
  std::atomic<int64_t> held_replies{0};  // changed by the connections
  std::atomic<int64_t> reply_bytes{0};   // changed by the connections (Charge/Release)
  // Set before the first connection, constant after: the server-wide cap on
  // reply_bytes, and the eventfd that wakes the event loop (written when a release
  // leaves room for a connection that waits for it).
  int64_t max_reply_bytes = 0;
  int wake_fd = -1;

  // Any thread, any lock held: takes reply memory. Reaching half the cap arms the
  // heap trim (below).
  void Charge(int64_t bytes) {
    const int64_t after = reply_bytes.fetch_add(bytes) + bytes;
    if (after >= max_reply_bytes / 2 && !trim_armed_.load(std::memory_order_relaxed)) {
      trim_armed_.store(true, std::memory_order_relaxed);
    }
  }
  // Any thread, any lock held: gives reply memory back; wakes the loop when someone
  // waits for room and there is some now, or when the trim is armed and reply memory
  // fell to a sixteenth of the cap (TakeTrimWanted).
  void Release(int64_t bytes);
  // Loop: true once after reply memory went from half the cap to a sixteenth of it:
  // the freed heap is to be given back to the system (malloc_trim, on a worker).
  bool TakeTrimWanted() {
    return trim_wanted_.load(std::memory_order_relaxed) && trim_wanted_.exchange(false);
  }
  // Connection (under its `mu`): `c` was refused by the server-wide cap; the next
  // release that leaves room wakes the loop. The caller looks at the cap once more
  // after this: a release in between may not have seen the registration.
  void WaitForRoom(Connection* c) ABSL_LOCKS_EXCLUDED(waiters_mu_);
  // Loop: the connections that wait for room, in the order they began waiting. They
  // may have been closed (even destroyed) since: the loop looks each one up in its
  // own table before using it.
  std::vector<Connection*> TakeRoomWaiters() ABSL_LOCKS_EXCLUDED(waiters_mu_);

 private:
  void WakeLoop();
  std::atomic<bool> room_wanted_{false};
  std::atomic<bool> trim_armed_{false};
  std::atomic<bool> trim_wanted_{false};
  absl::Mutex waiters_mu_;
  std::vector<Connection*> room_waiters_ ABSL_GUARDED_BY(waiters_mu_);
};

struct ConnectionLimits {
  // Reply memory of this connection (see "Reply memory") above which it may start no
  // request: it is not read from until replies drain.
  size_t max_reply_bytes;
  uint32_t max_requests;
  // Server-wide bounds on `load` (see server.h): above max_requests_total this
  // connection is not read while it has requests of its own pending; the server-wide
  // reply memory cap is load->max_reply_bytes.
  ServerLoad* load;
  int64_t max_requests_total;
};

// MSG_ZEROCOPY for this connection. `enabled` only once SO_ZEROCOPY is set on it.
struct ZerocopyOptions {
  bool enabled = false;
  // A send uses MSG_ZEROCOPY when one of its records has a bulk segment this large.
  size_t min_payload_bytes = 64 * 1024;
  // Keep using it after the kernel reported that it copied anyway (a local peer:
  // loopback, veth). Off in production — it then only costs; on for tests.
  bool keep_when_copied = false;
};

// What a send did, for the server's accounting.
struct SendResult {
  int64_t written = 0;       // bytes this call wrote to the socket
  int64_t left_queued = 0;   // SendReply: bytes of this reply still queued after it
  uint32_t zerocopy_sends = 0;  // sendmsg calls made with MSG_ZEROCOPY
  bool error = false;        // socket error: the connection must be closed
  // A record whose zero-copy sends had all completed before its last byte left went
  // straight onto `released_` and made it non-empty: queue a worker to free it.
  bool queue_release = false;
};

// What ReapCompletions found on the socket's error queue.
struct ReapResult {
  uint64_t sends_copied = 0;     // zero-copy sends the kernel had copied after all
  bool queue_release = false;    // `released_` became non-empty: queue a worker
  int socket_error = 0;          // a real pending error (SO_ERROR), 0 if none
};

class Connection : public Pollable {
 public:
  Connection(uint64_t id, UniqueFd fd, PeerAddress peer, PeerAddress local,
             uint32_t max_record_size, int epoll_fd, ConnectionLimits limits,
             ZerocopyOptions zerocopy = {})
      : Pollable(Kind::kConnection),
        info(id, peer, local),
        decoder(max_record_size),
        fd_(std::move(fd)),
        epoll_fd_(epoll_fd),
        limits_(limits),
        zc_options_(zerocopy),
        zc_on_(zerocopy.enabled) {}
  // Frees what the kernel may still read only after aborting the socket (above).
  ~Connection();

  int fd() const { return fd_.get(); }

  // Adds the socket to epoll (reading). Loop thread, before any other call.
  bool Register() ABSL_LOCKS_EXCLUDED(mu);

  // True if the loop may read more from the socket now. Also brings the epoll interest
  // set up to date: the server-wide limits change without this connection's events,
  // and an EPOLLIN left armed on a connection that may not be read would spin the loop.
  bool ReadingAllowed() {
    absl::MutexLock l(&mu);
    return UpdateInterestLocked();
  }

  // Loop: starts `next` (which the caller received from pending's oldest record) if
  // the limits allow it: counts it as a request, reserves its reply size (*reserved,
  // its reply_bound()) and moves it to *call. False when it may not start now.
  bool StartNext(std::unique_ptr<Call>* call, size_t* reserved) ABSL_LOCKS_EXCLUDED(mu);
  // Loop: `pending` or `next` changed (records added, a call received or started).
  void PendingChanged() ABSL_LOCKS_EXCLUDED(mu);
  // Worker: a request finished (reply sent or dropped); `unused` is what is left of
  // its reservation (all of it when no reply was sent with SendReply). True when
  // records are pending and may be started now: the caller asks the loop to resume
  // this connection (only once until the loop has done so).
  bool RequestFinished(size_t unused) ABSL_LOCKS_EXCLUDED(mu);
  // Loop: a resume asked for by RequestFinished() is being handled.
  void ResumeHandled() ABSL_LOCKS_EXCLUDED(mu);
  // Loop: this connection, which waited for room under the server-wide cap, is
  // offered some; the caller then lets it read and start what it can.
  void RoomOffered() ABSL_LOCKS_EXCLUDED(mu);
  // True while it waits for room (for the log line).
  bool waiting_for_room() {
    absl::MutexLock l(&mu);
    return room_waiting_;
  }
  // Reply memory charged to this connection now.
  int64_t reply_bytes() {
    absl::MutexLock l(&mu);
    return ChargedLocked();
  }
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
  // True when closing it now loses nothing: no request pending, queued or running, no
  // reply queued, none the kernel may still need (zero-copy). *since: its last
  // activity. The loop's choice when --max-connections is reached.
  bool IdleForEviction(absl::Time* since) {
    absl::MutexLock l(&mu);
    *since = last_activity_;
    return !closed_ && requests_ == 0 && !has_pending_ && ChargedLocked() == 0;
  }

  // Worker: sends the record `reply` (its bulk segments from their own buffers:
  // scatter-gather, no copy) or queues what the socket does not take now and arms
  // EPOLLOUT. `reservation`: the reply memory reserved for it (StartNext), which the
  // record's real size replaces. `left_queued` is what was queued (for the server-wide
  // unsent count, also on error: Close() drops it); on `error` the caller has the loop
  // close the connection. Sends nothing on a closed connection.
  SendResult SendReply(ReplyRecord reply, size_t reservation = 0) ABSL_LOCKS_EXCLUDED(mu);
  // Loop, on EPOLLOUT: writes queued replies with sendmsg (several iovecs). `bytes` is
  // what was written.
  SendResult Flush() ABSL_LOCKS_EXCLUDED(mu);
  // Loop, around the calls it runs itself in one round: while corked, SendReply only
  // queues, and Uncork() writes everything queued with as few sendmsg calls as the
  // iovecs allow — one for a round of small replies instead of one each (the socket's
  // MSG_MORE/TCP_CORK without the extra system calls).
  void Cork() ABSL_LOCKS_EXCLUDED(mu);
  SendResult Uncork() ABSL_LOCKS_EXCLUDED(mu);
  // Loop, on EPOLLERR of a connection that sent with MSG_ZEROCOPY: reads the error
  // queue, pushes the records whose sends all completed onto `released_`.
  ReapResult ReapCompletions() ABSL_LOCKS_EXCLUDED(mu);
  // True once a zero-copy send was made (its completions are then to be reaped).
  bool zerocopy_used() {
    absl::MutexLock l(&mu);
    return zc_next_seq_ > 0;
  }
  // Worker, between RPCs (and for the loop's queued release): frees the records on
  // `released_` (lock-free). Returns how many; *resume as RequestFinished's result
  // (the memory freed may let pending records start).
  uint64_t FreeReleasedReplies(bool* resume) ABSL_LOCKS_EXCLUDED(mu);
  // Loop: stop reading for good (server stopping).
  void StopReading() ABSL_LOCKS_EXCLUDED(mu);
  // Loop: marks closed, removes from epoll, shuts the socket down, drops unsent
  // replies. Returns the number of unsent bytes dropped; false → was already closed.
  bool Close(uint64_t* dropped_bytes) ABSL_LOCKS_EXCLUDED(mu);
  bool closed() {
    absl::MutexLock l(&mu);
    return closed_;
  }

  ConnectionInfo info;
  RecordDecoder decoder;  // event loop only
  // Event loop only: records read and not yet started, oldest first, except the oldest
  // once it is received as `next` (see "Admission").
  std::deque<std::string> pending;
  std::unique_ptr<Call> next;
  absl::Mutex mu;

 private:
  enum class Admission { kYes, kOwnLimit, kServerLimit };
  // The limits: may a request whose reply takes up to `reply_size` bytes start now?
  Admission AdmitLocked(size_t reply_size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // AdmitLocked() == kYes; refused by the server-wide cap, registers for room first.
  bool MayStartLocked(size_t reply_size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  bool ReadingAllowedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return !has_pending_ && MayStartLocked(0);
  }
  // The resume test of RequestFinished() (seed 003's test-and-set).
  bool TakeResumeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  int64_t ChargedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return static_cast<int64_t>(reserved_bytes_ + out_bytes_) +
           held_bytes_.load(std::memory_order_relaxed);
  }
  // Makes the epoll interest set match the state: EPOLLIN while reading is allowed,
  // EPOLLOUT while replies are queued. Returns whether reading is allowed.
  bool UpdateInterestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  // One reply record, as queued and (while the kernel may still read it) held.
  struct OutRecord {
    ReplyRecord reply;
    bool zerocopy = false;  // some of its bytes left with MSG_ZEROCOPY ...
    uint64_t last_zc_seq = 0;  // ... the last of them in this send
    size_t size() const { return reply.size(); }
  };
  // A record sent with MSG_ZEROCOPY, from its last byte until it is freed.
  struct HeldRecord {
    HeldRecord* next = nullptr;  // LockFreeList link
    OutRecord record;
  };

  // Writes out_ from out_offset_ until it is empty or the socket is full.
  SendResult WriteQueuedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // One sendmsg; with MSG_ZEROCOPY when *zerocopy (cleared if it fell back to a copy).
  ssize_t SendmsgLocked(msghdr* msg, bool* zerocopy) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // out_.front() was sent whole: freed, or held until the kernel is done with it.
  // True when that made `released_` non-empty.
  bool PopSentLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  ReapResult ReapCompletionsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Zero-copy sends [lo, hi] (the kernel's 32-bit numbers) completed.
  void MarkCompletedLocked(uint32_t lo, uint32_t hi) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Moves the held records whose sends have all completed onto `released_`. True if
  // that made it non-empty.
  bool ReleaseCompletedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Frees a list taken from `released_` and gives its bytes back; returns how many.
  uint64_t FreeList(HeldRecord* r);

  UniqueFd fd_;  // reset only by the destructor, before the held records go
  const int epoll_fd_;
  const ConnectionLimits limits_;
  bool closed_ ABSL_GUARDED_BY(mu) = false;
  bool stop_reading_ ABSL_GUARDED_BY(mu) = false;
  bool corked_ ABSL_GUARDED_BY(mu) = false;  // Cork() .. Uncork(), on the loop
  uint32_t requests_ ABSL_GUARDED_BY(mu) = 0;
  // Mirror next || !pending.empty(), and next's reply bound (0 while the loop has yet
  // to receive the next record: a worker's resume test may then wake the loop once
  // for nothing).
  bool has_pending_ ABSL_GUARDED_BY(mu) = false;
  size_t next_reply_size_ ABSL_GUARDED_BY(mu) = 0;
  bool resume_requested_ ABSL_GUARDED_BY(mu) = false;  // a worker asked the loop
  bool room_waiting_ ABSL_GUARDED_BY(mu) = false;      // on ServerLoad's waiter list
  uint32_t armed_ ABSL_GUARDED_BY(mu) = 0;  // events currently registered with epoll
  // Reply records not yet (wholly) sent.
  std::deque<OutRecord> out_ ABSL_GUARDED_BY(mu);
  size_t out_offset_ ABSL_GUARDED_BY(mu) = 0;  // bytes of out_.front() already sent
  size_t queued_bytes_ ABSL_GUARDED_BY(mu) = 0;  // of out_, not yet written
  // Reply memory (see "Reply memory"): reserved for requests started and not yet
  // replied to, the records in out_, and the held records (zc_waiting_, released_).
  size_t reserved_bytes_ ABSL_GUARDED_BY(mu) = 0;
  size_t out_bytes_ ABSL_GUARDED_BY(mu) = 0;
  std::atomic<int64_t> held_bytes_{0};
  absl::Time last_activity_ ABSL_GUARDED_BY(mu) = absl::Now();

  // Zero-copy state (see the header comment). Sequence numbers are the kernel's
  // per-socket counter of MSG_ZEROCOPY sends, widened to 64 bits.
  const ZerocopyOptions zc_options_;
  bool zc_on_ ABSL_GUARDED_BY(mu);
  uint64_t zc_next_seq_ ABSL_GUARDED_BY(mu) = 0;    // number of the next such send
  uint64_t zc_done_below_ ABSL_GUARDED_BY(mu) = 0;  // every send before it completed
  // Completed ranges [first, last] above zc_done_below_ (reported out of order).
  absl::btree_map<uint64_t, uint64_t> zc_done_ranges_ ABSL_GUARDED_BY(mu);
  // Sent whole, in send order; the kernel may still read them.
  std::deque<std::unique_ptr<HeldRecord>> zc_waiting_ ABSL_GUARDED_BY(mu);
  // Completed: freed by a worker (pushed by the loop, taken lock-free).
  LockFreeList<HeldRecord> released_;
};

}  // namespace localnfs::rpc
