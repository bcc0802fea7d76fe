// server/nfs4/nfs4proc_ns.cc — the NFSv4 handlers that change the namespace and the
// attributes, and NFSv4.2's operations on file contents (see nfs4proc_ns.h).
//
// They are v3's operations with NFSv4's framing: the same Backend calls with the same
// Caller (the squashed credentials of the object's rule, and the export's `sync`, so a
// change is as durable as over v3), the same errno → status table (pseudofs.h
// Nfs4StatusFromStatus) with NFSv4's own answers where the RFC asks for them (RENAME's
// NFS4ERR_EXIST, SEEK's NFS4ERR_NXIO, and for I/O on what is not a regular file READ's
// ISDIR, SYMLINK or WRONG_TYPE: nfs4proc.h CheckRegular).
//
// Attributes. The Object a filehandle holds carries the attributes of the moment it was
// resolved (PUTFH, LOOKUP); an earlier op of the same COMPOUND may have changed them
// since. So each handler here first takes the object's attributes again (RefreshAttrs: one
// GetAttr) — the permission checks, the sizes SEEK and READ_PLUS answer against and a
// directory's change_info4 `before` all use them — and SETATTR, which changes them, leaves
// the refreshed object current for the ops after it (READ's EOF, WRITE's checks).
// change_info4 is {atomic false, before, after}: the directory's change attribute before
// and after the op, from two GetAttrs with nothing held between them (knfsd holds the
// directory's inode lock and answers atomic; a Linux client then invalidates its cache of
// the directory, which is always correct).
//
// Stateids (RFC 8881 §8.2). SETATTR of the size, ALLOCATE, DEALLOCATE, COPY, CLONE, SEEK,
// READ_PLUS and IO_ADVISE carry one, checked as READ's and WRITE's are
// (nfs4proc_io.h CheckIoStateId, knfsd's nfs4_preprocess_stateid_op): the ops that
// read need OPEN4_SHARE_ACCESS_READ, the others OPEN4_SHARE_ACCESS_WRITE.
//
// Durability. Namespace and attribute changes commit as v3's (Backend, Caller::sync).
// ALLOCATE, DEALLOCATE and CLONE commit the file on a `sync` export, as knfsd's
// commit_metadata / nfsd4_clone_file_range. COPY always commits the destination and
// answers FILE_SYNC4: a client trusts the copy without a COMMIT and its verifier
// (knfsd answers UNSTABLE4 and the client commits).
//
// Grace (state.h "Restart and grace"): REMOVE and RENAME are refused with NFS4ERR_GRACE
// by the loop (their rows' kRefusedInGrace); I/O with a special stateid is refused in
// grace by CheckIoStateId.
//
// What the stateful ops (nfs4proc_io.cc) keep is reached through nfs4proc_io.h:
// CheckIoStateId (stateids) and WriteVerifier (the verifier WRITE and COMMIT answer).
#include "server/nfs4/nfs4proc_ns.h"

#include <stdint.h>
#include <stdlib.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "server/nfs4/fattr.h"
#include "server/nfs4/nfs4proc.h"
#include "server/nfs4/nfs4proc_io.h"
#include "server/nfs4/pseudofs.h"

