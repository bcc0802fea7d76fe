// rpc/client.h — a small blocking ONC RPC client over TCP (record marking), used by
// tests, tools and the LOCALIO client library.
//
// Owns: one TCP connection, its record decoder, the credential it sends and the xid
// sequence. Result memory: Call() decodes the result with `decode_result`; the caller
// owns what it allocated and releases it with xdr_free(decode_result, result). On a
// failed decode Call() has already freed it.
//
// Errors: transport problems → kUnavailable ("connection closed by server", …);
// timeouts → kDeadlineExceeded; an RPC-level error (PROG_UNAVAIL, AUTH_ERROR, …) →
// the Status from RpcErrorToStatus() (rpc/message.h), whose payload GetRpcError()
// returns, so callers can test exact accept/reject/auth values. A partial send
// leaves the stream unusable and closes the connection; later calls fail kUnavailable.
// Replies with another xid (late replies of timed-out calls) are skipped.
//
// Thread-safety: one call at a time — every method takes the client's mutex, so
// concurrent callers are serialised, not interleaved. Use one Client per thread for
// parallel calls.
#pragma once

#include <rpc/rpc.h>
#include <stdint.h>

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/credentials.h"
#include "common/unique_fd.h"
#include "rpc/message.h"
#include "rpc/record.h"

namespace localnfs::rpc {

class Client {
 public:
  // Largest reply record accepted (a READ of 1 MiB plus headers fits easily).
  static constexpr uint32_t kMaxReplyRecord = 64u << 20;

  // Connects to `host` (numeric address or name) : `port` within `timeout`.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const std::string& host,
                                                         uint16_t port,
                                                         absl::Duration timeout);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Credentials of later calls: AUTH_SYS with `cred`, or AUTH_NONE (the default).
  void SetAuthSys(const Credentials& cred, const std::string& machine_name)
      ABSL_LOCKS_EXCLUDED(mu_);
  void SetAuthNone() ABSL_LOCKS_EXCLUDED(mu_);

  // One RPC: encodes the call with `encode_args(args)`, waits for the reply with the
  // same xid and decodes an accepted SUCCESS result with `decode_result` into
  // `result` (zero-initialised by the caller).
  absl::Status Call(uint32_t prog, uint32_t vers, uint32_t proc, xdrproc_t encode_args,
                    const void* args, xdrproc_t decode_result, void* result,
                    absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);

  // Raw access for bad-input tests. SendRaw writes `bytes` as they are (include the
  // record marks yourself); ReceiveRecord returns the next reply record (without its
  // marks); CallRaw is both.
  absl::Status SendRaw(std::string_view bytes,
                       absl::Duration timeout = absl::Seconds(10)) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::string> ReceiveRecord(absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::string> CallRaw(std::string_view bytes, absl::Duration timeout)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Closes the connection now (a client vanishing mid-request).
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

  // `payload` as one record fragment (mark + payload).
  static std::string EncodeRecord(std::string_view payload, bool last = true);
  // A call message (no record mark): header with `auth`, then `args` as given.
  static std::string EncodeCall(uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc,
                                const CallAuth& auth, std::string_view args);

 private:
  explicit Client(UniqueFd fd);
  absl::Status SendLocked(std::string_view bytes, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::string> ReceiveLocked(absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  UniqueFd fd_ ABSL_GUARDED_BY(mu_);
  RecordDecoder decoder_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> records_ ABSL_GUARDED_BY(mu_);  // decoded, not yet returned
  // Where Call() encodes its message. Kept between calls and only ever grown: a fresh
  // buffer per call would be zero-filled first — 1 MiB of memset per WRITE.
  std::string send_buf_ ABSL_GUARDED_BY(mu_);
  CallAuth auth_ ABSL_GUARDED_BY(mu_);
  uint32_t next_xid_ ABSL_GUARDED_BY(mu_);
};

}  // namespace localnfs::rpc
