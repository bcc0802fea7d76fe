// server/nfs4/nfs4proc_ns_test.cc — the NFSv4 ops that change the namespace and the
// attributes, and NFSv4.2's content ops (nfs4proc_ns.h), as the server runs them:
// COMPOUNDs encoded with the generated routines, sent through a Dispatcher to an
// Nfs4Program whose Nfs4Services hold a real export table, handle key, Backend (memory,
// and POSIX under the caching layer on a temporary directory) and OpenStateTable, from
// 127.0.0.1 with AUTH_SYS credentials. What the ops did is checked through GETATTR,
// LOOKUP, READLINK and the Backend itself; what they committed through a CommitObserver.
//
// The exports, below a temporary directory T: T/a/b (rw, no_root_squash, sync), T/a/c
// (ro, root_squash) and T/a/e (rw, all_squash, async); every export root is mode 0777.
#include <rpc/rpc.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "export_cache/export_spec.h"
#include "gtest/gtest.h"
#include "rpc/client.h"
#include "rpc/nfs4.h"
#include "server/backend/memory_backend.h"
#include "server/nfs4/client_records.h"
#include "server/nfs4/fattr.h"
#include "server/nfs4/nfs4proc_test_fixture.h"
#include "server/nfs4/open_state.h"
#include "server/nfs4/pseudofs.h"
#include "server/nfs4/state.h"

// A namespace of its own: unity builds put several test files in one unit.
namespace localnfs::server::nfs4::proc_ns_test {
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

const Credentials kRoot = Cred(0, 0);

// XDR values of an attrlist4, in the order the bits are set.
std::string U32(uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  return std::string(b, 4);
}
std::string U64(uint64_t v) {
  return U32(static_cast<uint32_t>(v >> 32)) + U32(static_cast<uint32_t>(v));
}
std::string Str(const std::string& s) {
  return U32(static_cast<uint32_t>(s.size())) + s + std::string((4 - s.size() % 4) % 4, '\0');
}

// A settable attribute set: its bitmap and values (bits must be added in ascending order).
struct Attrs4 {
  AttrBitmap mask;
  std::string vals;
  Attrs4& Mode(uint32_t mode) { return Add(FATTR4_MODE, U32(mode)); }
  Attrs4& Size(uint64_t size) { return Add(FATTR4_SIZE, U64(size)); }
  Attrs4& Owner(const std::string& s) { return Add(FATTR4_OWNER, Str(s)); }
  Attrs4& Group(const std::string& s) { return Add(FATTR4_OWNER_GROUP, Str(s)); }
  Attrs4& Add(uint32_t bit, const std::string& v) {
    mask.set(bit);
    vals += v;
    return *this;
  }
};

const std::string kAnonymous(12, '\0');  // "other" of the anonymous stateid (seqid 0)

// A COMPOUND built op by op (the strings and arrays it points to live here).
class Compound {
 public:
  explicit Compound(uint32_t minor = 2) : minor_(minor) {}

  Compound& Op(nfs_opnum4 op) {
    nfs_argop4 a{};
    a.argop = op;
    return Push(a);
  }
  Compound& PutFh(const std::string& fh) {
    nfs_argop4 a{};
    a.argop = OP_PUTFH;
    SetBytes(fh, &a.nfs_argop4_u.opputfh.object.nfs_fh4_len,
             &a.nfs_argop4_u.opputfh.object.nfs_fh4_val);
    return Push(a);
  }
  Compound& Lookup(const std::string& name) {
    nfs_argop4 a{};
    a.argop = OP_LOOKUP;
    SetName(name, &a.nfs_argop4_u.oplookup.objname);
    return Push(a);
  }
  Compound& GetAttr(const AttrBitmap& want) {
    nfs_argop4 a{};
    a.argop = OP_GETATTR;
    a.nfs_argop4_u.opgetattr.attr_request = Bitmap(want);
    return Push(a);
  }
  Compound& Create(nfs_ftype4 type, const std::string& name, const Attrs4& attrs = {},
                   const std::string& link = "", uint32_t major = 0, uint32_t minor = 0) {
    nfs_argop4 a{};
    a.argop = OP_CREATE;
    CREATE4args& c = a.nfs_argop4_u.opcreate;
    c.objtype.type = type;
    if (type == NF4LNK)
      SetBytes(link, &c.objtype.createtype4_u.linkdata.linktext4_len,
               &c.objtype.createtype4_u.linkdata.linktext4_val);
    if (type == NF4BLK || type == NF4CHR) {
      c.objtype.createtype4_u.devdata.specdata1 = major;
      c.objtype.createtype4_u.devdata.specdata2 = minor;
    }
    SetName(name, &c.objname);
    SetFattr(attrs, &c.createattrs);
    return Push(a);
  }
  Compound& Remove(const std::string& name) {
    nfs_argop4 a{};
    a.argop = OP_REMOVE;
    SetName(name, &a.nfs_argop4_u.opremove.target);
    return Push(a);
  }
  Compound& Rename(const std::string& from, const std::string& to) {
    nfs_argop4 a{};
    a.argop = OP_RENAME;
    SetName(from, &a.nfs_argop4_u.oprename.oldname);
    SetName(to, &a.nfs_argop4_u.oprename.newname);
    return Push(a);
  }
  Compound& Link(const std::string& name) {
    nfs_argop4 a{};
    a.argop = OP_LINK;
    SetName(name, &a.nfs_argop4_u.oplink.newname);
    return Push(a);
  }
  Compound& SetAttr(const Attrs4& attrs, const stateid4& sid = {}) {
    nfs_argop4 a{};
    a.argop = OP_SETATTR;
    a.nfs_argop4_u.opsetattr.stateid = sid;
    SetFattr(attrs, &a.nfs_argop4_u.opsetattr.obj_attributes);
    return Push(a);
  }
  Compound& Seek(uint64_t offset, data_content4 what) {
    nfs_argop4 a{};
    a.argop = OP_SEEK;
    a.nfs_argop4_u.opseek.sa_offset = offset;
    a.nfs_argop4_u.opseek.sa_what = what;
    return Push(a);
  }
  Compound& Allocate(nfs_opnum4 op, uint64_t offset, uint64_t length, const stateid4& sid = {}) {
    nfs_argop4 a{};
    a.argop = op;
    if (op == OP_ALLOCATE) {
      a.nfs_argop4_u.opallocate = ALLOCATE4args{sid, offset, length};
    } else {
      a.nfs_argop4_u.opdeallocate = DEALLOCATE4args{sid, offset, length};
    }
    return Push(a);
  }
  Compound& Copy(uint64_t src_offset, uint64_t dst_offset, uint64_t count,
                 bool source_server = false) {
    nfs_argop4 a{};
    a.argop = OP_COPY;
    COPY4args& c = a.nfs_argop4_u.opcopy;
    c.ca_src_offset = src_offset;
    c.ca_dst_offset = dst_offset;
    c.ca_count = count;
    c.ca_synchronous = FALSE;  // the server answers synchronously anyway
    if (source_server) {
      locs_.emplace_back(1);
      netloc4& n = locs_.back()[0];
      n.nl_type = NL4_NAME;
      SetName("other.example", &n.netloc4_u.nl_name);
      c.ca_source_server.ca_source_server_len = 1;
      c.ca_source_server.ca_source_server_val = locs_.back().data();
    }
    return Push(a);
  }
  Compound& Clone(uint64_t src_offset, uint64_t dst_offset, uint64_t count) {
    nfs_argop4 a{};
    a.argop = OP_CLONE;
    a.nfs_argop4_u.opclone.cl_src_offset = src_offset;
    a.nfs_argop4_u.opclone.cl_dst_offset = dst_offset;
    a.nfs_argop4_u.opclone.cl_count = count;
    return Push(a);
  }
  Compound& ReadPlus(uint64_t offset, uint32_t count) {
    nfs_argop4 a{};
    a.argop = OP_READ_PLUS;
    a.nfs_argop4_u.opread_plus.rpa_offset = offset;
    a.nfs_argop4_u.opread_plus.rpa_count = count;
    return Push(a);
  }
  Compound& Verify(const AttrBitmap& mask, const std::string& vals) {
    nfs_argop4 a{};
    a.argop = OP_VERIFY;
    SetFattr(Attrs4{mask, vals}, &a.nfs_argop4_u.opverify.obj_attributes);
    return Push(a);
  }
  // The stateid of the last op pushed that carries one.
  Compound& WithStateId(const stateid4& sid) {
    nfs_argop4& a = ops_.back();
    switch (a.argop) {
      case OP_SETATTR:
        a.nfs_argop4_u.opsetattr.stateid = sid;
        break;
      case OP_SEEK:
        a.nfs_argop4_u.opseek.sa_stateid = sid;
        break;
      case OP_READ_PLUS:
        a.nfs_argop4_u.opread_plus.rpa_stateid = sid;
        break;
      case OP_ALLOCATE:
        a.nfs_argop4_u.opallocate.aa_stateid = sid;
        break;
      case OP_DEALLOCATE:
        a.nfs_argop4_u.opdeallocate.da_stateid = sid;
        break;
      case OP_COPY:
        a.nfs_argop4_u.opcopy.ca_dst_stateid = sid;
        break;
      case OP_CLONE:
        a.nfs_argop4_u.opclone.cl_dst_stateid = sid;
        break;
      default:
        ADD_FAILURE() << "no stateid in op " << a.argop;
    }
    return *this;
  }

  // An op with arguments made by the caller (pointing to memory that outlives Encode).
  Compound& Raw(const nfs_argop4& a) { return Push(a); }

  std::string Encode() { return EncodeCompound(ops_, minor_); }

