// Integration tests of LOCALIO in the client library and the FUSE mount, against a real
// localnfsd whose --runtime-dir the client is pointed at: the data path is proven local
// by the counters (RPC READ/WRITE stay 0), a client that cannot see the broker does the
// same work over RPC, and a server restart mid-write loses nothing.
#include <signal.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client_localio/client.h"
#include "client_localio/localio_data_path.h"
#include "client_localio/test_util.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"

namespace localnfs::client {
namespace {

using namespace std::chrono_literals;

using testing::Child;
using testing::IsMountedAs;
using testing::MountBinary;
using testing::RunCommand;
using testing::StatsCounter;
using testing::Sha256OfFile;
using testing::RandomBytes;
using testing::ReadFile;
using testing::TempDir;
using testing::ExportsLine;
using testing::ExportToAll;
using testing::FindStatsCounter;
using testing::InSleepSyscall;
using testing::ServerProcess;
using testing::ThisThreadId;
using testing::WaitUntil;

const Credentials kRoot{.uid = 0, .gid = 0, .groups = {}};
constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kFileSize = 64 * kMiB;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

double MiBps(size_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) / kMiB / seconds : 0;
}

struct Timing {
  double write_s = 0, read_s = 0;
};

// Writes `data` in 1 MiB pieces (UNSTABLE), commits, reads it back in 1 MiB pieces.
void WriteCommitReadBack(Nfs3Client* c, const std::string& name, const std::string& data,
                         Timing* t) {
  auto f = c->Create(c->root(), name, CreateMode::kGuarded, 0644, kRoot);
  ASSERT_TRUE(f.ok()) << f.status();
  auto start = std::chrono::steady_clock::now();
  for (size_t off = 0; off < data.size(); off += kMiB) {
    auto w = c->Write(f->handle, off, std::string_view(data).substr(off, kMiB), kRoot);
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_EQ(w->count, std::min(kMiB, data.size() - off));
  }
  auto commit = c->Commit(f->handle, kRoot);
  ASSERT_TRUE(commit.ok()) << commit.status();
  EXPECT_FALSE(c->HasUncommitted(f->handle));
  t->write_s = Seconds(start);
  start = std::chrono::steady_clock::now();
  std::string back;
  back.reserve(data.size());
  for (size_t off = 0; off < data.size(); off += kMiB) {
    auto r = c->Read(f->handle, off, kMiB, kRoot);
    ASSERT_TRUE(r.ok()) << r.status();
    back.append(r->data);
  }
  t->read_s = Seconds(start);
  ASSERT_EQ(back.size(), data.size());
  EXPECT_TRUE(back == data) << "read-back differs";
}

class LocalioLibraryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(ExportToAll(export_.path()));
    ASSERT_TRUE(server_->Start());
  }
  void TearDown() override {
    client_.reset();
    if (server_ && server_->running()) EXPECT_TRUE(server_->Stop());
  }
  absl::StatusOr<std::unique_ptr<Nfs3Client>> MountClient() {
    MountOptions opts;
    opts.retry_timeout = absl::Seconds(60);
    return Nfs3Client::Mount("127.0.0.1", server_->nfs_port(), server_->mount_port(),
                             export_.path(), opts);
  }

  TempDir export_{"lnfs-lio-export"};
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Nfs3Client> client_;
};

