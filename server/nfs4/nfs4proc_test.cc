// server/nfs4/nfs4proc_test.cc — the NFSv4 namespace and read-only ops (pseudofs.h,
// fattr.h, nfs4proc.h) as the server runs them: COMPOUNDs encoded with the generated
// routines, sent through a Dispatcher to an Nfs4Program whose Nfs4Services hold a real
// export table, handle key and a Backend (memory, and POSIX under the caching layer on
// the temporary directory), from a connection of 127.0.0.1 with
// AUTH_SYS credentials; the replies decoded and their attributes parsed here.
//
// The exports, below a temporary directory T: T/a/b (rw, no_root_squash), T/a/c (ro,
// root_squash) and T/d (only for another host: hidden from 127.0.0.1). The pseudo file
// system is "/", every component of T, and T/a.
#include <rpc/rpc.h>
#include <string.h>
#include <sys/stat.h>

#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "export_cache/export_spec.h"
#include "gtest/gtest.h"
#include "rpc/client.h"
#include "rpc/nfs4.h"
#include "server/nfs4/fattr.h"
#include "server/nfs4/nfs4proc_test_fixture.h"
#include "server/nfs4/pseudofs.h"

// A namespace of its own: unity builds put several test files in one unit.
namespace localnfs::server::nfs4::proc_test {
namespace {

using proc_fixture::AllKinds;
using proc_fixture::Bits;
using proc_fixture::Cred;
using proc_fixture::EncodeCompound;
using proc_fixture::Kind;
using proc_fixture::KindName;
using proc_fixture::Parse;
using proc_fixture::Parsed;
using proc_fixture::Reply;

// The components of an absolute path.
std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

// A COMPOUND built op by op (the strings and arrays it points to live here).
class Compound {
 public:
  Compound& Op(nfs_opnum4 op) {
    nfs_argop4 a{};
    a.argop = op;
    ops_.push_back(a);
    return *this;
  }
  Compound& PutFh(const std::string& fh) {
    const std::string& s = Keep(fh);
    nfs_argop4 a{};
    a.argop = OP_PUTFH;
    a.nfs_argop4_u.opputfh.object.nfs_fh4_len = static_cast<u_int>(s.size());
    a.nfs_argop4_u.opputfh.object.nfs_fh4_val = const_cast<char*>(s.data());
    ops_.push_back(a);
    return *this;
  }
  // LOOKUP, SECINFO or REMOVE of `name`.
  Compound& Named(nfs_opnum4 op, const std::string& name) {
    const std::string& s = Keep(name);
    nfs_argop4 a{};
    a.argop = op;
    component4* c = op == OP_LOOKUP   ? &a.nfs_argop4_u.oplookup.objname
                    : op == OP_SECINFO ? &a.nfs_argop4_u.opsecinfo.name
                                       : &a.nfs_argop4_u.opremove.target;
    c->utf8string_len = static_cast<u_int>(s.size());
    c->utf8string_val = const_cast<char*>(s.data());
    ops_.push_back(a);
    return *this;
  }
  Compound& Path(const std::vector<std::string>& names) {
    for (const std::string& n : names) Named(OP_LOOKUP, n);
    return *this;
  }
  Compound& GetAttr(const AttrBitmap& want) {
    nfs_argop4 a{};
    a.argop = OP_GETATTR;
    a.nfs_argop4_u.opgetattr.attr_request = Bitmap(want);
    ops_.push_back(a);
    return *this;
  }
  Compound& Access(uint32_t bits) {
    nfs_argop4 a{};
    a.argop = OP_ACCESS;
    a.nfs_argop4_u.opaccess.access = bits;
    ops_.push_back(a);
    return *this;
  }
  Compound& ReadDir(uint64_t cookie, const std::string& verf, uint32_t dircount,
                    uint32_t maxcount, const AttrBitmap& want) {
    nfs_argop4 a{};
    a.argop = OP_READDIR;
    READDIR4args& r = a.nfs_argop4_u.opreaddir;
    r.cookie = cookie;
    memcpy(r.cookieverf, verf.data(), std::min<size_t>(verf.size(), 8));
    r.dircount = dircount;
    r.maxcount = maxcount;
    r.attr_request = Bitmap(want);
    ops_.push_back(a);
    return *this;
  }
  // VERIFY or NVERIFY of `mask` with the values `vals`.
  Compound& Verify(nfs_opnum4 op, const AttrBitmap& mask, const std::string& vals) {
    const std::string& s = Keep(vals);
    nfs_argop4 a{};
    a.argop = op;
    fattr4* f = op == OP_VERIFY ? &a.nfs_argop4_u.opverify.obj_attributes
                                : &a.nfs_argop4_u.opnverify.obj_attributes;
    f->attrmask = Bitmap(mask);
    f->attr_vals.attrlist4_len = static_cast<u_int>(s.size());
    f->attr_vals.attrlist4_val = const_cast<char*>(s.data());
    ops_.push_back(a);
    return *this;
  }
  Compound& SecInfoNoName(secinfo_style4 style) {
    nfs_argop4 a{};
    a.argop = OP_SECINFO_NO_NAME;
    a.nfs_argop4_u.opsecinfo_no_name = style;
    ops_.push_back(a);
    return *this;
  }

