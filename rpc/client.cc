#include "rpc/client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status.h"

namespace localnfs::rpc {
namespace {

// Milliseconds left until `deadline` for poll(), at least 0.
int PollTimeout(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(
      std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1 << 30));
}

// Waits until `fd` is ready for `events`; kDeadlineExceeded at the deadline.
absl::Status WaitFd(int fd, short events, absl::Time deadline, const char* what) {
  while (true) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, PollTimeout(deadline));
    if (n > 0) return absl::OkStatus();
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoToStatus(errno, what);
    return absl::DeadlineExceededError(absl::StrCat(what, ": timed out"));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const std::string& host,
                                                        uint16_t port,
                                                        absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const std::string where = absl::StrCat(host, ":", port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_UNSPEC;
  addrinfo* res = nullptr;
  const int gai = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (gai != 0) {
    return absl::NotFoundError(absl::StrCat("resolve ", where, ": ", gai_strerror(gai)));
  }
  absl::Cleanup free_res = [res] { freeaddrinfo(res); };
  absl::Status last =
      absl::UnavailableError(absl::StrCat("connect ", where, ": no address"));
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
      last = ErrnoToStatus(errno, absl::StrCat("socket ", where));
      continue;
    }
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last = ErrnoToStatus(errno, absl::StrCat("connect ", where));
        continue;
      }
      absl::Status s = WaitFd(fd.get(), POLLOUT, deadline, "connect");
      if (!s.ok()) {
        last = absl::Status(s.code(), absl::StrCat("connect ", where, ": ", s.message()));
        continue;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last = ErrnoToStatus(err, absl::StrCat("connect ", where));
        continue;
      }
    }
    int one = 1;
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return std::unique_ptr<Client>(new Client(std::move(fd)));
  }
  return last;
}

Client::Client(UniqueFd fd) : fd_(std::move(fd)), decoder_(kMaxReplyRecord) {
  // A random first xid, so that a server's duplicate request cache does not confuse
  // two clients from the same port after a restart.
  std::random_device rd;
  next_xid_ = rd();
}

Client::~Client() = default;

void Client::SetAuthSys(const Credentials& cred, const std::string& machine_name) {
  absl::MutexLock l(&mu_);
  auth_.flavor = AuthFlavor::kSys;
  auth_.cred = cred;
  auth_.machine_name = machine_name;
  auth_.stamp = static_cast<uint32_t>(absl::ToUnixSeconds(absl::Now()));
}

void Client::SetAuthNone() {
  absl::MutexLock l(&mu_);
  auth_ = CallAuth{};
}

void Client::Close() {
  absl::MutexLock l(&mu_);
  fd_.reset();
}

std::string Client::EncodeRecord(std::string_view payload, bool last) {
  return rpc::EncodeRecord(payload, last);
}

std::string Client::EncodeCall(uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc,
                               const CallAuth& auth, std::string_view args) {
  std::string out(CallHeaderSize(auth), '\0');
  XDR x;
  xdrmem_create(&x, out.data(), static_cast<u_int>(out.size()), XDR_ENCODE);
  EncodeCallHeader(&x, xid, prog, vers, proc, auth);
  out.resize(xdr_getpos(&x));
  xdr_destroy(&x);
  out.append(args);
  return out;
}

absl::Status Client::SendLocked(std::string_view bytes, absl::Time deadline) {
  if (!fd_) return absl::UnavailableError("rpc client: connection closed");
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n =
        ::send(fd_.get(), bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    absl::Status s;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      s = WaitFd(fd_.get(), POLLOUT, deadline, "rpc client: send");
      if (s.ok()) continue;
    } else {
      s = absl::UnavailableError(absl::StrCat("rpc client: send: ", strerror(errno)));
    }
    // Part of a record may be out: the stream can no longer be trusted.
    if (sent > 0) fd_.reset();
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Client::ReceiveLocked(absl::Time deadline) {
  char buf[64 * 1024];
  while (records_.empty()) {
    if (!fd_) return absl::UnavailableError("rpc client: connection closed");
    const ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
    if (n == 0) {
      fd_.reset();
      return absl::UnavailableError("rpc client: connection closed by server");
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        RETURN_IF_ERROR(WaitFd(fd_.get(), POLLIN, deadline, "rpc client: receive"));
        continue;
      }
      const int err = errno;
      fd_.reset();
      return absl::UnavailableError(absl::StrCat("rpc client: receive: ", strerror(err)));
    }
    std::vector<std::string> got;
    absl::Status s = decoder_.Feed(std::string_view(buf, static_cast<size_t>(n)), &got);
    for (auto& r : got) records_.push_back(std::move(r));
    if (!s.ok()) {
      fd_.reset();
      return absl::DataLossError(
          absl::StrCat("rpc client: bad reply stream: ", s.message()));
    }
  }
  std::string r = std::move(records_.front());
  records_.pop_front();
  return r;
}

absl::Status Client::SendRaw(std::string_view bytes, absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  return SendLocked(bytes, absl::Now() + timeout);
}

absl::StatusOr<std::string> Client::ReceiveRecord(absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  return ReceiveLocked(absl::Now() + timeout);
}

absl::StatusOr<std::string> Client::CallRaw(std::string_view bytes,
                                            absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  const absl::Time deadline = absl::Now() + timeout;
  RETURN_IF_ERROR(SendLocked(bytes, deadline));
  return ReceiveLocked(deadline);
}

absl::Status Client::Call(uint32_t prog, uint32_t vers, uint32_t proc,
                          xdrproc_t encode_args, const void* args,
                          xdrproc_t decode_result, void* result, absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  const absl::Time deadline = absl::Now() + timeout;
  const uint32_t xid = next_xid_++;
  // XDR_ENCODE does not modify the arguments; the xdrproc_t signature is just not const.
  void* mutable_args = const_cast<void*>(args);
  const size_t args_size = xdr_sizeof(encode_args, mutable_args);
  const size_t room = kRecordMarkSize + CallHeaderSize(auth_) + args_size;
  if (send_buf_.size() < room) send_buf_.resize(room);
  XDR x;
  xdrmem_create(&x, send_buf_.data() + kRecordMarkSize,
                static_cast<u_int>(room - kRecordMarkSize), XDR_ENCODE);
  const bool ok =
      EncodeCallHeader(&x, xid, prog, vers, proc, auth_) && encode_args(&x, mutable_args);
  const uint32_t used = xdr_getpos(&x);
  xdr_destroy(&x);
  if (!ok) return absl::InvalidArgumentError("rpc client: arguments do not encode");
  PutRecordMark(used, true, send_buf_.data());
  RETURN_IF_ERROR(
      SendLocked(std::string_view(send_buf_.data(), kRecordMarkSize + used), deadline));

  while (true) {
    ASSIGN_OR_RETURN(std::string record, ReceiveLocked(deadline));
    XDR in;
    xdrmem_create(&in, record.data(), static_cast<u_int>(record.size()), XDR_DECODE);
    absl::Cleanup destroy = [&in] { xdr_destroy(&in); };
    uint32_t reply_xid = 0;
    RpcError reply;
    RETURN_IF_ERROR(DecodeReplyHeader(&in, &reply_xid, &reply));
    if (reply_xid != xid) continue;  // a late reply to an earlier, timed-out call
    if (!reply.is_success()) return RpcErrorToStatus(reply);
    if (!decode_result(&in, result)) {
      xdr_free(decode_result, static_cast<char*>(result));
      return absl::DataLossError("rpc client: result does not decode");
    }
    return absl::OkStatus();
  }
}

}  // namespace localnfs::rpc