 private:
  Compound& Push(const nfs_argop4& a) {
    ops_.push_back(a);
    return *this;
  }
  const std::string& Keep(const std::string& s) {
    strings_.push_back(s);
    return strings_.back();
  }
  void SetBytes(const std::string& s, u_int* len, char** val) {
    const std::string& k = Keep(s);
    *len = static_cast<u_int>(k.size());
    *val = const_cast<char*>(k.data());
  }
  void SetName(const std::string& s, utf8string* out) {
    SetBytes(s, &out->utf8string_len, &out->utf8string_val);
  }
  void SetFattr(const Attrs4& attrs, fattr4* out) {
    out->attrmask = Bitmap(attrs.mask);
    SetBytes(attrs.vals, &out->attr_vals.attrlist4_len, &out->attr_vals.attrlist4_val);
  }
  bitmap4 Bitmap(const AttrBitmap& b) {
    words_.emplace_back(b.words.begin(), b.words.end());
    return bitmap4{3, words_.back().data()};
  }
  uint32_t minor_;
  std::vector<nfs_argop4> ops_;
  std::deque<std::string> strings_;
  std::deque<std::vector<uint32_t>> words_;
  std::deque<std::vector<netloc4>> locs_;
};

// Records what a backend commits.
class Commits : public backend::CommitObserver {
 public:
  void Committed(const backend::CommitRecord& r) override {
    absl::MutexLock l(&mu_);
    records_.push_back(r);
  }
  std::vector<backend::CommitRecord> Take() {
    absl::MutexLock l(&mu_);
    return std::move(records_);
  }

 private:
  absl::Mutex mu_;
  std::vector<backend::CommitRecord> records_ ABSL_GUARDED_BY(mu_);
};
bool Has(const std::vector<backend::CommitRecord>& records, uint64_t fileid) {
  for (const auto& r : records)
    if (r.fileid == fileid) return true;
  return false;
}

class Nfs4ProcNsTest : public proc_fixture::Nfs4ProcFixture {
 protected:
  void SetUp() override {
    MakeTree("nfs4proc-ns", {"a", "a/b", "a/c", "a/e"}, 0777, /*chmod_too=*/true);
    backend::MemoryBackendOptions memory;
    memory.root_mode = 0777;
    StartBackend(Specs(), memory);
    backend_->set_commit_observer(&commits_);
    open_state_ = std::make_unique<OpenStateTable>(*backend_, OpenStateTable::Options{});
    services_.open_state = open_state_.get();
    StartProgram(Nfs4Program::Options{CompoundOptions{.require_sequence = false}});
    Connect();
  }

  void TearDown() override {
    StopProgram();
    open_state_.reset();
    Nfs4ProcFixture::TearDown();
  }

  std::vector<exports::ExportSpec> Specs() {
    auto add = [&](const char* rel, bool ro, exports::Squash squash, bool sync) {
      exports::ExportSpec spec = Spec(rel, ro, squash);
      spec.rules[0].options.sync = sync;
      return spec;
    };
    return {add("a/b", false, exports::Squash::kNone, true),
            add("a/c", true, exports::Squash::kRoot, true),
            add("a/e", false, exports::Squash::kAll, false)};
  }

  // The object `name` in the root of export T/rel.
  absl::StatusOr<backend::Object> Find(const std::string& rel, const std::string& name) {
    return backend_->Lookup(Root(rel), name, kRoot);
  }
  // Makes T/rel/name, a regular file with `data` (as `owner`), and returns its handle.
  std::string MakeFile(const std::string& rel, const std::string& name,
                       const std::string& data = "", mode_t mode = 0644,
                       const Credentials& owner = kRoot) {
    backend::SetAttrRequest attrs;
    attrs.mode = mode;
    auto made = backend_->Create(Root(rel), name, backend::CreateHow::kGuarded, attrs, 0,
                                 backend::Caller{owner});
    EXPECT_TRUE(made.ok()) << made.status();
    if (!made.ok()) return "";
    if (!data.empty()) {
      auto w = backend_->Write(*made, kRoot, 0, absl::MakeConstSpan(data.data(), data.size()),
                               backend::Stability::kFileSync);
      EXPECT_TRUE(w.ok() && w->count == data.size());
    }
    return ExportHandle(rel, *made);
  }
  // The contents of T/rel/name, through the Backend.
  std::string Contents(const std::string& rel, const std::string& name) {
    auto obj = Find(rel, name);
    EXPECT_TRUE(obj.ok()) << obj.status();
    if (!obj.ok()) return "<none>";
    std::string out(obj->attrs().size, '\0');
    size_t at = 0;
    while (at < out.size()) {
      auto r = backend_->Read(*obj, kRoot, at, absl::MakeSpan(out.data() + at, out.size() - at));
      EXPECT_TRUE(r.ok());
      if (!r.ok() || r->count == 0) break;
      at += r->count;
    }
    return out;
  }
  // Sets the size of T/rel/name (as root): growing leaves a hole.
  void Truncate(const std::string& rel, const std::string& name, uint64_t size) {
    auto obj = Find(rel, name);
    ASSERT_TRUE(obj.ok());
    backend::SetAttrRequest req;
    req.size = size;
    ASSERT_TRUE(backend_->SetAttr(*obj, req, std::nullopt, backend::Caller{kRoot}).ok());
  }

  std::unique_ptr<Reply> Run(Compound& c, const Credentials& cred = kRoot) {
    return RunBytes(c.Encode(), cred);
  }
  // A COMPOUND's encoded arguments as they are.
  std::unique_ptr<Reply> RunBytes(const std::string& args, const Credentials& cred = kRoot) {
    return Send(args, cred);
  }
  nfsstat4 Status(Compound c, const Credentials& cred = kRoot) { return (*Run(c, cred))->status; }
  // The attributes `want` of the object at handle `fh`.
  Parsed AttrsOf(const std::string& fh, const AttrBitmap& want) {
    Compound c;
    c.PutFh(fh).GetAttr(want);
    auto r = Run(c);
    EXPECT_EQ((*r)->status, NFS4_OK);
    return (*r)->status == NFS4_OK ? AttrsAt(r, 1) : Parsed{};
  }
  // The handle of `name` in the directory `dir_fh`; "" when LOOKUP fails.
  std::string LookupFh(const std::string& dir_fh, const std::string& name) {
    Compound c;
    c.PutFh(dir_fh).Lookup(name).Op(OP_GETFH);
    auto r = Run(c);
    return (*r)->status == NFS4_OK ? FhAt(r, 2) : "";
  }
  // The bytes a READ_PLUS of (offset, count) answers, holes filled with zeros, and the
  // segments (true: data) and eof.
  struct Plus {
    nfsstat4 status = NFS4_OK;
    std::string bytes;
    std::vector<bool> segments;
    bool eof = false;
  };
  Plus ReadPlus(const std::string& fh, uint64_t offset, uint32_t count) {
    Compound c;
    c.PutFh(fh).ReadPlus(offset, count);
    auto r = Run(c);
    Plus p;
    p.status = (*r)->status;
    if (p.status != NFS4_OK) return p;
    const read_plus_res4& ok = At(r, 1).nfs_resop4_u.opread_plus.READ_PLUS4res_u.rp_resok4;
    p.eof = ok.rpr_eof;
    uint64_t at = offset;
    for (u_int i = 0; i < ok.rpr_contents.rpr_contents_len; ++i) {
      const read_plus_content& s = ok.rpr_contents.rpr_contents_val[i];
      const bool data = s.rpc_content == NFS4_CONTENT_DATA;
      p.segments.push_back(data);
      const uint64_t start =
          data ? s.read_plus_content_u.rpc_data.d_offset : s.read_plus_content_u.rpc_hole.di_offset;
      EXPECT_EQ(start, at) << "segment " << i << " does not follow the one before";
      if (data) {
        const auto& d = s.read_plus_content_u.rpc_data.d_data;
        p.bytes.append(d.d_data_val, d.d_data_len);
        at += d.d_data_len;
      } else {
        p.bytes.append(s.read_plus_content_u.rpc_hole.di_length, '\0');
        at += s.read_plus_content_u.rpc_hole.di_length;
      }
    }
    return p;
  }

  bool Posix() const { return GetParam() == Kind::kCachingPosix; }

