// tests/unprivileged_test.cc — localnfsd run as an ordinary user (uid 65534, no
// capabilities): it serves, its file handles survive renames and a restart although
// open_by_handle_at is unavailable (server/policy/fhandle.h: the unprivileged resolver), and
// forged handles are refused. A handle only a search of the export can resolve is
// searched for off the threads that serve everyone (the RPC event loop, the LOCALIO
// local socket), which keep answering other clients meanwhile; searches are bounded (a
// slot per worker but one, JUKEBOX beyond; a handle searched for in vain is stale at
// once for a while). Needs root to start the server as another user.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "common/localio/broker_client.h"
#include "common/localio/proto.h"
#include "common/localio/socket_client.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"
#include "tests/nfs4_wire.h"
#include "tests/support/localnfsd.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

constexpr int kUser = 65534;

uint64_t Inode(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0 ? st.st_ino : 0;
}

uid_t Owner(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0 ? st.st_uid : static_cast<uid_t>(-1);
}

class UnprivilegedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to start the server as uid " << kUser;
    ASSERT_EQ(chown(root_.path().c_str(), kUser, kUser), 0);
    StartAs(kUser, "rw");
  }

  // (Re)starts the server as `uid` (and that gid), exporting root_ with `options`.
  void StartAs(int uid, const std::string& options) {
    if (srv_ && srv_->running()) {
      ASSERT_TRUE(srv_->Stop());
    }
    ServerOptions o;
    o.args = {"--export", root_.path() + ":" + options};
    o.run_as_uid = uid;
    o.run_as_gid = uid;
    srv_ = std::make_unique<ServerProcess>(o);
    ASSERT_TRUE(srv_->Start());
  }

  TempDir root_;
  std::unique_ptr<ServerProcess> srv_;
};

TEST_F(UnprivilegedTest, ServesAndHandlesSurviveRenameAndRestart) {
  AuthSys user;
  user.uid = kUser;
  user.gid = kUser;
  std::string rootfh, dfh, ffh;
  Fattr fattr;
  {
    WireConn c;
    ASSERT_TRUE(c.Connect(srv_->nfs_port()));
    Nfs3Wire n(&c, user);
    ASSERT_EQ(n.Mount(root_.path(), &rootfh), 0u) << n.last_rpc().error;
    ASSERT_EQ(n.Mkdir(rootfh, "d", 0755, &dfh), kNfs3Ok);
    ASSERT_EQ(n.Create(dfh, "f", 0644, &ffh), kNfs3Ok);
    ASSERT_EQ(n.Write(ffh, 0, "unprivileged data", 2 /*FILE_SYNC*/), kNfs3Ok);
    std::string data;
    ASSERT_EQ(n.Read(ffh, 0, 100, &data), kNfs3Ok);
    EXPECT_EQ(data, "unprivileged data");
    ASSERT_EQ(n.Getattr(ffh, &fattr), kNfs3Ok);
    EXPECT_EQ(fattr.fileid, Inode(root_.Sub("d/f")));
    // A server without privilege creates everything as itself.
    EXPECT_EQ(Owner(root_.Sub("d/f")), static_cast<uid_t>(kUser));
    // Renamed over NFS while served: the old handles keep working.
    ASSERT_EQ(n.Rename(rootfh, "d", rootfh, "d2"), kNfs3Ok);
    ASSERT_EQ(n.Read(ffh, 0, 100, &data), kNfs3Ok);
    EXPECT_EQ(data, "unprivileged data");
  }
  ASSERT_TRUE(srv_->Stop());
  // Renamed on disk while the server is down: the handle must still find the file.
  ASSERT_EQ(rename(root_.Sub("d2").c_str(), root_.Sub("e").c_str()), 0);
  ASSERT_EQ(rename(root_.Sub("e/f").c_str(), root_.Sub("e/g").c_str()), 0);
  ASSERT_TRUE(srv_->Start());

  WireConn c;
  ASSERT_TRUE(c.Connect(srv_->nfs_port()));
  Nfs3Wire n(&c, user);
  Fattr after;
  ASSERT_EQ(n.Getattr(ffh, &after), kNfs3Ok) << "file handle after rename + restart";
  EXPECT_EQ(after.fileid, fattr.fileid);
  std::string data;
  ASSERT_EQ(n.Read(ffh, 0, 100, &data), kNfs3Ok);
  EXPECT_EQ(data, "unprivileged data");
  std::string gfh;
  ASSERT_EQ(n.Lookup(dfh, "g", &gfh), kNfs3Ok) << "LOOKUP in the renamed dir's old handle";
  ASSERT_EQ(n.Getattr(rootfh, &after), kNfs3Ok);
  EXPECT_EQ(after.fileid, Inode(root_.path()));
}

