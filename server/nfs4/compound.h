// server/nfs4/compound.h — the NFSv4.1/4.2 COMPOUND framework: the one op table and the
// one loop that enforces its rules (the kernel's nfsd4_ops[] and nfsd4_proc_compound()).
//
// Owns: the op table (one OpDesc per operation number: name, handler, flags, the minor
// version that introduced it), the compound state handed to handlers (CompoundState:
// current and saved filehandle, minor version; the session slot later), and
// RunCompound(), which decodes the ops of a COMPOUND one by one and runs them.
//
// The rules, all enforced in RunCompound and never in a handler (RFC 8881 §16.2.3 and
// §15.2 for COMPOUND; RFC 7862 for 4.2):
//  - minorversion other than 1 and 2 → NFS4ERR_MINOR_VERS_MISMATCH, zero results (0 is
//    NFSv4.0, which this server does not speak: its clients fall back to 4.1 or v3);
//  - more than kMaxOpsPerCompound ops → one result, the first op's, with
//    NFS4ERR_TOO_MANY_OPS, and nothing runs (RFC 8881 §2.10.6.4 / §18.46.3: the error
//    SEQUENCE gives when the count exceeds ca_maxoperations; before a session is known
//    this limit stands in for it);
//  - an op number this minor version does not define (0..2, 4.2's ops in a 4.1
//    COMPOUND, anything past REMOVEXATTR, OP_ILLEGAL itself) → a result OP_ILLEGAL with
//    NFS4ERR_OP_ILLEGAL (RFC 8881 §18.51; 4.2-in-4.1 as knfsd's nfsd4_opnum_in_range);
//  - arguments that do not decode → NFS4ERR_BADXDR for that op; ops cut short before
//    an op number → GARBAGE_ARGS for the whole call (as knfsd; nothing has run, since
//    every op is decoded before the first runs);
//  - the first op (CompoundOptions::require_sequence): SEQUENCE or one flagged
//    kAllowedAsFirstOp (EXCHANGE_ID, CREATE_SESSION, DESTROY_SESSION,
//    BIND_CONN_TO_SESSION, DESTROY_CLIENTID); any other → NFS4ERR_OP_NOT_IN_SESSION on
//    the first op (RFC 8881 §18.46.3, §18.50.3). A first op other than SEQUENCE must be
//    the only op → NFS4ERR_NOT_ONLY_OP (§18.35.3, §18.36.3, §18.50.3; knfsd's
//    nfs41_check_op_ordering). Both are decided before any op runs;
//  - kMustBeFirst (SEQUENCE) anywhere but first → NFS4ERR_SEQUENCE_POS (§18.46.3);
//  - ops removed in 4.1 (kRemovedIn41: SETCLIENTID, SETCLIENTID_CONFIRM, OPEN_CONFIRM,
//    RENEW, RELEASE_LOCKOWNER; "MUST NOT implement" in RFC 8881 §17) → NFS4ERR_NOTSUPP
//    without decoding their arguments, as knfsd answers them;
//  - kNeedsCurrentFh without a current filehandle, kNeedsSavedFh without a saved one →
//    NFS4ERR_NOFILEHANDLE;
//  - kModifiesFs while the current filehandle is read-only (a pseudo directory, an
//    object of a read-only export: pseudofs.h) → NFS4ERR_ROFS;
//  - kRefusedInGrace (REMOVE, RENAME, SETXATTR, REMOVEXATTR: they would change what a
//    reclaim expects to find) while the server is in its grace period after a restart
//    → NFS4ERR_GRACE (Nfs4State::CheckGrace; knfsd's opens_in_grace checks in
//    nfsd4_remove, nfsd4_rename, nfsd4_setxattr, nfsd4_removexattr);
//  - an op without a handler (not implemented yet) → NFS4ERR_NOTSUPP;
//  - the reply budget SEQUENCE set (CompoundState::reply_budget, from the session's
//    ca_maxresponsesize, or ca_maxresponsesize_cached when sa_cachethis): after each op
//    the encoded size of the results so far is added up; the op whose result crosses
//    the budget gets NFS4ERR_REP_TOO_BIG (or NFS4ERR_REP_TOO_BIG_TO_CACHE) instead of
//    its result, and the COMPOUND stops there (RFC 8881 §2.10.6.4, §18.46.3). The op
//    has run by then: harmless for the ops that exist (their results are small); ops
//    with large results and side effects (READ/READDIR are large but have none; WRITE
//    has a small result) will check an estimate before they run, as knfsd's
//    op_rsize_bop.
//  - a SEQUENCE that found a retry (CompoundState::replay set) ends the COMPOUND at
//    once: the program sends the slot's kept reply instead of these results
//    (nfs4_program.h "The reply cache").
// The session limits SEQUENCE checks itself, before it takes the slot, in knfsd's order
// (Nfs4State::Sequence): ca_maxoperations against CompoundState::numops
// (NFS4ERR_TOO_MANY_OPS), ca_maxrequestsize against CompoundState::request_bytes
// (NFS4ERR_REQ_TOO_BIG) — facts the loop and the program give it, so no other handler
// ever looks at a limit.
// Execution stops at the first op whose status is not NFS4_OK; the results so far (that
// op's included) are returned and the COMPOUND's status is the last op's.
// Every result the loop returns — run, or refused by a rule above — is counted per op
// number in Nfs4Services::op_counters (OpCounters: calls and errors), once, in
// RunCompound: no handler counts. A retry answered from the slot's kept reply runs
// nothing and is not counted again.
//
// Adding an operation = filling its row in compound.cc (flags, handler) and writing the
// handler in nfs4proc.cc: `nfsstat4 Handler(CompoundState&, const nfs_argop4&,
// nfs_resop4&)` fills its arm of the result (the loop sets the result's op number and
// writes the returned status into it).
//
// Thread-safety: the table is immutable; RunCompound touches only its arguments.
#pragma once

