// server/nfs3_program.h — the NFSv3 program (100003 version 3, RFC 1813).
//
// Owns: the procedure table (one entry per procedure: XDR routines, handler, policy
// flags), the write verifier (8 random bytes per server start, or injected), and
// per-procedure call counters. Not owned (must outlive the program): the export
// table, the handle key, the handle resolver and the file cache.
//
// Policy is enforced in ONE place, Dispatch(): for procedures flagged kNeedsExport
// it passes the leading file handle (every NFSv3 args struct starts with an nfs_fh3),
// the connection and the AUTH_SYS credentials to Authorize() (request_policy.h — the
// same function the LOCALIO local socket uses: handle → BADHANDLE, export → STALE,
// client rule of the connection → ACCES, `secure` → PERM, kMakesWrite on a read-only
// export → ROFS, squash, handle → O_PATH fd), resolves the request's second handle
// (RENAME's to.dir, LINK's link.dir: Proc::second_handle) in the same export
// (ResolveInSameExport: another export → XDEV), and only then switches to the
// squashed credentials for kAsCaller procedures (creds.h) — every handle is resolved
// with the server's own credentials, because open_by_handle_at needs
// CAP_DAC_READ_SEARCH, which a switched fsuid drops. Handlers never resolve a handle
// and never switch credentials themselves. Failures are written as the bare nfsstat3
// at the start of the result (every failure arm holds only optional attributes).
// Only then it calls the thin handler with an explicit Nfs3Request.
// After it, back in the server's credentials, it commits what the handler changed
// when the client rule says `sync` (CommitBeforeReply), before the reply is sent.
//
// Thread-safety: Dispatch() runs concurrently on worker threads; the table and the
// verifier are immutable, counters are atomics.
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
#include "rpc/nfs3.h"
#include "rpc/program.h"
#include "server/fhandle.h"
#include "server/file_cache.h"
#include "server/vfs.h"

namespace localnfs::server {

inline constexpr uint32_t kNfs3ProcCount = 22;

// What a handler gets: the call, the export (referenced), the resolved objects of
// its handles and the squashed credentials. Valid for the call only.
struct Nfs3Request {
  rpc::CallContext* ctx = nullptr;
  Ref<exports::Export> exp;
  exports::ExportOptions options;  // of the client rule that matched
  vfs::Object obj;                 // obj.exp == exp.get()
  // The object of the second handle (RENAME's to.dir, LINK's link.dir), in the same
  // export; set exactly for the procedures whose Proc::second_handle is set.
  std::optional<vfs::Object> second;
  Credentials cred;                // squashed
  // Set by a handler called with ctx->must_not_block that would have to wait for the
  // disk, or by a handle resolution that would have to search the export
  // (fhandle.h): it changed nothing, Dispatch returns kWouldBlock (rpc/program.h).
  bool would_block = false;
  // What the handler changed, committed by Dispatch before the reply on a `sync`
  // export (CommitLater).
  vfs::MetadataCommits commits;
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
  const rpc::ProcXdr* procedure(uint32_t proc) const override;
  rpc::DispatchResult Dispatch(rpc::CallContext& ctx, void* args, void* result) override;

  uint64_t calls(uint32_t proc) const {
    return proc < kNfs3ProcCount ? calls_[proc].load(std::memory_order_relaxed) : 0;
  }
  uint64_t write_verifier() const { return write_verifier_; }

  // Policy flags of a table entry.
  static constexpr uint32_t kNeedsExport = 1u << 0;    // leading handle → export, object
  static constexpr uint32_t kMakesWrite = 1u << 1;     // refused on ro exports
  static constexpr uint32_t kNonIdempotent = 1u << 2;  // reply worth caching (DRC)
  static constexpr uint32_t kAsCaller = 1u << 3;       // namespace op: switch creds
  // rpc::ProcXdr::quick: may run on the event-loop thread that read it. Not WRITE,
  // COMMIT (they wait for the disk), SETATTR (a truncate can free a large file's
  // blocks), READDIR/READDIRPLUS (a listing is unbounded work). A kMakesWrite procedure
  // for a `sync` rule commits to disk before its reply: Dispatch sends it to a worker
  // (kWouldBlock, before anything is done), so only `async` exports run those quick.
  static constexpr uint32_t kQuick = 1u << 4;

  using Handler = void (Nfs3Program::*)(Nfs3Request&, void* args, void* result);
  struct Proc {
    rpc::ProcXdr xdr;
    Handler handler;
    uint32_t flags;
    // The args' second file handle, resolved by Dispatch into Nfs3Request::second;
    // null for procedures with one handle.
    const nfs_fh3* (*second_handle)(const void* args) = nullptr;
  };

 private:
  // Handlers (nfs3proc.cc): validate, call vfs, fill the result.
  void Null(Nfs3Request&, void*, void*) {}
  void Getattr(Nfs3Request&, void*, void*);
  void Setattr(Nfs3Request&, void*, void*);
  void Lookup(Nfs3Request&, void*, void*);
  void Access(Nfs3Request&, void*, void*);
  void Readlink(Nfs3Request&, void*, void*);
  void Read(Nfs3Request&, void*, void*);
  void Write(Nfs3Request&, void*, void*);
  void Create(Nfs3Request&, void*, void*);
  void Mkdir(Nfs3Request&, void*, void*);
  void Symlink(Nfs3Request&, void*, void*);
  void Mknod(Nfs3Request&, void*, void*);
  void Remove(Nfs3Request&, void*, void*);
  void Rmdir(Nfs3Request&, void*, void*);
  void RemoveEntry(Nfs3Request& req, const diropargs3& what, bool directory,
                   nfsstat3* status, wcc_data* dir_wcc);
  void Rename(Nfs3Request&, void*, void*);
  void Link(Nfs3Request&, void*, void*);
  void Readdir(Nfs3Request&, void*, void*);
  void Readdirplus(Nfs3Request&, void*, void*);
  void Fsstat(Nfs3Request&, void*, void*);
  void Fsinfo(Nfs3Request&, void*, void*);
  void Pathconf(Nfs3Request&, void*, void*);
  void Commit(Nfs3Request&, void*, void*);

  static const std::array<Proc, kNfs3ProcCount>& Table();

  // Dispatch steps: export, client rule, credentials and every handle of `args`. Sets
  // req.would_block (on the event loop) when a handle needs an export search (fhandle.h).
  nfsstat3 Prepare(rpc::CallContext& ctx, const Proc& p, const void* args,
                   Nfs3Request& req);

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
  void CommitBeforeReply(const Proc& p, Nfs3Request& req, void* result);
  uint64_t fsid(const Nfs3Request& req) const { return req.exp->id(); }

  Deps deps_;
  uint64_t write_verifier_;
  std::array<std::atomic<uint64_t>, kNfs3ProcCount> calls_{};
  LogRateLimit bad_name_log_{1, absl::Seconds(1)};
};

}  // namespace localnfs::server
