// server/mount/mount_program_test.cc — every MOUNT v3 procedure (NULL, MNT, DUMP, UMNT,
// UMNTALL, EXPORT) through MountProgram's Dispatch, from encoded calls to decoded replies
// (rpc/test_program.h RunCall), on the memory backend under the caching layer: the
// backend stack of main.cc with the disk replaced. The exports are real directories (an
// Export opens its root), but every file MNT resolves lives in the memory backend.
#include "server/mount/mount_program.h"

#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/rcu.h"
#include "common/release_queue.h"
#include "export_cache/client_pattern.h"
#include "export_cache/export_table.h"
#include "gtest/gtest.h"
#include "rpc/mount3.h"
#include "rpc/server.h"
#include "rpc/test_program.h"
#include "server/backend/caching_backend.h"
#include "server/backend/memory_backend.h"
#include "server/policy/fhandle.h"
#include "tests/support/temp_dir.h"

namespace localnfs::server {
namespace {

using rpc::testing::DecodedResult;
using rpc::testing::TestReply;
using rpc::testing::U32;

using MntResult = DecodedResult<mountres3, xdr_mountres3>;
using DumpResult = DecodedResult<mountlist, xdr_mountlist>;
using ExportResult = DecodedResult<exportlist3, xdr_exportlist3>;

// A dirpath argument (string<MNTPATHLEN>): length, bytes, padding.
std::string Dirpath(std::string_view path) {
  std::string s = U32(static_cast<uint32_t>(path.size()));
  s.append(path);
  s.append((4 - path.size() % 4) % 4, '\0');
  return s;
}

PeerAddress Peer(const char* host, uint16_t port) {
  PeerAddress a;
  EXPECT_TRUE(PeerAddress::Parse(host, port, &a)) << host;
  return a;
}

exports::ClientRule Rule(const char* pattern, bool secure = false) {
  exports::ClientRule rule;
  auto parsed = exports::ParseClientPattern(pattern);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  rule.pattern = *parsed;
  rule.options.secure = secure;
  return rule;
}

class MountProgramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // exp: two rules (a host and a network); sec: everyone, but only from ports < 1024.
    exp_path_ = tmp_.Sub("exp");
    sec_path_ = tmp_.Sub("sec");
    ASSERT_EQ(mkdir(exp_path_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(sec_path_.c_str(), 0755), 0);
    exports::ExportSpec exp;
    exp.path = exp_path_;
    exp.rules = {Rule("127.0.0.1"), Rule("10.1.0.0/16")};
    exports::ExportSpec sec;
    sec.path = sec_path_;
    sec.rules = {Rule("*", /*secure=*/true)};
    ASSERT_TRUE(table_.Load({exp, sec}).ok());
    exp_ = table_.FindByPath(exp_path_);
    ASSERT_TRUE(exp_);
    auto key = HandleKey::LoadOrCreate(tmp_.path());
    ASSERT_TRUE(key.ok()) << key.status();
    key_.emplace(std::move(*key));

    // In the export's memory tree: sub/deeper, a file and a symlink to sub.
    auto root = memory_.OpenPath(*exp_, "");
    ASSERT_TRUE(root.ok()) << root.status();
    root_fileid_ = root->attrs().fileid;
    backend::SetAttrRequest mode;
    mode.mode = 0755;
    const backend::Caller caller{root_cred_};
    auto sub = memory_.Mkdir(*root, "sub", mode, caller);
    ASSERT_TRUE(sub.ok()) << sub.status();
    sub_fileid_ = sub->attrs().fileid;
    ASSERT_TRUE(memory_.Mkdir(*sub, "deeper", mode, caller).ok());
    ASSERT_TRUE(
        memory_.Create(*root, "file", backend::CreateHow::kGuarded, mode, 0, caller).ok());
    ASSERT_TRUE(memory_.Symlink(*root, "link", "sub", mode, caller).ok());

    mount_.emplace(MountProgram::Deps{&table_, &*key_, &caching_, /*max_mounts=*/8});
    dispatcher_.AddProgram(&*mount_);
  }
  void TearDown() override {
    mount_.reset();
    exp_.reset();
    caching_.Shutdown();
    table_.Shutdown();
    DrainReleases();
  }

