// rpc/server.cc — listeners, the epoll event loop, the worker pool and the orderly
// Stop() of the rpc Server (see server.h for the contract, connection.h for the
// lifetime of a connection).
//
// Threads:
//  * one event loop: accepts, reads into each connection's RecordDecoder, queues
//    complete records for the workers, receives UDP datagrams, finishes sends that
//    workers left queued (EPOLLOUT), and closes connections. It is the only thread
//    that closes a connection or changes the set of connections; workers ask it to
//    close one through `close_requests_` + the wake eventfd.
//  * worker_threads workers: dispatch a record (rpc/dispatch.h) and send the reply.
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

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <rpc/pmap_clnt.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <optional>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/rcu.h"
#include "common/release_queue.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "rpc/connection.h"
#include "rpc/dispatch.h"

namespace localnfs::rpc {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr int kReadsPerWakeup = 16;  // fairness between busy connections
constexpr int kAcceptsPerWakeup = 64;
constexpr int kDatagramsPerWakeup = 64;
constexpr size_t kMaxDatagram = 65536;
constexpr uint32_t kMountProgram = 100005;
constexpr absl::Duration kLimitLogInterval = absl::Seconds(1);

// A listening TCP socket or a bound UDP socket.
struct Listener : Pollable {
  Listener(Kind k, UniqueFd f, PeerAddress a) : Pollable(k), fd(std::move(f)), local(a) {}
  const UniqueFd fd;
  const PeerAddress local;
};

// One request for a worker: a TCP call (conn set: received, perhaps already run on
// the loop up to a step that would block) or a UDP datagram (udp set) — or, with
// release_only, no request: conn's completed zero-copy replies are to be freed.
struct Work {
  std::shared_ptr<Connection> conn;
  std::unique_ptr<Call> call;     // TCP
  std::shared_ptr<Listener> udp;  // keeps the UDP socket open until the reply is sent
  PeerAddress udp_peer;
  std::string datagram;  // UDP
  bool release_only = false;
  size_t reserved = 0;  // reply memory reserved for it and not yet used (TCP)
  bool trim = false;    // no request: give freed heap back to the system
};

absl::Status Errno(int err, const std::string& what) { return ErrnoToStatus(err, what); }

}  // namespace

class Server::Impl {
 public:
  explicit Impl(ServerOptions options)
      : opts_(std::move(options)), drc_(opts_.drc), dispatcher_(&counters_, &drc_) {}
  ~Impl() { Stop(); }

  void AddProgram(Program* p) { dispatcher_.AddProgram(p); }
  absl::StatusOr<uint16_t> Listen(const std::string& address, uint16_t port, bool udp);
  absl::Status Start();
  void Stop();
  absl::Status RegisterWithRpcbind(uint16_t nfs_port, uint16_t mount_port);
  void UnregisterFromRpcbind();
  const ServerCounters& counters() const { return counters_; }
  int64_t zerocopy_replies_held() const { return load_.held_replies.load(); }
  int64_t reply_bytes_held() const { return load_.reply_bytes.load(); }
  DrcStats drc_stats() const { return drc_.stats(); }

 private:
  enum class State { kNew, kRunning, kStopped };

  absl::StatusOr<std::shared_ptr<Listener>> Bind(const PeerAddress& addr, bool udp,
                                                 bool dual_stack);
  absl::Status Arm(Listener* l);
  void Wake();

  // Event loop.
  void LoopMain();
  void OnWake(bool* quit);
  void Accept(Listener* l);
  void ReadDatagrams(const std::shared_ptr<Listener>& l);
  void OnConnection(Connection* c, uint32_t events);
  void ReadConnection(const std::shared_ptr<Connection>& c);
  // Hands c's pending records to the workers while its limits allow, receiving each
  // (Dispatcher::Receive) when its turn comes.
  void StartPending(const std::shared_ptr<Connection>& c);
  void CloseConnection(Connection* c, bool on_error);
  void CloseIdleConnections(absl::Time now);
  // At max_connections (or max_connections_per_client for `peer`): closes the
  // longest-idle connection (of `peer` only when `same_client`) and returns true, or
  // returns false when every one is busy.
  bool EvictIdlest(const PeerAddress& peer, bool same_client);
  // The room left under the server-wide reply cap goes to the connections that waited
  // for it, in order.
  void OfferRoom();
  // epoll_wait's timeout: until the next idle sweep, or -1 without idle timeout.
  int LoopTimeoutMs(absl::Time now) const;
  // Counts a request in flight and hands it to the workers — or, for the first quick
  // TCP call of a loop round, holds it for RunHeldCall (see "Quick calls").
  void Enqueue(Work w);
  void PushWork(Work w);
  // Queues c to a worker that frees its completed zero-copy replies (counted in
  // flight like a request, so that Stop's drain and queue accounting see it).
  void QueueRelease(const std::shared_ptr<Connection>& c);
  // The loop, on EPOLLERR of a connection that sends with MSG_ZEROCOPY. False when
  // the socket has a real error (the connection was closed).
  bool ReapCompletions(const std::shared_ptr<Connection>& c);
  // Frees c's released replies (worker); resumes c when that made room for it.
  void FreeReleased(const std::shared_ptr<Connection>& c);
  // End of a loop round: runs the held call, if the round started nothing else.
  void RunHeldCall();
  // A request that was run (by a worker or the loop) leaves the in-flight count.
  void Finished(Work& w);

