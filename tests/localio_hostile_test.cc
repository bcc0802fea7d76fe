// tests/localio_hostile_test.cc — hostile LOCALIO clients against a real localnfsd
// (DESIGN.md "Trust boundaries"; common/localio/broker_format.h "What a malicious
// LOCALIO client can and cannot do").
//
// The attacker is a real process of another user (uid 1000) in the runtime dir's group
// (the documented setup for clients of other users: the runtime dir 2750 with their
// group). It does to every file of the runtime dir whatever its permissions let it do,
// and stays alive holding what it took:
//   PoisonedLock  writes a live foreign owner (its own tid) into the 12 bytes of the
//                 process-shared mutex that sat at byte 64 of the broker segment;
//   HeldLocks     takes every lock it can: flock, an OFD lock, and the process-shared
//                 mutex at byte 64 of each file it may map for writing;
//   Scribbled     random bytes over every byte it may write;
//   Truncated     cuts every file it may write to 0 bytes.
// Then, for each, with real sockets against the real server:
//   - another client's UUID_IS_LOCAL is answered at once (< 1 s), and that client still
//     completes its handshake — unless the attacker truncated the slot file all clients
//     share, when it falls back to RPC at once;
//   - 40 UUID_IS_LOCAL calls do not delay another client's MNT, CREATE, WRITE, COMMIT,
//     READDIRPLUS (each < 1 s);
//   - the server did not die (no SIGBUS); SIGTERM ends it in < 2 s with status 0;
//   - a new localnfsd start on the same runtime dir succeeds, and a fresh client gets
//     LOCALIO from it.
// And the slot field a client writes for the server to trust: the SHA-256 of its HELLO
// secret (broker_format.h). The attacker writes its own hash (whose secret it knows)
// into a victim's slot
//   - before the victim's UUID_IS_LOCAL: the server binds nothing (the uuid is made from
//     the victim's hash), so the attacker's HELLO with the victim's uuid and its own
//     secret finds no binding; the victim is denied LOCALIO (falls back to RPC), which a
//     slot writer can always do — it does not gain the victim's binding;
//   - after it: nothing changes (the server kept the hash it bound with): the attacker's
//     HELLO is refused, the victim's connection and new HELLOs keep working.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/localio/broker_client.h"
#include "common/localio/socket_client.h"
#include "tests/support/child.h"
#include "gtest/gtest.h"
#include "tests/support/localnfsd.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uid_t kAttackerUid = 1000;
constexpr gid_t kGroup = 1000;
constexpr uint32_t kLocalioProg = 400122;
constexpr auto kPrompt = std::chrono::seconds(1);

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

enum class Attack { kPoisonedLock, kHeldLocks, kScribbled, kTruncated };

// In the attacker (after fork, as uid 1000): the attack on every regular file of `dir`.
// Returns one line per file saying what it could do. Every fd, lock and mapping is
// kept: the process lives on holding them.
std::string RunAttack(const std::string& dir, Attack attack) {
  std::string report;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return "opendir failed\n";
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) names.push_back(e->d_name);
  closedir(d);
  std::mt19937_64 rng(20240915);
  for (const std::string& name : names) {
    const std::string path = dir + "/" + name;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    int fd = open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    const bool writable = fd >= 0;
    if (!writable) fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    report += name + (fd < 0 ? ": no access" : writable ? ": rw" : ": ro");
    if (fd < 0) {
      report += "\n";
      continue;
    }
    const size_t size = static_cast<size_t>(st.st_size);
    switch (attack) {
      case Attack::kPoisonedLock:
        if (writable && size >= 128) {
          // __lock, __count, __owner of a glibc pthread_mutex_t: held by a live thread.
          const int32_t words[3] = {static_cast<int32_t>(syscall(SYS_gettid)), 1,
                                    static_cast<int32_t>(syscall(SYS_gettid))};
          if (pwrite(fd, words, sizeof words, 64) == sizeof words) report += ", poisoned";
        }
        break;
      case Attack::kHeldLocks: {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) report += ", flock";
        struct flock ofd {};
        ofd.l_type = writable ? F_WRLCK : F_RDLCK;
        ofd.l_whence = SEEK_SET;
        if (fcntl(fd, F_OFD_SETLK, &ofd) == 0) report += ", ofd lock";
        if (writable && size >= 128) {
          void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
          if (p != MAP_FAILED &&
              pthread_mutex_trylock(reinterpret_cast<pthread_mutex_t*>(
                  static_cast<char*>(p) + 64)) == 0)
            report += ", mutex";
        }
        break;
      }
      case Attack::kScribbled:
        if (writable) {
          std::string junk(size, '\0');
          for (char& c : junk) c = static_cast<char>(rng());
          if (pwrite(fd, junk.data(), junk.size(), 0) == static_cast<ssize_t>(junk.size()))
            report += ", scribbled";
        }
        break;
      case Attack::kTruncated:
        if (writable && ftruncate(fd, 0) == 0) report += ", truncated";
        break;
    }
    report += "\n";
  }
  return report;
}

