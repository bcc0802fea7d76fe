// Tests of rpc/reply.h: bulk data as segments wherever it sits in a result, the
// iovecs of a record from any offset, and who frees the buffers.
#include "rpc/reply.h"

#include <rpc/rpc.h>
#include <stdlib.h>
#include <string.h>

#include <string>

#include "gtest/gtest.h"

namespace localnfs::rpc {
namespace {

// A COMPOUND-like result: bulk data, attributes after it, more bulk data, a last word.
struct Opaque {
  u_int len;
  char* data;
};
struct TwoReads {
  u_int status;
  Opaque first;
  u_int attrs[3];
  Opaque second;
  u_int last;
};
bool_t XdrOpaque(XDR* x, Opaque* o) { return xdr_bytes(x, &o->data, &o->len, ~0u); }
bool_t XdrTwoReads(XDR* x, TwoReads* r) {
  return xdr_u_int(x, &r->status) && XdrOpaque(x, &r->first) && xdr_u_int(x, &r->attrs[0]) &&
         xdr_u_int(x, &r->attrs[1]) && xdr_u_int(x, &r->attrs[2]) &&
         XdrOpaque(x, &r->second) && xdr_u_int(x, &r->last);
}
void FreeTwoReads(TwoReads* r) {
  XDR x{};
  x.x_op = XDR_FREE;
  XdrTwoReads(&x, r);
}

Opaque Filled(size_t n, char c) {
  Opaque o{static_cast<u_int>(n), static_cast<char*>(malloc(n == 0 ? 1 : n))};
  memset(o.data, c, n);
  return o;
}

TwoReads Make(size_t a, size_t b) {
  TwoReads r{};
  r.status = 7;
  r.first = Filled(a, 'a');
  r.attrs[0] = 1, r.attrs[1] = 2, r.attrs[2] = 3;
  r.second = Filled(b, 'b');
  r.last = 0xfeedf00d;
  return r;
}

// What xdrmem (libtirpc's own copying encoder) makes of `r`.
std::string Copied(TwoReads* r) {
  std::string buf(1 << 20, '\0');
  XDR x;
  xdrmem_create(&x, buf.data(), static_cast<u_int>(buf.size()), XDR_ENCODE);
  EXPECT_TRUE(XdrTwoReads(&x, r));
  buf.resize(xdr_getpos(&x));
  xdr_destroy(&x);
  return buf;
}

std::string Gather(const ReplyRecord& rec, size_t offset, int max) {
  iovec iov[16];
  const int n = rec.Iovecs(offset, iov, max);
  std::string out;
  for (int i = 0; i < n; ++i) out.append(static_cast<char*>(iov[i].iov_base), iov[i].iov_len);
  return out;
}

TEST(ReplyEncoderTest, BulkDataAnywhereInTheResultIsASegmentAndTheWireIsUnchanged) {
  for (size_t a : {1u, 5u, 4096u, 70001u}) {
    for (size_t b : {0u, 3u, 16384u}) {
      TwoReads r = Make(a, b);
      const std::string copied = Copied(&r);
      const char* first = r.first.data;
      ReplyRecord rec(std::string(4, 'M'));  // a record mark's room, kept as is
      {
        const BulkRef bulk[] = {{&r.first.data, a}, {&r.second.data, b}};
        ReplyEncoder enc(&rec, bulk);
        ASSERT_TRUE(XdrTwoReads(enc.xdr(), &r));
        EXPECT_EQ(enc.encoded(), copied.size());
        enc.Finish();
        enc.TakeBulk();
      }
      // An empty buffer is no segment (nothing to send); the others are, in order.
      ASSERT_EQ(rec.bulk_segments(), b == 0 ? 1u : 2u) << a << " " << b;
      EXPECT_EQ(rec.largest_bulk(), std::max(a, b));
      EXPECT_EQ(rec.size(), 4 + copied.size());
      EXPECT_EQ(rec.Flatten(), "MMMM" + copied);
      // Not copied: the first segment is the handler's buffer, now the record's.
      iovec iov[8];
      ASSERT_GE(rec.Iovecs(0, iov, 8), 3);
      EXPECT_EQ(iov[1].iov_base, first);
      EXPECT_EQ(r.first.data, nullptr);
      if (b > 0) EXPECT_EQ(r.second.data, nullptr);
      // From any offset, also inside a segment, and with few iovecs at a time.
      for (size_t off : {size_t{0}, size_t{3}, size_t{4 + 8}, size_t{4 + 8 + a / 2},
                         rec.size() - 5, rec.size() - 1}) {
        EXPECT_EQ(Gather(rec, off, 16), rec.Flatten().substr(off)) << a << " " << b << " " << off;
      }
      std::string pieces;
      for (size_t off = 0; off < rec.size();) {
        const std::string part = Gather(rec, off, 1);
        ASSERT_FALSE(part.empty());
        pieces += part;
        off += part.size();
      }
      EXPECT_EQ(pieces, rec.Flatten());
      FreeTwoReads(&r);  // frees only what the record did not take (ASan: no double free)
    }
  }
}

TEST(ReplyEncoderTest, WithoutRegistrationEverythingIsCopied) {
  TwoReads r = Make(5000, 10);
  ReplyRecord rec;
  {
    ReplyEncoder enc(&rec);
    ASSERT_TRUE(XdrTwoReads(enc.xdr(), &r));
  }
  EXPECT_EQ(rec.bulk_segments(), 0u);
  EXPECT_EQ(rec.bytes(), Copied(&r));
  EXPECT_NE(r.first.data, nullptr);  // still the result's
  FreeTwoReads(&r);
}

// A buffer registered but not what the encoder meets (another length, or another
// pointer) is copied, and a reply that fails to encode gives its buffers back.
TEST(ReplyEncoderTest, OnlyTheRegisteredBufferOfAFinishedReplyMovesToTheRecord) {
  TwoReads r = Make(100, 200);
  ReplyRecord rec;
  {
    const BulkRef bulk[] = {{&r.first.data, 99}, {&r.second.data, 200}};
    ReplyEncoder enc(&rec, bulk);
    ASSERT_TRUE(XdrTwoReads(enc.xdr(), &r));
    enc.DropBulk();  // as after a failed encode
  }
  EXPECT_EQ(rec.bulk_segments(), 0u);
  EXPECT_NE(r.first.data, nullptr);
  EXPECT_NE(r.second.data, nullptr);
  FreeTwoReads(&r);
}

TEST(ReplyEncoderTest, ABufferEncodedTwiceIsASegmentOnce) {
  TwoReads r = Make(64, 0);
  free(r.second.data);
  r.second = r.first;  // the same buffer twice
  ReplyRecord rec;
  {
    const BulkRef bulk[] = {{&r.first.data, 64}};
    ReplyEncoder enc(&rec, bulk);
    ASSERT_TRUE(XdrTwoReads(enc.xdr(), &r));
    enc.Finish();
    enc.TakeBulk();
  }
  EXPECT_EQ(rec.bulk_segments(), 1u);
  EXPECT_EQ(rec.Flatten().size(), 4 + 68 + 12 + 68 + 4);
  EXPECT_EQ(r.first.data, nullptr);  // the record's now; r.second still points at it
  r.second.data = nullptr;
}

}  // namespace
}  // namespace localnfs::rpc
