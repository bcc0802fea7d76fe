// tests/drc_test.cc — the duplicate request cache against a real localnfsd, over raw
// TCP (tests/wire.h): a retransmitted non-idempotent call (same XID, same bytes) gets
// the reply of the original instead of being executed again — where running it again
// would answer NFS3ERR_NOENT (REMOVE, RENAME) or NFS3ERR_EXIST (MKDIR) — also when it
// arrives on a new connection; a call that only shares the XID (other arguments, other
// credentials) or only the bytes (other XID) is executed. A server started with
// --drc-max-entries 0 is the control: there the retransmit does fail.
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/localnfsd.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

// XIDs well away from WireConn's own counter (which starts at 0x1000).
constexpr uint32_t kXid = 0x0dc0ffee;

class DrcTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> extra = {}) {
    ASSERT_TRUE(StartServerAndMount(root_.path(), std::move(extra), &server_, &rootfh_));
  }

  // Sends one NFSv3 call with exactly these bytes on `c` and returns the reply record.
  std::string Send(WireConn& c, const std::string& call) {
    EXPECT_TRUE(c.SendRecord(call));
    std::optional<std::string> rec = c.RecvRecord();
    EXPECT_TRUE(rec.has_value()) << "no reply";
    return rec.value_or("");
  }
  // The nfsstat3 of a reply record (kRpcFailed when it is not an accepted SUCCESS).
  static uint32_t NfsStatus(const std::string& record) {
    RpcReply r = WireConn::ParseReply(record);
    if (!r.ok || r.reply_stat != 0 || r.accept_stat != kSuccess)
      return Nfs3Wire::kRpcFailed;
    XdrIn in(r.results);
    uint32_t st = Nfs3Wire::kRpcFailed;
    in.U32(&st);
    return st;
  }
  std::string RemoveCall(uint32_t xid, const std::string& name,
                         const AuthSys& cred = {}) {
    return WireConn::CallMessage(xid, kNfsProg, 3, NFS3_REMOVE,
                                 XdrOut().Opaque(rootfh_).Str(name).bytes(), &cred);
  }
  std::string RenameCall(uint32_t xid, const std::string& from, const std::string& to) {
    AuthSys root;
    return WireConn::CallMessage(
        xid, kNfsProg, 3, NFS3_RENAME,
        XdrOut().Opaque(rootfh_).Str(from).Opaque(rootfh_).Str(to).bytes(), &root);
  }
  std::string MkdirCall(uint32_t xid, const std::string& name) {
    AuthSys root;
    return WireConn::CallMessage(xid, kNfsProg, 3, NFS3_MKDIR,
                                 XdrOut().Opaque(rootfh_).Str(name).Sattr(0755).bytes(),
                                 &root);
  }
  bool Exists(const std::string& rel) {
    struct stat st;
    return lstat(root_.Sub(rel).c_str(), &st) == 0;
  }

  TempDir root_;
  std::unique_ptr<ServerProcess> server_;
  std::string rootfh_;
};

TEST_F(DrcTest, RetransmittedRemoveGetsTheOriginalReplyNotNoent) {
  StartServer();
  ASSERT_TRUE(WriteFile(root_.Sub("victim"), "x"));
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  const std::string call = RemoveCall(kXid, "victim");
  const std::string first = Send(c, call);
  ASSERT_EQ(NfsStatus(first), kNfs3Ok);
  ASSERT_FALSE(Exists("victim"));
  const std::string again = Send(c, call);
  EXPECT_EQ(NfsStatus(again), kNfs3Ok) << "the retransmit was executed a second time";
  EXPECT_EQ(again, first) << "a replay must be the saved reply, byte for byte";
}

TEST_F(DrcTest, WithoutTheCacheTheRetransmittedRemoveFailsWithNoent) {
  // The control: the test above passes because of the cache, not by accident.
  StartServer({"--drc-max-entries", "0"});
  ASSERT_TRUE(WriteFile(root_.Sub("victim"), "x"));
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  const std::string call = RemoveCall(kXid, "victim");
  ASSERT_EQ(NfsStatus(Send(c, call)), kNfs3Ok);
  EXPECT_EQ(NfsStatus(Send(c, call)), kNfs3ErrNoent);
}

