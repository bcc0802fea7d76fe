// Integration tests of the client library (client.h) against a real localnfsd.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client_localio/client.h"
#include "client_localio/test_util.h"
#include "common/status.h"
#include "gtest/gtest.h"

namespace localnfs::client {
namespace {

using testing::FreePort;
using testing::RandomBytes;
using testing::ReadFile;
using testing::TempDir;
using testing::ExportToAll;
using testing::ServerProcess;
using testing::ThisThreadId;
using testing::InSleepSyscall;
using testing::WaitUntil;

const Credentials kRoot{.uid = 0, .gid = 0, .groups = {}};
constexpr uint32_t kNfs3ErrNoent = 2;
constexpr uint32_t kNfs3ErrExist = 17;

class Nfs3ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(ExportToAll(export_.path()));
    ASSERT_TRUE(server_->Start());
    MountOptions opts;
    opts.retry_timeout = absl::Seconds(30);
    auto c = Nfs3Client::Mount("127.0.0.1", server_->nfs_port(), server_->mount_port(),
                               export_.path(), opts);
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = *std::move(c);
  }
  void TearDown() override {
    client_.reset();
    if (server_ && server_->running()) {
      EXPECT_TRUE(server_->Stop());
    }
  }

  TempDir export_{"lnfs-cli-export"};
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Nfs3Client> client_;
};

TEST_F(Nfs3ClientTest, WriteCommitReadBack8MiBMatchesServerDisk) {
  auto f = client_->Create(client_->root(), "data", CreateMode::kGuarded, 0644, kRoot);
  ASSERT_TRUE(f.ok()) << f.status();
  const std::string data = RandomBytes(8 << 20, 1);
  // Uneven pieces, so chunking and range merging are exercised.
  size_t off = 0;
  const size_t pieces[] = {1, 4095, 65536, 1 << 20, 3 << 20};
  for (int i = 0; off < data.size(); ++i) {
    const size_t n = std::min(pieces[i % 5], data.size() - off);
    auto w = client_->Write(f->handle, off, std::string_view(data).substr(off, n), kRoot);
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_EQ(w->count, n);
    off += n;
  }
  EXPECT_TRUE(client_->HasUncommitted(f->handle));
  auto c = client_->Commit(f->handle, kRoot);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(client_->HasUncommitted(f->handle));
  EXPECT_EQ(client_->resends(), 0u);

  auto r = client_->Read(f->handle, 0, static_cast<uint32_t>(data.size()) + 100, kRoot);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->eof);
  ASSERT_EQ(r->data.size(), data.size());
  EXPECT_TRUE(r->data == data);
  EXPECT_TRUE(ReadFile(export_.path() + "/data") == data);

  const IoCounters n = client_->Counters();
  EXPECT_GE(n.rpc_writes, 8u);
  EXPECT_EQ(n.rpc_write_bytes, data.size());
  EXPECT_EQ(n.rpc_read_bytes, data.size());
  EXPECT_GE(n.rpc_commits, 1u);
  EXPECT_EQ(n.local_reads + n.local_writes + n.local_commits, 0u);
}

TEST_F(Nfs3ClientTest, ReadDirPlusListsTwoThousandEntries) {
  auto d = client_->Mkdir(client_->root(), "many", 0755, kRoot);
  ASSERT_TRUE(d.ok()) << d.status();
  std::set<std::string> want;
  for (int i = 0; i < 2000; ++i) {
    const std::string name = absl::StrCat("entry-with-a-longish-name-", i);
    want.insert(name);
    ASSERT_TRUE(client_->Create(d->handle, name, CreateMode::kGuarded, 0644, kRoot).ok());
  }
  auto list = client_->ReadDirPlus(d->handle, kRoot);
  ASSERT_TRUE(list.ok()) << list.status();
  std::set<std::string> got;
  for (const DirEntry& e : *list) {
    if (e.name == "." || e.name == "..") continue;
    EXPECT_TRUE(got.insert(e.name).second) << "duplicate " << e.name;
    ASSERT_TRUE(e.handle.has_value()) << e.name;
    ASSERT_TRUE(e.attributes.has_value()) << e.name;
    EXPECT_EQ(e.attributes->type, FileType::kRegular);
  }
  EXPECT_EQ(got, want);
}

