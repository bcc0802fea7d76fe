// server/nfs4/nfs4proc_io.cc — the NFSv4.1 stateful file operations (see
// nfs4proc_io.h): OPEN and its creates, share reservations and stateids through the
// open-state table, READ/WRITE/COMMIT through the Backend with NFSv3's rules (one write
// verifier, stability as done), byte-range locks, and the answers of a server that
// grants no delegations.
#include "server/nfs4/nfs4proc_io.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/status.h"
#include "rpc/call.h"
#include "rpc/wire_enum.h"
#include "server/backend/backend.h"
#include "server/backend/rules.h"
#include "server/nfs4/fattr.h"
#include "server/nfs4/nfs4proc.h"
#include "server/nfs4/open_state.h"
#include "server/nfs4/pseudofs.h"
#include "server/nfs4/services.h"
#include "server/nfs4/state.h"
#include "server/policy/creds.h"

namespace localnfs::server::nfs4 {
namespace {

// What every stateful op needs: the services with a namespace and an open-state table,
// the client of the COMPOUND's session.
struct Ctx {
  PseudoFs* ns = nullptr;
  OpenStateTable* table = nullptr;
  Nfs4State* state = nullptr;
  clientid4 client = 0;
};
// As much of it as the COMPOUND has (null, 0 for what it lacks): CheckIoStateId's, which
// the ops of nfs4proc_ns.cc call, also in tests without a session or state tables.
Ctx AvailableCtx(const CompoundState& cs) {
  Ctx ctx;
  if (cs.services != nullptr) {
    ctx.ns = cs.services->namespace_fs;
    ctx.table = cs.services->open_state;
    ctx.state = cs.services->state;
  }
  if (cs.slot != nullptr) ctx.client = cs.slot->client_id();
  return ctx;
}
nfsstat4 GetCtx(const CompoundState& cs, Ctx* ctx) {
  if (cs.services == nullptr || cs.call == nullptr || cs.services->namespace_fs == nullptr ||
      cs.services->open_state == nullptr) {
    return NFS4ERR_SERVERFAULT;
  }
  // Every op here runs after SEQUENCE (the loop requires it first).
  if (cs.slot == nullptr) return NFS4ERR_OP_NOT_IN_SESSION;
  *ctx = AvailableCtx(cs);
  return NFS4_OK;
}
// The start of an op on the current regular file: GetCtx, then CurrentRegularFile.
nfsstat4 BeginFileOp(const CompoundState& cs, Ctx* ctx, const Nfs4Object** o) {
  if (nfsstat4 s = GetCtx(cs, ctx); s != NFS4_OK) return s;
  return CurrentRegularFile(cs, o);
}

FileKey KeyOf(const backend::Object& obj) { return FileKey{obj.exp().id(), obj.handle()}; }

uint64_t VerifierValue(const verifier4 v) {
  uint64_t out = 0;
  for (int i = 0; i < NFS4_VERIFIER_SIZE; ++i) out = (out << 8) | static_cast<uint8_t>(v[i]);
  return out;
}

// ---- Stateids

StateId FromWire(const stateid4& w) {
  StateId s;
  s.seqid = w.seqid;
  memcpy(s.other.data(), w.other, NFS4_OTHER_SIZE);
  return s;
}
void ToWire(const StateId& s, stateid4* w) {
  w->seqid = s.seqid;
  memcpy(w->other, s.other.data(), NFS4_OTHER_SIZE);
}
bool OtherIs(const stateid4& w, char byte) {
  for (char c : w.other) {
    if (c != byte) return false;
  }
  return true;
}
// RFC 8881 §8.2.3's special stateids.
bool IsAnonymous(const stateid4& w) { return w.seqid == 0 && OtherIs(w, 0); }
bool IsReadBypass(const stateid4& w) { return w.seqid == NFS4_UINT32_MAX && OtherIs(w, '\xff'); }
bool IsCurrent(const stateid4& w) { return w.seqid == 1 && OtherIs(w, 0); }
bool IsSpecial(const stateid4& w) { return OtherIs(w, 0) || OtherIs(w, '\xff'); }

// The stateid an op names: the current stateid (RFC 8881 §16.2.3.1.2) when it sends
// "current" and one is set for the current filehandle, else the one sent. Other special
// stateids are BAD_STATEID here, as knfsd's nfsd4_lookup_stateid (ops that accept them
// look first).
nfsstat4 Resolve(const CompoundState& cs, const stateid4& w, StateId* out) {
  if (IsCurrent(w)) {
    const CompoundState::CurrentStateId& c = cs.current_stateid;
    if (!c.set || !cs.current || cs.current->bytes != c.fh) return NFS4ERR_BAD_STATEID;
    *out = FromWire(c.stateid);
    return NFS4_OK;
  }
  if (IsSpecial(w)) return NFS4ERR_BAD_STATEID;
  *out = FromWire(w);
  return NFS4_OK;
}

void SetCurrentStateId(CompoundState& cs, const stateid4& w) {
  cs.current_stateid.set = true;
  cs.current_stateid.stateid = w;
  cs.current_stateid.fh = cs.current ? cs.current->bytes : std::string();
}

// Open and lock conflicts with courtesy clients (open_state.h MayDiscard): the table
// asks whether a conflicting client is one (Nfs4State, whose mutex comes after the
// table's); those whose state the table then released are discarded from the client
// table too, after the table's call returned (knfsd expires them).
class CourtesyReaper {
 public:
  explicit CourtesyReaper(const Ctx& ctx) : ctx_(ctx) {}
  ~CourtesyReaper() {
    for (clientid4 c : asked_) {
      if (ctx_.table->states_of(c) == 0) ctx_.state->ExpireCourtesy(c);
    }
  }
  OpenStateTable::MayDiscard Fn() {
    if (ctx_.state == nullptr) return nullptr;
    return [this](uint64_t client) {
      if (client == ctx_.client || !ctx_.state->IsCourtesy(client)) return false;
      asked_.push_back(client);
      return true;
    };
  }

