#include "common/broker.h"

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"

namespace localnfs::broker {
namespace {

constexpr char kSocket[] = "/run/localnfs-test/localnfsd.sock";

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
      ::close(down[1]);
      ::close(up[0]);
      ::_exit(body(down[0], up[1]));
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
    char templ[] = "/tmp/broker_test.XXXXXX";
    ASSERT_NE(::mkdtemp(templ), nullptr);
    base_ = templ;
    dir_ = base_ + "/rt";  // does not exist yet: CreateForServer makes it
  }
  void TearDown() override {
    ::nftw(
        base_.c_str(),
        [](const char* path, const struct stat*, int, struct FTW*) {
          return ::remove(path);
        },
        16, FTW_DEPTH | FTW_PHYS);
  }

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
  std::string SegmentPath() const { return dir_ + "/broker"; }

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

  const uint64_t generation = server->LoadGeneration();
  server->Withdraw();
  info = server->ReadServer();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, RecordState::kWithdrawn);
  EXPECT_FALSE(info->alive);
  EXPECT_GT(server->LoadGeneration(), generation);
  EXPECT_FALSE(server->ServerAlive());
  EXPECT_FALSE(server->PublishedInstance().has_value());

  // A restart (new publication) gets a new instance id; the generation is not reset.
  ASSERT_TRUE(server->PublishServer({.socket_path = kSocket}).ok());
  auto again = server->ReadServer();
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->instance_id, info->instance_id);
  EXPECT_GE(again->generation, info->generation);
  server->Withdraw();
}

