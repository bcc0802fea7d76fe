// rpc/test_program.h — a tiny RPC program for the rpc/ unit and end-to-end tests.
//
// Owns: its procedure table and counters. Versions are separate objects (1 and 3 are
// registered by the tests, so PROG_MISMATCH reports 1..3).
//   0 NULL                void → void
//   1 ECHO                u_int → u_int + 1 (kQuick)
//   2 (missing)           procedure() == nullptr → PROC_UNAVAIL
//   3 SLEEP               u_int milliseconds → u_int (blocks the worker)
//   4 GARBAGE             u_int → Dispatch says kGarbageArgs
//   5 SYSERR              u_int → kSystemErr
//   6 DROP                u_int → kDrop (no reply)
//   7 BLOB                u_int n → opaque<> of n bytes 'x' (bulk data from 1 KiB on:
//                         Call::AddBulk; its reply size is bounded from n:
//                         max_result_bytes)
//   8 WHOAMI              void → uid, gid, ngroups (3 u_ints)
//   9 SUM_BLOB            opaque<> (heap-decoded) → u_int length
//  10 COUNT               u_int milliseconds → u_int executions of COUNT so far;
//                         sleeps first; non-idempotent (duplicate request cache)
//  11 PAGED_ECHO          u_int → u_int + 1; quick, but "would block" when asked not to
//                         (as a READ of data not in the page cache does), keeping in
//                         its state of the call that it got that far
//  12 SANDWICH            u_int n → n, opaque<> of n bytes 'y' (bulk data, whatever
//                         its size), n + 1: bulk data in the middle of a result
//  13 CACHED_BLOB         BLOB, but non-idempotent (its reply goes to the cache)
//  14 QUICK_SLEEP         SLEEP, but marked quick: holds the event loop (tests of which
//                         calls the loop runs)
//  15 QUICK_BLOB          BLOB, but marked quick (as a READ is)
// Thread-safety: Dispatch is safe for concurrent calls.
//
// Also here, for unit tests of any program's handlers (server/mount/mount_program_test.cc):
// RunCall drives one call from its encoded XDR through a Dispatcher as a worker runs it,
// and DecodedResult decodes the reply's result with the procedure's XDR routine.
#pragma once

#include <pthread.h>
#include <rpc/rpc.h>
#include <stdlib.h>
#include <string.h>

#include <array>
#include <atomic>
#include <string>
#include <string_view>
#include <vector>

#include <optional>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "rpc/client.h"
#include "rpc/dispatch.h"
#include "rpc/message.h"
#include "rpc/procedure.h"
#include "rpc/program.h"

namespace localnfs::rpc::testing {

// `v` as 4 big-endian bytes (XDR), for hand-built calls in the rpc tests.
inline std::string U32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (24 - 8 * i));
  return s;
}

inline constexpr uint32_t kTestProg = 0x20000777;

struct Blob {
  u_int len;
  char* data;
};
inline bool_t XdrBlob(XDR* x, Blob* b) {
  return xdr_bytes(x, &b->data, &b->len, 8u << 20);
}
struct WhoAmI {
  u_int uid, gid, ngroups;
};
inline bool_t XdrWhoAmI(XDR* x, WhoAmI* w) {
  return xdr_u_int(x, &w->uid) && xdr_u_int(x, &w->gid) && xdr_u_int(x, &w->ngroups);
}

// SANDWICH's result: bulk data between two words.
struct Sandwich {
  u_int before;
  Blob middle;
  u_int after;
};
inline bool_t XdrSandwich(XDR* x, Sandwich* s) {
  return xdr_u_int(x, &s->before) && XdrBlob(x, &s->middle) && xdr_u_int(x, &s->after);
}
// BLOB's result takes its argument's bytes and a length word (max_result_bytes).
inline size_t BlobResultBytes(std::string_view args) {
  if (args.size() < 4) return 4;
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n = n << 8 | static_cast<uint8_t>(args[i]);
  return 4 + ((size_t{n} + 3) & ~size_t{3});
}
// For rpc::Client calls of the tests (its routines go through xdrproc_t).
inline xdrproc_t XdrProc(bool_t (*f)(XDR*, Blob*)) {
  return reinterpret_cast<xdrproc_t>(f);
}
inline xdrproc_t XdrU() { return reinterpret_cast<xdrproc_t>(xdr_u_int); }
// xdr_void is declared without parameters; a typed twin avoids the function cast.
inline bool_t XdrNothing(XDR*, void*) { return TRUE; }
inline xdrproc_t XdrVoid() { return reinterpret_cast<xdrproc_t>(XdrNothing); }

