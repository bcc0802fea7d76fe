// rpc/server.h — the ONC RPC v2 server: listeners, connections, event loop, workers.
//
// Owns: listening sockets, accepted connections (and their ConnectionInfo), the epoll
// event loop thread(s), the worker pool, and the rpcbind registrations it made.
// Programs are registered before Start() and are NOT owned: they must outlive Stop().
//
// Every program is served on every listener (MOUNT answers on the NFS port too).
//
// Lifecycle (each step undoes the one before it, in reverse at Stop):
//   Server s(opts); s.AddProgram(&nfs3); ...; s.Listen("0.0.0.0", 2049) ...;
//   s.Start();                 // event loop + workers running
//   s.RegisterWithRpcbind();   // only with --rpcbind
//   ...
//   s.UnregisterFromRpcbind(); s.Stop();
// Stop(): stop accepting; stop reading new requests; wait (bounded by
// opts.drain_timeout) for in-flight requests to finish and their replies to be sent;
// close every connection; join threads. After Stop() no Program method is running.
// Requests still queued when the drain times out are dropped without being run; a
// Program call that never returns keeps Stop() waiting for its worker.
//
// Transports: TCP with record marking, and UDP (one datagram = one record, no record
// mark) when Listen(..., udp=true). One epoll event-loop thread accepts, reads and
// writes what workers could not send at once; ServerOptions::worker_threads workers
// decode, dispatch, encode and send. Both kinds of threads are registered with
// liburcu for their whole life and call FlushThisThread() after each request/wakeup.
// Back-pressure: a TCP connection with more than max_requests_per_connection requests
// queued or running is not read from until one finishes; server-wide, while
// max_requests_total requests are queued or running, connections that already have
// one in flight are not read. A connection with nothing in flight may always send its
// next request, so one busy client cannot starve the others. UDP datagrams that
// arrive while the work queue holds more than max_queued_datagrams are dropped (the
// client retransmits).
// Memory for replies: every byte the server holds for a reply counts against the
// caps, from the start of the request to the moment the bytes are freed — the reply
// size reserved before the request runs (the most its procedure can answer:
// ProcedureDesc::max_result_bytes, a READ's count), the reply while it is queued or being
// written, and a zero-copy reply the kernel may still read. A request starts only
// when its reservation fits under max_reply_bytes_per_connection (for its
// connection) and max_reply_bytes (for the server); otherwise its connection is not
// read until replies drain — a reply the server owes is never dropped. A connection
// that holds nothing may start one request of any size, and one whose reply is small
// (connection.h, kSmallReplyBytes) even when the server-wide cap is reached: a fresh
// client's NULL or GETATTR is answered while others hold the whole cap. So reply
// memory stays under max_reply_bytes + max_connections × kSmallReplyBytes (+ one
// reply per connection when a result outgrows its procedure's bound), and a log line
// (once a second at most) says when the server-wide cap makes connections wait. When
// reply memory falls back to little after it was high, the server gives the freed
// memory back to the system (malloc_trim), so a burst does not leave the process large.
// Connection limits: when max_connections are open, a new connection is admitted by
// closing the one that has been idle the longest — no request queued or running and
// no reply unsent or held (knfsd's svc_check_conn_limits() closes its oldest temporary
// transport) — and, if every connection is busy, accepted and closed at once (the
// client sees EOF instead of hanging in the listen backlog). max_connections_per_client
// (0 = no limit) applies the same rule to the connections of one client address:
// its own longest-idle connection makes room, or the new one is refused. A log line
// once a second at most counts the evicted and the refused. A connection on which
// nothing was read or written for idle_timeout, and on which no request is running,
// is closed (also one whose client stopped reading its replies). Memory held per
// connection is therefore bounded by max_record_size (a partial record) + 64 KiB of
// read-ahead records + max_reply_bytes_per_connection (+ the request records of
// max_requests_per_connection requests), and the number of connections by
// max_connections.
// Replies: one record each (rpc/reply.h ReplyRecord), written with sendmsg; the bulk
// data of a result (a READ's, registered with Call::AddBulk by a procedure marked
// ProcedureDesc::kBulkReply) stays in its own buffer and goes out as an iovec of its own,
// wherever it sits in the result, instead of being copied into the reply
// (scatter-gather).
// Quick calls (ServerOptions::inline_quick_calls): the first quick call (procedure
// marked ProcedureDesc::kQuick) that one event-loop round starts, and further small
// ones of the same connection up to kLoopCallsPerRound / kLoopBytesPerRound, are run
// by the loop itself at the end of the round instead of waking workers, their replies
// corked into one sendmsg; quick calls of other connections in the round, large ones
// after the first, and all other calls go to the workers. A thread hand-off and a
// sleeping worker's wake-up cost more than a cached 4 KiB READ or a GETATTR (most of
// their cost at one call in flight; at 16 in flight on a 2-CPU host, running them on
// the loop gave 4x Ganesha's IOPS where hand-offs gave 1.6x), so one busy connection
// of small calls is served without a thread switch, while megabyte READs and WRITEs
// and several busy connections still spread over the workers. A quick call on the loop is
// told not to wait for the disk (CallContext::must_not_block): a READ of data that is
// not in the page cache, or a call whose file handle only a search of the export can
// resolve (unprivileged mode), stops at that step and goes to a worker as it is —
// decoded, with what its program resolved (rpc/call.h) — and continues there. What
// can still hold the loop is metadata that is not cached (a LOOKUP or CREATE reading
// a directory or inode block from disk).
// Busy polling (ServerOptions::busy_poll, off by default): at one call in flight the
// loop sleeps in epoll_wait after every reply and the client's next request wakes it —
// on a virtual machine whose idle CPUs halt, a wake-up costs more than the call (on
// the 2-CPU KVM guest of docs/BENCHMARKS.md, NULL at one in flight: 51 k calls/s
// sleeping, 67 k polling 20 us). After a round that read requests the loop polls
// instead, for up to busy_poll, before it sleeps; the polling is paid in CPU (there:
// 9.4 -> 14.9 us per call), which is why it is an option. Adaptive: after three
// polls in a row that ended without a request (a client slower than the window, an
// idle server), it polls after one round in 64 only, until a poll finds one again.
// Zero-copy sends (ServerOptions::zerocopy): a reply with a bulk segment of at least
// zerocopy_min_bytes goes out with MSG_ZEROCOPY (SO_ZEROCOPY on each connection): the
// kernel sends from the bulk buffer's own pages instead of copying them into the socket
// buffer. The buffers are then held until the kernel reports the send complete on the
// socket's error queue; the loop reads those reports and only pushes the records onto
// a per-connection lock-free list, which a worker frees between RPCs, and the first
// push queues the connection to a worker so that an idle one is freed too (seed 001;
// connection.h says who holds what). kAuto stops using it on a connection once the
// kernel reports that it copied anyway — always so for a peer on the same host
// (loopback, veth), where zero-copy only adds the notifications; kAlways keeps it
// (tests, measurements).
// Duplicate request cache: ServerOptions::drc configures one rpc/drc.h cache shared by
// every program, TCP and UDP (drc.max_entries == 0: none).
// A server is started at most once: Start() after Stop() fails.
//
// Thread-safety: AddProgram/Listen/Start/Stop/rpcbind from one controlling thread,
// AddProgram and Listen before Start; counters(), procedure_stats() and the other
// figures from any thread.
#pragma once

