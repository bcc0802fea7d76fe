// tests/nfs4_wire.cc — the tests' NFSv4.1 session client (see nfs4_wire.h).
#include "tests/nfs4_wire.h"

#include <arpa/inet.h>
#include <string.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace localnfs::testing {
namespace {

constexpr uint32_t kNfs4Program = 100003;
constexpr uint32_t kNfs4Version = 4;
constexpr uint32_t kCompoundProc = 1;
constexpr uint32_t kAttrModeWord1Bit = 1u << (33 - 32);  // FATTR4_MODE

std::string Be32(uint32_t v) {
  const uint32_t n = htonl(v);
  return std::string(reinterpret_cast<const char*>(&n), 4);
}

}  // namespace

// ---- Nfs4Ops

nfs_argop4& Nfs4Ops::Add(nfs_opnum4 op) {
  nfs_argop4& a = ops_.emplace_back();
  memset(&a, 0, sizeof(a));
  a.argop = op;
  return a;
}

char* Nfs4Ops::Keep(const std::string& bytes) {
  return strings_.emplace_back(bytes).data();
}

uint32_t* Nfs4Ops::Words(std::vector<uint32_t> w) {
  return words_.emplace_back(std::move(w)).data();
}

Nfs4Ops& Nfs4Ops::PutRootFh() {
  Add(OP_PUTROOTFH);
  return *this;
}

Nfs4Ops& Nfs4Ops::PutFh(const std::string& fh) {
  nfs_fh4& o = Add(OP_PUTFH).nfs_argop4_u.opputfh.object;
  o.nfs_fh4_len = static_cast<u_int>(fh.size());
  o.nfs_fh4_val = Keep(fh);
  return *this;
}

Nfs4Ops& Nfs4Ops::GetFh() {
  Add(OP_GETFH);
  return *this;
}

Nfs4Ops& Nfs4Ops::SaveFh() {
  Add(OP_SAVEFH);
  return *this;
}

Nfs4Ops& Nfs4Ops::Lookup(const std::string& name) {
  component4& c = Add(OP_LOOKUP).nfs_argop4_u.oplookup.objname;
  c.utf8string_len = static_cast<u_int>(name.size());
  c.utf8string_val = Keep(name);
  return *this;
}

Nfs4Ops& Nfs4Ops::Access(uint32_t bits) {
  Add(OP_ACCESS).nfs_argop4_u.opaccess.access = bits;
  return *this;
}

Nfs4Ops& Nfs4Ops::Open(uint64_t clientid, const std::string& owner, const std::string& name,
                       uint32_t access, uint32_t deny, bool create, uint32_t mode) {
  OPEN4args& o = Add(OP_OPEN).nfs_argop4_u.opopen;
  o.share_access = access;
  o.share_deny = deny;
  o.owner.clientid = clientid;
  o.owner.owner.owner_len = static_cast<u_int>(owner.size());
  o.owner.owner.owner_val = Keep(owner);
  if (create) {
    o.openhow.opentype = OPEN4_CREATE;
    createhow4& how = o.openhow.openflag4_u.how;
    how.mode = UNCHECKED4;
    fattr4& attrs = how.createhow4_u.createattrs;
    attrs.attrmask.bitmap4_len = 2;
    attrs.attrmask.bitmap4_val = Words({0, kAttrModeWord1Bit});
    const std::string vals = Be32(mode);
    attrs.attr_vals.attrlist4_len = static_cast<u_int>(vals.size());
    attrs.attr_vals.attrlist4_val = Keep(vals);
  } else {
    o.openhow.opentype = OPEN4_NOCREATE;
  }
  o.claim.claim = CLAIM_NULL;
  component4& file = o.claim.open_claim4_u.file;
  file.utf8string_len = static_cast<u_int>(name.size());
  file.utf8string_val = Keep(name);
  return *this;
}

Nfs4Ops& Nfs4Ops::Read(const stateid4& sid, uint64_t offset, uint32_t count) {
  READ4args& r = Add(OP_READ).nfs_argop4_u.opread;
  r.stateid = sid;
  r.offset = offset;
  r.count = count;
  return *this;
}

