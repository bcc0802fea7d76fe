// client_localio/localio_data_path.h — the LOCALIO data path of the client library:
// READ / WRITE / COMMIT done with pread / pwrite / fsync on fds of the server's own
// files when the server runs on this host, and over RPC otherwise.
//
//   ASSIGN_OR_RETURN(LocalioDataPath* lio,
//                    LocalioDataPath::Install(client.get(), {.mode = LocalioMode::kAuto}));
//   LOG_INFO("%s", lio->Describe());   // "local (…)" or "rpc (…why…)"
//
// The handshake (DESIGN.md "The LOCALIO handshake and data path"): open the broker of
// the runtime dir (none → RPC), uuid_begin, UUID_IS_LOCAL (program 400122 v1 proc 1) on
// the client's own NFS connection pool, uuid_end (bound → local), connect the server's
// local socket and HELLO (its instance id must be the one the binding names). It runs
// at Create(), again after the client reconnected (connection_epoch() changed: maybe a
// new server), and — after LOCALIO was lost — at most once per reprobe_interval from
// the data calls themselves.
//
// Owns: one Session at a time (shared_ptr; in-flight calls hold their own reference):
// the broker mappings (the files of the server that bound us: a restarted server makes
// new ones and withdraws these, which the generation check below sees), the bound uuid,
// the local-socket connection and the fd cache. The fd cache maps (file handle, mode,
// credentials) to an fd from OPEN_LOCAL_FH, bounded (max_open_files, LRU); each fd is a
// shared_ptr<LocalFile>. A Session the path lets go of (replaced, invalidated, the path
// destroyed) is retired at once — uuid released (UuidRelease), socket closed, every
// cached fd retired — and an fd dropped from the cache (LRU, I/O error, ForgetFile) is
// retired: dup3 of an O_PATH fd over it releases the server's file now, while the fd
// number stays taken until the last reference goes, so another thread's pread on it
// fails with EBADF (and goes over RPC) instead of reading a file that reused the number.
// A refused open is remembered for reprobe_interval so that a file the server
// will not hand out does not cost one socket round trip per I/O. ForgetFile() drops the
// fds of a file the caller removed (the FUSE mount's silly-renamed files at their last
// close), which would otherwise keep its blocks allocated on the server until evicted.
//
// Invalidation: before every local I/O one LoadGeneration() acquire load is compared
// with the generation of the binding; a difference (server exit, crash + restart,
// unexport, unbind) drops the Session — all its fds with it — and that call and the
// following ones go over RPC until a re-probe binds again. An fd error (EBADF, EIO, …)
// drops that fd and redoes the call over RPC; a broken local socket drops the Session.
//
// Data safety: a local UNSTABLE write returns committed=kUnstable with the Session's
// verifier (the first 8 bytes of the server instance id), so Nfs3Client records it in
// the same unstable-write bookkeeping as RPC writes. A local Commit (fsync) returns that
// verifier and retires those ranges; after a fallback, the RPC COMMIT returns the
// server's own write verifier, which differs, so Nfs3Client resends everything written
// locally and not yet committed. DATA_SYNC / FILE_SYNC writes are fdatasync'd / fsync'd
// before returning. Nothing acknowledged as stable is therefore ever lost.
//
// Credentials: OPEN_LOCAL_FH carries the caller's uid/gid/groups when this process is
// root (the FUSE daemon acting for a user); otherwise the server uses this process's
// SO_PEERCRED identity. Fds are cached per credentials, so one user never does I/O on
// an fd opened for another.
//
// Hot path: a local READ or WRITE on the file a thread used last takes no lock, makes
// no atomic read-modify-write on a line other threads write and no system call besides
// its pread/pwrite. Each thread remembers the Session and fd of its last local read and
// write (strong references: using them costs no reference count), valid while serial_
// — moved by every change of Session and every dropped or evicted fd — has not moved;
// a thread's memory therefore keeps a retired Session's or fd's memory (and the fd
// number) until its next local call or its exit, never what the server sees. The fork
// check compares with a pid cached per process (refreshed by pthread_atfork). Otherwise
// the current Session is an atomic shared_ptr (replaced under mu_ by handshakes and
// invalidations) and the fd comes from the Session's cache, whose lookup allocates
// nothing.
//
// Thread-safety: Read/ReadInto/ReadLocally/WithLocalFile/Write/Commit/Counters/
// local_active/Describe may be called concurrently from any thread. Lifetime: the
// Nfs3Client passed in must outlive this object (Install() makes the client own it,
// which guarantees that).
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "client_localio/client.h"
#include "common/sharded_counter.h"

