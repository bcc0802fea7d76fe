// Unit tests of the uncommitted-range bookkeeping (unstable_writes.h).
#include "client_localio/unstable_writes.h"

#include "gtest/gtest.h"

namespace localnfs::client {
namespace {

const WriteVerifier kV1{1, 1, 1, 1, 1, 1, 1, 1};
const WriteVerifier kV2{2, 2, 2, 2, 2, 2, 2, 2};
const Credentials kCred{};

TEST(FileWritesTest, SequentialWritesWithOneVerifierMerge) {
  FileWrites w;
  w.Record(0, "abc", kV1, kCred);
  w.Record(3, "def", kV1, kCred);
  ASSERT_EQ(w.range_count(), 1u);
  EXPECT_EQ(w.Snapshot()[0].data, "abcdef");
  EXPECT_EQ(w.pending_bytes(), 6u);
}

TEST(FileWritesTest, OverwriteKeepsOnlyNewestBytes) {
  FileWrites w;
  w.Record(0, "aaaaaaaaaa", kV1, kCred);
  w.Record(3, "BBB", kV2, kCred);
  auto s = w.Snapshot();
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].offset, 0u);
  EXPECT_EQ(s[0].data, "aaa");
  EXPECT_EQ(s[1].data, "BBB");
  EXPECT_EQ(s[1].verifier, kV2);
  EXPECT_EQ(s[2].offset, 6u);
  EXPECT_EQ(s[2].data, "aaaa");
  EXPECT_EQ(w.pending_bytes(), 10u);
}

TEST(FileWritesTest, StableWriteDisplacesPendingBytes) {
  FileWrites w;
  w.Record(0, "aaaa", kV1, kCred);
  w.Record(10, "cccc", kV1, kCred);
  w.Record(2, "SSSSSSSSSS", std::nullopt, kCred);  // covers 2..12
  auto s = w.Snapshot();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].data, "aa");
  EXPECT_EQ(s[1].offset, 12u);
  EXPECT_EQ(s[1].data, "cc");
  EXPECT_EQ(w.pending_bytes(), 4u);
}

TEST(FileWritesTest, CommitDropsMatchingVerifierAndReturnsOthers) {
  FileWrites w;
  w.Record(0, "old", kV1, kCred);
  w.Record(100, "new", kV2, kCred);
  auto stale = w.Commit(kV2);
  ASSERT_EQ(stale.size(), 1u);
  EXPECT_EQ(stale[0].offset, 0u);
  EXPECT_EQ(w.pending_bytes(), 3u);
  EXPECT_TRUE(w.Commit(kV1).empty());
  EXPECT_EQ(w.pending_bytes(), 0u);
}

TEST(FileWritesTest, EarlyCommitDropsOnlyWhatWasRecordedBeforeItsPoint) {
  FileWrites w;
  w.Record(0, "aaaa", kV1, kCred);
  w.Record(100, "bbbb", kV1, kCred);
  const uint64_t point = w.WrittenSoFar();
  // While the COMMIT is out: a new range, an overwrite of part of an old one (another
  // verifier, so it does not merge with the old head), and a sequential write that
  // grows an old range — all newer than the point.
  w.Record(200, "cccc", kV1, kCred);
  w.Record(102, "BB", kV2, kCred);
  w.Record(4, "dd", kV1, kCred);
  EXPECT_TRUE(w.CommitWrittenBefore(point, kV1));
  auto s = w.Snapshot();
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].offset, 0u);  // grown after the point: all of it kept
  EXPECT_EQ(s[0].data, "aaaadd");
  EXPECT_EQ(s[1].offset, 102u);
  EXPECT_EQ(s[1].data, "BB");
  EXPECT_EQ(s[2].offset, 200u);
  EXPECT_EQ(w.pending_bytes(), 12u);
  // The head "bb" of the overwritten range was recorded before the point: covered.
  // The kV2 bytes are newer than the point, so a kV2 commit would not drop them either.
  EXPECT_TRUE(w.CommitWrittenBefore(point, kV2));
  EXPECT_EQ(w.pending_bytes(), 12u);
}

TEST(FileWritesTest, EarlyCommitWithAnotherVerifierKeepsEverything) {
  FileWrites w;
  w.Record(0, "aaaa", kV1, kCred);
  const uint64_t point = w.WrittenSoFar();
  EXPECT_FALSE(w.CommitWrittenBefore(point, kV2));  // restarted: resend first
  EXPECT_EQ(w.pending_bytes(), 4u);
  EXPECT_TRUE(w.Commit(kV1).empty());
}

TEST(FileWritesTest, SmallSequentialWritesMergeOnlyUpToTheBound) {
  FileWrites w;
  const std::string piece(4096, 'x');
  const size_t n = FileWrites::kMaxMergedBytes / piece.size() + 1;
  for (size_t i = 0; i < n; ++i) w.Record(i * piece.size(), piece, kV1, kCred);
  auto s = w.Snapshot();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].data.size(), FileWrites::kMaxMergedBytes);
  EXPECT_EQ(s[1].offset, FileWrites::kMaxMergedBytes);
  EXPECT_EQ(w.pending_bytes(), n * piece.size());
}

TEST(FileWritesTest, LargeWritesUseRecycledBuffersAndKeepTheirBytes) {
  BufferPool pool(8 << 20);
  FileWrites w(&pool);
  const std::string a(1 << 20, 'a');
  const std::string b(1 << 20, 'b');
  w.Record(0, a, kV1, kCred);
  w.Record(a.size(), b, kV1, kCred);
  auto s = w.Snapshot();
  ASSERT_EQ(s.size(), 2u);  // large writes are ranges of their own
  EXPECT_TRUE(s[0].data == a);
  EXPECT_TRUE(s[1].data == b);
  // An overwrite displaces part of the first range; its buffer is recycled.
  w.Record(0, std::string(BufferPool::kMinPooled, 'c'), kV2, kCred);
  EXPECT_EQ(w.pending_bytes(), a.size() + b.size());
  EXPECT_TRUE(w.Commit(kV1).size() == 1u);  // the 'c' range stays, to be resent
  EXPECT_GE(pool.pooled_bytes(), 2 * a.size());
  const std::string reused = pool.Take(a.size());
  EXPECT_TRUE(reused.empty());
  EXPECT_GE(reused.capacity(), a.size());
  EXPECT_LT(pool.pooled_bytes(), 3 * a.size());
  // Beyond its bound the pool keeps nothing more.
  BufferPool small(1 << 20);
  small.Give(std::string(1 << 20, 'x'));
  small.Give(std::string(1 << 20, 'y'));
  EXPECT_LE(small.pooled_bytes(), size_t{2} << 20);
  EXPECT_GE(small.pooled_bytes(), size_t{1} << 20);
}

TEST(UnstableWritesTest, EmptyStateIsErasedOnlyWhenUnreferenced) {
  UnstableWrites table;
  const FileHandle fh{"h"};
  auto a = table.Get(fh);
  auto b = table.Get(fh);
  EXPECT_EQ(a, b);
  table.MaybeErase(fh, std::move(a));
  EXPECT_NE(table.Find(fh), nullptr);  // b still holds it
  table.MaybeErase(fh, std::move(b));
  EXPECT_EQ(table.Find(fh), nullptr);
}

}  // namespace
}  // namespace localnfs::client
