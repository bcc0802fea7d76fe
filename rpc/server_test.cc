// End-to-end tests of rpc::Server and rpc::Client over real loopback sockets.
#include "rpc/server.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"
#include "rpc/client.h"
#include "rpc/connection.h"
#include "rpc/message.h"
#include "rpc/record.h"
#include "rpc/test_program.h"

// libtirpc's pmap_set leaks 16 bytes in __rpc_uaddr2taddr_af when rpcbind is not
// reachable (its bug, not ours); keep LeakSanitizer quiet about that one frame.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:__rpc_uaddr2taddr_af\n";
}

namespace localnfs::rpc {
namespace {

using testing::U32;

using testing::Blob;
using testing::kTestProg;
using testing::TestProgram;
using testing::WhoAmI;
using testing::XdrBlob;
using testing::XdrProc;
using testing::XdrU;
using testing::XdrVoid;

// `count` calls of test procedure `proc` with argument `arg`, xids from `first_xid`, as
// one byte stream (for one write: the server reads them together).
std::string Pipelined(uint32_t count, uint32_t proc, uint32_t arg, uint32_t first_xid = 0) {
  std::string stream;
  for (uint32_t i = 0; i < count; ++i) {
    stream += Client::EncodeRecord(
        Client::EncodeCall(first_xid + i, kTestProg, 1, proc, CallAuth{}, U32(arg)));
  }
  return stream;
}

constexpr absl::Duration kTimeout = absl::Seconds(10);

// Polls `done` every millisecond until it holds or kTimeout passes.
template <typename Pred>
bool WaitUntil(Pred done) {
  for (const absl::Time deadline = absl::Now() + kTimeout; absl::Now() < deadline;) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return done();
}

class ServerTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions opts = ServerOptions{}, bool udp = false) {
    server_ = std::make_unique<Server>(opts);
    server_->AddProgram(&v1_);
    server_->AddProgram(&v3_);
    auto port = server_->Listen("127.0.0.1", 0, udp);
    ASSERT_TRUE(port.ok()) << port.status();
    port_ = *port;
    ASSERT_TRUE(server_->Start().ok());
  }

