// Unit tests of the FUSE inode table (inode_table.h): lookup counts, and the silly
// rename of files unlinked while open.
#include "client_localio/inode_table.h"

#include <optional>
#include <vector>

#include "gtest/gtest.h"

namespace localnfs::client {
namespace {

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
