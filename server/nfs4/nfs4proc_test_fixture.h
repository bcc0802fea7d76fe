// server/nfs4/nfs4proc_test_fixture.h — what the tests of the NFSv4 op handlers
// (nfs4proc_test.cc, nfs4proc_ns_test.cc, nfs4proc_io_test.cc) share: the server as
// localnfsd puts it together, in-process — exports below a temporary directory T, a
// handle key, the Backend of the test's parameter (the memory one, or the POSIX one under
// the caching layer on T: what localnfsd serves), the namespace over them, an
// Nfs4Program over Nfs4Services behind a Dispatcher, a connection from 127.0.0.1 — and
// COMPOUNDs sent to it with AUTH_SYS credentials, their replies decoded, their
// attributes parsed. The tests of the COMPOUND loop and the session ops
// (compound_test.cc, session_ops_test.cc) encode their COMPOUNDs with EncodeCompound.
//
// Each test file adds the services its ops need (the open-state table, the client
// table) and its own op builders. Teardown undoes the setup in reverse: a fixture that
// adds services resets them in its TearDown, after StopProgram, before the base's.
//
// Thread-safety: a fixture belongs to its test's thread.
#pragma once

#include <rpc/rpc.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/rcu.h"
#include "common/release_queue.h"
#include "export_cache/client_pattern.h"
#include "export_cache/export_spec.h"
#include "export_cache/export_table.h"
#include "gtest/gtest.h"
#include "rpc/dispatch.h"
#include "rpc/nfs4.h"
#include "rpc/test_program.h"
#include "server/backend/caching_backend.h"
#include "server/backend/memory_backend.h"
#include "server/backend/posix_backend.h"
#include "server/nfs4/compound.h"
#include "server/nfs4/fattr.h"
#include "server/nfs4/nfs4_program.h"
#include "server/nfs4/pseudofs.h"
#include "server/nfs4/services.h"
#include "server/policy/fhandle.h"
#include "tests/support/temp_dir.h"

namespace localnfs::server::nfs4::proc_fixture {

using Reply = rpc::testing::DecodedResult<COMPOUND4res, xdr_COMPOUND4res>;

inline Credentials Cred(uint32_t uid, uint32_t gid) {
  Credentials c;
  c.uid = uid;
  c.gid = gid;
  return c;
}

inline AttrBitmap Bits(std::initializer_list<uint32_t> bits) {
  AttrBitmap b;
  for (uint32_t bit : bits) b.set(bit);
  return b;
}

// The COMPOUND of `ops` (whose strings and arrays the caller keeps) with `tag`, encoded
// with the generated routines.
inline std::string EncodeCompound(std::vector<nfs_argop4>& ops, uint32_t minor = 1,
                                  std::string tag = "") {
  COMPOUND4args args{};
  args.tag.utf8string_len = static_cast<u_int>(tag.size());
  args.tag.utf8string_val = tag.data();
  args.minorversion = minor;
  args.argarray.argarray_len = static_cast<u_int>(ops.size());
  args.argarray.argarray_val = ops.data();
  std::string buf(1 << 16, '\0');
  XDR x;
  xdrmem_create(&x, buf.data(), static_cast<u_int>(buf.size()), XDR_ENCODE);
  EXPECT_TRUE(xdr_COMPOUND4args(&x, &args));
  buf.resize(xdr_getpos(&x));
  xdr_destroy(&x);
  return buf;
}

// Attributes parsed from a fattr4 (the ones these tests ask for; any other is a test
// failure).
struct Parsed {
  std::map<uint32_t, uint64_t> num;     // type, change, size, fileid, mode, numlinks, ...
  std::map<uint32_t, std::string> str;  // owner, owner_group, filehandle
  std::map<uint32_t, timespec> time;    // time_access, time_modify
  std::pair<uint64_t, uint64_t> fsid{};
  AttrBitmap mask;
  bool ok = true;
};
inline Parsed Parse(const fattr4& f) {
  Parsed p;
  p.mask = BitmapFromWire(f.attrmask);
  std::string_view v(f.attr_vals.attrlist4_val, f.attr_vals.attrlist4_len);
  size_t at = 0;
  auto u32 = [&]() -> uint64_t {
    if (at + 4 > v.size()) {
      p.ok = false;
      return 0;
    }
    uint32_t x = 0;
    for (int i = 0; i < 4; ++i) x = (x << 8) | static_cast<uint8_t>(v[at++]);
    return x;
  };
  auto u64 = [&]() -> uint64_t { return (u32() << 32) | u32(); };
  auto opaque = [&]() -> std::string {
    const size_t n = u32();
    if (at + n > v.size()) {
      p.ok = false;
      return "";
    }
    std::string s(v.substr(at, n));
    at += (n + 3) / 4 * 4;
    return s;
  };
  for (uint32_t bit = 0; bit < 96 && p.ok; ++bit) {
    if (!p.mask.has(bit)) continue;
    switch (bit) {
      case FATTR4_TYPE:
      case FATTR4_RDATTR_ERROR:
      case FATTR4_MODE:
      case FATTR4_NUMLINKS:
        p.num[bit] = u32();
        break;
      case FATTR4_CHANGE:
      case FATTR4_SIZE:
      case FATTR4_FILEID:
      case FATTR4_MOUNTED_ON_FILEID:
      case FATTR4_SPACE_USED:
      case FATTR4_RAWDEV:  // major, minor
        p.num[bit] = u64();
        break;
      case FATTR4_FSID:
        p.fsid.first = u64();
        p.fsid.second = u64();
        break;
      case FATTR4_OWNER:
      case FATTR4_OWNER_GROUP:
      case FATTR4_FILEHANDLE:
        p.str[bit] = opaque();
        break;
      case FATTR4_TIME_ACCESS:
      case FATTR4_TIME_MODIFY: {
        timespec t{};
        t.tv_sec = static_cast<time_t>(u64());
        t.tv_nsec = static_cast<long>(u32());
        p.time[bit] = t;
        break;
      }
      default:
        ADD_FAILURE() << "attribute " << bit << " not parsed here";
        p.ok = false;
    }
  }
  if (at != v.size()) p.ok = false;
  return p;
}

// The backends the ops run on: the in-memory one, and the POSIX one under the caching
// layer (what localnfsd serves) on the temporary directory. Each test file instantiates
// its suite with:
//   INSTANTIATE_TEST_SUITE_P(Backends, Suite, AllKinds(), KindName);
enum class Kind { kMemory, kCachingPosix };
inline auto AllKinds() { return ::testing::Values(Kind::kMemory, Kind::kCachingPosix); }
inline std::string KindName(const ::testing::TestParamInfo<Kind>& info) {
  return info.param == Kind::kMemory ? "Memory" : "CachingPosix";
}

class Nfs4ProcFixture : public ::testing::TestWithParam<Kind> {
 protected:
  // ---- Setup, in this order (a test file's SetUp adds its own between the steps)