  std::string Encode() { return EncodeCompound(ops_); }

 private:
  const std::string& Keep(const std::string& s) {
    strings_.push_back(s);
    return strings_.back();
  }
  bitmap4 Bitmap(const AttrBitmap& b) {
    words_.emplace_back(b.words.begin(), b.words.end());
    return bitmap4{3, words_.back().data()};
  }
  std::vector<nfs_argop4> ops_;
  std::deque<std::string> strings_;
  std::deque<std::vector<uint32_t>> words_;
};

const AttrBitmap kBasic = Bits({FATTR4_TYPE, FATTR4_CHANGE, FATTR4_SIZE, FATTR4_FSID,
                                FATTR4_FILEHANDLE, FATTR4_FILEID, FATTR4_MODE,
                                FATTR4_NUMLINKS, FATTR4_OWNER, FATTR4_OWNER_GROUP});

class Nfs4ProcTest : public proc_fixture::Nfs4ProcFixture {
 protected:
  void SetUp() override {
    MakeTree("nfs4proc", {"a", "a/b", "a/c", "d"}, 0755);
    StartBackend(Specs(/*with_c=*/true, /*with_b=*/true));
    StartProgram(Nfs4Program::Options{CompoundOptions{.require_sequence = false}});
    Connect();
    to_a_ = Split(tmp_->path());
    to_a_.push_back("a");
  }

  std::vector<exports::ExportSpec> Specs(bool with_c, bool with_b) {
    std::vector<exports::ExportSpec> specs;
    if (with_b) specs.push_back(Spec("a/b", false, exports::Squash::kNone));
    if (with_c) specs.push_back(Spec("a/c", true, exports::Squash::kRoot));
    specs.push_back(Spec("d", false, exports::Squash::kNone, "192.0.2.1"));
    return specs;
  }
  // Makes T/rel/name (a regular file, as root) through the backend.
  std::string MakeFile(const std::string& rel, const std::string& name, mode_t mode) {
    const Credentials root = Cred(0, 0);
    backend::SetAttrRequest attrs;
    attrs.mode = mode;
    auto made = backend_->Create(Root(rel), name, backend::CreateHow::kGuarded, attrs, 0,
                                 backend::Caller{root});
    EXPECT_TRUE(made.ok()) << made.status();
    Ref<exports::Export> exp = table_.FindByPath(tmp_->Sub(rel));
    return *key_->Encode(exp->id(), made->handle());
  }

  std::unique_ptr<Reply> Run(Compound& c, const Credentials& cred = Cred(1000, 1000)) {
    return Send(c.Encode(), cred);
  }
  nfsstat4 Status(Compound c, const Credentials& cred = Cred(1000, 1000)) {
    return (*Run(c, cred))->status;
  }
  // The handle at the end of the LOOKUP path `names` from the root.
  std::string HandleOf(const std::vector<std::string>& names) {
    Compound c;
    c.Op(OP_PUTROOTFH).Path(names).Op(OP_GETFH);
    auto r = Run(c);
    EXPECT_EQ((*r)->status, NFS4_OK);
    return (*r)->status == NFS4_OK ? FhAt(r, (*r)->resarray.resarray_len - 1) : "";
  }
  // The names a READDIR of `fh` lists, read `maxcount` bytes at a time.
  std::vector<std::string> List(const std::string& fh, uint32_t maxcount,
                                const AttrBitmap& want, int* calls = nullptr) {
    std::vector<std::string> names;
    uint64_t cookie = 0;
    std::string verf(8, '\0');
    for (int i = 0; i < 1000; ++i) {
      if (calls != nullptr) ++*calls;
      Compound c;
      c.PutFh(fh).ReadDir(cookie, verf, 0, maxcount, want);
      auto r = Run(c);
      EXPECT_EQ((*r)->status, NFS4_OK);
      if ((*r)->status != NFS4_OK) break;
      const READDIR4resok& ok =
          (*r)->resarray.resarray_val[1].nfs_resop4_u.opreaddir.READDIR4res_u.resok4;
      verf.assign(ok.cookieverf, 8);
      for (const entry4* e = ok.reply.entries; e != nullptr; e = e->nextentry) {
        names.emplace_back(e->name.utf8string_val, e->name.utf8string_len);
        EXPECT_GT(e->cookie, 2u);
        cookie = e->cookie;
        Parsed p = Parse(e->attrs);
        EXPECT_TRUE(p.ok) << names.back();
      }
      if (ok.reply.eof) return names;
    }
    ADD_FAILURE() << "no eof";
    return names;
  }