class TestProgram : public Program {
 public:
  explicit TestProgram(uint32_t vers, bool hidden = false)
      : vers_(vers), hidden_(hidden) {}
  bool hidden() const override { return hidden_; }
  uint32_t prog() const override { return kTestProg; }
  uint32_t vers() const override { return vers_; }
  const char* name() const override { return "test"; }
  uint32_t proc_count() const override { return kProcCount; }
  const ProcedureDesc* procedure(uint32_t proc) const override {
    static constexpr uint32_t kQuick = ProcedureDesc::kQuick;
    static const std::array<ProcedureDesc, kProcCount> kProcs = {{
        Procedure<&TestProgram::Null, ::localnfs::rpc::XdrVoid, ::localnfs::rpc::XdrVoid>("NULL"),
        Procedure<&TestProgram::Echo, xdr_u_int, xdr_u_int>("ECHO", {.flags = kQuick}),
        ProcedureDesc{},  // 2: missing
        Procedure<&TestProgram::Sleep, xdr_u_int, xdr_u_int>("SLEEP"),
        Procedure<&TestProgram::Garbage, xdr_u_int, xdr_u_int>("GARBAGE"),
        Procedure<&TestProgram::SysErr, xdr_u_int, xdr_u_int>("SYSERR"),
        Procedure<&TestProgram::Drop, xdr_u_int, xdr_u_int>("DROP"),
        Procedure<&TestProgram::MakeBlob, xdr_u_int, XdrBlob>(
            "BLOB", {.flags = ProcedureDesc::kBulkReply, .max_result_bytes = &BlobResultBytes}),
        Procedure<&TestProgram::WhoAmIs, ::localnfs::rpc::XdrVoid, XdrWhoAmI>("WHOAMI"),
        Procedure<&TestProgram::SumBlob, XdrBlob, xdr_u_int>("SUM_BLOB"),
        Procedure<&TestProgram::Count, xdr_u_int, xdr_u_int>(
            "COUNT", {.flags = ProcedureDesc::kNonIdempotent}),
        Procedure<&TestProgram::PagedEcho, xdr_u_int, xdr_u_int>("PAGED_ECHO",
                                                                 {.flags = kQuick}),
        Procedure<&TestProgram::MakeSandwich, xdr_u_int, XdrSandwich>(
            "SANDWICH", {.flags = ProcedureDesc::kBulkReply}),
        Procedure<&TestProgram::MakeBlob, xdr_u_int, XdrBlob>(
            "CACHED_BLOB",
            {.flags = ProcedureDesc::kBulkReply | ProcedureDesc::kNonIdempotent,
             .max_result_bytes = &BlobResultBytes}),
        Procedure<&TestProgram::Sleep, xdr_u_int, xdr_u_int>("QUICK_SLEEP", {.flags = kQuick}),
        Procedure<&TestProgram::MakeBlob, xdr_u_int, XdrBlob>(
            "QUICK_BLOB", {.flags = kQuick | ProcedureDesc::kBulkReply,
                           .max_result_bytes = &BlobResultBytes}),
    }};
    if (proc >= proc_count() || kProcs[proc].name == nullptr) return nullptr;
    return &kProcs[proc];
  }
  size_t call_state_size() const override { return sizeof(PagedState); }

  DispatchResult Dispatch(Call& call) override {
    running.fetch_add(1);
    started.fetch_add(1);
    {
      char name[16] = "";
      pthread_getname_np(pthread_self(), name, sizeof name);
      absl::MutexLock l(&threads_mu);
      threads.emplace_back(name);
      thread_conns.push_back(call.ctx().conn->id());
    }
    last_conn_id.store(call.ctx().conn->id());
    DispatchResult r = Program::Dispatch(call);
    running.fetch_sub(1);
    finished.fetch_add(1);
    return r;
  }

  std::atomic<int> running{0};
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  std::atomic<uint64_t> last_conn_id{0};
  std::atomic<int> counted{0};  // COUNT executions
  // PAGED_ECHO calls finished by a run that found the state an earlier run left.
  std::atomic<int> paged_continued{0};
  // The name of the thread that ran each call, in the order they started.
  std::vector<std::string> Threads() {
    absl::MutexLock l(&threads_mu);
    return threads;
  }
  // The same, of the calls that came on connection `conn_id` only.
  std::vector<std::string> ThreadsOf(uint64_t conn_id) {
    absl::MutexLock l(&threads_mu);
    std::vector<std::string> of;
    for (size_t i = 0; i < threads.size(); ++i) {
      if (thread_conns[i] == conn_id) of.push_back(threads[i]);
    }
    return of;
  }

 private:
  static constexpr uint32_t kProcCount = 16;
  // PAGED_ECHO's state of the call.
  struct PagedState {
    int runs = 0;
  };

