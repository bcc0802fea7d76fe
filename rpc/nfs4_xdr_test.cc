// Tests of rpc/nfs4.x as rpcgen generates it: COMPOUND requests and replies survive an
// encode/decode round trip field by field, the wire bytes of small COMPOUNDs are the
// RFC's, every operation of every minor version has a decodable argument arm and an
// encodable error result, truncated or corrupted requests fail to decode and free
// cleanly, and the operation and status numbers are the ones RFC 8881 / RFC 7862 /
// RFC 8276 assign. nfs3.h, mount3.h and nfs4.h are included together on purpose: the
// three generated headers must coexist in one translation unit.
#include <rpc/rpc.h>
#include <stdint.h>
#include <string.h>

#include <cstddef>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "gtest/gtest.h"
#include "rpc/mount3.h"
#include "rpc/nfs3.h"
#include "rpc/nfs4.h"

namespace localnfs::rpc {
namespace {

// The RFC's int32_t / uint32_t / int64_t / uint64_t fields are the <stdint.h> types
// (nfs4.x leaves their typedefs out; see its header).
static_assert(std::is_same_v<decltype(nfstime4::seconds), int64_t>);
static_assert(std::is_same_v<decltype(nfstime4::nseconds), uint32_t>);
static_assert(std::is_same_v<offset4, uint64_t>);
static_assert(std::is_same_v<decltype(fs4_status::fss_age), int32_t>);
static_assert(sizeof(sessionid4) == NFS4_SESSIONID_SIZE);
static_assert(sizeof(verifier4) == NFS4_VERIFIER_SIZE);
static_assert(sizeof(stateid4::other) == NFS4_OTHER_SIZE);
// The NFSv3 and MOUNT names still mean what they did next to nfs4.h.
static_assert(NFS3_OK == 0 && MNT3_OK == 0 && NFS_PROGRAM == NFS4_PROGRAM);

constexpr size_t kBufferSize = 64 * 1024;

template <typename T>
std::vector<char> Encode(xdrproc_t proc, T* obj) {
  std::vector<char> buf(kBufferSize);
  XDR x;
  xdrmem_create(&x, buf.data(), buf.size(), XDR_ENCODE);
  bool ok = proc(&x, obj);
  size_t len = xdr_getpos(&x);
  xdr_destroy(&x);
  EXPECT_TRUE(ok);
  buf.resize(ok ? len : 0);
  return buf;
}

// Decodes `bytes` into a zeroed *obj; the caller frees *obj with xdr_free whatever the
// result (a failed decode may have allocated part of the object). Requires that the
// whole buffer is consumed, as a COMPOUND decoder would.
template <typename T>
bool Decode(xdrproc_t proc, const std::vector<char>& bytes, T* obj) {
  memset(obj, 0, sizeof(*obj));
  XDR x;
  // xdrmem does not write through a decoding stream.
  xdrmem_create(&x, const_cast<char*>(bytes.data()), bytes.size(), XDR_DECODE);
  bool ok = proc(&x, obj) && xdr_getpos(&x) == bytes.size();
  xdr_destroy(&x);
  return ok;
}

// Points a generated variable-length field at `s` (alive while the object is encoded).
template <typename Len>
void Point(const std::string& s, Len* len, char** val) {
  *len = s.size();
  *val = const_cast<char*>(s.data());
}
#define SET_OPAQUE(field, prefix, s) Point((s), &(field).prefix##_len, &(field).prefix##_val)

std::string AsString(u_int len, const char* val) { return std::string(val, len); }

stateid4 MakeStateid(uint32_t seqid, char fill) {
  stateid4 s;
  s.seqid = seqid;
  memset(s.other, fill, sizeof(s.other));
  return s;
}

void ExpectStateid(const stateid4& s, uint32_t seqid, char fill) {
  EXPECT_EQ(s.seqid, seqid);
  for (char c : s.other) EXPECT_EQ(c, fill);
}

// The COMPOUND of the task: SEQUENCE, PUTROOTFH, LOOKUP "a", GETATTR, OPEN (CLAIM_NULL,
// UNCHECKED4), WRITE, READ_PLUS, SEEK, COPY. Strings and arrays it points to live here.
struct SampleCompound {
  std::string tag = "sample";
  std::string name = "a";
  std::string file = "new.txt";
  std::string owner = "open-owner-1";
  std::string data = "hello, world";  // 12 bytes: no XDR padding
  std::string server = "copy-source.example";
  uint32_t getattr_mask[2] = {(1u << FATTR4_TYPE) | (1u << FATTR4_SIZE),
                              1u << (FATTR4_MODE - 32)};
  uint32_t create_mask[2] = {0, 1u << (FATTR4_MODE - 32)};
  std::string create_vals = std::string("\0\0\x01\xa4", 4);  // mode 0644
  netloc4 source{};
  nfs_argop4 ops[9]{};
  COMPOUND4args args{};