  std::vector<std::string> to_a_;  // the LOOKUP path from the root to T/a
};

std::vector<std::string> Plus(std::vector<std::string> v, const std::string& s) {
  v.push_back(s);
  return v;
}

TEST_P(Nfs4ProcTest, LookupFromTheRootLandsOnTheExportRootWithTheMountHandle) {
  EXPECT_EQ(HandleOf(Plus(to_a_, "b")), RootHandle("a/b"));
  EXPECT_EQ(HandleOf(Plus(to_a_, "c")), RootHandle("a/c"));
  // The pseudo handles are stable and never an export's.
  const std::string a = HandleOf(to_a_);
  EXPECT_EQ(HandleOf(to_a_), a);
  EXPECT_EQ(static_cast<uint8_t>(a[0]), kPseudoHandleVersion);
  EXPECT_LE(a.size(), size_t{NFS4_FHSIZE});
}

TEST_P(Nfs4ProcTest, AV3HandleWorksInPutfh) {
  Compound c;
  c.PutFh(RootHandle("a/b")).Op(OP_GETFH).GetAttr(Bits({FATTR4_TYPE}));
  auto r = Run(c);
  ASSERT_EQ((*r)->status, NFS4_OK);
  EXPECT_EQ(FhAt(r, 1), RootHandle("a/b"));
  EXPECT_EQ(AttrsAt(r, 2).num[FATTR4_TYPE], NF4DIR);
}

TEST_P(Nfs4ProcTest, AnExportTheClientMayNotSeeIsHidden) {
  const std::vector<std::string> to_t = Split(tmp_->path());
  // T lists a (b and c are below it) but not d (no rule for 127.0.0.1).
  EXPECT_EQ(List(HandleOf(to_t), 4096, Bits({FATTR4_RDATTR_ERROR, FATTR4_FILEID})),
            std::vector<std::string>{"a"});
  Compound c;
  c.Op(OP_PUTROOTFH).Path(Plus(to_t, "d"));
  EXPECT_EQ(Status(c), NFS4ERR_NOENT);
  // Its handle, had the client one, is refused as NFSv3 refuses it.
  Compound put;
  put.PutFh(RootHandle("d"));
  EXPECT_EQ(Status(put), NFS4ERR_ACCESS);
  // T/a lists both of its exports.
  std::vector<std::string> in_a = List(HandleOf(to_a_), 4096, kBasic);
  std::sort(in_a.begin(), in_a.end());
  EXPECT_EQ(in_a, (std::vector<std::string>{"b", "c"}));
}

TEST_P(Nfs4ProcTest, LookuppWalksBackUpToTheRoot) {
  const std::string a = HandleOf(to_a_);
  Compound c;
  c.PutFh(RootHandle("a/b")).Op(OP_LOOKUPP).Op(OP_GETFH);
  auto r = Run(c);
  ASSERT_EQ((*r)->status, NFS4_OK);
  EXPECT_EQ(FhAt(r, 2), a);
  // All the way up, then NOENT at the root.
  Compound up;
  up.Op(OP_PUTROOTFH).Op(OP_GETFH).PutFh(a);
  for (size_t i = 0; i < to_a_.size(); ++i) up.Op(OP_LOOKUPP);
  up.Op(OP_GETFH).Op(OP_LOOKUPP);
  r = Run(up);
  EXPECT_EQ((*r)->status, NFS4ERR_NOENT);
  const u_int n = (*r)->resarray.resarray_len;
  ASSERT_EQ(n, 4 + to_a_.size() + 1);
  EXPECT_EQ(FhAt(r, n - 2), FhAt(r, 1));
  // Within an export ".." is the parent directory.
  const Credentials root = Cred(0, 0);
  auto sub = backend_->Mkdir(Root("a/b"), "sub", {}, backend::Caller{root});
  ASSERT_TRUE(sub.ok());
  Compound in;
  in.PutFh(RootHandle("a/b")).Named(OP_LOOKUP, "sub").Op(OP_LOOKUPP).Op(OP_GETFH);
  r = Run(in);
  ASSERT_EQ((*r)->status, NFS4_OK);
  EXPECT_EQ(FhAt(r, 3), RootHandle("a/b"));
}

TEST_P(Nfs4ProcTest, GetattrOfPseudoAndRealObjectsDifferAcrossTheBoundary) {
  MakeFile("a/b", "f", 0640);
  Compound c;
  c.Op(OP_PUTROOTFH).Path(to_a_).GetAttr(kBasic).Named(OP_LOOKUP, "b").GetAttr(kBasic)
      .Named(OP_LOOKUP, "f").GetAttr(kBasic);
  auto r = Run(c);
  ASSERT_EQ((*r)->status, NFS4_OK);
  const u_int n = (*r)->resarray.resarray_len;
  Parsed pseudo = AttrsAt(r, n - 5), root = AttrsAt(r, n - 3), file = AttrsAt(r, n - 1);
  ASSERT_TRUE(pseudo.ok && root.ok && file.ok);
  EXPECT_EQ(pseudo.mask, kBasic);
  EXPECT_EQ(file.mask, kBasic);
  EXPECT_EQ(pseudo.num[FATTR4_TYPE], NF4DIR);
  EXPECT_EQ(pseudo.num[FATTR4_MODE], 0555u);
  EXPECT_EQ(pseudo.fsid, std::make_pair(kPseudoFsidMajor, kPseudoFsidMinor));
  EXPECT_EQ(pseudo.str[FATTR4_FILEHANDLE], HandleOf(to_a_));
  const uint64_t b_id = table_.FindByPath(tmp_->Sub("a/b"))->id();
  EXPECT_EQ(root.fsid, std::make_pair(b_id, uint64_t{0}));
  EXPECT_EQ(root.str[FATTR4_FILEHANDLE], RootHandle("a/b"));
  EXPECT_EQ(file.num[FATTR4_TYPE], NF4REG);
  EXPECT_EQ(file.num[FATTR4_MODE], 0640u);
  EXPECT_EQ(file.num[FATTR4_SIZE], 0u);
  EXPECT_EQ(file.num[FATTR4_NUMLINKS], 1u);
  EXPECT_EQ(file.str[FATTR4_OWNER], "0");
  EXPECT_EQ(file.str[FATTR4_OWNER_GROUP], "0");
  EXPECT_EQ(file.fsid, root.fsid);
  EXPECT_NE(file.num[FATTR4_FILEID], root.num[FATTR4_FILEID]);
  // Another export has another fsid.
  Compound other;
  other.PutFh(RootHandle("a/c")).GetAttr(Bits({FATTR4_FSID}));
  r = Run(other);
  ASSERT_EQ((*r)->status, NFS4_OK);
  EXPECT_NE(AttrsAt(r, 1).fsid, root.fsid);
}

TEST_P(Nfs4ProcTest, EverySupportedAttributeIsAnswered) {
  MakeFile("a/b", "f", 0644);
  Compound c;
  c.PutFh(RootHandle("a/b")).Named(OP_LOOKUP, "f").GetAttr(Bits({FATTR4_SUPPORTED_ATTRS}));
  auto r = Run(c);
  ASSERT_EQ((*r)->status, NFS4_OK);
  const fattr4& f =
      (*r)->resarray.resarray_val[2].nfs_resop4_u.opgetattr.GETATTR4res_u.resok4.obj_attributes;
  ASSERT_GE(f.attr_vals.attrlist4_len, 4u);
  // The value is a bitmap4: its word count, then the words.
  std::string_view v(f.attr_vals.attrlist4_val, f.attr_vals.attrlist4_len);
  auto word = [&](size_t i) {
    uint32_t x = 0;
    for (int k = 0; k < 4; ++k) x = (x << 8) | static_cast<uint8_t>(v[4 * i + k]);
    return x;
  };
  AttrBitmap supported;
  for (uint32_t i = 0; i < word(0) && i < 3; ++i) supported.words[i] = word(i + 1);
  EXPECT_EQ(supported, SupportedAttrs());
  for (uint32_t bit : {FATTR4_TYPE, FATTR4_FSID, FATTR4_LEASE_TIME, FATTR4_OWNER,
                       FATTR4_SPACE_TOTAL, FATTR4_MOUNTED_ON_FILEID, FATTR4_XATTR_SUPPORT})
    EXPECT_TRUE(supported.has(bit)) << bit;
  EXPECT_FALSE(supported.has(FATTR4_ACL));
  // Asked for everything (and more) but the write-only times, a file and a pseudo
  // directory answer all of it; asked for a write-only time, NFS4ERR_INVAL (as knfsd).
  AttrBitmap all;
  all.words = {~0u, ~0u, ~0u};
  AttrBitmap readable = SupportedAttrs();
  for (uint32_t bit : {FATTR4_TIME_ACCESS_SET, FATTR4_TIME_MODIFY_SET}) {
    EXPECT_TRUE(supported.has(bit)) << bit;
    all.words[bit / 32] &= ~(1u << (bit % 32));
    readable.words[bit / 32] &= ~(1u << (bit % 32));
  }
  for (const std::string& fh : {RootHandle("a/b"), HandleOf(to_a_)}) {
    Compound every;
    every.PutFh(fh).GetAttr(all);
    r = Run(every);
    ASSERT_EQ((*r)->status, NFS4_OK);
    const fattr4& got =
        (*r)->resarray.resarray_val[1].nfs_resop4_u.opgetattr.GETATTR4res_u.resok4.obj_attributes;
    EXPECT_EQ(BitmapFromWire(got.attrmask), readable);
    Compound write_only;
    write_only.PutFh(fh).GetAttr(Bits({FATTR4_TYPE, FATTR4_TIME_MODIFY_SET}));
    EXPECT_EQ(Status(write_only), NFS4ERR_INVAL);
  }
}

TEST_P(Nfs4ProcTest, ReaddirWithASmallMaxcountResumesWithoutMissesOrDuplicates) {
  std::set<std::string> made;
  for (int i = 0; i < 40; ++i) {
    const std::string name = "file-with-a-longish-name-" + std::to_string(i);
    MakeFile("a/b", name, 0644);
    made.insert(name);
  }
  int calls = 0;
  std::vector<std::string> names = List(RootHandle("a/b"), 600, kBasic, &calls);
  EXPECT_GT(calls, 5);
  EXPECT_EQ(names.size(), made.size());  // no duplicates, and no "." or ".."
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), made);
  // Only cookies and names asked for: a listing of its own.
  names = List(RootHandle("a/b"), 300, Bits({FATTR4_RDATTR_ERROR, FATTR4_FILEID}));
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), made);
}

