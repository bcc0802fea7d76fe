// server/localio/localio_unit_test.cc — in-process tests of the server's LOCALIO pieces: the
// LOCALIO program's table and rpcbind hiding, the export-client domain, and the local
// socket served in this process with this process as the (bound, owning) client. (The
// local-socket protocol itself is tested in common/localio/proto_test.cc.)
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/localio/broker_server.h"
#include "common/localio/broker_client.h"
#include "common/localio/proto.h"
#include "common/localio/socket_client.h"
#include "common/rcu.h"
#include "common/release_queue.h"
#include "common/status.h"
#include "export_cache/client_pattern.h"
#include "export_cache/export_table.h"
#include "gtest/gtest.h"
#include "rpc/nfs3.h"
#include "rpc/server.h"
#include "server/policy/creds.h"
#include "server/policy/fhandle.h"
#include "server/backend/caching_backend.h"
#include "server/backend/memory_backend.h"
#include "server/backend/posix_backend.h"
#include "server/localio/local_socket.h"
#include "server/localio/localio_program.h"
#include "tests/support/temp_dir.h"

namespace localnfs::server {
namespace {

using localio::Decode;
using localio::Encode;

TEST(LocalioProgramTest, IsHiddenAndNeverRegisteredWithRpcbind) {
  LocalioProgram program(nullptr);
  EXPECT_EQ(program.prog(), 400122u);
  EXPECT_EQ(program.vers(), 1u);
  EXPECT_TRUE(program.hidden());
  ASSERT_NE(program.procedure(1), nullptr);
  EXPECT_EQ(program.procedure(1)->args_size, 16u);
  EXPECT_EQ(program.procedure(2), nullptr);
  rpc::Server s(rpc::ServerOptions{});
  s.AddProgram(&program);
  // Nothing to register: no rpcbind is contacted, so this succeeds anywhere.
  EXPECT_TRUE(s.RegisterWithRpcbind(2049, 20048).ok());
  s.UnregisterFromRpcbind();
}

TEST(LocalioProgramTest, DomainRoundTrips) {
  for (const char* host : {"127.0.0.1", "::1", "10.1.2.3", "fe80::1"}) {
    PeerAddress a;
    ASSERT_TRUE(PeerAddress::Parse(host, 812, &a));
    PeerAddress b;
    ASSERT_TRUE(PeerOfDomain(DomainOfPeer(a), &b)) << DomainOfPeer(a);
    EXPECT_EQ(b.ToString(), a.ToString());
    EXPECT_EQ(b.port(), 812);
  }
  PeerAddress x;
  EXPECT_FALSE(PeerOfDomain("", &x));
  EXPECT_FALSE(PeerOfDomain("127.0.0.1", &x));
  EXPECT_FALSE(PeerOfDomain("127.0.0.1:99999", &x));
  EXPECT_FALSE(PeerOfDomain("host:1", &x));
}

// The whole server side in this process: export, key, resolver, the backend stack of
// main.cc (POSIX under the caching layer), broker, local socket. This process is also
// the client that owns the uuid.
class LocalSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = std::make_unique<localnfs::testing::TempDir>("lsocktest");
    base_ = tmp_->path();
    ASSERT_EQ(mkdir((base_ + "/exp").c_str(), 0755), 0);
    ASSERT_EQ(mkdir((base_ + "/run").c_str(), 0700), 0);
    WriteFile("exp/data", "local bytes", 0644);
    exports::ExportSpec spec;
    spec.path = base_ + "/exp";
    exports::ClientRule rule;
    rule.options.squash = exports::Squash::kNone;
    ASSERT_TRUE(exports::ParseClientPattern("127.0.0.1").ok());
    rule.pattern = *exports::ParseClientPattern("127.0.0.1");
    spec.rules.push_back(rule);
    ASSERT_TRUE(table_.Load({spec}).ok());
    auto key = HandleKey::LoadOrCreate(base_);
    ASSERT_TRUE(key.ok()) << key.status();
    key_.emplace(std::move(*key));
    resolver_.Start(*table_.List().front());
    auto b = broker::Broker::CreateForServer(base_ + "/run");
    ASSERT_TRUE(b.ok()) << b.status();
    server_broker_ = std::move(*b);
    sock_path_ = base_ + "/run/" + localio::kSocketName;
    ASSERT_TRUE(server_broker_->PublishServer(broker::ServerRecord{sock_path_}).ok());
    auto c = broker::BrokerClient::Open(base_ + "/run");
    ASSERT_TRUE(c.ok()) << c.status();
    client_broker_ = std::move(*c);
    socket_.emplace(LocalSocketDeps{server_broker_.get(),
                                    PolicyDeps{&table_, &*key_}, &backend_});
    ASSERT_TRUE(socket_->Listen(sock_path_).ok());
    ASSERT_TRUE(socket_->Start().ok());
  }
  void TearDown() override {
    socket_.reset();
    server_broker_->Withdraw();
    backend_.Shutdown();
    resolver_.Shutdown();
    table_.Shutdown();
    DrainReleases();
    tmp_.reset();
  }

