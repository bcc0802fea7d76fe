// common/localio/proto.cc — see proto.h.
#include "common/localio/proto.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <vector>

#include "absl/strings/str_format.h"
#include "common/status.h"
#include "common/unaligned.h"

namespace localnfs::localio {
namespace {

constexpr size_t kHeaderSize = 8;
constexpr size_t kHelloSize = kHeaderSize + 16 + broker::kSecretSize;
constexpr size_t kHelloReplySize = kHeaderSize + 16;
// request_id, mode, flags, uid, gid, ngroups, fh_len, groups, fh.
constexpr size_t kOpenSize = kHeaderSize + 8 + 6 * 4 + kMaxGroups * 4 + kMaxFhSize;
// request_id, status, reserved, size, mtime, ctime, change, fileid.
constexpr size_t kOpenReplySize = kHeaderSize + 8 + 4 + 4 + 5 * 8;
constexpr size_t kErrorSize = kHeaderSize + 4 + 4;
static_assert(kOpenSize <= kMaxMessageSize && kOpenReplySize <= kMaxMessageSize);

// Host-order field writer/reader at explicit offsets (memcpy: no alignment needs).
class Writer {
 public:
  explicit Writer(Op op) { U32(kMagic).U16(kProtoVersion).U16(static_cast<uint16_t>(op)); }
  template <typename T>
  Writer& Put(T v) {
    char b[sizeof(T)];
    memcpy(b, &v, sizeof(T));
    out_.append(b, sizeof(T));
    return *this;
  }
  Writer& U16(uint16_t v) { return Put(v); }
  Writer& U32(uint32_t v) { return Put(v); }
  Writer& U64(uint64_t v) { return Put(v); }
  Writer& I64(int64_t v) { return Put(v); }
  Writer& Bytes(const void* p, size_t n) {
    out_.append(static_cast<const char*>(p), n);
    return *this;
  }
  Writer& Zeros(size_t n) {
    out_.append(n, '\0');
    return *this;
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  template <typename T>
  T Get() {
    const T v = LoadUnaligned<T>(in_.data() + pos_);
    pos_ += sizeof(T);
    return v;
  }
  void Bytes(void* p, size_t n) {
    memcpy(p, in_.data() + pos_, n);
    pos_ += n;
  }
  std::string_view View(size_t n) {
    std::string_view v = in_.substr(pos_, n);
    pos_ += n;
    return v;
  }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

size_t SizeOf(Op op) {
  switch (op) {
    case Op::kHello: return kHelloSize;
    case Op::kHelloReply: return kHelloReplySize;
    case Op::kOpenLocalFh: return kOpenSize;
    case Op::kOpenReply: return kOpenReplySize;
    case Op::kError: return kErrorSize;
  }
  return 0;
}

void CloseFds(const std::vector<int>& fds) {
  for (int fd : fds) ::close(fd);
}

}  // namespace

std::string_view ErrorReasonName(ErrorReason reason) {
  switch (reason) {
    case ErrorReason::kBadMessage: return "malformed message";
    case ErrorReason::kHelloRequired: return "HELLO required first";
    case ErrorReason::kNotBound: return "uuid not bound by this server";
    case ErrorReason::kNotOwner: return "wrong secret: uuid registered by another client";
    case ErrorReason::kShuttingDown: return "server shutting down";
    case ErrorReason::kTooManyConnections: return "too many connections";
    case ErrorReason::kNoPeerCredentials: return "peer credentials unavailable";
  }
  return "unknown reason";
}

std::string Encode(const HelloRequest& m) {
  return Writer(Op::kHello)
      .Bytes(m.uuid.data(), m.uuid.size())
      .Bytes(m.secret.data(), m.secret.size())
      .Take();
}

std::string Encode(const HelloReply& m) {
  return Writer(Op::kHelloReply).Bytes(m.instance_id.data(), m.instance_id.size()).Take();
}

absl::StatusOr<std::string> Encode(const OpenLocalFhRequest& m) {
  if (m.fh.empty() || m.fh.size() > kMaxFhSize)
    return absl::InvalidArgumentError(
        absl::StrFormat("file handle of %d bytes (1..%d)", m.fh.size(), kMaxFhSize));
  if (m.cred.groups.size() > kMaxGroups)
    return absl::InvalidArgumentError(
        absl::StrFormat("%d groups (at most %d)", m.cred.groups.size(), kMaxGroups));
  Writer w(Op::kOpenLocalFh);
  w.U64(m.request_id)
      .U32(static_cast<uint32_t>(m.mode))
      .U32(m.flags)
      .U32(m.cred.uid)
      .U32(m.cred.gid)
      .U32(static_cast<uint32_t>(m.cred.groups.size()))
      .U32(static_cast<uint32_t>(m.fh.size()));
  for (uint32_t g : m.cred.groups) w.U32(g);
  w.Zeros((kMaxGroups - m.cred.groups.size()) * 4);
  w.Bytes(m.fh.data(), m.fh.size()).Zeros(kMaxFhSize - m.fh.size());
  return w.Take();
}

std::string Encode(const OpenReply& m) {
  return Writer(Op::kOpenReply)
      .U64(m.request_id)
      .U32(m.status)
      .U32(0)
      .U64(m.attrs.size)
      .I64(m.attrs.mtime_ns)
      .I64(m.attrs.ctime_ns)
      .U64(m.attrs.change)
      .U64(m.attrs.fileid)
      .Take();
}

std::string Encode(const ErrorMessage& m) {
  return Writer(Op::kError).U32(static_cast<uint32_t>(m.reason)).U32(0).Take();
}

absl::StatusOr<Message> Decode(std::string_view packet) {
  if (packet.size() < kHeaderSize)
    return absl::InvalidArgumentError(
        absl::StrFormat("message of %d bytes is shorter than the header", packet.size()));
  Reader r(packet);
  const uint32_t magic = r.Get<uint32_t>();
  const uint16_t version = r.Get<uint16_t>();
  const uint16_t op = r.Get<uint16_t>();
  if (magic != kMagic) return absl::InvalidArgumentError("bad magic");
  if (version != kProtoVersion)
    return absl::InvalidArgumentError(
        absl::StrFormat("protocol version %d (this side speaks %d)", version, kProtoVersion));
  Message m;
  m.op = static_cast<Op>(op);
  const size_t want = SizeOf(m.op);
  if (want == 0) return absl::InvalidArgumentError(absl::StrFormat("unknown op %d", op));
  if (packet.size() != want)
    return absl::InvalidArgumentError(
        absl::StrFormat("op %d: %d bytes, expected %d", op, packet.size(), want));
  switch (m.op) {
    case Op::kHello:
      r.Bytes(m.hello.uuid.data(), m.hello.uuid.size());
      m.hello.secret =
          broker::Secret::FromBytes(reinterpret_cast<const uint8_t*>(r.View(broker::kSecretSize).data()));
      break;
    case Op::kHelloReply:
      r.Bytes(m.hello_reply.instance_id.data(), m.hello_reply.instance_id.size());
      break;
    case Op::kOpenLocalFh: {
      OpenLocalFhRequest& o = m.open;
      o.request_id = r.Get<uint64_t>();
      const uint32_t mode = r.Get<uint32_t>();
      o.flags = r.Get<uint32_t>();
      o.cred.uid = r.Get<uint32_t>();
      o.cred.gid = r.Get<uint32_t>();
      const uint32_t ngroups = r.Get<uint32_t>();
      const uint32_t fh_len = r.Get<uint32_t>();
      if (mode > static_cast<uint32_t>(OpenMode::kReadWrite))
        return absl::InvalidArgumentError(absl::StrFormat("open mode %d", mode));
      if ((o.flags & ~kOpenHasCredentials) != 0)
        return absl::InvalidArgumentError(absl::StrFormat("unknown flags 0x%x", o.flags));
      if (ngroups > kMaxGroups)
        return absl::InvalidArgumentError(absl::StrFormat("%d groups", ngroups));
      if (fh_len == 0 || fh_len > kMaxFhSize)
        return absl::InvalidArgumentError(absl::StrFormat("file handle length %d", fh_len));
      o.mode = static_cast<OpenMode>(mode);
      for (uint32_t i = 0; i < kMaxGroups; ++i) {
        const uint32_t g = r.Get<uint32_t>();
        if (i < ngroups) o.cred.groups.push_back(g);
      }
      o.fh = std::string(r.View(kMaxFhSize).substr(0, fh_len));
      break;
    }
    case Op::kOpenReply: {
      OpenReply& o = m.open_reply;
      o.request_id = r.Get<uint64_t>();
      o.status = r.Get<uint32_t>();
      r.Get<uint32_t>();
      o.attrs.size = r.Get<uint64_t>();
      o.attrs.mtime_ns = r.Get<int64_t>();
      o.attrs.ctime_ns = r.Get<int64_t>();
      o.attrs.change = r.Get<uint64_t>();
      o.attrs.fileid = r.Get<uint64_t>();
      break;
    }
    case Op::kError: {
      const uint32_t reason = r.Get<uint32_t>();
      m.error.reason = static_cast<ErrorReason>(reason);
      break;
    }
  }
  return m;
}

absl::Status SendWithFd(int sock, std::string_view packet, int fd) {
  iovec iov{const_cast<char*>(packet.data()), packet.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    StoreUnaligned<int>(CMSG_DATA(c), fd);
  }
  for (;;) {
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n >= 0) {
      // A SEQPACKET send is all or nothing.
      if (static_cast<size_t>(n) != packet.size())
        return absl::UnavailableError("short send on a SEQPACKET socket");
      return absl::OkStatus();
    }
    if (errno == EINTR) continue;
    return ErrnoToStatus(errno, "sendmsg");
  }
}

absl::StatusOr<ReceivedPacket> ReceiveWithFd(int sock, size_t max_size) {
  ReceivedPacket out;
  out.bytes.resize(max_size);
  iovec iov{out.bytes.data(), out.bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  // Room for exactly one fd: a sender that attaches more gets MSG_CTRUNC, and the
  // kernel closes the ones that did not fit.
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoToStatus(errno, "recvmsg");
  std::vector<int> fds;
  bool foreign_control = false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        fds.push_back(LoadUnaligned<int>(CMSG_DATA(c) + i * sizeof(int)));
      }
    } else {
      foreign_control = true;
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    CloseFds(fds);
    return absl::InvalidArgumentError("control data truncated (more than one fd sent)");
  }
  if (msg.msg_flags & MSG_TRUNC) {
    CloseFds(fds);
    return absl::InvalidArgumentError(
        absl::StrFormat("message larger than %d bytes", max_size));
  }
  if (fds.size() > 1 || foreign_control) {
    CloseFds(fds);
    return absl::InvalidArgumentError("unexpected control data");
  }
  // ECONNRESET, not a bare kUnavailable: callers on non-blocking sockets must tell
  // the end of the stream from EAGAIN, whose code is kUnavailable too.
  if (n == 0 && fds.empty()) return ErrnoToStatus(ECONNRESET, "connection closed");
  if (!fds.empty()) out.fd.reset(fds[0]);
  out.bytes.resize(static_cast<size_t>(n));
  return out;
}

}  // namespace localnfs::localio
