// rpc/server_rpcbind.cc — registering the server's programs with the local rpcbind
// (the kernel's svc.c: svc_register / svc_unregister, through the portmapper protocol
// version 2: libtirpc's pmap_set/pmap_unset), and unregistering exactly what was
// registered.
//
// Thread-safety: called by the server's owner (main), not concurrently with itself;
// the list of what was registered is guarded by mu_.
#include "rpc/server_impl.h"

#include <rpc/pmap_clnt.h>

#include <utility>

#include "absl/strings/str_format.h"

namespace localnfs::rpc {

absl::Status Server::Impl::RegisterWithRpcbind(uint16_t nfs_port, uint16_t mount_port) {
  bool has_udp = false;
  {
    absl::MutexLock l(&mu_);
    for (auto& listener : listeners_)
      has_udp |= listener->kind == Pollable::Kind::kUdpSocket;
  }
  for (Program* p : dispatcher_.programs()) {
    if (p->hidden()) continue;
    const uint16_t port = p->prog() == kMountProgram ? mount_port : nfs_port;
    // pmap_set goes through rpcb_set on libtirpc's local rpcbind transport; it
    // registers the universal address of the loopback netconfig for that protocol.
    pmap_unset(p->prog(), p->vers());  // a stale registration from a crashed run
    if (!pmap_set(p->prog(), p->vers(), IPPROTO_TCP, port)) {
      return absl::UnavailableError(absl::StrFormat(
          "rpcbind: cannot register %s (program %u version %u) on tcp port %u", p->name(),
          p->prog(), p->vers(), port));
    }
    if (has_udp) pmap_set(p->prog(), p->vers(), IPPROTO_UDP, port);
    absl::MutexLock l(&mu_);
    rpcbind_registered_.emplace_back(p->prog(), p->vers());
    LOG_INFO("rpc: registered %s v%u with rpcbind on port %u", p->name(), p->vers(),
             port);
  }
  return absl::OkStatus();
}

void Server::Impl::UnregisterFromRpcbind() {
  std::vector<std::pair<uint32_t, uint32_t>> regs;
  {
    absl::MutexLock l(&mu_);
    regs.swap(rpcbind_registered_);
  }
  for (auto [prog, vers] : regs) pmap_unset(prog, vers);
}

}  // namespace localnfs::rpc
