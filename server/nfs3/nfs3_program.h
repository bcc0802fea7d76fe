// server/nfs3/nfs3_program.h — the NFSv3 program (100003 version 3, RFC 1813).
//
// Owns: the procedure table (one rpc::ProcedureDesc per procedure, made from the typed
// handler and its rpcgen types, with this program's flags in its program-flags word;
// beside it the typed adaptors of the pipeline: the arguments' file handles and the
// failure result), the write verifier (8 random bytes per server start, or injected),
// and the bytes READ and WRITE moved (calls and their latency are counted for every
// program by the dispatcher: rpc/procedure_stats.h). Not owned (must outlive the
// program): the export table, the handle key and the Backend (backend/backend.h: the
// caching layer over the POSIX backend in localnfsd, a MemoryBackend in the handler
// tests).
//
// Policy is enforced in ONE place, the pipeline Dispatch(), in three explicit steps for
// every procedure flagged kNeedsExport:
//  1. decode the arguments' file handles (Proc::handles) and authenticate them
//     (HandleKey::Decode: → BADHANDLE);
//  2. check export access: AuthorizeHandle() (request_policy.h — the steps the LOCALIO
//     local socket takes too: export → STALE, client rule of the connection → ACCES,
//     `secure` → PERM, kMakesWrite on a read-only export → ROFS, squash). A second
//     handle (RENAME's to.dir, LINK's link.dir) must name the same export (→ XDEV), so
//     the same decisions cover it;
//  3. resolve EVERY handle through Backend::Resolve (→ STALE, or the backend's errno).
// Only then the thin handler runs, with an explicit Nfs3Request — the program's state of
// the call (rpc/call.h), which keeps what the pipeline decided and resolved. Handlers
// never resolve a handle, never decide access and never switch credentials: the Backend
// owns the switch (backend.h "Credentials": the POSIX backend switches around the system
// calls of each namespace operation, after its objects were resolved as the server), and
// handlers pass it the squashed credentials — with the rule's `sync` for changes
// (backend::Caller), so that the Backend commits the metadata it changed before it
// returns (backend.h "Durability"; a failed commit is the operation's error).
// Failures of the steps are written as the bare nfsstat3 of the result (Proc::fail:
// every failure arm holds only optional attributes).
// On the event loop (CallContext::must_not_block) a step that would wait — a handle only
// a search of the export can resolve (Resolve with may_search=false → EWOULDBLOCK), a
// READ of data not in the page cache (Backend::Read nowait → would_block), a change that
// a `sync` rule commits before its reply (sent to a worker before anything is done) —
// returns kWouldBlock having changed nothing; the call moves to a worker with its state,
// and the pipeline continues there from that step (nothing is decoded, authorised,
// resolved or counted again).
//
// Thread-safety: Dispatch() runs concurrently on worker threads and the event loop;
// the table and the verifier are immutable, counters are atomics.
#pragma once

#include <stdint.h>

#include <array>
#include <atomic>
#include <optional>
#include <string>

#include "common/credentials.h"
#include "common/log.h"
#include "common/refcount.h"
#include "export_cache/export_options.h"
#include "export_cache/export_table.h"
#include "rpc/call.h"
#include "rpc/nfs3.h"
#include "rpc/procedure.h"
#include "rpc/program.h"
#include "server/backend/backend.h"
#include "server/policy/fhandle.h"

