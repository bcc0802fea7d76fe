// tests/limits_test.cc — connection and request limits of a real localnfsd, and
// clients that misbehave: too many connections, idle connections, 1 000 connections at
// once, half a record and a stall, a client that never reads its replies, a client
// that disconnects in the middle of a 1 MiB READ, a flood of NULL calls. Each test
// checks that a separate, well-behaved client keeps getting answers with bounded
// latency, and reports the figures (latencies, the server's RSS from
// /proc/PID/status) as test properties and on stdout.
#include <poll.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/localnfsd.h"
#include "tests/support/proc_status.h"
#include "tests/support/wait.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Generous for a loaded 2-core CI machine under ASan; a client stuck behind a
// misbehaving one waits for seconds (or forever), not for this.
constexpr double kMaxLatencyMs = 1500;
constexpr uint32_t kOneMiB = 1u << 20;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}


struct Latency {
  double p50 = 0, max = 0;
  int failures = 0;
};

class LimitsTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> extra = {}) {
    ASSERT_TRUE(WriteFile(root_.Sub("file"), "hello"));
    ASSERT_TRUE(WriteFile(root_.Sub("big"), std::string(kOneMiB, 'b')));
    std::vector<std::string> args = {"--export", root_.path() + ":rw,no_root_squash"};
    args.insert(args.end(), extra.begin(), extra.end());
    server_ = std::make_unique<ServerProcess>(std::move(args));
    ASSERT_TRUE(server_->Start());
  }
  // StartServer() for a test that measures the server's RSS. Under ASan, freed memory
  // sits in a quarantine (256 MiB by default) and counts in RSS; a small one keeps
  // the figures about the server's own memory. Appended, so the suite's other
  // ASAN_OPTIONS stay; a build without ASan ignores the variable.
  void StartServerMeasuringMemory(std::vector<std::string> extra = {}) {
    const char* asan = getenv("ASAN_OPTIONS");
    const std::string saved = asan ? asan : "";
    setenv("ASAN_OPTIONS",
           (saved.empty() ? "" : saved + ":").append("quarantine_size_mb=8").c_str(), 1);
    StartServer(std::move(extra));
    if (asan) {
      setenv("ASAN_OPTIONS", saved.c_str(), 1);
    } else {
      unsetenv("ASAN_OPTIONS");
    }
  }
  // MOUNT on `c` (or on a connection of its own) and the handle of "big".
  void MountOn(WireConn* c = nullptr) {
    WireConn own;
    if (c == nullptr) {
      ASSERT_TRUE(own.Connect(server_->nfs_port()));
      c = &own;
    }
    Nfs3Wire n(c);
    ASSERT_EQ(n.Mount(root_.path(), &rootfh_), 0u) << n.last_rpc().error;
    ASSERT_EQ(n.Lookup(rootfh_, "big", &bigfh_), kNfs3Ok);
  }
  // `rounds` NULL + GETATTR pairs on a fresh connection, timed per call.
  Latency Measure(int rounds) {
    Latency l;
    WireConn c;
    if (!c.Connect(server_->nfs_port())) {
      l.failures = rounds;
      return l;
    }
    Nfs3Wire n(&c);
    std::vector<double> ms;
    for (int i = 0; i < rounds; ++i) {
      auto t0 = Clock::now();
      if (n.Null() != 0) ++l.failures;
      if (n.Getattr(rootfh_) != kNfs3Ok) ++l.failures;
      ms.push_back(MsSince(t0) / 2);
    }
    std::sort(ms.begin(), ms.end());
    l.p50 = ms[ms.size() / 2];
    l.max = ms.back();
    return l;
  }
  void ExpectResponsive(const char* what, int rounds = 20) {
    Latency l = Measure(rounds);
    EXPECT_EQ(l.failures, 0) << what;
    EXPECT_LT(l.max, kMaxLatencyMs) << what;
    Report(std::string(what) + "_latency_p50_ms", l.p50);
    Report(std::string(what) + "_latency_max_ms", l.max);
  }
  void Report(const std::string& key, double value) {
    RecordProperty(key, std::to_string(value));
    printf("[ figure ] %s = %.3f\n", key.c_str(), value);
  }
  std::string ReadCall(uint32_t xid, uint32_t count) {
    AuthSys root;
    return WireConn::CallMessage(xid, kNfsProg, 3, NFS3_READ,
                                 XdrOut().Opaque(bigfh_).U64(0).U32(count).bytes(),
                                 &root);
  }
  static std::string NullCall(uint32_t xid) {
    return WireConn::CallMessage(xid, kNfsProg, 3, NFS3_NULL, "", nullptr);
  }
  static std::string Framed(const std::string& body) {
    XdrOut mark;
    mark.U32(0x80000000u | static_cast<uint32_t>(body.size()));
    return mark.bytes() + body;
  }

  TempDir root_;
  std::unique_ptr<ServerProcess> server_;
  std::string rootfh_, bigfh_;
};

