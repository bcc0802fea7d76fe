#include "export_cache/squash.h"
#include "gtest/gtest.h"

namespace localnfs::exports {
namespace {

Credentials Cred(uint32_t uid, uint32_t gid, std::initializer_list<uint32_t> groups) {
  Credentials c;
  c.uid = uid;
  c.gid = gid;
  c.groups.assign(groups.begin(), groups.end());
  return c;
}

ExportOptions Options(Squash squash) {
  ExportOptions o;
  o.squash = squash;
  o.anonuid = 900;
  o.anongid = 901;
  return o;
}

TEST(SquashTest, RootSquashMapsRootToAnonymous) {
  Credentials out = SquashCredentials(Options(Squash::kRoot), Cred(0, 0, {0, 5, 0, 6}));
  EXPECT_EQ(out, Cred(900, 901, {5, 6}));
}

TEST(SquashTest, RootSquashSquashesGidZeroOfNonRootUser) {
  Credentials out = SquashCredentials(Options(Squash::kRoot), Cred(1000, 0, {0, 10}));
  EXPECT_EQ(out, Cred(1000, 901, {10}));
}

TEST(SquashTest, RootSquashLeavesOrdinaryUsersAlone) {
  Credentials in = Cred(1000, 1000, {10, 20});
  EXPECT_EQ(SquashCredentials(Options(Squash::kRoot), in), in);
}

TEST(SquashTest, RootSquashUsesNobodyByDefault) {
  Credentials out = SquashCredentials(ExportOptions(), Cred(0, 0, {}));
  EXPECT_EQ(out.uid, kNobodyUid);
  EXPECT_EQ(out.gid, kNobodyGid);
}

TEST(SquashTest, AllSquashMapsEveryone) {
  EXPECT_EQ(SquashCredentials(Options(Squash::kAll), Cred(1000, 1000, {10, 20})),
            Cred(900, 901, {}));
  EXPECT_EQ(SquashCredentials(Options(Squash::kAll), Cred(0, 0, {0})),
            Cred(900, 901, {}));
}

TEST(SquashTest, NoRootSquashChangesNothing) {
  Credentials root = Cred(0, 0, {0, 4});
  EXPECT_EQ(SquashCredentials(Options(Squash::kNone), root), root);
}

}  // namespace
}  // namespace localnfs::exports
