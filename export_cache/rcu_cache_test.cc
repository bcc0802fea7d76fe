#include "export_cache/rcu_cache.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/rcu.h"
#include "common/release_queue.h"
#include "gtest/gtest.h"
#include "tests/support/rcu_wait.h"

namespace localnfs {
namespace {

// A cache entry that follows the contract of rcu_cache.h: its release waits for a
// grace period on the shared queue, and counts itself.
class Entry final : public RefCounted {
 public:
  Entry(int value, std::atomic<int>* released) : value(value), released_(released) {}
  const int value;

 private:
  ~Entry() override { released_->fetch_add(1); }
  void LastReferenceDropped() override {
    QueueReleaseAfterGracePeriod([this] { delete this; });
  }
  std::atomic<int>* released_;
};

class RcuCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { StartReleaseQueue(); }
  void TearDown() override {
    DrainReleases();
    StopReleaseQueue();
  }
  Ref<Entry> Make(int value) { return Ref<Entry>::Adopt(new Entry(value, &released_)); }

  RcuThread rcu_;
  std::atomic<int> released_{0};
};

TEST_F(RcuCacheTest, InsertLookupRemove) {
  RcuCache<int, Entry> cache;
  ASSERT_TRUE(cache.Insert(1, Make(10)).ok());
  ASSERT_TRUE(cache.Insert(2, Make(20)).ok());
  EXPECT_EQ(cache.size(), 2u);
  Ref<Entry> one = cache.Lookup(1);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->value, 10);
  EXPECT_FALSE(cache.Lookup(3));
  EXPECT_TRUE(cache.Remove(1));
  EXPECT_FALSE(cache.Remove(1));
  EXPECT_FALSE(cache.Lookup(1));
  EXPECT_EQ(cache.Lookup(2)->value, 20);
  one.reset();
  DrainReleases();
  EXPECT_EQ(released_.load(), 1);
}

TEST_F(RcuCacheTest, HeterogeneousLookupByStringView) {
  RcuCache<std::string, Entry> cache;
  ASSERT_TRUE(cache.Insert("/srv", Make(1)).ok());
  absl::string_view key = "/srv";
  EXPECT_TRUE(cache.Lookup(key));
  EXPECT_TRUE(cache.Remove(key));
}

TEST_F(RcuCacheTest, InsertReplacesAndReleasesPrevious) {
  RcuCache<int, Entry> cache;
  ASSERT_TRUE(cache.Insert(1, Make(10)).ok());
  ASSERT_TRUE(cache.Insert(1, Make(11)).ok());
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.Lookup(1)->value, 11);
  DrainReleases();
  EXPECT_EQ(released_.load(), 1);
}

TEST_F(RcuCacheTest, ReplaceAllKeepsSameObjectAndReleasesDropped) {
  RcuCache<int, Entry> cache;
  Ref<Entry> keep = Make(1);
  Entry* keep_raw = keep.get();
  std::vector<RcuCache<int, Entry>::Entry> first;
  first.emplace_back(1, keep);
  first.emplace_back(2, Make(2));
  ASSERT_TRUE(cache.ReplaceAll(std::move(first)).ok());
  keep.reset();  // only the cache holds it now

  std::vector<RcuCache<int, Entry>::Entry> second;
  second.emplace_back(1, cache.Lookup(1));
  second.emplace_back(3, Make(3));
  ASSERT_TRUE(cache.ReplaceAll(std::move(second)).ok());
  DrainReleases();
  EXPECT_EQ(released_.load(), 1);  // entry 2 only
  EXPECT_EQ(cache.Lookup(1).get(), keep_raw);
  EXPECT_FALSE(cache.Lookup(2));
  std::vector<Ref<Entry>> list = cache.List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]->value, 1);  // insertion order
  EXPECT_EQ(list[1]->value, 3);
}