namespace localnfs::server::nfs4 {
namespace {

// The largest offset (and end of a range) a file may have: off_t's.
constexpr uint64_t kMaxOffset = static_cast<uint64_t>(INT64_MAX);
// Device numbers Linux can hold (MKDEV: 12 bits of major, 20 of minor); others are
// NFS4ERR_INVAL, as knfsd's MAJOR/MINOR round trip.
constexpr uint32_t kMaxDevMajor = (1u << 12) - 1;
constexpr uint32_t kMaxDevMinor = (1u << 20) - 1;
// The most segments one READ_PLUS answers (NFS4_MAXLIST allows 1024): a file of many
// small holes costs a few reads, not an unbounded reply.
constexpr size_t kMaxReadPlusSegments = 256;

// ---- Shared steps

backend::Caller CallerOf(const Nfs4Object& o) { return backend::Caller{o.cred, o.options.sync}; }

// The filehandle `fh` with its object's attributes taken again (see "Attributes"); the
// handle keeps naming the same object. Pseudo directories are kept as they are.
nfsstat4 RefreshAttrs(backend::Backend& be, std::optional<FileHandle4>& fh) {
  const Nfs4Object& o = *fh->object;
  if (o.pseudo) return NFS4_OK;
  absl::StatusOr<backend::Attrs> attrs = be.GetAttr(o.obj);
  if (!attrs.ok()) return Nfs4StatusFromStatus(attrs.status());
  auto updated = std::make_shared<Nfs4Object>(o);
  updated->obj = backend::Object(&o.obj.exp(), o.obj.handle(), *attrs, o.obj.node_ref());
  fh->object = std::move(updated);
  return NFS4_OK;
}

// An op that changes an export's object refuses a pseudo directory (the loop answers
// ROFS for the current filehandle; this covers the saved one and stands guard).
nfsstat4 NeedExportObject(const Nfs4Object& o) { return o.pseudo ? NFS4ERR_ROFS : NFS4_OK; }

uint64_t ChangeNow(backend::Backend& be, const backend::Object& dir, uint64_t otherwise) {
  absl::StatusOr<backend::Attrs> attrs = be.GetAttr(dir);
  return attrs.ok() ? attrs->change : otherwise;
}

void SetCinfo(change_info4* c, uint64_t before, uint64_t after) {
  c->atomic = FALSE;
  c->before = before;
  c->after = after;
}

void ClearAttr(AttrBitmap* b, uint32_t bit) { b->words[bit / 32] &= ~(1u << (bit % 32)); }

// What every handler starts with: the namespace and the current filehandle's object.
struct OpContext {
  PseudoFs* ns = nullptr;
  backend::Backend* be = nullptr;
};
nfsstat4 BeginOp(CompoundState& cs, OpContext* ctx) {
  ctx->ns = Namespace(cs);
  if (ctx->ns == nullptr || CurrentObject(cs) == nullptr) return NFS4ERR_SERVERFAULT;
  ctx->be = ctx->ns->deps().backend;
  return RefreshAttrs(*ctx->be, cs.current);
}
// The same for the saved filehandle too (RENAME, LINK, COPY, CLONE).
nfsstat4 BeginOpWithSaved(CompoundState& cs, OpContext* ctx) {
  if (nfsstat4 s = BeginOp(cs, ctx); s != NFS4_OK) return s;
  if (!cs.saved->object) return NFS4ERR_SERVERFAULT;
  return RefreshAttrs(*ctx->be, cs.saved);
}
// The same for an op on the current regular file (SEEK, ALLOCATE, DEALLOCATE,
// READ_PLUS, IO_ADVISE): *o its object, the attributes taken again.
nfsstat4 BeginFileOp(CompoundState& cs, OpContext* ctx, const Nfs4Object** o) {
  if (nfsstat4 s = BeginOp(cs, ctx); s != NFS4_OK) return s;
  return CurrentRegularFile(cs, o);
}

}  // namespace

// RFC 8881 §18.4: a directory, symlink, device, socket or FIFO named `objname` in the
// current directory, with `createattrs` applied; the new object becomes current.
// Regular files are OPEN's (NF4REG → NFS4ERR_BADTYPE, as are named-attribute types).
// The size attribute means nothing for what CREATE makes and is not applied (knfsd drops
// it for directories).
nfsstat4 Create(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  OpContext ctx;
  if (nfsstat4 s = BeginOp(cs, &ctx); s != NFS4_OK) return s;
  const std::shared_ptr<const Nfs4Object> dir = cs.current->object;  // kept alive
  const CREATE4args& a = args.nfs_argop4_u.opcreate;
  std::string_view name;
  nfsstat4 s = NeedExportObject(*dir);
  if (s == NFS4_OK) s = CheckDirectory(*dir);
  if (s == NFS4_OK) s = CheckComponent(a.objname, &name);
  if (s != NFS4_OK) return s;
  backend::SetAttrRequest attrs;
  AttrBitmap set;
  if (s = DecodeSettableAttrs(a.createattrs, &attrs, &set); s != NFS4_OK) return s;
  attrs.size.reset();
  ClearAttr(&set, FATTR4_SIZE);

  const backend::Caller caller = CallerOf(*dir);
  const uint64_t before = dir->obj.attrs().change;
  absl::StatusOr<backend::Object> made;
  const int32_t type = WireEnumValue(a.objtype.type);
  switch (type) {
    case NF4DIR:
      made = ctx.be->Mkdir(dir->obj, name, attrs, caller);
      break;
    case NF4LNK: {
      const linktext4& target = a.objtype.createtype4_u.linkdata;
      if (target.linktext4_len == 0) return NFS4ERR_INVAL;  // RFC 8881 §18.4.3
      made = ctx.be->Symlink(dir->obj, name,
                             std::string_view(target.linktext4_val, target.linktext4_len), attrs,
                             caller);
      break;
    }
    case NF4BLK:
    case NF4CHR: {
      const specdata4& dev = a.objtype.createtype4_u.devdata;
      if (dev.specdata1 > kMaxDevMajor || dev.specdata2 > kMaxDevMinor) return NFS4ERR_INVAL;
      made = ctx.be->Mknod(
          dir->obj, name,
          type == NF4BLK ? backend::FileType::kBlockDevice : backend::FileType::kCharDevice,
          dev.specdata1, dev.specdata2, attrs, caller);
      break;
    }
    case NF4SOCK:
    case NF4FIFO:
      made = ctx.be->Mknod(dir->obj, name,
                           type == NF4SOCK ? backend::FileType::kSocket : backend::FileType::kFifo,
                           0, 0, attrs, caller);
      break;
    default:
      return NFS4ERR_BADTYPE;
  }
  if (!made.ok()) return Nfs4StatusFromStatus(made.status());
  absl::StatusOr<FileHandle4> fh = ExportChild(*ctx.ns->deps().key, *dir, *std::move(made));
  if (!fh.ok()) return Nfs4StatusFromStatus(fh.status());
  CREATE4resok& ok = res.nfs_resop4_u.opcreate.CREATE4res_u.resok4;
  SetCinfo(&ok.cinfo, before, ChangeNow(*ctx.be, dir->obj, before));
  SetBitmap4(&ok.attrset, set);
  cs.current = *std::move(fh);
  return NFS4_OK;
}

// RFC 8881 §18.25: the entry `target` of the current directory, whatever it names (an
// empty directory too: NFS4ERR_NOTEMPTY otherwise). Refused during grace by the loop, as
// knfsd's nfsd4_remove: a reclaiming client may still need the name.
nfsstat4 Remove(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  OpContext ctx;
  if (nfsstat4 s = BeginOp(cs, &ctx); s != NFS4_OK) return s;
  const std::shared_ptr<const Nfs4Object> dir = cs.current->object;
  std::string_view name;
  nfsstat4 s = NeedExportObject(*dir);
  if (s == NFS4_OK) s = CheckDirectory(*dir);
  if (s == NFS4_OK) s = CheckComponent(args.nfs_argop4_u.opremove.target, &name);
  if (s != NFS4_OK) return s;
  const uint64_t before = dir->obj.attrs().change;
  auto gone = ctx.be->Remove(dir->obj, name, backend::RemoveKind::kAny, CallerOf(*dir));
  if (!gone.ok()) return Nfs4StatusFromStatus(gone.status());
  SetCinfo(&res.nfs_resop4_u.opremove.REMOVE4res_u.resok4.cinfo, before,
           ChangeNow(*ctx.be, dir->obj, before));
  return NFS4_OK;
}

// RFC 8881 §18.26: `oldname` of the saved directory becomes `newname` of the current
// one. Across exports (or from a pseudo directory) NFS4ERR_XDEV. A target that exists
// must be compatible — both directories, the target empty, or both not directories —
// else NFS4ERR_EXIST, as §18.26.4 says (knfsd answers rename(2)'s NOTEMPTY, ISDIR,
// NOTDIR). Refused during grace by the loop, as knfsd's nfsd4_rename.
nfsstat4 Rename(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  OpContext ctx;
  if (nfsstat4 s = BeginOpWithSaved(cs, &ctx); s != NFS4_OK) return s;
  const std::shared_ptr<const Nfs4Object> from = cs.saved->object;
  const std::shared_ptr<const Nfs4Object> to = cs.current->object;
  const RENAME4args& a = args.nfs_argop4_u.oprename;
  std::string_view old_name, new_name;
  nfsstat4 s = NeedExportObject(*to);
  if (s == NFS4_OK) s = CheckDirectory(*from);
  if (s == NFS4_OK) s = CheckDirectory(*to);
  if (s == NFS4_OK) s = CheckComponent(a.oldname, &old_name);
  if (s == NFS4_OK) s = CheckComponent(a.newname, &new_name);
  if (s == NFS4_OK && (from->pseudo || from->exp.get() != to->exp.get())) s = NFS4ERR_XDEV;
  if (s != NFS4_OK) return s;
  const uint64_t from_before = from->obj.attrs().change;
  const uint64_t to_before = to->obj.attrs().change;
  auto replaced = ctx.be->Rename(from->obj, old_name, to->obj, new_name, CallerOf(*to));
  if (!replaced.ok()) {
    switch (StatusErrno(replaced.status())) {
      case ENOTEMPTY:
      case EEXIST:
      case EISDIR:   // the target is a directory, the source is not
      case ENOTDIR:  // the source is a directory, the target is not
        return NFS4ERR_EXIST;
      default:
        return Nfs4StatusFromStatus(replaced.status());
    }
  }
  RENAME4resok& ok = res.nfs_resop4_u.oprename.RENAME4res_u.resok4;
  SetCinfo(&ok.source_cinfo, from_before, ChangeNow(*ctx.be, from->obj, from_before));
  SetCinfo(&ok.target_cinfo, to_before, ChangeNow(*ctx.be, to->obj, to_before));
  return NFS4_OK;
}

// RFC 8881 §18.9: the saved object gets the name `newname` in the current directory.
// A directory cannot be linked (NFS4ERR_ISDIR); across exports NFS4ERR_XDEV.
nfsstat4 Link(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  OpContext ctx;
  if (nfsstat4 s = BeginOpWithSaved(cs, &ctx); s != NFS4_OK) return s;
  const std::shared_ptr<const Nfs4Object> file = cs.saved->object;
  const std::shared_ptr<const Nfs4Object> dir = cs.current->object;
  std::string_view name;
  nfsstat4 s = NeedExportObject(*dir);
  if (s == NFS4_OK && (file->pseudo || file->obj.attrs().is_dir())) s = NFS4ERR_ISDIR;
  if (s == NFS4_OK) s = CheckDirectory(*dir);
  if (s == NFS4_OK) s = CheckComponent(args.nfs_argop4_u.oplink.newname, &name);
  if (s == NFS4_OK && file->exp.get() != dir->exp.get()) s = NFS4ERR_XDEV;
  if (s != NFS4_OK) return s;
  const uint64_t before = dir->obj.attrs().change;
  absl::Status linked = ctx.be->Link(file->obj, dir->obj, name, CallerOf(*dir));
  if (!linked.ok()) return Nfs4StatusFromStatus(linked);
  SetCinfo(&res.nfs_resop4_u.oplink.LINK4res_u.resok4.cinfo, before,
           ChangeNow(*ctx.be, dir->obj, before));
  return NFS4_OK;
}

// RFC 8881 §18.30: the settable attributes of `obj_attributes` (fattr.h
// DecodeSettableAttrs: size, mode, numeric owner and group, the times set to the
// server's or the client's time; a read-only attribute is NFS4ERR_INVAL) applied as the
// caller, as v3's SETATTR without a guard. A size change needs the stateid's write
// access (knfsd's nfsd4_setattr). The result's attrsset names what was set (empty on
// an error: knfsd's too, though an error after some attributes leaves those set).
nfsstat4 SetAttr(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  OpContext ctx;
  if (nfsstat4 s = BeginOp(cs, &ctx); s != NFS4_OK) return s;
  const std::shared_ptr<const Nfs4Object> o = cs.current->object;
  const SETATTR4args& a = args.nfs_argop4_u.opsetattr;
  if (nfsstat4 s = NeedExportObject(*o); s != NFS4_OK) return s;
  backend::SetAttrRequest req;
  AttrBitmap set;
  if (nfsstat4 s = DecodeSettableAttrs(a.obj_attributes, &req, &set); s != NFS4_OK) return s;
  if (req.size) {
    if (nfsstat4 s = CheckIoStateId(cs, *o, a.stateid, OPEN4_SHARE_ACCESS_WRITE); s != NFS4_OK)
      return s;
  }
  absl::Status done = ctx.be->SetAttr(o->obj, req, std::nullopt, CallerOf(*o));
  // The ops after this one see the attributes it set (see "Attributes"); even after an
  // error, which may have set some of them.
  (void)RefreshAttrs(*ctx.be, cs.current);
  if (!done.ok()) return Nfs4StatusFromStatus(done);
  SetBitmap4(&res.nfs_resop4_u.opsetattr.attrsset, set);
  return NFS4_OK;
}

// RFC 7862 §15.11: where the next data (or hole) at or after sa_offset is. An offset at
// or beyond the end, or data asked for where only a hole follows, is NFS4ERR_NXIO (as
// lseek(2) and knfsd); sr_eof when what was found is the end of the file.
nfsstat4 Seek(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  OpContext ctx;
  const Nfs4Object* o;
  if (nfsstat4 s = BeginFileOp(cs, &ctx, &o); s != NFS4_OK) return s;
  const SEEK4args& a = args.nfs_argop4_u.opseek;
  if (nfsstat4 s = CheckIoStateId(cs, *o, a.sa_stateid, OPEN4_SHARE_ACCESS_READ); s != NFS4_OK)
    return s;
  const int32_t what = WireEnumValue(a.sa_what);
  if (what != NFS4_CONTENT_DATA && what != NFS4_CONTENT_HOLE)
    return NFS4ERR_UNION_NOTSUPP;  // as knfsd
  const uint64_t size = o->obj.attrs().size;
  if (a.sa_offset >= size) return NFS4ERR_NXIO;
  const bool data = what == NFS4_CONTENT_DATA;
  absl::StatusOr<backend::SeekResult> found = ctx.be->Seek(
      o->obj, o->cred, a.sa_offset, data ? backend::SeekWhat::kData : backend::SeekWhat::kHole);
  if (!found.ok()) return Nfs4StatusFromStatus(found.status());
  if (data && found->eof) return NFS4ERR_NXIO;
  seek_res4& ok = res.nfs_resop4_u.opseek.SEEK4res_u.resok4;
  ok.sr_offset = found->offset;
  ok.sr_eof = found->offset >= size ? TRUE : FALSE;
  return NFS4_OK;
}

namespace {

// ALLOCATE and DEALLOCATE: [offset, offset + length) of the current file, as knfsd's
// nfsd4_fallocate / vfs_fallocate (length 0 or values beyond off_t → INVAL, an end
// beyond off_t → FBIG); the file is committed on a `sync` export.
nfsstat4 Fallocate(CompoundState& cs, const stateid4& stateid, uint64_t offset, uint64_t length,
                   bool punch_hole) {
  OpContext ctx;
  const Nfs4Object* o;
  if (nfsstat4 s = BeginFileOp(cs, &ctx, &o); s != NFS4_OK) return s;
  if (nfsstat4 s = CheckIoStateId(cs, *o, stateid, OPEN4_SHARE_ACCESS_WRITE); s != NFS4_OK)
    return s;
  if (length == 0 || offset > kMaxOffset || length > kMaxOffset) return NFS4ERR_INVAL;
  if (length > kMaxOffset - offset) return NFS4ERR_FBIG;
  absl::Status done = punch_hole ? ctx.be->Deallocate(o->obj, o->cred, offset, length)
                                 : ctx.be->Allocate(o->obj, o->cred, offset, length);
  if (done.ok() && o->options.sync) done = ctx.be->Commit(o->obj, o->cred);
  return Nfs4StatusFromStatus(done);
}

}  // namespace

// RFC 7862 §15.1: space for the range is allocated (fallocate(2)); the size grows to its
// end.
nfsstat4 Allocate(CompoundState& cs, const nfs_argop4& args, nfs_resop4&) {
  const ALLOCATE4args& a = args.nfs_argop4_u.opallocate;
  return Fallocate(cs, a.aa_stateid, a.aa_offset, a.aa_length, /*punch_hole=*/false);
}

// RFC 7862 §15.4: the range becomes a hole (reads as zeros); the size stays.
nfsstat4 Deallocate(CompoundState& cs, const nfs_argop4& args, nfs_resop4&) {
  const DEALLOCATE4args& a = args.nfs_argop4_u.opdeallocate;
  return Fallocate(cs, a.da_stateid, a.da_offset, a.da_length, /*punch_hole=*/true);
}

namespace {

// What COPY and CLONE check before their Backend call (RFC 7862 §15.2.3, §15.13.3):
// both files regular (NFS4ERR_WRONG_TYPE, as knfsd's nfsd4_verify_copy), the stateids
// (the source's for reading, the destination's for writing), the same export
// (NFS4ERR_XDEV), the source range within the source file (count 0: to its end;
// NFS4ERR_INVAL beyond), the destination range within off_t, and no overlap within one
// file (NFS4ERR_INVAL). *count becomes the bytes to copy.
nfsstat4 CheckCopy(CompoundState& cs, const Nfs4Object& src, const Nfs4Object& dst,
                   const stateid4& src_stateid, const stateid4& dst_stateid, uint64_t src_offset,
                   uint64_t dst_offset, uint64_t* count) {
  if (src.pseudo || !src.obj.attrs().is_regular() || dst.pseudo || !dst.obj.attrs().is_regular())
    return NFS4ERR_WRONG_TYPE;
  nfsstat4 s = CheckIoStateId(cs, src, src_stateid, OPEN4_SHARE_ACCESS_READ);
  if (s == NFS4_OK) s = CheckIoStateId(cs, dst, dst_stateid, OPEN4_SHARE_ACCESS_WRITE);
  if (s != NFS4_OK) return s;
  if (src.exp.get() != dst.exp.get()) return NFS4ERR_XDEV;
  const uint64_t size = src.obj.attrs().size;
  if (src_offset > size) return NFS4ERR_INVAL;
  if (*count == 0) *count = size - src_offset;
  if (*count > size - src_offset) return NFS4ERR_INVAL;
  if (dst_offset > kMaxOffset || *count > kMaxOffset - dst_offset) return NFS4ERR_INVAL;
  const bool same_file = src.obj.attrs().fileid == dst.obj.attrs().fileid &&
                         src.obj.attrs().fsid == dst.obj.attrs().fsid;
  if (same_file && *count != 0 && src_offset < dst_offset + *count &&
      dst_offset < src_offset + *count)
    return NFS4ERR_INVAL;
  return NFS4_OK;
}

}  // namespace

// The most one COPY copies (see Copy).
constexpr uint64_t kMaxSyncCopyBytes = uint64_t{4} << 20;

// RFC 7862 §15.2: ca_count bytes (0: to the end) of the saved file from ca_src_offset
// into the current file at ca_dst_offset, intra-server only (a source server named →
// NFS4ERR_NOTSUPP), synchronously (cr_synchronous TRUE, no wr_callback_id) and
// consecutively; committed before the answer (FILE_SYNC4; see "Durability"). At most
// kMaxSyncCopyBytes per COPY; a copy that ends early (that limit, or the source shrank)
// answers the bytes copied.
nfsstat4 Copy(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  const COPY4args& a = args.nfs_argop4_u.opcopy;
  if (a.ca_source_server.ca_source_server_len != 0) return NFS4ERR_NOTSUPP;
  OpContext ctx;
  if (nfsstat4 s = BeginOpWithSaved(cs, &ctx); s != NFS4_OK) return s;
  const std::shared_ptr<const Nfs4Object> src = cs.saved->object;
  const std::shared_ptr<const Nfs4Object> dst = cs.current->object;
  uint64_t count = a.ca_count;
  if (nfsstat4 s = CheckCopy(cs, *src, *dst, a.ca_src_stateid, a.ca_dst_stateid, a.ca_src_offset,
                             a.ca_dst_offset, &count);
      s != NFS4_OK)
    return s;
  // A synchronous copy holds a worker (and the client's slot) until it ends: at most
  // kMaxSyncCopyBytes each, answered as a short copy that the client continues from
  // (knfsd's nfsd_copy_file_range limit, 4 MiB; Linux's copy_file_range loops on it).
  count = std::min(count, kMaxSyncCopyBytes);
  uint64_t copied = 0;
  if (count != 0) {
    absl::StatusOr<uint64_t> done =
        ctx.be->CopyRange(src->obj, dst->obj, dst->cred, a.ca_src_offset, a.ca_dst_offset, count);
    if (!done.ok()) return Nfs4StatusFromStatus(done.status());
    copied = *done;
    if (absl::Status c = ctx.be->Commit(dst->obj, dst->cred); !c.ok())
      return Nfs4StatusFromStatus(c);
  }
  COPY4resok& ok = res.nfs_resop4_u.opcopy.COPY4res_u.cr_resok4;
  ok.cr_response.wr_count = copied;
  ok.cr_response.wr_committed = FILE_SYNC4;
  WriteVerifier(cs, ok.cr_response.wr_writeverf);
  ok.cr_requirements.cr_consecutive = TRUE;
  ok.cr_requirements.cr_synchronous = TRUE;
  return NFS4_OK;
}

// RFC 7862 §15.13: as COPY, sharing the blocks (FICLONERANGE); NFS4ERR_NOTSUPP where the
// file system cannot share them, NFS4ERR_INVAL for a range it cannot (unaligned).
// Committed on a `sync` export, as knfsd's.
nfsstat4 Clone(CompoundState& cs, const nfs_argop4& args, nfs_resop4&) {
  const CLONE4args& a = args.nfs_argop4_u.opclone;
  OpContext ctx;
  if (nfsstat4 s = BeginOpWithSaved(cs, &ctx); s != NFS4_OK) return s;
  const std::shared_ptr<const Nfs4Object> src = cs.saved->object;
  const std::shared_ptr<const Nfs4Object> dst = cs.current->object;
  uint64_t count = a.cl_count;
  if (nfsstat4 s = CheckCopy(cs, *src, *dst, a.cl_src_stateid, a.cl_dst_stateid, a.cl_src_offset,
                             a.cl_dst_offset, &count);
      s != NFS4_OK)
    return s;
  if (count == 0) return NFS4_OK;
  absl::Status done =
      ctx.be->Clone(src->obj, dst->obj, dst->cred, a.cl_src_offset, a.cl_dst_offset, count);
  if (done.ok() && dst->options.sync) done = ctx.be->Commit(dst->obj, dst->cred);
  return Nfs4StatusFromStatus(done);
}

namespace {

// A READ_PLUS reply under construction (read_plus_res4): segments appended while they
// fit the room the reply may take.
class PlusReply {
 public:
  PlusReply(size_t room, read_plus_res4* ok) : room_(room), ok_(ok) {}
  ~PlusReply() {
    for (read_plus_content& c : segments_) {
      if (c.rpc_content == NFS4_CONTENT_DATA)
        free(c.read_plus_content_u.rpc_data.d_data.d_data_val);
    }
  }
  PlusReply(const PlusReply&) = delete;
  PlusReply& operator=(const PlusReply&) = delete;