  void WriteFile(const std::string& rel, const std::string& data, mode_t mode) {
    const std::string p = base_ + "/" + rel;
    UniqueFd fd(open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(write(fd.get(), data.data(), data.size()), static_cast<ssize_t>(data.size()));
    fchmod(fd.get(), mode);
  }
  std::string HandleOf(const std::string& rel) {
    auto kh = KernelHandleAt(AT_FDCWD, (base_ + "/" + rel).c_str());
    EXPECT_TRUE(kh.ok()) << kh.status();
    auto wire = key_->Encode(table_.List().front()->id(), *kh);
    EXPECT_TRUE(wire.ok());
    return *wire;
  }
  broker::Uuid BoundUuid(const std::string& domain = "127.0.0.1:900") {
    auto u = client_broker_->UuidBegin();
    EXPECT_TRUE(u.ok());
    EXPECT_TRUE(server_broker_->BindUuid(*u, domain, 0));
    return *u;
  }

  // HELLO with `u` and the secret our client broker drew for it (an all-zero secret
  // for a uuid it did not register).
  absl::StatusOr<std::unique_ptr<localio::LocalioSocketClient>> ConnectWithOurSecret(
      const std::string& path, const broker::Uuid& u) {
    std::optional<broker::Secret> secret = client_broker_->SecretOf(u);
    return localio::LocalioSocketClient::Connect(path, u, secret ? *secret : broker::Secret());
  }
  // A connection that has sent nothing yet.
  UniqueFd RawConnection() {
    UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, sock_path_.c_str());
    EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    return fd;
  }
  // The ERROR reason the server sent on `fd`, after which it must have closed it.
  std::optional<localio::ErrorReason> ErrorThenClose(int fd) {
    auto got = localio::ReceiveWithFd(fd);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok()) return std::nullopt;
    auto m = localio::Decode(got->bytes);
    EXPECT_TRUE(m.ok() && m->op == localio::Op::kError);
    EXPECT_EQ(StatusErrno(localio::ReceiveWithFd(fd).status()), ECONNRESET);
    if (!m.ok() || m->op != localio::Op::kError) return std::nullopt;
    return m->error.reason;
  }

  std::unique_ptr<localnfs::testing::TempDir> tmp_;
  std::string base_;
  std::string sock_path_;
  exports::ExportTable table_;
  std::optional<HandleKey> key_;
  HandleResolver resolver_;
  backend::PosixBackend posix_backend_{resolver_};
  backend::CachingBackend backend_{posix_backend_, FileCacheOptions{}};
  std::unique_ptr<broker::Broker> server_broker_;
  std::unique_ptr<broker::BrokerClient> client_broker_;
  std::optional<LocalSocket> socket_;
};

TEST_F(LocalSocketTest, BoundOwnerOpensAndReads) {
  auto client = ConnectWithOurSecret(sock_path_, BoundUuid());
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ((*client)->instance_id(), *server_broker_->PublishedInstance());
  auto r = (*client)->OpenLocalFh(HandleOf("exp/data"), localio::OpenMode::kRead, std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 0u);
  EXPECT_EQ(r->attrs.size, 11u);
  char buf[32] = {};
  EXPECT_EQ(pread(r->fd.get(), buf, sizeof(buf), 0), 11);
  EXPECT_STREQ(buf, "local bytes");
  EXPECT_EQ(fcntl(r->fd.get(), F_GETFL) & O_ACCMODE, O_RDONLY);
  // Read-write: O_RDWR, and a read afterwards still gets a read-only fd.
  auto w = (*client)->OpenLocalFh(HandleOf("exp/data"), localio::OpenMode::kReadWrite,
                                  std::nullopt);
  ASSERT_TRUE(w.ok() && w->status == 0);
  EXPECT_EQ(fcntl(w->fd.get(), F_GETFL) & O_ACCMODE, O_RDWR);
  r = (*client)->OpenLocalFh(HandleOf("exp/data"), localio::OpenMode::kRead, std::nullopt);
  ASSERT_TRUE(r.ok() && r->status == 0);
  EXPECT_EQ(fcntl(r->fd.get(), F_GETFL) & O_ACCMODE, O_RDONLY);
  EXPECT_EQ(socket_->Opens(0), 3u);
  auto clients = socket_->Clients();
  ASSERT_EQ(clients.size(), 1u);
  EXPECT_EQ(clients[0].opens, 3u);
  EXPECT_EQ(clients[0].pid, getpid());
}