  Commits commits_;
  std::unique_ptr<OpenStateTable> open_state_;
};

const AttrBitmap kTypeModeOwner =
    Bits({FATTR4_TYPE, FATTR4_MODE, FATTR4_OWNER, FATTR4_OWNER_GROUP});

TEST_P(Nfs4ProcNsTest, CreateMakesEachTypeAndTheNewObjectBecomesCurrent) {
  const std::string b = RootHandle("a/b");
  struct Case {
    nfs_ftype4 type;
    const char* name;
  };
  for (const Case& k : {Case{NF4DIR, "dir"}, Case{NF4LNK, "link"}, Case{NF4FIFO, "fifo"},
                        Case{NF4SOCK, "sock"}, Case{NF4CHR, "chr"}, Case{NF4BLK, "blk"}}) {
    SCOPED_TRACE(k.name);
    const uint64_t before = AttrsOf(b, Bits({FATTR4_CHANGE})).num[FATTR4_CHANGE];
    Compound c;
    c.PutFh(b)
        .Create(k.type, k.name, Attrs4().Mode(0640), "target/of/link", 1, 3)
        .Op(OP_GETFH)
        .GetAttr(kTypeModeOwner);
    auto r = Run(c);
    ASSERT_EQ((*r)->status, NFS4_OK);
    const CREATE4resok& ok = At(r, 1).nfs_resop4_u.opcreate.CREATE4res_u.resok4;
    EXPECT_FALSE(ok.cinfo.atomic);
    EXPECT_EQ(ok.cinfo.before, before);
    EXPECT_NE(ok.cinfo.after, ok.cinfo.before);
    EXPECT_EQ(BitmapFromWire(ok.attrset), Bits({FATTR4_MODE}));
    // The current filehandle is the new object, the one LOOKUP finds.
    EXPECT_EQ(FhAt(r, 2), LookupFh(b, k.name));
    Parsed p = AttrsAt(r, 3);
    EXPECT_EQ(p.num[FATTR4_TYPE], static_cast<uint64_t>(k.type));
    if (k.type != NF4LNK) {
      EXPECT_EQ(p.num[FATTR4_MODE], 0640u);
    }
    EXPECT_EQ(p.str[FATTR4_OWNER], "0");
  }
  // The symlink's target and the device's numbers are what CREATE gave.
  Compound rl;
  rl.PutFh(LookupFh(b, "link")).Op(OP_READLINK);
  auto r = Run(rl);
  ASSERT_EQ((*r)->status, NFS4_OK);
  const linktext4& t = At(r, 1).nfs_resop4_u.opreadlink.READLINK4res_u.resok4.link;
  EXPECT_EQ(std::string(t.linktext4_val, t.linktext4_len), "target/of/link");
  EXPECT_EQ(AttrsOf(LookupFh(b, "chr"), Bits({FATTR4_RAWDEV})).num[FATTR4_RAWDEV],
            (uint64_t{1} << 32) | 3);
  // Size in createattrs means nothing for these and is not set (nor named in attrset).
  Compound sized;
  sized.PutFh(b).Create(NF4DIR, "sized", Attrs4().Size(100));
  r = Run(sized);
  ASSERT_EQ((*r)->status, NFS4_OK);
  EXPECT_TRUE(BitmapFromWire(At(r, 1).nfs_resop4_u.opcreate.CREATE4res_u.resok4.attrset).empty());
}

TEST_P(Nfs4ProcNsTest, CreateErrors) {
  const std::string b = RootHandle("a/b");
  const std::string file = MakeFile("a/b", "file");
  auto create = [&](const std::string& dir, nfs_ftype4 type, const std::string& name,
                    const Attrs4& attrs = {}, const std::string& link = "x") {
    Compound c;
    c.PutFh(dir).Create(type, name, attrs, link, 1, 1);
    return Status(c);
  };
  EXPECT_EQ(create(b, NF4REG, "reg"), NFS4ERR_BADTYPE);  // OPEN makes files
  EXPECT_EQ(create(b, NF4NAMEDATTR, "n"), NFS4ERR_BADTYPE);
  EXPECT_EQ(create(b, NF4DIR, "file"), NFS4ERR_EXIST);
  EXPECT_EQ(create(b, NF4DIR, ""), NFS4ERR_INVAL);
  EXPECT_EQ(create(b, NF4DIR, ".."), NFS4ERR_BADNAME);
  EXPECT_EQ(create(b, NF4DIR, "a/b"), NFS4ERR_BADNAME);
  EXPECT_EQ(create(b, NF4DIR, std::string(256, 'n')), NFS4ERR_NAMETOOLONG);
  EXPECT_EQ(create(b, NF4LNK, "l", {}, ""), NFS4ERR_INVAL);
  EXPECT_EQ(create(file, NF4DIR, "d"), NFS4ERR_NOTDIR);
  EXPECT_EQ(create(b, NF4DIR, "d", Attrs4().Owner("alice")), NFS4ERR_BADOWNER);
  EXPECT_EQ(create(b, NF4DIR, "d", Attrs4().Add(FATTR4_TYPE, U32(NF4DIR))), NFS4ERR_INVAL);
  EXPECT_EQ(create(b, NF4DIR, "d", Attrs4().Add(FATTR4_ACL, U32(0))), NFS4ERR_ATTRNOTSUPP);
  EXPECT_EQ(create(b, NF4DIR, "d", Attrs4{Bits({FATTR4_MODE}), ""}), NFS4ERR_BADXDR);
  EXPECT_EQ(create(b, NF4DIR, "d", Attrs4().Mode(0700).Add(FATTR4_SIZE, "")), NFS4ERR_BADXDR);
  EXPECT_EQ(create(b, NF4CHR, "dev"), NFS4_OK);
  Compound big;
  big.PutFh(b).Create(NF4CHR, "bigdev", {}, "", 1u << 12, 0);
  EXPECT_EQ(Status(big), NFS4ERR_INVAL);
  // Nothing of what failed was made.
  EXPECT_EQ(LookupFh(b, "d"), "");
  EXPECT_EQ(LookupFh(b, "bigdev"), "");
  // Read-only: the export c and a pseudo directory.
  EXPECT_EQ(create(RootHandle("a/c"), NF4DIR, "d"), NFS4ERR_ROFS);
  Compound pseudo;
  pseudo.Op(OP_PUTROOTFH).Create(NF4DIR, "d");
  EXPECT_EQ(Status(pseudo), NFS4ERR_ROFS);
  // No filehandle.
  Compound none;
  none.Create(NF4DIR, "d");
  EXPECT_EQ(Status(none), NFS4ERR_NOFILEHANDLE);
}

TEST_P(Nfs4ProcNsTest, RemoveRemovesFilesAndEmptyDirectoriesOnly) {
  const std::string b = RootHandle("a/b");
  MakeFile("a/b", "file");
  Compound mk;
  mk.PutFh(b).Create(NF4DIR, "empty").PutFh(b).Create(NF4DIR, "full").Create(NF4FIFO, "x");
  ASSERT_EQ(Status(mk), NFS4_OK);
  const uint64_t before = AttrsOf(b, Bits({FATTR4_CHANGE})).num[FATTR4_CHANGE];
  Compound rm;
  rm.PutFh(b).Remove("file");
  auto r = Run(rm);
  ASSERT_EQ((*r)->status, NFS4_OK);
  const change_info4& ci = At(r, 1).nfs_resop4_u.opremove.REMOVE4res_u.resok4.cinfo;
  EXPECT_EQ(ci.before, before);
  EXPECT_NE(ci.after, before);
  EXPECT_EQ(LookupFh(b, "file"), "");
  Compound rmdir;
  rmdir.PutFh(b).Remove("empty");
  EXPECT_EQ(Status(rmdir), NFS4_OK);
  Compound full;
  full.PutFh(b).Remove("full");
  EXPECT_EQ(Status(full), NFS4ERR_NOTEMPTY);
  Compound missing;
  missing.PutFh(b).Remove("missing");
  EXPECT_EQ(Status(missing), NFS4ERR_NOENT);
  Compound dots;
  dots.PutFh(b).Remove(".");
  EXPECT_EQ(Status(dots), NFS4ERR_BADNAME);
  Compound ro;
  ro.PutFh(RootHandle("a/c")).Remove("x");
  EXPECT_EQ(Status(ro), NFS4ERR_ROFS);
}

TEST_P(Nfs4ProcNsTest, RenameMovesWithinAnExportAndAnswersBothDirectoriesChanges) {
  const std::string b = RootHandle("a/b");
  const std::string file = MakeFile("a/b", "file", "data");
  Compound mk;
  mk.PutFh(b).Create(NF4DIR, "sub").Op(OP_GETFH);
  auto made = Run(mk);
  ASSERT_EQ((*made)->status, NFS4_OK);
  const std::string sub = FhAt(made, 2);
  const uint64_t b_before = AttrsOf(b, Bits({FATTR4_CHANGE})).num[FATTR4_CHANGE];
  const uint64_t sub_before = AttrsOf(sub, Bits({FATTR4_CHANGE})).num[FATTR4_CHANGE];
  // Saved: the source directory; current: the target directory.
  Compound mv;
  mv.PutFh(b).Op(OP_SAVEFH).PutFh(sub).Rename("file", "moved");
  auto r = Run(mv);
  ASSERT_EQ((*r)->status, NFS4_OK);
  const RENAME4resok& ok = At(r, 3).nfs_resop4_u.oprename.RENAME4res_u.resok4;
  EXPECT_EQ(ok.source_cinfo.before, b_before);
  EXPECT_NE(ok.source_cinfo.after, b_before);
  EXPECT_EQ(ok.target_cinfo.before, sub_before);
  EXPECT_NE(ok.target_cinfo.after, sub_before);
  EXPECT_EQ(LookupFh(b, "file"), "");
  EXPECT_EQ(LookupFh(sub, "moved"), file);  // the same object, the same handle
  // Onto an existing file: replaced.
  const std::string other = MakeFile("a/b", "other");
  Compound over;
  over.PutFh(sub).Op(OP_SAVEFH).PutFh(b).Rename("moved", "other");
  ASSERT_EQ(Status(over), NFS4_OK);
  EXPECT_EQ(LookupFh(b, "other"), file);
  // Incompatible or non-empty targets are NFS4ERR_EXIST (RFC 8881 §18.26.4).
  Compound mk2;
  mk2.PutFh(b).Create(NF4DIR, "d1").PutFh(b).Create(NF4DIR, "d2").Create(NF4DIR, "inner");
  ASSERT_EQ(Status(mk2), NFS4_OK);
  auto rename = [&](const std::string& from_dir, const std::string& from, const std::string& to_dir,
                    const std::string& to) {
    Compound c;
    c.PutFh(from_dir).Op(OP_SAVEFH).PutFh(to_dir).Rename(from, to);
    return Status(c);
  };
  EXPECT_EQ(rename(b, "d1", b, "d2"), NFS4ERR_EXIST);     // d2 is not empty
  EXPECT_EQ(rename(b, "d1", b, "other"), NFS4ERR_EXIST);  // a directory onto a file
  EXPECT_EQ(rename(b, "other", b, "d1"), NFS4ERR_EXIST);  // a file onto a directory
  EXPECT_EQ(rename(b, "missing", b, "x"), NFS4ERR_NOENT);
  EXPECT_EQ(rename(b, "", b, "x"), NFS4ERR_INVAL);
  EXPECT_EQ(rename(b, "other", b, ".."), NFS4ERR_BADNAME);
  EXPECT_EQ(rename(b, "d1", LookupFh(b, "d1"), "self"), NFS4ERR_INVAL);  // into itself
  EXPECT_EQ(rename(b, "other", file, "x"), NFS4ERR_NOTDIR);
  // Across exports, or out of a pseudo directory: XDEV; into a read-only one: ROFS.
  EXPECT_EQ(rename(b, "other", RootHandle("a/e"), "x"), NFS4ERR_XDEV);
  Compound pseudo;
  pseudo.Op(OP_PUTROOTFH).Op(OP_SAVEFH).PutFh(b).Rename("x", "y");
  EXPECT_EQ(Status(pseudo), NFS4ERR_XDEV);
  EXPECT_EQ(rename(b, "other", RootHandle("a/c"), "x"), NFS4ERR_ROFS);
  // Without a saved filehandle.
  Compound unsaved;
  unsaved.PutFh(b).Rename("other", "x");
  EXPECT_EQ(Status(unsaved), NFS4ERR_NOFILEHANDLE);
  EXPECT_EQ(LookupFh(b, "other"), file);
}

// pynfs RNM18-RNM20: a RENAME onto itself, or onto another link of the same file, does
// nothing (rename(2)), and both change_info4s say so (before == after).
TEST_P(Nfs4ProcNsTest, RenameOntoItselfOrItsHardLinkChangesNothing) {
  const std::string b = RootHandle("a/b");
  const std::string file = MakeFile("a/b", "file");
  Compound mk;
  mk.PutFh(b).Create(NF4DIR, "d").PutFh(file).Op(OP_SAVEFH).PutFh(b).Link("link");
  ASSERT_EQ(Status(mk), NFS4_OK);
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"d", "d"},
                                 {"file", "file"},
                                 {"file", "link"}}) {
    Compound c;
    c.PutFh(b).Op(OP_SAVEFH).PutFh(b).Rename(from, to);
    auto r = Run(c);
    ASSERT_EQ((*r)->status, NFS4_OK) << from << " " << to;
    const RENAME4resok& ok = At(r, 3).nfs_resop4_u.oprename.RENAME4res_u.resok4;
    EXPECT_EQ(ok.source_cinfo.before, ok.source_cinfo.after) << from << " " << to;
    EXPECT_EQ(ok.target_cinfo.before, ok.target_cinfo.after) << from << " " << to;
  }
  EXPECT_EQ(LookupFh(b, "file"), file);
  EXPECT_EQ(LookupFh(b, "link"), file);
}