TEST_F(LocalioLibraryTest, LocalWriteCommitReadMovesOnlyLocalCounters) {
  auto c = MountClient();
  ASSERT_TRUE(c.ok()) << c.status();
  client_ = *std::move(c);
  auto lio = LocalioDataPath::Install(
      client_.get(), {.mode = LocalioMode::kOn, .runtime_dir = server_->runtime_dir()});
  ASSERT_TRUE(lio.ok()) << lio.status() << "\n" << server_->StderrText();
  ASSERT_TRUE((*lio)->local_active()) << (*lio)->Describe();
  EXPECT_EQ((*lio)->Describe().rfind("local (", 0), 0u) << (*lio)->Describe();

  const std::string data = RandomBytes(kFileSize, 7);
  Timing t;
  ASSERT_NO_FATAL_FAILURE(WriteCommitReadBack(client_.get(), "big", data, &t));

  const IoCounters k = client_->Counters();
  std::cout << "[library LOCALIO] 64 MiB write+commit " << MiBps(kFileSize, t.write_s)
            << " MiB/s, read " << MiBps(kFileSize, t.read_s) << " MiB/s\n"
            << FormatCounters(k);
  EXPECT_EQ(k.rpc_reads, 0u);
  EXPECT_EQ(k.rpc_writes, 0u);
  EXPECT_EQ(k.rpc_commits, 0u);
  EXPECT_GE(k.local_writes, 64u);
  EXPECT_EQ(k.local_write_bytes, kFileSize);
  EXPECT_GE(k.local_reads, 64u);
  EXPECT_EQ(k.local_read_bytes, kFileSize);
  EXPECT_GE(k.local_commits, 1u);
  EXPECT_GE(k.local_opens, 1u);
  EXPECT_LE(k.local_opens, 2u);  // one read-write fd, at most one read-only fd
  EXPECT_EQ(k.local_fallbacks, 0u);
  EXPECT_EQ(client_->resends(), 0u);
  EXPECT_TRUE(ReadFile(export_.path() + "/big") == data) << "server disk differs";

  // ReadInto: the same bytes, pread into the caller's buffer; short with EOF at the end.
  auto f = client_->Lookup(client_->root(), "big", kRoot);
  ASSERT_TRUE(f.ok()) << f.status();
  std::string buf(kMiB, '\0');
  auto r = client_->ReadInto(f->handle, kFileSize - 4096,
                             absl::Span<char>(buf.data(), buf.size()), kRoot);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->count, 4096u);
  EXPECT_TRUE(r->eof);
  EXPECT_TRUE(buf.substr(0, 4096) == data.substr(kFileSize - 4096));
  EXPECT_EQ(client_->Counters().local_reads, k.local_reads + 1);
  EXPECT_EQ(client_->Counters().rpc_reads, 0u);
}

// How many of this process's fds are open on `path` (/proc/self/fd).
int FdsOpenOn(const std::string& path) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(e.path(), ec) == path) ++n;
  }
  return n;
}

// A thread's memory of its last local fd holds strong references (no reference count
// per read); what the server sees must still go when the path lets go of it: an fd
// evicted from the cache or forgotten, and everything when the client goes — while
// that thread lives on, remembering.
TEST_F(LocalioLibraryTest, FdsAThreadRemembersAreReleasedWhenEvictedForgottenOrTheClientGoes) {
  const std::string a_path = export_.path() + "/a", b_path = export_.path() + "/b";
  const std::string a_data = RandomBytes(8192, 1), b_data = RandomBytes(8192, 2);
  std::ofstream(a_path) << a_data;
  std::ofstream(b_path) << b_data;
  auto c = MountClient();
  ASSERT_TRUE(c.ok()) << c.status();
  client_ = *std::move(c);
  auto lio = LocalioDataPath::Install(client_.get(), {.mode = LocalioMode::kOn,
                                                      .runtime_dir = server_->runtime_dir(),
                                                      .max_open_files = 1});
  ASSERT_TRUE(lio.ok()) << lio.status();
  auto a = client_->Lookup(client_->root(), "a", kRoot);
  auto b = client_->Lookup(client_->root(), "b", kRoot);
  ASSERT_TRUE(a.ok() && b.ok());
  auto read = [&](const FileHandle& fh) {
    std::string buf(4096, '\0');
    auto r = client_->ReadInto(fh, 4096, absl::Span<char>(buf.data(), buf.size()), kRoot);
    return r.ok() && r->count == 4096 ? buf : std::string("read failed");
  };

  // The thread reads `a` (and remembers its fd), then waits for each next step.
  std::atomic<int> step{0}, done{0};
  std::string thread_read_again;
  std::thread t([&] {
    EXPECT_EQ(read(a->handle), a_data.substr(4096));
    done = 1;
    while (step.load() < 1) std::this_thread::sleep_for(1ms);
    thread_read_again = read(a->handle);
    done = 2;
    while (step.load() < 2) std::this_thread::sleep_for(1ms);
  });
  while (done.load() < 1) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(FdsOpenOn(a_path), 1);

  // Evicted (max_open_files 1) by a read of `b` here: a's file is released at once.
  EXPECT_EQ(read(b->handle), b_data.substr(4096));
  EXPECT_EQ(FdsOpenOn(a_path), 0) << "an evicted fd stays open on the server's file";
  EXPECT_EQ(FdsOpenOn(b_path), 1);

  // The thread's memory is stale: its next read of `a` opens it again, locally.
  const IoCounters before = client_->Counters();
  step = 1;
  while (done.load() < 2) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(thread_read_again, a_data.substr(4096));
  EXPECT_EQ(client_->Counters().local_reads, before.local_reads + 1);
  EXPECT_EQ(client_->Counters().rpc_reads, 0u);
  EXPECT_EQ(FdsOpenOn(a_path), 1);

  // Forgotten (a removed file's last close in the FUSE mount): released at once.
  client_->data_path().ForgetFile(a->handle);
  EXPECT_EQ(FdsOpenOn(a_path), 0) << "ForgetFile left the server's file open";

  // The client goes while the thread still remembers its Session: nothing of the
  // server's stays open in this process.
  EXPECT_EQ(read(b->handle), b_data.substr(4096));
  client_.reset();
  EXPECT_EQ(FdsOpenOn(a_path) + FdsOpenOn(b_path), 0);
  step = 2;
  t.join();
}

