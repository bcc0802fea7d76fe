// tests/nfs4_wire.h — an NFSv4.1 session client for the integration tests, over a
// WireConn (wire.h), with AUTH_SYS credentials chosen per COMPOUND.
//
// COMPOUNDs are encoded and their replies decoded by rpcgen's routines for
// rpc/nfs4.x — the server's own, so this client proves nothing about the XDR (that is
// rpc/nfs4_xdr_test.cc's job), only about what the server does with well-formed
// requests: policy, state, data.
//
// Nfs4Ops builds one COMPOUND's operations and owns their argument storage;
// Nfs4Wire::Compound puts a SEQUENCE in front (slot 0, the next sequence id) and
// decodes the reply into an Nfs4Reply, which frees it. Establish() makes the client
// and its session (EXCHANGE_ID, CREATE_SESSION, RECLAIM_COMPLETE).
//
// Thread-safety: none; one test thread per object.
#pragma once

#include <stdint.h>

#include <deque>
#include <string>
#include <vector>

#include "rpc/nfs4.h"
#include "tests/wire.h"

namespace localnfs::testing {

class Nfs4Ops {
 public:
  Nfs4Ops() = default;
  Nfs4Ops(const Nfs4Ops&) = delete;
  Nfs4Ops& operator=(const Nfs4Ops&) = delete;

  Nfs4Ops& PutRootFh();
  Nfs4Ops& PutFh(const std::string& fh);
  Nfs4Ops& GetFh();
  Nfs4Ops& Lookup(const std::string& name);
  Nfs4Ops& Access(uint32_t bits);
  // OPEN by name in the current directory (CLAIM_NULL); create: UNCHECKED4 with `mode`.
  Nfs4Ops& Open(uint64_t clientid, const std::string& owner, const std::string& name,
                uint32_t access, uint32_t deny, bool create, uint32_t mode = 0644);
  Nfs4Ops& Read(const stateid4& sid, uint64_t offset, uint32_t count);
  Nfs4Ops& Write(const stateid4& sid, uint64_t offset, const std::string& data,
                 stable_how4 stable);
  Nfs4Ops& Commit();
  Nfs4Ops& Close(const stateid4& sid);
  Nfs4Ops& Remove(const std::string& name);
  Nfs4Ops& SaveFh();
  Nfs4Ops& Rename(const std::string& from, const std::string& to);
  Nfs4Ops& Mkdir(const std::string& name, uint32_t mode);
  Nfs4Ops& SetAttrMode(const stateid4& sid, uint32_t mode);
  // LOCK by a new lock owner `owner` under the open stateid `open` (open_to_lock_owner4,
  // seqids 0).
  Nfs4Ops& LockNewOwner(uint64_t clientid, const std::string& owner, const stateid4& open,
                        nfs_lock_type4 type, uint64_t offset, uint64_t length);
  // SEQUENCE with the slot and sequence id as given (Nfs4Wire::Compound puts its own).
  Nfs4Ops& Sequence(const std::string& sessionid, uint32_t slot, uint32_t seqid,
                    uint32_t highest_slot);
  // Any op as the caller filled it (its pointers must outlive the Nfs4Ops).
  Nfs4Ops& Raw(const nfs_argop4& op);

  std::vector<nfs_argop4>& ops() { return ops_; }

 private:
  nfs_argop4& Add(nfs_opnum4 op);
  char* Keep(const std::string& bytes);    // stable storage for argument bytes
  uint32_t* Words(std::vector<uint32_t> w);

  std::vector<nfs_argop4> ops_;
  std::deque<std::string> strings_;
  std::deque<std::vector<uint32_t>> words_;
};

// A decoded COMPOUND4res (freed with the object).
class Nfs4Reply {
 public:
  Nfs4Reply() = default;
  ~Nfs4Reply();
  Nfs4Reply(const Nfs4Reply&) = delete;
  Nfs4Reply& operator=(const Nfs4Reply&) = delete;

  bool ok = false;      // an RPC reply was received and decoded
  std::string error;    // why not
  COMPOUND4res res{};

  nfsstat4 status() const { return ok ? res.status : NFS4ERR_SERVERFAULT; }
  // The result of the nth (0: first) op `op` in the reply, or null.
  const nfs_resop4* Find(nfs_opnum4 op, int nth = 0) const;
  // The status of the last op in the reply (the failing one when status() != OK).
  nfs_opnum4 last_op() const;
};

class Nfs4Wire {
 public:
  explicit Nfs4Wire(WireConn* conn, AuthSys cred = {}) : c_(conn), cred_(std::move(cred)) {}

  void set_cred(const AuthSys& cred) { cred_ = cred; }
  // EXCHANGE_ID, CREATE_SESSION, RECLAIM_COMPLETE (with this object's credentials);
  // the session's fore channel asks for `slots` slots and `max_ops` ops a COMPOUND.
  // false: see error().
  bool Establish(const std::string& owner, uint32_t slots = 1, uint32_t max_ops = 16);
  uint64_t clientid() const { return clientid_; }

  const std::string& error() const { return error_; }

  const std::string& sessionid() const { return sessionid_; }

  // SEQUENCE + ops, as cred_ (minor version 1).
  bool Compound(Nfs4Ops& ops, Nfs4Reply* out);
  // The last COMPOUND again, byte for byte if `ops` are the same: a retry (the same
  // slot and sequence id).
  bool Retry(Nfs4Ops& ops, Nfs4Reply* out);
  // The ops as they are (no SEQUENCE put in front), as cred_.
  bool CompoundNoSequence(Nfs4Ops& ops, Nfs4Reply* out);

  // For clients that write their own records (pipelining, malformed calls): the
  // COMPOUND4args bytes of `ops` (minor version 1), and a reply's results decoded.
  static std::string EncodeArgs(Nfs4Ops& ops, uint32_t minor = 1);
  static bool DecodeResults(const std::string& results, Nfs4Reply* out);

  // Conveniences (the status of the COMPOUND).
  // The handle of `path` ("/a/b") from the root.
  nfsstat4 LookupPath(const std::string& path, std::string* fh);
  // OPEN `name` in directory `dir` (see Nfs4Ops::Open) → the file's handle and stateid.
  nfsstat4 OpenFile(const std::string& dir, const std::string& name, uint32_t access,
                    bool create, std::string* fh, stateid4* sid, uint32_t mode = 0644);
  nfsstat4 ReadFile(const std::string& fh, const stateid4& sid, uint64_t offset,
                    uint32_t count, std::string* data);
  nfsstat4 WriteFile(const std::string& fh, const stateid4& sid, uint64_t offset,
                     const std::string& data);
  nfsstat4 CloseFile(const std::string& fh, const stateid4& sid);
  // ACCESS bits granted (*granted) of those asked.
  nfsstat4 AccessOf(const std::string& fh, uint32_t bits, uint32_t* granted);

 private:
  bool Call(const COMPOUND4args& args, Nfs4Reply* out);
  bool Send(Nfs4Ops& ops, Nfs4Reply* out);  // with seqid_ as it is

  WireConn* c_;
  AuthSys cred_;
  std::string error_;
  uint64_t clientid_ = 0;
  std::string sessionid_;
  uint32_t seqid_ = 0;
  uint32_t owner_seq_ = 0;
};

}  // namespace localnfs::testing