TEST_P(Nfs4ProcNsTest, LinkGivesTheSavedObjectASecondName) {
  const std::string b = RootHandle("a/b");
  const std::string file = MakeFile("a/b", "file");
  const uint64_t before = AttrsOf(b, Bits({FATTR4_CHANGE})).num[FATTR4_CHANGE];
  Compound ln;
  ln.PutFh(file).Op(OP_SAVEFH).PutFh(b).Link("second").GetAttr(Bits({FATTR4_CHANGE}));
  auto r = Run(ln);
  ASSERT_EQ((*r)->status, NFS4_OK);
  const change_info4& ci = At(r, 3).nfs_resop4_u.oplink.LINK4res_u.resok4.cinfo;
  EXPECT_EQ(ci.before, before);
  EXPECT_EQ(ci.after, AttrsAt(r, 4).num[FATTR4_CHANGE]);  // the directory stays current
  EXPECT_EQ(LookupFh(b, "second"), file);
  EXPECT_EQ(AttrsOf(file, Bits({FATTR4_NUMLINKS})).num[FATTR4_NUMLINKS], 2u);
  auto link = [&](const std::string& obj, const std::string& dir, const std::string& name) {
    Compound c;
    c.PutFh(obj).Op(OP_SAVEFH).PutFh(dir).Link(name);
    return Status(c);
  };
  EXPECT_EQ(link(file, b, "second"), NFS4ERR_EXIST);
  EXPECT_EQ(link(b, b, "dir"), NFS4ERR_ISDIR);
  EXPECT_EQ(link(file, file, "x"), NFS4ERR_NOTDIR);
  EXPECT_EQ(link(file, b, "."), NFS4ERR_BADNAME);
  EXPECT_EQ(link(file, RootHandle("a/e"), "x"), NFS4ERR_XDEV);
  EXPECT_EQ(link(file, RootHandle("a/c"), "x"), NFS4ERR_ROFS);
}

TEST_P(Nfs4ProcNsTest, SetattrSetsModeOwnersSizeAndTimes) {
  const std::string file = MakeFile("a/b", "file", "0123456789abcdef");
  const timespec when{1700000000, 123456789};
  Attrs4 set;
  set.Size(4)
      .Mode(0600)
      .Owner("1234")
      .Group("5678")
      .Add(FATTR4_TIME_ACCESS_SET, U32(SET_TO_SERVER_TIME4))
      .Add(FATTR4_TIME_MODIFY_SET, U32(SET_TO_CLIENT_TIME4) + U64(when.tv_sec) + U32(when.tv_nsec));
  Compound c;
  // The GETATTR after it in the same COMPOUND sees what it set.
  c.PutFh(file).SetAttr(set).GetAttr(
      Bits({FATTR4_SIZE, FATTR4_MODE, FATTR4_OWNER, FATTR4_OWNER_GROUP, FATTR4_TIME_ACCESS,
            FATTR4_TIME_MODIFY}));
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  auto r = Run(c);
  ASSERT_EQ((*r)->status, NFS4_OK);
  EXPECT_EQ(BitmapFromWire(At(r, 1).nfs_resop4_u.opsetattr.attrsset), set.mask);
  Parsed p = AttrsAt(r, 2);
  EXPECT_EQ(p.num[FATTR4_SIZE], 4u);
  EXPECT_EQ(p.num[FATTR4_MODE], 0600u);
  EXPECT_EQ(p.str[FATTR4_OWNER], "1234");
  EXPECT_EQ(p.str[FATTR4_OWNER_GROUP], "5678");
  EXPECT_EQ(p.time[FATTR4_TIME_MODIFY].tv_sec, when.tv_sec);
  EXPECT_EQ(p.time[FATTR4_TIME_MODIFY].tv_nsec, when.tv_nsec);
  EXPECT_GE(p.time[FATTR4_TIME_ACCESS].tv_sec, now.tv_sec - 1);
  EXPECT_EQ(Contents("a/b", "file"), "0123");
  // Nothing to set is no error.
  Compound empty;
  empty.PutFh(file).SetAttr(Attrs4{});
  EXPECT_EQ(Status(empty), NFS4_OK);
}

TEST_P(Nfs4ProcNsTest, SetattrErrors) {
  const std::string b = RootHandle("a/b");
  const std::string file = MakeFile("a/b", "file", "data");
  auto setattr = [&](const std::string& fh, const Attrs4& attrs, const Credentials& cred = kRoot,
                     const stateid4& sid = {}) {
    Compound c;
    c.PutFh(fh).SetAttr(attrs, sid);
    return Status(c, cred);
  };
  EXPECT_EQ(setattr(file, Attrs4().Owner("alice")), NFS4ERR_BADOWNER);
  EXPECT_EQ(setattr(file, Attrs4().Group("1000@example.com")), NFS4ERR_BADOWNER);
  // An empty principal (pynfs SATT16, SATT17).
  EXPECT_EQ(setattr(file, Attrs4().Owner("")), NFS4ERR_INVAL);
  EXPECT_EQ(setattr(file, Attrs4().Group("")), NFS4ERR_INVAL);
  // Read-only attributes are NFS4ERR_INVAL (§18.30.3), unsupported ones ATTRNOTSUPP.
  EXPECT_EQ(setattr(file, Attrs4().Add(FATTR4_CHANGE, U64(1))), NFS4ERR_INVAL);
  EXPECT_EQ(setattr(file, Attrs4().Add(FATTR4_TIME_MODIFY, U64(1) + U32(0))), NFS4ERR_INVAL);
  EXPECT_EQ(setattr(file, Attrs4().Add(FATTR4_ACL, U32(0))), NFS4ERR_ATTRNOTSUPP);
  EXPECT_EQ(setattr(file, Attrs4().Add(FATTR4_TIME_MODIFY_SET,
                                       U32(SET_TO_CLIENT_TIME4) + U64(1) + U32(2000000000))),
            NFS4ERR_INVAL);
  EXPECT_EQ(setattr(file, Attrs4{Bits({FATTR4_MODE}), U32(0644) + U32(0)}), NFS4ERR_BADXDR);
  EXPECT_EQ(setattr(b, Attrs4().Size(0)), NFS4ERR_ISDIR);
  // Another user's file: no chmod (the export does not squash uid 1000).
  EXPECT_EQ(setattr(file, Attrs4().Mode(0777), Cred(1000, 1000)), NFS4ERR_PERM);
  EXPECT_EQ(setattr(RootHandle("a/c"), Attrs4().Mode(0777)), NFS4ERR_ROFS);
  Compound pseudo;
  pseudo.Op(OP_PUTROOTFH).SetAttr(Attrs4().Mode(0777));
  EXPECT_EQ(Status(pseudo), NFS4ERR_ROFS);
  EXPECT_EQ(AttrsOf(file, Bits({FATTR4_MODE})).num[FATTR4_MODE], 0644u);
}

// pynfs SATT12*: a size change of what is not a regular file is NFS4ERR_ISDIR for a
// directory and NFS4ERR_INVAL for the rest (rules.h CheckSetAttr, shared with NFSv3),
// which every pynfs SATT12 case accepts (SATT12a also SYMLINK; none WRONG_TYPE); nothing
// changes.
TEST_P(Nfs4ProcNsTest, ASizeChangeOfWhatIsNotARegularFileIsRefused) {
  const std::string b = RootHandle("a/b");
  Compound mk;
  mk.PutFh(b).Create(NF4DIR, "dir").PutFh(b).Create(NF4LNK, "link", {}, "target");
  mk.PutFh(b).Create(NF4FIFO, "fifo").PutFh(b).Create(NF4SOCK, "sock");
  mk.PutFh(b).Create(NF4CHR, "chr", {}, "", 1, 3).PutFh(b).Create(NF4BLK, "blk", {}, "", 7, 0);
  ASSERT_EQ(Status(mk), NFS4_OK);
  const struct {
    const char* name;
    nfsstat4 want;
  } cases[] = {{"dir", NFS4ERR_ISDIR}, {"link", NFS4ERR_INVAL}, {"fifo", NFS4ERR_INVAL},
               {"sock", NFS4ERR_INVAL}, {"chr", NFS4ERR_INVAL}, {"blk", NFS4ERR_INVAL}};
  for (const auto& c : cases) {
    const std::string fh = LookupFh(b, c.name);
    ASSERT_NE(fh, "") << c.name;
    const uint64_t size = AttrsOf(fh, Bits({FATTR4_SIZE})).num[FATTR4_SIZE];
    for (uint64_t to : {uint64_t{0}, uint64_t{1}}) {
      Compound set;
      set.PutFh(fh).SetAttr(Attrs4().Size(to));
      EXPECT_EQ(Status(set), c.want) << c.name << " to " << to;
    }
    EXPECT_EQ(AttrsOf(fh, Bits({FATTR4_SIZE})).num[FATTR4_SIZE], size) << c.name;
  }
}