TEST_P(Nfs4ProcTest, ReaddirKeepsWithinTheSessionsReplyBudget) {
  for (int i = 0; i < 100; ++i) MakeFile("a/b", "entry-" + std::to_string(i), 0644);
  Compound c;
  c.PutFh(RootHandle("a/b")).ReadDir(0, std::string(8, '\0'), 0, 1u << 20, kBasic);
  const std::string args = c.Encode();
  // The call carries the connection and credentials; the state is SEQUENCE's budget.
  rpc::CallAuth auth;
  auth.flavor = rpc::AuthFlavor::kSys;
  auth.cred = Cred(0, 0);
  std::unique_ptr<rpc::Call> call = dispatcher_->Receive(
      rpc::Client::EncodeCall(7, NFS4_PROGRAM, NFS_V4, NFSPROC4_COMPOUND, auth, args),
      conn_.get());
  ASSERT_TRUE(call);
  constexpr size_t kBudget = 3000;
  CompoundState cs;
  cs.call = call.get();
  cs.services = &services_;
  cs.reply_budget = kBudget;
  COMPOUND4res res{};
  const std::string_view ops = std::string_view(args).substr(12);  // tag "", minor, count
  ASSERT_TRUE(RunCompound(CompoundOptions{.require_sequence = false}, CompoundHeader{1, 2}, ops,
                          &res, cs));
  EXPECT_EQ(res.status, NFS4_OK);
  ASSERT_EQ(res.resarray.resarray_len, 2u);
  const READDIR4resok& ok = res.resarray.resarray_val[1].nfs_resop4_u.opreaddir.READDIR4res_u.resok4;
  int entries = 0;
  for (const entry4* e = ok.reply.entries; e != nullptr; e = e->nextentry) ++entries;
  EXPECT_GT(entries, 0);
  EXPECT_FALSE(ok.reply.eof);
  EXPECT_LE(xdr_sizeof(reinterpret_cast<xdrproc_t>(xdr_COMPOUND4res), &res), kBudget);
  xdr_free(reinterpret_cast<xdrproc_t>(xdr_COMPOUND4res), reinterpret_cast<char*>(&res));
}