  // Workers (RunTcp also on the loop, for a held quick call).
  void WorkerMain();
  // False only when `on_loop` and the call would wait for the disk: nothing was done,
  // a worker must run it.
  bool RunTcp(Work& w, bool on_loop = false);
  void RunUdp(Work& w);
  // Sends a complete reply record on `c` (from any worker).
  void SendOn(const std::shared_ptr<Connection>& c, ReplyRecord reply,
              size_t reservation = 0);
  void AskLoopToClose(const std::shared_ptr<Connection>& c);
  void AskLoopToResume(const std::shared_ptr<Connection>& c);

  const ServerOptions opts_;
  ServerCounters counters_;
  // Requests queued or running, reply bytes queued on connections, and zero-copy
  // replies held: drain accounting polled by Stop(), and the server-wide limits'
  // measure. Before everything that may hold a connection (the reply cache, the work
  // queue, the loop's tables): a connection destroyed with them still accounts here.
  ServerLoad load_;
  // Before the dispatcher, which uses it; destroyed after it. Parked retransmits hold
  // connection references until their original completes or the cache goes.
  DuplicateRequestCache drc_;
  Dispatcher dispatcher_;

  absl::Mutex mu_;  // control state and loop commands
  State state_ ABSL_GUARDED_BY(mu_) = State::kNew;
  std::vector<std::shared_ptr<Listener>> listeners_ ABSL_GUARDED_BY(mu_);
  bool cmd_stop_reading_ ABSL_GUARDED_BY(mu_) = false;
  bool cmd_quit_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::shared_ptr<Connection>> close_requests_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Connection>> resume_requests_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<uint32_t, uint32_t>> rpcbind_registered_ ABSL_GUARDED_BY(mu_);
  absl::Notification reading_stopped_;

  UniqueFd epoll_fd_;
  UniqueFd wake_fd_;
  Pollable wake_pollable_{Pollable::Kind::kWake};
  std::thread loop_thread_;
  std::vector<std::thread> workers_;

  // Event loop only.
  absl::flat_hash_map<Connection*, std::shared_ptr<Connection>> conns_;
  absl::flat_hash_map<Listener*, std::shared_ptr<Listener>> armed_listeners_;
  // References dropped at the end of an epoll batch: later events of the same batch
  // may still point at an object closed earlier in it.
  std::vector<std::shared_ptr<void>> graveyard_;
  std::vector<char> read_buf_;
  LogRateLimit accept_error_log_{1, absl::Seconds(1)};
  LogRateLimit refused_log_{1, kLimitLogInterval};
  LogRateLimit busy_log_{1, kLimitLogInterval};
  LogRateLimit reply_cap_log_{1, kLimitLogInterval};
  LogRateLimit evicted_log_{1, kLimitLogInterval};
  // Open connections per client address (AddressBytes), with max_connections_per_client.
  absl::flat_hash_map<std::string, uint32_t> conns_per_client_;
  absl::Time next_idle_sweep_ = absl::InfiniteFuture();
  std::optional<Work> held_call_;    // counted in load_.inflight while held
  int requests_started_in_round_ = 0;

  // Work queue.
  absl::Mutex work_mu_;
  absl::CondVar work_cv_;
  std::deque<Work> work_ ABSL_GUARDED_BY(work_mu_);
  bool workers_quit_ ABSL_GUARDED_BY(work_mu_) = false;

  std::atomic<uint64_t> next_conn_id_{1};
};

// ---- setup ----