// Reads on one thread while another keeps dropping the fd under it: every read returns
// the file's bytes (local, or over RPC after an fd retired under it), never another
// file's or an error.
TEST_F(LocalioLibraryTest, ReadsRacingWithForgetFileAlwaysReturnTheFilesBytes) {
  const std::string data = RandomBytes(65536, 3);
  std::ofstream(export_.path() + "/f") << data;
  auto c = MountClient();
  ASSERT_TRUE(c.ok()) << c.status();
  client_ = *std::move(c);
  ASSERT_TRUE(LocalioDataPath::Install(client_.get(), {.mode = LocalioMode::kOn,
                                                       .runtime_dir = server_->runtime_dir()})
                  .ok());
  auto f = client_->Lookup(client_->root(), "f", kRoot);
  ASSERT_TRUE(f.ok()) << f.status();
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, reads{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; ++i) {
    readers.emplace_back([&, i] {
      std::string buf(4096, '\0');
      for (uint64_t n = i; !stop.load(); ++n) {
        const uint64_t off = (n * 4096) % data.size();
        auto r = client_->ReadInto(f->handle, off, absl::Span<char>(buf.data(), buf.size()),
                                   kRoot);
        if (!r.ok() || r->count != 4096 || buf != data.substr(off, 4096)) ++bad;
        ++reads;
      }
    });
  }
  // Open other files meanwhile, so that a retired fd number would be reused at once if
  // it were closed.
  for (int i = 0; i < 300; ++i) {
    client_->data_path().ForgetFile(f->handle);
    UniqueFd other(open(export_.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    std::this_thread::sleep_for(200us);
  }
  stop = true;
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0) << reads.load() << " reads";
  EXPECT_GT(client_->Counters().local_reads, 0u);
}

TEST_F(LocalioLibraryTest, NoBrokerMeansRpcWithIdenticalResultsAndOnFails) {
  TempDir elsewhere("lnfs-lio-nobroker");
  auto c = MountClient();
  ASSERT_TRUE(c.ok()) << c.status();
  client_ = *std::move(c);

  auto refused = LocalioDataPath::Create(
      client_.get(), {.mode = LocalioMode::kOn, .runtime_dir = elsewhere.path()});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("LOCALIO handshake not available"),
            std::string::npos)
      << refused.status();

  auto lio = LocalioDataPath::Install(
      client_.get(), {.mode = LocalioMode::kAuto, .runtime_dir = elsewhere.path()});
  ASSERT_TRUE(lio.ok()) << lio.status();
  EXPECT_FALSE((*lio)->local_active());
  EXPECT_EQ((*lio)->Describe().rfind("rpc (", 0), 0u) << (*lio)->Describe();

  const std::string data = RandomBytes(kFileSize, 7);
  Timing t;
  ASSERT_NO_FATAL_FAILURE(WriteCommitReadBack(client_.get(), "big", data, &t));
  const IoCounters k = client_->Counters();
  std::cout << "[library RPC] 64 MiB write+commit " << MiBps(kFileSize, t.write_s)
            << " MiB/s, read " << MiBps(kFileSize, t.read_s) << " MiB/s\n"
            << FormatCounters(k);
  EXPECT_EQ(k.local_reads + k.local_writes + k.local_commits + k.local_opens, 0u);
  EXPECT_EQ(k.rpc_write_bytes, kFileSize);
  EXPECT_EQ(k.rpc_read_bytes, kFileSize);
  EXPECT_GE(k.rpc_commits, 1u);
  EXPECT_TRUE(ReadFile(export_.path() + "/big") == data) << "server disk differs";
}