TEST_P(Nfs4ProcTest, ReaddirErrors) {
  const std::string b = RootHandle("a/b");
  MakeFile("a/b", "f", 0644);
  Compound reserved;
  reserved.PutFh(b).ReadDir(1, std::string(8, '\0'), 0, 4096, kBasic);
  EXPECT_EQ(Status(reserved), NFS4ERR_BAD_COOKIE);
  Compound tiny;
  tiny.PutFh(b).ReadDir(0, std::string(8, '\0'), 0, 20, kBasic);
  EXPECT_EQ(Status(tiny), NFS4ERR_TOOSMALL);
  Compound file;
  file.PutFh(b).Named(OP_LOOKUP, "f").ReadDir(0, std::string(8, '\0'), 0, 4096, kBasic);
  EXPECT_EQ(Status(file), NFS4ERR_NOTDIR);
}

// pynfs RDDR7, RDDR8: maxcount bounds the whole READDIR4resok, whose smallest form (the
// verifier, no entry, eof) takes 16 bytes: below that NFS4ERR_TOOSMALL even for an empty
// directory, as knfsd's nfsd4_encode_readdir; 16 lists the empty directory.
TEST_P(Nfs4ProcTest, ReaddirMaxcountBelowTheEmptyReplyIsTooSmall) {
  const Credentials root = Cred(0, 0);
  ASSERT_TRUE(backend_->Mkdir(Root("a/b"), "empty", {}, backend::Caller{root}).ok());
  const std::string b = RootHandle("a/b");
  auto readdir = [&](uint32_t maxcount, const AttrBitmap& want) {
    Compound c;
    c.PutFh(b).Named(OP_LOOKUP, "empty").ReadDir(0, std::string(8, '\0'), 0, maxcount, want);
    return Status(c);
  };
  EXPECT_EQ(readdir(0, AttrBitmap{}), NFS4ERR_TOOSMALL);
  EXPECT_EQ(readdir(15, AttrBitmap{}), NFS4ERR_TOOSMALL);
  EXPECT_EQ(readdir(15, kBasic), NFS4ERR_TOOSMALL);
  EXPECT_EQ(readdir(16, AttrBitmap{}), NFS4_OK);
  EXPECT_EQ(readdir(16, kBasic), NFS4_OK);
  // A pseudo directory answers so too.
  Compound pseudo;
  pseudo.Op(OP_PUTROOTFH).ReadDir(0, std::string(8, '\0'), 0, 15, AttrBitmap{});
  EXPECT_EQ(Status(pseudo), NFS4ERR_TOOSMALL);
}

TEST_P(Nfs4ProcTest, LookupNameErrors) {
  MakeFile("a/b", "f", 0644);
  const std::string b = RootHandle("a/b");
  auto lookup = [&](const std::string& name) {
    Compound c;
    c.PutFh(b).Named(OP_LOOKUP, name);
    return Status(c);
  };
  EXPECT_EQ(lookup(""), NFS4ERR_INVAL);
  EXPECT_EQ(lookup("."), NFS4ERR_BADNAME);
  EXPECT_EQ(lookup(".."), NFS4ERR_BADNAME);
  EXPECT_EQ(lookup("x/y"), NFS4ERR_BADNAME);
  EXPECT_EQ(lookup(std::string(256, 'n')), NFS4ERR_NAMETOOLONG);
  EXPECT_EQ(lookup("nope"), NFS4ERR_NOENT);
  Compound notdir;
  notdir.PutFh(b).Named(OP_LOOKUP, "f").Named(OP_LOOKUP, "x");
  EXPECT_EQ(Status(notdir), NFS4ERR_NOTDIR);
  Compound pseudo;
  pseudo.Op(OP_PUTROOTFH).Named(OP_LOOKUP, "no-such-component");
  EXPECT_EQ(Status(pseudo), NFS4ERR_NOENT);
}

