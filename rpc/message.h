// rpc/message.h — ONC RPC v2 message headers (RFC 5531 §9): the call header a server
// decodes and the reply headers it encodes, and the mirror image for the client.
//
// Owns: nothing but wire formats. The header logic is ours; only the XDR primitives
// (xdr_u_int, xdr_opaque, …) come from libtirpc, on an xdrmem stream owned by the
// caller.
//
// Thread-safety: stateless functions.
#pragma once

#include <rpc/rpc.h>
#include <stdint.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "common/credentials.h"
#include "rpc/program.h"

namespace localnfs::rpc {

inline constexpr uint32_t kRpcVersion = 2;
inline constexpr uint32_t kMsgCall = 0;
inline constexpr uint32_t kMsgReply = 1;
inline constexpr uint32_t kMaxAuthBytes = 400;    // opaque_auth body<400>
inline constexpr uint32_t kMaxMachineName = 255;  // AUTH_SYS machinename<255>

enum class ReplyStat : uint32_t { kAccepted = 0, kDenied = 1 };
enum class AcceptStat : uint32_t {
  kSuccess = 0,
  kProgUnavail = 1,
  kProgMismatch = 2,
  kProcUnavail = 3,
  kGarbageArgs = 4,
  kSystemErr = 5,
};
enum class RejectStat : uint32_t { kRpcMismatch = 0, kAuthError = 1 };
enum class AuthStat : uint32_t {
  kOk = 0,
  kBadCred = 1,
  kRejectedCred = 2,
  kBadVerf = 3,
  kRejectedVerf = 4,
  kTooWeak = 5,
};

// Size of the reply header of an accepted reply with an AUTH_NONE verifier:
// xid, REPLY, MSG_ACCEPTED, verf flavor, verf length, accept_stat.
inline constexpr uint32_t kAcceptedReplyHeaderSize = 6 * 4;

// The decoded call header.
struct CallHeader {
  uint32_t xid = 0;
  uint32_t prog = 0;
  uint32_t vers = 0;
  uint32_t proc = 0;
  AuthFlavor flavor = AuthFlavor::kNone;
  Credentials cred;          // nobody for AUTH_NONE
  std::string machine_name;  // AUTH_SYS only
};

// The outcome of DecodeCallHeader, i.e. what the server must answer.
enum class HeaderCheck {
  kOk,           // header decoded; the stream is positioned at the arguments
  kDrop,         // no xid, or not a CALL: nothing can or should be answered
  kGarbage,      // xid and rpcvers readable, the rest truncated → GARBAGE_ARGS
  kRpcMismatch,  // rpcvers != 2 → MSG_DENIED RPC_MISMATCH 2..2
  kBadCred,      // malformed credential → AUTH_ERROR AUTH_BADCRED
  kBadVerf,      // malformed verifier → AUTH_ERROR AUTH_BADVERF
  kTooWeak,      // a flavor other than AUTH_NONE / AUTH_SYS → AUTH_ERROR AUTH_TOOWEAK
};

// Decodes the call header at the start of `msg` (a call message without record
// mark). Whatever is returned, `out->xid` is valid unless kDrop; *args_pos (where
// the arguments start) is set whenever both authenticators were read (kOk, kTooWeak,
// and an AUTH_SYS body that does not parse). Checks follow the order of RFC 5531
// servers: message type, RPC version, then credentials (before the program is
// looked up).
HeaderCheck DecodeCallHeader(std::string_view msg, CallHeader* out, size_t* args_pos);

// Reply headers, encoded on `xdrs` (XDR_ENCODE). Return false if the stream is full.
// Accepted replies carry an AUTH_NONE verifier. For kProgMismatch the caller appends
// nothing: pass low/high here.
bool EncodeAcceptedReply(XDR* xdrs, uint32_t xid, AcceptStat stat, uint32_t low = 0,
                         uint32_t high = 0);
bool EncodeRpcMismatchReply(XDR* xdrs, uint32_t xid);
bool EncodeAuthErrorReply(XDR* xdrs, uint32_t xid, AuthStat stat);

// ---- client side ----

// The credential a client sends.
struct CallAuth {
  AuthFlavor flavor = AuthFlavor::kNone;
  Credentials cred;          // AUTH_SYS: all groups are sent, even beyond 16
  std::string machine_name;  // AUTH_SYS
  uint32_t stamp = 0;        // AUTH_SYS
};

// Encodes a complete call header (through the verifier; the arguments follow).
bool EncodeCallHeader(XDR* xdrs, uint32_t xid, uint32_t prog, uint32_t vers,
                      uint32_t proc, const CallAuth& auth);
// An upper bound of the bytes EncodeCallHeader writes for `auth`.
uint32_t CallHeaderSize(const CallAuth& auth);

// What a reply said, when it was not "accepted, SUCCESS".
struct RpcError {
  ReplyStat reply_stat = ReplyStat::kAccepted;
  AcceptStat accept_stat = AcceptStat::kSuccess;      // when kAccepted
  RejectStat reject_stat = RejectStat::kRpcMismatch;  // when kDenied
  AuthStat auth_stat = AuthStat::kOk;                 // when kDenied/kAuthError
  uint32_t low = 0;                                   // PROG_MISMATCH / RPC_MISMATCH
  uint32_t high = 0;
  bool is_success() const {
    return reply_stat == ReplyStat::kAccepted && accept_stat == AcceptStat::kSuccess;
  }
  friend bool operator==(const RpcError&, const RpcError&) = default;
};

// Decodes a reply header from `xdrs`; on OK, *xid and *reply are filled and, when
// reply->is_success(), the stream is positioned at the result. A malformed header is
// an error (kDataLoss).
absl::Status DecodeReplyHeader(XDR* xdrs, uint32_t* xid, RpcError* reply);

// A Status describing `e` ("PROG_MISMATCH (low 3, high 3)"), carrying `e` as a payload
// so that callers can test exact values with GetRpcError(). OK for success.
absl::Status RpcErrorToStatus(const RpcError& e);
// The RpcError carried by a Status made by RpcErrorToStatus, if any.
bool GetRpcError(const absl::Status& status, RpcError* out);
std::string RpcErrorToString(const RpcError& e);

}  // namespace localnfs::rpc
