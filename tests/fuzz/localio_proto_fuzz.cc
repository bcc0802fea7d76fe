// localio_proto_fuzz — the LOCALIO local-socket packets (common/localio/proto.h) as
// LocalSocket::Serve decodes what a co-located client sends (HELLO, OPEN_LOCAL_FH)
// and as LocalioSocketClient (common/localio/socket_client.h) decodes what the server
// answers (HELLO_REPLY, OPEN_REPLY, ERROR): localio::Decode is the one decoder of both
// sides.
//
// Input: one SOCK_SEQPACKET packet. Properties beyond "no crash, no leak": a decoded
// message respects the protocol's limits (handle 1..64 bytes, at most 32 groups), and
// encoding it again gives a packet that decodes to the same message.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <string_view>

#include "common/localio/proto.h"

namespace {

using namespace localnfs::localio;

bool SameMessage(const Message& a, const Message& b) {
  if (a.op != b.op) return false;
  switch (a.op) {
    case Op::kHello:
      return a.hello.uuid == b.hello.uuid &&
             memcmp(a.hello.secret.data(), b.hello.secret.data(), localnfs::broker::kSecretSize) == 0;
    case Op::kHelloReply:
      return a.hello_reply.instance_id == b.hello_reply.instance_id;
    case Op::kOpenLocalFh:
      return a.open.request_id == b.open.request_id && a.open.mode == b.open.mode &&
             a.open.flags == b.open.flags && a.open.cred.uid == b.open.cred.uid &&
             a.open.cred.gid == b.open.cred.gid &&
             a.open.cred.groups == b.open.cred.groups && a.open.fh == b.open.fh;
    case Op::kOpenReply:
      return a.open_reply.request_id == b.open_reply.request_id &&
             a.open_reply.status == b.open_reply.status &&
             a.open_reply.attrs.size == b.open_reply.attrs.size &&
             a.open_reply.attrs.mtime_ns == b.open_reply.attrs.mtime_ns &&
             a.open_reply.attrs.ctime_ns == b.open_reply.attrs.ctime_ns &&
             a.open_reply.attrs.change == b.open_reply.attrs.change &&
             a.open_reply.attrs.fileid == b.open_reply.attrs.fileid;
    case Op::kError:
      return a.error.reason == b.error.reason;
  }
  return false;
}

std::string EncodeAgain(const Message& m) {
  switch (m.op) {
    case Op::kHello:
      return Encode(m.hello);
    case Op::kHelloReply:
      return Encode(m.hello_reply);
    case Op::kOpenLocalFh: {
      absl::StatusOr<std::string> packet = Encode(m.open);
      if (!packet.ok()) abort();  // Decode accepted what Encode refuses
      return *std::move(packet);
    }
    case Op::kOpenReply:
      return Encode(m.open_reply);
    case Op::kError:
      return Encode(m.error);
  }
  abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view packet(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<Message> m = Decode(packet);
  if (!m.ok()) return 0;
  if (packet.size() > kMaxMessageSize) abort();  // the server's receive buffer
  if (m->op == Op::kOpenLocalFh &&
      (m->open.fh.empty() || m->open.fh.size() > kMaxFhSize ||
       m->open.cred.groups.size() > kMaxGroups)) {
    abort();
  }
  absl::StatusOr<Message> again = Decode(EncodeAgain(*m));
  if (!again.ok() || !SameMessage(*m, *again)) abort();
  (void)ErrorReasonName(m->error.reason);
  return 0;
}
