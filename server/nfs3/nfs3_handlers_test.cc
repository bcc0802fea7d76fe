// server/nfs3/nfs3_handlers_test.cc — every NFSv3 procedure through the pipeline
// (Nfs3Program::Dispatch, run by an rpc::Dispatcher from an encoded call as the server
// runs it) on a MemoryBackend: the decoded results — status, attributes, handles, data —
// of success and error paths, the policy steps (stale and bad handles, read-only
// exports, squash, handles of two exports) and the moves from the event loop to a worker
// (a handle that needs a search, a READ that would wait for the disk, a `sync` change),
// which continue without running anything again.
#include <string.h>
#include <sys/stat.h>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/rcu.h"
#include "common/release_queue.h"
#include "export_cache/client_pattern.h"
#include "export_cache/export_spec.h"
#include "export_cache/export_table.h"
#include "gtest/gtest.h"
#include "rpc/client.h"
#include "rpc/dispatch.h"
#include "rpc/message.h"
#include "rpc/nfs3.h"
#include "server/backend/memory_backend.h"
#include "server/backend/rules.h"
#include "server/nfs3/nfs3_program.h"
#include "server/nfs3/nfs3xdr.h"
#include "server/policy/creds.h"
#include "server/policy/fhandle.h"
#include "tests/support/temp_dir.h"

namespace localnfs::server {
namespace {

using backend::MemoryBackend;
using backend::MemoryBackendOptions;

constexpr uint64_t kVerifier = 0x1122334455667788ull;

// A decoded result, freed with its rpcgen routine.
template <class Res>
class Result {
 public:
  explicit Result(xdrproc_t xdr) : xdr_(xdr) { memset(&res_, 0, sizeof(res_)); }
  ~Result() { xdr_free(xdr_, reinterpret_cast<char*>(&res_)); }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  Res* operator->() { return &res_; }
  Res& operator*() { return res_; }
  Res res_;

 private:
  xdrproc_t xdr_;
};

std::string Encode(xdrproc_t xdr, const void* args) {
  std::string buf(2u << 20, '\0');
  XDR x;
  xdrmem_create(&x, buf.data(), static_cast<u_int>(buf.size()), XDR_ENCODE);
  EXPECT_TRUE(xdr(&x, const_cast<void*>(args), 0));
  buf.resize(xdr_getpos(&x));
  xdr_destroy(&x);
  return buf;
}

Credentials Cred(uint32_t uid, uint32_t gid) {
  Credentials c;
  c.uid = uid;
  c.gid = gid;
  return c;
}

// An nfs_fh3 viewing `wire`, which must outlive the call (arguments are encoded, never
// freed).
nfs_fh3 Fh(const std::string& wire) {
  nfs_fh3 fh{};
  fh.data.data_len = static_cast<u_int>(wire.size());
  fh.data.data_val = const_cast<char*>(wire.data());
  return fh;
}
// Views `s` (a literal, or a string that outlives the call).
filename3 Name(std::string_view s) {
  return filename3{static_cast<u_int>(s.size()), const_cast<char*>(s.data())};
}
std::string WireOf(const nfs_fh3& fh) { return std::string(FhBytes(fh)); }

class Nfs3HandlersTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(MemoryBackendOptions{}); }

  // The exports: rw (no_root_squash), ro, squash (all_squash to 4242:4243), async (rw,
  // no_root_squash, async), rootsquash (the default root_squash), for the peer 127.0.0.1.
  void Start(MemoryBackendOptions options) {
    tmp_ = std::make_unique<testing::TempDir>("nfs3handlers");
    std::vector<exports::ExportSpec> specs;
    for (const char* name : {"rw", "ro", "squash", "async", "rootsquash"}) {
      ASSERT_EQ(mkdir(tmp_->Sub(name).c_str(), 0755), 0);
      exports::ExportSpec spec;
      spec.path = tmp_->Sub(name);
      exports::ClientRule rule;
      rule.pattern = *exports::ParseClientPattern("127.0.0.1");
      rule.options.squash = exports::Squash::kNone;
      if (std::string(name) == "ro") rule.options.read_only = true;
      if (std::string(name) == "squash") {
        rule.options.squash = exports::Squash::kAll;
        rule.options.anonuid = 4242;
        rule.options.anongid = 4243;
      }
      if (std::string(name) == "async") rule.options.sync = false;
      if (std::string(name) == "rootsquash") rule.options.squash = exports::Squash::kRoot;
      spec.rules.push_back(rule);
      specs.push_back(spec);
    }
    ASSERT_TRUE(table_.Load(specs).ok());
    ASSERT_EQ(mkdir(tmp_->Sub("state").c_str(), 0700), 0);
    auto key = HandleKey::LoadOrCreate(tmp_->Sub("state"));
    ASSERT_TRUE(key.ok()) << key.status();
    key_.emplace(std::move(*key));
    options.root_mode = 0777;
    backend_ = std::make_unique<MemoryBackend>(options);
    backend_->set_commit_observer(&commits_);
    Nfs3Program::Deps deps;
    deps.exports = &table_;
    deps.key = &*key_;
    deps.backend = backend_.get();
    deps.write_verifier = kVerifier;
    nfs3_ = std::make_unique<Nfs3Program>(deps);
    dispatcher_ = std::make_unique<rpc::Dispatcher>(&counters_);
    dispatcher_->AddProgram(nfs3_.get());
    PeerAddress peer, local;
    ASSERT_TRUE(PeerAddress::Parse("127.0.0.1", 700, &peer));
    ASSERT_TRUE(PeerAddress::Parse("127.0.0.1", 2049, &local));
    conn_ = std::make_unique<rpc::ConnectionInfo>(1, peer, local);
    for (const char* name : {"rw", "ro", "squash", "async", "rootsquash"}) {
      Ref<exports::Export> exp = table_.FindByPath(tmp_->Sub(name));
      ASSERT_TRUE(exp);
      auto root = backend_->OpenPath(*exp, "");
      ASSERT_TRUE(root.ok()) << root.status();
      auto wire = key_->Encode(exp->id(), root->handle());
      ASSERT_TRUE(wire.ok());
      roots_[name] = *wire;
      exports_[name] = exp;
    }
  }

  // Calls of `proc` the dispatcher counted (rpc/procedure_stats.h).
  uint64_t Calls(uint32_t proc) const {
    return dispatcher_->procedure_stats(*nfs3_)[proc].calls();
  }

  void TearDown() override {
    dispatcher_.reset();
    nfs3_.reset();
    exports_.clear();
    backend_.reset();
    table_.Shutdown();
    DrainReleases();
    tmp_.reset();
  }

  // The call message of `proc` with `args` from `cred` (AUTH_SYS).
  std::string Message(uint32_t proc, xdrproc_t xdr_args, const void* args,
                      const Credentials& cred) {
    rpc::CallAuth auth;
    auth.flavor = rpc::AuthFlavor::kSys;
    auth.cred = cred;
    return rpc::Client::EncodeCall(++xid_, NFS_PROGRAM, NFS_V3, proc, auth,
                                   Encode(xdr_args, args));
  }
  // Decodes a reply (without record mark) into `res`.
  void DecodeReply(std::string reply, xdrproc_t xdr_res, void* res) {
    XDR x;
    xdrmem_create(&x, reply.data(), static_cast<u_int>(reply.size()), XDR_DECODE);
    uint32_t xid = 0;
    rpc::RpcError e;
    ASSERT_TRUE(rpc::DecodeReplyHeader(&x, &xid, &e).ok());
    ASSERT_TRUE(e.is_success());
    EXPECT_TRUE(xdr_res(&x, res, 0));
    xdr_destroy(&x);
  }