  SampleCompound() {
    SET_OPAQUE(args.tag, utf8string, tag);
    args.minorversion = 1;
    args.argarray.argarray_len = 9;
    args.argarray.argarray_val = ops;

    ops[0].argop = OP_SEQUENCE;
    SEQUENCE4args& seq = ops[0].nfs_argop4_u.opsequence;
    for (int i = 0; i < NFS4_SESSIONID_SIZE; i++) seq.sa_sessionid[i] = static_cast<char>(i);
    seq.sa_sequenceid = 7;
    seq.sa_slotid = 2;
    seq.sa_highest_slotid = 15;
    seq.sa_cachethis = TRUE;

    ops[1].argop = OP_PUTROOTFH;

    ops[2].argop = OP_LOOKUP;
    SET_OPAQUE(ops[2].nfs_argop4_u.oplookup.objname, utf8string, name);

    ops[3].argop = OP_GETATTR;
    bitmap4& mask = ops[3].nfs_argop4_u.opgetattr.attr_request;
    mask.bitmap4_len = 2;
    mask.bitmap4_val = getattr_mask;

    ops[4].argop = OP_OPEN;
    OPEN4args& open = ops[4].nfs_argop4_u.opopen;
    open.seqid = 0;
    open.share_access = OPEN4_SHARE_ACCESS_BOTH | OPEN4_SHARE_ACCESS_WANT_NO_DELEG;
    open.share_deny = OPEN4_SHARE_DENY_NONE;
    open.owner.clientid = 0x1122334455667788ull;
    SET_OPAQUE(open.owner.owner, owner, owner);
    open.openhow.opentype = OPEN4_CREATE;
    createhow4& how = open.openhow.openflag4_u.how;
    how.mode = UNCHECKED4;
    how.createhow4_u.createattrs.attrmask.bitmap4_len = 2;
    how.createhow4_u.createattrs.attrmask.bitmap4_val = create_mask;
    SET_OPAQUE(how.createhow4_u.createattrs.attr_vals, attrlist4, create_vals);
    open.claim.claim = CLAIM_NULL;
    SET_OPAQUE(open.claim.open_claim4_u.file, utf8string, file);

    ops[5].argop = OP_WRITE;
    WRITE4args& write = ops[5].nfs_argop4_u.opwrite;
    write.stateid = MakeStateid(1, 'w');
    write.offset = 4096;
    write.stable = FILE_SYNC4;
    SET_OPAQUE(write.data, data, data);

    ops[6].argop = OP_READ_PLUS;
    READ_PLUS4args& rp = ops[6].nfs_argop4_u.opread_plus;
    rp.rpa_stateid = MakeStateid(1, 'r');
    rp.rpa_offset = 1ull << 40;
    rp.rpa_count = 1 << 20;

    ops[7].argop = OP_SEEK;
    SEEK4args& seek = ops[7].nfs_argop4_u.opseek;
    seek.sa_stateid = MakeStateid(0, 0);
    seek.sa_offset = 123;
    seek.sa_what = NFS4_CONTENT_HOLE;

    ops[8].argop = OP_COPY;
    COPY4args& copy = ops[8].nfs_argop4_u.opcopy;
    copy.ca_src_stateid = MakeStateid(3, 's');
    copy.ca_dst_stateid = MakeStateid(4, 'd');
    copy.ca_src_offset = 0;
    copy.ca_dst_offset = 8192;
    copy.ca_count = 0;  // to the end of the source
    copy.ca_consecutive = TRUE;
    copy.ca_synchronous = FALSE;
    source.nl_type = NL4_NAME;
    SET_OPAQUE(source.netloc4_u.nl_name, utf8string, server);
    copy.ca_source_server.ca_source_server_len = 1;
    copy.ca_source_server.ca_source_server_val = &source;
  }
};

TEST(Nfs4Xdr, CompoundArgsRoundTripFieldByField) {
  SampleCompound sample;
  std::vector<char> wire = Encode((xdrproc_t)xdr_COMPOUND4args, &sample.args);
  ASSERT_FALSE(wire.empty());

  COMPOUND4args got;
  ASSERT_TRUE(Decode((xdrproc_t)xdr_COMPOUND4args, wire, &got));
  EXPECT_EQ(AsString(got.tag.utf8string_len, got.tag.utf8string_val), "sample");
  EXPECT_EQ(got.minorversion, 1u);
  ASSERT_EQ(got.argarray.argarray_len, 9u);
  const nfs_argop4* op = got.argarray.argarray_val;

  ASSERT_EQ(op[0].argop, OP_SEQUENCE);
  const SEQUENCE4args& seq = op[0].nfs_argop4_u.opsequence;
  for (int i = 0; i < NFS4_SESSIONID_SIZE; i++) EXPECT_EQ(seq.sa_sessionid[i], i);
  EXPECT_EQ(seq.sa_sequenceid, 7u);
  EXPECT_EQ(seq.sa_slotid, 2u);
  EXPECT_EQ(seq.sa_highest_slotid, 15u);
  EXPECT_TRUE(seq.sa_cachethis);

  EXPECT_EQ(op[1].argop, OP_PUTROOTFH);

  ASSERT_EQ(op[2].argop, OP_LOOKUP);
  const component4& name = op[2].nfs_argop4_u.oplookup.objname;
  EXPECT_EQ(AsString(name.utf8string_len, name.utf8string_val), "a");

  ASSERT_EQ(op[3].argop, OP_GETATTR);
  const bitmap4& mask = op[3].nfs_argop4_u.opgetattr.attr_request;
  ASSERT_EQ(mask.bitmap4_len, 2u);
  EXPECT_EQ(mask.bitmap4_val[0], sample.getattr_mask[0]);
  EXPECT_EQ(mask.bitmap4_val[1], sample.getattr_mask[1]);

  ASSERT_EQ(op[4].argop, OP_OPEN);
  const OPEN4args& open = op[4].nfs_argop4_u.opopen;
  EXPECT_EQ(open.share_access, OPEN4_SHARE_ACCESS_BOTH | OPEN4_SHARE_ACCESS_WANT_NO_DELEG);
  EXPECT_EQ(open.share_deny, OPEN4_SHARE_DENY_NONE);
  EXPECT_EQ(open.owner.clientid, 0x1122334455667788ull);
  EXPECT_EQ(AsString(open.owner.owner.owner_len, open.owner.owner.owner_val), "open-owner-1");
  ASSERT_EQ(open.openhow.opentype, OPEN4_CREATE);
  const createhow4& how = open.openhow.openflag4_u.how;
  ASSERT_EQ(how.mode, UNCHECKED4);
  const fattr4& attrs = how.createhow4_u.createattrs;
  ASSERT_EQ(attrs.attrmask.bitmap4_len, 2u);
  EXPECT_EQ(attrs.attrmask.bitmap4_val[0], 0u);
  EXPECT_EQ(attrs.attrmask.bitmap4_val[1], 1u << (FATTR4_MODE - 32));
  EXPECT_EQ(AsString(attrs.attr_vals.attrlist4_len, attrs.attr_vals.attrlist4_val),
            sample.create_vals);
  ASSERT_EQ(open.claim.claim, CLAIM_NULL);
  const component4& file = open.claim.open_claim4_u.file;
  EXPECT_EQ(AsString(file.utf8string_len, file.utf8string_val), "new.txt");

  ASSERT_EQ(op[5].argop, OP_WRITE);
  const WRITE4args& write = op[5].nfs_argop4_u.opwrite;
  ExpectStateid(write.stateid, 1, 'w');
  EXPECT_EQ(write.offset, 4096u);
  EXPECT_EQ(write.stable, FILE_SYNC4);
  EXPECT_EQ(AsString(write.data.data_len, write.data.data_val), "hello, world");

  ASSERT_EQ(op[6].argop, OP_READ_PLUS);
  const READ_PLUS4args& rp = op[6].nfs_argop4_u.opread_plus;
  ExpectStateid(rp.rpa_stateid, 1, 'r');
  EXPECT_EQ(rp.rpa_offset, 1ull << 40);
  EXPECT_EQ(rp.rpa_count, 1u << 20);

  ASSERT_EQ(op[7].argop, OP_SEEK);
  const SEEK4args& seek = op[7].nfs_argop4_u.opseek;
  ExpectStateid(seek.sa_stateid, 0, 0);
  EXPECT_EQ(seek.sa_offset, 123u);
  EXPECT_EQ(seek.sa_what, NFS4_CONTENT_HOLE);

  ASSERT_EQ(op[8].argop, OP_COPY);
  const COPY4args& copy = op[8].nfs_argop4_u.opcopy;
  ExpectStateid(copy.ca_src_stateid, 3, 's');
  ExpectStateid(copy.ca_dst_stateid, 4, 'd');
  EXPECT_EQ(copy.ca_src_offset, 0u);
  EXPECT_EQ(copy.ca_dst_offset, 8192u);
  EXPECT_EQ(copy.ca_count, 0u);
  EXPECT_TRUE(copy.ca_consecutive);
  EXPECT_FALSE(copy.ca_synchronous);
  ASSERT_EQ(copy.ca_source_server.ca_source_server_len, 1u);
  const netloc4& src = copy.ca_source_server.ca_source_server_val[0];
  ASSERT_EQ(src.nl_type, NL4_NAME);
  EXPECT_EQ(AsString(src.netloc4_u.nl_name.utf8string_len, src.netloc4_u.nl_name.utf8string_val),
            "copy-source.example");

  // And what decoded encodes to the same bytes.
  EXPECT_EQ(Encode((xdrproc_t)xdr_COMPOUND4args, &got), wire);
  xdr_free((xdrproc_t)xdr_COMPOUND4args, (char*)&got);
}

TEST(Nfs4Xdr, CompoundResWithErrorRoundTrip) {
  // SEQUENCE ok, PUTROOTFH ok, GETATTR ok (type and size), READ_PLUS ok (data then a
  // hole), LOOKUP failing with NOENT — the COMPOUND's status is the last result's.
  std::string tag = "res";
  uint32_t mask_words[1] = {(1u << FATTR4_TYPE) | (1u << FATTR4_SIZE)};
  std::string vals("\0\0\0\x01" "\0\0\0\0\0\0\x10\0", 12);  // NF4REG, size 4096
  std::string bytes = "data!";  // 5 bytes: padded on the wire
  read_plus_content contents[2]{};
  contents[0].rpc_content = NFS4_CONTENT_DATA;
  contents[0].read_plus_content_u.rpc_data.d_offset = 0;
  SET_OPAQUE(contents[0].read_plus_content_u.rpc_data.d_data, d_data, bytes);
  contents[1].rpc_content = NFS4_CONTENT_HOLE;
  contents[1].read_plus_content_u.rpc_hole.di_offset = 5;
  contents[1].read_plus_content_u.rpc_hole.di_length = 1 << 20;

  nfs_resop4 res[5]{};
  res[0].resop = OP_SEQUENCE;
  SEQUENCE4res& seq = res[0].nfs_resop4_u.opsequence;
  seq.sr_status = NFS4_OK;
  SEQUENCE4resok& seqok = seq.SEQUENCE4res_u.sr_resok4;
  memset(seqok.sr_sessionid, 0x5a, sizeof(seqok.sr_sessionid));
  seqok.sr_sequenceid = 7;
  seqok.sr_slotid = 2;
  seqok.sr_highest_slotid = 15;
  seqok.sr_target_highest_slotid = 15;
  seqok.sr_status_flags = SEQ4_STATUS_CB_PATH_DOWN;
  res[1].resop = OP_PUTROOTFH;
  res[1].nfs_resop4_u.opputrootfh.status = NFS4_OK;
  res[2].resop = OP_GETATTR;
  GETATTR4res& ga = res[2].nfs_resop4_u.opgetattr;
  ga.status = NFS4_OK;
  fattr4& fa = ga.GETATTR4res_u.resok4.obj_attributes;
  fa.attrmask.bitmap4_len = 1;
  fa.attrmask.bitmap4_val = mask_words;
  SET_OPAQUE(fa.attr_vals, attrlist4, vals);
  res[3].resop = OP_READ_PLUS;
  READ_PLUS4res& rp = res[3].nfs_resop4_u.opread_plus;
  rp.rp_status = NFS4_OK;
  rp.READ_PLUS4res_u.rp_resok4.rpr_eof = TRUE;
  rp.READ_PLUS4res_u.rp_resok4.rpr_contents.rpr_contents_len = 2;
  rp.READ_PLUS4res_u.rp_resok4.rpr_contents.rpr_contents_val = contents;
  res[4].resop = OP_LOOKUP;
  res[4].nfs_resop4_u.oplookup.status = NFS4ERR_NOENT;

  COMPOUND4res compound{};
  compound.status = NFS4ERR_NOENT;
  SET_OPAQUE(compound.tag, utf8string, tag);
  compound.resarray.resarray_len = 5;
  compound.resarray.resarray_val = res;

  std::vector<char> wire = Encode((xdrproc_t)xdr_COMPOUND4res, &compound);
  ASSERT_FALSE(wire.empty());
  COMPOUND4res got;
  ASSERT_TRUE(Decode((xdrproc_t)xdr_COMPOUND4res, wire, &got));
  EXPECT_EQ(got.status, NFS4ERR_NOENT);
  EXPECT_EQ(AsString(got.tag.utf8string_len, got.tag.utf8string_val), "res");
  ASSERT_EQ(got.resarray.resarray_len, 5u);
  const nfs_resop4* r = got.resarray.resarray_val;

  ASSERT_EQ(r[0].resop, OP_SEQUENCE);
  ASSERT_EQ(r[0].nfs_resop4_u.opsequence.sr_status, NFS4_OK);
  const SEQUENCE4resok& gotseq = r[0].nfs_resop4_u.opsequence.SEQUENCE4res_u.sr_resok4;
  EXPECT_EQ(memcmp(gotseq.sr_sessionid, seqok.sr_sessionid, sizeof(sessionid4)), 0);
  EXPECT_EQ(gotseq.sr_sequenceid, 7u);
  EXPECT_EQ(gotseq.sr_slotid, 2u);
  EXPECT_EQ(gotseq.sr_highest_slotid, 15u);
  EXPECT_EQ(gotseq.sr_target_highest_slotid, 15u);
  EXPECT_EQ(gotseq.sr_status_flags, static_cast<uint32_t>(SEQ4_STATUS_CB_PATH_DOWN));

  ASSERT_EQ(r[1].resop, OP_PUTROOTFH);
  EXPECT_EQ(r[1].nfs_resop4_u.opputrootfh.status, NFS4_OK);

  ASSERT_EQ(r[2].resop, OP_GETATTR);
  ASSERT_EQ(r[2].nfs_resop4_u.opgetattr.status, NFS4_OK);
  const fattr4& gotfa = r[2].nfs_resop4_u.opgetattr.GETATTR4res_u.resok4.obj_attributes;
  ASSERT_EQ(gotfa.attrmask.bitmap4_len, 1u);
  EXPECT_EQ(gotfa.attrmask.bitmap4_val[0], mask_words[0]);
  EXPECT_EQ(AsString(gotfa.attr_vals.attrlist4_len, gotfa.attr_vals.attrlist4_val), vals);

  ASSERT_EQ(r[3].resop, OP_READ_PLUS);
  ASSERT_EQ(r[3].nfs_resop4_u.opread_plus.rp_status, NFS4_OK);
  const read_plus_res4& gotrp = r[3].nfs_resop4_u.opread_plus.READ_PLUS4res_u.rp_resok4;
  EXPECT_TRUE(gotrp.rpr_eof);
  ASSERT_EQ(gotrp.rpr_contents.rpr_contents_len, 2u);
  const read_plus_content& c0 = gotrp.rpr_contents.rpr_contents_val[0];
  ASSERT_EQ(c0.rpc_content, NFS4_CONTENT_DATA);
  EXPECT_EQ(c0.read_plus_content_u.rpc_data.d_offset, 0u);
  EXPECT_EQ(AsString(c0.read_plus_content_u.rpc_data.d_data.d_data_len,
                     c0.read_plus_content_u.rpc_data.d_data.d_data_val),
            "data!");
  const read_plus_content& c1 = gotrp.rpr_contents.rpr_contents_val[1];
  ASSERT_EQ(c1.rpc_content, NFS4_CONTENT_HOLE);
  EXPECT_EQ(c1.read_plus_content_u.rpc_hole.di_offset, 5u);
  EXPECT_EQ(c1.read_plus_content_u.rpc_hole.di_length, 1u << 20);

  ASSERT_EQ(r[4].resop, OP_LOOKUP);
  EXPECT_EQ(r[4].nfs_resop4_u.oplookup.status, NFS4ERR_NOENT);

  EXPECT_EQ(Encode((xdrproc_t)xdr_COMPOUND4res, &got), wire);
  xdr_free((xdrproc_t)xdr_COMPOUND4res, (char*)&got);
}

std::vector<char> Bytes(std::initializer_list<unsigned> b) {
  std::vector<char> v;
  for (unsigned c : b) v.push_back(static_cast<char>(c));
  return v;
}

TEST(Nfs4Xdr, PutrootfhCompoundWireBytes) {
  // RFC 8881 section 16.2.1: tag, minorversion, then the operations, each an opcode
  // and its arguments; PUTROOTFH (24) has none.
  nfs_argop4 op{};
  op.argop = OP_PUTROOTFH;
  COMPOUND4args args{};
  args.tag.utf8string_len = 0;
  args.tag.utf8string_val = nullptr;
  args.minorversion = 1;
  args.argarray.argarray_len = 1;
  args.argarray.argarray_val = &op;
  std::vector<char> want = Bytes({0, 0, 0, 0,     // tag: empty
                                  0, 0, 0, 1,     // minorversion 1
                                  0, 0, 0, 1,     // one operation
                                  0, 0, 0, 24});  // OP_PUTROOTFH
  EXPECT_EQ(Encode((xdrproc_t)xdr_COMPOUND4args, &args), want);

  COMPOUND4args got;
  ASSERT_TRUE(Decode((xdrproc_t)xdr_COMPOUND4args, want, &got));
  EXPECT_EQ(got.minorversion, 1u);
  ASSERT_EQ(got.argarray.argarray_len, 1u);
  EXPECT_EQ(got.argarray.argarray_val[0].argop, OP_PUTROOTFH);
  xdr_free((xdrproc_t)xdr_COMPOUND4args, (char*)&got);

  // Its reply: status, tag, one result of opcode and status.
  nfs_resop4 res{};
  res.resop = OP_PUTROOTFH;
  res.nfs_resop4_u.opputrootfh.status = NFS4_OK;
  COMPOUND4res reply{};
  reply.status = NFS4_OK;
  reply.resarray.resarray_len = 1;
  reply.resarray.resarray_val = &res;
  EXPECT_EQ(Encode((xdrproc_t)xdr_COMPOUND4res, &reply),
            Bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 24, 0, 0, 0, 0}));
}

