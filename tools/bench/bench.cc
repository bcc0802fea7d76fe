// tools/bench/bench.cc — the measuring core of localnfs-bench (see bench.h).
#include "tools/bench/bench.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"

namespace localnfs::bench {

absl::StatusOr<WorkloadKind> ParseWorkload(absl::string_view text) {
  if (text == "randread") return WorkloadKind::kRandRead;
  if (text == "seqread") return WorkloadKind::kSeqRead;
  if (text == "seqwrite") return WorkloadKind::kSeqWrite;
  if (text == "meta") return WorkloadKind::kMeta;
  if (text == "null") return WorkloadKind::kNull;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown workload '", text, "' (randread, seqread, seqwrite, meta, null)"));
}

const char* WorkloadName(WorkloadKind kind) {
  switch (kind) {
    case WorkloadKind::kRandRead: return "randread";
    case WorkloadKind::kSeqRead: return "seqread";
    case WorkloadKind::kSeqWrite: return "seqwrite";
    case WorkloadKind::kMeta: return "meta";
    case WorkloadKind::kNull: return "null";
  }
  return "?";
}

bool AbslParseFlag(absl::string_view text, ByteSize* size, std::string* error) {
  std::string t = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  int shift = 0;
  if (!t.empty()) {
    switch (t.back()) {
      case 'k': shift = 10; break;
      case 'm': shift = 20; break;
      case 'g': shift = 30; break;
      default: break;
    }
    if (shift != 0) t.pop_back();
  }
  uint64_t n = 0;
  if (!absl::SimpleAtoi(t, &n) || n == 0 || n > (UINT64_MAX >> shift)) {
    *error = absl::StrCat("'", text, "' is not a byte count like 4096, 4k, 1m or 1g");
    return false;
  }
  size->bytes = n << shift;
  return true;
}

std::string AbslUnparseFlag(ByteSize size) {
  for (auto [shift, suffix] : {std::pair{30, "g"}, {20, "m"}, {10, "k"}}) {
    if (size.bytes != 0 && size.bytes % (uint64_t{1} << shift) == 0)
      return absl::StrCat(size.bytes >> shift, suffix);
  }
  return absl::StrCat(size.bytes);
}

std::optional<Op> OpSource::Next(OpCursor& cursor, Clock::time_point now) {
  Op op;
  op.length = spec_.block_size;
  switch (spec_.kind) {
    case WorkloadKind::kRandRead:
      if (now >= end_) return std::nullopt;
      op.offset = absl::Uniform<uint64_t>(cursor.random, 0, spec_.blocks()) * spec_.block_size;
      return op;
    case WorkloadKind::kSeqRead: {
      if (now >= end_) return std::nullopt;
      // Wraps around: a read of a cached file is over long before `duration`.
      uint64_t block = next_block_.fetch_add(1, std::memory_order_relaxed);
      op.offset = (block % spec_.blocks()) * spec_.block_size;
      return op;
    }
    case WorkloadKind::kSeqWrite: {
      uint64_t block = next_block_.fetch_add(1, std::memory_order_relaxed);
      if (block >= spec_.blocks()) return std::nullopt;
      op.offset = block * spec_.block_size;
      return op;
    }
    case WorkloadKind::kMeta:
      if (now >= end_) return std::nullopt;
      op.length = 0;
      op.seq = cursor.next_seq++;
      return op;
    case WorkloadKind::kNull:
      if (now >= end_) return std::nullopt;
      op.length = 0;
      return op;
  }
  return std::nullopt;
}

Recorder::Recorder(int workers, Clock::time_point window_start, Clock::time_point window_end)
    : workers_(workers), window_start_(window_start), window_end_(window_end) {}

std::string MetaFileName(int worker, uint64_t seq) {
  return absl::StrFormat("lnb-meta-%d-%d-%d", getpid(), worker, seq);
}

std::string FillPattern(uint32_t length) {
  std::string pattern(length, '\0');
  for (size_t i = 0; i < length; ++i)
    pattern[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  return pattern;
}

absl::StatusOr<uint64_t> ProcessCpuMicros(pid_t pid) {
  std::string path = absl::StrCat("/proc/", pid, "/stat");
  std::ifstream in(path);
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may contain spaces and ')': fields after it are counted
  // from the last ')'. utime and stime are fields 14 and 15 (proc(5)).
  size_t close = stat.rfind(')');
  if (stat.empty() || close == std::string::npos)
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(stat).substr(close + 2), ' ');
  uint64_t utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime))
    return absl::InternalError(absl::StrCat("unexpected format of ", path));
  static const long ticks_per_second = sysconf(_SC_CLK_TCK);
  return (utime + stime) * 1000000 / ticks_per_second;
}

