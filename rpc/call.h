// rpc/call.h — one RPC call, from its record to its reply: the kernel's struct
// svc_rqst.
//
// Owns: the call's record (the decoded arguments may point into it: WRITE's data is
// not copied), the decoded call header as the request context (CallContext: ids,
// credentials as sent, connection), the procedure found for it, its decoded arguments
// and its result, the bulk buffers of the result registered to go out by reference,
// the program's state of the call, and the duplicate-request-cache entry it holds
// while it runs.
//
// Lifecycle (rpc/dispatch.h): Dispatcher::Receive makes it from a record — the call
// header decoded and checked once, the procedure looked up, the reply bounded (what
// the server reserves before it starts it). Dispatcher::Run then decodes the
// arguments (once) and runs the program's pipeline; when the pipeline says it would
// block on the event loop, Run returns with everything kept — arguments, result, the
// program's state (its resolved export, objects, squashed credentials), the cache
// entry — and the call moves to a worker as it is, where the next Run continues from
// the step that would have blocked. Nothing is decoded, authorised or counted twice.
// The destructor frees what the XDR routines allocated (xdr_free of arguments and
// result), destroys the program's state and gives up a cache entry not completed.
//
// The program's state of the call: Program::call_state_size() bytes kept in the call
// for the program's pipeline (EmplaceState once, state() on every later run). It is
// destroyed with the call, on whatever thread that happens.
//
// Thread-safety: a Call is owned by one thread at a time (the event loop, then one
// worker); it is handed over with the queue's lock, never shared.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "rpc/drc.h"
#include "rpc/message.h"
#include "rpc/program.h"
#include "rpc/reply.h"

namespace localnfs::rpc {

class ProcedureStats;

// The size from which a READ's data is registered as bulk (Call::AddBulk): below it,
// copying the data into the reply costs less than an iovec of its own.
inline constexpr size_t kMinBulkBytes = 16 * 1024;

class Call {
 public:
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;
  ~Call();

  // The request context (valid from Receive on; must_not_block set for each run).
  const CallContext& ctx() const { return ctx_; }
  // The procedure, once Receive found one (found()); undefined otherwise.
  bool found() const { return desc_ != nullptr; }
  const ProcedureDesc& procedure() const { return *desc_; }
  Program& program() const { return *program_; }
  // A call of a procedure marked ProcedureDesc::kQuick (false for anything else,
  // malformed calls included).
  bool quick() const;
  // The most bytes its reply can take, record mark included (Dispatcher::Receive).
  size_t reply_bound() const { return reply_bound_; }
  std::string_view record() const { return record_; }

  // The decoded arguments and the result (during Program::Dispatch).
  void* args() const { return args_; }
  void* result() const { return result_; }
  // Frees what the result holds and zeroes it again, for a pipeline that replaces
  // what a handler produced (an error found after it ran).
  void ResetResult();

  // Registers a malloc'd buffer of the result — `*field` holds it, `size` bytes — as
  // bulk data that may go out by reference (rpc/reply.h) if the procedure is marked
  // ProcedureDesc::kBulkReply and the transport takes it: the reply then owns the
  // buffer and *field is cleared once the reply is encoded. Otherwise (and on any
  // other path) the result keeps it and its xdr_free frees it. Only buffers whose
  // copy costs more than an iovec are worth it (kMinBulkBytes).
  void AddBulk(char** field, size_t size) { bulk_.push_back(BulkRef{field, size}); }
  bool has_bulk() const { return !bulk_.empty(); }

  // The program's state of the call: constructed once by EmplaceState (at most
  // call_state_size() bytes), found again on every later run with state().
  template <class T, class... A>
  T& EmplaceState(A&&... a);
  // The state if it was emplaced as a T, else nullptr.
  template <class T>
  T* find_state() const {
    return state_type_ == TypeTag<T>() ? static_cast<T*>(state_) : nullptr;
  }
  // The state, which must have been emplaced as a T.
  template <class T>
  T& state() const {
    T* s = find_state<T>();
    if (s == nullptr) abort();  // a pipeline that did not emplace what its handler takes
    return *s;
  }

 private:
  friend class Dispatcher;
  // Where Receive got to.
  enum class Found : uint8_t {
    kNotACall,     // HeaderCheck told what to answer (no procedure)
    kNoProgram,    // PROG_UNAVAIL
    kNoVersion,    // PROG_MISMATCH low..high
    kNoProcedure,  // PROC_UNAVAIL
    kProcedure,    // desc_ set
  };
  // How far Run got.
  enum class Stage : uint8_t { kReceived, kDecoded };

  Call(std::string record, ConnectionInfo* conn) : record_(std::move(record)) {
    ctx_.conn = conn;
  }

  template <class T>
  static const void* TypeTag() {
    static const char tag = 0;
    return &tag;
  }
  // Allocates the program state, arguments and result storage (arguments and result
  // zeroed).
  void AllocateWorkspace();

  std::string record_;
  CallContext ctx_;
  HeaderCheck header_ = HeaderCheck::kDrop;
  Found found_ = Found::kNotACall;
  Stage stage_ = Stage::kReceived;
  uint32_t low_ = 0, high_ = 0;  // PROG_MISMATCH
  uint32_t args_pos_ = 0;        // where the arguments start in record_
  size_t reply_bound_ = 0;
  Program* program_ = nullptr;
  const ProcedureDesc* desc_ = nullptr;
  // The procedure's counters (the dispatcher's), set with desc_; and when Receive took
  // the call up (MonotonicNowNs), what its latency is measured from.
  ProcedureStats* stats_ = nullptr;
  int64_t received_ns_ = 0;
  // The duplicate request cache entry this call must complete or abandon.
  DuplicateRequestCache* drc_ = nullptr;
  std::optional<DrcKey> drc_key_;
  // The workspace: state, arguments, result (max_align_t words).
  std::unique_ptr<std::max_align_t[]> workspace_;
  void* args_ = nullptr;
  void* result_ = nullptr;
  void* state_ = nullptr;  // state storage (call_state_size bytes), or null
  const void* state_type_ = nullptr;
  void (*destroy_state_)(void*) = nullptr;
  // Bulk data registered by the handler (AddBulk).
  absl::InlinedVector<BulkRef, 1> bulk_;
};

template <class T, class... A>
T& Call::EmplaceState(A&&... a) {
  static_assert(alignof(T) <= alignof(std::max_align_t));
  // The program declared too little room, or a second state: a programming error.
  if (state_ == nullptr || state_type_ != nullptr || sizeof(T) > program_->call_state_size())
    abort();
  T* s = new (state_) T(std::forward<A>(a)...);
  state_type_ = TypeTag<T>();
  destroy_state_ = [](void* p) { static_cast<T*>(p)->~T(); };
  return *s;
}

}  // namespace localnfs::rpc
