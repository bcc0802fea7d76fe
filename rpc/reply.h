// rpc/reply.h — a reply as the transports send it, and its encoder.
//
// ReplyRecord (the kernel's xdr_buf: head, pages, tail) is a reply record made of
// segments: the encoded bytes (a TCP record starts with its 4-byte record mark), and
// bulk buffers — a READ's data, wherever it sits in the result — spliced in between
// them at recorded offsets, sent from their own memory as iovecs of their own instead
// of being copied into the bytes. It owns the bytes and the bulk buffers (malloc'd,
// freed with it).
//
// ReplyEncoder is an XDR_ENCODE stream (libtirpc's XDR with our own x_ops) that
// appends to a ReplyRecord's bytes, growing them as the result needs (one pass, no
// xdr_sizeof). For a buffer registered as bulk (BulkRef: the result's field that
// holds the malloc'd pointer, and its length), the x_putbytes that xdr_opaque /
// xdr_bytes make for exactly that pointer and length records a reference segment
// instead of copying; the XDR padding that follows goes into the bytes. Only once the
// whole reply has encoded does TakeBulk() move those buffers into the record and clear
// their fields in the result, so that the result's xdr_free frees them not (no double
// free) — and a reply that fails to encode leaves them with the result.
//
// Thread-safety: a ReplyRecord is a value owned by one thread at a time; an encoder is
// a stack object of one thread.
#pragma once

#include <rpc/rpc.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/uio.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"

namespace localnfs::rpc {

class ReplyRecord {
 public:
  ReplyRecord() = default;
  explicit ReplyRecord(std::string bytes) : bytes_(std::move(bytes)) {}
  ReplyRecord(ReplyRecord&&) = default;
  ReplyRecord& operator=(ReplyRecord&&) = default;

  // The encoded bytes, without the bulk segments.
  std::string& bytes() { return bytes_; }
  const std::string& bytes() const { return bytes_; }
  // Bytes on the wire: the encoded bytes and every bulk segment.
  size_t size() const { return bytes_.size() + bulk_bytes_; }
  size_t bulk_segments() const { return bulk_.size(); }
  // The largest bulk segment (0 without any): what decides a zero-copy send.
  size_t largest_bulk() const;
  // The iovecs of the record's bytes from `offset` on, in wire order, at most `max`
  // of them (empty segments skipped); returns how many were filled.
  int Iovecs(size_t offset, iovec* iov, int max) const;
  // The record as one string (tests, and replies kept whole).
  std::string Flatten() const;

 private:
  friend class ReplyEncoder;
  struct Free {
    void operator()(char* p) const { free(p); }
  };
  // A bulk buffer that goes on the wire before bytes_[at].
  struct Bulk {
    size_t at = 0;
    const char* data = nullptr;  // owned through `owned` once taken (TakeBulk)
    size_t size = 0;
    size_t ref = 0;  // which BulkRef of the encoder it came from
    std::unique_ptr<char, Free> owned;
  };

  std::string bytes_;
  absl::InlinedVector<Bulk, 1> bulk_;
  size_t bulk_bytes_ = 0;
};

// A malloc'd buffer of a result that may go out by reference: the result's field that
// holds the pointer (READ3resok's data.data_val) and the buffer's length.
struct BulkRef {
  char** field = nullptr;
  size_t size = 0;
};

class ReplyEncoder {
 public:
  // Encodes after the bytes `out` already holds (a record mark, say). `bulk`: the
  // buffers that may become segments (empty: everything is copied).
  explicit ReplyEncoder(ReplyRecord* out, absl::Span<const BulkRef> bulk = {});
  ~ReplyEncoder() { Finish(); }
  ReplyEncoder(const ReplyEncoder&) = delete;
  ReplyEncoder& operator=(const ReplyEncoder&) = delete;

  XDR* xdr() { return &xdr_; }
  // Bytes encoded so far, bulk segments included (what a record mark counts).
  size_t encoded() const { return used_ - start_ + out_->bulk_bytes_; }
  // Trims the record's bytes to what was encoded (also done by the destructor).
  void Finish();
  // After a successful encode: the buffers that became segments now belong to the
  // record, and their fields in the result are cleared (pointer null).
  void TakeBulk();
  // After a failed encode: forgets the segments (the result keeps its buffers).
  void DropBulk();

 private:
  static bool_t PutLong(XDR* x, const long* v);
  static bool_t PutBytes(XDR* x, const char* p, u_int n);
  static u_int GetPos(XDR* x);
  static int32_t* Inline(XDR* x, u_int n);
  static ReplyEncoder* Of(XDR* x) { return static_cast<ReplyEncoder*>(x->x_private); }
  // Room for n more bytes at used_; returns where they go.
  char* Reserve(size_t n);

  XDR xdr_{};
  ReplyRecord* const out_;
  std::string& bytes_;
  const absl::Span<const BulkRef> refs_;
  const size_t start_;
  size_t used_;
};

}  // namespace localnfs::rpc
