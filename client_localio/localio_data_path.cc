// client_localio/localio_data_path.cc — see localio_data_path.h.
#include "client_localio/localio_data_path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

#include <algorithm>
#include <list>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/control.h"
#include "common/localio/broker_client.h"
#include "common/localio/proto.h"
#include "common/localio/socket_client.h"
#include "common/log.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "rpc/localio.h"

#define LOCALNFS_XDRPROC(f) reinterpret_cast<xdrproc_t>(reinterpret_cast<void (*)()>(f))

namespace localnfs::client {

namespace {

constexpr uint32_t kNfs3Ok = 0;

// What an fd is cached under: the same handle opened for two users, or for reading and
// for writing, are different server-side permission decisions.
struct FdKey {
  std::string fh;
  bool write = false;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;
};

// An FdKey made of the caller's own values: a lookup builds this, without copying the
// handle or the groups (the cache hit of every local read allocates nothing).
struct FdKeyRef {
  std::string_view fh;
  bool write = false;
  uint32_t uid = 0;
  uint32_t gid = 0;
  absl::Span<const uint32_t> groups;

  FdKeyRef(std::string_view f, bool w, uint32_t u, uint32_t g, absl::Span<const uint32_t> gs)
      : fh(f), write(w), uid(u), gid(g), groups(gs) {}
  FdKeyRef(const FdKey& k)  // NOLINT(google-explicit-constructor): transparent lookup
      : FdKeyRef(k.fh, k.write, k.uid, k.gid, k.groups) {}