namespace localnfs::server {

inline constexpr uint32_t kNfs3ProcCount = 22;

// What a handler gets: the call, the export (referenced), the resolved objects of
// its handles and the squashed credentials — the program's state of the call
// (rpc::Call::EmplaceState), kept while the call moves from the event loop to a
// worker. Valid for the call only.
struct Nfs3Request {
  rpc::Call* call = nullptr;
  const rpc::CallContext* ctx = nullptr;  // &call->ctx()
  Ref<exports::Export> exp;
  exports::ExportOptions options;  // of the client rule that matched
  backend::Object obj;             // &obj.exp() == exp.get()
  // The object of the second handle (RENAME's to.dir, LINK's link.dir), in the same
  // export; set exactly for the procedures whose arguments carry one.
  std::optional<backend::Object> second;
  Credentials cred;                // squashed
  // Set by a handler called with ctx->must_not_block that would have to wait for the
  // disk, or by a handle resolution that would have to search the export
  // (fhandle.h): it changed nothing, Dispatch returns kWouldBlock (rpc/program.h).
  bool would_block = false;

  // How far the pipeline got (kept for the worker's run after kWouldBlock): the
  // handles decoded and authorised (exp, options, cred set; `handle`, `second_handle`
  // to be resolved into obj and second).
  bool authorized = false;
  backend::Handle handle;
  std::optional<backend::Handle> second_handle;

  // The Caller of a change: the squashed credentials and the rule's `sync`.
  backend::Caller caller() const { return backend::Caller{cred, options.sync}; }
};

// The file handles of a procedure's arguments: the object's (every NFSv3 procedure
// but NULL) and a second directory's (RENAME's to.dir, LINK's link.dir).
struct Nfs3Handles {
  const nfs_fh3* first = nullptr;
  const nfs_fh3* second = nullptr;
};

class Nfs3Program : public rpc::Program {
 public:
  struct Deps {
    exports::ExportTable* exports = nullptr;
    const HandleKey* key = nullptr;
    backend::Backend* backend = nullptr;
    // Injected for tests; random per start when unset.
    std::optional<uint64_t> write_verifier;
  };
  explicit Nfs3Program(Deps deps);

  uint32_t prog() const override { return NFS_PROGRAM; }
  uint32_t vers() const override { return NFS_V3; }
  const char* name() const override { return "nfs"; }
  uint32_t proc_count() const override { return kNfs3ProcCount; }
  const rpc::ProcedureDesc* procedure(uint32_t proc) const override;
  size_t call_state_size() const override { return sizeof(Nfs3Request); }
  rpc::DispatchResult Dispatch(rpc::Call& call) override;

  // Data bytes READ replies carried and WRITE calls wrote (successful calls only).
  uint64_t bytes_read() const { return bytes_read_.load(std::memory_order_relaxed); }
  uint64_t bytes_written() const { return bytes_written_.load(std::memory_order_relaxed); }
  uint64_t write_verifier() const { return write_verifier_; }

  // Policy flags of a table entry (its ProcedureDesc::program_flags).
  static constexpr uint32_t kNeedsExport = 1u << 0;    // leading handle → export, object
  static constexpr uint32_t kMakesWrite = 1u << 1;     // refused on ro exports
  // The rpc flags the table uses (ProcedureDesc::flags):
  // kNonIdempotent: reply worth caching (DRC).
  // kQuick: may run on the event-loop thread that read it. Not WRITE, COMMIT (they
  // wait for the disk), SETATTR (a truncate can free a large file's blocks),
  // READDIR/READDIRPLUS (a listing is unbounded work). A kMakesWrite procedure for a
  // `sync` rule commits to disk before its reply: Dispatch sends it to a worker
  // (kWouldBlock, before anything is done), so only `async` exports run those quick.
  static constexpr uint32_t kNonIdempotent = rpc::ProcedureDesc::kNonIdempotent;
  static constexpr uint32_t kQuick = rpc::ProcedureDesc::kQuick;

  // A table entry: the descriptor and the pipeline's typed adaptors.
  struct Proc {
    rpc::ProcedureDesc desc;
    // The file handles of the arguments.
    Nfs3Handles (*handles)(const void* args) = nullptr;
    // Replaces the result by the bare `status` (a failure arm without attributes).
    void (*fail)(rpc::Call& call, nfsstat3 status) = nullptr;
  };

