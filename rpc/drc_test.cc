// Unit tests of the duplicate request cache (rpc/drc.h): replay, parking of a
// retransmit while the original runs, key identity, the entry and byte bounds, age.
#include "rpc/drc.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace localnfs::rpc {
namespace {

using Outcome = DuplicateRequestCache::Outcome;

constexpr char kClientA[] = "\x7f\x00\x00\x01";
constexpr char kClientB[] = "\x7f\x00\x00\x02";

DrcKey Key(uint32_t xid, absl::string_view args = "args", const char* client = kClientA) {
  return DrcKey::Of(std::string(client, 4), xid, 100003, 3, 12, args);
}

DrcOptions Options(size_t entries, size_t bytes = size_t{1} << 20) {
  DrcOptions o;
  o.max_entries = entries;
  o.max_bytes = bytes;
  return o;
}

// A waiter that records what it was given.
struct Parked {
  std::atomic<int> calls{0};
  std::string reply;
  DuplicateRequestCache::Waiter Waiter() {
    return [this](absl::string_view r) {
      reply = std::string(r);
      calls.fetch_add(1);
    };
  }
};

TEST(DrcTest, FirstCallRunsAndItsRetransmitReplaysTheSavedReply) {
  DuplicateRequestCache drc(Options(16));
  EXPECT_EQ(drc.Begin(Key(1), nullptr).outcome, Outcome::kRun);
  drc.Complete(Key(1), "reply-1");
  DuplicateRequestCache::Lookup again = drc.Begin(Key(1), nullptr);
  EXPECT_EQ(again.outcome, Outcome::kReplay);
  EXPECT_EQ(again.reply, "reply-1");
  EXPECT_EQ(drc.stats().replays, 1u);
  EXPECT_EQ(drc.stats().misses, 1u);
}

TEST(DrcTest, RetransmitWhileTheOriginalRunsWaitsForItsReply) {
  DuplicateRequestCache drc(Options(16));
  ASSERT_EQ(drc.Begin(Key(1), nullptr).outcome, Outcome::kRun);
  Parked first, second;
  EXPECT_EQ(drc.Begin(Key(1), first.Waiter()).outcome, Outcome::kWaiting);
  EXPECT_EQ(drc.Begin(Key(1), second.Waiter()).outcome, Outcome::kWaiting);
  EXPECT_EQ(first.calls.load(), 0);  // nothing until the original completes
  drc.Complete(Key(1), "the reply");
  EXPECT_EQ(first.calls.load(), 1);
  EXPECT_EQ(first.reply, "the reply");
  EXPECT_EQ(second.calls.load(), 1);
  EXPECT_EQ(second.reply, "the reply");
  EXPECT_EQ(drc.stats().parked, 2u);
}

TEST(DrcTest, RetransmitWithoutAWaiterOrBeyondTheWaiterBoundIsDropped) {
  DuplicateRequestCache drc(Options(16));
  ASSERT_EQ(drc.Begin(Key(1), nullptr).outcome, Outcome::kRun);
  EXPECT_EQ(drc.Begin(Key(1), nullptr).outcome, Outcome::kDrop);
  std::vector<Parked> parked(DuplicateRequestCache::kMaxWaitersPerEntry + 1);
  for (size_t i = 0; i < DuplicateRequestCache::kMaxWaitersPerEntry; ++i)
    EXPECT_EQ(drc.Begin(Key(1), parked[i].Waiter()).outcome, Outcome::kWaiting);
  EXPECT_EQ(drc.Begin(Key(1), parked.back().Waiter()).outcome, Outcome::kDrop);
  drc.Complete(Key(1), "r");
  for (size_t i = 0; i < DuplicateRequestCache::kMaxWaitersPerEntry; ++i)
    EXPECT_EQ(parked[i].calls.load(), 1);
  EXPECT_EQ(parked.back().calls.load(), 0);
}

TEST(DrcTest, AbandonedCallReleasesItsWaitersUncalledAndRunsAgain) {
  DuplicateRequestCache drc(Options(16));
  ASSERT_EQ(drc.Begin(Key(1), nullptr).outcome, Outcome::kRun);
  Parked p;
  auto alive = std::make_shared<int>(0);
  std::weak_ptr<int> watch = alive;
  EXPECT_EQ(drc.Begin(Key(1), [&p, keep = std::move(alive)](
                                  absl::string_view r) { p.calls.fetch_add(1); })
                .outcome,
            Outcome::kWaiting);
  drc.Abandon(Key(1));
  EXPECT_EQ(p.calls.load(), 0);
  EXPECT_TRUE(watch.expired()) << "an abandoned waiter (and what it holds) must be freed";
  EXPECT_EQ(drc.Begin(Key(1), nullptr).outcome, Outcome::kRun);
  EXPECT_EQ(drc.stats().entries, 1u);
}

TEST(DrcTest, XidArgumentsAndClientAreAllPartOfTheKey) {
  DuplicateRequestCache drc(Options(16));
  ASSERT_EQ(drc.Begin(Key(1, "remove a"), nullptr).outcome, Outcome::kRun);
  drc.Complete(Key(1, "remove a"), "ok");
  EXPECT_EQ(drc.Begin(Key(2, "remove a"), nullptr).outcome, Outcome::kRun)
      << "another xid is another call";
  EXPECT_EQ(drc.Begin(Key(1, "remove b"), nullptr).outcome, Outcome::kRun)
      << "same xid, other arguments: a new call";
  EXPECT_EQ(drc.Begin(Key(1, "remove a", kClientB), nullptr).outcome, Outcome::kRun)
      << "same xid from another client";
  DrcKey other_proc = Key(1, "remove a");
  other_proc.proc = 14;
  EXPECT_EQ(drc.Begin(other_proc, nullptr).outcome, Outcome::kRun);
  EXPECT_EQ(drc.Begin(Key(1, "remove a"), nullptr).outcome, Outcome::kReplay);
}

TEST(DrcTest, EntryBoundEvictsTheLeastRecentlyUsedFinishedEntry) {
  constexpr size_t kMax = 8;
  DuplicateRequestCache drc(Options(kMax));
  for (uint32_t xid = 0; xid < kMax; ++xid) {
    ASSERT_EQ(drc.Begin(Key(xid), nullptr).outcome, Outcome::kRun);
    drc.Complete(Key(xid), "r" + std::to_string(xid));
  }
  // Use xid 0 again: xid 1 is now the least recently used.
  ASSERT_EQ(drc.Begin(Key(0), nullptr).outcome, Outcome::kReplay);
  for (uint32_t xid = kMax; xid < 3 * kMax; ++xid) {
    ASSERT_EQ(drc.Begin(Key(xid), nullptr).outcome, Outcome::kRun);
    drc.Complete(Key(xid), "r");
    ASSERT_LE(drc.stats().entries, kMax);
    if (xid == kMax) {
      EXPECT_EQ(drc.Begin(Key(1), nullptr).outcome, Outcome::kRun) << "1 was evicted";
      drc.Abandon(Key(1));
      EXPECT_EQ(drc.Begin(Key(0), nullptr).outcome, Outcome::kReplay) << "0 was kept";
    }
  }
  EXPECT_EQ(drc.stats().entries, kMax);
  EXPECT_GE(drc.stats().evictions, 2 * kMax - 1);
}

TEST(DrcTest, ByteBoundEvictsAndOversizedRepliesAreNotKept) {
  const size_t entry = DuplicateRequestCache::kEntryOverhead + 4 + 1000;
  DuplicateRequestCache drc(Options(1000, 20 * entry));
  for (uint32_t xid = 0; xid < 100; ++xid) {
    ASSERT_EQ(drc.Begin(Key(xid), nullptr).outcome, Outcome::kRun);
    drc.Complete(Key(xid), std::string(1000, 'r'));
    ASSERT_LE(drc.stats().bytes, 20 * entry);
  }
  EXPECT_EQ(drc.stats().entries, 20u);
  // More than max_bytes / 16: handed to the waiters but not kept.
  ASSERT_EQ(drc.Begin(Key(500), nullptr).outcome, Outcome::kRun);
  Parked p;
  ASSERT_EQ(drc.Begin(Key(500), p.Waiter()).outcome, Outcome::kWaiting);
  drc.Complete(Key(500), std::string(2 * entry, 'x'));
  EXPECT_EQ(p.reply.size(), 2 * entry);
  EXPECT_EQ(drc.Begin(Key(500), nullptr).outcome, Outcome::kRun);
}

TEST(DrcTest, CacheFullOfCallsInProgressRunsUncached) {
  DuplicateRequestCache drc(Options(4));
  for (uint32_t xid = 0; xid < 4; ++xid)
    ASSERT_EQ(drc.Begin(Key(xid), nullptr).outcome, Outcome::kRun);
  EXPECT_EQ(drc.Begin(Key(9), nullptr).outcome, Outcome::kRunUncached);
  drc.Complete(Key(0), "r");
  EXPECT_EQ(drc.Begin(Key(9), nullptr).outcome, Outcome::kRun) << "finished 0 evicted";
  EXPECT_EQ(drc.stats().entries, 4u);
}

TEST(DrcTest, EntriesOlderThanMaxAgeAreNewCalls) {
  absl::Time now = absl::UnixEpoch();
  DrcOptions o = Options(16);
  o.max_age = absl::Seconds(120);
  o.clock = [&now] { return now; };
  DuplicateRequestCache drc(std::move(o));
  ASSERT_EQ(drc.Begin(Key(1), nullptr).outcome, Outcome::kRun);
  drc.Complete(Key(1), "r");
  now += absl::Seconds(119);
  EXPECT_EQ(drc.Begin(Key(1), nullptr).outcome, Outcome::kReplay);
  now += absl::Seconds(2);
  EXPECT_EQ(drc.Begin(Key(1), nullptr).outcome, Outcome::kRun);
  EXPECT_EQ(drc.stats().entries, 1u);
}

TEST(DrcTest, ZeroEntriesDisablesTheCache) {
  DuplicateRequestCache drc(Options(0));
  EXPECT_EQ(drc.Begin(Key(1), nullptr).outcome, Outcome::kRunUncached);
  drc.Complete(Key(1), "r");
  EXPECT_EQ(drc.Begin(Key(1), nullptr).outcome, Outcome::kRunUncached);
}

TEST(DrcTest, ConcurrentRetransmitsRunEachCallExactlyOnce) {
  constexpr int kThreads = 8, kXids = 500;
  DuplicateRequestCache drc(Options(kXids));  // nothing is evicted
  std::atomic<int> runs{0}, answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (uint32_t xid = 0; xid < kXids; ++xid) {
        // Called later, on the thread that completes the call: capture by value.
        auto found = drc.Begin(Key(xid), [&answered, xid](absl::string_view r) {
          if (r == "r" + std::to_string(xid)) answered.fetch_add(1);
        });
        if (found.outcome == Outcome::kRun) {
          runs.fetch_add(1);
          drc.Complete(Key(xid), "r" + std::to_string(xid));
          answered.fetch_add(1);
        } else if (found.outcome == Outcome::kReplay) {
          if (found.reply == "r" + std::to_string(xid)) answered.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(runs.load(), kXids);
  EXPECT_EQ(answered.load(), kThreads * kXids);
}

}  // namespace
}  // namespace localnfs::rpc
