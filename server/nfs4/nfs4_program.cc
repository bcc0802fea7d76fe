// server/nfs4/nfs4_program.cc — the NFSv4 procedure table and COMPOUND's entry:
// the header decoded by the dispatcher, the ops run by RunCompound
// (compound.cc).
#include "server/nfs4/nfs4_program.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <array>
#include <string_view>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "server/nfs4/state.h"

namespace localnfs::server::nfs4 {

bool_t XdrCompound4Args(XDR* x, Compound4Args* args) {
  switch (x->x_op) {
    case XDR_FREE:
      return xdr_utf8str_cs(x, &args->tag);
    case XDR_ENCODE:
      return FALSE;
    case XDR_DECODE:
      break;
  }
  if (!xdr_utf8str_cs(x, &args->tag) || !xdr_uint32_t(x, &args->minorversion) ||
      !xdr_uint32_t(x, &args->numops)) {
    return FALSE;
  }
  // The dispatcher decodes from a memory stream over the rest of the record,
  // whose x_handy is the count of bytes not yet read: the ops, which the
  // COMPOUND loop reads from the record itself.
  args->ops_len = x->x_handy;
  return TRUE;
}

bool_t XdrEncodedCompound4Res(XDR* x, EncodedCompound4Res* res) {
  switch (x->x_op) {
    case XDR_FREE:
      delete res->bytes;
      res->bytes = nullptr;
      if (res->unencoded != nullptr) {
        xdr_free(reinterpret_cast<xdrproc_t>(xdr_COMPOUND4res),
                 reinterpret_cast<char*>(res->unencoded));
        delete res->unencoded;
        res->unencoded = nullptr;
      }
      return TRUE;
    case XDR_DECODE:
      return FALSE;
    case XDR_ENCODE:
      break;
  }
  if (res->unencoded != nullptr) return xdr_COMPOUND4res(x, res->unencoded);
  if (res->bytes == nullptr || *res->bytes == nullptr) return FALSE;
  const std::string& b = **res->bytes;
  // XDR-encoded, so a multiple of 4: put as it is.
  return XDR_PUTBYTES(x, b.data(), static_cast<u_int>(b.size()));
}

namespace {

// What a result that carries no bulk data can encode to: status, a GETATTR's fattr4
// (the attributes this server supports, owner names included), an OPEN's stateid and
// change info… knfsd's op_rsize_bop estimates are of this order.
constexpr size_t kSmallOpResult = 1024;
// A READ/READ_PLUS/READDIR result besides its data (status, eof, counts, segments).
constexpr size_t kBulkOpOverhead = 1024;
// COMPOUND4res besides its results: status, tag (echoed, at most the record's size
// which the caller adds), result count.
constexpr size_t kCompoundOverhead = 64;

// A cursor over XDR bytes for MaxCompoundResultBytes: reads words and skips opaque
// data without copying or allocating. false once the bytes run out.
class XdrCursor {
 public:
  explicit XdrCursor(std::string_view b) : b_(b) {}
  bool U32(uint32_t* v) {
    if (b_.size() - pos_ < 4) return false;
    uint32_t n;
    memcpy(&n, b_.data() + pos_, 4);
    *v = ntohl(n);
    pos_ += 4;
    return true;
  }
  bool Skip(size_t n) {
    if (b_.size() - pos_ < n) return false;
    pos_ += n;
    return true;
  }
  // An opaque<> (length, bytes, padding).
  bool SkipOpaque() {
    uint32_t len;
    return U32(&len) && Skip((size_t{len} + 3) & ~size_t{3});
  }
  size_t pos() const { return pos_; }
  void set_pos(size_t p) { pos_ = p; }
  std::string_view rest() const { return b_.substr(pos_); }