  // T, a temporary directory named after `name`, with the directories `dirs` below it
  // (made in that order) of mode `mode` (umask aside: chmod'ed when `chmod_too`).
  void MakeTree(const std::string& name, std::initializer_list<const char*> dirs, mode_t mode,
                bool chmod_too = false) {
    tmp_ = std::make_unique<testing::TempDir>(name);
    for (const char* d : dirs) {
      ASSERT_EQ(mkdir(tmp_->Sub(d).c_str(), mode), 0) << d;
      if (chmod_too) {
        ASSERT_EQ(chmod(tmp_->Sub(d).c_str(), mode), 0) << d;
      }
    }
  }
  // The export of T/rel for the client `host`, with one rule.
  exports::ExportSpec Spec(const std::string& rel, bool read_only, exports::Squash squash,
                           const char* host = "127.0.0.1") {
    exports::ExportSpec spec;
    spec.path = tmp_->Sub(rel);
    exports::ClientRule rule;
    rule.pattern = *exports::ParseClientPattern(host);
    rule.options.read_only = read_only;
    rule.options.squash = squash;
    spec.rules.push_back(rule);
    return spec;
  }
  // The export table of `specs`, the handle key, the Backend of the parameter (the memory
  // one made with `memory`) and the namespace over them (services_.namespace_fs).
  void StartBackend(const std::vector<exports::ExportSpec>& specs,
                    const backend::MemoryBackendOptions& memory = {}) {
    ASSERT_TRUE(table_.Load(specs).ok());
    key_.emplace(HandleKey::FromBytes(std::string(kHandleKeySize, 'k')));
    if (GetParam() == Kind::kCachingPosix) {
      resolver_ = std::make_unique<HandleResolver>();
      resolver_->Start(*table_.List().front());
      inner_ = std::make_unique<backend::PosixBackend>(*resolver_);
      caching_ = std::make_unique<backend::CachingBackend>(*inner_, FileCacheOptions{});
      backend_ = caching_.get();
    } else {
      inner_ = std::make_unique<backend::MemoryBackend>(memory);
      backend_ = inner_.get();
    }
    ns_ = std::make_unique<PseudoFs>(PseudoFs::Deps{&table_, &*key_, backend_});
    services_.namespace_fs = ns_.get();
  }
  // The program over services_ with `options`, behind a Dispatcher.
  void StartProgram(const Nfs4Program::Options& options) {
    program_.emplace(options, &services_);
    dispatcher_.emplace(&counters_);
    dispatcher_->AddProgram(&*program_);
  }
  // The connection the COMPOUNDs come on: 127.0.0.1:700 to port 2049.
  void Connect() {
    PeerAddress peer, local;
    ASSERT_TRUE(PeerAddress::Parse("127.0.0.1", 700, &peer));
    ASSERT_TRUE(PeerAddress::Parse("127.0.0.1", 2049, &local));
    conn_ = std::make_unique<rpc::ConnectionInfo>(1, peer, local);
  }

