// rpc/reply.cc — see reply.h.
#include "rpc/reply.h"

#include <arpa/inet.h>
#include <string.h>

#include <algorithm>

#include "common/unaligned.h"

namespace localnfs::rpc {
namespace {

bool_t GetLong(XDR*, long*) { return FALSE; }
bool_t GetBytes(XDR*, char*, u_int) { return FALSE; }
bool_t SetPos(XDR*, u_int) { return FALSE; }
void Destroy(XDR*) {}
bool_t Control(XDR*, int, void*) { return FALSE; }

// The first allocation of a reply: most results (attributes, a handle, a status) fit.
constexpr size_t kInitialBytes = 256;

}  // namespace

ReplyEncoder::ReplyEncoder(std::string* out)
    : out_(out), start_(out->size()), used_(out->size()) {
  static const XDR::xdr_ops kOps = {
      .x_getlong = &GetLong,
      .x_putlong = &PutLong,
      .x_getbytes = &GetBytes,
      .x_putbytes = &PutBytes,
      .x_getpostn = &GetPos,
      .x_setpostn = &SetPos,
      .x_inline = &Inline,
      .x_destroy = &Destroy,
      .x_control = &Control,
  };
  xdr_.x_op = XDR_ENCODE;
  xdr_.x_ops = &kOps;
  xdr_.x_private = this;
}

void ReplyEncoder::Finish() { out_->resize(used_); }

char* ReplyEncoder::Reserve(size_t n) {
  if (out_->size() - used_ < n) {
    out_->resize(std::max({used_ + n, 2 * out_->size(), start_ + kInitialBytes}));
  }
  char* at = out_->data() + used_;
  used_ += n;
  return at;
}

bool_t ReplyEncoder::PutLong(XDR* x, const long* v) {
  StoreUnaligned<uint32_t>(Of(x)->Reserve(4), htonl(static_cast<uint32_t>(*v)));
  return TRUE;
}

bool_t ReplyEncoder::PutBytes(XDR* x, const char* p, u_int n) {
  if (n > 0) memcpy(Of(x)->Reserve(n), p, n);
  return TRUE;
}

u_int ReplyEncoder::GetPos(XDR* x) { return static_cast<u_int>(Of(x)->encoded()); }

int32_t* ReplyEncoder::Inline(XDR* x, u_int n) {
  ReplyEncoder* e = Of(x);
  // The caller stores 32-bit words: only at a word boundary (else it falls back to
  // one call per field).
  if ((e->used_ & 3) != 0) return nullptr;
  return reinterpret_cast<int32_t*>(e->Reserve(n));
}

}  // namespace localnfs::rpc