TEST_F(BrokerTest, PublishRejectsBadSocketPath) {
  auto server = Server();
  ASSERT_TRUE(server);
  EXPECT_EQ(server->PublishServer({.socket_path = ""}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server->PublishServer({.socket_path = std::string(kMaxSocketPath, 'x')}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(server->PublishedInstance().has_value());
}

TEST_F(BrokerTest, SegmentIs0660WhateverTheUmaskAndDirIs0700) {
  mode_t old = ::umask(077);
  auto server = Server();
  ::umask(old);
  ASSERT_TRUE(server);
  struct stat st;
  ASSERT_EQ(::stat(SegmentPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);

  // A server start repairs a loosened mode; a client refuses a world-writable segment.
  ASSERT_EQ(::chmod(SegmentPath().c_str(), 0666), 0);
  EXPECT_EQ(Broker::OpenForClient(dir_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Server());
  ASSERT_EQ(::stat(SegmentPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_TRUE(Broker::OpenForClient(dir_).ok());
}

TEST_F(BrokerTest, MissingSegmentMeansLocalioOff) {
  EXPECT_EQ(Broker::OpenForClient(dir_).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Broker::OpenForClient("/nonexistent/localnfs").status().code(),
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
  // The first server's record is untouched.
  auto info = server->ReadServer();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->pid, ::getpid());
  EXPECT_EQ(info->socket_path, kSocket);
  server->Withdraw();
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
  auto client = Broker::OpenForClient(dir_);
  ASSERT_TRUE(client.ok()) << client.status();
  auto uuid = (*client)->UuidBegin();
  ASSERT_TRUE(uuid.ok());
  ASSERT_TRUE(Send(server.out(), *uuid));
  ASSERT_TRUE(Receive(server.in(), &byte));
  auto binding = (*client)->UuidEnd(*uuid);
  ASSERT_TRUE(binding.ok()) << binding.status();
  EXPECT_EQ(binding->socket_path, kSocket);
  EXPECT_EQ(binding->export_id, 3u);
  EXPECT_EQ((*client)->LoadGeneration(), binding->generation);
  ASSERT_TRUE(Send(server.out(), byte));
  EXPECT_EQ(server.Wait(), 0);

  // Dead whatever its count: still "live" with one reference, but not alive.
  auto info = (*client)->ReadServer();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, RecordState::kLive);
  EXPECT_EQ(info->refcount, 1u);
  EXPECT_FALSE(info->alive);
  EXPECT_FALSE((*client)->ServerAlive());

  auto next = PublishedServer();
  ASSERT_TRUE(next);
  EXPECT_NE((*client)->LoadGeneration(), binding->generation);
  EXPECT_EQ((*client)->UuidEnd(*uuid).status().code(), absl::StatusCode::kNotFound);
  auto slots = (*client)->ListSlots();
  ASSERT_TRUE(slots.ok());
  EXPECT_TRUE(slots->empty());
  info = next->ReadServer();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->pid, ::getpid());
  EXPECT_EQ(info->refcount, 0u);
  EXPECT_TRUE(info->alive);
  (*client)->UuidRelease(*uuid);  // the unmount after the fact is harmless
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
    auto broker = Broker::OpenForClient(dir_);
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
    (*broker)->UuidRelease(*uuid);
    if (!Send(out, r)) return 17;
    return 0;
  });
  Uuid uuid;
  ASSERT_TRUE(Receive(client.in(), &uuid));
  EXPECT_FALSE(server->LookupBound(uuid).has_value());  // pending is not bound
  ASSERT_TRUE(server->BindUuid(uuid, "192.0.2.7", 42));
  auto bound = server->LookupBound(uuid);
  ASSERT_TRUE(bound.has_value());
  EXPECT_EQ(bound->owner_pid, client.pid());
  EXPECT_EQ(bound->owner_start_time, ProcessStartTime(client.pid()));
  EXPECT_EQ(bound->domain, "192.0.2.7");
  EXPECT_EQ(bound->export_id, 42u);
  EXPECT_EQ(server->ListBound().size(), 1u);
  EXPECT_EQ(server->ReadServer()->refcount, 1u);
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
  ASSERT_TRUE(server);
  auto pending = server->UuidBegin();
  ASSERT_TRUE(pending.ok());
  Uuid unknown = *pending;
  unknown[0] ^= 0xff;
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
  EXPECT_EQ(server->UuidEnd(*pending).status().code(), absl::StatusCode::kNotFound);
  server->UuidRelease(*pending);
  EXPECT_TRUE(server->ListSlots()->empty());
  server->Withdraw();
}

TEST_F(BrokerTest, UnpublishedServerBindsNothing) {
  auto server = Server();
  ASSERT_TRUE(server);
  auto uuid = server->UuidBegin();
  ASSERT_TRUE(uuid.ok());
  EXPECT_FALSE(server->BindUuid(*uuid, "127.0.0.1", 1));
  EXPECT_FALSE(server->ServerAlive());
}

TEST_F(BrokerTest, UuidsAreVersion4AndPrintable) {
  auto server = Server();
  ASSERT_TRUE(server);
  auto a = server->UuidBegin();
  auto b = server->UuidBegin();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_EQ((*a)[6] >> 4, 4);
  EXPECT_EQ((*a)[8] & 0xc0, 0x80);
  Uuid fixed{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
             0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
  EXPECT_EQ(UuidToString(fixed), "00112233-4455-6677-8899-aabbccddeeff");
}

TEST_F(BrokerTest, FullTableIsResourceExhausted) {
  auto server = Server();
  ASSERT_TRUE(server);
  for (size_t i = 0; i < kUuidSlots; ++i) ASSERT_TRUE(server->UuidBegin().ok()) << i;
  EXPECT_EQ(server->UuidBegin().status().code(), absl::StatusCode::kResourceExhausted);
}

// ---- Invalidation ----

TEST_F(BrokerTest, GenerationBumpIsSeenByAClientMapping) {
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  auto uuid = server->UuidBegin();
  ASSERT_TRUE(uuid.ok());
  ASSERT_TRUE(server->BindUuid(*uuid, "127.0.0.1", 1));
  Child client([&](int in, int out) {
    auto broker = Broker::OpenForClient(dir_);
    if (!broker.ok()) return 10;
    uint64_t before = (*broker)->LoadGeneration();
    if (!Send(out, before)) return 11;
    char go;
    if (!Receive(in, &go)) return 12;
    uint64_t after = (*broker)->LoadGeneration();
    return Send(out, after) ? 0 : 13;
  });
  uint64_t before = 0, after = 0;
  ASSERT_TRUE(Receive(client.in(), &before));
  EXPECT_EQ(before, server->LoadGeneration());
  server->InvalidateClients();
  ASSERT_TRUE(Send(client.out(), 'g'));
  ASSERT_TRUE(Receive(client.in(), &after));
  EXPECT_EQ(client.Wait(), 0);
  EXPECT_EQ(after, before + 1);
  // Invalidation unbound the uuid and dropped its reference.
  EXPECT_FALSE(server->LookupBound(*uuid).has_value());
  EXPECT_EQ(server->ReadServer()->refcount, 0u);
  EXPECT_EQ(server->UuidEnd(*uuid).status().code(), absl::StatusCode::kNotFound);
  server->Withdraw();
}

TEST_F(BrokerTest, UnbindUuidRevokesOneBinding) {
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  auto a = server->UuidBegin();
  auto b = server->UuidBegin();
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
  server->Withdraw();
  EXPECT_FALSE(server->LookupBound(*b).has_value());
  EXPECT_EQ(server->ReadServer()->refcount, 0u);
  EXPECT_TRUE(server->ListSlots()->empty());
}

// ---- Process death ----

TEST_F(BrokerTest, KilledClientIsReaped) {
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  Child client([&](int, int out) {
    auto broker = Broker::OpenForClient(dir_);
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
  EXPECT_EQ(server->ReapDeadClients(), 2);
  EXPECT_TRUE(server->ListSlots()->empty());
  EXPECT_TRUE(server->ListBound().empty());
  EXPECT_EQ(server->ReadServer()->refcount, 0u);
  server->Withdraw();
}

TEST_F(BrokerTest, BindingAPendingUuidOfADeadClientFails) {
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  Child client([&](int, int out) {
    auto broker = Broker::OpenForClient(dir_);
    if (!broker.ok()) return 10;
    auto uuid = (*broker)->UuidBegin();
    return uuid.ok() && Send(out, *uuid) ? 0 : 11;
  });
  Uuid uuid;
  ASSERT_TRUE(Receive(client.in(), &uuid));
  EXPECT_EQ(client.Wait(), 0);
  EXPECT_FALSE(server->BindUuid(uuid, "127.0.0.1", 1));
  EXPECT_TRUE(server->ListSlots()->empty());
  server->Withdraw();
}

TEST_F(BrokerTest, HolderKilledInsideTheMutexDoesNotDeadlockTheNextLocker) {
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  Child holder([&](int, int out) {
    auto broker = Broker::OpenForClient(dir_);
    if (!broker.ok()) return 10;
    auto uuid = (*broker)->ClaimSlotAndHoldLockForTesting();
    if (!uuid.ok() || !Send(out, *uuid)) return 11;
    for (;;) ::pause();
  });
  Uuid half_claimed;
  ASSERT_TRUE(Receive(holder.in(), &half_claimed));

  // A waiter blocked on the mutex when the holder dies gets it (EOWNERDEAD), repairs
  // the half-done claim and carries on — well within the lock timeout.
  absl::StatusOr<Uuid> waited = absl::UnknownError("not run");
  auto start = std::chrono::steady_clock::now();
  std::thread waiter([&] { waited = server->UuidBegin(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  holder.Kill();
  waiter.join();
  EXPECT_EQ(holder.Wait(), 128 + SIGKILL);
  EXPECT_LT(std::chrono::steady_clock::now() - start, kLockTimeout);
  ASSERT_TRUE(waited.ok()) << waited.status();

  auto slots = server->ListSlots();
  ASSERT_TRUE(slots.ok()) << slots.status();
  ASSERT_EQ(slots->size(), 1u);  // the half-claimed slot was freed
  EXPECT_EQ((*slots)[0].uuid, *waited);
  EXPECT_NE((*slots)[0].uuid, half_claimed);
  // And the mutex is consistent again: plain operations keep working.
  EXPECT_TRUE(server->UuidBegin().ok());
  EXPECT_TRUE(server->ServerAlive());
  server->Withdraw();
}

TEST(ProcessLiveness, StartTimeAndZombies) {
  const pid_t self = ::getpid();
  const uint64_t start = ProcessStartTime(self);
  ASSERT_NE(start, 0u);
  EXPECT_TRUE(ProcessAlive(self, start));
  EXPECT_FALSE(ProcessAlive(self, start + 1));  // same pid, another process: reused
  EXPECT_FALSE(ProcessAlive(0, start));
  EXPECT_FALSE(ProcessAlive(-1, start));

  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  const uint64_t child_start = ProcessStartTime(child);  // may already be a zombie
  // Wait until it is a zombie (exited, not yet reaped): dead although the pid exists.
  for (int i = 0; i < 200 && ProcessAlive(child, child_start); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_FALSE(ProcessAlive(child, child_start));
  int status;
  ::waitpid(child, &status, 0);
  EXPECT_FALSE(ProcessAlive(child, child_start));
  EXPECT_EQ(ProcessStartTime(child), 0u);
}

// ---- Bad segments ----

TEST_F(BrokerTest, TruncatedSegmentIsAnErrorAndAServerReplacesIt) {
  ASSERT_TRUE(Server());  // created, then unmapped
  struct stat st;
  ASSERT_EQ(::stat(SegmentPath().c_str(), &st), 0);
  for (off_t size : {st.st_size / 2, off_t{0}, off_t{7}, st.st_size - 1}) {
    ASSERT_EQ(::truncate(SegmentPath().c_str(), size), 0);
    auto client = Broker::OpenForClient(dir_);
    EXPECT_EQ(client.status().code(), absl::StatusCode::kFailedPrecondition) << size;
  }
  ASSERT_EQ(::truncate(SegmentPath().c_str(), st.st_size * 2), 0);
  EXPECT_EQ(Broker::OpenForClient(dir_).status().code(),
            absl::StatusCode::kFailedPrecondition);

  auto server = PublishedServer();  // replaces the bad segment
  ASSERT_TRUE(server);
  auto client = Broker::OpenForClient(dir_);
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_TRUE((*client)->ServerAlive());
  ASSERT_EQ(::stat(SegmentPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  server->Withdraw();
}

TEST_F(BrokerTest, GarbageHeaderIsAnError) {
  ASSERT_TRUE(Server());
  UniqueFd fd(::open(SegmentPath().c_str(), O_RDWR));
  ASSERT_TRUE(fd);
  uint64_t garbage = 0x0123456789abcdefULL;
  ASSERT_EQ(::pwrite(fd.get(), &garbage, sizeof garbage, 0), 8);
  EXPECT_EQ(Broker::OpenForClient(dir_).status().code(),
            absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE(Server());  // replaced
  ASSERT_TRUE(Broker::OpenForClient(dir_).ok());
  fd.reset(::open(SegmentPath().c_str(), O_RDWR));
  uint32_t version = kFormatVersion + 1;
  ASSERT_EQ(::pwrite(fd.get(), &version, sizeof version, 8), 4);  // after the magic
  EXPECT_EQ(Broker::OpenForClient(dir_).status().code(),
            absl::StatusCode::kFailedPrecondition);
  uint32_t slot_count = 7;
  version = kFormatVersion;
  ASSERT_EQ(::pwrite(fd.get(), &version, sizeof version, 8), 4);
  ASSERT_EQ(::pwrite(fd.get(), &slot_count, sizeof slot_count, 12), 4);
  EXPECT_EQ(Broker::OpenForClient(dir_).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// Random bytes over the record and the uuid table (everything after the 128-byte header
// and mutex): every operation returns, with a value or an error, and never crashes.
TEST_F(BrokerTest, ScribbledSegmentNeverCrashes) {
  constexpr off_t kAfterMutex = 128;
  auto server = PublishedServer();
  ASSERT_TRUE(server);
  auto bound = server->UuidBegin();
  ASSERT_TRUE(bound.ok());
  ASSERT_TRUE(server->BindUuid(*bound, "127.0.0.1", 1));
  struct stat st;
  ASSERT_EQ(::stat(SegmentPath().c_str(), &st), 0);
  UniqueFd fd(::open(SegmentPath().c_str(), O_RDWR));
  ASSERT_TRUE(fd);
  // Fixed by default; --gtest_random_seed=N explores other scribbles reproducibly.
  std::mt19937_64 rng(20240829 + ::testing::UnitTest::GetInstance()->random_seed());
  for (int round = 0; round < 40; ++round) {
    // Half the rounds scribble a few spots, half flood whole regions (unterminated
    // strings, impossible states, absurd pids).
    const int writes = round % 2 == 0 ? 64 : 4;
    for (int w = 0; w < writes; ++w) {
      off_t offset = kAfterMutex + static_cast<off_t>(rng() % (st.st_size - kAfterMutex));
      size_t len = round % 2 == 0 ? 1 + rng() % 16 : 1 + rng() % 4096;
      len = std::min<size_t>(len, st.st_size - offset);
      std::string junk(len, '\0');
      for (char& c : junk) c = static_cast<char>(rng());
      ASSERT_EQ(::pwrite(fd.get(), junk.data(), len, offset), static_cast<ssize_t>(len));
    }
    auto client = Broker::OpenForClient(dir_);
    ASSERT_TRUE(client.ok()) << client.status();  // the header is intact
    Broker& c = **client;
    (void)c.LoadGeneration();
    (void)c.ServerAlive();
    (void)c.ReadServer();
    (void)c.ListSlots();
    (void)c.UuidEnd(*bound);
    auto uuid = c.UuidBegin();
    if (uuid.ok()) {
      (void)server->BindUuid(*uuid, "127.0.0.1", 1);
      (void)c.UuidEnd(*uuid);
      (void)server->LookupBound(*uuid);
      c.UuidRelease(*uuid);
    }
    (void)server->ListBound();
    (void)server->LookupBound(*bound);
    (void)server->ReapDeadClients();
  }
  // Flood the record with non-NUL bytes: the socket path has no terminator.
  std::string ff(600, '\xff');
  ASSERT_EQ(::pwrite(fd.get(), ff.data(), ff.size(), kAfterMutex), 600);
  auto client = Broker::OpenForClient(dir_);
  ASSERT_TRUE(client.ok());
  EXPECT_FALSE((*client)->ReadServer().ok());
  // A new server start repairs whatever state the scribbling left.
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
