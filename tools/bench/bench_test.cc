// tools/bench/bench_test.cc — the measuring core of localnfs-bench: flag and URL
// parsing, the op stream, CPU sampling, and whole jobs on the file:// target.
#include <unistd.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "tools/bench/bench.h"
#include "tools/bench/targets.h"

namespace localnfs::bench {
namespace {

TEST(ByteSizeTest, AcceptsSuffixesInPowersOf1024) {
  ByteSize s;
  std::string error;
  ASSERT_TRUE(AbslParseFlag("4k", &s, &error));
  EXPECT_EQ(s.bytes, 4096u);
  ASSERT_TRUE(AbslParseFlag("256M", &s, &error));
  EXPECT_EQ(s.bytes, uint64_t{256} << 20);
  ASSERT_TRUE(AbslParseFlag("1000", &s, &error));
  EXPECT_EQ(s.bytes, 1000u);
  EXPECT_EQ(AbslUnparseFlag(ByteSize{1 << 20}), "1m");
  EXPECT_EQ(AbslUnparseFlag(ByteSize{1000}), "1000");
}

TEST(ByteSizeTest, RejectsZeroGarbageAndOverflow) {
  ByteSize s;
  std::string error;
  EXPECT_FALSE(AbslParseFlag("0", &s, &error));
  EXPECT_FALSE(AbslParseFlag("4x", &s, &error));
  EXPECT_FALSE(AbslParseFlag("k", &s, &error));
  EXPECT_FALSE(AbslParseFlag("99999999999999999g", &s, &error));
  EXPECT_NE(error.find("byte count"), std::string::npos);
}

TEST(TargetUrlTest, ParsesTheThreeForms) {
  absl::StatusOr<TargetUrl> f = ParseTargetUrl("file:///var/tmp/x");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->kind, TargetUrl::Kind::kFile);
  EXPECT_EQ(f->path, "/var/tmp/x");

  absl::StatusOr<TargetUrl> n =
      ParseTargetUrl("nfs://127.0.0.1:2050/srv/a?mountport=20049&localio=on&runtime_dir=/r");
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->kind, TargetUrl::Kind::kLocalnfs);
  EXPECT_EQ(n->host, "127.0.0.1");
  EXPECT_EQ(n->nfs_port, 2050);
  EXPECT_EQ(n->mount_port, 20049);
  EXPECT_EQ(n->path, "/srv/a");
  EXPECT_EQ(n->localio, "on");
  EXPECT_EQ(n->runtime_dir, "/r");

  absl::StatusOr<TargetUrl> l = ParseTargetUrl("libnfs://127.0.0.1/srv/a");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->kind, TargetUrl::Kind::kLibnfs);
  EXPECT_EQ(l->nfs_port, 2049);
  EXPECT_EQ(l->mount_port, 20048);
}

TEST(TargetUrlTest, NamesWhatIsWrong) {
  for (const char* bad : {"http://x/y", "file://relative", "nfs://127.0.0.1", "nfs://:1/x",
                          "nfs://127.0.0.1:99999/x", "nfs://127.0.0.1/x?mountport=0",
                          "libnfs://127.0.0.1/x?localio=on", "nfs://127.0.0.1/x?bogus=1"}) {
    absl::StatusOr<TargetUrl> u = ParseTargetUrl(bad);
    EXPECT_FALSE(u.ok()) << bad;
    EXPECT_NE(u.status().message().find(bad), absl::string_view::npos) << u.status();
  }
}

TEST(OpSourceTest, SeqWriteHandsOutEveryBlockOnceThenStops) {
  JobSpec spec;
  spec.kind = WorkloadKind::kSeqWrite;
  spec.block_size = 4096;
  spec.file_size = 10 * 4096;
  OpSource ops(spec, Clock::time_point::max());
  OpCursor a, b;
  std::vector<uint64_t> offsets;
  for (int i = 0;; ++i) {
    std::optional<Op> op = ops.Next(i % 2 ? a : b, Clock::now());
    if (!op) break;
    offsets.push_back(op->offset);
  }
  ASSERT_EQ(offsets.size(), 10u);
  for (size_t i = 0; i < offsets.size(); ++i) EXPECT_EQ(offsets[i], i * 4096);
}

