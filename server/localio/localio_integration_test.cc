// server/localio/localio_integration_test.cc — LOCALIO against a real localnfsd process
// ($LOCALNFSD): the kernel's exact UUID_IS_LOCAL bytes on a raw TCP connection, the
// local socket's authentication and authorisation (with real non-root peers made by
// fork + setresuid), and the broker lifecycle across SIGTERM, SIGHUP, kill -9 and a
// second server on the same runtime dir.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/localio/broker_client.h"
#include "common/localio/proto.h"
#include "common/localio/socket_client.h"
#include "common/status.h"
#include "common/unix_socket.h"
#include "gtest/gtest.h"
#include "rpc/client.h"
#include "rpc/mount3.h"
#include "rpc/nfs3.h"
#include "tests/support/localnfsd.h"
#include "tests/support/wait.h"

namespace localnfs {
namespace {

using testing::ServerOptions;
using testing::ServerProcess;
using testing::TempDir;
using testing::WaitUntil;

using broker::BrokerClient;
using broker::Uuid;

void WriteFile(const std::string& path, const std::string& data, mode_t mode, uid_t uid,
               gid_t gid) {
  std::ofstream(path) << data;
  ASSERT_EQ(chmod(path.c_str(), mode), 0);
  ASSERT_EQ(chown(path.c_str(), uid, gid), 0);
}

// HELLO with `uuid` and the secret `broker` drew for it (an all-zero secret when it
// drew none: a uuid it did not register).
absl::StatusOr<std::unique_ptr<localio::LocalioSocketClient>> ConnectAsRegistrant(
    const std::string& socket_path, const BrokerClient& broker, const Uuid& uuid) {
  std::optional<broker::Secret> secret = broker.SecretOf(uuid);
  return localio::LocalioSocketClient::Connect(socket_path, uuid,
                                               secret ? *secret : broker::Secret());
}

// A localnfsd (tests/support/localnfsd.h) on the fixture's runtime and state dirs.
ServerOptions ServerOn(const std::string& runtime, const std::string& state,
                       std::vector<std::string> args) {
  return ServerOptions{.args = std::move(args), .state_dir = state, .runtime_dir = runtime};
}

// The kernel's UUID_IS_LOCAL call (fs/nfs/localio.c): AUTH_UNIX as the kernel's
// rpc_clnt sends it, then the 16 uuid bytes, no length word.
std::string KernelUuidIsLocalCall(uint32_t xid, const Uuid& uuid) {
  std::string b;
  auto u32 = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<char>(v >> s));
  };
  u32(xid);
  u32(0);       // CALL
  u32(2);       // rpcvers
  u32(400122);  // LOCALIO_PROGRAM
  u32(1);       // version
  u32(1);       // UUID_IS_LOCAL
  u32(1);       // AUTH_UNIX
  u32(4 + 4 + 8 + 4 + 4 + 4);
  u32(0);  // stamp
  u32(6);
  b.append("kernel\0\0", 8);
  u32(0);  // uid
  u32(0);  // gid
  u32(0);  // no gids
  u32(0);  // verifier AUTH_NONE
  u32(0);
  b.append(reinterpret_cast<const char*>(uuid.data()), uuid.size());
  return b;
}

