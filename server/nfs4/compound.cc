// server/nfs4/compound.cc — the op table and the COMPOUND loop (see compound.h
// for the rules). Handlers are in nfs4proc.cc, nfs4proc_io.cc, nfs4proc_ns.cc and
// session_ops.cc.
#include "server/nfs4/compound.h"

#include <rpc/rpc.h>
#include <stdlib.h>
#include <string.h>

#include <array>
#include <vector>

#include "server/nfs4/nfs4proc.h"
#include "server/nfs4/nfs4proc_io.h"
#include "server/nfs4/nfs4proc_ns.h"
#include "server/nfs4/services.h"
#include "server/nfs4/state.h"
#include "server/nfs4/session_ops.h"

namespace localnfs::server::nfs4 {
namespace {

constexpr uint32_t kFh = OpDesc::kNeedsCurrentFh;
constexpr uint32_t kSaved = OpDesc::kNeedsSavedFh;
constexpr uint32_t kMod = OpDesc::kModifiesFs;
constexpr uint32_t kFirst = OpDesc::kAllowedAsFirstOp;
constexpr uint32_t kSeq = OpDesc::kMustBeFirst;
constexpr uint32_t kGone = OpDesc::kRemovedIn41;
constexpr uint32_t kGrace = OpDesc::kRefusedInGrace;
constexpr uint32_t kClearSid = OpDesc::kClearsCurrentStateId;

// The one op table, indexed by op number (0..2 undefined). Flags as RFC 8881
// §18 / RFC 7862 §15 describe each op's use of the current and saved
// filehandles; kModifiesFs for ops that always change the file system (OPEN
// decides for itself whether it creates; COMMIT changes nothing a read-only
// export would refuse).
using OpTable = std::array<OpDesc, kLastOp42 + 1>;
constexpr OpTable MakeTable() {
  OpTable t{};
  auto op = [&t](uint32_t n, const char* name, uint32_t flags, uint32_t minor,
                 OpHandler handler = nullptr) {
    t[n] = OpDesc{name, handler, flags, minor};
  };
  // NFSv4.0 (RFC 7530), as 4.1 keeps them.
  op(OP_ACCESS, "ACCESS", kFh, 0, &Access);
  op(OP_CLOSE, "CLOSE", kFh, 0, &Close);
  op(OP_COMMIT, "COMMIT", kFh, 0, &Commit);
  op(OP_CREATE, "CREATE", kFh | kMod, 0, &Create);
  op(OP_DELEGPURGE, "DELEGPURGE", 0, 0);
  op(OP_DELEGRETURN, "DELEGRETURN", kFh, 0, &DelegReturn);
  op(OP_GETATTR, "GETATTR", kFh, 0, &GetAttr);
  op(OP_GETFH, "GETFH", kFh, 0, &GetFh);
  op(OP_LINK, "LINK", kFh | kSaved | kMod, 0, &Link);
  op(OP_LOCK, "LOCK", kFh, 0, &Lock);
  op(OP_LOCKT, "LOCKT", kFh, 0, &LockT);
  op(OP_LOCKU, "LOCKU", kFh, 0, &LockU);
  op(OP_LOOKUP, "LOOKUP", kFh | kClearSid, 0, &Lookup);
  op(OP_LOOKUPP, "LOOKUPP", kFh | kClearSid, 0, &Lookupp);
  op(OP_NVERIFY, "NVERIFY", kFh, 0, &NVerify);
  op(OP_OPEN, "OPEN", kFh, 0, &Open);
  op(OP_OPENATTR, "OPENATTR", kFh, 0);
  op(OP_OPEN_CONFIRM, "OPEN_CONFIRM", kFh | kGone, 0);
  op(OP_OPEN_DOWNGRADE, "OPEN_DOWNGRADE", kFh, 0, &OpenDowngrade);
  op(OP_PUTFH, "PUTFH", kClearSid, 0, &PutFh);
  op(OP_PUTPUBFH, "PUTPUBFH", kClearSid, 0, &PutRootFh);
  op(OP_PUTROOTFH, "PUTROOTFH", kClearSid, 0, &PutRootFh);
  op(OP_READ, "READ", kFh, 0, &Read);
  op(OP_READDIR, "READDIR", kFh, 0, &ReadDir);
  op(OP_READLINK, "READLINK", kFh, 0, &ReadLink);
  op(OP_REMOVE, "REMOVE", kFh | kMod | kGrace, 0, &Remove);
  op(OP_RENAME, "RENAME", kFh | kSaved | kMod | kGrace, 0, &Rename);
  op(OP_RENEW, "RENEW", kGone, 0);
  op(OP_RESTOREFH, "RESTOREFH", kSaved, 0, &RestoreFh);
  op(OP_SAVEFH, "SAVEFH", kFh, 0, &SaveFh);
  op(OP_SECINFO, "SECINFO", kFh, 0, &SecInfo);
  op(OP_SETATTR, "SETATTR", kFh | kMod, 0, &SetAttr);
  op(OP_SETCLIENTID, "SETCLIENTID", kGone, 0);
  op(OP_SETCLIENTID_CONFIRM, "SETCLIENTID_CONFIRM", kGone, 0);
  op(OP_VERIFY, "VERIFY", kFh, 0, &Verify);
  op(OP_WRITE, "WRITE", kFh | kMod, 0, &Write);
  op(OP_RELEASE_LOCKOWNER, "RELEASE_LOCKOWNER", kGone, 0);
  // NFSv4.1 (RFC 8881).
  op(OP_BACKCHANNEL_CTL, "BACKCHANNEL_CTL", 0, 1, &BackchannelCtl);
  op(OP_BIND_CONN_TO_SESSION, "BIND_CONN_TO_SESSION", kFirst, 1, &BindConnToSession);
  op(OP_EXCHANGE_ID, "EXCHANGE_ID", kFirst, 1, &ExchangeId);
  op(OP_CREATE_SESSION, "CREATE_SESSION", kFirst, 1, &CreateSession);
  op(OP_DESTROY_SESSION, "DESTROY_SESSION", kFirst, 1, &DestroySession);
  op(OP_FREE_STATEID, "FREE_STATEID", 0, 1, &FreeStateId);
  op(OP_GET_DIR_DELEGATION, "GET_DIR_DELEGATION", kFh, 1);
  op(OP_GETDEVICEINFO, "GETDEVICEINFO", 0, 1);
  op(OP_GETDEVICELIST, "GETDEVICELIST", kFh, 1);
  op(OP_LAYOUTCOMMIT, "LAYOUTCOMMIT", kFh, 1);
  op(OP_LAYOUTGET, "LAYOUTGET", kFh, 1);
  op(OP_LAYOUTRETURN, "LAYOUTRETURN", kFh, 1);
  op(OP_SECINFO_NO_NAME, "SECINFO_NO_NAME", kFh, 1, &SecInfoNoName);
  op(OP_SEQUENCE, "SEQUENCE", kFirst | kSeq, 1, &Sequence);
  op(OP_SET_SSV, "SET_SSV", 0, 1);
  op(OP_TEST_STATEID, "TEST_STATEID", 0, 1, &TestStateId);
  op(OP_WANT_DELEGATION, "WANT_DELEGATION", kFh, 1);
  op(OP_DESTROY_CLIENTID, "DESTROY_CLIENTID", kFirst, 1, &DestroyClientId);
  op(OP_RECLAIM_COMPLETE, "RECLAIM_COMPLETE", 0, 1, &ReclaimComplete);
  // NFSv4.2 (RFC 7862) and its extended attributes (RFC 8276).
  op(OP_ALLOCATE, "ALLOCATE", kFh | kMod, 2, &Allocate);
  op(OP_COPY, "COPY", kFh | kSaved | kMod, 2, &Copy);
  op(OP_COPY_NOTIFY, "COPY_NOTIFY", kFh, 2);
  op(OP_DEALLOCATE, "DEALLOCATE", kFh | kMod, 2, &Deallocate);
  op(OP_IO_ADVISE, "IO_ADVISE", kFh, 2, &IoAdvise);
  op(OP_LAYOUTERROR, "LAYOUTERROR", kFh, 2);
  op(OP_LAYOUTSTATS, "LAYOUTSTATS", kFh, 2);
  op(OP_OFFLOAD_CANCEL, "OFFLOAD_CANCEL", kFh, 2, &OffloadCancel);
  op(OP_OFFLOAD_STATUS, "OFFLOAD_STATUS", kFh, 2, &OffloadStatus);
  op(OP_READ_PLUS, "READ_PLUS", kFh, 2, &ReadPlus);
  op(OP_SEEK, "SEEK", kFh, 2, &Seek);
  op(OP_WRITE_SAME, "WRITE_SAME", kFh | kMod, 2);
  op(OP_CLONE, "CLONE", kFh | kSaved | kMod, 2, &Clone);
  op(OP_GETXATTR, "GETXATTR", kFh, 2);
  op(OP_SETXATTR, "SETXATTR", kFh | kMod | kGrace, 2);
  op(OP_LISTXATTRS, "LISTXATTRS", kFh, 2);
  op(OP_REMOVEXATTR, "REMOVEXATTR", kFh | kMod | kGrace, 2);
  return t;
}

constexpr OpTable kOps = MakeTable();

// Every op number from ACCESS to REMOVEXATTR has its row, and the minor
// versions are contiguous ranges (what OpDefinedIn relies on).
constexpr bool TableIsComplete() {
  for (uint32_t n = OP_ACCESS; n <= kLastOp42; ++n) {
    if (kOps[n].name == nullptr) return false;
    const uint32_t want = n <= OP_RELEASE_LOCKOWNER ? 0 : n <= kLastOp41 ? 1 : 2;
    if (kOps[n].minor != want) return false;
  }
  return kOps[0].name == nullptr && kOps[1].name == nullptr && kOps[2].name == nullptr;
}
static_assert(TableIsComplete());

// The op number `op` names an operation in a COMPOUND of `minor` (knfsd's
// nfsd4_opnum_in_range: a later minor version's op is OP_ILLEGAL, not NOTSUPP).
bool OpDefinedIn(uint32_t op, uint32_t minor) {
  const OpDesc* d = FindOp(op);
  return d != nullptr && d->minor <= minor;
}

// One op as decoded: its number (OP_ILLEGAL for an undefined one) and
// arguments, or the status that stops the COMPOUND there (OP_ILLEGAL, BADXDR).
struct DecodedOp {
  uint32_t opnum = OP_ILLEGAL;
  nfsstat4 status = NFS4_OK;
  nfs_argop4 args{};