TEST_F(LocalioLibraryTest, ServerRestartMidWriteFallsBackRehandshakesAndLosesNothing) {
  auto c = MountClient();
  ASSERT_TRUE(c.ok()) << c.status();
  client_ = *std::move(c);
  auto lio = LocalioDataPath::Install(
      client_.get(), {.mode = LocalioMode::kOn, .runtime_dir = server_->runtime_dir()});
  ASSERT_TRUE(lio.ok()) << lio.status();
  LocalioDataPath* path = *lio;

  auto f = client_->Create(client_->root(), "restart", CreateMode::kGuarded, 0644, kRoot);
  ASSERT_TRUE(f.ok()) << f.status();
  const std::string data = RandomBytes(kFileSize, 11);
  const size_t half = kFileSize / 2;
  for (size_t off = 0; off < half; off += kMiB) {
    ASSERT_TRUE(client_->Write(f->handle, off, std::string_view(data).substr(off, kMiB), kRoot)
                    .ok());
  }
  EXPECT_TRUE(client_->HasUncommitted(f->handle));  // local UNSTABLE writes are recorded

  // Orderly shutdown (SIGTERM: the server bumps the generation). What a crash would
  // have lost is made real by cutting the file while the server is down. The writer
  // carries on in a thread and meets the restarted server on the same ports. (The
  // server is started from this thread: its PR_SET_PDEATHSIG follows the forking
  // thread.)
  ASSERT_TRUE(server_->Stop());
  ASSERT_EQ(truncate((export_.path() + "/restart").c_str(), kMiB), 0);
  absl::Status write_status;
  std::atomic<pid_t> writer_tid{0};
  std::thread writer([&] {
    writer_tid = ThisThreadId();
    for (size_t off = half; off < kFileSize && write_status.ok(); off += kMiB) {
      write_status =
          client_->Write(f->handle, off, std::string_view(data).substr(off, kMiB), kRoot)
              .status();
    }
  });
  // Restarted once the writer met the dead server: its call sleeps in the back-off
  // between two refused reconnects.
  EXPECT_TRUE(WaitUntil([&] { return writer_tid != 0 && InSleepSyscall(writer_tid); }, 20s))
      << "the writer never retried";
  EXPECT_TRUE(server_->Start());
  writer.join();
  ASSERT_TRUE(write_status.ok()) << write_status;
  auto commit = client_->Commit(f->handle, kRoot);
  ASSERT_TRUE(commit.ok()) << commit.status();
  // The re-probe binds LOCALIO again on the first data call reprobe_interval (1 s)
  // after it was lost; the writer may have finished sooner (the server was back as
  // soon as it retried): more I/O until that re-probe came.
  EXPECT_TRUE(WaitUntil(
      [&] {
        EXPECT_TRUE(client_->Read(f->handle, 0, 4096, kRoot).ok());
        return path->handshakes() >= 2u;
      },
      20s, 100ms))
      << path->Describe();

  const IoCounters k = client_->Counters();
  std::cout << FormatCounters(k) << "resends " << client_->resends() << "\nhandshakes "
            << path->handshakes() << "\n";
  EXPECT_GE(path->handshakes(), 2u) << path->Describe();
  EXPECT_TRUE(path->local_active()) << path->Describe();
  EXPECT_GE(k.local_fallbacks, 1u);
  // The first half was written under the old instance's verifier: COMMIT to the new
  // one must have resent it.
  EXPECT_GE(client_->resends(), 1u);
  EXPECT_TRUE(ReadFile(export_.path() + "/restart") == data) << "server disk differs";
}

// ---- the FUSE mount ----

class LocalioFuseTest : public testing::FuseMountFixture {
 protected:
  LocalioFuseTest() : FuseMountFixture("lnfs-lio-fuse-export", "lnfs-lio-fuse-mnt") {}
  void Unmount() { daemon_.Unmount(); }
  // `prefix` runs the daemon under another command (unshare for a pid namespace).
  ::testing::AssertionResult Mount(const std::vector<std::string>& extra,
                                   const std::vector<std::string>& prefix = {}) {
    return MountDaemon(extra, prefix);
  }
  std::string Sh(const std::string& script) {
    std::string out;
    const int rc = RunCommand(
        {"sh", "-ec", absl::StrCat("M='", mnt_.path(), "'; S='", src_.path(), "'; ", script)},
        &out, 300s);
    EXPECT_EQ(rc, 0) << script << "\n" << out;
    return out;
  }
  // dd 64 MiB in with fsync, read it back through a fresh open; checks the bytes.
  void DdWriteReadBack(Timing* t) {
    Sh("head -c 67108864 /dev/urandom > $S/src");
    auto start = std::chrono::steady_clock::now();
    Sh("dd if=$S/src of=$M/big bs=1M conv=fsync status=none");
    t->write_s = Seconds(start);
    start = std::chrono::steady_clock::now();
    // A new open drops the kernel's page cache of the file (no keep_cache), so the
    // bytes come from the daemon's data path.
    Sh("dd if=$M/big of=$S/back bs=1M status=none");
    t->read_s = Seconds(start);
    const std::string want = Sha256OfFile(src_.path() + "/src");
    ASSERT_FALSE(want.empty());
    EXPECT_EQ(Sha256OfFile(export_.path() + "/big"), want) << "server disk differs";
    EXPECT_EQ(Sha256OfFile(src_.path() + "/back"), want) << "read-back differs";
  }

