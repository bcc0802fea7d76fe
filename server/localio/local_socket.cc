// server/localio/local_socket.cc — see local_socket.h.
#include "server/localio/local_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <openssl/crypto.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/rcu.h"
#include "common/release_queue.h"
#include "common/status.h"
#include "common/unix_socket.h"
#include "rpc/nfs3.h"
#include "server/localio/localio_program.h"
#include "server/nfs3/nfs_status.h"

namespace localnfs::server {

using localio::ErrorReason;

struct LocalSocket::Connection {
  UniqueFd fd;
  uint64_t id = 0;
  absl::Time accepted_at;
  // The peer's kernel-verified identity, read at accept. The pid is 0 when the peer
  // lives in a pid namespace ours cannot see (logs only: HELLO's secret authenticates).
  pid_t pid = 0;
  Credentials cred;
  bool peer_known = false;
  // Set by an accepted HELLO.
  bool authenticated = false;
  broker::Uuid uuid{};
  // The binding HELLO was checked against (its owner as the slot named it, and the
  // secret hash the server kept): a later binding of the same uuid does not carry over.
  pid_t owner_pid = 0;
  uint64_t owner_start_time = 0;
  broker::SecretHash secret_hash{};
  // The bound export-client domain as a connection, so that the client-rule cache of
  // client_rules.h works for it exactly as for an NFS connection of that peer. Shared
  // with a search job, which may outlive the connection.
  std::shared_ptr<rpc::ConnectionInfo> domain;
  // Its OPEN_LOCAL_FH is on the search thread: not read until the answer is sent.
  bool parked = false;
};

namespace {

// The tail of a rate-limited log line.
std::string LeftOut(uint64_t left_out) {
  return left_out > 0 ? absl::StrCat(" (", left_out, " similar lines not logged)") : "";
}

int64_t Nanos(const timespec& ts) {
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// The supplementary groups of the peer: SO_PEERGROUPS (kernel-verified, as of
// connect) when the kernel has it, else /proc/PID/status (only when we see the pid).
bool PeerGroups(int fd, pid_t pid, absl::InlinedVector<uint32_t, kMaxAuthSysGroups>* out) {
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 4; ++attempt) {
    socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      out->assign(groups.begin(), groups.begin() + len / sizeof(gid_t));
      return true;
    }
    if (errno != ERANGE) break;
    groups.resize(len / sizeof(gid_t) + 1);
  }
  if (pid <= 0) return false;
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.compare(0, 7, "Groups:") != 0) continue;
    std::istringstream in(line.substr(7));
    uint32_t g;
    out->clear();
    while (in >> g) out->push_back(g);
    return true;
  }
  return false;
}

localio::LocalAttrs AttrsOf(const backend::Attrs& attrs) {
  localio::LocalAttrs a;
  a.size = attrs.size;
  a.mtime_ns = Nanos(attrs.mtime);
  a.ctime_ns = Nanos(attrs.ctime);
  a.change = static_cast<uint64_t>(a.ctime_ns);
  a.fileid = attrs.fileid;
  return a;
}

}  // namespace

LocalSocket::LocalSocket(LocalSocketDeps deps, LocalSocketOptions options)
    : deps_(deps), options_(options) {}

LocalSocket::~LocalSocket() { Stop(); }

absl::Status LocalSocket::Listen(const std::string& path) {
  // A socket file left by a server that died: the broker already refused us if a
  // live server owned this runtime dir, so it is stale.
  ASSIGN_OR_RETURN(UnixListener listener, ListenUnix(path, SOCK_SEQPACKET, 0660));
  path_ = path;
  path_ino_ = listener.inode;
  listen_fd_ = std::move(listener.fd);
  return absl::OkStatus();
}