// NFSv4.1 from the same unprivileged server (on by default): the namespace, a directory
// and a file made, written, read back and renamed, its handle still good after a restart.
TEST_F(UnprivilegedTest, ServesNfs4AndItsHandlesSurviveARenameAndRestart) {
  AuthSys user;
  user.uid = kUser;
  user.gid = kUser;
  std::string rootfh, ffh;
  {
    WireConn c;
    ASSERT_TRUE(c.Connect(srv_->nfs_port()));
    Nfs4Wire v4(&c, user);
    ASSERT_TRUE(v4.Establish("unprivileged-v4")) << v4.error();
    ASSERT_EQ(v4.LookupPath(root_.path(), &rootfh), NFS4_OK);
    Nfs4Ops mk;
    mk.PutFh(rootfh).Mkdir("d", 0755);
    Nfs4Reply made;
    ASSERT_TRUE(v4.Compound(mk, &made)) << made.error;
    ASSERT_EQ(made.status(), NFS4_OK);
    std::string dfh;
    ASSERT_EQ(v4.LookupPath(root_.path() + "/d", &dfh), NFS4_OK);
    stateid4 sid;
    ASSERT_EQ(v4.OpenFile(dfh, "f", OPEN4_SHARE_ACCESS_BOTH, /*create=*/true, &ffh, &sid),
              NFS4_OK);
    ASSERT_EQ(v4.WriteFile(ffh, sid, 0, "unprivileged v4 data"), NFS4_OK);
    std::string data;
    ASSERT_EQ(v4.ReadFile(ffh, sid, 0, 100, &data), NFS4_OK);
    EXPECT_EQ(data, "unprivileged v4 data");
    ASSERT_EQ(v4.CloseFile(ffh, sid), NFS4_OK);
    EXPECT_EQ(Owner(root_.Sub("d/f")), static_cast<uid_t>(kUser));
    Nfs4Ops mv;
    mv.PutFh(rootfh).SaveFh().Rename("d", "d2");
    Nfs4Reply moved;
    ASSERT_TRUE(v4.Compound(mv, &moved)) << moved.error;
    ASSERT_EQ(moved.status(), NFS4_OK);
  }
  ASSERT_TRUE(srv_->Stop());
  ASSERT_EQ(rename(root_.Sub("d2/f").c_str(), root_.Sub("d2/g").c_str()), 0);
  ASSERT_TRUE(srv_->Start());
  WireConn c;
  ASSERT_TRUE(c.Connect(srv_->nfs_port()));
  Nfs4Wire v4(&c, user);
  // The same client again: its RECLAIM_COMPLETE ends the grace period the restart began
  // (its record is in the unprivileged server's state dir); another would get GRACE.
  ASSERT_TRUE(v4.Establish("unprivileged-v4")) << v4.error();
  // The file's handle from before the restart and both renames: opened by handle.
  Nfs4Ops open;
  open.PutFh(ffh);
  nfs_argop4& o = open.ops().emplace_back();
  memset(&o, 0, sizeof(o));
  o.argop = OP_OPEN;
  OPEN4args& a = o.nfs_argop4_u.opopen;
  a.share_access = OPEN4_SHARE_ACCESS_READ;
  a.owner.clientid = v4.clientid();
  char owner[] = "o";
  a.owner.owner.owner_len = 1;
  a.owner.owner.owner_val = owner;
  a.openhow.opentype = OPEN4_NOCREATE;
  a.claim.claim = CLAIM_FH;
  Nfs4Reply opened;
  ASSERT_TRUE(v4.Compound(open, &opened)) << opened.error;
  ASSERT_EQ(opened.status(), NFS4_OK);
  const stateid4 sid = opened.Find(OP_OPEN)->nfs_resop4_u.opopen.OPEN4res_u.resok4.stateid;
  std::string data;
  ASSERT_EQ(v4.ReadFile(ffh, sid, 0, 100, &data), NFS4_OK);
  EXPECT_EQ(data, "unprivileged v4 data");
  EXPECT_EQ(v4.CloseFile(ffh, sid), NFS4_OK);
}

