// common/localio/broker_test.cc — the broker's two sides against each other: a server
// (broker_server.h) and clients (broker_client.h) in this process and in forked
// processes of other users, over the files broker_format.h describes.
#include "common/localio/broker_server.h"

#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/localio/broker_client.h"
#include "common/localio/proc_identity.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace localnfs::broker {
namespace {

constexpr char kSocket[] = "/run/localnfs-test/localnfsd.sock";
// A member of the runtime dir's group of another uid than the server: the hostile
// client of the tests below.
constexpr uid_t kOtherUid = 1000;
constexpr gid_t kGroup = 1000;
using Clock = std::chrono::steady_clock;
// What "at once" means for a server call below: no wait on anything a client holds.
constexpr auto kPrompt = std::chrono::milliseconds(200);

// In a forked child: become uid/gid kOtherUid in group kGroup. False on failure.
bool BecomeGroupMember() {
  const gid_t groups[1] = {kGroup};
  return ::setgroups(1, groups) == 0 && ::setresgid(kGroup, kGroup, kGroup) == 0 &&
         ::setresuid(kOtherUid, kOtherUid, kOtherUid) == 0;
}

// ---- Processes and pipes ----

bool WriteAll(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool ReadAll(int fd, void* data, size_t len) {
  char* p = static_cast<char*>(data);
  while (len > 0) {
    ssize_t n = ::read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

template <class T>
bool Send(int fd, const T& value) {
  return WriteAll(fd, &value, sizeof value);
}
template <class T>
bool Receive(int fd, T* value) {
  return ReadAll(fd, value, sizeof *value);
}

// A forked process running `body(in, out)`; `in` reads what the parent sends, `out`
// writes to the parent. The child's exit code is body's return value; it never runs
// gtest assertions and never returns into the test runner.
class Child {
 public:
  explicit Child(std::function<int(int in, int out)> body) {
    int down[2], up[2];
    if (::pipe2(down, O_CLOEXEC) != 0 || ::pipe2(up, O_CLOEXEC) != 0) std::abort();
    pid_ = ::fork();
    if (pid_ < 0) std::abort();
    if (pid_ == 0) {
      ::alarm(60);  // never outlive a broken test
      // Keep no fd of the parent but the two pipe ends: an inherited fd of a server
      // Broker would keep its broker.lock held after the parent's Withdraw (a server
      // never forks; a test does).
      const int in = ::fcntl(down[0], F_DUPFD_CLOEXEC, 1000);
      const int out = ::fcntl(up[1], F_DUPFD_CLOEXEC, 1000);
      if (in != 1000 || out != 1001) std::abort();
      ::close_range(3, 999, 0);
      ::close_range(1002, ~0u, 0);
      ::_exit(body(in, out));
    }
    ::close(down[0]);
    ::close(up[1]);
    to_child_.reset(down[1]);
    from_child_.reset(up[0]);
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      Wait();
    }
  }
  pid_t pid() const { return pid_; }
  int in() const { return from_child_.get(); }
  int out() const { return to_child_.get(); }
  void Kill() { ::kill(pid_, SIGKILL); }
  // Exit code, or 128 + signal.
  int Wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  UniqueFd to_child_, from_child_;
};

class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = std::make_unique<localnfs::testing::TempDir>("broker_test");
    base_ = tmp_->path();
    dir_ = base_ + "/rt";  // does not exist yet: CreateForServer makes it
  }
  void TearDown() override { tmp_.reset(); }

  std::unique_ptr<Broker> Server() {
    auto broker = Broker::CreateForServer(dir_);
    EXPECT_TRUE(broker.ok()) << broker.status();
    return broker.ok() ? std::move(*broker) : nullptr;
  }
  std::unique_ptr<Broker> PublishedServer() {
    auto broker = Server();
    if (!broker) return nullptr;
    absl::Status s = broker->PublishServer({.socket_path = kSocket});
    EXPECT_TRUE(s.ok()) << s;
    return broker;
  }
  // A client of this runtime dir in this process.
  std::unique_ptr<BrokerClient> Client() {
    auto broker = BrokerClient::Open(dir_);
    EXPECT_TRUE(broker.ok()) << broker.status();
    return broker.ok() ? std::move(*broker) : nullptr;
  }
  std::string SegmentPath() const { return dir_ + "/broker"; }
  std::string SlotsPath() const { return dir_ + "/broker-slots"; }
  // The documented setup for clients of other users: the runtime dir 2750, owned by
  // the server (root here), group kGroup. False (and the test should skip) unless root.
  bool MakeGroupRuntimeDir() {
    if (::geteuid() != 0) return false;
    EXPECT_EQ(::chmod(base_.c_str(), 0755), 0);
    EXPECT_EQ(::mkdir(dir_.c_str(), 0750), 0);
    EXPECT_EQ(::chown(dir_.c_str(), 0, kGroup), 0);
    EXPECT_EQ(::chmod(dir_.c_str(), 02750), 0);
    return true;
  }

  std::unique_ptr<localnfs::testing::TempDir> tmp_;
  std::string base_, dir_;
};

// ---- Publication ----

TEST_F(BrokerTest, PublishAndWithdraw) {
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  auto info = server->ReadServer();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->state, RecordState::kLive);
  EXPECT_EQ(info->pid, ::getpid());
  EXPECT_EQ(info->start_time, ProcessStartTime(::getpid()));
  EXPECT_NE(info->start_time, 0u);
  EXPECT_EQ(info->socket_path, kSocket);
  EXPECT_EQ(info->ops_version, kOpsVersion);
  EXPECT_EQ(info->capabilities, kCapOpenLocalFh);
  EXPECT_EQ(info->refcount, 0u);
  EXPECT_TRUE(info->alive);
  ASSERT_TRUE(server->PublishedInstance().has_value());
  EXPECT_EQ(info->instance_id, *server->PublishedInstance());
  EXPECT_TRUE(server->ServerAlive());
  // One Broker publishes once.
  EXPECT_EQ(server->PublishServer({.socket_path = kSocket}).code(),
            absl::StatusCode::kFailedPrecondition);
  auto client = Client();
  ASSERT_TRUE(client);
  EXPECT_EQ(client->LoadGeneration(), server->LoadGeneration());

  const uint64_t generation = server->LoadGeneration();
  server->Withdraw();
  info = server->ReadServer();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, RecordState::kWithdrawn);
  EXPECT_FALSE(info->alive);
  EXPECT_GT(server->LoadGeneration(), generation);
  EXPECT_EQ(client->LoadGeneration(), server->LoadGeneration());  // the same mapping
  EXPECT_FALSE(server->ServerAlive());
  EXPECT_FALSE(client->ServerAlive());
  EXPECT_FALSE(server->PublishedInstance().has_value());

  // A restart (new files) gets a new instance id; the generation goes on.
  auto next = PublishedServer();
  ASSERT_TRUE(next);
  auto again = next->ReadServer();
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->instance_id, info->instance_id);
  EXPECT_GT(again->generation, info->generation);
  EXPECT_EQ(client->ReadServer()->state, RecordState::kWithdrawn);  // the old file
  next->Withdraw();
}

