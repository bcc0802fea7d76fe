// rpc/server.cc — Start() and the orderly Stop() of the rpc Server, and the Server's
// public face (see server.h for the contract, connection.h for the lifetime of a
// connection). The server's parts live beside it (rpc/server_impl.h lists them):
// server_listener.cc (sockets, accept), server_loop.cc (the event loop),
// server_workers.cc (the work queue and the workers), server_rpcbind.cc.
//
// Threads:
//  * one event loop: accepts, reads into each connection's RecordDecoder, receives each
//    complete record as a decoded call (Dispatcher::Receive: header, procedure,
//    arguments, reply cache) and runs a quick one itself or queues it for the workers,
//    receives UDP datagrams, finishes sends that workers left queued (EPOLLOUT), and
//    closes connections. It is the only thread
//    that closes a connection or changes the set of connections; workers ask it to
//    close one through `close_requests_` + the wake eventfd.
//  * worker_threads workers: run a received call (rpc/dispatch.h; a call the loop began
//    continues from where it stopped) and send the reply.
//
// Limits (server.h): at max_connections (or a client's max_connections_per_client)
// the loop closes the longest-idle connection right after accepting a new one, or
// the new one when every connection is busy; it sweeps for idle connections every
// idle_timeout / 4 (at most once a second), waking from epoll_wait for it.
// Server-wide request and reply-memory bounds live in ServerLoad, which every
// Connection reads when it decides whether it may be read (connection.h); a
// connection refused by the server-wide reply cap waits on ServerLoad's list, and the
// release that leaves room wakes the loop (the wake eventfd), which offers the room
// to the waiters in the order they came (OnWake). When reply memory has been high and
// falls to little, a worker gives freed heap back to the system (malloc_trim: glibc
// keeps freed 1 MiB READ buffers in its arenas otherwise).
//
// Stop() in reverse of Start(): (1) the loop closes the listeners and stops reading
// from every connection; (2) Stop() waits, bounded by drain_timeout, until no request
// is queued or running and no reply byte is unsent; (3) the loop closes every
// connection and exits; (4) the workers are told to quit (requests still queued after
// a timed-out drain are dropped unrun) and joined. After (4) no thread of ours can
// touch a Program.
#include "rpc/server.h"

#include <errno.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "rpc/server_impl.h"

namespace localnfs::rpc {

// ---- Start ----

absl::Status Server::Impl::Start() {
  absl::MutexLock l(&mu_);
  if (state_ != State::kNew) {
    return absl::FailedPreconditionError("rpc server can be started only once");
  }
  epoll_fd_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_) return Errno(errno, "epoll_create1");
  wake_fd_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_fd_) return Errno(errno, "eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &wake_pollable_;
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &ev) != 0) {
    return Errno(errno, "epoll_ctl eventfd");
  }
  for (auto& listener : listeners_) RETURN_IF_ERROR(Arm(listener.get()));
  // The loop reads listeners_ through armed_listeners_ only; give it its own copy
  // before it runs so that it never needs mu_ to find a listener.
  for (auto& listener : listeners_) armed_listeners_[listener.get()] = listener;
  read_buf_.resize(std::max(kReadChunk, kMaxDatagram));
  // Before any connection exists: constant from now on (connection.h).
  load_.max_reply_bytes = static_cast<int64_t>(opts_.max_reply_bytes);
  load_.wake_fd = wake_fd_.get();
  const int n = std::max(1, opts_.worker_threads);
  // Named for top -H, perf and the tests that check where a call ran.
  for (int i = 0; i < n; ++i) {
    workers_.emplace_back([this] {
      pthread_setname_np(pthread_self(), kWorkerThreadName);
      WorkerMain();
    });
  }
  loop_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), kLoopThreadName);
    LoopMain();
  });
  state_ = State::kRunning;
  return absl::OkStatus();
}

void Server::Impl::Wake() {
  const uint64_t one = 1;
  // A full eventfd counter already means "wake up"; nothing else can fail here.
  (void)!::write(wake_fd_.get(), &one, sizeof(one));
}

