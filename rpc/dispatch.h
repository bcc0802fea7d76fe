// rpc/dispatch.h — the one place where an RPC call record becomes a reply.
//
// Owns: the program/version table (Programs themselves are not owned) and the
// per-thread scratch buffers for decoded arguments and results.
//
// For each call record it: decodes and checks the call header (rpc/message.h), looks
// up program, version and procedure, decodes the arguments with the procedure's XDR
// routine into a zeroed buffer of args_size, runs Program::Dispatch, encodes the reply
// header and the result, and xdr_free()s arguments and result on every path (also
// after a partial decode, which rpcgen routines handle). Counters go to the
// ServerCounters given at construction.
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
//               kSystemErr → SYSTEM_ERR, kDrop → no reply.
//
// Duplicate request cache (rpc/drc.h), when one is given: for a procedure marked
// ProcXdr::non_idempotent, after the procedure is found and before its arguments are
// decoded, the call is looked up by (peer IP, xid, prog, vers, proc, call bytes).
// A retransmit of a finished call gets the saved reply; one of a call still running is
// parked and its reply goes out later through `deliver_later`; only SUCCESS replies are
// saved (any other outcome abandons the entry, so a retransmit runs the call again).
//
// Thread-safety: AddProgram before the first Handle; Handle concurrently from any
// number of threads.
#pragma once

#include <stdint.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "rpc/drc.h"
#include "rpc/program.h"
#include "rpc/server.h"

namespace localnfs::rpc {

class Dispatcher {
 public:
  // Sends a reply that became available after Handle() returned (a parked retransmit;
  // the reply is framed like Handle's). May run on any worker thread.
  using DeferredReply = absl::AnyInvocable<void(std::string reply)>;

  // `counters` and `drc` (nullptr = no duplicate request cache) must outlive the
  // dispatcher.
  explicit Dispatcher(ServerCounters* counters, DuplicateRequestCache* drc = nullptr)
      : counters_(counters), drc_(drc) {}

  // Registers one program version. A second registration of the same (prog, vers)
  // replaces the first.
  void AddProgram(Program* program);

  // Every registered program version, ordered by (prog, vers).
  std::vector<Program*> programs() const;

  // Processes one call record. Returns false when nothing is to be sent; otherwise
  // *reply is the reply message, preceded by a 4-byte record mark (one last fragment)
  // when `with_record_mark` (TCP), bare for datagrams. `deliver_later` is kept only
  // when the call is a parked retransmit (see above); without one such a retransmit
  // is dropped.
  // `would_block` non-null: the call runs on the event-loop thread and must not wait
  // for the disk (CallContext::must_not_block); when the program says it would, false
  // is returned, *would_block is set and nothing was counted or done — the caller runs
  // the record again with Handle() on a worker.
  // `payload` non-null (TCP): a result with bulk data (ProcXdr::take_payload) is not
  // copied into *reply; the record is then *reply followed by the payload's bytes and
  // padding (the record mark counts them). Otherwise *reply is the whole record.
  bool Handle(std::string_view record, ConnectionInfo* conn, bool with_record_mark,
              std::string* reply, DeferredReply deliver_later = nullptr,
              bool* would_block = nullptr, Payload* payload = nullptr);

  // True when `record` (without record mark) is a call of a procedure marked
  // ProcXdr::quick. Reads only the fixed part of the call header; a record that is
  // not such a call (malformed ones included) is not quick.
  bool IsQuick(std::string_view record) const;

  // The most bytes the reply to `record` (without record mark) can take, record mark
  // included: the reply header and the procedure's ProcXdr::max_result_bytes (or
  // kDefaultResultSize). Reads the call header and the argument bytes without decoding
  // them; a record that is not a call of a known procedure gets a small answer (its
  // reply is an error). Safe on any bytes.
  size_t ReplySize(std::string_view record) const;

 private:
  // Where (prog, vers, proc) leads: `versions` null → unknown program; `program` null →
  // no such version; `proc` null → no such procedure.
  struct Found {
    const std::vector<Program*>* versions = nullptr;
    Program* program = nullptr;
    const ProcXdr* proc = nullptr;
  };
  Found Find(uint32_t prog, uint32_t vers, uint32_t proc) const;

  ServerCounters* const counters_;
  DuplicateRequestCache* const drc_;
  // prog → its versions, sorted by vers.
  absl::flat_hash_map<uint32_t, std::vector<Program*>> programs_;
};

}  // namespace localnfs::rpc