absl::StatusOr<std::shared_ptr<Listener>> Server::Impl::Bind(const PeerAddress& addr,
                                                             bool udp, bool dual_stack) {
  const std::string where = addr.ToString();
  UniqueFd fd(::socket(
      addr.family(), (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Errno(errno, absl::StrCat("socket ", where));
  int one = 1, zero = 0;
  if (setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
    return Errno(errno, absl::StrCat("SO_REUSEADDR ", where));
  }
  if (dual_stack &&
      setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) != 0) {
    return Errno(errno, absl::StrCat("IPV6_V6ONLY ", where));
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr.addr), addr.len) != 0) {
    return Errno(errno, absl::StrCat("bind ", where));
  }
  if (!udp && ::listen(fd.get(), SOMAXCONN) != 0) {
    return Errno(errno, absl::StrCat("listen ", where));
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return Errno(errno, absl::StrCat("getsockname ", where));
  }
  return std::make_shared<Listener>(
      udp ? Pollable::Kind::kUdpSocket : Pollable::Kind::kTcpListener, std::move(fd),
      PeerAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len));
}

absl::StatusOr<uint16_t> Server::Impl::Listen(const std::string& address, uint16_t port,
                                              bool udp) {
  {
    absl::MutexLock l(&mu_);
    // Listeners are armed by Start(); adding one to a running loop is not needed by
    // anyone and would race with the loop's own listener table.
    if (state_ != State::kNew) {
      return absl::FailedPreconditionError("rpc server: Listen() must precede Start()");
    }
  }
  PeerAddress addr;
  bool dual_stack = false;
  if (address.empty()) {
    PeerAddress::Parse("::", port, &addr);
    dual_stack = true;
  } else if (!PeerAddress::Parse(address, port, &addr)) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address \"", address, "\" is not a numeric IP address"));
  }
  auto tcp = Bind(addr, /*udp=*/false, dual_stack);
  if (!tcp.ok() && address.empty() &&
      (StatusErrno(tcp.status()) == EAFNOSUPPORT ||
       StatusErrno(tcp.status()) == EADDRNOTAVAIL)) {
    // No IPv6 on this host: all interfaces means all IPv4 interfaces.
    PeerAddress::Parse("0.0.0.0", port, &addr);
    dual_stack = false;
    tcp = Bind(addr, false, false);
  }
  if (!tcp.ok()) return tcp.status();
  std::vector<std::shared_ptr<Listener>> bound = {*tcp};
  const uint16_t bound_port = (*tcp)->local.port();
  if (udp) {
    PeerAddress uaddr = addr;
    if (uaddr.family() == AF_INET) {
      reinterpret_cast<sockaddr_in*>(&uaddr.addr)->sin_port = htons(bound_port);
    } else {
      reinterpret_cast<sockaddr_in6*>(&uaddr.addr)->sin6_port = htons(bound_port);
    }
    ASSIGN_OR_RETURN(auto u, Bind(uaddr, /*udp=*/true, dual_stack));
    bound.push_back(std::move(u));
  }
  absl::MutexLock l(&mu_);
  for (auto& b : bound) listeners_.push_back(std::move(b));
  LOG_INFO("rpc: listening on %s (tcp%s)", (*tcp)->local.ToString(), udp ? ", udp" : "");
  return bound_port;
}

absl::Status Server::Impl::Arm(Listener* l) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = static_cast<Pollable*>(l);
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, l->fd.get(), &ev) != 0) {
    return Errno(errno, absl::StrCat("epoll_ctl ", l->local.ToString()));
  }
  return absl::OkStatus();
}

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

// ---- Stop ----

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

// ---- event loop ----

void Server::Impl::LoopMain() {
  RcuThread rcu;
  constexpr int kMaxEvents = 64;
  epoll_event events[kMaxEvents];
  bool quit = false;
  if (opts_.idle_timeout != absl::InfiniteDuration()) {
    next_idle_sweep_ = absl::Now() + std::clamp(opts_.idle_timeout / 4,
                                                absl::Milliseconds(10), absl::Seconds(1));
  }
  while (!quit) {
    const int n =
        epoll_wait(epoll_fd_.get(), events, kMaxEvents, LoopTimeoutMs(absl::Now()));
    if (n < 0) {
      if (errno == EINTR) continue;
      LOG_ERROR("rpc: epoll_wait: %s", strerror(errno));
      break;
    }
    for (int i = 0; i < n; ++i) {
      auto* p = static_cast<Pollable*>(events[i].data.ptr);
      switch (p->kind) {
        case Pollable::Kind::kWake:
          OnWake(&quit);
          break;
        case Pollable::Kind::kTcpListener: {
          auto it = armed_listeners_.find(static_cast<Listener*>(p));
          if (it != armed_listeners_.end()) Accept(it->first);
          break;
        }
        case Pollable::Kind::kUdpSocket: {
          auto it = armed_listeners_.find(static_cast<Listener*>(p));
          if (it != armed_listeners_.end()) ReadDatagrams(it->second);
          break;
        }
        case Pollable::Kind::kConnection:
          OnConnection(static_cast<Connection*>(p), events[i].events);
          break;
      }
    }
    RunHeldCall();
    if (const absl::Time now = absl::Now(); now >= next_idle_sweep_) {
      CloseIdleConnections(now);
    }
    graveyard_.clear();
    FlushThisThread();
  }
  // Close everything still open. Workers may still hold references; the objects go
  // away with the last one.
  std::vector<Connection*> all;
  for (auto& [c, ref] : conns_) all.push_back(c);
  for (Connection* c : all) CloseConnection(c, false);
  graveyard_.clear();
  for (auto& [l, ref] : armed_listeners_) {
    epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, l->fd.get(), nullptr);
  }
  armed_listeners_.clear();
  // Only on a failed epoll_wait: Stop() must not wait for a loop that is gone.
  if (!reading_stopped_.HasBeenNotified()) reading_stopped_.Notify();
  FlushThisThread();
}