Nfs4Ops& Nfs4Ops::Write(const stateid4& sid, uint64_t offset, const std::string& data,
                        stable_how4 stable) {
  WRITE4args& w = Add(OP_WRITE).nfs_argop4_u.opwrite;
  w.stateid = sid;
  w.offset = offset;
  w.stable = stable;
  w.data.data_len = static_cast<u_int>(data.size());
  w.data.data_val = Keep(data);
  return *this;
}

Nfs4Ops& Nfs4Ops::Commit() {
  Add(OP_COMMIT);
  return *this;
}

Nfs4Ops& Nfs4Ops::Close(const stateid4& sid) {
  Add(OP_CLOSE).nfs_argop4_u.opclose.open_stateid = sid;
  return *this;
}

Nfs4Ops& Nfs4Ops::Remove(const std::string& name) {
  component4& c = Add(OP_REMOVE).nfs_argop4_u.opremove.target;
  c.utf8string_len = static_cast<u_int>(name.size());
  c.utf8string_val = Keep(name);
  return *this;
}

Nfs4Ops& Nfs4Ops::Rename(const std::string& from, const std::string& to) {
  RENAME4args& r = Add(OP_RENAME).nfs_argop4_u.oprename;
  r.oldname.utf8string_len = static_cast<u_int>(from.size());
  r.oldname.utf8string_val = Keep(from);
  r.newname.utf8string_len = static_cast<u_int>(to.size());
  r.newname.utf8string_val = Keep(to);
  return *this;
}

Nfs4Ops& Nfs4Ops::Mkdir(const std::string& name, uint32_t mode) {
  CREATE4args& c = Add(OP_CREATE).nfs_argop4_u.opcreate;
  c.objtype.type = NF4DIR;
  c.objname.utf8string_len = static_cast<u_int>(name.size());
  c.objname.utf8string_val = Keep(name);
  c.createattrs.attrmask.bitmap4_len = 2;
  c.createattrs.attrmask.bitmap4_val = Words({0, kAttrModeWord1Bit});
  const std::string vals = Be32(mode);
  c.createattrs.attr_vals.attrlist4_len = static_cast<u_int>(vals.size());
  c.createattrs.attr_vals.attrlist4_val = Keep(vals);
  return *this;
}

Nfs4Ops& Nfs4Ops::SetAttrMode(const stateid4& sid, uint32_t mode) {
  SETATTR4args& s = Add(OP_SETATTR).nfs_argop4_u.opsetattr;
  s.stateid = sid;
  s.obj_attributes.attrmask.bitmap4_len = 2;
  s.obj_attributes.attrmask.bitmap4_val = Words({0, kAttrModeWord1Bit});
  const std::string vals = Be32(mode);
  s.obj_attributes.attr_vals.attrlist4_len = static_cast<u_int>(vals.size());
  s.obj_attributes.attr_vals.attrlist4_val = Keep(vals);
  return *this;
}

Nfs4Ops& Nfs4Ops::LockNewOwner(uint64_t clientid, const std::string& owner,
                               const stateid4& open, nfs_lock_type4 type, uint64_t offset,
                               uint64_t length) {
  LOCK4args& l = Add(OP_LOCK).nfs_argop4_u.oplock;
  l.locktype = type;
  l.reclaim = FALSE;
  l.offset = offset;
  l.length = length;
  l.locker.new_lock_owner = TRUE;
  open_to_lock_owner4& o = l.locker.locker4_u.open_owner;
  o.open_stateid = open;
  o.lock_owner.clientid = clientid;
  o.lock_owner.owner.owner_len = static_cast<u_int>(owner.size());
  o.lock_owner.owner.owner_val = Keep(owner);
  return *this;
}