// root_squash on an unprivileged server: the squashed root acts as the server's own user
// (server/policy/creds.h DefaultAnonymousIdentity), who owns what it creates — so root
// creates, writes, reads back, chmods and removes files in the server's 0755 directory,
// over NFSv3 and NFSv4.1 (as nobody it could do none of it, and could not write a file
// it had created elsewhere). An export that names anonuid/anongid keeps them: as 4242
// root may then neither create in that directory nor write the server's files.
TEST_F(UnprivilegedTest, SquashedRootActsAsTheServersUserUnlessTheExportNamesAnonuid) {
  // A server user other than nobody (the fixture's), so that "nobody" and "the server's
  // user" differ.
  constexpr int kServerUser = 4001;
  ASSERT_TRUE(srv_->Stop());
  ASSERT_EQ(chown(root_.path().c_str(), kServerUser, kServerUser), 0);
  ASSERT_EQ(chmod(root_.path().c_str(), 0755), 0);
  ASSERT_NO_FATAL_FAILURE(StartAs(kServerUser, "rw"));
  AuthSys root;
  root.uid = 0;
  root.gid = 0;
  std::string rootfh, ffh;
  {
    WireConn c;
    ASSERT_TRUE(c.Connect(srv_->nfs_port()));
    Nfs3Wire n(&c, root);
    ASSERT_EQ(n.Mount(root_.path(), &rootfh), 0u) << n.last_rpc().error;
    ASSERT_EQ(n.Create(rootfh, "by-root", 0644, &ffh), kNfs3Ok);
    ASSERT_EQ(n.Write(ffh, 0, "written by a squashed root", 2 /*FILE_SYNC*/), kNfs3Ok);
    std::string data;
    ASSERT_EQ(n.Read(ffh, 0, 100, &data), kNfs3Ok);
    EXPECT_EQ(data, "written by a squashed root");
    uint32_t granted = 0;
    ASSERT_EQ(n.Access(ffh, 0x3f, &granted), kNfs3Ok);
    EXPECT_TRUE(granted & 0x04) << "ACCESS3_MODIFY for the file's creator: " << granted;
    ASSERT_EQ(n.SetattrMode(ffh, 0600), kNfs3Ok);
    EXPECT_EQ(Owner(root_.Sub("by-root")), static_cast<uid_t>(kServerUser));
    ASSERT_EQ(n.Create(rootfh, "gone", 0644, nullptr), kNfs3Ok);
    EXPECT_EQ(n.Remove(rootfh, "gone"), kNfs3Ok);
  }
  {
    WireConn c;
    ASSERT_TRUE(c.Connect(srv_->nfs_port()));
    Nfs4Wire v4(&c, root);
    ASSERT_TRUE(v4.Establish("squashed-root")) << v4.error();
    std::string dirfh, fh;
    ASSERT_EQ(v4.LookupPath(root_.path(), &dirfh), NFS4_OK);
    stateid4 sid;
    ASSERT_EQ(v4.OpenFile(dirfh, "by-root-v4", OPEN4_SHARE_ACCESS_BOTH, /*create=*/true, &fh,
                          &sid),
              NFS4_OK);
    ASSERT_EQ(v4.WriteFile(fh, sid, 0, "v4 squashed root"), NFS4_OK);
    std::string data;
    ASSERT_EQ(v4.ReadFile(fh, sid, 0, 100, &data), NFS4_OK);
    EXPECT_EQ(data, "v4 squashed root");
    EXPECT_EQ(v4.CloseFile(fh, sid), NFS4_OK);
  }
  ASSERT_NO_FATAL_FAILURE(StartAs(kServerUser, "rw,root_squash,anonuid=4242,anongid=4242"));
  WireConn c;
  ASSERT_TRUE(c.Connect(srv_->nfs_port()));
  Nfs3Wire n(&c, root);
  ASSERT_EQ(n.Mount(root_.path(), &rootfh), 0u) << n.last_rpc().error;
  EXPECT_EQ(n.Create(rootfh, "as-4242", 0644, nullptr), kNfs3ErrAcces);
  ASSERT_EQ(n.Lookup(rootfh, "by-root", &ffh), kNfs3Ok);  // a new server: a new handle key
  EXPECT_EQ(n.Write(ffh, 0, "no", 2), kNfs3ErrAcces);
  EXPECT_EQ(::access(root_.Sub("as-4242").c_str(), F_OK), -1);
}