TEST_F(RcuCacheTest, ReplaceAllWithDuplicateKeyChangesNothing) {
  RcuCache<int, Entry> cache;
  ASSERT_TRUE(cache.Insert(1, Make(1)).ok());
  std::vector<RcuCache<int, Entry>::Entry> bad;
  bad.emplace_back(5, Make(5));
  bad.emplace_back(5, Make(6));
  EXPECT_EQ(cache.ReplaceAll(std::move(bad)).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(cache.Lookup(1));
  EXPECT_FALSE(cache.Lookup(5));
  DrainReleases();
  EXPECT_EQ(released_.load(), 2);  // the two rejected entries, nothing else
}

TEST_F(RcuCacheTest, RefHeldAcrossRemovalKeepsEntryAliveUntilDroppedAndDrained) {
  RcuCache<int, Entry> cache;
  ASSERT_TRUE(cache.Insert(1, Make(42)).ok());
  Ref<Entry> held = cache.Lookup(1);
  ASSERT_TRUE(cache.Remove(1));
  DrainReleases();
  EXPECT_EQ(released_.load(), 0);
  EXPECT_EQ(held->value, 42);
  EXPECT_EQ(held->RefCountForTesting(), 1);
  held.reset();
  DrainReleases();
  EXPECT_EQ(released_.load(), 1);
}

TEST_F(RcuCacheTest, ReaderInReadSectionDelaysRelease) {
  RcuCache<int, Entry> cache;
  ASSERT_TRUE(cache.Insert(1, Make(7)).ok());
  std::atomic<bool> inside{false}, go{false};
  std::atomic<int> seen{0};
  std::thread reader([&] {
    RcuThread registered;
    RcuReadLock lock;
    Ref<Entry> ref = cache.Lookup(1);
    const Entry* raw = ref.get();
    ref.reset();  // drop it inside the read section: this only queues
    inside = true;
    while (!go) std::this_thread::yield();
    seen = raw->value;  // still valid: the release waits for this section
  });
  while (!inside) std::this_thread::yield();
  ASSERT_TRUE(cache.Remove(1));
  // The grace period that would allow the release has begun and waits for the reader.
  EXPECT_TRUE(testing::WaitForGracePeriodBlockedOnReader());
  EXPECT_EQ(released_.load(), 0);
  go = true;
  reader.join();
  DrainReleases();
  EXPECT_EQ(seen.load(), 7);
  EXPECT_EQ(released_.load(), 1);
}

TEST_F(RcuCacheTest, TeardownUnregistersDrainsAndDestroys) {
  RcuCache<int, Entry> a;
  RcuCache<std::string, Entry> b;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(a.Insert(i, Make(i)).ok());
  ASSERT_TRUE(b.Insert("x", Make(100)).ok());
  TeardownRcuCaches(a, b);
  // Every release ran inside the teardown, before it returned.
  EXPECT_EQ(released_.load(), 11);
  EXPECT_FALSE(a.Lookup(3));
  EXPECT_FALSE(b.Lookup("x"));
  EXPECT_TRUE(a.List().empty());
  EXPECT_EQ(a.Insert(1, Make(1)).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(RcuCacheTest, DestructorTearsDown) {
  {
    RcuCache<int, Entry> cache;
    ASSERT_TRUE(cache.Insert(1, Make(1)).ok());
    ASSERT_TRUE(cache.Insert(2, Make(2)).ok());
  }
  EXPECT_EQ(released_.load(), 2);
}

TEST_F(RcuCacheTest, ConcurrentLookupsSeeWholeSnapshots) {
  // Each ReplaceAll publishes keys 0..9 all tagged with one generation g
  // (value = g * 100 + key). A List() must never mix generations, and a lookup
  // must always find every key.
  RcuCache<int, Entry> cache;
  auto batch = [&](int g) {
    std::vector<RcuCache<int, Entry>::Entry> entries;
    for (int k = 0; k < 10; ++k) entries.emplace_back(k, Make(g * 100 + k));
    return entries;
  };
  ASSERT_TRUE(cache.ReplaceAll(batch(0)).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, lookups{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      RcuThread registered;
      while (!stop) {
        int k = (lookups.fetch_add(1) + t) % 10;
        Ref<Entry> e = cache.Lookup(k);
        if (!e || e->value % 100 != k) failures++;
        std::vector<Ref<Entry>> list = cache.List();
        if (list.size() != 10) {
          failures++;
          continue;
        }
        for (const Ref<Entry>& x : list)
          if (x->value / 100 != list[0]->value / 100) failures++;
      }
    });
  }
  // At least 300 publishes, and keep going until the readers overlapped with them.
  int g = 0;
  while (g < 300 || lookups.load() < 1000) ASSERT_TRUE(cache.ReplaceAll(batch(++g)).ok());
  stop = true;
  for (std::thread& r : readers) r.join();
  EXPECT_EQ(failures.load(), 0);
  TeardownRcuCaches(cache);
  EXPECT_EQ(released_.load(), (g + 1) * 10);
}

}  // namespace
}  // namespace localnfs
