// rpc/server_impl.h — Server::Impl, the rpc server's state, shared by the files that
// make it up. Internal to rpc/: included only by rpc/server*.cc.
//
// The server is split along its seams, as net/sunrpc keeps svcsock.c, svc_xprt.c and
// svc.c apart (each file's header says what it owns and which thread runs it):
//  rpc/server.cc          Start() and Stop(): threads, the wake eventfd, the drain
//                         (the kernel's svc_create/svc_destroy, svc_set_num_threads);
//  rpc/server_listener.cc listening and UDP sockets: bind, listen, accept with the
//                         connection limits, datagram receive (svcsock.c);
//  rpc/server_loop.cc     the epoll event loop: connection events, reads into records,
//                         starting calls, closing, idle sweeps, zero-copy completions,
//                         quick calls run on the loop (svc_xprt.c);
//  rpc/server_workers.cc  the work queue and the workers: run a call, send its reply
//                         (svc.c: svc_process, and svc_xprt.c's svc_recv/svc_send);
//  rpc/server_rpcbind.cc  registration with rpcbind (svc.c: svc_register).
//
// Thread-safety: as annotated below. The "Event loop only" members are touched only
// by the loop thread (before Start() by the caller of Listen/Start); `mu_` guards the
// control state and the loop's commands; `work_mu_` the work queue; ServerLoad and the
// counters are atomics read and written by every thread.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "rpc/call.h"
#include "rpc/connection.h"
#include "rpc/dispatch.h"
#include "rpc/drc.h"
#include "rpc/program.h"
#include "rpc/reply.h"
#include "rpc/server.h"

namespace localnfs::rpc {

inline constexpr size_t kReadChunk = 64 * 1024;
inline constexpr int kReadsPerWakeup = 16;  // fairness between busy connections
inline constexpr int kAcceptsPerWakeup = 64;
inline constexpr int kDatagramsPerWakeup = 64;
inline constexpr size_t kMaxDatagram = 65536;
inline constexpr uint32_t kMountProgram = 100005;
inline constexpr absl::Duration kLimitLogInterval = absl::Seconds(1);

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

inline absl::Status Errno(int err, const std::string& what) {
  return ErrnoToStatus(err, what);
}

class Server::Impl {
 public:
  explicit Impl(ServerOptions options)
      : opts_(std::move(options)), drc_(opts_.drc), dispatcher_(&counters_, &drc_) {}
  ~Impl() { Stop(); }

  void AddProgram(Program* p) { dispatcher_.AddProgram(p); }
  absl::StatusOr<uint16_t> Listen(const std::string& address, uint16_t port, bool udp)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Start() ABSL_LOCKS_EXCLUDED(mu_);
  void Stop() ABSL_LOCKS_EXCLUDED(mu_, work_mu_);
  absl::Status RegisterWithRpcbind(uint16_t nfs_port, uint16_t mount_port) ABSL_LOCKS_EXCLUDED(mu_);
  void UnregisterFromRpcbind() ABSL_LOCKS_EXCLUDED(mu_);
  const ServerCounters& counters() const { return counters_; }
  int64_t zerocopy_replies_held() const { return load_.held_replies.load(); }
  int64_t reply_bytes_held() const { return load_.reply_bytes.load(); }
  DrcStats drc_stats() const { return drc_.stats(); }
  const ProcedureStats* procedure_stats(const Program& p) const {
    return dispatcher_.procedure_stats(p);
  }

 private:
  enum class State { kNew, kRunning, kStopped };

  absl::StatusOr<std::shared_ptr<Listener>> Bind(const PeerAddress& addr, bool udp,
                                                 bool dual_stack);
  absl::Status Arm(Listener* l);
  void Wake();

  // Event loop.
  void LoopMain();
  void OnWake(bool* quit) ABSL_LOCKS_EXCLUDED(mu_);
  void Accept(Listener* l);
  void ReadDatagrams(const std::shared_ptr<Listener>& l) ABSL_LOCKS_EXCLUDED(work_mu_);
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
  // epoll_wait for the next round: first polling without sleeping when busy polling
  // applies (after a round that read requests), then sleeping.
  int WaitForEvents(epoll_event* events, int max_events, bool after_requests);
  // Counts a request in flight and hands it to the workers — or, for a quick TCP call
  // of the round's first connection that has one, holds it for RunHeldCalls (see
  // "Quick calls").
  void Enqueue(Work w);
  // Whether the loop runs quick call w itself at the end of this round (see "Quick
  // calls" in server.h).
  bool LoopTakes(const Work& w) const;
  void PushWork(Work w) ABSL_LOCKS_EXCLUDED(work_mu_);
  // Queues c to a worker that frees its completed zero-copy replies (counted in
  // flight like a request, so that Stop's drain and queue accounting see it).
  void QueueRelease(const std::shared_ptr<Connection>& c);
  // The loop, on EPOLLERR of a connection that sends with MSG_ZEROCOPY. False when
  // the socket has a real error (the connection was closed).
  bool ReapCompletions(const std::shared_ptr<Connection>& c);
  // Frees c's released replies (worker); resumes c when that made room for it.
  void FreeReleased(const std::shared_ptr<Connection>& c);
  // End of a loop round: runs the held calls, their replies corked into as few
  // sendmsg calls as possible.
  void RunHeldCalls();
  // Accounts what the loop wrote on c (Flush, Uncork); false when that found a socket
  // error and closed c.
  bool Sent(const std::shared_ptr<Connection>& c, const SendResult& r);
  // A request that was run (by a worker or the loop) leaves the in-flight count.
  void Finished(Work& w);

  // Workers (RunTcp also on the loop, for a held quick call).
  void WorkerMain() ABSL_LOCKS_EXCLUDED(work_mu_);
  // False only when `on_loop` and the call would wait for the disk: the call stays
  // decoded (and entered in the reply cache, authorised as far as its program got) and
  // a worker continues it from that step; nothing is run twice.
  bool RunTcp(Work& w, bool on_loop = false);
  void RunUdp(Work& w);
  // Sends a complete reply record on `c` (from any worker).
  void SendOn(const std::shared_ptr<Connection>& c, ReplyRecord reply,
              size_t reservation = 0);
  void AskLoopToClose(const std::shared_ptr<Connection>& c) ABSL_LOCKS_EXCLUDED(mu_);
  void AskLoopToResume(const std::shared_ptr<Connection>& c) ABSL_LOCKS_EXCLUDED(mu_);

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
  std::vector<Work> held_calls_;  // counted in load_.inflight while held
  // Busy polling (see server.h): polls in a row that found nothing, rounds since.
  int busy_poll_misses_ = 0;
  int rounds_without_poll_ = 0;
  size_t held_bytes_ = 0;         // their records and reply bounds

  // Work queue.
  absl::Mutex work_mu_;
  absl::CondVar work_cv_;
  std::deque<Work> work_ ABSL_GUARDED_BY(work_mu_);
  bool workers_quit_ ABSL_GUARDED_BY(work_mu_) = false;

  std::atomic<uint64_t> next_conn_id_{1};
};

}  // namespace localnfs::rpc
