// server/nfs3_program.cc — the NFSv3 procedure table and the one policy point,
// Dispatch(). Procedure semantics are in nfs3proc.cc.
#include "server/nfs3_program.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <algorithm>
#include <string_view>

#include "absl/strings/escaping.h"
#include "common/log.h"
#include "common/status.h"
#include "common/unaligned.h"
#include "server/creds.h"
#include "server/nfs3xdr.h"
#include "server/nfs_status.h"
#include "server/request_policy.h"

namespace localnfs::server {
namespace {

uint64_t RandomVerifier() {
  uint64_t v = 0;
  while (getrandom(&v, sizeof(v), 0) != sizeof(v)) {
  }
  return v;
}

// READ's data leaves as a separate buffer (rpc::ProcXdr::take_payload) once it is
// large enough that copying it into the reply costs more than a second iovec.
constexpr uint32_t kMinReadPayload = 16 * 1024;

bool TakeReadPayload(void* result, rpc::Payload* out) {
  auto& r = *static_cast<READ3res*>(result);
  if (r.status != NFS3_OK) return false;
  auto& data = r.READ3res_u.resok.data;
  if (data.data_len < kMinReadPayload) return false;
  out->data.reset(data.data_val);
  out->size = data.data_len;
  data.data_val = nullptr;
  data.data_len = 0;
  return true;
}

// The result sizes READ, READDIR and READDIRPLUS can reach are chosen by the client
// (count, maxcount; at most vfs::kMaxIoSize, as the handlers clamp them): read from
// the argument bytes, which start with the nfs_fh3, `kCountAt` bytes after it, for the
// server's reply-memory limits (rpc::ProcXdr::max_result_bytes). Arguments too short to
// hold it are garbage, answered with a few bytes.
constexpr size_t kResultOverhead = 256;  // status, post_op_attr, counts, padding

template <size_t kCountAt>
size_t ResultSizeOfCount(std::string_view args) {
  if (args.size() < 4) return kResultOverhead;
  const size_t fh_len = (ntohl(LoadUnaligned<uint32_t>(args.data())) + size_t{3}) & ~size_t{3};
  if (fh_len > NFS3_FHSIZE || args.size() < 4 + fh_len + kCountAt + 4) return kResultOverhead;
  const uint32_t count = ntohl(LoadUnaligned<uint32_t>(args.data() + 4 + fh_len + kCountAt));
  return kResultOverhead + std::min(count, vfs::kMaxIoSize);
}

// WRITE3args like rpcgen's xdr_WRITE3args, except that decoding does not copy the data:
// data_val points into the call's record (xdr_inline), which the dispatcher keeps for
// the whole call, and freeing leaves it alone. One malloc and one copy of up to 1 MiB
// less per WRITE (and no page faults on a fresh buffer for each).
// Declared with xdrproc_t's own type, (XDR*, ...), because it is only ever called
// through one: a C++ function of another type called that way is undefined behaviour
// (UBSan's -fsanitize=function reports it; rpcgen's C routines are not checked).
bool_t XdrWrite3ArgsInPlace(XDR* x, ...) {
  va_list ap;
  va_start(ap, x);
  WRITE3args* a = va_arg(ap, WRITE3args*);
  va_end(ap);
  if (x->x_op == XDR_ENCODE) return xdr_WRITE3args(x, a);
  if (x->x_op == XDR_FREE) {
    a->data.data_val = nullptr;  // the record's, not ours
    a->data.data_len = 0;
    return xdr_WRITE3args(x, a);
  }
  a->data.data_val = nullptr;
  if (!xdr_nfs_fh3(x, &a->file) || !xdr_offset3(x, &a->offset) ||
      !xdr_count3(x, &a->count) || !xdr_stable_how(x, &a->stable)) {
    return FALSE;
  }
  u_int len = 0;
  if (!xdr_u_int(x, &len) || len > NFS3_MAXDATA) return FALSE;
  if (len > 0) {
    const u_int padded = (len + 3) & ~3u;  // opaque data is padded to 4 bytes
    void* data = xdr_inline(x, static_cast<int>(padded));
    if (data == nullptr) return FALSE;  // the record ends early
    a->data.data_val = static_cast<char*>(data);
  }
  a->data.data_len = len;
  return TRUE;
}

// The argument routine of a procedure: rpcgen's, or one of ours above.
template <class Args>
xdrproc_t ArgsXdr(bool_t (*generated)(XDR*, Args*)) {
  return reinterpret_cast<xdrproc_t>(generated);
}
template <>
xdrproc_t ArgsXdr<WRITE3args>(bool_t (*)(XDR*, WRITE3args*)) {
  return &XdrWrite3ArgsInPlace;
}

template <class Res>
constexpr bool (*kTakePayload)(void*, rpc::Payload*) = nullptr;
template <>
constexpr bool (*kTakePayload<READ3res>)(void*, rpc::Payload*) = &TakeReadPayload;

template <class Args>
constexpr size_t (*kMaxResultBytes)(std::string_view) = nullptr;
template <>  // offset3 offset; count3 count
constexpr size_t (*kMaxResultBytes<READ3args>)(std::string_view) = &ResultSizeOfCount<8>;
template <>  // cookie3 cookie; cookieverf3 cookieverf; count3 count
constexpr size_t (*kMaxResultBytes<READDIR3args>)(std::string_view) = &ResultSizeOfCount<16>;
template <>  // cookie3 cookie; cookieverf3 cookieverf; count3 dircount; count3 maxcount
constexpr size_t (*kMaxResultBytes<READDIRPLUS3args>)(std::string_view) = &ResultSizeOfCount<20>;

}  // namespace

#define NFS3_XDR(NAME, ARGS, RES, FLAGS)                                           \
  rpc::ProcXdr {                                                                   \
    NAME, ArgsXdr<ARGS>(xdr_##ARGS), reinterpret_cast<xdrproc_t>(xdr_##RES),       \
        sizeof(ARGS), sizeof(RES), ((FLAGS) & Nfs3Program::kNonIdempotent) != 0,   \
        ((FLAGS) & Nfs3Program::kQuick) != 0, kTakePayload<RES>,                   \
        kMaxResultBytes<ARGS>                                                      \
  }
#define NFS3_PROC(NAME, ARGS, RES, HANDLER, FLAGS)                                   \
  Nfs3Program::Proc {                                                                \
    NFS3_XDR(NAME, ARGS, RES, FLAGS), &Nfs3Program::HANDLER, (FLAGS), nullptr        \
  }
// A procedure whose args carry a second handle, ARGS::SECOND.
#define NFS3_PROC_2FH(NAME, ARGS, RES, HANDLER, FLAGS, SECOND)                       \
  Nfs3Program::Proc {                                                                \
    NFS3_XDR(NAME, ARGS, RES, FLAGS), &Nfs3Program::HANDLER, (FLAGS),                \
        [](const void* a) -> const nfs_fh3* {                                        \
          return &static_cast<const ARGS*>(a)->SECOND;                               \
        }                                                                            \
  }

const std::array<Nfs3Program::Proc, kNfs3ProcCount>& Nfs3Program::Table() {
  constexpr uint32_t E = kNeedsExport, W = kMakesWrite, N = kNonIdempotent,
                     C = kAsCaller, Q = kQuick;
  // NULL takes and returns void; the dispatcher needs a non-zero size to allocate.
  static const std::array<Proc, kNfs3ProcCount> table = {{
      {rpc::ProcXdr{"NULL", reinterpret_cast<xdrproc_t>(xdr_void),
                    reinterpret_cast<xdrproc_t>(xdr_void), 0, 0, false, true},
       &Nfs3Program::Null, 0, nullptr},
      NFS3_PROC("GETATTR", GETATTR3args, GETATTR3res, Getattr, E | Q),
      NFS3_PROC("SETATTR", SETATTR3args, SETATTR3res, Setattr, E | W | N),
      NFS3_PROC("LOOKUP", LOOKUP3args, LOOKUP3res, Lookup, E | C | Q),
      NFS3_PROC("ACCESS", ACCESS3args, ACCESS3res, Access, E | Q),
      NFS3_PROC("READLINK", READLINK3args, READLINK3res, Readlink, E | Q),
      NFS3_PROC("READ", READ3args, READ3res, Read, E | Q),
      NFS3_PROC("WRITE", WRITE3args, WRITE3res, Write, E | W | N),
      NFS3_PROC("CREATE", CREATE3args, CREATE3res, Create, E | W | N | C | Q),
      NFS3_PROC("MKDIR", MKDIR3args, MKDIR3res, Mkdir, E | W | N | C | Q),
      NFS3_PROC("SYMLINK", SYMLINK3args, SYMLINK3res, Symlink, E | W | N | C | Q),
      NFS3_PROC("MKNOD", MKNOD3args, MKNOD3res, Mknod, E | W | N | C | Q),
      NFS3_PROC("REMOVE", REMOVE3args, REMOVE3res, Remove, E | W | N | C | Q),
      NFS3_PROC("RMDIR", RMDIR3args, RMDIR3res, Rmdir, E | W | N | C | Q),
      NFS3_PROC_2FH("RENAME", RENAME3args, RENAME3res, Rename, E | W | N | C | Q, to.dir),
      NFS3_PROC_2FH("LINK", LINK3args, LINK3res, Link, E | W | N | C | Q, link.dir),
      NFS3_PROC("READDIR", READDIR3args, READDIR3res, Readdir, E | C),
      NFS3_PROC("READDIRPLUS", READDIRPLUS3args, READDIRPLUS3res, Readdirplus, E | C),
      NFS3_PROC("FSSTAT", FSSTAT3args, FSSTAT3res, Fsstat, E | Q),
      NFS3_PROC("FSINFO", FSINFO3args, FSINFO3res, Fsinfo, E | Q),
      NFS3_PROC("PATHCONF", PATHCONF3args, PATHCONF3res, Pathconf, E | Q),
      NFS3_PROC("COMMIT", COMMIT3args, COMMIT3res, Commit, E | W),
  }};
  return table;
}

#undef NFS3_PROC_2FH
#undef NFS3_PROC
#undef NFS3_XDR

Nfs3Program::Nfs3Program(Deps deps)
    : deps_(deps), write_verifier_(deps.write_verifier.value_or(RandomVerifier())) {}

const rpc::ProcXdr* Nfs3Program::procedure(uint32_t proc) const {
  return proc < kNfs3ProcCount ? &Table()[proc].xdr : nullptr;
}

rpc::DispatchResult Nfs3Program::Dispatch(rpc::CallContext& ctx, void* args, void* result) {
  if (ctx.proc >= kNfs3ProcCount) return rpc::DispatchResult::kSystemErr;
  calls_[ctx.proc].fetch_add(1, std::memory_order_relaxed);
  const Proc& p = Table()[ctx.proc];
  Nfs3Request req;
  req.ctx = &ctx;
  if (p.flags & kNeedsExport) {
    // Every result starts with nfsstat3 whose failure arm holds only optional
    // attributes (zeroed = absent).
    nfsstat3 status = Prepare(ctx, p, args, req);
    if (req.would_block) {
      calls_[ctx.proc].fetch_sub(1, std::memory_order_relaxed);  // counted when it runs
      return rpc::DispatchResult::kWouldBlock;
    }
    if (status != NFS3_OK) {
      *static_cast<nfsstat3*>(result) = status;
      return rpc::DispatchResult::kSuccess;
    }
  }
  // A change for a `sync` rule waits for the disk before its reply: not on the event
  // loop. Nothing is done yet (resolving the handle changes nothing).
  if (ctx.must_not_block && (p.flags & kMakesWrite) && req.options.sync) {
    calls_[ctx.proc].fetch_sub(1, std::memory_order_relaxed);  // counted when it runs
    return rpc::DispatchResult::kWouldBlock;
  }
  // Every handle of the request is resolved by now: the switch may drop the
  // capabilities that resolving needs (creds.h).
  std::optional<ScopedFsCredentials> as_caller;
  if (p.flags & kAsCaller) {
    as_caller.emplace(req.cred);
    if (!as_caller->status().ok()) {
      LOG_ERROR("%s: %s", p.xdr.name, as_caller->status().ToString());
      *static_cast<nfsstat3*>(result) = NFS3ERR_SERVERFAULT;
      return rpc::DispatchResult::kSuccess;
    }
  }
  (this->*p.handler)(req, args, result);
  if (req.would_block) {
    calls_[ctx.proc].fetch_sub(1, std::memory_order_relaxed);  // counted when it runs
    return rpc::DispatchResult::kWouldBlock;
  }
  as_caller.reset();  // commits run as the server (vfs::MetadataCommits)
  if (!req.commits.empty()) CommitBeforeReply(p, req, result);
  return rpc::DispatchResult::kSuccess;
}

void Nfs3Program::CommitBeforeReply(const Proc& p, Nfs3Request& req, void* result) {
  const absl::Status s = req.commits.Run(*req.exp);
  if (s.ok()) return;
  // As knfsd, which returns commit_metadata's error: the change is made but may not
  // survive a crash. The failure arm needs no attributes: the bare status.
  xdr_free(p.xdr.encode_result, static_cast<char*>(result));
  memset(result, 0, p.xdr.result_size);
  *static_cast<nfsstat3*>(result) = NfsStatusFromStatus(s);
}

nfsstat3 Nfs3Program::Prepare(rpc::CallContext& ctx, const Proc& p, const void* args,
                              Nfs3Request& req) {
  const PolicyDeps deps{deps_.exports, deps_.key, deps_.resolver, deps_.file_cache};
  // Every NFSv3 args struct starts with an nfs_fh3.
  const nfs_fh3& fh = *static_cast<const nfs_fh3*>(args);
  absl::StatusOr<AuthorizedObject> auth = Authorize(
      deps, PolicyInput{FhBytes(fh), ctx.conn, &ctx.cred, (p.flags & kMakesWrite) != 0,
                      ctx.must_not_block});
  if (!auth.ok()) {
    req.would_block = StatusErrno(auth.status()) == EWOULDBLOCK;
    LOG_DEBUG("%s: %s", p.xdr.name, auth.status().ToString());
    return NfsStatusFromStatus(auth.status());
  }
  if (p.second_handle != nullptr) {
    absl::StatusOr<vfs::Object> second =
        ResolveInSameExport(deps, *auth->exp, FhBytes(*p.second_handle(args)),
                            ctx.must_not_block);
    if (!second.ok()) {
      req.would_block = StatusErrno(second.status()) == EWOULDBLOCK;
      LOG_DEBUG("%s (second handle): %s", p.xdr.name, second.status().ToString());
      return NfsStatusFromStatus(second.status());
    }
    req.second = std::move(*second);
  }
  req.exp = std::move(auth->exp);
  req.options = auth->options;
  req.obj = std::move(auth->obj);
  req.cred = std::move(auth->cred);
  return NFS3_OK;
}

std::string_view Nfs3Program::ArgName(const Nfs3Request& req, const filename3& name) {
  const std::string_view n = NameOf(name);
  uint64_t left_out = 0;
  if (vfs::HasSlashOrNul(n) && bad_name_log_.Allow(&left_out)) {
    LOG_WARNING("%s from %s: refused a name with a NUL or '/': \"%s\" (and %d more "
                "since the last line)",
                Table()[req.ctx->proc].xdr.name, req.ctx->conn->peer().ToString(),
                absl::CHexEscape(absl::string_view(n.data(), n.size())), left_out);
  }
  return n;
}

absl::StatusOr<std::string> Nfs3Program::MakeHandle(const Nfs3Request& req,
                                                    vfs::LookupResult& r, int dir_fd,
                                                    std::string_view name) {
  ASSIGN_OR_RETURN(std::string wire, deps_.key->Encode(req.exp->id(), r.kh));
  if (!deps_.resolver->privileged()) {
    if (S_ISDIR(r.st.st_mode) || vfs::IsDotOrDotDot(name))
      deps_.resolver->RememberFd(req.exp->id(), r.kh, r.fd.get());
    else
      deps_.resolver->Remember(req.exp->id(), r.kh, deps_.resolver->ShareFd(dir_fd), name);
  }
  // The client uses a handle it was just given next (GETATTR after CREATE, READ
  // after LOOKUP): the file cache keeps the object (taking over r.fd unless it has
  // it already), so that needs no open by handle.
  (void)deps_.file_cache->Acquire(
      req.exp->id(), r.kh, FileMode::kPath,
      [&r](FileMode) -> absl::StatusOr<UniqueFd> { return std::move(r.fd); });
  return wire;
}

void Nfs3Program::SetNewObject(const Nfs3Request& req, std::string_view name,
                               vfs::LookupResult& r, post_op_fh3* fh,
                               post_op_attr* attr) {
  SetPostOpAttr(attr, r.st, fsid(req));
  absl::StatusOr<std::string> wire = MakeHandle(req, r, req.obj.fd.get(), name);
  // Without a handle the client looks the name up itself (RFC 1813 allows it).
  fh->handle_follows = wire.ok() ? TRUE : FALSE;
  if (wire.ok()) SetFh(&fh->post_op_fh3_u.handle, *wire);
}

void Nfs3Program::CommitLater(Nfs3Request& req, const vfs::Object& obj) {
  if (!req.options.sync) return;
  absl::StatusOr<struct stat> st = vfs::AttrsOf(obj);
  if (st.ok()) req.commits.Add(obj.fd.get(), *st);
}

void Nfs3Program::CommitCreated(Nfs3Request& req, const vfs::LookupResult& made) {
  if (!req.options.sync) return;
  req.commits.AddCreated(made.fd.get(), made.st);
  CommitLater(req, req.obj);
}

void Nfs3Program::Forget(const Nfs3Request& req, const std::optional<KernelHandle>& gone) {
  if (!gone) return;
  deps_.file_cache->Close(req.exp->id(), *gone);
  deps_.resolver->Forget(req.exp->id(), *gone);
}

}  // namespace localnfs::server
