// client_localio/client.h — the public API of the localnfs client library: an NFSv3 +
// MOUNT v3 client over TCP, with a pluggable data path for READ / WRITE / COMMIT.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Nfs3Client> c,
//                    Nfs3Client::Mount("127.0.0.1", 2049, 20048, "/srv/x", {}));
//   Credentials me{.uid = getuid(), .gid = getgid()};
//   ASSIGN_OR_RETURN(Entry f, c->Create(c->root(), "a", CreateMode::kGuarded, 0644, me));
//   RETURN_IF_ERROR(c->Write(f.handle, 0, data, me).status());   // UNSTABLE
//   RETURN_IF_ERROR(c->Commit(f.handle, me).status());           // now stable
//
// Owns: the MOUNT exchange (MNT at Mount(), UMNT when the client is destroyed), a small
// pool of TCP connections to the NFS port (one rpc::Client each), the data path (an
// RpcDataPath by default, or a wrapper installed with SetDataPath()), and the
// bookkeeping of written-but-uncommitted data per file.
//
// Data safety (the NFSv3 contract, RFC 1813 §3.3.7 and §3.3.21): Write() sends UNSTABLE
// writes and keeps a copy of every byte until a COMMIT covers it with the same write
// verifier the WRITE replies carried. If COMMIT returns another verifier the server
// restarted and may have lost them: the client resends those ranges and commits again,
// so nothing a caller saw acknowledged as stable (Commit() returning OK, or a FILE_SYNC
// write) is ever lost. The copy is bounded: past MountOptions::max_uncommitted_bytes per
// file, Write() commits by itself (from half of it on without stopping other writers).
//
// Reconnection (hard-mount semantics): when a connection drops (server restart on the
// same ports) or a call times out, the call is retried on a fresh connection until it
// succeeds or MountOptions::retry_timeout has passed (then kUnavailable /
// kDeadlineExceeded). A retried non-idempotent call may report the outcome of its own
// first attempt (e.g. REMOVE → NFS3ERR_NOENT), exactly as NFS over TCP does.
//
// Errors: an NFS error (nfsstat3 != NFS3_OK) becomes a non-OK Status that carries the
// nfsstat3 (NfsStatusOf()); its message names the procedure and the status
// ("LOOKUP: NFS3ERR_NOENT"). ErrnoOf() is the one mapping from any Status of this library
// to an errno, for FUSE replies.
//
// Thread-safety: every method of Nfs3Client may be called concurrently from any thread
// (calls spread over the connection pool), except SetDataPath(), which must happen
// before concurrent use. Returned values are plain values owned by the caller.
#pragma once

#include <stdint.h>

#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rpc/rpc.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/credentials.h"
#include "rpc/protocol_names.h"