namespace localnfs::client {

enum class LocalioMode {
  kAuto,  // LOCALIO when the handshake succeeds, RPC otherwise (silently)
  kOn,    // Create() fails unless the handshake succeeds at mount
  kOff,   // always RPC; no broker is ever opened
};
const char* LocalioModeName(LocalioMode mode);
// "auto" / "on" / "off".
absl::StatusOr<LocalioMode> ParseLocalioMode(std::string_view text);

struct LocalioOptions {
  LocalioMode mode = LocalioMode::kAuto;
  // Where the server's broker is; empty = DefaultRuntimeDir() (common/control.h).
  std::string runtime_dir;
  // AUTH_SYS credentials of the UUID_IS_LOCAL call; unset = this process's uid/gid.
  std::optional<Credentials> handshake_credentials;
  // Upper bound of cached local fds (each holds a server file open).
  size_t max_open_files = 256;
  // Minimum time between two handshake attempts after LOCALIO was lost or refused.
  absl::Duration reprobe_interval = absl::Seconds(1);
  // Bounds the local-socket calls (HELLO, OPEN_LOCAL_FH).
  absl::Duration socket_timeout = absl::Seconds(10);
};

class LocalioDataPath final : public DataPath {
 public:
  // Wraps client->rpc_data_path() and tries the handshake once. kOn: a failed handshake
  // is returned as kUnavailable ("LOCALIO handshake not available: …"). kAuto: the
  // path is returned either way (Describe() says which). `client` must outlive it.
  static absl::StatusOr<std::unique_ptr<LocalioDataPath>> Create(Nfs3Client* client,
                                                                  LocalioOptions options);
  // Create() and client->SetDataPath(); the client owns the result. Same threading rule
  // as SetDataPath(): before the client is used concurrently.
  static absl::StatusOr<LocalioDataPath*> Install(Nfs3Client* client, LocalioOptions options);

  // Releases the uuid (the Session's destructor) and closes every cached fd.
  ~LocalioDataPath() override;
  LocalioDataPath(const LocalioDataPath&) = delete;
  LocalioDataPath& operator=(const LocalioDataPath&) = delete;

  absl::StatusOr<ReadResult> Read(const FileHandle& fh, uint64_t offset, uint32_t count,
                                  const Credentials& cred) override;
  // pread straight into `buffer` (no allocation, no zero-fill); RPC as Read() otherwise.
  absl::StatusOr<ReadIntoResult> ReadInto(const FileHandle& fh, uint64_t offset,
                                          absl::Span<char> buffer,
                                          const Credentials& cred) override;
  // For a reader that moves the bytes itself (the FUSE mount splices them from the fd
  // to /dev/fuse): runs `read` on the local fd of `fh` opened for `cred`, after the same
  // generation check as Read(), and keeps that fd open until `read` returns. `read`
  // returns how many bytes it read (short only at EOF), counted as one local read, or
  // -errno, which drops that fd as a failed pread does. A non-OK result means nothing
  // was read locally (LOCALIO off or lost, open refused, `read` failed): the caller
  // then reads with ReadInto()/Read(), which go over RPC when LOCALIO cannot serve.
  absl::StatusOr<size_t> ReadLocally(const FileHandle& fh, const Credentials& cred,
                                     absl::FunctionRef<ssize_t(int fd)> read);
  // For a caller that hands the file itself to the kernel (the FUSE mount registers it
  // as a passthrough backing file): runs `use` on the local fd of `fh` opened for `cred`
  // (for writing too when `write`) — the same generation check and OPEN_LOCAL_FH
  // authorisation as a local READ/WRITE — and keeps that fd open until `use` returns.
  // Not counted as I/O. kUnavailable when no local fd can be had (LOCALIO off or lost,
  // open refused); otherwise what `use` returned.
  absl::Status WithLocalFile(const FileHandle& fh, bool write, const Credentials& cred,
                             absl::FunctionRef<absl::Status(int fd)> use);
  absl::StatusOr<WriteResult> Write(const FileHandle& fh, uint64_t offset,
                                    std::string_view data, StableHow stable,
                                    const Credentials& cred) override;
  absl::StatusOr<CommitResult> Commit(const FileHandle& fh, uint64_t offset, uint32_t count,
                                      const Credentials& cred) override;
  // RPC counters of the wrapped path plus the local ones.
  IoCounters Counters() const override;
  // Drops every cached fd (and remembered refusal) of `fh`, for any mode and user.
  void ForgetFile(const FileHandle& fh) override;

  LocalioMode mode() const { return options_.mode; }
  const std::string& runtime_dir() const { return options_.runtime_dir; }
  // True while a bound Session exists (the next data call will try local I/O).
  bool local_active() const;
  // One line for logs and the stats file: "local (server pid P, instance …)" or
  // "rpc (<why the last handshake failed>)".
  std::string Describe() const ABSL_LOCKS_EXCLUDED(mu_);
  // How many handshakes succeeded (1 after a plain mount; more after re-probes).
  uint64_t handshakes() const { return handshakes_.load(std::memory_order_relaxed); }