// Raises this process's soft limit on open files to at least `n` (the test's own
// connections); false when the hard limit is lower.
bool RaiseFileLimit(rlim_t n) {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_max < n) return false;
  if (rl.rlim_cur < n) {
    rl.rlim_cur = n;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0;
  }
  return true;
}

// A connection that pipelines `reads` READs of 1 MiB and reads nothing: the server
// keeps replies queued for it (busy), for as long as the test wants. Returns once the
// server is answering it.
std::unique_ptr<WireConn> StartNonReader(int port, const std::function<std::string(uint32_t)>& call,
                                         uint32_t first_xid, int reads) {
  auto c = std::make_unique<WireConn>();
  // (Its receive buffer stays as it is: the kernel takes a few MiB of the replies off
  // the server, the rest stays queued there. A tiny one would make TCP crawl later.)
  if (!c->Connect(port)) return nullptr;
  std::string stream;
  for (int i = 0; i < reads; ++i) {
    const std::string body = call(first_xid + i);
    XdrOut mark;
    mark.U32(0x80000000u | static_cast<uint32_t>(body.size()));
    stream += mark.bytes() + body;
  }
  if (!c->SendAll(stream)) return nullptr;
  pollfd p{c->fd(), POLLIN, 0};
  if (poll(&p, 1, 10000) != 1) return nullptr;  // the first reply has started
  return c;
}

// Reads the `reads` READ replies of a StartNonReader() connection: all there, whole.
void ExpectAllReadReplies(WireConn& c, uint32_t first_xid, int reads, const char* what) {
  std::vector<bool> seen(reads);
  for (int i = 0; i < reads; ++i) {
    std::optional<std::string> rec = c.RecvRecord(20000);
    ASSERT_TRUE(rec.has_value()) << what << ": reply " << i << " of " << reads << " missing";
    const uint32_t xid = WireConn::ParseReply(*rec).xid - first_xid;
    ASSERT_LT(xid, static_cast<uint32_t>(reads)) << what;
    seen[xid] = true;
    EXPECT_GT(rec->size(), kOneMiB) << what << ": reply " << xid << " cut short";
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), reads) << what;
}

// When every connection is busy (requests running or replies unsent), a new one is
// refused — accepted and closed at once, with a log line — and the busy ones are
// served to the end.
TEST_F(LimitsTest, MaxConnectionsRefusesANewConnectionOnlyWhenAllAreBusy) {
  constexpr int kMax = 4, kReads = 16;
  StartServer({"--max-connections", std::to_string(kMax)});
  MountOn();
  std::vector<std::unique_ptr<WireConn>> busy;
  auto call = [this](uint32_t xid) { return ReadCall(xid, kOneMiB); };
  for (int i = 0; i < kMax; ++i) {
    busy.push_back(StartNonReader(server_->nfs_port(), call, 0x600000 + 0x100 * i, kReads));
    ASSERT_NE(busy.back(), nullptr) << "connection " << i;
  }
  WireConn extra;
  ASSERT_TRUE(extra.Connect(server_->nfs_port()));  // the kernel completes the handshake
  EXPECT_TRUE(extra.WaitClosedByPeer(5000)) << "connection " << kMax + 1 << " was kept";
  EXPECT_TRUE(server_->WaitForStderr("(--max-connections), none idle"))
      << "no log line for the refused connection";
  for (int i = 0; i < kMax; ++i) {
    ExpectAllReadReplies(*busy[i], 0x600000 + 0x100 * i, kReads, "busy connection");
  }
  // Idle now: the next new connection is admitted in place of one of them.
  WireConn again;
  ASSERT_TRUE(again.Connect(server_->nfs_port()));
  EXPECT_EQ(Nfs3Wire(&again).Null(), 0u) << "not admitted although connections are idle";
}

