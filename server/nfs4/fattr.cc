// server/nfs4/fattr.cc — see fattr.h.
#include "server/nfs4/fattr.h"

#include "server/nfs4/compound.h"  // XdrCopy

#include <stdlib.h>
#include <string.h>

#include <limits>
#include <optional>

namespace localnfs::server::nfs4 {
namespace {

// XDR appenders (big endian, 4-byte alignment).
void PutU32(std::string* out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out->append(b, 4);
}
void PutU64(std::string* out, uint64_t v) {
  PutU32(out, static_cast<uint32_t>(v >> 32));
  PutU32(out, static_cast<uint32_t>(v));
}
void PutBool(std::string* out, bool v) { PutU32(out, v ? 1 : 0); }
void PutOpaque(std::string* out, std::string_view bytes) {
  PutU32(out, static_cast<uint32_t>(bytes.size()));
  out->append(bytes);
  out->append((4 - bytes.size() % 4) % 4, '\0');
}
void PutTime(std::string* out, const timespec& t) {
  PutU64(out, static_cast<uint64_t>(static_cast<int64_t>(t.tv_sec)));
  PutU32(out, static_cast<uint32_t>(t.tv_nsec));
}
// Trailing zero words are not sent (knfsd and the Linux client do the same).
uint32_t BitmapWords(const AttrBitmap& b) {
  uint32_t n = 3;
  while (n > 0 && b.words[n - 1] == 0) --n;
  return n;
}
void PutBitmap(std::string* out, const AttrBitmap& b) {
  const uint32_t n = BitmapWords(b);
  PutU32(out, n);
  for (uint32_t i = 0; i < n; ++i) PutU32(out, b.words[i]);
}

constexpr uint32_t kSupported[] = {
    FATTR4_SUPPORTED_ATTRS, FATTR4_TYPE, FATTR4_FH_EXPIRE_TYPE, FATTR4_CHANGE, FATTR4_SIZE,
    FATTR4_LINK_SUPPORT, FATTR4_SYMLINK_SUPPORT, FATTR4_NAMED_ATTR, FATTR4_FSID,
    FATTR4_UNIQUE_HANDLES, FATTR4_LEASE_TIME, FATTR4_RDATTR_ERROR, FATTR4_ACLSUPPORT,
    FATTR4_CANSETTIME, FATTR4_CASE_INSENSITIVE, FATTR4_CASE_PRESERVING,
    FATTR4_CHOWN_RESTRICTED, FATTR4_FILEHANDLE, FATTR4_FILEID, FATTR4_FILES_AVAIL,
    FATTR4_FILES_FREE, FATTR4_FILES_TOTAL, FATTR4_HOMOGENEOUS, FATTR4_MAXFILESIZE,
    FATTR4_MAXLINK, FATTR4_MAXNAME, FATTR4_MAXREAD, FATTR4_MAXWRITE, FATTR4_MODE,
    FATTR4_NO_TRUNC, FATTR4_NUMLINKS, FATTR4_OWNER, FATTR4_OWNER_GROUP, FATTR4_RAWDEV,
    FATTR4_SPACE_AVAIL, FATTR4_SPACE_FREE, FATTR4_SPACE_TOTAL, FATTR4_SPACE_USED,
    FATTR4_TIME_ACCESS, FATTR4_TIME_DELTA, FATTR4_TIME_METADATA, FATTR4_TIME_MODIFY,
    FATTR4_MOUNTED_ON_FILEID, FATTR4_FS_LAYOUT_TYPES, FATTR4_SUPPATTR_EXCLCREAT,
    FATTR4_CLONE_BLKSIZE, FATTR4_CHANGE_ATTR_TYPE, FATTR4_XATTR_SUPPORT,
    // Write-only (AsksWriteOnly): SETATTR takes them, nothing answers them.
    FATTR4_TIME_ACCESS_SET, FATTR4_TIME_MODIFY_SET,
};

// What an EXCLUSIVE4_1 create may set with its attributes (those SETATTR will take).
AttrBitmap ExclusiveCreateAttrs() {
  AttrBitmap b;
  for (uint32_t bit : {FATTR4_SIZE, FATTR4_MODE, FATTR4_OWNER, FATTR4_OWNER_GROUP}) b.set(bit);
  return b;
}

// knfsd: sb->s_maxbytes, which is at most this.
constexpr uint64_t kMaxFileSize = std::numeric_limits<int64_t>::max();
// knfsd answers 255 for maxlink whatever the file system (nfsd4_encode_fattr4_maxlink).
constexpr uint32_t kMaxLink = 255;

// Appends the value of attribute `bit` of `src`; false when this object has none.
bool PutAttr(const FattrSource& src, uint32_t bit, std::string* out) {
  const backend::Attrs& a = *src.attrs;
  auto need = [&a](uint32_t mask) { return a.has(mask); };
  const backend::FsStat* fs = src.fsstat;
  switch (bit) {
    case FATTR4_SUPPORTED_ATTRS: PutBitmap(out, SupportedAttrs()); return true;
    case FATTR4_TYPE:
      if (!need(backend::kAttrType) || a.type == backend::FileType::kNone) return false;
      PutU32(out, static_cast<uint32_t>(a.type));  // nfs_ftype4 shares the values
      return true;
    case FATTR4_FH_EXPIRE_TYPE: PutU32(out, FH4_PERSISTENT); return true;
    case FATTR4_CHANGE:
      if (!need(backend::kAttrChange)) return false;
      PutU64(out, a.change);
      return true;
    case FATTR4_SIZE:
      if (!need(backend::kAttrSize)) return false;
      PutU64(out, a.size);
      return true;
    case FATTR4_LINK_SUPPORT: PutBool(out, true); return true;
    case FATTR4_SYMLINK_SUPPORT: PutBool(out, true); return true;
    case FATTR4_NAMED_ATTR: PutBool(out, false); return true;
    case FATTR4_FSID:
      PutU64(out, src.fsid_major);
      PutU64(out, src.fsid_minor);
      return true;
    case FATTR4_UNIQUE_HANDLES: PutBool(out, true); return true;
    case FATTR4_LEASE_TIME: PutU32(out, src.lease_time); return true;
    case FATTR4_RDATTR_ERROR: PutU32(out, src.rdattr_error); return true;
    case FATTR4_ACLSUPPORT: PutU32(out, 0); return true;
    case FATTR4_CANSETTIME: PutBool(out, true); return true;
    case FATTR4_CASE_INSENSITIVE: PutBool(out, false); return true;
    case FATTR4_CASE_PRESERVING: PutBool(out, true); return true;
    case FATTR4_CHOWN_RESTRICTED: PutBool(out, true); return true;
    case FATTR4_FILEHANDLE:
      if (src.fh.empty()) return false;
      PutOpaque(out, src.fh);
      return true;
    case FATTR4_FILEID:
      if (!need(backend::kAttrFileid)) return false;
      PutU64(out, a.fileid);
      return true;
    case FATTR4_FILES_AVAIL:
      if (fs == nullptr) return false;
      PutU64(out, fs->afiles);
      return true;
    case FATTR4_FILES_FREE:
      if (fs == nullptr) return false;
      PutU64(out, fs->ffiles);
      return true;
    case FATTR4_FILES_TOTAL:
      if (fs == nullptr) return false;
      PutU64(out, fs->tfiles);
      return true;
    case FATTR4_HOMOGENEOUS: PutBool(out, true); return true;
    case FATTR4_MAXFILESIZE: PutU64(out, kMaxFileSize); return true;
    case FATTR4_MAXLINK: PutU32(out, kMaxLink); return true;
    case FATTR4_MAXNAME: PutU32(out, static_cast<uint32_t>(backend::kMaxNameLen)); return true;
    case FATTR4_MAXREAD: PutU64(out, backend::kMaxIoSize); return true;
    case FATTR4_MAXWRITE: PutU64(out, backend::kMaxIoSize); return true;
    case FATTR4_MODE:
      if (!need(backend::kAttrMode)) return false;
      PutU32(out, a.mode & 07777);
      return true;
    case FATTR4_NO_TRUNC: PutBool(out, true); return true;
    case FATTR4_NUMLINKS:
      if (!need(backend::kAttrNlink)) return false;
      PutU32(out, a.nlink);
      return true;
    case FATTR4_OWNER:
      if (!need(backend::kAttrUid)) return false;
      PutOpaque(out, std::to_string(a.uid));
      return true;
    case FATTR4_OWNER_GROUP:
      if (!need(backend::kAttrGid)) return false;
      PutOpaque(out, std::to_string(a.gid));
      return true;
    case FATTR4_RAWDEV:
      if (!need(backend::kAttrRdev)) return false;
      PutU32(out, a.rdev_major);
      PutU32(out, a.rdev_minor);
      return true;
    case FATTR4_SPACE_AVAIL:
      if (fs == nullptr) return false;
      PutU64(out, fs->abytes);
      return true;
    case FATTR4_SPACE_FREE:
      if (fs == nullptr) return false;
      PutU64(out, fs->fbytes);
      return true;
    case FATTR4_SPACE_TOTAL:
      if (fs == nullptr) return false;
      PutU64(out, fs->tbytes);
      return true;
    case FATTR4_SPACE_USED:
      if (!need(backend::kAttrUsed)) return false;
      PutU64(out, a.used);
      return true;
    case FATTR4_TIME_ACCESS:
      if (!need(backend::kAttrAtime)) return false;
      PutTime(out, a.atime);
      return true;
    case FATTR4_TIME_DELTA: PutTime(out, timespec{0, 1}); return true;
    case FATTR4_TIME_METADATA:
      if (!need(backend::kAttrCtime)) return false;
      PutTime(out, a.ctime);
      return true;
    case FATTR4_TIME_MODIFY:
      if (!need(backend::kAttrMtime)) return false;
      PutTime(out, a.mtime);
      return true;
    case FATTR4_MOUNTED_ON_FILEID:
      PutU64(out, src.mounted_on_fileid);
      return true;
    case FATTR4_FS_LAYOUT_TYPES: PutU32(out, 0); return true;  // an empty array
    case FATTR4_SUPPATTR_EXCLCREAT: PutBitmap(out, ExclusiveCreateAttrs()); return true;
    case FATTR4_CLONE_BLKSIZE: PutU32(out, 0); return true;
    case FATTR4_CHANGE_ATTR_TYPE: PutU32(out, NFS4_CHANGE_TYPE_IS_TIME_METADATA); return true;
    case FATTR4_XATTR_SUPPORT: PutBool(out, false); return true;
    default: return false;
  }
}

}  // namespace

AttrBitmap BitmapFromWire(const bitmap4& wire, bool* beyond) {
  AttrBitmap b;
  if (beyond != nullptr) *beyond = false;
  for (u_int i = 0; i < wire.bitmap4_len; ++i) {
    if (i < b.words.size()) {
      b.words[i] = wire.bitmap4_val[i];
    } else if (wire.bitmap4_val[i] != 0 && beyond != nullptr) {
      *beyond = true;
    }
  }
  return b;
}

AttrBitmap SupportedAttrs() {
  static const AttrBitmap supported = [] {
    AttrBitmap b;
    for (uint32_t bit : kSupported) b.set(bit);
    return b;
  }();
  return supported;
}

bool AsksWriteOnly(const AttrBitmap& requested) {
  return requested.has(FATTR4_TIME_ACCESS_SET) || requested.has(FATTR4_TIME_MODIFY_SET);
}

bool NeedsFsStat(const AttrBitmap& requested) {
  for (uint32_t bit : {FATTR4_FILES_AVAIL, FATTR4_FILES_FREE, FATTR4_FILES_TOTAL,
                       FATTR4_SPACE_AVAIL, FATTR4_SPACE_FREE, FATTR4_SPACE_TOTAL}) {
    if (requested.has(bit)) return true;
  }
  return false;
}

void EncodeAttrs(const FattrSource& src, const AttrBitmap& requested, AttrBitmap* mask,
                 std::string* vals) {
  *mask = AttrBitmap{};
  vals->clear();
  const AttrBitmap want = requested & SupportedAttrs();
  for (uint32_t bit = 0; bit < 96; ++bit) {
    if (want.has(bit) && PutAttr(src, bit, vals)) mask->set(bit);
  }
}

void EncodeAttrError(nfsstat4 error, uint64_t fileid, const AttrBitmap& requested,
                     AttrBitmap* mask, std::string* vals) {
  *mask = AttrBitmap{};
  vals->clear();
  if (requested.has(FATTR4_RDATTR_ERROR)) {
    mask->set(FATTR4_RDATTR_ERROR);
    PutU32(vals, error);
  }
  if (requested.has(FATTR4_FILEID)) {
    mask->set(FATTR4_FILEID);
    PutU64(vals, fileid);
  }
  if (requested.has(FATTR4_MOUNTED_ON_FILEID)) {
    mask->set(FATTR4_MOUNTED_ON_FILEID);
    PutU64(vals, fileid);
  }
}

size_t BitmapSize(const AttrBitmap& mask) { return 4 + 4 * BitmapWords(mask); }

size_t Fattr4Size(const AttrBitmap& mask, size_t vals_len) {
  return BitmapSize(mask) + 4 + (vals_len + 3) / 4 * 4;
}

void SetBitmap4(bitmap4* out, const AttrBitmap& mask) {
  const uint32_t n = BitmapWords(mask);
  // Freed with the result (xdr_free: mem_free is free); never malloc(0).
  out->bitmap4_val = static_cast<uint32_t*>(malloc(4 * (n == 0 ? 1 : n)));
  if (out->bitmap4_val == nullptr) abort();
  for (uint32_t i = 0; i < n; ++i) out->bitmap4_val[i] = mask.words[i];
  out->bitmap4_len = n;
}

void SetFattr4(fattr4* out, const AttrBitmap& mask, std::string_view vals) {
  SetBitmap4(&out->attrmask, mask);
  out->attr_vals.attrlist4_val = XdrCopy(vals);
  out->attr_vals.attrlist4_len = static_cast<u_int>(vals.size());
}

nfsstat4 CompareAttrs(const FattrSource& src, const fattr4& given) {
  bool beyond = false;
  const AttrBitmap want = BitmapFromWire(given.attrmask, &beyond);
  if (beyond || !((want & SupportedAttrs()) == want)) return NFS4ERR_ATTRNOTSUPP;
  if (want.has(FATTR4_RDATTR_ERROR) || AsksWriteOnly(want)) return NFS4ERR_INVAL;
  AttrBitmap mask;
  std::string vals;
  EncodeAttrs(src, want, &mask, &vals);
  if (!(mask == want)) return NFS4ERR_INVAL;  // an attribute this object lacks
  const std::string_view theirs(given.attr_vals.attrlist4_val, given.attr_vals.attrlist4_len);
  return theirs == vals ? NFS4ERR_SAME : NFS4ERR_NOT_SAME;
}

namespace {

// Reads XDR values from an attrlist4; a read past its end marks it bad.
class AttrReader {
 public:
  explicit AttrReader(std::string_view v) : v_(v) {}
  uint32_t U32() {
    if (at_ + 4 > v_.size()) {
      bad_ = true;
      return 0;
    }
    uint32_t x = 0;
    for (int i = 0; i < 4; ++i) x = (x << 8) | static_cast<uint8_t>(v_[at_++]);
    return x;
  }
  uint64_t U64() {
    const uint64_t hi = U32();
    return (hi << 32) | U32();
  }
  std::string_view Opaque(size_t max) {
    const size_t n = U32();
    const size_t padded = (n + 3) / 4 * 4;
    if (bad_ || n > max || at_ + padded > v_.size()) {
      bad_ = true;
      return {};
    }
    std::string_view s = v_.substr(at_, n);
    at_ += padded;
    return s;
  }
  bool done() const { return !bad_ && at_ == v_.size(); }
  bool bad() const { return bad_; }