void Server::Impl::OnWake(bool* quit) {
  uint64_t v;
  while (::read(wake_fd_.get(), &v, sizeof(v)) > 0) {
  }
  std::vector<std::shared_ptr<Connection>> to_close, to_resume;
  bool stop_reading, do_quit;
  {
    absl::MutexLock l(&mu_);
    to_close.swap(close_requests_);
    to_resume.swap(resume_requests_);
    stop_reading = cmd_stop_reading_;
    do_quit = cmd_quit_;
  }
  for (auto& c : to_close) CloseConnection(c.get(), true);
  for (auto& c : to_resume) {
    c->ResumeHandled();
    if (conns_.contains(c.get())) StartPending(c);
  }
  OfferRoom();
  if (load_.TakeTrimWanted()) {
    load_.inflight.fetch_add(1);  // drained by Stop() like a request
    Work w;
    w.trim = true;
    PushWork(std::move(w));
  }
  if (stop_reading && !reading_stopped_.HasBeenNotified()) {
    for (auto& [l, ref] : armed_listeners_) {
      epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, l->fd.get(), nullptr);
      graveyard_.push_back(ref);
    }
    armed_listeners_.clear();
    for (auto& [c, ref] : conns_) c->StopReading();
    reading_stopped_.Notify();
  }
  if (do_quit) *quit = true;
}

void Server::Impl::Accept(Listener* l) {
  for (int i = 0; i < kAcceptsPerWakeup; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    UniqueFd fd(accept4(l->fd.get(), reinterpret_cast<sockaddr*>(&ss), &len,
                        SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      const int err = errno;
      // Out of descriptors, the listener stays readable: log once a second and pause
      // briefly instead of spinning the loop (and the log) at full speed.
      if (uint64_t left_out = 0; accept_error_log_.Allow(&left_out)) {
        LOG_WARNING("rpc: accept on %s: %s (%d more since the last line)",
                    l->local.ToString(), strerror(err), left_out);
      }
      if (err == EMFILE || err == ENFILE) absl::SleepFor(absl::Milliseconds(1));
      return;
    }
    const PeerAddress peer =
        PeerAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    const std::string client = opts_.max_connections_per_client > 0
                                   ? peer.AddressBytes() : std::string();
    const char* full = nullptr;  // the limit that refuses it
    if (auto it = conns_per_client_.find(client);
        opts_.max_connections_per_client > 0 && it != conns_per_client_.end() &&
        it->second >= opts_.max_connections_per_client && !EvictIdlest(peer, true)) {
      full = "--max-connections-per-client";
    } else if (conns_.size() >= std::max<uint32_t>(1, opts_.max_connections) &&
               !EvictIdlest(peer, false)) {
      full = "--max-connections";
    }
    if (full != nullptr) {
      // Every connection is busy. Closing at once (fd goes out of scope) tells the
      // client now; leaving it in the backlog would leave it hanging and the listener
      // readable (a busy loop).
      counters_.connections_refused.fetch_add(1, std::memory_order_relaxed);
      if (uint64_t left_out = 0; refused_log_.Allow(&left_out)) {
        LOG_WARNING(
            "rpc: %u connections open (%s), none idle: refused %u new connection(s), "
            "the latest from %s",
            conns_.size(), full, left_out + 1, peer.ToString());
      }
      continue;
    }
    sockaddr_storage ls{};
    socklen_t llen = sizeof(ls);
    getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ls), &llen);
    int one = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ZerocopyOptions zerocopy{false, opts_.zerocopy_min_bytes,
                             opts_.zerocopy == ZerocopyMode::kAlways};
    // Fails on kernels (or sockets) without MSG_ZEROCOPY: then sends copy, as always.
    zerocopy.enabled = opts_.zerocopy != ZerocopyMode::kOff &&
                       setsockopt(fd.get(), SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) == 0;
    auto conn = std::make_shared<Connection>(
        next_conn_id_.fetch_add(1), std::move(fd), peer,
        PeerAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ls), llen),
        opts_.max_record_size, epoll_fd_.get(),
        ConnectionLimits{opts_.max_reply_bytes_per_connection,
                         std::max<uint32_t>(1, opts_.max_requests_per_connection), &load_,
                         static_cast<int64_t>(opts_.max_requests_total)},
        zerocopy);
    if (!conn->Register()) {
      LOG_WARNING("rpc: epoll_ctl for connection from %s: %s", peer.ToString(),
                  strerror(errno));
      continue;
    }
    counters_.connections_accepted.fetch_add(1, std::memory_order_relaxed);
    if (opts_.max_connections_per_client > 0) ++conns_per_client_[client];
    conns_.emplace(conn.get(), std::move(conn));
  }
}