// Sends UUID_IS_LOCAL on `client`; EXPECTs the exact accepted void reply.
void UuidIsLocal(rpc::Client& client, const Uuid& uuid) {
  const uint32_t xid = 0x4c4f4341;
  absl::StatusOr<std::string> reply = client.CallRaw(
      rpc::Client::EncodeRecord(KernelUuidIsLocalCall(xid, uuid)), absl::Seconds(10));
  ASSERT_TRUE(reply.ok()) << reply.status();
  // xid, REPLY, MSG_ACCEPTED, verifier AUTH_NONE + 0 length, SUCCESS — and no body.
  const std::string want("\x4c\x4f\x43\x41\0\0\0\1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 24);
  EXPECT_EQ(*reply, want);
}

struct Fixture {
  TempDir top{"localio-it"};
  std::string base = top.path();
  std::string runtime = base + "/run";
  std::string state = base + "/state";
  std::string rw = base + "/rw";
  std::string ro = base + "/ro";
  std::string sq = base + "/sq";
  Fixture() {
    for (const std::string& d : {runtime, state, rw, ro, sq}) mkdir(d.c_str(), 0755);
    chmod(runtime.c_str(), 0700);
  }
  std::vector<std::string> ExportArgs() const {
    return {"--export", rw + ":rw,no_root_squash", "--export", ro + ":ro,no_root_squash",
            "--export", sq + ":rw,root_squash"};
  }
};

absl::StatusOr<std::string> MountRoot(int port, const std::string& path) {
  auto c = rpc::Client::Connect("127.0.0.1", static_cast<uint16_t>(port), absl::Seconds(5));
  if (!c.ok()) return c.status();
  dirpath p{static_cast<u_int>(path.size()), const_cast<char*>(path.data())};
  mountres3 res{};
  absl::Status s = (*c)->Call(MOUNT_PROGRAM, MOUNT_V3, MOUNTPROC3_MNT,
                              reinterpret_cast<xdrproc_t>(xdr_dirpath), &p,
                              reinterpret_cast<xdrproc_t>(xdr_mountres3), &res,
                              absl::Seconds(5));
  if (!s.ok()) return s;
  std::string fh;
  if (res.fhs_status == MNT3_OK)
    fh.assign(res.mountres3_u.mountinfo.fhandle.fhandle3_val,
              res.mountres3_u.mountinfo.fhandle.fhandle3_len);
  xdr_free(reinterpret_cast<xdrproc_t>(xdr_mountres3), reinterpret_cast<char*>(&res));
  if (fh.empty()) return absl::NotFoundError("MNT failed");
  return fh;
}

absl::StatusOr<std::string> Lookup(rpc::Client& c, const std::string& dir,
                                   const std::string& name) {
  LOOKUP3args args{};
  args.what.dir.data.data_len = dir.size();
  args.what.dir.data.data_val = const_cast<char*>(dir.data());
  args.what.name = filename3{static_cast<u_int>(name.size()), const_cast<char*>(name.data())};
  LOOKUP3res res{};
  absl::Status s = c.Call(NFS_PROGRAM, NFS_V3, NFSPROC3_LOOKUP,
                          reinterpret_cast<xdrproc_t>(xdr_LOOKUP3args), &args,
                          reinterpret_cast<xdrproc_t>(xdr_LOOKUP3res), &res, absl::Seconds(5));
  if (!s.ok()) return s;
  std::string fh;
  if (res.status == NFS3_OK)
    fh.assign(res.LOOKUP3res_u.resok.object.data.data_val,
              res.LOOKUP3res_u.resok.object.data.data_len);
  xdr_free(reinterpret_cast<xdrproc_t>(xdr_LOOKUP3res), reinterpret_cast<char*>(&res));
  if (fh.empty()) return absl::NotFoundError(absl::StrCat("LOOKUP ", name, " failed"));
  return fh;
}

class LocalioIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (getenv("LOCALNFSD") == nullptr) GTEST_SKIP() << "LOCALNFSD not set";
    server_.emplace(ServerOn(fx_.runtime, fx_.state, fx_.ExportArgs()));
    ASSERT_TRUE(server_->Start());
    auto c = rpc::Client::Connect("127.0.0.1", server_->nfs_port(), absl::Seconds(5));
    ASSERT_TRUE(c.ok()) << c.status();
    nfs_ = std::move(*c);
    auto b = BrokerClient::Open(fx_.runtime);
    ASSERT_TRUE(b.ok()) << b.status();
    broker_ = std::move(*b);
  }

  std::string Handle(const std::string& export_path, const std::string& name) {
    auto root = MountRoot(server_->mount_port(), export_path);
    EXPECT_TRUE(root.ok()) << root.status();
    auto fh = Lookup(*nfs_, *root, name);
    EXPECT_TRUE(fh.ok()) << fh.status();
    return fh.ok() ? *fh : std::string();
  }
  // uuid_begin → UUID_IS_LOCAL on our NFS connection → uuid_end.
  absl::StatusOr<std::pair<Uuid, broker::Binding>> Handshake() {
    auto u = broker_->UuidBegin();
    if (!u.ok()) return u.status();
    UuidIsLocal(*nfs_, *u);
    auto b = broker_->UuidEnd(*u);
    if (!b.ok()) return b.status();
    return std::make_pair(*u, *b);
  }
  size_t BoundSlots() {
    auto slots = broker_->ListSlots();
    EXPECT_TRUE(slots.ok());
    size_t n = 0;
    for (auto& s : *slots) n += s.state == broker::SlotState::kBound;
    return n;
  }

  Fixture fx_;
  std::optional<ServerProcess> server_;
  std::unique_ptr<rpc::Client> nfs_;
  std::unique_ptr<BrokerClient> broker_;
};

