// server/localio/localio_program.cc — see localio_program.h.
#include "server/localio/localio_program.h"

#include <string.h>

#include "common/log.h"
#include "server/policy/client_rules.h"

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

const rpc::ProcedureDesc* LocalioProgram::procedure(uint32_t proc) const {
  static const std::array<rpc::ProcedureDesc, kLocalioProcCount> table = {{
      rpc::Procedure<&LocalioProgram::Null, rpc::XdrVoid, rpc::XdrVoid>("NULL"),
      rpc::Procedure<&LocalioProgram::UuidIsLocal, xdr_localio_uuidargs, rpc::XdrVoid>(
          "UUID_IS_LOCAL"),
  }};
  return proc < kLocalioProcCount ? &table[proc] : nullptr;
}

void LocalioProgram::UuidIsLocal(rpc::Call& call, const localio_uuidargs& args, rpc::Void&) {
  if (broker_ == nullptr) return;
  broker::Uuid uuid;
  static_assert(sizeof(localio_uuidargs::uuid) == sizeof(uuid));
  memcpy(uuid.data(), args.uuid, uuid.size());
  const std::string domain = DomainOfPeer(call.ctx().conn->peer());
  if (broker_->BindUuid(uuid, domain, SoleExportOfConnection(*call.ctx().conn))) {
    binds_.fetch_add(1, std::memory_order_relaxed);
    LOG_INFO("localio: uuid %s bound for %s", broker::UuidToString(uuid), domain);
  } else {
    LOG_DEBUG("localio: uuid %s from %s not pending here", broker::UuidToString(uuid),
              domain);
  }
}

}  // namespace localnfs::server
