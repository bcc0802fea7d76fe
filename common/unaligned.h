// common/unaligned.h — a trivially copyable value read from or written to any byte
// address: fields of wire records and kernel structures inside byte buffers, where a
// cast to T* would be an unaligned, type-punned access (undefined behaviour). memcpy is
// the defined way to do it; compilers turn it into one load or store.
//
// Values are in host byte order: callers convert (ntohl, …) where the layout says so.
// Thread-safety: none needed (pure functions on the caller's memory).
#pragma once

#include <string.h>

#include <type_traits>

namespace localnfs {

template <typename T>
T LoadUnaligned(const void* p) {
  static_assert(std::is_trivially_copyable_v<T>);
  T v;
  memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
void StoreUnaligned(void* p, std::type_identity_t<T> v) {
  static_assert(std::is_trivially_copyable_v<T>);
  memcpy(p, &v, sizeof v);
}

}  // namespace localnfs