// The attacker process: forks, becomes uid/gid 1000 in group 1000, attacks, reports on
// a pipe and stays alive until the test ends (killed by the destructor, or with the
// test binary through PR_SET_PDEATHSIG).
class Attacker {
 public:
  Attacker(const std::string& runtime_dir, Attack attack) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      close(p[0]);
      const gid_t groups[1] = {kGroup};
      if (setgroups(1, groups) != 0 || setresgid(kGroup, kGroup, kGroup) != 0 ||
          setresuid(kAttackerUid, kAttackerUid, kAttackerUid) != 0)
        _exit(100);
      std::string report = RunAttack(runtime_dir, attack) + "done\n";
      if (write(p[1], report.data(), report.size()) < 0) _exit(101);
      close(p[1]);
      for (;;) pause();
    }
    close(p[1]);
    char buf[4096];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof buf)) > 0) {
      report_.append(buf, static_cast<size_t>(n));
      if (report_.find("done\n") != std::string::npos) break;
    }
    close(p[0]);
  }
  ~Attacker() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // True when it attacked and is still alive.
  bool alive() const { return pid_ > 0 && kill(pid_, 0) == 0; }
  bool done() const { return report_.find("done\n") != std::string::npos; }
  const std::string& report() const { return report_; }

 private:
  pid_t pid_ = -1;
  std::string report_;
};

std::string UuidArgs(const broker::Uuid& uuid) {
  return XdrOut().Fixed(std::string(reinterpret_cast<const char*>(uuid.data()), uuid.size()))
      .bytes();
}

// UUID_IS_LOCAL on its own connection; the time to the (void) reply, or a failure.
::testing::AssertionResult TimedUuidIsLocal(int port, const broker::Uuid& uuid,
                                            Clock::duration* took) {
  WireConn c;
  if (!c.Connect(port)) return ::testing::AssertionFailure() << "connect";
  const auto t0 = Clock::now();
  RpcReply r = c.Call(kLocalioProg, 1, 1, UuidArgs(uuid), nullptr, 2, 20000);
  *took = Clock::now() - t0;
  if (!r.ok || r.reply_stat != 0 || r.accept_stat != kSuccess || !r.results.empty())
    return ::testing::AssertionFailure() << "UUID_IS_LOCAL reply: " << r.error;
  return ::testing::AssertionSuccess();
}

// Another client's whole handshake (uuid_begin, UUID_IS_LOCAL, uuid_end); its uuid is
// released before returning. *took is the time of all of it.
absl::Status Handshake(const std::string& runtime_dir, int port, Clock::duration* took) {
  const auto t0 = Clock::now();
  absl::Status result = [&]() -> absl::Status {
    absl::StatusOr<std::unique_ptr<broker::BrokerClient>> b =
        broker::BrokerClient::Open(runtime_dir);
    if (!b.ok()) return b.status();
    absl::StatusOr<broker::Uuid> uuid = (*b)->UuidBegin();
    if (!uuid.ok()) return uuid.status();
    Clock::duration call;
    if (!TimedUuidIsLocal(port, *uuid, &call)) return absl::UnavailableError("UUID_IS_LOCAL");
    absl::StatusOr<broker::Binding> binding = (*b)->UuidEnd(*uuid);
    (*b)->UuidRelease(*uuid);
    return binding.status();
  }();
  *took = Clock::now() - t0;
  return result;
}

