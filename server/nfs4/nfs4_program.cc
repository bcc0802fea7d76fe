// server/nfs4/nfs4_program.cc — the NFSv4 procedure table and COMPOUND's entry:
// the header decoded by the dispatcher, the ops run by RunCompound
// (compound.cc).
#include "server/nfs4/nfs4_program.h"

#include <stdlib.h>
#include <string.h>

#include <array>
#include <string_view>

namespace localnfs::server::nfs4 {

bool_t XdrCompound4Args(XDR* x, Compound4Args* args) {
  switch (x->x_op) {
    case XDR_FREE:
      return xdr_utf8str_cs(x, &args->tag);
    case XDR_ENCODE:
      return FALSE;
    case XDR_DECODE:
      break;
  }
  if (!xdr_utf8str_cs(x, &args->tag) || !xdr_uint32_t(x, &args->minorversion) ||
      !xdr_uint32_t(x, &args->numops)) {
    return FALSE;
  }
  // The dispatcher decodes from a memory stream over the rest of the record,
  // whose x_handy is the count of bytes not yet read: the ops, which the
  // COMPOUND loop reads from the record itself.
  args->ops_len = x->x_handy;
  return TRUE;
}

const rpc::ProcedureDesc* Nfs4Program::procedure(uint32_t proc) const {
  static const std::array<rpc::ProcedureDesc, kNfs4ProcCount> kProcs = {{
      rpc::Procedure<&Nfs4Program::Null, rpc::XdrVoid, rpc::XdrVoid>(
          "NULL", {.flags = rpc::ProcedureDesc::kQuick}),
      rpc::Procedure<&Nfs4Program::Compound, XdrCompound4Args, xdr_COMPOUND4res>("COMPOUND"),
  }};
  return proc < kProcs.size() ? &kProcs[proc] : nullptr;
}

rpc::DispatchResult Nfs4Program::Compound(rpc::Call& call, const Compound4Args& args,
                                          COMPOUND4res& res) {
  const std::string_view record = call.record();
  if (args.ops_len > record.size()) return rpc::DispatchResult::kSystemErr;  // not xdrmem
  // RFC 8881 §16.2.3: the reply echoes the request's tag.
  const u_int tag_len = args.tag.utf8string_len;
  res.tag.utf8string_val = static_cast<char*>(malloc(tag_len == 0 ? 1 : tag_len));
  if (res.tag.utf8string_val == nullptr) abort();
  if (tag_len != 0) memcpy(res.tag.utf8string_val, args.tag.utf8string_val, tag_len);
  res.tag.utf8string_len = tag_len;
  const CompoundHeader header{args.minorversion, args.numops};
  if (!RunCompound(options_.compound, header, record.substr(record.size() - args.ops_len), &res,
                   &call, services_)) {
    return rpc::DispatchResult::kGarbageArgs;
  }
  return rpc::DispatchResult::kSuccess;
}

}  // namespace localnfs::server::nfs4