  friend bool operator==(const FdKeyRef& a, const FdKeyRef& b) {
    return a.fh == b.fh && a.write == b.write && a.uid == b.uid && a.gid == b.gid &&
           a.groups == b.groups;
  }
  template <typename H>
  friend H AbslHashValue(H h, const FdKeyRef& k) {
    return H::combine(std::move(h), absl::string_view(k.fh.data(), k.fh.size()), k.write,
                      k.uid, k.gid, k.groups);
  }
};

// Hash and equality over FdKey and FdKeyRef alike (absl heterogeneous lookup).
struct FdKeyHash {
  using is_transparent = void;
  size_t operator()(const FdKeyRef& k) const { return absl::Hash<FdKeyRef>{}(k); }
};
struct FdKeyEq {
  using is_transparent = void;
  bool operator()(const FdKeyRef& a, const FdKeyRef& b) const { return a == b; }
};

FdKeyRef MakeKey(const FileHandle& fh, bool write, const Credentials& cred) {
  return FdKeyRef(fh.bytes, write, cred.uid, cred.gid,
                  absl::Span<const uint32_t>(cred.groups.data(), cred.groups.size()));
}

FdKey OwnedKey(const FdKeyRef& k) {
  return FdKey{std::string(k.fh), k.write, k.uid, k.gid,
               std::vector<uint32_t>(k.groups.begin(), k.groups.end())};
}

// getpid() is a real system call in glibc >= 2.25 (the pid is no longer cached), and a
// dear one in a paravirtualised guest: a fifth of a local 4 KiB read. Active() needs
// the pid only to notice that it runs in a forked child, so the pid is cached here and
// refreshed in the child by a pthread_atfork handler, which every fork() runs (a child
// of a raw clone()/vfork() without fork() must only exec or _exit, as after vfork).
std::atomic<pid_t> cached_pid{0};

void RefreshCachedPid() { cached_pid.store(getpid(), std::memory_order_relaxed); }

void InitPidCache() {
  static std::once_flag once;
  std::call_once(once, [] {
    RefreshCachedPid();
    pthread_atfork(nullptr, nullptr, &RefreshCachedPid);
  });
}

pid_t CachedPid() { return cached_pid.load(std::memory_order_relaxed); }

// An fd that may still be in another thread's hands is never closed while it is
// (its number could be reused for another file under that thread's pread). When it
// leaves the cache it is instead made useless in place: dup3 of an O_PATH fd over it
// releases the server's file at once, and a late pread/pwrite/fsync on the number
// fails with EBADF (and goes over RPC). The number itself is closed with its LocalFile.
int UselessFd() {
  static const int fd = open("/", O_PATH | O_CLOEXEC);
  return fd;
}

// Distinguishes LocalioDataPath objects in the per-thread fd memory (an address could
// be reused by a later object; these numbers never are).
std::atomic<uint64_t> next_path_id{1};

// pread of all `count` bytes (short only at EOF): the count, or -errno.
ssize_t PreadFull(int fd, char* buf, size_t count, uint64_t offset) {
  size_t got = 0;
  while (got < count) {
    const ssize_t n = pread(fd, buf + got, count - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(got);
}

}  // namespace

const char* LocalioModeName(LocalioMode mode) {
  switch (mode) {
    case LocalioMode::kOn:
      return "on";
    case LocalioMode::kOff:
      return "off";
    case LocalioMode::kAuto:
      break;
  }
  return "auto";
}

absl::StatusOr<LocalioMode> ParseLocalioMode(std::string_view text) {
  if (text == "auto") return LocalioMode::kAuto;
  if (text == "on") return LocalioMode::kOn;
  if (text == "off") return LocalioMode::kOff;
  return absl::InvalidArgumentError(
      absl::StrCat("bad localio mode '", std::string(text), "' (auto, on or off)"));
}

// One cached fd of a server file. Shared by the cache, by the threads that used it last
// (HotFd) and by calls pinning it; the fd number closes when the last of them lets go.
// Retire() — when the cache lets go — releases the server's file right away.
struct LocalioDataPath::LocalFile {
  FdKey key;
  UniqueFd fd;

  void Retire() {
    if (fd && UselessFd() >= 0) dup3(UselessFd(), fd.get(), O_CLOEXEC);
  }
};

// One successful handshake: everything that is valid only as long as the binding is.
class LocalioDataPath::Session {
 public:
  Session() = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  ~Session() { Retire(); }

  // No longer the path's Session (replaced, invalidated, the path destroyed): releases
  // what the server sees — the uuid, the local socket, every cached fd — now, although
  // threads may keep the object itself a while (HotFd). Idempotent.
  void Retire() {
    std::vector<std::shared_ptr<LocalFile>> victims;
    {
      absl::MutexLock l(&mu_);
      if (retired_) return;
      retired_ = true;
      for (Entry& e : lru_) {
        if (e.file != nullptr) victims.push_back(std::move(e.file));
      }
      lru_.clear();
      index_.clear();
    }
    for (const std::shared_ptr<LocalFile>& f : victims) f->Retire();
    // A forked child must neither free its parent's slot (UuidRelease checks ownership
    // by pid too, but the intent belongs here) nor close the socket it shares with it
    // (its copy of the fd closes with the object).
    if (owner_pid != getpid()) return;
    if (broker != nullptr && uuid_registered) broker->UuidRelease(uuid);
    if (socket != nullptr) socket->CloseUnlessBusy();
  }

  // The cached fd for `key`; null when not cached. *refused is set when the server
  // refused this open less than reprobe_interval ago.
  std::shared_ptr<LocalFile> Lookup(const FdKeyRef& key, bool* refused) {
    absl::MutexLock l(&mu_);
    *refused = false;
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    Entry& e = *it->second;
    if (e.file == nullptr) {
      if (absl::Now() < e.refused_until) {
        *refused = true;
        return nullptr;
      }
      lru_.erase(it->second);
      index_.erase(it);
      return nullptr;
    }
    lru_.splice(lru_.begin(), lru_, it->second);
    return e.file;
  }

  // Caches `file` (or a refusal when null) and evicts beyond `max_entries` (*evicted
  // then true: threads may remember an evicted fd). When another thread cached an fd
  // for the key meanwhile, that one wins and is returned. A retired Session caches
  // nothing: `file` is returned retired (its open raced with the retirement).
  std::shared_ptr<LocalFile> Insert(const FdKeyRef& key, std::shared_ptr<LocalFile> file,
                                    absl::Time refused_until, size_t max_entries,
                                    bool* evicted) {
    std::vector<std::shared_ptr<LocalFile>> victims;  // retired outside the lock
    {
      absl::MutexLock l(&mu_);
      if (retired_) {
        if (file != nullptr) victims.push_back(file);
      } else {
        if (auto it = index_.find(key); it != index_.end()) {
          if (it->second->file != nullptr) return it->second->file;
          lru_.erase(it->second);
          index_.erase(it);
        }
        lru_.push_front(Entry{OwnedKey(key), file, refused_until});
        index_.emplace(lru_.front().key, lru_.begin());
        while (lru_.size() > std::max<size_t>(max_entries, 1)) {
          if (lru_.back().file != nullptr) victims.push_back(std::move(lru_.back().file));
          index_.erase(lru_.back().key);
          lru_.pop_back();
        }
      }
    }
    *evicted = !victims.empty();
    for (const std::shared_ptr<LocalFile>& f : victims) f->Retire();
    return file;
  }

  // Stops caching `file` (an I/O error on it) and retires it.
  void Drop(LocalFile* file) {
    std::shared_ptr<LocalFile> victim;
    {
      absl::MutexLock l(&mu_);
      auto it = index_.find(file->key);
      if (it == index_.end() || it->second->file.get() != file) return;
      victim = std::move(it->second->file);
      lru_.erase(it->second);
      index_.erase(it);
    }
    victim->Retire();
  }

  // Stops caching every fd and refusal of the handle `fh`; true if there was one.
  bool DropHandle(std::string_view fh) {
    std::vector<std::shared_ptr<LocalFile>> victims;  // retired outside the lock
    bool dropped = false;
    {
      absl::MutexLock l(&mu_);
      for (auto it = lru_.begin(); it != lru_.end();) {
        if (it->key.fh != fh) {
          ++it;
          continue;
        }
        if (it->file != nullptr) victims.push_back(std::move(it->file));
        index_.erase(it->key);
        it = lru_.erase(it);
        dropped = true;
      }
    }
    for (const std::shared_ptr<LocalFile>& f : victims) f->Retire();
    return dropped;
  }

  // Set by the handshake, immutable afterwards.
  std::unique_ptr<broker::BrokerClient> broker;
  broker::Uuid uuid{};
  bool uuid_registered = false;
  broker::Binding binding;
  WriteVerifier verifier{};
  uint64_t epoch = 0;
  pid_t owner_pid = 0;
  std::unique_ptr<localio::LocalioSocketClient> socket;  // serialises its own calls

 private:
  struct Entry {
    FdKey key;
    std::shared_ptr<LocalFile> file;  // null: a remembered refusal
    absl::Time refused_until;
  };
  absl::Mutex mu_;
  bool retired_ ABSL_GUARDED_BY(mu_) = false;
  std::list<Entry> lru_ ABSL_GUARDED_BY(mu_);  // most recently used first
  absl::flat_hash_map<FdKey, std::list<Entry>::iterator, FdKeyHash, FdKeyEq> index_
      ABSL_GUARDED_BY(mu_);
};

LocalioDataPath::LocalioDataPath(Nfs3Client* client, LocalioOptions options)
    : client_(client),
      rpc_(&client->rpc_data_path()),
      options_(std::move(options)),
      id_(next_path_id.fetch_add(1, std::memory_order_relaxed)) {
  InitPidCache();
}

LocalioDataPath::~LocalioDataPath() {
  std::shared_ptr<Session> s;
  {
    absl::MutexLock l(&mu_);
    s = ReplaceSession(nullptr);
  }
  if (s != nullptr) s->Retire();
}

absl::StatusOr<std::unique_ptr<LocalioDataPath>> LocalioDataPath::Create(
    Nfs3Client* client, LocalioOptions options) {
  if (options.runtime_dir.empty()) options.runtime_dir = DefaultRuntimeDir();
  std::unique_ptr<LocalioDataPath> path(new LocalioDataPath(client, std::move(options)));
  if (path->options_.mode == LocalioMode::kOff) {
    absl::MutexLock l(&path->mu_);
    path->last_failure_ = "localio=off";
    return path;
  }
  absl::StatusOr<std::shared_ptr<Session>> s = path->Handshake();
  absl::MutexLock l(&path->mu_);
  if (s.ok()) {
    path->ReplaceSession(*std::move(s));
    path->handshakes_.fetch_add(1, std::memory_order_relaxed);
    return path;
  }
  if (path->options_.mode == LocalioMode::kOn) {
    return absl::UnavailableError(
        absl::StrCat("LOCALIO handshake not available: ", s.status().message()));
  }
  path->last_failure_ = std::string(s.status().message());
  path->next_probe_ = absl::Now() + path->options_.reprobe_interval;
  return path;
}

absl::StatusOr<LocalioDataPath*> LocalioDataPath::Install(Nfs3Client* client,
                                                          LocalioOptions options) {
  ASSIGN_OR_RETURN(std::unique_ptr<LocalioDataPath> path, Create(client, std::move(options)));
  LocalioDataPath* raw = path.get();
  client->SetDataPath(std::move(path));
  return raw;
}

absl::StatusOr<std::shared_ptr<LocalioDataPath::Session>> LocalioDataPath::Handshake() {
  auto s = std::make_shared<Session>();
  // Recorded before UUID_IS_LOCAL: a reconnect during the call makes the next data call
  // handshake again rather than trust a binding made on a connection that died.
  s->epoch = client_->connection_epoch();
  s->owner_pid = CachedPid();

  absl::StatusOr<std::unique_ptr<broker::BrokerClient>> b =
      broker::BrokerClient::Open(options_.runtime_dir);
  if (!b.ok()) {
    return absl::Status(b.status().code(), absl::StrCat("no usable broker in ",
                                                        options_.runtime_dir, ": ",
                                                        b.status().message()));
  }
  s->broker = *std::move(b);
  absl::StatusOr<broker::Uuid> uuid = s->broker->UuidBegin();
  if (!uuid.ok()) {
    return absl::Status(uuid.status().code(),
                        absl::StrCat("uuid_begin: ", uuid.status().message()));
  }
  s->uuid = *uuid;
  s->uuid_registered = true;  // from here on the Session's destructor releases it

  localio_uuidargs args{};
  memcpy(args.uuid, s->uuid.data(), sizeof(args.uuid));
  Credentials cred;
  if (options_.handshake_credentials.has_value()) {
    cred = *options_.handshake_credentials;
  } else {
    cred.uid = getuid();
    cred.gid = getgid();
  }
  if (absl::Status st = client_->CallNfsConnection(
          LOCALIO_PROGRAM, LOCALIO_V1, LOCALIOPROC_UUID_IS_LOCAL,
          LOCALNFS_XDRPROC(xdr_localio_uuidargs), &args, LOCALNFS_XDRPROC(xdr_void),
          nullptr, cred);
      !st.ok()) {
    return absl::Status(st.code(), absl::StrCat("UUID_IS_LOCAL: ", st.message()));
  }
  absl::StatusOr<broker::Binding> binding = s->broker->UuidEnd(s->uuid);
  if (!binding.ok()) {
    return absl::Status(binding.status().code(),
                        absl::StrCat("the server did not bind our uuid (not local to ",
                                     options_.runtime_dir, "'s server): ",
                                     binding.status().message()));
  }
  s->binding = *std::move(binding);
  if (s->binding.ops_version != broker::kOpsVersion ||
      (s->binding.capabilities & broker::kCapOpenLocalFh) == 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "server offers ops version %d capabilities %#x; need version %d with OPEN_LOCAL_FH",
        s->binding.ops_version, s->binding.capabilities, broker::kOpsVersion));
  }
  // The proof that we registered the uuid (the slot shows only its hash).
  std::optional<broker::Secret> secret = s->broker->SecretOf(s->uuid);
  if (!secret) return absl::InternalError("uuid_begin kept no secret for our uuid");
  absl::StatusOr<std::unique_ptr<localio::LocalioSocketClient>> sock =
      localio::LocalioSocketClient::Connect(s->binding.socket_path, s->uuid, *secret,
                                            options_.socket_timeout);
  if (!sock.ok()) {
    return absl::Status(sock.status().code(),
                        absl::StrCat("local socket ", s->binding.socket_path, ": ",
                                     sock.status().message()));
  }
  s->socket = *std::move(sock);
  // A socket path reused by a newer server is not the server that bound us.
  if (s->socket->instance_id() != s->binding.instance_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("local socket ", s->binding.socket_path,
                     " belongs to another server instance"));
  }
  std::copy_n(s->binding.instance_id.begin(), s->verifier.size(), s->verifier.begin());
  return s;
}