  std::unique_ptr<Client> NewClient() {
    auto c = Client::Connect("127.0.0.1", port_, kTimeout);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  absl::StatusOr<u_int> Echo(Client& c, u_int v, uint32_t vers = 1) {
    u_int out = 0;
    absl::Status s = c.Call(kTestProg, vers, 1, XdrU(), &v, XdrU(), &out, kTimeout);
    if (!s.ok()) return s;
    return out;
  }

  // A client that asks for 32 MiB of zero-copy replies and never reads them: the
  // kernel cannot finish those sends (they sit in the full socket). Returns once some
  // are held.
  std::unique_ptr<Client> StartUnreadZeroCopyReplies() {
    auto c = NewClient();
    EXPECT_TRUE(c->SendRaw(Pipelined(32, 7, 1 << 20)).ok());
    EXPECT_TRUE(WaitUntil([&] { return server_->zerocopy_replies_held() > 0; }));
    return c;
  }

  // Every byte of reply memory charged is given back once the test's clients are gone
  // (also after Stop(), and on every path a request can take).
  void TearDown() override {
    if (server_ == nullptr) return;
    EXPECT_TRUE(WaitUntil([&] { return server_->reply_bytes_held() == 0; }))
        << server_->reply_bytes_held() << " bytes of reply memory not given back";
  }

  // Sends `count` BLOB calls of `size` bytes on `c` (xids from `first_xid`), without
  // reading the replies.
  static void SendBlobs(Client& c, uint32_t first_xid, int count, uint32_t size) {
    ASSERT_TRUE(c.SendRaw(Pipelined(count, 7, size, first_xid)).ok());
  }
  // Reads `count` BLOB replies of `size` bytes from `c`, in any order.
  static void ReceiveBlobs(Client& c, int count, uint32_t size) {
    for (int i = 0; i < count; ++i) {
      auto r = c.ReceiveRecord(kTimeout);
      ASSERT_TRUE(r.ok()) << "reply " << i << ": " << r.status();
      EXPECT_EQ(r->size(), kAcceptedReplyHeaderSize + 4 + size);
    }
  }

  TestProgram v1_{1}, v3_{3};
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

TEST_F(ServerTest, EchoOverTcp) {
  StartServer();
  auto c = NewClient();
  auto r = Echo(*c, 41);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 42u);
  EXPECT_TRUE(
      c->Call(kTestProg, 3, 0, XdrVoid(), nullptr, XdrVoid(), nullptr, kTimeout).ok());
  EXPECT_EQ(server_->counters().connections_accepted.load(), 1u);
}

TEST_F(ServerTest, RpcErrorsCarryExactValues) {
  StartServer();
  auto c = NewClient();
  RpcError e;
  absl::Status s = Echo(*c, 1, /*vers=*/2).status();
  ASSERT_TRUE(GetRpcError(s, &e)) << s;
  EXPECT_EQ(e.accept_stat, AcceptStat::kProgMismatch);
  EXPECT_EQ(e.low, 1u);
  EXPECT_EQ(e.high, 3u);
  s = c->Call(kTestProg, 1, 2, XdrVoid(), nullptr, XdrVoid(), nullptr, kTimeout);
  ASSERT_TRUE(GetRpcError(s, &e));
  EXPECT_EQ(e.accept_stat, AcceptStat::kProcUnavail);
  s = c->Call(kTestProg + 1, 1, 0, XdrVoid(), nullptr, XdrVoid(), nullptr, kTimeout);
  ASSERT_TRUE(GetRpcError(s, &e));
  EXPECT_EQ(e.accept_stat, AcceptStat::kProgUnavail);
  EXPECT_NE(s.message().find("PROG_UNAVAIL"), std::string::npos);
}

TEST_F(ServerTest, AuthSysCredentialsReachTheProgram) {
  StartServer();
  auto c = NewClient();
  Credentials cred;
  cred.uid = 1234;
  cred.gid = 56;
  cred.groups = {1, 2, 3};
  c->SetAuthSys(cred, "testhost");
  WhoAmI w{};
  ASSERT_TRUE(c->Call(kTestProg, 1, 8, XdrVoid(), nullptr,
                      reinterpret_cast<xdrproc_t>(testing::XdrWhoAmI), &w, kTimeout)
                  .ok());
  EXPECT_EQ(w.uid, 1234u);
  EXPECT_EQ(w.gid, 56u);
  EXPECT_EQ(w.ngroups, 3u);
  for (uint32_t g = 0; g < 14; ++g) cred.groups.push_back(100 + g);  // 17 groups
  c->SetAuthSys(cred, "testhost");
  RpcError e;
  absl::Status s = c->Call(kTestProg, 1, 8, XdrVoid(), nullptr,
                           reinterpret_cast<xdrproc_t>(testing::XdrWhoAmI), &w, kTimeout);
  ASSERT_TRUE(GetRpcError(s, &e)) << s;
  EXPECT_EQ(e.auth_stat, AuthStat::kBadCred);
}

TEST_F(ServerTest, LargeResultIsDecodedByClient) {
  StartServer();
  auto c = NewClient();
  u_int n = 3 << 20;
  Blob b{};
  ASSERT_TRUE(c->Call(kTestProg, 1, 7, XdrU(), &n, XdrProc(XdrBlob), &b, kTimeout).ok());
  EXPECT_EQ(b.len, n);
  EXPECT_EQ(b.data[n - 1], 'x');
  xdr_free(XdrProc(XdrBlob), reinterpret_cast<char*>(&b));
}

TEST_F(ServerTest, GarbageRecordIsDroppedAndConnectionStillServes) {
  StartServer();
  auto c = NewClient();
  ASSERT_TRUE(c->SendRaw(Client::EncodeRecord("garbage!garbage!")).ok());
  ASSERT_TRUE(c->SendRaw(Client::EncodeRecord("x")).ok());
  // Garbage arguments to a real procedure: GARBAGE_ARGS with our xid.
  auto reply = c->CallRaw(
      Client::EncodeRecord(Client::EncodeCall(99, kTestProg, 1, 1, CallAuth{}, "zz")),
      kTimeout);
  ASSERT_TRUE(reply.ok()) << reply.status();
  XDR x;
  xdrmem_create(&x, reply->data(), static_cast<u_int>(reply->size()), XDR_DECODE);
  uint32_t xid = 0;
  RpcError e;
  ASSERT_TRUE(DecodeReplyHeader(&x, &xid, &e).ok());
  xdr_destroy(&x);
  EXPECT_EQ(xid, 99u);
  EXPECT_EQ(e.accept_stat, AcceptStat::kGarbageArgs);
  auto r = Echo(*c, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  // The two dropped records have no reply to wait for, and replies need not follow the
  // order of the calls (a lone quick call runs on the loop while earlier records may
  // still wait for a worker): wait for their count.
  for (absl::Time deadline = absl::Now() + kTimeout;
       server_->counters().bad_headers.load() < 2 && absl::Now() < deadline;) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(server_->counters().bad_headers.load(), 2u);
  EXPECT_EQ(server_->counters().garbage_args.load(), 1u);
}

TEST_F(ServerTest, OversizedRecordClosesConnection) {
  StartServer();
  auto c = NewClient();
  ASSERT_TRUE(c->SendRaw(U32(0xffffffffu) + "some bytes").ok());  // "4 GiB"
  auto r = c->ReceiveRecord(kTimeout);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_EQ(server_->counters().connections_closed_on_error.load(), 1u);
  // The server still serves a new connection.
  auto c2 = NewClient();
  auto e = Echo(*c2, 7);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(*e, 8u);
}

TEST_F(ServerTest, ZeroLengthFragmentFloodClosesConnection) {
  StartServer();
  auto c = NewClient();
  ASSERT_TRUE(c->SendRaw(std::string(400, '\0')).ok());
  EXPECT_EQ(c->ReceiveRecord(kTimeout).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(ServerTest, RecordAboveConfiguredMaximumClosesConnection) {
  ServerOptions opts;
  opts.max_record_size = 1024;
  StartServer(opts);
  auto c = NewClient();
  std::string big = Client::EncodeCall(1, kTestProg, 1, 9, CallAuth{},
                                       U32(2000) + std::string(2000, 'a'));
  EXPECT_EQ(c->CallRaw(Client::EncodeRecord(big), kTimeout).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(ServerTest, ManyConcurrentClients) {
  ServerOptions opts;
  opts.worker_threads = 4;
  StartServer(opts);
  constexpr int kClients = 24, kCalls = 100;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      auto c = Client::Connect("127.0.0.1", port_, kTimeout);
      if (!c.ok()) return;
      for (int j = 0; j < kCalls; ++j) {
        auto r = Echo(**c, i * 1000 + j);
        if (r.ok() && *r == static_cast<u_int>(i * 1000 + j + 1)) ok.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kClients * kCalls);
  EXPECT_EQ(server_->counters().connections_accepted.load(),
            static_cast<uint64_t>(kClients));
}

TEST_F(ServerTest, LoneQuickCallsRunOnTheEventLoopOthersOnWorkers) {
  StartServer();
  auto c = NewClient();
  for (u_int i = 0; i < 20; ++i) {
    auto r = Echo(*c, i);  // ECHO is quick, one call in flight
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, i + 1);
  }
  u_int ms = 1, out = 0;
  ASSERT_TRUE(c->Call(kTestProg, 1, 3, XdrU(), &ms, XdrU(), &out, kTimeout).ok());  // SLEEP
  std::vector<std::string> threads = v1_.Threads();
  ASSERT_EQ(threads.size(), 21u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(threads[i], kLoopThreadName) << "ECHO " << i;
  EXPECT_EQ(threads[20], kWorkerThreadName) << "SLEEP is not quick";
}

TEST_F(ServerTest, QuickCallsReadTogetherRunOnTheLoopTheirRepliesCorkedTogether) {
  StartServer();
  auto c = NewClient();
  // Three quick calls in one write arrive in one read: the loop runs them all (no
  // hand-off per call) and writes the three replies when the round ends.
  ASSERT_TRUE(c->SendRaw(Pipelined(3, 1, 5)).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c->ReceiveRecord(kTimeout).ok());
  EXPECT_EQ(v1_.Threads(), std::vector<std::string>(3, kLoopThreadName));
}

TEST_F(ServerTest, QuickCallsBeyondTheLoopsShareOfARoundGoToTheWorkers) {
  StartServer();
  auto c = NewClient();
  constexpr uint32_t kCalls = kLoopCallsPerRound + 8;
  const std::string stream = Pipelined(kCalls, 1, 5);
  ASSERT_LT(stream.size(), 64u * 1024);  // one read (rpc/server_impl.h), one round
  ASSERT_TRUE(c->SendRaw(stream).ok());
  for (uint32_t i = 0; i < kCalls; ++i) ASSERT_TRUE(c->ReceiveRecord(kTimeout).ok());
  const std::vector<std::string> threads = v1_.Threads();
  EXPECT_EQ(std::count(threads.begin(), threads.end(), kLoopThreadName),
            static_cast<ptrdiff_t>(kLoopCallsPerRound));
  EXPECT_EQ(std::count(threads.begin(), threads.end(), kWorkerThreadName), 8);
}

TEST_F(ServerTest, LargeQuickCallsAfterTheRoundsFirstGoToTheWorkers) {
  StartServer();
  auto c = NewClient();
  // Three quick 200 KiB BLOBs in one write: the first runs on the loop, the other two
  // (beyond kLoopBytesPerRound together) are spread over the workers.
  constexpr uint32_t kBlob = 200 * 1024;
  static_assert(2 * kBlob > kLoopBytesPerRound);
  ASSERT_TRUE(c->SendRaw(Pipelined(3, 15, kBlob)).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c->ReceiveRecord(kTimeout).ok());
  const std::vector<std::string> threads = v1_.Threads();
  EXPECT_EQ(std::count(threads.begin(), threads.end(), kLoopThreadName), 1);
  EXPECT_EQ(std::count(threads.begin(), threads.end(), kWorkerThreadName), 2);
}

TEST_F(ServerTest, InARoundWithTwoConnectionsOnlyOnesQuickCallsRunOnTheLoop) {
  StartServer();
  auto a = NewClient();
  auto b = NewClient();
  ASSERT_TRUE(Echo(*a, 1).ok());  // both connections accepted and read once
  const uint64_t a_id = v1_.last_conn_id.load();
  ASSERT_TRUE(Echo(*b, 1).ok());
  const uint64_t b_id = v1_.last_conn_id.load();
  ASSERT_NE(a_id, b_id);
  // a's QUICK_SLEEP holds the loop while an ECHO arrives on each connection: the next
  // round reads both, runs one connection's ECHO itself and hands the other's on.
  ASSERT_TRUE(a->SendRaw(Client::EncodeRecord(
                  Client::EncodeCall(10, kTestProg, 1, 14, CallAuth{}, U32(300))))
                  .ok());
  while (v1_.started.load() < 3) absl::SleepFor(absl::Milliseconds(1));
  for (Client* c : {a.get(), b.get()}) {
    ASSERT_TRUE(c->SendRaw(Client::EncodeRecord(
                    Client::EncodeCall(11, kTestProg, 1, 1, CallAuth{}, U32(5))))
                    .ok());
  }
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(a->ReceiveRecord(kTimeout).ok());
  ASSERT_TRUE(b->ReceiveRecord(kTimeout).ok());
  const std::vector<std::string> on_a = v1_.ThreadsOf(a_id), on_b = v1_.ThreadsOf(b_id);
  ASSERT_EQ(on_a.size(), 3u);
  ASSERT_EQ(on_b.size(), 2u);
  EXPECT_EQ(on_a[1], kLoopThreadName) << "QUICK_SLEEP";
  EXPECT_NE(on_a[2], on_b[1]) << "one ECHO on the loop, the other on a worker";
}

TEST_F(ServerTest, QuickCallThatWouldBlockOnTheLoopRunsOnAWorker) {
  StartServer();
  auto c = NewClient();
  u_int in = 41, out = 0;
  ASSERT_TRUE(c->Call(kTestProg, 1, 11, XdrU(), &in, XdrU(), &out, kTimeout).ok());
  EXPECT_EQ(out, 42u);
  // Tried on the loop (told not to block), then continued on a worker from where it
  // stopped (its state of the call went along); one call counted.
  EXPECT_EQ(v1_.Threads(), (std::vector<std::string>{kLoopThreadName, kWorkerThreadName}));
  EXPECT_EQ(v1_.paged_continued.load(), 1);
  EXPECT_EQ(server_->counters().calls.load(), 1u);
  // And the connection goes on as before.
  auto r = Echo(*c, 7);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 8u);
}

TEST_F(ServerTest, BusyPollFindsTheNextRequestAndBacksOffWhenNoneComes) {
  ServerOptions opts;
  opts.busy_poll = absl::Milliseconds(200);
  StartServer(opts);
  auto c = NewClient();
  // Back to back: each next call arrives while the loop polls after the last reply.
  for (u_int i = 0; i < 5; ++i) ASSERT_TRUE(Echo(*c, i).ok());
  // Slower than the window: the poll after the burst misses, so do the next two; the
  // loop then stops polling (the third call's round sleeps at once).
  for (u_int i = 0; i < 3; ++i) {
    absl::SleepFor(absl::Milliseconds(300));
    ASSERT_TRUE(Echo(*c, i).ok());
  }
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_GE(server_->counters().busy_polls_hit.load(), 4u);
  EXPECT_EQ(server_->counters().busy_polls_missed.load(), 3u);
}

TEST_F(ServerTest, NoBusyPollByDefault) {
  StartServer();
  auto c = NewClient();
  for (u_int i = 0; i < 5; ++i) ASSERT_TRUE(Echo(*c, i).ok());
  EXPECT_EQ(server_->counters().busy_polls_hit.load() +
                server_->counters().busy_polls_missed.load(),
            0u);
}

TEST_F(ServerTest, WithInlineQuickCallsOffEveryCallRunsOnAWorker) {
  ServerOptions opts;
  opts.inline_quick_calls = false;
  StartServer(opts);
  auto c = NewClient();
  for (u_int i = 0; i < 5; ++i) ASSERT_TRUE(Echo(*c, i).ok());
  for (const std::string& t : v1_.Threads()) EXPECT_EQ(t, kWorkerThreadName);
}

TEST_F(ServerTest, PipelinedRequestsBeyondThePerConnectionLimitAllGetReplies) {
  ServerOptions opts;
  opts.max_requests_per_connection = 4;
  StartServer(opts);
  auto c = NewClient();
  constexpr int kCalls = 500;
  std::string stream;
  for (int i = 0; i < kCalls; ++i) {
    stream +=
        Client::EncodeRecord(Client::EncodeCall(i, kTestProg, 1, 1, CallAuth{}, U32(i)));
  }
  ASSERT_TRUE(c->SendRaw(stream).ok());
  std::vector<bool> seen(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    auto r = c->ReceiveRecord(kTimeout);
    ASSERT_TRUE(r.ok()) << r.status();
    const uint32_t xid = (uint8_t((*r)[0]) << 24) | (uint8_t((*r)[1]) << 16) |
                         (uint8_t((*r)[2]) << 8) | uint8_t((*r)[3]);
    ASSERT_LT(xid, static_cast<uint32_t>(kCalls));
    seen[xid] = true;
    EXPECT_EQ(r->substr(r->size() - 4), U32(xid + 1));
  }
  for (bool b : seen) EXPECT_TRUE(b);
}

TEST_F(ServerTest, BulkResultsArriveWholeFromTheirOwnBuffersAlsoWhenQueued) {
  ServerOptions opts;
  opts.max_reply_bytes_per_connection = 64 * 1024;  // partial sends, queued records, Flush
  StartServer(opts);
  auto c = NewClient();
  // Sizes that need 0-3 bytes of padding, and one below the payload threshold.
  const std::vector<uint32_t> sizes = {100, 1024, 100001, 65538, 1 << 20, 262143, 4099};
  std::string stream;
  for (uint32_t i = 0; i < sizes.size(); ++i) {
    stream += Client::EncodeRecord(Client::EncodeCall(i, kTestProg, 1, 7, CallAuth{}, U32(sizes[i])));
  }
  ASSERT_TRUE(c->SendRaw(stream).ok());
  absl::SleepFor(absl::Milliseconds(100));  // let the replies pile up unsent
  for (size_t i = 0; i < sizes.size(); ++i) {
    auto r = c->ReceiveRecord(kTimeout);
    ASSERT_TRUE(r.ok()) << r.status();
    XDR x;
    xdrmem_create(&x, r->data(), static_cast<u_int>(r->size()), XDR_DECODE);
    uint32_t xid = 0;
    RpcError e;
    ASSERT_TRUE(DecodeReplyHeader(&x, &xid, &e).ok());
    ASSERT_LT(xid, sizes.size());
    Blob b{};
    ASSERT_TRUE(XdrBlob(&x, &b)) << "size " << sizes[xid];
    EXPECT_EQ(xdr_getpos(&x), r->size()) << "padding of size " << sizes[xid];
    EXPECT_EQ(b.len, sizes[xid]);
    EXPECT_EQ(std::string(b.data, b.len), std::string(sizes[xid], 'x'));
    xdr_free(XdrProc(XdrBlob), reinterpret_cast<char*>(&b));
    xdr_destroy(&x);
  }
}

// One BLOB call of `size` bytes whose result must be `size` times 'x'.
void ExpectBlob(Client& c, uint32_t size) {
  Blob b{};
  absl::Status s = c.Call(kTestProg, 1, 7, XdrU(), &size, XdrProc(XdrBlob), &b, kTimeout);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(b.len, size);
  EXPECT_EQ(std::string(b.data, b.len), std::string(size, 'x'));
  xdr_free(XdrProc(XdrBlob), reinterpret_cast<char*>(&b));
}

// Loopback: the kernel defers a copy of every zero-copy send to a local socket and
// says so in the completion — which is what kAuto reacts to and kAlways ignores.
TEST_F(ServerTest, ZeroCopyRepliesArriveWholeAndAreFreedWithoutAnotherCall) {
  ServerOptions opts;
  opts.zerocopy = ZerocopyMode::kAlways;
  opts.zerocopy_min_bytes = 16 * 1024;
  StartServer(opts);
  auto c = NewClient();
  // One call at a time, so that every send carries exactly one record: the four
  // payloads of 16 KiB and more are held, the others are not.
  const std::vector<uint32_t> sizes = {100, 20000, 4099, 65537, 1 << 20, 300001};
  for (uint32_t size : sizes) ExpectBlob(*c, size);
  // (The counters are bumped after the send returns: the client may be faster.)
  const ServerCounters& n = server_->counters();
  EXPECT_TRUE(WaitUntil([&] { return n.zerocopy_sends.load() >= 4; }));
  // No further call: the last replies are freed because the completion's push queued
  // the connection to a worker by itself.
  EXPECT_TRUE(WaitUntil([&] { return n.zerocopy_replies_freed.load() == 4; }))
      << n.zerocopy_replies_freed.load();
  EXPECT_EQ(server_->zerocopy_replies_held(), 0);
  EXPECT_TRUE(WaitUntil([&] { return n.zerocopy_sends_copied.load() == n.zerocopy_sends.load(); }));
  // Still on: kAlways keeps it although the kernel copied.
  const uint64_t sends = n.zerocopy_sends.load();
  ExpectBlob(*c, 1 << 20);
  EXPECT_TRUE(WaitUntil([&] { return n.zerocopy_sends.load() > sends; }));
}

TEST_F(ServerTest, ZeroCopyAutoStopsOnceTheKernelReportsItCopied) {
  ServerOptions opts;
  opts.zerocopy = ZerocopyMode::kAuto;
  StartServer(opts);
  auto c = NewClient();
  ExpectBlob(*c, 1 << 20);
  const ServerCounters& n = server_->counters();
  // Reaped (so the connection has given up), and every send of that reply counted.
  ASSERT_TRUE(WaitUntil([&] {
    return n.zerocopy_sends_copied.load() >= 1 && server_->zerocopy_replies_held() == 0 &&
           n.zerocopy_sends.load() == n.zerocopy_sends_copied.load();
  }));
  const uint64_t sends = n.zerocopy_sends.load();
  for (int i = 0; i < 5; ++i) ExpectBlob(*c, 1 << 20);
  absl::SleepFor(absl::Milliseconds(20));  // the counter trails the reply
  EXPECT_EQ(n.zerocopy_sends.load(), sends);
  // A new connection tries again (its peer may be remote).
  auto c2 = NewClient();
  ExpectBlob(*c2, 1 << 20);
  EXPECT_TRUE(WaitUntil([&] { return n.zerocopy_sends.load() > sends; }));
}

// When such a client goes away, or the server stops, the buffers are freed only after
// the socket is aborted — and none leaks (LeakSanitizer).
TEST_F(ServerTest, ZeroCopyRepliesOfAClientThatStoppedReadingAreFreedWhenItGoes) {
  ServerOptions opts;
  opts.zerocopy = ZerocopyMode::kAlways;
  StartServer(opts);
  auto c = StartUnreadZeroCopyReplies();
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_GT(server_->zerocopy_replies_held(), 0);  // not completed while unread
  c->Close();
  EXPECT_TRUE(WaitUntil([&] { return server_->zerocopy_replies_held() == 0; }))
      << server_->zerocopy_replies_held();
  // The server serves on.
  auto c2 = NewClient();
  ExpectBlob(*c2, 1 << 20);
}

TEST_F(ServerTest, StopFreesZeroCopyRepliesTheKernelNeverFinished) {
  ServerOptions opts;
  opts.zerocopy = ZerocopyMode::kAlways;
  opts.drain_timeout = absl::Milliseconds(200);
  StartServer(opts);
  auto c = StartUnreadZeroCopyReplies();
  const absl::Time start = absl::Now();
  server_->Stop();  // the drain times out: the client never reads
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(server_->zerocopy_replies_held(), 0);
}

TEST_F(ServerTest, SlowReaderGetsEveryReplyThroughBackPressure) {
  ServerOptions opts;
  opts.max_reply_bytes_per_connection = 256 * 1024;
  StartServer(opts);
  auto c = NewClient();
  constexpr int kCalls = 64;
  constexpr uint32_t kSize = 256 * 1024;
  ASSERT_TRUE(c->SendRaw(Pipelined(kCalls, 7, kSize)).ok());
  absl::SleepFor(absl::Milliseconds(200));  // let the server fill its queues
  for (int i = 0; i < kCalls; ++i) {
    auto r = c->ReceiveRecord(kTimeout);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->size(), kAcceptedReplyHeaderSize + 4 + kSize);
  }
}

TEST_F(ServerTest, ClientThatDisconnectsMidRequestLeaksNothing) {
  StartServer();
  {
    auto c = NewClient();
    ASSERT_TRUE(c->SendRaw(Client::EncodeRecord(Client::EncodeCall(1, kTestProg, 1, 3,
                                                                   CallAuth{}, U32(200))))
                    .ok());
    while (v1_.started.load() == 0) absl::SleepFor(absl::Milliseconds(1));
    c->Close();
  }
  // Half a record, then gone.
  {
    auto c = NewClient();
    ASSERT_TRUE(c->SendRaw(U32(0x80000100u) + "partial").ok());
  }
  while (v1_.finished.load() < 1) absl::SleepFor(absl::Milliseconds(1));
  auto c = NewClient();
  auto r = Echo(*c, 1);
  ASSERT_TRUE(r.ok()) << r.status();
}

TEST_F(ServerTest, DroppedCallTimesOutAndNextCallWorks) {
  StartServer();
  auto c = NewClient();
  u_int v = 0, out = 0;
  absl::Status s =
      c->Call(kTestProg, 1, 6, XdrU(), &v, XdrU(), &out, absl::Milliseconds(200));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  auto r = Echo(*c, 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, 6u);
}

TEST_F(ServerTest, StopWaitsForInFlightCallsAndTheirReplies) {
  StartServer();
  constexpr int kClients = 6;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&] {
      auto c = Client::Connect("127.0.0.1", port_, kTimeout);
      if (!c.ok()) return;
      u_int ms = 300, out = 0;
      if ((*c)->Call(kTestProg, 1, 3, XdrU(), &ms, XdrU(), &out, kTimeout).ok()) {
        ok.fetch_add(1);
      }
    });
  }
  while (v1_.started.load() < 4) absl::SleepFor(absl::Milliseconds(1));
  server_->Stop();
  EXPECT_EQ(v1_.running.load(), 0);
  EXPECT_EQ(v1_.started.load(), v1_.finished.load());
  for (auto& t : threads) t.join();
  // Every request that started got its reply before the connections were closed.
  EXPECT_EQ(ok.load(), v1_.finished.load());
  EXPECT_GE(ok.load(), 4);
  // New connections are refused now.
  EXPECT_FALSE(Client::Connect("127.0.0.1", port_, absl::Seconds(1)).ok());
  server_->Stop();  // idempotent
}

TEST_F(ServerTest, StopAfterDrainTimeoutDropsQueuedRequests) {
  ServerOptions opts;
  opts.worker_threads = 1;
  opts.drain_timeout = absl::Milliseconds(50);
  StartServer(opts);
  auto c = NewClient();
  ASSERT_TRUE(c->SendRaw(Pipelined(5, 3, 300)).ok());
  while (v1_.started.load() == 0) absl::SleepFor(absl::Milliseconds(1));
  const absl::Time t0 = absl::Now();
  server_->Stop();
  EXPECT_LT(absl::Now() - t0, absl::Seconds(1));  // not 5 × 300 ms
  EXPECT_EQ(v1_.started.load(), 1);
  EXPECT_EQ(v1_.running.load(), 0);
}

TEST_F(ServerTest, StartTwiceFailsAndListenAfterStartFails) {
  StartServer();
  EXPECT_EQ(server_->Start().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(server_->Listen("127.0.0.1", 0).ok());
}

TEST_F(ServerTest, ListenErrorNamesAddressAndPort) {
  StartServer();
  Server other(ServerOptions{});
  auto r = other.Listen("127.0.0.1", port_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(absl::StrCat("bind 127.0.0.1:", port_)),
            std::string::npos)
      << r.status();
  EXPECT_NE(r.status().message().find("in use"), std::string::npos) << r.status();
  EXPECT_EQ(other.Listen("not-an-ip", 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ServerTest, AllInterfacesListenerAcceptsIpv4) {
  server_ = std::make_unique<Server>(ServerOptions{});
  server_->AddProgram(&v1_);
  auto port = server_->Listen("", 0);
  ASSERT_TRUE(port.ok()) << port.status();
  ASSERT_TRUE(server_->Start().ok());
  auto c = Client::Connect("127.0.0.1", *port, kTimeout);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(Echo(**c, 1).ok());
}

TEST_F(ServerTest, UdpDatagramIsOneRecord) {
  StartServer(ServerOptions{}, /*udp=*/true);
  UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(fd.valid());
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port_);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  const std::string call = Client::EncodeCall(31, kTestProg, 3, 1, CallAuth{}, U32(9));
  ASSERT_EQ(sendto(fd.get(), call.data(), call.size(), 0,
                   reinterpret_cast<sockaddr*>(&sa), sizeof(sa)),
            static_cast<ssize_t>(call.size()));
  char buf[512];
  const ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
  ASSERT_EQ(n, static_cast<ssize_t>(kAcceptedReplyHeaderSize + 4));
  XDR x;
  xdrmem_create(&x, buf, static_cast<u_int>(n), XDR_DECODE);
  uint32_t xid = 0;
  RpcError e;
  ASSERT_TRUE(DecodeReplyHeader(&x, &xid, &e).ok());
  u_int v = 0;
  ASSERT_TRUE(xdr_u_int(&x, &v));
  xdr_destroy(&x);
  EXPECT_EQ(xid, 31u);
  EXPECT_TRUE(e.is_success());
  EXPECT_EQ(v, 10u);
}

// ---- duplicate request cache and limits ----

uint32_t ResultU32(const std::string& reply) {
  const std::string last = reply.substr(reply.size() - 4);
  return (uint8_t(last[0]) << 24) | (uint8_t(last[1]) << 16) | (uint8_t(last[2]) << 8) |
         uint8_t(last[3]);
}

TEST_F(ServerTest, RetransmitOnANewConnectionWhileTheOriginalRunsGetsTheOriginalsReply) {
  StartServer();
  const std::string call =
      Client::EncodeRecord(Client::EncodeCall(77, kTestProg, 1, 10, CallAuth{}, U32(300)));
  auto first = NewClient();
  ASSERT_TRUE(first->SendRaw(call).ok());
  while (v1_.started.load() == 0) absl::SleepFor(absl::Milliseconds(1));
  // The client reconnected (new port) and retransmits while the original runs.
  auto second = NewClient();
  ASSERT_TRUE(second->SendRaw(call).ok());
  auto r2 = second->ReceiveRecord(kTimeout);
  ASSERT_TRUE(r2.ok()) << r2.status();
  auto r1 = first->ReceiveRecord(kTimeout);
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(*r1, *r2);
  EXPECT_EQ(ResultU32(*r2), 1u);
  EXPECT_EQ(server_->counters().drc_parked.load(), 1u);
  // After it finished: replayed from the cache.
  auto third = NewClient();
  auto r3 = third->CallRaw(call, kTimeout);
  ASSERT_TRUE(r3.ok()) << r3.status();
  EXPECT_EQ(*r3, *r1);
  EXPECT_EQ(server_->counters().drc_replays.load(), 1u);
  EXPECT_EQ(v1_.counted.load(), 1) << "a retransmit was executed";
  // A new xid is a new call.
  auto r4 = third->CallRaw(
      Client::EncodeRecord(Client::EncodeCall(78, kTestProg, 1, 10, CallAuth{}, U32(0))),
      kTimeout);
  ASSERT_TRUE(r4.ok()) << r4.status();
  EXPECT_EQ(ResultU32(*r4), 2u);
}

TEST_F(ServerTest, WithoutTheCacheARetransmitRunsAgain) {
  // The control for the test above: the property comes from the cache.
  ServerOptions opts;
  opts.drc.max_entries = 0;
  StartServer(opts);
  const std::string call =
      Client::EncodeRecord(Client::EncodeCall(77, kTestProg, 1, 10, CallAuth{}, U32(0)));
  auto c = NewClient();
  ASSERT_TRUE(c->CallRaw(call, kTimeout).ok());
  auto again = c->CallRaw(call, kTimeout);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(ResultU32(*again), 2u);
}

// knfsd's svc_check_conn_limits(): a new connection beyond the limit is admitted by
// closing an old one that loses nothing — here the one idle the longest.
TEST_F(ServerTest, ConnectionBeyondMaxConnectionsClosesTheLongestIdleOne) {
  ServerOptions opts;
  opts.max_connections = 3;
  StartServer(opts);
  std::vector<std::unique_ptr<Client>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(NewClient());
    ASSERT_TRUE(Echo(*held.back(), i).ok());
  }
  ASSERT_TRUE(Echo(*held[0], 7).ok());  // held[1] is now the one idle the longest
  auto extra = NewClient();
  ASSERT_NE(extra, nullptr);
  EXPECT_TRUE(Echo(*extra, 1).ok()) << "the new connection was not admitted";
  EXPECT_EQ(Echo(*held[1], 1).status().code(), absl::StatusCode::kUnavailable)
      << "the longest-idle connection was kept";
  EXPECT_TRUE(Echo(*held[0], 5).ok());
  EXPECT_TRUE(Echo(*held[2], 5).ok());
  EXPECT_EQ(server_->counters().connections_evicted.load(), 1u);
  EXPECT_EQ(server_->counters().connections_refused.load(), 0u);
}

// A connection with a request running, or with replies it has not read yet, is never
// the one closed; when every connection is busy, the new one is refused instead.
TEST_F(ServerTest, BusyConnectionsAreNeverEvictedAndANewOneIsRefusedWhenAllAreBusy) {
  ServerOptions opts;
  opts.max_connections = 2;
  StartServer(opts);
  auto non_reader = NewClient();  // the oldest: its replies wait unsent
  SendBlobs(*non_reader, 100, 32, 1 << 20);
  ASSERT_TRUE(WaitUntil([&] { return v1_.finished.load() >= 1; }));
  auto sleeper = NewClient();  // version 3: its own counters
  ASSERT_TRUE(sleeper
                  ->SendRaw(Client::EncodeRecord(
                      Client::EncodeCall(5, kTestProg, 3, 3, CallAuth{}, U32(1500))))
                  .ok());
  ASSERT_TRUE(WaitUntil([&] { return v3_.running.load() >= 1; }));
  auto extra = NewClient();  // accepted by the kernel, closed by the server
  ASSERT_NE(extra, nullptr);
  EXPECT_EQ(Echo(*extra, 1).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(server_->counters().connections_refused.load(), 1u);
  EXPECT_EQ(server_->counters().connections_evicted.load(), 0u);
  // Both busy connections are served to the end.
  auto r = sleeper->ReceiveRecord(kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ResultU32(*r), 1500u);
  ReceiveBlobs(*non_reader, 32, 1 << 20);
}

// --max-connections-per-client: a client at its own limit makes room by losing its
// own longest-idle connection (all of this test's clients share 127.0.0.1).
TEST_F(ServerTest, ConnectionBeyondThePerClientLimitClosesThatClientsLongestIdleOne) {
  ServerOptions opts;
  opts.max_connections_per_client = 2;
  StartServer(opts);
  auto first = NewClient();
  auto second = NewClient();
  ASSERT_TRUE(Echo(*first, 1).ok());
  ASSERT_TRUE(Echo(*second, 1).ok());
  auto third = NewClient();
  EXPECT_TRUE(Echo(*third, 1).ok());
  EXPECT_EQ(Echo(*first, 1).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(Echo(*second, 1).ok());
  EXPECT_EQ(server_->counters().connections_evicted.load(), 1u);
  // A slot freed by a close is the client's again: no eviction needed.
  third->Close();
  ASSERT_TRUE(WaitUntil([&] {
    auto c = NewClient();
    return c != nullptr && Echo(*c, 1).ok() &&
           server_->counters().connections_evicted.load() == 1u;
  }));
}

// Issue 15 item 9, on the rpc layer: clients that ask for 1 MiB replies and do not
// read them. The server-wide reply memory stays at the cap (reservations are taken
// before a call runs, so none overshoots), a fresh client's small call is answered
// meanwhile, and every reply arrives once the clients read — the waiting calls start
// as the others drain (room is offered across connections).
TEST_F(ServerTest, RepliesBeyondTheServerWideCapWaitForRoomAndAllArrive) {
  constexpr int64_t kCap = 4 << 20;
  constexpr uint32_t kSize = 1 << 20;
  constexpr int kClients = 6, kCalls = 8;
  ServerOptions opts;
  opts.max_reply_bytes = kCap;
  StartServer(opts);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(NewClient());
    SendBlobs(*clients.back(), 1000 * i, kCalls, kSize);
  }
  // Three replies of 1 MiB (and their headers) fit under 4 MiB, a fourth does not.
  ASSERT_TRUE(WaitUntil([&] { return server_->reply_bytes_held() > 3 * int64_t{kSize}; }));
  auto fresh = NewClient();
  ASSERT_TRUE(Echo(*fresh, 1).ok()) << "a small call waits behind the cap";
  EXPECT_LE(server_->reply_bytes_held(), kCap + int64_t{kSmallReplyBytes});
  for (auto& c : clients) ReceiveBlobs(*c, kCalls, kSize);
  EXPECT_EQ(v1_.finished.load(), kClients * kCalls + 1);
}

// The per-connection cap: a connection that does not read holds at most its cap (plus
// what it may always start when it holds nothing), and gets every reply later.
TEST_F(ServerTest, PerConnectionReplyCapStopsStartingCallsUntilRepliesDrain) {
  constexpr size_t kCap = 2 << 20;
  constexpr uint32_t kSize = 1 << 20;
  ServerOptions opts;
  opts.max_reply_bytes_per_connection = kCap;
  StartServer(opts);
  auto c = NewClient();
  SendBlobs(*c, 1, 20, kSize);
  ASSERT_TRUE(WaitUntil([&] { return v1_.finished.load() >= 1; }));
  auto fresh = NewClient();
  ASSERT_TRUE(Echo(*fresh, 1).ok());  // a round trip of the loop
  EXPECT_LE(server_->reply_bytes_held(), static_cast<int64_t>(kCap));
  ReceiveBlobs(*c, 20, kSize);
}

TEST_F(ServerTest, IdleConnectionIsClosedButBusyAndRunningOnesAreNot) {
  ServerOptions opts;
  opts.idle_timeout = absl::Milliseconds(300);
  StartServer(opts);
  auto idle = NewClient();
  auto busy = NewClient();
  auto running = NewClient();
  ASSERT_TRUE(idle && busy && running);
  // A request running longer than the timeout keeps its connection.
  ASSERT_TRUE(running
                  ->SendRaw(Client::EncodeRecord(
                      Client::EncodeCall(5, kTestProg, 1, 3, CallAuth{}, U32(900))))
                  .ok());
  const absl::Time start = absl::Now();
  while (absl::Now() - start < absl::Milliseconds(900)) {
    ASSERT_TRUE(Echo(*busy, 1).ok()) << "an active connection was closed";
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(Echo(*idle, 1).status().code(), absl::StatusCode::kUnavailable)
      << "an idle connection was kept";
  auto r = running->ReceiveRecord(kTimeout);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ResultU32(*r), 900u);
  EXPECT_GE(server_->counters().connections_closed_idle.load(), 1u);
}

TEST(RpcbindTest, HiddenProgramsAreNeverRegistered) {
  TestProgram hidden(1, /*hidden=*/true);
  Server s(ServerOptions{});
  s.AddProgram(&hidden);
  // Nothing to register: no rpcbind is contacted, so this succeeds anywhere.
  EXPECT_TRUE(s.RegisterWithRpcbind(2049, 20048).ok());
  s.UnregisterFromRpcbind();
}

TEST(RpcbindTest, UnreachableRpcbindIsAnErrorNamingTheProgram) {
  TestProgram visible(1);
  Server s(ServerOptions{});
  s.AddProgram(&visible);
  absl::Status st = s.RegisterWithRpcbind(2049, 20048);
  if (st.ok()) {
    s.UnregisterFromRpcbind();
    GTEST_SKIP() << "an rpcbind is running on this host";
  }
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(st.message().find("test (program 536872823 version 1)"), std::string::npos)
      << st;
}

}  // namespace
}  // namespace localnfs::rpc