TEST(Nfs4Xdr, SequenceAndLookupWireBytes) {
  // A padded tag, a SEQUENCE (53) and a LOOKUP (15) of a 1-byte name: every opaque is
  // a length word and its bytes padded to 4 (sessionid4 is fixed: no length word).
  std::string tag = "abc";
  std::string name = "a";
  nfs_argop4 ops[2]{};
  ops[0].argop = OP_SEQUENCE;
  SEQUENCE4args& seq = ops[0].nfs_argop4_u.opsequence;
  for (int i = 0; i < NFS4_SESSIONID_SIZE; i++) seq.sa_sessionid[i] = static_cast<char>(0xa0 + i);
  seq.sa_sequenceid = 0x01020304;
  seq.sa_slotid = 5;
  seq.sa_highest_slotid = 6;
  seq.sa_cachethis = FALSE;
  ops[1].argop = OP_LOOKUP;
  SET_OPAQUE(ops[1].nfs_argop4_u.oplookup.objname, utf8string, name);
  COMPOUND4args args{};
  SET_OPAQUE(args.tag, utf8string, tag);
  args.minorversion = 2;
  args.argarray.argarray_len = 2;
  args.argarray.argarray_val = ops;
  std::vector<char> want = Bytes({
      0, 0, 0, 3, 'a', 'b', 'c', 0,  // tag "abc", one byte of padding
      0, 0, 0, 2,                    // minorversion 2
      0, 0, 0, 2,                    // two operations
      0, 0, 0, 53,                   // OP_SEQUENCE
      0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
      0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,  // sa_sessionid
      1, 2, 3, 4,                    // sa_sequenceid
      0, 0, 0, 5,                    // sa_slotid
      0, 0, 0, 6,                    // sa_highest_slotid
      0, 0, 0, 0,                    // sa_cachethis FALSE
      0, 0, 0, 15,                   // OP_LOOKUP
      0, 0, 0, 1, 'a', 0, 0, 0,      // objname "a", three bytes of padding
  });
  EXPECT_EQ(Encode((xdrproc_t)xdr_COMPOUND4args, &args), want);
}

