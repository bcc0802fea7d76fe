// server/nfs4/open_state_test.cc — OpenStateTable on the memory backend: stateids, share
// reservations, locks between clients and lock owners, courtesy clients, bounds.
#include "server/nfs4/open_state.h"

#include <stdlib.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/release_queue.h"
#include "export_cache/export.h"
#include "gtest/gtest.h"
#include "server/backend/memory_backend.h"
#include "server/policy/creds.h"
#include "server/server_test_runtime.h"

namespace localnfs::server::nfs4 {
namespace {

using backend::LockType;

constexpr uint32_t kRead = OPEN4_SHARE_ACCESS_READ;
constexpr uint32_t kWrite = OPEN4_SHARE_ACCESS_WRITE;
constexpr uint32_t kBoth = OPEN4_SHARE_ACCESS_BOTH;
constexpr uint32_t kDenyNone = OPEN4_SHARE_DENY_NONE;
constexpr uint32_t kDenyWrite = OPEN4_SHARE_DENY_WRITE;

class OpenStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/openstatetestXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    auto exp = MakeExportedDir(base_ + "/export", 0755);
    ASSERT_TRUE(exp.ok()) << exp.status();
    exp_ = *exp;
    me_.uid = geteuid();
    me_.gid = getegid();
    backend::MemoryBackendOptions o;
    o.privileged = CanSwitchCredentials();
    o.server_uid = o.root_uid = me_.uid;
    o.server_gid = o.root_gid = me_.gid;
    backend_ = std::make_unique<backend::MemoryBackend>(o);
    root_ = *backend_->OpenPath(*exp_, "");
    file_ = Make("f");
    other_file_ = Make("g");
    table_ = std::make_unique<OpenStateTable>(*backend_, options_);
  }
  void TearDown() override {
    table_.reset();
    file_ = other_file_ = root_ = backend::Object();
    backend_.reset();
    exp_.reset();
    DrainReleases();
    ASSERT_EQ(system(absl::StrCat("rm -rf ", base_).c_str()), 0);
  }

  backend::Object Make(const std::string& name) {
    auto made = backend_->Create(root_, name, backend::CreateHow::kGuarded, {}, 0,
                                 backend::Caller{me_});
    EXPECT_TRUE(made.ok()) << made.status();
    return made.ok() ? std::move(*made) : backend::Object();
  }
  FileKey Key(const backend::Object& o) const { return FileKey{o.exp().id(), o.handle()}; }

  nfsstat4 Open(uint64_t client, std::string owner, uint32_t access, uint32_t deny,
                StateId* out, const backend::Object* f = nullptr,
                OpenStateTable::MayDiscard may = nullptr) {
    return table_->Open({client, owner, f != nullptr ? f : &file_, access, deny}, may, out);
  }
  nfsstat4 LockNew(uint64_t client, const StateId& open, std::string owner, LockType type,
                   uint64_t offset, uint64_t length, StateId* out,
                   OpenStateTable::Denied* denied, OpenStateTable::MayDiscard may = nullptr) {
    OpenStateTable::LockRequest r;
    r.clientid = client;
    r.file = &file_;
    r.type = type;
    r.range = *OpenStateTable::LockRangeOf(offset, length);
    r.open = open;
    r.lock_owner = owner;
    return table_->Lock(r, may, out, denied);
  }

  OpenStateTable::Options options_;
  std::string base_;
  Ref<exports::Export> exp_;
  Credentials me_;
  std::unique_ptr<backend::MemoryBackend> backend_;
  backend::Object root_, file_, other_file_;
  std::unique_ptr<OpenStateTable> table_;
};

