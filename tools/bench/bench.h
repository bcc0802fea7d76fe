// tools/bench/bench.h — the measuring core of localnfs-bench: what a job is, how its
// operations are handed out, how latencies and CPU are recorded, and the Target
// interface that each client (local files, our NFSv3 client with or without LOCALIO,
// libnfs) implements.
//
// A job runs in two phases. Time-based workloads (randread, seqread, meta, null) run
// `warmup` unrecorded, then `duration` recorded; the coordinator samples the server's
// and this process's CPU exactly at the start and the end of the recorded window, and
// only operations that complete inside it count. The size-based workload (seqwrite)
// writes `file_size` bytes once and then commits; its window is the whole run, commit
// included, because a write is only done when it is stable.
//
// Latencies are taken with std::chrono::steady_clock (monotonic; absl::Now() follows
// the wall clock) and kept per worker, unshared, so recording costs no lock.
//
// Thread-safety: OpSource and Recorder are shared by the workers of one job; each
// worker touches only its own WorkerStats and OpCursor. A Target is driven by one job
// at a time.
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace localnfs::bench {

using Clock = std::chrono::steady_clock;

// kNull: the NFSv3 NULL procedure, nothing but the RPC round trip — the floor under
// every other call's cost. Only targets that speak RPC themselves (libnfs) send it.
enum class WorkloadKind { kRandRead, kSeqRead, kSeqWrite, kMeta, kNull };
absl::StatusOr<WorkloadKind> ParseWorkload(absl::string_view text);
const char* WorkloadName(WorkloadKind kind);

// A byte count on the command line: "4096", "4k", "1m", "256M", "1g" (powers of 1024).
struct ByteSize {
  uint64_t bytes = 0;
};
bool AbslParseFlag(absl::string_view text, ByteSize* size, std::string* error);
std::string AbslUnparseFlag(ByteSize size);

struct JobSpec {
  WorkloadKind kind = WorkloadKind::kRandRead;
  uint32_t block_size = 4096;
  int queue_depth = 1;
  uint64_t file_size = uint64_t{256} << 20;
  absl::Duration duration = absl::Seconds(3);
  absl::Duration warmup = absl::Milliseconds(500);
  // The data file, relative to the target's directory.
  std::string file_name = "localnfs-bench.dat";

  bool time_based() const { return kind != WorkloadKind::kSeqWrite; }
  uint64_t blocks() const { return file_size / block_size; }
};

// One operation to issue. For kMeta, `seq` numbers the cycle (names are unique per
// worker and sequence number); for data workloads `offset`/`length` say where; a kNull
// call has neither.
struct Op {
  uint64_t offset = 0;
  uint32_t length = 0;
  uint64_t seq = 0;
};

// Per-worker position in the op stream (random generator, meta sequence).
struct OpCursor {
  absl::InsecureBitGen random;
  uint64_t next_seq = 0;
};

// Hands out the operations of one job. Time-based jobs end at `end`; seqwrite ends
// when `file_size` bytes have been handed out.
class OpSource {
 public:
  OpSource(const JobSpec& spec, Clock::time_point end) : spec_(spec), end_(end) {}
  // The next operation for the worker owning `cursor`, or nullopt when the job is done.
  // `now` is the caller's latest clock reading (it has one from its last completion).
  std::optional<Op> Next(OpCursor& cursor, Clock::time_point now);
  const JobSpec& spec() const { return spec_; }

 private:
  const JobSpec spec_;
  const Clock::time_point end_;
  std::atomic<uint64_t> next_block_{0};
};

// What one worker measured. Latencies are in nanoseconds.
struct WorkerStats {
  uint64_t ops = 0;
  uint64_t bytes = 0;
  std::vector<uint32_t> latencies_ns;
};

// The recorded window and the per-worker stats.
class Recorder {
 public:
  Recorder(int workers, Clock::time_point window_start, Clock::time_point window_end);
  // Records one operation issued at `issued` and completed at `completed` if it
  // completed inside the window.
  void Record(int worker, Clock::time_point issued, Clock::time_point completed,
              uint64_t bytes) {
    if (completed < window_start_ || completed > window_end_) return;
    WorkerStats& s = workers_[worker];
    ++s.ops;
    s.bytes += bytes;
    s.latencies_ns.push_back(static_cast<uint32_t>(std::min<int64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(completed - issued).count(),
        UINT32_MAX)));
  }
  // For seqwrite, where the window ends when the commit returns.
  void SetWindowEnd(Clock::time_point end) { window_end_ = end; }
  Clock::time_point window_start() const { return window_start_; }
  Clock::time_point window_end() const { return window_end_; }
  std::vector<WorkerStats>& workers() { return workers_; }

 private:
  std::vector<WorkerStats> workers_;
  Clock::time_point window_start_, window_end_;
};