// Every operation number of the RFCs, as typed from their text: RFC 8881 section 16.2.1
// / RFC 5662 (3..58, 10044), RFC 7862 section 15 / RFC 7863 (59..71), RFC 8276
// section 8 (72..75).
struct OpNumber {
  const char* name;
  int generated;
  int rfc;
};
#define OP(name, rfc) {#name, name, rfc}
constexpr OpNumber kOps[] = {
    OP(OP_ACCESS, 3),
    OP(OP_CLOSE, 4),
    OP(OP_COMMIT, 5),
    OP(OP_CREATE, 6),
    OP(OP_DELEGPURGE, 7),
    OP(OP_DELEGRETURN, 8),
    OP(OP_GETATTR, 9),
    OP(OP_GETFH, 10),
    OP(OP_LINK, 11),
    OP(OP_LOCK, 12),
    OP(OP_LOCKT, 13),
    OP(OP_LOCKU, 14),
    OP(OP_LOOKUP, 15),
    OP(OP_LOOKUPP, 16),
    OP(OP_NVERIFY, 17),
    OP(OP_OPEN, 18),
    OP(OP_OPENATTR, 19),
    OP(OP_OPEN_CONFIRM, 20),
    OP(OP_OPEN_DOWNGRADE, 21),
    OP(OP_PUTFH, 22),
    OP(OP_PUTPUBFH, 23),
    OP(OP_PUTROOTFH, 24),
    OP(OP_READ, 25),
    OP(OP_READDIR, 26),
    OP(OP_READLINK, 27),
    OP(OP_REMOVE, 28),
    OP(OP_RENAME, 29),
    OP(OP_RENEW, 30),
    OP(OP_RESTOREFH, 31),
    OP(OP_SAVEFH, 32),
    OP(OP_SECINFO, 33),
    OP(OP_SETATTR, 34),
    OP(OP_SETCLIENTID, 35),
    OP(OP_SETCLIENTID_CONFIRM, 36),
    OP(OP_VERIFY, 37),
    OP(OP_WRITE, 38),
    OP(OP_RELEASE_LOCKOWNER, 39),
    OP(OP_BACKCHANNEL_CTL, 40),
    OP(OP_BIND_CONN_TO_SESSION, 41),
    OP(OP_EXCHANGE_ID, 42),
    OP(OP_CREATE_SESSION, 43),
    OP(OP_DESTROY_SESSION, 44),
    OP(OP_FREE_STATEID, 45),
    OP(OP_GET_DIR_DELEGATION, 46),
    OP(OP_GETDEVICEINFO, 47),
    OP(OP_GETDEVICELIST, 48),
    OP(OP_LAYOUTCOMMIT, 49),
    OP(OP_LAYOUTGET, 50),
    OP(OP_LAYOUTRETURN, 51),
    OP(OP_SECINFO_NO_NAME, 52),
    OP(OP_SEQUENCE, 53),
    OP(OP_SET_SSV, 54),
    OP(OP_TEST_STATEID, 55),
    OP(OP_WANT_DELEGATION, 56),
    OP(OP_DESTROY_CLIENTID, 57),
    OP(OP_RECLAIM_COMPLETE, 58),
    OP(OP_ALLOCATE, 59),
    OP(OP_COPY, 60),
    OP(OP_COPY_NOTIFY, 61),
    OP(OP_DEALLOCATE, 62),
    OP(OP_IO_ADVISE, 63),
    OP(OP_LAYOUTERROR, 64),
    OP(OP_LAYOUTSTATS, 65),
    OP(OP_OFFLOAD_CANCEL, 66),
    OP(OP_OFFLOAD_STATUS, 67),
    OP(OP_READ_PLUS, 68),
    OP(OP_SEEK, 69),
    OP(OP_WRITE_SAME, 70),
    OP(OP_CLONE, 71),
    OP(OP_GETXATTR, 72),
    OP(OP_SETXATTR, 73),
    OP(OP_LISTXATTRS, 74),
    OP(OP_REMOVEXATTR, 75),
    OP(OP_ILLEGAL, 10044),
};
// RFC 8881 section 20 / RFC 7862 section 15 (CB_OFFLOAD).
constexpr OpNumber kCallbackOps[] = {
    OP(OP_CB_GETATTR, 3),
    OP(OP_CB_RECALL, 4),
    OP(OP_CB_LAYOUTRECALL, 5),
    OP(OP_CB_NOTIFY, 6),
    OP(OP_CB_PUSH_DELEG, 7),
    OP(OP_CB_RECALL_ANY, 8),
    OP(OP_CB_RECALLABLE_OBJ_AVAIL, 9),
    OP(OP_CB_RECALL_SLOT, 10),
    OP(OP_CB_SEQUENCE, 11),
    OP(OP_CB_WANTS_CANCELLED, 12),
    OP(OP_CB_NOTIFY_LOCK, 13),
    OP(OP_CB_NOTIFY_DEVICEID, 14),
    OP(OP_CB_OFFLOAD, 15),
    OP(OP_CB_ILLEGAL, 10044),
};
// A sample of status and attribute numbers (RFC 8881 section 15.1, RFC 7862 section
// 11.1 and 12.2, RFC 8276 section 8.2 and 8.3, RFC 8275 section 3).
constexpr OpNumber kNumbers[] = {
    OP(NFS4_OK, 0),
    OP(NFS4ERR_NOENT, 2),
    OP(NFS4ERR_NOTSUPP, 10004),
    OP(NFS4ERR_OP_ILLEGAL, 10044),
    OP(NFS4ERR_BADSESSION, 10052),
    OP(NFS4ERR_SEQ_MISORDERED, 10063),
    OP(NFS4ERR_OP_NOT_IN_SESSION, 10071),
    OP(NFS4ERR_DELEG_REVOKED, 10087),
    OP(NFS4ERR_OFFLOAD_NO_REQS, 10094),
    OP(NFS4ERR_NOXATTR, 10095),
    OP(NFS4ERR_XATTR2BIG, 10096),
    OP(FATTR4_SUPPORTED_ATTRS, 0),
    OP(FATTR4_FILEHANDLE, 19),
    OP(FATTR4_MOUNTED_ON_FILEID, 55),
    OP(FATTR4_SUPPATTR_EXCLCREAT, 75),
    OP(FATTR4_FS_CHARSET_CAP, 76),
    OP(FATTR4_CLONE_BLKSIZE, 77),
    OP(FATTR4_SPACE_FREED, 78),
    OP(FATTR4_CHANGE_ATTR_TYPE, 79),
    OP(FATTR4_SEC_LABEL, 80),
    OP(FATTR4_MODE_UMASK, 81),
    OP(FATTR4_XATTR_SUPPORT, 82),
    OP(NFS4_PROGRAM, 100003),
    OP(NFS_V4, 4),
    OP(NFSPROC4_COMPOUND, 1),
    OP(NFS4_CALLBACK, 0x40000000),
    OP(CB_COMPOUND, 1),
};
#undef OP

