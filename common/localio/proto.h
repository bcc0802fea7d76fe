// common/localio/proto.h — the local-socket protocol of LOCALIO: what localnfsd and
// its co-located clients (client_localio, the FUSE daemon) exchange after the
// UUID_IS_LOCAL handshake. With broker_format.h this is the whole interface the two
// sides share, as include/linux/nfslocalio.h is for the kernel's nfs and nfsd. The
// server's end of the socket is server/localio/local_socket.h, the client's socket_client.h.
//
// Owns: the message layouts and their encode/decode, and the fd-passing helpers
// (SendWithFd / ReceiveWithFd) both ends use.
//
// Transport: an AF_UNIX SOCK_SEQPACKET socket, `<runtime-dir>/localio.sock`, whose path
// the server publishes in its broker record. One message = one packet; record
// boundaries come from the socket, so there is no length word, and a packet of the
// wrong size for its op is malformed. Both ends run on the same host, so integers are
// in HOST byte order; every message is encoded field by field at fixed offsets (no
// struct is sent as memory, so padding and compiler layout never reach the wire).
//
//   header (8 bytes): u32 magic 'LNIO' | u16 version (= broker::kOpsVersion) | u16 op
//
//   client → server                          server → client
//   HELLO {uuid[16], secret[32]}             HELLO_REPLY {instance_id[16]}  or ERROR
//   OPEN_LOCAL_FH {request_id, mode, flags,  OPEN_REPLY {request_id, nfsstat3, attrs}
//     uid, gid, ngroups, fh_len,               + the fd by SCM_RIGHTS iff status == OK
//     groups[32], fh[64]}                    ERROR {reason} — then the server closes
//
// The first message on a connection must be HELLO with a uuid that THIS server bound
// (UUID_IS_LOCAL) and the secret whose SHA-256 the uuid's slot showed when the server
// bound it (broker_format.h: the proof that the sender registered the uuid; no pid is
// involved, so a peer whose pid the server cannot see is served too); otherwise the
// server answers ERROR and closes. A HELLO of another size (a secret of another
// length) is malformed: ERROR kBadMessage and close. An OPEN_LOCAL_FH gets exactly
// the checks an NFSv3 READ (mode kRead) or WRITE (kReadWrite) from the bound client
// would get, with the peer's kernel-verified credentials; only a root peer may set
// kOpenHasCredentials to act for the user it serves. Per-open failures are an
// OPEN_REPLY with an nfsstat3; ERROR means the connection is over.
//
// Thread-safety: the functions are stateless.
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include <array>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/credentials.h"
#include "common/localio/broker_format.h"
#include "common/unique_fd.h"

namespace localnfs::localio {

inline constexpr char kSocketName[] = "localio.sock";
inline constexpr uint32_t kMagic = 0x4f494e4c;  // "LNIO" in memory on little endian
inline constexpr uint16_t kProtoVersion = broker::kOpsVersion;
// NFSv3 handles are at most FHSIZE3 bytes.
inline constexpr size_t kMaxFhSize = 64;
// More than AUTH_SYS's 16: a root FUSE daemon knows all of its user's groups.
inline constexpr size_t kMaxGroups = 32;
// Largest message of the protocol (a receive buffer of this size never truncates a
// well-formed packet).
inline constexpr size_t kMaxMessageSize = 256;

enum class Op : uint16_t {
  kHello = 1,
  kHelloReply = 2,
  kOpenLocalFh = 3,
  kOpenReply = 4,
  kError = 5,
};

enum class OpenMode : uint32_t { kRead = 0, kReadWrite = 1 };
// OpenLocalFhRequest::flags.
inline constexpr uint32_t kOpenHasCredentials = 1u << 0;

// Why the server ended a connection (ErrorMessage::reason).
enum class ErrorReason : uint32_t {
  kBadMessage = 1,    // malformed packet, unknown op or version, unexpected fd
  kHelloRequired = 2, // the first message was not HELLO
  kNotBound = 3,      // the uuid is not bound by this server (or no longer)
  kNotOwner = 4,      // the secret does not hash to the uuid's: another client's uuid
  kShuttingDown = 5,  // the server is stopping
  kTooManyConnections = 6,
  kNoPeerCredentials = 7,  // SO_PEERCRED / groups could not be read
};
std::string_view ErrorReasonName(ErrorReason reason);

struct HelloRequest {
  broker::Uuid uuid{};
  broker::Secret secret;  // zeroes itself
};
struct HelloReply {
  // The instance of the server record: the client compares it with the one its
  // Binding names (a socket path reused by a newer server is not its server).
  broker::InstanceId instance_id{};
};
struct OpenLocalFhRequest {
  uint64_t request_id = 0;  // echoed in the reply
  OpenMode mode = OpenMode::kRead;
  uint32_t flags = 0;
  // Used only with kOpenHasCredentials and only from a root peer.
  Credentials cred;
  std::string fh;  // the NFSv3 file handle bytes, 1..kMaxFhSize
};
// Attributes of the opened file at open time, so the client can seed its cache.
struct LocalAttrs {
  uint64_t size = 0;
  int64_t mtime_ns = 0;  // since the epoch
  int64_t ctime_ns = 0;
  // Changes with every data or metadata change (the ctime in ns: what NFSv3 clients
  // derive change from).
  uint64_t change = 0;
  uint64_t fileid = 0;  // inode number
};
struct OpenReply {
  uint64_t request_id = 0;
  uint32_t status = 0;  // nfsstat3; 0 = NFS3_OK, the fd accompanies the message
  LocalAttrs attrs;     // valid when status == 0
};
struct ErrorMessage {
  ErrorReason reason = ErrorReason::kBadMessage;
};

// A decoded packet: exactly one of the alternatives, as named by `op`.
struct Message {
  Op op = Op::kError;
  HelloRequest hello;
  HelloReply hello_reply;
  OpenLocalFhRequest open;
  OpenReply open_reply;
  ErrorMessage error;
};

std::string Encode(const HelloRequest& m);
std::string Encode(const HelloReply& m);
// Fails (kInvalidArgument) when the handle or the group list does not fit.
absl::StatusOr<std::string> Encode(const OpenLocalFhRequest& m);
std::string Encode(const OpenReply& m);
std::string Encode(const ErrorMessage& m);
// Checks magic, version, op and the exact size of that op, and every length field.
// Errors are kInvalidArgument naming the problem.
absl::StatusOr<Message> Decode(std::string_view packet);

// Sends one packet with `fd` attached by SCM_RIGHTS (fd < 0: none). MSG_NOSIGNAL:
// a closed peer is an error (EPIPE), not a signal. Errors carry the errno.
absl::Status SendWithFd(int sock, std::string_view packet, int fd = -1);

struct ReceivedPacket {
  std::string bytes;
  UniqueFd fd;  // the one fd that came with it, if any
};
// Receives one packet of at most `max_size` bytes with at most one fd
// (MSG_CMSG_CLOEXEC). A larger packet (MSG_TRUNC), truncated control data
// (MSG_CTRUNC), more than one fd, or control data that is not SCM_RIGHTS →
// kInvalidArgument, and every fd that did arrive is closed. End of stream → errno
// ECONNRESET "connection closed". Other errors carry the errno (StatusErrno() ==
// EAGAIN on a non-blocking socket with nothing queued, or after SO_RCVTIMEO).
absl::StatusOr<ReceivedPacket> ReceiveWithFd(int sock, size_t max_size = kMaxMessageSize);

}  // namespace localnfs::localio