TEST_P(Nfs4ProcTest, ForgedOrGarbageHandlesAreBadhandle) {
  for (std::string fh : {RootHandle("a/b"), HandleOf(to_a_)}) {
    fh[fh.size() / 2] ^= 1;
    Compound c;
    c.PutFh(fh);
    EXPECT_EQ(Status(c), NFS4ERR_BADHANDLE);
  }
  Compound garbage;
  garbage.PutFh("garbage");
  EXPECT_EQ(Status(garbage), NFS4ERR_BADHANDLE);
}

TEST_P(Nfs4ProcTest, RandomHandlesAreBadhandleNeverAnObject) {
  uint64_t x = 0x9e3779b97f4a7c15ull;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (int i = 0; i < 500; ++i) {
    std::string fh(1 + next() % NFS4_FHSIZE, '\0');
    for (char& c : fh) c = static_cast<char>(next());
    // Half of them with a real format's version byte and length.
    if (i % 2 == 0) fh[0] = static_cast<char>(i % 4 == 0 ? kPseudoHandleVersion : kHandleVersion);
    if (i % 4 == 0) fh.resize(17);
    Compound c;
    c.PutFh(fh).Op(OP_GETFH);
    EXPECT_EQ(Status(c), NFS4ERR_BADHANDLE) << i;
  }
}

TEST_P(Nfs4ProcTest, ReaddirGivesTheHandlesAndFileidsLookupGives) {
  MakeFile("a/b", "f", 0644);
  const AttrBitmap want = Bits({FATTR4_FILEHANDLE, FATTR4_FILEID, FATTR4_FSID});
  for (const std::vector<std::string>& dir : {to_a_, Plus(to_a_, "b")}) {
    Compound list;
    list.Op(OP_PUTROOTFH).Path(dir).ReadDir(0, std::string(8, '\0'), 0, 8192, want);
    auto r = Run(list);
    ASSERT_EQ((*r)->status, NFS4_OK);
    const READDIR4resok& ok = (*r)->resarray.resarray_val[(*r)->resarray.resarray_len - 1]
                                  .nfs_resop4_u.opreaddir.READDIR4res_u.resok4;
    int entries = 0;
    for (const entry4* e = ok.reply.entries; e != nullptr; e = e->nextentry, ++entries) {
      const std::string name(e->name.utf8string_val, e->name.utf8string_len);
      Parsed listed = Parse(e->attrs);
      Compound look;
      look.Op(OP_PUTROOTFH).Path(Plus(dir, name)).GetAttr(want);
      auto l = Run(look);
      ASSERT_EQ((*l)->status, NFS4_OK) << name;
      Parsed looked = AttrsAt(l, (*l)->resarray.resarray_len - 1);
      EXPECT_EQ(listed.str[FATTR4_FILEHANDLE], looked.str[FATTR4_FILEHANDLE]) << name;
      EXPECT_EQ(listed.num[FATTR4_FILEID], looked.num[FATTR4_FILEID]) << name;
      EXPECT_EQ(listed.fsid, looked.fsid) << name;
    }
    EXPECT_EQ(entries, dir == to_a_ ? 2 : 1);  // b and c; f (and no "." or "..")
  }
}

TEST_P(Nfs4ProcTest, ARemovedFileIsStale) {
  const std::string f = MakeFile("a/b", "gone", 0644);
  ASSERT_TRUE(backend_->Remove(Root("a/b"), "gone", backend::RemoveKind::kNonDirectory,
                               backend::Caller{Cred(0, 0)})
                  .ok());
  Compound c;
  c.PutFh(f).GetAttr(kBasic);
  EXPECT_EQ(Status(c), NFS4ERR_STALE);
}

TEST_P(Nfs4ProcTest, ReloadKeepsPseudoHandlesWhileTheirPathsStay) {
  const std::string a = HandleOf(to_a_);
  const std::string c_root = RootHandle("a/c");
  ASSERT_TRUE(table_.Load(Specs(/*with_c=*/false, /*with_b=*/true)).ok());
  Compound still;
  still.PutFh(a).Op(OP_GETFH);
  EXPECT_EQ(Status(still), NFS4_OK);
  EXPECT_EQ(List(a, 4096, kBasic), std::vector<std::string>{"b"});
  Compound gone;
  gone.PutFh(c_root);
  EXPECT_EQ(Status(gone), NFS4ERR_STALE);
  ASSERT_TRUE(table_.Load(Specs(/*with_c=*/false, /*with_b=*/false)).ok());
  Compound pseudo_gone;
  pseudo_gone.PutFh(a);
  EXPECT_EQ(Status(pseudo_gone), NFS4ERR_STALE);
}