TEST(Nfs4Xdr, OperationNumbersAreTheRfcs) {
  for (const OpNumber& op : kOps) EXPECT_EQ(op.generated, op.rfc) << op.name;
  for (const OpNumber& op : kCallbackOps) EXPECT_EQ(op.generated, op.rfc) << op.name;
  for (const OpNumber& n : kNumbers) EXPECT_EQ(n.generated, n.rfc) << n.name;
  // The table covers 3..75 once each, so no operation of the enum is left untested.
  std::set<int> seen;
  for (const OpNumber& op : kOps) EXPECT_TRUE(seen.insert(op.rfc).second) << op.name;
  for (int n = 3; n <= 75; n++) EXPECT_TRUE(seen.count(n)) << n;
}

// A zeroed argument of operation `op`, with the fields zero would make unencodable set:
// a union discriminant zero is no arm of, a string that may not be NULL.
nfs_argop4 ZeroArgs(int op) {
  static char empty[] = "";
  nfs_argop4 a;
  memset(&a, 0, sizeof(a));
  a.argop = static_cast<nfs_opnum4>(op);
  switch (op) {
    case OP_SETCLIENTID:
      a.nfs_argop4_u.opsetclientid.callback.cb_location.na_r_netid = empty;
      a.nfs_argop4_u.opsetclientid.callback.cb_location.na_r_addr = empty;
      break;
    case OP_WANT_DELEGATION:
      a.nfs_argop4_u.opwant_delegation.wda_claim.dc_claim = CLAIM_FH;
      break;
    case OP_COPY_NOTIFY:
      a.nfs_argop4_u.opoffload_notify.cna_destination_server.nl_type = NL4_NAME;
      break;
    default:
      break;
  }
  return a;
}