  // Runs `proc` as a worker does (or as the event loop, then a worker, when
  // `loop_first`: the number of runs that returned kWouldBlock lands in *deferred).
  template <class Res>
  std::unique_ptr<Result<Res>> Run(uint32_t proc, xdrproc_t xdr_args, const void* args,
                                   xdrproc_t xdr_res, const Credentials& cred,
                                   bool loop_first = false, int* deferred = nullptr) {
    auto res = std::make_unique<Result<Res>>(xdr_res);
    std::unique_ptr<rpc::Call> call =
        dispatcher_->Receive(Message(proc, xdr_args, args, cred), conn_.get());
    rpc::ReplyRecord record;
    if (loop_first) {
      rpc::Dispatcher::RunOptions on_loop;
      on_loop.with_record_mark = false;
      on_loop.must_not_block = true;
      const auto outcome = dispatcher_->Run(*call, &record, std::move(on_loop));
      if (outcome == rpc::Dispatcher::Outcome::kWouldBlock) {
        if (deferred != nullptr) ++*deferred;
      } else {
        EXPECT_EQ(outcome, rpc::Dispatcher::Outcome::kReply);
        DecodeReply(record.Flatten(), xdr_res, &res->res_);
        return res;
      }
    }
    rpc::Dispatcher::RunOptions on_worker;
    on_worker.with_record_mark = false;
    EXPECT_EQ(dispatcher_->Run(*call, &record, std::move(on_worker)),
              rpc::Dispatcher::Outcome::kReply);
    DecodeReply(record.Flatten(), xdr_res, &res->res_);
    return res;
  }

#define NFS3(NAME, ARGS, ...)                                                               \
  Run<NAME##3res>(NFSPROC3_##NAME, reinterpret_cast<xdrproc_t>(xdr_##NAME##3args), &(ARGS), \
                  reinterpret_cast<xdrproc_t>(xdr_##NAME##3res), __VA_ARGS__)

  // ---- Shorthands (as root of the rw export unless told).
  const Credentials root_ = Cred(0, 0);
  const Credentials user_ = Cred(1000, 1000);
  const Credentials other_ = Cred(1001, 1001);

  fattr3 GetAttr(const std::string& fh, nfsstat3 want = NFS3_OK) {
    GETATTR3args a{Fh(fh)};
    auto r = NFS3(GETATTR, a, root_);
    EXPECT_EQ((*r)->status, want);
    return (*r)->GETATTR3res_u.resok.obj_attributes;
  }
  // CREATE (GUARDED, mode) → the new handle.
  std::string CreateFile(const std::string& dir, const std::string& name, uint32_t mode,
                         const Credentials& who) {
    CREATE3args a{};
    a.where = diropargs3{Fh(dir), Name(name)};
    a.how.mode = GUARDED;
    a.how.createhow3_u.obj_attributes.mode.set_it = TRUE;
    a.how.createhow3_u.obj_attributes.mode.set_mode3_u.mode = mode;
    auto r = NFS3(CREATE, a, who);
    EXPECT_EQ((*r)->status, NFS3_OK) << name;
    EXPECT_TRUE((*r)->CREATE3res_u.resok.obj.handle_follows);
    return WireOf((*r)->CREATE3res_u.resok.obj.post_op_fh3_u.handle);
  }
  std::string MakeDir(const std::string& dir, const std::string& name, uint32_t mode,
                      const Credentials& who) {
    MKDIR3args a{};
    a.where = diropargs3{Fh(dir), Name(name)};
    a.attributes.mode.set_it = TRUE;
    a.attributes.mode.set_mode3_u.mode = mode;
    auto r = NFS3(MKDIR, a, who);
    EXPECT_EQ((*r)->status, NFS3_OK) << name;
    return WireOf((*r)->MKDIR3res_u.resok.obj.post_op_fh3_u.handle);
  }
  nfsstat3 WriteData(const std::string& fh, const std::string& data, uint64_t offset = 0,
                     const Credentials* who = nullptr) {
    WRITE3args a{};
    a.file = Fh(fh);
    a.offset = offset;
    a.count = static_cast<count3>(data.size());
    a.stable = FILE_SYNC;
    a.data.data_len = static_cast<u_int>(data.size());
    a.data.data_val = const_cast<char*>(data.data());
    auto r = NFS3(WRITE, a, who ? *who : root_);
    return (*r)->status;
  }
  std::vector<std::string> ListNames(const std::string& dir) {
    std::vector<std::string> names;
    READDIR3args a{};
    a.dir = Fh(dir);
    a.count = 65536;
    auto r = NFS3(READDIR, a, root_);
    EXPECT_EQ((*r)->status, NFS3_OK);
    for (entry3* e = (*r)->READDIR3res_u.resok.reply.entries; e; e = e->nextentry)
      names.emplace_back(e->name.filename3_val, e->name.filename3_len);
    return names;
  }

  std::unique_ptr<testing::TempDir> tmp_;
  exports::ExportTable table_;
  std::optional<HandleKey> key_;
  struct Recorder : backend::CommitObserver {
    void Committed(const backend::CommitRecord& r) override { records.push_back(r); }
    std::vector<backend::CommitRecord> records;
  } commits_;
  std::unique_ptr<MemoryBackend> backend_;
  std::unique_ptr<Nfs3Program> nfs3_;
  rpc::ServerCounters counters_;
  std::unique_ptr<rpc::Dispatcher> dispatcher_;
  std::unique_ptr<rpc::ConnectionInfo> conn_;
  std::map<std::string, std::string> roots_;
  std::map<std::string, Ref<exports::Export>> exports_;
  uint32_t xid_ = 0;
};

TEST_F(Nfs3HandlersTest, NullAnswersVoidAndIsCounted) {
  std::unique_ptr<rpc::Call> call = dispatcher_->Receive(
      rpc::Client::EncodeCall(1, NFS_PROGRAM, NFS_V3, NFSPROC3_NULL, rpc::CallAuth{}, ""),
      conn_.get());
  rpc::ReplyRecord record;
  rpc::Dispatcher::RunOptions run;
  run.with_record_mark = false;
  run.must_not_block = true;  // quick: runs on the loop
  ASSERT_EQ(dispatcher_->Run(*call, &record, std::move(run)), rpc::Dispatcher::Outcome::kReply);
  std::string reply = record.Flatten();
  EXPECT_EQ(reply.size(), rpc::kAcceptedReplyHeaderSize);
  EXPECT_EQ(Calls(NFSPROC3_NULL), 1u);
}

TEST_F(Nfs3HandlersTest, GetattrGivesTheResolvedAttributesWithTheExportAsFsid) {
  const fattr3 a = GetAttr(roots_["rw"]);
  EXPECT_EQ(a.type, NF3DIR);
  EXPECT_EQ(a.mode, 0777u);
  EXPECT_EQ(a.fsid, exports_["rw"]->id());
  const std::string f = CreateFile(roots_["rw"], "f", 0640, user_);
  const fattr3 fa = GetAttr(f);
  EXPECT_EQ(fa.type, NF3REG);
  EXPECT_EQ(fa.mode, 0640u);
  EXPECT_EQ(fa.uid, 1000u);
  EXPECT_EQ(fa.gid, 1000u);
  EXPECT_EQ(fa.nlink, 1u);
  EXPECT_NE(fa.fileid, a.fileid);
  EXPECT_EQ(Calls(NFSPROC3_GETATTR), 2u);
}

TEST_F(Nfs3HandlersTest, BadStaleAndForeignHandlesAreRefusedBeforeTheHandler) {
  GetAttr(std::string(40, 'z'), NFS3ERR_BADHANDLE);
  GetAttr("", NFS3ERR_BADHANDLE);
  // A removed object's handle is STALE.
  const std::string f = CreateFile(roots_["rw"], "gone", 0644, root_);
  REMOVE3args rm{diropargs3{Fh(roots_["rw"]), Name("gone")}};
  EXPECT_EQ((*NFS3(REMOVE, rm, root_))->status, NFS3_OK);
  GetAttr(f, NFS3ERR_STALE);
  // A handle of the memory backend's root re-keyed to another export is not of it.
  auto foreign = key_->Encode(exports_["ro"]->id(),
                              backend_->OpenPath(*exports_["rw"], "")->handle());
  ASSERT_TRUE(foreign.ok());
  GetAttr(*foreign, NFS3ERR_STALE);
  // A peer without a rule: ACCES.
  PeerAddress stranger;
  ASSERT_TRUE(PeerAddress::Parse("10.1.2.3", 700, &stranger));
  conn_ = std::make_unique<rpc::ConnectionInfo>(2, stranger, stranger);
  GetAttr(roots_["rw"], NFS3ERR_ACCES);
}

TEST_F(Nfs3HandlersTest, SetattrChangesModeAndSizeWithWccAndHonoursTheGuard) {
  const std::string f = CreateFile(roots_["rw"], "f", 0644, user_);
  ASSERT_EQ(WriteData(f, "0123456789"), NFS3_OK);
  const fattr3 before = GetAttr(f);
  SETATTR3args a{};
  a.object = Fh(f);
  a.new_attributes.mode.set_it = TRUE;
  a.new_attributes.mode.set_mode3_u.mode = 0600;
  a.new_attributes.size.set_it = TRUE;
  a.new_attributes.size.set_size3_u.size = 4;
  a.guard.check = TRUE;
  a.guard.sattrguard3_u.obj_ctime = before.ctime;
  auto r = NFS3(SETATTR, a, user_);
  ASSERT_EQ((*r)->status, NFS3_OK);
  const wcc_data& wcc = (*r)->SETATTR3res_u.resok.obj_wcc;
  ASSERT_TRUE(wcc.before.attributes_follow);
  EXPECT_EQ(wcc.before.pre_op_attr_u.attributes.size, 10u);
  ASSERT_TRUE(wcc.after.attributes_follow);
  EXPECT_EQ(wcc.after.post_op_attr_u.attributes.mode, 0600u);
  EXPECT_EQ(wcc.after.post_op_attr_u.attributes.size, 4u);
  // The same guard again: the ctime moved, NOT_SYNC, nothing changed.
  a.new_attributes.mode.set_mode3_u.mode = 0666;
  auto again = NFS3(SETATTR, a, user_);
  EXPECT_EQ((*again)->status, NFS3ERR_NOT_SYNC);
  EXPECT_EQ(GetAttr(f).mode, 0600u);
  // chmod of another's file: PERM.
  a.guard.check = FALSE;
  a.new_attributes.size.set_it = FALSE;
  EXPECT_EQ((*NFS3(SETATTR, a, other_))->status, NFS3ERR_PERM);
  // A read-only export: ROFS, decided before the backend.
  const std::string ro_root = roots_["ro"];
  a.object = Fh(ro_root);
  a.new_attributes.size.set_it = FALSE;
  EXPECT_EQ((*NFS3(SETATTR, a, root_))->status, NFS3ERR_ROFS);
}

TEST_F(Nfs3HandlersTest, SetattrAndWriteClearSetIdBitsForAnotherWriter) {
  const std::string f = CreateFile(roots_["rw"], "suid", 0666, user_);
  SETATTR3args a{};
  a.object = Fh(f);
  a.new_attributes.mode.set_it = TRUE;
  a.new_attributes.mode.set_mode3_u.mode = 06777;
  ASSERT_EQ((*NFS3(SETATTR, a, user_))->status, NFS3_OK);
  EXPECT_EQ(GetAttr(f).mode, 06777u);
  ASSERT_EQ(WriteData(f, "x", 0, &other_), NFS3_OK);
  EXPECT_EQ(GetAttr(f).mode & 06000, 0u);
}

TEST_F(Nfs3HandlersTest, LookupGivesAHandleThatResolvesAndRefusesBadNames) {
  const std::string d = MakeDir(roots_["rw"], "d", 0755, root_);
  const std::string f = CreateFile(d, "f", 0644, root_);
  LOOKUP3args a{diropargs3{Fh(d), Name("f")}};
  auto r = NFS3(LOOKUP, a, user_);
  ASSERT_EQ((*r)->status, NFS3_OK);
  const LOOKUP3resok& ok = (*r)->LOOKUP3res_u.resok;
  EXPECT_EQ(GetAttr(WireOf(ok.object)).fileid, GetAttr(f).fileid);
  ASSERT_TRUE(ok.obj_attributes.attributes_follow);
  EXPECT_EQ(ok.obj_attributes.post_op_attr_u.attributes.type, NF3REG);
  ASSERT_TRUE(ok.dir_attributes.attributes_follow);
  EXPECT_EQ(ok.dir_attributes.post_op_attr_u.attributes.fileid, GetAttr(d).fileid);
  // "." and "..".
  LOOKUP3args dot{diropargs3{Fh(d), Name(".")}};
  EXPECT_EQ(GetAttr(WireOf((*NFS3(LOOKUP, dot, user_))->LOOKUP3res_u.resok.object)).fileid,
            GetAttr(d).fileid);
  LOOKUP3args dotdot{diropargs3{Fh(roots_["rw"]), Name("..")}};
  auto up = NFS3(LOOKUP, dotdot, user_);
  ASSERT_EQ((*up)->status, NFS3_OK);  // the root's parent is the root
  EXPECT_EQ(GetAttr(WireOf((*up)->LOOKUP3res_u.resok.object)).fileid,
            GetAttr(roots_["rw"]).fileid);
  // Missing: NOENT, with the directory's attributes.
  LOOKUP3args missing{diropargs3{Fh(d), Name("nope")}};
  auto none = NFS3(LOOKUP, missing, user_);
  EXPECT_EQ((*none)->status, NFS3ERR_NOENT);
  EXPECT_TRUE((*none)->LOOKUP3res_u.resfail.dir_attributes.attributes_follow);
  // In a file: NOTDIR. A NUL or '/' in the name: ACCES.
  LOOKUP3args in_file{diropargs3{Fh(f), Name("x")}};
  EXPECT_EQ((*NFS3(LOOKUP, in_file, user_))->status, NFS3ERR_NOTDIR);
  const std::string nul("f\0x", 3);
  LOOKUP3args with_nul{diropargs3{Fh(d), Name(nul)}};
  EXPECT_EQ((*NFS3(LOOKUP, with_nul, user_))->status, NFS3ERR_ACCES);
  LOOKUP3args with_slash{diropargs3{Fh(roots_["rw"]), Name("d/f")}};
  EXPECT_EQ((*NFS3(LOOKUP, with_slash, user_))->status, NFS3ERR_ACCES);
  // No search permission on the directory: ACCES.
  const std::string closed = MakeDir(roots_["rw"], "closed", 0700, root_);
  LOOKUP3args in_closed{diropargs3{Fh(closed), Name("x")}};
  EXPECT_EQ((*NFS3(LOOKUP, in_closed, user_))->status, NFS3ERR_ACCES);
}

TEST_F(Nfs3HandlersTest, AccessReportsWhatTheCallerMayDoAndNoWritesOnReadOnlyExports) {
  const std::string f = CreateFile(roots_["rw"], "f", 0640, user_);
  ACCESS3args a{Fh(f), ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_EXECUTE};
  auto owner = NFS3(ACCESS, a, user_);
  ASSERT_EQ((*owner)->status, NFS3_OK);
  EXPECT_EQ((*owner)->ACCESS3res_u.resok.access,
            static_cast<uint32_t>(ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND));
  EXPECT_TRUE((*owner)->ACCESS3res_u.resok.obj_attributes.attributes_follow);
  auto stranger = NFS3(ACCESS, a, other_);
  EXPECT_EQ((*stranger)->ACCESS3res_u.resok.access, 0u);
  ACCESS3args dir{Fh(roots_["ro"]), ACCESS3_READ | ACCESS3_LOOKUP | ACCESS3_MODIFY |
                                        ACCESS3_DELETE};
  auto ro = NFS3(ACCESS, dir, root_);
  ASSERT_EQ((*ro)->status, NFS3_OK);
  EXPECT_EQ((*ro)->ACCESS3res_u.resok.access,
            static_cast<uint32_t>(ACCESS3_READ | ACCESS3_LOOKUP));
}

TEST_F(Nfs3HandlersTest, SymlinkAndReadlink) {
  SYMLINK3args s{};
  s.where = diropargs3{Fh(roots_["rw"]), Name("link")};
  const std::string target = "some/where";
  s.symlink.symlink_data = nfspath3{static_cast<u_int>(target.size()),
                                    const_cast<char*>(target.data())};
  auto made = NFS3(SYMLINK, s, user_);
  ASSERT_EQ((*made)->status, NFS3_OK);
  const SYMLINK3resok& ok = (*made)->SYMLINK3res_u.resok;
  ASSERT_TRUE(ok.obj.handle_follows);
  EXPECT_EQ(ok.obj_attributes.post_op_attr_u.attributes.type, NF3LNK);
  EXPECT_EQ(ok.obj_attributes.post_op_attr_u.attributes.uid, 1000u);
  EXPECT_TRUE(ok.dir_wcc.after.attributes_follow);
  const std::string link = WireOf(ok.obj.post_op_fh3_u.handle);
  READLINK3args rl{Fh(link)};
  auto r = NFS3(READLINK, rl, user_);
  ASSERT_EQ((*r)->status, NFS3_OK);
  const nfspath3& data = (*r)->READLINK3res_u.resok.data;
  EXPECT_EQ(std::string(data.nfspath3_val, data.nfspath3_len), target);
  EXPECT_TRUE((*r)->READLINK3res_u.resok.symlink_attributes.attributes_follow);
  // Of a file: INVAL. Existing name: EXIST.
  READLINK3args of_dir{Fh(roots_["rw"])};
  EXPECT_EQ((*NFS3(READLINK, of_dir, user_))->status, NFS3ERR_INVAL);
  EXPECT_EQ((*NFS3(SYMLINK, s, user_))->status, NFS3ERR_EXIST);
}

TEST_F(Nfs3HandlersTest, WriteThenReadGivesTheDataCountsEofAndVerifier) {
  const std::string f = CreateFile(roots_["rw"], "f", 0644, user_);
  WRITE3args w{};
  const std::string data = "hello, world";
  w.file = Fh(f);
  w.offset = 0;
  w.count = 100;  // more than sent: only the data counts
  w.stable = UNSTABLE;
  w.data.data_len = static_cast<u_int>(data.size());
  w.data.data_val = const_cast<char*>(data.data());
  auto wr = NFS3(WRITE, w, user_);
  ASSERT_EQ((*wr)->status, NFS3_OK);
  const WRITE3resok& wok = (*wr)->WRITE3res_u.resok;
  EXPECT_EQ(wok.count, data.size());
  EXPECT_EQ(wok.committed, UNSTABLE);
  EXPECT_EQ(Uint64FromOpaque8(wok.verf), kVerifier);
  EXPECT_TRUE(wok.file_wcc.before.attributes_follow);
  EXPECT_EQ(wok.file_wcc.before.pre_op_attr_u.attributes.size, 0u);
  EXPECT_EQ(wok.file_wcc.after.post_op_attr_u.attributes.size, data.size());
  READ3args r{Fh(f), 7, 100};
  auto rd = NFS3(READ, r, user_);
  ASSERT_EQ((*rd)->status, NFS3_OK);
  const READ3resok& rok = (*rd)->READ3res_u.resok;
  EXPECT_EQ(std::string(rok.data.data_val, rok.data.data_len), "world");
  EXPECT_EQ(rok.count, 5u);
  EXPECT_TRUE(rok.eof);
  EXPECT_EQ(rok.file_attributes.post_op_attr_u.attributes.size, data.size());
  // Exactly to the end: EOF too; before it, not.
  READ3args head{Fh(f), 0, 5};
  EXPECT_FALSE((*NFS3(READ, head, user_))->READ3res_u.resok.eof);
  // Another user may not write (0644), nor read a 0600 file; a directory is ISDIR.
  EXPECT_EQ(WriteData(f, "x", 0, &other_), NFS3ERR_ACCES);
  READ3args dir{Fh(roots_["rw"]), 0, 10};
  EXPECT_EQ((*NFS3(READ, dir, user_))->status, NFS3ERR_ISDIR);
  // A read-only export refuses WRITE before anything else.
  EXPECT_EQ(WriteData(roots_["ro"], "x"), NFS3ERR_ROFS);
}

TEST_F(Nfs3HandlersTest, LargeReadGoesOutAsBulkAndMatchesWhatWasWritten) {
  const std::string f = CreateFile(roots_["rw"], "big", 0644, user_);
  std::string data(rpc::kMinBulkBytes * 4, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  ASSERT_EQ(WriteData(f, data), NFS3_OK);
  READ3args r{Fh(f), 0, static_cast<count3>(data.size())};
  std::unique_ptr<rpc::Call> call = dispatcher_->Receive(
      Message(NFSPROC3_READ, reinterpret_cast<xdrproc_t>(xdr_READ3args), &r, user_),
      conn_.get());
  rpc::ReplyRecord record;
  rpc::Dispatcher::RunOptions run;
  run.with_record_mark = false;
  run.bulk_by_reference = true;
  ASSERT_EQ(dispatcher_->Run(*call, &record, std::move(run)), rpc::Dispatcher::Outcome::kReply);
  EXPECT_EQ(record.bulk_segments(), 1u);
  EXPECT_EQ(record.largest_bulk(), data.size());
  Result<READ3res> res(reinterpret_cast<xdrproc_t>(xdr_READ3res));
  DecodeReply(record.Flatten(), reinterpret_cast<xdrproc_t>(xdr_READ3res), &res.res_);
  ASSERT_EQ(res->status, NFS3_OK);
  EXPECT_EQ(std::string(res->READ3res_u.resok.data.data_val, res->READ3res_u.resok.data.data_len),
            data);
  EXPECT_TRUE(res->READ3res_u.resok.eof);
}

TEST_F(Nfs3HandlersTest, CreateUncheckedGuardedAndExclusiveWithItsRetransmit) {
  const std::string dir = roots_["rw"];
  CREATE3args a{};
  a.where = diropargs3{Fh(dir), Name("u")};
  a.how.mode = UNCHECKED;
  a.how.createhow3_u.obj_attributes.mode.set_it = TRUE;
  a.how.createhow3_u.obj_attributes.mode.set_mode3_u.mode = 0600;
  auto first = NFS3(CREATE, a, user_);
  ASSERT_EQ((*first)->status, NFS3_OK);
  const CREATE3resok& ok = (*first)->CREATE3res_u.resok;
  EXPECT_EQ(ok.obj_attributes.post_op_attr_u.attributes.mode, 0600u);
  EXPECT_EQ(ok.obj_attributes.post_op_attr_u.attributes.uid, 1000u);
  ASSERT_TRUE(ok.dir_wcc.before.attributes_follow && ok.dir_wcc.after.attributes_follow);
  const std::string u = WireOf(ok.obj.post_op_fh3_u.handle);
  ASSERT_EQ(WriteData(u, "abc", 0, &user_), NFS3_OK);
  // UNCHECKED on an existing file: the same file, only the size applied.
  a.how.createhow3_u.obj_attributes.size.set_it = TRUE;
  a.how.createhow3_u.obj_attributes.size.set_size3_u.size = 1;
  auto again = NFS3(CREATE, a, user_);
  ASSERT_EQ((*again)->status, NFS3_OK);
  EXPECT_EQ((*again)->CREATE3res_u.resok.obj_attributes.post_op_attr_u.attributes.fileid,
            GetAttr(u).fileid);
  EXPECT_EQ(GetAttr(u).size, 1u);
  // GUARDED on an existing name: EXIST, with the directory's wcc.
  a.how.mode = GUARDED;
  auto exists = NFS3(CREATE, a, user_);
  EXPECT_EQ((*exists)->status, NFS3ERR_EXIST);
  EXPECT_TRUE((*exists)->CREATE3res_u.resfail.dir_wcc.after.attributes_follow);
  // EXCLUSIVE: made once; a retransmit with the same verifier is the same success; another
  // verifier is EXIST. The client then sets the attributes (SETATTR).
  CREATE3args x{};
  x.where = diropargs3{Fh(dir), Name("x")};
  x.how.mode = EXCLUSIVE;
  Uint64ToOpaque8(0xfeedfacecafebeefull, x.how.createhow3_u.verf);
  auto made = NFS3(CREATE, x, user_);
  ASSERT_EQ((*made)->status, NFS3_OK);
  const std::string xh = WireOf((*made)->CREATE3res_u.resok.obj.post_op_fh3_u.handle);
  auto retransmit = NFS3(CREATE, x, user_);
  ASSERT_EQ((*retransmit)->status, NFS3_OK);
  EXPECT_EQ(WireOf((*retransmit)->CREATE3res_u.resok.obj.post_op_fh3_u.handle), xh);
  Uint64ToOpaque8(0x0123456789abcdefull, x.how.createhow3_u.verf);
  EXPECT_EQ((*NFS3(CREATE, x, user_))->status, NFS3ERR_EXIST);
  SETATTR3args set{};
  set.object = Fh(xh);
  set.new_attributes.mode.set_it = TRUE;
  set.new_attributes.mode.set_mode3_u.mode = 0640;
  set.new_attributes.mtime.set_it = SET_TO_SERVER_TIME;
  set.new_attributes.atime.set_it = SET_TO_SERVER_TIME;
  ASSERT_EQ((*NFS3(SETATTR, set, user_))->status, NFS3_OK);
  EXPECT_EQ(GetAttr(xh).mode, 0640u);
  // No write permission on the directory: ACCES; a read-only export: ROFS.
  const std::string closed = MakeDir(dir, "closed", 0755, root_);
  a.where = diropargs3{Fh(closed), Name("f")};
  EXPECT_EQ((*NFS3(CREATE, a, user_))->status, NFS3ERR_ACCES);
  a.where = diropargs3{Fh(roots_["ro"]), Name("f")};
  EXPECT_EQ((*NFS3(CREATE, a, root_))->status, NFS3ERR_ROFS);
}

TEST_F(Nfs3HandlersTest, SquashedCallersActAsTheAnonymousUser) {
  CREATE3args a{};
  a.where = diropargs3{Fh(roots_["squash"]), Name("f")};
  a.how.mode = GUARDED;
  auto r = NFS3(CREATE, a, root_);
  ASSERT_EQ((*r)->status, NFS3_OK);
  const fattr3& made = (*r)->CREATE3res_u.resok.obj_attributes.post_op_attr_u.attributes;
  EXPECT_EQ(made.uid, 4242u);
  EXPECT_EQ(made.gid, 4243u);
  MKDIR3args m{};
  m.where = diropargs3{Fh(roots_["squash"]), Name("d")};
  auto d = NFS3(MKDIR, m, user_);
  ASSERT_EQ((*d)->status, NFS3_OK);
  EXPECT_EQ((*d)->MKDIR3res_u.resok.obj_attributes.post_op_attr_u.attributes.uid, 4242u);
  // root_squash: root acts as nobody, others as themselves.
  a.where = diropargs3{Fh(roots_["rootsquash"]), Name("by-root")};
  auto squashed = NFS3(CREATE, a, root_);
  ASSERT_EQ((*squashed)->status, NFS3_OK);
  EXPECT_EQ((*squashed)->CREATE3res_u.resok.obj_attributes.post_op_attr_u.attributes.uid,
            kNobodyUid);
  a.where = diropargs3{Fh(roots_["rootsquash"]), Name("by-user")};
  auto kept = NFS3(CREATE, a, user_);
  ASSERT_EQ((*kept)->status, NFS3_OK);
  EXPECT_EQ((*kept)->CREATE3res_u.resok.obj_attributes.post_op_attr_u.attributes.uid, 1000u);
  // Squashed root may not chmod root's export root (owned by root).
  SETATTR3args chmod{};
  chmod.object = Fh(roots_["rootsquash"]);
  chmod.new_attributes.mode.set_it = TRUE;
  chmod.new_attributes.mode.set_mode3_u.mode = 0700;
  EXPECT_EQ((*NFS3(SETATTR, chmod, root_))->status, NFS3ERR_PERM);
  chmod.object = Fh(roots_["rw"]);
  EXPECT_EQ((*NFS3(SETATTR, chmod, root_))->status, NFS3_OK);
}

TEST_F(Nfs3HandlersTest, MkdirAndMknodMakeTheirTypes) {
  MKDIR3args m{};
  m.where = diropargs3{Fh(roots_["rw"]), Name("d")};
  m.attributes.mode.set_it = TRUE;
  m.attributes.mode.set_mode3_u.mode = 0750;
  auto d = NFS3(MKDIR, m, user_);
  ASSERT_EQ((*d)->status, NFS3_OK);
  const fattr3& da = (*d)->MKDIR3res_u.resok.obj_attributes.post_op_attr_u.attributes;
  EXPECT_EQ(da.type, NF3DIR);
  EXPECT_EQ(da.mode, 0750u);
  EXPECT_EQ(da.nlink, 2u);
  EXPECT_EQ((*d)->MKDIR3res_u.resok.dir_wcc.after.post_op_attr_u.attributes.nlink, 3u);
  EXPECT_EQ((*NFS3(MKDIR, m, user_))->status, NFS3ERR_EXIST);
  MKNOD3args fifo{};
  fifo.where = diropargs3{Fh(roots_["rw"]), Name("fifo")};
  fifo.what.type = NF3FIFO;
  auto p = NFS3(MKNOD, fifo, user_);
  ASSERT_EQ((*p)->status, NFS3_OK);
  EXPECT_EQ((*p)->MKNOD3res_u.resok.obj_attributes.post_op_attr_u.attributes.type, NF3FIFO);
  MKNOD3args chr{};
  chr.where = diropargs3{Fh(roots_["rw"]), Name("chr")};
  chr.what.type = NF3CHR;
  chr.what.mknoddata3_u.device.spec = specdata3{1, 3};
  auto c = NFS3(MKNOD, chr, root_);
  ASSERT_EQ((*c)->status, NFS3_OK);
  const fattr3& ca = (*c)->MKNOD3res_u.resok.obj_attributes.post_op_attr_u.attributes;
  EXPECT_EQ(ca.type, NF3CHR);
  EXPECT_EQ(ca.rdev.specdata1, 1u);
  EXPECT_EQ(ca.rdev.specdata2, 3u);
  // A device by an ordinary user: PERM. MKNOD of a regular file: BADTYPE.
  chr.where.name = Name("chr2");
  EXPECT_EQ((*NFS3(MKNOD, chr, user_))->status, NFS3ERR_PERM);
  MKNOD3args reg{};
  reg.where = diropargs3{Fh(roots_["rw"]), Name("reg")};
  reg.what.type = NF3REG;
  auto bad = NFS3(MKNOD, reg, user_);
  EXPECT_EQ((*bad)->status, NFS3ERR_BADTYPE);
  EXPECT_TRUE((*bad)->MKNOD3res_u.resfail.dir_wcc.after.attributes_follow);
}

TEST_F(Nfs3HandlersTest, RemoveAndRmdirCheckTheKindAndMakeHandlesStale) {
  const std::string dir = roots_["rw"];
  const std::string f = CreateFile(dir, "f", 0644, user_);
  const std::string d = MakeDir(dir, "d", 0755, user_);
  CreateFile(d, "inner", 0644, user_);
  REMOVE3args rm_dir{diropargs3{Fh(dir), Name("d")}};
  EXPECT_EQ((*NFS3(REMOVE, rm_dir, user_))->status, NFS3ERR_ISDIR);
  RMDIR3args rmdir_file{diropargs3{Fh(dir), Name("f")}};
  EXPECT_EQ((*NFS3(RMDIR, rmdir_file, user_))->status, NFS3ERR_NOTDIR);
  RMDIR3args rmdir_full{diropargs3{Fh(dir), Name("d")}};
  EXPECT_EQ((*NFS3(RMDIR, rmdir_full, user_))->status, NFS3ERR_NOTEMPTY);
  RMDIR3args rmdir_dot{diropargs3{Fh(d), Name(".")}};
  EXPECT_EQ((*NFS3(RMDIR, rmdir_dot, user_))->status, NFS3ERR_INVAL);
  // Another user in a sticky-less 0777 root may remove; in 0755 "d", not.
  REMOVE3args rm_inner{diropargs3{Fh(d), Name("inner")}};
  EXPECT_EQ((*NFS3(REMOVE, rm_inner, other_))->status, NFS3ERR_ACCES);
  auto ok = NFS3(REMOVE, rm_inner, user_);
  ASSERT_EQ((*ok)->status, NFS3_OK);
  const wcc_data& wcc = (*ok)->REMOVE3res_u.resok.dir_wcc;
  ASSERT_TRUE(wcc.before.attributes_follow && wcc.after.attributes_follow);
  EXPECT_NE(memcmp(&wcc.before.pre_op_attr_u.attributes.ctime,
                   &wcc.after.post_op_attr_u.attributes.ctime, sizeof(nfstime3)),
            0);
  EXPECT_EQ((*NFS3(RMDIR, rmdir_full, user_))->status, NFS3_OK);
  GetAttr(d, NFS3ERR_STALE);
  REMOVE3args rm_f{diropargs3{Fh(dir), Name("f")}};
  EXPECT_EQ((*NFS3(REMOVE, rm_f, user_))->status, NFS3_OK);
  GetAttr(f, NFS3ERR_STALE);
  EXPECT_EQ((*NFS3(REMOVE, rm_f, user_))->status, NFS3ERR_NOENT);
  EXPECT_EQ((*NFS3(REMOVE, rm_f, user_))->REMOVE3res_u.resfail.dir_wcc.after.attributes_follow,
            TRUE);
}

TEST_F(Nfs3HandlersTest, RenameMovesBetweenDirectoriesOfOneExportOnly) {
  const std::string a = MakeDir(roots_["rw"], "a", 0777, user_);
  const std::string b = MakeDir(roots_["rw"], "b", 0777, user_);
  const std::string f = CreateFile(a, "f", 0644, user_);
  RENAME3args r{diropargs3{Fh(a), Name("f")}, diropargs3{Fh(b), Name("g")}};
  auto done = NFS3(RENAME, r, user_);
  ASSERT_EQ((*done)->status, NFS3_OK);
  const RENAME3resok& ok = (*done)->RENAME3res_u.resok;
  EXPECT_TRUE(ok.fromdir_wcc.before.attributes_follow && ok.fromdir_wcc.after.attributes_follow);
  EXPECT_EQ(ok.todir_wcc.after.post_op_attr_u.attributes.fileid, GetAttr(b).fileid);
  EXPECT_EQ(ListNames(a), (std::vector<std::string>{".", ".."}));
  EXPECT_EQ(ListNames(b), (std::vector<std::string>{".", "..", "g"}));
  EXPECT_EQ(GetAttr(f).nlink, 1u);  // the handle survives the rename
  // Again: NOENT. Onto a directory: ISDIR... of another export: XDEV; a bad second
  // handle: BADHANDLE; "." as a source: INVAL.
  EXPECT_EQ((*NFS3(RENAME, r, user_))->status, NFS3ERR_NOENT);
  RENAME3args across{diropargs3{Fh(b), Name("g")}, diropargs3{Fh(roots_["squash"]), Name("g")}};
  EXPECT_EQ((*NFS3(RENAME, across, user_))->status, NFS3ERR_XDEV);
  const std::string junk(40, 'q');
  RENAME3args bad{diropargs3{Fh(b), Name("g")}, diropargs3{Fh(junk), Name("g")}};
  EXPECT_EQ((*NFS3(RENAME, bad, user_))->status, NFS3ERR_BADHANDLE);
  RENAME3args dot{diropargs3{Fh(b), Name(".")}, diropargs3{Fh(a), Name("x")}};
  EXPECT_EQ((*NFS3(RENAME, dot, user_))->status, NFS3ERR_INVAL);
  // A removed target directory: STALE (the second handle is resolved before the handler).
  RMDIR3args rm{diropargs3{Fh(roots_["rw"]), Name("a")}};
  ASSERT_EQ((*NFS3(RMDIR, rm, user_))->status, NFS3_OK);
  RENAME3args to_gone{diropargs3{Fh(b), Name("g")}, diropargs3{Fh(a), Name("g")}};
  EXPECT_EQ((*NFS3(RENAME, to_gone, user_))->status, NFS3ERR_STALE);
}

TEST_F(Nfs3HandlersTest, LinkAddsANameAndRefusesDirectoriesAndOtherExports) {
  const std::string f = CreateFile(roots_["rw"], "f", 0644, user_);
  const std::string d = MakeDir(roots_["rw"], "d", 0777, user_);
  LINK3args l{Fh(f), diropargs3{Fh(d), Name("again")}};
  auto r = NFS3(LINK, l, user_);
  ASSERT_EQ((*r)->status, NFS3_OK);
  EXPECT_EQ((*r)->LINK3res_u.resok.file_attributes.post_op_attr_u.attributes.nlink, 2u);
  EXPECT_TRUE((*r)->LINK3res_u.resok.linkdir_wcc.after.attributes_follow);
  EXPECT_EQ((*NFS3(LINK, l, user_))->status, NFS3ERR_EXIST);
  LINK3args dir{Fh(d), diropargs3{Fh(roots_["rw"]), Name("dl")}};
  EXPECT_EQ((*NFS3(LINK, dir, user_))->status, NFS3ERR_ISDIR);
  LINK3args across{Fh(f), diropargs3{Fh(roots_["squash"]), Name("x")}};
  EXPECT_EQ((*NFS3(LINK, across, user_))->status, NFS3ERR_XDEV);
}

TEST_F(Nfs3HandlersTest, ReaddirListsDotsAndEntriesPagesByCookieAndChecksVerifiers) {
  const std::string d = MakeDir(roots_["rw"], "d", 0755, user_);
  std::set<std::string> made;
  for (int i = 0; i < 20; ++i) {
    const std::string name = "entry-" + std::to_string(i);
    CreateFile(d, name, 0644, user_);
    made.insert(name);
  }
  // Small pages: every entry once, "." and ".." first.
  std::vector<std::string> names;
  uint64_t cookie = 0;
  char verf[NFS3_COOKIEVERFSIZE] = {};
  bool eof = false;
  int pages = 0;
  while (!eof && pages < 100) {
    READDIR3args a{};
    a.dir = Fh(d);
    a.cookie = cookie;
    memcpy(a.cookieverf, verf, sizeof(verf));
    a.count = 300;
    auto r = NFS3(READDIR, a, user_);
    ASSERT_EQ((*r)->status, NFS3_OK);
    const READDIR3resok& ok = (*r)->READDIR3res_u.resok;
    EXPECT_TRUE(ok.dir_attributes.attributes_follow);
    memcpy(verf, ok.cookieverf, sizeof(verf));
    for (entry3* e = ok.reply.entries; e; e = e->nextentry) {
      names.emplace_back(e->name.filename3_val, e->name.filename3_len);
      cookie = e->cookie;
    }
    eof = ok.reply.eof;
    ++pages;
  }
  EXPECT_GT(pages, 2);
  ASSERT_EQ(names.size(), 22u);
  EXPECT_EQ(names[0], ".");
  EXPECT_EQ(names[1], "..");
  EXPECT_EQ(std::set<std::string>(names.begin() + 2, names.end()), made);
  // Another directory's verifier with a cookie: BAD_COOKIE; a cookie never given: too.
  READDIR3args wrong{};
  wrong.dir = Fh(d);
  wrong.cookie = 3;
  Uint64ToOpaque8(Uint64FromOpaque8(verf) ^ 1, wrong.cookieverf);
  wrong.count = 4096;
  auto bad = NFS3(READDIR, wrong, user_);
  EXPECT_EQ((*bad)->status, NFS3ERR_BAD_COOKIE);
  EXPECT_TRUE((*bad)->READDIR3res_u.resfail.dir_attributes.attributes_follow);
  READDIR3args never{};
  never.dir = Fh(d);
  never.cookie = 999999;
  never.count = 4096;
  EXPECT_EQ((*NFS3(READDIR, never, user_))->status, NFS3ERR_BAD_COOKIE);
  // Too small for one entry: TOOSMALL. Of a file: NOTDIR. Unreadable: ACCES.
  READDIR3args tiny{};
  tiny.dir = Fh(d);
  tiny.count = 10;
  EXPECT_EQ((*NFS3(READDIR, tiny, user_))->status, NFS3ERR_TOOSMALL);
  READDIR3args file{};
  const std::string file_fh = CreateFile(roots_["rw"], "file", 0644, user_);
  file.dir = Fh(file_fh);
  file.count = 4096;
  EXPECT_EQ((*NFS3(READDIR, file, user_))->status, NFS3ERR_NOTDIR);
  const std::string closed = MakeDir(roots_["rw"], "closed", 0700, root_);
  READDIR3args unreadable{};
  unreadable.dir = Fh(closed);
  unreadable.count = 4096;
  EXPECT_EQ((*NFS3(READDIR, unreadable, user_))->status, NFS3ERR_ACCES);
}

TEST_F(Nfs3HandlersTest, ReaddirplusGivesHandlesAndAttributesThatResolve) {
  const std::string d = MakeDir(roots_["rw"], "d", 0755, user_);
  const std::string f = CreateFile(d, "f", 0600, user_);
  READDIRPLUS3args a{};
  a.dir = Fh(d);
  a.dircount = 512;
  a.maxcount = 65536;
  auto r = NFS3(READDIRPLUS, a, user_);
  ASSERT_EQ((*r)->status, NFS3_OK);
  const READDIRPLUS3resok& ok = (*r)->READDIRPLUS3res_u.resok;
  EXPECT_TRUE(ok.reply.eof);
  EXPECT_EQ(Uint64FromOpaque8(ok.cookieverf), backend::DirCookieVerifier(GetAttr(d).fileid));
  std::map<std::string, entryplus3*> by_name;
  for (entryplus3* e = ok.reply.entries; e; e = e->nextentry)
    by_name[std::string(e->name.filename3_val, e->name.filename3_len)] = e;
  ASSERT_EQ(by_name.size(), 3u);
  // "." is the directory itself, ".." its parent (the root), "f" the file.
  for (const auto& [name, want] : std::map<std::string, std::string>{
           {".", d}, {"..", roots_["rw"]}, {"f", f}}) {
    entryplus3* e = by_name[name];
    ASSERT_TRUE(e->name_handle.handle_follows) << name;
    ASSERT_TRUE(e->name_attributes.attributes_follow) << name;
    EXPECT_EQ(GetAttr(WireOf(e->name_handle.post_op_fh3_u.handle)).fileid,
              GetAttr(want).fileid)
        << name;
    EXPECT_EQ(e->name_attributes.post_op_attr_u.attributes.fileid, e->fileid) << name;
  }
  EXPECT_EQ(by_name["f"]->name_attributes.post_op_attr_u.attributes.mode, 0600u);
}

TEST_F(Nfs3HandlersTest, FsstatFsinfoAndPathconf) {
  FSSTAT3args s{Fh(roots_["rw"])};
  auto fs = NFS3(FSSTAT, s, user_);
  ASSERT_EQ((*fs)->status, NFS3_OK);
  EXPECT_GT((*fs)->FSSTAT3res_u.resok.tbytes, 0u);
  EXPECT_TRUE((*fs)->FSSTAT3res_u.resok.obj_attributes.attributes_follow);
  FSINFO3args i{Fh(roots_["ro"])};
  auto info = NFS3(FSINFO, i, user_);
  ASSERT_EQ((*info)->status, NFS3_OK);
  const FSINFO3resok& iok = (*info)->FSINFO3res_u.resok;
  EXPECT_EQ(iok.rtmax, backend::kMaxIoSize);
  EXPECT_EQ(iok.wtmax, backend::kMaxIoSize);
  EXPECT_EQ(iok.dtpref, backend::kPrefDirSize);
  EXPECT_EQ(iok.properties,
            static_cast<uint32_t>(FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME));
  EXPECT_EQ(iok.obj_attributes.post_op_attr_u.attributes.fsid, exports_["ro"]->id());
  PATHCONF3args p{Fh(roots_["rw"])};
  auto pc = NFS3(PATHCONF, p, user_);
  ASSERT_EQ((*pc)->status, NFS3_OK);
  EXPECT_EQ((*pc)->PATHCONF3res_u.resok.name_max, backend::kMaxNameLen);
  EXPECT_TRUE((*pc)->PATHCONF3res_u.resok.no_trunc);
  // A stale handle fails them all alike.
  const std::string gone = CreateFile(roots_["rw"], "gone", 0644, user_);
  REMOVE3args rm{diropargs3{Fh(roots_["rw"]), Name("gone")}};
  ASSERT_EQ((*NFS3(REMOVE, rm, user_))->status, NFS3_OK);
  FSSTAT3args stale{Fh(gone)};
  EXPECT_EQ((*NFS3(FSSTAT, stale, user_))->status, NFS3ERR_STALE);
}

TEST_F(Nfs3HandlersTest, CommitMakesWritesDurableAndGivesTheVerifier) {
  const std::string f = CreateFile(roots_["rw"], "f", 0644, user_);
  WRITE3args w{};
  const std::string data = "unstable";
  w.file = Fh(f);
  w.count = static_cast<count3>(data.size());
  w.stable = UNSTABLE;
  w.data.data_len = static_cast<u_int>(data.size());
  w.data.data_val = const_cast<char*>(data.data());
  ASSERT_EQ((*NFS3(WRITE, w, user_))->status, NFS3_OK);
  commits_.records.clear();
  COMMIT3args c{Fh(f), 0, 0};
  auto r = NFS3(COMMIT, c, user_);
  ASSERT_EQ((*r)->status, NFS3_OK);
  EXPECT_EQ(Uint64FromOpaque8((*r)->COMMIT3res_u.resok.verf), kVerifier);
  EXPECT_TRUE((*r)->COMMIT3res_u.resok.file_wcc.after.attributes_follow);
  ASSERT_EQ(commits_.records.size(), 1u);
  EXPECT_EQ(commits_.records[0].kind, backend::CommitRecord::Kind::kData);
  COMMIT3args ro{Fh(roots_["ro"]), 0, 0};
  EXPECT_EQ((*NFS3(COMMIT, ro, user_))->status, NFS3ERR_ROFS);
}

// `sync` (the default): the Backend commits a change before the reply, new object first,
// then its directory; `async`: nothing is committed.
TEST_F(Nfs3HandlersTest, SyncExportsCommitMetadataBeforeTheReplyAsyncOnesDoNot) {
  commits_.records.clear();
  const std::string f = CreateFile(roots_["rw"], "f", 0644, user_);
  ASSERT_EQ(commits_.records.size(), 2u);
  EXPECT_EQ(commits_.records[0].fileid, GetAttr(f).fileid);
  EXPECT_EQ(commits_.records[1].fileid, GetAttr(roots_["rw"]).fileid);
  commits_.records.clear();
  CreateFile(roots_["async"], "f", 0644, user_);
  EXPECT_TRUE(commits_.records.empty());
}

// On the event loop, a change for a `sync` export moves to a worker before anything is
// done; an `async` one runs there (quick).
TEST_F(Nfs3HandlersTest, SyncChangeOnTheLoopMovesToAWorkerBeforeAnythingIsDone) {
  MKDIR3args m{};
  m.where = diropargs3{Fh(roots_["rw"]), Name("d")};
  std::unique_ptr<rpc::Call> call = dispatcher_->Receive(
      Message(NFSPROC3_MKDIR, reinterpret_cast<xdrproc_t>(xdr_MKDIR3args), &m, user_),
      conn_.get());
  rpc::ReplyRecord record;
  rpc::Dispatcher::RunOptions on_loop;
  on_loop.with_record_mark = false;
  on_loop.must_not_block = true;
  ASSERT_EQ(dispatcher_->Run(*call, &record, std::move(on_loop)),
            rpc::Dispatcher::Outcome::kWouldBlock);
  EXPECT_EQ(ListNames(roots_["rw"]), (std::vector<std::string>{".", ".."}));
  rpc::Dispatcher::RunOptions on_worker;
  on_worker.with_record_mark = false;
  ASSERT_EQ(dispatcher_->Run(*call, &record, std::move(on_worker)),
            rpc::Dispatcher::Outcome::kReply);
  Result<MKDIR3res> res(reinterpret_cast<xdrproc_t>(xdr_MKDIR3res));
  DecodeReply(record.Flatten(), reinterpret_cast<xdrproc_t>(xdr_MKDIR3res), &res.res_);
  EXPECT_EQ(res->status, NFS3_OK);
  EXPECT_EQ(Calls(NFSPROC3_MKDIR), 1u);
  // async: on the loop.
  int deferred = 0;
  m.where = diropargs3{Fh(roots_["async"]), Name("d")};
  auto quick = NFS3(MKDIR, m, user_, /*loop_first=*/true, &deferred);
  EXPECT_EQ((*quick)->status, NFS3_OK);
  EXPECT_EQ(deferred, 0);
}

class Nfs3HandlersSearchTest : public Nfs3HandlersTest {
 protected:
  void SetUp() override {
    MemoryBackendOptions o;
    o.resolve_needs_search = true;
    Start(o);
  }
};
class Nfs3HandlersDiskTest : public Nfs3HandlersTest {
 protected:
  void SetUp() override {
    MemoryBackendOptions o;
    o.reads_need_disk = true;
    Start(o);
  }
};

// A handle only a search can resolve, on the loop: kWouldBlock, then the worker resolves
// it once and answers; the call is counted once.
TEST_F(Nfs3HandlersSearchTest, AResolutionThatNeedsASearchContinuesOnAWorker) {
  const uint64_t resolved = backend_->nodes_opened();
  int deferred = 0;
  GETATTR3args g{Fh(roots_["rw"])};
  auto r = NFS3(GETATTR, g, user_, /*loop_first=*/true, &deferred);
  ASSERT_EQ((*r)->status, NFS3_OK);
  EXPECT_EQ((*r)->GETATTR3res_u.resok.obj_attributes.type, NF3DIR);
  EXPECT_EQ(deferred, 1);
  EXPECT_EQ(backend_->nodes_opened(), resolved + 1);
  EXPECT_EQ(Calls(NFSPROC3_GETATTR), 1u);
  // RENAME's second handle too: the first stays resolved.
  const std::string a = MakeDir(roots_["rw"], "a", 0777, user_);
  CreateFile(a, "f", 0644, user_);
  const uint64_t before = backend_->nodes_opened();
  deferred = 0;
  RENAME3args mv{diropargs3{Fh(a), Name("f")}, diropargs3{Fh(roots_["async"]), Name("g")}};
  EXPECT_EQ((*NFS3(RENAME, mv, user_, true, &deferred))->status, NFS3ERR_XDEV);
  EXPECT_EQ(deferred, 0);  // refused before any resolution
  RENAME3args ok{diropargs3{Fh(a), Name("f")}, diropargs3{Fh(roots_["rw"]), Name("g")}};
  EXPECT_EQ((*NFS3(RENAME, ok, user_, true, &deferred))->status, NFS3_OK);
  EXPECT_EQ(deferred, 1);
  EXPECT_EQ(backend_->nodes_opened(), before + 2);
}

// A READ of data that would need the disk, on the loop: kWouldBlock having done nothing;
// the worker reads, and resolves nothing again.
TEST_F(Nfs3HandlersDiskTest, AReadThatWouldWaitForTheDiskContinuesOnAWorker) {
  const std::string f = CreateFile(roots_["rw"], "f", 0644, user_);
  ASSERT_EQ(WriteData(f, "on disk"), NFS3_OK);
  READ3args r{Fh(f), 0, 100};
  std::unique_ptr<rpc::Call> call = dispatcher_->Receive(
      Message(NFSPROC3_READ, reinterpret_cast<xdrproc_t>(xdr_READ3args), &r, user_),
      conn_.get());
  rpc::ReplyRecord record;
  rpc::Dispatcher::RunOptions on_loop;
  on_loop.with_record_mark = false;
  on_loop.must_not_block = true;
  const uint64_t before = backend_->nodes_opened();
  ASSERT_EQ(dispatcher_->Run(*call, &record, std::move(on_loop)),
            rpc::Dispatcher::Outcome::kWouldBlock);
  // Resolved on the loop, once.
  const uint64_t resolved = backend_->nodes_opened();
  EXPECT_EQ(resolved, before + 1);
  rpc::Dispatcher::RunOptions on_worker;
  on_worker.with_record_mark = false;
  ASSERT_EQ(dispatcher_->Run(*call, &record, std::move(on_worker)),
            rpc::Dispatcher::Outcome::kReply);
  EXPECT_EQ(backend_->nodes_opened(), resolved);
  Result<READ3res> res(reinterpret_cast<xdrproc_t>(xdr_READ3res));
  DecodeReply(record.Flatten(), reinterpret_cast<xdrproc_t>(xdr_READ3res), &res.res_);
  ASSERT_EQ(res->status, NFS3_OK);
  EXPECT_EQ(std::string(res->READ3res_u.resok.data.data_val, res->READ3res_u.resok.data.data_len),
            "on disk");
  EXPECT_EQ(Calls(NFSPROC3_READ), 1u);
}

}  // namespace
}  // namespace localnfs::server
