// server/localio/local_socket.h — the LOCALIO local socket: nfsd_open_local_fh() for
// co-located clients (protocol: common/localio/proto.h; the client's end:
// common/localio/socket_client.h).
//
// Owns: the AF_UNIX SOCK_SEQPACKET listener `<runtime-dir>/localio.sock` (mode 0660,
// unlinked by Stop() if it is still ours), its accepted connections, the one
// event-loop thread that serves them, the search thread that resolves the handles
// the loop must not search for (below), and the LOCALIO open counters (per nfsstat3
// and per bound client uuid).
//
// Authentication, per connection: the peer's kernel-verified uid/gid (SO_PEERCRED) and
// supplementary groups (SO_PEERGROUPS, else /proc/PID/status "Groups:" when the pid is
// visible), read at accept; its pid only for the logs (0 when the peer's pid namespace
// is not ours or below it). The first packet must be HELLO with a uuid that OUR broker
// bound (Broker::LookupBound answers from the server's private table, and re-reads the
// client's slot with one pread only to see whether the client let go) and the secret
// whose SHA-256 the server kept from the slot when it bound the uuid (SecretMatches,
// constant time) — the proof that the peer is the client that registered the uuid
// (broker_format.h says why no pid check is added); otherwise ERROR + close, the
// refusal logged at most 20 times a second. Every OPEN_LOCAL_FH re-checks the
// binding (the same uuid, owner and kept hash), so an unbind (SIGHUP unexport, client
// release, owner death) or a new binding of the uuid ends local opens at once.
//
// Authorisation, per OPEN_LOCAL_FH, as an RPC of the same client would get it:
// AuthorizeHandle() (request_policy.h — the one policy the NFSv3 program uses too: the
// handle authenticated, the client rule of the bound export-client domain as the peer,
// `secure`, a read-write open refused on a ro export, the credentials squashed), then
// the handle resolved by the backend (Backend::Resolve: through the caching layer's
// node, one statx, which is the open's one stat), then Backend::OpenForLocalIo() with
// the squashed credentials (rules.h CheckLocalIo on the resolution's attributes: READ's
// and WRITE's permission checks with owner override; a set-id file for writing →
// EOPNOTSUPP, so that it is written over RPC, which clears the bits). The reply's
// attributes are the resolution's: opening changes none.
// Credentials: the peer's own; only a root peer (the FUSE daemon acting for a user)
// may send the user's in the message, and they are squashed like AUTH_SYS ones.
// The fd: a new open file of exactly the asked mode (Backend::OpenForLocalIo), made by
// the server from the object the caching layer resolved — never the cached file RPC
// READ/WRITE use, nor a dup of it: file status flags belong to the open file
// description, and a client holding the server's could set O_APPEND (every RPC WRITE
// would append) or O_DIRECT (unaligned RPC READs would fail) on it. The client owns its
// file; the cache's eviction or an RPC REMOVE never invalidates it.
//
// Lifetimes: Listen() → Start() → Stop(). Deps are not owned and must outlive Stop():
// the broker, the export table, key, resolver and the backend (main.cc stops the
// socket before the backend's cache shuts down and before the broker record is
// withdrawn). Requests run on the loop thread (RCU-registered; it flushes its deferred
// releases after each packet); they are short (a decode, the authorisation, a resolve
// that hits the cache, one open) — except the resolution of a handle that,
// unprivileged, only a search of the export can find (fhandle.h: seconds on a large
// export). The loop resolves with may_search=false; when that would search, the
// connection is parked (not read: its client has one request in flight anyway) and the
// search thread resolves the handle (what the loop decided is not decided again), then
// hands the result back to the loop through an eventfd; the loop then finishes the
// open, answers and reads the connection again. Meanwhile it serves everyone else.
//
// Thread-safety: Listen/Start/Stop from one controlling thread; the counters and
// Clients() from any thread. The connections are the loop's; the search thread sees
// only its job (search_mu_ guards the queues between the two).
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/localio/broker_server.h"
#include "common/localio/proto.h"
#include "common/log.h"
#include "common/unique_fd.h"
#include "server/backend/backend.h"
#include "server/policy/request_policy.h"

namespace localnfs::server {

struct LocalSocketDeps {
  broker::Broker* broker = nullptr;
  // The access policy (AuthorizeHandle); its file_cache is not used: the backend resolves.
  PolicyDeps policy;
  // Resolves the handle and opens the file: the caching layer the RPC program uses, so
  // that both share one resolved node per handle.
  backend::Backend* backend = nullptr;
};

struct LocalSocketOptions {
  // Accepted connections above this get ERROR kTooManyConnections and are closed.
  size_t max_connections = 256;
  // A connection that has not said HELLO by then is closed.
  absl::Duration hello_timeout = absl::Seconds(10);
  // How often dead client processes' uuids are reaped from the broker.
  absl::Duration reap_interval = absl::Seconds(10);
};

// One bound client as the local socket saw it (for status output).
struct LocalClientStats {
  broker::Uuid uuid{};
  std::string domain;
  // The export of the client's latest successful open (0 before its first): the
  // handshake binds a uuid to a client, not to an export, as in the kernel.
  uint32_t export_id = 0;
  pid_t pid = 0;
  uid_t uid = 0;
  uint64_t opens = 0;        // successful OPEN_LOCAL_FH
  uint64_t connections = 0;  // currently open connections of this uuid
};

class LocalSocket {
 public:
  LocalSocket(LocalSocketDeps deps, LocalSocketOptions options = {});
  ~LocalSocket();  // Stop()
  LocalSocket(const LocalSocket&) = delete;
  LocalSocket& operator=(const LocalSocket&) = delete;