TEST_F(LocalioIntegrationTest, KernelUuidIsLocalGetsVoidReplyAndBindsOnlyPendingUuids) {
  // NULL.
  absl::Status null = nfs_->Call(400122, 1, 0, reinterpret_cast<xdrproc_t>(xdr_void), nullptr,
                                 reinterpret_cast<xdrproc_t>(xdr_void), nullptr,
                                 absl::Seconds(5));
  EXPECT_TRUE(null.ok()) << null;
  // Unknown uuid: the same void reply, nothing bound.
  Uuid unknown{};
  unknown.fill(0xab);
  UuidIsLocal(*nfs_, unknown);
  EXPECT_EQ(BoundSlots(), 0u);
  // A pending uuid of this process is bound with this connection's domain.
  auto hs = Handshake();
  ASSERT_TRUE(hs.ok()) << hs.status();
  EXPECT_EQ(hs->second.socket_path, fx_.runtime + "/localio.sock");
  EXPECT_EQ(BoundSlots(), 1u);
  auto slots = broker_->ListSlots();
  ASSERT_TRUE(slots.ok());
  for (auto& s : *slots)
    if (s.state == broker::SlotState::kBound) {
      EXPECT_EQ(s.uuid, hs->first);
      EXPECT_EQ(s.domain.rfind("127.0.0.1:", 0), 0u) << s.domain;
      EXPECT_EQ(s.owner_pid, getpid());
    }
}

TEST_F(LocalioIntegrationTest, OpenReadsFileAndEnforcesExportRules) {
  WriteFile(fx_.rw + "/hello", "hello, local", 0644, 0, 0);
  WriteFile(fx_.ro + "/file", "read only", 0644, 0, 0);
  WriteFile(fx_.sq + "/rootonly", "secret", 0600, 0, 0);
  WriteFile(fx_.sq + "/public", "public", 0644, 0, 0);
  WriteFile(fx_.sq + "/u2000", "of 2000", 0600, 2000, 2000);
  auto hs = Handshake();
  ASSERT_TRUE(hs.ok()) << hs.status();
  auto client = ConnectAsRegistrant(hs->second.socket_path, *broker_, hs->first);
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ((*client)->instance_id(), hs->second.instance_id);

  auto r = (*client)->OpenLocalFh(Handle(fx_.rw, "hello"), localio::OpenMode::kRead,
                                  std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 0u);
  char buf[64] = {};
  EXPECT_EQ(pread(r->fd.get(), buf, sizeof(buf), 0), 12);
  EXPECT_STREQ(buf, "hello, local");
  EXPECT_EQ(r->attrs.size, 12u);

  // ro export asked for write → ROFS; read is fine.
  const std::string ro_fh = Handle(fx_.ro, "file");
  r = (*client)->OpenLocalFh(ro_fh, localio::OpenMode::kReadWrite, std::nullopt);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, static_cast<uint32_t>(NFS3ERR_ROFS));
  r = (*client)->OpenLocalFh(ro_fh, localio::OpenMode::kRead, std::nullopt);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 0u);

  // root_squash: a root peer acting as root is nobody there.
  r = (*client)->OpenLocalFh(Handle(fx_.sq, "rootonly"), localio::OpenMode::kRead,
                             std::nullopt);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, static_cast<uint32_t>(NFS3ERR_ACCES));
  Credentials root;
  root.uid = 0;
  root.gid = 0;
  r = (*client)->OpenLocalFh(Handle(fx_.sq, "rootonly"), localio::OpenMode::kRead, root);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, static_cast<uint32_t>(NFS3ERR_ACCES));
  r = (*client)->OpenLocalFh(Handle(fx_.sq, "public"), localio::OpenMode::kRead, root);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 0u);
  r = (*client)->OpenLocalFh(Handle(fx_.sq, "public"), localio::OpenMode::kReadWrite, root);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, static_cast<uint32_t>(NFS3ERR_ACCES));
  // A root peer (the FUSE daemon) may act for the user it serves.
  Credentials u2000;
  u2000.uid = 2000;
  u2000.gid = 2000;
  r = (*client)->OpenLocalFh(Handle(fx_.sq, "u2000"), localio::OpenMode::kReadWrite, u2000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 0u);

  // A forged handle.
  std::string forged = ro_fh;
  forged[forged.size() - 1] ^= 0x5a;
  r = (*client)->OpenLocalFh(forged, localio::OpenMode::kRead, std::nullopt);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, static_cast<uint32_t>(NFS3ERR_BADHANDLE));
}

// A child process's own LOCALIO handshake: its broker and uuid, UUID_IS_LOCAL on its own
// TCP connection, then HELLO with its secret. Make returns 0, or the exit code of the
// step that failed (101 broker, 102 uuid, 103 connect, 104 bind, 105 HELLO).
struct ChildHandshake {
  std::unique_ptr<BrokerClient> broker;
  Uuid uuid{};
  std::unique_ptr<rpc::Client> rpc;
  std::string socket_path;
  absl::StatusOr<std::unique_ptr<localio::LocalioSocketClient>> client;