// pynfs SATT12x: a size beyond what a file may have (off_t's, INT64_MAX) is
// NFS4ERR_FBIG, as knfsd's nfsd_setattr ("NFSD: Fix ia_size underflow"); the size stays.
TEST_P(Nfs4ProcNsTest, ASizeBeyondOffTIsFbig) {
  const std::string file = MakeFile("a/b", "file", "data");
  for (uint64_t size : {NFS4_UINT64_MAX, uint64_t{1} << 63}) {
    Compound set;
    set.PutFh(file).SetAttr(Attrs4().Size(size));
    EXPECT_EQ(Status(set), NFS4ERR_FBIG) << size;
    // With another attribute too: nothing is set.
    Compound mixed;
    mixed.PutFh(file).SetAttr(Attrs4().Size(size).Mode(0600));
    EXPECT_EQ(Status(mixed), NFS4ERR_FBIG) << size;
  }
  const Parsed p = AttrsOf(file, Bits({FATTR4_SIZE, FATTR4_MODE}));
  EXPECT_EQ(p.num.at(FATTR4_SIZE), 4u);
  EXPECT_EQ(p.num.at(FATTR4_MODE), 0644u);
}

TEST_P(Nfs4ProcNsTest, ASizeChangeChecksItsStateid) {
  const std::string file = MakeFile("a/b", "file", "0123456789");
  const std::string other = MakeFile("a/b", "other");
  auto obj = Find("a/b", "file");
  ASSERT_TRUE(obj.ok());
  auto open = [&](uint32_t access, const std::string& owner) {
    StateId id;
    OpenStateTable::OpenRequest req;
    req.clientid = 0;  // no session in these tests: the client is 0
    req.owner = owner;
    req.file = &*obj;
    req.access = access;
    EXPECT_EQ(open_state_->Open(
                  req, [](uint64_t) { return false; }, &id),
              NFS4_OK);
    stateid4 wire{};
    wire.seqid = id.seqid;
    memcpy(wire.other, id.other.data(), sizeof(wire.other));
    return wire;
  };
  const stateid4 writer = open(OPEN4_SHARE_ACCESS_BOTH, "writer");
  const stateid4 reader = open(OPEN4_SHARE_ACCESS_READ, "reader");
  auto truncate = [&](const std::string& fh, const stateid4& sid, uint64_t size) {
    Compound c;
    c.PutFh(fh).SetAttr(Attrs4().Size(size), sid);
    return Status(c);
  };
  EXPECT_EQ(truncate(file, writer, 8), NFS4_OK);
  EXPECT_EQ(truncate(file, reader, 6), NFS4ERR_OPENMODE);
  EXPECT_EQ(truncate(other, writer, 0), NFS4ERR_BAD_STATEID);  // another file's
  stateid4 forged = writer;
  forged.other[11] ^= 0x55;
  EXPECT_EQ(truncate(file, forged, 6), NFS4ERR_BAD_STATEID);
  stateid4 old = writer;
  old.seqid = 0;  // 0: the current seqid (RFC 8881 §8.2.2)
  EXPECT_EQ(truncate(file, old, 7), NFS4_OK);
  // The special stateids: anonymous and READ bypass allowed, as knfsd's; the current
  // stateid with none set is BAD_STATEID.
  stateid4 bypass{};
  bypass.seqid = UINT32_MAX;
  memset(bypass.other, 0xff, sizeof(bypass.other));
  EXPECT_EQ(truncate(file, bypass, 5), NFS4_OK);
  stateid4 current{};
  current.seqid = 1;
  EXPECT_EQ(truncate(file, current, 4), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(truncate(file, stateid4{}, 3), NFS4_OK);
  EXPECT_EQ(Contents("a/b", "file"), "012");
  // Without a size the stateid is not looked at.
  Compound mode;
  mode.PutFh(file).SetAttr(Attrs4().Mode(0600), forged);
  EXPECT_EQ(Status(mode), NFS4_OK);
}

// The stateid check is READ's and WRITE's (nfs4proc_io.h CheckIoStateId): a stateid
// whose `other` is special but which is none of the special stateids is BAD_STATEID
// (knfsd's nfsd4_lookup_stateid), as is the invalid stateid CLOSE leaves current.
TEST_P(Nfs4ProcNsTest, AStateidWithASpecialOtherIsNoneOfTheSpecialOnes) {
  const std::string file = MakeFile("a/b", "file", "0123456789");
  auto status = [&](uint32_t seqid, char other) {
    stateid4 sid{};
    sid.seqid = seqid;
    memset(sid.other, other, sizeof(sid.other));
    Compound c;
    c.PutFh(file).SetAttr(Attrs4().Size(4), sid);
    return Status(c);
  };
  EXPECT_EQ(status(2, 0), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(status(UINT32_MAX, 0), NFS4ERR_BAD_STATEID);  // CLOSE's invalid stateid
  EXPECT_EQ(status(0, static_cast<char>(0xff)), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(status(1, static_cast<char>(0xff)), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Contents("a/b", "file"), "0123456789");
  EXPECT_EQ(status(0, 0), NFS4_OK);  // the anonymous one
  EXPECT_EQ(Contents("a/b", "file"), "0123");
}

// Without an open-state table (the ops alone): no open denies anonymous I/O, and no
// other stateid is one of ours.
TEST_P(Nfs4ProcNsTest, WithoutOpenStateAnonymousIoGoesOnAndOtherStateidsAreBad) {
  const std::string file = MakeFile("a/b", "file", "0123456789");
  services_.open_state = nullptr;
  Compound anonymous;
  anonymous.PutFh(file).SetAttr(Attrs4().Size(8), stateid4{});
  EXPECT_EQ(Status(anonymous), NFS4_OK);
  stateid4 made_up{};
  made_up.seqid = 1;
  memset(made_up.other, 'x', sizeof(made_up.other));
  Compound other;
  other.PutFh(file).SetAttr(Attrs4().Size(6), made_up);
  EXPECT_EQ(Status(other), NFS4ERR_BAD_STATEID);
  stateid4 current{};
  current.seqid = 1;
  Compound none_current;
  none_current.PutFh(file).SetAttr(Attrs4().Size(6), current);
  EXPECT_EQ(Status(none_current), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(Contents("a/b", "file"), "01234567");
  services_.open_state = open_state_.get();
}

TEST_P(Nfs4ProcNsTest, TheSquashedCallerOwnsWhatItCreates) {
  const std::string e = RootHandle("a/e");  // all_squash
  Compound c;
  c.PutFh(e).Create(NF4DIR, "d").GetAttr(Bits({FATTR4_OWNER, FATTR4_OWNER_GROUP}));
  auto r = Run(c, Cred(1000, 1000));
  ASSERT_EQ((*r)->status, NFS4_OK);
  EXPECT_EQ(AttrsAt(r, 2).str[FATTR4_OWNER], std::to_string(kNobodyUid));
  EXPECT_EQ(AttrsAt(r, 2).str[FATTR4_OWNER_GROUP], std::to_string(kNobodyGid));
  // Root too is nobody there: it cannot give the directory away.
  Compound chown;
  chown.PutFh(LookupFh(e, "d")).SetAttr(Attrs4().Owner("0"));
  EXPECT_EQ(Status(chown, kRoot), NFS4ERR_PERM);
  // Without squashing root stays root.
  Compound b;
  b.PutFh(RootHandle("a/b")).Create(NF4DIR, "d").GetAttr(Bits({FATTR4_OWNER}));
  r = Run(b, kRoot);
  ASSERT_EQ((*r)->status, NFS4_OK);
  EXPECT_EQ(AttrsAt(r, 2).str[FATTR4_OWNER], "0");
}

TEST_P(Nfs4ProcNsTest, ChangesCommitOnASyncExportOnly) {
  const std::string b = RootHandle("a/b");  // sync
  const std::string e = RootHandle("a/e");  // async
  const uint64_t b_id = Root("a/b").attrs().fileid;
  MakeFile("a/b", "f", "data");
  MakeFile("a/e", "f", "data", 0644, Cred(kNobodyUid, kNobodyGid));  // all_squash's owner
  commits_.Take();
  Compound mk;
  mk.PutFh(b).Create(NF4DIR, "d");
  ASSERT_EQ(Status(mk), NFS4_OK);
  EXPECT_TRUE(Has(commits_.Take(), b_id));  // the directory that got the entry
  Compound mk_e;
  mk_e.PutFh(e).Create(NF4DIR, "d");
  ASSERT_EQ(Status(mk_e), NFS4_OK);
  EXPECT_TRUE(commits_.Take().empty());
  // SETATTR, ALLOCATE commit the file on b, nothing on e.
  const uint64_t f_id = Find("a/b", "f")->attrs().fileid;
  Compound set;
  set.PutFh(LookupFh(b, "f")).SetAttr(Attrs4().Mode(0600));
  ASSERT_EQ(Status(set), NFS4_OK);
  EXPECT_TRUE(Has(commits_.Take(), f_id));
  Compound alloc;
  alloc.PutFh(LookupFh(b, "f")).Allocate(OP_ALLOCATE, 0, 8192);
  ASSERT_EQ(Status(alloc), NFS4_OK);
  EXPECT_TRUE(Has(commits_.Take(), f_id));
  Compound set_e;
  set_e.PutFh(LookupFh(e, "f")).SetAttr(Attrs4().Mode(0600)).Allocate(OP_ALLOCATE, 0, 8192);
  ASSERT_EQ(Status(set_e), NFS4_OK);  // root is nobody there, the file's owner
  EXPECT_TRUE(commits_.Take().empty());
  // REMOVE, RENAME and LINK commit their directories.
  Compound more;
  more.PutFh(b)
      .Remove("d")
      .PutFh(LookupFh(b, "f"))
      .Op(OP_SAVEFH)
      .PutFh(b)
      .Link("g")
      .PutFh(b)
      .Op(OP_SAVEFH)
      .Rename("g", "h");
  ASSERT_EQ(Status(more), NFS4_OK);
  EXPECT_TRUE(Has(commits_.Take(), b_id));
}

TEST_P(Nfs4ProcNsTest, AReadOnlyExportRefusesEveryChange) {
  MakeFile("a/c", "f", "data");
  const std::string c = RootHandle("a/c");
  const std::string f = LookupFh(c, "f");
  ASSERT_NE(f, "");
  const std::string b_file = MakeFile("a/b", "f", "data");
  std::vector<Compound> changes(9);
  changes[0].PutFh(c).Create(NF4DIR, "d");
  changes[1].PutFh(c).Remove("f");
  changes[2].PutFh(c).Op(OP_SAVEFH).Rename("f", "g");
  changes[3].PutFh(f).Op(OP_SAVEFH).PutFh(c).Link("g");
  changes[4].PutFh(f).SetAttr(Attrs4().Mode(0600));
  changes[5].PutFh(f).Allocate(OP_ALLOCATE, 0, 10);
  changes[6].PutFh(f).Allocate(OP_DEALLOCATE, 0, 10);
  changes[7].PutFh(b_file).Op(OP_SAVEFH).PutFh(f).Copy(0, 0, 0);
  changes[8].PutFh(b_file).Op(OP_SAVEFH).PutFh(f).Clone(0, 0, 0);
  for (size_t i = 0; i < changes.size(); ++i) EXPECT_EQ(Status(changes[i]), NFS4ERR_ROFS) << i;
  EXPECT_EQ(Contents("a/c", "f"), "data");
  // Reading is allowed.
  EXPECT_EQ(ReadPlus(f, 0, 100).bytes, "data");
}

TEST_P(Nfs4ProcNsTest, SeekFindsDataAndHoles) {
  const std::string data(4096, 'x');
  const std::string fh = MakeFile("a/b", "sparse", data);
  Truncate("a/b", "sparse", 1 << 20);  // a hole after the first block
  auto seek = [&](uint64_t offset, data_content4 what) {
    Compound c;
    c.PutFh(fh).Seek(offset, what);
    auto r = Run(c);
    std::pair<nfsstat4, seek_res4> out{(*r)->status, {}};
    if (out.first == NFS4_OK) out.second = At(r, 1).nfs_resop4_u.opseek.SEEK4res_u.resok4;
    return out;
  };
  auto [s, res] = seek(0, NFS4_CONTENT_DATA);
  ASSERT_EQ(s, NFS4_OK);
  EXPECT_EQ(res.sr_offset, 0u);
  EXPECT_FALSE(res.sr_eof);
  std::tie(s, res) = seek(0, NFS4_CONTENT_HOLE);
  ASSERT_EQ(s, NFS4_OK);
  if (Posix()) {
    EXPECT_EQ(res.sr_offset, 4096u);  // ext4, tmpfs, xfs: the hole after the block
    EXPECT_FALSE(res.sr_eof);
    // Only a hole follows: no data (lseek's ENXIO).
    EXPECT_EQ(seek(8192, NFS4_CONTENT_DATA).first, NFS4ERR_NXIO);
  } else {
    EXPECT_EQ(res.sr_offset, uint64_t{1} << 20);  // no holes tracked: the end
    EXPECT_TRUE(res.sr_eof);
    EXPECT_EQ(seek(8192, NFS4_CONTENT_DATA).second.sr_offset, 8192u);
  }
  EXPECT_EQ(seek(1 << 20, NFS4_CONTENT_DATA).first, NFS4ERR_NXIO);
  EXPECT_EQ(seek(1 << 20, NFS4_CONTENT_HOLE).first, NFS4ERR_NXIO);
  EXPECT_EQ(seek(0, static_cast<data_content4>(7)).first, NFS4ERR_UNION_NOTSUPP);
  Compound dir;
  dir.PutFh(RootHandle("a/b")).Seek(0, NFS4_CONTENT_DATA);
  EXPECT_EQ(Status(dir), NFS4ERR_ISDIR);
  Compound fifo;
  fifo.PutFh(RootHandle("a/b")).Create(NF4FIFO, "fifo").Seek(0, NFS4_CONTENT_DATA);
  EXPECT_EQ(Status(fifo), NFS4ERR_WRONG_TYPE);
  Compound pseudo;
  pseudo.Op(OP_PUTROOTFH).Seek(0, NFS4_CONTENT_DATA);
  EXPECT_EQ(Status(pseudo), NFS4ERR_ISDIR);
  // A symlink is SYMLINK, as READ's (knfsd's nfsd_check_obj_isreg).
  Compound link;
  link.PutFh(RootHandle("a/b")).Create(NF4LNK, "link", {}, "target").Seek(0, NFS4_CONTENT_DATA);
  EXPECT_EQ(Status(link), NFS4ERR_SYMLINK);
}

TEST_P(Nfs4ProcNsTest, ReadPlusAnswersHolesAsHoles) {
  const std::string data(4096, 'x');
  const std::string fh = MakeFile("a/b", "sparse", data);
  Truncate("a/b", "sparse", 1 << 20);
  std::string whole = data + std::string((1 << 20) - 4096, '\0');
  Plus p = ReadPlus(fh, 0, 1 << 20);
  ASSERT_EQ(p.status, NFS4_OK);
  EXPECT_TRUE(p.eof);
  EXPECT_EQ(p.bytes, whole);
  if (Posix()) {
    EXPECT_EQ(p.segments, (std::vector<bool>{true, false}));  // data, then the hole
  } else {
    EXPECT_EQ(p.segments, (std::vector<bool>{true}));
  }
  // Within the hole: one hole segment (POSIX), up to what was asked, not the end.
  p = ReadPlus(fh, 8192, 100);
  ASSERT_EQ(p.status, NFS4_OK);
  EXPECT_EQ(p.bytes, std::string(100, '\0'));
  EXPECT_FALSE(p.eof);
  if (Posix()) {
    EXPECT_EQ(p.segments, (std::vector<bool>{false}));
  }
  // A short read of data; the last bytes; past the end.
  p = ReadPlus(fh, 10, 100);
  EXPECT_EQ(p.bytes, std::string(100, 'x'));
  EXPECT_FALSE(p.eof);
  p = ReadPlus(fh, (1 << 20) - 10, 100);
  EXPECT_EQ(p.bytes, std::string(10, '\0'));
  EXPECT_TRUE(p.eof);
  p = ReadPlus(fh, 2 << 20, 100);
  ASSERT_EQ(p.status, NFS4_OK);
  EXPECT_TRUE(p.eof);
  EXPECT_TRUE(p.segments.empty());
  // Count 0 reads nothing.
  p = ReadPlus(fh, 0, 0);
  EXPECT_EQ(p.status, NFS4_OK);
  EXPECT_TRUE(p.bytes.empty());
  EXPECT_FALSE(p.eof);
  // An offset beyond off_t.
  EXPECT_EQ(ReadPlus(fh, uint64_t{1} << 63, 10).status, NFS4ERR_INVAL);
  EXPECT_EQ(ReadPlus(RootHandle("a/b"), 0, 10).status, NFS4ERR_ISDIR);
}

TEST_P(Nfs4ProcNsTest, ReadPlusWithManyHolesStopsAtItsSegmentLimitAndResumes) {
  const std::string fh = MakeFile("a/b", "striped");
  auto obj = Find("a/b", "striped");
  ASSERT_TRUE(obj.ok());
  // 300 data blocks, each followed by a hole block.
  std::string expect;
  for (int i = 0; i < 300; ++i) {
    const std::string block(4096, static_cast<char>('a' + i % 26));
    ASSERT_TRUE(backend_
                    ->Write(*obj, kRoot, uint64_t{8192} * i,
                            absl::MakeConstSpan(block.data(), block.size()),
                            backend::Stability::kUnstable)
                    .ok());
    expect += block + std::string(4096, '\0');
  }
  expect.resize(expect.size() - 4096);  // the file ends with the last data block
  std::string got;
  bool eof = false;
  for (int calls = 0; !eof && calls < 100; ++calls) {
    Plus p = ReadPlus(fh, got.size(), 1 << 20);
    ASSERT_EQ(p.status, NFS4_OK);
    ASSERT_LE(p.segments.size(), 256u);
    ASSERT_FALSE(p.bytes.empty());
    got += p.bytes;
    eof = p.eof;
  }
  EXPECT_TRUE(eof);
  EXPECT_EQ(got.size(), expect.size());
  EXPECT_TRUE(got == expect);
}

TEST_P(Nfs4ProcNsTest, AllocateAndDeallocate) {
  const std::string empty = MakeFile("a/b", "empty");
  Compound alloc;
  alloc.PutFh(empty).Allocate(OP_ALLOCATE, 0, 8192).GetAttr(Bits({FATTR4_SIZE}));
  auto r = Run(alloc);
  ASSERT_EQ((*r)->status, NFS4_OK);
  EXPECT_EQ(AttrsAt(r, 2).num[FATTR4_SIZE], 8192u);
  const std::string full = MakeFile("a/b", "full", std::string(8192, 'y'));
  Compound punch;
  punch.PutFh(full).Allocate(OP_DEALLOCATE, 0, 4096).GetAttr(Bits({FATTR4_SIZE}));
  r = Run(punch);
  ASSERT_EQ((*r)->status, NFS4_OK);
  EXPECT_EQ(AttrsAt(r, 2).num[FATTR4_SIZE], 8192u);  // the size stays
  EXPECT_EQ(Contents("a/b", "full"), std::string(4096, '\0') + std::string(4096, 'y'));
  if (Posix()) {
    EXPECT_EQ(ReadPlus(full, 0, 8192).segments, (std::vector<bool>{false, true}));
  }
  auto status = [&](const std::string& fh, nfs_opnum4 op, uint64_t offset, uint64_t length) {
    Compound c;
    c.PutFh(fh).Allocate(op, offset, length);
    return Status(c);
  };
  for (nfs_opnum4 op : {OP_ALLOCATE, OP_DEALLOCATE}) {
    EXPECT_EQ(status(full, op, 0, 0), NFS4ERR_INVAL) << op;
    EXPECT_EQ(status(full, op, uint64_t{1} << 63, 1), NFS4ERR_INVAL) << op;
    EXPECT_EQ(status(full, op, (uint64_t{1} << 63) - 10, 20), NFS4ERR_FBIG) << op;
    EXPECT_EQ(status(RootHandle("a/b"), op, 0, 1), NFS4ERR_ISDIR) << op;
  }
  // The caller's write permission is needed (uid 1000 may not write root's 0644 file).
  Compound denied;
  denied.PutFh(full).Allocate(OP_ALLOCATE, 0, 1 << 20);
  EXPECT_EQ(Status(denied, Cred(1000, 1000)), NFS4ERR_ACCESS);
}

TEST_P(Nfs4ProcNsTest, CopyCopiesWithinAnExportSynchronously) {
  std::string data;
  for (int i = 0; i < 10000; ++i) data += static_cast<char>('a' + i % 26);
  const std::string src = MakeFile("a/b", "src", data);
  const std::string dst = MakeFile("a/b", "dst");
  commits_.Take();
  Compound c;
  c.PutFh(src).Op(OP_SAVEFH).PutFh(dst).Copy(0, 0, 0).GetAttr(Bits({FATTR4_SIZE}));
  auto r = Run(c);
  ASSERT_EQ((*r)->status, NFS4_OK);
  const COPY4resok& ok = At(r, 3).nfs_resop4_u.opcopy.COPY4res_u.cr_resok4;
  EXPECT_EQ(ok.cr_response.wr_count, data.size());
  EXPECT_EQ(ok.cr_response.wr_committed, FILE_SYNC4);
  EXPECT_EQ(ok.cr_response.wr_callback_id.wr_callback_id_len, 0u);
  EXPECT_TRUE(ok.cr_requirements.cr_synchronous);
  EXPECT_TRUE(ok.cr_requirements.cr_consecutive);
  EXPECT_EQ(AttrsAt(r, 4).num[FATTR4_SIZE], data.size());
  EXPECT_EQ(Contents("a/b", "dst"), data);
  EXPECT_TRUE(Has(commits_.Take(), Find("a/b", "dst")->attrs().fileid));
  // A part, to an offset.
  Compound part;
  part.PutFh(src).Op(OP_SAVEFH).PutFh(dst).Copy(26, 20000, 26);
  r = Run(part);
  ASSERT_EQ((*r)->status, NFS4_OK);
  EXPECT_EQ(At(r, 3).nfs_resop4_u.opcopy.COPY4res_u.cr_resok4.cr_response.wr_count, 26u);
  EXPECT_EQ(Contents("a/b", "dst").substr(20000), data.substr(0, 26));
  // More than 4 MiB: a short copy of 4 MiB (a worker is not held for a whole huge
  // file), which the client continues from where it ended.
  std::string big(5 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('A' + (i >> 12) % 26);
  const std::string big_src = MakeFile("a/b", "big-src", big);
  const std::string big_dst = MakeFile("a/b", "big-dst");
  Compound huge;
  huge.PutFh(big_src).Op(OP_SAVEFH).PutFh(big_dst).Copy(0, 0, 0);
  r = Run(huge);
  ASSERT_EQ((*r)->status, NFS4_OK);
  const uint64_t first = At(r, 3).nfs_resop4_u.opcopy.COPY4res_u.cr_resok4.cr_response.wr_count;
  EXPECT_EQ(first, uint64_t{4} << 20);
  Compound rest;
  rest.PutFh(big_src).Op(OP_SAVEFH).PutFh(big_dst).Copy(first, first, 0);
  r = Run(rest);
  ASSERT_EQ((*r)->status, NFS4_OK);
  EXPECT_EQ(At(r, 3).nfs_resop4_u.opcopy.COPY4res_u.cr_resok4.cr_response.wr_count,
            big.size() - first);
  EXPECT_TRUE(Contents("a/b", "big-dst") == big);
  auto copy = [&](const std::string& from, const std::string& to, uint64_t src_offset,
                  uint64_t dst_offset, uint64_t count, bool source_server = false) {
    Compound k;
    k.PutFh(from).Op(OP_SAVEFH).PutFh(to).Copy(src_offset, dst_offset, count, source_server);
    return Status(k);
  };
  EXPECT_EQ(copy(src, dst, 0, 0, data.size() + 1), NFS4ERR_INVAL);  // beyond the source
  EXPECT_EQ(copy(src, dst, data.size() + 1, 0, 0), NFS4ERR_INVAL);
  EXPECT_EQ(copy(src, dst, data.size(), 0, 0), NFS4_OK);  // nothing left to copy
  EXPECT_EQ(copy(src, dst, 0, UINT64_MAX - 5, 10), NFS4ERR_INVAL);
  EXPECT_EQ(copy(src, src, 0, 100, 200), NFS4ERR_INVAL);  // overlapping, one file
  EXPECT_EQ(copy(src, src, 0, 5000, 200), NFS4_OK);       // within one file, apart
  EXPECT_EQ(copy(src, dst, 0, 0, 0, /*source_server=*/true), NFS4ERR_NOTSUPP);
  EXPECT_EQ(copy(RootHandle("a/b"), dst, 0, 0, 0), NFS4ERR_WRONG_TYPE);
  EXPECT_EQ(copy(src, RootHandle("a/b"), 0, 0, 0), NFS4ERR_WRONG_TYPE);
  const std::string other = MakeFile("a/e", "other");
  EXPECT_EQ(copy(src, other, 0, 0, 0), NFS4ERR_XDEV);
  Compound no_saved;
  no_saved.PutFh(dst).Copy(0, 0, 0);
  EXPECT_EQ(Status(no_saved), NFS4ERR_NOFILEHANDLE);
  // COPY is NFSv4.2's: OP_ILLEGAL in 4.1.
  Compound v41(1);
  v41.PutFh(src).Op(OP_SAVEFH).PutFh(dst).Copy(0, 0, 0);
  EXPECT_EQ(Status(v41), NFS4ERR_OP_ILLEGAL);
}

TEST_P(Nfs4ProcNsTest, CloneSharesTheBlocksOrIsNotsupp) {
  const std::string data(8192, 'z');
  const std::string src = MakeFile("a/b", "src", data);
  const std::string dst = MakeFile("a/b", "dst");
  Compound c;
  c.PutFh(src).Op(OP_SAVEFH).PutFh(dst).Clone(0, 0, 0);
  const nfsstat4 s = Status(c);
  if (s == NFS4ERR_NOTSUPP) {
    EXPECT_TRUE(Posix()) << "the memory backend clones";  // ext4, tmpfs: no FICLONE
    EXPECT_EQ(Contents("a/b", "dst"), "");
  } else {
    ASSERT_EQ(s, NFS4_OK);
    EXPECT_EQ(Contents("a/b", "dst"), data);
  }
  Compound beyond;
  beyond.PutFh(src).Op(OP_SAVEFH).PutFh(dst).Clone(0, 0, data.size() + 1);
  EXPECT_EQ(Status(beyond), NFS4ERR_INVAL);
  Compound dir;
  dir.PutFh(src).Op(OP_SAVEFH).PutFh(RootHandle("a/b")).Clone(0, 0, 0);
  EXPECT_EQ(Status(dir), NFS4ERR_WRONG_TYPE);
}

TEST_P(Nfs4ProcNsTest, NothingIsAsynchronousAndUnsupportedOpsSaySo) {
  const std::string f = MakeFile("a/b", "f", "data");
  for (nfs_opnum4 op : {OP_OFFLOAD_STATUS, OP_OFFLOAD_CANCEL}) {
    Compound c;
    c.PutFh(f).Op(op);
    EXPECT_EQ(Status(c), NFS4ERR_BAD_STATEID) << op;
  }
  Compound advise;
  advise.PutFh(f).Op(OP_IO_ADVISE);
  auto r = Run(advise);
  ASSERT_EQ((*r)->status, NFS4_OK);
  EXPECT_EQ(At(r, 1).nfs_resop4_u.opio_advise.IO_ADVISE4res_u.resok4.ior_hints.bitmap4_len, 0u);
  Compound advise_dir;
  advise_dir.PutFh(RootHandle("a/b")).Op(OP_IO_ADVISE);
  EXPECT_EQ(Status(advise_dir), NFS4ERR_ISDIR);
  for (nfs_opnum4 op : {OP_COPY_NOTIFY, OP_WRITE_SAME, OP_LAYOUTERROR, OP_LAYOUTSTATS, OP_GETXATTR,
                        OP_LISTXATTRS, OP_SETXATTR, OP_REMOVEXATTR}) {
    nfs_argop4 a{};
    a.argop = op;
    // netloc4 has no arm for 0.
    if (op == OP_COPY_NOTIFY)
      a.nfs_argop4_u.opoffload_notify.cna_destination_server.nl_type = NL4_NAME;
    Compound c;
    c.PutFh(f).Raw(a);
    EXPECT_EQ(Status(c), NFS4ERR_NOTSUPP) << op;
  }
}

TEST_P(Nfs4ProcNsTest, WriteOnlyTimesCannotBeReadOrVerified) {
  const std::string f = MakeFile("a/b", "f");
  Compound verify;
  verify.PutFh(f).Verify(Bits({FATTR4_TIME_MODIFY_SET}), U32(SET_TO_SERVER_TIME4));
  EXPECT_EQ(Status(verify), NFS4ERR_INVAL);
  Compound get;
  get.PutFh(f).GetAttr(Bits({FATTR4_TIME_ACCESS_SET}));
  EXPECT_EQ(Status(get), NFS4ERR_INVAL);
  // READDIR asking for one, as knfsd's nfsd4_readdir.
  std::vector<uint32_t> words = {0, 1u << (FATTR4_TIME_MODIFY_SET - 32)};
  nfs_argop4 readdir{};
  readdir.argop = OP_READDIR;
  readdir.nfs_argop4_u.opreaddir.maxcount = 4096;
  readdir.nfs_argop4_u.opreaddir.attr_request = bitmap4{2, words.data()};
  Compound list;
  list.PutFh(RootHandle("a/b")).Raw(readdir);
  EXPECT_EQ(Status(list), NFS4ERR_INVAL);
  // The ones that can be read still can.
  EXPECT_EQ(AttrsOf(f, Bits({FATTR4_TIME_MODIFY})).time.size(), 1u);
}

TEST_P(Nfs4ProcNsTest, ChangesInOneCompoundSeeEachOther) {
  // mkdir, then a file's worth of work in it, then the directory renamed and listed:
  // each op works on what the ones before it left.
  const std::string b = RootHandle("a/b");
  Compound c;
  c.PutFh(b)
      .Create(NF4DIR, "d", Attrs4().Mode(0700))
      .Create(NF4FIFO, "p")
      .SetAttr(Attrs4().Mode(0600).Owner("42"))
      .PutFh(b)
      .Op(OP_SAVEFH)
      .Rename("d", "e")
      .Lookup("e")
      .Lookup("p")
      .GetAttr(Bits({FATTR4_TYPE, FATTR4_MODE, FATTR4_OWNER}));
  auto r = Run(c);
  ASSERT_EQ((*r)->status, NFS4_OK);
  Parsed p = AttrsAt(r, (*r)->resarray.resarray_len - 1);
  EXPECT_EQ(p.num[FATTR4_TYPE], static_cast<uint64_t>(NF4FIFO));
  EXPECT_EQ(p.num[FATTR4_MODE], 0600u);
  EXPECT_EQ(p.str[FATTR4_OWNER], "42");
}

// After a restart with clients to reclaim (state.h "Restart and grace"): REMOVE and RENAME
// wait for grace to end (the loop's kRefusedInGrace), and so does I/O with a special
// stateid other than a READ-like one with the READ bypass (knfsd's
// check_special_stateids); everything else goes on.
TEST_P(Nfs4ProcNsTest, DuringGraceRemoveRenameAndAnonymousChangesWait) {
  testing::TempDir state_dir("nfs4proc-ns-grace");
  {
    ClientRecordFile before(state_dir.path(), 16);
    before.Put(ClientRecord{"a client of the previous instance", Principal{}});
    ASSERT_TRUE(before.Flush().ok());
  }
  ClientRecordFile records(state_dir.path(), 16);
  ASSERT_EQ(records.loaded().size(), 1u);
  Nfs4State::Options options;
  options.records = &records;
  options.grace = absl::Seconds(90);
  Nfs4State state(options);
  ASSERT_TRUE(state.in_grace());
  const std::string b = RootHandle("a/b");
  const std::string f = MakeFile("a/b", "f", "data");
  services_.state = &state;
  Compound rm;
  rm.PutFh(b).Remove("f");
  EXPECT_EQ(Status(rm), NFS4ERR_GRACE);
  Compound mv;
  mv.PutFh(b).Op(OP_SAVEFH).Rename("f", "g");
  EXPECT_EQ(Status(mv), NFS4ERR_GRACE);
  Compound truncate;
  truncate.PutFh(f).SetAttr(Attrs4().Size(1));
  EXPECT_EQ(Status(truncate), NFS4ERR_GRACE);
  Compound punch;
  punch.PutFh(f).Allocate(OP_DEALLOCATE, 0, 1);
  EXPECT_EQ(Status(punch), NFS4ERR_GRACE);
  Compound read_anonymous;
  read_anonymous.PutFh(f).ReadPlus(0, 4);
  EXPECT_EQ(Status(read_anonymous), NFS4ERR_GRACE);
  stateid4 bypass{};
  bypass.seqid = UINT32_MAX;
  memset(bypass.other, 0xff, sizeof(bypass.other));
  Compound read_bypass;
  read_bypass.PutFh(f).ReadPlus(0, 4).WithStateId(bypass);
  EXPECT_EQ(Status(read_bypass), NFS4_OK);
  // Creating names, linking, and attributes other than the size go on.
  Compound others;
  others.PutFh(b).Create(NF4DIR, "d").PutFh(f).Op(OP_SAVEFH).PutFh(b).Link("second");
  others.PutFh(f).SetAttr(Attrs4().Mode(0600));
  EXPECT_EQ(Status(others), NFS4_OK);
  services_.state = nullptr;
  EXPECT_EQ(Status(rm), NFS4_OK);
}

// Each op's arguments, a valid encoding mutated at random (bytes changed, cut short),
// after real filehandles: every answer is an NFSv4 status, nothing crashes, and (under
// ASan) nothing leaks. On POSIX only: the memory backend keeps file data in memory, and
// a mutated size or offset asks for any amount. ALLOCATE is left out: a mutated length
// would really allocate that much of the disk the tests share.
TEST_P(Nfs4ProcNsTest, MutatedArgumentsAreAnsweredNeverCrash) {
  if (!Posix()) GTEST_SKIP() << "sizes are not bounded in the memory backend";
  const std::string b = RootHandle("a/b");
  Compound mk;
  mk.PutFh(b).Create(NF4DIR, "fz").Op(OP_GETFH);
  auto made = Run(mk);
  ASSERT_EQ((*made)->status, NFS4_OK);
  const std::string dir = FhAt(made, 2);
  const std::string src = MakeFile("a/b", "s", std::string(10000, 's'));
  const std::string dst = MakeFile("a/b", "g", "g");
  struct Case {
    std::string saved, current;
    std::function<void(Compound&)> op;
  };
  const Attrs4 some = Attrs4().Size(5).Mode(0644).Owner("1").Group("2").Add(
      FATTR4_TIME_MODIFY_SET, U32(SET_TO_CLIENT_TIME4) + U64(1000) + U32(5));
  const std::vector<Case> cases = {
      {src, dir, [&](Compound& c) { c.Create(NF4DIR, "n", some); }},
      {src, dir, [&](Compound& c) { c.Create(NF4LNK, "l", {}, "target"); }},
      {src, dir, [&](Compound& c) { c.Create(NF4CHR, "c", {}, "", 1, 3); }},
      {src, dir, [&](Compound& c) { c.Remove("n"); }},
      {dir, dir, [&](Compound& c) { c.Rename("n", "m"); }},
      {src, dir, [&](Compound& c) { c.Link("k"); }},
      {src, dst, [&](Compound& c) { c.SetAttr(some); }},
      {src, dst, [&](Compound& c) { c.Seek(0, NFS4_CONTENT_DATA); }},
      {src, dst, [&](Compound& c) { c.Allocate(OP_DEALLOCATE, 0, 10); }},
      {src, dst, [&](Compound& c) { c.Copy(0, 0, 100); }},
      {src, dst, [&](Compound& c) { c.Copy(0, 0, 0, /*source_server=*/true); }},
      {src, dst, [&](Compound& c) { c.Clone(0, 0, 0); }},
      {src, dst, [&](Compound& c) { c.ReadPlus(0, 100); }},
      {src, dst, [&](Compound& c) { c.Op(OP_OFFLOAD_STATUS); }},
      {src, dst, [&](Compound& c) { c.Op(OP_OFFLOAD_CANCEL); }},
      {src, dst, [&](Compound& c) { c.Op(OP_IO_ADVISE); }},
  };
  std::mt19937 rng(17);
  for (size_t k = 0; k < cases.size(); ++k) {
    Compound prefix;
    prefix.PutFh(cases[k].saved).Op(OP_SAVEFH).PutFh(cases[k].current);
    const size_t args_at = prefix.Encode().size() + 4;  // after the op number
    Compound whole;
    whole.PutFh(cases[k].saved).Op(OP_SAVEFH).PutFh(cases[k].current);
    cases[k].op(whole);
    const std::string valid = whole.Encode();
    ASSERT_GE(valid.size(), args_at);
    for (int i = 0; i < 300; ++i) {
      std::string bytes = valid;
      if (bytes.size() > args_at) {
        const int flips = 1 + static_cast<int>(rng() % 3);
        for (int f = 0; f < flips; ++f)
          bytes[args_at + rng() % (bytes.size() - args_at)] = static_cast<char>(rng());
        if (rng() % 4 == 0) bytes.resize(args_at + rng() % (bytes.size() - args_at));
      }
      auto r = RunBytes(bytes);
      ASSERT_TRUE(r->ok()) << "case " << k << " mutation " << i;
      ASSERT_GE((*r)->resarray.resarray_len, 3u) << "case " << k;
    }
  }
  // The server answers as before.
  EXPECT_EQ(AttrsOf(src, Bits({FATTR4_SIZE})).num[FATTR4_SIZE], 10000u);
}

INSTANTIATE_TEST_SUITE_P(Backends, Nfs4ProcNsTest, AllKinds(), KindName);

}  // namespace
}  // namespace localnfs::server::nfs4::proc_ns_test