 private:
  std::string_view b_;
  size_t pos_ = 0;
};

}  // namespace

size_t MaxCompoundResultBytes(std::string_view args) {
  XdrCursor in(args);
  uint32_t tag_len = 0, minor = 0, numops = 0;
  size_t total = kCompoundOverhead;
  if (!in.U32(&tag_len) || !in.Skip((size_t{tag_len} + 3) & ~size_t{3}) || !in.U32(&minor) ||
      !in.U32(&numops)) {
    return total;
  }
  total += tag_len;
  // More ops than the loop runs: one result (TOO_MANY_OPS).
  if (numops > kMaxOpsPerCompound) return total + kSmallOpResult;
  for (uint32_t i = 0; i < numops && total < kMaxCompoundResultBytes; ++i) {
    const size_t start = in.pos();
    uint32_t op = 0, count = 0;
    if (!in.U32(&op)) break;
    bool ok = true;
    switch (op) {
      // The ops of a READ or WRITE COMPOUND, skipped by hand: no allocation, no copy.
      case OP_SEQUENCE:  // sessionid, sequenceid, slotid, highest_slotid, cachethis
        ok = in.Skip(NFS4_SESSIONID_SIZE + 16);
        total += kSmallOpResult;
        break;
      case OP_PUTFH:
        ok = in.SkipOpaque();
        total += kSmallOpResult;
        break;
      case OP_READ:
      case OP_READ_PLUS:  // stateid, offset, count
        ok = in.Skip(16 + 8) && in.U32(&count);
        total += kBulkOpOverhead + count;
        break;
      case OP_WRITE:  // stateid, offset, stable, data
        ok = in.Skip(16 + 8 + 4) && in.SkipOpaque();
        total += kSmallOpResult;
        break;
      // The other ops of the Linux client's common COMPOUNDs.
      case OP_PUTROOTFH:
      case OP_GETFH:
      case OP_SAVEFH:
      case OP_RESTOREFH:
      case OP_LOOKUPP:
        total += kSmallOpResult;
        break;
      case OP_LOOKUP:
        ok = in.SkipOpaque();
        total += kSmallOpResult;
        break;
      case OP_ACCESS:
        ok = in.Skip(4);
        total += kSmallOpResult;
        break;
      case OP_GETATTR: {  // bitmap4: count, words
        uint32_t words = 0;
        ok = in.U32(&words) && words <= NFS4_MAXBITMAP && in.Skip(size_t{words} * 4);
        total += kSmallOpResult;
        break;
      }
      default: {
        // Any other op by rpcgen's routine (it bounds what it allocates by the
        // spec's limits); an op number the loop will not decode ends the list.
        if (FindOp(op) == nullptr || FindOp(op)->has(OpDesc::kRemovedIn41)) {
          return std::min(total + kSmallOpResult, kMaxCompoundResultBytes);
        }
        in.set_pos(start);
        const std::string_view rest = in.rest();
        XDR x;
        xdrmem_create(&x, const_cast<char*>(rest.data()), static_cast<u_int>(rest.size()),
                      XDR_DECODE);
        nfs_argop4 a;
        memset(&a, 0, sizeof(a));
        ok = xdr_nfs_argop4(&x, &a);
        in.set_pos(start + xdr_getpos(&x));
        if (ok && op == OP_READDIR) {
          total += kBulkOpOverhead + a.nfs_argop4_u.opreaddir.maxcount;
        } else {
          total += kSmallOpResult;
        }
        xdr_free(reinterpret_cast<xdrproc_t>(xdr_nfs_argop4), reinterpret_cast<char*>(&a));
        xdr_destroy(&x);
        break;
      }
    }
    if (!ok) break;  // BADXDR or GARBAGE_ARGS there: nothing after it runs
  }
  return std::min(total, kMaxCompoundResultBytes);
}

const rpc::ProcedureDesc* Nfs4Program::procedure(uint32_t proc) const {
  static const std::array<rpc::ProcedureDesc, kNfs4ProcCount> kProcs = {{
      rpc::Procedure<&Nfs4Program::Null, rpc::XdrVoid, rpc::XdrVoid>(
          "NULL", {.flags = rpc::ProcedureDesc::kQuick}),
      rpc::Procedure<&Nfs4Program::Compound, XdrCompound4Args, XdrEncodedCompound4Res>(
          "COMPOUND", {.flags = rpc::ProcedureDesc::kBulkReply,
                       .max_result_bytes = &MaxCompoundResultBytes}),
  }};
  return proc < kProcs.size() ? &kProcs[proc] : nullptr;
}

rpc::DispatchResult Nfs4Program::Compound(rpc::Call& call, const Compound4Args& args,
                                          EncodedCompound4Res& out) {
  const std::string_view record = call.record();
  if (args.ops_len > record.size()) return rpc::DispatchResult::kSystemErr;  // not xdrmem
  COMPOUND4res res{};
  absl::Cleanup free_res = [&res] {
    xdr_free(reinterpret_cast<xdrproc_t>(xdr_COMPOUND4res), reinterpret_cast<char*>(&res));
  };
  // RFC 8881 §16.2.3: the reply echoes the request's tag.
  const u_int tag_len = args.tag.utf8string_len;
  res.tag.utf8string_val = XdrCopy(std::string_view(args.tag.utf8string_val, tag_len));
  res.tag.utf8string_len = tag_len;
  const CompoundHeader header{args.minorversion, args.numops};
  CompoundState cs;
  cs.call = &call;
  cs.services = services_;
  cs.request_bytes = record.size();
  // The COMPOUND4args as received: tag (length, bytes, padding), minor version, op
  // count, ops — what a retry must repeat.
  const size_t header_len = 4 + ((size_t{tag_len} + 3) & ~size_t{3}) + 4 + 4;
  if (header_len <= record.size() - args.ops_len) {
    cs.args_bytes = record.substr(record.size() - args.ops_len - header_len);
  }
  if (!RunCompound(options_.compound, header, record.substr(record.size() - args.ops_len), &res,
                   cs)) {
    return rpc::DispatchResult::kGarbageArgs;
  }
  if (cs.replay != nullptr) {
    out.bytes = new std::shared_ptr<const std::string>(std::move(cs.replay));
    return rpc::DispatchResult::kSuccess;
  }
  if (call.has_bulk()) {
    // READ data by reference (see the header): too large for any slot to keep.
    if (cs.slot != nullptr) cs.slot->Complete(nullptr);
    out.unencoded = new COMPOUND4res(res);
    res = COMPOUND4res{};  // now owned by `out`; the cleanup frees nothing
    return rpc::DispatchResult::kSuccess;
  }
  // Encoded once: these bytes are sent and, with a slot, kept for a retry.
  const u_long size = xdr_sizeof(reinterpret_cast<xdrproc_t>(xdr_COMPOUND4res), &res);
  std::string bytes(size, '\0');
  XDR x;
  xdrmem_create(&x, bytes.data(), static_cast<u_int>(bytes.size()), XDR_ENCODE);
  const bool encoded = xdr_COMPOUND4res(&x, &res) && xdr_getpos(&x) == size;
  xdr_destroy(&x);
  // Not encoded: the slot (if any) is released with nothing kept.
  if (!encoded) return rpc::DispatchResult::kSystemErr;
  auto shared = std::make_shared<const std::string>(std::move(bytes));
  if (cs.slot != nullptr) cs.slot->Complete(shared);
  out.bytes = new std::shared_ptr<const std::string>(std::move(shared));
  return rpc::DispatchResult::kSuccess;
}

}  // namespace localnfs::server::nfs4