  int Make(const std::string& runtime, int nfs_port) {
    auto b = BrokerClient::Open(runtime);
    if (!b.ok()) return 101;
    broker = *std::move(b);
    auto u = broker->UuidBegin();
    if (!u.ok()) return 102;
    uuid = *u;
    auto c = rpc::Client::Connect("127.0.0.1", static_cast<uint16_t>(nfs_port), absl::Seconds(5));
    if (!c.ok()) return 103;
    rpc = *std::move(c);
    UuidIsLocal(*rpc, uuid);
    auto binding = broker->UuidEnd(uuid);
    if (!binding.ok()) return 104;
    socket_path = binding->socket_path;
    client = ConnectAsRegistrant(socket_path, *broker, uuid);
    return client.ok() ? 0 : 105;
  }
};

// A child process: as uid/gid 1000 it makes its own handshake (its uuid, its TCP
// connection), then opens through the local socket. Exit code = number of failures.
int RunUnprivilegedPeer(const std::string& runtime, int nfs_port, const std::string& own_fh,
                        const std::string& other_fh) {
  gid_t g = 1000;
  if (setgroups(1, &g) != 0 || setresgid(1000, 1000, 1000) != 0 ||
      setresuid(1000, 1000, 1000) != 0)
    return 100;
  int failures = 0;
  ChildHandshake hs;
  if (int step = hs.Make(runtime, nfs_port); step != 0) return step;
  auto& client = hs.client;
  auto r = (*client)->OpenLocalFh(other_fh, localio::OpenMode::kRead, std::nullopt);
  failures += !(r.ok() && r->status == NFS3ERR_ACCES);
  // Credentials in the message are ignored for a non-root peer.
  Credentials forged;
  forged.uid = 2000;
  forged.gid = 2000;
  r = (*client)->OpenLocalFh(other_fh, localio::OpenMode::kRead, forged);
  failures += !(r.ok() && r->status == NFS3ERR_ACCES);
  r = (*client)->OpenLocalFh(own_fh, localio::OpenMode::kReadWrite, std::nullopt);
  failures += !(r.ok() && r->status == 0);
  if (r.ok() && r->status == 0) {
    char buf[16] = {};
    failures += pread(r->fd.get(), buf, sizeof(buf), 0) != 4 || std::string(buf) != "mine";
  }
  return failures;
}

// NFSv3 READ over RPC: the data, or "status N".
std::string RpcRead(rpc::Client& nfs, const std::string& fh, uint64_t offset, uint32_t count) {
  READ3args a{};
  a.file.data.data_len = fh.size();
  a.file.data.data_val = const_cast<char*>(fh.data());
  a.offset = offset;
  a.count = count;
  READ3res res{};
  absl::Status s = nfs.Call(NFS_PROGRAM, NFS_V3, NFSPROC3_READ,
                            reinterpret_cast<xdrproc_t>(xdr_READ3args), &a,
                            reinterpret_cast<xdrproc_t>(xdr_READ3res), &res, absl::Seconds(5));
  if (!s.ok()) return s.ToString();
  std::string got = res.status == NFS3_OK ? std::string(res.READ3res_u.resok.data.data_val,
                                                        res.READ3res_u.resok.data.data_len)
                                          : absl::StrCat("status ", res.status);
  xdr_free(reinterpret_cast<xdrproc_t>(xdr_READ3res), reinterpret_cast<char*>(&res));
  return got;
}

// A client owns the status flags of the file it was given (they belong to the open file
// description): O_APPEND or O_DIRECT set on it must not reach the server's own I/O of the
// same file. With the server's cached file handed out (a dup, before), the RPC WRITE at
// offset 0 appended and the unaligned RPC READ failed with EINVAL (NFS3ERR_IO).
TEST_F(LocalioIntegrationTest, AClientsFileFlagsDoNotReachTheServersOwnIo) {
  WriteFile(fx_.rw + "/shared", "0123456789", 0666, 0, 0);  // writable by whoever RPC says
  auto hs = Handshake();
  ASSERT_TRUE(hs.ok()) << hs.status();
  auto client = ConnectAsRegistrant(hs->second.socket_path, *broker_, hs->first);
  ASSERT_TRUE(client.ok()) << client.status();
  const std::string fh = Handle(fx_.rw, "shared");
  auto r = (*client)->OpenLocalFh(fh, localio::OpenMode::kReadWrite, std::nullopt);
  ASSERT_TRUE(r.ok() && r->status == 0) << r.status();
  auto call_read = [&](uint64_t offset, uint32_t count) {
    return RpcRead(*nfs_, fh, offset, count);
  };
  auto call_write = [&](uint64_t offset, std::string data) {
    WRITE3args a{};
    a.file.data.data_len = fh.size();
    a.file.data.data_val = const_cast<char*>(fh.data());
    a.offset = offset;
    a.count = data.size();
    a.stable = FILE_SYNC;
    a.data.data_len = data.size();
    a.data.data_val = data.data();
    WRITE3res res{};
    absl::Status s = nfs_->Call(NFS_PROGRAM, NFS_V3, NFSPROC3_WRITE,
                                reinterpret_cast<xdrproc_t>(xdr_WRITE3args), &a,
                                reinterpret_cast<xdrproc_t>(xdr_WRITE3res), &res,
                                absl::Seconds(5));
    EXPECT_TRUE(s.ok()) << s;
    const nfsstat3 status = res.status;
    xdr_free(reinterpret_cast<xdrproc_t>(xdr_WRITE3res), reinterpret_cast<char*>(&res));
    return status;
  };
  ASSERT_EQ(call_write(0, "a"), NFS3_OK);  // the server's read-write file is open now
  ASSERT_EQ(call_read(1, 3), "123");
  // What a hostile (or careless) client may do to the file it holds.
  ASSERT_EQ(fcntl(r->fd.get(), F_SETFL, O_APPEND | O_DIRECT), 0);
  EXPECT_EQ(call_write(0, "AB"), NFS3_OK);
  EXPECT_EQ(call_read(1, 3), "B23");  // unaligned, and the WRITE landed at offset 0
  EXPECT_EQ(call_read(0, 64), "AB23456789");
}