TEST_F(OpenStateTest, ReopenByTheSameOwnerUpgradesItsStateid) {
  StateId a, b;
  ASSERT_EQ(Open(1, "o", kRead, kDenyNone, &a), NFS4_OK);
  EXPECT_EQ(a.seqid, 1u);
  ASSERT_EQ(Open(1, "o", kWrite, kDenyNone, &b), NFS4_OK);
  EXPECT_EQ(b.other, a.other) << "one open stateid per owner and file";
  EXPECT_EQ(b.seqid, 2u);
  EXPECT_EQ(table_->Check(1, Key(file_), b, kWrite), NFS4_OK);
  // The old seqid is OLD_STATEID, a future one BAD, 0 the current one.
  EXPECT_EQ(table_->Check(1, Key(file_), a, kRead), NFS4ERR_OLD_STATEID);
  StateId future = b;
  future.seqid = 9;
  EXPECT_EQ(table_->Check(1, Key(file_), future, kRead), NFS4ERR_BAD_STATEID);
  StateId current = b;
  current.seqid = 0;
  EXPECT_EQ(table_->Check(1, Key(file_), current, kRead), NFS4_OK);
  EXPECT_EQ(table_->counts().opens, 1u);
}

// pynfs OPEN21, OPEN25: the owner's own deny refuses its own re-open for that access
// (knfsd's nfs4_file_get_access checks the file's deny, the owner's included); the open
// it has stays as it was.
TEST_F(OpenStateTest, AReopenIsRefusedTheAccessItsOwnOpenDenies) {
  constexpr uint32_t kDenyRead = OPEN4_SHARE_DENY_READ;
  StateId first, again;
  ASSERT_EQ(Open(1, "o", kBoth, kDenyRead, &first), NFS4_OK);
  EXPECT_EQ(Open(1, "o", kRead, kDenyNone, &again), NFS4ERR_SHARE_DENIED);
  EXPECT_EQ(table_->Check(1, Key(file_), first, kBoth), NFS4_OK);  // same seqid, same access
  StateId w;
  ASSERT_EQ(Open(1, "p", kBoth, kDenyWrite, &w, &other_file_), NFS4_OK);
  EXPECT_EQ(Open(1, "p", kWrite, kDenyNone, &again, &other_file_), NFS4ERR_SHARE_DENIED);
  // What the own deny leaves alone is an upgrade as before.
  EXPECT_EQ(Open(1, "p", kRead, kDenyNone, &again, &other_file_), NFS4_OK);
  EXPECT_EQ(again.seqid, w.seqid + 1);
}