TEST_F(LocalSocketTest, ForgedHandleIsBadhandleAndDirectoryIsIsdir) {
  auto client = ConnectWithOurSecret(sock_path_, BoundUuid());
  ASSERT_TRUE(client.ok()) << client.status();
  auto r = (*client)->OpenLocalFh(std::string(40, 'z'), localio::OpenMode::kRead,
                                  std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, static_cast<uint32_t>(NFS3ERR_BADHANDLE));
  EXPECT_FALSE(r->fd.valid());
  r = (*client)->OpenLocalFh(HandleOf("exp"), localio::OpenMode::kRead, std::nullopt);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, static_cast<uint32_t>(NFS3ERR_ISDIR));
  EXPECT_EQ(socket_->Opens(NFS3ERR_BADHANDLE), 1u);
}

TEST_F(LocalSocketTest, DomainWithoutARuleIsAcces) {
  auto client = ConnectWithOurSecret(sock_path_, BoundUuid("10.9.9.9:900"));
  ASSERT_TRUE(client.ok()) << client.status();
  auto r = (*client)->OpenLocalFh(HandleOf("exp/data"), localio::OpenMode::kRead,
                                  std::nullopt);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, static_cast<uint32_t>(NFS3ERR_ACCES));
}

TEST_F(LocalSocketTest, RefusesPendingUnknownAndMissingHello) {
  auto pending = client_broker_->UuidBegin();
  ASSERT_TRUE(pending.ok());
  auto c = ConnectWithOurSecret(sock_path_, *pending);
  EXPECT_TRUE(absl::IsPermissionDenied(c.status())) << c.status();
  c = ConnectWithOurSecret(sock_path_, broker::Uuid{1, 2, 3});
  EXPECT_TRUE(absl::IsPermissionDenied(c.status())) << c.status();

  // OPEN before HELLO: ERROR kHelloRequired, then the end of the stream.
  UniqueFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strcpy(addr.sun_path, sock_path_.c_str());
  ASSERT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  localio::OpenLocalFhRequest open;
  open.fh = HandleOf("exp/data");
  ASSERT_TRUE(localio::SendWithFd(fd.get(), *Encode(open)).ok());
  auto got = localio::ReceiveWithFd(fd.get());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(got->fd.valid());
  auto m = Decode(got->bytes);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->op, localio::Op::kError);
  EXPECT_EQ(m->error.reason, localio::ErrorReason::kHelloRequired);
  EXPECT_EQ(StatusErrno(localio::ReceiveWithFd(fd.get()).status()), ECONNRESET);

  // Garbage: ERROR kBadMessage, closed; the server keeps serving.
  UniqueFd g(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  ASSERT_EQ(connect(g.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_TRUE(localio::SendWithFd(g.get(), "garbage!garbage!").ok());
  got = localio::ReceiveWithFd(g.get());
  ASSERT_TRUE(got.ok());
  m = Decode(got->bytes);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->error.reason, localio::ErrorReason::kBadMessage);
  EXPECT_GE(socket_->malformed(), 1u);
  EXPECT_GE(socket_->hellos_refused(), 3u);
  EXPECT_TRUE(ConnectWithOurSecret(sock_path_, BoundUuid()).ok());
}

TEST_F(LocalSocketTest, UnbindEndsOpensOnAnAuthenticatedConnection) {
  broker::Uuid u = BoundUuid();
  auto client = ConnectWithOurSecret(sock_path_, u);
  ASSERT_TRUE(client.ok());
  server_broker_->InvalidateClients();
  auto r = (*client)->OpenLocalFh(HandleOf("exp/data"), localio::OpenMode::kRead,
                                  std::nullopt);
  EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << r.status();
}

// HELLO proves the uuid's registration by its secret: the uuid and its hash, which the
// slot file shows every member of the group, are not enough.
TEST_F(LocalSocketTest, HelloWithAnotherSecretIsRefusedAndTheOwnerKeepsWorking) {
  const broker::Uuid u = BoundUuid();
  auto owner = ConnectWithOurSecret(sock_path_, u);
  ASSERT_TRUE(owner.ok()) << owner.status();
  const uint64_t refused = socket_->hellos_refused();
  const broker::SecretHash hash = client_broker_->SecretOf(u)->Hash();
  auto guess = broker::Secret::Generate();
  ASSERT_TRUE(guess.ok());
  for (const broker::Secret& wrong :
       {*guess, broker::Secret(), broker::Secret::FromBytes(hash.data())}) {
    auto c = localio::LocalioSocketClient::Connect(sock_path_, u, wrong);
    EXPECT_TRUE(absl::IsPermissionDenied(c.status())) << c.status();
    EXPECT_NE(c.status().message().find("wrong secret"), std::string::npos) << c.status();
  }
  EXPECT_EQ(socket_->hellos_refused(), refused + 3);
  // The owner's connection, and a new one of the owner, are served.
  auto r = (*owner)->OpenLocalFh(HandleOf("exp/data"), localio::OpenMode::kRead, std::nullopt);
  ASSERT_TRUE(r.ok() && r->status == 0) << r.status();
  EXPECT_TRUE(ConnectWithOurSecret(sock_path_, u).ok());
}

// A HELLO whose secret is not 32 bytes is a HELLO of the wrong size: ERROR kBadMessage,
// closed, counted; the server keeps serving.
TEST_F(LocalSocketTest, HelloWithASecretOfTheWrongLengthIsMalformed) {
  const broker::Uuid u = BoundUuid();
  const std::string good = localio::Encode(localio::HelloRequest{u, *client_broker_->SecretOf(u)});
  const uint64_t malformed = socket_->malformed();
  for (const std::string& bad : {good.substr(0, good.size() - 16),   // a 16-byte secret
                                 good.substr(0, 8 + 16),             // none (version 1's)
                                 good + std::string(32, '\x5a')}) {  // 64 bytes
    UniqueFd fd = RawConnection();
    ASSERT_TRUE(localio::SendWithFd(fd.get(), bad).ok());
    EXPECT_EQ(ErrorThenClose(fd.get()), localio::ErrorReason::kBadMessage) << bad.size();
  }
  EXPECT_EQ(socket_->malformed(), malformed + 3);
  EXPECT_TRUE(ConnectWithOurSecret(sock_path_, u).ok());
}

// The server kept the hash at bind time: what the slot says afterwards decides nothing.
TEST_F(LocalSocketTest, HashRewrittenInTheSlotAfterTheBindChangesNothing) {
  const broker::Uuid u = BoundUuid();
  auto owner = ConnectWithOurSecret(sock_path_, u);
  ASSERT_TRUE(owner.ok()) << owner.status();
  auto attacker = broker::Secret::Generate();
  ASSERT_TRUE(attacker.ok());
  {
    UniqueFd fd(open((base_ + "/run/broker-slots").c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    const broker::SecretHash h = attacker->Hash();
    ASSERT_EQ(pwrite(fd.get(), h.data(), h.size(),
                     static_cast<off_t>(broker::SlotOfUuid(u) * sizeof(broker::format::Slot) +
                                        offsetof(broker::format::Slot, secret_hash))),
              static_cast<ssize_t>(h.size()));
  }
  auto c = localio::LocalioSocketClient::Connect(sock_path_, u, *attacker);
  EXPECT_TRUE(absl::IsPermissionDenied(c.status())) << c.status();
  auto r = (*owner)->OpenLocalFh(HandleOf("exp/data"), localio::OpenMode::kRead, std::nullopt);
  ASSERT_TRUE(r.ok() && r->status == 0) << r.status();
  EXPECT_TRUE(ConnectWithOurSecret(sock_path_, u).ok());
}


// LOCALIO opens resolve through the caching layer that RPC I/O uses (backend.h) — the
// object's node is shared — but each client gets an open file of its own, never the
// cached file RPC READ/WRITE use: file status flags belong to the open file description,
// and a client that set O_APPEND on the server's would make every RPC WRITE append (with
// the shared description of before, the WRITE below landed at the end: "local bytesLOCAL").
TEST_F(LocalSocketTest, OpenLocalFhSharesTheResolvedNodeButNotTheServersOpenFiles) {
  auto client = ConnectWithOurSecret(sock_path_, BoundUuid());
  ASSERT_TRUE(client.ok()) << client.status();
  const std::string fh = HandleOf("exp/data");
  auto r = (*client)->OpenLocalFh(fh, localio::OpenMode::kReadWrite, std::nullopt);
  ASSERT_TRUE(r.ok() && r->status == 0) << r.status();
  EXPECT_EQ(backend_.file_cache().size(), 1u);  // the node (kPath) only
  // What a hostile (or careless) client may do to its own file.
  ASSERT_EQ(fcntl(r->fd.get(), F_SETFL, fcntl(r->fd.get(), F_GETFL) | O_APPEND), 0);

  auto decoded = key_->Decode(fh);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  Ref<exports::Export> exp = table_.FindById(decoded->export_id);
  ASSERT_TRUE(exp);
  auto obj = backend_.Resolve(*exp, decoded->kernel);
  ASSERT_TRUE(obj.ok()) << obj.status();
  Credentials me;
  me.uid = geteuid();
  me.gid = getegid();
  // RPC WRITE and READ through the backend: the server's own file, unaffected.
  auto written = backend_.Write(*obj, me, 0, absl::MakeConstSpan("LOCAL", 5),
                                backend::Stability::kUnstable);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(backend_.file_cache().size(), 2u);  // the node and the server's kReadWrite file
  char buf[32] = {};
  auto read = backend_.Read(*obj, me, 0, absl::MakeSpan(buf, sizeof(buf)));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(std::string(buf, read->count), "LOCAL bytes");
  // A second open is another file again, of the mode asked for.
  auto ro = (*client)->OpenLocalFh(fh, localio::OpenMode::kRead, std::nullopt);
  ASSERT_TRUE(ro.ok() && ro->status == 0) << ro.status();
  EXPECT_EQ(fcntl(ro->fd.get(), F_GETFL) & (O_ACCMODE | O_APPEND), O_RDONLY);
  EXPECT_EQ(backend_.file_cache().size(), 2u);
  EXPECT_EQ(socket_->Opens(0), 2u);
}

// The local socket judges an open on the backend's attributes, whatever the backend: on
// the memory backend (no fds to hand out: no kCapLocalIo) an open that passes every
// check of READ/WRITE is NOTSUPP, one that fails them gets their answer.
TEST_F(LocalSocketTest, OpenLocalFhIsJudgedOnTheBackendsAttributes) {
  if (geteuid() != 0) GTEST_SKIP() << "needs a root peer to send a user's credentials";
  backend::MemoryBackend memory;
  LocalSocket memory_socket(LocalSocketDeps{
      server_broker_.get(), PolicyDeps{&table_, &*key_}, &memory});
  const std::string path = base_ + "/run/memory.sock";
  ASSERT_TRUE(memory_socket.Listen(path).ok());
  ASSERT_TRUE(memory_socket.Start().ok());
  Ref<exports::Export> exp = table_.List().front();
  auto root = memory.OpenPath(*exp, "");
  ASSERT_TRUE(root.ok()) << root.status();
  Credentials root_cred, owner, other;
  root_cred.uid = root_cred.gid = 0;
  owner.uid = owner.gid = 1000;
  other.uid = other.gid = 1001;
  backend::SetAttrRequest attrs;
  attrs.mode = 0600;
  attrs.uid = owner.uid;
  attrs.gid = owner.gid;
  auto file = memory.Create(*root, "private", backend::CreateHow::kGuarded, attrs, 0,
                            backend::Caller{root_cred});
  ASSERT_TRUE(file.ok()) << file.status();
  auto dir = memory.Mkdir(*root, "dir", attrs, backend::Caller{root_cred});
  ASSERT_TRUE(dir.ok()) << dir.status();
  auto wire = [&](const backend::Object& obj) {
    auto w = key_->Encode(exp->id(), obj.handle());
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? *w : std::string();
  };

  auto client = ConnectWithOurSecret(path, BoundUuid());
  ASSERT_TRUE(client.ok()) << client.status();
  auto status = [&](const backend::Object& obj, localio::OpenMode mode,
                    const Credentials& as) {
    auto r = (*client)->OpenLocalFh(wire(obj), mode, as);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return static_cast<uint32_t>(NFS3ERR_SERVERFAULT);
    EXPECT_FALSE(r->fd.valid());
    return r->status;
  };
  EXPECT_EQ(status(*file, localio::OpenMode::kRead, other), NFS3ERR_ACCES);
  EXPECT_EQ(status(*file, localio::OpenMode::kReadWrite, other), NFS3ERR_ACCES);
  EXPECT_EQ(status(*file, localio::OpenMode::kRead, owner), NFS3ERR_NOTSUPP);
  EXPECT_EQ(status(*file, localio::OpenMode::kReadWrite, owner), NFS3ERR_NOTSUPP);
  EXPECT_EQ(status(*dir, localio::OpenMode::kRead, owner), NFS3ERR_ISDIR);
  EXPECT_EQ(memory_socket.Opens(NFS3ERR_ACCES), 2u);
  EXPECT_EQ(memory_socket.Opens(NFS3_OK), 0u);
  // Nothing of this went to the POSIX stack of the fixture.
  EXPECT_EQ(backend_.file_cache().size(), 0u);
}

}  // namespace
}  // namespace localnfs::server
