// tools/bench/main.cc — localnfs-bench: one benchmark job against one target.
//
//   localnfs-bench --target URL --workload randread|seqread|seqwrite|meta|null
//       [--block-size 4k] [--queue-depth N] [--file-size 256m] [--duration 3s]
//       [--warmup 500ms] [--file NAME] [--server-pid PID] [--json]
//
// URL is file://DIR, nfs://HOST:PORT/EXPORT?mountport=M[&localio=on|off|auto]
// [&runtime_dir=D] or libnfs://HOST:PORT/EXPORT?mountport=M (tools/bench/targets.h).
// Prints one line of figures (IOPS or MB/s, p50/p99 latency, CPU µs per operation of
// the server and of this client); --json prints it as one JSON object instead, which
// is what tools/bench-all collects. Exit: 0 ok, 1 the job failed, 2 bad usage.
#include <stdio.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/flags.h"
#include "common/mutex_mode.h"
#include "tools/bench/bench.h"
#include "tools/bench/targets.h"

using localnfs::bench::ByteSize;

ABSL_FLAG(std::string, target, "",
          "file://DIR, nfs://HOST:PORT/EXPORT?mountport=M[&localio=on|off|auto]"
          "[&runtime_dir=D] or libnfs://HOST:PORT/EXPORT?mountport=M");
ABSL_FLAG(std::string, workload, "randread", "randread, seqread, seqwrite, meta or null (NFSv3 NULL, libnfs targets)");
ABSL_FLAG(ByteSize, block_size, ByteSize{4096}, "bytes per READ/WRITE (4k, 1m, …)");
ABSL_FLAG(int32_t, queue_depth, 1,
          "operations in flight: threads (file://, nfs://) or async calls on one "
          "connection (libnfs://)");
ABSL_FLAG(ByteSize, file_size, ByteSize{uint64_t{256} << 20},
          "size of the data file (read jobs reuse it when it is large enough; seqwrite "
          "writes this much, then commits)");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(3), "measured time of time-based jobs");
ABSL_FLAG(absl::Duration, warmup, absl::Milliseconds(500),
          "unmeasured time before the measured window (time-based jobs)");
ABSL_FLAG(std::string, file, "localnfs-bench.dat",
          "data file name in the target directory (seqwrite replaces it, then removes it)");
ABSL_FLAG(int32_t, server_pid, 0, "report this process's CPU µs per operation (/proc)");
ABSL_FLAG(bool, json, false, "print the figures as one JSON object");

namespace {

constexpr int kExitFailure = 1;
using localnfs::kExitUsage;


int Main(int argc, char** argv) {
  localnfs::ConfigureMutexDeadlockDetection();
  absl::SetProgramUsageMessage(
      "localnfs-bench --target URL --workload randread|seqread|seqwrite|meta|null "
      "[--block-size 4k] [--queue-depth N] [--file-size 256m] [--duration 3s] "
      "[--server-pid PID] [--json]");
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) args.push_back(localnfs::AbslFlagSpelling(argv[i]));
  std::vector<char*> rest = localnfs::ParseFlagsOrExitUsage(args);
  if (rest.size() != 1) {
    fprintf(stderr, "localnfs-bench: unexpected argument '%s'\n", rest[1]);
    return kExitUsage;
  }

  absl::StatusOr<localnfs::bench::TargetUrl> url =
      localnfs::bench::ParseTargetUrl(absl::GetFlag(FLAGS_target));
  absl::StatusOr<localnfs::bench::WorkloadKind> kind =
      localnfs::bench::ParseWorkload(absl::GetFlag(FLAGS_workload));
  for (const absl::Status& s : {url.status(), kind.status()}) {
    if (!s.ok()) {
      fprintf(stderr, "localnfs-bench: %s\n", std::string(s.message()).c_str());
      return kExitUsage;
    }
  }
  localnfs::bench::JobSpec spec;
  spec.kind = *kind;
  spec.block_size = static_cast<uint32_t>(absl::GetFlag(FLAGS_block_size).bytes);
  spec.queue_depth = absl::GetFlag(FLAGS_queue_depth);
  spec.file_size = absl::GetFlag(FLAGS_file_size).bytes;
  spec.duration = absl::GetFlag(FLAGS_duration);
  spec.warmup = absl::GetFlag(FLAGS_warmup);
  spec.file_name = absl::GetFlag(FLAGS_file);
  if (spec.queue_depth < 1 || spec.queue_depth > 1024 || spec.file_size < spec.block_size ||
      absl::GetFlag(FLAGS_block_size).bytes > (64u << 20) || spec.duration <= absl::ZeroDuration() ||
      spec.warmup < absl::ZeroDuration() || spec.file_name.empty() ||
      spec.file_name.find('/') != std::string::npos) {
    fprintf(stderr,
            "localnfs-bench: need 1 ≤ queue depth ≤ 1024, block size ≤ 64m and ≤ file size, "
            "positive duration, a plain file name\n");
    return kExitUsage;
  }

  absl::StatusOr<std::unique_ptr<localnfs::bench::Target>> target =
      localnfs::bench::OpenTarget(*url, spec.queue_depth);
  if (!target.ok()) {
    fprintf(stderr, "localnfs-bench: %s: %s\n", absl::GetFlag(FLAGS_target).c_str(),
            std::string(target.status().message()).c_str());
    return kExitFailure;
  }
  absl::StatusOr<localnfs::bench::Result> result =
      localnfs::bench::RunJob(**target, spec, absl::GetFlag(FLAGS_server_pid));
  if (!result.ok()) {
    fprintf(stderr, "localnfs-bench: %s %s: %s\n", localnfs::bench::WorkloadName(spec.kind),
            absl::GetFlag(FLAGS_target).c_str(), std::string(result.status().message()).c_str());
    return kExitFailure;
  }
  std::string line = absl::GetFlag(FLAGS_json) ? localnfs::bench::FormatJson(*result)
                                               : localnfs::bench::FormatText(*result);
  printf("%s\n", line.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