void Server::Impl::OnConnection(Connection* c, uint32_t events) {
  auto it = conns_.find(c);
  if (it == conns_.end()) return;  // closed earlier in this batch
  std::shared_ptr<Connection> conn = it->second;
  // EPOLLERR also means "the error queue holds zero-copy completions".
  if ((events & EPOLLERR) && conn->zerocopy_used()) {
    if (!ReapCompletions(conn)) return;
    if (!(events & EPOLLHUP)) events &= ~EPOLLERR;
  }
  if (events & EPOLLOUT) {
    const SendResult r = conn->Flush();
    counters_.zerocopy_sends.fetch_add(r.zerocopy_sends, std::memory_order_relaxed);
    if (r.queue_release) QueueRelease(conn);
    load_.unsent_bytes.fetch_sub(r.written);
    if (r.error) {
      CloseConnection(c, true);
      return;
    }
    StartPending(conn);  // sending made room
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    if (conn->ReadingAllowed()) {
      ReadConnection(conn);  // reads to EOF / error and closes then
    } else if (events & (EPOLLHUP | EPOLLERR)) {
      CloseConnection(c, false);  // the peer is gone; nothing can be delivered
    }
  }
}

void Server::Impl::ReadConnection(const std::shared_ptr<Connection>& conn) {
  std::vector<std::string> records;
  for (int i = 0; i < kReadsPerWakeup && conn->ReadingAllowed(); ++i) {
    const ssize_t n = ::read(conn->fd(), read_buf_.data(), kReadChunk);
    if (n == 0) {
      CloseConnection(conn.get(), false);
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      const bool reset = errno == ECONNRESET;
      if (!reset) {
        LOG_WARNING("rpc: read from %s: %s", conn->info.peer().ToString(),
                    strerror(errno));
      }
      CloseConnection(conn.get(), !reset);
      return;
    }
    conn->Touch(absl::Now());
    absl::Status s = conn->decoder.Feed(
        std::string_view(read_buf_.data(), static_cast<size_t>(n)), &records);
    if (!s.ok()) {
      LOG_WARNING("rpc: closing connection from %s: %s", conn->info.peer().ToString(),
                  s.message());
      CloseConnection(conn.get(), true);
      return;
    }
    for (auto& r : records) conn->pending.push_back(std::move(r));
    records.clear();
    // Started first, then the rest (if any) announced: a record that starts at once
    // never turns EPOLLIN off and on again (two epoll_ctl calls per request at one in
    // flight). StartPending keeps the connection's view of what is pending.
    StartPending(conn);
    conn->PendingChanged();
    if (load_.inflight.load(std::memory_order_relaxed) >=
        static_cast<int64_t>(opts_.max_requests_total)) {
      if (uint64_t left_out = 0; busy_log_.Allow(&left_out)) {
        LOG_WARNING(
            "rpc: %d requests queued or running (--max-requests %u): not reading from "
            "connections that have requests pending",
            load_.inflight.load(), opts_.max_requests_total);
      }
    }
    if (static_cast<size_t>(n) < kReadChunk) break;  // the socket is very likely empty
  }
}

void Server::Impl::StartPending(const std::shared_ptr<Connection>& conn) {
  if (conn->next == nullptr && conn->pending.empty()) return;
  bool started = false;
  while (true) {
    if (conn->next == nullptr) {  // received (call header decoded) at its turn
      if (conn->pending.empty()) break;
      conn->next = dispatcher_.Receive(std::move(conn->pending.front()), &conn->info);
      conn->pending.pop_front();
    }
    std::unique_ptr<Call> call;
    size_t reserved = 0;
    if (!conn->StartNext(&call, &reserved)) {
      // The connection's view of `next` was left unknown when the one before started.
      if (started) conn->PendingChanged();
      break;
    }
    started = true;
    Work w;
    w.conn = conn;
    w.call = std::move(call);
    w.reserved = reserved;
    Enqueue(std::move(w));
  }
  if (conn->next != nullptr && conn->waiting_for_room()) {
    if (uint64_t left_out = 0; reply_cap_log_.Allow(&left_out)) {
      LOG_WARNING(
          "rpc: %d bytes of replies held (--max-reply-bytes %u): connections whose next "
          "reply does not fit wait until replies drain (%u such waits since the last line)",
          load_.reply_bytes.load(), opts_.max_reply_bytes, left_out + 1);
    }
  }
}

