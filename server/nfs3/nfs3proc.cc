// server/nfs3/nfs3proc.cc — NFSv3 procedure semantics (RFC 1813 §3.3). Each handler gets
// a request whose export, object and credentials Dispatch() already established;
// it validates, calls one vfs function and fills the result.
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>

#include "common/status.h"
#include "server/policy/creds.h"
#include "server/nfs3/nfs3_program.h"
#include "server/nfs3/nfs3xdr.h"
#include "server/nfs3/nfs_status.h"

namespace localnfs::server {

// nfs3.x bounds READ/WRITE data on the wire; FSINFO must not advertise more.
static_assert(vfs::kMaxIoSize <= NFS3_MAXDATA);

namespace {

// WRITE's stable_how; a value beyond FILE_SYNC is taken as FILE_SYNC (as knfsd treats
// any non-zero value as a stable write): the client gets the most durable answer.
vfs::Stability StabilityOf(const stable_how& wire) {
  const int32_t v = WireEnumValue(wire);
  return v == UNSTABLE    ? vfs::Stability::kUnstable
         : v == DATA_SYNC ? vfs::Stability::kDataSync
                          : vfs::Stability::kFileSync;
}

}  // namespace

void Nfs3Program::Getattr(Nfs3Request& req, const GETATTR3args&, GETATTR3res& r) {
  auto st = vfs::AttrsOf(req.obj);
  r.status = NfsStatusFromStatus(st.status());
  if (st.ok()) r.GETATTR3res_u.resok.obj_attributes = FattrFromStat(*st, fsid(req));
}

void Nfs3Program::Setattr(Nfs3Request& req, const SETATTR3args& a, SETATTR3res& r) {
  const std::optional<struct stat>& before = req.obj.st;
  std::optional<timespec> guard;
  if (a.guard.check)
    guard = timespec{static_cast<time_t>(a.guard.sattrguard3_u.obj_ctime.seconds),
                     static_cast<long>(a.guard.sattrguard3_u.obj_ctime.nseconds)};
  absl::Status s = vfs::SetAttr(*deps_.file_cache, req.obj,
                                SetAttrRequestFromSattr(a.new_attributes), guard, req.cred);
  r.status = NfsStatusFromStatus(s);
  if (s.ok()) CommitLater(req, req.obj);
  // resok and resfail are the same wcc_data.
  SetWcc(&r.SETATTR3res_u.resok.obj_wcc, before, req.obj.fd.get(), fsid(req));
}

void Nfs3Program::Lookup(Nfs3Request& req, const LOOKUP3args& a, LOOKUP3res& r) {
  const std::string_view name = ArgName(req, a.what.name);
  absl::StatusOr<vfs::LookupResult> found = vfs::Lookup(req.obj, name, req.cred);
  absl::StatusOr<std::string> wire =
      found.ok() ? MakeHandle(req, *found, req.obj.fd.get(), name) : found.status();
  r.status = NfsStatusFromStatus(wire.status());
  // LOOKUP changes nothing: the directory's attributes from the start of the request.
  if (r.status != NFS3_OK) {
    SetPostOpAttr(&r.LOOKUP3res_u.resfail.dir_attributes, req.obj, fsid(req));
    return;
  }
  LOOKUP3resok& ok = r.LOOKUP3res_u.resok;
  SetFh(&ok.object, *wire);
  SetPostOpAttr(&ok.obj_attributes, found->st, fsid(req));
  SetPostOpAttr(&ok.dir_attributes, req.obj, fsid(req));
}

void Nfs3Program::Access(Nfs3Request& req, const ACCESS3args& a, ACCESS3res& r) {
  auto st = vfs::AttrsOf(req.obj);
  r.status = NfsStatusFromStatus(st.status());
  if (!st.ok()) return;
  auto may = [&](int want) { return CheckPermission(*st, req.cred, want, false).ok(); };
  const bool dir = S_ISDIR(st->st_mode);
  uint32_t allowed = 0;
  if (may(kMayRead)) allowed |= ACCESS3_READ;
  if (may(kMayExec)) allowed |= dir ? ACCESS3_LOOKUP : ACCESS3_EXECUTE;
  if (!req.options.read_only && may(kMayWrite))
    allowed |= ACCESS3_MODIFY | ACCESS3_EXTEND | (dir ? ACCESS3_DELETE : 0);
  ACCESS3resok& ok = r.ACCESS3res_u.resok;
  SetPostOpAttr(&ok.obj_attributes, *st, fsid(req));
  ok.access = a.access & allowed;
}

void Nfs3Program::Readlink(Nfs3Request& req, const READLINK3args&, READLINK3res& r) {
  absl::StatusOr<std::string> target = vfs::ReadLink(req.obj);
  r.status = NfsStatusFromStatus(target.status());
  // Both arms start with the symlink's post_op_attr.
  SetPostOpAttr(&r.READLINK3res_u.resok.symlink_attributes, req.obj, fsid(req));
  if (target.ok()) SetPath(&r.READLINK3res_u.resok.data, *target);
}

void Nfs3Program::Read(Nfs3Request& req, const READ3args& a, READ3res& r) {
  // One fstat per READ, taken when the handle was resolved: the permission check,
  // EOF and the post-op attributes all use it (a read changes none of them but atime).
  absl::StatusOr<struct stat> st = vfs::AttrsOf(req.obj);
  const uint32_t count = std::min(a.count, vfs::kMaxIoSize);
  char* buf = static_cast<char*>(malloc(std::max<uint32_t>(count, 1)));
  if (buf == nullptr) abort();
  absl::StatusOr<vfs::ReadResult> done =
      st.ok() ? vfs::Read(*deps_.file_cache, req.obj, *st, req.cred, a.offset,
                          absl::MakeSpan(buf, count), req.ctx->must_not_block)
              : absl::StatusOr<vfs::ReadResult>(st.status());
  if (done.ok() && done->would_block) {
    free(buf);
    req.would_block = true;
    return;
  }
  r.status = NfsStatusFromStatus(done.status());
  if (st.ok()) SetPostOpAttr(&r.READ3res_u.resok.file_attributes, *st, fsid(req));
  if (!done.ok()) {
    free(buf);
    return;
  }
  READ3resok& ok = r.READ3res_u.resok;
  ok.count = done->count;
  ok.eof = done->eof ? TRUE : FALSE;
  ok.data.data_val = buf;
  ok.data.data_len = done->count;
  if (done->count >= kMinReadPayload) req.call->AddBulk(&ok.data.data_val, done->count);
}

void Nfs3Program::Write(Nfs3Request& req, const WRITE3args& a, WRITE3res& r) {
  const std::optional<struct stat>& before = req.obj.st;
  absl::StatusOr<vfs::WriteResult> done = ErrnoToStatus(EIO, "no attributes");
  // RFC 1813: count is the data length; never trust it beyond the data sent.
  const uint32_t count = std::min(a.count, a.data.data_len);
  if (before)
    done = vfs::Write(*deps_.file_cache, req.obj, *before, req.cred, a.offset,
                      absl::MakeConstSpan(a.data.data_val, count), StabilityOf(a.stable));
  r.status = NfsStatusFromStatus(done.status());
  SetWcc(&r.WRITE3res_u.resok.file_wcc, before, req.obj.fd.get(), fsid(req));
  if (!done.ok()) return;
  WRITE3resok& ok = r.WRITE3res_u.resok;
  ok.count = done->count;
  ok.committed = static_cast<stable_how>(done->committed);
  Uint64ToOpaque8(write_verifier_, ok.verf);
}

void Nfs3Program::Create(Nfs3Request& req, const CREATE3args& a, CREATE3res& r) {
  const std::string_view name = ArgName(req, a.where.name);
  const std::optional<struct stat>& before = req.obj.st;
  vfs::CreateHow how = a.how.mode == EXCLUSIVE ? vfs::CreateHow::kExclusive
                       : a.how.mode == GUARDED ? vfs::CreateHow::kGuarded
                                               : vfs::CreateHow::kUnchecked;
  vfs::SetAttrRequest attrs;
  uint64_t verifier = 0;
  if (how == vfs::CreateHow::kExclusive)
    verifier = Uint64FromOpaque8(a.how.createhow3_u.verf);
  else
    attrs = SetAttrRequestFromSattr(a.how.createhow3_u.obj_attributes);
  auto made = vfs::Create(req.obj, name, how, attrs, verifier, req.cred);
  r.status = NfsStatusFromStatus(made.status());
  if (made.ok()) {
    CommitCreated(req, *made);
    SetNewObject(req, name, *made, &r.CREATE3res_u.resok.obj,
                 &r.CREATE3res_u.resok.obj_attributes);
    SetWcc(&r.CREATE3res_u.resok.dir_wcc, before, req.obj.fd.get(), fsid(req));
  } else {
    SetWcc(&r.CREATE3res_u.resfail.dir_wcc, before, req.obj.fd.get(), fsid(req));
  }
}

void Nfs3Program::Mkdir(Nfs3Request& req, const MKDIR3args& a, MKDIR3res& r) {
  const std::string_view name = ArgName(req, a.where.name);
  const std::optional<struct stat>& before = req.obj.st;
  auto made = vfs::Mkdir(req.obj, name, SetAttrRequestFromSattr(a.attributes), req.cred);
  r.status = NfsStatusFromStatus(made.status());
  if (made.ok()) {
    CommitCreated(req, *made);
    SetNewObject(req, name, *made, &r.MKDIR3res_u.resok.obj,
                 &r.MKDIR3res_u.resok.obj_attributes);
    SetWcc(&r.MKDIR3res_u.resok.dir_wcc, before, req.obj.fd.get(), fsid(req));
  } else {
    SetWcc(&r.MKDIR3res_u.resfail.dir_wcc, before, req.obj.fd.get(), fsid(req));
  }
}

void Nfs3Program::Symlink(Nfs3Request& req, const SYMLINK3args& a, SYMLINK3res& r) {
  const std::string_view name = ArgName(req, a.where.name);
  const std::string_view target = PathOf(a.symlink.symlink_data);
  const std::optional<struct stat>& before = req.obj.st;
  auto made = vfs::Symlink(req.obj, name, target,
                           SetAttrRequestFromSattr(a.symlink.symlink_attributes), req.cred);
  r.status = NfsStatusFromStatus(made.status());
  if (made.ok()) {
    CommitCreated(req, *made);
    SetNewObject(req, name, *made, &r.SYMLINK3res_u.resok.obj,
                 &r.SYMLINK3res_u.resok.obj_attributes);
    SetWcc(&r.SYMLINK3res_u.resok.dir_wcc, before, req.obj.fd.get(), fsid(req));
  } else {
    SetWcc(&r.SYMLINK3res_u.resfail.dir_wcc, before, req.obj.fd.get(), fsid(req));
  }
}

void Nfs3Program::Mknod(Nfs3Request& req, const MKNOD3args& a, MKNOD3res& r) {
  const std::string_view name = ArgName(req, a.where.name);
  const std::optional<struct stat>& before = req.obj.st;
  absl::StatusOr<vfs::LookupResult> made;
  const int32_t type = WireEnumValue(a.what.type);
  switch (type) {
    case NF3CHR:
    case NF3BLK: {
      const devicedata3& d = a.what.mknoddata3_u.device;
      made = vfs::Mknod(req.obj, name, type == NF3CHR ? S_IFCHR : S_IFBLK,
                        makedev(d.spec.specdata1, d.spec.specdata2),
                        SetAttrRequestFromSattr(d.dev_attributes), req.cred);
      break;
    }
    case NF3SOCK:
    case NF3FIFO:
      made = vfs::Mknod(req.obj, name, type == NF3SOCK ? S_IFSOCK : S_IFIFO, 0,
                        SetAttrRequestFromSattr(a.what.mknoddata3_u.pipe_attributes),
                        req.cred);
      break;
    default:
      made = absl::InvalidArgumentError("MKNOD of a regular file, directory or symlink");
  }
  r.status = made.ok() || type == NF3CHR || type == NF3BLK || type == NF3SOCK ||
                     type == NF3FIFO
                 ? NfsStatusFromStatus(made.status())
                 : NFS3ERR_BADTYPE;
  if (made.ok()) {
    CommitCreated(req, *made);
    SetNewObject(req, name, *made, &r.MKNOD3res_u.resok.obj,
                 &r.MKNOD3res_u.resok.obj_attributes);
    SetWcc(&r.MKNOD3res_u.resok.dir_wcc, before, req.obj.fd.get(), fsid(req));
  } else {
    SetWcc(&r.MKNOD3res_u.resfail.dir_wcc, before, req.obj.fd.get(), fsid(req));
  }
}

// REMOVE and RMDIR differ only in the kind of entry they unlink; their results have the
// same shape (status + dir_wcc in both arms).
void Nfs3Program::RemoveEntry(Nfs3Request& req, const diropargs3& what, bool directory,
                              nfsstat3* status, wcc_data* dir_wcc) {
  const std::optional<struct stat>& before = req.obj.st;
  auto gone = vfs::Remove(req.obj, ArgName(req, what.name), directory, req.cred);
  *status = NfsStatusFromStatus(gone.status());
  if (gone.ok()) Forget(req, *gone);
  if (gone.ok()) CommitLater(req, req.obj);
  SetWcc(dir_wcc, before, req.obj.fd.get(), fsid(req));
}

void Nfs3Program::Remove(Nfs3Request& req, const REMOVE3args& a, REMOVE3res& r) {
  RemoveEntry(req, a.object, /*directory=*/false, &r.status, &r.REMOVE3res_u.resok.dir_wcc);
}

void Nfs3Program::Rmdir(Nfs3Request& req, const RMDIR3args& a, RMDIR3res& r) {
  RemoveEntry(req, a.object, /*directory=*/true, &r.status, &r.RMDIR3res_u.resok.dir_wcc);
}

void Nfs3Program::Rename(Nfs3Request& req, const RENAME3args& a, RENAME3res& r) {
  const std::optional<struct stat>& from_before = req.obj.st;
  const vfs::Object& to = *req.second;  // Dispatch resolved a.to.dir
  auto replaced = vfs::Rename(req.obj, ArgName(req, a.from.name), to, ArgName(req, a.to.name),
                              req.cred);
  r.status = NfsStatusFromStatus(replaced.status());
  if (replaced.ok()) Forget(req, *replaced);
  if (replaced.ok()) {  // knfsd's order: the target directory, then the source
    CommitLater(req, to);
    CommitLater(req, req.obj);
  }
  // resok and resfail are the same two wcc_data.
  SetWcc(&r.RENAME3res_u.resok.fromdir_wcc, from_before, req.obj.fd.get(), fsid(req));
  SetWcc(&r.RENAME3res_u.resok.todir_wcc, to.st, to.fd.get(), fsid(req));
}

void Nfs3Program::Link(Nfs3Request& req, const LINK3args& a, LINK3res& r) {
  const vfs::Object& dir = *req.second;  // Dispatch resolved a.link.dir
  absl::Status s = vfs::Link(req.obj, dir, ArgName(req, a.link.name), req.cred);
  r.status = NfsStatusFromStatus(s);
  if (s.ok()) {  // knfsd's order: the directory, then the linked inode
    CommitLater(req, dir);
    CommitLater(req, req.obj);
  }
  // resok and resfail have the same layout.
  SetPostOpAttrOfFd(&r.LINK3res_u.resok.file_attributes, req.obj.fd.get(), fsid(req));
  SetWcc(&r.LINK3res_u.resok.linkdir_wcc, dir.st, dir.fd.get(), fsid(req));
}

namespace {

// What READDIR and READDIRPLUS share: the cookie verifier check, the walk from
// `cookie` that stops before the reply would exceed `max_reply` bytes, the linking
// of the entries into the result list, and the result — resok, or resfail with the
// list freed. `make(entry, used, count, &size)` sets the reply size of one entry and
// allocates its XDR node, or returns nullptr when `used + size` would exceed `count`
// (the walk stops there). Entry/ResOk: entry3/READDIR3resok or the READDIRPLUS3 ones.
template <class Entry, class ResOk, class Make>
nfsstat3 ReaddirReply(const Nfs3Request& req, uint64_t cookie, const cookieverf3 cookieverf,
                      uint32_t max_reply, bool plus, xdrproc_t free_resok, ResOk& ok,
                      post_op_attr* resfail_attrs, uint64_t fsid, Make&& make) {
  auto dst = vfs::AttrsOf(req.obj);
  const uint64_t verf = dst.ok() ? vfs::CookieVerifier(*dst) : 0;
  const uint64_t client_verf = Uint64FromOpaque8(cookieverf);
  absl::Status s = dst.status();
  if (s.ok() && cookie != 0 && client_verf != 0 && client_verf != verf)
    s = ErrnoToStatus(EBADR, "cookie verifier");
  const uint32_t count = std::min(max_reply, vfs::kMaxIoSize);
  uint32_t used = kXdrReaddirReplyOverhead;
  Entry** tail = &ok.reply.entries;
  bool any = false;
  absl::StatusOr<vfs::ReadDirResult> done = vfs::ReadDirResult{};
  if (!s.ok()) {
    done = s;
  } else {
    done = vfs::ReadDir(req.obj, cookie, plus, req.cred, [&](const vfs::DirEntry& e) {
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
    SetPostOpAttr(resfail_attrs, req.obj, fsid);
    return status;
  }
  SetPostOpAttr(&ok.dir_attributes, *dst, fsid);
  Uint64ToOpaque8(verf, ok.cookieverf);
  ok.reply.eof = done->eof ? TRUE : FALSE;
  return status;
}

}  // namespace

void Nfs3Program::Readdir(Nfs3Request& req, const READDIR3args& a, READDIR3res& r) {
  r.status = ReaddirReply<entry3>(
      req, a.cookie, a.cookieverf, a.count, /*plus=*/false,
      reinterpret_cast<xdrproc_t>(xdr_READDIR3resok), r.READDIR3res_u.resok,
      &r.READDIR3res_u.resfail.dir_attributes, fsid(req),
      [&](const vfs::DirEntry& e, uint32_t used, uint32_t count, uint32_t* size) -> entry3* {
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
  std::shared_ptr<UniqueFd> dir_share;  // unprivileged: where the children live
  if (!deps_.resolver->privileged()) dir_share = deps_.resolver->ShareFd(req.obj.fd.get());
  // dircount is ignored, as knfsd does: maxcount bounds the reply.
  r.status = ReaddirReply<entryplus3>(
      req, a.cookie, a.cookieverf, a.maxcount, /*plus=*/true,
      reinterpret_cast<xdrproc_t>(xdr_READDIRPLUS3resok), r.READDIRPLUS3res_u.resok,
      &r.READDIRPLUS3res_u.resfail.dir_attributes, fsid(req),
      [&](const vfs::DirEntry& e, uint32_t used, uint32_t count,
          uint32_t* size) -> entryplus3* {
        absl::StatusOr<std::string> wire = absl::NotFoundError("no handle");
        if (e.kh) wire = deps_.key->Encode(req.exp->id(), *e.kh);
        *size = XdrEntryPlus3Size(e.name.size(), wire.ok() ? wire->size() : 0);
        if (used + *size > count) return nullptr;
        entryplus3* n = NewNode<entryplus3>();
        n->fileid = e.fileid;
        SetName(&n->name, e.name);
        n->cookie = e.cookie;
        if (e.st) SetPostOpAttr(&n->name_attributes, *e.st, fsid(req));
        if (wire.ok()) {
          n->name_handle.handle_follows = TRUE;
          SetFh(&n->name_handle.post_op_fh3_u.handle, *wire);
          deps_.resolver->Remember(req.exp->id(), *e.kh, dir_share, e.name);
        }
        return n;
      });
}

void Nfs3Program::Fsstat(Nfs3Request& req, const FSSTAT3args&, FSSTAT3res& r) {
  auto fs = vfs::StatFs(req.obj);
  r.status = NfsStatusFromStatus(fs.status());
  SetPostOpAttr(&r.FSSTAT3res_u.resok.obj_attributes, req.obj, fsid(req));
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
  SetPostOpAttr(&ok.obj_attributes, req.obj, fsid(req));
  ok.rtmax = ok.rtpref = vfs::kMaxIoSize;
  ok.wtmax = ok.wtpref = vfs::kMaxIoSize;
  ok.rtmult = ok.wtmult = 4096;
  ok.dtpref = vfs::kPrefDirSize;
  ok.maxfilesize = 0x7fffffffffffffffull;
  ok.time_delta = nfstime3{0, 1};
  ok.properties = FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME;
}

void Nfs3Program::Pathconf(Nfs3Request& req, const PATHCONF3args&, PATHCONF3res& r) {
  auto pc = vfs::GetPathConf(req.obj);
  r.status = NfsStatusFromStatus(pc.status());
  SetPostOpAttr(&r.PATHCONF3res_u.resok.obj_attributes, req.obj, fsid(req));
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
  const std::optional<struct stat>& before = req.obj.st;
  absl::Status s = before ? vfs::Commit(*deps_.file_cache, req.obj, *before, req.cred)
                          : ErrnoToStatus(EIO, "no attributes");
  r.status = NfsStatusFromStatus(s);
  SetWcc(&r.COMMIT3res_u.resok.file_wcc, before, req.obj.fd.get(), fsid(req));
  if (s.ok()) Uint64ToOpaque8(write_verifier_, r.COMMIT3res_u.resok.verf);
}

}  // namespace localnfs::server