Nfs4Ops& Nfs4Ops::Sequence(const std::string& sessionid, uint32_t slot, uint32_t seqid,
                           uint32_t highest_slot) {
  SEQUENCE4args& s = Add(OP_SEQUENCE).nfs_argop4_u.opsequence;
  memcpy(s.sa_sessionid, sessionid.data(), std::min<size_t>(sessionid.size(), NFS4_SESSIONID_SIZE));
  s.sa_sequenceid = seqid;
  s.sa_slotid = slot;
  s.sa_highest_slotid = highest_slot;
  s.sa_cachethis = FALSE;
  return *this;
}

Nfs4Ops& Nfs4Ops::Raw(const nfs_argop4& op) {
  ops_.push_back(op);
  return *this;
}

// ---- Nfs4Reply

Nfs4Reply::~Nfs4Reply() {
  xdr_free(reinterpret_cast<xdrproc_t>(xdr_COMPOUND4res), reinterpret_cast<char*>(&res));
}

const nfs_resop4* Nfs4Reply::Find(nfs_opnum4 op, int nth) const {
  for (u_int i = 0; ok && i < res.resarray.resarray_len; ++i) {
    if (res.resarray.resarray_val[i].resop == op && nth-- == 0) {
      return &res.resarray.resarray_val[i];
    }
  }
  return nullptr;
}

nfs_opnum4 Nfs4Reply::last_op() const {
  if (!ok || res.resarray.resarray_len == 0) return OP_ILLEGAL;
  return res.resarray.resarray_val[res.resarray.resarray_len - 1].resop;
}

// ---- Nfs4Wire

bool Nfs4Wire::Call(const COMPOUND4args& args, Nfs4Reply* out) {
  const u_long size =
      xdr_sizeof(reinterpret_cast<xdrproc_t>(xdr_COMPOUND4args), const_cast<COMPOUND4args*>(&args));
  std::string bytes(size, '\0');
  XDR x;
  xdrmem_create(&x, bytes.data(), static_cast<u_int>(size), XDR_ENCODE);
  const bool encoded = xdr_COMPOUND4args(&x, const_cast<COMPOUND4args*>(&args));
  xdr_destroy(&x);
  if (!encoded) {
    out->error = "COMPOUND4args did not encode";
    return false;
  }
  RpcReply r = c_->Call(kNfs4Program, kNfs4Version, kCompoundProc, bytes, &cred_);
  if (!r.ok || r.reply_stat != 0 || r.accept_stat != kSuccess) {
    out->error = absl::StrCat("RPC failed: ", r.error, " reply_stat ", r.reply_stat,
                              " accept_stat ", r.accept_stat);
    return false;
  }
  xdrmem_create(&x, r.results.data(), static_cast<u_int>(r.results.size()), XDR_DECODE);
  out->ok = xdr_COMPOUND4res(&x, &out->res);
  xdr_destroy(&x);
  if (!out->ok) out->error = "COMPOUND4res did not decode";
  return out->ok;
}

std::string Nfs4Wire::EncodeArgs(Nfs4Ops& ops, uint32_t minor) {
  COMPOUND4args args{};
  args.minorversion = minor;
  args.argarray.argarray_len = static_cast<u_int>(ops.ops().size());
  args.argarray.argarray_val = ops.ops().data();
  const u_long size = xdr_sizeof(reinterpret_cast<xdrproc_t>(xdr_COMPOUND4args), &args);
  std::string bytes(size, '\0');
  XDR x;
  xdrmem_create(&x, bytes.data(), static_cast<u_int>(size), XDR_ENCODE);
  const bool encoded = xdr_COMPOUND4args(&x, &args);
  xdr_destroy(&x);
  return encoded ? bytes : std::string();
}

bool Nfs4Wire::DecodeResults(const std::string& results, Nfs4Reply* out) {
  XDR x;
  xdrmem_create(&x, const_cast<char*>(results.data()), static_cast<u_int>(results.size()),
                XDR_DECODE);
  out->ok = xdr_COMPOUND4res(&x, &out->res);
  xdr_destroy(&x);
  if (!out->ok) out->error = "COMPOUND4res did not decode";
  return out->ok;
}

bool Nfs4Wire::CompoundNoSequence(Nfs4Ops& ops, Nfs4Reply* out) {
  COMPOUND4args args{};
  args.minorversion = 1;
  args.argarray.argarray_len = static_cast<u_int>(ops.ops().size());
  args.argarray.argarray_val = ops.ops().data();
  return Call(args, out);
}