// Issue 15 item 10: one client opens 2 000 connections and leaves them idle (twice
// --max-connections). Each new one is admitted by closing the one idle the longest, so
// a fresh client's NULL is answered; a busy connection — the oldest of all, with
// replies it has not read yet — is never the one closed.
TEST_F(LimitsTest, TwoThousandIdleConnectionsFromOneClientDoNotLockOutAFreshClient) {
  constexpr int kIdle = 2000, kReads = 16;
  ASSERT_TRUE(RaiseFileLimit(kIdle + 200)) << "needs " << kIdle + 200 << " open files";
  StartServer();  // --max-connections 1024
  MountOn();
  auto call = [this](uint32_t xid) { return ReadCall(xid, kOneMiB); };
  std::unique_ptr<WireConn> busy = StartNonReader(server_->nfs_port(), call, 0x700000, kReads);
  ASSERT_NE(busy, nullptr);
  std::vector<std::unique_ptr<WireConn>> idle;
  const auto t0 = Clock::now();
  for (int i = 0; i < kIdle; ++i) {
    idle.push_back(std::make_unique<WireConn>());
    ASSERT_TRUE(idle.back()->Connect(server_->nfs_port())) << "connect " << i;
  }
  Report("connect_2000_idle_ms", MsSince(t0));
  EXPECT_TRUE(server_->WaitForStderr("closed the one idle longest"))
      << "no log line for the closed idle connections";
  WireConn fresh;
  ASSERT_TRUE(fresh.Connect(server_->nfs_port()));
  Nfs3Wire n(&fresh);
  EXPECT_EQ(n.Null(), 0u) << "a fresh client is locked out: " << n.last_rpc().error;
  EXPECT_EQ(n.Getattr(rootfh_), kNfs3Ok);
  ExpectAllReadReplies(*busy, 0x700000, kReads, "the busy connection");
  // The newest idle connections are the ones still open.
  EXPECT_EQ(Nfs3Wire(idle.back().get()).Null(), 0u);
}

TEST_F(LimitsTest, IdleTimeoutClosesAnIdleConnectionButNotAnActiveOne) {
  StartServer({"--idle-timeout", "1"});
  MountOn();
  WireConn idle, active;
  ASSERT_TRUE(idle.Connect(server_->nfs_port()));
  ASSERT_TRUE(active.Connect(server_->nfs_port()));
  Nfs3Wire a(&active);
  ASSERT_EQ(Nfs3Wire(&idle).Null(), 0u);
  auto t0 = Clock::now();
  int calls = 0;
  // A call every 200 ms, well inside the 1 s timeout, is what makes the connection
  // active: that pace is the thing under test, not a wait. It must survive 2.5 s, and
  // at least until the idle one was closed — the event that shows the idle sweep ran
  // while both were open.
  bool idle_closed = false;
  while (MsSince(t0) < 2500 || (!idle_closed && MsSince(t0) < 10000)) {
    ASSERT_EQ(a.Getattr(rootfh_), kNfs3Ok) << "an active connection was closed";
    ++calls;
    std::this_thread::sleep_for(milliseconds(200));
    if (!idle_closed) idle_closed = idle.WaitClosedByPeer(20);
  }
  EXPECT_TRUE(idle.WaitClosedByPeer(2000)) << "an idle connection was kept open";
  EXPECT_EQ(a.Null(), 0u);
  EXPECT_TRUE(server_->WaitForStderr("idle")) << "no log line";
  Report("idle_timeout_active_calls", calls);
}