TEST_F(DrcTest, RetransmittedRenameGetsTheOriginalReply) {
  StartServer();
  ASSERT_TRUE(WriteFile(root_.Sub("from"), "contents"));
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  const std::string call = RenameCall(kXid, "from", "to");
  const std::string first = Send(c, call);
  ASSERT_EQ(NfsStatus(first), kNfs3Ok);
  const std::string again = Send(c, call);
  EXPECT_EQ(NfsStatus(again), kNfs3Ok);
  EXPECT_EQ(again, first);
  EXPECT_FALSE(Exists("from"));
  EXPECT_EQ(ReadFile(root_.Sub("to")), "contents");
}

TEST_F(DrcTest, RetransmittedMkdirGetsTheOriginalReplyNotExist) {
  StartServer();
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  const std::string call = MkdirCall(kXid, "newdir");
  const std::string first = Send(c, call);
  ASSERT_EQ(NfsStatus(first), kNfs3Ok);
  EXPECT_EQ(Send(c, call), first);
}

TEST_F(DrcTest, RetransmitOnANewConnectionFromANewPortIsReplayed) {
  StartServer();
  ASSERT_TRUE(WriteFile(root_.Sub("victim"), "x"));
  ASSERT_TRUE(WriteFile(root_.Sub("from"), "y"));
  const std::string remove = RemoveCall(kXid, "victim");
  const std::string rename = RenameCall(kXid + 1, "from", "to");
  std::string first_remove, first_rename;
  {
    WireConn c;
    ASSERT_TRUE(c.Connect(server_->nfs_port()));
    first_remove = Send(c, remove);
    first_rename = Send(c, rename);
    ASSERT_EQ(NfsStatus(first_remove), kNfs3Ok);
    ASSERT_EQ(NfsStatus(first_rename), kNfs3Ok);
  }  // the connection drops; the client reconnects (the kernel picks a new port)
  WireConn again;
  ASSERT_TRUE(again.Connect(server_->nfs_port()));
  EXPECT_EQ(Send(again, remove), first_remove);
  EXPECT_EQ(Send(again, rename), first_rename);
}

TEST_F(DrcTest, SameArgumentsWithAnotherXidAreExecuted) {
  StartServer();
  ASSERT_TRUE(WriteFile(root_.Sub("victim"), "x"));
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  ASSERT_EQ(NfsStatus(Send(c, RemoveCall(kXid, "victim"))), kNfs3Ok);
  EXPECT_EQ(NfsStatus(Send(c, RemoveCall(kXid + 1, "victim"))), kNfs3ErrNoent);
}

TEST_F(DrcTest, SameXidWithOtherArgumentsOrCredentialsIsExecuted) {
  StartServer();
  ASSERT_TRUE(WriteFile(root_.Sub("a"), "x"));
  ASSERT_TRUE(WriteFile(root_.Sub("b"), "x"));
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  ASSERT_EQ(NfsStatus(Send(c, RemoveCall(kXid, "a"))), kNfs3Ok);
  // Same XID, other name: a new call (it removes b).
  EXPECT_EQ(NfsStatus(Send(c, RemoveCall(kXid, "b"))), kNfs3Ok);
  EXPECT_FALSE(Exists("b")) << "a call with other arguments was answered from the cache";
  // Same XID, a name that does not exist: executed, so NOENT.
  EXPECT_EQ(NfsStatus(Send(c, RemoveCall(kXid, "never-there"))), kNfs3ErrNoent);
  // Same XID and arguments from another user of the same host: executed (NOENT, or
  // ACCES for that user), never the cached OK of root's call.
  AuthSys other;
  other.uid = 4242;
  other.gid = 4242;
  const uint32_t st = NfsStatus(Send(c, RemoveCall(kXid, "a", other)));
  EXPECT_NE(st, kNfs3Ok) << "another user's call was answered from root's reply";
  EXPECT_NE(st, Nfs3Wire::kRpcFailed);
}

}  // namespace
}  // namespace localnfs::testing
