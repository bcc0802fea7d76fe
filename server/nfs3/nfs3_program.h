// server/nfs3/nfs3_program.h — the NFSv3 program (100003 version 3, RFC 1813).
//
// Owns: the procedure table (one rpc::ProcedureDesc per procedure, made from the typed
// handler and its rpcgen types, with this program's flags in its program-flags word;
// beside it the typed adaptors of the pipeline: the arguments' file handles and the
// failure result), the write verifier (8 random bytes per server start, or injected),
// and per-procedure call counters. Not owned (must outlive the program): the export
// table, the handle key, the handle resolver and the file cache.
//
// Policy is enforced in ONE place, the pipeline Dispatch(): for procedures flagged
// kNeedsExport it passes the arguments' file handle (Proc::handles), the connection
// and the AUTH_SYS credentials to AuthorizeHandle() (request_policy.h — the steps the
// LOCALIO local socket's Authorize() takes too: handle → BADHANDLE, export → STALE,
// client rule of the connection → ACCES, `secure` → PERM, kMakesWrite on a read-only
// export → ROFS, squash), resolves that handle (ResolveObject: → O_PATH fd) and the
// request's second handle (RENAME's to.dir, LINK's link.dir) in the same export
// (ResolveInSameExport: another export → XDEV), and only then switches to the
// squashed credentials for kAsCaller procedures (creds.h) — every handle is resolved
// with the server's own credentials, because open_by_handle_at needs
// CAP_DAC_READ_SEARCH, which a switched fsuid drops. Handlers never resolve a handle
// and never switch credentials themselves. Failures are written as the bare nfsstat3
// of the result (Proc::fail: every failure arm holds only optional attributes).
// Only then it calls the thin handler with an explicit Nfs3Request — the program's
// state of the call (rpc/call.h), which keeps what the pipeline resolved. On the event
// loop (CallContext::must_not_block) a step that would wait — a handle only a search of
// the export can resolve, a READ of data not in the page cache, a change that a `sync`
// rule commits before its reply — returns kWouldBlock having changed nothing; the call
// moves to a worker with its state, and the pipeline continues there from that step
// (nothing is authorised, resolved or counted again).
// After the handler, back in the server's credentials, it commits what the handler
// changed when the client rule says `sync` (CommitBeforeReply), before the reply is
// sent.
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
#include "server/policy/fhandle.h"
#include "server/backend/file_cache.h"
#include "server/backend/vfs.h"

namespace localnfs::server {

inline constexpr uint32_t kNfs3ProcCount = 22;
// READ's data goes out from its own buffer (rpc::Call::AddBulk) once it is large
// enough that copying it into the reply costs more than an iovec of its own.
inline constexpr uint32_t kMinReadPayload = 16 * 1024;

// What a handler gets: the call, the export (referenced), the resolved objects of
// its handles and the squashed credentials — the program's state of the call
// (rpc::Call::EmplaceState), kept while the call moves from the event loop to a
// worker. Valid for the call only.
struct Nfs3Request {
  rpc::Call* call = nullptr;
  const rpc::CallContext* ctx = nullptr;  // &call->ctx()
  Ref<exports::Export> exp;
  exports::ExportOptions options;  // of the client rule that matched
  vfs::Object obj;                 // obj.exp == exp.get()
  // The object of the second handle (RENAME's to.dir, LINK's link.dir), in the same
  // export; set exactly for the procedures whose arguments carry one.
  std::optional<vfs::Object> second;
  Credentials cred;                // squashed
  // Set by a handler called with ctx->must_not_block that would have to wait for the
  // disk, or by a handle resolution that would have to search the export
  // (fhandle.h): it changed nothing, Dispatch returns kWouldBlock (rpc/program.h).
  bool would_block = false;
  // What the handler changed, committed by Dispatch before the reply on a `sync`
  // export (CommitLater).
  vfs::MetadataCommits commits;

  // How far the pipeline got (kept for the worker's run after kWouldBlock): the
  // handle authorised (exp, options, cred set) and its object to be resolved from
  // `kh` into obj (obj.exp is set once it is).
  bool authorized = false;
  KernelHandle kh;
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
    HandleResolver* resolver = nullptr;
    FileCache* file_cache = nullptr;
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

  uint64_t calls(uint32_t proc) const {
    return proc < kNfs3ProcCount ? calls_[proc].load(std::memory_order_relaxed) : 0;
  }
  uint64_t write_verifier() const { return write_verifier_; }

  // Policy flags of a table entry (its ProcedureDesc::program_flags).
  static constexpr uint32_t kNeedsExport = 1u << 0;    // leading handle → export, object
  static constexpr uint32_t kMakesWrite = 1u << 1;     // refused on ro exports
  static constexpr uint32_t kAsCaller = 1u << 3;       // namespace op: switch creds
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
  // Handlers (nfs3proc.cc): validate, call vfs, fill the result.
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
  void RemoveEntry(Nfs3Request& req, const diropargs3& what, bool directory,
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

  // Dispatch steps: export, client rule, credentials and every handle of the call,
  // from where an earlier run stopped. Sets req.would_block (on the event loop) when a
  // handle needs an export search (fhandle.h).
  nfsstat3 Prepare(const rpc::Call& call, const Proc& p, Nfs3Request& req);

  // Helpers for handlers.
  // A name argument of the request, with its wire length. One that holds a NUL or a
  // '/' is logged here (rate-limited: a client can send them at will) and refused by
  // vfs (ValidateName: EACCES).
  std::string_view ArgName(const Nfs3Request& req, const filename3& name);
  // Encodes a handle for `r.kh` in req's export; remembers its location
  // (unprivileged) and keeps the object in the file cache (kPath), which may take
  // r.fd over (r.st and r.kh stay). `where` says how to find it again without
  // open_by_handle_at: the object's own fd (directories) or its parent `dir_fd` + `name`.
  absl::StatusOr<std::string> MakeHandle(const Nfs3Request& req, vfs::LookupResult& r,
                                         int dir_fd, std::string_view name);
  // CREATE/MKDIR/SYMLINK/MKNOD results: the new object's handle and attributes.
  void SetNewObject(const Nfs3Request& req, std::string_view name, vfs::LookupResult& r,
                    post_op_fh3* fh, post_op_attr* attr);
  // After REMOVE/RMDIR/RENAME over: forget cached fds and handle locations.
  void Forget(const Nfs3Request& req, const std::optional<KernelHandle>& gone);
  // With the rule's `sync` (exports(5); the default): `obj`, which this request changed,
  // is committed before the reply — in the order of the calls, an inode once
  // (vfs::MetadataCommits; knfsd's commit_metadata). CommitCreated: a new object, then
  // its directory req.obj.
  void CommitLater(Nfs3Request& req, const vfs::Object& obj);
  void CommitCreated(Nfs3Request& req, const vfs::LookupResult& made);
  // Dispatch's last step: runs req.commits as the server; when a commit fails, the
  // result becomes that error alone (the change is made but not known to be durable).
  void CommitBeforeReply(const Proc& p, Nfs3Request& req);
  uint64_t fsid(const Nfs3Request& req) const { return req.exp->id(); }

  Deps deps_;
  uint64_t write_verifier_;
  std::array<std::atomic<uint64_t>, kNfs3ProcCount> calls_{};
  LogRateLimit bad_name_log_{1, absl::Seconds(1)};
};

}  // namespace localnfs::server