  TestReply Call(uint32_t proc, const std::string& args,
                 rpc::ConnectionInfo* conn = nullptr) {
    std::optional<TestReply> r = rpc::testing::RunCall(
        dispatcher_, conn ? *conn : local_, MOUNT_PROGRAM, MOUNT_V3, proc, args);
    EXPECT_TRUE(r) << "no reply to procedure " << proc;
    if (!r) return TestReply{};
    EXPECT_TRUE(r->error.is_success()) << "procedure " << proc;
    return *r;
  }

  // The fileid of the object a MNT reply's handle names, resolved as the next NFS call
  // would resolve it (through the caching layer); 0 when it does not resolve.
  uint64_t FileidOfHandle(const mountres3& res) {
    const fhandle3& fh = res.mountres3_u.mountinfo.fhandle;
    auto decoded = key_->Decode(std::string_view(fh.fhandle3_val, fh.fhandle3_len));
    EXPECT_TRUE(decoded.ok()) << decoded.status();
    if (!decoded.ok()) return 0;
    EXPECT_EQ(decoded->export_id, exp_->id());
    auto obj = caching_.Resolve(*exp_, decoded->kernel);
    EXPECT_TRUE(obj.ok()) << obj.status();
    return obj.ok() ? obj->attrs().fileid : 0;
  }

  std::vector<std::pair<std::string, std::string>> Dumped() {
    DumpResult dump(Call(MOUNTPROC3_DUMP, "").body);
    EXPECT_TRUE(dump.ok());
    std::vector<std::pair<std::string, std::string>> out;
    for (const mountbody* b = *dump; b != nullptr; b = b->ml_next)
      out.emplace_back(b->ml_hostname,
                       std::string(b->ml_directory.dirpath_val, b->ml_directory.dirpath_len));
    return out;
  }

  localnfs::testing::TempDir tmp_{"mounttest"};
  std::string exp_path_, sec_path_;
  exports::ExportTable table_;
  Ref<exports::Export> exp_;
  std::optional<HandleKey> key_;
  backend::MemoryBackend memory_;
  backend::CachingBackend caching_{memory_, FileCacheOptions{}};
  Credentials root_cred_ = [] {
    Credentials c;
    c.uid = 0;
    c.gid = 0;
    return c;
  }();
  uint64_t root_fileid_ = 0, sub_fileid_ = 0;
  // Calls of `proc` the dispatcher counted (rpc/procedure_stats.h).
  uint64_t Calls(uint32_t proc) const {
    return dispatcher_.procedure_stats(*mount_)[proc].calls();
  }