TEST_F(Nfs3ClientTest, RenameLinkSymlinkRemove) {
  auto a = client_->Mkdir(client_->root(), "a", 0755, kRoot);
  auto b = client_->Mkdir(client_->root(), "b", 0755, kRoot);
  ASSERT_TRUE(a.ok() && b.ok());
  auto f = client_->Create(a->handle, "f", CreateMode::kUnchecked, 0600, kRoot);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE(client_->Write(f->handle, 0, "hello", kRoot, StableHow::kFileSync).ok());

  ASSERT_TRUE(client_->Rename(a->handle, "f", b->handle, "g", kRoot).ok());
  EXPECT_EQ(ReadFile(export_.path() + "/b/g"), "hello");
  absl::Status gone = client_->Lookup(a->handle, "f", kRoot).status();
  EXPECT_EQ(NfsStatusOf(gone), kNfs3ErrNoent);
  EXPECT_EQ(ErrnoOf(gone), ENOENT);
  EXPECT_NE(gone.message().find("NFS3ERR_NOENT"), std::string::npos) << gone;

  auto linked = client_->Link(f->handle, a->handle, "hard", kRoot);
  ASSERT_TRUE(linked.ok()) << linked.status();
  EXPECT_EQ(linked->nlink, 2u);
  struct stat st {};
  ASSERT_EQ(stat((export_.path() + "/a/hard").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);

  auto s = client_->Symlink(a->handle, "sym", "../b/g", kRoot);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->attributes.type, FileType::kSymlink);
  auto target = client_->ReadLink(s->handle, kRoot);
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_EQ(*target, "../b/g");

  EXPECT_EQ(ErrnoOf(client_->Rmdir(client_->root(), "a", kRoot)), ENOTEMPTY);
  ASSERT_TRUE(client_->Remove(a->handle, "hard", kRoot).ok());
  ASSERT_TRUE(client_->Remove(a->handle, "sym", kRoot).ok());
  ASSERT_TRUE(client_->Rmdir(client_->root(), "a", kRoot).ok());
  EXPECT_NE(access((export_.path() + "/a").c_str(), F_OK), 0);
}

