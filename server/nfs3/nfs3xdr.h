// server/nfs3/nfs3xdr.h — conversions between backend values and the rpcgen NFSv3 types
// (knfsd's nfs3xdr.c role; the wire encoding itself is rpcgen's).
//
// Owns: nothing. Every pointer these helpers store in a result (handle bytes,
// strings, directory entries, READ data) is malloc'd, because the rpc dispatcher
// releases results with xdr_free(), which free()s them.
// Thread-safety: stateless.
#pragma once

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <bit>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/status/statusor.h"
#include "rpc/nfs3.h"
#include "rpc/wire_enum.h"
#include "server/backend/types.h"

namespace localnfs::server {

// XDR sizes of the pieces of a READDIR/READDIRPLUS reply (RFC 1813 §3.3.16-17).
inline constexpr uint32_t kXdrFattr3Size = 84;
inline constexpr uint32_t kXdrPostOpAttrSize = 4 + kXdrFattr3Size;
inline constexpr uint32_t XdrPad(uint32_t n) { return (n + 3) & ~3u; }
// status + dir_attributes + cookieverf + "no more entries" + eof.
inline constexpr uint32_t kXdrReaddirReplyOverhead = 4 + kXdrPostOpAttrSize + 8 + 4 + 4;
// value_follows + fileid + name + cookie.
inline constexpr uint32_t XdrEntry3Size(size_t name_len) {
  return 4 + 8 + 4 + XdrPad(static_cast<uint32_t>(name_len)) + 8;
}
// entry3 + name_attributes + name_handle.
inline constexpr uint32_t XdrEntryPlus3Size(size_t name_len, size_t fh_len) {
  return XdrEntry3Size(name_len) + kXdrPostOpAttrSize + 4 + 4 +
         XdrPad(static_cast<uint32_t>(fh_len));
}

// Enum fields of the arguments are read as the integer the wire carried.
using rpc::WireEnumValue;

// Attributes as the backend gave them (backend/types.h). fsid: the export's id, the
// file system the client sees (not the device, Attrs::fsid). An Attrs without every
// kAttrBasic field is "no attributes" for post_op_attr and pre_op_attr.
fattr3 FattrFromAttrs(const backend::Attrs& a, uint64_t fsid);
void SetPostOpAttr(post_op_attr* out, const backend::Attrs& a, uint64_t fsid);
void SetPostOpAttr(post_op_attr* out, const absl::StatusOr<backend::Attrs>& a, uint64_t fsid);
void SetPreOpAttr(pre_op_attr* out, const backend::Attrs& a);
// wcc_data: `before` as the request resolved the object, `after` its attributes now.
void SetWcc(wcc_data* out, const backend::Attrs& before,
            const absl::StatusOr<backend::Attrs>& after, uint64_t fsid);

std::string_view FhBytes(const nfs_fh3& fh);
// Copies `wire` into `out` (malloc'd).
void SetFh(nfs_fh3* out, std::string_view wire);
// A zeroed node for rpcgen linked lists (entry3, mountbody, …), freed by xdr_free.
template <typename T>
T* NewNode() {
  T* p = static_cast<T*>(calloc(1, sizeof(T)));
  if (p == nullptr) abort();
  return p;
}
// A malloc'd NUL-terminated copy (for string<> results: mntname3).
char* MallocString(std::string_view s);
// A malloc'd copy of the bytes (for opaque<> results: set the length beside it).
char* MallocBytes(std::string_view s);
// A decoded name or symlink target with its wire length: opaque<> in nfs3.x, so an
// embedded NUL stays part of it (and the name is refused) instead of ending it.
std::string_view NameOf(const filename3& name);
std::string_view PathOf(const nfspath3& path);
// Stores a malloc'd copy of `s` (for results).
void SetName(filename3* out, std::string_view s);
void SetPath(nfspath3* out, std::string_view s);

backend::SetAttrRequest SetAttrRequestFromSattr(const sattr3& s);
uint64_t Uint64FromOpaque8(const char* p);
void Uint64ToOpaque8(uint64_t v, char* p);

}  // namespace localnfs::server