#include <stdint.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "rpc/drc.h"
#include "rpc/procedure_stats.h"
#include "rpc/program.h"

namespace localnfs::rpc {

// Names of the server's threads (pthread_setname_np; at most 15 characters).
inline constexpr char kLoopThreadName[] = "rpc-loop";
inline constexpr char kWorkerThreadName[] = "rpc-worker";

// Quick calls the event loop runs itself in one round after the first (of the same
// connection, see "Quick calls"): at most this many, whose requests and reply bounds
// come to at most these bytes; more go to the workers. 32 cached 4 KiB READs keep the
// loop from the other connections for about 0.2 ms.
inline constexpr size_t kLoopCallsPerRound = 32;
inline constexpr size_t kLoopBytesPerRound = 256 * 1024;

enum class ZerocopyMode { kOff, kAuto, kAlways };

struct ServerOptions {
  int worker_threads = 4;
  // Largest RPC record (all fragments together) accepted on TCP; a larger one closes
  // the connection with a log line. Must exceed the largest WRITE (1 MiB) + headers.
  uint32_t max_record_size = 4u << 20;
  absl::Duration drain_timeout = absl::Seconds(10);
  // Reply memory (see "Memory for replies"): per TCP connection, and in total.
  size_t max_reply_bytes_per_connection = size_t{16} << 20;
  size_t max_reply_bytes = size_t{256} << 20;
  // Per TCP connection: requests queued or running above which it is not read.
  uint32_t max_requests_per_connection = 128;
  // All connections: requests queued or running above which busy connections are not
  // read (see the header comment).
  uint32_t max_requests_total = 1024;
  // TCP connections open at once, in total and per client address (0 = no limit of
  // its own); beyond them the longest-idle one is closed (see "Connection limits").
  uint32_t max_connections = 1024;
  uint32_t max_connections_per_client = 0;
  // Connections without traffic for this long are closed; InfiniteDuration = never.
  absl::Duration idle_timeout = absl::Minutes(6);
  // UDP datagrams are dropped while this many requests wait for a worker.
  uint32_t max_queued_datagrams = 1024;
  // The duplicate request cache for non-idempotent procedures.
  DrcOptions drc;
  // Run a lone quick call on the event-loop thread (see "Quick calls" above).
  bool inline_quick_calls = true;
  // After a round that read requests, the loop polls (epoll_wait without sleeping) this
  // long for the next before it sleeps; zero: never (see "Busy polling" above).
  absl::Duration busy_poll = absl::ZeroDuration();
  // MSG_ZEROCOPY for large reply payloads (see "Zero-copy sends" above).
  ZerocopyMode zerocopy = ZerocopyMode::kAuto;
  size_t zerocopy_min_bytes = 64 * 1024;
};

// Counters, readable while serving.
struct ServerCounters {
  std::atomic<uint64_t> connections_accepted{0};
  // Accepted connections closed since, for whatever reason (open = accepted - closed).
  std::atomic<uint64_t> connections_closed{0};
  std::atomic<uint64_t> connections_closed_on_error{0};
  std::atomic<uint64_t> calls{0};  // every record handed to the dispatcher
  std::atomic<uint64_t> garbage_args{0};
  std::atomic<uint64_t> bad_headers{0};  // RPC_MISMATCH, PROG_*, PROC_UNAVAIL, auth
  std::atomic<uint64_t> connections_refused{0};  // beyond max_connections*, all busy
  std::atomic<uint64_t> connections_evicted{0};  // idle ones closed to admit a new one
  std::atomic<uint64_t> connections_closed_idle{0};  // idle_timeout
  std::atomic<uint64_t> drc_replays{0};  // retransmits answered from the reply cache
  std::atomic<uint64_t> drc_parked{0};   // retransmits that waited for their original
  std::atomic<uint64_t> zerocopy_sends{0};         // sendmsg calls with MSG_ZEROCOPY
  std::atomic<uint64_t> zerocopy_sends_copied{0};  // ... the kernel reported copied
  std::atomic<uint64_t> zerocopy_replies_freed{0};  // held replies freed after completion
  std::atomic<uint64_t> busy_polls_hit{0};     // polls that found the next request
  std::atomic<uint64_t> busy_polls_missed{0};  // polls that ended in sleep
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // calls Stop() if still running
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void AddProgram(Program* program);
  // Binds a TCP listener (and a UDP socket on the same port when udp is true) on
  // `address` ("0.0.0.0", "::", "127.0.0.1", "" = all interfaces, dual-stack) and
  // `port` (0 = any free port). Returns the bound port. "port in use" and other bind
  // failures return an error naming address and port.
  absl::StatusOr<uint16_t> Listen(const std::string& address, uint16_t port,
                                  bool udp = false);
  absl::Status Start();
  void Stop();

  // Registers every non-hidden program version with a running rpcbind on the port of
  // the first listener that serves it (`nfs_port` for NFS, `mount_port` for MOUNT),
  // through libtirpc's pmap_set/pmap_unset (which speak rpcbind's protocol; see
  // server_rpcbind.cc). Fails if rpcbind is not reachable.
  absl::Status RegisterWithRpcbind(uint16_t nfs_port, uint16_t mount_port);
  void UnregisterFromRpcbind();

  const ServerCounters& counters() const;
  // Zero-copy replies sent whose buffers are not freed yet (the kernel may still read
  // them, or a worker has yet to free them).
  int64_t zerocopy_replies_held() const;
  // Reply memory held now (see "Memory for replies").
  int64_t reply_bytes_held() const;
  // The duplicate request cache's figures (all zero without one).
  DrcStats drc_stats() const;
  // Calls and latencies of a registered program's procedures (Dispatcher::
  // procedure_stats: proc_count() entries, or nullptr when `program` is not registered).
  const ProcedureStats* procedure_stats(const Program& program) const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace localnfs::rpc