std::shared_ptr<LocalioDataPath::Session> LocalioDataPath::ReplaceSession(
    std::shared_ptr<Session> next) {
  std::shared_ptr<Session> old = session_.exchange(std::move(next));
  serial_.fetch_add(1, std::memory_order_release);
  return old;
}

void LocalioDataPath::DropFile(Session* s, LocalFile* file) {
  s->Drop(file);
  serial_.fetch_add(1, std::memory_order_release);
}

// Per thread, the fd of its last local read and of its last local write. I/O mostly
// repeats on the file of the call before; found here it takes no lock, no atomic
// read-modify-write on a shared cache line and no allocation — a weak_ptr::lock() of a
// Session and a LocalFile that every thread shares made each read bounce two
// reference counts between CPUs (16 threads on 2 CPUs: half the local rate). The
// references are strong, so that using them needs no count; an entry is valid while
// the path's serial_ has not moved since it was stored (every replaced Session, dropped
// or evicted fd moves it). What a thread's entry keeps alive after that is memory and
// a number only: a Session is retired (uuid, socket and fds released) and a LocalFile
// retired (its fd made useless) when the path lets go of them; the objects go with the
// thread's next local call or its exit.
struct LocalioDataPath::HotFd {
  uint64_t path_id = 0;
  uint64_t serial = 0;
  std::shared_ptr<Session> session;
  std::shared_ptr<LocalFile> file;
};