TEST_P(Nfs4ProcTest, ChangesAreRofsOnPseudoDirectoriesAndReadOnlyExports) {
  Compound pseudo;
  pseudo.PutFh(HandleOf(to_a_)).Named(OP_REMOVE, "b");
  EXPECT_EQ(Status(pseudo), NFS4ERR_ROFS);
  Compound ro;
  ro.PutFh(RootHandle("a/c")).Named(OP_REMOVE, "x");
  EXPECT_EQ(Status(ro), NFS4ERR_ROFS);
  // A writable export reaches the op.
  Compound rw;
  rw.PutFh(RootHandle("a/b")).Named(OP_REMOVE, "x");
  EXPECT_EQ(Status(rw), NFS4ERR_NOENT);
}

TEST_P(Nfs4ProcTest, AccessIsJudgedForTheSquashedUser) {
  constexpr uint32_t kAll = ACCESS4_READ | ACCESS4_LOOKUP | ACCESS4_MODIFY | ACCESS4_EXTEND |
                            ACCESS4_DELETE | ACCESS4_EXECUTE;
  auto access = [&](const std::string& fh, const std::string& name, const Credentials& cred) {
    Compound c;
    c.PutFh(fh);
    if (!name.empty()) c.Named(OP_LOOKUP, name);
    c.Access(kAll);
    auto r = Run(c, cred);
    EXPECT_EQ((*r)->status, NFS4_OK);
    const ACCESS4resok& ok = (*r)->resarray.resarray_val[(*r)->resarray.resarray_len - 1]
                                 .nfs_resop4_u.opaccess.ACCESS4res_u.resok4;
    // Only the bits meaningful for the type are supported (pynfs ACC2*): a file's no
    // LOOKUP or DELETE, a directory's no EXECUTE; the names here are files.
    EXPECT_EQ(ok.supported, name.empty() ? kAll & ~ACCESS4_EXECUTE
                                         : kAll & ~(ACCESS4_LOOKUP | ACCESS4_DELETE));
    EXPECT_EQ(ok.access & ~ok.supported, 0u);
    return ok.access;
  };
  MakeFile("a/b", "secret", 0600);
  MakeFile("a/c", "secret", 0600);
  // no_root_squash: root reads and writes its 0600 file; another user does neither.
  EXPECT_EQ(access(RootHandle("a/b"), "secret", Cred(0, 0)),
            ACCESS4_READ | ACCESS4_MODIFY | ACCESS4_EXTEND);
  EXPECT_EQ(access(RootHandle("a/b"), "secret", Cred(1000, 1000)), 0u);
  // root_squash (and ro): root is nobody there.
  EXPECT_EQ(access(RootHandle("a/c"), "secret", Cred(0, 0)), 0u);
  EXPECT_EQ(access(RootHandle("a/c"), "", Cred(0, 0)), ACCESS4_READ | ACCESS4_LOOKUP);
  // A pseudo directory: read and search only.
  EXPECT_EQ(access(HandleOf(to_a_), "", Cred(0, 0)), ACCESS4_READ | ACCESS4_LOOKUP);
}

TEST_P(Nfs4ProcTest, VerifyAndNverifyCompareWithTheObjectsAttributes) {
  const std::string f = MakeFile("a/b", "f", 0640);
  const AttrBitmap want = Bits({FATTR4_TYPE, FATTR4_SIZE, FATTR4_MODE, FATTR4_OWNER});
  Compound get;
  get.PutFh(f).GetAttr(want);
  auto r = Run(get);
  ASSERT_EQ((*r)->status, NFS4_OK);
  const fattr4& got =
      (*r)->resarray.resarray_val[1].nfs_resop4_u.opgetattr.GETATTR4res_u.resok4.obj_attributes;
  const std::string vals(got.attr_vals.attrlist4_val, got.attr_vals.attrlist4_len);
  std::string other = vals;
  other[4 + 8 + 3] ^= 1;  // the mode's last byte (after type and size)
  auto run = [&](nfs_opnum4 op, const AttrBitmap& mask, const std::string& v) {
    Compound c;
    c.PutFh(f).Verify(op, mask, v).Op(OP_GETFH);
    return Status(c);
  };
  EXPECT_EQ(run(OP_VERIFY, want, vals), NFS4_OK);
  EXPECT_EQ(run(OP_NVERIFY, want, vals), NFS4ERR_SAME);
  EXPECT_EQ(run(OP_VERIFY, want, other), NFS4ERR_NOT_SAME);
  EXPECT_EQ(run(OP_NVERIFY, want, other), NFS4_OK);
  EXPECT_EQ(run(OP_VERIFY, Bits({FATTR4_ACL}), ""), NFS4ERR_ATTRNOTSUPP);
  EXPECT_EQ(run(OP_VERIFY, Bits({FATTR4_RDATTR_ERROR}), std::string(4, '\0')), NFS4ERR_INVAL);
}

