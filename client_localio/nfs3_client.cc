// client_localio/nfs3_client.cc — Nfs3Client and RpcDataPath: NFSv3 procedures as typed
// calls over the RpcPool, conversion between rpcgen structs and the value types of
// client.h, the nfsstat3 error mapping, and the COMMIT/resend protocol.
#include <errno.h>
#include <string.h>

#include <algorithm>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client_localio/client.h"
#include "client_localio/rpc_pool.h"
#include "client_localio/unstable_writes.h"
#include "common/log.h"
#include "common/status.h"
#include "rpc/client.h"
#include "rpc/mount3.h"
#include "rpc/nfs3.h"

namespace localnfs::client {
namespace {

// Through void(*)() because rpcgen/tirpc declare some routines without a prototype.
#define LOCALNFS_XDRPROC(f) reinterpret_cast<xdrproc_t>(reinterpret_cast<void (*)()>(f))

constexpr char kNfsStatPayload[] = "type.localnfs/client.nfsstat3";
// Rounds a commit may take before giving up: each round means the server restarted
// (changed its verifier) again while we were resending.
constexpr int kMaxCommitRounds = 8;
constexpr uint32_t kDefaultTransferSize = 1u << 20;

// ---- rpcgen struct helpers ----

// A decoded reply that frees what XDR allocated when it goes out of scope.
template <typename Res>
struct XdrReply {
  explicit XdrReply(xdrproc_t p) : proc(p) { std::memset(&res, 0, sizeof(res)); }
  ~XdrReply() { Free(); }
  XdrReply(const XdrReply&) = delete;
  XdrReply& operator=(const XdrReply&) = delete;
  void Free() {
    if (decoded) xdr_free(proc, reinterpret_cast<char*>(&res));
    decoded = false;
    std::memset(&res, 0, sizeof(res));
  }
  Res res;
  xdrproc_t proc;
  bool decoded = false;
};

// One NFSv3 call. NFS3ERR_JUKEBOX ("try again later") is retried within the pool's
// retry budget, as the kernel client does. The reply's status is left in reply->res.
template <typename Res>
absl::Status NfsCall(RpcPool* pool, uint32_t proc, xdrproc_t encode, const void* args,
                     XdrReply<Res>* reply, const Credentials& cred) {
  absl::Duration delay = absl::Milliseconds(50);
  for (int attempt = 0;; ++attempt) {
    reply->Free();
    RETURN_IF_ERROR(pool->Call(NFS_PROGRAM, NFS_V3, proc, encode, args, reply->proc,
                               &reply->res, cred));
    reply->decoded = true;
    // Every NFSv3 result union starts with its nfsstat3.
    if (reply->res.status != NFS3ERR_JUKEBOX || attempt >= 100) return absl::OkStatus();
    absl::SleepFor(delay);
    delay = std::min(delay * 2, absl::Seconds(1));
  }
}

nfs_fh3 ToFh(const FileHandle& fh) {
  nfs_fh3 out{};
  out.data.data_len = static_cast<u_int>(fh.bytes.size());
  // XDR_ENCODE does not write through the pointer.
  out.data.data_val = const_cast<char*>(fh.bytes.data());
  return out;
}

FileHandle FromFh(const nfs_fh3& fh) {
  return FileHandle{std::string(fh.data.data_val, fh.data.data_len)};
}

diropargs3 ToDirop(const FileHandle& dir, const std::string& name) {
  diropargs3 out{};
  out.dir = ToFh(dir);
  out.name.filename3_len = static_cast<u_int>(name.size());
  out.name.filename3_val = const_cast<char*>(name.data());
  return out;
}

Attributes FromFattr(const fattr3& a) {
  Attributes out;
  out.type = static_cast<FileType>(a.type);
  out.mode = a.mode & 07777;
  out.nlink = a.nlink;
  out.uid = a.uid;
  out.gid = a.gid;
  out.size = a.size;
  out.used = a.used;
  out.rdev_major = a.rdev.specdata1;
  out.rdev_minor = a.rdev.specdata2;
  out.fsid = a.fsid;
  out.fileid = a.fileid;
  out.atime = {a.atime.seconds, a.atime.nseconds};
  out.mtime = {a.mtime.seconds, a.mtime.nseconds};
  out.ctime = {a.ctime.seconds, a.ctime.nseconds};
  return out;
}

std::optional<Attributes> FromPostOp(const post_op_attr& a) {
  if (!a.attributes_follow) return std::nullopt;
  return FromFattr(a.post_op_attr_u.attributes);
}

// nfstime3 seconds are unsigned 32-bit. A time outside [0, 2^32 - 1] is clamped to the
// nearer bound with nanoseconds 0, as the kernel NFSv3 client does (its superblock's
// s_time_min 0 and s_time_max U32_MAX, applied by timestamp_truncate() in the VFS):
// year 2200 becomes 2106-02-07, 1960 becomes 1970 — never a wrap to another date.
nfstime3 ToTime(const Timespec& t) {
  constexpr int64_t kMax = UINT32_MAX;
  if (t.seconds <= 0) return nfstime3{0, 0};
  if (t.seconds >= kMax) return nfstime3{static_cast<uint32>(kMax), 0};
  return nfstime3{static_cast<uint32>(t.seconds), t.nanoseconds};
}

time_how ToHow(TimeHow h) {
  switch (h) {
    case TimeHow::kServerTime:
      return SET_TO_SERVER_TIME;
    case TimeHow::kClientTime:
      return SET_TO_CLIENT_TIME;
    case TimeHow::kDontChange:
      break;
  }
  return DONT_CHANGE;
}

sattr3 ToSattr(const SetAttributes& s) {
  sattr3 out{};
  if (s.mode) {
    out.mode.set_it = TRUE;
    out.mode.set_mode3_u.mode = *s.mode & 07777;
  }
  if (s.uid) {
    out.uid.set_it = TRUE;
    out.uid.set_uid3_u.uid = *s.uid;
  }
  if (s.gid) {
    out.gid.set_it = TRUE;
    out.gid.set_gid3_u.gid = *s.gid;
  }
  if (s.size) {
    out.size.set_it = TRUE;
    out.size.set_size3_u.size = *s.size;
  }
  out.atime.set_it = ToHow(s.atime_how);
  if (s.atime_how == TimeHow::kClientTime) out.atime.set_atime_u.atime = ToTime(s.atime);
  out.mtime.set_it = ToHow(s.mtime_how);
  if (s.mtime_how == TimeHow::kClientTime) out.mtime.set_mtime_u.mtime = ToTime(s.mtime);
  return out;
}

sattr3 ModeOnly(uint32_t mode) {
  SetAttributes s;
  s.mode = mode;
  return ToSattr(s);
}

WriteVerifier ToVerifier(const char (&v)[NFS3_WRITEVERFSIZE]) {
  WriteVerifier out;
  std::memcpy(out.data(), v, out.size());
  return out;
}

std::string VerifierHex(const WriteVerifier& v) {
  std::string out;
  for (uint8_t b : v) absl::StrAppendFormat(&out, "%02x", b);
  return out;
}

int NfsStatToErrno(uint32_t s) {
  switch (s) {
    case NFS3_OK: return 0;
    case NFS3ERR_PERM: return EPERM;
    case NFS3ERR_NOENT: return ENOENT;
    case NFS3ERR_IO: return EIO;
    case NFS3ERR_NXIO: return ENXIO;
    case NFS3ERR_ACCES: return EACCES;
    case NFS3ERR_EXIST: return EEXIST;
    case NFS3ERR_XDEV: return EXDEV;
    case NFS3ERR_NODEV: return ENODEV;
    case NFS3ERR_NOTDIR: return ENOTDIR;
    case NFS3ERR_ISDIR: return EISDIR;
    case NFS3ERR_INVAL: return EINVAL;
    case NFS3ERR_FBIG: return EFBIG;
    case NFS3ERR_NOSPC: return ENOSPC;
    case NFS3ERR_ROFS: return EROFS;
    case NFS3ERR_MLINK: return EMLINK;
    case NFS3ERR_NAMETOOLONG: return ENAMETOOLONG;
    case NFS3ERR_NOTEMPTY: return ENOTEMPTY;
    case NFS3ERR_DQUOT: return EDQUOT;
    case NFS3ERR_STALE: return ESTALE;
    case NFS3ERR_REMOTE: return EREMOTE;
    // The kernel's EBADHANDLE / EBADCOOKIE / ETOOSMALL / EBADTYPE are kernel-internal
    // errnos; userspace sees their nearest POSIX meaning.
    case NFS3ERR_BADHANDLE: return ESTALE;
    case NFS3ERR_NOT_SYNC: return EIO;
    case NFS3ERR_BAD_COOKIE: return EINVAL;
    case NFS3ERR_NOTSUPP: return EOPNOTSUPP;
    case NFS3ERR_TOOSMALL: return EINVAL;
    case NFS3ERR_SERVERFAULT: return EREMOTEIO;
    case NFS3ERR_BADTYPE: return EINVAL;
    case NFS3ERR_JUKEBOX: return EAGAIN;
    default: return EIO;
  }
}

// An NFS error result of `proc` as a Status, OK for NFS3_OK.
absl::Status Check(uint32_t status, std::string_view proc) {
  if (status == NFS3_OK) return absl::OkStatus();
  return NfsError(status, proc);
}

}  // namespace

// ---- errors ----

absl::Status NfsError(uint32_t nfsstat, std::string_view proc) {
  // The code follows the errno (NOENT → kNotFound, …) so generic callers can test it.
  const absl::Status by_errno = ErrnoToStatus(NfsStatToErrno(nfsstat), proc);
  absl::Status s(by_errno.code(), absl::StrCat(absl::string_view(proc.data(), proc.size()),
                                               ": ", NfsStatusName(nfsstat)));
  s.SetPayload(kNfsStatPayload, absl::Cord(absl::StrCat(nfsstat)));
  return s;
}

std::optional<uint32_t> NfsStatusOf(const absl::Status& status) {
  absl::optional<absl::Cord> p = status.GetPayload(kNfsStatPayload);
  uint32_t v = 0;
  if (!p.has_value() || !absl::SimpleAtoi(std::string(*p), &v)) return std::nullopt;
  return v;
}

int ErrnoOf(const absl::Status& status) {
  if (status.ok()) return 0;
  if (std::optional<uint32_t> s = NfsStatusOf(status)) return NfsStatToErrno(*s);
  // A hard mount that ran out of retries: the kernel reports EIO for that too.
  if (IsTransportError(status)) return EIO;
  const int e = StatusErrno(status);
  return e != 0 ? e : EIO;
}

std::string FormatCounters(const IoCounters& c) {
  return absl::StrFormat(
      "rpc_reads %d\nrpc_read_bytes %d\nrpc_writes %d\nrpc_write_bytes %d\n"
      "rpc_commits %d\nlocal_reads %d\nlocal_read_bytes %d\nlocal_writes %d\n"
      "local_write_bytes %d\nlocal_commits %d\nlocal_opens %d\nlocal_fallbacks %d\n",
      c.rpc_reads, c.rpc_read_bytes, c.rpc_writes, c.rpc_write_bytes, c.rpc_commits,
      c.local_reads, c.local_read_bytes, c.local_writes, c.local_write_bytes,
      c.local_commits, c.local_opens, c.local_fallbacks);
}

// ---- DataPath ----

absl::StatusOr<ReadIntoResult> DataPath::ReadInto(const FileHandle& fh, uint64_t offset,
                                                  absl::Span<char> buffer,
                                                  const Credentials& cred) {
  ASSIGN_OR_RETURN(ReadResult r, Read(fh, offset, static_cast<uint32_t>(buffer.size()), cred));
  const size_t n = std::min(r.data.size(), buffer.size());
  std::copy_n(r.data.data(), n, buffer.data());
  return ReadIntoResult{static_cast<uint32_t>(n), r.eof, std::move(r.attributes)};
}

// ---- RpcDataPath ----

namespace {

// One READ over RPC; `take` gets the decoded reply before its memory is freed.
absl::Status RpcRead(RpcPool* pool, const FileHandle& fh, uint64_t offset, uint32_t count,
                     const Credentials& cred, absl::FunctionRef<void(const READ3resok&)> take) {
  READ3args args{};
  args.file = ToFh(fh);
  args.offset = offset;
  args.count = count;
  XdrReply<READ3res> r(LOCALNFS_XDRPROC(xdr_READ3res));
  RETURN_IF_ERROR(NfsCall(pool, NFSPROC3_READ, LOCALNFS_XDRPROC(xdr_READ3args), &args, &r,
                          cred));
  RETURN_IF_ERROR(Check(r.res.status, "READ"));
  take(r.res.READ3res_u.resok);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ReadResult> RpcDataPath::Read(const FileHandle& fh, uint64_t offset,
                                             uint32_t count, const Credentials& cred) {
  ReadResult out;
  RETURN_IF_ERROR(RpcRead(pool_, fh, offset, count, cred, [&](const READ3resok& ok) {
    out.data.assign(ok.data.data_val, std::min<size_t>(ok.data.data_len, count));
    out.eof = ok.eof;
    out.attributes = FromPostOp(ok.file_attributes);
  }));
  reads_.fetch_add(1, std::memory_order_relaxed);
  read_bytes_.fetch_add(out.data.size(), std::memory_order_relaxed);
  return out;
}

absl::StatusOr<ReadIntoResult> RpcDataPath::ReadInto(const FileHandle& fh, uint64_t offset,
                                                     absl::Span<char> buffer,
                                                     const Credentials& cred) {
  ReadIntoResult out;
  RETURN_IF_ERROR(RpcRead(pool_, fh, offset, static_cast<uint32_t>(buffer.size()), cred,
                          [&](const READ3resok& ok) {
                            const size_t n = std::min<size_t>(ok.data.data_len, buffer.size());
                            std::copy_n(ok.data.data_val, n, buffer.data());
                            out.count = static_cast<uint32_t>(n);
                            out.eof = ok.eof;
                            out.attributes = FromPostOp(ok.file_attributes);
                          }));
  reads_.fetch_add(1, std::memory_order_relaxed);
  read_bytes_.fetch_add(out.count, std::memory_order_relaxed);
  return out;
}

absl::StatusOr<WriteResult> RpcDataPath::Write(const FileHandle& fh, uint64_t offset,
                                               std::string_view data, StableHow stable,
                                               const Credentials& cred) {
  WRITE3args args{};
  args.file = ToFh(fh);
  args.offset = offset;
  args.count = static_cast<count3>(data.size());
  args.stable = static_cast<stable_how>(stable);
  args.data.data_len = static_cast<u_int>(data.size());
  args.data.data_val = const_cast<char*>(data.data());
  XdrReply<WRITE3res> r(LOCALNFS_XDRPROC(xdr_WRITE3res));
  RETURN_IF_ERROR(NfsCall(pool_, NFSPROC3_WRITE, LOCALNFS_XDRPROC(xdr_WRITE3args), &args,
                          &r, cred));
  RETURN_IF_ERROR(Check(r.res.status, "WRITE"));
  const WRITE3resok& ok = r.res.WRITE3res_u.resok;
  WriteResult out;
  out.count = std::min<uint32_t>(ok.count, static_cast<uint32_t>(data.size()));
  out.committed = static_cast<StableHow>(ok.committed);
  out.verifier = ToVerifier(ok.verf);
  out.attributes = FromPostOp(ok.file_wcc.after);
  writes_.fetch_add(1, std::memory_order_relaxed);
  write_bytes_.fetch_add(out.count, std::memory_order_relaxed);
  return out;
}

absl::StatusOr<CommitResult> RpcDataPath::Commit(const FileHandle& fh, uint64_t offset,
                                                 uint32_t count, const Credentials& cred) {
  COMMIT3args args{};
  args.file = ToFh(fh);
  args.offset = offset;
  args.count = count;
  XdrReply<COMMIT3res> r(LOCALNFS_XDRPROC(xdr_COMMIT3res));
  RETURN_IF_ERROR(NfsCall(pool_, NFSPROC3_COMMIT, LOCALNFS_XDRPROC(xdr_COMMIT3args), &args,
                          &r, cred));
  RETURN_IF_ERROR(Check(r.res.status, "COMMIT"));
  commits_.fetch_add(1, std::memory_order_relaxed);
  return CommitResult{ToVerifier(r.res.COMMIT3res_u.resok.verf)};
}

IoCounters RpcDataPath::Counters() const {
  IoCounters c;
  c.rpc_reads = reads_.load(std::memory_order_relaxed);
  c.rpc_read_bytes = read_bytes_.load(std::memory_order_relaxed);
  c.rpc_writes = writes_.load(std::memory_order_relaxed);
  c.rpc_write_bytes = write_bytes_.load(std::memory_order_relaxed);
  c.rpc_commits = commits_.load(std::memory_order_relaxed);
  return c;
}

// ---- Nfs3Client: mount ----

absl::StatusOr<std::unique_ptr<Nfs3Client>> Nfs3Client::Mount(
    const std::string& host, uint16_t nfs_port, uint16_t mount_port,
    const std::string& export_path, const MountOptions& options) {
  FileHandle root;
  {
    ASSIGN_OR_RETURN(std::unique_ptr<rpc::Client> mnt,
                     rpc::Client::Connect(host, mount_port, options.connect_timeout));
    mnt->SetAuthSys(options.mount_credentials, "localnfs-client");
    dirpath path{static_cast<u_int>(export_path.size()), const_cast<char*>(export_path.data())};
    mountres3 res{};
    RETURN_IF_ERROR(mnt->Call(MOUNT_PROGRAM, MOUNT_V3, MOUNTPROC3_MNT,
                              LOCALNFS_XDRPROC(xdr_dirpath), &path,
                              LOCALNFS_XDRPROC(xdr_mountres3), &res, options.call_timeout));
    absl::Cleanup free_res = [&res] {
      xdr_free(LOCALNFS_XDRPROC(xdr_mountres3), reinterpret_cast<char*>(&res));
    };
    if (res.fhs_status != MNT3_OK) {
      const absl::Status by_errno = ErrnoToStatus(
          res.fhs_status == MNT3ERR_NOENT ? ENOENT : EACCES, "MNT");
      return absl::Status(by_errno.code(), MountStatusName(res.fhs_status));
    }
    const fhandle3& fh = res.mountres3_u.mountinfo.fhandle;
    root.bytes.assign(fh.fhandle3_val, fh.fhandle3_len);
  }
  RpcPoolOptions pool_options{.size = options.connections,
                              .call_timeout = options.call_timeout,
                              .retry_timeout = options.retry_timeout,
                              .connect_timeout = options.connect_timeout};
  ASSIGN_OR_RETURN(std::unique_ptr<RpcPool> pool,
                   RpcPool::Create(host, nfs_port, pool_options));
  std::unique_ptr<Nfs3Client> client(new Nfs3Client(std::move(pool), std::move(root), host,
                                                    mount_port, export_path, options));
  ASSIGN_OR_RETURN(client->fsinfo_,
                   client->FsInformation(client->root_, options.mount_credentials));
  return client;
}

Nfs3Client::Nfs3Client(std::unique_ptr<RpcPool> pool, FileHandle root, std::string host,
                       uint16_t mount_port, std::string export_path, MountOptions options)
    : pool_(std::move(pool)),
      root_(std::move(root)),
      host_(std::move(host)),
      mount_port_(mount_port),
      export_path_(std::move(export_path)),
      options_(std::move(options)),
      rpc_data_path_(std::make_unique<RpcDataPath>(pool_.get())),
      data_path_(rpc_data_path_.get()),
      unstable_(std::make_unique<UnstableWrites>(options_.max_uncommitted_bytes)) {}

Nfs3Client::~Nfs3Client() {
  // UMNT only tidies the server's mount list (RFC 1813: advisory); never block long.
  auto mnt = rpc::Client::Connect(host_, mount_port_, absl::Seconds(2));
  if (!mnt.ok()) return;
  (*mnt)->SetAuthSys(options_.mount_credentials, "localnfs-client");
  dirpath path{static_cast<u_int>(export_path_.size()), const_cast<char*>(export_path_.data())};
  (void)(*mnt)->Call(MOUNT_PROGRAM, MOUNT_V3, MOUNTPROC3_UMNT, LOCALNFS_XDRPROC(xdr_dirpath),
                     &path, LOCALNFS_XDRPROC(xdr_void), nullptr, absl::Seconds(2));
}

void Nfs3Client::SetDataPath(std::unique_ptr<DataPath> path) {
  wrapper_path_ = std::move(path);
  data_path_ = wrapper_path_ != nullptr ? wrapper_path_.get() : rpc_data_path_.get();
}

uint64_t Nfs3Client::connection_epoch() const { return pool_->epoch(); }

absl::Status Nfs3Client::CallNfsConnection(uint32_t prog, uint32_t vers, uint32_t proc,
                                           xdrproc_t encode_args, const void* args,
                                           xdrproc_t decode_result, void* result,
                                           const Credentials& cred) {
  return pool_->Call(prog, vers, proc, encode_args, args, decode_result, result, cred);
}

// ---- metadata ----

absl::StatusOr<Attributes> Nfs3Client::GetAttr(const FileHandle& fh, const Credentials& cred) {
  GETATTR3args args{};
  args.object = ToFh(fh);
  XdrReply<GETATTR3res> r(LOCALNFS_XDRPROC(xdr_GETATTR3res));
  RETURN_IF_ERROR(NfsCall(pool_.get(), NFSPROC3_GETATTR, LOCALNFS_XDRPROC(xdr_GETATTR3args),
                          &args, &r, cred));
  RETURN_IF_ERROR(Check(r.res.status, "GETATTR"));
  return FromFattr(r.res.GETATTR3res_u.resok.obj_attributes);
}

absl::StatusOr<Attributes> Nfs3Client::SetAttr(const FileHandle& fh,
                                               const SetAttributes& attrs,
                                               const Credentials& cred) {
  if (attrs.size.has_value() && HasUncommitted(fh)) RETURN_IF_ERROR(Commit(fh, cred).status());
  SETATTR3args args{};
  args.object = ToFh(fh);
  args.new_attributes = ToSattr(attrs);
  args.guard.check = FALSE;
  XdrReply<SETATTR3res> r(LOCALNFS_XDRPROC(xdr_SETATTR3res));
  RETURN_IF_ERROR(NfsCall(pool_.get(), NFSPROC3_SETATTR, LOCALNFS_XDRPROC(xdr_SETATTR3args),
                          &args, &r, cred));
  RETURN_IF_ERROR(Check(r.res.status, "SETATTR"));
  if (auto a = FromPostOp(r.res.SETATTR3res_u.resok.obj_wcc.after)) return *a;
  return GetAttr(fh, cred);
}

absl::StatusOr<Entry> Nfs3Client::Lookup(const FileHandle& dir, std::string_view name,
                                         const Credentials& cred) {
  const std::string n(name);
  LOOKUP3args args{};
  args.what = ToDirop(dir, n);
  XdrReply<LOOKUP3res> r(LOCALNFS_XDRPROC(xdr_LOOKUP3res));
  RETURN_IF_ERROR(NfsCall(pool_.get(), NFSPROC3_LOOKUP, LOCALNFS_XDRPROC(xdr_LOOKUP3args),
                          &args, &r, cred));
  RETURN_IF_ERROR(Check(r.res.status, "LOOKUP"));
  const LOOKUP3resok& ok = r.res.LOOKUP3res_u.resok;
  Entry e{FromFh(ok.object), {}};
  if (auto a = FromPostOp(ok.obj_attributes)) {
    e.attributes = *a;
    return e;
  }
  ASSIGN_OR_RETURN(e.attributes, GetAttr(e.handle, cred));
  return e;
}

absl::StatusOr<uint32_t> Nfs3Client::Access(const FileHandle& fh, uint32_t access,
                                            const Credentials& cred) {
  ACCESS3args args{};
  args.object = ToFh(fh);
  args.access = access;
  XdrReply<ACCESS3res> r(LOCALNFS_XDRPROC(xdr_ACCESS3res));
  RETURN_IF_ERROR(NfsCall(pool_.get(), NFSPROC3_ACCESS, LOCALNFS_XDRPROC(xdr_ACCESS3args),
                          &args, &r, cred));
  RETURN_IF_ERROR(Check(r.res.status, "ACCESS"));
  return r.res.ACCESS3res_u.resok.access & access;
}

absl::StatusOr<std::string> Nfs3Client::ReadLink(const FileHandle& fh,
                                                 const Credentials& cred) {
  READLINK3args args{};
  args.symlink = ToFh(fh);
  XdrReply<READLINK3res> r(LOCALNFS_XDRPROC(xdr_READLINK3res));
  RETURN_IF_ERROR(NfsCall(pool_.get(), NFSPROC3_READLINK,
                          LOCALNFS_XDRPROC(xdr_READLINK3args), &args, &r, cred));
  RETURN_IF_ERROR(Check(r.res.status, "READLINK"));
  const nfspath3& data = r.res.READLINK3res_u.resok.data;
  return std::string(data.nfspath3_val != nullptr ? data.nfspath3_val : "", data.nfspath3_len);
}

namespace {

// The new object of CREATE / MKDIR / SYMLINK / MKNOD: the server may omit handle or
// attributes (RFC 1813 post_op_fh3), then LOOKUP / GETATTR fill them in.
absl::StatusOr<Entry> NewEntry(Nfs3Client* c, const FileHandle& dir, const std::string& name,
                               const post_op_fh3& fh, const post_op_attr& attr,
                               const Credentials& cred) {
  if (!fh.handle_follows) return c->Lookup(dir, name, cred);
  Entry e{FromFh(fh.post_op_fh3_u.handle), {}};
  if (auto a = FromPostOp(attr)) {
    e.attributes = *a;
    return e;
  }
  ASSIGN_OR_RETURN(e.attributes, c->GetAttr(e.handle, cred));
  return e;
}

}  // namespace

absl::StatusOr<Entry> Nfs3Client::Create(const FileHandle& dir, std::string_view name,
                                         CreateMode how, uint32_t mode,
                                         const Credentials& cred, uint64_t verifier) {
  const std::string n(name);
  CREATE3args args{};
  args.where = ToDirop(dir, n);
  args.how.mode = static_cast<createmode3>(how);
  if (how == CreateMode::kExclusive) {
    std::memcpy(args.how.createhow3_u.verf, &verifier, sizeof(verifier));
  } else {
    args.how.createhow3_u.obj_attributes = ModeOnly(mode);
  }
  XdrReply<CREATE3res> r(LOCALNFS_XDRPROC(xdr_CREATE3res));
  RETURN_IF_ERROR(NfsCall(pool_.get(), NFSPROC3_CREATE, LOCALNFS_XDRPROC(xdr_CREATE3args),
                          &args, &r, cred));
  RETURN_IF_ERROR(Check(r.res.status, "CREATE"));
  const CREATE3resok& ok = r.res.CREATE3res_u.resok;
  ASSIGN_OR_RETURN(Entry e, NewEntry(this, dir, n, ok.obj, ok.obj_attributes, cred));
  if (how == CreateMode::kExclusive) {
    // RFC 1813: after an exclusive create the client sets the attributes itself (the
    // server may keep the verifier in atime/mtime).
    SetAttributes s;
    s.mode = mode;
    s.atime_how = TimeHow::kServerTime;
    s.mtime_how = TimeHow::kServerTime;
    ASSIGN_OR_RETURN(e.attributes, SetAttr(e.handle, s, cred));
  }
  return e;
}

absl::StatusOr<Entry> Nfs3Client::Mkdir(const FileHandle& dir, std::string_view name,
                                        uint32_t mode, const Credentials& cred) {
  const std::string n(name);
  MKDIR3args args{};
  args.where = ToDirop(dir, n);
  args.attributes = ModeOnly(mode);
  XdrReply<MKDIR3res> r(LOCALNFS_XDRPROC(xdr_MKDIR3res));
  RETURN_IF_ERROR(NfsCall(pool_.get(), NFSPROC3_MKDIR, LOCALNFS_XDRPROC(xdr_MKDIR3args),
                          &args, &r, cred));
  RETURN_IF_ERROR(Check(r.res.status, "MKDIR"));
  const MKDIR3resok& ok = r.res.MKDIR3res_u.resok;
  return NewEntry(this, dir, n, ok.obj, ok.obj_attributes, cred);
}

absl::StatusOr<Entry> Nfs3Client::Symlink(const FileHandle& dir, std::string_view name,
                                          std::string_view target, const Credentials& cred) {
  const std::string n(name), t(target);
  SYMLINK3args args{};
  args.where = ToDirop(dir, n);
  args.symlink.symlink_attributes = sattr3{};
  args.symlink.symlink_data = nfspath3{static_cast<u_int>(t.size()), const_cast<char*>(t.data())};
  XdrReply<SYMLINK3res> r(LOCALNFS_XDRPROC(xdr_SYMLINK3res));
  RETURN_IF_ERROR(NfsCall(pool_.get(), NFSPROC3_SYMLINK, LOCALNFS_XDRPROC(xdr_SYMLINK3args),
                          &args, &r, cred));
  RETURN_IF_ERROR(Check(r.res.status, "SYMLINK"));
  const SYMLINK3resok& ok = r.res.SYMLINK3res_u.resok;
  return NewEntry(this, dir, n, ok.obj, ok.obj_attributes, cred);
}

absl::StatusOr<Entry> Nfs3Client::Mknod(const FileHandle& dir, std::string_view name,
                                        FileType type, uint32_t mode, uint32_t major,
                                        uint32_t minor, const Credentials& cred) {
  const std::string n(name);
  MKNOD3args args{};
  args.where = ToDirop(dir, n);
  args.what.type = static_cast<ftype3>(type);
  switch (type) {
    case FileType::kCharacter:
    case FileType::kBlock:
      args.what.mknoddata3_u.device.dev_attributes = ModeOnly(mode);
      args.what.mknoddata3_u.device.spec = specdata3{major, minor};
      break;
    case FileType::kSocket:
    case FileType::kFifo:
      args.what.mknoddata3_u.pipe_attributes = ModeOnly(mode);
      break;
    default:
      return absl::InvalidArgumentError("MKNOD: not a special file type");
  }
  XdrReply<MKNOD3res> r(LOCALNFS_XDRPROC(xdr_MKNOD3res));
  RETURN_IF_ERROR(NfsCall(pool_.get(), NFSPROC3_MKNOD, LOCALNFS_XDRPROC(xdr_MKNOD3args),
                          &args, &r, cred));
  RETURN_IF_ERROR(Check(r.res.status, "MKNOD"));
  const MKNOD3resok& ok = r.res.MKNOD3res_u.resok;
  return NewEntry(this, dir, n, ok.obj, ok.obj_attributes, cred);
}

absl::Status Nfs3Client::Remove(const FileHandle& dir, std::string_view name,
                                const Credentials& cred) {
  const std::string n(name);
  REMOVE3args args{};
  args.object = ToDirop(dir, n);
  XdrReply<REMOVE3res> r(LOCALNFS_XDRPROC(xdr_REMOVE3res));
  RETURN_IF_ERROR(NfsCall(pool_.get(), NFSPROC3_REMOVE, LOCALNFS_XDRPROC(xdr_REMOVE3args),
                          &args, &r, cred));
  return Check(r.res.status, "REMOVE");
}

absl::Status Nfs3Client::Rmdir(const FileHandle& dir, std::string_view name,
                               const Credentials& cred) {
  const std::string n(name);
  RMDIR3args args{};
  args.object = ToDirop(dir, n);
  XdrReply<RMDIR3res> r(LOCALNFS_XDRPROC(xdr_RMDIR3res));
  RETURN_IF_ERROR(NfsCall(pool_.get(), NFSPROC3_RMDIR, LOCALNFS_XDRPROC(xdr_RMDIR3args),
                          &args, &r, cred));
  return Check(r.res.status, "RMDIR");
}

absl::Status Nfs3Client::Rename(const FileHandle& from_dir, std::string_view from_name,
                                const FileHandle& to_dir, std::string_view to_name,
                                const Credentials& cred) {
  const std::string f(from_name), t(to_name);
  RENAME3args args{};
  args.from = ToDirop(from_dir, f);
  args.to = ToDirop(to_dir, t);
  XdrReply<RENAME3res> r(LOCALNFS_XDRPROC(xdr_RENAME3res));
  RETURN_IF_ERROR(NfsCall(pool_.get(), NFSPROC3_RENAME, LOCALNFS_XDRPROC(xdr_RENAME3args),
                          &args, &r, cred));
  return Check(r.res.status, "RENAME");
}

absl::StatusOr<Attributes> Nfs3Client::Link(const FileHandle& fh, const FileHandle& dir,
                                            std::string_view name, const Credentials& cred) {
  const std::string n(name);
  LINK3args args{};
  args.file = ToFh(fh);
  args.link = ToDirop(dir, n);
  XdrReply<LINK3res> r(LOCALNFS_XDRPROC(xdr_LINK3res));
  RETURN_IF_ERROR(NfsCall(pool_.get(), NFSPROC3_LINK, LOCALNFS_XDRPROC(xdr_LINK3args), &args,
                          &r, cred));
  RETURN_IF_ERROR(Check(r.res.status, "LINK"));
  if (auto a = FromPostOp(r.res.LINK3res_u.resok.file_attributes)) return *a;
  return GetAttr(fh, cred);
}

absl::StatusOr<std::vector<DirEntry>> Nfs3Client::ReadDirPlus(const FileHandle& dir,
                                                              const Credentials& cred) {
  std::vector<DirEntry> out;
  READDIRPLUS3args args{};
  args.dir = ToFh(dir);
  args.cookie = 0;
  args.dircount = std::max<uint32_t>(fsinfo_.dtpref, 16 * 1024);
  args.maxcount = 256 * 1024;
  while (true) {
    XdrReply<READDIRPLUS3res> r(LOCALNFS_XDRPROC(xdr_READDIRPLUS3res));
    RETURN_IF_ERROR(NfsCall(pool_.get(), NFSPROC3_READDIRPLUS,
                            LOCALNFS_XDRPROC(xdr_READDIRPLUS3args), &args, &r, cred));
    RETURN_IF_ERROR(Check(r.res.status, "READDIRPLUS"));
    const READDIRPLUS3resok& ok = r.res.READDIRPLUS3res_u.resok;
    std::memcpy(args.cookieverf, ok.cookieverf, NFS3_COOKIEVERFSIZE);
    const size_t before = out.size();
    for (const entryplus3* e = ok.reply.entries; e != nullptr; e = e->nextentry) {
      DirEntry d;
      if (e->name.filename3_val != nullptr)
        d.name.assign(e->name.filename3_val, e->name.filename3_len);
      d.fileid = e->fileid;
      d.cookie = e->cookie;
      if (e->name_handle.handle_follows) d.handle = FromFh(e->name_handle.post_op_fh3_u.handle);
      d.attributes = FromPostOp(e->name_attributes);
      args.cookie = e->cookie;
      out.push_back(std::move(d));
    }
    if (ok.reply.eof) break;
    // Not at EOF but no entry fitted: our maxcount is too small for one entry.
    if (out.size() == before) {
      if (args.maxcount >= (8u << 20)) return NfsError(NFS3ERR_TOOSMALL, "READDIRPLUS");
      args.maxcount *= 2;
    }
  }
  return out;
}

absl::StatusOr<FsStat> Nfs3Client::FsStatus(const FileHandle& fh, const Credentials& cred) {
  FSSTAT3args args{};
  args.fsroot = ToFh(fh);
  XdrReply<FSSTAT3res> r(LOCALNFS_XDRPROC(xdr_FSSTAT3res));
  RETURN_IF_ERROR(NfsCall(pool_.get(), NFSPROC3_FSSTAT, LOCALNFS_XDRPROC(xdr_FSSTAT3args),
                          &args, &r, cred));
  RETURN_IF_ERROR(Check(r.res.status, "FSSTAT"));
  const FSSTAT3resok& ok = r.res.FSSTAT3res_u.resok;
  return FsStat{ok.tbytes, ok.fbytes, ok.abytes, ok.tfiles, ok.ffiles, ok.afiles};
}

absl::StatusOr<FsInfo> Nfs3Client::FsInformation(const FileHandle& fh,
                                                 const Credentials& cred) {
  FSINFO3args args{};
  args.fsroot = ToFh(fh);
  XdrReply<FSINFO3res> r(LOCALNFS_XDRPROC(xdr_FSINFO3res));
  RETURN_IF_ERROR(NfsCall(pool_.get(), NFSPROC3_FSINFO, LOCALNFS_XDRPROC(xdr_FSINFO3args),
                          &args, &r, cred));
  RETURN_IF_ERROR(Check(r.res.status, "FSINFO"));
  const FSINFO3resok& ok = r.res.FSINFO3res_u.resok;
  FsInfo info;
  // A server that advertises 0 would stall every transfer; fall back to 1 MiB.
  info.rtmax = ok.rtmax != 0 ? ok.rtmax : kDefaultTransferSize;
  info.rtpref = ok.rtpref != 0 ? ok.rtpref : info.rtmax;
  info.wtmax = ok.wtmax != 0 ? ok.wtmax : kDefaultTransferSize;
  info.wtpref = ok.wtpref != 0 ? ok.wtpref : info.wtmax;
  info.dtpref = ok.dtpref;
  info.max_file_size = ok.maxfilesize;
  info.properties = ok.properties;
  return info;
}

// ---- data ----

absl::StatusOr<ReadResult> Nfs3Client::Read(const FileHandle& fh, uint64_t offset,
                                            uint32_t count, const Credentials& cred) {
  ReadResult out;
  const uint32_t chunk_max = std::max<uint32_t>(fsinfo_.rtmax, 4096);
  while (out.data.size() < count) {
    const uint32_t want =
        std::min<uint32_t>(count - static_cast<uint32_t>(out.data.size()), chunk_max);
    ASSIGN_OR_RETURN(ReadResult part,
                     data_path_->Read(fh, offset + out.data.size(), want, cred));
    const size_t got = part.data.size();
    if (out.data.empty()) {
      out.data = std::move(part.data);
    } else {
      out.data.append(part.data);
    }
    out.attributes = part.attributes;
    if (part.eof) {
      out.eof = true;
      break;
    }
    // A short read that is not EOF: the server gave less than asked, so ask again for
    // the rest — but a read of nothing without EOF would loop forever.
    if (got == 0) break;
  }
  return out;
}

absl::StatusOr<ReadIntoResult> Nfs3Client::ReadInto(const FileHandle& fh, uint64_t offset,
                                                    absl::Span<char> buffer,
                                                    const Credentials& cred) {
  if (buffer.empty()) return ReadIntoResult{};
  const size_t chunk_max = std::max<uint32_t>(fsinfo_.rtmax, 4096);
  // The first call's result is returned as it is when it is all there is (every 4 KiB
  // read): copying it through the loop below was a tenth of a LOCALIO read.
  absl::StatusOr<ReadIntoResult> first =
      data_path_->ReadInto(fh, offset, buffer.subspan(0, chunk_max), cred);
  if (!first.ok() || first->eof || first->count == 0 || first->count >= buffer.size()) {
    return first;
  }
  ReadIntoResult out = *std::move(first);
  while (out.count < buffer.size()) {
    const absl::Span<char> part = buffer.subspan(out.count, chunk_max);
    ASSIGN_OR_RETURN(ReadIntoResult r,
                     data_path_->ReadInto(fh, offset + out.count, part, cred));
    out.count += r.count;
    out.attributes = std::move(r.attributes);
    if (r.eof) {
      out.eof = true;
      break;
    }
    // As in Read(): a short read without EOF asks again, an empty one stops.
    if (r.count == 0) break;
  }
  return out;
}

absl::StatusOr<WriteResult> Nfs3Client::Write(const FileHandle& fh, uint64_t offset,
                                              std::string_view data, const Credentials& cred,
                                              StableHow stable) {
  std::shared_ptr<FileWrites> state = unstable_->Get(fh);
  WriteResult last;
  uint64_t pending = 0;
  {
    absl::ReaderMutexLock io(&state->io_mu);
    const uint32_t chunk_max = std::max<uint32_t>(fsinfo_.wtmax, 4096);
    size_t done = 0;
    do {
      const std::string_view chunk = data.substr(done, chunk_max);
      ASSIGN_OR_RETURN(last, data_path_->Write(fh, offset + done, chunk, stable, cred));
      if (last.count == 0 && !chunk.empty()) {
        return NfsError(NFS3ERR_IO, "WRITE (server wrote 0 bytes)");
      }
      const std::string_view written = chunk.substr(0, last.count);
      if (last.committed == StableHow::kUnstable) {
        state->Record(offset + done, written, last.verifier, cred);
      } else {
        state->Record(offset + done, written, std::nullopt, cred);
      }
      done += last.count;
    } while (done < data.size());
    last.count = static_cast<uint32_t>(done);
    pending = state->pending_bytes();
  }
  // Bound the copy we keep for resending: past half the limit, commit what is written
  // while the other writers go on; past the limit, make everything stable now.
  if (pending > options_.max_uncommitted_bytes) {
    unstable_->MaybeErase(fh, std::move(state));
    RETURN_IF_ERROR(Commit(fh, cred).status());
  } else if (pending > options_.max_uncommitted_bytes / 2) {
    CommitEarly(fh, state, cred);
    unstable_->MaybeErase(fh, std::move(state));
  } else {
    unstable_->MaybeErase(fh, std::move(state));
  }
  return last;
}

void Nfs3Client::CommitEarly(const FileHandle& fh, const std::shared_ptr<FileWrites>& state,
                             const Credentials& cred) {
  if (state->early_commit_running.exchange(true)) return;  // another writer is on it
  bool covered = true;
  {
    absl::ReaderMutexLock io(&state->io_mu);  // writers go on (unstable_writes.h)
    const uint64_t point = state->WrittenSoFar();
    early_commits_.fetch_add(1, std::memory_order_relaxed);
    absl::StatusOr<CommitResult> c = data_path_->Commit(fh, 0, 0, cred);
    // A failed early commit changes nothing: the bytes stay pending, and the bound's
    // Commit() or the caller's own reports the error.
    if (c.ok()) {
      covered = state->CommitWrittenBefore(point, c->verifier);
    } else {
      LOG_DEBUG("early COMMIT failed (the bytes stay pending): %s", c.status().ToString());
    }
  }
  state->early_commit_running.store(false);
  // The server restarted: resend under the exclusive lock (its error is reported by
  // the next Commit() as well).
  if (!covered) Commit(fh, cred).IgnoreError();
}

absl::StatusOr<CommitResult> Nfs3Client::Commit(const FileHandle& fh,
                                                const Credentials& cred) {
  std::shared_ptr<FileWrites> state = unstable_->Get(fh);
  absl::Cleanup erase = [&] { unstable_->MaybeErase(fh, std::move(state)); };
  absl::WriterMutexLock io(&state->io_mu);
  for (int round = 0; round < kMaxCommitRounds; ++round) {
    absl::StatusOr<CommitResult> c = data_path_->Commit(fh, 0, 0, cred);
    if (!c.ok()) {
      // A stale handle can never be committed: the file is gone, and so is its data.
      if (NfsStatusOf(c.status()) == NFS3ERR_STALE) state->Clear();
      return c.status();
    }
    std::vector<FileWrites::Range> stale = state->Commit(c->verifier);
    if (stale.empty()) return *c;
    // The server's verifier changed since these bytes were written: it restarted and
    // may have dropped them. Write them again (their newest contents — writers are
    // excluded) and commit once more.
    resends_.fetch_add(1, std::memory_order_relaxed);
    LOG_WARNING("write verifier changed to %s: resending %d uncommitted range(s)",
                VerifierHex(c->verifier), stale.size());
    const Credentials writer = state->writer();
    const uint32_t chunk_max = std::max<uint32_t>(fsinfo_.wtmax, 4096);
    for (const FileWrites::Range& r : stale) {
      size_t done = 0;
      while (done < r.data.size()) {
        const std::string_view chunk = std::string_view(r.data).substr(done, chunk_max);
        ASSIGN_OR_RETURN(WriteResult w, data_path_->Write(fh, r.offset + done, chunk,
                                                          StableHow::kUnstable, writer));
        if (w.count == 0) return NfsError(NFS3ERR_IO, "WRITE (resend wrote 0 bytes)");
        const std::string_view written = chunk.substr(0, w.count);
        state->Record(r.offset + done, written,
                      w.committed == StableHow::kUnstable
                          ? std::optional<WriteVerifier>(w.verifier)
                          : std::nullopt,
                      writer);
        done += w.count;
      }
    }
  }
  return NfsError(NFS3ERR_IO, "COMMIT (write verifier keeps changing)");
}

bool Nfs3Client::HasUncommitted(const FileHandle& fh) const {
  std::shared_ptr<FileWrites> state = unstable_->Find(fh);
  return state != nullptr && state->pending_bytes() > 0;
}

void Nfs3Client::DropUncommitted(const FileHandle& fh) {
  std::shared_ptr<FileWrites> state = unstable_->Find(fh);
  if (state == nullptr) return;
  state->Clear();
  unstable_->MaybeErase(fh, std::move(state));
}

}  // namespace localnfs::client
