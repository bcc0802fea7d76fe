// rpc_call_fuzz — the ONC RPC headers (rpc/message.h) on one record: the call header
// with its AUTH_SYS credential as the server decodes it, and the reply header as the
// client side (rpc/client.h) decodes it.
//
// Properties beyond "no crash, no leak": a decoded call never reports more than 16
// groups or a machine name over 255 bytes, and an AUTH_SYS header that decodes is
// encoded again by EncodeCallHeader into bytes that decode to the same header.
#include <rpc/rpc.h>
#include <stdint.h>
#include <stdlib.h>

#include <string>
#include <string_view>

#include "rpc/message.h"

namespace {

using namespace localnfs::rpc;

void CheckCall(const uint8_t* data, size_t size) {
  const std::string_view msg(reinterpret_cast<const char*>(data), size);
  CallHeader h;
  size_t args_pos = 0;
  const HeaderCheck check = DecodeCallHeader(msg, &h, &args_pos);
  if (args_pos > size) abort();
  if (check != HeaderCheck::kOk) return;
  if (h.cred.groups.size() > static_cast<size_t>(localnfs::kMaxAuthSysGroups) ||
      h.machine_name.size() > kMaxMachineName) {
    abort();
  }
  if (h.flavor != AuthFlavor::kSys) return;

  CallAuth auth;
  auth.flavor = h.flavor;
  auth.cred = h.cred;
  auth.machine_name = h.machine_name;
  std::string buf(CallHeaderSize(auth), '\0');
  XDR out;
  xdrmem_create(&out, buf.data(), static_cast<u_int>(buf.size()), XDR_ENCODE);
  const bool encoded = EncodeCallHeader(&out, h.xid, h.prog, h.vers, h.proc, auth);
  buf.resize(xdr_getpos(&out));
  xdr_destroy(&out);
  if (!encoded) abort();

  CallHeader h2;
  size_t args_pos2 = 0;
  const HeaderCheck check2 = DecodeCallHeader(buf, &h2, &args_pos2);
  // The re-encoded header alone: its arguments start at its end.
  if (check2 != HeaderCheck::kOk || args_pos2 != buf.size() || h2.xid != h.xid || h2.prog != h.prog ||
      h2.vers != h.vers || h2.proc != h.proc || h2.flavor != h.flavor ||
      h2.cred.uid != h.cred.uid || h2.cred.gid != h.cred.gid ||
      h2.cred.groups != h.cred.groups || h2.machine_name != h.machine_name) {
    abort();
  }
}

void CheckReply(const uint8_t* data, size_t size) {
  XDR in;
  xdrmem_create(&in, const_cast<char*>(reinterpret_cast<const char*>(data)),
                static_cast<u_int>(size), XDR_DECODE);
  uint32_t xid = 0;
  RpcError reply;
  const absl::Status status = DecodeReplyHeader(&in, &xid, &reply);
  xdr_destroy(&in);
  if (!status.ok()) return;
  // The error Status round-trips through its payload.
  RpcError back;
  const absl::Status as_status = RpcErrorToStatus(reply);
  if (!reply.is_success() && (!GetRpcError(as_status, &back) || !(back == reply))) abort();
  (void)RpcErrorToString(reply);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CheckCall(data, size);
  CheckReply(data, size);
  return 0;
}