namespace localnfs::client {

using ::localnfs::Credentials;

// An NFSv3 file handle: opaque bytes (at most 64).
struct FileHandle {
  std::string bytes;
  friend bool operator==(const FileHandle&, const FileHandle&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const FileHandle& fh) {
    return H::combine(std::move(h), fh.bytes);
  }
};

// The write verifier of WRITE and COMMIT replies (8 bytes).
using WriteVerifier = std::array<uint8_t, 8>;

enum class FileType : uint32_t {
  kRegular = 1,
  kDirectory = 2,
  kBlock = 3,
  kCharacter = 4,
  kSymlink = 5,
  kSocket = 6,
  kFifo = 7,
};

struct Timespec {
  int64_t seconds = 0;
  uint32_t nanoseconds = 0;
  friend bool operator==(const Timespec&, const Timespec&) = default;
};

// fattr3 as a value.
struct Attributes {
  FileType type = FileType::kRegular;
  uint32_t mode = 0;  // permission bits only (07777)
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint64_t used = 0;
  uint32_t rdev_major = 0;
  uint32_t rdev_minor = 0;
  uint64_t fsid = 0;
  uint64_t fileid = 0;
  Timespec atime, mtime, ctime;
};

// sattr3: only the fields that hold a value are set. Client times outside nfstime3's
// range (unsigned 32-bit seconds) are sent clamped to 0 or 4294967295 with 0 ns, as the
// kernel NFSv3 client clamps them.
enum class TimeHow { kDontChange, kServerTime, kClientTime };
struct SetAttributes {
  std::optional<uint32_t> mode;
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<uint64_t> size;
  TimeHow atime_how = TimeHow::kDontChange;
  Timespec atime;  // kClientTime only
  TimeHow mtime_how = TimeHow::kDontChange;
  Timespec mtime;  // kClientTime only
};

// A name resolved in a directory: LOOKUP, CREATE, MKDIR, SYMLINK, MKNOD.
struct Entry {
  FileHandle handle;
  Attributes attributes;
};

// One READDIRPLUS entry. The server may omit handle and attributes.
struct DirEntry {
  std::string name;
  uint64_t fileid = 0;
  uint64_t cookie = 0;
  std::optional<FileHandle> handle;
  std::optional<Attributes> attributes;
};

enum class StableHow : uint32_t { kUnstable = 0, kDataSync = 1, kFileSync = 2 };
enum class CreateMode : uint32_t { kUnchecked = 0, kGuarded = 1, kExclusive = 2 };

struct ReadResult {
  std::string data;
  bool eof = false;
  std::optional<Attributes> attributes;
};
// ReadInto(): the bytes went into the caller's buffer; `count` says how many.
struct ReadIntoResult {
  uint32_t count = 0;
  bool eof = false;
  std::optional<Attributes> attributes;
};
struct WriteResult {
  uint32_t count = 0;
  StableHow committed = StableHow::kUnstable;
  WriteVerifier verifier{};
  std::optional<Attributes> attributes;  // post-op, when the server sent them
};
struct CommitResult {
  WriteVerifier verifier{};
};

struct FsStat {
  uint64_t total_bytes = 0, free_bytes = 0, avail_bytes = 0;
  uint64_t total_files = 0, free_files = 0, avail_files = 0;
};
struct FsInfo {
  uint32_t rtmax = 0, rtpref = 0, wtmax = 0, wtpref = 0, dtpref = 0;
  uint64_t max_file_size = 0;
  uint32_t properties = 0;
};

// ACCESS3 bits (RFC 1813 §3.3.4).
inline constexpr uint32_t kAccessRead = 0x01;
inline constexpr uint32_t kAccessLookup = 0x02;
inline constexpr uint32_t kAccessModify = 0x04;
inline constexpr uint32_t kAccessExtend = 0x08;
inline constexpr uint32_t kAccessDelete = 0x10;
inline constexpr uint32_t kAccessExecute = 0x20;

// ---- errors ----

// A Status for the NFS error `nfsstat` (an nfsstat3 value) of procedure `proc`, carrying
// the nfsstat3 as a payload.
absl::Status NfsError(uint32_t nfsstat, std::string_view proc);
// The nfsstat3 carried by a Status made by NfsError, if any.
std::optional<uint32_t> NfsStatusOf(const absl::Status& status);
// "NFS3ERR_NOENT" / "MNT3ERR_ACCES" (rpc/protocol_names.h).
using rpc::MountStatusName;
using rpc::NfsStatusName;
// The errno to report for `status` (0 for OK): the nfsstat3 → errno table for NFS
// errors (NOENT → ENOENT, STALE → ESTALE, JUKEBOX → EAGAIN, …), otherwise the errno
// common/status.h carries or derives (transport failures → EIO-like values).
int ErrnoOf(const absl::Status& status);

// ---- the data path: the seam for LOCALIO ----

// Data-path counters: what went over RPC and what was done locally.
struct IoCounters {
  uint64_t rpc_reads = 0, rpc_read_bytes = 0;
  uint64_t rpc_writes = 0, rpc_write_bytes = 0;
  uint64_t rpc_commits = 0;
  uint64_t local_reads = 0, local_read_bytes = 0;
  uint64_t local_writes = 0, local_write_bytes = 0;
  uint64_t local_commits = 0;
  // LOCALIO: fds obtained by OPEN_LOCAL_FH, and data calls that were meant to be local
  // but went over RPC (generation changed, fd error, open refused).
  uint64_t local_opens = 0;
  uint64_t local_fallbacks = 0;
};
// "rpc_reads 3\nrpc_read_bytes 12288\n…" — one "name value" line per counter.
std::string FormatCounters(const IoCounters& counters);

// READ, WRITE and COMMIT on a file handle. Implementations are thread-safe; results are
// values owned by the caller. Write() may write fewer bytes than given (count says how
// many); callers loop. Errors follow the conventions above (NfsError for nfsstat3).
class DataPath {
 public:
  virtual ~DataPath() = default;
  virtual absl::StatusOr<ReadResult> Read(const FileHandle& fh, uint64_t offset,
                                          uint32_t count, const Credentials& cred) = 0;
  // As Read(), of at most buffer.size() bytes, into `buffer`. A path that reads in
  // place (LOCALIO: pread) overrides it to save Read()'s allocation and copy; this
  // default calls Read() and copies.
  virtual absl::StatusOr<ReadIntoResult> ReadInto(const FileHandle& fh, uint64_t offset,
                                                  absl::Span<char> buffer,
                                                  const Credentials& cred);
  virtual absl::StatusOr<WriteResult> Write(const FileHandle& fh, uint64_t offset,
                                            std::string_view data, StableHow stable,
                                            const Credentials& cred) = 0;
  virtual absl::StatusOr<CommitResult> Commit(const FileHandle& fh, uint64_t offset,
                                              uint32_t count, const Credentials& cred) = 0;
  // A snapshot of this path's counters (a wrapper adds those of what it wraps).
  virtual IoCounters Counters() const = 0;
  // `fh` was removed on the server: drop whatever this path keeps open of it (LOCALIO
  // caches fds of the server's files), so that its space is freed. Calls still using
  // such an fd finish first.
  virtual void ForgetFile(const FileHandle& fh) {}
};

class RpcPool;  // client_localio/rpc_pool.h

// The default data path: READ / WRITE / COMMIT as NFSv3 RPCs on the client's pool.
// Counters are atomics, so Counters() never blocks I/O.
class RpcDataPath final : public DataPath {
 public:
  explicit RpcDataPath(RpcPool* pool) : pool_(pool) {}  // `pool` must outlive this
  absl::StatusOr<ReadResult> Read(const FileHandle& fh, uint64_t offset, uint32_t count,
                                  const Credentials& cred) override;
  // Decodes the READ reply and copies its data into `buffer` (as many copies as Read()).
  absl::StatusOr<ReadIntoResult> ReadInto(const FileHandle& fh, uint64_t offset,
                                          absl::Span<char> buffer,
                                          const Credentials& cred) override;
  absl::StatusOr<WriteResult> Write(const FileHandle& fh, uint64_t offset,
                                    std::string_view data, StableHow stable,
                                    const Credentials& cred) override;
  absl::StatusOr<CommitResult> Commit(const FileHandle& fh, uint64_t offset, uint32_t count,
                                      const Credentials& cred) override;
  IoCounters Counters() const override;

