// common/localio/socket_client.h — the client end of one LOCALIO local-socket
// connection (proto.h): HELLO with the uuid the server bound and its secret
// (BrokerClient::SecretOf), then OPEN_LOCAL_FH
// requests, each answered by an nfsstat3 and, on success, the server's fd of the file.
// Only clients use it (client_localio's LocalioDataPath, and tests acting as a
// client); the server's end is server/localio/local_socket.h.
//
// Owns: the connection's socket. Thread-safety: a LocalioSocketClient serialises its
// calls on an internal mutex (one request in flight per connection; open several
// clients for parallel opens).
#pragma once

#include <stdint.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/credentials.h"
#include "common/localio/broker_format.h"
#include "common/localio/proto.h"
#include "common/unique_fd.h"

namespace localnfs::localio {

// The client end of one local-socket connection.
class LocalioSocketClient {
 public:
  struct OpenResult {
    uint32_t status = 0;  // nfsstat3
    LocalAttrs attrs;
    UniqueFd fd;  // valid iff status == 0 (NFS3_OK)
  };

  // Connects to `socket_path` and says HELLO with `uuid` (bound by UUID_IS_LOCAL) and
  // `secret`, the one its registration drew (BrokerClient::SecretOf); the secret is not
  // kept. The server's refusal → kPermissionDenied naming the reason; no server →
  // kUnavailable. `timeout` bounds every later call as well.
  static absl::StatusOr<std::unique_ptr<LocalioSocketClient>> Connect(
      const std::string& socket_path, const broker::Uuid& uuid, const broker::Secret& secret,
      absl::Duration timeout = absl::Seconds(10));

  LocalioSocketClient(const LocalioSocketClient&) = delete;
  LocalioSocketClient& operator=(const LocalioSocketClient&) = delete;

  const broker::InstanceId& instance_id() const { return instance_id_; }

  // OPEN_LOCAL_FH. `cred` is sent only when given (the server honours it only from a
  // root peer). An OK Status with a non-zero `status` is the server's per-open answer
  // (ACCES, ROFS, STALE, …); a non-OK Status means the connection is unusable
  // (closed, ERROR from the server, a malformed reply) and the client should stop
  // using it (kPermissionDenied for the server's ERROR, kUnavailable otherwise).
  absl::StatusOr<OpenResult> OpenLocalFh(std::string_view fh, OpenMode mode,
                                         const std::optional<Credentials>& cred)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Closes the connection now (the server sees this client go) unless a call is in
  // progress on it, which then finishes as it would have; later calls fail.
  void CloseUnlessBusy() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  LocalioSocketClient(UniqueFd fd, broker::InstanceId instance)
      : fd_(std::move(fd)), instance_id_(instance) {}

  absl::Mutex mu_;
  UniqueFd fd_ ABSL_GUARDED_BY(mu_);
  uint64_t next_request_id_ ABSL_GUARDED_BY(mu_) = 1;
  const broker::InstanceId instance_id_;
};

}  // namespace localnfs::localio