void LocalioDataPath::LocalIo::Pin(const HotFd& hot) {
  pinned_session = hot.session;
  pinned_file = hot.file;
}

LocalioDataPath::HotFd& LocalioDataPath::ThreadHotFd(bool write) {
  thread_local HotFd hot[2];
  return hot[write ? 1 : 0];
}

bool LocalioDataPath::BeginLocal(const FileHandle& fh, bool write, const Credentials& cred,
                                 bool pin, LocalIo* io) {
  const FdKeyRef key = MakeKey(fh, write, cred);
  HotFd& hot = ThreadHotFd(write);
  const uint64_t serial = serial_.load(std::memory_order_acquire);
  // The checks of Active() too: same connections, same process.
  if (hot.path_id == id_ && hot.serial == serial && hot.file != nullptr &&
      FdKeyRef(hot.file->key) == key && hot.session->epoch == client_->connection_epoch() &&
      hot.session->owner_pid == CachedPid()) {
    io->session = hot.session.get();
    io->file = hot.file.get();
  } else {
    std::shared_ptr<Session> s = Active();
    if (s == nullptr) return false;
    io->had_session = true;
    if (!StillValid(*s)) return false;
    absl::StatusOr<std::shared_ptr<LocalFile>> f = FileFor(s, fh, write, cred);
    if (!f.ok()) return false;
    hot = HotFd{id_, serial, std::move(s), *std::move(f)};
    io->session = hot.session.get();
    io->file = hot.file.get();
    // StillValid was checked above, before the open.
    if (pin) io->Pin(hot);
    return true;
  }
  io->had_session = true;
  if (!StillValid(*io->session)) return false;
  if (pin) io->Pin(hot);
  return true;
}

