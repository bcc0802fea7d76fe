// server/localio_program.cc — see localio_program.h.
#include "server/localio_program.h"

#include <string.h>

#include "common/log.h"
#include "server/client_rules.h"

namespace localnfs::server {

std::string DomainOfPeer(const PeerAddress& peer) { return peer.ToString(); }

bool PeerOfDomain(std::string_view domain, PeerAddress* out) {
  const size_t colon = domain.rfind(':');
  if (colon == std::string_view::npos || colon + 1 >= domain.size()) return false;
  std::string_view host = domain.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  uint32_t port = 0;
  for (char c : domain.substr(colon + 1)) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + static_cast<uint32_t>(c - '0');
    if (port > 65535) return false;
  }
  return PeerAddress::Parse(std::string(host), static_cast<uint16_t>(port), out);
}

const rpc::ProcXdr* LocalioProgram::procedure(uint32_t proc) const {
  // Both procedures reply void; UUID_IS_LOCAL's argument is the bare 16 bytes.
  static const std::array<rpc::ProcXdr, kLocalioProcCount> table = {{
      {"NULL", reinterpret_cast<xdrproc_t>(xdr_void), reinterpret_cast<xdrproc_t>(xdr_void),
       0, 0, false},
      {"UUID_IS_LOCAL", reinterpret_cast<xdrproc_t>(xdr_localio_uuidargs),
       reinterpret_cast<xdrproc_t>(xdr_void), sizeof(localio_uuidargs), 0, false},
  }};
  return proc < kLocalioProcCount ? &table[proc] : nullptr;
}

rpc::DispatchResult LocalioProgram::Dispatch(rpc::CallContext& ctx, void* args, void*) {
  if (ctx.proc >= kLocalioProcCount) return rpc::DispatchResult::kSystemErr;
  calls_[ctx.proc].fetch_add(1, std::memory_order_relaxed);
  if (ctx.proc != LOCALIOPROC_UUID_IS_LOCAL || broker_ == nullptr)
    return rpc::DispatchResult::kSuccess;
  broker::Uuid uuid;
  static_assert(sizeof(localio_uuidargs::uuid) == sizeof(uuid));
  memcpy(uuid.data(), static_cast<const localio_uuidargs*>(args)->uuid, uuid.size());
  const std::string domain = DomainOfPeer(ctx.conn->peer());
  if (broker_->BindUuid(uuid, domain, SoleExportOfConnection(*ctx.conn))) {
    binds_.fetch_add(1, std::memory_order_relaxed);
    LOG_INFO("localio: uuid %s bound for %s", broker::UuidToString(uuid), domain);
  } else {
    LOG_DEBUG("localio: uuid %s from %s not pending here", broker::UuidToString(uuid),
              domain);
  }
  return rpc::DispatchResult::kSuccess;
}

}  // namespace localnfs::server