absl::Status LocalSocket::Start() {
  if (!listen_fd_) return absl::FailedPreconditionError("local socket: Listen() first");
  if (started_) return absl::FailedPreconditionError("local socket: already started");
  epoll_fd_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_) return ErrnoToStatus(errno, "epoll_create1");
  stop_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_) return ErrnoToStatus(errno, "eventfd");
  search_done_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!search_done_fd_) return ErrnoToStatus(errno, "eventfd");
  for (int fd : {listen_fd_.get(), stop_fd_.get(), search_done_fd_.get()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
      return ErrnoToStatus(errno, "epoll_ctl");
  }
  started_ = true;
  search_thread_ = std::thread([this] { SearchLoop(); });
  thread_ = std::thread([this] { Loop(); });
  LOG_INFO("localio: local socket %s", path_);
  return absl::OkStatus();
}

void LocalSocket::Stop() {
  if (started_) {
    uint64_t one = 1;
    while (write(stop_fd_.get(), &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    thread_.join();
    {
      absl::MutexLock l(&search_mu_);
      search_stop_ = true;
      search_cv_.SignalAll();
    }
    // A search already running finishes first (its result is dropped).
    search_thread_.join();
    started_ = false;
  }
  {
    absl::MutexLock l(&search_mu_);
    search_queue_.clear();
    search_done_.clear();
  }
  // The loop has ended (or never ran): the connections are ours to close.
  std::vector<int> fds;
  for (auto& [fd, c] : connections_) fds.push_back(fd);
  for (int fd : fds) CloseConnection(fd, ErrorReason::kShuttingDown);
  if (listen_fd_) {
    listen_fd_.reset();
    RemoveUnixSocketFile(path_, path_ino_);
  }
}

void LocalSocket::Loop() {
  RcuThread rcu_registration;
  absl::Time next_reap = absl::Now() + options_.reap_interval;
  epoll_event events[32];
  for (;;) {
    const int n = epoll_wait(epoll_fd_.get(), events, 32, /*timeout_ms=*/1000);
    if (n < 0 && errno != EINTR) {
      LOG_ERROR("localio: epoll_wait: %s", strerror(errno));
      return;
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == stop_fd_.get()) return;
      if (fd == listen_fd_.get()) {
        Accept();
        continue;
      }
      if (fd == search_done_fd_.get()) {
        FinishSearches();
        FlushThisThread();
        continue;
      }
      auto it = connections_.find(fd);
      if (it == connections_.end()) continue;
      if (it->second->parked) {
        // Not read while parked: only a hang-up or an error wakes us for it.
        CloseConnection(fd, std::nullopt);
        continue;
      }
      if (!Serve(*it->second)) CloseConnection(fd, std::nullopt);
      FlushThisThread();
    }
    const absl::Time now = absl::Now();
    // Connections that never said HELLO hold a slot for nothing.
    std::vector<int> idle;
    for (auto& [fd, c] : connections_)
      if (!c->authenticated && now - c->accepted_at > options_.hello_timeout)
        idle.push_back(fd);
    for (int fd : idle) {
      LOG_WARNING("localio: connection %d closed: no HELLO within %s", fd,
                  absl::FormatDuration(options_.hello_timeout));
      CloseConnection(fd, ErrorReason::kHelloRequired);
    }
    if (now >= next_reap) {
      next_reap = now + options_.reap_interval;
      if (int reaped = deps_.broker->ReapDeadClients(); reaped > 0)
        LOG_INFO("localio: reaped %d uuid(s) of dead clients", reaped);
    }
  }
}

void LocalSocket::Accept() {
  for (;;) {
    UniqueFd fd(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        LOG_WARNING("localio: accept: %s", strerror(errno));
      return;
    }
    auto c = std::make_unique<Connection>();
    c->id = next_connection_id_++;
    c->accepted_at = absl::Now();
    ucred peer{};
    socklen_t len = sizeof(peer);
    // The uid and gid are the kernel's (mapped into our user namespace) whether or not
    // the pid is visible to us: a peer in a pid namespace ours does not contain has
    // pid 0 here, and is authenticated by its HELLO secret like any other.
    if (getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0) {
      c->pid = peer.pid;
      c->cred.uid = peer.uid;
      c->cred.gid = peer.gid;
      c->peer_known = PeerGroups(fd.get(), peer.pid, &c->cred.groups);
    }
    const int raw = fd.get();
    c->fd = std::move(fd);
    connections_.emplace(raw, std::move(c));
    if (connections_.size() > options_.max_connections) {
      LOG_WARNING("localio: more than %d connections, refusing one", options_.max_connections);
      CloseConnection(raw, ErrorReason::kTooManyConnections);
      continue;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = raw;
    if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, raw, &ev) != 0) {
      LOG_WARNING("localio: epoll_ctl: %s", strerror(errno));
      CloseConnection(raw, std::nullopt);
    }
  }
}