  // Binds `path` (a stale socket file there is replaced: the broker already made sure
  // no live server owns this runtime dir), mode 0660, listens.
  absl::Status Listen(const std::string& path);
  absl::Status Start();
  // Stops the loop and the search thread (a search under way runs to its end first),
  // closes every connection (ERROR kShuttingDown first) and the listener, unlinks the
  // socket file. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(search_mu_);

  const std::string& path() const { return path_; }

  uint64_t hellos_accepted() const { return hellos_accepted_.load(std::memory_order_relaxed); }
  uint64_t hellos_refused() const { return hellos_refused_.load(std::memory_order_relaxed); }
  uint64_t malformed() const { return malformed_.load(std::memory_order_relaxed); }
  // OPEN_LOCAL_FH answers by nfsstat3 (0 = opened).
  absl::flat_hash_map<uint32_t, uint64_t> OpensByStatus() const ABSL_LOCKS_EXCLUDED(stats_mu_);
  uint64_t Opens(uint32_t nfsstat) const ABSL_LOCKS_EXCLUDED(stats_mu_);
  // The clients that are still bound, with their open counts.
  std::vector<LocalClientStats> Clients() const ABSL_LOCKS_EXCLUDED(stats_mu_);

 private:
  struct Connection;
  // An authorised OPEN_LOCAL_FH with its object resolved.
  struct Resolved {
    Authorization auth;   // holds the export the object points to
    backend::Object obj;
  };
  // An OPEN_LOCAL_FH whose handle needs an export search: the loop's request, decided
  // (authorised) there, and the search thread's resolution.
  struct SearchJob {
    int fd = -1;               // the connection, as the loop knows it ...
    uint64_t connection_id = 0;  // ... and which one (fd numbers are reused)
    localio::OpenLocalFhRequest req;
    Credentials cred;  // as the peer sent them (for the log)
    bool write = false;
    Authorization auth;
    absl::StatusOr<backend::Object> result = absl::UnknownError("not run");
  };

  void Loop();
  void SearchLoop() ABSL_LOCKS_EXCLUDED(search_mu_);
  // The loop: finishes the jobs the search thread has done.
  void FinishSearches() ABSL_LOCKS_EXCLUDED(search_mu_);
  void Accept();
  // Serves every packet queued on `c`; false when the connection is to be closed.
  bool Serve(Connection& c);
  bool HandleHello(Connection& c, const localio::HelloRequest& hello)
      ABSL_LOCKS_EXCLUDED(stats_mu_);
  // False when the connection was closed. Parks it (see above) when the handle needs
  // a search.
  bool HandleOpen(Connection& c, const localio::OpenLocalFhRequest& req)
      ABSL_LOCKS_EXCLUDED(search_mu_);
  // HandleOpen's first check: the uuid is still bound to the peer; closes it if not.
  bool StillBound(Connection& c);
  // The rest of HandleOpen once the handle is authorised and resolved (or not): open,
  // answer.
  bool FinishOpen(Connection& c, const localio::OpenLocalFhRequest& req,
                  const Credentials& cred, bool write, absl::StatusOr<Resolved> resolved);
  void CloseConnection(int fd, std::optional<localio::ErrorReason> reason)
      ABSL_LOCKS_EXCLUDED(stats_mu_);
  void CountOpen(uint32_t status, const broker::Uuid* uuid, uint32_t export_id = 0)
      ABSL_LOCKS_EXCLUDED(stats_mu_);

  const LocalSocketDeps deps_;
  const LocalSocketOptions options_;
  std::string path_;
  ino_t path_ino_ = 0;
  UniqueFd listen_fd_;
  UniqueFd epoll_fd_;
  UniqueFd stop_fd_;  // eventfd
  std::thread thread_;
  std::thread search_thread_;
  UniqueFd search_done_fd_;  // eventfd: the search thread finished a job
  bool started_ = false;
  absl::Mutex search_mu_;
  absl::CondVar search_cv_;
  std::deque<SearchJob> search_queue_ ABSL_GUARDED_BY(search_mu_);
  std::vector<SearchJob> search_done_ ABSL_GUARDED_BY(search_mu_);
  bool search_stop_ ABSL_GUARDED_BY(search_mu_) = false;
  // Loop thread only.
  absl::flat_hash_map<int, std::unique_ptr<Connection>> connections_;
  uint64_t next_connection_id_ = 1;

  std::atomic<uint64_t> hellos_accepted_{0};
  std::atomic<uint64_t> hellos_refused_{0};
  std::atomic<uint64_t> malformed_{0};
  // Refused and malformed HELLOs: a client can repeat them at will.
  LogRateLimit refusal_log_{20, absl::Seconds(1)};
  mutable absl::Mutex stats_mu_;
  absl::flat_hash_map<uint32_t, uint64_t> opens_by_status_ ABSL_GUARDED_BY(stats_mu_);
  absl::flat_hash_map<broker::Uuid, LocalClientStats> clients_ ABSL_GUARDED_BY(stats_mu_);
};

}  // namespace localnfs::server
