// rpc/test_program.h — a tiny RPC program for the rpc/ unit and end-to-end tests.
//
// Owns: its procedure table and counters. Versions are separate objects (1 and 3 are
// registered by the tests, so PROG_MISMATCH reports 1..3).
//   0 NULL                void → void
//   1 ECHO                u_int → u_int + 1 (ProcXdr::quick)
//   2 (missing)           procedure() == nullptr → PROC_UNAVAIL
//   3 SLEEP               u_int milliseconds → u_int (blocks the worker)
//   4 GARBAGE             u_int → Dispatch says kGarbageArgs
//   5 SYSERR              u_int → kSystemErr
//   6 DROP                u_int → kDrop (no reply)
//   7 BLOB                u_int n → opaque<> of n bytes 'x' (a payload from 1 KiB on;
//                         its reply size is bounded from n: ProcXdr::max_result_bytes)
//   8 WHOAMI              void → uid, gid, ngroups (3 u_ints)
//   9 SUM_BLOB            opaque<> (heap-decoded) → u_int length
//  10 COUNT               u_int milliseconds → u_int executions of COUNT so far;
//                         sleeps first; non-idempotent (duplicate request cache)
//  11 PAGED_ECHO          u_int → u_int + 1; quick, but "would block" when asked not to
//                         (as a READ of data not in the page cache does)
// Thread-safety: Dispatch is safe for concurrent calls.
#pragma once

#include <pthread.h>
#include <rpc/rpc.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <string>
#include <string_view>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
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

// BLOB's data leaves as a payload (ProcXdr::take_payload) from 1 KiB on.
inline bool TakeBlobPayload(void* result, Payload* out) {
  auto* b = static_cast<Blob*>(result);
  if (b->len < 1024) return false;
  out->data.reset(b->data);
  out->size = b->len;
  b->data = nullptr;
  b->len = 0;
  return true;
}
// BLOB's result takes its argument's bytes and a length word (ProcXdr::max_result_bytes).
inline size_t BlobResultBytes(std::string_view args) {
  if (args.size() < 4) return 4;
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n = n << 8 | static_cast<uint8_t>(args[i]);
  return 4 + ((size_t{n} + 3) & ~size_t{3});
}
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
  uint32_t proc_count() const override { return 12; }
  const ProcXdr* procedure(uint32_t proc) const override {
    static const ProcXdr kProcs[] = {
        {"NULL", XdrVoid(), XdrVoid(), 0, 0},
        {"ECHO", XdrU(), XdrU(), sizeof(u_int), sizeof(u_int), false, /*quick=*/true},
        {"MISSING", nullptr, nullptr, 0, 0},
        {"SLEEP", XdrU(), XdrU(), sizeof(u_int), sizeof(u_int)},
        {"GARBAGE", XdrU(), XdrU(), sizeof(u_int), sizeof(u_int)},
        {"SYSERR", XdrU(), XdrU(), sizeof(u_int), sizeof(u_int)},
        {"DROP", XdrU(), XdrU(), sizeof(u_int), sizeof(u_int)},
        {"BLOB", XdrU(), XdrProc(XdrBlob), sizeof(u_int), sizeof(Blob), false, false,
         &TakeBlobPayload, &BlobResultBytes},
        {"WHOAMI", XdrVoid(), reinterpret_cast<xdrproc_t>(XdrWhoAmI), 0, sizeof(WhoAmI)},
        {"SUM_BLOB", XdrProc(XdrBlob), XdrU(), sizeof(Blob), sizeof(u_int)},
        {"COUNT", XdrU(), XdrU(), sizeof(u_int), sizeof(u_int), /*non_idempotent=*/true},
        {"PAGED_ECHO", XdrU(), XdrU(), sizeof(u_int), sizeof(u_int), false, /*quick=*/true},
    };
    if (proc >= proc_count() || proc == 2) return nullptr;
    return &kProcs[proc];
  }

  DispatchResult Dispatch(CallContext& ctx, void* args, void* result) override {
    running.fetch_add(1);
    started.fetch_add(1);
    {
      char name[16] = "";
      pthread_getname_np(pthread_self(), name, sizeof name);
      absl::MutexLock l(&threads_mu);
      threads.emplace_back(name);
    }
    DispatchResult r = Run(ctx, args, result);
    running.fetch_sub(1);
    finished.fetch_add(1);
    return r;
  }

  std::atomic<int> running{0};
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  std::atomic<uint64_t> last_conn_id{0};
  std::atomic<int> counted{0};  // COUNT executions
  // The name of the thread that ran each call, in the order they started.
  std::vector<std::string> Threads() {
    absl::MutexLock l(&threads_mu);
    return threads;
  }

 private:
  absl::Mutex threads_mu;
  std::vector<std::string> threads ABSL_GUARDED_BY(threads_mu);

  DispatchResult Run(CallContext& ctx, void* args, void* result) {
    last_conn_id.store(ctx.conn->id());
    auto in = [&] { return *static_cast<u_int*>(args); };
    auto out = [&](u_int v) { *static_cast<u_int*>(result) = v; };
    switch (ctx.proc) {
      case 0:
        return DispatchResult::kSuccess;
      case 1:
        out(in() + 1);
        return DispatchResult::kSuccess;
      case 3:
        absl::SleepFor(absl::Milliseconds(in()));
        out(in());
        return DispatchResult::kSuccess;
      case 4:
        return DispatchResult::kGarbageArgs;
      case 5:
        return DispatchResult::kSystemErr;
      case 6:
        return DispatchResult::kDrop;
      case 7: {
        auto* b = static_cast<Blob*>(result);
        b->len = in();
        // xdr_free (mem_free → free) releases it after the reply is encoded.
        b->data = static_cast<char*>(malloc(b->len == 0 ? 1 : b->len));
        memset(b->data, 'x', b->len);
        return DispatchResult::kSuccess;
      }
      case 8: {
        auto* w = static_cast<WhoAmI*>(result);
        w->uid = ctx.cred.uid;
        w->gid = ctx.cred.gid;
        w->ngroups = static_cast<u_int>(ctx.cred.groups.size());
        return DispatchResult::kSuccess;
      }
      case 9:
        out(static_cast<Blob*>(args)->len);
        return DispatchResult::kSuccess;
      case 10:
        absl::SleepFor(absl::Milliseconds(in()));
        out(static_cast<u_int>(counted.fetch_add(1) + 1));
        return DispatchResult::kSuccess;
      case 11:
        if (ctx.must_not_block) return DispatchResult::kWouldBlock;
        out(in() + 1);
        return DispatchResult::kSuccess;
    }
    return DispatchResult::kSystemErr;
  }

  const uint32_t vers_;
  const bool hidden_;
};

}  // namespace localnfs::rpc::testing