TEST_F(LocalioIntegrationTest, NonRootPeerGetsOnlyWhatItsUidMayOpen) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to make a uid 1000 peer";
  WriteFile(fx_.rw + "/u2000", "not yours", 0600, 2000, 2000);
  WriteFile(fx_.rw + "/u1000", "mine", 0600, 1000, 1000);
  // Let group 1000 reach the broker and the socket (the documented 0750 / group setup).
  ASSERT_EQ(chown(fx_.runtime.c_str(), 0, 1000), 0);
  ASSERT_EQ(chmod(fx_.runtime.c_str(), 0750), 0);
  ASSERT_EQ(chown((fx_.runtime + "/broker").c_str(), 0, 1000), 0);
  ASSERT_EQ(chown((fx_.runtime + "/broker-slots").c_str(), 0, 1000), 0);
  ASSERT_EQ(chown((fx_.runtime + "/localio.sock").c_str(), 0, 1000), 0);
  const std::string own = Handle(fx_.rw, "u1000"), other = Handle(fx_.rw, "u2000");
  pid_t child = fork();
  if (child == 0) _exit(RunUnprivilegedPeer(fx_.runtime, server_->nfs_port(), own, other));
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << server_->StderrText();
}

TEST_F(LocalioIntegrationTest, HelloNeedsABoundUuid) {
  auto pending = broker_->UuidBegin();
  ASSERT_TRUE(pending.ok());
  auto c = ConnectAsRegistrant(fx_.runtime + "/localio.sock", *broker_, *pending);
  EXPECT_TRUE(absl::IsPermissionDenied(c.status())) << c.status();
  EXPECT_NE(c.status().message().find("not bound"), std::string::npos) << c.status();
}

// The legitimate client: its own handshake (broker, uuid, TCP connection), HELLO with
// its secret, then one open per byte the parent sends on `go` (exit code: failed opens,
// or 100+ for a failed step). The parent's replays happen in between.
int RunLegitimateClient(const std::string& runtime, int nfs_port, const std::string& fh,
                        int ready_fd, int go_fd) {
  ChildHandshake hs;
  if (int step = hs.Make(runtime, nfs_port); step != 0) return step;
  auto& client = hs.client;
  const Uuid* u = &hs.uuid;
  int failures = 0;
  char cmd;
  if (write(ready_fd, u->data(), u->size()) != static_cast<ssize_t>(u->size())) return 106;
  while (read(go_fd, &cmd, 1) == 1) {
    auto r = (*client)->OpenLocalFh(fh, localio::OpenMode::kRead, std::nullopt);
    char buf[16] = {};
    failures += !(r.ok() && r->status == 0 && pread(r->fd.get(), buf, sizeof buf, 0) == 5 &&
                  std::string(buf) == "yours");
    // A new connection with its secret is still welcome.
    failures += !ConnectAsRegistrant(hs.socket_path, *hs.broker, hs.uuid).ok();
    if (write(ready_fd, "k", 1) != 1) return 107;
  }
  return failures;
}