class LocalioHostileTest : public ::testing::TestWithParam<Attack> {
 protected:
  void SetUp() override {
    if (LocalnfsdPath().empty()) GTEST_SKIP() << "LOCALNFSD not set";
    if (geteuid() != 0) GTEST_SKIP() << "needs root to make a uid " << kAttackerUid << " client";
    ASSERT_TRUE(WriteFile(exp_.Sub("seed"), "x"));
    server_.emplace(ServerOptions{.args = {"--export", exp_.path() + ":rw,no_root_squash"}});
    // The documented setup for clients of other users: the runtime dir belongs to
    // their group, setgid so that every file the server makes there does too.
    ASSERT_EQ(chown(server_->runtime_dir().c_str(), 0, kGroup), 0);
    ASSERT_EQ(chmod(server_->runtime_dir().c_str(), 02750), 0);
    ASSERT_TRUE(server_->Start());
  }

  // 40 UUID_IS_LOCAL calls on 40 connections, and meanwhile another client's MNT,
  // CREATE, WRITE, COMMIT and READDIRPLUS: every one of them must answer promptly.
  void ExpectNfsNotDelayedByUuidIsLocal() {
    std::atomic<int64_t> slowest_uuid_ns{0};
    std::atomic<int> uuid_failures{0};
    std::vector<std::thread> callers;
    for (int i = 0; i < 40; ++i) {
      callers.emplace_back([&, i] {
        broker::Uuid u{};
        u.fill(static_cast<uint8_t>(i));
        Clock::duration took{};
        if (!TimedUuidIsLocal(server_->nfs_port(), u, &took)) ++uuid_failures;
        const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(took).count();
        int64_t seen = slowest_uuid_ns.load();
        while (ns > seen && !slowest_uuid_ns.compare_exchange_weak(seen, ns)) {
        }
      });
    }
    WireConn mount_conn, nfs_conn;
    ASSERT_TRUE(mount_conn.Connect(server_->mount_port()));
    ASSERT_TRUE(nfs_conn.Connect(server_->nfs_port()));
    Nfs3Wire mnt(&mount_conn), nfs(&nfs_conn);
    std::string root, fh;
    std::vector<std::pair<const char*, Clock::duration>> took;
    auto timed = [&](const char* name, auto call) {
      const auto t0 = Clock::now();
      EXPECT_EQ(call(), kNfs3Ok) << name;
      took.emplace_back(name, Clock::now() - t0);
    };
    timed("MNT", [&] { return mnt.Mount(exp_.path(), &root); });
    timed("CREATE", [&] { return nfs.Create(root, "victim", 0644, &fh); });
    timed("WRITE", [&] { return nfs.Write(fh, 0, std::string(65536, 'v'), /*UNSTABLE*/ 0); });
    timed("COMMIT", [&] { return nfs.Commit(fh); });
    timed("READDIRPLUS", [&] {
      XdrOut args;
      args.Opaque(root).U64(0).Fixed(std::string(8, '\0')).U32(4096).U32(65536);
      RpcReply r = nfs_conn.Call(kNfsProg, 3, NFS3_READDIRPLUS, args.bytes(), nullptr);
      uint32_t status = 0xffffffff;
      XdrIn in(r.results);
      return r.ok && in.U32(&status) ? status : 0xffffffffu;
    });
    for (std::thread& t : callers) t.join();
    EXPECT_EQ(uuid_failures.load(), 0);
    const auto slowest_uuid = std::chrono::nanoseconds(slowest_uuid_ns.load());
    EXPECT_LT(slowest_uuid, kPrompt);
    std::string figures = absl::StrCat("slowest of 40 UUID_IS_LOCAL ",
                                       Seconds(slowest_uuid) * 1000, " ms");
    for (const auto& [name, d] : took) {
      EXPECT_LT(d, kPrompt) << name;
      absl::StrAppend(&figures, ", ", name, " ", Seconds(d) * 1000, " ms");
    }
    RecordProperty("nfs_latencies", figures);
    std::cerr << figures << "\n";
  }