  size_t segments() const { return segments_.size(); }
  bool full() const { return segments_.size() >= kMaxReadPlusSegments; }
  // The data bytes a segment may carry now (a data segment: content, offset, length).
  size_t data_room() const { return room_ > used_ + 16 ? (room_ - used_ - 16) & ~size_t{3} : 0; }
  bool AddHole(uint64_t offset, uint64_t length) {
    if (full() || used_ + 20 > room_) return false;
    read_plus_content c{};
    c.rpc_content = NFS4_CONTENT_HOLE;
    c.read_plus_content_u.rpc_hole.di_offset = offset;
    c.read_plus_content_u.rpc_hole.di_length = length;
    segments_.push_back(c);
    used_ += 20;
    return true;
  }
  // Takes `data` (malloc'd, `length` bytes).
  void AddData(uint64_t offset, char* data, uint32_t length) {
    read_plus_content c{};
    c.rpc_content = NFS4_CONTENT_DATA;
    c.read_plus_content_u.rpc_data.d_offset = offset;
    c.read_plus_content_u.rpc_data.d_data.d_data_val = data;
    c.read_plus_content_u.rpc_data.d_data.d_data_len = length;
    segments_.push_back(c);
    used_ += 16 + (size_t{length} + 3) / 4 * 4;
  }
  // Hands the segments to the result (freed with it by xdr_free).
  void Finish(bool eof) {
    ok_->rpr_eof = eof ? TRUE : FALSE;
    if (segments_.empty()) return;
    auto* out =
        static_cast<read_plus_content*>(calloc(segments_.size(), sizeof(read_plus_content)));
    if (out == nullptr) abort();
    std::copy(segments_.begin(), segments_.end(), out);
    ok_->rpr_contents.rpr_contents_val = out;
    ok_->rpr_contents.rpr_contents_len = static_cast<u_int>(segments_.size());
    segments_.clear();
  }