// Another client's uuid is public (the slot file shows it, with its secret's hash, to
// every member of the group): a second client that replays it — with a guessed secret,
// with the hash, or with its own valid secret of its own uuid — is refused, and the
// legitimate client keeps its LOCALIO. (Checked by the secret alone: the pid plays no
// part, see TheServerNeedsNoPidOfItsClients for a peer whose pid is invisible.)
TEST_F(LocalioIntegrationTest, ReplayingAnotherClientsUuidIsRefused) {
  WriteFile(fx_.rw + "/yours", "yours", 0644, 0, 0);
  const std::string fh = Handle(fx_.rw, "yours");
  const std::string sock = fx_.runtime + "/localio.sock";
  int ready[2], go[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(go), 0);
  pid_t child = fork();
  if (child == 0) {
    close(ready[0]);
    close(go[1]);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    _exit(RunLegitimateClient(fx_.runtime, server_->nfs_port(), fh, ready[1], go[0]));
  }
  close(ready[1]);
  close(go[0]);
  auto cleanup = absl::MakeCleanup([&] {
    close(go[1]);  // the child's loop ends
    int st = 0;
    waitpid(child, &st, 0);
    close(ready[0]);
  });
  Uuid theirs{};
  ASSERT_EQ(read(ready[0], theirs.data(), theirs.size()), 16);
  auto one_open = [&] {
    char ok;
    return write(go[1], "o", 1) == 1 && read(ready[0], &ok, 1) == 1;
  };
  ASSERT_TRUE(one_open());

  // What the slot file shows every member of the group: the uuid and the hash.
  auto slots = broker_->ListSlots();
  ASSERT_TRUE(slots.ok()) << slots.status();
  std::optional<broker::SlotInfo> slot;
  for (const broker::SlotInfo& s : *slots)
    if (s.uuid == theirs) slot = s;
  ASSERT_TRUE(slot.has_value());
  EXPECT_EQ(slot->state, broker::SlotState::kBound);
  // Our own registration: a valid secret, of another uuid.
  auto mine = Handshake();
  ASSERT_TRUE(mine.ok()) << mine.status();
  auto guess = broker::Secret::Generate();
  ASSERT_TRUE(guess.ok());
  const size_t mark = server_->StderrMark();
  for (const broker::Secret& replayed :
       {*guess, broker::Secret::FromBytes(slot->secret_hash.data()), broker::Secret(),
        *broker_->SecretOf(mine->first)}) {
    auto c = localio::LocalioSocketClient::Connect(sock, theirs, replayed);
    EXPECT_TRUE(absl::IsPermissionDenied(c.status())) << c.status();
    EXPECT_NE(c.status().message().find("wrong secret"), std::string::npos) << c.status();
  }
  EXPECT_TRUE(server_->WaitForStderr(
      absl::StrCat("with uuid ", broker::UuidToString(theirs), " refused: wrong secret"),
      std::chrono::seconds(5), mark));
  // The legitimate client keeps working, as do we with our own uuid.
  ASSERT_TRUE(one_open());
  EXPECT_TRUE(ConnectAsRegistrant(sock, *broker_, mine->first).ok());
  std::move(cleanup).Cancel();
  close(go[1]);
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  close(ready[0]);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0) << server_->StderrText();
}

// A HELLO whose secret is not 32 bytes: ERROR kBadMessage and the end of the
// connection; the server goes on serving.
TEST_F(LocalioIntegrationTest, HelloWithASecretOfTheWrongLengthIsRefused) {
  auto hs = Handshake();
  ASSERT_TRUE(hs.ok()) << hs.status();
  const std::string good =
      localio::Encode(localio::HelloRequest{hs->first, *broker_->SecretOf(hs->first)});
  const size_t mark = server_->StderrMark();
  for (const std::string& bad : {good.substr(0, good.size() - 16), good.substr(0, 8 + 16),
                                 good + std::string(32, 'x')}) {
    auto fd = ConnectUnix(hs->second.socket_path, SOCK_SEQPACKET, absl::Seconds(5));
    ASSERT_TRUE(fd.ok()) << fd.status();
    ASSERT_TRUE(localio::SendWithFd(fd->get(), bad).ok());
    auto got = localio::ReceiveWithFd(fd->get());
    ASSERT_TRUE(got.ok()) << got.status();
    auto m = localio::Decode(got->bytes);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->op, localio::Op::kError);
    EXPECT_EQ(m->error.reason, localio::ErrorReason::kBadMessage) << bad.size();
    EXPECT_EQ(StatusErrno(localio::ReceiveWithFd(fd->get()).status()), ECONNRESET);
  }
  EXPECT_TRUE(server_->WaitForStderr(absl::StrCat("bytes, expected ", good.size()),
                                     std::chrono::seconds(5), mark));
  auto client = ConnectAsRegistrant(hs->second.socket_path, *broker_, hs->first);
  EXPECT_TRUE(client.ok()) << client.status();
}