void Server::Impl::OfferRoom() {
  // Each waiter looks at the cap again: one that is still refused registers again
  // (and re-arms the wake-up), so none is forgotten when others took the room first.
  for (Connection* c : load_.TakeRoomWaiters()) {
    auto it = conns_.find(c);
    if (it == conns_.end()) continue;  // closed since
    std::shared_ptr<Connection> conn = it->second;
    conn->RoomOffered();  // also lets a connection with nothing pending read again
    StartPending(conn);
  }
}

void Server::Impl::ReadDatagrams(const std::shared_ptr<Listener>& l) {
  for (int i = 0; i < kDatagramsPerWakeup; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    const ssize_t n = recvfrom(l->fd.get(), read_buf_.data(), kMaxDatagram, MSG_TRUNC,
                               reinterpret_cast<sockaddr*>(&ss), &len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN, or an ICMP error reported on the socket: nothing to read
    }
    if (static_cast<size_t>(n) > kMaxDatagram ||
        static_cast<size_t>(n) > opts_.max_record_size) {
      continue;  // truncated: cannot be a valid call
    }
    {
      absl::MutexLock lock(&work_mu_);
      if (work_.size() >= opts_.max_queued_datagrams) continue;
    }
    Work w;
    w.udp = l;
    w.udp_peer = PeerAddress::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    w.datagram.assign(read_buf_.data(), static_cast<size_t>(n));
    Enqueue(std::move(w));
  }
}

void Server::Impl::CloseConnection(Connection* c, bool on_error) {
  auto it = conns_.find(c);
  if (it == conns_.end()) return;
  // Counted before Close(), which lets the peer see the close: a test (or a tool)
  // that reacts to it must find the counter already bumped. Only the loop closes, so
  // closed() cannot change in between.
  if (on_error && !it->second->closed()) {
    counters_.connections_closed_on_error.fetch_add(1);
  }
  it->second->pending.clear();  // never started: nothing to account for
  it->second->next.reset();
  if (opts_.max_connections_per_client > 0) {
    auto n = conns_per_client_.find(it->second->info.peer().AddressBytes());
    if (n != conns_per_client_.end() && --n->second == 0) conns_per_client_.erase(n);
  }
  uint64_t dropped = 0;
  if (it->second->Close(&dropped)) {
    load_.unsent_bytes.fetch_sub(static_cast<int64_t>(dropped));
  }
  graveyard_.push_back(std::move(it->second));
  conns_.erase(it);
}

void Server::Impl::CloseIdleConnections(absl::Time now) {
  next_idle_sweep_ =
      now + std::clamp(opts_.idle_timeout / 4, absl::Milliseconds(10), absl::Seconds(1));
  const absl::Time cutoff = now - opts_.idle_timeout;
  std::vector<Connection*> idle;
  for (auto& [c, ref] : conns_) {
    if (c->IdleSince(cutoff)) idle.push_back(c);
  }
  if (idle.empty()) return;
  LOG_INFO("rpc: closing %u connection(s) idle for %s (--idle-timeout), e.g. from %s",
           idle.size(), absl::FormatDuration(opts_.idle_timeout),
           idle.front()->info.peer().ToString());
  for (Connection* c : idle) {
    counters_.connections_closed_idle.fetch_add(1, std::memory_order_relaxed);
    CloseConnection(c, false);
  }
}

bool Server::Impl::EvictIdlest(const PeerAddress& peer, bool same_client) {
  const std::string client = same_client ? peer.AddressBytes() : std::string();
  Connection* victim = nullptr;
  absl::Time oldest = absl::InfiniteFuture();
  for (auto& [c, ref] : conns_) {
    absl::Time since;
    if (c->IdleForEviction(&since) && since < oldest &&
        (!same_client || c->info.peer().AddressBytes() == client)) {
      oldest = since;
      victim = c;
    }
  }
  if (victim == nullptr) return false;
  counters_.connections_evicted.fetch_add(1, std::memory_order_relaxed);
  if (uint64_t left_out = 0; evicted_log_.Allow(&left_out)) {
    LOG_WARNING(
        "rpc: %u connections open (%s): closed the one idle longest (from %s, idle for "
        "%s) to admit one from %s (%u closed so since the last line)",
        same_client ? conns_per_client_[client] : conns_.size(),
        same_client ? "--max-connections-per-client" : "--max-connections",
        victim->info.peer().ToString(),
        absl::FormatDuration(absl::Trunc(absl::Now() - oldest, absl::Milliseconds(1))),
        peer.ToString(), left_out + 1);
  }
  CloseConnection(victim, false);
  return true;
}