 private:
  RpcPool* const pool_;
  std::atomic<uint64_t> reads_{0}, read_bytes_{0}, writes_{0}, write_bytes_{0},
      commits_{0};
};

// ---- the client ----

struct MountOptions {
  // Connections to the NFS port; calls are spread over them.
  int connections = 4;
  // Deadline of one RPC attempt.
  absl::Duration call_timeout = absl::Seconds(60);
  // Hard mount: how long a call keeps retrying across reconnects before it fails.
  absl::Duration retry_timeout = absl::Seconds(120);
  // Connecting (MNT and the first NFS connection) must succeed within this.
  absl::Duration connect_timeout = absl::Seconds(10);
  // Above this many uncommitted bytes in one file, Write() commits by itself, and
  // waits for it; above half of it, one writer commits what is written so far while
  // the others go on.
  uint64_t max_uncommitted_bytes = uint64_t{64} << 20;
  // Credentials of MNT / UMNT and of the FSINFO probe at mount.
  Credentials mount_credentials{.uid = 0, .gid = 0, .groups = {}};
};

class UnstableWrites;  // client_localio/unstable_writes.h
class FileWrites;

class Nfs3Client {
 public:
  // MNT `export_path` at host:mount_port, connect to host:nfs_port and read FSINFO.
  // A refused MNT yields a Status whose message is the mountstat3 name
  // ("MNT3ERR_ACCES"); an unreachable server a kUnavailable / kDeadlineExceeded one.
  static absl::StatusOr<std::unique_ptr<Nfs3Client>> Mount(const std::string& host,
                                                           uint16_t nfs_port,
                                                           uint16_t mount_port,
                                                           const std::string& export_path,
                                                           const MountOptions& options);
  // Sends UMNT (best effort, short timeout). Uncommitted data is NOT committed: callers
  // that need it stable call Commit() first.
  ~Nfs3Client();
  Nfs3Client(const Nfs3Client&) = delete;
  Nfs3Client& operator=(const Nfs3Client&) = delete;