TEST_F(LocalioIntegrationTest, SigtermWithdrawsAndBumpsTheGeneration) {
  auto hs = Handshake();
  ASSERT_TRUE(hs.ok()) << hs.status();
  const uint64_t gen = broker_->LoadGeneration();
  EXPECT_EQ(gen, hs->second.generation);
  EXPECT_TRUE(server_->Stop());  // exit 0, no sanitizer report
  EXPECT_GT(broker_->LoadGeneration(), gen);
  auto info = broker_->ReadServer();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, broker::RecordState::kWithdrawn);
  EXPECT_EQ(BoundSlots(), 0u);
  EXPECT_NE(access((fx_.runtime + "/localio.sock").c_str(), F_OK), 0);
}

TEST_F(LocalioIntegrationTest, Kill9LeavesADeadRecordTheNextStartReaps) {
  auto hs = Handshake();
  ASSERT_TRUE(hs.ok()) << hs.status();
  const uint64_t gen = broker_->LoadGeneration();
  server_->Kill9();
  auto info = broker_->ReadServer();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, broker::RecordState::kLive);
  EXPECT_FALSE(info->alive);
  EXPECT_FALSE(broker_->ServerAlive());

  ServerProcess next(ServerOn(fx_.runtime, fx_.state, fx_.ExportArgs()));
  ASSERT_TRUE(next.Start());
  // Our mapping is the old record: the new server reaped it (the generation moved).
  EXPECT_GT(broker_->LoadGeneration(), gen);
  EXPECT_EQ(broker_->ReadServer()->state, broker::RecordState::kWithdrawn);
  EXPECT_FALSE(broker_->UuidEnd(hs->first).ok());
  // The runtime dir names the new one.
  auto fresh = BrokerClient::Open(fx_.runtime);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  info = (*fresh)->ReadServer();
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->alive);
  EXPECT_EQ(info->pid, next.pid());
  EXPECT_NE(info->instance_id, hs->second.instance_id);
  EXPECT_GT((*fresh)->LoadGeneration(), gen);
  EXPECT_TRUE(next.Stop());
}

TEST_F(LocalioIntegrationTest, SecondServerOnTheSameRuntimeDirExits1) {
  ServerProcess second(ServerOn(fx_.runtime, fx_.state, fx_.ExportArgs()));
  EXPECT_FALSE(second.Start());
  EXPECT_TRUE(WIFEXITED(second.exit_status()));
  EXPECT_EQ(WEXITSTATUS(second.exit_status()), 1);
  EXPECT_NE(second.StderrText().find(absl::StrCat("is served by localnfsd pid ", server_->pid())),
            std::string::npos)
      << second.StderrText();
  // The first one still serves LOCALIO.
  auto hs = Handshake();
  EXPECT_TRUE(hs.ok()) << hs.status();
}


// The server in a pid namespace of its own, as in a container with the client outside
// it (issue 18: two rootless Podman containers): none of our pids is visible to it, so
// SO_PEERCRED gives it pid 0 for our connections. HELLO's secret is the proof, so
// LOCALIO works — reads and writes on the server's fds, seen by RPC — and a replay of
// our uuid with another secret is still refused.
TEST(LocalioPidNamespaceTest, TheServerNeedsNoPidOfItsClients) {
  if (getenv("LOCALNFSD") == nullptr) GTEST_SKIP() << "LOCALNFSD not set";
  if (geteuid() != 0) GTEST_SKIP() << "needs root (CAP_SYS_ADMIN) to make a pid namespace";
  Fixture fx;
  WriteFile(fx.rw + "/data", "0123456789", 0644, 0, 0);
  ServerOptions options = ServerOn(fx.runtime, fx.state, fx.ExportArgs());
  options.new_pid_namespace = true;
  ServerProcess server(options);
  ASSERT_TRUE(server.Start());
  auto b = BrokerClient::Open(fx.runtime);
  ASSERT_TRUE(b.ok()) << b.status();
  // It numbers itself 1 in its namespace (its record says so), and is alive to us by
  // its socket.
  auto info = (*b)->ReadServer();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->pid, 1);
  EXPECT_NE(server.pid(), 1);
  EXPECT_TRUE(info->alive);

  auto nfs = rpc::Client::Connect("127.0.0.1", server.nfs_port(), absl::Seconds(5));
  ASSERT_TRUE(nfs.ok()) << nfs.status();
  auto root = MountRoot(server.mount_port(), fx.rw);
  ASSERT_TRUE(root.ok()) << root.status();
  auto fh = Lookup(**nfs, *root, "data");
  ASSERT_TRUE(fh.ok()) << fh.status();
  auto u = (*b)->UuidBegin();
  ASSERT_TRUE(u.ok()) << u.status();
  UuidIsLocal(**nfs, *u);
  auto binding = (*b)->UuidEnd(*u);
  ASSERT_TRUE(binding.ok()) << binding.status();
  const size_t mark = server.StderrMark();
  auto client = ConnectAsRegistrant(binding->socket_path, **b, *u);
  ASSERT_TRUE(client.ok()) << client.status() << server.StderrText();
  // The server saw pid 0: the pid-based proof would have refused this HELLO.
  EXPECT_TRUE(server.WaitForStderr(
      absl::StrCat("localio: pid 0 uid 0 connected with uuid ", broker::UuidToString(*u)),
      std::chrono::seconds(5), mark))
      << server.StderrText();

  // Local I/O: a write on the server's fd is what RPC reads; a read fd reads it back.
  auto w = (*client)->OpenLocalFh(*fh, localio::OpenMode::kReadWrite, std::nullopt);
  ASSERT_TRUE(w.ok() && w->status == 0) << w.status();
  ASSERT_EQ(pwrite(w->fd.get(), "LOCAL", 5, 0), 5);
  auto r = (*client)->OpenLocalFh(*fh, localio::OpenMode::kRead, std::nullopt);
  ASSERT_TRUE(r.ok() && r->status == 0) << r.status();
  char buf[32] = {};
  EXPECT_EQ(pread(r->fd.get(), buf, sizeof buf, 0), 10);
  EXPECT_STREQ(buf, "LOCAL56789");
  EXPECT_EQ(RpcRead(**nfs, *fh, 0, 64), "LOCAL56789");

  // Without the pid, the secret alone keeps a replayer out.
  auto guess = broker::Secret::Generate();
  ASSERT_TRUE(guess.ok());
  auto replay = localio::LocalioSocketClient::Connect(binding->socket_path, *u, *guess);
  EXPECT_TRUE(absl::IsPermissionDenied(replay.status())) << replay.status();
  r = (*client)->OpenLocalFh(*fh, localio::OpenMode::kRead, std::nullopt);
  EXPECT_TRUE(r.ok() && r->status == 0) << r.status();
  EXPECT_TRUE(server.Stop());
}

