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
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/localio/broker_client.h"
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

}  // namespace
}  // namespace localnfs::testing
