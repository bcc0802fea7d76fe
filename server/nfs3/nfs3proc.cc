// server/nfs3/nfs3proc.cc — NFSv3 procedure semantics (RFC 1813 §3.3). Each handler gets
// a request whose export, objects and credentials Dispatch() already established;
// it validates, calls the Backend (backend/backend.h) and fills the result.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <algorithm>

#include "common/status.h"
#include "server/backend/rules.h"
#include "server/nfs3/nfs3_program.h"
#include "server/nfs3/nfs3xdr.h"
#include "server/nfs3/nfs_status.h"
#include "server/policy/creds.h"

namespace localnfs::server {

// nfs3.x bounds READ/WRITE data on the wire; FSINFO must not advertise more.
static_assert(backend::kMaxIoSize <= NFS3_MAXDATA);
// nfs_status.cc answers the guard's errno with NFS3ERR_NOT_SYNC.
static_assert(backend::kErrNotSync == EBADE);

namespace {

// WRITE's stable_how; a value beyond FILE_SYNC is taken as FILE_SYNC (as knfsd treats
// any non-zero value as a stable write): the client gets the most durable answer.
backend::Stability StabilityOf(const stable_how& wire) {
  const int32_t v = WireEnumValue(wire);
  return v == UNSTABLE    ? backend::Stability::kUnstable
         : v == DATA_SYNC ? backend::Stability::kDataSync
                          : backend::Stability::kFileSync;
}

}  // namespace

void Nfs3Program::Getattr(Nfs3Request& req, const GETATTR3args&, GETATTR3res& r) {
  // The attributes of the request's one stat (Resolve).
  r.status = NFS3_OK;
  r.GETATTR3res_u.resok.obj_attributes = FattrFromAttrs(req.obj.attrs(), fsid(req));
}

void Nfs3Program::Setattr(Nfs3Request& req, const SETATTR3args& a, SETATTR3res& r) {
  std::optional<timespec> guard;
  if (a.guard.check)
    guard = timespec{static_cast<time_t>(a.guard.sattrguard3_u.obj_ctime.seconds),
                     static_cast<long>(a.guard.sattrguard3_u.obj_ctime.nseconds)};
  absl::Status s = deps_.backend->SetAttr(req.obj, SetAttrRequestFromSattr(a.new_attributes),
                                          guard, req.caller());
  r.status = NfsStatusFromStatus(s);
  // resok and resfail are the same wcc_data.
  SetWccOf(&r.SETATTR3res_u.resok.obj_wcc, req, req.obj);
}

void Nfs3Program::Lookup(Nfs3Request& req, const LOOKUP3args& a, LOOKUP3res& r) {
  const std::string_view name = ArgName(req, a.what.name);
  absl::StatusOr<backend::Object> found = deps_.backend->Lookup(req.obj, name, req.cred);
  absl::StatusOr<std::string> wire =
      found.ok() ? deps_.key->Encode(req.exp->id(), found->handle()) : found.status();
  r.status = NfsStatusFromStatus(wire.status());
  // LOOKUP changes nothing: the directory's attributes from the start of the request.
  if (r.status != NFS3_OK) {
    SetPostOpAttr(&r.LOOKUP3res_u.resfail.dir_attributes, req.obj.attrs(), fsid(req));
    return;
  }
  LOOKUP3resok& ok = r.LOOKUP3res_u.resok;
  SetFh(&ok.object, *wire);
  SetPostOpAttr(&ok.obj_attributes, found->attrs(), fsid(req));
  SetPostOpAttr(&ok.dir_attributes, req.obj.attrs(), fsid(req));
}

void Nfs3Program::Access(Nfs3Request& req, const ACCESS3args& a, ACCESS3res& r) {
  const backend::Attrs& attrs = req.obj.attrs();
  auto may = [&](int want) { return CheckPermission(attrs, req.cred, want, false).ok(); };
  const bool dir = attrs.is_dir();
  uint32_t allowed = 0;
  if (may(kMayRead)) allowed |= ACCESS3_READ;
  if (may(kMayExec)) allowed |= dir ? ACCESS3_LOOKUP : ACCESS3_EXECUTE;
  if (!req.options.read_only && may(kMayWrite))
    allowed |= ACCESS3_MODIFY | ACCESS3_EXTEND | (dir ? ACCESS3_DELETE : 0);
  r.status = NFS3_OK;
  ACCESS3resok& ok = r.ACCESS3res_u.resok;
  SetPostOpAttr(&ok.obj_attributes, attrs, fsid(req));
  ok.access = a.access & allowed;
}

void Nfs3Program::Readlink(Nfs3Request& req, const READLINK3args&, READLINK3res& r) {
  absl::StatusOr<std::string> target = deps_.backend->ReadLink(req.obj);
  r.status = NfsStatusFromStatus(target.status());
  // Both arms start with the symlink's post_op_attr.
  SetPostOpAttr(&r.READLINK3res_u.resok.symlink_attributes, req.obj.attrs(), fsid(req));
  if (target.ok()) SetPath(&r.READLINK3res_u.resok.data, *target);
}

void Nfs3Program::Read(Nfs3Request& req, const READ3args& a, READ3res& r) {
  // One stat per READ, taken when the handle was resolved: the permission check,
  // EOF and the post-op attributes all use it (a read changes none of them but atime).
  const uint32_t count = std::min(a.count, backend::kMaxIoSize);
  char* buf = static_cast<char*>(malloc(std::max<uint32_t>(count, 1)));
  if (buf == nullptr) abort();
  absl::StatusOr<backend::ReadResult> done = deps_.backend->Read(
      req.obj, req.cred, a.offset, absl::MakeSpan(buf, count), req.ctx->must_not_block);
  if (done.ok() && done->would_block) {
    free(buf);
    req.would_block = true;
    return;
  }
  r.status = NfsStatusFromStatus(done.status());
  SetPostOpAttr(&r.READ3res_u.resok.file_attributes, req.obj.attrs(), fsid(req));
  if (!done.ok()) {
    free(buf);
    return;
  }
  READ3resok& ok = r.READ3res_u.resok;
  ok.count = done->count;
  ok.eof = done->eof ? TRUE : FALSE;
  ok.data.data_val = buf;
  ok.data.data_len = done->count;
  bytes_read_.fetch_add(done->count, std::memory_order_relaxed);
  if (done->count >= rpc::kMinBulkBytes) req.call->AddBulk(&ok.data.data_val, done->count);
}

void Nfs3Program::Write(Nfs3Request& req, const WRITE3args& a, WRITE3res& r) {
  // RFC 1813: count is the data length; never trust it beyond the data sent.
  const uint32_t count = std::min(a.count, a.data.data_len);
  absl::StatusOr<backend::WriteResult> done =
      deps_.backend->Write(req.obj, req.cred, a.offset,
                           absl::MakeConstSpan(a.data.data_val, count), StabilityOf(a.stable));
  r.status = NfsStatusFromStatus(done.status());
  SetWccOf(&r.WRITE3res_u.resok.file_wcc, req, req.obj);
  if (!done.ok()) return;
  WRITE3resok& ok = r.WRITE3res_u.resok;
  ok.count = done->count;
  bytes_written_.fetch_add(done->count, std::memory_order_relaxed);
  ok.committed = static_cast<stable_how>(done->committed);
  Uint64ToOpaque8(write_verifier_, ok.verf);
}

void Nfs3Program::Create(Nfs3Request& req, const CREATE3args& a, CREATE3res& r) {
  const std::string_view name = ArgName(req, a.where.name);
  const int32_t mode = WireEnumValue(a.how.mode);
  const backend::CreateHow how = mode == EXCLUSIVE ? backend::CreateHow::kExclusive
                                 : mode == GUARDED ? backend::CreateHow::kGuarded
                                                   : backend::CreateHow::kUnchecked;
  backend::SetAttrRequest attrs;
  uint64_t verifier = 0;
  // EXCLUSIVE: the verifier is kept in the times; the client sets the attributes with a
  // SETATTR afterwards (RFC 1813 §3.3.8).
  if (how == backend::CreateHow::kExclusive)
    verifier = Uint64FromOpaque8(a.how.createhow3_u.verf);
  else
    attrs = SetAttrRequestFromSattr(a.how.createhow3_u.obj_attributes);
  auto made = deps_.backend->Create(req.obj, name, how, attrs, verifier, req.caller());
  r.status = NfsStatusFromStatus(made.status());
  if (made.ok()) {
    SetNewObject(req, *made, &r.CREATE3res_u.resok.obj, &r.CREATE3res_u.resok.obj_attributes);
    SetWccOf(&r.CREATE3res_u.resok.dir_wcc, req, req.obj);
  } else {
    SetWccOf(&r.CREATE3res_u.resfail.dir_wcc, req, req.obj);
  }
}

void Nfs3Program::Mkdir(Nfs3Request& req, const MKDIR3args& a, MKDIR3res& r) {
  const std::string_view name = ArgName(req, a.where.name);
  auto made = deps_.backend->Mkdir(req.obj, name, SetAttrRequestFromSattr(a.attributes),
                                   req.caller());
  r.status = NfsStatusFromStatus(made.status());
  if (made.ok()) {
    SetNewObject(req, *made, &r.MKDIR3res_u.resok.obj, &r.MKDIR3res_u.resok.obj_attributes);
    SetWccOf(&r.MKDIR3res_u.resok.dir_wcc, req, req.obj);
  } else {
    SetWccOf(&r.MKDIR3res_u.resfail.dir_wcc, req, req.obj);
  }
}

void Nfs3Program::Symlink(Nfs3Request& req, const SYMLINK3args& a, SYMLINK3res& r) {
  const std::string_view name = ArgName(req, a.where.name);
  const std::string_view target = PathOf(a.symlink.symlink_data);
  auto made = deps_.backend->Symlink(req.obj, name, target,
                                     SetAttrRequestFromSattr(a.symlink.symlink_attributes),
                                     req.caller());
  r.status = NfsStatusFromStatus(made.status());
  if (made.ok()) {
    SetNewObject(req, *made, &r.SYMLINK3res_u.resok.obj,
                 &r.SYMLINK3res_u.resok.obj_attributes);
    SetWccOf(&r.SYMLINK3res_u.resok.dir_wcc, req, req.obj);
  } else {
    SetWccOf(&r.SYMLINK3res_u.resfail.dir_wcc, req, req.obj);
  }
}

void Nfs3Program::Mknod(Nfs3Request& req, const MKNOD3args& a, MKNOD3res& r) {
  const std::string_view name = ArgName(req, a.where.name);
  absl::StatusOr<backend::Object> made;
  const int32_t type = WireEnumValue(a.what.type);
  switch (type) {
    case NF3CHR:
    case NF3BLK: {
      const devicedata3& d = a.what.mknoddata3_u.device;
      made = deps_.backend->Mknod(
          req.obj, name, type == NF3CHR ? backend::FileType::kCharDevice
                                        : backend::FileType::kBlockDevice,
          d.spec.specdata1, d.spec.specdata2, SetAttrRequestFromSattr(d.dev_attributes),
          req.caller());
      break;
    }
    case NF3SOCK:
    case NF3FIFO:
      made = deps_.backend->Mknod(
          req.obj, name, type == NF3SOCK ? backend::FileType::kSocket : backend::FileType::kFifo,
          0, 0, SetAttrRequestFromSattr(a.what.mknoddata3_u.pipe_attributes), req.caller());
      break;
    default:
      made = absl::InvalidArgumentError("MKNOD of a regular file, directory or symlink");
  }
  r.status = made.ok() || type == NF3CHR || type == NF3BLK || type == NF3SOCK ||
                     type == NF3FIFO
                 ? NfsStatusFromStatus(made.status())
                 : NFS3ERR_BADTYPE;
  if (made.ok()) {
    SetNewObject(req, *made, &r.MKNOD3res_u.resok.obj, &r.MKNOD3res_u.resok.obj_attributes);
    SetWccOf(&r.MKNOD3res_u.resok.dir_wcc, req, req.obj);
  } else {
    SetWccOf(&r.MKNOD3res_u.resfail.dir_wcc, req, req.obj);
  }
}

// REMOVE and RMDIR differ only in the kind of entry they unlink; their results have the
// same shape (status + dir_wcc in both arms). The Backend drops what the removal made
// unreachable (cached files, remembered locations).
void Nfs3Program::RemoveEntry(Nfs3Request& req, const diropargs3& what,
                              backend::RemoveKind kind, nfsstat3* status, wcc_data* dir_wcc) {
  auto gone = deps_.backend->Remove(req.obj, ArgName(req, what.name), kind, req.caller());
  *status = NfsStatusFromStatus(gone.status());
  SetWccOf(dir_wcc, req, req.obj);
}

void Nfs3Program::Remove(Nfs3Request& req, const REMOVE3args& a, REMOVE3res& r) {
  RemoveEntry(req, a.object, backend::RemoveKind::kNonDirectory, &r.status,
              &r.REMOVE3res_u.resok.dir_wcc);
}

void Nfs3Program::Rmdir(Nfs3Request& req, const RMDIR3args& a, RMDIR3res& r) {
  RemoveEntry(req, a.object, backend::RemoveKind::kDirectory, &r.status,
              &r.RMDIR3res_u.resok.dir_wcc);
}

void Nfs3Program::Rename(Nfs3Request& req, const RENAME3args& a, RENAME3res& r) {
  const backend::Object& to = *req.second;  // Dispatch resolved a.to.dir
  auto replaced = deps_.backend->Rename(req.obj, ArgName(req, a.from.name), to,
                                        ArgName(req, a.to.name), req.caller());
  r.status = NfsStatusFromStatus(replaced.status());
  // resok and resfail are the same two wcc_data.
  SetWccOf(&r.RENAME3res_u.resok.fromdir_wcc, req, req.obj);
  SetWccOf(&r.RENAME3res_u.resok.todir_wcc, req, to);
}

void Nfs3Program::Link(Nfs3Request& req, const LINK3args& a, LINK3res& r) {
  const backend::Object& dir = *req.second;  // Dispatch resolved a.link.dir
  absl::Status s = deps_.backend->Link(req.obj, dir, ArgName(req, a.link.name), req.caller());
  r.status = NfsStatusFromStatus(s);
  // resok and resfail have the same layout.
  SetPostOpAttr(&r.LINK3res_u.resok.file_attributes, deps_.backend->GetAttr(req.obj),
                fsid(req));
  SetWccOf(&r.LINK3res_u.resok.linkdir_wcc, req, dir);
}

namespace {

// What READDIR and READDIRPLUS share: the cookie verifier check, the walk from
// `cookie` that stops before the reply would exceed `max_reply` bytes, the linking
// of the entries into the result list, and the result — resok, or resfail with the
// list freed. `make(entry, used, count, &size)` sets the reply size of one entry and
// allocates its XDR node, or returns nullptr when `used + size` would exceed `count`
// (the walk stops there). Entry/ResOk: entry3/READDIR3resok or the READDIRPLUS3 ones.
template <class Entry, class ResOk, class Make>
nfsstat3 ReaddirReply(backend::Backend& backend, const Nfs3Request& req, uint64_t cookie,
                      const cookieverf3 cookieverf, uint32_t max_reply, bool plus,
                      xdrproc_t free_resok, ResOk& ok, post_op_attr* resfail_attrs,
                      uint64_t fsid, Make&& make) {
  const backend::Attrs& dir = req.obj.attrs();
  // The directory's verifier is constant for its lifetime (rules.h DirCookieVerifier):
  // a client verifier that differs is from another directory (or a bug).
  const uint64_t verf = backend::DirCookieVerifier(dir.fileid);
  const uint64_t client_verf = Uint64FromOpaque8(cookieverf);
  absl::Status s;
  if (cookie != 0 && client_verf != 0 && client_verf != verf)
    s = ErrnoToStatus(EBADR, "cookie verifier");
  const uint32_t count = std::min(max_reply, backend::kMaxIoSize);
  uint32_t used = kXdrReaddirReplyOverhead;
  Entry** tail = &ok.reply.entries;
  bool any = false;
  absl::StatusOr<backend::ReadDirResult> done = backend::ReadDirResult{};
  if (!s.ok()) {
    done = s;
  } else {
    done = backend.ReadDir(req.obj, cookie, plus, req.cred, [&](const backend::DirEntry& e) {
      uint32_t size = 0;
      Entry* n = make(e, used, count, &size);
      if (n == nullptr) return false;
      used += size;
      *tail = n;
      tail = &n->nextentry;
      any = true;
      return true;
    });
  }
  s = done.status();
  if (s.ok() && !any && !done->eof)
    s = ErrnoToStatus(ENOBUFS, plus ? "READDIRPLUS count too small" : "READDIR count too small");
  const nfsstat3 status = NfsStatusFromStatus(s);
  if (status != NFS3_OK) {
    xdr_free(free_resok, reinterpret_cast<char*>(&ok));
    memset(&ok, 0, sizeof(ok));
    SetPostOpAttr(resfail_attrs, dir, fsid);
    return status;
  }
  SetPostOpAttr(&ok.dir_attributes, dir, fsid);
  Uint64ToOpaque8(verf, ok.cookieverf);
  ok.reply.eof = done->eof ? TRUE : FALSE;
  return status;
}

}  // namespace

void Nfs3Program::Readdir(Nfs3Request& req, const READDIR3args& a, READDIR3res& r) {
  r.status = ReaddirReply<entry3>(
      *deps_.backend, req, a.cookie, a.cookieverf, a.count, /*plus=*/false,
      reinterpret_cast<xdrproc_t>(xdr_READDIR3resok), r.READDIR3res_u.resok,
      &r.READDIR3res_u.resfail.dir_attributes, fsid(req),
      [&](const backend::DirEntry& e, uint32_t used, uint32_t count,
          uint32_t* size) -> entry3* {
        *size = XdrEntry3Size(e.name.size());
        if (used + *size > count) return nullptr;
        entry3* n = NewNode<entry3>();
        n->fileid = e.fileid;
        SetName(&n->name, e.name);
        n->cookie = e.cookie;
        return n;
      });
}

void Nfs3Program::Readdirplus(Nfs3Request& req, const READDIRPLUS3args& a, READDIRPLUS3res& r) {
  // dircount is ignored, as knfsd does: maxcount bounds the reply.
  r.status = ReaddirReply<entryplus3>(
      *deps_.backend, req, a.cookie, a.cookieverf, a.maxcount, /*plus=*/true,
      reinterpret_cast<xdrproc_t>(xdr_READDIRPLUS3resok), r.READDIRPLUS3res_u.resok,
      &r.READDIRPLUS3res_u.resfail.dir_attributes, fsid(req),
      [&](const backend::DirEntry& e, uint32_t used, uint32_t count,
          uint32_t* size) -> entryplus3* {
        absl::StatusOr<std::string> wire = absl::NotFoundError("no handle");
        if (e.handle != nullptr) wire = deps_.key->Encode(req.exp->id(), *e.handle);
        *size = XdrEntryPlus3Size(e.name.size(), wire.ok() ? wire->size() : 0);
        if (used + *size > count) return nullptr;
        entryplus3* n = NewNode<entryplus3>();
        n->fileid = e.fileid;
        SetName(&n->name, e.name);
        n->cookie = e.cookie;
        SetPostOpAttr(&n->name_attributes, e.attrs, fsid(req));
        if (wire.ok()) {
          n->name_handle.handle_follows = TRUE;
          SetFh(&n->name_handle.post_op_fh3_u.handle, *wire);
        }
        return n;
      });
}

void Nfs3Program::Fsstat(Nfs3Request& req, const FSSTAT3args&, FSSTAT3res& r) {
  auto fs = deps_.backend->StatFs(req.obj);
  r.status = NfsStatusFromStatus(fs.status());
  SetPostOpAttr(&r.FSSTAT3res_u.resok.obj_attributes, req.obj.attrs(), fsid(req));
  if (!fs.ok()) return;
  FSSTAT3resok& ok = r.FSSTAT3res_u.resok;
  ok.tbytes = fs->tbytes;
  ok.fbytes = fs->fbytes;
  ok.abytes = fs->abytes;
  ok.tfiles = fs->tfiles;
  ok.ffiles = fs->ffiles;
  ok.afiles = fs->afiles;
  ok.invarsec = 0;
}

void Nfs3Program::Fsinfo(Nfs3Request& req, const FSINFO3args&, FSINFO3res& r) {
  r.status = NFS3_OK;
  FSINFO3resok& ok = r.FSINFO3res_u.resok;
  SetPostOpAttr(&ok.obj_attributes, req.obj.attrs(), fsid(req));
  ok.rtmax = ok.rtpref = backend::kMaxIoSize;
  ok.wtmax = ok.wtpref = backend::kMaxIoSize;
  ok.rtmult = ok.wtmult = 4096;
  ok.dtpref = backend::kPrefDirSize;
  ok.maxfilesize = 0x7fffffffffffffffull;
  ok.time_delta = nfstime3{0, 1};
  ok.properties = FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME;
}

void Nfs3Program::Pathconf(Nfs3Request& req, const PATHCONF3args&, PATHCONF3res& r) {
  auto pc = deps_.backend->GetPathConf(req.obj);
  r.status = NfsStatusFromStatus(pc.status());
  SetPostOpAttr(&r.PATHCONF3res_u.resok.obj_attributes, req.obj.attrs(), fsid(req));
  if (!pc.ok()) return;
  PATHCONF3resok& ok = r.PATHCONF3res_u.resok;
  ok.linkmax = pc->linkmax;
  ok.name_max = pc->name_max;
  ok.no_trunc = TRUE;
  ok.chown_restricted = TRUE;
  ok.case_insensitive = FALSE;
  ok.case_preserving = TRUE;
}

void Nfs3Program::Commit(Nfs3Request& req, const COMMIT3args&, COMMIT3res& r) {
  absl::Status s = deps_.backend->Commit(req.obj, req.cred);
  r.status = NfsStatusFromStatus(s);
  SetWccOf(&r.COMMIT3res_u.resok.file_wcc, req, req.obj);
  if (s.ok()) Uint64ToOpaque8(write_verifier_, r.COMMIT3res_u.resok.verf);
}

}  // namespace localnfs::server