 private:
  // Handlers (nfs3proc.cc): validate, call the Backend, fill the result.
  void Null(rpc::Call&, const rpc::Void&, rpc::Void&) {}
  void Getattr(Nfs3Request&, const GETATTR3args&, GETATTR3res&);
  void Setattr(Nfs3Request&, const SETATTR3args&, SETATTR3res&);
  void Lookup(Nfs3Request&, const LOOKUP3args&, LOOKUP3res&);
  void Access(Nfs3Request&, const ACCESS3args&, ACCESS3res&);
  void Readlink(Nfs3Request&, const READLINK3args&, READLINK3res&);
  void Read(Nfs3Request&, const READ3args&, READ3res&);
  void Write(Nfs3Request&, const WRITE3args&, WRITE3res&);
  void Create(Nfs3Request&, const CREATE3args&, CREATE3res&);
  void Mkdir(Nfs3Request&, const MKDIR3args&, MKDIR3res&);
  void Symlink(Nfs3Request&, const SYMLINK3args&, SYMLINK3res&);
  void Mknod(Nfs3Request&, const MKNOD3args&, MKNOD3res&);
  void Remove(Nfs3Request&, const REMOVE3args&, REMOVE3res&);
  void Rmdir(Nfs3Request&, const RMDIR3args&, RMDIR3res&);
  void RemoveEntry(Nfs3Request& req, const diropargs3& what, backend::RemoveKind kind,
                   nfsstat3* status, wcc_data* dir_wcc);
  void Rename(Nfs3Request&, const RENAME3args&, RENAME3res&);
  void Link(Nfs3Request&, const LINK3args&, LINK3res&);
  void Readdir(Nfs3Request&, const READDIR3args&, READDIR3res&);
  void Readdirplus(Nfs3Request&, const READDIRPLUS3args&, READDIRPLUS3res&);
  void Fsstat(Nfs3Request&, const FSSTAT3args&, FSSTAT3res&);
  void Fsinfo(Nfs3Request&, const FSINFO3args&, FSINFO3res&);
  void Pathconf(Nfs3Request&, const PATHCONF3args&, PATHCONF3res&);
  void Commit(Nfs3Request&, const COMMIT3args&, COMMIT3res&);

  template <auto kHandler, auto kXdrArgs, auto kXdrResult>
  static constexpr Proc MakeProc(const char* name, uint32_t program_flags,
                                 uint32_t rpc_flags);
  static const std::array<Proc, kNfs3ProcCount>& Table();

  // Dispatch steps 1-3 (above) from where an earlier run stopped. Sets req.would_block
  // (on the event loop) when a handle needs an export search (fhandle.h).
  nfsstat3 Prepare(const rpc::Call& call, const Proc& p, Nfs3Request& req);

  // Helpers for handlers.
  // A name argument of the request, with its wire length. One that holds a NUL or a
  // '/' is logged here (rate-limited: a client can send them at will) and refused by
  // the backend (rules.h ValidateName: EACCES).
  std::string_view ArgName(const Nfs3Request& req, const filename3& name);
  // CREATE/MKDIR/SYMLINK/MKNOD results: the new object's handle (none if it cannot be
  // encoded: the client looks the name up itself, RFC 1813 allows it) and attributes.
  void SetNewObject(const Nfs3Request& req, const backend::Object& made, post_op_fh3* fh,
                    post_op_attr* attr);
  // wcc_data of `obj` changed (or not) by this request: its attributes as resolved,
  // and now.
  void SetWccOf(wcc_data* out, const Nfs3Request& req, const backend::Object& obj);
  uint64_t fsid(const Nfs3Request& req) const { return req.exp->id(); }

  Deps deps_;
  uint64_t write_verifier_;
  std::atomic<uint64_t> bytes_read_{0};
  std::atomic<uint64_t> bytes_written_{0};
  LogRateLimit bad_name_log_{1, absl::Seconds(1)};
};

}  // namespace localnfs::server