TEST_F(LimitsTest, ThousandConnectionsAtOnceAreHeldAndAnotherClientStaysResponsive) {
  constexpr int kConns = 1000;
  rlimit rl;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < kConns + 100) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, kConns + 200);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  StartServer();  // default limits
  MountOn();
  const long rss_before = RssKiB(server_->pid());
  std::vector<std::unique_ptr<WireConn>> conns;
  auto t0 = Clock::now();
  for (int i = 0; i < kConns; ++i) {
    conns.push_back(std::make_unique<WireConn>());
    ASSERT_TRUE(conns.back()->Connect(server_->nfs_port())) << "connect " << i;
  }
  Report("connect_1000_ms", MsSince(t0));
  // Every connection sends a call before any reply is read.
  for (int i = 0; i < kConns; ++i) {
    ASSERT_TRUE(conns[i]->SendRecord(NullCall(0x100000 + i))) << "send " << i;
  }
  ExpectResponsive("with_1000_connections");
  int answered = 0;
  for (int i = 0; i < kConns; ++i) {
    std::optional<std::string> rec = conns[i]->RecvRecord(10000);
    if (rec && WireConn::ParseReply(*rec).xid == static_cast<uint32_t>(0x100000 + i)) {
      ++answered;
    }
  }
  EXPECT_EQ(answered, kConns) << "held connections must all be served (default limit "
                                 "1024 is above 1000)";
  Report("connections_held", answered);
  Report("rss_kib_before_1000", rss_before);
  Report("rss_kib_with_1000", RssKiB(server_->pid()));
  conns.clear();
  ExpectResponsive("after_1000_connections");
}

TEST_F(LimitsTest, HalfARecordAndAStallDoesNotBlockOthers) {
  StartServer();
  MountOn();
  WireConn staller;
  ASSERT_TRUE(staller.Connect(server_->nfs_port()));
  const std::string call = Framed(NullCall(0xabc));
  ASSERT_TRUE(staller.SendAll(call.substr(0, call.size() / 2)));
  ExpectResponsive("with_half_record");
  // Also a stall inside the record mark itself.
  WireConn mark_staller;
  ASSERT_TRUE(mark_staller.Connect(server_->nfs_port()));
  ASSERT_TRUE(mark_staller.SendAll(call.substr(0, 2)));
  ExpectResponsive("with_half_record_mark");
  // The record was kept, not dropped: finishing it gets its reply.
  ASSERT_TRUE(staller.SendAll(call.substr(call.size() / 2)));
  std::optional<std::string> rec = staller.RecvRecord();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(WireConn::ParseReply(*rec).xid, 0xabcu);
}