  void CheckServerUnharmed(Attack attack) {
    Attacker attacker(server_->runtime_dir(), attack);
    ASSERT_TRUE(attacker.done()) << attacker.report();
    std::cerr << "attacker (uid " << kAttackerUid << "):\n" << attacker.report();

    // Another client: its UUID_IS_LOCAL answers at once; its handshake completes (a
    // scribbled slot is reclaimed), or, when the attacker truncated the slot file all
    // clients share, fails at once.
    broker::Uuid unknown{};
    unknown.fill(0x5a);
    Clock::duration took{};
    ASSERT_TRUE(TimedUuidIsLocal(server_->nfs_port(), unknown, &took));
    EXPECT_LT(took, kPrompt);
    std::cerr << "UUID_IS_LOCAL of another client: " << Seconds(took) * 1000 << " ms\n";
    absl::Status hs = Handshake(server_->runtime_dir(), server_->nfs_port(), &took);
    EXPECT_LT(took, kPrompt) << hs;
    if (attack != Attack::kTruncated) {
      EXPECT_TRUE(hs.ok()) << hs;
    }
    std::cerr << "handshake of another client: " << hs << " in " << Seconds(took) * 1000
              << " ms\n";

    ExpectNfsNotDelayedByUuidIsLocal();

    // Still alive (a SIGBUS would have ended it), and SIGTERM is prompt.
    EXPECT_EQ(server_->WaitExit(std::chrono::milliseconds(0)), -1) << server_->StderrText();
    ASSERT_TRUE(attacker.alive());
    const auto t0 = Clock::now();
    EXPECT_TRUE(server_->Stop());
    const auto stop = Clock::now() - t0;
    EXPECT_LT(stop, std::chrono::seconds(2));
    std::cerr << "SIGTERM to exit: " << Seconds(stop) * 1000 << " ms\n";

    // A new start on the same runtime dir, with the attacker still holding everything.
    ASSERT_TRUE(attacker.alive());
    ASSERT_TRUE(server_->Start()) << server_->StderrText();
    EXPECT_TRUE(Handshake(server_->runtime_dir(), server_->nfs_port(), &took).ok());
    EXPECT_LT(took, kPrompt);
    EXPECT_TRUE(server_->Stop());
  }

  TempDir exp_{"localnfs-hostile"};
  std::optional<ServerProcess> server_;
};

TEST_P(LocalioHostileTest, ClientCannotStopOrStallTheServer) { CheckServerUnharmed(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Attacks, LocalioHostileTest,
                         ::testing::Values(Attack::kPoisonedLock, Attack::kHeldLocks,
                                           Attack::kScribbled, Attack::kTruncated),
                         [](const ::testing::TestParamInfo<Attack>& info) {
                           switch (info.param) {
                             case Attack::kPoisonedLock: return "PoisonedLock";
                             case Attack::kHeldLocks: return "HeldLocks";
                             case Attack::kScribbled: return "Scribbled";
                             case Attack::kTruncated: return "Truncated";
                           }
                           return "unknown";
                         });

// ---- The secret hash in the slot ----

class LocalioHashScribblerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (LocalnfsdPath().empty()) GTEST_SKIP() << "LOCALNFSD not set";
    if (geteuid() != 0) GTEST_SKIP() << "needs root to make a uid " << kAttackerUid << " client";
    ASSERT_TRUE(WriteFile(exp_.Sub("data"), "victim's"));
    server_.emplace(ServerOptions{.args = {"--export", exp_.path() + ":rw,no_root_squash"}});
    ASSERT_EQ(chown(server_->runtime_dir().c_str(), 0, kGroup), 0);
    ASSERT_EQ(chmod(server_->runtime_dir().c_str(), 02750), 0);
    ASSERT_TRUE(server_->Start());
    sock_ = server_->runtime_dir() + "/localio.sock";
    auto b = broker::BrokerClient::Open(server_->runtime_dir());
    ASSERT_TRUE(b.ok()) << b.status();
    victim_ = std::move(*b);
    auto secret = broker::Secret::Generate();
    ASSERT_TRUE(secret.ok());
    attacker_secret_ = *secret;
  }

  // As the attacker (uid 1000, the runtime dir's group): writes the hash of its own
  // secret into the slot of `uuid`. 0 when it could.
  int AttackerWritesItsHash(const broker::Uuid& uuid) {
    const std::string slots = server_->runtime_dir() + "/broker-slots";
    const broker::SecretHash hash = attacker_secret_.Hash();
    const off_t off = static_cast<off_t>(broker::SlotOfUuid(uuid) * sizeof(broker::format::Slot) +
                                         offsetof(broker::format::Slot, secret_hash));
    return RunAsUser(kAttackerUid, kGroup, [&] {
      const int fd = open(slots.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0) return 1;
      const bool ok = pwrite(fd, hash.data(), hash.size(), off) == static_cast<ssize_t>(hash.size());
      close(fd);
      return ok ? 0 : 2;
    });
  }
  // As the attacker: HELLO with `uuid` and its own secret. 0 when refused with
  // `reason` in the message, 1 when accepted, 2 when refused otherwise.
  int AttackerHello(const broker::Uuid& uuid, std::string_view reason) {
    return RunAsUser(kAttackerUid, kGroup, [&] {
      auto c = localio::LocalioSocketClient::Connect(sock_, uuid, attacker_secret_,
                                                     absl::Seconds(5));
      if (c.ok()) return 1;
      return absl::IsPermissionDenied(c.status()) &&
                     absl::StrContains(c.status().message(), absl::string_view(reason.data(), reason.size()))
                 ? 0
                 : 2;
    });
  }
  std::string DataHandle() {
    WireConn mount_conn, nfs_conn;
    EXPECT_TRUE(mount_conn.Connect(server_->mount_port()));
    EXPECT_TRUE(nfs_conn.Connect(server_->nfs_port()));
    Nfs3Wire mnt(&mount_conn), nfs(&nfs_conn);
    std::string root, fh;
    EXPECT_EQ(mnt.Mount(exp_.path(), &root), kNfs3Ok);
    EXPECT_EQ(nfs.Lookup(root, "data", &fh), kNfs3Ok);
    return fh;
  }

  TempDir exp_{"localnfs-hash"};
  std::optional<ServerProcess> server_;
  std::string sock_;
  std::unique_ptr<broker::BrokerClient> victim_;
  broker::Secret attacker_secret_;
};

