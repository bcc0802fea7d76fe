// server/nfs4/nfs4proc.cc — the NFSv4 operation handlers (see nfs4proc.h): the
// filehandle ops, the namespace ops (LOOKUP, LOOKUPP, SECINFO, SECINFO_NO_NAME) and
// the read-only ops on the current filehandle (GETATTR, ACCESS, READLINK, READDIR,
// VERIFY, NVERIFY). What a filehandle names and how it is authorised is pseudofs.h's;
// attributes are fattr.h's; the files are the Backend's.
#include "server/nfs4/nfs4proc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "common/status.h"
#include "rpc/call.h"
#include "server/backend/rules.h"
#include "server/nfs4/fattr.h"
#include "server/nfs4/pseudofs.h"
#include "server/nfs4/services.h"
#include "server/nfs4/state.h"
#include "server/policy/creds.h"

namespace localnfs::server::nfs4 {

// The helpers the handler files share (nfs4proc.h).
PseudoFs* Namespace(const CompoundState& cs) {
  return cs.services != nullptr && cs.call != nullptr ? cs.services->namespace_fs : nullptr;
}
Requester Who(const CompoundState& cs) {
  return Requester{cs.call->ctx().conn, &cs.call->ctx().cred};
}

const Nfs4Object* CurrentObject(const CompoundState& cs) {
  return cs.current && cs.current->object ? cs.current->object.get() : nullptr;
}

nfsstat4 CheckDirectory(const Nfs4Object& o) {
  if (o.pseudo || o.obj.attrs().is_dir()) return NFS4_OK;
  return o.obj.attrs().type == backend::FileType::kSymlink ? NFS4ERR_SYMLINK : NFS4ERR_NOTDIR;
}

nfsstat4 CheckRegular(const Nfs4Object& o) {
  if (o.pseudo || o.obj.attrs().is_dir()) return NFS4ERR_ISDIR;
  if (o.obj.attrs().type == backend::FileType::kSymlink) return NFS4ERR_SYMLINK;
  return o.obj.attrs().is_regular() ? NFS4_OK : NFS4ERR_WRONG_TYPE;
}

nfsstat4 CurrentRegularFile(const CompoundState& cs, const Nfs4Object** out) {
  const Nfs4Object* o = CurrentObject(cs);
  if (Namespace(cs) == nullptr || o == nullptr) return NFS4ERR_SERVERFAULT;
  if (nfsstat4 s = CheckRegular(*o); s != NFS4_OK) return s;
  *out = o;
  return NFS4_OK;
}

nfsstat4 CheckComponent(const component4& c, std::string_view* name) {
  *name = std::string_view(c.utf8string_val, c.utf8string_len);
  if (name->empty()) return NFS4ERR_INVAL;
  if (*name == "." || *name == "..") return NFS4ERR_BADNAME;
  if (name->find('/') != std::string_view::npos || name->find('\0') != std::string_view::npos)
    return NFS4ERR_BADNAME;
  if (name->size() > backend::kMaxNameLen) return NFS4ERR_NAMETOOLONG;
  return NFS4_OK;
}

namespace {

nfsstat4 SetCurrent(CompoundState& cs, absl::StatusOr<FileHandle4> fh) {
  if (!fh.ok()) return Nfs4StatusFromStatus(fh.status());
  cs.current = std::move(*fh);
  cs.resolved = cs.current->object.get();  // its attributes were just read
  cs.resolved_at = cs.op_index;
  return NFS4_OK;
}

// The attributes of a filehandle's object now, and its file system's statistics when
// `want` asks for them.
struct Described {
  backend::Attrs attrs;
  std::optional<backend::FsStat> fs;
};
// `fresh`: o.obj.attrs() were read by the op just before (CompoundState::resolved).
absl::StatusOr<Described> Describe(PseudoFs& ns, const Nfs4Object& o, const AttrBitmap& want,
                                   bool fresh = false) {
  Described d;
  if (o.pseudo) {
    d.attrs = ns.PseudoAttrs(o);
    if (NeedsFsStat(want)) d.fs = backend::FsStat{};  // nothing can be stored here
    return d;
  }
  if (fresh) {
    d.attrs = o.obj.attrs();
  } else {
    ASSIGN_OR_RETURN(d.attrs, ns.deps().backend->GetAttr(o.obj));
  }
  if (NeedsFsStat(want)) {
    ASSIGN_OR_RETURN(backend::FsStat fs, ns.deps().backend->StatFs(o.obj));
    d.fs = fs;
  }
  return d;
}

// lease_time (RFC 8881 §5.8.1.11): the server's (--lease-time), when it has state.
uint32_t LeaseTime(const CompoundState& cs) {
  if (cs.services == nullptr || cs.services->state == nullptr) return kDefaultLeaseTime;
  return static_cast<uint32_t>(absl::ToInt64Seconds(cs.services->state->options().lease));
}

FattrSource SourceOf(const CompoundState& cs, const FileHandle4& fh, const Described& d) {
  const Nfs4Object& o = *fh.object;
  FattrSource src;
  src.attrs = &d.attrs;
  src.fsid_major = o.fsid_major();
  src.fsid_minor = o.fsid_minor();
  src.fh = fh.bytes;
  src.fsstat = d.fs ? &*d.fs : nullptr;
  src.mounted_on_fileid = d.attrs.fileid;
  src.lease_time = LeaseTime(cs);
  return src;
}

// SECINFO's answer: AUTH_SYS, the one flavour served (RFC 8881 §2.6.3.1.1.8: the
// current filehandle is consumed).
nfsstat4 AnswerAuthSys(CompoundState& cs, SECINFO4res& res) {
  SECINFO4resok& ok = res.SECINFO4res_u.resok4;
  ok.SECINFO4resok_val = static_cast<secinfo4*>(calloc(1, sizeof(secinfo4)));
  if (ok.SECINFO4resok_val == nullptr) abort();
  ok.SECINFO4resok_val[0].flavor = AUTH_SYS;
  ok.SECINFO4resok_len = 1;
  cs.current.reset();
  return NFS4_OK;
}

}  // namespace

// RFC 8881 §18.21, §18.20: the current filehandle becomes the root of the server's
// namespace (PUTPUBFH: the public filehandle is the root, as knfsd's).
nfsstat4 PutRootFh(CompoundState& cs, const nfs_argop4&, nfs_resop4&) {
  PseudoFs* ns = Namespace(cs);
  if (ns == nullptr) {
    cs.current = PseudoRootHandle();
    return NFS4_OK;
  }
  return SetCurrent(cs, ns->Root(Who(cs)));
}

// RFC 8881 §18.19: the current filehandle becomes the one given, authorised and
// resolved as NFSv3 does (pseudofs.h). Without a namespace (tests of the COMPOUND
// loop) the bytes are kept as they came, and the pseudo root's bytes give it back.
nfsstat4 PutFh(CompoundState& cs, const nfs_argop4& args, nfs_resop4&) {
  const nfs_fh4& fh = args.nfs_argop4_u.opputfh.object;
  if (fh.nfs_fh4_len == 0) return NFS4ERR_BADHANDLE;
  std::string bytes(fh.nfs_fh4_val, fh.nfs_fh4_len);
  PseudoFs* ns = Namespace(cs);
  if (ns != nullptr) return SetCurrent(cs, ns->FromWire(Who(cs), bytes));
  FileHandle4 root = PseudoRootHandle();
  cs.current = bytes == root.bytes ? std::move(root) : FileHandle4{std::move(bytes), false};
  return NFS4_OK;
}

// RFC 8881 §18.8: the current filehandle's bytes.
nfsstat4 GetFh(CompoundState& cs, const nfs_argop4&, nfs_resop4& res) {
  const std::string& bytes = cs.current->bytes;
  nfs_fh4& out = res.nfs_resop4_u.opgetfh.GETFH4res_u.resok4.object;
  out.nfs_fh4_val = XdrCopy(bytes);
  out.nfs_fh4_len = static_cast<u_int>(bytes.size());
  return NFS4_OK;
}

// RFC 8881 §18.31 and §18.27: save the current filehandle, or make the saved
// one current again (the saved one stays saved) — each with its current stateid, as
// knfsd (compound.h CompoundState::current_stateid): SAVEFH saves one only when set,
// RESTOREFH restores one only when saved.
nfsstat4 SaveFh(CompoundState& cs, const nfs_argop4&, nfs_resop4&) {
  cs.saved = cs.current;
  if (cs.current_stateid.set) cs.saved_stateid = cs.current_stateid;
  return NFS4_OK;
}

nfsstat4 RestoreFh(CompoundState& cs, const nfs_argop4&, nfs_resop4&) {
  cs.current = cs.saved;
  if (cs.saved_stateid.set) cs.current_stateid = cs.saved_stateid;
  return NFS4_OK;
}

// RFC 8881 §18.13: the current filehandle becomes the named object of the current
// directory — a pseudo directory's child (another pseudo directory or an export's
// root), or within an export Backend::Lookup.
nfsstat4 Lookup(CompoundState& cs, const nfs_argop4& args, nfs_resop4&) {
  PseudoFs* ns = Namespace(cs);
  const Nfs4Object* o = CurrentObject(cs);
  if (ns == nullptr || o == nullptr) return NFS4ERR_SERVERFAULT;
  std::string_view name;
  nfsstat4 s = CheckDirectory(*o);
  if (s == NFS4_OK) s = CheckComponent(args.nfs_argop4_u.oplookup.objname, &name);
  if (s != NFS4_OK) return s;
  return SetCurrent(cs, ns->Lookup(Who(cs), *cs.current, name));
}

// RFC 8881 §18.14: the parent directory; from an export's root the pseudo directory
// above it; NFS4ERR_NOENT at the root.
nfsstat4 Lookupp(CompoundState& cs, const nfs_argop4&, nfs_resop4&) {
  PseudoFs* ns = Namespace(cs);
  const Nfs4Object* o = CurrentObject(cs);
  if (ns == nullptr || o == nullptr) return NFS4ERR_SERVERFAULT;
  if (nfsstat4 s = CheckDirectory(*o); s != NFS4_OK) return s;
  return SetCurrent(cs, ns->Parent(Who(cs), *cs.current));
}

// RFC 8881 §18.7: the requested attributes that are supported (fattr.h); asking for a
// write-only one is NFS4ERR_INVAL.
nfsstat4 GetAttr(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  PseudoFs* ns = Namespace(cs);
  const Nfs4Object* o = CurrentObject(cs);
  if (ns == nullptr || o == nullptr) return NFS4ERR_SERVERFAULT;
  const AttrBitmap want = BitmapFromWire(args.nfs_argop4_u.opgetattr.attr_request);
  if (AsksWriteOnly(want)) return NFS4ERR_INVAL;
  const bool fresh = cs.resolved == o && cs.resolved_at + 1 == cs.op_index;
  absl::StatusOr<Described> d = Describe(*ns, *o, want, fresh);
  if (!d.ok()) return Nfs4StatusFromStatus(d.status());
  AttrBitmap mask;
  std::string vals;
  EncodeAttrs(SourceOf(cs, *cs.current, *d), want, &mask, &vals);
  SetFattr4(&res.nfs_resop4_u.opgetattr.GETATTR4res_u.resok4.obj_attributes, mask, vals);
  return NFS4_OK;
}

// RFC 8881 §18.1: what the (squashed) caller may do, by the object's mode bits as
// NFSv3's ACCESS; a pseudo directory may be read and searched only; nothing of a
// read-only export may be changed. `supported` is the asked bits meaningful for the
// object's type, as knfsd's nfsd_access maps (nfs3_diraccess: no EXECUTE for a
// directory; nfs3_regaccess / nfs3_anyaccess: no LOOKUP or DELETE for anything else);
// the extended-attribute bits are not supported.
nfsstat4 Access(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  PseudoFs* ns = Namespace(cs);
  const Nfs4Object* o = CurrentObject(cs);
  if (ns == nullptr || o == nullptr) return NFS4ERR_SERVERFAULT;
  constexpr uint32_t kForDirectories =
      ACCESS4_READ | ACCESS4_LOOKUP | ACCESS4_MODIFY | ACCESS4_EXTEND | ACCESS4_DELETE;
  constexpr uint32_t kForOthers = ACCESS4_READ | ACCESS4_MODIFY | ACCESS4_EXTEND | ACCESS4_EXECUTE;
  const uint32_t asked = args.nfs_argop4_u.opaccess.access;
  uint32_t allowed = 0;
  uint32_t meaningful = kForDirectories;
  if (o->pseudo) {
    allowed = ACCESS4_READ | ACCESS4_LOOKUP;
  } else {
    absl::StatusOr<backend::Attrs> attrs = ns->deps().backend->GetAttr(o->obj);
    if (!attrs.ok()) return Nfs4StatusFromStatus(attrs.status());
    auto may = [&](int want) { return CheckPermission(*attrs, o->cred, want, false).ok(); };
    const bool dir = attrs->is_dir();
    if (!dir) meaningful = kForOthers;
    if (may(kMayRead)) allowed |= ACCESS4_READ;
    if (may(kMayExec)) allowed |= dir ? ACCESS4_LOOKUP : ACCESS4_EXECUTE;
    if (!o->options.read_only && may(kMayWrite))
      allowed |= ACCESS4_MODIFY | ACCESS4_EXTEND | (dir ? ACCESS4_DELETE : 0);
  }
  ACCESS4resok& ok = res.nfs_resop4_u.opaccess.ACCESS4res_u.resok4;
  ok.supported = asked & meaningful;
  ok.access = asked & allowed & meaningful;
  return NFS4_OK;
}

// RFC 8881 §18.24: a symlink's target; NFS4ERR_INVAL for anything else.
nfsstat4 ReadLink(CompoundState& cs, const nfs_argop4&, nfs_resop4& res) {
  PseudoFs* ns = Namespace(cs);
  const Nfs4Object* o = CurrentObject(cs);
  if (ns == nullptr || o == nullptr) return NFS4ERR_SERVERFAULT;
  if (o->pseudo) return NFS4ERR_INVAL;
  absl::StatusOr<std::string> target = ns->deps().backend->ReadLink(o->obj);
  if (!target.ok()) return Nfs4StatusFromStatus(target.status());
  linktext4& out = res.nfs_resop4_u.opreadlink.READLINK4res_u.resok4.link;
  out.linktext4_val = XdrCopy(*target);
  out.linktext4_len = static_cast<u_int>(target->size());
  return NFS4_OK;
}

namespace {

// The smallest READDIR4resok: the verifier, the list's end marker and eof.
constexpr size_t kEmptyReaddirBytes = 8 + 4 + 4;

// A READDIR reply under construction: entries appended while they fit maxcount (the
// whole READDIR4resok) and dircount (their cookies and names; 0: no limit).
class DirReply {
 public:
  DirReply(const READDIR4args& a, size_t room, READDIR4resok* ok)
      : ok_(ok), maxcount_(std::min<size_t>({a.maxcount, backend::kMaxIoSize, room})),
        dircount_(a.dircount) {
    used_ = kEmptyReaddirBytes;
    tail_ = &ok_->reply.entries;
  }