TEST_F(UnprivilegedTest, ForgedAndRemovedHandlesAreRefused) {
  WireConn c;
  ASSERT_TRUE(c.Connect(srv_->nfs_port()));
  Nfs3Wire n(&c);
  std::string rootfh, ffh;
  ASSERT_EQ(n.Mount(root_.path(), &rootfh), 0u) << n.last_rpc().error;
  ASSERT_EQ(n.Create(rootfh, "victim", 0644, &ffh), kNfs3Ok);
  for (size_t i = 0; i < ffh.size(); ++i) {
    std::string forged = ffh;
    forged[i] ^= 0x5a;
    uint32_t st = n.Getattr(forged);
    EXPECT_TRUE(st == kNfs3ErrBadhandle || st == kNfs3ErrStale) << "byte " << i << ": " << st;
  }
  ASSERT_EQ(n.Remove(rootfh, "victim"), kNfs3Ok);
  EXPECT_EQ(n.Getattr(ffh), kNfs3ErrStale);
}

// Issue 15 item 11. An export whose breadth-first search visits `dirs` × `per_dir`
// entries before it reaches zz/a/b/target: the bulk are hard links of one file (cheap
// to make; the search still reads each entry and asks name_to_handle_at for it) at
// depth 3, the target at depth 4. The target's handle is taken, then the server
// restarted, so that no cache knows where the target is.
class HandleSearchTest : public UnprivilegedTest {
 protected:
  using Clock = std::chrono::steady_clock;
  static constexpr int kDirs = 40, kPerDir = 1000;

  void SetUp() override {
    UnprivilegedTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    const std::string bulk = root_.Sub("bulk");
    ASSERT_EQ(mkdir(bulk.c_str(), 0755), 0);
    for (int d = 0; d < kDirs; ++d) {
      const std::string dir = bulk + "/d" + std::to_string(d);
      ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
      ASSERT_TRUE(WriteFile(dir + "/f0", "x"));  // one file per directory: ext4 allows
      for (int f = 1; f < kPerDir; ++f) {        // 65 000 links to one inode
        ASSERT_EQ(link((dir + "/f0").c_str(), (dir + "/f" + std::to_string(f)).c_str()), 0);
      }
    }
    for (const char* d : {"zz", "zz/a", "zz/a/b"}) ASSERT_EQ(mkdir(root_.Sub(d).c_str(), 0755), 0);
    ASSERT_TRUE(WriteFile(root_.Sub("zz/a/b/target"), "found by a search"));
    ASSERT_TRUE(WriteFile(root_.Sub("warm"), "cached"));
    {
      WireConn c;
      ASSERT_TRUE(c.Connect(srv_->nfs_port()));
      Nfs3Wire n(&c, User());
      ASSERT_EQ(n.Mount(root_.path(), &rootfh_), 0u) << n.last_rpc().error;
      std::string fh = rootfh_;
      for (const char* name : {"zz", "a", "b", "target"}) {
        ASSERT_EQ(n.Lookup(fh, name, &fh), kNfs3Ok) << name;
      }
      targetfh_ = fh;
    }
    ASSERT_TRUE(srv_->Restart());
  }
  static AuthSys User() {
    AuthSys user;
    user.uid = kUser;
    user.gid = kUser;
    return user;
  }
  static double MsSince(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  }
  static bool Readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1;
  }
  void Report(const std::string& key, double value) {
    RecordProperty(key, std::to_string(value));
    printf("[ figure ] %s = %.3f\n", key.c_str(), value);
  }

  // Status of a GETATTR reply record, or kRpcFailed.
  static uint32_t GetattrStatus(const std::optional<std::string>& rec) {
    if (!rec) return Nfs3Wire::kRpcFailed;
    RpcReply r = WireConn::ParseReply(*rec);
    XdrIn in(r.results);
    uint32_t status = Nfs3Wire::kRpcFailed;
    if (!r.ok || !in.U32(&status)) return Nfs3Wire::kRpcFailed;
    return status;
  }

  std::string rootfh_, targetfh_;
};