void Server::Impl::Stop() {
  {
    absl::MutexLock l(&mu_);
    if (state_ != State::kRunning) {
      state_ = State::kStopped;
      listeners_.clear();
      return;
    }
    state_ = State::kStopped;
    cmd_stop_reading_ = true;
  }
  // (1) stop accepting and reading.
  Wake();
  reading_stopped_.WaitForNotification();
  // (2) drain, bounded. Polling is fine here: Stop() is rare and this keeps the
  // per-request accounting to two atomic adds.
  const absl::Time drain_start = absl::Now();
  const absl::Time deadline = drain_start + opts_.drain_timeout;
  const int64_t inflight_at_stop = load_.inflight.load();
  const int64_t unsent_at_stop = load_.unsent_bytes.load();
  bool drained = true;
  // Zero-copy replies the kernel has not let go of yet count too: their completions
  // still come in (the loop reaps them) and the workers free them.
  while (load_.inflight.load() > 0 || load_.unsent_bytes.load() > 0 ||
         load_.held_replies.load() > 0) {
    if (absl::Now() >= deadline) {
      LOG_WARNING(
          "rpc: stop: drain timed out after %s with %d requests in flight, %d reply "
          "bytes unsent, %d zero-copy replies not completed",
          absl::FormatDuration(opts_.drain_timeout), load_.inflight.load(),
          load_.unsent_bytes.load(), load_.held_replies.load());
      drained = false;
      break;
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  if (drained) {
    LOG_INFO("rpc: stop: %d requests in flight and %d reply bytes unsent when reading "
             "stopped; drained in %d ms",
             inflight_at_stop, unsent_at_stop,
             absl::ToInt64Milliseconds(absl::Now() - drain_start));
  }
  // (3) close every connection; the loop exits.
  {
    absl::MutexLock l(&mu_);
    cmd_quit_ = true;
  }
  Wake();
  loop_thread_.join();
  // (4) workers.
  {
    absl::MutexLock l(&work_mu_);
    workers_quit_ = true;
    work_cv_.SignalAll();
  }
  for (auto& t : workers_) t.join();
  workers_.clear();
  {
    // Requests left after a timed-out drain are never run; they still leave the
    // in-flight count, as every path out of the queue does.
    absl::MutexLock l(&work_mu_);
    if (!work_.empty()) {
      LOG_WARNING("rpc: stop: %d queued requests dropped unrun", work_.size());
      load_.inflight.fetch_sub(static_cast<int64_t>(work_.size()));
      for (Work& w : work_) {
        if (w.conn && !w.release_only) w.conn->RequestFinished(w.reserved);
      }
      work_.clear();
    }
  }
  // Connections still referenced (by the reply cache's parked retransmits) may give
  // reply memory back when they go, after wake_fd_ is closed: they must not write to
  // whatever that number names by then. No other thread of ours runs any more.
  load_.wake_fd = -1;
  absl::MutexLock l(&mu_);
  listeners_.clear();
  close_requests_.clear();
  resume_requests_.clear();
}

// ---- Server ----

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(options)) {}
Server::~Server() = default;  // Impl's destructor stops
void Server::AddProgram(Program* program) { impl_->AddProgram(program); }
absl::StatusOr<uint16_t> Server::Listen(const std::string& address, uint16_t port,
                                        bool udp) {
  return impl_->Listen(address, port, udp);
}
absl::Status Server::Start() { return impl_->Start(); }
void Server::Stop() { impl_->Stop(); }
absl::Status Server::RegisterWithRpcbind(uint16_t nfs_port, uint16_t mount_port) {
  return impl_->RegisterWithRpcbind(nfs_port, mount_port);
}
void Server::UnregisterFromRpcbind() { impl_->UnregisterFromRpcbind(); }
const ServerCounters& Server::counters() const { return impl_->counters(); }
int64_t Server::zerocopy_replies_held() const { return impl_->zerocopy_replies_held(); }
int64_t Server::reply_bytes_held() const { return impl_->reply_bytes_held(); }
DrcStats Server::drc_stats() const { return impl_->drc_stats(); }
const ProcedureStats* Server::procedure_stats(const Program& program) const {
  return impl_->procedure_stats(program);
}

}  // namespace localnfs::rpc