  DecodedOp() = default;
  DecodedOp(const DecodedOp&) = delete;
  DecodedOp& operator=(const DecodedOp&) = delete;
  ~DecodedOp() {
    // A WRITE's data points into the call's record (DecodeWriteInPlace): not ours.
    if (args.argop == OP_WRITE) {
      args.nfs_argop4_u.opwrite.data.data_val = nullptr;
      args.nfs_argop4_u.opwrite.data.data_len = 0;
    }
    xdr_free(reinterpret_cast<xdrproc_t>(xdr_nfs_argop4), reinterpret_cast<char*>(&args));
  }
};

// WRITE4args like rpcgen's xdr_WRITE4args, except that the data is not copied: data_val
// points into the bytes being decoded — the call's record, which outlives the
// COMPOUND — as NFSv3's XdrWrite3ArgsInPlace. One malloc and one copy of up to 1 MiB
// less per WRITE.
bool DecodeWriteInPlace(XDR* x, WRITE4args* a) {
  a->data.data_val = nullptr;
  a->data.data_len = 0;
  if (!xdr_stateid4(x, &a->stateid) || !xdr_offset4(x, &a->offset) ||
      !xdr_stable_how4(x, &a->stable)) {
    return false;
  }
  u_int len = 0;
  if (!xdr_u_int(x, &len)) return false;
  if (len > 0) {
    if (len > UINT32_MAX - 3) return false;
    const u_int padded = (len + 3) & ~3u;  // opaque data is padded to 4 bytes
    void* data = xdr_inline(x, static_cast<int>(padded));
    if (data == nullptr) return false;  // the record ends early (or padded > INT_MAX)
    a->data.data_val = static_cast<char*>(data);
  }
  a->data.data_len = len;
  return true;
}

// Reads the ops of a COMPOUND from its bytes, one at a time.
class OpReader {
 public:
  explicit OpReader(std::string_view ops) {
    // XDR_DECODE never writes through the buffer.
    xdrmem_create(&x_, const_cast<char*>(ops.data()), static_cast<u_int>(ops.size()), XDR_DECODE);
  }
  ~OpReader() { xdr_destroy(&x_); }
  OpReader(const OpReader&) = delete;
  OpReader& operator=(const OpReader&) = delete;

