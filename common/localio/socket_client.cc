// common/localio/socket_client.cc — see socket_client.h.
#include "common/localio/socket_client.h"

#include <sys/socket.h>

#include <utility>

#include <openssl/crypto.h>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/unix_socket.h"

namespace localnfs::localio {

namespace {

// A transport failure of an established connection: the server is gone or stuck.
absl::Status ConnectionError(const absl::Status& s) {
  if (absl::IsUnavailable(s) || absl::IsPermissionDenied(s)) return s;
  return absl::UnavailableError(absl::StrCat("localio socket: ", s.message()));
}

absl::Status ServerError(const ErrorMessage& e) {
  return absl::PermissionDeniedError(
      absl::StrCat("localio server refused: ", std::string(ErrorReasonName(e.reason))));
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalioSocketClient>> LocalioSocketClient::Connect(
    const std::string& socket_path, const broker::Uuid& uuid, const broker::Secret& secret,
    absl::Duration timeout) {
  ASSIGN_OR_RETURN(UniqueFd fd, ConnectUnix(socket_path, SOCK_SEQPACKET, timeout));
  std::string hello = Encode(HelloRequest{uuid, secret});
  absl::Status sent = SendWithFd(fd.get(), hello);
  OPENSSL_cleanse(hello.data(), hello.size());  // the secret was in it
  if (!sent.ok()) return ConnectionError(sent);
  absl::StatusOr<ReceivedPacket> packet = ReceiveWithFd(fd.get());
  if (!packet.ok()) return ConnectionError(packet.status());
  if (packet->fd) return absl::UnavailableError("localio server sent an fd with HELLO's reply");
  absl::StatusOr<Message> m = Decode(packet->bytes);
  if (!m.ok()) return ConnectionError(m.status());
  if (m->op == Op::kError) return ServerError(m->error);
  if (m->op != Op::kHelloReply)
    return absl::UnavailableError("localio server answered HELLO with another op");
  return std::unique_ptr<LocalioSocketClient>(
      new LocalioSocketClient(std::move(fd), m->hello_reply.instance_id));
}

void LocalioSocketClient::CloseUnlessBusy() {
  if (!mu_.TryLock()) return;
  fd_.reset();
  mu_.Unlock();
}

absl::StatusOr<LocalioSocketClient::OpenResult> LocalioSocketClient::OpenLocalFh(
    std::string_view fh, OpenMode mode, const std::optional<Credentials>& cred) {
  absl::MutexLock l(&mu_);
  if (!fd_) return absl::UnavailableError("localio connection closed");
  OpenLocalFhRequest req;
  req.request_id = next_request_id_++;
  req.mode = mode;
  req.fh = std::string(fh);
  if (cred) {
    req.flags |= kOpenHasCredentials;
    req.cred = *cred;
  }
  ASSIGN_OR_RETURN(std::string bytes, Encode(req));
  // Any transport or protocol failure below leaves the connection unusable.
  auto fail = [&](absl::Status s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    fd_.reset();
    return ConnectionError(s);
  };
  if (absl::Status s = SendWithFd(fd_.get(), bytes); !s.ok()) return fail(s);
  absl::StatusOr<ReceivedPacket> packet = ReceiveWithFd(fd_.get());
  if (!packet.ok()) return fail(packet.status());
  absl::StatusOr<Message> m = Decode(packet->bytes);
  if (!m.ok()) return fail(m.status());
  if (m->op == Op::kError) return fail(ServerError(m->error));
  if (m->op != Op::kOpenReply || m->open_reply.request_id != req.request_id)
    return fail(absl::UnavailableError("localio server sent an unexpected reply"));
  OpenResult result;
  result.status = m->open_reply.status;
  result.attrs = m->open_reply.attrs;
  if (result.status == 0 && !packet->fd)
    return fail(absl::UnavailableError("localio server sent OK without an fd"));
  if (result.status != 0 && packet->fd)
    return fail(absl::UnavailableError("localio server sent an fd with an error"));
  result.fd = std::move(packet->fd);
  return result;
}

}  // namespace localnfs::localio
