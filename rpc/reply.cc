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

size_t ReplyRecord::largest_bulk() const {
  size_t n = 0;
  for (const Bulk& b : bulk_) n = std::max(n, b.size);
  return n;
}

int ReplyRecord::Iovecs(size_t offset, iovec* iov, int max) const {
  int n = 0;
  size_t pos = 0;  // in bytes_
  auto add = [&](const char* data, size_t len) {
    if (n == max || len == 0) return;
    if (offset >= len) {
      offset -= len;
      return;
    }
    iov[n++] = iovec{const_cast<char*>(data + offset), len - offset};
    offset = 0;
  };
  for (const Bulk& b : bulk_) {
    add(bytes_.data() + pos, b.at - pos);
    add(b.data, b.size);
    pos = b.at;
  }
  add(bytes_.data() + pos, bytes_.size() - pos);
  return n;
}

std::string ReplyRecord::Flatten() const {
  std::string out;
  out.reserve(size());
  size_t pos = 0;
  for (const Bulk& b : bulk_) {
    out.append(bytes_, pos, b.at - pos);
    out.append(b.data, b.size);
    pos = b.at;
  }
  out.append(bytes_, pos, std::string::npos);
  return out;
}

ReplyEncoder::ReplyEncoder(ReplyRecord* out, absl::Span<const BulkRef> bulk)
    : out_(out), bytes_(out->bytes_), refs_(bulk), start_(bytes_.size()), used_(start_) {
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

void ReplyEncoder::Finish() { bytes_.resize(used_); }

void ReplyEncoder::TakeBulk() {
  for (ReplyRecord::Bulk& b : out_->bulk_) {
    if (b.owned != nullptr) continue;
    char** field = refs_[b.ref].field;
    b.owned.reset(*field);
    *field = nullptr;
  }
}

void ReplyEncoder::DropBulk() {
  auto& bulk = out_->bulk_;
  auto gone = std::remove_if(bulk.begin(), bulk.end(), [&](const ReplyRecord::Bulk& b) {
    if (b.owned != nullptr) return false;
    out_->bulk_bytes_ -= b.size;
    return true;
  });
  bulk.erase(gone, bulk.end());
}

char* ReplyEncoder::Reserve(size_t n) {
  if (bytes_.size() - used_ < n) {
    bytes_.resize(std::max({used_ + n, 2 * bytes_.size(), start_ + kInitialBytes}));
  }
  char* at = bytes_.data() + used_;
  used_ += n;
  return at;
}

bool_t ReplyEncoder::PutLong(XDR* x, const long* v) {
  StoreUnaligned<uint32_t>(Of(x)->Reserve(4), htonl(static_cast<uint32_t>(*v)));
  return TRUE;
}

bool_t ReplyEncoder::PutBytes(XDR* x, const char* p, u_int n) {
  ReplyEncoder* e = Of(x);
  for (size_t i = 0; i < e->refs_.size(); ++i) {
    const BulkRef& r = e->refs_[i];
    if (n == 0 || p != *r.field || n != r.size) continue;
    // A registered buffer: a segment instead of a copy — once (were it encoded twice,
    // the second time is copied: it has one owner).
    if (std::any_of(e->out_->bulk_.begin(), e->out_->bulk_.end(),
                    [i](const ReplyRecord::Bulk& b) { return b.ref == i; })) {
      break;
    }
    ReplyRecord::Bulk b;
    b.at = e->used_;
    b.data = p;
    b.size = n;
    b.ref = i;
    e->out_->bulk_.push_back(std::move(b));
    e->out_->bulk_bytes_ += n;
    return TRUE;
  }
  if (n > 0) memcpy(e->Reserve(n), p, n);
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