TEST(Nfs4Xdr, EveryOperationDecodesInAMinorVersion1Compound) {
  // Including the five 4.0 operations 4.1 forbids: they must decode so that the server
  // can answer them NFS4ERR_NOTSUPP rather than fail the whole request.
  for (const OpNumber& op : kOps) {
    nfs_argop4 ops[2] = {ZeroArgs(OP_SEQUENCE), ZeroArgs(op.rfc)};
    COMPOUND4args args{};
    args.minorversion = 1;
    args.argarray.argarray_len = 2;
    args.argarray.argarray_val = ops;
    std::vector<char> wire = Encode((xdrproc_t)xdr_COMPOUND4args, &args);
    ASSERT_FALSE(wire.empty()) << op.name;
    COMPOUND4args got;
    EXPECT_TRUE(Decode((xdrproc_t)xdr_COMPOUND4args, wire, &got)) << op.name;
    ASSERT_EQ(got.argarray.argarray_len, 2u) << op.name;
    EXPECT_EQ(got.argarray.argarray_val[1].argop, op.rfc) << op.name;
    xdr_free((xdrproc_t)xdr_COMPOUND4args, (char*)&got);
  }
}

TEST(Nfs4Xdr, EveryOperationCanAnswerAnError) {
  // Every result type of nfs_resop4 starts with its nfsstat4 (a union discriminant or
  // a struct's first field), and on an error carries nothing else but SETATTR's
  // attrsset — which a zeroed bitmap4 encodes as empty.
  for (const OpNumber& op : kOps) {
    nfs_resop4 res;
    memset(&res, 0, sizeof(res));
    res.resop = static_cast<nfs_opnum4>(op.rfc);
    nfsstat4 status = NFS4ERR_NOTSUPP;
    memcpy(&res.nfs_resop4_u, &status, sizeof(status));
    COMPOUND4res reply{};
    reply.status = NFS4ERR_NOTSUPP;
    reply.resarray.resarray_len = 1;
    reply.resarray.resarray_val = &res;
    std::vector<char> wire = Encode((xdrproc_t)xdr_COMPOUND4res, &reply);
    // status, empty tag, count, opcode, the op's status (and SETATTR's empty bitmap).
    std::vector<char> want = Bytes({0, 0, 0x27, 0x14, 0, 0, 0, 0, 0, 0, 0, 1});
    for (int shift = 24; shift >= 0; shift -= 8) want.push_back(static_cast<char>(op.rfc >> shift));
    for (unsigned c : {0, 0, 0x27, 0x14}) want.push_back(static_cast<char>(c));
    if (op.rfc == OP_SETATTR) want.insert(want.end(), 4, 0);
    EXPECT_EQ(wire, want) << op.name;
    COMPOUND4res got;
    ASSERT_TRUE(Decode((xdrproc_t)xdr_COMPOUND4res, wire, &got)) << op.name;
    EXPECT_EQ(got.resarray.resarray_val[0].resop, op.rfc);
    xdr_free((xdrproc_t)xdr_COMPOUND4res, (char*)&got);
  }
}

