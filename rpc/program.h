// rpc/program.h — the contract between the ONC RPC server (rpc/) and the programs it
// serves (server/: NFSv3, MOUNT v3, LOCALIO).
//
// The rpc layer owns: record marking, transports, call-header checks, credential
// decoding, argument decoding/result encoding with the procedure's XDR routines,
// the reply, and freeing decoded arguments and results (xdr_free).
// A Program owns: its procedure table and the semantics — including its policy
// flags (needs export, makes a write, …), which the program's Dispatch() enforces in
// one place before it calls the handler.
//
// Thread-safety: Program::Dispatch() is called concurrently from worker threads; a
// Program must be safe for that. ProcXdr tables are immutable.
#pragma once

#include <netinet/in.h>
#include <rpc/rpc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "common/credentials.h"
#include "common/peer_address.h"

namespace localnfs::rpc {

using ::localnfs::PeerAddress;

// Per-connection state visible to programs. The rpc layer creates one per accepted
// TCP connection and destroys it after the connection is closed and every request
// that referenced it has finished.
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

// The explicit request context, passed as a parameter to every handler.
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
  // The call runs on the event-loop thread (a quick call, see ProcXdr::quick): the
  // program must not wait for the disk. Where it would (a READ of data that is not in
  // the page cache, a file handle that only a search of the export can resolve), it
  // returns DispatchResult::kWouldBlock having changed nothing,
  // and the call is run again on a worker with this false.
  bool must_not_block = false;
};

// Bulk bytes of a reply that go out after the reply's other bytes without being copied
// into them (a READ's data; rpc/server.h, "Replies"): a malloc'd buffer, freed when
// sent or dropped, followed on the wire by `pad` zero bytes (XDR's 4-byte alignment).
struct Payload {
  struct Free {
    void operator()(char* p) const { free(p); }
  };
  std::unique_ptr<char, Free> data;
  size_t size = 0;
  uint32_t pad = 0;
  size_t wire_size() const { return size + pad; }
};

// How one procedure is decoded and encoded. `args_size`/`result_size` are the sizes of
// the rpcgen-generated argument and result structs; the dispatcher zero-initialises
// buffers of that size, decodes into args, lets the program fill result, encodes it
// with encode_result, then xdr_free()s both with their routines.
struct ProcXdr {
  const char* name;  // "GETATTR"
  xdrproc_t decode_args;
  xdrproc_t encode_result;
  uint32_t args_size;
  uint32_t result_size;
  // Retransmits of this procedure are not idempotent: the duplicate request cache
  // (when present) keeps its reply.
  bool non_idempotent = false;
  // Takes microseconds and never waits for a disk write (no fsync, no WRITE data, no
  // directory listing): the rpc server may run such a call on the event-loop thread
  // that read it instead of waking a worker (rpc/server.h, "Quick calls").
  bool quick = false;
  // For results whose LAST field is a variable-length opaque of bulk data (READ3resok's
  // data): moves that buffer (malloc'd) out of the result into *out and leaves the
  // field empty (length 0, pointer null), so that the result encodes without it; false
  // when there is nothing worth moving (an error result, little data). The dispatcher
  // then writes the real length and sends the bytes from the buffer (Dispatcher::Handle).
  bool (*take_payload)(void* result, Payload* out) = nullptr;
  // The most bytes the result of this call can encode to, read from the call's
  // argument bytes as received (not decoded: they may be short or garbage, and then
  // the answer is small). The server reserves that much reply memory before it starts
  // the call (rpc/server.h, "Memory for replies"), so only procedures whose result
  // size the client chooses need it (READ's count, READDIR's). nullptr: at most
  // kDefaultResultSize.
  size_t (*max_result_bytes)(std::string_view args) = nullptr;
};

// What the server reserves for the result of a procedure without
// ProcXdr::max_result_bytes. A larger result is still sent; it is counted at its real size
// once it is encoded.
inline constexpr size_t kDefaultResultSize = 4096;

// What the dispatcher should send after Dispatch().
enum class DispatchResult {
  kSuccess,      // encode the result with encode_result (accept_stat SUCCESS)
  kGarbageArgs,  // arguments decoded but are semantically undecodable
  kSystemErr,    // the program could not run the call
  kDrop,         // send no reply (the client will retransmit)
  kWouldBlock,   // only when ctx.must_not_block: nothing done, run it on a worker
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
  // The XDR description of `proc`, or nullptr if the procedure does not exist
  // (→ PROC_UNAVAIL).
  virtual const ProcXdr* procedure(uint32_t proc) const = 0;
  // True for programs that must not be registered with rpcbind (LOCALIO, like the
  // kernel's .vs_hidden).
  virtual bool hidden() const { return false; }
  // Runs `ctx.proc` on decoded `args`, filling the zero-initialised `result`.
  virtual DispatchResult Dispatch(CallContext& ctx, void* args, void* result) = 0;
};

}  // namespace localnfs::rpc