TEST_F(HandleSearchTest, SearchRunsOnAWorkerWhileTheEventLoopAnswersOtherClients) {
  WireConn searcher, other;
  ASSERT_TRUE(searcher.Connect(srv_->nfs_port()));
  ASSERT_TRUE(other.Connect(srv_->nfs_port()));
  Nfs3Wire o(&other, User());
  ASSERT_EQ(o.Null(), 0u);
  // A lone GETATTR is a quick call: the event loop tries it first.
  const AuthSys user = User();
  const auto t0 = Clock::now();
  ASSERT_TRUE(searcher.SendRecord(WireConn::CallMessage(
      0x5ea4c4, kNfsProg, 3, NFS3_GETATTR, XdrOut().Opaque(targetfh_).bytes(), &user)));
  // Taken by the loop before the other client's call arrives, so that it is a lone
  // call of its round (two read together would both go to the workers anyway).
  ASSERT_TRUE(searcher.WaitSentBytesRead());
  const auto t1 = Clock::now();
  EXPECT_EQ(o.Null(), 0u) << o.last_rpc().error;
  EXPECT_EQ(o.Getattr(rootfh_), kNfs3Ok);
  const double other_ms = MsSince(t1);
  EXPECT_FALSE(Readable(searcher.fd()))
      << "the search ended before another client was answered: it held the event loop";
  std::optional<std::string> rec = searcher.RecvRecord(120000);
  ASSERT_TRUE(rec.has_value()) << "no reply to the GETATTR that needs the search";
  const double search_ms = MsSince(t0);
  RpcReply r = WireConn::ParseReply(*rec);
  ASSERT_TRUE(r.ok) << r.error;
  XdrIn in(r.results);
  uint32_t status = 1;
  Fattr attr;
  ASSERT_TRUE(in.U32(&status));
  ASSERT_EQ(status, kNfs3Ok) << "the search did not find the target";
  ASSERT_TRUE(ReadFattr(in, &attr));
  EXPECT_EQ(attr.fileid, Inode(root_.Sub("zz/a/b/target")));
  Report("other_client_answered_ms", other_ms);
  Report("handle_search_ms", search_ms);
}

TEST_F(HandleSearchTest, SearchRunsOffTheLocalSocketThreadWhichServesOtherOpens) {
  // The LOCALIO handshake (server/localio/localio_program.h), as a co-located client makes it.
  auto broker = broker::BrokerClient::Open(srv_->runtime_dir());
  ASSERT_TRUE(broker.ok()) << broker.status();
  auto uuid = (*broker)->UuidBegin();
  ASSERT_TRUE(uuid.ok()) << uuid.status();
  WireConn nfs;
  ASSERT_TRUE(nfs.Connect(srv_->nfs_port()));
  Nfs3Wire n(&nfs, User());
  std::string warmfh;
  ASSERT_EQ(n.Lookup(rootfh_, "warm", &warmfh), kNfs3Ok);  // cached again
  RpcReply bound = nfs.Call(/*LOCALIO*/ 400122, 1, /*UUID_IS_LOCAL*/ 1,
                            std::string(reinterpret_cast<const char*>(uuid->data()), uuid->size()));
  ASSERT_TRUE(bound.ok) << bound.error;
  auto binding = (*broker)->UuidEnd(*uuid);
  ASSERT_TRUE(binding.ok()) << binding.status();

  // The searcher speaks the protocol by hand, so that it can send without waiting.
  UniqueFd searcher(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(searcher);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(binding->socket_path.size(), sizeof(addr.sun_path));
  memcpy(addr.sun_path, binding->socket_path.data(), binding->socket_path.size());
  ASSERT_EQ(connect(searcher.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_TRUE(localio::SendWithFd(searcher.get(), localio::Encode(localio::HelloRequest{*uuid, *(*broker)->SecretOf(*uuid)})).ok());
  auto hello = localio::ReceiveWithFd(searcher.get());
  ASSERT_TRUE(hello.ok()) << hello.status();
  localio::OpenLocalFhRequest open;
  open.request_id = 77;
  open.fh = targetfh_;
  auto packet = localio::Encode(open);
  ASSERT_TRUE(packet.ok());
  const auto t0 = Clock::now();
  ASSERT_TRUE(localio::SendWithFd(searcher.get(), *packet).ok());

  // Another client of the local socket: connected, greeted and served meanwhile.
  auto other = localio::LocalioSocketClient::Connect(binding->socket_path, *uuid,
                                                     *(*broker)->SecretOf(*uuid));
  ASSERT_TRUE(other.ok()) << other.status();
  auto warm = (*other)->OpenLocalFh(warmfh, localio::OpenMode::kRead, std::nullopt);
  ASSERT_TRUE(warm.ok()) << warm.status();
  EXPECT_EQ(warm->status, 0u);
  const double other_ms = MsSince(t0);
  EXPECT_FALSE(Readable(searcher.get()))
      << "the search ended before another local client was answered: it held the "
         "local socket's thread";

  pollfd p{searcher.get(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 120000), 1) << "no answer to the open that needs the search";
  const double search_ms = MsSince(t0);
  auto answer = localio::ReceiveWithFd(searcher.get());
  ASSERT_TRUE(answer.ok()) << answer.status();
  auto m = localio::Decode(answer->bytes);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->op, localio::Op::kOpenReply);
  EXPECT_EQ(m->open_reply.request_id, 77u);
  ASSERT_EQ(m->open_reply.status, 0u) << "the search did not find the target";
  ASSERT_TRUE(answer->fd);
  struct stat st;
  ASSERT_EQ(fstat(answer->fd.get(), &st), 0);
  EXPECT_EQ(st.st_ino, Inode(root_.Sub("zz/a/b/target")));
  // The parked connection serves its next open as usual.
  open.request_id = 78;
  open.fh = warmfh;
  ASSERT_TRUE(localio::SendWithFd(searcher.get(), *localio::Encode(open)).ok());
  auto next = localio::ReceiveWithFd(searcher.get());
  ASSERT_TRUE(next.ok()) << next.status();
  auto m2 = localio::Decode(next->bytes);
  ASSERT_TRUE(m2.ok());
  EXPECT_EQ(m2->open_reply.request_id, 78u);
  EXPECT_EQ(m2->open_reply.status, 0u);
  Report("other_local_client_answered_ms", other_ms);
  Report("local_handle_search_ms", search_ms);
  (*broker)->UuidRelease(*uuid);
}

}  // namespace
}  // namespace localnfs::testing