  // Reads the next op into *op: false when not even its number is there (the
  // COMPOUND is cut short: GARBAGE_ARGS, as knfsd). An op number `minor` does
  // not define is read as OP_ILLEGAL (its arguments cannot be found: nothing
  // after it is read), an op removed in 4.1 as NFS4ERR_NOTSUPP; arguments that
  // do not decode are NFS4ERR_BADXDR.
  bool Next(uint32_t minor, bool decode_args, DecodedOp* op) {
    const u_int start = xdr_getpos(&x_);
    uint32_t n = 0;
    if (!xdr_uint32_t(&x_, &n)) return false;
    if (!OpDefinedIn(n, minor)) {
      op->opnum = OP_ILLEGAL;
      op->status = NFS4ERR_OP_ILLEGAL;
      return true;
    }
    op->opnum = n;
    if (!decode_args) return true;
    if (FindOp(n)->has(OpDesc::kRemovedIn41)) {
      // As knfsd: its arguments are not decoded (nothing after it runs anyway).
      op->status = NFS4ERR_NOTSUPP;
      return true;
    }
    if (n == OP_WRITE) {
      op->args.argop = OP_WRITE;
      if (!DecodeWriteInPlace(&x_, &op->args.nfs_argop4_u.opwrite)) op->status = NFS4ERR_BADXDR;
      return true;
    }
    // nfs_argop4's routine reads the op number again (its discriminant).
    if (!xdr_setpos(&x_, start) || !xdr_nfs_argop4(&x_, &op->args)) {
      op->status = NFS4ERR_BADXDR;
    }
    return true;
  }