TEST_P(Nfs4ProcTest, SecinfoAnswersAuthSysAndConsumesTheFilehandle) {
  Compound c;
  c.Op(OP_PUTROOTFH).Named(OP_SECINFO, to_a_[0]).Op(OP_GETFH);
  auto r = Run(c);
  EXPECT_EQ(Statuses(r), (std::vector<nfsstat4>{NFS4_OK, NFS4_OK, NFS4ERR_NOFILEHANDLE}));
  const SECINFO4resok& ok = (*r)->resarray.resarray_val[1].nfs_resop4_u.opsecinfo.SECINFO4res_u.resok4;
  ASSERT_EQ(ok.SECINFO4resok_len, 1u);
  EXPECT_EQ(ok.SECINFO4resok_val[0].flavor, static_cast<uint32_t>(AUTH_SYS));
  Compound missing;
  missing.Op(OP_PUTROOTFH).Named(OP_SECINFO, "no-such-component");
  EXPECT_EQ(Status(missing), NFS4ERR_NOENT);
  Compound noname;
  noname.PutFh(RootHandle("a/b")).SecInfoNoName(SECINFO_STYLE4_PARENT).Op(OP_GETFH);
  r = Run(noname);
  EXPECT_EQ(Statuses(r), (std::vector<nfsstat4>{NFS4_OK, NFS4_OK, NFS4ERR_NOFILEHANDLE}));
  Compound at_root;
  at_root.Op(OP_PUTROOTFH).SecInfoNoName(SECINFO_STYLE4_PARENT);
  EXPECT_EQ(Status(at_root), NFS4ERR_NOENT);
}

TEST_P(Nfs4ProcTest, ReadlinkGivesTheTarget) {
  auto link = backend_->Symlink(Root("a/b"), "l", "some/target", {}, backend::Caller{Cred(0, 0)});
  ASSERT_TRUE(link.ok()) << link.status();
  Compound c;
  c.PutFh(RootHandle("a/b")).Named(OP_LOOKUP, "l").Op(OP_READLINK);
  auto r = Run(c);
  ASSERT_EQ((*r)->status, NFS4_OK);
  const linktext4& t =
      (*r)->resarray.resarray_val[2].nfs_resop4_u.opreadlink.READLINK4res_u.resok4.link;
  EXPECT_EQ(std::string(t.linktext4_val, t.linktext4_len), "some/target");
  Compound dir;
  dir.PutFh(RootHandle("a/b")).Op(OP_READLINK);
  EXPECT_EQ(Status(dir), NFS4ERR_INVAL);
  Compound through;
  through.PutFh(RootHandle("a/b")).Named(OP_LOOKUP, "l").Named(OP_LOOKUP, "x");
  EXPECT_EQ(Status(through), NFS4ERR_SYMLINK);
}

TEST_P(Nfs4ProcTest, ASecureExportRefusesAnUnprivilegedPortAsNfsv3Does) {
  const std::string a = HandleOf(to_a_);
  const std::string b = RootHandle("a/b");
  std::vector<exports::ExportSpec> specs = Specs(/*with_c=*/true, /*with_b=*/true);
  specs[0].rules[0].options.secure = true;  // a/b
  ASSERT_TRUE(table_.Load(specs).ok());
  PeerAddress peer, local;
  ASSERT_TRUE(PeerAddress::Parse("127.0.0.1", 40000, &peer));
  ASSERT_TRUE(PeerAddress::Parse("127.0.0.1", 2049, &local));
  conn_ = std::make_unique<rpc::ConnectionInfo>(2, peer, local);
  Compound lookup;
  lookup.PutFh(a).Named(OP_LOOKUP, "b");
  EXPECT_EQ(Status(lookup), NFS4ERR_PERM);
  Compound put;
  put.PutFh(b);
  EXPECT_EQ(Status(put), NFS4ERR_PERM);
  Compound other;  // c is not secure
  other.PutFh(a).Named(OP_LOOKUP, "c");
  EXPECT_EQ(Status(other), NFS4_OK);
}

TEST_P(Nfs4ProcTest, AnExportOfSlashIsTheRootItself) {
  if (GetParam() != Kind::kMemory) GTEST_SKIP() << "would serve the machine's /: memory only";
  exports::ExportSpec spec;
  spec.path = "/";
  exports::ClientRule rule;
  rule.pattern = *exports::ParseClientPattern("127.0.0.1");
  rule.options.read_only = true;
  spec.rules.push_back(rule);
  ASSERT_TRUE(table_.Load({spec}).ok());
  Ref<exports::Export> exp = table_.FindByPath("/");
  ASSERT_TRUE(exp);
  auto root = backend_->OpenPath(*exp, "");
  ASSERT_TRUE(root.ok());
  Compound c;
  c.Op(OP_PUTROOTFH).Op(OP_GETFH).GetAttr(Bits({FATTR4_FSID})).Op(OP_LOOKUPP);
  auto r = Run(c);
  EXPECT_EQ(Statuses(r), (std::vector<nfsstat4>{NFS4_OK, NFS4_OK, NFS4_OK, NFS4ERR_NOENT}));
  EXPECT_EQ(FhAt(r, 1), *key_->Encode(exp->id(), root->handle()));
  EXPECT_EQ(AttrsAt(r, 2).fsid, std::make_pair(uint64_t{exp->id()}, uint64_t{0}));
}

INSTANTIATE_TEST_SUITE_P(Backends, Nfs4ProcTest, AllKinds(), KindName);

}  // namespace
}  // namespace localnfs::server::nfs4::proc_test
