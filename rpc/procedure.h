// rpc/procedure.h — the description of one procedure of one program version, the same
// shape for every program (the kernel's struct svc_procedure), and the templates that
// make one from a typed handler and the rpcgen routines of its argument and result.
//
// Owns: nothing; descriptors are constants in the programs' tables.
//
// A table entry is made by
//   rpc::Procedure<&MountProgram::Mnt, xdr_dirpath, xdr_mountres3>("MNT", {...})
// where the handler is a member function of the program,
//   R Handler(State& state, const Args& args, Result& result)
// R void (→ kSuccess) or DispatchResult; State rpc::Call (the handler gets the call
// itself) or the program's state of the call (Call::EmplaceState: its pipeline put it
// there before it calls the handler); Args and Result the rpcgen types (rpc::Void for
// xdr's void). The template takes the argument and result types from the handler and
// checks that the two XDR routines are theirs; it stores adaptors of one signature for
// every procedure (decode, encode, free, handle), so that neither the dispatcher nor
// any table needs a cast written by hand.
//
// Flags. `flags` are the rpc layer's; the dispatcher enforces them, in one place
// (rpc/dispatch.h): kNonIdempotent → the duplicate request cache keeps the reply;
// kQuick → may run on the event-loop thread that read it (rpc/server.h "Quick
// calls"); max_result_bytes → the reply memory reserved before the call starts
// (server.h "Memory for replies"); kBulkReply → the bulk data the handler registered
// (Call::AddBulk) goes out from its own buffer wherever it sits in the result
// (rpc/reply.h). `program_flags` is opaque to the rpc layer: it is the word the
// program's pipeline (Program::Dispatch) reads — NFSv3's needs export, makes a write,
// as caller (server/nfs3/nfs3_program.h) — so that a program keeps no second table.
// Nothing here assumes what an argument or a result starts with.
//
// Thread-safety: descriptors are immutable.
#pragma once

#include <rpc/rpc.h>
#include <stddef.h>
#include <stdint.h>

#include <string_view>
#include <type_traits>

#include "rpc/program.h"

namespace localnfs::rpc {

// The argument or result of a procedure that has none (xdr_void).
struct Void {};
inline bool_t XdrVoid(XDR*, Void*) { return TRUE; }

// An XDR routine on an untyped object (decode, encode or free, as the stream says).
using XdrFn = bool_t (*)(XDR* xdrs, void* object);

struct ProcedureDesc {
  // rpc flags (see the header comment).
  // Retransmits are not idempotent: the duplicate request cache (when present) keeps
  // its reply.
  static constexpr uint32_t kNonIdempotent = 1u << 0;
  // Takes microseconds and never waits for a disk write (no fsync, no WRITE data, no
  // directory listing): the rpc server may run such a call on the event-loop thread
  // that read it instead of waking a worker.
  static constexpr uint32_t kQuick = 1u << 1;
  // The result may carry bulk data its handler registered with Call::AddBulk (a
  // READ's): on TCP, for a reply the duplicate request cache does not keep, it is sent
  // from its own buffer (rpc/reply.h); otherwise it is copied like the rest.
  static constexpr uint32_t kBulkReply = 1u << 2;

  const char* name = nullptr;  // "GETATTR"
  XdrFn xdr_args = nullptr;    // decodes (and frees) the arguments
  XdrFn xdr_result = nullptr;  // encodes (and frees) the result
  uint32_t args_size = 0;      // of the argument and result structs (0 for Void)
  uint32_t result_size = 0;
  // The handler on the call's decoded arguments and result (the typed adaptor).
  DispatchResult (*handle)(Program& program, Call& call) = nullptr;
  uint32_t flags = 0;
  uint32_t program_flags = 0;
  // The most bytes the result of this call can encode to, read from the call's
  // argument bytes as received (not decoded: they may be short or garbage, and then
  // the answer is small). The server reserves that much reply memory before it starts
  // the call, so only procedures whose result size the client chooses need it
  // (READ's count, READDIR's). nullptr: at most kDefaultResultSize.
  size_t (*max_result_bytes)(std::string_view args) = nullptr;