  const FileHandle& root() const { return root_; }
  const FsInfo& fsinfo() const { return fsinfo_; }
  const std::string& export_path() const { return export_path_; }

  // Metadata procedures (each one RPC, retried across reconnects).
  absl::StatusOr<Attributes> GetAttr(const FileHandle& fh, const Credentials& cred);
  // A size change first commits pending writes of the file, so that a later resend can
  // never resurrect data beyond the new size. Returns the post-op attributes.
  absl::StatusOr<Attributes> SetAttr(const FileHandle& fh, const SetAttributes& attrs,
                                     const Credentials& cred);
  absl::StatusOr<Entry> Lookup(const FileHandle& dir, std::string_view name,
                               const Credentials& cred);
  // Returns the granted subset of `access` (kAccess* bits).
  absl::StatusOr<uint32_t> Access(const FileHandle& fh, uint32_t access,
                                  const Credentials& cred);
  absl::StatusOr<std::string> ReadLink(const FileHandle& fh, const Credentials& cred);
  // kExclusive ignores `mode` (the server sets no attributes) and uses `verifier`.
  absl::StatusOr<Entry> Create(const FileHandle& dir, std::string_view name,
                               CreateMode how, uint32_t mode, const Credentials& cred,
                               uint64_t verifier = 0);
  absl::StatusOr<Entry> Mkdir(const FileHandle& dir, std::string_view name, uint32_t mode,
                              const Credentials& cred);
  absl::StatusOr<Entry> Symlink(const FileHandle& dir, std::string_view name,
                                std::string_view target, const Credentials& cred);
  // `type`: kFifo, kSocket, kCharacter or kBlock (major/minor for the last two).
  absl::StatusOr<Entry> Mknod(const FileHandle& dir, std::string_view name, FileType type,
                              uint32_t mode, uint32_t major, uint32_t minor,
                              const Credentials& cred);
  absl::Status Remove(const FileHandle& dir, std::string_view name, const Credentials& cred);
  absl::Status Rmdir(const FileHandle& dir, std::string_view name, const Credentials& cred);
  absl::Status Rename(const FileHandle& from_dir, std::string_view from_name,
                      const FileHandle& to_dir, std::string_view to_name,
                      const Credentials& cred);
  // Returns the attributes of the file after the link (new nlink).
  absl::StatusOr<Attributes> Link(const FileHandle& fh, const FileHandle& dir,
                                  std::string_view name, const Credentials& cred);
  // Every entry of the directory ("." and ".." included if the server lists them),
  // following cookies until EOF.
  absl::StatusOr<std::vector<DirEntry>> ReadDirPlus(const FileHandle& dir,
                                                    const Credentials& cred);
  absl::StatusOr<FsStat> FsStatus(const FileHandle& fh, const Credentials& cred);
  absl::StatusOr<FsInfo> FsInformation(const FileHandle& fh, const Credentials& cred);