bool Nfs4Wire::Compound(Nfs4Ops& ops, Nfs4Reply* out) {
  ++seqid_;
  return Send(ops, out);
}

bool Nfs4Wire::Retry(Nfs4Ops& ops, Nfs4Reply* out) { return Send(ops, out); }

bool Nfs4Wire::Send(Nfs4Ops& ops, Nfs4Reply* out) {
  std::vector<nfs_argop4> all;
  nfs_argop4 seq;
  memset(&seq, 0, sizeof(seq));
  seq.argop = OP_SEQUENCE;
  SEQUENCE4args& s = seq.nfs_argop4_u.opsequence;
  memcpy(s.sa_sessionid, sessionid_.data(), NFS4_SESSIONID_SIZE);
  s.sa_sequenceid = seqid_;
  s.sa_slotid = 0;
  s.sa_highest_slotid = 0;
  s.sa_cachethis = FALSE;
  all.push_back(seq);
  all.insert(all.end(), ops.ops().begin(), ops.ops().end());
  COMPOUND4args args{};
  args.minorversion = 1;
  args.argarray.argarray_len = static_cast<u_int>(all.size());
  args.argarray.argarray_val = all.data();
  return Call(args, out);
}

bool Nfs4Wire::Establish(const std::string& owner, uint32_t slots, uint32_t max_ops) {
  {
    nfs_argop4 op;
    memset(&op, 0, sizeof(op));
    op.argop = OP_EXCHANGE_ID;
    EXCHANGE_ID4args& e = op.nfs_argop4_u.opexchange_id;
    memcpy(e.eia_clientowner.co_verifier, "verifier", NFS4_VERIFIER_SIZE);
    std::string id = owner;
    e.eia_clientowner.co_ownerid.co_ownerid_len = static_cast<u_int>(id.size());
    e.eia_clientowner.co_ownerid.co_ownerid_val = id.data();
    e.eia_state_protect.spa_how = SP4_NONE;
    COMPOUND4args args{};
    args.minorversion = 1;
    args.argarray.argarray_len = 1;
    args.argarray.argarray_val = &op;
    Nfs4Reply r;
    if (!Call(args, &r) || r.status() != NFS4_OK) {
      error_ = absl::StrCat("EXCHANGE_ID: ", r.error, " status ", r.status());
      return false;
    }
    const EXCHANGE_ID4resok& ok =
        r.res.resarray.resarray_val[0].nfs_resop4_u.opexchange_id.EXCHANGE_ID4res_u.eir_resok4;
    clientid_ = ok.eir_clientid;
    owner_seq_ = ok.eir_sequenceid;
  }
  {
    nfs_argop4 op;
    memset(&op, 0, sizeof(op));
    op.argop = OP_CREATE_SESSION;
    CREATE_SESSION4args& c = op.nfs_argop4_u.opcreate_session;
    c.csa_clientid = clientid_;
    c.csa_sequence = owner_seq_;
    c.csa_fore_chan_attrs = {0, 1 << 20, 1 << 20, 4096, max_ops, slots, {0, nullptr}};
    c.csa_back_chan_attrs = {0, 4096, 4096, 0, 2, 1, {0, nullptr}};
    c.csa_cb_program = 0x40000000;
    COMPOUND4args args{};
    args.minorversion = 1;
    args.argarray.argarray_len = 1;
    args.argarray.argarray_val = &op;
    Nfs4Reply r;
    if (!Call(args, &r) || r.status() != NFS4_OK) {
      error_ = absl::StrCat("CREATE_SESSION: ", r.error, " status ", r.status());
      return false;
    }
    const CREATE_SESSION4resok& ok = r.res.resarray.resarray_val[0]
                                         .nfs_resop4_u.opcreate_session.CREATE_SESSION4res_u
                                         .csr_resok4;
    sessionid_.assign(ok.csr_sessionid, NFS4_SESSIONID_SIZE);
    seqid_ = 0;
  }
  Nfs4Ops rc;
  nfs_argop4& op = rc.ops().emplace_back();
  memset(&op, 0, sizeof(op));
  op.argop = OP_RECLAIM_COMPLETE;
  Nfs4Reply r;
  if (!Compound(rc, &r) || r.status() != NFS4_OK) {
    error_ = absl::StrCat("RECLAIM_COMPLETE: ", r.error, " status ", r.status());
    return false;
  }
  return true;
}

