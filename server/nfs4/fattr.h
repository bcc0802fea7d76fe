// server/nfs4/fattr.h — NFSv4 attributes on the wire (RFC 8881 §5): bitmap4 and the
// attrlist4 of a fattr4, encoded from an object's backend::Attrs and what the namespace
// knows about it (fsid, handle, file system statistics), and compared for VERIFY and
// NVERIFY.
//
// Owns: the set of attributes this server supports (SupportedAttrs(); the REQUIRED ones
// and the RECOMMENDED ones the Linux client asks for: fs/nfs/nfs4proc.c
// nfs4_fattr_bitmap, nfs4_fsinfo_bitmap, nfs4_pathconf_bitmap, nfs4_statfs_bitmap,
// nfs4_fs_locations_bitmap), their values' XDR (in bit order, as RFC 8881 §3.3.13 lays
// out attrlist4), and the constants knfsd answers for attributes that describe the
// server rather than the object (nfs4xdr.c nfsd4_encode_fattr4: fh_expire_type
// FH4_PERSISTENT, link and symlink support, no named attributes, unique handles, no ACLs,
// case preserving and sensitive, chown restricted, no_trunc, time_delta 1 ns,
// clone_blksize 0, no xattrs, no layout types).
//
// Requested attributes that are not supported are left out of the result's bitmap (RFC
// 8881 §18.7.3); so is an attribute whose value the object's Attrs lack (their `valid`
// mask). owner and owner_group are the numeric uid and gid as decimal strings, as knfsd
// answers AUTH_SYS clients by default (nfs4_disable_idmapping). The change attribute is
// Attrs::change (derived from ctime: types.h ChangeFromCtime), so change_attr_type is
// NFS4_CHANGE_TYPE_IS_TIME_METADATA.
//
// Thread-safety: functions of their arguments only.
#pragma once

#include <stdint.h>

#include <array>
#include <string>
#include <string_view>

#include "rpc/nfs4.h"
#include "server/backend/types.h"

namespace localnfs::server::nfs4 {

// A bitmap4 of up to three words (every attribute defined is below 96).
struct AttrBitmap {
  std::array<uint32_t, 3> words{};

  bool has(uint32_t bit) const { return bit < 96 && (words[bit / 32] >> (bit % 32)) & 1u; }
  void set(uint32_t bit) {
    if (bit < 96) words[bit / 32] |= 1u << (bit % 32);
  }
  bool empty() const { return words[0] == 0 && words[1] == 0 && words[2] == 0; }
  AttrBitmap operator&(const AttrBitmap& o) const {
    AttrBitmap r;
    for (size_t i = 0; i < words.size(); ++i) r.words[i] = words[i] & o.words[i];
    return r;
  }
  friend bool operator==(const AttrBitmap&, const AttrBitmap&) = default;
};

// The bitmap as sent. `beyond` (may be null) is set when a bit past the three words is.
AttrBitmap BitmapFromWire(const bitmap4& wire, bool* beyond = nullptr);

// Every attribute GETATTR and READDIR answer.
AttrBitmap SupportedAttrs();

// NFSv4's lease time until sessions bring --lease-time (RFC 8881 §5.8.1.11).
inline constexpr uint32_t kDefaultLeaseTime = 90;

// What the attributes of one object are made from.
struct FattrSource {
  const backend::Attrs* attrs = nullptr;  // never null
  uint64_t fsid_major = 0;
  uint64_t fsid_minor = 0;
  std::string_view fh;                          // the object's wire handle
  const backend::FsStat* fsstat = nullptr;      // null: files_*, space_avail/free/total omitted
  uint64_t mounted_on_fileid = 0;
  uint32_t lease_time = kDefaultLeaseTime;
  nfsstat4 rdattr_error = NFS4_OK;
};

// The requested attributes that need FattrSource::fsstat.
bool NeedsFsStat(const AttrBitmap& requested);

// The attributes of `src` that `requested` asks for and this server supports: the bitmap
// of those encoded (*mask) and their values in bit order (*vals, XDR).
void EncodeAttrs(const FattrSource& src, const AttrBitmap& requested, AttrBitmap* mask,
                 std::string* vals);
// Only rdattr_error (when requested) and mounted_on_fileid/fileid (when requested): the
// attributes of a READDIR entry whose object could not be reached (RFC 8881 §18.23.4).
void EncodeAttrError(nfsstat4 error, uint64_t fileid, const AttrBitmap& requested,
                     AttrBitmap* mask, std::string* vals);

// Fills `out` (malloc'd, freed with the result by xdr_free) with `mask`, trailing zero
// words dropped (an op's attrset, hints, a fattr4's attrmask).
void SetBitmap4(bitmap4* out, const AttrBitmap& mask);
// Fills `out` (malloc'd, freed with the result by xdr_free) from a mask and values.
void SetFattr4(fattr4* out, const AttrBitmap& mask, std::string_view vals);
// The XDR size of that fattr4.
size_t Fattr4Size(const AttrBitmap& mask, size_t vals_len);
// The XDR size of a bitmap4 of `mask` (trailing zero words dropped).
size_t BitmapSize(const AttrBitmap& mask);

// VERIFY / NVERIFY (RFC 8881 §18.15, §18.31; knfsd's _nfsd4_verify): compares the
// attributes `given` with those of `src` encoded for the same bitmap. NFS4ERR_SAME when
// they are equal, NFS4ERR_NOT_SAME when not; NFS4ERR_ATTRNOTSUPP for an attribute this
// server does not support; NFS4ERR_INVAL for rdattr_error (meaningless here) or an
// attribute the object lacks.
nfsstat4 CompareAttrs(const FattrSource& src, const fattr4& given);

// SETATTR and the attributes of OPEN/CREATE (RFC 8881 §18.30): the settable
// attributes of `given` — size, mode, owner, owner_group (numeric strings, as knfsd
// without idmapping: an empty one is NFS4ERR_INVAL, anything else not numeric
// NFS4ERR_BADOWNER), time_access_set and time_modify_set — into *req, and the bitmap
// of those set into *set (SETATTR's result). NFS4ERR_ATTRNOTSUPP for an attribute this
// server does not support, NFS4ERR_INVAL for one that cannot be set (RFC 8881
// §18.30.3) or a time's nseconds of a second or more, NFS4ERR_BADXDR when the values
// do not match the bitmap.
// Used by SETATTR and CREATE (nfs4proc_ns.cc) and OPEN's creates.
nfsstat4 DecodeSettableAttrs(const fattr4& given, backend::SetAttrRequest* req,
                             AttrBitmap* set);

// Whether `requested` names a write-only attribute (time_access_set, time_modify_set:
// supported, since SETATTR takes them — the Linux client sets no times without them in
// supported_attrs — but they have no value to read). GETATTR, READDIR, VERIFY and
// NVERIFY of one answer NFS4ERR_INVAL, as knfsd's (NFSD_WRITEONLY_ATTRS_WORD1).
bool AsksWriteOnly(const AttrBitmap& requested);

}  // namespace localnfs::server::nfs4