  bool quick() const { return (flags & kQuick) != 0; }
  bool bulk_reply() const { return (flags & kBulkReply) != 0; }
  bool non_idempotent() const { return (flags & kNonIdempotent) != 0; }
};

// What a table entry sets besides its handler and XDR routines (designated
// initialisers: {.flags = ProcedureDesc::kQuick, .program_flags = ...}).
struct ProcedureOptions {
  uint32_t flags = 0;
  uint32_t program_flags = 0;
  size_t (*max_result_bytes)(std::string_view args) = nullptr;
};

namespace internal {

// The parts of a handler's type: R (Class::*)(State&, Args&, Result&).
template <class F>
struct HandlerTraits;
template <class C, class R, class S, class A, class Res>
struct HandlerTraits<R (C::*)(S&, A&, Res&)> {
  using Class = C;
  using Return = R;
  using State = S;
  using Args = std::remove_const_t<A>;
  using Result = Res;
};

template <class T, bool_t (*kXdr)(XDR*, T*)>
bool_t Xdr(XDR* xdrs, void* object) {
  return kXdr(xdrs, static_cast<T*>(object));
}

template <class T>
constexpr uint32_t SizeOf() {
  return std::is_same_v<T, Void> ? 0 : static_cast<uint32_t>(sizeof(T));
}

}  // namespace internal

// The call's program state of type T (Call::state), or the call itself for T = Call.
template <class T>
T& StateOf(Call& call);

// The typed adaptor that runs kHandler on the call's decoded arguments and result.
template <auto kHandler>
DispatchResult Handle(Program& program, Call& call);

// A descriptor for kHandler, whose arguments and result XDR routines are kXdrArgs
// and kXdrResult (their types must be the handler's).
template <auto kHandler, auto kXdrArgs, auto kXdrResult>
constexpr ProcedureDesc Procedure(const char* name, ProcedureOptions options = {}) {
  using Traits = internal::HandlerTraits<decltype(kHandler)>;
  using Args = typename Traits::Args;
  using Result = typename Traits::Result;
  static_assert(std::is_base_of_v<Program, typename Traits::Class>,
                "a handler is a member function of its Program");
  static_assert(std::is_same_v<decltype(kXdrArgs), bool_t (*)(XDR*, Args*)>,
                "the argument routine is not the one of the handler's argument type");
  static_assert(std::is_same_v<decltype(kXdrResult), bool_t (*)(XDR*, Result*)>,
                "the result routine is not the one of the handler's result type");
  static_assert(std::is_trivially_copyable_v<Args> && std::is_trivially_copyable_v<Result>,
                "rpcgen types: zero-initialised, freed with their XDR routine");
  ProcedureDesc d;
  d.name = name;
  d.xdr_args = &internal::Xdr<Args, kXdrArgs>;
  d.xdr_result = &internal::Xdr<Result, kXdrResult>;
  d.args_size = internal::SizeOf<Args>();
  d.result_size = internal::SizeOf<Result>();
  d.handle = &Handle<kHandler>;
  d.flags = options.flags;
  d.program_flags = options.program_flags;
  d.max_result_bytes = options.max_result_bytes;
  return d;
}

}  // namespace localnfs::rpc

// The templates' bodies need the Call.
#include "rpc/call.h"

namespace localnfs::rpc {

template <class T>
T& StateOf(Call& call) {
  if constexpr (std::is_same_v<T, Call>) {
    return call;
  } else {
    return call.state<T>();
  }
}

template <auto kHandler>
DispatchResult Handle(Program& program, Call& call) {
  using Traits = internal::HandlerTraits<decltype(kHandler)>;
  auto& self = static_cast<typename Traits::Class&>(program);
  auto& state = StateOf<typename Traits::State>(call);
  auto& args = *static_cast<typename Traits::Args*>(call.args());
  auto& result = *static_cast<typename Traits::Result*>(call.result());
  if constexpr (std::is_void_v<typename Traits::Return>) {
    (self.*kHandler)(state, args, result);
    return DispatchResult::kSuccess;
  } else {
    return (self.*kHandler)(state, args, result);
  }
}

}  // namespace localnfs::rpc
