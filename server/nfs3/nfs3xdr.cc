// server/nfs3/nfs3xdr.cc — see nfs3xdr.h.
#include "server/nfs3/nfs3xdr.h"

#include <stdlib.h>
#include <string.h>

namespace localnfs::server {
namespace {

nfstime3 Time3(const timespec& ts) {
  return nfstime3{static_cast<uint32>(ts.tv_sec), static_cast<uint32>(ts.tv_nsec)};
}

timespec TimespecFrom(const nfstime3& t) {
  return timespec{static_cast<time_t>(t.seconds), static_cast<long>(t.nseconds)};
}

}  // namespace

fattr3 FattrFromAttrs(const backend::Attrs& a, uint64_t fsid) {
  fattr3 f{};
  // backend::FileType's values are ftype3's.
  f.type = static_cast<ftype3>(a.type == backend::FileType::kNone ? backend::FileType::kRegular
                                                                  : a.type);
  f.mode = a.mode & 07777;
  f.nlink = a.nlink;
  f.uid = a.uid;
  f.gid = a.gid;
  f.size = a.size;
  f.used = a.used;
  f.rdev.specdata1 = a.rdev_major;
  f.rdev.specdata2 = a.rdev_minor;
  f.fsid = fsid;
  f.fileid = a.fileid;
  f.atime = Time3(a.atime);
  f.mtime = Time3(a.mtime);
  f.ctime = Time3(a.ctime);
  return f;
}

void SetPostOpAttr(post_op_attr* out, const backend::Attrs& a, uint64_t fsid) {
  if (!a.has(backend::kAttrBasic)) {
    out->attributes_follow = FALSE;
    return;
  }
  out->attributes_follow = TRUE;
  out->post_op_attr_u.attributes = FattrFromAttrs(a, fsid);
}

void SetPostOpAttr(post_op_attr* out, const absl::StatusOr<backend::Attrs>& a, uint64_t fsid) {
  if (a.ok())
    SetPostOpAttr(out, *a, fsid);
  else
    out->attributes_follow = FALSE;
}

void SetPreOpAttr(pre_op_attr* out, const backend::Attrs& a) {
  if (!a.has(backend::kAttrSize | backend::kAttrMtime | backend::kAttrCtime)) {
    out->attributes_follow = FALSE;
    return;
  }
  out->attributes_follow = TRUE;
  out->pre_op_attr_u.attributes.size = a.size;
  out->pre_op_attr_u.attributes.mtime = Time3(a.mtime);
  out->pre_op_attr_u.attributes.ctime = Time3(a.ctime);
}

void SetWcc(wcc_data* out, const backend::Attrs& before,
            const absl::StatusOr<backend::Attrs>& after, uint64_t fsid) {
  SetPreOpAttr(&out->before, before);
  SetPostOpAttr(&out->after, after, fsid);
}

std::string_view FhBytes(const nfs_fh3& fh) {
  return std::string_view(fh.data.data_val, fh.data.data_len);
}

void SetFh(nfs_fh3* out, std::string_view wire) {
  out->data.data_val = static_cast<char*>(malloc(wire.size() ? wire.size() : 1));
  if (out->data.data_val == nullptr) abort();
  memcpy(out->data.data_val, wire.data(), wire.size());
  out->data.data_len = static_cast<u_int>(wire.size());
}

char* MallocString(std::string_view s) {
  char* p = static_cast<char*>(malloc(s.size() + 1));
  if (p == nullptr) abort();
  memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

char* MallocBytes(std::string_view s) {
  // One byte at least: malloc(0) may return nullptr, which is no failure.
  char* p = static_cast<char*>(malloc(s.empty() ? 1 : s.size()));
  if (p == nullptr) abort();
  memcpy(p, s.data(), s.size());
  return p;
}

std::string_view NameOf(const filename3& name) {
  return name.filename3_val ? std::string_view(name.filename3_val, name.filename3_len)
                            : std::string_view();
}

std::string_view PathOf(const nfspath3& path) {
  return path.nfspath3_val ? std::string_view(path.nfspath3_val, path.nfspath3_len)
                           : std::string_view();
}

void SetName(filename3* out, std::string_view s) {
  out->filename3_val = MallocBytes(s);
  out->filename3_len = static_cast<u_int>(s.size());
}

void SetPath(nfspath3* out, std::string_view s) {
  out->nfspath3_val = MallocBytes(s);
  out->nfspath3_len = static_cast<u_int>(s.size());
}

backend::SetAttrRequest SetAttrRequestFromSattr(const sattr3& s) {
  backend::SetAttrRequest r;
  if (s.mode.set_it) r.mode = s.mode.set_mode3_u.mode;
  if (s.uid.set_it) r.uid = s.uid.set_uid3_u.uid;
  if (s.gid.set_it) r.gid = s.gid.set_gid3_u.gid;
  if (s.size.set_it) r.size = s.size.set_size3_u.size;
  // time_how is read as the integer the wire carried (an unknown value decodes through
  // the union's default arm; as a C++ enum it would be undefined behaviour) and, as in
  // knfsd, means DONT_CHANGE.
  auto time = [](int32_t how, const nfstime3& t) {
    backend::SetTime st;
    if (how == SET_TO_SERVER_TIME) st.how = backend::TimeHow::kServerTime;
    if (how == SET_TO_CLIENT_TIME) {
      st.how = backend::TimeHow::kClientTime;
      st.time = TimespecFrom(t);
    }
    return st;
  };
  r.atime = time(WireEnumValue(s.atime.set_it), s.atime.set_atime_u.atime);
  r.mtime = time(WireEnumValue(s.mtime.set_it), s.mtime.set_mtime_u.mtime);
  return r;
}

uint64_t Uint64FromOpaque8(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | static_cast<uint8_t>(p[i]);
  return v;
}

void Uint64ToOpaque8(uint64_t v, char* p) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<char>(v & 0xff);
}

}  // namespace localnfs::server