TEST_F(BrokerTest, PublishRejectsBadSocketPath) {
  auto server = Server();
  ASSERT_TRUE(server);
  EXPECT_EQ(server->PublishServer({.socket_path = ""}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server->PublishServer({.socket_path = std::string(kMaxSocketPath, 'x')}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(server->PublishedInstance().has_value());
  EXPECT_EQ(BrokerClient::Open(dir_).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(BrokerTest, ServerFileIs0640SlotFile0660WhateverTheUmaskAndDirIs0700) {
  mode_t old = ::umask(077);
  auto server = PublishedServer();
  ::umask(old);
  ASSERT_TRUE(server);
  struct stat st;
  ASSERT_EQ(::stat(SegmentPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  ASSERT_EQ(::stat(SlotsPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);

  // A client refuses a server file others may write (it could be forged), and a
  // world-writable slot file.
  ASSERT_EQ(::chmod(SegmentPath().c_str(), 0660), 0);
  EXPECT_EQ(BrokerClient::Open(dir_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_EQ(::chmod(SegmentPath().c_str(), 0640), 0);
  ASSERT_EQ(::chmod(SlotsPath().c_str(), 0666), 0);
  EXPECT_EQ(BrokerClient::Open(dir_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_EQ(::chmod(SlotsPath().c_str(), 0660), 0);
  EXPECT_TRUE(Client());
  server->Withdraw();
}

TEST_F(BrokerTest, FilesTakeTheRuntimeDirsGroup) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the dir another group";
  ASSERT_EQ(::mkdir(dir_.c_str(), 0750), 0);
  ASSERT_EQ(::chown(dir_.c_str(), 0, kGroup), 0);  // no setgid bit
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  struct stat st;
  ASSERT_EQ(::stat(SegmentPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, kGroup);
  ASSERT_EQ(::stat(SlotsPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, kGroup);
  server->Withdraw();
}

TEST_F(BrokerTest, RuntimeDirClientsCouldWriteIsRefused) {
  ASSERT_EQ(::mkdir(dir_.c_str(), 0700), 0);
  for (mode_t mode : {0770, 0730, 0707, 01777, 02770}) {
    ASSERT_EQ(::chmod(dir_.c_str(), mode), 0);
    EXPECT_EQ(Broker::CreateForServer(dir_).status().code(),
              absl::StatusCode::kFailedPrecondition)
        << std::oct << mode;
  }
  ASSERT_EQ(::chmod(dir_.c_str(), 0750), 0);
  EXPECT_TRUE(Broker::CreateForServer(dir_).ok());
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown(dir_.c_str(), kOtherUid, kGroup), 0);
    EXPECT_EQ(Broker::CreateForServer(dir_).status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
}

TEST_F(BrokerTest, MissingFilesMeanLocalioOff) {
  EXPECT_EQ(BrokerClient::Open(dir_).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(BrokerClient::Open("/nonexistent/localnfs").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(BrokerTest, SecondServerIsRefusedWhileTheFirstLives) {
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  const std::string expected =
      absl::StrCat("runtime dir ", dir_, " is served by localnfsd pid ", ::getpid());
  Child second([&](int, int out) {
    auto broker = Broker::CreateForServer(dir_);
    if (!broker.ok()) return 10;
    absl::Status s = (*broker)->PublishServer({.socket_path = "/tmp/other.sock"});
    std::string message(s.message());
    WriteAll(out, message.data(), message.size());
    return s.code() == absl::StatusCode::kFailedPrecondition ? 0 : 11;
  });
  EXPECT_EQ(second.Wait(), 0);
  char buf[512] = {};
  ::read(second.in(), buf, sizeof buf - 1);
  EXPECT_EQ(std::string(buf), expected);
  // The first server's files are untouched: a client still handshakes with it.
  auto client = Client();
  ASSERT_TRUE(client);
  auto info = client->ReadServer();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->pid, ::getpid());
  EXPECT_EQ(info->socket_path, kSocket);
  auto uuid = client->UuidBegin();
  ASSERT_TRUE(uuid.ok());
  EXPECT_TRUE(server->BindUuid(*uuid, "127.0.0.1:1", 1));
  EXPECT_TRUE(client->UuidEnd(*uuid).ok());
  server->Withdraw();
}

// Servers started at the same moment on one runtime dir: exactly one takes it over
// (broker.lock), the others are refused; none waits.
TEST_F(BrokerTest, OfServersStartingAtOnceExactlyOneWins) {
  ASSERT_TRUE(Server());  // makes the dir
  constexpr int kServers = 4;
  std::vector<std::unique_ptr<Child>> servers;
  for (int i = 0; i < kServers; ++i) {
    servers.push_back(std::make_unique<Child>([&](int in, int out) {
      auto broker = Broker::CreateForServer(dir_);
      if (!broker.ok()) return 10;
      char go;
      if (!Receive(in, &go)) return 11;
      absl::Status s = (*broker)->PublishServer({.socket_path = kSocket});
      const char won = s.ok() ? 'w' : s.code() == absl::StatusCode::kFailedPrecondition ? 'r' : 'e';
      if (!Send(out, won)) return 12;
      Receive(in, &go);  // hold it until every contender has tried
      return 0;
    }));
  }
  for (auto& c : servers) ASSERT_TRUE(Send(c->out(), 'g'));
  int won = 0, refused = 0;
  for (auto& c : servers) {
    char r = 0;
    ASSERT_TRUE(Receive(c->in(), &r));
    won += r == 'w';
    refused += r == 'r';
  }
  EXPECT_EQ(won, 1);
  EXPECT_EQ(refused, kServers - 1);
  for (auto& c : servers) ASSERT_TRUE(Send(c->out(), 'x'));
  for (auto& c : servers) EXPECT_EQ(c->Wait(), 0);
  // The winner is gone: the next start reaps its record.
  auto next = PublishedServer();
  ASSERT_TRUE(next);
  next->Withdraw();
}

TEST_F(BrokerTest, DeadServerRecordIsReapedByTheNextServer) {
  // The child is the server; the parent is a client bound to it.
  Child server([&](int in, int out) {
    auto broker = Broker::CreateForServer(dir_);
    if (!broker.ok() || !(*broker)->PublishServer({.socket_path = kSocket}).ok()) return 10;
    char ready = 'p';
    if (!Send(out, ready)) return 11;
    Uuid uuid;
    if (!Receive(in, &uuid)) return 12;
    if (!(*broker)->BindUuid(uuid, "127.0.0.1", 3)) return 13;
    if (!Send(out, ready)) return 14;
    char go;
    Receive(in, &go);
    ::_exit(0);  // dies without Withdraw
  });
  char byte;
  ASSERT_TRUE(Receive(server.in(), &byte));
  auto client = Client();
  ASSERT_TRUE(client);
  auto uuid = client->UuidBegin();
  ASSERT_TRUE(uuid.ok());
  ASSERT_TRUE(Send(server.out(), *uuid));
  ASSERT_TRUE(Receive(server.in(), &byte));
  auto binding = client->UuidEnd(*uuid);
  ASSERT_TRUE(binding.ok()) << binding.status();
  EXPECT_EQ(binding->socket_path, kSocket);
  EXPECT_EQ(binding->export_id, 3u);
  EXPECT_EQ(client->LoadGeneration(), binding->generation);
  ASSERT_TRUE(Send(server.out(), byte));
  EXPECT_EQ(server.Wait(), 0);

  // Dead whatever its count: still "live" with one reference, but not alive.
  auto info = client->ReadServer();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, RecordState::kLive);
  EXPECT_EQ(info->refcount, 1u);
  EXPECT_FALSE(info->alive);
  EXPECT_FALSE(client->ServerAlive());

  auto next = PublishedServer();
  ASSERT_TRUE(next);
  // The client's mapping is the old file: reaped, generation bumped.
  EXPECT_NE(client->LoadGeneration(), binding->generation);
  EXPECT_EQ(client->ReadServer()->state, RecordState::kWithdrawn);
  EXPECT_EQ(client->UuidEnd(*uuid).status().code(), absl::StatusCode::kNotFound);
  client->UuidRelease(*uuid);  // the unmount after the fact is harmless
  // A client that opens now sees the new record and no slot taken.
  auto fresh = Client();
  ASSERT_TRUE(fresh);
  info = fresh->ReadServer();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->pid, ::getpid());
  EXPECT_EQ(info->refcount, 0u);
  EXPECT_TRUE(info->alive);
  EXPECT_GT(info->generation, binding->generation);
  EXPECT_TRUE(fresh->ListSlots()->empty());
  next->Withdraw();
}

// ---- The handshake ----

TEST_F(BrokerTest, HandshakeFromAForkedClient) {
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  const InstanceId instance = *server->PublishedInstance();
  struct Result {
    uint64_t generation;
    uint32_t export_id;
    InstanceId instance;
    char socket_path[kMaxSocketPath];
  };
  Child client([&](int in, int out) {
    auto broker = BrokerClient::Open(dir_);
    if (!broker.ok()) return 10;
    auto uuid = (*broker)->UuidBegin();
    if (!uuid.ok()) return 11;
    // Before UUID_IS_LOCAL the uuid is pending: not local.
    if ((*broker)->UuidEnd(*uuid).status().code() != absl::StatusCode::kNotFound) return 12;
    if (!Send(out, *uuid)) return 13;
    char bound;
    if (!Receive(in, &bound)) return 14;
    auto binding = (*broker)->UuidEnd(*uuid);
    if (!binding.ok()) return 15;
    Result r{};
    r.generation = binding->generation;
    r.export_id = binding->export_id;
    r.instance = binding->instance_id;
    snprintf(r.socket_path, sizeof r.socket_path, "%s", binding->socket_path.c_str());
    if ((*broker)->LoadGeneration() != binding->generation) return 16;
    if (binding->slot_index != SlotOfUuid(*uuid)) return 17;
    (*broker)->UuidRelease(*uuid);
    if (!Send(out, r)) return 18;
    return 0;
  });
  Uuid uuid;
  ASSERT_TRUE(Receive(client.in(), &uuid));
  EXPECT_FALSE(server->LookupBound(uuid).has_value());  // pending is not bound
  auto slots = server->ListSlots();
  ASSERT_TRUE(slots.ok());
  ASSERT_EQ(slots->size(), 1u);
  EXPECT_EQ((*slots)[0].state, SlotState::kPending);
  EXPECT_EQ((*slots)[0].owner_pid, client.pid());
  ASSERT_TRUE(server->BindUuid(uuid, "192.0.2.7", 42));
  auto bound = server->LookupBound(uuid);
  ASSERT_TRUE(bound.has_value());
  EXPECT_EQ(bound->owner_pid, client.pid());
  EXPECT_EQ(bound->owner_start_time, ProcessStartTime(client.pid()));
  EXPECT_EQ(bound->domain, "192.0.2.7");
  EXPECT_EQ(bound->export_id, 42u);
  EXPECT_EQ(server->ListBound().size(), 1u);
  EXPECT_EQ(server->ReadServer()->refcount, 1u);
  slots = server->ListSlots();
  ASSERT_TRUE(slots.ok());
  ASSERT_EQ(slots->size(), 1u);
  EXPECT_EQ((*slots)[0].state, SlotState::kBound);
  EXPECT_EQ((*slots)[0].domain, "192.0.2.7");
  EXPECT_EQ((*slots)[0].instance_id, instance);
  EXPECT_FALSE(server->BindUuid(uuid, "192.0.2.7", 42));  // no longer pending

  const uint64_t generation = server->LoadGeneration();
  ASSERT_TRUE(Send(client.out(), 'b'));
  Result r;
  ASSERT_TRUE(Receive(client.in(), &r));
  EXPECT_EQ(client.Wait(), 0);
  EXPECT_EQ(r.generation, generation);
  EXPECT_EQ(r.export_id, 42u);
  EXPECT_EQ(r.instance, instance);
  EXPECT_STREQ(r.socket_path, kSocket);

  // The client's release took the binding and its reference away.
  EXPECT_FALSE(server->LookupBound(uuid).has_value());
  EXPECT_TRUE(server->ListBound().empty());
  EXPECT_EQ(server->ReadServer()->refcount, 0u);
  EXPECT_TRUE(server->ListSlots()->empty());
  EXPECT_EQ(server->LoadGeneration(), generation);  // a release invalidates nobody else
  server->Withdraw();
}

TEST_F(BrokerTest, BindingAnUnknownUuidBindsNothing) {
  auto server = PublishedServer();
  auto client = Client();
  ASSERT_TRUE(server && client);
  auto pending = client->UuidBegin();
  ASSERT_TRUE(pending.ok());
  Uuid unknown = *pending;
  unknown[0] ^= 0xff;  // same slot, another uuid
  const uint64_t generation = server->LoadGeneration();
  EXPECT_FALSE(server->BindUuid(unknown, "127.0.0.1", 1));
  EXPECT_TRUE(server->ListBound().empty());
  EXPECT_EQ(server->ReadServer()->refcount, 0u);
  EXPECT_EQ(server->LoadGeneration(), generation);
  auto slots = server->ListSlots();
  ASSERT_TRUE(slots.ok());
  ASSERT_EQ(slots->size(), 1u);
  EXPECT_EQ((*slots)[0].state, SlotState::kPending);
  EXPECT_EQ((*slots)[0].uuid, *pending);
  // Too long a domain is refused rather than truncated into another rule's name.
  EXPECT_FALSE(server->BindUuid(*pending, std::string(kMaxDomain, 'd'), 1));
  EXPECT_EQ(client->UuidEnd(*pending).status().code(), absl::StatusCode::kNotFound);
  client->UuidRelease(*pending);
  EXPECT_TRUE(server->ListSlots()->empty());
  server->Withdraw();
}

template <class T>
concept HasClientSide = requires(T& b, const Uuid& u) {
  b.UuidBegin();
  b.UuidEnd(u);
};

TEST_F(BrokerTest, UnpublishedServerBindsNothingAndServersAreNotClients) {
  auto server = Server();
  ASSERT_TRUE(server);
  EXPECT_FALSE(server->BindUuid(Uuid{}, "127.0.0.1", 1));
  EXPECT_FALSE(server->ServerAlive());
  EXPECT_FALSE(server->ReadServer().ok());
  EXPECT_EQ(server->LoadGeneration(), 0u);
  ASSERT_TRUE(server->PublishServer({.socket_path = kSocket}).ok());
  // A server's Broker cannot act as a client: it has no uuid_begin or uuid_end at all
  // (when one class served both sides, they refused with kFailedPrecondition).
  static_assert(!HasClientSide<Broker> && HasClientSide<BrokerClient>);
  server->Withdraw();
}

TEST_F(BrokerTest, UuidsAreVersion4AndNameTheirSlot) {
  auto server = PublishedServer();
  auto client = Client();
  ASSERT_TRUE(server && client);
  auto a = client->UuidBegin();
  auto b = client->UuidBegin();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_NE(SlotOfUuid(*a), SlotOfUuid(*b));
  EXPECT_EQ((*a)[6] >> 4, 4);
  EXPECT_EQ((*a)[8] & 0xc0, 0x80);
  auto slots = client->ListSlots();
  ASSERT_TRUE(slots.ok());
  ASSERT_EQ(slots->size(), 2u);
  for (const SlotInfo& s : *slots) EXPECT_EQ(s.index, SlotOfUuid(s.uuid));
  Uuid fixed{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
             0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
  EXPECT_EQ(UuidToString(fixed), "00112233-4455-6677-8899-aabbccddeeff");
  EXPECT_EQ(SlotOfUuid(fixed), 0xeeffu & (kUuidSlots - 1));
  server->Withdraw();
}

TEST_F(BrokerTest, FullTableIsResourceExhaustedAndADeadClientsSlotsAreReclaimed) {
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  Child hog([&](int in, int out) {
    auto broker = BrokerClient::Open(dir_);
    if (!broker.ok()) return 10;
    for (size_t i = 0; i < kUuidSlots; ++i)
      if (!(*broker)->UuidBegin().ok()) return 11;
    const bool full = (*broker)->UuidBegin().status().code() ==
                      absl::StatusCode::kResourceExhausted;
    if (!Send(out, full)) return 12;
    char go;
    Receive(in, &go);
    for (;;) ::pause();
  });
  bool full = false;
  ASSERT_TRUE(Receive(hog.in(), &full));
  EXPECT_TRUE(full);
  auto client = Client();
  ASSERT_TRUE(client);
  EXPECT_EQ(client->UuidBegin().status().code(), absl::StatusCode::kResourceExhausted);
  hog.Kill();
  EXPECT_EQ(hog.Wait(), 128 + SIGKILL);
  auto uuid = client->UuidBegin();  // reclaims a slot of the dead hog
  ASSERT_TRUE(uuid.ok()) << uuid.status();
  ASSERT_TRUE(server->BindUuid(*uuid, "127.0.0.1:1", 1));
  EXPECT_TRUE(client->UuidEnd(*uuid).ok());
  server->Withdraw();
}

// ---- Invalidation ----

TEST_F(BrokerTest, GenerationBumpIsSeenByAClientMapping) {
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  Child client([&](int in, int out) {
    auto broker = BrokerClient::Open(dir_);
    if (!broker.ok()) return 10;
    auto uuid = (*broker)->UuidBegin();
    if (!uuid.ok() || !Send(out, *uuid)) return 11;
    char go;
    if (!Receive(in, &go)) return 12;
    auto binding = (*broker)->UuidEnd(*uuid);
    if (!binding.ok() || !Send(out, binding->generation)) return 13;
    if (!Receive(in, &go)) return 14;
    uint64_t after = (*broker)->LoadGeneration();
    if (!Send(out, after)) return 15;
    return (*broker)->UuidEnd(*uuid).status().code() == absl::StatusCode::kNotFound ? 0 : 16;
  });
  Uuid uuid;
  ASSERT_TRUE(Receive(client.in(), &uuid));
  ASSERT_TRUE(server->BindUuid(uuid, "127.0.0.1", 1));
  ASSERT_TRUE(Send(client.out(), 'b'));
  uint64_t before = 0, after = 0;
  ASSERT_TRUE(Receive(client.in(), &before));
  EXPECT_EQ(before, server->LoadGeneration());
  server->InvalidateClients();
  ASSERT_TRUE(Send(client.out(), 'g'));
  ASSERT_TRUE(Receive(client.in(), &after));
  EXPECT_EQ(client.Wait(), 0);
  EXPECT_EQ(after, before + 1);
  // Invalidation unbound the uuid and dropped its reference.
  EXPECT_FALSE(server->LookupBound(uuid).has_value());
  EXPECT_EQ(server->ReadServer()->refcount, 0u);
  server->Withdraw();
}

TEST_F(BrokerTest, UnbindUuidRevokesOneBinding) {
  auto server = PublishedServer();
  auto client = Client();
  ASSERT_TRUE(server && client);
  auto a = client->UuidBegin();
  auto b = client->UuidBegin();
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(server->BindUuid(*a, "10.0.0.1", 1));
  ASSERT_TRUE(server->BindUuid(*b, "10.0.0.2", 2));
  EXPECT_EQ(server->ReadServer()->refcount, 2u);
  const uint64_t generation = server->LoadGeneration();
  server->UnbindUuid(*a);
  EXPECT_EQ(server->LoadGeneration(), generation + 1);
  EXPECT_FALSE(server->LookupBound(*a).has_value());
  EXPECT_TRUE(server->LookupBound(*b).has_value());
  EXPECT_EQ(server->ReadServer()->refcount, 1u);
  EXPECT_EQ(client->UuidEnd(*a).status().code(), absl::StatusCode::kNotFound);
  server->Withdraw();
  EXPECT_FALSE(server->LookupBound(*b).has_value());
  EXPECT_EQ(server->ReadServer()->refcount, 0u);
  EXPECT_EQ(client->UuidEnd(*b).status().code(), absl::StatusCode::kNotFound);
}

// ---- Process death ----

TEST_F(BrokerTest, KilledClientIsReaped) {
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  Child client([&](int, int out) {
    auto broker = BrokerClient::Open(dir_);
    if (!broker.ok()) return 10;
    auto a = (*broker)->UuidBegin();
    auto b = (*broker)->UuidBegin();
    if (!a.ok() || !b.ok() || !Send(out, *a) || !Send(out, *b)) return 11;
    for (;;) ::pause();
  });
  Uuid bound, pending;
  ASSERT_TRUE(Receive(client.in(), &bound));
  ASSERT_TRUE(Receive(client.in(), &pending));
  ASSERT_TRUE(server->BindUuid(bound, "127.0.0.1", 1));
  EXPECT_EQ(server->ReapDeadClients(), 0);  // alive: nothing to reap
  EXPECT_EQ(server->ListSlots()->size(), 2u);

  client.Kill();
  EXPECT_EQ(client.Wait(), 128 + SIGKILL);
  EXPECT_EQ(server->ReapDeadClients(), 1);  // the binding; the pending slot is the clients'
  EXPECT_TRUE(server->ListBound().empty());
  EXPECT_EQ(server->ReadServer()->refcount, 0u);
  EXPECT_FALSE(server->BindUuid(pending, "127.0.0.1", 1));  // its owner is gone
  server->Withdraw();
}

// ---- What a malicious client can and cannot do (broker_format.h) ----

// It cannot write, truncate, chmod or replace the server's file; it can write the slots.
TEST_F(BrokerTest, GroupMemberCannotWriteTheServersFile) {
  if (!MakeGroupRuntimeDir()) GTEST_SKIP() << "needs root to run a client of another uid";
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  Child member([&](int, int) {
    if (!BecomeGroupMember()) return 100;
    int failures = 0;
    const std::string seg = SegmentPath();
    failures += ::open(seg.c_str(), O_RDWR) >= 0 || errno != EACCES;
    failures += ::truncate(seg.c_str(), 0) == 0;
    failures += ::chmod(seg.c_str(), 0666) == 0;
    failures += ::unlink(seg.c_str()) == 0;
    failures += ::open((dir_ + "/broker.forged").c_str(), O_RDWR | O_CREAT, 0660) >= 0;
    failures += ::open(seg.c_str(), O_RDONLY) < 0;            // but it may read it
    failures += ::open(SlotsPath().c_str(), O_RDWR) < 0;      // and write the slots
    auto broker = BrokerClient::Open(dir_);
    failures += !broker.ok() || !(*broker)->UuidBegin().ok();  // and be a client
    return failures;
  });
  EXPECT_EQ(member.Wait(), 0);
  server->Withdraw();
}

// A live client holding every lock it can take on both files — flock, an OFD lock, and
// a process-shared mutex it locks at byte 64 of the slot file, with its live tid as the
// owner — changes nothing for the server: each call returns at once, a new server
// start succeeds, and another client still handshakes.
TEST_F(BrokerTest, LocksAClientHoldsNeverStallTheServer) {
  const bool other_uid = MakeGroupRuntimeDir();
  auto server = PublishedServer();
  auto victim = Client();
  ASSERT_TRUE(server && victim);
  auto bound = victim->UuidBegin();
  ASSERT_TRUE(bound.ok());
  ASSERT_TRUE(server->BindUuid(*bound, "127.0.0.1:1", 1));
  Child holder([&](int, int out) {
    if (other_uid && !BecomeGroupMember()) return 100;
    int held = 0;
    for (const std::string& path : {SegmentPath(), SlotsPath()}) {
      // (Without root it runs as the server's own uid, which could write anything.)
      int fd = path == SlotsPath() || other_uid ? ::open(path.c_str(), O_RDWR) : -1;
      const bool rw = fd >= 0;
      if (!rw) fd = ::open(path.c_str(), O_RDONLY);
      if (fd < 0) return 101;
      held += ::flock(fd, LOCK_EX | LOCK_NB) == 0;
      struct flock ofd {};
      ofd.l_type = rw ? F_WRLCK : F_RDLCK;
      ofd.l_whence = SEEK_SET;
      held += ::fcntl(fd, F_OFD_SETLK, &ofd) == 0;
      if (rw) {
        void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) return 102;
        pthread_mutexattr_t attr;
        pthread_mutexattr_init(&attr);
        pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        auto* m = reinterpret_cast<pthread_mutex_t*>(static_cast<char*>(p) + 64);
        pthread_mutex_init(m, &attr);
        held += pthread_mutex_lock(m) == 0;
      }
    }
    if (!Send(out, held)) return 103;
    for (;;) ::pause();
  });
  int held = 0;
  ASSERT_TRUE(Receive(holder.in(), &held));
  EXPECT_GE(held, 4);

  auto other = Client();
  ASSERT_TRUE(other);
  const auto t0 = Clock::now();
  auto uuid = other->UuidBegin();
  ASSERT_TRUE(uuid.ok()) << uuid.status();
  EXPECT_TRUE(server->BindUuid(*uuid, "127.0.0.1:2", 1));
  EXPECT_TRUE(other->UuidEnd(*uuid).ok());
  EXPECT_TRUE(server->LookupBound(*uuid).has_value());
  EXPECT_EQ(server->ListBound().size(), 2u);  // the victim's slot 0 bytes 64.. are counters
  EXPECT_EQ(server->ReapDeadClients(), 0);
  EXPECT_TRUE(server->ListSlots().ok());
  EXPECT_TRUE(server->ReadServer().ok());
  server->InvalidateClients();
  server->Withdraw();
  EXPECT_LT(Clock::now() - t0, kPrompt);

  const auto t1 = Clock::now();
  auto next = PublishedServer();
  ASSERT_TRUE(next);
  EXPECT_LT(Clock::now() - t1, kPrompt);
  auto fresh = Client();
  ASSERT_TRUE(fresh);
  auto again = fresh->UuidBegin();
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(next->BindUuid(*again, "127.0.0.1:3", 1));
  EXPECT_TRUE(fresh->UuidEnd(*again).ok());
  next->Withdraw();
}

// Bytes scribbled over the whole slot file: the server keeps answering; the client whose
// slot was hit loses its binding; any client then reclaims a scribbled slot and binds.
TEST_F(BrokerTest, ScribbledSlotTableCostsOnlyTheSlotsItHit) {
  const bool other_uid = MakeGroupRuntimeDir();
  auto server = PublishedServer();
  auto victim = Client();
  ASSERT_TRUE(server && victim);
  auto bound = victim->UuidBegin();
  ASSERT_TRUE(bound.ok());
  ASSERT_TRUE(server->BindUuid(*bound, "127.0.0.1:1", 1));
  // Fixed by default; --gtest_random_seed=N explores other scribbles reproducibly.
  const uint64_t seed = 20240829 + ::testing::UnitTest::GetInstance()->random_seed();
  for (int round = 0; round < 8; ++round) {
    Child scribbler([&](int, int) {
      if (other_uid && !BecomeGroupMember()) return 100;
      UniqueFd fd(::open(SlotsPath().c_str(), O_RDWR));
      if (!fd) return 101;
      std::mt19937_64 rng(seed + round);
      struct stat st;
      if (::fstat(fd.get(), &st) != 0) return 102;
      std::string junk(static_cast<size_t>(st.st_size), '\0');
      // Random bytes; every other round, random words of the valid tags and live pids.
      for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>(rng());
      if (round % 2 == 1)
        for (size_t off = 0; off + 8 <= junk.size(); off += 128) {
          const uint64_t word = uint64_t{static_cast<uint32_t>(rng() % 2 ? 1 : ::getpid())} << 32 |
                                (rng() % 2 ? 0x47455252u : 0x4d4c4143u);
          memcpy(&junk[off], &word, 8);
        }
      return ::pwrite(fd.get(), junk.data(), junk.size(), 0) == st.st_size ? 0 : 103;
    });
    ASSERT_EQ(scribbler.Wait(), 0);
    const auto t0 = Clock::now();
    EXPECT_FALSE(server->LookupBound(*bound).has_value());  // its slot is gone
    EXPECT_EQ(victim->UuidEnd(*bound).status().code(), absl::StatusCode::kNotFound);
    (void)server->ListBound();
    (void)server->ReapDeadClients();
    EXPECT_TRUE(server->ListSlots().ok());
    EXPECT_TRUE(server->ReadServer().ok());
    auto client = Client();
    ASSERT_TRUE(client);
    auto uuid = client->UuidBegin();
    ASSERT_TRUE(uuid.ok()) << uuid.status() << " round " << round;
    EXPECT_TRUE(server->BindUuid(*uuid, "127.0.0.1:2", 1));
    EXPECT_TRUE(client->UuidEnd(*uuid).ok());
    EXPECT_TRUE(server->LookupBound(*uuid).has_value());
    client->UuidRelease(*uuid);
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(1));
  }
  server->Withdraw();
}

// A slot file cut short: the server never mapped it, so it never faults; clients that
// open it now refuse it (LOCALIO off for them); the next server start replaces it.
TEST_F(BrokerTest, TruncatedSlotFileNeverFaultsTheServer) {
  const bool other_uid = MakeGroupRuntimeDir();
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  Uuid bound;
  {
    auto victim = Client();
    ASSERT_TRUE(victim);
    auto u = victim->UuidBegin();
    ASSERT_TRUE(u.ok());
    bound = *u;
    ASSERT_TRUE(server->BindUuid(bound, "127.0.0.1:1", 1));
  }  // unmapped: touching a truncated mapping would fault this test process
  for (off_t size : {off_t{0}, off_t{100}, off_t{4096}}) {
    Child truncater([&](int, int) {
      if (other_uid && !BecomeGroupMember()) return 100;
      return ::truncate(SlotsPath().c_str(), size) == 0 ? 0 : 101;
    });
    ASSERT_EQ(truncater.Wait(), 0);
    EXPECT_FALSE(server->LookupBound(bound).has_value());
    EXPECT_FALSE(server->BindUuid(bound, "127.0.0.1:1", 1));
    EXPECT_TRUE(server->ListBound().empty());
    EXPECT_EQ(server->ReapDeadClients(), 0);
    auto slots = server->ListSlots();
    ASSERT_TRUE(slots.ok());
    EXPECT_TRUE(slots->empty());
    EXPECT_TRUE(server->ReadServer().ok());
    EXPECT_EQ(BrokerClient::Open(dir_).status().code(),
              absl::StatusCode::kFailedPrecondition)
        << size;
  }
  server->Withdraw();
  auto next = PublishedServer();
  ASSERT_TRUE(next);
  auto client = Client();
  ASSERT_TRUE(client);
  auto uuid = client->UuidBegin();
  ASSERT_TRUE(uuid.ok());
  EXPECT_TRUE(next->BindUuid(*uuid, "127.0.0.1:1", 1));
  EXPECT_TRUE(client->UuidEnd(*uuid).ok());
  next->Withdraw();
}

// ---- The HELLO secret ----

// The slot's hash of the secret, as any member of the group may read it.
SecretHash SlotHashOf(const std::string& slots_path, const Uuid& uuid) {
  SecretHash h{};
  UniqueFd fd(::open(slots_path.c_str(), O_RDONLY));
  EXPECT_TRUE(fd);
  const off_t off = static_cast<off_t>(SlotOfUuid(uuid) * sizeof(format::Slot) +
                                       offsetof(format::Slot, secret_hash));
  EXPECT_EQ(::pread(fd.get(), h.data(), h.size(), off), static_cast<ssize_t>(h.size()));
  return h;
}
// What a hostile group member may do: write any hash into the slot of `uuid`.
void WriteSlotHash(const std::string& slots_path, const Uuid& uuid, const SecretHash& h) {
  UniqueFd fd(::open(slots_path.c_str(), O_RDWR));
  ASSERT_TRUE(fd);
  const off_t off = static_cast<off_t>(SlotOfUuid(uuid) * sizeof(format::Slot) +
                                       offsetof(format::Slot, secret_hash));
  ASSERT_EQ(::pwrite(fd.get(), h.data(), h.size(), off), static_cast<ssize_t>(h.size()));
}

TEST(SecretTest, HashIsSha256AndTheCompareTakesOnlyTheRightSecret) {
  const uint8_t zeros[kSecretSize] = {};
  const Secret zero = Secret::FromBytes(zeros);
  // SHA-256 of 32 zero bytes.
  const SecretHash want = {0x66, 0x68, 0x7a, 0xad, 0xf8, 0x62, 0xbd, 0x77, 0x6c, 0x8f, 0xc1,
                           0x8b, 0x8e, 0x9f, 0x8e, 0x20, 0x08, 0x97, 0x14, 0x85, 0x6e, 0xe2,
                           0x33, 0xb3, 0x90, 0x2a, 0x59, 0x1d, 0x0d, 0x5f, 0x29, 0x25};
  EXPECT_EQ(zero.Hash(), want);
  EXPECT_TRUE(SecretMatches(zero, want));
  auto a = Secret::Generate();
  auto b = Secret::Generate();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->Hash(), b->Hash());  // 32 random bytes each
  EXPECT_TRUE(SecretMatches(*a, a->Hash()));
  EXPECT_FALSE(SecretMatches(*b, a->Hash()));
  EXPECT_FALSE(SecretMatches(*a, SecretHash{}));
  // One bit off anywhere, in the secret or in the hash, is refused.
  for (size_t i = 0; i < kSecretSize; ++i) {
    uint8_t bytes[kSecretSize];
    memcpy(bytes, a->data(), kSecretSize);
    bytes[i] ^= 0x01;
    EXPECT_FALSE(SecretMatches(Secret::FromBytes(bytes), a->Hash())) << i;
    SecretHash h = a->Hash();
    h[i] ^= 0x80;
    EXPECT_FALSE(SecretMatches(*a, h)) << i;
  }
}

TEST(SecretTest, UuidIsMadeFromTheHashAndNamesItsSlot) {
  auto secret = Secret::Generate();
  ASSERT_TRUE(secret.ok());
  const SecretHash h = secret->Hash();
  for (size_t slot : {size_t{0}, size_t{1}, kUuidSlots - 1, size_t{37}}) {
    const Uuid u = UuidCommittingTo(h, slot);
    EXPECT_EQ(SlotOfUuid(u), slot);
    EXPECT_EQ(u[6] >> 4, 4);        // version 4
    EXPECT_EQ(u[8] & 0xc0, 0x80);   // RFC 4122 variant
    EXPECT_EQ(UuidCommittingTo(h, slot), u);  // a function of (hash, slot)
    // Everything but those bits is the hash's.
    for (size_t i : {0, 1, 2, 3, 4, 5, 7, 9, 10, 11, 12, 13}) EXPECT_EQ(u[i], h[i]) << i;
    SecretHash other = h;
    other[3] ^= 1;
    EXPECT_NE(UuidCommittingTo(other, slot), u);
  }
}

TEST_F(BrokerTest, RegistrationKeepsItsSecretAndShowsOnlyItsHash) {
  auto server = PublishedServer();
  auto client = Client();
  ASSERT_TRUE(server && client);
  auto uuid = client->UuidBegin();
  ASSERT_TRUE(uuid.ok()) << uuid.status();
  std::optional<Secret> secret = client->SecretOf(*uuid);
  ASSERT_TRUE(secret.has_value());
  const SecretHash shown = SlotHashOf(SlotsPath(), *uuid);
  EXPECT_TRUE(SecretMatches(*secret, shown));
  EXPECT_EQ(UuidCommittingTo(shown, SlotOfUuid(*uuid)), *uuid);
  auto slots = client->ListSlots();
  ASSERT_TRUE(slots.ok());
  ASSERT_EQ(slots->size(), 1u);
  EXPECT_EQ((*slots)[0].secret_hash, shown);
  // The secret is nowhere in the slot file.
  std::string file;
  {
    UniqueFd fd(::open(SlotsPath().c_str(), O_RDONLY));
    ASSERT_TRUE(fd);
    file.resize(sizeof(format::SlotTable));
    ASSERT_EQ(::pread(fd.get(), file.data(), file.size(), 0),
              static_cast<ssize_t>(file.size()));
  }
  EXPECT_EQ(file.find(std::string(reinterpret_cast<const char*>(secret->data()), kSecretSize)),
            std::string::npos);
  // Two registrations, two secrets.
  auto second = client->UuidBegin();
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(client->SecretOf(*second).has_value());
  EXPECT_NE(client->SecretOf(*second)->Hash(), secret->Hash());
  // Bound: the server kept the hash.
  ASSERT_TRUE(server->BindUuid(*uuid, "127.0.0.1:9", 1));
  auto bound = server->LookupBound(*uuid);
  ASSERT_TRUE(bound.has_value());
  EXPECT_EQ(bound->secret_hash, shown);
  // Released: forgotten.
  client->UuidRelease(*uuid);
  EXPECT_FALSE(client->SecretOf(*uuid).has_value());
  EXPECT_FALSE(client->SecretOf(Uuid{}).has_value());
  server->Withdraw();
}

// Another client's registration (another process, of another uid when root): whatever
// the slot file shows of it — uuid, hash, owner — any member of the group can read, and
// none of it, nor any secret but its owner's, matches the hash the server kept.
TEST_F(BrokerTest, AnotherClientsUuidAndHashAreUselessWithoutItsSecret) {
  const bool other_uid = MakeGroupRuntimeDir();
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  Child victim([&](int in, int out) {
    if (other_uid && !BecomeGroupMember()) return 9;
    auto broker = BrokerClient::Open(dir_);
    if (!broker.ok()) return 10;
    auto uuid = (*broker)->UuidBegin();
    if (!uuid.ok() || !Send(out, *uuid)) return 11;
    // Handed over only so that this test can show that the right secret does match.
    std::array<uint8_t, kSecretSize> secret;
    memcpy(secret.data(), (*broker)->SecretOf(*uuid)->data(), kSecretSize);
    if (!Send(out, secret)) return 12;
    char go;
    Receive(in, &go);
    return 0;
  });
  Uuid theirs;
  std::array<uint8_t, kSecretSize> their_secret;
  ASSERT_TRUE(Receive(victim.in(), &theirs));
  ASSERT_TRUE(Receive(victim.in(), &their_secret));
  const SecretHash shown = SlotHashOf(SlotsPath(), theirs);
  ASSERT_TRUE(server->BindUuid(theirs, "127.0.0.1:9", 1));
  auto bound = server->LookupBound(theirs);
  ASSERT_TRUE(bound.has_value());
  EXPECT_EQ(bound->owner_pid, victim.pid());
  EXPECT_EQ(bound->secret_hash, shown);
  EXPECT_TRUE(SecretMatches(Secret::FromBytes(their_secret.data()), bound->secret_hash));
  // What a replayer has: the uuid and the hash (as a "secret"), or a fresh guess.
  Secret hash_as_secret = Secret::FromBytes(shown.data());
  EXPECT_FALSE(SecretMatches(hash_as_secret, bound->secret_hash));
  EXPECT_FALSE(SecretMatches(Secret(), bound->secret_hash));  // all zeros
  for (int i = 0; i < 16; ++i) {
    auto guess = Secret::Generate();
    ASSERT_TRUE(guess.ok());
    EXPECT_FALSE(SecretMatches(*guess, bound->secret_hash));
  }
  ASSERT_TRUE(Send(victim.out(), 'x'));
  EXPECT_EQ(victim.Wait(), 0);
  server->Withdraw();
}

// After the bind the slot's hash is nobody's proof: the server kept its copy, and a
// hash written over the slot (a hostile group member's, whose secret it knows) neither
// unbinds the client nor lets the writer in.
TEST_F(BrokerTest, HashRewrittenAfterTheBindChangesNothing) {
  auto server = PublishedServer();
  auto victim = Client();
  ASSERT_TRUE(server && victim);
  auto uuid = victim->UuidBegin();
  ASSERT_TRUE(uuid.ok());
  ASSERT_TRUE(server->BindUuid(*uuid, "127.0.0.1:9", 1));
  auto attacker = Secret::Generate();
  ASSERT_TRUE(attacker.ok());
  WriteSlotHash(SlotsPath(), *uuid, attacker->Hash());
  ASSERT_EQ(SlotHashOf(SlotsPath(), *uuid), attacker->Hash());
  auto bound = server->LookupBound(*uuid);
  ASSERT_TRUE(bound.has_value());  // still bound ...
  EXPECT_TRUE(SecretMatches(*victim->SecretOf(*uuid), bound->secret_hash));  // ... to it
  EXPECT_FALSE(SecretMatches(*attacker, bound->secret_hash));
  EXPECT_TRUE(victim->UuidEnd(*uuid).ok());
  EXPECT_EQ(server->ListBound().size(), 1u);
  server->Withdraw();
}

// Before the bind, a hash written over a pending client's slot would be kept by the
// server — and the writer, who knows its secret, could then HELLO as that client with
// the domain of the client's own NFS connection. The uuid is made from the registrant's
// hash: with another hash in the slot the server binds nothing. The client loses
// LOCALIO (a denial, which slot writers can always cause), nobody gains it.
TEST_F(BrokerTest, HashRewrittenBeforeTheBindBindsNothing) {
  auto server = PublishedServer();
  auto victim = Client();
  ASSERT_TRUE(server && victim);
  auto uuid = victim->UuidBegin();
  ASSERT_TRUE(uuid.ok());
  auto attacker = Secret::Generate();
  ASSERT_TRUE(attacker.ok());
  WriteSlotHash(SlotsPath(), *uuid, attacker->Hash());
  EXPECT_FALSE(server->BindUuid(*uuid, "127.0.0.1:9", 1));
  EXPECT_FALSE(server->LookupBound(*uuid).has_value());
  EXPECT_EQ(victim->UuidEnd(*uuid).status().code(), absl::StatusCode::kNotFound);
  // Put back, the registrant's own hash binds again: only the hash decided.
  WriteSlotHash(SlotsPath(), *uuid, victim->SecretOf(*uuid)->Hash());
  EXPECT_TRUE(server->BindUuid(*uuid, "127.0.0.1:9", 1));
  server->Withdraw();
}

// A previous file at the server's name that this server did not write, or that others
// may write, says nothing about a live server: a start replaces it.
TEST_F(BrokerTest, ServerStartReplacesAFileItCannotTrust) {
  ASSERT_TRUE(PublishedServer());  // a live record of this (live) process, left behind
  struct stat st;
  ASSERT_EQ(::stat(SegmentPath().c_str(), &st), 0);
  // While the file is ours and 0640, its live record refuses the next start ...
  auto refused = Server();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->PublishServer({.socket_path = kSocket}).code(),
            absl::StatusCode::kFailedPrecondition);
  // ... but not once others may have written it.
  ASSERT_EQ(::chmod(SegmentPath().c_str(), 0660), 0);
  auto next = PublishedServer();
  ASSERT_TRUE(next);
  next->Withdraw();
  if (::geteuid() == 0) {
    ASSERT_TRUE(PublishedServer());  // live again, left behind
    ASSERT_EQ(::chown(SegmentPath().c_str(), kOtherUid, kGroup), 0);
    auto after_chown = PublishedServer();
    ASSERT_TRUE(after_chown);
    after_chown->Withdraw();
  }
}

// A client's threads count their local I/O in shards of its slot (format 5); the
// server's listing sums them exactly, and a new claim shows none of them.
TEST_F(BrokerTest, LocalIoCountedByManyThreadsSumsExactly) {
  auto server = PublishedServer();
  auto client = Client();
  ASSERT_TRUE(server && client);
  auto uuid = client->UuidBegin();
  ASSERT_TRUE(uuid.ok()) << uuid.status();
  ASSERT_TRUE(server->BindUuid(*uuid, "127.0.0.1:1", 1));
  auto binding = client->UuidEnd(*uuid);
  ASSERT_TRUE(binding.ok()) << binding.status();
  constexpr int kThreads = 2 * static_cast<int>(format::kIoShards) + 3, kEach = 1000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        client->CountLocalIo(*binding, LocalIoKind::kRead, 4096);
        client->CountLocalIo(*binding, LocalIoKind::kWrite, 100);
      }
      client->CountLocalIo(*binding, LocalIoKind::kCommit, 0);
    });
  }
  for (std::thread& t : threads) t.join();
  auto slots = server->ListSlots();
  ASSERT_TRUE(slots.ok()) << slots.status();
  ASSERT_EQ(slots->size(), 1u);
  const auto& io = slots->front().local_io;
  EXPECT_EQ(io[0].calls, uint64_t{kThreads} * kEach);
  EXPECT_EQ(io[0].bytes, uint64_t{kThreads} * kEach * 4096);
  EXPECT_EQ(io[1].calls, uint64_t{kThreads} * kEach);
  EXPECT_EQ(io[1].bytes, uint64_t{kThreads} * kEach * 100);
  EXPECT_EQ(io[2].calls, uint64_t{kThreads});
  // Released, and a new uuid claimed (whichever slot it takes): it shows no counts.
  client->UuidRelease(*uuid);
  auto again = client->UuidBegin();
  ASSERT_TRUE(again.ok()) << again.status();
  slots = server->ListSlots();
  ASSERT_TRUE(slots.ok()) << slots.status();
  for (const SlotInfo& s : *slots) {
    for (const LocalIoCount& c : s.local_io) EXPECT_EQ(c.calls + c.bytes, 0u);
  }
  server->Withdraw();
}

// Many threads of clients and the server at once: claims, binds, lookups, releases,
// reaping and listing (the threaded paths TSan checks).
TEST_F(BrokerTest, ConcurrentClientsAndServer) {
  auto server = PublishedServer();
  auto client = Client();
  ASSERT_TRUE(server && client);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        auto uuid = client->UuidBegin();
        if (!uuid.ok()) {
          ++failures;
          continue;
        }
        if (!server->BindUuid(*uuid, "127.0.0.1:1", 1)) ++failures;
        auto binding = client->UuidEnd(*uuid);
        if (!binding.ok()) ++failures;
        else client->CountLocalIo(*binding, LocalIoKind::kRead, 4096);
        if (!server->LookupBound(*uuid).has_value()) ++failures;
        client->UuidRelease(*uuid);
      }
    });
  }
  std::thread observer([&] {
    while (!stop.load()) {
      (void)server->ListBound();
      (void)server->ReapDeadClients();
      (void)server->ListSlots();
      (void)server->ReadServer();
    }
  });
  for (std::thread& t : threads) t.join();
  stop = true;
  observer.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(server->ListBound().empty());
  server->Withdraw();
}

// ---- Bad files (the server's own, corrupted by its uid or a crash) ----

TEST_F(BrokerTest, BadServerFileIsAnErrorAndAServerReplacesIt) {
  ASSERT_TRUE(PublishedServer());  // left behind live; this process is its "server"
  struct stat st;
  ASSERT_EQ(::stat(SegmentPath().c_str(), &st), 0);
  for (off_t size : {st.st_size / 2, off_t{0}, off_t{7}, st.st_size - 1, st.st_size * 2}) {
    ASSERT_EQ(::truncate(SegmentPath().c_str(), size), 0);
    EXPECT_EQ(BrokerClient::Open(dir_).status().code(),
              absl::StatusCode::kFailedPrecondition)
        << size;
  }
  auto server = PublishedServer();  // replaces the bad file
  ASSERT_TRUE(server);
  ASSERT_TRUE(Client());

  UniqueFd fd(::open(SegmentPath().c_str(), O_RDWR));
  ASSERT_TRUE(fd);
  uint64_t garbage = 0x0123456789abcdefULL;
  ASSERT_EQ(::pwrite(fd.get(), &garbage, sizeof garbage, 0), 8);
  EXPECT_EQ(BrokerClient::Open(dir_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  server.reset();  // unmapped, its record left live
  server = PublishedServer();  // a bad header: replaced
  ASSERT_TRUE(server);
  fd.reset(::open(SegmentPath().c_str(), O_RDWR));
  uint32_t version = kFormatVersion + 1;
  ASSERT_EQ(::pwrite(fd.get(), &version, sizeof version, 8), 4);  // after the magic
  EXPECT_EQ(BrokerClient::Open(dir_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  uint32_t slot_count = 7;
  version = kFormatVersion;
  ASSERT_EQ(::pwrite(fd.get(), &version, sizeof version, 8), 4);
  ASSERT_EQ(::pwrite(fd.get(), &slot_count, sizeof slot_count, 12), 4);
  EXPECT_EQ(BrokerClient::Open(dir_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  server->Withdraw();
}

TEST_F(BrokerTest, SlotFileOfAnotherRecordIsRefused) {
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  // Same bytes, another inode: not the file the record names.
  ASSERT_EQ(::system(absl::StrCat("cp -p ", SlotsPath(), " ", SlotsPath(), ".copy && mv ",
                                  SlotsPath(), ".copy ", SlotsPath())
                         .c_str()),
            0);
  EXPECT_EQ(BrokerClient::Open(dir_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_EQ(::unlink(SlotsPath().c_str()), 0);
  EXPECT_EQ(BrokerClient::Open(dir_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // A withdrawn record with a slot file that is not its own: a start in progress, as
  // far as a client can tell; it looks a few times, then gives up.
  server->Withdraw();
  EXPECT_EQ(BrokerClient::Open(dir_).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// Random bytes over the record and the binding table of the server's file (everything
// after the 64-byte header): every client operation returns, with a value or an error,
// and never crashes; the next server start replaces the file.
TEST_F(BrokerTest, ScribbledServerFileNeverCrashesAClient) {
  constexpr off_t kAfterHeader = 64;
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  auto client = Client();
  ASSERT_TRUE(client);
  auto bound = client->UuidBegin();
  ASSERT_TRUE(bound.ok());
  ASSERT_TRUE(server->BindUuid(*bound, "127.0.0.1", 1));
  struct stat st;
  ASSERT_EQ(::stat(SegmentPath().c_str(), &st), 0);
  UniqueFd fd(::open(SegmentPath().c_str(), O_RDWR));
  ASSERT_TRUE(fd);
  std::mt19937_64 rng(20240829 + ::testing::UnitTest::GetInstance()->random_seed());
  for (int round = 0; round < 40; ++round) {
    const int writes = round % 2 == 0 ? 64 : 4;
    for (int w = 0; w < writes; ++w) {
      off_t offset = kAfterHeader + static_cast<off_t>(rng() % (st.st_size - kAfterHeader));
      size_t len = round % 2 == 0 ? 1 + rng() % 16 : 1 + rng() % 4096;
      len = std::min<size_t>(len, st.st_size - offset);
      std::string junk(len, '\0');
      for (char& c : junk) c = static_cast<char>(rng());
      ASSERT_EQ(::pwrite(fd.get(), junk.data(), len, offset), static_cast<ssize_t>(len));
    }
    auto c = BrokerClient::Open(dir_);
    ASSERT_TRUE(c.ok()) << c.status();  // the header is intact
    BrokerClient& b = **c;
    (void)b.LoadGeneration();
    (void)b.ServerAlive();
    (void)b.ReadServer();
    (void)b.ListSlots();
    (void)b.UuidEnd(*bound);
    auto uuid = b.UuidBegin();
    if (uuid.ok()) {
      (void)b.UuidEnd(*uuid);
      b.UuidRelease(*uuid);
    }
  }
  // Flood the record with non-NUL bytes: the socket path has no terminator.
  std::string ff(600, '\xff');
  ASSERT_EQ(::pwrite(fd.get(), ff.data(), ff.size(), kAfterHeader), 600);
  auto c = BrokerClient::Open(dir_);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE((*c)->ReadServer().ok());
  // A new server start replaces whatever the scribbling left (its record state is
  // garbage: not live).
  server.reset();
  auto next = PublishedServer();
  ASSERT_TRUE(next);
  auto info = next->ReadServer();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->socket_path, kSocket);
  next->Withdraw();
}

}  // namespace
}  // namespace localnfs::broker