  // Data procedures, through the data path. Read() returns at most `count` bytes (split
  // into rtmax-sized READs; short only at EOF).
  absl::StatusOr<ReadResult> Read(const FileHandle& fh, uint64_t offset, uint32_t count,
                                  const Credentials& cred);
  // As Read(), into the caller's buffer (up to buffer.size() bytes, short only at EOF):
  // no allocation, and with LOCALIO no copy beyond the pread itself.
  absl::StatusOr<ReadIntoResult> ReadInto(const FileHandle& fh, uint64_t offset,
                                          absl::Span<char> buffer, const Credentials& cred);
  // Writes all of `data` (split into wtmax-sized WRITEs). kUnstable keeps the bytes
  // for COMMIT (see "Data safety"); kFileSync/kDataSync are stable when this returns.
  absl::StatusOr<WriteResult> Write(const FileHandle& fh, uint64_t offset,
                                    std::string_view data, const Credentials& cred,
                                    StableHow stable = StableHow::kUnstable);
  // Makes every earlier write to `fh` stable: COMMIT, and on a verifier change resend
  // and commit again. With nothing pending it still sends a COMMIT (fsync semantics).
  absl::StatusOr<CommitResult> Commit(const FileHandle& fh, const Credentials& cred);
  // True if `fh` has written-but-uncommitted data.
  bool HasUncommitted(const FileHandle& fh) const;
  // Forgets pending data of `fh` (the file was removed and the handle is stale).
  void DropUncommitted(const FileHandle& fh);

  // How many times the client had to resend uncommitted data after a verifier change.
  uint64_t resends() const { return resends_.load(std::memory_order_relaxed); }
  // COMMITs sent past half of max_uncommitted_bytes while writers went on.
  uint64_t early_commits() const { return early_commits_.load(std::memory_order_relaxed); }
  // Bumped after every reconnect of any connection (a new server instance may be
  // behind it): the LOCALIO path re-probes when it changes.
  uint64_t connection_epoch() const;

  // The data path and its counters.
  DataPath& data_path() { return *data_path_; }
  RpcDataPath& rpc_data_path() { return *rpc_data_path_; }
  IoCounters Counters() const { return data_path_->Counters(); }
  // Installs a data path that wraps rpc_data_path() (e.g. LOCALIO). Not thread-safe:
  // call before the client is used concurrently.
  void SetDataPath(std::unique_ptr<DataPath> path);

  // Any other RPC on the NFS connection pool, e.g. the LOCALIO program's UUID_IS_LOCAL:
  // retried across reconnects like the typed calls. `result` is decoded with
  // `decode_result`; the caller frees it with xdr_free.
  absl::Status CallNfsConnection(uint32_t prog, uint32_t vers, uint32_t proc,
                                 xdrproc_t encode_args, const void* args,
                                 xdrproc_t decode_result, void* result,
                                 const Credentials& cred);

 private:
  Nfs3Client(std::unique_ptr<RpcPool> pool, FileHandle root, std::string host,
             uint16_t mount_port, std::string export_path, MountOptions options);
  absl::Status ResendAndCommit(const FileHandle& fh, const Credentials& cred);
  // Past half of max_uncommitted_bytes: commits what was written so far without
  // stopping the other writers of the file (unstable_writes.h, "early commit").
  void CommitEarly(const FileHandle& fh, const std::shared_ptr<FileWrites>& state,
                   const Credentials& cred);

  const std::unique_ptr<RpcPool> pool_;
  const FileHandle root_;
  const std::string host_;
  const uint16_t mount_port_;
  const std::string export_path_;
  const MountOptions options_;
  FsInfo fsinfo_;
  std::unique_ptr<RpcDataPath> rpc_data_path_;
  std::unique_ptr<DataPath> wrapper_path_;  // when SetDataPath() installed one
  DataPath* data_path_;                     // rpc_data_path_ or wrapper_path_
  std::unique_ptr<UnstableWrites> unstable_;
  std::atomic<uint64_t> resends_{0};
  std::atomic<uint64_t> early_commits_{0};
};

}  // namespace localnfs::client