  TempDir src_{"lnfs-lio-fuse-src"};
};

TEST_F(LocalioFuseTest, LocalioOnDdWriteFsyncReadIsLocal) {
  ASSERT_TRUE(Mount({"-o", absl::StrCat("localio=on,runtime_dir=", server_->runtime_dir())}));
  Timing t;
  ASSERT_NO_FATAL_FAILURE(DdWriteReadBack(&t));
  const std::string stats = ReadFile(mnt_.path() + "/.localnfs-stats");
  std::cout << "[FUSE LOCALIO] 64 MiB dd write+fsync " << MiBps(kFileSize, t.write_s)
            << " MiB/s, read " << MiBps(kFileSize, t.read_s) << " MiB/s\n"
            << stats;
  EXPECT_EQ(StatsCounter(stats, "localio_active"), 1u);
  EXPECT_EQ(StatsCounter(stats, "rpc_reads"), 0u);
  EXPECT_EQ(StatsCounter(stats, "rpc_writes"), 0u);
  EXPECT_EQ(StatsCounter(stats, "local_write_bytes"), kFileSize);
  EXPECT_GE(StatsCounter(stats, "local_read_bytes"), kFileSize);
  EXPECT_GE(StatsCounter(stats, "local_commits"), 1u);
  Unmount();
  EXPECT_NE(daemon_.Output().find("data path local ("), std::string::npos) << daemon_.Output();
}

// A container that shares the runtime dir but not the pid namespace: the client's
// broker slot names it by its own pid (1 or so), the server sees another pid through
// SO_PEERCRED and must match the two through /proc/PID/status NSpid and ns/pid.
TEST_F(LocalioFuseTest, ClientInAnotherPidNamespaceIsLocal) {
  ASSERT_TRUE(Mount({"-o", absl::StrCat("localio=on,runtime_dir=", server_->runtime_dir())},
                    {"unshare", "--pid", "--fork", "--kill-child"}));
  Sh("head -c 4194304 /dev/urandom > $S/src; dd if=$S/src of=$M/f bs=1M conv=fsync "
     "status=none; cmp $S/src $M/f");
  const std::string stats = ReadFile(mnt_.path() + "/.localnfs-stats");
  EXPECT_EQ(StatsCounter(stats, "localio_active"), 1u) << stats;
  EXPECT_EQ(StatsCounter(stats, "rpc_writes"), 0u) << stats;
  EXPECT_EQ(StatsCounter(stats, "local_write_bytes"), 4194304u) << stats;
  EXPECT_EQ(server_->StderrText().find("HELLO from"), std::string::npos) << server_->StderrText();
}

TEST_F(LocalioFuseTest, OtherRuntimeDirIsRpcAndLocalioOnFails) {
  TempDir elsewhere("lnfs-lio-fuse-nobroker");
  std::string out;
  EXPECT_EQ(RunCommand({MountBinary(), "-f", "--mount-port",
                        std::to_string(server_->mount_port()), "-o", "localio=on",
                        "--runtime-dir", elsewhere.path(), source_, mnt_.path()},
                       &out, 60s),
            1);
  EXPECT_NE(out.find("localio=on: LOCALIO handshake not available"), std::string::npos)
      << out;
  EXPECT_FALSE(IsMountedAs(mnt_.path(), "fuse.localnfs"));

  ASSERT_TRUE(Mount({"--runtime-dir", elsewhere.path()}));  // localio=auto
  Timing t;
  ASSERT_NO_FATAL_FAILURE(DdWriteReadBack(&t));
  const std::string stats = ReadFile(mnt_.path() + "/.localnfs-stats");
  std::cout << "[FUSE RPC] 64 MiB dd write+fsync " << MiBps(kFileSize, t.write_s)
            << " MiB/s, read " << MiBps(kFileSize, t.read_s) << " MiB/s\n"
            << stats;
  EXPECT_EQ(StatsCounter(stats, "localio_active"), 0u);
  EXPECT_EQ(StatsCounter(stats, "local_writes"), 0u);
  EXPECT_EQ(StatsCounter(stats, "local_reads"), 0u);
  EXPECT_EQ(StatsCounter(stats, "rpc_write_bytes"), kFileSize);
  EXPECT_GE(StatsCounter(stats, "rpc_read_bytes"), kFileSize);
  Unmount();
  EXPECT_NE(daemon_.Output().find("localio=auto: data path rpc ("), std::string::npos)
      << daemon_.Output();
}