  // False (nothing appended) when the entry does not fit.
  bool Add(uint64_t cookie, std::string_view name, const AttrBitmap& mask,
           std::string_view vals) {
    const size_t name_size = 4 + (name.size() + 3) / 4 * 4;
    const size_t size = 4 + 8 + name_size + Fattr4Size(mask, vals.size());
    if (used_ + size > maxcount_) return false;
    if (dircount_ != 0 && count_ > 0 && dir_bytes_ + 8 + name_size > dircount_) return false;
    auto* e = static_cast<entry4*>(calloc(1, sizeof(entry4)));
    if (e == nullptr) abort();
    e->cookie = cookie;
    e->name.utf8string_val = XdrCopy(name);
    e->name.utf8string_len = static_cast<u_int>(name.size());
    SetFattr4(&e->attrs, mask, vals);
    *tail_ = e;
    tail_ = &e->nextentry;
    used_ += size;
    dir_bytes_ += 8 + name_size;
    ++count_;
    return true;
  }
  size_t count() const { return count_; }
  void Finish(bool eof, uint64_t verifier) {
    ok_->reply.eof = eof;
    for (int i = 0; i < 8; ++i) ok_->cookieverf[i] = static_cast<char>(verifier >> (56 - 8 * i));
  }

 private:
  READDIR4resok* ok_;
  const size_t maxcount_;
  const size_t dircount_;
  size_t used_ = 0;
  size_t dir_bytes_ = 0;
  size_t count_ = 0;
  entry4** tail_;
};

uint64_t VerifierOf(const verifier4 v) {
  uint64_t out = 0;
  for (int i = 0; i < 8; ++i) out = (out << 8) | static_cast<uint8_t>(v[i]);
  return out;
}

// Attributes asked for that a listing gives without the objects themselves.
bool NeedsObjects(const AttrBitmap& want) {
  AttrBitmap rest = want & SupportedAttrs();
  for (uint32_t bit : {FATTR4_RDATTR_ERROR, FATTR4_FILEID, FATTR4_MOUNTED_ON_FILEID})
    rest.words[bit / 32] &= ~(1u << (bit % 32));
  return !rest.empty();
}

// READDIR of a pseudo directory: its visible children, each with the attributes of
// what LOOKUP would reach (an export's root, or another pseudo directory), or its
// rdattr_error.
nfsstat4 ReadPseudoDir(CompoundState& cs, PseudoFs& ns, const READDIR4args& a,
                       const AttrBitmap& want, size_t room, READDIR4resok* ok) {
  const Nfs4Object& dir = *cs.current->object;
  absl::StatusOr<std::vector<PseudoFs::Child>> children = ns.List(Who(cs), dir);
  if (!children.ok()) return Nfs4StatusFromStatus(children.status());
  DirReply reply(a, room, ok);
  bool eof = true;
  for (const PseudoFs::Child& c : *children) {
    if (c.cookie <= a.cookie) continue;
    const uint64_t covered = PseudoFs::PseudoFileid(
        (dir.path == "/" ? "/" : dir.path + "/") + c.name);
    AttrBitmap mask;
    std::string vals;
    absl::StatusOr<FileHandle4> fh = ns.Lookup(Who(cs), *cs.current, c.name);
    absl::StatusOr<Described> d =
        fh.ok() ? Describe(ns, *fh->object, want, /*fresh=*/true)  // the LOOKUP just read them
                : absl::StatusOr<Described>(fh.status());
    if (d.ok()) {
      FattrSource src = SourceOf(cs, *fh, *d);
      src.mounted_on_fileid = covered;
      EncodeAttrs(src, want, &mask, &vals);
    } else {
      if (!want.has(FATTR4_RDATTR_ERROR)) return Nfs4StatusFromStatus(d.status());
      EncodeAttrError(Nfs4StatusFromStatus(d.status()), covered, want, &mask, &vals);
    }
    if (!reply.Add(c.cookie, c.name, mask, vals)) {
      eof = false;
      break;
    }
  }
  if (reply.count() == 0 && !eof) return NFS4ERR_TOOSMALL;
  reply.Finish(eof, 0);
  return NFS4_OK;
}

// READDIR within an export: the Backend's listing (see ReadDir).
nfsstat4 ReadExportDir(const CompoundState& cs, PseudoFs& ns, const Nfs4Object& o,
                       const READDIR4args& a, const AttrBitmap& want, size_t room,
                       READDIR4resok* ok) {
  backend::Backend& be = *ns.deps().backend;
  const uint64_t verifier = backend::DirCookieVerifier(o.obj.attrs().fileid);
  const uint64_t theirs = VerifierOf(a.cookieverf);
  if (a.cookie != 0 && theirs != 0 && theirs != verifier) return NFS4ERR_NOT_SAME;
  std::optional<backend::FsStat> fs;
  if (NeedsFsStat(want)) {
    absl::StatusOr<backend::FsStat> f = be.StatFs(o.obj);
    if (!f.ok()) return Nfs4StatusFromStatus(f.status());
    fs = *f;
  }
  DirReply reply(a, room, ok);
  const bool plus = NeedsObjects(want);
  nfsstat4 entry_error = NFS4_OK;
  absl::StatusOr<backend::ReadDirResult> r = be.ReadDir(
      o.obj, a.cookie, plus, o.cred, [&](const backend::DirEntry& e) {
        if (e.name == "." || e.name == "..") return true;  // consumed, never listed
        AttrBitmap mask;
        std::string vals;
        absl::StatusOr<std::string> wire = absl::NotFoundError("no handle");
        if (e.handle != nullptr) wire = ns.deps().key->Encode(o.exp->id(), *e.handle);
        if (!plus || (e.attrs.valid != 0 && wire.ok())) {
          backend::Attrs attrs = e.attrs;
          if (!plus) {  // only fileid and mounted_on_fileid are asked for
            attrs.valid = backend::kAttrFileid;
            attrs.fileid = e.fileid;
          }
          FattrSource src;
          src.attrs = &attrs;
          src.fsid_major = o.fsid_major();
          src.fsid_minor = o.fsid_minor();
          if (wire.ok()) src.fh = *wire;
          src.fsstat = fs ? &*fs : nullptr;
          src.mounted_on_fileid = e.fileid;
          src.lease_time = LeaseTime(cs);
          EncodeAttrs(src, want, &mask, &vals);
        } else {
          // Not reachable through this name (removed meanwhile, a mount point).
          if (!want.has(FATTR4_RDATTR_ERROR)) {
            entry_error = NFS4ERR_ACCESS;
            return false;
          }
          EncodeAttrError(NFS4ERR_ACCESS, e.fileid, want, &mask, &vals);
        }
        return reply.Add(e.cookie, e.name, mask, vals);
      });
  if (!r.ok()) return Nfs4StatusFromStatus(r.status());
  if (entry_error != NFS4_OK && reply.count() == 0) return entry_error;
  if (reply.count() == 0 && !r->eof) return NFS4ERR_TOOSMALL;
  reply.Finish(r->eof, verifier);
  return NFS4_OK;
}

}  // namespace

// RFC 8881 §18.23: the entries of the current directory after `cookie`, with the
// requested attributes each. Within an export the Backend's cookies (stable, as
// NFSv3's), without "." and ".." (as knfsd: NFSv4 lists neither, and reserves cookies
// 1 and 2: NFS4ERR_BAD_COOKIE) and with NFSv3's cookie verifier (another directory's:
// NFS4ERR_NOT_SAME). maxcount is bounded by the session's reply budget too, so a
// listing ends early rather than the COMPOUND failing with NFS4ERR_REP_TOO_BIG;
// NFS4ERR_TOOSMALL when not one entry fits (or maxcount is below even an empty reply).
nfsstat4 ReadDir(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  PseudoFs* ns = Namespace(cs);
  const Nfs4Object* o = CurrentObject(cs);
  if (ns == nullptr || o == nullptr) return NFS4ERR_SERVERFAULT;
  if (!o->pseudo && !o->obj.attrs().is_dir()) return NFS4ERR_NOTDIR;
  const READDIR4args& a = args.nfs_argop4_u.opreaddir;
  if (a.cookie == 1 || a.cookie == 2) return NFS4ERR_BAD_COOKIE;
  const AttrBitmap want = BitmapFromWire(a.attr_request);
  if (AsksWriteOnly(want)) return NFS4ERR_INVAL;
  // maxcount bounds the whole READDIR4resok: one that cannot hold even an empty
  // directory's is NFS4ERR_TOOSMALL, whatever the directory (knfsd's
  // nfsd4_encode_readdir; pynfs RDDR8).
  if (a.maxcount < kEmptyReaddirBytes) return NFS4ERR_TOOSMALL;
  READDIR4resok* ok = &res.nfs_resop4_u.opreaddir.READDIR4res_u.resok4;
  // What the session lets the result take: the budget less the results before it and
  // this result's op number and status.
  size_t room = SIZE_MAX;
  if (cs.reply_budget != 0)
    room = cs.reply_budget > cs.reply_bytes + 8 ? cs.reply_budget - cs.reply_bytes - 8 : 0;
  const nfsstat4 status = o->pseudo ? ReadPseudoDir(cs, *ns, a, want, room, ok)
                                    : ReadExportDir(cs, *ns, *o, a, want, room, ok);
  if (status != NFS4_OK) {
    // An error result carries no entries: free what was built.
    xdr_free(reinterpret_cast<xdrproc_t>(xdr_READDIR4resok), reinterpret_cast<char*>(ok));
    memset(ok, 0, sizeof(*ok));
  }
  return status;
}

// RFC 8881 §18.29: the security flavours for the named object of the current
// directory (it must exist: LOOKUP's errors); consumes the current filehandle.
nfsstat4 SecInfo(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  PseudoFs* ns = Namespace(cs);
  const Nfs4Object* o = CurrentObject(cs);
  if (ns == nullptr || o == nullptr) return NFS4ERR_SERVERFAULT;
  std::string_view name;
  nfsstat4 s = CheckDirectory(*o);
  if (s == NFS4_OK) s = CheckComponent(args.nfs_argop4_u.opsecinfo.name, &name);
  if (s != NFS4_OK) return s;
  absl::StatusOr<FileHandle4> fh = ns->Lookup(Who(cs), *cs.current, name);
  if (!fh.ok()) return Nfs4StatusFromStatus(fh.status());
  return AnswerAuthSys(cs, res.nfs_resop4_u.opsecinfo);
}

// RFC 8881 §18.45: the flavours for the current filehandle's object or its parent;
// consumes the current filehandle.
nfsstat4 SecInfoNoName(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  PseudoFs* ns = Namespace(cs);
  const Nfs4Object* o = CurrentObject(cs);
  if (ns == nullptr || o == nullptr) return NFS4ERR_SERVERFAULT;
  const int32_t style = WireEnumValue(args.nfs_argop4_u.opsecinfo_no_name);
  if (style != SECINFO_STYLE4_CURRENT_FH && style != SECINFO_STYLE4_PARENT)
    return NFS4ERR_INVAL;
  if (style == SECINFO_STYLE4_PARENT) {
    if (nfsstat4 s = CheckDirectory(*o); s != NFS4_OK) return s;
    absl::StatusOr<FileHandle4> up = ns->Parent(Who(cs), *cs.current);
    if (!up.ok()) return Nfs4StatusFromStatus(up.status());
  }
  return AnswerAuthSys(cs, res.nfs_resop4_u.opsecinfo_no_name);
}

namespace {

// VERIFY and NVERIFY: the given attributes compared with the object's (fattr.h).
nfsstat4 Compare(CompoundState& cs, const fattr4& given) {
  PseudoFs* ns = Namespace(cs);
  const Nfs4Object* o = CurrentObject(cs);
  if (ns == nullptr || o == nullptr) return NFS4ERR_SERVERFAULT;
  const AttrBitmap want = BitmapFromWire(given.attrmask);
  absl::StatusOr<Described> d = Describe(*ns, *o, want);
  if (!d.ok()) return Nfs4StatusFromStatus(d.status());
  return CompareAttrs(SourceOf(cs, *cs.current, *d), given);
}

}  // namespace

// RFC 8881 §18.31: NFS4ERR_NOT_SAME unless the attributes are the object's.
nfsstat4 Verify(CompoundState& cs, const nfs_argop4& args, nfs_resop4&) {
  const nfsstat4 s = Compare(cs, args.nfs_argop4_u.opverify.obj_attributes);
  return s == NFS4ERR_SAME ? NFS4_OK : s;
}

// RFC 8881 §18.15: NFS4ERR_SAME when the attributes are the object's.
nfsstat4 NVerify(CompoundState& cs, const nfs_argop4& args, nfs_resop4&) {
  const nfsstat4 s = Compare(cs, args.nfs_argop4_u.opnverify.obj_attributes);
  return s == NFS4ERR_NOT_SAME ? NFS4_OK : s;
}

}  // namespace localnfs::server::nfs4
