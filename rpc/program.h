// rpc/program.h — the contract between the ONC RPC server (rpc/) and the programs it
// serves (server/: NFSv3, MOUNT v3, LOCALIO; later NFSv4's COMPOUND).
//
// The rpc layer owns: record marking, transports, call-header checks, credential
// decoding, the per-call object (rpc/call.h, the kernel's svc_rqst) with its decoded
// arguments and result, the reply, and freeing arguments and result (xdr_free). It
// enforces the rpc flags of each procedure's descriptor (rpc/procedure.h) in one
// place, the dispatcher (rpc/dispatch.h).
// A Program owns: its procedure table (ProcedureDesc entries, made from typed
// handlers) and its one pipeline, Dispatch(), which reads the program flags of the
// descriptor (needs export, makes a write, …) and calls the handler.
//
// Thread-safety: Program::Dispatch() is called concurrently from worker threads and
// the event loop; a Program must be safe for that. Procedure tables are immutable.
#pragma once

#include <netinet/in.h>
#include <rpc/rpc.h>
#include <stdint.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "common/credentials.h"
#include "common/peer_address.h"

namespace localnfs::rpc {

using ::localnfs::PeerAddress;

class Call;
struct ProcedureDesc;

// Per-connection state visible to programs (the kernel's svc_xprt as programs see it).
// The rpc layer creates one per accepted TCP connection (and one per UDP datagram) and
// destroys it after the connection is closed and every call that referenced it has
// finished.
class ConnectionInfo {
 public:
  ConnectionInfo(uint64_t id, PeerAddress peer, PeerAddress local)
      : id_(id), peer_(peer), local_(local) {}

  uint64_t id() const { return id_; }
  const PeerAddress& peer() const { return peer_; }
  const PeerAddress& local() const { return local_; }

  // One opaque slot owned by the program layer: server/ keeps the export-client
  // domain matched for this connection here (matched once, reused by every request).
  // Get returns nullptr until Set; Set replaces. Destroyed with the connection.
  std::shared_ptr<void> attachment() const {
    absl::MutexLock l(&mu_);
    return attachment_;
  }
  void set_attachment(std::shared_ptr<void> a) {
    absl::MutexLock l(&mu_);
    attachment_ = std::move(a);
  }

 private:
  const uint64_t id_;
  const PeerAddress peer_;
  const PeerAddress local_;
  mutable absl::Mutex mu_;
  std::shared_ptr<void> attachment_ ABSL_GUARDED_BY(mu_);
};

// Authentication flavors we accept (RFC 5531 §8.2).
enum class AuthFlavor : uint32_t { kNone = 0, kSys = 1 };

// The request context the rpc layer establishes, passed explicitly (inside the Call)
// to the program's pipeline and its handlers — never a thread-local. The program adds
// what it resolves (export, squashed credentials, objects) in its own state of the
// call (Call::EmplaceState).
struct CallContext {
  uint32_t xid = 0;
  uint32_t prog = 0;
  uint32_t vers = 0;
  uint32_t proc = 0;
  AuthFlavor flavor = AuthFlavor::kNone;
  // The credentials as sent by the client: AUTH_SYS uid/gid/gids; for AUTH_NONE the
  // nobody ids. Programs squash them (export rules) before use.
  Credentials cred;
  std::string machine_name;  // AUTH_SYS machinename, empty for AUTH_NONE
  ConnectionInfo* conn = nullptr;  // never null; valid for the call's duration
  // This run of the call is on the event-loop thread (a quick call, see
  // ProcedureDesc::kQuick): the program must not wait for the disk. Where it would (a
  // READ of data that is not in the page cache, a file handle that only a search of
  // the export can resolve), it returns DispatchResult::kWouldBlock, keeping in its
  // state of the call what it has done; the dispatcher then moves the call — decoded,
  // with that state — to a worker, which calls Dispatch() again with this false, and
  // the program continues from the step that would have blocked.
  bool must_not_block = false;
};

// What the server reserves for the result of a procedure without
// ProcedureDesc::max_result_bytes. A larger result is still sent; it is counted at its
// real size once it is encoded.
inline constexpr size_t kDefaultResultSize = 4096;

// What the dispatcher should send after Dispatch().
enum class DispatchResult {
  kSuccess,      // encode the result (accept_stat SUCCESS)
  kGarbageArgs,  // arguments decoded but are semantically undecodable
  kSystemErr,    // the program could not run the call
  kDrop,         // send no reply (the client will retransmit)
  kWouldBlock,   // only when ctx.must_not_block: continue on a worker (above)
};

// One program version. Registered with the rpc Server before it starts.
class Program {
 public:
  virtual ~Program() = default;
  virtual uint32_t prog() const = 0;
  virtual uint32_t vers() const = 0;
  virtual const char* name() const = 0;  // "nfs", "mount", "localio"
  // Number of procedures (procedure numbers are 0 .. count-1).
  virtual uint32_t proc_count() const = 0;
  // The descriptor of `proc` (proc < proc_count()), or nullptr if the procedure does
  // not exist (→ PROC_UNAVAIL).
  virtual const ProcedureDesc* procedure(uint32_t proc) const = 0;
  // True for programs that must not be registered with rpcbind (LOCALIO, like the
  // kernel's .vs_hidden).
  virtual bool hidden() const { return false; }
  // Bytes each call of this program keeps for the program's state of the call
  // (Call::EmplaceState): what its pipeline resolved, kept when the call moves to a
  // worker. 0: the program keeps none.
  virtual size_t call_state_size() const { return 0; }
  // The program's one pipeline (the kernel's vs_dispatch), for every procedure: runs
  // the call's handler (procedure().handle) on its decoded arguments, filling the
  // zero-initialised result, after whatever the program's flags ask for. The default
  // runs the handler alone. Called again for the same call after kWouldBlock (see
  // CallContext::must_not_block).
  virtual DispatchResult Dispatch(Call& call);
};

}  // namespace localnfs::rpc