std::shared_ptr<LocalioDataPath::Session> LocalioDataPath::Active() {
  if (options_.mode == LocalioMode::kOff) return nullptr;
  // The path of every local I/O: one atomic load of the published Session, no lock and
  // no system call. It is usable while the client has not reconnected since its
  // handshake and this process is the one that made it.
  std::shared_ptr<Session> s = session_.load(std::memory_order_acquire);
  if (s != nullptr && s->epoch == client_->connection_epoch() &&
      s->owner_pid == CachedPid()) {
    return s;
  }
  s.reset();
  return ActiveSlow();
}

std::shared_ptr<LocalioDataPath::Session> LocalioDataPath::ActiveSlow() {
  const uint64_t epoch = client_->connection_epoch();
  const pid_t pid = CachedPid();
  std::shared_ptr<Session> old;  // released outside mu_: UuidRelease locks the broker
  {
    absl::MutexLock l(&mu_);
    if (std::shared_ptr<Session> current = session_.load(); current != nullptr) {
      if (current->epoch == epoch && current->owner_pid == pid) return current;
      // Reconnected (the server may be a new instance) or forked (the uuid is the
      // parent's): handshake again right away.
      old = ReplaceSession(nullptr);
      next_probe_ = absl::InfinitePast();
    }
    if (probing_ || absl::Now() < next_probe_) return nullptr;
    probing_ = true;
    next_probe_ = absl::Now() + options_.reprobe_interval;
  }
  if (old != nullptr) old->Retire();
  old.reset();
  absl::StatusOr<std::shared_ptr<Session>> s = Handshake();
  absl::MutexLock l(&mu_);
  probing_ = false;
  if (s.ok()) {
    std::shared_ptr<Session> bound = *std::move(s);
    ReplaceSession(bound);
    handshakes_.fetch_add(1, std::memory_order_relaxed);
    LOG_INFO("LOCALIO: bound again (local socket %s); local I/O resumes",
             bound->binding.socket_path);
    last_failure_.clear();
    return bound;
  }
  const std::string why(s.status().message());
  if (why != last_failure_) LOG_INFO("LOCALIO re-probe: %s; staying on RPC", why);
  last_failure_ = why;
  return nullptr;
}

