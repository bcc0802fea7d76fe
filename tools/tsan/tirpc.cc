// tools/tsan/tirpc.cc — the tsan build's one expected race inside libtirpc, declared to
// ThreadSanitizer by address. Built only with -Db_sanitize=thread (tools/tsan/meson.build),
// into the same library as absl_mutex.cc.
//
// libtirpc's xdr_opaque() decodes the 1-3 padding bytes after an opaque or string of
// unaligned length into a function-static scratch array ("crud") and never reads it
// back. Every thread decoding a file handle, file name or auth body writes there, so
// concurrent decoders (the server's workers, the client library's callers) race on
// those bytes. The race is harmless — the bytes are discarded — but it is in
// uninstrumented library code we cannot change, with no symbol to name in a
// suppression (the array is static, the writer a static function reached by a tail
// call): a module-wide "race:libtirpc" would also hide races on OUR buffers while
// libtirpc copies them. So instead, at load time, we ask xdr_opaque itself where the
// array is — through an XDR stream whose getbytes records the destination of the
// padding read — and mark exactly those bytes as a benign race.
//
// Thread-safety: runs once, from a constructor, before main() and any thread.
#include <rpc/xdr.h>

#include <type_traits>

extern "C" void AnnotateBenignRaceSized(const char* file, int line, const volatile void* mem,
                                        long size, const char* description);

namespace {

// struct xdr_ops is nested in XDR for C++.
using XdrOps = std::remove_const_t<std::remove_pointer_t<decltype(XDR::x_ops)>>;

const XdrOps* memory_ops = nullptr;  // xdrmem's ops, to delegate to
char* padding_destination = nullptr;  // where the last getbytes call wrote
char opaque_byte[1];

bool_t RecordingGetBytes(XDR* xdrs, char* addr, u_int len) {
  padding_destination = addr;
  return memory_ops->x_getbytes(xdrs, addr, len);
}

__attribute__((constructor)) void MarkXdrOpaquePaddingBenign() {
  char wire[4] = {'x', 0, 0, 0};  // one data byte + three padding bytes
  XDR xdrs;
  xdrmem_create(&xdrs, wire, sizeof wire, XDR_DECODE);
  memory_ops = xdrs.x_ops;
  XdrOps recording = *xdrs.x_ops;
  recording.x_getbytes = RecordingGetBytes;
  xdrs.x_ops = &recording;
  // Reads the byte into opaque_byte, then the padding into libtirpc's scratch array.
  if (xdr_opaque(&xdrs, opaque_byte, 1) && padding_destination != nullptr &&
      padding_destination != opaque_byte) {
    AnnotateBenignRaceSized(__FILE__, __LINE__, padding_destination, 3,
                            "libtirpc xdr_opaque: discarded padding bytes");
  }
  xdrs.x_ops = memory_ops;
  xdr_destroy(&xdrs);
}

}  // namespace