TEST(LocalioLifecycleTest, SighupRemovingAnExportInvalidatesClients) {
  if (getenv("LOCALNFSD") == nullptr) GTEST_SKIP() << "LOCALNFSD not set";
  Fixture fx;
  const std::string exports = fx.base + "/exports";
  std::ofstream(exports) << fx.rw << " 127.0.0.1(rw)\n" << fx.ro << " 127.0.0.1(ro)\n";
  ServerProcess server(ServerOn(fx.runtime, fx.state, {"--exports", exports}));
  ASSERT_TRUE(server.Start());
  auto b = BrokerClient::Open(fx.runtime);
  ASSERT_TRUE(b.ok());
  auto u = (*b)->UuidBegin();
  auto c = rpc::Client::Connect("127.0.0.1", server.nfs_port(), absl::Seconds(5));
  ASSERT_TRUE(c.ok());
  UuidIsLocal(**c, *u);
  auto binding = (*b)->UuidEnd(*u);
  ASSERT_TRUE(binding.ok()) << binding.status();
  // An unchanged reload keeps the binding. An invalidation would come after that
  // reload's "exports reloaded" line, still inside it: a second reload, which the
  // server's one signal thread starts only once the first one returned, is the point
  // by which it would have happened.
  ASSERT_TRUE(server.Reload());
  ASSERT_TRUE(server.Reload());
  EXPECT_EQ((*b)->LoadGeneration(), binding->generation);
  std::ofstream(exports) << fx.rw << " 127.0.0.1(rw)\n";
  ASSERT_TRUE(server.Reload());
  EXPECT_TRUE(WaitUntil([&] { return (*b)->LoadGeneration() != binding->generation; },
                        std::chrono::seconds(10)));
  EXPECT_NE((*b)->LoadGeneration(), binding->generation);
  EXPECT_FALSE((*b)->UuidEnd(*u).ok());
  EXPECT_TRUE(server.Stop());
}

TEST(LocalioLifecycleTest, NoLocalioAnswersButPublishesNothing) {
  if (getenv("LOCALNFSD") == nullptr) GTEST_SKIP() << "LOCALNFSD not set";
  Fixture fx;
  std::vector<std::string> args = fx.ExportArgs();
  args.push_back("--no-localio");
  ServerProcess server(ServerOn(fx.runtime, fx.state, args));
  ASSERT_TRUE(server.Start());
  auto c = rpc::Client::Connect("127.0.0.1", server.nfs_port(), absl::Seconds(5));
  ASSERT_TRUE(c.ok());
  Uuid u{};
  UuidIsLocal(**c, u);
  EXPECT_TRUE(absl::IsNotFound(BrokerClient::Open(fx.runtime).status()));
  EXPECT_NE(access((fx.runtime + "/localio.sock").c_str(), F_OK), 0);
  EXPECT_TRUE(server.Stop());
}

}  // namespace
}  // namespace localnfs