absl::StatusOr<uint64_t> ProcessRssBytes(pid_t pid) {
  const std::string path = absl::StrCat("/proc/", pid, "/status");
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view rest = line;
    uint64_t kib = 0;
    if (absl::ConsumePrefix(&rest, "VmRSS:") &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(
                             absl::StripSuffix(absl::StripAsciiWhitespace(rest), "kB")),
                         &kib))
      return kib * 1024;
  }
  return absl::NotFoundError(absl::StrCat("no VmRSS in ", path));
}

namespace {

uint64_t SelfCpuMicros() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto micros = [](const timeval& tv) {
    return static_cast<uint64_t>(tv.tv_sec) * 1000000 + tv.tv_usec;
  };
  return micros(ru.ru_utime) + micros(ru.ru_stime);
}

struct CpuSample {
  std::optional<uint64_t> server_us;
  uint64_t self_us = 0;
};

CpuSample SampleCpu(pid_t server_pid) {
  CpuSample s;
  if (server_pid > 0) {
    absl::StatusOr<uint64_t> us = ProcessCpuMicros(server_pid);
    if (us.ok()) s.server_us = *us;
  }
  s.self_us = SelfCpuMicros();
  return s;
}

}  // namespace

double Percentile(const std::vector<uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[i] / 1000.0;
}

std::string ThreadedTarget::Concurrency(int qd) const {
  return qd == 1 ? "1 thread" : absl::StrCat(qd, " threads");
}

