// server/nfs3/nfs3_program.cc — the NFSv3 procedure table and the one policy point, the
// pipeline Dispatch(). Procedure semantics are in nfs3proc.cc.
#include "server/nfs3/nfs3_program.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <algorithm>
#include <string_view>
#include <type_traits>

#include "absl/strings/escaping.h"
#include "common/log.h"
#include "common/status.h"
#include "common/unaligned.h"
#include "server/backend/rules.h"
#include "server/nfs3/nfs3xdr.h"
#include "server/nfs3/nfs_status.h"
#include "server/policy/request_policy.h"

namespace localnfs::server {
namespace {

uint64_t RandomVerifier() {
  uint64_t v = 0;
  while (getrandom(&v, sizeof(v), 0) != sizeof(v)) {
  }
  return v;
}

// The result sizes READ, READDIR and READDIRPLUS can reach are chosen by the client
// (count, maxcount; at most backend::kMaxIoSize, as the handlers clamp them): read from
// the argument bytes, which start with the nfs_fh3, `kCountAt` bytes after it, for the
// server's reply-memory limits (rpc::ProcedureDesc::max_result_bytes). Arguments too short to
// hold it are garbage, answered with a few bytes.
constexpr size_t kResultOverhead = 256;  // status, post_op_attr, counts, padding

template <size_t kCountAt>
size_t ResultSizeOfCount(std::string_view args) {
  if (args.size() < 4) return kResultOverhead;
  const size_t fh_len = (ntohl(LoadUnaligned<uint32_t>(args.data())) + size_t{3}) & ~size_t{3};
  if (fh_len > NFS3_FHSIZE || args.size() < 4 + fh_len + kCountAt + 4) return kResultOverhead;
  const uint32_t count = ntohl(LoadUnaligned<uint32_t>(args.data() + 4 + fh_len + kCountAt));
  return kResultOverhead + std::min(count, backend::kMaxIoSize);
}

// WRITE3args like rpcgen's xdr_WRITE3args, except that decoding does not copy the data:
// data_val points into the call's record (xdr_inline), which the call keeps until it
// is destroyed, and freeing leaves it alone. One malloc and one copy of up to 1 MiB
// less per WRITE (and no page faults on a fresh buffer for each).
bool_t XdrWrite3ArgsInPlace(XDR* x, WRITE3args* a) {
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

// The file handles of each procedure's arguments (Nfs3Program::Proc::handles).
Nfs3Handles HandlesOf(const rpc::Void&) { return {}; }
Nfs3Handles HandlesOf(const GETATTR3args& a) { return {&a.object}; }
Nfs3Handles HandlesOf(const SETATTR3args& a) { return {&a.object}; }
Nfs3Handles HandlesOf(const LOOKUP3args& a) { return {&a.what.dir}; }
Nfs3Handles HandlesOf(const ACCESS3args& a) { return {&a.object}; }
Nfs3Handles HandlesOf(const READLINK3args& a) { return {&a.symlink}; }
Nfs3Handles HandlesOf(const READ3args& a) { return {&a.file}; }
Nfs3Handles HandlesOf(const WRITE3args& a) { return {&a.file}; }
Nfs3Handles HandlesOf(const CREATE3args& a) { return {&a.where.dir}; }
Nfs3Handles HandlesOf(const MKDIR3args& a) { return {&a.where.dir}; }
Nfs3Handles HandlesOf(const SYMLINK3args& a) { return {&a.where.dir}; }
Nfs3Handles HandlesOf(const MKNOD3args& a) { return {&a.where.dir}; }
Nfs3Handles HandlesOf(const REMOVE3args& a) { return {&a.object.dir}; }
Nfs3Handles HandlesOf(const RMDIR3args& a) { return {&a.object.dir}; }
Nfs3Handles HandlesOf(const RENAME3args& a) { return {&a.from.dir, &a.to.dir}; }
Nfs3Handles HandlesOf(const LINK3args& a) { return {&a.file, &a.link.dir}; }
Nfs3Handles HandlesOf(const READDIR3args& a) { return {&a.dir}; }
Nfs3Handles HandlesOf(const READDIRPLUS3args& a) { return {&a.dir}; }
Nfs3Handles HandlesOf(const FSSTAT3args& a) { return {&a.fsroot}; }
Nfs3Handles HandlesOf(const FSINFO3args& a) { return {&a.fsroot}; }
Nfs3Handles HandlesOf(const PATHCONF3args& a) { return {&a.object}; }
Nfs3Handles HandlesOf(const COMMIT3args& a) { return {&a.file}; }

template <class Args>
Nfs3Handles Handles(const void* args) {
  return HandlesOf(*static_cast<const Args*>(args));
}

// The result as its bare status: the failure arm of every NFSv3 result holds only
// optional attributes, absent when zeroed.
template <class Res>
void Fail(rpc::Call& call, nfsstat3 status) {
  call.ResetResult();
  if constexpr (!std::is_same_v<Res, rpc::Void>) {
    static_cast<Res*>(call.result())->status = status;
  }
}

template <class Args>
constexpr size_t (*kMaxResultBytes)(std::string_view) = nullptr;
template <>  // offset3 offset; count3 count
constexpr size_t (*kMaxResultBytes<READ3args>)(std::string_view) = &ResultSizeOfCount<8>;
template <>  // cookie3 cookie; cookieverf3 cookieverf; count3 count
constexpr size_t (*kMaxResultBytes<READDIR3args>)(std::string_view) = &ResultSizeOfCount<16>;
template <>  // cookie3 cookie; cookieverf3 cookieverf; count3 dircount; count3 maxcount
constexpr size_t (*kMaxResultBytes<READDIRPLUS3args>)(std::string_view) = &ResultSizeOfCount<20>;

}  // namespace

template <auto kHandler, auto kXdrArgs, auto kXdrResult>
constexpr Nfs3Program::Proc Nfs3Program::MakeProc(const char* name, uint32_t program_flags,
                                                   uint32_t rpc_flags) {
  using Traits = rpc::internal::HandlerTraits<decltype(kHandler)>;
  using Args = typename Traits::Args;
  using Res = typename Traits::Result;
  Proc p;
  p.desc = rpc::Procedure<kHandler, kXdrArgs, kXdrResult>(
      name, {.flags = rpc_flags,
             .program_flags = program_flags,
             .max_result_bytes = kMaxResultBytes<Args>});
  p.handles = &Handles<Args>;
  p.fail = &Fail<Res>;
  return p;
}

// One entry: NAME's handler and the rpcgen routines of NAME3args and NAME3res.
#define NFS3_PROC(NAME, HANDLER, PROGRAM_FLAGS, RPC_FLAGS)                           \
  MakeProc<&Nfs3Program::HANDLER, xdr_##NAME##3args, xdr_##NAME##3res>(#NAME, PROGRAM_FLAGS, \
                                                                       RPC_FLAGS)

const std::array<Nfs3Program::Proc, kNfs3ProcCount>& Nfs3Program::Table() {
  constexpr uint32_t E = kNeedsExport, W = kMakesWrite;
  constexpr uint32_t N = kNonIdempotent, Q = kQuick;
  static const std::array<Proc, kNfs3ProcCount> table = {{
      MakeProc<&Nfs3Program::Null, rpc::XdrVoid, rpc::XdrVoid>("NULL", 0, Q),
      NFS3_PROC(GETATTR, Getattr, E, Q),
      NFS3_PROC(SETATTR, Setattr, E | W, N),
      NFS3_PROC(LOOKUP, Lookup, E, Q),
      NFS3_PROC(ACCESS, Access, E, Q),
      NFS3_PROC(READLINK, Readlink, E, Q),
      // READ's data goes out from its own buffer (Read registers it: Call::AddBulk).
      NFS3_PROC(READ, Read, E, Q | rpc::ProcedureDesc::kBulkReply),
      // WRITE's arguments are decoded without copying the data (above).
      MakeProc<&Nfs3Program::Write, XdrWrite3ArgsInPlace, xdr_WRITE3res>("WRITE", E | W, N),
      NFS3_PROC(CREATE, Create, E | W, N | Q),
      NFS3_PROC(MKDIR, Mkdir, E | W, N | Q),
      NFS3_PROC(SYMLINK, Symlink, E | W, N | Q),
      NFS3_PROC(MKNOD, Mknod, E | W, N | Q),
      NFS3_PROC(REMOVE, Remove, E | W, N | Q),
      NFS3_PROC(RMDIR, Rmdir, E | W, N | Q),
      NFS3_PROC(RENAME, Rename, E | W, N | Q),
      NFS3_PROC(LINK, Link, E | W, N | Q),
      NFS3_PROC(READDIR, Readdir, E, 0),
      NFS3_PROC(READDIRPLUS, Readdirplus, E, 0),
      NFS3_PROC(FSSTAT, Fsstat, E, Q),
      NFS3_PROC(FSINFO, Fsinfo, E, Q),
      NFS3_PROC(PATHCONF, Pathconf, E, Q),
      NFS3_PROC(COMMIT, Commit, E | W, 0),
  }};
  return table;
}

#undef NFS3_PROC

Nfs3Program::Nfs3Program(Deps deps)
    : deps_(deps), write_verifier_(deps.write_verifier.value_or(RandomVerifier())) {}

const rpc::ProcedureDesc* Nfs3Program::procedure(uint32_t proc) const {
  return proc < kNfs3ProcCount ? &Table()[proc].desc : nullptr;
}

rpc::DispatchResult Nfs3Program::Dispatch(rpc::Call& call) {
  const rpc::CallContext& ctx = call.ctx();
  // The dispatcher found the descriptor in this table: ctx.proc < kNfs3ProcCount.
  const Proc& p = Table()[ctx.proc];
  const uint32_t flags = p.desc.program_flags;
  if (flags == 0) {  // NULL: no policy, nothing to keep
    return p.desc.handle(*this, call);
  }
  // A worker's run of a call the event loop began finds its state: nothing is
  // authorised or resolved again.
  Nfs3Request* state = call.find_state<Nfs3Request>();
  if (state == nullptr) {
    state = &call.EmplaceState<Nfs3Request>();
    state->call = &call;
    state->ctx = &ctx;
  }
  Nfs3Request& req = *state;
  req.would_block = false;
  if (flags & kNeedsExport) {
    const nfsstat3 status = Prepare(call, p, req);
    if (req.would_block) return rpc::DispatchResult::kWouldBlock;
    if (status != NFS3_OK) {
      p.fail(call, status);
      return rpc::DispatchResult::kSuccess;
    }
  }
  // A change for a `sync` rule waits for the disk before its reply (the Backend
  // commits it): not on the event loop. Nothing is done yet (resolving changes nothing).
  if (ctx.must_not_block && (flags & kMakesWrite) && req.options.sync) {
    return rpc::DispatchResult::kWouldBlock;
  }
  p.desc.handle(*this, call);
  // The handler changed nothing (a READ of data not in the page cache): the worker's
  // run calls it again.
  if (req.would_block) return rpc::DispatchResult::kWouldBlock;
  return rpc::DispatchResult::kSuccess;
}

nfsstat3 Nfs3Program::Prepare(const rpc::Call& call, const Proc& p, Nfs3Request& req) {
  const rpc::CallContext& ctx = call.ctx();
  // 1 and 2: decode and authenticate the handles, then the export's decisions.
  if (!req.authorized) {
    const Nfs3Handles handles = p.handles(call.args());
    const PolicyDeps deps{deps_.exports, deps_.key};
    absl::StatusOr<Authorization> auth =
        AuthorizeHandle(deps, PolicyInput{FhBytes(*handles.first), ctx.conn, &ctx.cred,
                                          (p.desc.program_flags & kMakesWrite) != 0});
    if (!auth.ok()) {
      LOG_DEBUG("%s: %s", p.desc.name, auth.status().ToString());
      return NfsStatusFromStatus(auth.status());
    }
    if (handles.second != nullptr) {
      absl::StatusOr<DecodedHandle> second = deps_.key->Decode(FhBytes(*handles.second));
      absl::Status s = second.status();
      if (s.ok() && second->export_id != auth->exp->id())
        s = ErrnoToStatus(EXDEV, "handles of different exports");
      if (!s.ok()) {
        LOG_DEBUG("%s (second handle): %s", p.desc.name, s.ToString());
        return NfsStatusFromStatus(s);
      }
      req.second_handle = std::move(second->kernel);
    }
    req.exp = std::move(auth->exp);
    req.options = auth->options;
    req.cred = std::move(auth->cred);
    req.handle = std::move(auth->kh);
    req.authorized = true;
  }
  // 3: resolve every handle, as the server. On the loop a resolution may need a search
  // and come back EWOULDBLOCK: the handle is kept (copied) for the worker's run.
  const bool may_search = !ctx.must_not_block;
  auto resolve = [&](backend::Handle& handle, const char* which,
                     backend::Object* out) -> nfsstat3 {
    absl::StatusOr<backend::Object> obj = deps_.backend->Resolve(
        *req.exp, may_search ? std::move(handle) : backend::Handle(handle), may_search);
    if (!obj.ok()) {
      req.would_block = StatusErrno(obj.status()) == EWOULDBLOCK;
      LOG_DEBUG("%s%s: %s", p.desc.name, which, obj.status().ToString());
      return NfsStatusFromStatus(obj.status());
    }
    *out = std::move(*obj);
    return NFS3_OK;
  };
  if (!req.obj.valid()) {
    const nfsstat3 status = resolve(req.handle, "", &req.obj);
    if (status != NFS3_OK) return status;
  }
  if (req.second_handle && !req.second) {
    backend::Object second;
    const nfsstat3 status = resolve(*req.second_handle, " (second handle)", &second);
    if (status != NFS3_OK) return status;
    req.second = std::move(second);
  }
  return NFS3_OK;
}

std::string_view Nfs3Program::ArgName(const Nfs3Request& req, const filename3& name) {
  const std::string_view n = NameOf(name);
  uint64_t left_out = 0;
  if (backend::HasSlashOrNul(n) && bad_name_log_.Allow(&left_out)) {
    LOG_WARNING("%s from %s: refused a name with a NUL or '/': \"%s\" (and %d more "
                "since the last line)",
                Table()[req.ctx->proc].desc.name, req.ctx->conn->peer().ToString(),
                absl::CHexEscape(absl::string_view(n.data(), n.size())), left_out);
  }
  return n;
}

void Nfs3Program::SetNewObject(const Nfs3Request& req, const backend::Object& made,
                               post_op_fh3* fh, post_op_attr* attr) {
  SetPostOpAttr(attr, made.attrs(), fsid(req));
  absl::StatusOr<std::string> wire = deps_.key->Encode(req.exp->id(), made.handle());
  fh->handle_follows = wire.ok() ? TRUE : FALSE;
  if (wire.ok()) SetFh(&fh->post_op_fh3_u.handle, *wire);
}

void Nfs3Program::SetWccOf(wcc_data* out, const Nfs3Request& req, const backend::Object& obj) {
  SetWcc(out, obj.attrs(), deps_.backend->GetAttr(obj), fsid(req));
}

}  // namespace localnfs::server