namespace localnfs::testing {
namespace {

// A client can make the server search at will: it keeps the handles of the files it
// removes. A handle searched for in vain is STALE at once for a while (no second
// search), and no more searches run at once than there are workers but one: the next
// cold handle gets JUKEBOX (retry later) at once instead of a worker.
TEST_F(HandleSearchTest, SearchesAreBoundedAndAStaleHandleIsNotSearchedAgain) {
  WireConn c;
  ASSERT_TRUE(c.Connect(srv_->nfs_port()));
  Nfs3Wire n(&c, User());
  std::string gonefh;
  ASSERT_TRUE(WriteFile(root_.Sub("gone"), "x"));
  ASSERT_EQ(chown(root_.Sub("gone").c_str(), kUser, kUser), 0);
  ASSERT_EQ(n.Lookup(rootfh_, "gone", &gonefh), kNfs3Ok);
  ASSERT_EQ(unlink(root_.Sub("gone").c_str()), 0);
  ASSERT_TRUE(srv_->Restart());  // no cache knows the handle any more
  ASSERT_TRUE(c.Connect(srv_->nfs_port()));
  auto t0 = Clock::now();
  EXPECT_EQ(n.Getattr(gonefh), kNfs3ErrStale);
  const double first_ms = MsSince(t0);
  t0 = Clock::now();
  EXPECT_EQ(n.Getattr(gonefh), kNfs3ErrStale);
  const double second_ms = MsSince(t0);
  Report("stale_handle_first_ms", first_ms);
  Report("stale_handle_again_ms", second_ms);
  EXPECT_LT(second_ms, first_ms / 2) << "the stale handle was searched for again";

  // Four cold GETATTRs at once against four workers: three search, one is refused.
  constexpr int kCalls = 4;
  WireConn conns[kCalls];
  const AuthSys user = User();
  for (int i = 0; i < kCalls; ++i) ASSERT_TRUE(conns[i].Connect(srv_->nfs_port()));
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(conns[i].SendRecord(WireConn::CallMessage(
        0x5ea400 + i, kNfsProg, 3, NFS3_GETATTR, XdrOut().Opaque(targetfh_).bytes(), &user)));
  }
  int ok = 0, jukebox = 0;
  for (int i = 0; i < kCalls; ++i) {
    const uint32_t st = GetattrStatus(conns[i].RecvRecord(120000));
    if (st == kNfs3Ok) ++ok;
    if (st == 10008) ++jukebox;  // NFS3ERR_JUKEBOX
  }
  EXPECT_EQ(jukebox, 1) << "searches at once are not bounded by the workers but one";
  EXPECT_EQ(ok, kCalls - 1);
  // Found now: answered from the cache.
  EXPECT_EQ(n.Getattr(targetfh_), kNfs3Ok);
}

}  // namespace
}  // namespace localnfs::testing
