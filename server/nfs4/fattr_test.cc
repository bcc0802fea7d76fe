// server/nfs4/fattr_test.cc — fattr4 on the wire (fattr.h): the encoding of an object's
// attributes in bit order, what is left out, and the settable attributes decoded.
#include "server/nfs4/fattr.h"

#include <string>

#include "gtest/gtest.h"

// A namespace of its own: unity builds put several test files in one unit.
namespace localnfs::server::nfs4::fattr_test {
namespace {

std::string U32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (24 - 8 * i));
  return s;
}
std::string U64(uint64_t v) { return U32(static_cast<uint32_t>(v >> 32)) + U32(static_cast<uint32_t>(v)); }
std::string Str(const std::string& s) {
  return U32(static_cast<uint32_t>(s.size())) + s + std::string((4 - s.size() % 4) % 4, '\0');
}

AttrBitmap Bits(std::initializer_list<uint32_t> bits) {
  AttrBitmap b;
  for (uint32_t bit : bits) b.set(bit);
  return b;
}

// A fattr4 viewing `mask` and `vals` (which outlive it).
struct Given {
  Given(const AttrBitmap& mask, const std::string& v) : words(mask.words), vals(v) {
    f.attrmask.bitmap4_len = 3;
    f.attrmask.bitmap4_val = words.data();
    f.attr_vals.attrlist4_len = static_cast<u_int>(vals.size());
    f.attr_vals.attrlist4_val = vals.data();
  }
  std::array<uint32_t, 3> words;
  std::string vals;
  fattr4 f{};
};

backend::Attrs FileAttrs() {
  backend::Attrs a;
  a.valid = backend::kAttrBasic;
  a.type = backend::FileType::kRegular;
  a.mode = 0100644 & 07777;
  a.nlink = 1;
  a.uid = 1000;
  a.gid = 100;
  a.size = 12345;
  a.fileid = 77;
  a.change = 99;
  a.mtime = timespec{1700000000, 5};
  return a;
}

TEST(FattrTest, ValuesFollowInBitOrderAndUnsupportedOnesAreLeftOut) {
  const backend::Attrs a = FileAttrs();
  FattrSource src;
  src.attrs = &a;
  src.fsid_major = 7;
  src.fh = "handle";
  src.mounted_on_fileid = 77;
  AttrBitmap mask;
  std::string vals;
  EncodeAttrs(src,
              Bits({FATTR4_TIME_MODIFY, FATTR4_OWNER, FATTR4_TYPE, FATTR4_ACL, FATTR4_FSID,
                    FATTR4_FILEHANDLE, FATTR4_SIZE, FATTR4_SPACE_TOTAL}),
              &mask, &vals);
  // No ACLs; no statistics given: space_total is left out too.
  EXPECT_EQ(mask, Bits({FATTR4_TIME_MODIFY, FATTR4_OWNER, FATTR4_TYPE, FATTR4_FSID,
                        FATTR4_FILEHANDLE, FATTR4_SIZE}));
  EXPECT_EQ(vals, U32(NF4REG) + U64(12345) + U64(7) + U64(0) + Str("handle") + Str("1000") +
                      U64(1700000000) + U32(5));
}

TEST(FattrTest, AttributesTheObjectLacksAreLeftOut) {
  backend::Attrs a;
  a.valid = backend::kAttrType;
  a.type = backend::FileType::kDirectory;
  FattrSource src;
  src.attrs = &a;
  AttrBitmap mask;
  std::string vals;
  EncodeAttrs(src, Bits({FATTR4_TYPE, FATTR4_SIZE, FATTR4_MODE}), &mask, &vals);
  EXPECT_EQ(mask, Bits({FATTR4_TYPE}));
  EXPECT_EQ(vals, U32(NF4DIR));
}

TEST(FattrTest, SettableAttributesDecode) {
  Given g(Bits({FATTR4_SIZE, FATTR4_MODE, FATTR4_OWNER, FATTR4_OWNER_GROUP,
                FATTR4_TIME_ACCESS_SET, FATTR4_TIME_MODIFY_SET}),
          U64(4096) + U32(0640) + Str("1000") + Str("100") + U32(SET_TO_SERVER_TIME4) +
              U32(SET_TO_CLIENT_TIME4) + U64(1700000000) + U32(42));
  backend::SetAttrRequest req;
  AttrBitmap set;
  ASSERT_EQ(DecodeSettableAttrs(g.f, &req, &set), NFS4_OK);
  EXPECT_EQ(req.size, 4096u);
  EXPECT_EQ(req.mode, mode_t{0640});
  EXPECT_EQ(req.uid, 1000u);
  EXPECT_EQ(req.gid, 100u);
  EXPECT_EQ(req.atime.how, backend::TimeHow::kServerTime);
  EXPECT_EQ(req.mtime.how, backend::TimeHow::kClientTime);
  EXPECT_EQ(req.mtime.time.tv_sec, 1700000000);
  EXPECT_EQ(req.mtime.time.tv_nsec, 42);
  EXPECT_EQ(set, BitmapFromWire(g.f.attrmask));
}

TEST(FattrTest, SettableAttributeErrors) {
  backend::SetAttrRequest req;
  AttrBitmap set;
  auto decode = [&](const AttrBitmap& mask, const std::string& vals) {
    Given g(mask, vals);
    return DecodeSettableAttrs(g.f, &req, &set);
  };
  EXPECT_EQ(decode(Bits({FATTR4_OWNER}), Str("alice@example")), NFS4ERR_BADOWNER);
  EXPECT_EQ(decode(Bits({FATTR4_OWNER}), Str("99999999999")), NFS4ERR_BADOWNER);
  EXPECT_EQ(decode(Bits({FATTR4_TYPE}), U32(NF4REG)), NFS4ERR_INVAL);  // read-only
  EXPECT_EQ(decode(Bits({FATTR4_ACL}), U32(0)), NFS4ERR_ATTRNOTSUPP);
  EXPECT_EQ(decode(Bits({FATTR4_TIME_MODIFY_SET}),
                   U32(SET_TO_CLIENT_TIME4) + U64(1) + U32(1000000000)),
            NFS4ERR_INVAL);
  EXPECT_EQ(decode(Bits({FATTR4_SIZE}), U32(1)), NFS4ERR_BADXDR);            // cut short
  EXPECT_EQ(decode(Bits({FATTR4_MODE}), U32(0644) + U32(0)), NFS4ERR_BADXDR);  // left over
  EXPECT_EQ(decode(Bits({FATTR4_OWNER}), U32(1u << 30)), NFS4ERR_BADXDR);    // lying length
  EXPECT_EQ(decode(Bits({}), ""), NFS4_OK);
  EXPECT_TRUE(set.empty());
}

}  // namespace
}  // namespace localnfs::server::nfs4::fattr_test