bool LocalSocket::Serve(Connection& c) {
  for (;;) {
    absl::StatusOr<localio::ReceivedPacket> packet = localio::ReceiveWithFd(c.fd.get());
    if (!packet.ok()) {
      const int err = StatusErrno(packet.status());
      if (err == EAGAIN || err == EWOULDBLOCK) return true;  // drained
      if (err == ECONNRESET) return false;                    // peer closed
      if (absl::IsInvalidArgument(packet.status())) {
        malformed_.fetch_add(1, std::memory_order_relaxed);
        if (uint64_t left_out = 0; refusal_log_.Allow(&left_out))
          LOG_WARNING("localio: connection of pid %d uid %d: %s%s", c.pid, c.cred.uid,
                      packet.status().message(), LeftOut(left_out));
        CloseConnection(c.fd.get(), ErrorReason::kBadMessage);
        return true;  // already closed
      }
      LOG_WARNING("localio: connection of pid %d: %s", c.pid, packet.status().ToString());
      return false;
    }
    // Clients never send fds; one that does is malformed (and the fd is closed).
    absl::StatusOr<localio::Message> m =
        packet->fd ? absl::InvalidArgumentError("a client sent an fd")
                   : localio::Decode(packet->bytes);
    if (!m.ok()) {
      OPENSSL_cleanse(packet->bytes.data(), packet->bytes.size());  // may hold a secret
      malformed_.fetch_add(1, std::memory_order_relaxed);
      if (!c.authenticated) hellos_refused_.fetch_add(1, std::memory_order_relaxed);
      if (uint64_t left_out = 0; refusal_log_.Allow(&left_out))
        LOG_WARNING("localio: connection of pid %d uid %d: %s%s", c.pid, c.cred.uid,
                    m.status().message(), LeftOut(left_out));
      CloseConnection(c.fd.get(), ErrorReason::kBadMessage);
      return true;
    }
    bool keep = false;
    if (!c.authenticated) {
      if (m->op == localio::Op::kHello) {
        OPENSSL_cleanse(packet->bytes.data(), packet->bytes.size());  // held the secret
        keep = HandleHello(c, m->hello);
      } else {
        hellos_refused_.fetch_add(1, std::memory_order_relaxed);
        if (uint64_t left_out = 0; refusal_log_.Allow(&left_out))
          LOG_WARNING("localio: pid %d uid %d sent op %d before HELLO%s", c.pid, c.cred.uid,
                      static_cast<int>(m->op), LeftOut(left_out));
        CloseConnection(c.fd.get(), ErrorReason::kHelloRequired);
        return true;
      }
    } else if (m->op == localio::Op::kOpenLocalFh) {
      keep = HandleOpen(c, m->open);
    } else {
      malformed_.fetch_add(1, std::memory_order_relaxed);
      LOG_WARNING("localio: pid %d sent unexpected op %d", c.pid, static_cast<int>(m->op));
      CloseConnection(c.fd.get(), ErrorReason::kBadMessage);
      return true;
    }
    if (!keep) return true;  // the handler closed it
    if (c.parked) return true;  // read again once its open is answered
  }
}