  // Daemonising (fork, parent exits): the broker ties a uuid to the pid that registered
  // it, so the parent calls ReleaseBeforeFork() — its uuid is released and its fds
  // closed while it still owns them — and the child RehandshakeAfterFork(). (Without
  // the release the parent's slot would stay bound until the server reaps dead
  // clients.) RehandshakeAfterFork drops any Session it inherited without releasing
  // the parent's uuid and handshakes from this process; returns the outcome.
  void ReleaseBeforeFork() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RehandshakeAfterFork() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Session;
  struct LocalFile;
  struct HotFd;  // per thread, see ThreadHotFd()
  // What one local call uses until it returns: the Session and the fd, kept alive by
  // this thread's HotFd — or, for a call that runs a caller's function on the fd
  // (which might itself make a local call and replace the HotFd), by references of
  // its own (pinned).
  struct LocalIo {
    Session* session = nullptr;
    LocalFile* file = nullptr;
    bool had_session = false;  // a Session existed: a call that goes over RPC counts
                               // as a fallback
    std::shared_ptr<Session> pinned_session;
    std::shared_ptr<LocalFile> pinned_file;
    void Pin(const HotFd& hot);
  };

  LocalioDataPath(Nfs3Client* client, LocalioOptions options);

  // The Session to use for one call, or null (→ RPC). Re-handshakes when the client
  // reconnected, or when LOCALIO is off and reprobe_interval has passed.
  std::shared_ptr<Session> Active();
  // Active() when the published Session is missing or stale: under mu_.
  std::shared_ptr<Session> ActiveSlow() ABSL_LOCKS_EXCLUDED(mu_);
  // Publishes `next` as the current Session (null: RPC) and moves serial_; returns the
  // previous one, for the caller to release after unlocking mu_.
  std::shared_ptr<Session> ReplaceSession(std::shared_ptr<Session> next)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stops caching `file` after an I/O error on it (retiring it) and moves serial_.
  void DropFile(Session* s, LocalFile* file);
  // This thread's memory of its last local read (write=false) or write fd.
  static HotFd& ThreadHotFd(bool write);
  // Fills `io` for one local I/O on `fh` after the generation check: from this thread's
  // memory, else Active() + FileFor() (remembered then). False → the call goes over
  // RPC; io->had_session is then set if a Session existed (the call counts as a
  // fallback). `pin`: io holds references of its own (see LocalIo).
  bool BeginLocal(const FileHandle& fh, bool write, const Credentials& cred, bool pin,
                  LocalIo* io);
  // `read(fd)` on a local fd of `fh`, counted: the bytes read, or nullopt when this
  // read must go over RPC (no Session, generation changed, open refused, or `read`
  // failed — that fd is then dropped).
  std::optional<size_t> TryLocalRead(const FileHandle& fh, const Credentials& cred, bool pin,
                                     absl::FunctionRef<ssize_t(int fd)> read);
  // Runs the whole handshake; called without mu_ held (it makes an RPC). On failure
  // the partly built Session releases its uuid as it is destroyed.
  absl::StatusOr<std::shared_ptr<Session>> Handshake();
  // Drops and retires `s` if it is still the current Session (generation changed,
  // socket broken).
  void Invalidate(const Session* s, std::string_view why) ABSL_LOCKS_EXCLUDED(mu_);
  // A usable cached-or-opened fd of `fh` for `cred`, or an error (→ RPC for this call).
  absl::StatusOr<std::shared_ptr<LocalFile>> FileFor(const std::shared_ptr<Session>& s,
                                                     const FileHandle& fh, bool write,
                                                     const Credentials& cred);
  // True if `s` may be used now: its generation still matches the broker's.
  bool StillValid(const Session& s);

  Nfs3Client* const client_;
  RpcDataPath* const rpc_;
  const LocalioOptions options_;
  const uint64_t id_;  // process-unique, never reused: names this path in ThreadHotFd()
  // Moved whenever a thread's remembered Session or fd may no longer be used.
  std::atomic<uint64_t> serial_{0};

  // The members below are written on slow paths or on every call: kept off the cache
  // line that every call reads (id_, serial_, options_).
  alignas(64) mutable absl::Mutex mu_;
  // The current Session, null while on RPC. Stored only with mu_ held (so the probe
  // state below stays consistent with it); loaded without it by every data call.
  std::atomic<std::shared_ptr<Session>> session_;
  bool probing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time next_probe_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::string last_failure_ ABSL_GUARDED_BY(mu_) = "not probed";

  std::atomic<uint64_t> handshakes_{0};
  // Added to by every local READ and WRITE, from any thread: per-thread cache lines.
  enum IoCount { kReads, kReadBytes, kWrites, kWriteBytes, kIoCounts };
  ShardedCounters<kIoCounts> io_counts_;
  alignas(64) std::atomic<uint64_t> commits_{0}, opens_{0}, fallbacks_{0};
};

}  // namespace localnfs::client
