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
// Thread-safety: `decoder` is touched only by the event loop. Everything else that
// changes is guarded by `mu`: workers append replies and adjust the in-flight count,
// the loop flushes output, pauses/resumes reading and closes. The epoll interest set
// is changed only under `mu`, so it always matches the state it is computed from.
#pragma once

#include <stdint.h>
#include <sys/epoll.h>

#include <deque>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
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

struct ConnectionLimits {
  size_t max_queued_reply_bytes;
  uint32_t max_requests;
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

  // True if the loop may read more requests now.
  bool ReadingAllowed() {
    absl::MutexLock l(&mu);
    return ReadingAllowedLocked();
  }

  // A request was read and queued / a request finished (reply sent or dropped).
  void RequestStarted();
  void RequestFinished();

  // Worker: sends `reply` (a complete record) or queues what the socket does not
  // take now and arms EPOLLOUT. Returns the number of bytes that were queued (for
  // the server-wide unsent count); -1 on a socket error (the caller has the loop
  // close the connection). Does nothing on a closed connection.
  int64_t SendReply(std::string reply);
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
  absl::Mutex mu;

 private:
  bool ReadingAllowedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return !closed_ && !stop_reading_ &&
           queued_bytes_ <= limits_.max_queued_reply_bytes &&
           requests_ < limits_.max_requests;
  }
  // Makes the epoll interest set match the state: EPOLLIN while reading is allowed,
  // EPOLLOUT while replies are queued.
  void UpdateInterestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  const UniqueFd fd_;
  const int epoll_fd_;
  const ConnectionLimits limits_;
  bool closed_ ABSL_GUARDED_BY(mu) = false;
  bool stop_reading_ ABSL_GUARDED_BY(mu) = false;
  uint32_t requests_ ABSL_GUARDED_BY(mu) = 0;
  uint32_t armed_ ABSL_GUARDED_BY(mu) = 0;  // events currently registered with epoll
  std::deque<std::string> out_ ABSL_GUARDED_BY(mu);
  size_t out_offset_ ABSL_GUARDED_BY(mu) = 0;  // bytes of out_.front() already sent
  size_t queued_bytes_ ABSL_GUARDED_BY(mu) = 0;
};

}  // namespace localnfs::rpc
