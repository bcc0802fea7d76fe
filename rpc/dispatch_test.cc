#include "rpc/dispatch.h"

#include <memory>
#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "rpc/client.h"
#include "rpc/message.h"
#include "rpc/record.h"
#include "rpc/reply.h"
#include "rpc/test_program.h"

namespace localnfs::rpc {
namespace {

using testing::U32;

using testing::kTestProg;
using testing::TestProgram;

class DispatcherTest : public ::testing::Test {
 protected:
  DispatcherTest() : dispatcher_(&counters_), conn_(1, PeerAddress{}, PeerAddress{}) {
    dispatcher_.AddProgram(&v3_);
    dispatcher_.AddProgram(&v1_);
  }

  // Runs `record`; returns false if no reply. Else *e and *body (bytes after the
  // reply header) are filled.
  bool Run(const std::string& record, RpcError* e, std::string* body = nullptr,
           uint32_t* xid_out = nullptr) {
    std::optional<std::string> out =
        dispatcher_.Handle(record, &conn_, /*with_record_mark=*/false);
    if (!out) return false;
    std::string& reply = *out;
    XDR x;
    xdrmem_create(&x, reply.data(), static_cast<u_int>(reply.size()), XDR_DECODE);
    uint32_t xid = 0;
    EXPECT_TRUE(DecodeReplyHeader(&x, &xid, e).ok());
    if (xid_out) *xid_out = xid;
    if (body) *body = reply.substr(xdr_getpos(&x));
    xdr_destroy(&x);
    return true;
  }

  std::string Call(uint32_t vers, uint32_t proc, const std::string& args,
                   const CallAuth& auth = CallAuth{}) {
    return Client::EncodeCall(42, kTestProg, vers, proc, auth, args);
  }

