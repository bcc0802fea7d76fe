#include "rpc/dispatch.h"

#include <arpa/inet.h>
#include <string.h>

#include <algorithm>

#include "absl/strings/string_view.h"
#include "common/log.h"
#include "rpc/message.h"
#include "rpc/record.h"
#include "rpc/reply.h"

namespace localnfs::rpc {
namespace {

// Room for the largest fixed reply (an accepted reply with mismatch_info).
constexpr size_t kSmallReplySize = kAcceptedReplyHeaderSize + 8;

// Encodes a reply with `encode` into *reply, preceded by a record mark when asked;
// `bulk`: buffers that may become segments. Returns false if encoding failed (*reply
// then holds no segment).
template <typename EncodeFn>
bool BuildReply(bool with_record_mark, ReplyRecord* reply, EncodeFn encode,
                absl::Span<const BulkRef> bulk = {}) {
  *reply = ReplyRecord(std::string(with_record_mark ? kRecordMarkSize : 0, '\0'));
  ReplyEncoder enc(reply, bulk);
  if (!encode(enc.xdr())) {
    enc.DropBulk();
    return false;
  }
  enc.Finish();
  enc.TakeBulk();
  if (with_record_mark) {
    PutRecordMark(static_cast<uint32_t>(enc.encoded()), true, reply->bytes().data());
  }
  return true;
}

// A reply message saved by the duplicate request cache, framed for its transport.
ReplyRecord Framed(absl::string_view message, bool with_record_mark) {
  if (!with_record_mark) return ReplyRecord(std::string(message));
  std::string out(kRecordMarkSize, '\0');
  PutRecordMark(static_cast<uint32_t>(message.size()), true, out.data());
  out.append(message.data(), message.size());
  return ReplyRecord(std::move(out));
}

}  // namespace

void Dispatcher::AddProgram(Program* program) {
  auto& versions = programs_[program->prog()];
  Registered entry{program, std::make_unique<ProcedureStats[]>(program->proc_count())};
  auto it = std::find_if(versions.begin(), versions.end(),
                         [&](const Registered& r) { return r.program->vers() == program->vers(); });
  if (it != versions.end()) {
    *it = std::move(entry);
  } else {
    versions.push_back(std::move(entry));
  }
  std::sort(versions.begin(), versions.end(), [](const Registered& a, const Registered& b) {
    return a.program->vers() < b.program->vers();
  });
}

std::vector<Program*> Dispatcher::programs() const {
  std::vector<Program*> all;
  for (const auto& [prog, versions] : programs_) {
    for (const Registered& r : versions) all.push_back(r.program);
  }
  std::sort(all.begin(), all.end(), [](Program* a, Program* b) {
    return a->prog() != b->prog() ? a->prog() < b->prog() : a->vers() < b->vers();
  });
  return all;
}

const ProcedureStats* Dispatcher::procedure_stats(const Program& program) const {
  auto pit = programs_.find(program.prog());
  if (pit == programs_.end()) return nullptr;
  for (const Registered& r : pit->second)
    if (r.program == &program) return r.stats.get();
  return nullptr;
}

Dispatcher::Found Dispatcher::Find(uint32_t prog, uint32_t vers, uint32_t proc) const {
  Found f;
  auto pit = programs_.find(prog);
  if (pit == programs_.end()) return f;
  f.versions = &pit->second;
  auto vit = std::find_if(f.versions->begin(), f.versions->end(),
                          [&](const Registered& r) { return r.program->vers() == vers; });
  if (vit == f.versions->end()) return f;
  f.program = vit->program;
  if (proc < f.program->proc_count()) {
    f.proc = f.program->procedure(proc);
    f.stats = &vit->stats[proc];
  }
  return f;
}

std::unique_ptr<Call> Dispatcher::Receive(std::string record, ConnectionInfo* conn) const {
  counters_->calls.fetch_add(1, std::memory_order_relaxed);
  std::unique_ptr<Call> call(new Call(std::move(record), conn));
  call->received_ns_ = MonotonicNowNs();
  // The largest reply that carries no result: an accepted reply with mismatch_info.
  call->reply_bound_ = kRecordMarkSize + kSmallReplySize;
  CallHeader h;
  size_t args_pos = 0;
  call->header_ = DecodeCallHeader(call->record_, &h, &args_pos);
  call->args_pos_ = static_cast<uint32_t>(args_pos);
  CallContext& ctx = call->ctx_;
  ctx.xid = h.xid;
  if (call->header_ != HeaderCheck::kOk) return call;
  ctx.prog = h.prog;
  ctx.vers = h.vers;
  ctx.proc = h.proc;
  ctx.flavor = h.flavor;
  ctx.cred = std::move(h.cred);
  ctx.machine_name = std::move(h.machine_name);

  const Found found = Find(h.prog, h.vers, h.proc);
  if (found.versions == nullptr) {
    call->found_ = Call::Found::kNoProgram;
  } else if (found.program == nullptr) {
    call->found_ = Call::Found::kNoVersion;
    call->low_ = found.versions->front().program->vers();
    call->high_ = found.versions->back().program->vers();
  } else if (found.proc == nullptr) {
    call->found_ = Call::Found::kNoProcedure;
  } else {
    call->found_ = Call::Found::kProcedure;
    call->program_ = found.program;
    call->desc_ = found.proc;
    call->stats_ = found.stats;
    const std::string_view args = std::string_view(call->record_).substr(call->args_pos_);
    const size_t result = found.proc->max_result_bytes != nullptr
                              ? found.proc->max_result_bytes(args)
                              : kDefaultResultSize;
    call->reply_bound_ = kRecordMarkSize + kAcceptedReplyHeaderSize + result;
  }
  return call;
}

Dispatcher::Outcome Dispatcher::RejectCall(Call& call, bool with_record_mark,
                                           ReplyRecord* reply) {
  const uint32_t xid = call.ctx_.xid;
  auto accepted = [&](AcceptStat stat, uint32_t low = 0, uint32_t high = 0) {
    BuildReply(with_record_mark, reply, [&](XDR* x) {
      return EncodeAcceptedReply(x, xid, stat, low, high);
    });
    return Outcome::kReply;
  };
  auto auth_error = [&](AuthStat stat) {
    counters_->bad_headers.fetch_add(1, std::memory_order_relaxed);
    BuildReply(with_record_mark, reply,
               [&](XDR* x) { return EncodeAuthErrorReply(x, xid, stat); });
    return Outcome::kReply;
  };
  switch (call.header_) {
    case HeaderCheck::kOk:
      break;
    case HeaderCheck::kDrop:
      // Without an xid (or for a REPLY) there is nobody to answer.
      counters_->bad_headers.fetch_add(1, std::memory_order_relaxed);
      LOG_WARNING("rpc: dropping a %u-byte record from %s: not an RPC call",
                  call.record_.size(), call.ctx_.conn->peer().ToString());
      return Outcome::kNoReply;
    case HeaderCheck::kGarbage:
      counters_->garbage_args.fetch_add(1, std::memory_order_relaxed);
      return accepted(AcceptStat::kGarbageArgs);
    case HeaderCheck::kRpcMismatch:
      counters_->bad_headers.fetch_add(1, std::memory_order_relaxed);
      BuildReply(with_record_mark, reply,
                 [&](XDR* x) { return EncodeRpcMismatchReply(x, xid); });
      return Outcome::kReply;
    case HeaderCheck::kBadCred:
      return auth_error(AuthStat::kBadCred);
    case HeaderCheck::kBadVerf:
      return auth_error(AuthStat::kBadVerf);
    case HeaderCheck::kTooWeak:
      return auth_error(AuthStat::kTooWeak);
  }
  counters_->bad_headers.fetch_add(1, std::memory_order_relaxed);
  switch (call.found_) {
    case Call::Found::kNoProgram:
      return accepted(AcceptStat::kProgUnavail);
    case Call::Found::kNoVersion:
      return accepted(AcceptStat::kProgMismatch, call.low_, call.high_);
    default:
      return accepted(AcceptStat::kProcUnavail);
  }
}

bool Dispatcher::Decode(Call& call, ReplyRecord* reply, RunOptions& options,
                        Outcome* outcome) {
  const ProcedureDesc& px = *call.desc_;
  const CallContext& ctx = call.ctx_;
  // A retransmit of a non-idempotent call is answered from the cache, never run twice.
  if (drc_ != nullptr && px.non_idempotent()) {
    // The header decoded, so the record holds at least the xid.
    DrcKey key = DrcKey::Of(ctx.conn->peer().AddressBytes(), ctx.xid, ctx.prog, ctx.vers,
                            ctx.proc, absl::string_view(call.record_).substr(4));
    DuplicateRequestCache::Waiter waiter;
    if (options.deliver_later) {
      waiter = [with_record_mark = options.with_record_mark,
                deliver = std::move(options.deliver_later)](
                   absl::string_view message) mutable {
        deliver(Framed(message, with_record_mark));
      };
    }
    DuplicateRequestCache::Lookup found = drc_->Begin(key, std::move(waiter));
    switch (found.outcome) {
      case DuplicateRequestCache::Outcome::kRun:
        call.drc_ = drc_;
        call.drc_key_ = std::move(key);
        break;
      case DuplicateRequestCache::Outcome::kRunUncached:
        break;
      case DuplicateRequestCache::Outcome::kReplay:
        counters_->drc_replays.fetch_add(1, std::memory_order_relaxed);
        LOG_DEBUG("rpc: %s %s xid %08x from %s: replayed from the reply cache",
                  call.program_->name(), px.name, ctx.xid, ctx.conn->peer().ToString());
        *reply = Framed(found.reply, options.with_record_mark);
        *outcome = Outcome::kReply;
        return false;
      case DuplicateRequestCache::Outcome::kWaiting:
        counters_->drc_parked.fetch_add(1, std::memory_order_relaxed);
        *outcome = Outcome::kNoReply;
        return false;
      case DuplicateRequestCache::Outcome::kDrop:
        *outcome = Outcome::kNoReply;
        return false;
    }
  }
  // From here on the call's destructor frees whatever the decoder allocates (also
  // after a partial decode).
  call.AllocateWorkspace();
  XDR in;
  xdrmem_create(&in, call.record_.data() + call.args_pos_,
                static_cast<u_int>(call.record_.size() - call.args_pos_), XDR_DECODE);
  const bool decoded = px.xdr_args(&in, call.args_);
  xdr_destroy(&in);
  if (!decoded) {
    counters_->garbage_args.fetch_add(1, std::memory_order_relaxed);
    // No reply worth keeping: the entry goes (a retransmit runs the call again).
    if (call.drc_key_) drc_->Abandon(*call.drc_key_);
    call.drc_key_.reset();
    BuildReply(options.with_record_mark, reply, [&](XDR* x) {
      return EncodeAcceptedReply(x, ctx.xid, AcceptStat::kGarbageArgs);
    });
    *outcome = Outcome::kReply;
    return false;
  }
  call.stage_ = Call::Stage::kDecoded;
  return true;
}

Dispatcher::Outcome Dispatcher::Run(Call& call, ReplyRecord* reply, RunOptions options) {
  const Outcome outcome = RunSteps(call, reply, options);
  if (outcome != Outcome::kWouldBlock && call.stats_ != nullptr) {
    call.stats_->Record(MonotonicNowNs() - call.received_ns_);
  }
  return outcome;
}

Dispatcher::Outcome Dispatcher::RunSteps(Call& call, ReplyRecord* reply, RunOptions& options) {
  if (call.stage_ == Call::Stage::kReceived) {
    if (call.found_ != Call::Found::kProcedure) {
      return RejectCall(call, options.with_record_mark, reply);
    }
    Outcome outcome;
    if (!Decode(call, reply, options, &outcome)) return outcome;
  }
  const ProcedureDesc& px = *call.desc_;
  CallContext& ctx = call.ctx_;
  ctx.must_not_block = options.must_not_block;
  // Every path below but kWouldBlock ends the call: the cache entry is completed with
  // the SUCCESS reply or abandoned (the client's retransmit then runs the call again).
  auto no_cache = [&] {
    if (call.drc_key_) drc_->Abandon(*call.drc_key_);
    call.drc_key_.reset();
  };
  auto accepted = [&](AcceptStat stat) {
    no_cache();
    BuildReply(options.with_record_mark, reply,
               [&](XDR* x) { return EncodeAcceptedReply(x, ctx.xid, stat); });
    return Outcome::kReply;
  };

  switch (call.program_->Dispatch(call)) {
    case DispatchResult::kSuccess:
      break;
    case DispatchResult::kGarbageArgs:
      counters_->garbage_args.fetch_add(1, std::memory_order_relaxed);
      return accepted(AcceptStat::kGarbageArgs);
    case DispatchResult::kSystemErr:
      return accepted(AcceptStat::kSystemErr);
    case DispatchResult::kDrop:
      no_cache();
      return Outcome::kNoReply;
    case DispatchResult::kWouldBlock:
      if (!options.must_not_block) {
        LOG_ERROR("rpc: %s procedure %s would block on a worker; replying SYSTEM_ERR",
                  call.program_->name(), px.name);
        return accepted(AcceptStat::kSystemErr);
      }
      // Everything stays with the call (arguments, result, the program's state, the
      // cache entry): the worker's run continues it.
      return Outcome::kWouldBlock;
  }

  // Bulk data the handler registered stays in its buffer, a segment of the record
  // (never for a reply the duplicate request cache keeps: it saves one string).
  absl::Span<const BulkRef> bulk;
  if (options.bulk_by_reference && px.bulk_reply() && !call.drc_key_) bulk = call.bulk_;
  const bool encoded = BuildReply(
      options.with_record_mark, reply,
      [&](XDR* x) {
        return EncodeAcceptedReply(x, ctx.xid, AcceptStat::kSuccess) &&
               px.xdr_result(x, call.result_);
      },
      bulk);
  if (!encoded) {
    LOG_WARNING("rpc: %s procedure %s: result does not encode; replying SYSTEM_ERR",
                call.program_->name(), px.name);
    return accepted(AcceptStat::kSystemErr);
  }
  if (call.drc_key_) {
    const size_t off = options.with_record_mark ? kRecordMarkSize : 0;
    drc_->Complete(*call.drc_key_, reply->bytes().substr(off));
    call.drc_key_.reset();
  }
  return Outcome::kReply;
}

std::optional<std::string> Dispatcher::Handle(std::string record, ConnectionInfo* conn,
                                              bool with_record_mark) {
  std::unique_ptr<Call> call = Receive(std::move(record), conn);
  ReplyRecord reply;
  RunOptions options;
  options.with_record_mark = with_record_mark;
  if (Run(*call, &reply, std::move(options)) != Outcome::kReply) return std::nullopt;
  return reply.Flatten();
}

}  // namespace localnfs::rpc