#include <stdint.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/sharded_counter.h"
#include "rpc/nfs4.h"

namespace localnfs::rpc {
class Call;
}

namespace localnfs::server::nfs4 {

// What handlers reach beyond their COMPOUND: the server's NFSv4 state and the
// namespace (server/nfs4/services.h). Not owned; outlives every COMPOUND.
struct Nfs4Services;
// A COMPOUND's hold on its session slot (server/nfs4/state.h).
class SlotHold;

// The most ops one COMPOUND may carry: knfsd's NFSD_MAX_OPS_PER_COMPOUND (200 in
// current kernels, 50 before; the Linux client sends far fewer). The session's
// ca_maxoperations will be at most this.
inline constexpr uint32_t kMaxOpsPerCompound = 200;
// Minor versions served.
inline constexpr uint32_t kMinMinorVersion = 1;
inline constexpr uint32_t kMaxMinorVersion = 2;
// The highest op number each minor version defines (RFC 8881, RFC 7862 + RFC
// 8276).
inline constexpr uint32_t kLastOp41 = OP_RECLAIM_COMPLETE;  // 58
inline constexpr uint32_t kLastOp42 = OP_REMOVEXATTR;       // 75

// What a filehandle names (pseudofs.h): a pseudo directory, or an export's object
// authorised and resolved as NFSv3 does.
struct Nfs4Object;

// A filehandle as the compound state keeps it.
struct FileHandle4 {
  std::string bytes;       // as on the wire (at most NFS4_FHSIZE)
  bool read_only = false;  // changes refused with NFS4ERR_ROFS (pseudo fs, ro export)
  // Set by the namespace (pseudofs.h); null only without one (tests of the loop).
  // Shared: SAVEFH/RESTOREFH copy the handle, never the object.
  std::shared_ptr<const Nfs4Object> object;
};

// What one COMPOUND's ops share (RFC 8881 §16.2.3 "current filehandle"): handed
// to every handler, lives for one COMPOUND.
struct CompoundState {
  uint32_t minorversion = 0;
  // The RPC call carrying the COMPOUND (its connection, credentials); null only
  // in unit tests and the fuzz target, which run ops that need neither.
  rpc::Call* call = nullptr;
  Nfs4Services* services = nullptr;  // null only where `call` is
  std::optional<FileHandle4> current;
  std::optional<FileHandle4> saved;