// What a Target's Run() is given.
struct RunContext {
  const JobSpec* spec;
  OpSource* ops;
  Recorder* recorder;
};

// One way of doing I/O on a directory: the local file system, an NFS client.
class Target {
 public:
  virtual ~Target() = default;
  // "localnfs client, LOCALIO local (server pid 123 …)" — what the figures are of.
  virtual std::string Describe() const = 0;
  // What queue depth `qd` means for this target: "16 threads" or "16 in flight on 1
  // connection".
  virtual std::string Concurrency(int qd) const = 0;
  // Makes `name` a regular file of at least `size` bytes (writing a pattern into a
  // missing or shorter one, then committing it) and opens it for the job.
  virtual absl::Status PrepareReadFile(const std::string& name, uint64_t size) = 0;
  // Replaces `name` by a new empty file and opens it for the job.
  virtual absl::Status PrepareWriteFile(const std::string& name) = 0;
  virtual absl::Status RemoveFile(const std::string& name) = 0;
  // Runs the job's operations with spec->queue_depth concurrency until ops->Next()
  // says done; for seqwrite then commits and sets the recorder's window end.
  // Returns the first error of any operation.
  virtual absl::Status Run(const RunContext& ctx) = 0;
};

// A Target whose operations are blocking calls: Run() uses queue_depth threads.
class ThreadedTarget : public Target {
 public:
  std::string Concurrency(int qd) const override;
  absl::Status Run(const RunContext& ctx) final;

 protected:
  // Each may be called from any worker thread concurrently. `buffer` holds at least
  // `length` bytes.
  virtual absl::Status Read(uint64_t offset, uint32_t length, char* buffer) = 0;
  virtual absl::Status Write(uint64_t offset, absl::string_view data) = 0;
  // Makes every write of the job stable (fsync / COMMIT).
  virtual absl::Status Commit() = 0;
  // create + close + stat + unlink of `name` in the target's directory.
  virtual absl::Status MetaCycle(const std::string& name) = 0;
};

// The name of meta cycle `seq` of `worker`, unique per process.
std::string MetaFileName(int worker, uint64_t seq);
// `length` bytes of the pattern written by seqwrite and by PrepareReadFile (no holes, not
// zeros). Callers make it once per job or worker, not per operation.
std::string FillPattern(uint32_t length);

// CPU time (user + system) of a process from /proc/PID/stat, in microseconds.
absl::StatusOr<uint64_t> ProcessCpuMicros(pid_t pid);
// Resident memory of a process (VmRSS of /proc/PID/status), in bytes.
absl::StatusOr<uint64_t> ProcessRssBytes(pid_t pid);

// The `p` quantile (0..1) of latencies in nanoseconds, in microseconds; `sorted`
// must be sorted. 0 for none.
double Percentile(const std::vector<uint32_t>& sorted, double p);

// The figures of one job.
struct Result {
  std::string target;
  std::string concurrency;
  JobSpec spec;
  uint64_t ops = 0;
  uint64_t bytes = 0;
  double seconds = 0;
  double ops_per_second = 0;
  double mb_per_second = 0;  // 10^6 bytes
  double p50_us = 0, p99_us = 0, max_us = 0;
  std::optional<double> server_cpu_us_per_op;
  double client_cpu_us_per_op = 0;
};

// Prepares the target for `spec`, runs it with the two-phase timing described at the
// top, samples CPU (of `server_pid` when > 0, and of this process) and computes the
// figures.
absl::StatusOr<Result> RunJob(Target& target, const JobSpec& spec, pid_t server_pid);

// One human-readable line, and one JSON object (one line) for tools/bench-all.
std::string FormatText(const Result& r);
std::string FormatJson(const Result& r);

}  // namespace localnfs::bench