int Server::Impl::LoopTimeoutMs(absl::Time now) const {
  if (next_idle_sweep_ == absl::InfiniteFuture()) return -1;
  if (now >= next_idle_sweep_) return 0;
  // Rounded up: waking a little late is fine, waking early just loops once more.
  return static_cast<int>(absl::ToInt64Milliseconds(next_idle_sweep_ - now)) + 1;
}

void Server::Impl::Enqueue(Work w) {
  load_.inflight.fetch_add(1);
  if (w.conn && opts_.inline_quick_calls && requests_started_in_round_++ == 0 &&
      w.call->quick()) {
    held_call_.emplace(std::move(w));
    return;
  }
  // A second request in this round: the held one goes to the workers too.
  if (held_call_) {
    PushWork(std::move(*held_call_));
    held_call_.reset();
  }
  PushWork(std::move(w));
}

void Server::Impl::PushWork(Work w) {
  absl::MutexLock l(&work_mu_);
  work_.push_back(std::move(w));
  work_cv_.Signal();
}

void Server::Impl::QueueRelease(const std::shared_ptr<Connection>& c) {
  load_.inflight.fetch_add(1);
  Work w;
  w.conn = c;
  w.release_only = true;
  PushWork(std::move(w));
}

bool Server::Impl::ReapCompletions(const std::shared_ptr<Connection>& c) {
  const ReapResult r = c->ReapCompletions();
  counters_.zerocopy_sends_copied.fetch_add(r.sends_copied, std::memory_order_relaxed);
  if (r.queue_release) QueueRelease(c);
  if (r.socket_error != 0) {
    const bool reset = r.socket_error == ECONNRESET || r.socket_error == EPIPE;
    if (!reset) {
      LOG_WARNING("rpc: connection from %s: %s", c->info.peer().ToString(),
                  strerror(r.socket_error));
    }
    CloseConnection(c.get(), !reset);
    return false;
  }
  return true;
}

void Server::Impl::FreeReleased(const std::shared_ptr<Connection>& c) {
  bool resume = false;
  if (const uint64_t n = c->FreeReleasedReplies(&resume); n > 0) {
    counters_.zerocopy_replies_freed.fetch_add(n, std::memory_order_relaxed);
  }
  if (resume) AskLoopToResume(c);
}

void Server::Impl::RunHeldCall() {
  requests_started_in_round_ = 0;
  if (!held_call_) return;
  Work w = std::move(*held_call_);
  held_call_.reset();
  if (!RunTcp(w, /*on_loop=*/true)) {
    // It would wait for the disk: the call goes to a worker as it is (decoded, with
    // what the program resolved), still counted in flight.
    PushWork(std::move(w));
    return;
  }
  Finished(w);
}

void Server::Impl::Finished(Work& w) {
  w = Work{};  // drop the connection reference before the request counts as done
  load_.inflight.fetch_sub(1);
}

// ---- workers ----

void Server::Impl::WorkerMain() {
  RcuThread rcu;
  while (true) {
    Work w;
    {
      absl::MutexLock l(&work_mu_);
      while (work_.empty() && !workers_quit_) work_cv_.Wait(&work_mu_);
      if (workers_quit_) break;
      w = std::move(work_.front());
      work_.pop_front();
    }
    if (w.trim) {
      const absl::Time t0 = absl::Now();
      malloc_trim(0);
      LOG_DEBUG("rpc: reply memory fell to %d bytes: heap trimmed in %s",
                load_.reply_bytes.load(), absl::FormatDuration(absl::Now() - t0));
    } else if (w.release_only) {
      FreeReleased(w.conn);
    } else if (w.conn) {
      RunTcp(w);
      FreeReleased(w.conn);  // between RPCs, on a worker (seed 001)
    } else {
      RunUdp(w);
    }
    Finished(w);
    FlushThisThread();
  }
}