  ServerCounters counters_;
  Dispatcher dispatcher_;
  ConnectionInfo conn_;
  TestProgram v1_{1}, v3_{3};
};

TEST_F(DispatcherTest, EchoSucceedsWithResult) {
  RpcError e;
  std::string body;
  uint32_t xid = 0;
  ASSERT_TRUE(Run(Call(1, 1, U32(41)), &e, &body, &xid));
  EXPECT_TRUE(e.is_success());
  EXPECT_EQ(xid, 42u);
  EXPECT_EQ(body, U32(42));
  EXPECT_EQ(counters_.calls.load(), 1u);
}

TEST_F(DispatcherTest, RecordMarkIsPrependedForTcp) {
  std::optional<std::string> reply = dispatcher_.Handle(Call(1, 0, ""), &conn_, true);
  ASSERT_TRUE(reply);
  RecordDecoder d(1024);
  std::vector<std::string> out;
  ASSERT_TRUE(d.Feed(*reply, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].size(), kAcceptedReplyHeaderSize);
}

TEST_F(DispatcherTest, UnknownProgramIsProgUnavail) {
  RpcError e;
  ASSERT_TRUE(Run(Client::EncodeCall(1, 999, 1, 0, CallAuth{}, ""), &e));
  EXPECT_EQ(e.accept_stat, AcceptStat::kProgUnavail);
  EXPECT_EQ(counters_.bad_headers.load(), 1u);
}

TEST_F(DispatcherTest, WrongVersionIsProgMismatchWithLowestAndHighest) {
  RpcError e;
  ASSERT_TRUE(Run(Call(2, 0, ""), &e));
  EXPECT_EQ(e.accept_stat, AcceptStat::kProgMismatch);
  EXPECT_EQ(e.low, 1u);
  EXPECT_EQ(e.high, 3u);
}

TEST_F(DispatcherTest, MissingOrOutOfRangeProcedureIsProcUnavail) {
  RpcError e;
  ASSERT_TRUE(Run(Call(1, 2, ""), &e));
  EXPECT_EQ(e.accept_stat, AcceptStat::kProcUnavail);
  ASSERT_TRUE(Run(Call(1, v1_.proc_count(), ""), &e));
  EXPECT_EQ(e.accept_stat, AcceptStat::kProcUnavail);
  ASSERT_TRUE(Run(Call(3, 0xffffffffu, ""), &e));
  EXPECT_EQ(e.accept_stat, AcceptStat::kProcUnavail);
}

TEST_F(DispatcherTest, UndecodableArgsAreGarbageArgs) {
  RpcError e;
  ASSERT_TRUE(Run(Call(1, 1, "ab"), &e));  // a u_int needs 4 bytes
  EXPECT_EQ(e.accept_stat, AcceptStat::kGarbageArgs);
  EXPECT_EQ(counters_.garbage_args.load(), 1u);
  EXPECT_EQ(v1_.started.load(), 0);
}

TEST_F(DispatcherTest, PartiallyDecodedArgsAreFreed) {
  // An opaque<> announcing 100 bytes with 10 present: xdr_bytes allocates, then
  // fails; xdr_free must release it (ASan reports the leak otherwise).
  RpcError e;
  ASSERT_TRUE(Run(Call(1, 9, U32(100) + std::string(10, 'z')), &e));
  EXPECT_EQ(e.accept_stat, AcceptStat::kGarbageArgs);
  std::string body;
  ASSERT_TRUE(Run(Call(1, 9, U32(5) + std::string(8, 'z')), &e, &body));
  EXPECT_TRUE(e.is_success());
  EXPECT_EQ(body, U32(5));
}

TEST_F(DispatcherTest, TrailingBytesAfterArgsAreIgnored) {
  RpcError e;
  std::string body;
  ASSERT_TRUE(Run(Call(1, 1, U32(1) + "trailing"), &e, &body));
  EXPECT_TRUE(e.is_success());
  EXPECT_EQ(body, U32(2));
}

TEST_F(DispatcherTest, ProgramResultsMapToAcceptStats) {
  RpcError e;
  ASSERT_TRUE(Run(Call(1, 4, U32(0)), &e));
  EXPECT_EQ(e.accept_stat, AcceptStat::kGarbageArgs);
  ASSERT_TRUE(Run(Call(1, 5, U32(0)), &e));
  EXPECT_EQ(e.accept_stat, AcceptStat::kSystemErr);
  EXPECT_FALSE(Run(Call(1, 6, U32(0)), &e));  // kDrop: no reply
}

TEST_F(DispatcherTest, ResultAllocatedByProgramIsEncodedAndFreed) {
  RpcError e;
  std::string body;
  ASSERT_TRUE(Run(Call(3, 7, U32(5)), &e, &body));
  EXPECT_TRUE(e.is_success());
  EXPECT_EQ(body, U32(5) + "xxxxx" + std::string(3, '\0'));
}

TEST_F(DispatcherTest, RpcVersionMismatchIsDenied) {
  std::string msg = Call(1, 0, "");
  msg[11] = 3;  // rpcvers
  RpcError e;
  ASSERT_TRUE(Run(msg, &e));
  EXPECT_EQ(e.reply_stat, ReplyStat::kDenied);
  EXPECT_EQ(e.reject_stat, RejectStat::kRpcMismatch);
  EXPECT_EQ(e.low, 2u);
  EXPECT_EQ(e.high, 2u);
}

TEST_F(DispatcherTest, AuthSysCredentialsReachTheProgram) {
  CallAuth auth;
  auth.flavor = AuthFlavor::kSys;
  auth.cred.uid = 1000;
  auth.cred.gid = 100;
  for (int i = 0; i < 16; ++i) auth.cred.groups.push_back(i);
  RpcError e;
  std::string body;
  ASSERT_TRUE(Run(Call(1, 8, "", auth), &e, &body));
  EXPECT_TRUE(e.is_success());
  EXPECT_EQ(body, U32(1000) + U32(100) + U32(16));
  auth.cred.groups.push_back(16);
  ASSERT_TRUE(Run(Call(1, 8, "", auth), &e));
  EXPECT_EQ(e.reply_stat, ReplyStat::kDenied);
  EXPECT_EQ(e.reject_stat, RejectStat::kAuthError);
  EXPECT_EQ(e.auth_stat, AuthStat::kBadCred);
}

TEST_F(DispatcherTest, AuthNoneRunsAsNobody) {
  RpcError e;
  std::string body;
  ASSERT_TRUE(Run(Call(1, 8, ""), &e, &body));
  EXPECT_EQ(body, U32(kNobodyUid) + U32(kNobodyGid) + U32(0));
}

TEST_F(DispatcherTest, UnsupportedFlavorIsTooWeak) {
  std::string msg = Call(1, 0, "");
  msg[27] = 6;  // cred flavor RPCSEC_GSS
  RpcError e;
  ASSERT_TRUE(Run(msg, &e));
  EXPECT_EQ(e.auth_stat, AuthStat::kTooWeak);
}

// Bulk data by reference is the same record on the wire as bulk data copied.
TEST_F(DispatcherTest, BulkSegmentsPlusBytesAreTheRecordACopyingReplyWouldBe) {
  for (uint32_t n : {1023u, 1024u, 4097u, 70001u}) {
    std::optional<std::string> copied = dispatcher_.Handle(Call(1, 7, U32(n)), &conn_, true);
    ASSERT_TRUE(copied);
    std::unique_ptr<rpc::Call> call = dispatcher_.Receive(Call(1, 7, U32(n)), &conn_);
    ReplyRecord reply;
    Dispatcher::RunOptions run;
    run.bulk_by_reference = true;
    ASSERT_EQ(dispatcher_.Run(*call, &reply, std::move(run)), Dispatcher::Outcome::kReply);
    if (n < 1024) {
      EXPECT_EQ(reply.bulk_segments(), 0u);  // BLOB keeps small data inline
    } else {
      ASSERT_EQ(reply.bulk_segments(), 1u) << n;
      EXPECT_EQ(reply.largest_bulk(), n);
      // The header and length word, the data, its padding.
      EXPECT_EQ(reply.bytes().size(), kRecordMarkSize + kAcceptedReplyHeaderSize + 4 +
                                          (4 - n % 4) % 4);
    }
    EXPECT_EQ(reply.Flatten(), *copied) << n;
    EXPECT_EQ(reply.size(), copied->size());
  }
}

// Where the bulk data sits in the result does not matter (a COMPOUND puts GETATTR after
// READ): SANDWICH's data lies between two words of its result.
TEST_F(DispatcherTest, BulkDataInTheMiddleOfAResultIsASegmentBetweenItsNeighbours) {
  for (uint32_t n : {1u, 2u, 3u, 4u, 5000u, 65537u}) {
    std::optional<std::string> copied = dispatcher_.Handle(Call(1, 12, U32(n)), &conn_, true);
    ASSERT_TRUE(copied);
    // The result as a copying encoder writes it: n, opaque<n> 'y', n + 1.
    const size_t pad = (4 - n % 4) % 4;
    EXPECT_EQ(copied->substr(kRecordMarkSize + kAcceptedReplyHeaderSize),
              U32(n) + U32(n) + std::string(n, 'y') + std::string(pad, '\0') + U32(n + 1));
    std::unique_ptr<rpc::Call> call = dispatcher_.Receive(Call(1, 12, U32(n)), &conn_);
    ReplyRecord reply;
    Dispatcher::RunOptions run;
    run.bulk_by_reference = true;
    ASSERT_EQ(dispatcher_.Run(*call, &reply, std::move(run)), Dispatcher::Outcome::kReply);
    ASSERT_EQ(reply.bulk_segments(), 1u);
    EXPECT_EQ(reply.Flatten(), *copied) << n;
    // Three iovecs: everything up to the data's length word, the data, then its
    // padding and the word after it.
    iovec iov[8];
    ASSERT_EQ(reply.Iovecs(0, iov, 8), 3);
    EXPECT_EQ(iov[0].iov_len, kRecordMarkSize + kAcceptedReplyHeaderSize + 8);
    EXPECT_EQ(std::string(static_cast<char*>(iov[1].iov_base), iov[1].iov_len),
              std::string(n, 'y'));
    EXPECT_EQ(std::string(static_cast<char*>(iov[2].iov_base), iov[2].iov_len),
              std::string(pad, '\0') + U32(n + 1));
    // The record mark counts the data.
    EXPECT_EQ(copied->substr(0, 4), reply.bytes().substr(0, 4));
  }
}

// A reply the duplicate request cache keeps is one string: its bulk data is copied,
// and a retransmit gets the same bytes.
TEST(DispatcherDrcTest, AReplyTheCacheKeepsCopiesItsBulkData) {
  ServerCounters counters;
  DuplicateRequestCache drc(DrcOptions{});
  Dispatcher dispatcher(&counters, &drc);
  testing::TestProgram v1(1);
  dispatcher.AddProgram(&v1);
  ConnectionInfo conn(1, PeerAddress{}, PeerAddress{});
  const std::string call = Client::EncodeCall(1, kTestProg, 1, 13, CallAuth{}, U32(4096));
  ReplyRecord replies[2];
  for (ReplyRecord& reply : replies) {
    std::unique_ptr<rpc::Call> c = dispatcher.Receive(call, &conn);
    Dispatcher::RunOptions run;
    run.bulk_by_reference = true;
    ASSERT_EQ(dispatcher.Run(*c, &reply, std::move(run)), Dispatcher::Outcome::kReply);
    EXPECT_EQ(reply.bulk_segments(), 0u);
  }
  EXPECT_EQ(counters.drc_replays.load(), 1u);
  EXPECT_EQ(replies[0].Flatten(), replies[1].Flatten());
  EXPECT_EQ(replies[0].size(), kRecordMarkSize + kAcceptedReplyHeaderSize + 4 + 4096);
}

// A call that would block on the event loop moves to a worker as it is: the worker's
// run continues it (the program finds the state the first run left) and nothing is
// counted twice.
TEST_F(DispatcherTest, WouldBlockIsReportedOnlyWhenTheCallerMayRunItLater) {
  std::unique_ptr<rpc::Call> call = dispatcher_.Receive(Call(1, 11, U32(1)), &conn_);
  ReplyRecord record;
  Dispatcher::RunOptions on_loop;
  on_loop.with_record_mark = false;
  on_loop.must_not_block = true;
  EXPECT_EQ(dispatcher_.Run(*call, &record, std::move(on_loop)),
            Dispatcher::Outcome::kWouldBlock);
  EXPECT_EQ(record.size(), 0u);
  EXPECT_EQ(counters_.calls.load(), 1u);
  // On a worker (no must_not_block): it continues and answers.
  Dispatcher::RunOptions on_worker;
  on_worker.with_record_mark = false;
  ASSERT_EQ(dispatcher_.Run(*call, &record, std::move(on_worker)), Dispatcher::Outcome::kReply);
  std::string reply = record.Flatten();
  XDR x;
  xdrmem_create(&x, reply.data(), static_cast<u_int>(reply.size()), XDR_DECODE);
  uint32_t xid = 0;
  RpcError e;
  ASSERT_TRUE(DecodeReplyHeader(&x, &xid, &e).ok());
  EXPECT_EQ(e.accept_stat, AcceptStat::kSuccess);
  EXPECT_EQ(reply.substr(xdr_getpos(&x)), U32(2));
  xdr_destroy(&x);
  EXPECT_EQ(v1_.paged_continued.load(), 1) << "run again from the start, not continued";
  EXPECT_EQ(counters_.calls.load(), 1u);  // counted once
  // A call that is not told it may block later runs where it is.
  RpcError e2;
  std::string body;
  ASSERT_TRUE(Run(Call(1, 11, U32(5)), &e2, &body));
  EXPECT_EQ(body, U32(6));
  EXPECT_EQ(counters_.calls.load(), 2u);
}

TEST_F(DispatcherTest, EveryCallOfAProcedureIsCountedAndTimedOnceWhenItEnds) {
  const ProcedureStats* v1 = dispatcher_.procedure_stats(v1_);
  const ProcedureStats* v3 = dispatcher_.procedure_stats(v3_);
  ASSERT_NE(v1, nullptr);
  ASSERT_NE(v3, nullptr);
  EXPECT_NE(v1, v3) << "each version has its own";
  TestProgram unregistered{2};
  EXPECT_EQ(dispatcher_.procedure_stats(unregistered), nullptr);
  RpcError e;
  ASSERT_TRUE(Run(Call(1, 1, U32(1)), &e));  // ECHO
  ASSERT_TRUE(Run(Call(1, 1, U32(2)), &e));
  ASSERT_TRUE(Run(Call(3, 1, U32(3)), &e));
  ASSERT_TRUE(Run(Call(1, 3, U32(20)), &e));  // SLEEP 20 ms
  ASSERT_TRUE(Run(Call(1, 4, U32(0)), &e));   // GARBAGE: answered, still a call of it
  EXPECT_FALSE(Run(Call(1, 6, U32(0)), &e));  // DROP: no reply, still a call of it
  // Not calls of any procedure: unknown procedure, unknown version.
  ASSERT_TRUE(Run(Call(1, 2, ""), &e));
  ASSERT_TRUE(Run(Call(2, 1, U32(1)), &e));
  EXPECT_EQ(v1[1].calls(), 2u);
  EXPECT_EQ(v3[1].calls(), 1u);
  EXPECT_EQ(v1[3].calls(), 1u);
  EXPECT_EQ(v1[4].calls(), 1u);
  EXPECT_EQ(v1[6].calls(), 1u);
  EXPECT_EQ(v1[2].calls(), 0u);
  EXPECT_EQ(v1[0].calls(), 0u);
  // SLEEP's 20 ms land in the bucket (10 ms, 25 ms] and in the sum.
  const ProcedureStats::Snapshot sleep = v1[3].Read();
  EXPECT_GE(sleep.sum_ns, 20'000'000u);
  size_t first = 0;
  while (sleep.cumulative[first] == 0) ++first;
  ASSERT_LT(first, ProcedureStats::kBucketBoundsNs.size());
  EXPECT_GE(ProcedureStats::kBucketBoundsNs[first], 20'000'000);
  EXPECT_EQ(sleep.cumulative.back(), 1u);

  // A call moved from the loop to a worker (kWouldBlock) is counted once, at its end.
  std::unique_ptr<rpc::Call> call = dispatcher_.Receive(Call(1, 11, U32(1)), &conn_);
  ReplyRecord record;
  Dispatcher::RunOptions on_loop;
  on_loop.with_record_mark = false;
  on_loop.must_not_block = true;
  ASSERT_EQ(dispatcher_.Run(*call, &record, std::move(on_loop)), Dispatcher::Outcome::kWouldBlock);
  EXPECT_EQ(v1[11].calls(), 0u);
  Dispatcher::RunOptions on_worker;
  on_worker.with_record_mark = false;
  ASSERT_EQ(dispatcher_.Run(*call, &record, std::move(on_worker)), Dispatcher::Outcome::kReply);
  EXPECT_EQ(v1[11].calls(), 1u);
}

TEST(ProcedureStatsTest, BucketsAreCumulativeAndCallsTheirTotal) {
  ProcedureStats s;
  s.Record(-5);             // a clock step: counted as 0, in the first bucket
  s.Record(1'000);          // exactly a bound: in that bucket (le)
  s.Record(1'001);          // just above: the next one
  s.Record(20'000'000'000);  // beyond 10 s: only in +Inf
  const ProcedureStats::Snapshot r = s.Read();
  EXPECT_EQ(r.calls, 4u);
  EXPECT_EQ(r.cumulative[0], 2u);  // le 1 us
  EXPECT_EQ(r.cumulative[1], 3u);  // le 2.5 us
  EXPECT_EQ(r.cumulative[ProcedureStats::kBuckets - 2], 3u);  // le 10 s
  EXPECT_EQ(r.cumulative[ProcedureStats::kBuckets - 1], 4u);  // +Inf
  for (size_t i = 1; i < ProcedureStats::kBuckets; ++i)
    EXPECT_LE(r.cumulative[i - 1], r.cumulative[i]);
  EXPECT_EQ(r.sum_ns, 1'000u + 1'001u + 20'000'000'000u);
  EXPECT_EQ(s.calls(), 4u);
}

TEST_F(DispatcherTest, IsQuickReadsTheProcedureFlagAndRefusesWhatIsNoCall) {
  auto quick = [&](const std::string& record) {
    return dispatcher_.Receive(record, &conn_)->quick();
  };
  EXPECT_TRUE(quick(Call(1, 1, U32(7))));    // ECHO
  EXPECT_TRUE(quick(Call(3, 1, U32(7))));    // in every version
  EXPECT_FALSE(quick(Call(1, 3, U32(7))));   // SLEEP
  EXPECT_FALSE(quick(Call(1, 2, "")));       // missing procedure
  EXPECT_FALSE(quick(Call(1, 99, "")));      // out of range
  EXPECT_FALSE(quick(Call(2, 1, U32(7))));   // unregistered version
  EXPECT_FALSE(quick(Client::EncodeCall(42, kTestProg + 1, 1, 1, CallAuth{}, "")));
  std::string echo = Call(1, 1, U32(7));
  EXPECT_FALSE(quick(echo.substr(0, 23)));  // cut before the procedure
  std::string reply = echo;
  reply[7] = 1;  // msg_type REPLY
  EXPECT_FALSE(quick(reply));
  std::string v3rpc = echo;
  v3rpc[11] = 3;  // rpcvers 3
  EXPECT_FALSE(quick(v3rpc));
  EXPECT_FALSE(quick(""));
}

// The reply memory the server reserves before it starts a call (rpc/server.h,
// "Memory for replies"): the bound of a procedure that declares one, read past any
// credential, the default otherwise, and a small answer for anything that is no call.
TEST_F(DispatcherTest, ReplySizeBoundsTheReplyFromTheUndecodedArguments) {
  auto bound = [&](const std::string& record) {
    return dispatcher_.Receive(record, &conn_)->reply_bound();
  };
  constexpr size_t kHeader = kRecordMarkSize + kAcceptedReplyHeaderSize;
  EXPECT_EQ(bound(Call(1, 7, U32(1 << 20))), kHeader + 4 + (1 << 20));  // BLOB
  EXPECT_EQ(bound(Call(1, 7, U32(5))), kHeader + 4 + 8);  // padded
  CallAuth sys;
  sys.flavor = AuthFlavor::kSys;
  sys.cred.uid = 1000;
  sys.cred.groups = {1, 2, 3};
  sys.machine_name = "a-client";
  EXPECT_EQ(bound(Call(1, 7, U32(70000), sys)), kHeader + 4 + 70000);
  EXPECT_EQ(bound(Call(1, 1, U32(7))), kHeader + kDefaultResultSize);
  // Arguments cut short: the call is garbage, its reply small.
  EXPECT_EQ(bound(Call(1, 7, "")), kHeader + 4);
  const size_t no_result = bound("");
  EXPECT_LT(no_result, 64u);
  EXPECT_EQ(bound(Call(1, 2, "")), no_result);   // missing procedure
  EXPECT_EQ(bound(Call(2, 7, U32(1 << 20))), no_result);  // no version 2
  std::string blob = Call(1, 7, U32(1 << 20));
  EXPECT_EQ(bound(blob.substr(0, 30)), no_result);  // cut in the credential
  std::string huge_cred = blob;
  huge_cred[28] = '\x7f';  // the credential's length word: far beyond the record
  EXPECT_EQ(bound(huge_cred), no_result);
  std::string reply = blob;
  reply[7] = 1;  // msg_type REPLY
  EXPECT_EQ(bound(reply), no_result);
}

TEST_F(DispatcherTest, RecordTooShortForAHeaderIsDropped) {
  RpcError e;
  EXPECT_FALSE(Run("abc", &e));
  EXPECT_FALSE(Run(U32(1) + U32(1), &e));  // a REPLY
  EXPECT_EQ(counters_.bad_headers.load(), 2u);
}

TEST_F(DispatcherTest, TruncatedHeaderAfterXidIsGarbageArgs) {
  RpcError e;
  uint32_t xid = 0;
  ASSERT_TRUE(Run(U32(7) + U32(0) + U32(2) + U32(kTestProg), &e, nullptr, &xid));
  EXPECT_EQ(xid, 7u);
  EXPECT_EQ(e.accept_stat, AcceptStat::kGarbageArgs);
}

}  // namespace
}  // namespace localnfs::rpc