nfsstat4 Nfs4Wire::LookupPath(const std::string& path, std::string* fh) {
  Nfs4Ops ops;
  ops.PutRootFh();
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) ops.Lookup(path.substr(start, end - start));
    start = end + 1;
  }
  ops.GetFh();
  Nfs4Reply r;
  if (!Compound(ops, &r)) return NFS4ERR_SERVERFAULT;
  if (r.status() == NFS4_OK) {
    const nfs_fh4& o = r.Find(OP_GETFH)->nfs_resop4_u.opgetfh.GETFH4res_u.resok4.object;
    fh->assign(o.nfs_fh4_val, o.nfs_fh4_len);
  }
  return r.status();
}

nfsstat4 Nfs4Wire::OpenFile(const std::string& dir, const std::string& name, uint32_t access,
                            bool create, std::string* fh, stateid4* sid, uint32_t mode) {
  Nfs4Ops ops;
  ops.PutFh(dir).Open(clientid_, absl::StrCat("owner-", cred_.uid), name, access,
                      OPEN4_SHARE_DENY_NONE, create, mode)
      .GetFh();
  Nfs4Reply r;
  if (!Compound(ops, &r)) return NFS4ERR_SERVERFAULT;
  if (r.status() == NFS4_OK) {
    *sid = r.Find(OP_OPEN)->nfs_resop4_u.opopen.OPEN4res_u.resok4.stateid;
    const nfs_fh4& o = r.Find(OP_GETFH)->nfs_resop4_u.opgetfh.GETFH4res_u.resok4.object;
    fh->assign(o.nfs_fh4_val, o.nfs_fh4_len);
  }
  return r.status();
}

nfsstat4 Nfs4Wire::ReadFile(const std::string& fh, const stateid4& sid, uint64_t offset,
                            uint32_t count, std::string* data) {
  Nfs4Ops ops;
  ops.PutFh(fh).Read(sid, offset, count);
  Nfs4Reply r;
  if (!Compound(ops, &r)) return NFS4ERR_SERVERFAULT;
  if (r.status() == NFS4_OK) {
    const READ4resok& ok = r.Find(OP_READ)->nfs_resop4_u.opread.READ4res_u.resok4;
    data->assign(ok.data.data_val, ok.data.data_len);
  }
  return r.status();
}

nfsstat4 Nfs4Wire::WriteFile(const std::string& fh, const stateid4& sid, uint64_t offset,
                             const std::string& data) {
  Nfs4Ops ops;
  ops.PutFh(fh).Write(sid, offset, data, FILE_SYNC4);
  Nfs4Reply r;
  if (!Compound(ops, &r)) return NFS4ERR_SERVERFAULT;
  return r.status();
}

nfsstat4 Nfs4Wire::CloseFile(const std::string& fh, const stateid4& sid) {
  Nfs4Ops ops;
  ops.PutFh(fh).Close(sid);
  Nfs4Reply r;
  if (!Compound(ops, &r)) return NFS4ERR_SERVERFAULT;
  return r.status();
}

nfsstat4 Nfs4Wire::AccessOf(const std::string& fh, uint32_t bits, uint32_t* granted) {
  Nfs4Ops ops;
  ops.PutFh(fh).Access(bits);
  Nfs4Reply r;
  if (!Compound(ops, &r)) return NFS4ERR_SERVERFAULT;
  if (r.status() == NFS4_OK) {
    *granted = r.Find(OP_ACCESS)->nfs_resop4_u.opaccess.ACCESS4res_u.resok4.access;
  }
  return r.status();
}

}  // namespace localnfs::testing