bool LocalSocket::HandleHello(Connection& c, const localio::HelloRequest& hello) {
  const broker::Uuid& uuid = hello.uuid;
  auto refuse = [&](ErrorReason reason, std::string_view why) {
    hellos_refused_.fetch_add(1, std::memory_order_relaxed);
    // The uuid is public (the slot file shows it); the secret is never logged.
    if (uint64_t left_out = 0; refusal_log_.Allow(&left_out))
      LOG_WARNING("localio: HELLO from pid %d uid %d with uuid %s refused: %s%s", c.pid,
                  c.cred.uid, broker::UuidToString(uuid), why, LeftOut(left_out));
    CloseConnection(c.fd.get(), reason);
    return false;
  };
  if (!c.peer_known) return refuse(ErrorReason::kNoPeerCredentials, "no peer credentials");
  std::optional<broker::BoundClient> bound = deps_.broker->LookupBound(uuid);
  if (!bound) return refuse(ErrorReason::kNotBound, "not bound by this server");
  // The proof of locality: only the client that registered the uuid knows the secret
  // whose hash its slot showed when we bound it (broker_format.h). No pid is needed:
  // the peer's may be invisible to us (pid 0 from another pid namespace).
  if (!broker::SecretMatches(hello.secret, bound->secret_hash))
    return refuse(ErrorReason::kNotOwner,
                  "wrong secret (the uuid was registered by another client)");
  PeerAddress peer;
  if (!PeerOfDomain(bound->domain, &peer))
    return refuse(ErrorReason::kNotBound, absl::StrCat("bad domain '", bound->domain, "'"));
  std::optional<broker::InstanceId> instance = deps_.broker->PublishedInstance();
  if (!instance) return refuse(ErrorReason::kShuttingDown, "no published record");
  if (absl::Status s = localio::SendWithFd(c.fd.get(),
                                           localio::Encode(localio::HelloReply{*instance}));
      !s.ok()) {
    LOG_WARNING("localio: HELLO reply to pid %d: %s", c.pid, s.ToString());
    CloseConnection(c.fd.get(), std::nullopt);
    return false;
  }
  c.authenticated = true;
  c.uuid = uuid;
  c.owner_pid = bound->owner_pid;
  c.owner_start_time = bound->owner_start_time;
  c.secret_hash = bound->secret_hash;
  c.domain = std::make_shared<rpc::ConnectionInfo>(c.id, peer, PeerAddress{});
  hellos_accepted_.fetch_add(1, std::memory_order_relaxed);
  {
    absl::MutexLock l(&stats_mu_);
    LocalClientStats& s = clients_[uuid];
    s.uuid = uuid;
    s.domain = bound->domain;
    if (bound->export_id != 0) s.export_id = bound->export_id;
    s.pid = c.pid;
    s.uid = c.cred.uid;
    ++s.connections;
  }
  LOG_INFO("localio: pid %d uid %d connected with uuid %s (%s)", c.pid, c.cred.uid,
           broker::UuidToString(uuid), bound->domain);
  return true;
}

bool LocalSocket::HandleOpen(Connection& c, const localio::OpenLocalFhRequest& req) {
  if (!StillBound(c)) return false;
  // Only root may act for someone else (the FUSE daemon serving its user's request).
  Credentials cred = c.cred;
  if ((req.flags & localio::kOpenHasCredentials) != 0) {
    if (c.cred.is_root())
      cred = req.cred;
    else if (!(req.cred == c.cred))
      LOG_DEBUG("localio: pid %d uid %d sent credentials of uid %d: ignored", c.pid,
                c.cred.uid, req.cred.uid);
  }
  const bool write = req.mode == localio::OpenMode::kReadWrite;
  // As an RPC: the rule, `secure`, ro and squash decided first (request_policy.h) ...
  absl::StatusOr<Authorization> auth =
      AuthorizeHandle(deps_.policy, PolicyInput{req.fh, c.domain.get(), &cred, write});
  if (!auth.ok()) return FinishOpen(c, req, cred, write, auth.status());
  // ... then the handle resolved by the backend, through its cache, without a search
  // (the loop serves everyone). The handle is copied: a search needs it again.
  absl::StatusOr<backend::Object> obj =
      deps_.backend->Resolve(*auth->exp, auth->kh, /*may_search=*/false);
  if (obj.ok())
    return FinishOpen(c, req, cred, write, Resolved{std::move(*auth), std::move(*obj)});
  if (StatusErrno(obj.status()) != EWOULDBLOCK)
    return FinishOpen(c, req, cred, write, obj.status());
  // The handle needs a search of the export: park the connection (EPOLLIN off, a
  // hang-up still wakes us) and let the search thread resolve it.
  epoll_event ev{};
  ev.events = EPOLLRDHUP;
  ev.data.fd = c.fd.get();
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev) != 0) {
    LOG_WARNING("localio: epoll_ctl: %s", strerror(errno));
    CloseConnection(c.fd.get(), std::nullopt);
    return false;
  }
  c.parked = true;
  SearchJob job;
  job.fd = c.fd.get();
  job.connection_id = c.id;
  job.req = req;
  job.cred = std::move(cred);
  job.write = write;
  job.auth = std::move(*auth);
  absl::MutexLock l(&search_mu_);
  search_queue_.push_back(std::move(job));
  search_cv_.Signal();
  return true;
}

