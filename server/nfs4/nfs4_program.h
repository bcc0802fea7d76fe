// server/nfs4/nfs4_program.h — the NFSv4 program (100003 version 4): NULL and
// COMPOUND, minor versions 1 and 2 (RFC 8881, RFC 7862). PREVIEW: localnfsd
// registers it only with --nfs4-preview until sessions exist (server/main.cc).
//
// Owns: the procedure table (NULL, COMPOUND) and the COMPOUND arguments'
// decoder, which decodes the header only — tag, minorversion, op count — and
// leaves the ops to the COMPOUND loop (compound.h: RunCompound decodes them one
// by one, answers an unknown op number OP_ILLEGAL and a bad op NFS4ERR_BADXDR,
// and enforces the op table's rules). Not owned: the Nfs4Services (services.h:
// the namespace over the export table, handle key and Backend; pseudofs.h).
//
// COMPOUND is neither kQuick (its ops will wait for the disk) nor
// kNonIdempotent: in NFSv4.1 the session's slot is the reply cache (RFC 8881
// §2.10.6), not the DRC. The program is hidden from rpcbind (NFSv4 clients do
// not ask it, and a preview should not advertise itself).
//
// The reply cache (RFC 8881 §2.10.6.1: the session's slot keeps its last reply). The
// program, not the dispatcher, encodes a COMPOUND's result: Compound() runs the ops
// into a COMPOUND4res, encodes it once into bytes (the body after the RPC reply
// header), and — when SEQUENCE took a slot (CompoundState::slot) — hands those bytes to
// the slot (SlotHold::Complete), which keeps them if they fit the session's
// ca_maxresponsesize_cached. The procedure's result is those bytes
// (EncodedCompound4Res), which the dispatcher appends to the accepted-reply header of
// the call being answered like any other result. A retry (SEQUENCE found the slot's
// seqid again: CompoundState::replay) gets the kept bytes as its result, so the reply
// is byte for byte the original one after the XID: same RPC body (accept SUCCESS,
// AUTH_NONE verifier), same COMPOUND4res. Nothing else is cached for v4: COMPOUND is
// not kNonIdempotent, so the DRC never sees it.
//
// READ data by reference. A READ of at least rpc::kMinBulkBytes registers its buffer as
// bulk (rpc::Call::AddBulk, as NFSv3's READ). Such a reply is larger than any slot keeps
// (ca_maxresponsesize_cached is at most a few KiB, and a READ asked to be cached that
// could not fit was refused with REP_TOO_BIG_TO_CACHE before it ran), so it is not
// encoded into bytes: the slot is released with nothing kept and the result is the
// COMPOUND4res itself, encoded by the dispatcher into the reply record, where the data
// goes out from the READ's own buffer (rpc/reply.h) — no copy into the bytes and none
// into the record.
//
// Reply memory (rpc/server.h "Memory for replies"). The rpc server reserves, before a
// call starts, the most its result can encode to (ProcedureDesc::max_result_bytes) and
// admits a connection's next call only while its reservations and queued replies fit
// the per-connection and server-wide caps. A COMPOUND's result is what its ops make
// of it: MaxCompoundResultBytes reads the op list from the argument bytes (as
// received) and adds up what each op can answer — READ and READ_PLUS their count,
// READDIR its maxcount, every other op a small fixed bound — capped at the largest
// reply a session may ask for (kMaxCompoundResultBytes, Nfs4State's
// max_response_size). Without it every COMPOUND counted as a 4 KiB reply, so one
// client pipelining 1 MiB READs had up to max_requests_per_connection of them queued
// unsent (tests/nfs4_limits_test.cc).
//
// Thread-safety: Dispatch() runs concurrently; the table and options are
// immutable.
#pragma once

#include <rpc/rpc.h>
#include <stdint.h>

#include <memory>
#include <string>
#include <string_view>

#include "rpc/call.h"
#include "rpc/nfs4.h"
#include "rpc/procedure.h"
#include "rpc/program.h"
#include "server/nfs4/compound.h"
#include "server/nfs4/services.h"

namespace localnfs::server::nfs4 {

inline constexpr uint32_t kNfs4ProcCount = 2;

// COMPOUND4args as the program decodes it: the header, and how many argument
// bytes follow the op count (the ops, read from the call's record by the
// COMPOUND loop).
struct Compound4Args {
  utf8str_cs tag;
  uint32_t minorversion;
  uint32_t numops;
  u_int ops_len;
};
// Decodes (and frees) a Compound4Args from a memory stream (the dispatcher's);
// does not encode (clients encode xdr_COMPOUND4args).
bool_t XdrCompound4Args(XDR* x, Compound4Args* args);

// A COMPOUND's result: a COMPOUND4res already encoded (see "The reply cache"), whose
// encoding puts the bytes as they are and whose freeing drops the reference — or, for a
// reply with READ data by reference, the COMPOUND4res itself (encoded with
// xdr_COMPOUND4res, freed with xdr_free). Exactly one is set. Not decodable (clients
// decode xdr_COMPOUND4res).
struct EncodedCompound4Res {
  std::shared_ptr<const std::string>* bytes;  // new'd; null until the program sets it
  COMPOUND4res* unencoded;                    // new'd; or null
};
bool_t XdrEncodedCompound4Res(XDR* x, EncodedCompound4Res* res);

// The largest COMPOUND result MaxCompoundResultBytes answers: a session's
// ca_maxresponsesize is clamped to Nfs4State::Options::max_response_size (1 MiB + 4 KiB)
// and the COMPOUND loop stops at that budget.
inline constexpr size_t kMaxCompoundResultBytes = (size_t{1} << 20) + 4096;
// The most bytes the result of a COMPOUND with these argument bytes (tag onwards) can
// encode to, for the rpc server's reply-memory limits (see "Reply memory"). Arguments
// cut short or malformed get the bound of what was read before (the call is answered
// with an error then).
size_t MaxCompoundResultBytes(std::string_view args);

class Nfs4Program : public rpc::Program {
 public:
  struct Options {
    CompoundOptions compound;
  };
  // `services` (not owned, outlives the program) is what the ops reach beyond
  // their COMPOUND; null only in tests of ops that need none.
  explicit Nfs4Program(Options options = {}, Nfs4Services* services = nullptr)
      : options_(options), services_(services) {}

  uint32_t prog() const override { return NFS4_PROGRAM; }
  uint32_t vers() const override { return NFS_V4; }
  const char* name() const override { return "nfs"; }
  uint32_t proc_count() const override { return kNfs4ProcCount; }
  const rpc::ProcedureDesc* procedure(uint32_t proc) const override;
  bool hidden() const override { return true; }

 private:
  void Null(rpc::Call&, const rpc::Void&, rpc::Void&) {}
  rpc::DispatchResult Compound(rpc::Call& call, const Compound4Args& args,
                               EncodedCompound4Res& res);

  const Options options_;
  Nfs4Services* const services_;
};

}  // namespace localnfs::server::nfs4