TEST(OpSourceTest, RandReadStaysAlignedInsideTheFileUntilTheEnd) {
  JobSpec spec;
  spec.kind = WorkloadKind::kRandRead;
  spec.block_size = 4096;
  spec.file_size = 64 * 4096;
  Clock::time_point end = Clock::now() + std::chrono::hours(1);
  OpSource ops(spec, end);
  OpCursor c;
  for (int i = 0; i < 1000; ++i) {
    std::optional<Op> op = ops.Next(c, Clock::now());
    ASSERT_TRUE(op.has_value());
    EXPECT_EQ(op->offset % 4096, 0u);
    EXPECT_LT(op->offset, spec.file_size);
    EXPECT_EQ(op->length, 4096u);
  }
  EXPECT_FALSE(ops.Next(c, end).has_value());
}

TEST(OpSourceTest, MetaCyclesAreNumberedPerWorker) {
  JobSpec spec;
  spec.kind = WorkloadKind::kMeta;
  OpSource ops(spec, Clock::time_point::max());
  OpCursor a, b;
  EXPECT_EQ(ops.Next(a, Clock::now())->seq, 0u);
  EXPECT_EQ(ops.Next(a, Clock::now())->seq, 1u);
  EXPECT_EQ(ops.Next(b, Clock::now())->seq, 0u);
  EXPECT_NE(MetaFileName(0, 1), MetaFileName(1, 1));
}

TEST(RecorderTest, CountsOnlyCompletionsInsideTheWindow) {
  Clock::time_point t = Clock::now();
  Recorder r(1, t + std::chrono::seconds(1), t + std::chrono::seconds(2));
  r.Record(0, t, t + std::chrono::milliseconds(500), 1);     // warm-up
  r.Record(0, t, t + std::chrono::milliseconds(1500), 10);   // counted
  r.Record(0, t, t + std::chrono::milliseconds(2500), 100);  // after the end
  EXPECT_EQ(r.workers()[0].ops, 1u);
  EXPECT_EQ(r.workers()[0].bytes, 10u);
}

TEST(ProcessCpuTest, ReadsThisProcessAndRefusesAMissingOne) {
  absl::StatusOr<uint64_t> cpu = ProcessCpuMicros(getpid());
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  EXPECT_FALSE(ProcessCpuMicros(0x7ffffff0).ok());
}

class FileJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("localnfs-bench-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    ASSERT_TRUE(std::filesystem::create_directory(dir_));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  absl::StatusOr<Result> Run(WorkloadKind kind, int qd) {
    absl::StatusOr<std::unique_ptr<Target>> t = OpenFileTarget(dir_);
    if (!t.ok()) return t.status();
    JobSpec spec;
    spec.kind = kind;
    spec.queue_depth = qd;
    spec.block_size = 4096;
    spec.file_size = 1 << 20;
    spec.duration = absl::Milliseconds(100);
    spec.warmup = absl::Milliseconds(20);
    return RunJob(**t, spec, getpid());
  }

  std::string dir_;
};

TEST_F(FileJobTest, EveryWorkloadRunsAndReportsFigures) {
  for (WorkloadKind kind : {WorkloadKind::kRandRead, WorkloadKind::kSeqRead,
                            WorkloadKind::kSeqWrite, WorkloadKind::kMeta}) {
    absl::StatusOr<Result> r = Run(kind, 2);
    ASSERT_TRUE(r.ok()) << WorkloadName(kind) << ": " << r.status();
    EXPECT_GT(r->ops, 0u) << WorkloadName(kind);
    EXPECT_GT(r->ops_per_second, 0) << WorkloadName(kind);
    EXPECT_LE(r->p50_us, r->p99_us) << WorkloadName(kind);
    EXPECT_TRUE(r->server_cpu_us_per_op.has_value());
    EXPECT_NE(FormatJson(*r).find("\"workload\":\""), std::string::npos);
  }
  // seqwrite wrote exactly the file size, then removed its file (the read jobs' file of
  // the same name with it); meta left nothing.
  absl::StatusOr<Result> w = Run(WorkloadKind::kSeqWrite, 1);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->bytes, 1u << 20);
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(dir_))
    left.push_back(e.path().filename());
  EXPECT_EQ(left, std::vector<std::string>{});
}

TEST_F(FileJobTest, NullIsOnlyForTargetsThatSendRpcs) {
  absl::StatusOr<WorkloadKind> kind = ParseWorkload("null");
  ASSERT_TRUE(kind.ok()) << kind.status();
  EXPECT_STREQ(WorkloadName(*kind), "null");
  absl::StatusOr<Result> r = Run(*kind, 1);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnimplemented) << r.status();
}

}  // namespace
}  // namespace localnfs::bench