TEST_F(LocalioFuseTest, UnexportUnderALocalWriterGivesEstaleAndKeepsWhatWasSynced) {
  ASSERT_TRUE(Mount({"-o", absl::StrCat("localio=on,runtime_dir=", server_->runtime_dir())}));
  TempDir other("lnfs-lio-fuse-other");
  // A writer on one open fd: 1 MiB pieces, each fsync'd (local fds), until a write or
  // an fsync fails; it reports how many pieces were synced and the error.
  Child writer;
  ASSERT_TRUE(writer.Start(
      {"python3", "-c",
       "import os, sys, time\n"
       "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)\n"
       "n = 0\n"
       "try:\n"
       "  while n < 2000:\n"
       "    os.write(fd, bytes([n % 251]) * 1048576); os.fsync(fd); n += 1\n"
       "    print('synced', n, flush=True); time.sleep(0.02)\n"
       "except OSError as e:\n"
       "  print('error', e.errno, e.strerror, flush=True); sys.exit(3)\n",
       mnt_.path() + "/live"}));
  // Let it sync a few pieces locally, then remove the export under it.
  ASSERT_TRUE(writer.WaitForOutput("synced 5\n", 10s)) << writer.Output();
  ASSERT_TRUE(server_->ReloadExports({ExportsLine(other.path())}));
  int status = 0;
  ASSERT_TRUE(writer.Wait(60s, &status)) << writer.Output();
  const std::string out = writer.Output();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << out;
  EXPECT_NE(out.find(absl::StrCat("error ", ESTALE, " ")), std::string::npos) << out;
  // Every piece the writer saw synced is on the server's disk, byte for byte.
  size_t synced = 0;
  for (size_t pos = 0; (pos = out.find("synced ", pos)) != std::string::npos; pos += 7)
    synced = std::stoul(out.substr(pos + 7));
  const std::string disk = ReadFile(export_.path() + "/live");
  ASSERT_GE(disk.size(), synced * kMiB);
  for (size_t i = 0; i < synced; ++i)
    ASSERT_EQ(disk.substr(i * kMiB, kMiB), std::string(kMiB, static_cast<char>(i % 251)))
        << "piece " << i;
  // The server invalidated the LOCALIO clients: the mount is on RPC now, and reads of
  // the removed export fail the same way.
  EXPECT_TRUE(server_->WaitForStderr("localio: clients invalidated"));
  const std::string stats = ReadFile(mnt_.path() + "/.localnfs-stats");
  EXPECT_EQ(StatsCounter(stats, "localio_active"), 0u) << stats;
  std::string cat;
  EXPECT_NE(RunCommand({"cat", mnt_.path() + "/live"}, &cat, 30s), 0) << cat;
}

TEST_F(LocalioFuseTest, ServerCrashAndRestartMidWriteLosesNothing) {
  ASSERT_TRUE(Mount({"-o", absl::StrCat("localio=on,runtime_dir=", server_->runtime_dir())}));
  Sh("head -c 67108864 /dev/urandom > $S/src");
  // A slow writer (1 MiB per dd, each closed = committed), then an fsync of the whole
  // file; the server is killed -9 and restarted on the same ports while it runs.
  Child writer;
  ASSERT_TRUE(writer.Start(
      {"sh", "-ec",
       absl::StrCat("M='", mnt_.path(), "'; S='", src_.path(), "'; ",
                    "for i in $(seq 0 63); do dd if=$S/src of=$M/big bs=1M count=1 skip=$i "
                    "seek=$i conv=notrunc status=none; sleep 0.03; done; "
                    "dd if=/dev/null of=$M/big conv=notrunc,fsync status=none")}));
  // Killed once the writer is under way (its first pieces are on the server's disk).
  struct stat st {};
  EXPECT_TRUE(WaitUntil(
      [&] {
        return stat((export_.path() + "/big").c_str(), &st) == 0 &&
               st.st_size >= static_cast<off_t>(2 * kMiB);
      },
      30s))
      << writer.Output();
  server_->Kill9();
  // The outage under test: no server for this long while the writer goes on.
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(server_->Start());
  int status = 0;
  ASSERT_TRUE(writer.Wait(120s, &status)) << writer.Output();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << writer.Output();
  EXPECT_EQ(Sha256OfFile(export_.path() + "/big"), Sha256OfFile(src_.path() + "/src"))
      << "server disk differs";
  // More I/O until the re-probe due after the restart (1 s after LOCALIO was lost, on
  // the next I/O) has bound LOCALIO again.
  WaitUntil(
      [&] {
        Sh("cat $M/big > /dev/null");
        const std::string s = Stats();
        return FindStatsCounter(s, "localio_active") == 1u &&
               FindStatsCounter(s, "localio_handshakes") >= 2u;
      },
      30s, 200ms);
  const std::string stats = ReadFile(mnt_.path() + "/.localnfs-stats");
  std::cout << stats;
  EXPECT_GE(StatsCounter(stats, "localio_handshakes"), 2u);
  EXPECT_EQ(StatsCounter(stats, "localio_active"), 1u);
  EXPECT_GE(StatsCounter(stats, "local_write_bytes") + StatsCounter(stats, "rpc_write_bytes"),
            kFileSize);
}