bool LocalSocket::StillBound(Connection& c) {
  // The binding may have been revoked since HELLO (unexport, release, invalidation).
  std::optional<broker::BoundClient> bound = deps_.broker->LookupBound(c.uuid);
  if (!bound || bound->owner_pid != c.owner_pid ||
      bound->owner_start_time != c.owner_start_time || bound->secret_hash != c.secret_hash) {
    LOG_INFO("localio: uuid %s of pid %d is no longer bound; closing",
             broker::UuidToString(c.uuid), c.pid);
    CloseConnection(c.fd.get(), ErrorReason::kNotBound);
    return false;
  }
  return true;
}

void LocalSocket::SearchLoop() {
  RcuThread rcu_registration;
  for (;;) {
    SearchJob job;
    {
      absl::MutexLock l(&search_mu_);
      while (search_queue_.empty() && !search_stop_) search_cv_.Wait(&search_mu_);
      if (search_stop_) return;
      job = std::move(search_queue_.front());
      search_queue_.pop_front();
    }
    // Authorised on the loop already: only the resolution, which may search, is left.
    job.result = deps_.backend->Resolve(*job.auth.exp, job.auth.kh, /*may_search=*/true);
    {
      absl::MutexLock l(&search_mu_);
      search_done_.push_back(std::move(job));
    }
    const uint64_t one = 1;
    (void)!write(search_done_fd_.get(), &one, sizeof(one));
    FlushThisThread();
  }
}

void LocalSocket::FinishSearches() {
  uint64_t count;
  while (read(search_done_fd_.get(), &count, sizeof(count)) > 0) {
  }
  std::vector<SearchJob> done;
  {
    absl::MutexLock l(&search_mu_);
    done.swap(search_done_);
  }
  for (SearchJob& job : done) {
    auto it = connections_.find(job.fd);
    // Closed while it waited (its client hung up): nobody to answer.
    if (it == connections_.end() || it->second->id != job.connection_id) continue;
    Connection& c = *it->second;
    c.parked = false;
    // The search took long enough for an unbind to happen meanwhile.
    if (!StillBound(c)) continue;
    absl::StatusOr<Resolved> resolved =
        job.result.ok() ? absl::StatusOr<Resolved>(
                              Resolved{std::move(job.auth), std::move(*job.result)})
                        : absl::StatusOr<Resolved>(job.result.status());
    if (!FinishOpen(c, job.req, job.cred, job.write, std::move(resolved))) continue;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.fd = job.fd;
    if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, job.fd, &ev) != 0) {
      LOG_WARNING("localio: epoll_ctl: %s", strerror(errno));
      CloseConnection(job.fd, std::nullopt);
      continue;
    }
    // What it sent meanwhile (a well-behaved client sends nothing before the answer).
    if (!Serve(c)) CloseConnection(job.fd, std::nullopt);
  }
}