  std::optional<MountProgram> mount_;
  rpc::ServerCounters counters_;
  rpc::Dispatcher dispatcher_{&counters_};
  // Peers: the rule's host from a reserved port, another host of the rule's network,
  // a host no rule names, the rule's host from an unreserved port.
  rpc::ConnectionInfo local_{1, Peer("127.0.0.1", 700), PeerAddress{}};
  rpc::ConnectionInfo net_{2, Peer("10.1.2.3", 800), PeerAddress{}};
  rpc::ConnectionInfo stranger_{3, Peer("10.9.9.9", 700), PeerAddress{}};
  rpc::ConnectionInfo unreserved_{4, Peer("127.0.0.1", 40000), PeerAddress{}};
};

TEST_F(MountProgramTest, NullAnswersVoid) {
  EXPECT_EQ(Call(MOUNTPROC3_NULL, "").body, "");
  EXPECT_EQ(Calls(MOUNTPROC3_NULL), 1u);
  EXPECT_EQ(mount_->mount_count(), 0u);
}

TEST_F(MountProgramTest, MntGivesTheHandleOfTheExportRootAndAuthSys) {
  for (const std::string& path : {exp_path_, exp_path_ + "/", exp_path_ + "/."}) {
    MntResult res(Call(MOUNTPROC3_MNT, Dirpath(path)).body);
    ASSERT_TRUE(res.ok()) << path;
    ASSERT_EQ(res->fhs_status, MNT3_OK) << path;
    const mountres3_ok& ok = res->mountres3_u.mountinfo;
    ASSERT_EQ(ok.auth_flavors.auth_flavors_len, 1u);
    EXPECT_EQ(ok.auth_flavors.auth_flavors_val[0], 1);  // AUTH_SYS
    EXPECT_LE(ok.fhandle.fhandle3_len, static_cast<u_int>(FHSIZE3));
    EXPECT_EQ(FileidOfHandle(*res), root_fileid_) << path;
  }
  // MNT left the root's node in the caching layer: the resolutions above found it there,
  // without resolving the handle in the backend again.
  EXPECT_EQ(memory_.nodes_opened(), 0u);
  EXPECT_EQ(Calls(MOUNTPROC3_MNT), 3u);
}

TEST_F(MountProgramTest, MntOfASubdirectoryGivesItsHandle) {
  MntResult res(Call(MOUNTPROC3_MNT, Dirpath(exp_path_ + "/sub")).body);
  ASSERT_TRUE(res.ok());
  ASSERT_EQ(res->fhs_status, MNT3_OK);
  EXPECT_EQ(FileidOfHandle(*res), sub_fileid_);
  MntResult deeper(Call(MOUNTPROC3_MNT, Dirpath(exp_path_ + "/sub/deeper/")).body);
  ASSERT_TRUE(deeper.ok());
  EXPECT_EQ(deeper->fhs_status, MNT3_OK);
}

TEST_F(MountProgramTest, MntOfABadPathIsNoentNotdirOrInval) {
  auto status = [&](const std::string& path) {
    MntResult res(Call(MOUNTPROC3_MNT, Dirpath(path)).body);
    EXPECT_TRUE(res.ok()) << path;
    return res.ok() ? res->fhs_status : MNT3ERR_SERVERFAULT;
  };
  EXPECT_EQ(status(tmp_.Sub("nowhere")), MNT3ERR_NOENT);       // no export
  EXPECT_EQ(status(exp_path_ + "x"), MNT3ERR_NOENT);           // not below it: a prefix
  EXPECT_EQ(status(exp_path_ + "/missing"), MNT3ERR_NOENT);
  EXPECT_EQ(status(exp_path_ + "/file"), MNT3ERR_NOTDIR);
  EXPECT_EQ(status(exp_path_ + "/file/x"), MNT3ERR_NOTDIR);
  // A symlink is never followed: at the end it is itself (not a directory), on the
  // way it ends the walk (ELOOP).
  EXPECT_EQ(status(exp_path_ + "/link"), MNT3ERR_NOTDIR);
  EXPECT_EQ(status(exp_path_ + "/link/deeper"), MNT3ERR_NOENT);
  EXPECT_EQ(status(exp_path_ + "/sub/../.."), MNT3ERR_NOENT);  // never above the root
  EXPECT_EQ(status(exp_path_ + std::string("\0/sub", 5)), MNT3ERR_INVAL);
  EXPECT_EQ(mount_->mount_count(), 0u);
}

TEST_F(MountProgramTest, MntIsAccesForAPeerNoRuleAdmits) {
  auto status = [&](const std::string& path, rpc::ConnectionInfo& conn) {
    MntResult res(Call(MOUNTPROC3_MNT, Dirpath(path), &conn).body);
    EXPECT_TRUE(res.ok());
    return res.ok() ? res->fhs_status : MNT3ERR_SERVERFAULT;
  };
  EXPECT_EQ(status(exp_path_, net_), MNT3_OK);  // the network's rule
  EXPECT_EQ(status(exp_path_, stranger_), MNT3ERR_ACCES);
  EXPECT_EQ(status(exp_path_ + "/sub", stranger_), MNT3ERR_ACCES);
  // `secure`: a reserved port only.
  EXPECT_EQ(status(sec_path_, local_), MNT3_OK);
  EXPECT_EQ(status(sec_path_, unreserved_), MNT3ERR_ACCES);
  EXPECT_EQ(mount_->mount_count(), 2u);
}

TEST_F(MountProgramTest, DumpListsMountsUntilUmntAndUmntall) {
  EXPECT_TRUE(Dumped().empty());
  for (const std::string& path : {exp_path_, exp_path_ + "/sub"}) {
    MntResult res(Call(MOUNTPROC3_MNT, Dirpath(path)).body);
    ASSERT_TRUE(res.ok() && res->fhs_status == MNT3_OK) << path;
  }
  MntResult other(Call(MOUNTPROC3_MNT, Dirpath(exp_path_), &net_).body);
  ASSERT_TRUE(other.ok() && other->fhs_status == MNT3_OK);
  using Mounts = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(Dumped(), (Mounts{{"127.0.0.1", exp_path_},
                              {"127.0.0.1", exp_path_ + "/sub"},
                              {"10.1.2.3", exp_path_}}));
  // Mounted again: now the youngest.
  MntResult again(Call(MOUNTPROC3_MNT, Dirpath(exp_path_)).body);
  ASSERT_TRUE(again.ok() && again->fhs_status == MNT3_OK);
  EXPECT_EQ(Dumped(), (Mounts{{"127.0.0.1", exp_path_ + "/sub"},
                              {"10.1.2.3", exp_path_},
                              {"127.0.0.1", exp_path_}}));

  // UMNT removes the caller's entry of that path only (void reply, also for unknown ones).
  EXPECT_EQ(Call(MOUNTPROC3_UMNT, Dirpath(exp_path_)).body, "");
  EXPECT_EQ(Call(MOUNTPROC3_UMNT, Dirpath(tmp_.Sub("never"))).body, "");
  EXPECT_EQ(Dumped(), (Mounts{{"127.0.0.1", exp_path_ + "/sub"}, {"10.1.2.3", exp_path_}}));
  // UMNTALL: every entry of the caller's host.
  MntResult more(Call(MOUNTPROC3_MNT, Dirpath(sec_path_)).body);
  ASSERT_TRUE(more.ok() && more->fhs_status == MNT3_OK);
  EXPECT_EQ(Call(MOUNTPROC3_UMNTALL, "").body, "");
  EXPECT_EQ(Dumped(), (Mounts{{"10.1.2.3", exp_path_}}));
  EXPECT_EQ(mount_->mount_count(), 1u);
  EXPECT_EQ(Calls(MOUNTPROC3_UMNT), 2u);
  EXPECT_EQ(Calls(MOUNTPROC3_UMNTALL), 1u);
}

TEST_F(MountProgramTest, DumpForgetsTheOldestBeyondMaxMounts) {
  // max_mounts is 8: the tree has 3 directories, so mount them from 3 hosts.
  std::vector<std::unique_ptr<rpc::ConnectionInfo>> conns;
  for (int i = 0; i < 3; ++i)
    conns.push_back(std::make_unique<rpc::ConnectionInfo>(
        10 + i, Peer(("10.1.0." + std::to_string(i + 1)).c_str(), 700), PeerAddress{}));
  for (auto& conn : conns) {
    for (const std::string& path :
         {exp_path_, exp_path_ + "/sub", exp_path_ + "/sub/deeper"}) {
      MntResult res(Call(MOUNTPROC3_MNT, Dirpath(path), conn.get()).body);
      ASSERT_TRUE(res.ok() && res->fhs_status == MNT3_OK) << path;
    }
  }
  EXPECT_EQ(mount_->mount_count(), 8u);
  EXPECT_EQ(mount_->mounts_forgotten(), 1u);
  const auto dumped = Dumped();
  ASSERT_EQ(dumped.size(), 8u);
  EXPECT_EQ(dumped.front(), std::make_pair(std::string("10.1.0.1"), exp_path_ + "/sub"));
}

TEST_F(MountProgramTest, ExportListsEveryExportWithItsClientPatterns) {
  ExportResult list(Call(MOUNTPROC3_EXPORT, "").body);
  ASSERT_TRUE(list.ok());
  std::vector<std::pair<std::string, std::vector<std::string>>> got;
  for (const exportnode* n = *list; n != nullptr; n = n->ex_next) {
    std::vector<std::string> groups;
    for (const groupnode* g = n->ex_groups; g != nullptr; g = g->gr_next)
      groups.emplace_back(g->gr_name);
    got.emplace_back(std::string(n->ex_dir.dirpath_val, n->ex_dir.dirpath_len),
                     std::move(groups));
  }
  std::sort(got.begin(), got.end());
  using Exports = std::vector<std::pair<std::string, std::vector<std::string>>>;
  EXPECT_EQ(got, (Exports{{exp_path_, {"127.0.0.1", "10.1.0.0/16"}}, {sec_path_, {"*"}}}));
  EXPECT_EQ(Calls(MOUNTPROC3_EXPORT), 1u);
}

TEST_F(MountProgramTest, UndecodableArgumentsAreGarbageArgs) {
  std::optional<TestReply> r = rpc::testing::RunCall(dispatcher_, local_, MOUNT_PROGRAM,
                                                     MOUNT_V3, MOUNTPROC3_MNT, U32(4096));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error.accept_stat, rpc::AcceptStat::kGarbageArgs);
  // A path longer than MNTPATHLEN.
  r = rpc::testing::RunCall(dispatcher_, local_, MOUNT_PROGRAM, MOUNT_V3, MOUNTPROC3_MNT,
                            Dirpath(std::string(MNTPATHLEN + 1, 'a')));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error.accept_stat, rpc::AcceptStat::kGarbageArgs);
  EXPECT_EQ(mount_->mount_count(), 0u);
}

}  // namespace
}  // namespace localnfs::server