TEST_F(OpenStateTest, StateidsAreTheirClientsAndTheirFilesOnly) {
  StateId a;
  ASSERT_EQ(Open(1, "o", kRead, kDenyNone, &a), NFS4_OK);
  EXPECT_EQ(table_->Check(2, Key(file_), a, kRead), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(table_->Check(1, Key(other_file_), a, kRead), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(table_->Check(1, Key(file_), a, kWrite), NFS4ERR_OPENMODE);
  StateId forged = a;
  forged.other[0] ^= 1;  // another server instance's
  EXPECT_EQ(table_->Test(1, forged), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(table_->Test(1, a), NFS4_OK);
}

TEST_F(OpenStateTest, ShareReservationsRefuseOtherOpensAndDowngradeReleasesThem) {
  StateId a, b;
  ASSERT_EQ(Open(1, "writer", kBoth, kDenyWrite, &a), NFS4_OK);
  EXPECT_EQ(Open(2, "x", kWrite, kDenyNone, &b), NFS4ERR_SHARE_DENIED);
  EXPECT_EQ(Open(1, "other-owner", kWrite, kDenyNone, &b), NFS4ERR_SHARE_DENIED)
      << "another owner of the same client is another open";
  ASSERT_EQ(Open(2, "x", kRead, kDenyNone, &b), NFS4_OK);
  // Its deny may not refuse an access someone has.
  StateId c;
  EXPECT_EQ(Open(3, "y", kRead, OPEN4_SHARE_DENY_READ, &c), NFS4ERR_SHARE_DENIED);
  // Downgraded to read without deny, the writer lets others write.
  StateId d;
  EXPECT_EQ(table_->Downgrade(1, Key(file_), a, kRead, kDenyWrite | 1, &d), NFS4ERR_INVAL);
  ASSERT_EQ(table_->Downgrade(1, Key(file_), a, kRead, kDenyNone, &d), NFS4_OK);
  EXPECT_EQ(d.seqid, 2u);
  EXPECT_EQ(Open(2, "x", kWrite, kDenyNone, &b), NFS4_OK);
  EXPECT_EQ(table_->Close(1, Key(file_), a), NFS4ERR_OLD_STATEID);
  EXPECT_EQ(table_->Close(1, Key(file_), d), NFS4_OK);
  EXPECT_EQ(table_->Test(1, d), NFS4ERR_BAD_STATEID) << "closed";
}

TEST_F(OpenStateTest, LocksConflictBetweenClientsAndNameTheOwner) {
  StateId o1, o2, l1, l2;
  OpenStateTable::Denied denied;
  ASSERT_EQ(Open(1, "o", kBoth, kDenyNone, &o1), NFS4_OK);
  ASSERT_EQ(Open(2, "o", kBoth, kDenyNone, &o2), NFS4_OK);
  ASSERT_EQ(LockNew(1, o1, "lo-1", LockType::kWrite, 0, 100, &l1, &denied), NFS4_OK);
  EXPECT_EQ(l1.seqid, 1u);
  EXPECT_NE(l1.other, o1.other);
  ASSERT_EQ(LockNew(2, o2, "lo-2", LockType::kRead, 50, 1, &l2, &denied), NFS4ERR_DENIED);
  EXPECT_EQ(denied.clientid, 1u);
  EXPECT_EQ(denied.owner, "lo-1");
  EXPECT_EQ(denied.conflict.offset, 0u);
  EXPECT_EQ(denied.conflict.length, 100u);
  EXPECT_EQ(table_->counts().lock_states, 1u) << "the refused owner's new stateid is gone";
  // LOCKT sees the same; the holder itself is not refused by its own lock.
  EXPECT_EQ(table_->TestLock(2, "lo-2", file_, LockType::kRead, {10, 1}, &denied),
            NFS4ERR_DENIED);
  EXPECT_EQ(table_->TestLock(1, "lo-1", file_, LockType::kWrite, {10, 1}, &denied), NFS4_OK);
  // FREE_STATEID refuses a stateid that holds locks; LOCKU, then it may go.
  EXPECT_EQ(table_->Free(1, l1), NFS4ERR_LOCKS_HELD);
  EXPECT_EQ(table_->Free(1, o1), NFS4ERR_LOCKS_HELD) << "an open is CLOSEd, not freed";
  StateId u;
  ASSERT_EQ(table_->Unlock(1, Key(file_), l1, {0, 0}, &u), NFS4_OK);
  EXPECT_EQ(u.seqid, 2u);
  EXPECT_EQ(table_->Free(1, u), NFS4_OK);
  EXPECT_EQ(LockNew(2, o2, "lo-2", LockType::kWrite, 50, 1, &l2, &denied), NFS4_OK);
}

TEST_F(OpenStateTest, WriteLocksNeedWriteAccessAndCloseReleasesLocks) {
  StateId ro, rw, l, l2;
  OpenStateTable::Denied denied;
  ASSERT_EQ(Open(1, "r", kRead, kDenyNone, &ro), NFS4_OK);
  EXPECT_EQ(LockNew(1, ro, "lo", LockType::kWrite, 0, 1, &l, &denied), NFS4ERR_OPENMODE);
  ASSERT_EQ(LockNew(1, ro, "lo", LockType::kRead, 0, NFS4_UINT64_MAX, &l, &denied), NFS4_OK);
  ASSERT_EQ(Open(2, "w", kBoth, kDenyNone, &rw), NFS4_OK);
  EXPECT_EQ(LockNew(2, rw, "lo", LockType::kWrite, 1u << 20, 1, &l2, &denied), NFS4ERR_DENIED);
  EXPECT_EQ(denied.conflict.length, 0u) << "to the end";
  // CLOSE takes the lock stateids under the open with it, and their locks.
  ASSERT_EQ(table_->Close(1, Key(file_), ro), NFS4_OK);
  EXPECT_EQ(table_->Test(1, l), NFS4ERR_BAD_STATEID);
  EXPECT_EQ(LockNew(2, rw, "lo", LockType::kWrite, 1u << 20, 1, &l2, &denied), NFS4_OK);
}

TEST_F(OpenStateTest, AnExpiredClientsStateGivesWayOnlyWhenSomeoneConflicts) {
  StateId o1, o2, l1, l2;
  OpenStateTable::Denied denied;
  ASSERT_EQ(Open(1, "o", kBoth, kDenyWrite, &o1), NFS4_OK);
  ASSERT_EQ(LockNew(1, o1, "lo", LockType::kWrite, 0, 10, &l1, &denied), NFS4_OK);
  const auto not_expired = [](uint64_t) { return false; };
  const auto client1_expired = [](uint64_t c) { return c == 1; };
  EXPECT_EQ(Open(2, "o", kWrite, kDenyNone, &o2, nullptr, not_expired), NFS4ERR_SHARE_DENIED);
  EXPECT_EQ(table_->states_of(1), 2u);
  // Client 1 is a courtesy client now: its share reservation goes for client 2's open.
  ASSERT_EQ(Open(2, "o", kWrite, kDenyNone, &o2, nullptr, client1_expired), NFS4_OK);
  EXPECT_EQ(table_->states_of(1), 0u);
  EXPECT_EQ(LockNew(2, o2, "lo", LockType::kWrite, 0, 10, &l2, &denied), NFS4_OK);

  // The same for a lock alone.
  StateId o3, l3;
  ASSERT_EQ(Open(3, "o", kBoth, kDenyNone, &o3), NFS4_OK);
  EXPECT_EQ(LockNew(3, o3, "lo", LockType::kRead, 5, 1, &l3, &denied, not_expired),
            NFS4ERR_DENIED);
  const auto client2_expired = [](uint64_t c) { return c == 2; };
  EXPECT_EQ(LockNew(3, o3, "lo", LockType::kRead, 5, 1, &l3, &denied, client2_expired), NFS4_OK);
  EXPECT_EQ(table_->states_of(2), 0u);
}

TEST_F(OpenStateTest, ReleaseClientDropsEverythingAndBoundsHold) {
  table_.reset();
  options_.max_states_per_client = 3;
  table_ = std::make_unique<OpenStateTable>(*backend_, options_);
  StateId o, l, x;
  OpenStateTable::Denied denied;
  ASSERT_EQ(Open(1, "a", kBoth, kDenyNone, &o), NFS4_OK);
  ASSERT_EQ(LockNew(1, o, "lo", LockType::kWrite, 0, 1, &l, &denied), NFS4_OK);
  ASSERT_EQ(Open(1, "b", kRead, kDenyNone, &x), NFS4_OK);
  EXPECT_EQ(Open(1, "c", kRead, kDenyNone, &x), NFS4ERR_NOSPC);
  EXPECT_EQ(Open(2, "c", kRead, kDenyNone, &x), NFS4_OK) << "the bound is per client";
  table_->ReleaseClient(1);
  EXPECT_EQ(table_->states_of(1), 0u);
  EXPECT_EQ(table_->Test(1, l), NFS4ERR_BAD_STATEID);
  StateId o2, l2;
  ASSERT_EQ(Open(3, "a", kBoth, kDenyNone, &o2), NFS4_OK);
  EXPECT_EQ(LockNew(3, o2, "lo", LockType::kWrite, 0, 1, &l2, &denied), NFS4_OK)
      << "client 1's lock went with it";
}

TEST_F(OpenStateTest, LockFilesAreBoundedPerClientAndInAll) {
  table_.reset();
  options_.max_lock_files = 3;
  options_.max_lock_files_per_client = 2;
  table_ = std::make_unique<OpenStateTable>(*backend_, options_);
  OpenStateTable::Denied denied;
  StateId o1, o2, l;
  ASSERT_EQ(Open(1, "o", kBoth, kDenyNone, &o1), NFS4_OK);
  ASSERT_EQ(Open(2, "o", kBoth, kDenyNone, &o2), NFS4_OK);
  ASSERT_EQ(LockNew(1, o1, "a", LockType::kRead, 0, 1, &l, &denied), NFS4_OK);
  ASSERT_EQ(LockNew(1, o1, "b", LockType::kRead, 1, 1, &l, &denied), NFS4_OK);
  EXPECT_EQ(LockNew(1, o1, "c", LockType::kRead, 2, 1, &l, &denied), NFS4ERR_DELAY)
      << "a client's lock owners each hold an open file: bounded per client";
  EXPECT_EQ(LockNew(1, o1, "a", LockType::kRead, 5, 1, &l, &denied), NFS4_OK)
      << "an owner with its lock file takes more locks";
  ASSERT_EQ(LockNew(2, o2, "a", LockType::kRead, 3, 1, &l, &denied), NFS4_OK);
  EXPECT_EQ(LockNew(2, o2, "b", LockType::kRead, 4, 1, &l, &denied), NFS4ERR_DELAY)
      << "and in all";
  ASSERT_EQ(table_->Close(1, Key(file_), o1), NFS4_OK);
  EXPECT_EQ(LockNew(2, o2, "b", LockType::kRead, 4, 1, &l, &denied), NFS4_OK)
      << "CLOSE gave the lock files back";
}

TEST(LockRangeTest, Rfc8881LengthsBecomeBackendRanges) {
  EXPECT_FALSE(OpenStateTable::LockRangeOf(0, 0).has_value());
  EXPECT_FALSE(OpenStateTable::LockRangeOf(10, NFS4_UINT64_MAX - 5).has_value());
  auto all = OpenStateTable::LockRangeOf(7, NFS4_UINT64_MAX);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->offset, 7u);
  EXPECT_EQ(all->length, 0u);
  auto big = OpenStateTable::LockRangeOf(uint64_t{1} << 63, 10);
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(big->offset, backend::kMaxLockOffset - 1);
  EXPECT_EQ(big->length, 0u);
  auto plain = OpenStateTable::LockRangeOf(100, 5);
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->offset, 100u);
  EXPECT_EQ(plain->length, 5u);
}

TEST(OpenStateOptions, LockFilesAnswerToTheFileLimit) {
  // Plenty of descriptors: the defaults.
  auto o = OpenStateTable::Options::ForFileLimit(1 << 20, 20000);
  EXPECT_EQ(o.max_lock_files, 8192u);
  EXPECT_EQ(o.max_lock_files_per_client, 1024u);
  // What the others leave, at least an eighth of the limit; a quarter per client.
  o = OpenStateTable::Options::ForFileLimit(20000, 18560);
  EXPECT_EQ(o.max_lock_files, 2500u);
  EXPECT_EQ(o.max_lock_files_per_client, 625u);
  o = OpenStateTable::Options::ForFileLimit(12000, 2000);
  EXPECT_EQ(o.max_lock_files, 8192u);
  o = OpenStateTable::Options::ForFileLimit(2048, 18560);
  EXPECT_EQ(o.max_lock_files, 256u);
  EXPECT_EQ(o.max_lock_files_per_client, 64u);
  o = OpenStateTable::Options::ForFileLimit(4, 100);
  EXPECT_EQ(o.max_lock_files, 0u);
  EXPECT_EQ(o.max_lock_files_per_client, 1u);
}

}  // namespace
}  // namespace localnfs::server::nfs4