TEST(Nfs4Xdr, SetclientidInAMinorVersion1CompoundIsAnsweredNotsupp) {
  nfs_argop4 ops[2] = {ZeroArgs(OP_SEQUENCE), ZeroArgs(OP_SETCLIENTID)};
  COMPOUND4args args{};
  args.minorversion = 1;
  args.argarray.argarray_len = 2;
  args.argarray.argarray_val = ops;
  std::vector<char> wire = Encode((xdrproc_t)xdr_COMPOUND4args, &args);
  COMPOUND4args got;
  ASSERT_TRUE(Decode((xdrproc_t)xdr_COMPOUND4args, wire, &got));
  EXPECT_EQ(got.argarray.argarray_val[1].argop, OP_SETCLIENTID);
  xdr_free((xdrproc_t)xdr_COMPOUND4args, (char*)&got);

  nfs_resop4 res[2]{};
  res[0].resop = OP_SEQUENCE;
  res[0].nfs_resop4_u.opsequence.sr_status = NFS4_OK;
  res[1].resop = OP_SETCLIENTID;
  res[1].nfs_resop4_u.opsetclientid.status = NFS4ERR_NOTSUPP;
  COMPOUND4res reply{};
  reply.status = NFS4ERR_NOTSUPP;
  reply.resarray.resarray_len = 2;
  reply.resarray.resarray_val = res;
  std::vector<char> bytes = Encode((xdrproc_t)xdr_COMPOUND4res, &reply);
  std::vector<char> tail(bytes.end() - 8, bytes.end());
  EXPECT_EQ(tail, Bytes({0, 0, 0, 35, 0, 0, 0x27, 0x14}));  // OP_SETCLIENTID, 10004
}

