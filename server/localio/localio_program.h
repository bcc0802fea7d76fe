// server/localio/localio_program.h — the LOCALIO program (400122 version 1), wire-identical to
// the Linux kernel's (fs/nfsd/localio.c): NULL (0) and UUID_IS_LOCAL (1), whose
// argument is a fixed 16-byte opaque without a length word (rpc/localio.x) and whose
// reply is void whatever the outcome — the client learns the answer from the broker,
// never from the wire. hidden(): never registered with rpcbind (.vs_hidden).
//
// UUID_IS_LOCAL is nfs_uuid_is_local(): a uuid that a client process registered in
// OUR broker's slot file (Broker::UuidBegin) proves the client shares the runtime
// directory with us; it is bound to our record together with the export-client domain
// of the connection it arrived on (the peer address, "HOST:PORT" as
// PeerAddress::ToString writes it — the local socket applies the client rules to
// exactly that peer) and the export the connection uses (0 when not exactly one).
// Unknown, not pending, or a dead owner → nothing happens.
//
// Lifetimes: the binding takes a reference on our broker record (held by the slot);
// it is dropped when the client releases the uuid (UuidRelease), when the server
// invalidates (SIGHUP unexport, shutdown: Broker::InvalidateClients / Withdraw), or
// when the owner dies (ReapDeadClients). The broker is not owned and must outlive the
// program; nullptr (--no-localio) makes every call a no-op that still answers.
//
// Thread-safety: Dispatch() runs concurrently on RPC workers; the broker serialises
// its own state, counters are atomics. BindUuid never waits on anything a client can
// hold (one pread of the uuid's slot, a /proc read, a short server-private critical
// section), so UUID_IS_LOCAL is as quick as NULL whatever clients do to the broker.
#pragma once

#include <stdint.h>

#include <array>
#include <atomic>
#include <string>
#include <string_view>

#include "common/localio/broker_server.h"
#include "common/peer_address.h"
#include "rpc/call.h"
#include "rpc/localio.h"
#include "rpc/procedure.h"
#include "rpc/program.h"

namespace localnfs::server {

inline constexpr uint32_t kLocalioProcCount = 2;

// The export-client domain a uuid is bound with: the peer address of the NFS
// connection, "HOST:PORT" ("[V6]:PORT"). Written here, read back by the local socket,
// which applies the client rules to that peer as an RPC from it would get them.
std::string DomainOfPeer(const PeerAddress& peer);
// Parses a domain written by DomainOfPeer; false when it is not one.
bool PeerOfDomain(std::string_view domain, PeerAddress* out);

class LocalioProgram : public rpc::Program {
 public:
  explicit LocalioProgram(broker::Broker* broker) : broker_(broker) {}

  uint32_t prog() const override { return LOCALIO_PROGRAM; }
  uint32_t vers() const override { return LOCALIO_V1; }
  const char* name() const override { return "localio"; }
  uint32_t proc_count() const override { return kLocalioProcCount; }
  const rpc::ProcedureDesc* procedure(uint32_t proc) const override;
  bool hidden() const override { return true; }
  // UUID_IS_LOCAL calls that bound a uuid.
  uint64_t binds() const { return binds_.load(std::memory_order_relaxed); }

 private:
  // Handlers. Both reply void; UUID_IS_LOCAL's argument is the bare 16 bytes.
  void Null(rpc::Call&, const rpc::Void&, rpc::Void&) {}
  void UuidIsLocal(rpc::Call& call, const localio_uuidargs& args, rpc::Void&);

  broker::Broker* const broker_;
  std::atomic<uint64_t> binds_{0};
};

}  // namespace localnfs::server