TEST_F(LocalioHashScribblerTest, HashWrittenBeforeTheBindOnlyDeniesTheVictim) {
  auto u = victim_->UuidBegin();
  ASSERT_TRUE(u.ok()) << u.status();
  ASSERT_EQ(AttackerWritesItsHash(*u), 0);
  const size_t mark = server_->StderrMark();
  Clock::duration took{};
  ASSERT_TRUE(TimedUuidIsLocal(server_->nfs_port(), *u, &took));  // the victim's call
  EXPECT_TRUE(server_->WaitForStderr("its slot's secret hash does not make it",
                                     std::chrono::seconds(5), mark))
      << server_->StderrText();
  // Nothing bound: the victim learns it is not local (RPC from here on) ...
  EXPECT_EQ(victim_->UuidEnd(*u).status().code(), absl::StatusCode::kNotFound);
  // ... and the attacker, who knows the secret of the hash now in the slot, gains nothing.
  EXPECT_EQ(AttackerHello(*u, "not bound"), 0);
  // The victim's own secret cannot use a binding that does not exist either.
  auto c = localio::LocalioSocketClient::Connect(sock_, *u, *victim_->SecretOf(*u));
  EXPECT_TRUE(absl::IsPermissionDenied(c.status())) << c.status();
  // A fresh registration of the victim gets LOCALIO again.
  victim_->UuidRelease(*u);
  auto again = victim_->UuidBegin();
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(TimedUuidIsLocal(server_->nfs_port(), *again, &took));
  EXPECT_TRUE(victim_->UuidEnd(*again).ok());
  EXPECT_TRUE(
      localio::LocalioSocketClient::Connect(sock_, *again, *victim_->SecretOf(*again)).ok());
}

TEST_F(LocalioHashScribblerTest, HashWrittenAfterTheBindChangesNothing) {
  const std::string fh = DataHandle();
  auto u = victim_->UuidBegin();
  ASSERT_TRUE(u.ok()) << u.status();
  Clock::duration took{};
  ASSERT_TRUE(TimedUuidIsLocal(server_->nfs_port(), *u, &took));
  ASSERT_TRUE(victim_->UuidEnd(*u).ok());
  auto victim = localio::LocalioSocketClient::Connect(sock_, *u, *victim_->SecretOf(*u));
  ASSERT_TRUE(victim.ok()) << victim.status();
  ASSERT_EQ(AttackerWritesItsHash(*u), 0);
  EXPECT_EQ(AttackerHello(*u, "wrong secret"), 0);
  // The victim: its connection, its uuid and a new HELLO all still work.
  auto r = (*victim)->OpenLocalFh(fh, localio::OpenMode::kRead, std::nullopt);
  ASSERT_TRUE(r.ok() && r->status == 0) << r.status();
  char buf[16] = {};
  EXPECT_EQ(pread(r->fd.get(), buf, sizeof buf, 0), 8);
  EXPECT_TRUE(victim_->UuidEnd(*u).ok());
  EXPECT_TRUE(localio::LocalioSocketClient::Connect(sock_, *u, *victim_->SecretOf(*u)).ok());
  EXPECT_TRUE(server_->Stop());
}

}  // namespace
}  // namespace localnfs::testing