void LocalioDataPath::ReleaseBeforeFork() {
  std::shared_ptr<Session> old;
  {
    absl::MutexLock l(&mu_);
    old = ReplaceSession(nullptr);
  }
  if (old != nullptr) old->Retire();  // frees our uuid, closes the fds and the socket
}

absl::Status LocalioDataPath::RehandshakeAfterFork() {
  if (options_.mode == LocalioMode::kOff) return absl::OkStatus();
  std::shared_ptr<Session> old;
  {
    absl::MutexLock l(&mu_);
    old = ReplaceSession(nullptr);
  }
  if (old != nullptr) old->Retire();  // owner_pid != getpid(): the parent's uuid stays
  old.reset();
  absl::StatusOr<std::shared_ptr<Session>> s = Handshake();
  absl::MutexLock l(&mu_);
  if (!s.ok()) {
    last_failure_ = std::string(s.status().message());
    next_probe_ = absl::Now() + options_.reprobe_interval;
    return s.status();
  }
  ReplaceSession(*std::move(s));
  handshakes_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

void LocalioDataPath::Invalidate(const Session* s, std::string_view why) {
  std::shared_ptr<Session> victim;
  {
    absl::MutexLock l(&mu_);
    if (session_.load().get() != s) return;  // another thread got there first
    victim = ReplaceSession(nullptr);
    next_probe_ = absl::Now() + options_.reprobe_interval;
    last_failure_ = std::string(why);
  }
  victim->Retire();
  LOG_WARNING("LOCALIO: %s; dropping local fds, using RPC (re-probe in %s)", why,
              absl::FormatDuration(options_.reprobe_interval));
}

bool LocalioDataPath::StillValid(const Session& s) {
  // The one load per local I/O the design asks for: no lock, no syscall.
  if (s.broker->LoadGeneration() == s.binding.generation) return true;
  Invalidate(&s, "server generation changed");
  return false;
}

absl::StatusOr<std::shared_ptr<LocalioDataPath::LocalFile>> LocalioDataPath::FileFor(
    const std::shared_ptr<Session>& s, const FileHandle& fh, bool write,
    const Credentials& cred) {
  const FdKeyRef key = MakeKey(fh, write, cred);
  bool refused = false;
  if (std::shared_ptr<LocalFile> f = s->Lookup(key, &refused)) return f;
  if (refused) return absl::PermissionDeniedError("OPEN_LOCAL_FH refused recently");
  // Only a root peer may speak for another user; anyone else is its own SO_PEERCRED.
  std::optional<Credentials> as;
  if (geteuid() == 0) as = cred;
  absl::StatusOr<localio::LocalioSocketClient::OpenResult> r = s->socket->OpenLocalFh(
      fh.bytes, write ? localio::OpenMode::kReadWrite : localio::OpenMode::kRead, as);
  if (!r.ok()) {
    Invalidate(s.get(), absl::StrCat("local socket failed: ", r.status().message()));
    return r.status();
  }
  if (r->status != kNfs3Ok || !r->fd) {
    bool evicted = false;
    s->Insert(key, nullptr, absl::Now() + options_.reprobe_interval, options_.max_open_files,
              &evicted);
    if (evicted) serial_.fetch_add(1, std::memory_order_release);
    return absl::PermissionDeniedError(
        absl::StrCat("OPEN_LOCAL_FH: ", NfsStatusName(r->status)));
  }
  opens_.fetch_add(1, std::memory_order_relaxed);
  auto file = std::make_shared<LocalFile>(LocalFile{OwnedKey(key), std::move(r->fd)});
  bool evicted = false;
  std::shared_ptr<LocalFile> cached =
      s->Insert(key, std::move(file), absl::InfinitePast(), options_.max_open_files, &evicted);
  // Threads may remember an evicted fd (now useless): make them look again.
  if (evicted) serial_.fetch_add(1, std::memory_order_release);
  return cached;
}

std::optional<size_t> LocalioDataPath::TryLocalRead(const FileHandle& fh,
                                                    const Credentials& cred, bool pin,
                                                    absl::FunctionRef<ssize_t(int fd)> read) {
  LocalIo io;
  if (BeginLocal(fh, /*write=*/false, cred, pin, &io)) {
    const ssize_t n = read(io.file->fd.get());
    if (n >= 0) {
      const size_t got = static_cast<size_t>(n);
      io_counts_.Add(kReads, 1, kReadBytes, got);
      io.session->broker->CountLocalIo(io.session->binding, broker::LocalIoKind::kRead, got);
      return got;
    }
    LOG_WARNING("LOCALIO read: %s; this fd is dropped, the READ goes over RPC",
                strerror(static_cast<int>(-n)));
    DropFile(io.session, io.file);
  }
  if (io.had_session) fallbacks_.fetch_add(1, std::memory_order_relaxed);
  return std::nullopt;
}

absl::StatusOr<ReadResult> LocalioDataPath::Read(const FileHandle& fh, uint64_t offset,
                                                 uint32_t count, const Credentials& cred) {
  ReadResult out;
  out.data.resize(count);
  const std::optional<size_t> got = TryLocalRead(fh, cred, /*pin=*/false, [&](int fd) {
    return PreadFull(fd, out.data.data(), count, offset);
  });
  if (!got.has_value()) return rpc_->Read(fh, offset, count, cred);
  out.data.resize(*got);
  out.eof = *got < count;
  return out;
}

absl::StatusOr<ReadIntoResult> LocalioDataPath::ReadInto(const FileHandle& fh,
                                                         uint64_t offset,
                                                         absl::Span<char> buffer,
                                                         const Credentials& cred) {
  const std::optional<size_t> got = TryLocalRead(fh, cred, /*pin=*/false, [&](int fd) {
    return PreadFull(fd, buffer.data(), buffer.size(), offset);
  });
  if (!got.has_value()) return rpc_->ReadInto(fh, offset, buffer, cred);
  return ReadIntoResult{static_cast<uint32_t>(*got), *got < buffer.size(), std::nullopt};
}

absl::Status LocalioDataPath::WithLocalFile(const FileHandle& fh, bool write,
                                            const Credentials& cred,
                                            absl::FunctionRef<absl::Status(int fd)> use) {
  LocalIo io;
  if (!BeginLocal(fh, write, cred, /*pin=*/true, &io)) {
    return absl::UnavailableError("no LOCALIO file for this handle and credentials");
  }
  return use(io.file->fd.get());
}

absl::StatusOr<size_t> LocalioDataPath::ReadLocally(const FileHandle& fh,
                                                    const Credentials& cred,
                                                    absl::FunctionRef<ssize_t(int fd)> read) {
  const std::optional<size_t> got = TryLocalRead(fh, cred, /*pin=*/true, read);
  if (!got.has_value()) return absl::UnavailableError("LOCALIO cannot serve this read now");
  return *got;
}

absl::StatusOr<WriteResult> LocalioDataPath::Write(const FileHandle& fh, uint64_t offset,
                                                   std::string_view data, StableHow stable,
                                                   const Credentials& cred) {
  LocalIo io;
  if (BeginLocal(fh, /*write=*/true, cred, /*pin=*/false, &io)) {
    const int fd = io.file->fd.get();
    size_t done = 0;
    int err = 0;
    while (done < data.size()) {
      const ssize_t n = pwrite(fd, data.data() + done, data.size() - done,
                               static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err = n < 0 ? errno : EIO;
        break;
      }
      done += static_cast<size_t>(n);
    }
    if (err == 0 && stable == StableHow::kDataSync && fdatasync(fd) != 0) err = errno;
    if (err == 0 && stable == StableHow::kFileSync && fsync(fd) != 0) err = errno;
    if (err == 0) {
      io_counts_.Add(kWrites, 1, kWriteBytes, done);
      io.session->broker->CountLocalIo(io.session->binding, broker::LocalIoKind::kWrite,
                                       done);
      WriteResult w;
      w.count = static_cast<uint32_t>(done);
      // UNSTABLE stays unstable: Nfs3Client keeps the bytes under this verifier until a
      // COMMIT returns the same one (see the header, "Data safety").
      w.committed = stable;
      w.verifier = io.session->verifier;
      return w;
    }
    // A partial pwrite is harmless: the RPC WRITE below rewrites the whole range.
    LOG_WARNING("LOCALIO pwrite/sync: %s; this fd is dropped, the WRITE goes over RPC",
                strerror(err));
    DropFile(io.session, io.file);
  }
  if (io.had_session) fallbacks_.fetch_add(1, std::memory_order_relaxed);
  return rpc_->Write(fh, offset, data, stable, cred);
}

absl::StatusOr<CommitResult> LocalioDataPath::Commit(const FileHandle& fh, uint64_t offset,
                                                     uint32_t count,
                                                     const Credentials& cred) {
  if (std::shared_ptr<Session> s = Active(); s != nullptr) {
    if (StillValid(*s)) {
      // fsync works on any fd of the inode: prefer what is cached, open only if needed.
      bool refused = false;
      std::shared_ptr<LocalFile> file = s->Lookup(MakeKey(fh, true, cred), &refused);
      if (file == nullptr) file = s->Lookup(MakeKey(fh, false, cred), &refused);
      if (file == nullptr) {
        absl::StatusOr<std::shared_ptr<LocalFile>> f = FileFor(s, fh, /*write=*/true, cred);
        if (f.ok()) file = *std::move(f);
      }
      if (file != nullptr) {
        if (fsync(file->fd.get()) == 0) {
          commits_.fetch_add(1, std::memory_order_relaxed);
          s->broker->CountLocalIo(s->binding, broker::LocalIoKind::kCommit, 0);
          return CommitResult{s->verifier};
        }
        LOG_WARNING("LOCALIO fsync: %s; this fd is dropped, the COMMIT goes over RPC",
                    strerror(errno));
        DropFile(s.get(), file.get());
      }
    }
    fallbacks_.fetch_add(1, std::memory_order_relaxed);
  }
  return rpc_->Commit(fh, offset, count, cred);
}

void LocalioDataPath::ForgetFile(const FileHandle& fh) {
  // A Session made later has no fd of the removed file: only the current one matters.
  std::shared_ptr<Session> s = session_.load();
  if (s != nullptr && s->DropHandle(fh.bytes)) serial_.fetch_add(1, std::memory_order_release);
}

IoCounters LocalioDataPath::Counters() const {
  IoCounters c = rpc_->Counters();
  c.local_reads = io_counts_.Sum(kReads);
  c.local_read_bytes = io_counts_.Sum(kReadBytes);
  c.local_writes = io_counts_.Sum(kWrites);
  c.local_write_bytes = io_counts_.Sum(kWriteBytes);
  c.local_commits = commits_.load(std::memory_order_relaxed);
  c.local_opens = opens_.load(std::memory_order_relaxed);
  c.local_fallbacks = fallbacks_.load(std::memory_order_relaxed);
  return c;
}

bool LocalioDataPath::local_active() const { return session_.load() != nullptr; }

std::string LocalioDataPath::Describe() const {
  absl::MutexLock l(&mu_);
  const std::shared_ptr<Session> s = session_.load();
  if (s == nullptr) return absl::StrCat("rpc (", last_failure_, ")");
  return absl::StrCat("local (runtime dir ", options_.runtime_dir, ", server instance ",
                      broker::UuidToString(s->binding.instance_id), ", socket ",
                      s->binding.socket_path, ")");
}

}  // namespace localnfs::client
