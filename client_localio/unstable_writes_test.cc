// Unit tests of the uncommitted-range bookkeeping and the FUSE inode table.
#include "client_localio/unstable_writes.h"

#include "client_localio/inode_table.h"
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

TEST(InodeTableTest, LookupCountsAndForget) {
  InodeTable t(FileHandle{"root"});
  EXPECT_EQ(t.Get(InodeTable::kRootIno)->bytes, "root");
  const uint64_t a = t.Ref(FileHandle{"a"});
  EXPECT_EQ(t.Ref(FileHandle{"a"}), a);  // hard links share the inode
  const uint64_t b = t.Ref(FileHandle{"b"});
  EXPECT_NE(a, b);
  t.Forget(a, 1);
  EXPECT_TRUE(t.Get(a).has_value());
  t.Forget(a, 1);
  EXPECT_FALSE(t.Get(a).has_value());
  EXPECT_NE(t.Ref(FileHandle{"a"}), a);  // numbers are never reused
  t.Forget(InodeTable::kRootIno, 100);
  EXPECT_TRUE(t.Get(InodeTable::kRootIno).has_value());
}

TEST(InodeTableTest, SillyNamesHaveTheKernelClientsForm) {
  EXPECT_EQ(MakeSillyName(0x1234, 7), ".nfs000000000000123400000007");
  EXPECT_TRUE(IsSillyName(MakeSillyName(~uint64_t{0}, ~uint32_t{0})));
  EXPECT_TRUE(IsSillyName(".nfs0000000000a720a39c5c6271"));
  EXPECT_FALSE(IsSillyName(".nfs"));
  EXPECT_FALSE(IsSillyName(".nfs0000000000a720a39c5c627"));    // one digit short
  EXPECT_FALSE(IsSillyName(".nfs0000000000a720a39c5c6271x"));  // one too many
  EXPECT_FALSE(IsSillyName(".nfs0000000000a720a39c5c627g"));
  EXPECT_FALSE(IsSillyName("xnfs0000000000a720a39c5c6271"));
  EXPECT_FALSE(IsSillyName(".localnfs-stats"));
}

TEST(InodeTableTest, UnlinkOfAnOpenFileHidesItUntilItsLastClose) {
  InodeTable t(FileHandle{"root"});
  const FileHandle dir{"dir"}, fh{"f"};
  const Credentials cred{.uid = 7, .gid = 7, .groups = {}};
  using Plan = InodeTable::RemovePlan;
  // Not known, or known and closed: removed at once.
  EXPECT_EQ(t.PlanRemove(fh, dir, "a"), Plan::kRemove);
  const uint64_t ino = t.Ref(fh);
  EXPECT_EQ(t.PlanRemove(fh, dir, "a"), Plan::kRemove);
  EXPECT_FALSE(t.AnyOpen());

  t.Open(ino);
  t.Open(ino);
  EXPECT_TRUE(t.AnyOpen());
  ASSERT_EQ(t.PlanRemove(fh, dir, "a"), Plan::kSillyRename);
  // While the rename is on the wire, another name of the file is simply removed.
  EXPECT_EQ(t.PlanRemove(fh, dir, "b"), Plan::kRemove);
  const SillyName silly{fh, dir, MakeSillyName(1, 2), cred};
  EXPECT_FALSE(t.FinishSillyRename(fh, silly).has_value());
  EXPECT_TRUE(t.SillyRenamed(ino));
  EXPECT_EQ(t.silly_count(), 1u);
  EXPECT_EQ(t.PlanRemove(fh, dir, silly.name), Plan::kBusy);
  EXPECT_EQ(t.PlanRemove(fh, FileHandle{"other"}, silly.name), Plan::kRemove);

  // The kernel forgets its references only after the release; the open keeps the entry.
  t.Forget(ino, 1);
  EXPECT_TRUE(t.Get(ino).has_value());
  EXPECT_FALSE(t.Close(ino).has_value());
  const std::optional<SillyName> last = t.Close(ino);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->name, silly.name);
  EXPECT_EQ(last->cred, cred);
  EXPECT_FALSE(t.AnyOpen());
  EXPECT_FALSE(t.Get(ino).has_value());  // neither referenced nor open: retired
  EXPECT_EQ(t.silly_count(), 0u);
}

TEST(InodeTableTest, LastCloseDuringTheSillyRenameHandsTheNameToTheRenamer) {
  InodeTable t(FileHandle{"root"});
  const FileHandle dir{"dir"}, fh{"f"};
  const uint64_t ino = t.Ref(fh);
  t.Open(ino);
  ASSERT_EQ(t.PlanRemove(fh, dir, "a"), InodeTable::RemovePlan::kSillyRename);
  EXPECT_FALSE(t.Close(ino).has_value());  // the pin keeps it open
  EXPECT_TRUE(t.AnyOpen());
  const std::optional<SillyName> now =
      t.FinishSillyRename(fh, SillyName{fh, dir, MakeSillyName(1, 1), {}});
  ASSERT_TRUE(now.has_value());  // nobody else will close it: remove it now
  EXPECT_FALSE(t.AnyOpen());
  EXPECT_FALSE(t.SillyRenamed(ino));

  // A failed rename leaves nothing to remove.
  t.Open(ino);
  ASSERT_EQ(t.PlanRemove(fh, dir, "a"), InodeTable::RemovePlan::kSillyRename);
  EXPECT_FALSE(t.FinishSillyRename(fh, std::nullopt).has_value());
  EXPECT_FALSE(t.Close(ino).has_value());
  EXPECT_FALSE(t.AnyOpen());
}

TEST(InodeTableTest, TakeSillyNamesEmptiesTheTable) {
  InodeTable t(FileHandle{"root"});
  const FileHandle dir{"dir"}, fh{"f"};
  const uint64_t ino = t.Ref(fh);
  t.Open(ino);
  ASSERT_EQ(t.PlanRemove(fh, dir, "a"), InodeTable::RemovePlan::kSillyRename);
  t.FinishSillyRename(fh, SillyName{fh, dir, MakeSillyName(1, 1), {}});
  const std::vector<SillyName> left = t.TakeSillyNames();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].name, MakeSillyName(1, 1));
  EXPECT_FALSE(t.Close(ino).has_value());
}

}  // namespace
}  // namespace localnfs::client
