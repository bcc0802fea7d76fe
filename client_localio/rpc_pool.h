// client_localio/rpc_pool.h — a pool of ONC RPC connections to one server port, with
// transparent reconnect and retry (hard-mount semantics). Internal to client_localio/.
//
// Owns: `size` slots, each with its own mutex and (lazily (re)connected) rpc::Client.
// A call takes a free slot (or waits on one), sets the caller's AUTH_SYS credentials
// and makes the call while holding that slot, so credentials and call never interleave
// with another thread's. Connection failures (kUnavailable: closed, refused, reset) and
// timeouts (kDeadlineExceeded) drop the slot's connection; the call is retried on a new
// one with a growing back-off until `retry_timeout` has passed since the call began.
// RPC-level errors (PROG_UNAVAIL, AUTH_ERROR, …) and decode errors are returned as-is.
//
// Thread-safety: Call() and epoch() may be called from any thread concurrently.
#pragma once

#include <rpc/rpc.h>
#include <stdint.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/credentials.h"
#include "rpc/client.h"

namespace localnfs::client {

struct RpcPoolOptions {
  int size = 4;
  absl::Duration call_timeout = absl::Seconds(60);
  absl::Duration retry_timeout = absl::Seconds(120);
  absl::Duration connect_timeout = absl::Seconds(10);
};

class RpcPool {
 public:
  // Connects the first slot now, so that an unreachable server is reported at once
  // (without retrying); the other slots connect on first use.
  static absl::StatusOr<std::unique_ptr<RpcPool>> Create(const std::string& host,
                                                         uint16_t port,
                                                         const RpcPoolOptions& options);
  RpcPool(const RpcPool&) = delete;
  RpcPool& operator=(const RpcPool&) = delete;

  // One RPC as rpc::Client::Call, with `cred` as AUTH_SYS. `result` must be
  // zero-initialised; on OK the caller frees it with xdr_free(decode_result, result).
  absl::Status Call(uint32_t prog, uint32_t vers, uint32_t proc, xdrproc_t encode_args,
                    const void* args, xdrproc_t decode_result, void* result,
                    const Credentials& cred);
  // As Call(), without retrying and with `timeout`: for best-effort calls at teardown.
  absl::Status CallOnce(uint32_t prog, uint32_t vers, uint32_t proc, xdrproc_t encode_args,
                        const void* args, xdrproc_t decode_result, void* result,
                        const Credentials& cred, absl::Duration timeout);

  // Incremented after every successful reconnect (not the first connect of a slot).
  uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }
  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }

 private:
  struct Slot {
    absl::Mutex mu;
    std::unique_ptr<rpc::Client> client ABSL_GUARDED_BY(mu);
    bool ever_connected ABSL_GUARDED_BY(mu) = false;
  };

  RpcPool(std::string host, uint16_t port, RpcPoolOptions options);
  // One attempt on a slot, locked for the attempt: a free one if any, else waits for
  // the next in turn. (Not a "lock and return the slot" helper: the thread-safety
  // analysis cannot follow a lock out of the function that took it.)
  absl::Status Attempt(uint32_t prog, uint32_t vers, uint32_t proc, xdrproc_t encode_args,
                       const void* args, xdrproc_t decode_result, void* result,
                       const Credentials& cred, absl::Duration timeout);
  // One attempt on a locked slot: connect if needed, set credentials, call.
  absl::Status AttemptLocked(Slot* slot, uint32_t prog, uint32_t vers, uint32_t proc,
                             xdrproc_t encode_args, const void* args,
                             xdrproc_t decode_result, void* result, const Credentials& cred,
                             absl::Duration timeout) ABSL_EXCLUSIVE_LOCKS_REQUIRED(slot->mu);

  const std::string host_;
  const uint16_t port_;
  const RpcPoolOptions options_;
  const std::string machine_name_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::atomic<uint64_t> next_{0};
  std::atomic<uint64_t> epoch_{0};
};

// True for errors after which the connection cannot be trusted and a retry on a new
// connection may succeed.
bool IsTransportError(const absl::Status& status);

}  // namespace localnfs::client