  // ---- Teardown

  void StopProgram() {
    dispatcher_.reset();
    program_.reset();
  }
  void TearDown() override {
    StopProgram();
    ns_.reset();
    backend_ = nullptr;
    caching_.reset();
    inner_.reset();
    if (resolver_) resolver_->Shutdown();
    resolver_.reset();
    table_.Shutdown();
    DrainReleases();
    tmp_.reset();
  }

  // ---- The exports' objects

  // The root object of the export at T/rel.
  backend::Object Root(const std::string& rel) {
    Ref<exports::Export> exp = table_.FindByPath(tmp_->Sub(rel));
    EXPECT_TRUE(exp);
    auto root = backend_->OpenPath(*exp, "");
    EXPECT_TRUE(root.ok()) << root.status();
    return *root;
  }
  // The handle of `obj` of the export at T/rel.
  std::string ExportHandle(const std::string& rel, const backend::Object& obj) {
    Ref<exports::Export> exp = table_.FindByPath(tmp_->Sub(rel));
    auto wire = key_->Encode(exp->id(), obj.handle());
    EXPECT_TRUE(wire.ok());
    return *wire;
  }
  // The handle MOUNT gives for the export at T/rel.
  std::string RootHandle(const std::string& rel) { return ExportHandle(rel, Root(rel)); }

  // ---- COMPOUNDs

  // A COMPOUND's encoded arguments as they are, sent as `cred` (AUTH_SYS): the reply's
  // body, or nullopt for an RPC-level error (GARBAGE_ARGS: the ops did not decode).
  std::optional<std::string> SendBytes(const std::string& args, const Credentials& cred) {
    rpc::CallAuth auth;
    auth.flavor = rpc::AuthFlavor::kSys;
    auth.cred = cred;
    std::optional<rpc::testing::TestReply> r = rpc::testing::RunCall(
        *dispatcher_, *conn_, NFS4_PROGRAM, NFS_V4, NFSPROC4_COMPOUND, args, auth);
    if (!r || !r->error.is_success()) return std::nullopt;
    return r->body;
  }
  // The same for a COMPOUND that must be answered: its decoded reply.
  std::unique_ptr<Reply> Send(const std::string& args, const Credentials& cred) {
    std::optional<std::string> body = SendBytes(args, cred);
    EXPECT_TRUE(body.has_value());
    auto reply = std::make_unique<Reply>(body ? *body : "");
    EXPECT_TRUE(reply->ok());
    return reply;
  }
  // The statuses of the results.
  static std::vector<nfsstat4> Statuses(const std::unique_ptr<Reply>& r) {
    std::vector<nfsstat4> out;
    for (u_int i = 0; i < (*r)->resarray.resarray_len; ++i)
      out.push_back(OpStatus((*r)->resarray.resarray_val[i]));
    return out;
  }
  static const nfs_resop4& At(const std::unique_ptr<Reply>& r, u_int i) {
    return (*r)->resarray.resarray_val[i];
  }
  // GETFH's handle, GETATTR's attributes at result i.
  static std::string FhAt(const std::unique_ptr<Reply>& r, u_int i) {
    const nfs_fh4& fh = At(r, i).nfs_resop4_u.opgetfh.GETFH4res_u.resok4.object;
    return std::string(fh.nfs_fh4_val, fh.nfs_fh4_len);
  }
  static Parsed AttrsAt(const std::unique_ptr<Reply>& r, u_int i) {
    return Parse(At(r, i).nfs_resop4_u.opgetattr.GETATTR4res_u.resok4.obj_attributes);
  }

  std::unique_ptr<testing::TempDir> tmp_;
  exports::ExportTable table_;
  std::optional<HandleKey> key_;
  std::unique_ptr<HandleResolver> resolver_;
  std::unique_ptr<backend::Backend> inner_;
  std::unique_ptr<backend::CachingBackend> caching_;
  backend::Backend* backend_ = nullptr;
  std::unique_ptr<PseudoFs> ns_;
  Nfs4Services services_;
  rpc::ServerCounters counters_;
  std::optional<Nfs4Program> program_;
  std::optional<rpc::Dispatcher> dispatcher_;
  std::unique_ptr<rpc::ConnectionInfo> conn_;
};

}  // namespace localnfs::server::nfs4::proc_fixture