// Decodes `bytes` as COMPOUND4args and frees what it decoded, whatever happened.
bool DecodesAsCompound(const std::vector<char>& bytes) {
  COMPOUND4args got;
  bool ok = Decode((xdrproc_t)xdr_COMPOUND4args, bytes, &got);
  xdr_free((xdrproc_t)xdr_COMPOUND4args, (char*)&got);
  return ok;
}

TEST(Nfs4Xdr, CoexistsWithNfs3AndMountRoutinesInOneBinary) {
  // Referencing a routine of each generated file links all of them into this test:
  // their symbols must not collide, and the same status encodes alike in each.
  nfsstat3 s3 = NFS3ERR_NOENT;
  mountstat3 m3 = MNT3ERR_NOENT;
  nfsstat4 s4 = NFS4ERR_NOENT;
  std::vector<char> two = Bytes({0, 0, 0, 2});
  EXPECT_EQ(Encode((xdrproc_t)xdr_nfsstat3, &s3), two);
  EXPECT_EQ(Encode((xdrproc_t)xdr_mountstat3, &m3), two);
  EXPECT_EQ(Encode((xdrproc_t)xdr_nfsstat4, &s4), two);
}

TEST(Nfs4Xdr, TruncatedCompoundFailsAtEveryLength) {
  SampleCompound sample;
  std::vector<char> wire = Encode((xdrproc_t)xdr_COMPOUND4args, &sample.args);
  ASSERT_TRUE(DecodesAsCompound(wire));
  for (size_t len = 0; len < wire.size(); len++) {
    EXPECT_FALSE(DecodesAsCompound(std::vector<char>(wire.begin(), wire.begin() + len)))
        << "decoded from " << len << " of " << wire.size() << " bytes";
  }
}

TEST(Nfs4Xdr, UnknownOperationNumberFailsToDecode) {
  // nfs_argop4 has no default arm (as in the RFC): an op the enum does not name fails
  // the decode, so a COMPOUND server reads the opcode itself to answer OP_ILLEGAL.
  for (unsigned op : {0u, 1u, 2u, 76u, 10043u, 10045u, 0xffffffffu}) {
    std::vector<char> wire = Bytes({0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1});
    for (int shift = 24; shift >= 0; shift -= 8) wire.push_back(static_cast<char>(op >> shift));
    EXPECT_FALSE(DecodesAsCompound(wire)) << op;
  }
}

TEST(Nfs4Xdr, CorruptedCompoundDecodesOrFailsWithoutLeaking) {
  // Each 4-byte word of a valid COMPOUND replaced in turn by values that, as a length or
  // count, claim more than the buffer holds, or as a discriminant select another arm.
  // Whether a variant decodes depends on the word; it must not crash, read past the
  // buffer or leak (ASan/LSan in the sanitizer build).
  SampleCompound sample;
  std::vector<char> wire = Encode((xdrproc_t)xdr_COMPOUND4args, &sample.args);
  ASSERT_EQ(wire.size() % 4, 0u);
  int failed = 0;
  for (size_t word = 0; word < wire.size(); word += 4) {
    for (uint32_t value : {0u, 1u, 3u, 24u, 0x100u, 0x10000u, 0x7fffffffu, 0xffffffffu}) {
      std::vector<char> bad = wire;
      for (int i = 0; i < 4; i++) bad[word + i] = static_cast<char>(value >> (24 - 8 * i));
      if (!DecodesAsCompound(bad)) failed++;
    }
  }
  EXPECT_GT(failed, 0);
}

}  // namespace
}  // namespace localnfs::rpc