bool LocalSocket::FinishOpen(Connection& c, const localio::OpenLocalFhRequest& req,
                             const Credentials& cred, bool write,
                             absl::StatusOr<Resolved> resolved) {
  localio::OpenReply reply;
  reply.request_id = req.request_id;
  UniqueFd fd;
  uint32_t export_id = 0;
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(resolved.status());
    export_id = resolved->auth.exp->id();
    // The checks of an RPC READ/WRITE (rules.h CheckLocalIo) on the resolution's
    // attributes, then a file of exactly this mode that is the client's alone.
    ASSIGN_OR_RETURN(Ref<NfsFile> file,
                     deps_.backend->OpenForLocalIo(
                         resolved->obj, resolved->auth.cred,
                         write ? FileMode::kReadWrite : FileMode::kRead));
    fd.reset(fcntl(file->fd(), F_DUPFD_CLOEXEC, 0));
    if (!fd) return ErrnoToStatus(errno, "dup");
    // The resolution's one stat: opening changed none of them.
    reply.attrs = AttrsOf(resolved->obj.attrs());
    return absl::OkStatus();
  }();
  reply.status = NfsStatusFromStatus(status);
  if (!status.ok()) {
    fd.reset();
    LOG_DEBUG("localio: OPEN_LOCAL_FH from pid %d as uid %d: %s", c.pid, cred.uid,
              status.ToString());
  }
  CountOpen(reply.status, &c.uuid, export_id);
  if (absl::Status s = localio::SendWithFd(c.fd.get(), localio::Encode(reply), fd.get());
      !s.ok()) {
    // EAGAIN too: a peer that does not read its replies is not served further.
    LOG_WARNING("localio: reply to pid %d: %s", c.pid, s.ToString());
    CloseConnection(c.fd.get(), std::nullopt);
    return false;
  }
  return true;  // `fd` (our dup) closes here; the client holds its own reference
}

void LocalSocket::CountOpen(uint32_t status, const broker::Uuid* uuid, uint32_t export_id) {
  absl::MutexLock l(&stats_mu_);
  ++opens_by_status_[status];
  if (status != NFS3_OK || uuid == nullptr) return;
  LocalClientStats& client = clients_[*uuid];
  ++client.opens;
  client.export_id = export_id;
}

void LocalSocket::CloseConnection(int fd, std::optional<ErrorReason> reason) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  std::unique_ptr<Connection> c = std::move(it->second);
  connections_.erase(it);
  if (reason) {
    // Best effort: the peer learns why before it sees the end of the stream.
    localio::SendWithFd(fd, localio::Encode(localio::ErrorMessage{*reason})).IgnoreError();
  }
  if (epoll_fd_) epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  if (c->authenticated) {
    absl::MutexLock l(&stats_mu_);
    auto s = clients_.find(c->uuid);
    if (s != clients_.end() && s->second.connections > 0) --s->second.connections;
  }
  // Any Ref<Export> dropped with the connection's state is deferred on this thread.
  c.reset();
}

absl::flat_hash_map<uint32_t, uint64_t> LocalSocket::OpensByStatus() const {
  absl::MutexLock l(&stats_mu_);
  return opens_by_status_;
}

uint64_t LocalSocket::Opens(uint32_t nfsstat) const {
  absl::MutexLock l(&stats_mu_);
  auto it = opens_by_status_.find(nfsstat);
  return it == opens_by_status_.end() ? 0 : it->second;
}

std::vector<LocalClientStats> LocalSocket::Clients() const {
  std::vector<broker::BoundClient> bound = deps_.broker->ListBound();
  std::vector<LocalClientStats> out;
  absl::MutexLock l(&stats_mu_);
  for (const broker::BoundClient& b : bound) {
    LocalClientStats s;
    if (auto it = clients_.find(b.uuid); it != clients_.end()) s = it->second;
    s.uuid = b.uuid;
    s.domain = b.domain;
    if (b.export_id != 0) s.export_id = b.export_id;
    if (s.pid == 0) s.pid = b.owner_pid;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace localnfs::server