 private:
  const size_t room_;
  read_plus_res4* ok_;
  std::vector<read_plus_content> segments_;
  size_t used_ = 8;  // eof and the segment count
};

}  // namespace

// RFC 7862 §15.10: up to rpa_count bytes from rpa_offset as data and hole segments —
// the holes found with Backend::Seek (a file system without holes, or the memory backend,
// answers data only), each segment within what was asked and the file's size; at most
// kMaxReadPlusSegments of them and within the session's reply budget. rpr_eof when the
// reply reaches the end of the file (its size now); an offset at or past it answers eof
// with no segment.
nfsstat4 ReadPlus(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  OpContext ctx;
  const Nfs4Object* o;
  if (nfsstat4 s = BeginFileOp(cs, &ctx, &o); s != NFS4_OK) return s;
  const READ_PLUS4args& a = args.nfs_argop4_u.opread_plus;
  if (nfsstat4 s = CheckIoStateId(cs, *o, a.rpa_stateid, OPEN4_SHARE_ACCESS_READ); s != NFS4_OK)
    return s;
  if (a.rpa_offset > kMaxOffset) return NFS4ERR_INVAL;  // as READ's (knfsd: OFFSET_MAX)
  // The result may take the session's budget less the results before it and its own op
  // number and status.
  size_t room = SIZE_MAX;
  if (cs.reply_budget != 0)
    room = cs.reply_budget > cs.reply_bytes + 8 ? cs.reply_budget - cs.reply_bytes - 8 : 0;
  read_plus_res4* ok = &res.nfs_resop4_u.opread_plus.READ_PLUS4res_u.rp_resok4;
  PlusReply reply(room, ok);
  const uint64_t size = o->obj.attrs().size;
  const uint64_t want = std::min<uint64_t>(a.rpa_count, backend::kMaxIoSize);
  const uint64_t end =
      a.rpa_offset < size ? a.rpa_offset + std::min(want, size - a.rpa_offset) : a.rpa_offset;
  uint64_t at = a.rpa_offset;
  bool eof = at >= size;
  while (at < end && !reply.full()) {
    absl::StatusOr<backend::SeekResult> data =
        ctx.be->Seek(o->obj, o->cred, at, backend::SeekWhat::kData);
    if (!data.ok() && StatusErrno(data.status()) != EOPNOTSUPP)
      return Nfs4StatusFromStatus(data.status());
    // Without SEEK everything is data; no data before the end: a hole up to it.
    const uint64_t data_at = !data.ok() ? at : data->eof ? end : std::min(data->offset, end);
    if (data_at > at) {
      if (!reply.AddHole(at, data_at - at)) break;
      at = data_at;
      continue;
    }
    absl::StatusOr<backend::SeekResult> hole =
        ctx.be->Seek(o->obj, o->cred, at, backend::SeekWhat::kHole);
    if (!hole.ok() && StatusErrno(hole.status()) != EOPNOTSUPP)
      return Nfs4StatusFromStatus(hole.status());
    const uint64_t hole_at = !hole.ok() ? end : std::clamp(hole->offset, at + 1, end);
    const size_t length = std::min<uint64_t>(hole_at - at, reply.data_room());
    if (length == 0) break;
    char* buf = static_cast<char*>(malloc(length));
    if (buf == nullptr) abort();
    absl::StatusOr<backend::ReadResult> got =
        ctx.be->Read(o->obj, o->cred, at, absl::MakeSpan(buf, length));
    if (!got.ok() || got->count == 0) {
      free(buf);
      if (!got.ok()) return Nfs4StatusFromStatus(got.status());
      eof = true;  // the file shrank under us: its end is here
      break;
    }
    reply.AddData(at, buf, got->count);
    at += got->count;
    if (got->count < length) {
      eof = got->eof;
      break;
    }
  }
  if (at >= size) eof = true;
  reply.Finish(eof);
  return NFS4_OK;
}

// RFC 7862 §15.8, §15.9: no copy is ever asynchronous here, so no stateid names one
// (knfsd answers so for a copy it does not know).
nfsstat4 OffloadCancel(CompoundState&, const nfs_argop4&, nfs_resop4&) {
  return NFS4ERR_BAD_STATEID;
}
nfsstat4 OffloadStatus(CompoundState&, const nfs_argop4&, nfs_resop4&) {
  return NFS4ERR_BAD_STATEID;
}

// RFC 7862 §15.5: hints are accepted and none is acted on; the answer's bitmap (the
// hints honoured) is empty, as §15.5.3 allows.
nfsstat4 IoAdvise(CompoundState& cs, const nfs_argop4& args, nfs_resop4& res) {
  OpContext ctx;
  const Nfs4Object* o;
  if (nfsstat4 s = BeginFileOp(cs, &ctx, &o); s != NFS4_OK) return s;
  const IO_ADVISE4args& a = args.nfs_argop4_u.opio_advise;
  if (nfsstat4 s = CheckIoStateId(cs, *o, a.iaa_stateid, OPEN4_SHARE_ACCESS_READ); s != NFS4_OK)
    return s;
  SetBitmap4(&res.nfs_resop4_u.opio_advise.IO_ADVISE4res_u.resok4.ior_hints, AttrBitmap{});
  return NFS4_OK;
}

}  // namespace localnfs::server::nfs4
