// rpc/wire_enum.h — reading an enum field of an rpcgen-decoded structure as the integer
// the wire carried.
//
// xdr_enum accepts any 32-bit value, and loading one outside the C++ enum's range as
// that enum is undefined behaviour (an NFSv3 MKNOD type or WRITE stable_how of 183, an
// NFSv4 CREATE type or SEEK content of 7): handlers read such fields through this, and
// compare the integer. The bytes are copied, never loaded as the enum — UBSan's
// -fsanitize=enum checks such a load, std::bit_cast's included (its fuzz targets found
// both).
//
// Thread-safety: a pure function.
#pragma once

#include <stdint.h>
#include <string.h>

#include <type_traits>

namespace localnfs::rpc {

template <typename Enum>
int32_t WireEnumValue(const Enum& field) {
  static_assert(std::is_enum_v<Enum> && sizeof(Enum) == sizeof(int32_t));
  int32_t v;
  memcpy(&v, &field, sizeof(v));
  return v;
}

}  // namespace localnfs::rpc