  void Null(Call&, const Void&, Void&) {}
  void Echo(Call&, const u_int& in, u_int& out) { out = in + 1; }
  void Sleep(Call&, const u_int& ms, u_int& out) {
    absl::SleepFor(absl::Milliseconds(ms));
    out = ms;
  }
  DispatchResult Garbage(Call&, const u_int&, u_int&) { return DispatchResult::kGarbageArgs; }
  DispatchResult SysErr(Call&, const u_int&, u_int&) { return DispatchResult::kSystemErr; }
  DispatchResult Drop(Call&, const u_int&, u_int&) { return DispatchResult::kDrop; }
  void MakeBlob(Call& call, const u_int& n, Blob& b) {
    b.len = n;
    // The call's xdr_free (mem_free → free) releases it after the reply is encoded —
    // unless the reply took it as a segment.
    b.data = static_cast<char*>(malloc(b.len == 0 ? 1 : b.len));
    memset(b.data, 'x', b.len);
    if (b.len >= 1024) call.AddBulk(&b.data, b.len);
  }
  void MakeSandwich(Call& call, const u_int& n, Sandwich& s) {
    s.before = n;
    s.middle.len = n;
    s.middle.data = static_cast<char*>(malloc(n == 0 ? 1 : n));
    memset(s.middle.data, 'y', n);
    call.AddBulk(&s.middle.data, n);
    s.after = n + 1;
  }
  void WhoAmIs(Call& call, const Void&, WhoAmI& w) {
    w.uid = call.ctx().cred.uid;
    w.gid = call.ctx().cred.gid;
    w.ngroups = static_cast<u_int>(call.ctx().cred.groups.size());
  }
  void SumBlob(Call&, const Blob& in, u_int& out) { out = in.len; }
  void Count(Call&, const u_int& ms, u_int& out) {
    absl::SleepFor(absl::Milliseconds(ms));
    out = static_cast<u_int>(counted.fetch_add(1) + 1);
  }
  DispatchResult PagedEcho(Call& call, const u_int& in, u_int& out) {
    PagedState* s = call.find_state<PagedState>();
    if (s == nullptr) s = &call.EmplaceState<PagedState>();
    if (++s->runs == 1 && call.ctx().must_not_block) return DispatchResult::kWouldBlock;
    if (s->runs > 1) paged_continued.fetch_add(1);
    out = in + 1;
    return DispatchResult::kSuccess;
  }

  absl::Mutex threads_mu;
  std::vector<std::string> threads ABSL_GUARDED_BY(threads_mu);
  std::vector<uint64_t> thread_conns ABSL_GUARDED_BY(threads_mu);  // each call's connection
  const uint32_t vers_;
  const bool hidden_;
};

// A reply as RunCall saw it: its header's verdict, and the result's bytes after it.
struct TestReply {
  RpcError error;    // is_success() for an accepted SUCCESS
  std::string body;  // the encoded result
};

// One call of (prog, vers, proc) with the encoded `args`, from `conn`, through
// `dispatcher` on this thread as a worker runs it (Dispatcher::Handle); nullopt when
// there is no reply or its header does not decode.
inline std::optional<TestReply> RunCall(Dispatcher& dispatcher, ConnectionInfo& conn,
                                        uint32_t prog, uint32_t vers, uint32_t proc,
                                        std::string_view args, const CallAuth& auth = {}) {
  std::optional<std::string> out = dispatcher.Handle(
      Client::EncodeCall(42, prog, vers, proc, auth, args), &conn, /*with_record_mark=*/false);
  if (!out) return std::nullopt;
  XDR x;
  xdrmem_create(&x, out->data(), static_cast<u_int>(out->size()), XDR_DECODE);
  TestReply reply;
  uint32_t xid = 0;
  const bool decoded = DecodeReplyHeader(&x, &xid, &reply.error).ok();
  if (decoded) reply.body = out->substr(xdr_getpos(&x));
  xdr_destroy(&x);
  if (!decoded) return std::nullopt;
  return reply;
}

// A result decoded from a reply's body with its XDR routine (all of it: ok() is false
// when the routine fails or bytes are left over), freed with xdr_free when it goes.
template <class T, bool_t (*kXdr)(XDR*, T*)>
class DecodedResult {
 public:
  explicit DecodedResult(std::string_view body) : bytes_(body) {
    XDR x;
    xdrmem_create(&x, bytes_.data(), static_cast<u_int>(bytes_.size()), XDR_DECODE);
    ok_ = kXdr(&x, &value_) && xdr_getpos(&x) == bytes_.size();
    xdr_destroy(&x);
  }
  ~DecodedResult() {
    xdr_free(reinterpret_cast<xdrproc_t>(kXdr), reinterpret_cast<char*>(&value_));
  }
  DecodedResult(const DecodedResult&) = delete;
  DecodedResult& operator=(const DecodedResult&) = delete;

  bool ok() const { return ok_; }
  const T& operator*() const { return value_; }
  const T* operator->() const { return &value_; }

 private:
  std::string bytes_;
  T value_{};
  bool ok_ = false;
};

}  // namespace localnfs::rpc::testing