 private:
  XDR x_;
};

// The result `res` of op `op` that failed with `status` before it ran.
nfsstat4 Refuse(nfs_resop4& res, uint32_t op, nfsstat4 status) {
  res.resop = static_cast<nfs_opnum4>(op);
  SetOpStatus(&res, status);
  return status;
}

}  // namespace

const OpDesc* FindOp(uint32_t op) {
  if (op >= kOps.size() || kOps[op].name == nullptr) return nullptr;
  return &kOps[op];
}

char* XdrCopy(std::string_view bytes) {
  char* p = static_cast<char*>(malloc(bytes.empty() ? 1 : bytes.size()));
  if (p == nullptr) abort();
  if (!bytes.empty()) memcpy(p, bytes.data(), bytes.size());
  return p;
}

void SetOpStatus(nfs_resop4* res, nfsstat4 status) {
  memcpy(&res->nfs_resop4_u, &status, sizeof(status));
}

nfsstat4 OpStatus(const nfs_resop4& res) {
  nfsstat4 status;
  memcpy(&status, &res.nfs_resop4_u, sizeof(status));
  return status;
}

bool RunCompound(const CompoundOptions& options, const CompoundHeader& header, std::string_view ops,
                 COMPOUND4res* res, rpc::Call* call, Nfs4Services* services) {
  CompoundState cs;
  cs.call = call;
  cs.services = services;
  return RunCompound(options, header, ops, res, cs);
}

size_t OpCounters::SlotOf(uint32_t op) { return op < kSlots - 1 ? op : kSlots - 1; }

void OpCounters::Count(uint32_t op, nfsstat4 status) {
  const size_t slot = SlotOf(op);
  const size_t field = 2 * (slot % kPerGroup);
  if (status == NFS4_OK) {
    groups_[slot / kPerGroup].Add(field, 1);
  } else {
    groups_[slot / kPerGroup].Add(field, 1, field + 1, 1);
  }
}

std::vector<OpCounters::Entry> OpCounters::Read() const {
  std::vector<Entry> out;
  for (size_t slot = 0; slot < kSlots; ++slot) {
    const auto& g = groups_[slot / kPerGroup];
    const size_t field = 2 * (slot % kPerGroup);
    const uint64_t calls = g.Sum(field);
    if (calls == 0) continue;
    const uint32_t op = slot == kSlots - 1 ? uint32_t{OP_ILLEGAL} : static_cast<uint32_t>(slot);
    out.push_back(Entry{op, calls, g.Sum(field + 1)});
  }
  return out;
}

namespace {
bool RunOps(const CompoundOptions& options, const CompoundHeader& header, std::string_view ops,
            COMPOUND4res* res, CompoundState& cs);
}  // namespace

bool RunCompound(const CompoundOptions& options, const CompoundHeader& header, std::string_view ops,
                 COMPOUND4res* res, CompoundState& cs) {
  const bool ran = RunOps(options, header, ops, res, cs);
  // The one place ops are counted: every result returned, whatever stopped the loop.
  OpCounters* counters = cs.services != nullptr ? cs.services->op_counters : nullptr;
  if (ran && counters != nullptr && cs.replay == nullptr) {
    for (u_int i = 0; i < res->resarray.resarray_len; ++i) {
      const nfs_resop4& r = res->resarray.resarray_val[i];
      counters->Count(r.resop, OpStatus(r));
    }
  }
  return ran;
}

namespace {

bool RunOps(const CompoundOptions& options, const CompoundHeader& header, std::string_view ops,
            COMPOUND4res* res, CompoundState& cs) {
  res->status = NFS4_OK;
  const uint32_t minor = header.minorversion;
  if (minor < kMinMinorVersion || minor > kMaxMinorVersion) {
    res->status = NFS4ERR_MINOR_VERS_MISMATCH;
    return true;
  }
  if (header.numops == 0) return true;

  OpReader reader(ops);
  const bool too_many = header.numops > kMaxOpsPerCompound;
  // Decoded all before any runs (as knfsd): a COMPOUND cut short is
  // GARBAGE_ARGS with nothing done. Decoding stops at the first op that cannot
  // run (OP_ILLEGAL, BADXDR).
  const uint32_t to_decode = too_many ? 1 : header.numops;
  std::vector<DecodedOp> decoded(to_decode);
  uint32_t count = 0;
  while (count < to_decode) {
    DecodedOp& op = decoded[count];
    if (!reader.Next(minor, /*decode_args=*/!too_many, &op)) return false;
    ++count;
    if (op.status != NFS4_OK) break;
  }

  res->resarray.resarray_val = static_cast<nfs_resop4*>(calloc(count, sizeof(nfs_resop4)));
  if (res->resarray.resarray_val == nullptr) abort();
  auto next_result = [res]() -> nfs_resop4& {
    return res->resarray.resarray_val[res->resarray.resarray_len++];
  };

  const DecodedOp& first = decoded[0];
  if (too_many) {
    res->status = Refuse(next_result(), first.opnum, NFS4ERR_TOO_MANY_OPS);
    return true;
  }
  // The first op's place (knfsd: nfs41_check_op_ordering), before anything
  // runs.
  if (first.status != NFS4ERR_OP_ILLEGAL) {
    const OpDesc& d = *FindOp(first.opnum);
    nfsstat4 status = NFS4_OK;
    if (options.require_sequence && !d.has(OpDesc::kAllowedAsFirstOp)) {
      status = NFS4ERR_OP_NOT_IN_SESSION;
    } else if (d.has(OpDesc::kAllowedAsFirstOp) && !d.has(OpDesc::kMustBeFirst) &&
               header.numops != 1) {
      status = NFS4ERR_NOT_ONLY_OP;
    }
    if (status != NFS4_OK) {
      res->status = Refuse(next_result(), first.opnum, status);
      return true;
    }
  }

  cs.minorversion = minor;
  cs.numops = header.numops;
  if (cs.args_bytes.empty()) cs.args_bytes = ops;
  // The COMPOUND4res's encoded size so far: status, tag, result count.
  size_t reply_bytes = 4 + 4 + ((size_t{res->tag.utf8string_len} + 3) & ~size_t{3}) + 4;
  for (uint32_t i = 0; i < count; ++i) {
    cs.op_index = i;
    const DecodedOp& op = decoded[i];
    nfs_resop4& r = next_result();
    nfsstat4 status = op.status;
    const OpDesc* d = FindOp(op.opnum);
    if (status != NFS4_OK) {
      // OP_ILLEGAL, BADXDR, or NOTSUPP for an op removed in 4.1: found by the
      // reader.
    } else if (i > 0 && d->has(OpDesc::kMustBeFirst)) {
      status = NFS4ERR_SEQUENCE_POS;
    } else if ((d->has(OpDesc::kNeedsCurrentFh) && !cs.current) ||
               (d->has(OpDesc::kNeedsSavedFh) && !cs.saved)) {
      status = NFS4ERR_NOFILEHANDLE;
    } else if (d->has(OpDesc::kModifiesFs) && cs.current && cs.current->read_only) {
      status = NFS4ERR_ROFS;
    } else if (d->has(OpDesc::kRefusedInGrace) && cs.services != nullptr &&
               cs.services->state != nullptr) {
      status = cs.services->state->CheckGrace();
    }
    if (status == NFS4_OK && d->handler == nullptr) {
      status = NFS4ERR_NOTSUPP;
    }
    if (status != NFS4_OK) {
      res->status = Refuse(r, op.opnum, status);
      return true;
    }
    r.resop = static_cast<nfs_opnum4>(op.opnum);
    cs.reply_bytes = reply_bytes;
    status = d->handler(cs, op.args, r);
    SetOpStatus(&r, status);
    res->status = status;
    // A retry: the program answers with the slot's kept reply.
    if (cs.replay != nullptr) return true;
    if (cs.reply_budget != 0) {
      reply_bytes += xdr_sizeof(reinterpret_cast<xdrproc_t>(xdr_nfs_resop4), &r);
      if (reply_bytes > cs.reply_budget) {
        xdr_free(reinterpret_cast<xdrproc_t>(xdr_nfs_resop4), reinterpret_cast<char*>(&r));
        memset(&r, 0, sizeof(r));
        res->status = Refuse(r, op.opnum, cs.reply_budget_status);
        return true;
      }
    }
    if (status != NFS4_OK) return true;
    if (d->has(OpDesc::kClearsCurrentStateId)) cs.current_stateid = {};
  }
  return true;
}

}  // namespace

FileHandle4 PseudoRootHandle() {
  // Only without a namespace (see compound.h): a fixed byte string that no real
  // handle (server/policy/fhandle.h, nfs4/pseudofs.h: authenticated) can equal.
  return FileHandle4{std::string("localnfs:v4-pseudo-root", 23),
                     /*read_only=*/true};
}

}  // namespace localnfs::server::nfs4