TEST_F(Nfs3ClientTest, AttributesCreateModesAndFsInfo) {
  auto f = client_->Create(client_->root(), "x", CreateMode::kGuarded, 0640, kRoot);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->attributes.mode, 0640u);
  auto again = client_->Create(client_->root(), "x", CreateMode::kGuarded, 0640, kRoot);
  EXPECT_EQ(NfsStatusOf(again.status()), kNfs3ErrExist);
  EXPECT_EQ(ErrnoOf(again.status()), EEXIST);

  auto excl = client_->Create(client_->root(), "ex", CreateMode::kExclusive, 0600, kRoot, 42);
  ASSERT_TRUE(excl.ok()) << excl.status();
  EXPECT_EQ(excl->attributes.mode, 0600u);

  ASSERT_TRUE(client_->Write(f->handle, 0, std::string(5000, 'x'), kRoot).ok());
  SetAttributes s;
  s.mode = 0600;
  s.uid = 12;
  s.gid = 34;
  s.size = 100;  // commits the pending write first
  s.mtime_how = TimeHow::kClientTime;
  s.mtime = {1577934245, 0};
  auto a = client_->SetAttr(f->handle, s, kRoot);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(client_->HasUncommitted(f->handle));
  EXPECT_EQ(a->mode, 0600u);
  EXPECT_EQ(a->uid, 12u);
  EXPECT_EQ(a->gid, 34u);
  EXPECT_EQ(a->size, 100u);
  EXPECT_EQ(a->mtime.seconds, 1577934245);
  struct stat st {};
  ASSERT_EQ(stat((export_.path() + "/x").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 100);
  EXPECT_EQ(st.st_uid, 12u);
  EXPECT_EQ(st.st_mtime, 1577934245);

  auto granted = client_->Access(f->handle, kAccessRead | kAccessModify, kRoot);
  ASSERT_TRUE(granted.ok()) << granted.status();
  EXPECT_EQ(*granted, kAccessRead | kAccessModify);

  auto fifo = client_->Mknod(client_->root(), "fifo", FileType::kFifo, 0644, 0, 0, kRoot);
  ASSERT_TRUE(fifo.ok()) << fifo.status();
  ASSERT_EQ(lstat((export_.path() + "/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));

  auto fs = client_->FsStatus(client_->root(), kRoot);
  ASSERT_TRUE(fs.ok()) << fs.status();
  EXPECT_GT(fs->total_bytes, 0u);
  EXPECT_GE(client_->fsinfo().rtmax, 65536u);
  EXPECT_GE(client_->fsinfo().wtmax, 65536u);
}

TEST_F(Nfs3ClientTest, ConcurrentWritersOnSeparateFiles) {
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string data = RandomBytes(1 << 20, 100 + t);
      auto f = client_->Create(client_->root(), absl::StrCat("c", t), CreateMode::kGuarded,
                               0644, kRoot);
      if (!f.ok()) return void(results[t] = f.status());
      for (size_t off = 0; off < data.size(); off += 65536) {
        auto w = client_->Write(f->handle, off, std::string_view(data).substr(off, 65536),
                                kRoot);
        if (!w.ok()) return void(results[t] = w.status());
      }
      results[t] = client_->Commit(f->handle, kRoot).status();
      if (results[t].ok() &&
          ReadFile(absl::StrCat(export_.path(), "/c", t)) != data) {
        results[t] = absl::DataLossError("content differs");
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_TRUE(results[t].ok()) << t << ": " << results[t];
}

TEST(Nfs3ClientMountTest, RefusedAndUnreachableMountsFailClearly) {
  TempDir exp("lnfs-cli-export");
  ServerProcess server(ExportToAll(exp.path()));
  ASSERT_TRUE(server.Start());
  auto bad = Nfs3Client::Mount("127.0.0.1", server.nfs_port(), server.mount_port(),
                               "/not/exported", {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().substr(0, 7), "MNT3ERR") << bad.status();

  MountOptions quick;
  quick.connect_timeout = absl::Seconds(2);
  auto down = Nfs3Client::Mount("127.0.0.1", FreePort(), FreePort(), exp.path(), quick);
  EXPECT_FALSE(down.ok());
  EXPECT_TRUE(server.Stop());
}

// A server on fixed ports, so that it can be restarted where the client reconnects.
class Nfs3ClientRestartTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.Start()); }
  void TearDown() override {
    if (server_.running()) EXPECT_TRUE(server_.Stop());
  }
  std::unique_ptr<Nfs3Client> Mount(MountOptions opts) {
    auto c = Nfs3Client::Mount("127.0.0.1", nfs_port_, mount_port_, exp_.path(), opts);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }
  // Hard mount, retrying long enough for a restart.
  static MountOptions Retrying() {
    MountOptions opts;
    opts.retry_timeout = absl::Seconds(30);
    return opts;
  }

  TempDir exp_{"lnfs-cli-export"};
  const int nfs_port_ = FreePort(), mount_port_ = FreePort();
  ServerProcess server_{ExportToAll(exp_.path(), nfs_port_, mount_port_)};
};

// Hard mount + the COMMIT contract: unstable data written before a server restart is
// resent when COMMIT returns the new instance's verifier. The test makes the loss real
// by cutting the file on disk while the server is down.
TEST_F(Nfs3ClientRestartTest, VerifierChangeResendsUncommittedData) {
  std::unique_ptr<Nfs3Client> client = Mount(Retrying());
  ASSERT_NE(client, nullptr);

  auto f = client->Create(client->root(), "unstable", CreateMode::kGuarded, 0644, kRoot);
  ASSERT_TRUE(f.ok()) << f.status();
  const std::string data = RandomBytes(6 << 20, 7);
  auto w = client->Write(f->handle, 0, data, kRoot);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_EQ(w->committed, StableHow::kUnstable);

  ASSERT_TRUE(server_.Stop());
  // What a crash would have lost: everything after the first MiB.
  ASSERT_EQ(truncate((exp_.path() + "/unstable").c_str(), 1 << 20), 0);
  const uint64_t epoch = client->connection_epoch();
  // COMMIT while the server is down; it is restarted on the same ports once the client
  // is retrying: its call sleeps in the back-off between two refused reconnects. (The
  // server is started from this thread: its PR_SET_PDEATHSIG follows the thread that
  // forked it.)
  absl::StatusOr<CommitResult> commit;
  std::atomic<pid_t> committer_tid{0};
  std::thread committer([&] {
    committer_tid = ThisThreadId();
    commit = client->Commit(f->handle, kRoot);
  });
  EXPECT_TRUE(WaitUntil([&] { return committer_tid != 0 && InSleepSyscall(committer_tid); },
                        std::chrono::seconds(20)))
      << "the COMMIT never retried";
  EXPECT_TRUE(server_.Start());
  committer.join();
  ASSERT_TRUE(commit.ok()) << commit.status() << "\nserver:\n" << server_.StderrText();
  EXPECT_NE(commit->verifier, w->verifier);
  EXPECT_EQ(client->resends(), 1u);
  EXPECT_GT(client->connection_epoch(), epoch);
  EXPECT_FALSE(client->HasUncommitted(f->handle));
  EXPECT_TRUE(ReadFile(exp_.path() + "/unstable") == data);

  // The handle survives the restart, and a clean commit needs no resend.
  ASSERT_TRUE(client->Write(f->handle, data.size(), "tail", kRoot).ok());
  ASSERT_TRUE(client->Commit(f->handle, kRoot).ok());
  EXPECT_EQ(client->resends(), 1u);
  client.reset();
  EXPECT_TRUE(server_.Stop());
}

// Past half of max_uncommitted_bytes a writer commits what is written so far without
// blocking the others; the copy stays bounded and no byte is lost — also when the server
// restarted before the early COMMIT (a new verifier): the exclusive Commit resends.
TEST_F(Nfs3ClientRestartTest, EarlyCommitBoundsTheCopyAndResendsAfterARestart) {
  MountOptions opts = Retrying();
  opts.max_uncommitted_bytes = 4 << 20;
  std::unique_ptr<Nfs3Client> client = Mount(opts);
  ASSERT_NE(client, nullptr);
  auto f = client->Create(client->root(), "early", CreateMode::kGuarded, 0644, kRoot);
  ASSERT_TRUE(f.ok()) << f.status();

  // 16 MiB from four writers, 256 KiB at a time, interleaved.
  const std::string data = RandomBytes(16 << 20, 11);
  constexpr size_t kBlock = 256 << 10;
  std::vector<std::thread> writers;
  std::atomic<bool> ok{true};
  for (size_t t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (size_t off = t * kBlock; off < data.size(); off += 4 * kBlock) {
        auto w = client->Write(f->handle, off, std::string_view(data).substr(off, kBlock), kRoot);
        if (!w.ok() || w->count != kBlock) ok = false;
      }
    });
  }
  for (auto& w : writers) w.join();
  ASSERT_TRUE(ok.load());
  EXPECT_GE(client->early_commits(), 3u);  // one per ~2 MiB, at most one at a time
  ASSERT_TRUE(client->Commit(f->handle, kRoot).ok());
  EXPECT_TRUE(ReadFile(exp_.path() + "/early") == data);
  EXPECT_EQ(client->resends(), 0u);

  // 1.5 MiB pending (below half the bound); the server restarts and loses it; the next
  // 1 MiB crosses half the bound: the early COMMIT sees the new verifier.
  const std::string more = RandomBytes(5 << 19, 12);
  ASSERT_TRUE(client->Write(f->handle, 0, std::string_view(more).substr(0, 3 << 19), kRoot).ok());
  const uint64_t early = client->early_commits();
  ASSERT_TRUE(server_.Stop());
  ASSERT_EQ(truncate((exp_.path() + "/early").c_str(), 0), 0);  // what a crash loses
  ASSERT_TRUE(server_.Start());
  ASSERT_TRUE(client->Write(f->handle, 3 << 19, std::string_view(more).substr(3 << 19), kRoot).ok());
  EXPECT_EQ(client->early_commits(), early + 1);
  EXPECT_EQ(client->resends(), 1u);
  EXPECT_FALSE(client->HasUncommitted(f->handle));
  EXPECT_TRUE(ReadFile(exp_.path() + "/early") == more);
  client.reset();
  EXPECT_TRUE(server_.Stop());
}

TEST_F(Nfs3ClientRestartTest, HardMountGivesUpAfterRetryTimeout) {
  MountOptions opts;
  opts.retry_timeout = absl::Seconds(1);
  std::unique_ptr<Nfs3Client> client = Mount(opts);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(server_.Stop());
  const absl::Time start = absl::Now();
  absl::Status s = client->GetAttr(client->root(), kRoot).status();
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(ErrnoOf(s), EIO) << s;
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

}  // namespace
}  // namespace localnfs::client