  // What SEQUENCE checks against the session: the op count and the op being run (set
  // by RunCompound), the RPC call's size without record mark (set by the program), and
  // the COMPOUND's argument bytes — tag, minor version, ops — that a retry must repeat
  // (set by the program; RunCompound sets the ops' bytes when it is left empty).
  uint32_t numops = 0;
  uint32_t op_index = 0;
  size_t request_bytes = 0;
  std::string_view args_bytes;
  // Set by SEQUENCE for a new request: the slot this COMPOUND holds; the program gives
  // it the encoded reply to keep (or, destroyed without one, it keeps none).
  std::shared_ptr<SlotHold> slot;
  // Set by SEQUENCE for a retry: the kept reply, sent instead of running anything.
  std::shared_ptr<const std::string> replay;
  // Set by SEQUENCE: the most bytes the COMPOUND4res may encode to (0: no limit), and
  // the status of the op that crosses it.
  size_t reply_budget = 0;
  nfsstat4 reply_budget_status = NFS4ERR_REP_TOO_BIG;
  // The encoded size of the results before the op being run (set by RunCompound when
  // there is a budget): an op whose result size it chooses (READDIR's maxcount) keeps
  // within reply_budget - reply_bytes, as knfsd bounds it by the space left.
  size_t reply_bytes = 0;

  // The current stateid (RFC 8881 §16.2.3.1.2): the stateid the last OPEN,
  // OPEN_DOWNGRADE, CLOSE, LOCK or LOCKU of this COMPOUND returned, for the filehandle
  // that was current then. As knfsd: cleared by the ops that put a filehandle
  // (OpDesc::kClearsCurrentStateId), saved by SAVEFH and made current again by
  // RESTOREFH with the saved filehandle. The special stateid "current" (seqid 1, other
  // zero) stands for it while it is set and its filehandle is still the current one;
  // otherwise it is NFS4ERR_BAD_STATEID (knfsd's get_stateid on a cleared current
  // stateid). Set and used by the stateful ops (nfs4proc_io.cc).
  struct CurrentStateId {
    bool set = false;
    stateid4 stateid{};
    std::string fh;  // the current filehandle's bytes when it was set
  };
  CurrentStateId current_stateid;
  CurrentStateId saved_stateid;

  // The object whose attributes (obj.attrs()) the op at index resolved_at read from the
  // file system as it made the object current (PUTFH, PUTROOTFH, LOOKUP, LOOKUPP:
  // nfs4proc.cc SetCurrent). A GETATTR right after it — the client's revalidation,
  // SEQUENCE PUTFH GETATTR — answers from them instead of with a second stat (the
  // backend's one stat per request, as NFSv3's GETATTR); after any other op in between
  // they may be stale, and GETATTR reads them again.
  const Nfs4Object* resolved = nullptr;
  uint32_t resolved_at = 0;
};

// Calls and errors (a status other than NFS4_OK) per op number, OP_ILLEGAL included:
// what status shows. Sharded (common/sharded_counter.h): COMPOUNDs on every worker add.
// Thread-safety: Count and Read from any thread.
class OpCounters {
 public:
  void Count(uint32_t op, nfsstat4 status);
  struct Entry {
    uint32_t op = 0;
    uint64_t calls = 0, errors = 0;
  };
  // The ops counted at least once, by op number.
  std::vector<Entry> Read() const;