 private:
  std::string_view v_;
  size_t at_ = 0;
  bool bad_ = false;
};

// A numeric owner or group ("1000"); nullopt for anything else.
std::optional<uint32_t> NumericId(std::string_view s) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > std::numeric_limits<uint32_t>::max()) return std::nullopt;
  return static_cast<uint32_t>(v);
}

// settime4: how, and the client's time when it gives one.
nfsstat4 ReadSetTime(AttrReader& r, backend::SetTime* out) {
  const uint32_t how = r.U32();
  if (how == SET_TO_SERVER_TIME4) {
    out->how = backend::TimeHow::kServerTime;
    return NFS4_OK;
  }
  if (how != SET_TO_CLIENT_TIME4) return NFS4ERR_BADXDR;
  out->how = backend::TimeHow::kClientTime;
  const int64_t sec = static_cast<int64_t>(r.U64());
  const uint32_t nsec = r.U32();
  if (nsec >= 1000000000u) return NFS4ERR_INVAL;
  out->time.tv_sec = static_cast<time_t>(sec);
  out->time.tv_nsec = static_cast<long>(nsec);
  return NFS4_OK;
}

}  // namespace

nfsstat4 DecodeSettableAttrs(const fattr4& given, backend::SetAttrRequest* req,
                             AttrBitmap* set) {
  *req = backend::SetAttrRequest{};
  *set = AttrBitmap{};
  bool beyond = false;
  const AttrBitmap want = BitmapFromWire(given.attrmask, &beyond);
  if (beyond) return NFS4ERR_ATTRNOTSUPP;
  AttrBitmap settable;
  for (uint32_t bit : {FATTR4_SIZE, FATTR4_MODE, FATTR4_OWNER, FATTR4_OWNER_GROUP,
                       FATTR4_TIME_ACCESS_SET, FATTR4_TIME_MODIFY_SET})
    settable.set(bit);
  AttrReader r(std::string_view(given.attr_vals.attrlist4_val, given.attr_vals.attrlist4_len));
  for (uint32_t bit = 0; bit < 96; ++bit) {
    if (!want.has(bit)) continue;
    if (!settable.has(bit)) return SupportedAttrs().has(bit) ? NFS4ERR_INVAL : NFS4ERR_ATTRNOTSUPP;
    nfsstat4 s = NFS4_OK;
    switch (bit) {
      case FATTR4_SIZE: req->size = r.U64(); break;
      case FATTR4_MODE: req->mode = static_cast<mode_t>(r.U32() & 07777); break;
      case FATTR4_OWNER:
      case FATTR4_OWNER_GROUP: {
        std::string_view who = r.Opaque(NFS4_OPAQUE_LIMIT);
        if (r.bad()) break;
        // No principal at all is no owner to map (knfsd: NFS4ERR_INVAL; pynfs SATT16/17).
        if (who.empty()) return NFS4ERR_INVAL;
        std::optional<uint32_t> id = NumericId(who);
        if (!id) return NFS4ERR_BADOWNER;
        (bit == FATTR4_OWNER ? req->uid : req->gid) = *id;
        break;
      }
      case FATTR4_TIME_ACCESS_SET: s = ReadSetTime(r, &req->atime); break;
      case FATTR4_TIME_MODIFY_SET: s = ReadSetTime(r, &req->mtime); break;
    }
    if (r.bad()) return NFS4ERR_BADXDR;
    if (s != NFS4_OK) return s;
    set->set(bit);
  }
  return r.done() ? NFS4_OK : NFS4ERR_BADXDR;
}

}  // namespace localnfs::server::nfs4
