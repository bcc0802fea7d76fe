// rpc/dispatch.h — the one place where an RPC call record becomes a reply (the
// kernel's svc_process), and where the rpc flags of the procedures are enforced.
//
// Owns: the program/version table (Programs themselves are not owned) and, for each
// registered program version, one ProcedureStats per procedure (rpc/procedure_stats.h):
// every call of every program is counted and timed here, once, when it ends — the one
// place for all programs. Server-wide counters go to the ServerCounters given at
// construction.
//
// Two steps, each done once per call (rpc/call.h):
//  Receive (the event loop, as a record is read): decodes and checks the call header,
//    looks up program, version and procedure, and bounds the reply from the argument
//    bytes (ProcedureDesc::max_result_bytes or kDefaultResultSize) — what the server
//    reserves before it starts the call, and whether the call is quick.
//  Run (a worker, or the event loop for a quick call): answers a call whose header
//    failed; consults the duplicate request cache; decodes the arguments with the
//    procedure's XDR routine into zeroed storage; runs Program::Dispatch; encodes the
//    reply header and the result (rpc/reply.h: bulk data the handler registered goes
//    out by reference, wherever it sits in the result, for a procedure marked
//    kBulkReply on a transport that takes segments). Arguments and result are freed
//    (xdr_free) when the call is destroyed, on every path (also after a partial
//    decode, which rpcgen routines handle). With must_not_block (the event loop), a program that would
//    block returns kWouldBlock: Run returns kWouldBlock with the call as it is, and
//    the next Run (on a worker) continues it — the arguments are not decoded again,
//    the cache not consulted again, nothing counted again.
//
// Replies the dispatcher gives (RFC 5531):
//   record shorter than xid + msg_type, or not a CALL   → no reply, a log line
//   xid + CALL readable, rest of the fixed header cut    → MSG_ACCEPTED GARBAGE_ARGS
//   rpcvers != 2                                         → MSG_DENIED RPC_MISMATCH 2..2
//   malformed credential / verifier                      → AUTH_ERROR BADCRED / BADVERF
//   flavor other than AUTH_NONE, AUTH_SYS                → AUTH_ERROR TOOWEAK
//   unknown program                                      → PROG_UNAVAIL
//   known program, unregistered version                  → PROG_MISMATCH lowest..highest
//   proc >= proc_count() or procedure() == nullptr       → PROC_UNAVAIL
//   arguments that do not decode (trailing bytes are ignored) → GARBAGE_ARGS
//   Dispatch(): kSuccess → SUCCESS + result, kGarbageArgs → GARBAGE_ARGS,
//               kSystemErr → SYSTEM_ERR, kDrop → no reply, kWouldBlock on a worker
//               (a program error) → SYSTEM_ERR.
//
// Duplicate request cache (rpc/drc.h), when one is given: for a procedure marked
// ProcedureDesc::kNonIdempotent, before its arguments are decoded, the call is looked
// up by (peer IP, xid, prog, vers, proc, call bytes). A retransmit of a finished call
// gets the saved reply; one of a call still running is parked and its reply goes out
// later through `deliver_later`; only SUCCESS replies are saved (any other outcome
// abandons the entry, so a retransmit runs the call again). The entry belongs to the
// call until then, also while the call moves to a worker.
//
// Thread-safety: AddProgram before the first Receive; Receive and Run concurrently
// from any number of threads (each on its own calls).
#pragma once

#include <stdint.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "rpc/call.h"
#include "rpc/drc.h"
#include "rpc/procedure.h"
#include "rpc/procedure_stats.h"
#include "rpc/program.h"
#include "rpc/reply.h"
#include "rpc/server.h"

namespace localnfs::rpc {

class Dispatcher {
 public:
  // Sends a reply that became available after Run() returned (a parked retransmit;
  // the reply is framed like Run's). May run on any worker thread.
  using DeferredReply = absl::AnyInvocable<void(ReplyRecord reply)>;

  // `counters` and `drc` (nullptr = no duplicate request cache) must outlive the
  // dispatcher.
  explicit Dispatcher(ServerCounters* counters, DuplicateRequestCache* drc = nullptr)
      : counters_(counters), drc_(drc) {}

  // Registers one program version. A second registration of the same (prog, vers)
  // replaces the first.
  void AddProgram(Program* program);

  // Every registered program version, ordered by (prog, vers).
  std::vector<Program*> programs() const;

  // The calls and latencies of `program`'s procedures, indexed by procedure number
  // (program.proc_count() entries), or nullptr when it is not registered. Valid as long
  // as the dispatcher and the registration; readable from any thread while calls run.
  const ProcedureStats* procedure_stats(const Program& program) const;

  // The first step (above): a call made of `record` (without record mark) from `conn`
  // (which must outlive the call). Never null; counted in ServerCounters::calls.
  std::unique_ptr<Call> Receive(std::string record, ConnectionInfo* conn) const;

  struct RunOptions {
    // TCP: the reply is preceded by a 4-byte record mark (one last fragment); bare
    // for datagrams.
    bool with_record_mark = true;
    // The event loop: the program must not wait for the disk (above).
    bool must_not_block = false;
    // TCP: bulk data registered by a procedure marked kBulkReply stays in its buffer,
    // a segment of the reply record (rpc/reply.h); otherwise it is copied. Never for
    // a reply the duplicate request cache keeps (it saves one string).
    bool bulk_by_reference = false;
    // Kept only when the call is a parked retransmit (see above); without one such a
    // retransmit is dropped.
    DeferredReply deliver_later;
  };
  enum class Outcome {
    kReply,       // *reply is to be sent
    kNoReply,     // nothing to send (dropped, parked)
    kWouldBlock,  // only with must_not_block: run the call again on a worker
  };
  // The second step (above), or its continuation after kWouldBlock. A call of a
  // procedure that ends here (any outcome but kWouldBlock) is recorded in its
  // procedure's stats.
  Outcome Run(Call& call, ReplyRecord* reply, RunOptions options);

  // Both steps on this thread, as a worker does them (tests, fuzz targets): the
  // reply record (flattened), or nullopt when there is none.
  std::optional<std::string> Handle(std::string record, ConnectionInfo* conn,
                                    bool with_record_mark);

 private:
  // Where (prog, vers, proc) leads: `versions` null → unknown program; `program` null →
  // no such version; `proc` null → no such procedure.
  struct Registered {
    Program* program;
    std::unique_ptr<ProcedureStats[]> stats;  // program->proc_count() entries
  };
  struct Found {
    const std::vector<Registered>* versions = nullptr;
    Program* program = nullptr;
    const ProcedureDesc* proc = nullptr;
    ProcedureStats* stats = nullptr;  // the procedure's
  };
  Found Find(uint32_t prog, uint32_t vers, uint32_t proc) const;
  // The reply of a call whose header or procedure lookup failed (Found != kProcedure).
  Outcome RejectCall(Call& call, bool with_record_mark, ReplyRecord* reply);
  // Run without the recording of its end.
  Outcome RunSteps(Call& call, ReplyRecord* reply, RunOptions& options);
  // Run from the duplicate request cache lookup to the decoded arguments; false with
  // *outcome set when the call ends there.
  bool Decode(Call& call, ReplyRecord* reply, RunOptions& options, Outcome* outcome);

  ServerCounters* const counters_;
  DuplicateRequestCache* const drc_;
  // prog → its versions, sorted by vers.
  absl::flat_hash_map<uint32_t, std::vector<Registered>> programs_;
};

}  // namespace localnfs::rpc