absl::Status ThreadedTarget::Run(const RunContext& ctx) {
  const JobSpec& spec = *ctx.spec;
  if (spec.kind == WorkloadKind::kNull)
    return absl::UnimplementedError(
        "the null workload needs a target that sends RPCs itself (libnfs://)");
  absl::Mutex mu;
  absl::Status first_error;
  auto worker = [&](int index) {
    OpCursor cursor;
    std::string buffer(spec.block_size, '\0');
    const std::string pattern = FillPattern(spec.block_size);
    Clock::time_point now = Clock::now();
    while (std::optional<Op> op = ctx.ops->Next(cursor, now)) {
      absl::Status status;
      switch (spec.kind) {
        case WorkloadKind::kRandRead:
        case WorkloadKind::kSeqRead:
          status = Read(op->offset, op->length, buffer.data());
          break;
        case WorkloadKind::kSeqWrite:
          status = Write(op->offset, absl::string_view(pattern.data(), op->length));
          break;
        case WorkloadKind::kMeta:
          status = MetaCycle(MetaFileName(index, op->seq));
          break;
        case WorkloadKind::kNull:
          break;  // Run() refused the job
      }
      Clock::time_point done = Clock::now();
      if (!status.ok()) {
        absl::MutexLock lock(&mu);
        if (first_error.ok()) first_error = status;
        return;
      }
      ctx.recorder->Record(index, now, done, op->length);
      now = done;
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < spec.queue_depth; ++i) threads.emplace_back(worker, i);
  for (std::thread& t : threads) t.join();
  RETURN_IF_ERROR(first_error);
  if (spec.kind == WorkloadKind::kSeqWrite) {
    RETURN_IF_ERROR(Commit());
    ctx.recorder->SetWindowEnd(Clock::now());
  }
  return absl::OkStatus();
}

absl::StatusOr<Result> RunJob(Target& target, const JobSpec& spec, pid_t server_pid) {
  if (spec.block_size == 0 || spec.queue_depth < 1 || spec.blocks() == 0)
    return absl::InvalidArgumentError(
        "block size, queue depth and file size must be positive, file size ≥ block size");
  switch (spec.kind) {
    case WorkloadKind::kRandRead:
    case WorkloadKind::kSeqRead:
      RETURN_IF_ERROR(target.PrepareReadFile(spec.file_name, spec.file_size));
      break;
    case WorkloadKind::kSeqWrite:
      RETURN_IF_ERROR(target.PrepareWriteFile(spec.file_name));
      break;
    case WorkloadKind::kMeta:
    case WorkloadKind::kNull:
      break;
  }

  Clock::time_point t0 = Clock::now();
  Clock::time_point start = t0, end = Clock::time_point::max();
  if (spec.time_based()) {
    start = t0 + absl::ToChronoNanoseconds(spec.warmup);
    end = start + absl::ToChronoNanoseconds(spec.duration);
  }
  OpSource ops(spec, end);
  Recorder recorder(spec.queue_depth, start, end);
  RunContext ctx{&spec, &ops, &recorder};

  CpuSample before, after;
  absl::Status run_status;
  if (spec.time_based()) {
    // Samples exactly at the window's edges, while the workers run.
    std::thread sampler([&] {
      std::this_thread::sleep_until(start);
      before = SampleCpu(server_pid);
      std::this_thread::sleep_until(end);
      after = SampleCpu(server_pid);
    });
    run_status = target.Run(ctx);
    sampler.join();
  } else {
    before = SampleCpu(server_pid);
    run_status = target.Run(ctx);
    after = SampleCpu(server_pid);
  }
  if (spec.kind == WorkloadKind::kSeqWrite) {
    absl::Status removed = target.RemoveFile(spec.file_name);
    if (run_status.ok()) run_status = removed;
  }
  RETURN_IF_ERROR(run_status);

  Result r;
  r.target = target.Describe();
  r.concurrency = target.Concurrency(spec.queue_depth);
  r.spec = spec;
  std::vector<uint32_t> latencies;
  for (WorkerStats& w : recorder.workers()) {
    r.ops += w.ops;
    r.bytes += w.bytes;
    latencies.insert(latencies.end(), w.latencies_ns.begin(), w.latencies_ns.end());
  }
  std::sort(latencies.begin(), latencies.end());
  r.seconds = std::chrono::duration<double>(recorder.window_end() - recorder.window_start())
                  .count();
  if (r.ops == 0 || r.seconds <= 0)
    return absl::InternalError("no operation completed inside the measuring window");
  r.ops_per_second = r.ops / r.seconds;
  r.mb_per_second = r.bytes / r.seconds / 1e6;
  r.p50_us = Percentile(latencies, 0.50);
  r.p99_us = Percentile(latencies, 0.99);
  r.max_us = latencies.back() / 1000.0;
  if (before.server_us && after.server_us)
    r.server_cpu_us_per_op = double(*after.server_us - *before.server_us) / r.ops;
  r.client_cpu_us_per_op = double(after.self_us - before.self_us) / r.ops;
  return r;
}

std::string FormatText(const Result& r) {
  const JobSpec& s = r.spec;
  std::string rate = s.kind == WorkloadKind::kMeta
                         ? absl::StrFormat("%.0f cycles/s", r.ops_per_second)
                     : s.kind == WorkloadKind::kNull
                         ? absl::StrFormat("%.0f calls/s", r.ops_per_second)
                     : s.block_size >= 65536
                         ? absl::StrFormat("%.1f MB/s (%.0f ops/s)", r.mb_per_second,
                                           r.ops_per_second)
                         : absl::StrFormat("%.0f IOPS (%.1f MB/s)", r.ops_per_second,
                                           r.mb_per_second);
  std::string cpu = r.server_cpu_us_per_op
                        ? absl::StrFormat("server CPU %.1f µs/op, ", *r.server_cpu_us_per_op)
                        : std::string();
  return absl::StrFormat(
      "%s bs=%s qd=%d (%s): %s, p50 %.1f µs, p99 %.1f µs, %sclient CPU %.1f µs/op "
      "[%d ops in %.2f s; %s]",
      WorkloadName(s.kind), AbslUnparseFlag(ByteSize{s.block_size}), s.queue_depth,
      r.concurrency, rate, r.p50_us, r.p99_us, cpu, r.client_cpu_us_per_op, r.ops,
      r.seconds, r.target);
}

namespace {
std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}
}  // namespace

std::string FormatJson(const Result& r) {
  const JobSpec& s = r.spec;
  std::string server_cpu =
      r.server_cpu_us_per_op ? absl::StrFormat("%.3f", *r.server_cpu_us_per_op) : "null";
  return absl::StrFormat(
      "{\"workload\":%s,\"block_size\":%d,\"queue_depth\":%d,\"file_size\":%d,"
      "\"target\":%s,\"concurrency\":%s,\"ops\":%d,\"bytes\":%d,\"seconds\":%.4f,"
      "\"ops_per_second\":%.1f,\"mb_per_second\":%.2f,\"p50_us\":%.2f,\"p99_us\":%.2f,"
      "\"max_us\":%.1f,\"server_cpu_us_per_op\":%s,\"client_cpu_us_per_op\":%.3f}",
      JsonString(WorkloadName(s.kind)), s.block_size, s.queue_depth, s.file_size,
      JsonString(r.target), JsonString(r.concurrency), r.ops, r.bytes, r.seconds,
      r.ops_per_second, r.mb_per_second, r.p50_us, r.p99_us, r.max_us, server_cpu,
      r.client_cpu_us_per_op);
}

}  // namespace localnfs::bench
