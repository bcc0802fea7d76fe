// rpc/reply.h — the encoder of replies: an XDR_ENCODE stream (libtirpc's XDR with our
// own x_ops) that appends to a string which grows as the result needs, so that a
// reply is encoded in one pass, without sizing it first (xdr_sizeof) and without a
// fixed-size buffer.
//
// Owns: nothing; it writes into the caller's string.
//
// Thread-safety: one encoder per thread at a time (it is a stack object).
#pragma once

#include <rpc/rpc.h>
#include <stddef.h>

#include <string>

namespace localnfs::rpc {

class ReplyEncoder {
 public:
  // Encodes after the bytes *out already holds (a record mark, say).
  explicit ReplyEncoder(std::string* out);
  ~ReplyEncoder() { Finish(); }
  ReplyEncoder(const ReplyEncoder&) = delete;
  ReplyEncoder& operator=(const ReplyEncoder&) = delete;

  XDR* xdr() { return &xdr_; }
  // Bytes encoded so far.
  size_t encoded() const { return used_ - start_; }
  // Trims *out to what was encoded (also done by the destructor).
  void Finish();

 private:
  static bool_t PutLong(XDR* x, const long* v);
  static bool_t PutBytes(XDR* x, const char* p, u_int n);
  static u_int GetPos(XDR* x);
  static int32_t* Inline(XDR* x, u_int n);
  static ReplyEncoder* Of(XDR* x) { return static_cast<ReplyEncoder*>(x->x_private); }
  // Room for n more bytes at used_; returns where they go.
  char* Reserve(size_t n);

  XDR xdr_{};
  std::string* const out_;
  const size_t start_;
  size_t used_;
};

}  // namespace localnfs::rpc