 private:
  // Four ops per cache line (calls, errors each); the last slot is OP_ILLEGAL.
  static constexpr size_t kSlots = kLastOp42 + 2;
  static constexpr size_t kPerGroup = 4;
  static size_t SlotOf(uint32_t op);
  std::array<ShardedCounters<2 * kPerGroup>, (kSlots + kPerGroup - 1) / kPerGroup> groups_;
};

using OpHandler = nfsstat4 (*)(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res);

struct OpDesc {
  // Flags (see the header comment for what the loop does with each).
  static constexpr uint32_t kNeedsCurrentFh = 1u << 0;
  static constexpr uint32_t kNeedsSavedFh = 1u << 1;
  static constexpr uint32_t kModifiesFs = 1u << 2;
  static constexpr uint32_t kAllowedAsFirstOp = 1u << 3;  // may start a COMPOUND without SEQUENCE
  static constexpr uint32_t kMustBeFirst = 1u << 4;       // SEQUENCE
  static constexpr uint32_t kRemovedIn41 = 1u << 5;       // NFSv4.0 only: NOTSUPP in 4.1+
  static constexpr uint32_t kRefusedInGrace = 1u << 6;    // NFS4ERR_GRACE in grace
  // Done, it clears the current stateid (knfsd's OP_CLEAR_STATEID: PUTFH, PUTPUBFH,
  // PUTROOTFH, LOOKUP, LOOKUPP).
  static constexpr uint32_t kClearsCurrentStateId = 1u << 7;

  const char* name = nullptr;   // "PUTFH"; nullptr: no such op number
  OpHandler handler = nullptr;  // nullptr: not implemented (NFS4ERR_NOTSUPP)
  uint32_t flags = 0;
  uint32_t minor = 0;  // the minor version that introduced it (0, 1 or 2)

  bool has(uint32_t f) const { return (flags & f) != 0; }
};

// The row of `op`, or nullptr for a number no minor version defines (OP_ILLEGAL
// included: it has no arguments and only one answer).
const OpDesc* FindOp(uint32_t op);

struct CompoundOptions {
  // RFC 8881 §2.6.3.1.1.x: a COMPOUND starts with SEQUENCE (or an op allowed
  // before a session). Off only in tests of the other rules, until SEQUENCE
  // exists.
  bool require_sequence = true;
};

// A COMPOUND's header as decoded: the tag is echoed, the ops are decoded here.
struct CompoundHeader {
  uint32_t minorversion = 0;
  uint32_t numops = 0;
};

// Runs the COMPOUND whose ops (numops of them, as the header says) are encoded
// in `ops` (the bytes after the op count; trailing bytes are ignored) into
// `res`, which must be zeroed; sets res->status and res->resarray (malloc'd:
// freed with the rest of the result by xdr_free(xdr_COMPOUND4res)). Every
// problem of an op is a status of the COMPOUND; false only when the ops are cut
// short before an op number (the RPC answer is GARBAGE_ARGS, as knfsd's;
// nothing ran: all ops are decoded before the first runs). Does not touch
// res->tag.
// `call` and `services` are handed to the handlers (CompoundState).
bool RunCompound(const CompoundOptions& options, const CompoundHeader& header, std::string_view ops,
                 COMPOUND4res* res, rpc::Call* call = nullptr, Nfs4Services* services = nullptr);
// The same with a compound state the caller made (call, services, request_bytes
// filled) and looks at afterwards (slot, replay). res->tag must be set already (the
// reply budget counts it).
bool RunCompound(const CompoundOptions& options, const CompoundHeader& header, std::string_view ops,
                 COMPOUND4res* res, CompoundState& cs);

// Sets the status of an op's result, whatever its op: every nfs_resop4 arm
// starts with its nfsstat4 (rpc/nfs4_xdr_test.cc
// EveryOperationCanAnswerAnError).
void SetOpStatus(nfs_resop4* res, nfsstat4 status);
// A malloc'd copy of `bytes` for an opaque or string of a result, freed with it by
// xdr_free (mem_free is free); never malloc(0).
char* XdrCopy(std::string_view bytes);
nfsstat4 OpStatus(const nfs_resop4& res);

// The root PUTROOTFH gives without a namespace (CompoundState::services null:
// tests of the loop alone): a fixed, read-only handle that names nothing else;
// PUTFH of these bytes gets it back. With one, the root is pseudofs.h's.
FileHandle4 PseudoRootHandle();

}  // namespace localnfs::server::nfs4
