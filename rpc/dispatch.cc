#include "rpc/dispatch.h"

#include <arpa/inet.h>
#include <string.h>

#include <algorithm>
#include <cstddef>
#include <optional>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/string_view.h"
#include "common/log.h"
#include "common/unaligned.h"
#include "rpc/message.h"
#include "rpc/record.h"

namespace localnfs::rpc {
namespace {

// Zeroed scratch space for one call's args or result, reused by the thread's next
// call: avoids two heap allocations per RPC. max_align_t elements keep any rpcgen
// struct correctly aligned.
class ScratchBuffer {
 public:
  void* Zeroed(size_t size) {
    const size_t words = (size + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t);
    if (buf_.size() < words) buf_.resize(words);
    if (words == 0) return buf_.empty() ? nullptr : buf_.data();
    memset(buf_.data(), 0, words * sizeof(std::max_align_t));
    return buf_.data();
  }

 private:
  std::vector<std::max_align_t> buf_;
};

struct ThreadScratch {
  ScratchBuffer args;
  ScratchBuffer result;
  // A one-word dummy for procedures whose args/result size is 0 (xdr_void): the XDR
  // routines still get a valid pointer.
  std::max_align_t empty{};
};

thread_local ThreadScratch scratch;

// Builds a reply of at most `body_size` bytes with `encode`, optionally preceded by
// a record mark. Returns false if encoding failed.
template <typename EncodeFn>
bool BuildReply(bool with_record_mark, size_t body_size, std::string* reply,
                EncodeFn encode) {
  const size_t off = with_record_mark ? kRecordMarkSize : 0;
  reply->assign(off + body_size, '\0');
  XDR x;
  xdrmem_create(&x, reply->data() + off, static_cast<u_int>(body_size), XDR_ENCODE);
  const bool ok = encode(&x);
  const size_t used = xdr_getpos(&x);
  xdr_destroy(&x);
  if (!ok) return false;
  reply->resize(off + used);
  if (with_record_mark) PutRecordMark(static_cast<uint32_t>(used), true, reply->data());
  return true;
}

// Room for the largest fixed reply (an accepted reply with mismatch_info).
constexpr size_t kSmallReplySize = kAcceptedReplyHeaderSize + 8;

// A reply message saved by the duplicate request cache, framed for its transport.
std::string Framed(absl::string_view message, bool with_record_mark) {
  if (!with_record_mark) return std::string(message);
  std::string out(kRecordMarkSize, '\0');
  PutRecordMark(static_cast<uint32_t>(message.size()), true, out.data());
  out.append(message.data(), message.size());
  return out;
}

}  // namespace

void Dispatcher::AddProgram(Program* program) {
  auto& versions = programs_[program->prog()];
  auto it = std::find_if(versions.begin(), versions.end(),
                         [&](Program* p) { return p->vers() == program->vers(); });
  if (it != versions.end()) {
    *it = program;
  } else {
    versions.push_back(program);
  }
  std::sort(versions.begin(), versions.end(),
            [](Program* a, Program* b) { return a->vers() < b->vers(); });
}

std::vector<Program*> Dispatcher::programs() const {
  std::vector<Program*> all;
  for (const auto& [prog, versions] : programs_) {
    all.insert(all.end(), versions.begin(), versions.end());
  }
  std::sort(all.begin(), all.end(), [](Program* a, Program* b) {
    return a->prog() != b->prog() ? a->prog() < b->prog() : a->vers() < b->vers();
  });
  return all;
}

bool Dispatcher::IsQuick(std::string_view record) const {
  // xid, msg_type, rpcvers, prog, vers, proc: the fixed words before the credential.
  constexpr size_t kFixedWords = 6;
  if (record.size() < kFixedWords * 4) return false;
  auto word = [&](size_t i) { return ntohl(LoadUnaligned<uint32_t>(record.data() + 4 * i)); };
  if (word(1) != kMsgCall || word(2) != kRpcVersion) return false;
  const ProcXdr* px = Find(word(3), word(4), word(5)).proc;
  return px != nullptr && px->quick;
}

size_t Dispatcher::ReplySize(std::string_view record) const {
  // The largest reply that carries no result: an accepted reply with mismatch_info.
  constexpr size_t kNoResult = kRecordMarkSize + kSmallReplySize;
  constexpr size_t kFixedWords = 6;  // xid, msg_type, rpcvers, prog, vers, proc
  if (record.size() < kFixedWords * 4) return kNoResult;
  auto word = [&](size_t at) { return ntohl(LoadUnaligned<uint32_t>(record.data() + at)); };
  if (word(4) != kMsgCall || word(8) != kRpcVersion) return kNoResult;
  const ProcXdr* px = Find(word(12), word(16), word(20)).proc;
  if (px == nullptr) return kNoResult;
  // The credential and the verifier: flavor, length, body padded to 4 bytes.
  size_t pos = kFixedWords * 4;
  for (int i = 0; i < 2; ++i) {
    if (record.size() - pos < 8) return kNoResult;
    const size_t body = (static_cast<size_t>(word(pos + 4)) + 3) & ~size_t{3};
    if (record.size() - pos - 8 < body) return kNoResult;
    pos += 8 + body;
  }
  const size_t result = px->max_result_bytes != nullptr ? px->max_result_bytes(record.substr(pos))
                                                   : kDefaultResultSize;
  return kRecordMarkSize + kAcceptedReplyHeaderSize + result;
}

Dispatcher::Found Dispatcher::Find(uint32_t prog, uint32_t vers, uint32_t proc) const {
  Found f;
  auto pit = programs_.find(prog);
  if (pit == programs_.end()) return f;
  f.versions = &pit->second;
  auto vit = std::find_if(f.versions->begin(), f.versions->end(),
                          [&](Program* p) { return p->vers() == vers; });
  if (vit == f.versions->end()) return f;
  f.program = *vit;
  f.proc = proc < f.program->proc_count() ? f.program->procedure(proc) : nullptr;
  return f;
}

bool Dispatcher::Handle(std::string_view record, ConnectionInfo* conn,
                        bool with_record_mark, std::string* reply,
                        DeferredReply deliver_later, bool* would_block,
                        Payload* payload) {
  counters_->calls.fetch_add(1, std::memory_order_relaxed);
  XDR in;
  // XDR_DECODE never writes to the buffer; xdrmem_create just lacks a const overload.
  xdrmem_create(&in, const_cast<char*>(record.data()), static_cast<u_int>(record.size()),
                XDR_DECODE);
  absl::Cleanup destroy_in = [&in] { xdr_destroy(&in); };

  CallHeader h;
  auto accepted = [&](AcceptStat stat, uint32_t low = 0, uint32_t high = 0) {
    return BuildReply(with_record_mark, kSmallReplySize, reply, [&](XDR* x) {
      return EncodeAcceptedReply(x, h.xid, stat, low, high);
    });
  };
  auto auth_error = [&](AuthStat stat) {
    counters_->bad_headers.fetch_add(1, std::memory_order_relaxed);
    return BuildReply(with_record_mark, kSmallReplySize, reply,
                      [&](XDR* x) { return EncodeAuthErrorReply(x, h.xid, stat); });
  };

  switch (DecodeCallHeader(&in, &h)) {
    case HeaderCheck::kOk:
      break;
    case HeaderCheck::kDrop:
      // Without an xid (or for a REPLY) there is nobody to answer.
      counters_->bad_headers.fetch_add(1, std::memory_order_relaxed);
      LOG_WARNING("rpc: dropping a %u-byte record from %s: not an RPC call",
                  record.size(), conn->peer().ToString());
      return false;
    case HeaderCheck::kGarbage:
      counters_->garbage_args.fetch_add(1, std::memory_order_relaxed);
      return accepted(AcceptStat::kGarbageArgs);
    case HeaderCheck::kRpcMismatch:
      counters_->bad_headers.fetch_add(1, std::memory_order_relaxed);
      return BuildReply(with_record_mark, kSmallReplySize, reply,
                        [&](XDR* x) { return EncodeRpcMismatchReply(x, h.xid); });
    case HeaderCheck::kBadCred:
      return auth_error(AuthStat::kBadCred);
    case HeaderCheck::kBadVerf:
      return auth_error(AuthStat::kBadVerf);
    case HeaderCheck::kTooWeak:
      return auth_error(AuthStat::kTooWeak);
  }

  const Found found = Find(h.prog, h.vers, h.proc);
  if (found.versions == nullptr) {
    counters_->bad_headers.fetch_add(1, std::memory_order_relaxed);
    return accepted(AcceptStat::kProgUnavail);
  }
  if (found.program == nullptr) {
    counters_->bad_headers.fetch_add(1, std::memory_order_relaxed);
    return accepted(AcceptStat::kProgMismatch, found.versions->front()->vers(),
                    found.versions->back()->vers());
  }
  Program* program = found.program;
  const ProcXdr* px = found.proc;
  if (px == nullptr) {
    counters_->bad_headers.fetch_add(1, std::memory_order_relaxed);
    return accepted(AcceptStat::kProcUnavail);
  }

  // A retransmit of a non-idempotent call is answered from the cache, never run twice.
  std::optional<DrcKey> drc_key;
  if (drc_ != nullptr && px->non_idempotent) {
    // The header decoded, so the record holds at least the xid.
    drc_key = DrcKey::Of(conn->peer().AddressBytes(), h.xid, h.prog, h.vers, h.proc,
                         absl::string_view(record.data() + 4, record.size() - 4));
    DuplicateRequestCache::Waiter waiter;
    if (deliver_later) {
      waiter = [with_record_mark, deliver = std::move(deliver_later)](
                   absl::string_view message) mutable {
        deliver(Framed(message, with_record_mark));
      };
    }
    DuplicateRequestCache::Lookup found = drc_->Begin(*drc_key, std::move(waiter));
    switch (found.outcome) {
      case DuplicateRequestCache::Outcome::kRun:
        break;
      case DuplicateRequestCache::Outcome::kRunUncached:
        drc_key.reset();
        break;
      case DuplicateRequestCache::Outcome::kReplay:
        counters_->drc_replays.fetch_add(1, std::memory_order_relaxed);
        LOG_DEBUG("rpc: %s %s xid %08x from %s: replayed from the reply cache",
                  program->name(), px->name, h.xid, conn->peer().ToString());
        *reply = Framed(found.reply, with_record_mark);
        return true;
      case DuplicateRequestCache::Outcome::kWaiting:
        counters_->drc_parked.fetch_add(1, std::memory_order_relaxed);
        return false;
      case DuplicateRequestCache::Outcome::kDrop:
        return false;
    }
  }
  // Every path below either completes the cache entry with the SUCCESS reply or
  // abandons it (the client's retransmit then runs the call again).
  bool drc_completed = false;
  absl::Cleanup drc_abandon = [&] {
    if (drc_key && !drc_completed) drc_->Abandon(*drc_key);
  };

  void* args = px->args_size > 0 ? scratch.args.Zeroed(px->args_size) : &scratch.empty;
  void* result =
      px->result_size > 0 ? scratch.result.Zeroed(px->result_size) : &scratch.empty;
  // Frees whatever the decoder or the program allocated, on every path below.
  absl::Cleanup free_xdr = [&] {
    xdr_free(px->decode_args, static_cast<char*>(args));
    xdr_free(px->encode_result, static_cast<char*>(result));
  };

  if (!px->decode_args(&in, args)) {
    counters_->garbage_args.fetch_add(1, std::memory_order_relaxed);
    return accepted(AcceptStat::kGarbageArgs);
  }

  CallContext ctx;
  ctx.xid = h.xid;
  ctx.prog = h.prog;
  ctx.vers = h.vers;
  ctx.proc = h.proc;
  ctx.flavor = h.flavor;
  ctx.cred = std::move(h.cred);
  ctx.machine_name = std::move(h.machine_name);
  ctx.conn = conn;
  ctx.must_not_block = would_block != nullptr;

  switch (program->Dispatch(ctx, args, result)) {
    case DispatchResult::kSuccess:
      break;
    case DispatchResult::kGarbageArgs:
      counters_->garbage_args.fetch_add(1, std::memory_order_relaxed);
      return accepted(AcceptStat::kGarbageArgs);
    case DispatchResult::kSystemErr:
      return accepted(AcceptStat::kSystemErr);
    case DispatchResult::kDrop:
      return false;
    case DispatchResult::kWouldBlock:
      if (would_block == nullptr) {
        LOG_ERROR("rpc: %s procedure %s would block on a worker; replying SYSTEM_ERR",
                  program->name(), px->name);
        return accepted(AcceptStat::kSystemErr);
      }
      // Not run: the worker's run is the one that counts.
      counters_->calls.fetch_sub(1, std::memory_order_relaxed);
      *would_block = true;
      return false;
  }

  // Bulk data leaves the result before encoding: it then ends with the opaque's length
  // word (0), which is patched to the real length; the bytes follow from the buffer.
  Payload bulk;
  // (Never for a reply the duplicate request cache keeps: it saves one string.)
  const bool has_payload = payload != nullptr && !drc_key && px->take_payload != nullptr &&
                           px->take_payload(result, &bulk) && bulk.size > 0;
  const size_t result_bytes = xdr_sizeof(px->encode_result, result);
  const bool encoded = BuildReply(
      with_record_mark, kAcceptedReplyHeaderSize + result_bytes, reply, [&](XDR* x) {
        return EncodeAcceptedReply(x, h.xid, AcceptStat::kSuccess) &&
               px->encode_result(x, result);
      });
  if (!encoded) {
    LOG_WARNING("rpc: %s procedure %s: result does not encode; replying SYSTEM_ERR",
                program->name(), px->name);
    return accepted(AcceptStat::kSystemErr);
  }
  if (has_payload) {
    const size_t off = with_record_mark ? kRecordMarkSize : 0;
    bulk.pad = static_cast<uint32_t>((4 - bulk.size % 4) % 4);
    StoreUnaligned<uint32_t>(reply->data() + reply->size() - 4,
                             htonl(static_cast<uint32_t>(bulk.size)));
    if (with_record_mark) {
      PutRecordMark(static_cast<uint32_t>(reply->size() - off + bulk.wire_size()), true,
                    reply->data());
    }
    *payload = std::move(bulk);
  }
  if (drc_key) {
    const size_t off = with_record_mark ? kRecordMarkSize : 0;
    drc_->Complete(*drc_key, reply->substr(off));
    drc_completed = true;
  }
  return true;
}

}  // namespace localnfs::rpc