// ---- -o passthrough (client_localio/fuse_passthrough.h) ----

std::string PassthroughOptions(const ServerProcess& server) {
  return absl::StrCat("localio=on,passthrough,runtime_dir=", server.runtime_dir());
}

// Reads and writes through passthrough opens are the kernel's: the daemon counts none
// of them, yet the bytes are the server's, and every close COMMITs what the kernel wrote.
TEST_F(LocalioFuseTest, PassthroughIoIsTheKernelsAndCloseCommits) {
  ASSERT_TRUE(Mount({"-o", PassthroughOptions(*server_)}));
  if (PassthroughNotOffered()) GTEST_SKIP() << "this kernel does not offer FUSE passthrough";
  Sh("head -c 16777216 /dev/urandom > $S/src; dd if=$S/src of=$M/f bs=1M status=none; "
     "cmp $S/src $M/f");
  EXPECT_EQ(Sha256OfFile(export_.path() + "/f"), Sha256OfFile(src_.path() + "/src"));
  std::string stats = ReadFile(mnt_.path() + "/.localnfs-stats");
  std::cout << stats;
  EXPECT_NE(stats.find("passthrough on\n"), std::string::npos) << stats;
  EXPECT_GE(StatsCounter(stats, "passthrough_opens"), 2u);  // dd's create, cmp's open
  EXPECT_EQ(StatsCounter(stats, "local_writes") + StatsCounter(stats, "rpc_writes"), 0u);
  EXPECT_EQ(StatsCounter(stats, "local_reads") + StatsCounter(stats, "rpc_reads"), 0u);
  EXPECT_GE(StatsCounter(stats, "local_commits"), 1u);  // dd's close
  EXPECT_EQ(StatsCounter(stats, "passthrough_backing_files"), 0u);  // all closed
  // The size the kernel wrote is what the server reports.
  EXPECT_EQ(Sh("stat -c %s $M/f"), "16777216\n");

  // Two opens of one file share its backing file, which goes with the last close.
  Child holder;
  ASSERT_TRUE(holder.Start({"python3", "-c",
                            "import os, sys, time\n"
                            "r = os.open(sys.argv[1], os.O_RDONLY)\n"
                            "w = os.open(sys.argv[1], os.O_RDWR)\n"
                            "os.pwrite(w, b'passthrough', 0)\n"
                            "assert os.pread(r, 11, 0) == b'passthrough'\n"
                            "print('open', flush=True)\n"
                            "while not os.path.exists(sys.argv[2]): time.sleep(0.01)\n",
                            mnt_.path() + "/f", src_.path() + "/release"}));
  ASSERT_TRUE(holder.WaitForOutput("open\n", 5s)) << holder.Output();
  stats = ReadFile(mnt_.path() + "/.localnfs-stats");
  EXPECT_EQ(StatsCounter(stats, "passthrough_backing_files"), 1u) << stats;
  EXPECT_EQ(ReadFile(export_.path() + "/f").substr(0, 11), "passthrough");
  // The backing file root's opens share gives nobody else anything: another user's open
  // is the server's decision (ACCESS), as for every open.
  ASSERT_EQ(chmod(export_.path().c_str(), 0755), 0);
  ASSERT_EQ(chmod((export_.path() + "/f").c_str(), 0600), 0);
  std::string denied;
  EXPECT_NE(RunCommand({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat",
                        mnt_.path() + "/f"},
                       &denied, 30s),
            0);
  EXPECT_NE(denied.find("Permission denied"), std::string::npos) << denied;
  Sh("echo readable > $M/g && chmod 644 $M/g");  // the control: same path, readable
  std::string allowed;
  EXPECT_EQ(RunCommand({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat",
                        mnt_.path() + "/g"},
                       &allowed, 30s),
            0);
  EXPECT_EQ(allowed, "readable\n");
  Sh("touch $S/release");
  int status = 0;
  ASSERT_TRUE(holder.Wait(10s, &status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << holder.Output();
  stats = ReadFile(mnt_.path() + "/.localnfs-stats");
  EXPECT_EQ(StatsCounter(stats, "passthrough_backing_files"), 0u) << stats;
  EXPECT_EQ(StatsCounter(stats, "local_writes") + StatsCounter(stats, "rpc_writes"), 0u);
}

// Opens keep working while LOCALIO goes away and comes back — an export's rules change
// (the server invalidates its LOCALIO clients; the mount re-probes after 1 s), then the
// server is killed and restarted. Each open must be in the mode the kernel accepts
// beside the opens already there: beside a passthrough open only passthrough (else
// EIO), beside a page-cache open no passthrough (else ETXTBSY). The reader mostly holds
// one open while it makes the next, and every 8th time closes first, so that the inode
// changes mode while LOCALIO comes and goes.
TEST_F(LocalioFuseTest, PassthroughOpensSurviveLocalioLossAndServerRestart) {
  ASSERT_TRUE(Mount({"-o", PassthroughOptions(*server_)}));
  if (PassthroughNotOffered()) GTEST_SKIP() << "this kernel does not offer FUSE passthrough";
  Sh("head -c 1048576 /dev/urandom > $S/src; cp $S/src $M/f");
  Child reader;
  ASSERT_TRUE(reader.Start({"python3", "-c",
                            "import os, sys, time\n"
                            "want = open(sys.argv[2], 'rb').read()\n"
                            "prev = None; n = 0; end = time.time() + 6\n"
                            "while time.time() < end:\n"
                            "  fd = os.open(sys.argv[1], os.O_RDONLY)\n"
                            "  got = os.pread(fd, len(want) + 1, 0)\n"
                            "  if got != want:\n"
                            "    print('differs', len(got), flush=True); sys.exit(3)\n"
                            "  if prev is not None: os.close(prev)\n"
                            "  prev = fd; n += 1\n"
                            "  if n % 8 == 0: os.close(prev); prev = None\n"
                            "  if n == 1: print('first', flush=True)\n"
                            "  time.sleep(0.02)\n"
                            "print('reads', n, flush=True)\n",
                            mnt_.path() + "/f", src_.path() + "/src"}));
  ASSERT_TRUE(reader.WaitForOutput("first\n", 5s)) << reader.Output();
  // A few passthrough opens of the reader before LOCALIO goes away.
  const uint64_t opens_at_first = Stat("passthrough_opens");
  EXPECT_TRUE(WaitUntil([&] { return Stat("passthrough_opens") >= opens_at_first + 4; }, 10s))
      << Stats();
  ASSERT_TRUE(server_->ReloadExports(
      {ExportsLine(export_.path(), "rw,no_root_squash,anonuid=4321")}));
  EXPECT_TRUE(server_->WaitForStderr("localio: clients invalidated"));
  // The reader's opens meet LOCALIO lost (page-cache opens read over RPC), then the
  // mount's re-probe (after 1 s) binds it again, before the server is killed.
  EXPECT_TRUE(WaitUntil(
      [&] {
        const std::string s = Stats();
        return FindStatsCounter(s, "rpc_reads") > 0u &&
               FindStatsCounter(s, "localio_handshakes") >= 2u &&
               FindStatsCounter(s, "localio_active") == 1u;
      },
      10s))
      << Stats();
  server_->Kill9();
  // The outage under test: no server for this long while the reader goes on opening.
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(server_->Start());
  int status = 0;
  ASSERT_TRUE(reader.Wait(120s, &status)) << reader.Output();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << reader.Output();
  const std::string stats = ReadFile(mnt_.path() + "/.localnfs-stats");
  std::cout << reader.Output() << stats;
  EXPECT_GE(StatsCounter(stats, "passthrough_opens"), 2u);
  // While LOCALIO was off, new page-cache opens read through the daemon over RPC.
  EXPECT_GT(StatsCounter(stats, "rpc_reads"), 0u);
  // After the re-probe (1 s after LOCALIO was lost, on the next open), new opens are
  // passthrough again.
  const uint64_t before = StatsCounter(stats, "passthrough_opens");
  WaitUntil(
      [&] {
        Sh("cmp $S/src $M/f");
        return Stat("passthrough_opens") > before;
      },
      30s, 200ms);
  EXPECT_GT(StatsCounter(ReadFile(mnt_.path() + "/.localnfs-stats"), "passthrough_opens"),
            before);
}

}  // namespace
}  // namespace localnfs::client