bool Server::Impl::RunTcp(Work& w, bool on_loop) {
  Connection& c = *w.conn;
  // A request whose client has gone is not run: its reply could not be delivered,
  // and the client retransmits on its new connection.
  if (!c.closed()) {
    ReplyRecord reply;
    Dispatcher::RunOptions run;
    run.with_record_mark = true;
    run.must_not_block = on_loop;
    run.bulk_by_reference = true;
    // A parked retransmit's reply is sent by whichever worker completes the original.
    run.deliver_later = [this, conn = w.conn](ReplyRecord r) { SendOn(conn, std::move(r)); };
    switch (dispatcher_.Run(*w.call, &reply, std::move(run))) {
      case Dispatcher::Outcome::kReply:
        SendOn(w.conn, std::move(reply), w.reserved);
        w.reserved = 0;  // the reply took its place
        break;
      case Dispatcher::Outcome::kNoReply:
        break;
      case Dispatcher::Outcome::kWouldBlock:
        return false;
    }
  }
  w.call.reset();  // the call's resources go before the request counts as finished
  if (c.RequestFinished(w.reserved)) AskLoopToResume(w.conn);
  w.reserved = 0;
  return true;
}

void Server::Impl::SendOn(const std::shared_ptr<Connection>& c, ReplyRecord reply,
                          size_t reservation) {
  const SendResult r = c->SendReply(std::move(reply), reservation);
  counters_.zerocopy_sends.fetch_add(r.zerocopy_sends, std::memory_order_relaxed);
  if (r.queue_release) QueueRelease(c);
  load_.unsent_bytes.fetch_add(r.left_queued);  // also on error: closing drops them
  if (r.error) AskLoopToClose(c);
}

void Server::Impl::RunUdp(Work& w) {
  // Datagrams have no connection; each call gets its own short-lived ConnectionInfo.
  ConnectionInfo info(next_conn_id_.fetch_add(1), w.udp_peer, w.udp->local);
  // Best effort, as UDP is: a reply that does not fit the socket buffer is lost.
  // (Without bulk_by_reference a reply is its bytes alone.)
  auto send = [](const Listener& udp, const PeerAddress& to, const ReplyRecord& r) {
    ::sendto(udp.fd.get(), r.bytes().data(), r.bytes().size(), MSG_DONTWAIT | MSG_NOSIGNAL,
             reinterpret_cast<const sockaddr*>(&to.addr), to.len);
  };
  auto later = [send, udp = w.udp, to = w.udp_peer](ReplyRecord r) { send(*udp, to, r); };
  std::unique_ptr<Call> call = dispatcher_.Receive(std::move(w.datagram), &info);
  ReplyRecord reply;
  Dispatcher::RunOptions run;
  run.with_record_mark = false;
  run.deliver_later = std::move(later);
  if (dispatcher_.Run(*call, &reply, std::move(run)) == Dispatcher::Outcome::kReply) {
    send(*w.udp, w.udp_peer, reply);
  }
}

void Server::Impl::AskLoopToClose(const std::shared_ptr<Connection>& c) {
  {
    absl::MutexLock l(&mu_);
    close_requests_.push_back(c);
  }
  Wake();
}

void Server::Impl::AskLoopToResume(const std::shared_ptr<Connection>& c) {
  {
    absl::MutexLock l(&mu_);
    resume_requests_.push_back(c);
  }
  Wake();
}

// ---- rpcbind ----

absl::Status Server::Impl::RegisterWithRpcbind(uint16_t nfs_port, uint16_t mount_port) {
  bool has_udp = false;
  {
    absl::MutexLock l(&mu_);
    for (auto& listener : listeners_)
      has_udp |= listener->kind == Pollable::Kind::kUdpSocket;
  }
  for (Program* p : dispatcher_.programs()) {
    if (p->hidden()) continue;
    const uint16_t port = p->prog() == kMountProgram ? mount_port : nfs_port;
    // pmap_set goes through rpcb_set on libtirpc's local rpcbind transport; it
    // registers the universal address of the loopback netconfig for that protocol.
    pmap_unset(p->prog(), p->vers());  // a stale registration from a crashed run
    if (!pmap_set(p->prog(), p->vers(), IPPROTO_TCP, port)) {
      return absl::UnavailableError(absl::StrFormat(
          "rpcbind: cannot register %s (program %u version %u) on tcp port %u", p->name(),
          p->prog(), p->vers(), port));
    }
    if (has_udp) pmap_set(p->prog(), p->vers(), IPPROTO_UDP, port);
    absl::MutexLock l(&mu_);
    rpcbind_registered_.emplace_back(p->prog(), p->vers());
    LOG_INFO("rpc: registered %s v%u with rpcbind on port %u", p->name(), p->vers(),
             port);
  }
  return absl::OkStatus();
}

void Server::Impl::UnregisterFromRpcbind() {
  std::vector<std::pair<uint32_t, uint32_t>> regs;
  {
    absl::MutexLock l(&mu_);
    regs.swap(rpcbind_registered_);
  }
  for (auto [prog, vers] : regs) pmap_unset(prog, vers);
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

}  // namespace localnfs::rpc