 private:
  const Ctx& ctx_;
  std::vector<clientid4> asked_;
};

// The grace period (state.h "Restart and grace"), asked for the session's client: a
// reclaim (OPEN CLAIM_PREVIOUS / CLAIM_DELEG_PREV_FH, LOCK with reclaim) only in grace
// and only by a client of the previous instance (else NO_GRACE); a new OPEN not in grace
// nor before the client's RECLAIM_COMPLETE (knfsd's nfsd4_open); a new lock, LOCKT and
// I/O with a special stateid not in grace (knfsd's nfsd4_lock, nfsd4_lockt,
// check_special_stateids, in CheckIoStateId). Without a client table (tests) there is no
// grace.
nfsstat4 CheckReclaim(const Ctx& ctx, bool reclaim) {
  if (ctx.state == nullptr) return reclaim ? NFS4ERR_NO_GRACE : NFS4_OK;
  return ctx.state->CheckReclaim(ctx.client, reclaim);
}
nfsstat4 CheckGrace(const Ctx& ctx) {
  return ctx.state == nullptr ? NFS4_OK : ctx.state->CheckGrace();
}

// ---- OPEN

// OPEN's share_access: the access bits and the delegation wants (RFC 8881 §18.16.3;
// knfsd's nfsd4_decode_share_access): access 0 or unknown bits → INVAL.
constexpr uint32_t kWantFlags = OPEN4_SHARE_ACCESS_WANT_SIGNAL_DELEG_WHEN_RESRC_AVAIL |
                                OPEN4_SHARE_ACCESS_WANT_PUSH_DELEG_WHEN_UNCONTENDED;
nfsstat4 SplitShareAccess(uint32_t share_access, uint32_t* access, uint32_t* want) {
  *access = share_access & OPEN4_SHARE_ACCESS_BOTH;
  *want = share_access & OPEN4_SHARE_ACCESS_WANT_DELEG_MASK;
  const uint32_t rest =
      share_access & ~(OPEN4_SHARE_ACCESS_BOTH | OPEN4_SHARE_ACCESS_WANT_DELEG_MASK | kWantFlags);
  if (*access == 0 || rest != 0 || *want > OPEN4_SHARE_ACCESS_WANT_CANCEL) return NFS4ERR_INVAL;
  return NFS4_OK;
}

// The delegation answer when none is granted (knfsd's nfsd4_process_open2 and
// nfsd4_open_deleg_none_ext): plain NONE unless the client said what it wants.
void AnswerNoDelegation(uint32_t want, open_delegation4* d) {
  if (want == OPEN4_SHARE_ACCESS_WANT_NO_PREFERENCE) {
    d->delegation_type = OPEN_DELEGATE_NONE;
    return;
  }
  d->delegation_type = OPEN_DELEGATE_NONE_EXT;
  open_none_delegation4& why = d->open_delegation4_u.od_whynone;
  if (want == OPEN4_SHARE_ACCESS_WANT_NO_DELEG) {
    why.ond_why = WND4_NOT_WANTED;
  } else if (want == OPEN4_SHARE_ACCESS_WANT_CANCEL) {
    why.ond_why = WND4_CANCELLED;
  } else {
    why.ond_why = WND4_RESOURCE;
    why.open_none_delegation4_u.ond_server_will_signal_avail = FALSE;
  }
}

// What a create asked for, decoded (createhow4).
struct CreateArgs {
  backend::CreateHow how = backend::CreateHow::kUnchecked;
  backend::SetAttrRequest attrs;
  AttrBitmap set;            // the attributes given
  uint64_t verifier = 0;     // exclusive creates
  bool exclusive41 = false;  // EXCLUSIVE4_1: the attributes are set after the create
};
nfsstat4 DecodeCreate(const createhow4& how, CreateArgs* out) {
  switch (WireEnumValue(how.mode)) {
    case UNCHECKED4:
    case GUARDED4:
      out->how = WireEnumValue(how.mode) == GUARDED4 ? backend::CreateHow::kGuarded
                                                 : backend::CreateHow::kUnchecked;
      return DecodeSettableAttrs(how.createhow4_u.createattrs, &out->attrs, &out->set);
    case EXCLUSIVE4:
      out->how = backend::CreateHow::kExclusive;
      out->verifier = VerifierValue(how.createhow4_u.createverf);
      return NFS4_OK;
    case EXCLUSIVE4_1: {
      out->how = backend::CreateHow::kExclusive;
      out->exclusive41 = true;
      out->verifier = VerifierValue(how.createhow4_u.ch_createboth.cva_verf);
      nfsstat4 s =
          DecodeSettableAttrs(how.createhow4_u.ch_createboth.cva_attrs, &out->attrs, &out->set);
      if (s != NFS4_OK) return s;
      // The verifier lives in the times: suppattr_exclcreat has none (RFC 8881 §18.16.3:
      // others are NFS4ERR_INVAL).
      if (out->attrs.atime.how != backend::TimeHow::kDontChange ||
          out->attrs.mtime.how != backend::TimeHow::kDontChange) {
        return NFS4ERR_INVAL;
      }
      return NFS4_OK;
    }
    default:
      return NFS4ERR_INVAL;
  }
}

// The change attribute of a directory now (cinfo), 0 when it cannot be read.
uint64_t ChangeOf(backend::Backend& be, const backend::Object& dir) {
  absl::StatusOr<backend::Attrs> a = be.GetAttr(dir);
  return a.ok() ? a->change : 0;
}

// CLAIM_NULL with OPEN4_CREATE: the file `name` of the current directory, made unless it
// exists as the mode allows (knfsd's do_open_lookup / nfsd4_create_file); an existing
// file is truncated when the attributes ask for size 0, and nothing else of them is set.
nfsstat4 OpenCreate(const CompoundState& cs, const Ctx& ctx, std::string_view name,
                    const createhow4& how, FileHandle4* out, bool* created, AttrBitmap* attrset,
                    change_info4* cinfo) {
  const Nfs4Object& dir = *cs.current->object;
  if (cs.current->read_only) return NFS4ERR_ROFS;
  CreateArgs args;
  if (nfsstat4 s = DecodeCreate(how, &args); s != NFS4_OK) return s;
  backend::Backend& be = *ctx.ns->deps().backend;
  const backend::Caller caller{dir.cred, dir.options.sync};
  cinfo->atomic = FALSE;
  cinfo->before = ChangeOf(be, dir.obj);
  absl::StatusOr<backend::Object> existing = be.Lookup(dir.obj, name, dir.cred);
  if (!existing.ok() && StatusErrno(existing.status()) != ENOENT)
    return Nfs4StatusFromStatus(existing.status());
  if (existing.ok()) {
    if (args.how == backend::CreateHow::kGuarded) return NFS4ERR_EXIST;
    Nfs4Object probe;
    probe.obj = *existing;
    if (nfsstat4 s = CheckRegular(probe); s != NFS4_OK) return s;
    // UNCHECKED4 on a file that exists ignores the attributes but a size of 0, which
    // truncates it (knfsd's op_truncate; NFSv3's CREATE, which the Backend follows,
    // applies any size).
    if (args.how == backend::CreateHow::kUnchecked && args.attrs.size && *args.attrs.size != 0)
      args.attrs.size.reset();
  }
  absl::StatusOr<backend::Object> made =
      be.Create(dir.obj, name, args.how, args.attrs, args.verifier, caller);
  if (!made.ok()) return Nfs4StatusFromStatus(made.status());
  // An exclusive create that found its own file (the verifier matched: a retransmit)
  // made it, as knfsd's nfsd4_create_file counts it.
  *created = !existing.ok() || args.how == backend::CreateHow::kExclusive;
  if (*created) {
    if (args.exclusive41 && !args.attrs.empty()) {
      // EXCLUSIVE4_1's attributes, which the Backend's exclusive create leaves to the
      // caller (as NFSv3's SETATTR after CREATE).
      absl::Status s = be.SetAttr(*made, args.attrs, std::nullopt, caller);
      if (!s.ok()) return Nfs4StatusFromStatus(s);
    }
    *attrset = args.set;
  } else if (args.how == backend::CreateHow::kUnchecked && args.attrs.size) {
    attrset->set(FATTR4_SIZE);  // an existing file truncated as asked
  }
  // The verifier is kept in the times: the client must set them (knfsd's nfsd4_open).
  if (args.how == backend::CreateHow::kExclusive) {
    attrset->set(FATTR4_TIME_ACCESS);
    attrset->set(FATTR4_TIME_MODIFY);
  }
  cinfo->after = ChangeOf(be, dir.obj);
  absl::StatusOr<FileHandle4> fh = ExportChild(*ctx.ns->deps().key, dir, std::move(*made));
  if (!fh.ok()) return Nfs4StatusFromStatus(fh.status());
  *out = std::move(*fh);
  return NFS4_OK;
}

// May the caller open the file with `access` and `deny`? (knfsd's do_open_permission:
// read access needs read permission — or execute, as nfsd's READ_IF_EXEC —, write
// access and a read deny need write permission; a file this OPEN created is its
// owner's whatever its mode.) A read-only export refuses write access.
nfsstat4 CheckOpenPermission(backend::Backend& be, const FileHandle4& fh, uint32_t access,
                             uint32_t deny, bool created) {
  const Nfs4Object& o = *fh.object;
  const bool writes =
      (access & OPEN4_SHARE_ACCESS_WRITE) != 0 || (deny & OPEN4_SHARE_DENY_READ) != 0;
  if (writes && fh.read_only) return NFS4ERR_ROFS;
  if (created) return NFS4_OK;
  absl::StatusOr<backend::Attrs> attrs = be.GetAttr(o.obj);
  if (!attrs.ok()) return Nfs4StatusFromStatus(attrs.status());
  if ((access & OPEN4_SHARE_ACCESS_READ) != 0 &&
      !CheckPermission(*attrs, o.cred, kMayRead, false).ok() &&
      !CheckPermission(*attrs, o.cred, kMayExec, false).ok()) {
    return NFS4ERR_ACCESS;
  }
  if (writes && !CheckPermission(*attrs, o.cred, kMayWrite, false).ok()) return NFS4ERR_ACCESS;
  return NFS4_OK;
}

}  // namespace

// RFC 8881 §18.16 (knfsd's nfsd4_open): the file by name in the current directory
// (CLAIM_NULL, with an optional create) or the current file (CLAIM_FH) is opened for the
// session's client with a share reservation; it becomes the current filehandle and the
// open stateid the current stateid.
nfsstat4 Open(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  Ctx ctx;
  if (nfsstat4 s = GetCtx(cs, &ctx); s != NFS4_OK) return s;
  const Nfs4Object* cur = CurrentObject(cs);
  if (cur == nullptr) return NFS4ERR_SERVERFAULT;
  const OPEN4args& a = args.nfs_argop4_u.opopen;
  uint32_t access = 0, want = 0;
  if (nfsstat4 s = SplitShareAccess(a.share_access, &access, &want); s != NFS4_OK) return s;
  if ((a.share_deny & ~OPEN4_SHARE_DENY_BOTH) != 0) return NFS4ERR_INVAL;
  const bool create = WireEnumValue(a.openhow.opentype) == OPEN4_CREATE;
  if (WireEnumValue(a.openhow.opentype) != OPEN4_CREATE &&
      WireEnumValue(a.openhow.opentype) != OPEN4_NOCREATE) {
    return NFS4ERR_INVAL;
  }
  const int32_t claim = WireEnumValue(a.claim.claim);
  // Only an open by name creates (knfsd: INVAL for a create with another claim).
  if (create && claim != CLAIM_NULL) return NFS4ERR_INVAL;

  FileHandle4 file;
  bool created = false;
  AttrBitmap attrset;
  change_info4 cinfo{};
  backend::Backend& be = *ctx.ns->deps().backend;
  switch (claim) {
    case CLAIM_NULL: {
      if (nfsstat4 s = CheckReclaim(ctx, false); s != NFS4_OK) return s;
      if (!cur->pseudo && !cur->obj.attrs().is_dir()) {
        return cur->obj.attrs().type == backend::FileType::kSymlink ? NFS4ERR_SYMLINK
                                                                    : NFS4ERR_NOTDIR;
      }
      std::string_view name;
      if (nfsstat4 s = CheckComponent(a.claim.open_claim4_u.file, &name); s != NFS4_OK) return s;
      if (create) {
        if (nfsstat4 s = OpenCreate(cs, ctx, name, a.openhow.openflag4_u.how, &file, &created,
                                    &attrset, &cinfo);
            s != NFS4_OK) {
          return s;
        }
      } else {
        absl::StatusOr<FileHandle4> fh = ctx.ns->Lookup(Who(cs), *cs.current, name);
        if (!fh.ok()) return Nfs4StatusFromStatus(fh.status());
        file = std::move(*fh);
        if (!cur->pseudo) cinfo.before = cinfo.after = ChangeOf(be, cur->obj);
      }
      break;
    }
    case CLAIM_FH:
      if (nfsstat4 s = CheckReclaim(ctx, false); s != NFS4_OK) return s;
      file = *cs.current;
      break;
    case CLAIM_PREVIOUS:
    case CLAIM_DELEG_PREV_FH:
      // A reclaim, by filehandle, of an open (or of a delegation, which this server never
      // granted: the open is reclaimed as knfsd's nfsd4_open does) from before the server
      // restarted: opened again with its share reservation, in grace only.
      if (nfsstat4 s = CheckReclaim(ctx, true); s != NFS4_OK) return s;
      file = *cs.current;
      break;
    case CLAIM_DELEGATE_CUR:
    case CLAIM_DELEG_CUR_FH:
      // No delegation is ever granted: its stateid is unknown (knfsd's nfs4_check_deleg).
      return NFS4ERR_BAD_STATEID;
    case CLAIM_DELEGATE_PREV:
      return NFS4ERR_NOTSUPP;
    default:
      return NFS4ERR_INVAL;
  }
  if (nfsstat4 s = CheckRegular(*file.object); s != NFS4_OK) return s;
  if (nfsstat4 s = CheckOpenPermission(be, file, access, a.share_deny, created); s != NFS4_OK)
    return s;

  StateId sid;
  {
    CourtesyReaper reaper(ctx);
    OpenStateTable::OpenRequest req;
    req.clientid = ctx.client;
    req.owner = std::string_view(a.owner.owner.owner_val, a.owner.owner.owner_len);
    req.file = &file.object->obj;
    req.access = access;
    req.deny = a.share_deny;
    if (nfsstat4 s = ctx.table->Open(req, reaper.Fn(), &sid); s != NFS4_OK) return s;
  }
  OPEN4resok& ok = res.nfs_resop4_u.opopen.OPEN4res_u.resok4;
  ToWire(sid, &ok.stateid);
  ok.cinfo = cinfo;
  ok.rflags = OPEN4_RESULT_LOCKTYPE_POSIX;
  SetBitmap4(&ok.attrset, attrset);
  AnswerNoDelegation(want, &ok.delegation);
  cs.current = std::move(file);
  SetCurrentStateId(cs, ok.stateid);
  return NFS4_OK;
}

// RFC 8881 §18.18: the open's access and deny reduced to the subsets given.
nfsstat4 OpenDowngrade(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  const OPEN_DOWNGRADE4args& a = args.nfs_argop4_u.opopen_downgrade;
  uint32_t access = 0, want = 0;
  if (nfsstat4 s = SplitShareAccess(a.share_access, &access, &want); s != NFS4_OK) return s;
  if ((a.share_deny & ~OPEN4_SHARE_DENY_BOTH) != 0) return NFS4ERR_INVAL;
  Ctx ctx;
  const Nfs4Object* o;
  if (nfsstat4 s = BeginFileOp(cs, &ctx, &o); s != NFS4_OK) return s;
  StateId sid, out;
  if (nfsstat4 s = Resolve(cs, a.open_stateid, &sid); s != NFS4_OK) return s;
  if (nfsstat4 s = ctx.table->Downgrade(ctx.client, KeyOf(o->obj), sid, access, a.share_deny, &out);
      s != NFS4_OK) {
    return s;
  }
  stateid4& w = res.nfs_resop4_u.opopen_downgrade.OPEN_DOWNGRADE4res_u.resok4.open_stateid;
  ToWire(out, &w);
  SetCurrentStateId(cs, w);
  return NFS4_OK;
}

// RFC 8881 §18.2: the open (and its lock stateids and locks) is released. The answer is
// the special invalid stateid, as §18.2.4 suggests and knfsd sends (close_stateid).
nfsstat4 Close(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  Ctx ctx;
  const Nfs4Object* o;
  if (nfsstat4 s = BeginFileOp(cs, &ctx, &o); s != NFS4_OK) return s;
  StateId sid;
  if (nfsstat4 s = Resolve(cs, args.nfs_argop4_u.opclose.open_stateid, &sid); s != NFS4_OK)
    return s;
  if (nfsstat4 s = ctx.table->Close(ctx.client, KeyOf(o->obj), sid); s != NFS4_OK) return s;
  stateid4& w = res.nfs_resop4_u.opclose.CLOSE4res_u.open_stateid;
  memset(&w, 0, sizeof(w));
  w.seqid = NFS4_UINT32_MAX;
  SetCurrentStateId(cs, w);
  return NFS4_OK;
}

// knfsd's nfs4_preprocess_stateid_op (see nfs4proc_io.h).
nfsstat4 CheckIoStateId(const CompoundState& cs, const Nfs4Object& o, const stateid4& w,
                        uint32_t need) {
  const Ctx ctx = AvailableCtx(cs);
  const FileKey key = KeyOf(o.obj);
  if (IsAnonymous(w) || IsReadBypass(w)) {
    // The READ bypass skips share reservations for reads only; for a write it is the
    // anonymous stateid (knfsd's check_special_stateids). Opens being reclaimed may deny
    // the access: NFS4ERR_GRACE in grace.
    if (IsReadBypass(w) && need == OPEN4_SHARE_ACCESS_READ) return NFS4_OK;
    if (nfsstat4 s = CheckGrace(ctx); s != NFS4_OK) return s;
    return ctx.table != nullptr ? ctx.table->CheckAnonymous(key, need) : NFS4_OK;
  }
  StateId sid;
  if (nfsstat4 s = Resolve(cs, w, &sid); s != NFS4_OK) return s;
  if (ctx.table == nullptr) return NFS4ERR_BAD_STATEID;
  return ctx.table->Check(ctx.client, key, sid, need);
}

void WriteVerifier(const CompoundState& cs, verifier4 out) {
  const uint64_t v = cs.services != nullptr ? cs.services->write_verifier : 0;
  for (int i = 0; i < NFS4_VERIFIER_SIZE; ++i) out[i] = static_cast<char>(v >> (56 - 8 * i));
}

// RFC 8881 §18.22: data of the current file as the squashed user may read it (the
// Backend's check), bounded by the session's reply budget.
nfsstat4 Read(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  Ctx ctx;
  const Nfs4Object* o;
  if (nfsstat4 s = BeginFileOp(cs, &ctx, &o); s != NFS4_OK) return s;
  const READ4args& a = args.nfs_argop4_u.opread;
  if (nfsstat4 s = CheckIoStateId(cs, *o, a.stateid, OPEN4_SHARE_ACCESS_READ); s != NFS4_OK) {
    return s;
  }
  size_t count = std::min<size_t>(a.count, backend::kMaxIoSize);
  if (cs.reply_budget != 0) {
    // The op's number and status, eof and the data's length before the data.
    const size_t overhead = cs.reply_bytes + 16;
    const size_t room = cs.reply_budget > overhead ? (cs.reply_budget - overhead) / 4 * 4 : 0;
    count = std::min(count, room);
  }
  char* buf = static_cast<char*>(malloc(std::max<size_t>(count, 1)));
  if (buf == nullptr) abort();
  absl::StatusOr<backend::ReadResult> done =
      ctx.ns->deps().backend->Read(o->obj, o->cred, a.offset, absl::MakeSpan(buf, count));
  if (!done.ok()) {
    free(buf);
    return Nfs4StatusFromStatus(done.status());
  }
  READ4resok& ok = res.nfs_resop4_u.opread.READ4res_u.resok4;
  ok.eof = done->eof ? TRUE : FALSE;
  ok.data.data_val = buf;
  ok.data.data_len = done->count;
  // Sent from this buffer, not copied (nfs4_program.h "READ data by reference").
  if (done->count >= rpc::kMinBulkBytes && cs.call != nullptr) {
    cs.call->AddBulk(&ok.data.data_val, done->count);
  }
  return NFS4_OK;
}

// RFC 8881 §18.32: the data written as the squashed user, as stable as asked or more;
// `committed` says what was done, with the server's one write verifier (NFSv3's).
nfsstat4 Write(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  Ctx ctx;
  const Nfs4Object* o;
  if (nfsstat4 s = BeginFileOp(cs, &ctx, &o); s != NFS4_OK) return s;
  const WRITE4args& a = args.nfs_argop4_u.opwrite;
  const int32_t stable = WireEnumValue(a.stable);
  if (stable < UNSTABLE4 || stable > FILE_SYNC4) return NFS4ERR_BADXDR;
  if (nfsstat4 s = CheckIoStateId(cs, *o, a.stateid, OPEN4_SHARE_ACCESS_WRITE); s != NFS4_OK) {
    return s;
  }
  // knfsd's nfsd4_write: nothing past the largest offset a file may have.
  const uint64_t max = static_cast<uint64_t>(INT64_MAX);
  if (a.offset > max || a.data.data_len > max - a.offset) return NFS4ERR_FBIG;
  absl::StatusOr<backend::WriteResult> done = ctx.ns->deps().backend->Write(
      o->obj, o->cred, a.offset, absl::MakeConstSpan(a.data.data_val, a.data.data_len),
      static_cast<backend::Stability>(stable));
  if (!done.ok()) return Nfs4StatusFromStatus(done.status());
  WRITE4resok& ok = res.nfs_resop4_u.opwrite.WRITE4res_u.resok4;
  ok.count = done->count;
  ok.committed = static_cast<stable_how4>(done->committed);
  WriteVerifier(cs, ok.writeverf);
  return NFS4_OK;
}

// RFC 8881 §18.3: everything written to the current file is durable (the whole file, as
// knfsd for most file systems), with the write verifier.
nfsstat4 Commit(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  Ctx ctx;
  const Nfs4Object* o;
  if (nfsstat4 s = BeginFileOp(cs, &ctx, &o); s != NFS4_OK) return s;
  const COMMIT4args& a = args.nfs_argop4_u.opcommit;
  if (a.count != 0 && a.offset > NFS4_UINT64_MAX - a.count) return NFS4ERR_INVAL;
  absl::Status s = ctx.ns->deps().backend->Commit(o->obj, o->cred);
  if (!s.ok()) return Nfs4StatusFromStatus(s);
  WriteVerifier(cs, res.nfs_resop4_u.opcommit.COMMIT4res_u.resok4.writeverf);
  return NFS4_OK;
}

namespace {

// nfs_lock_type4 → the Backend's (READW/WRITEW as READ/WRITE: the client polls).
// Anything else does not decode (knfsd: nfserr_bad_xdr).
nfsstat4 LockTypeOf(int32_t t, backend::LockType* out) {
  switch (t) {
    case READ_LT:
    case READW_LT:
      *out = backend::LockType::kRead;
      return NFS4_OK;
    case WRITE_LT:
    case WRITEW_LT:
      *out = backend::LockType::kWrite;
      return NFS4_OK;
    default:
      return NFS4ERR_BADXDR;
  }
}

void FillDenied(const OpenStateTable::Denied& d, LOCK4denied* out) {
  out->offset = d.conflict.offset;
  out->length = d.conflict.length == 0 ? NFS4_UINT64_MAX : d.conflict.length;
  out->locktype = d.conflict.type == backend::LockType::kWrite ? WRITE_LT : READ_LT;
  out->owner.clientid = d.clientid;
  out->owner.owner.owner_val = XdrCopy(d.owner);
  out->owner.owner.owner_len = static_cast<u_int>(d.owner.size());
}

}  // namespace

// RFC 8881 §18.10 (knfsd's nfsd4_lock): a byte-range lock for a new lock owner (under
// its open stateid) or an existing lock stateid; a conflict is NFS4ERR_DENIED with the
// lock that refused it (another client's lock owner, or none for a host process).
nfsstat4 Lock(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  Ctx ctx;
  const Nfs4Object* o;
  if (nfsstat4 s = BeginFileOp(cs, &ctx, &o); s != NFS4_OK) return s;
  const LOCK4args& a = args.nfs_argop4_u.oplock;
  OpenStateTable::LockRequest req;
  if (nfsstat4 s = LockTypeOf(WireEnumValue(a.locktype), &req.type); s != NFS4_OK) return s;
  if (nfsstat4 s = a.reclaim != FALSE ? CheckReclaim(ctx, true) : CheckGrace(ctx); s != NFS4_OK)
    return s;
  std::optional<backend::LockRange> range = OpenStateTable::LockRangeOf(a.offset, a.length);
  if (!range) return NFS4ERR_INVAL;
  req.clientid = ctx.client;
  req.file = &o->obj;
  req.range = *range;
  StateId sid;
  if (a.locker.new_lock_owner) {
    const open_to_lock_owner4& n = a.locker.locker4_u.open_owner;
    if (nfsstat4 s = Resolve(cs, n.open_stateid, &sid); s != NFS4_OK) return s;
    req.open = sid;
    req.lock_owner = std::string_view(n.lock_owner.owner.owner_val, n.lock_owner.owner.owner_len);
  } else {
    if (nfsstat4 s = Resolve(cs, a.locker.locker4_u.lock_owner.lock_stateid, &sid); s != NFS4_OK)
      return s;
    req.lock = sid;
  }
  StateId out;
  OpenStateTable::Denied denied;
  nfsstat4 s;
  {
    CourtesyReaper reaper(ctx);
    s = ctx.table->Lock(req, reaper.Fn(), &out, &denied);
  }
  if (s == NFS4ERR_DENIED) {
    FillDenied(denied, &res.nfs_resop4_u.oplock.LOCK4res_u.denied);
    return s;
  }
  if (s != NFS4_OK) return s;
  stateid4& w = res.nfs_resop4_u.oplock.LOCK4res_u.resok4.lock_stateid;
  ToWire(out, &w);
  SetCurrentStateId(cs, w);
  return NFS4_OK;
}

// RFC 8881 §18.11: would the lock be granted? Changes nothing.
nfsstat4 LockT(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  Ctx ctx;
  const Nfs4Object* o;
  if (nfsstat4 s = BeginFileOp(cs, &ctx, &o); s != NFS4_OK) return s;
  const LOCKT4args& a = args.nfs_argop4_u.oplockt;
  backend::LockType type;
  if (nfsstat4 s = LockTypeOf(WireEnumValue(a.locktype), &type); s != NFS4_OK) return s;
  if (nfsstat4 s = CheckGrace(ctx); s != NFS4_OK) return s;
  std::optional<backend::LockRange> range = OpenStateTable::LockRangeOf(a.offset, a.length);
  if (!range) return NFS4ERR_INVAL;
  OpenStateTable::Denied denied;
  const nfsstat4 s = ctx.table->TestLock(
      ctx.client, std::string_view(a.owner.owner.owner_val, a.owner.owner.owner_len), o->obj, type,
      *range, &denied);
  if (s == NFS4ERR_DENIED) FillDenied(denied, &res.nfs_resop4_u.oplockt.LOCKT4res_u.denied);
  return s;
}

// RFC 8881 §18.12: the lock stateid holds no lock in the range any more.
nfsstat4 LockU(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  Ctx ctx;
  const Nfs4Object* o;
  if (nfsstat4 s = BeginFileOp(cs, &ctx, &o); s != NFS4_OK) return s;
  const LOCKU4args& a = args.nfs_argop4_u.oplocku;
  backend::LockType type;
  if (nfsstat4 s = LockTypeOf(WireEnumValue(a.locktype), &type); s != NFS4_OK) return s;
  std::optional<backend::LockRange> range = OpenStateTable::LockRangeOf(a.offset, a.length);
  if (!range) return NFS4ERR_INVAL;
  StateId sid, out;
  if (nfsstat4 s = Resolve(cs, a.lock_stateid, &sid); s != NFS4_OK) return s;
  if (nfsstat4 s = ctx.table->Unlock(ctx.client, KeyOf(o->obj), sid, *range, &out); s != NFS4_OK)
    return s;
  stateid4& w = res.nfs_resop4_u.oplocku.LOCKU4res_u.lock_stateid;
  ToWire(out, &w);
  SetCurrentStateId(cs, w);
  return NFS4_OK;
}

// RFC 8881 §18.48: the status of each stateid for the session's client; special
// stateids are BAD_STATEID (knfsd's nfsd4_validate_stateid).
nfsstat4 TestStateId(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  Ctx ctx;
  if (nfsstat4 s = GetCtx(cs, &ctx); s != NFS4_OK) return s;
  const TEST_STATEID4args& a = args.nfs_argop4_u.optest_stateid;
  const u_int n = a.ts_stateids.ts_stateids_len;
  TEST_STATEID4resok& ok = res.nfs_resop4_u.optest_stateid.TEST_STATEID4res_u.tsr_resok4;
  ok.tsr_status_codes.tsr_status_codes_val =
      static_cast<nfsstat4*>(calloc(std::max<u_int>(n, 1), sizeof(nfsstat4)));
  if (ok.tsr_status_codes.tsr_status_codes_val == nullptr) abort();
  ok.tsr_status_codes.tsr_status_codes_len = n;
  for (u_int i = 0; i < n; ++i) {
    const stateid4& w = a.ts_stateids.ts_stateids_val[i];
    ok.tsr_status_codes.tsr_status_codes_val[i] =
        IsSpecial(w) ? NFS4ERR_BAD_STATEID : ctx.table->Test(ctx.client, FromWire(w));
  }
  return NFS4_OK;
}

// RFC 8881 §18.38: a lock stateid without locks is forgotten; an open stateid is
// LOCKS_HELD (CLOSE frees it); anything else BAD_STATEID.
nfsstat4 FreeStateId(CompoundState& cs, const nfs_argop4& args, nfs_resop4&) {
  Ctx ctx;
  if (nfsstat4 s = GetCtx(cs, &ctx); s != NFS4_OK) return s;
  StateId sid;
  if (nfsstat4 s = Resolve(cs, args.nfs_argop4_u.opfree_stateid.fsa_stateid, &sid); s != NFS4_OK) {
    return s;
  }
  return ctx.table->Free(ctx.client, sid);
}

// RFC 8881 §18.6: no delegation was ever granted, so none can be returned.
nfsstat4 DelegReturn(CompoundState& cs, const nfs_argop4&, nfs_resop4&) {
  Ctx ctx;
  if (nfsstat4 s = GetCtx(cs, &ctx); s != NFS4_OK) return s;
  return NFS4ERR_BAD_STATEID;
}

// RFC 8881 §18.33: the back channel's program and security are accepted (knfsd keeps
// them); no callback is ever sent (state.h).
nfsstat4 BackchannelCtl(CompoundState& cs, const nfs_argop4&, nfs_resop4&) {
  Ctx ctx;
  return GetCtx(cs, &ctx);
}

}  // namespace localnfs::server::nfs4