TEST_F(LimitsTest, ClientThatNeverReadsItsRepliesDoesNotBlockOthersNorGrowMemory) {
  StartServerMeasuringMemory();
  MountOn();
  const long rss_before = RssKiB(server_->pid());
  // 1 000 READs of 1 MiB: a server that queued every reply would hold ~1 GiB.
  constexpr int kReads = 1000;
  WireConn hog;
  ASSERT_TRUE(hog.Connect(server_->nfs_port()));
  int small = 64 * 1024;
  setsockopt(hog.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  timeval tv{5, 0};  // the server may stop reading us: never block the test on it
  setsockopt(hog.fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::string stream;
  for (int i = 0; i < kReads; ++i) stream += Framed(ReadCall(0x200000 + i, kOneMiB));
  hog.SendAll(stream);  // may stop short when the server no longer reads: that is fine
  const long rss_loaded = SettledRssKiB(server_->pid(), milliseconds(6000));
  ExpectResponsive("with_non_reader");
  // The growth over one more second of the stall (a rate: the time is the measure).
  std::this_thread::sleep_for(milliseconds(1000));
  const long rss_later = RssKiB(server_->pid());
  Report("non_reader_rss_kib_before", rss_before);
  Report("non_reader_rss_kib_loaded", rss_loaded);
  Report("non_reader_rss_kib_later", rss_later);
  // Bounded by the per-connection reply memory (16 MiB: the replies queued, held for
  // zero-copy and reserved for the READs running all count) and the heap around it.
  EXPECT_LT(rss_loaded - rss_before, 48 * 1024) << "reply memory is not bounded";
  EXPECT_LT(rss_later - rss_loaded, 32 * 1024) << "memory still grows while stalled";
  hog.Close();
  ExpectResponsive("after_non_reader");
}

// Issue 15 item 9: many connections that each pipeline 64 READs of 1 MiB and never
// read a reply. Every reply byte the server holds — being produced, queued, or in the
// kernel's hands for a zero-copy send — counts against the server-wide cap, so its
// peak RSS stays under the cap + 128 MiB; once the connections are gone, the memory
// goes back to the system.
TEST_F(LimitsTest, ManyConnectionsThatNeverReadStayUnderTheServerWideReplyCap) {
  constexpr int kConns = 128, kReadsPerConn = 64;
  constexpr long kCapMiB = 64;
  rlimit rl;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  ASSERT_GE(rl.rlim_max, static_cast<rlim_t>(kConns + 100));
  StartServerMeasuringMemory({"--max-reply-bytes", std::to_string(kCapMiB << 20)});
  MountOn();
  const long rss_before = RssKiB(server_->pid());
  std::string stream;
  for (int i = 0; i < kReadsPerConn; ++i) stream += Framed(ReadCall(0x500000 + i, kOneMiB));
  std::vector<std::unique_ptr<WireConn>> hogs;
  for (int i = 0; i < kConns; ++i) {
    hogs.push_back(std::make_unique<WireConn>());
    WireConn& c = *hogs.back();
    ASSERT_TRUE(c.Connect(server_->nfs_port())) << "connect " << i;
    // The kernel then takes as little of each reply off the server as it can.
    int small = 4096;
    setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    timeval tv{5, 0};  // the server may stop reading us: never block the test on it
    setsockopt(c.fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    c.SendAll(stream);  // may stop short when the server no longer reads: that is fine
  }
  // The server says when it stops reading because the cap is reached.
  EXPECT_TRUE(server_->WaitForStderr("--max-reply-bytes", std::chrono::seconds(20)))
      << "no log line for the reached cap";
  const long rss_loaded = SettledRssKiB(server_->pid(), milliseconds(10000));
  // Small calls of a connection that holds nothing are still answered.
  ExpectResponsive("with_128_non_readers");
  const long peak = PeakRssKiB(server_->pid());
  Report("non_readers_rss_kib_before", rss_before);
  Report("non_readers_rss_kib_loaded", rss_loaded);
  Report("non_readers_rss_kib_peak", peak);
  EXPECT_LT(peak, rss_before + (kCapMiB + 128) * 1024)
      << "reply memory exceeds the server-wide cap of " << kCapMiB << " MiB";
  hogs.clear();
  ExpectResponsive("after_128_non_readers");
  const long rss_after = SettledRssKiB(server_->pid(), milliseconds(10000));
  Report("non_readers_rss_kib_after_close", rss_after);
  EXPECT_LT(rss_after, rss_before + 32 * 1024) << "memory not given back after the close";
}

TEST_F(LimitsTest, ClientThatDisconnectsMidReadOfOneMiBLeavesTheServerServing) {
  StartServer();
  MountOn();
  const long rss_before = RssKiB(server_->pid());
  for (int i = 0; i < 20; ++i) {
    WireConn c;
    ASSERT_TRUE(c.Connect(server_->nfs_port()));
    int small = 16 * 1024;
    setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    ASSERT_TRUE(c.SendRecord(ReadCall(0x300000 + i, kOneMiB)));
    char some[1000];
    ASSERT_GT(recv(c.fd(), some, sizeof(some), 0), 0) << "the reply did not start";
    // Gone with most of the 1 MiB reply unread (the kernel sends a reset).
  }
  ExpectResponsive("after_mid_read_disconnects");
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  Nfs3Wire n(&c);
  std::string data;
  ASSERT_EQ(n.Read(bigfh_, 0, kOneMiB, &data), kNfs3Ok);
  EXPECT_EQ(data.size(), kOneMiB);
  Report("mid_read_rss_kib_before", rss_before);
  Report("mid_read_rss_kib_after", RssKiB(server_->pid()));
}

TEST_F(LimitsTest, NullFloodFromOneClientKeepsAnotherClientsLatencyBounded) {
  StartServer();
  MountOn();
  const Latency quiet = Measure(50);
  Report("quiet_latency_p50_ms", quiet.p50);
  WireConn flood;
  ASSERT_TRUE(flood.Connect(server_->nfs_port()));
  std::atomic<bool> stop{false};
  std::atomic<long> replies{0};
  std::string batch;
  for (int i = 0; i < 2000; ++i) batch += Framed(NullCall(0x400000 + i));
  timeval tv{2, 0};
  setsockopt(flood.fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::thread sender([&] {
    while (!stop.load() && flood.SendAll(batch)) {
    }
  });
  std::thread reader([&] {
    char buf[65536];
    long bytes = 0;
    while (!stop.load()) {
      ssize_t n = recv(flood.fd(), buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) {
        bytes += n;
        replies.store(bytes / 28);  // a NULL reply: 4-byte mark + 24-byte header
      } else if (n == 0) {
        break;
      } else {
        pollfd p{flood.fd(), POLLIN, 0};
        poll(&p, 1, 10);
      }
    }
  });
  // Measured under the flood: once the server answers it (a latency measured before
  // the flood got going would pass for nothing).
  EXPECT_TRUE(WaitUntil([&] { return replies.load() >= 2000; }, std::chrono::seconds(10)))
      << "the flood was not served";
  const long before = replies.load();
  auto t0 = Clock::now();
  const Latency loaded = Measure(50);
  const double secs = MsSince(t0) / 1000;
  const long during = replies.load() - before;
  stop.store(true);
  shutdown(flood.fd(), SHUT_RDWR);
  sender.join();
  reader.join();
  EXPECT_EQ(loaded.failures, 0);
  EXPECT_LT(loaded.max, kMaxLatencyMs);
  EXPECT_GT(during, 0) << "the flood itself was not served";
  Report("flood_latency_p50_ms", loaded.p50);
  Report("flood_latency_max_ms", loaded.max);
  Report("flood_null_calls_per_s", during / secs);
}

// Any directory below an export can be mounted, and each MNT is remembered for DUMP:
// without a bound one client could grow that list forever. With --max-mounts 8, the
// list keeps the 8 most recent (host, path) entries, a re-mounted entry counts as
// new, UMNT removes one, and the server says that it forgot some.
TEST_F(LimitsTest, MountListIsBoundedAndForgetsTheOldest) {
  constexpr int kMax = 8, kDirs = 20;
  for (int i = 0; i < kDirs; ++i)
    ASSERT_EQ(mkdir(root_.Sub("d" + std::to_string(i)).c_str(), 0755), 0);
  StartServer({"--max-mounts", std::to_string(kMax)});
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->mount_port()));
  Nfs3Wire n(&c);
  std::string fh;
  auto path = [this](int i) { return root_.Sub("d" + std::to_string(i)); };
  for (int i = 0; i < kDirs; ++i) ASSERT_EQ(n.Mount(path(i), &fh), 0u) << path(i);
  ASSERT_EQ(n.Mount(path(kDirs - kMax), &fh), 0u);  // again: now the youngest
  ASSERT_EQ(n.Mount(path(kDirs - kMax - 1), &fh), 0u);  // back in, evicts the oldest
  auto dump = [&c]() {
    std::vector<std::string> dirs;
    RpcReply r = c.Call(kMountProg, 3, /*MOUNTPROC3_DUMP=*/2, "");
    EXPECT_TRUE(r.ok) << r.error;
    XdrIn in(r.results);
    uint32_t more = 0;
    while (in.U32(&more) && more != 0) {
      std::string host, dir;
      if (!in.Opaque(&host) || !in.Opaque(&dir)) {
        ADD_FAILURE() << "short DUMP reply";
        break;
      }
      EXPECT_EQ(host, "127.0.0.1");
      dirs.push_back(dir);
    }
    std::sort(dirs.begin(), dirs.end());
    return dirs;
  };
  std::vector<std::string> want;
  for (int i = kDirs - kMax - 1; i < kDirs; ++i)
    if (i != kDirs - kMax + 1) want.push_back(path(i));  // the oldest of the last 8 went
  std::sort(want.begin(), want.end());
  EXPECT_EQ(dump(), want);
  XdrOut umnt;
  umnt.Opaque(path(kDirs - 1));
  EXPECT_TRUE(c.Call(kMountProg, 3, /*MOUNTPROC3_UMNT=*/3, umnt.bytes()).ok);
  want.erase(std::find(want.begin(), want.end(), path(kDirs - 1)));
  EXPECT_EQ(dump(), want);
  EXPECT_TRUE(server_->WaitForStderr("mount list full (--max-mounts 8)"))
      << server_->StderrText();
}

}  // namespace
}  // namespace localnfs::testing
