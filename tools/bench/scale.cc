// tools/bench/scale.cc — localnfs-scale: issue 5's scale target, measured with libnfs
// (an NFS client that is not ours) against any NFSv3 server.
//
//   localnfs-scale connections --url nfs://HOST/EXPORT?nfsport=P&mountport=M
//       [--connections 1000] [--rate 1] [--duration 30s] [--window 5s]
//       [--file localnfs-bench.dat] [--server-pid PID]
//     Mounts the export --connections times (one libnfs context, one TCP connection
//     each), opens --file on each, then has every connection READ 4 KiB at a random
//     offset --rate times a second, the connections' calls spread evenly over each
//     second. Per window: calls, p50/p99/max latency, the server's RSS and CPU. Flat
//     latency means the last windows look like the first.
//
//   localnfs-scale walk --url ... --tree DIR [--dirs 1000] [--files-per-dir 1000]
//       [--server-pid PID]
//     DIR is the export's directory on this machine: the tree DIR/scale-tree of
//     --dirs directories of --files-per-dir empty files is created there once (kept
//     for the next run; a marker file records its shape). Then the tree is walked over
//     NFS like `ls -lR` does: every directory listed with READDIRPLUS (names, handles
//     and attributes of every entry, libnfs's opendir), every subdirectory entered.
//     The server's RSS is sampled every 100 ms: before, peak, after.
//
// --json FILE writes the figures as one JSON object too (tools/bench-all reads it).
// Exit: 0 ok, 1 a step failed, 2 bad usage.
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nfsc/libnfs.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/flags.h"
#include "common/status.h"
#include "tools/bench/bench.h"

ABSL_FLAG(std::string, url, "",
          "nfs://HOST/EXPORT?nfsport=P&mountport=M (libnfs URL; version 3 is used)");
ABSL_FLAG(int32_t, connections, 1000, "connections: NFS connections held at once");
ABSL_FLAG(double, rate, 1.0, "connections: READs per second per connection");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(30), "connections: measured time");
ABSL_FLAG(absl::Duration, window, absl::Seconds(5), "connections: length of a report window");
ABSL_FLAG(std::string, file, "localnfs-bench.dat",
          "connections: file to READ, in the export (at least 4 KiB)");
ABSL_FLAG(std::string, tree, "", "walk: the export's directory on this machine");
ABSL_FLAG(int32_t, dirs, 1000, "walk: directories in the tree");
ABSL_FLAG(int32_t, files_per_dir, 1000, "walk: empty files per directory");
ABSL_FLAG(int32_t, server_pid, 0, "sample this process's RSS and CPU (/proc)");
ABSL_FLAG(std::string, json, "", "also write the figures as one JSON object to this file");

namespace localnfs::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kReadSize = 4096;
constexpr char kTreeName[] = "scale-tree";

double Mib(uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

std::string Rss(pid_t pid) {
  if (pid <= 0) return "-";
  absl::StatusOr<uint64_t> rss = ProcessRssBytes(pid);
  return rss.ok() ? absl::StrFormat("%.1f MiB", Mib(*rss)) : "?";
}

// RSS in bytes for the JSON figures; null without a server pid.
std::string RssJson(pid_t pid) {
  if (pid <= 0) return "null";
  absl::StatusOr<uint64_t> rss = ProcessRssBytes(pid);
  return rss.ok() ? absl::StrCat(*rss) : "null";
}

void WriteJson(const std::string& json) {
  const std::string path = absl::GetFlag(FLAGS_json);
  if (path.empty()) return;
  std::ofstream(path) << json << "\n";
}

// One libnfs context, mounted.
struct Mount {
  nfs_context* nfs = nullptr;
  nfsfh* fh = nullptr;
  ~Mount() {
    if (nfs != nullptr && fh != nullptr) nfs_close(nfs, fh);
    if (nfs != nullptr) nfs_destroy_context(nfs);
  }
};

absl::Status MountUrl(const std::string& url, Mount* m) {
  m->nfs = nfs_init_context();
  if (m->nfs == nullptr) return absl::ResourceExhaustedError("nfs_init_context failed");
  nfs_set_version(m->nfs, 3);  // NFSv3 (libnfs-raw-nfs.h's NFS_V3)
  nfs_url* u = nfs_parse_url_dir(m->nfs, url.c_str());
  if (u == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("bad --url: ", nfs_get_error(m->nfs)));
  const int rc = nfs_mount(m->nfs, u->server, u->path);
  nfs_destroy_url(u);
  if (rc != 0) return absl::UnavailableError(absl::StrCat("mount: ", nfs_get_error(m->nfs)));
  return absl::OkStatus();
}

// The open-file limit up to its hard limit: a thousand connections need a thousand fds.
void RaiseFdLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// ---- connections ----

struct Window {
  std::vector<uint32_t> latencies_ns;
  uint64_t errors = 0;
};

struct Pending {
  Clock::time_point issued;
  Window* window = nullptr;
  bool busy = false;
};

void ReadDone(int status, nfs_context*, void*, void* private_data) {
  auto* p = static_cast<Pending*>(private_data);
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - p->issued);
  if (status < 0) {
    ++p->window->errors;
  } else {
    p->window->latencies_ns.push_back(
        static_cast<uint32_t>(std::min<int64_t>(ns.count(), UINT32_MAX)));
  }
  p->busy = false;
}

int Connections(const std::string& url, pid_t server_pid) {
  const int n = absl::GetFlag(FLAGS_connections);
  const double rate = absl::GetFlag(FLAGS_rate);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  const absl::Duration window = absl::GetFlag(FLAGS_window);
  const std::string file = absl::StrCat("/", absl::GetFlag(FLAGS_file));
  if (n < 1 || rate <= 0 || window <= absl::ZeroDuration() || duration < window) {
    fprintf(stderr, "localnfs-scale: need --connections >= 1, --rate > 0, --duration >= --window > 0\n");
    return kExitUsage;
  }
  RaiseFdLimit();
  printf("server RSS before connecting: %s\n", Rss(server_pid).c_str());
  const std::string rss_before_json = RssJson(server_pid);
  const auto setup_start = Clock::now();
  std::vector<Mount> mounts(static_cast<size_t>(n));
  uint64_t file_size = 0;
  for (int i = 0; i < n; ++i) {
    Mount& m = mounts[i];
    if (absl::Status s = MountUrl(url, &m); !s.ok()) {
      fprintf(stderr, "localnfs-scale: connection %d: %s\n", i, s.ToString().c_str());
      return 1;
    }
    if (nfs_open(m.nfs, file.c_str(), O_RDONLY, &m.fh) != 0) {
      fprintf(stderr, "localnfs-scale: open %s: %s\n", file.c_str(), nfs_get_error(m.nfs));
      return 1;
    }
    if (i == 0) {
      nfs_stat_64 st{};
      if (nfs_fstat64(m.nfs, m.fh, &st) != 0 || st.nfs_size < kReadSize) {
        fprintf(stderr, "localnfs-scale: %s must hold at least 4 KiB\n", file.c_str());
        return 1;
      }
      file_size = st.nfs_size;
    }
  }
  const double setup_s =
      std::chrono::duration<double>(Clock::now() - setup_start).count();
  printf("%d connections mounted and opened %s in %.2f s; server RSS %s\n", n, file.c_str(),
         setup_s, Rss(server_pid).c_str());
  std::vector<std::string> window_json;

  // Connection i issues its k-th call at start + (k + i / n) / rate.
  const auto period = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(1.0 / rate));
  const auto window_len = absl::ToChronoNanoseconds(window);
  const int windows = static_cast<int>(duration / window);
  std::vector<Window> stats(static_cast<size_t>(windows));
  std::vector<Pending> pending(static_cast<size_t>(n));
  std::vector<Clock::time_point> next(static_cast<size_t>(n));
  const auto start = Clock::now() + std::chrono::milliseconds(100);
  for (int i = 0; i < n; ++i) next[i] = start + period * i / n;
  const auto end = start + window_len * windows;
  absl::InsecureBitGen random;
  std::vector<pollfd> fds(static_cast<size_t>(n));
  uint64_t skipped = 0;  // a call still in flight when its next one was due
  printf("%-8s %8s %8s %10s %10s %10s %12s %14s\n", "window", "calls", "errors", "p50 us",
         "p99 us", "max us", "server RSS", "server CPU us");
  int reported = 0;
  uint64_t cpu_before = 0;
  if (server_pid > 0) cpu_before = ProcessCpuMicros(server_pid).value_or(0);
  while (true) {
    const auto now = Clock::now();
    // Report every window that has ended and whose calls have all come back.
    bool in_flight = false;
    for (const Pending& p : pending) in_flight |= p.busy;
    while (reported < windows && now >= start + window_len * (reported + 1) &&
           (!in_flight || now >= start + window_len * (reported + 1) + std::chrono::seconds(5))) {
      Window& w = stats[reported];
      std::sort(w.latencies_ns.begin(), w.latencies_ns.end());
      uint64_t cpu_now = server_pid > 0 ? ProcessCpuMicros(server_pid).value_or(0) : 0;
      const uint64_t calls = w.latencies_ns.size();
      printf("%-8s %8llu %8llu %10.1f %10.1f %10.1f %12s %14.1f\n",
             absl::StrCat(absl::FormatDuration(window * reported), "+").c_str(),
             static_cast<unsigned long long>(calls), static_cast<unsigned long long>(w.errors),
             Percentile(w.latencies_ns, 0.5), Percentile(w.latencies_ns, 0.99),
             Percentile(w.latencies_ns, 1.0), Rss(server_pid).c_str(),
             calls == 0 ? 0.0 : static_cast<double>(cpu_now - cpu_before) / calls);
      fflush(stdout);
      window_json.push_back(absl::StrFormat(
          R"({"calls": %d, "errors": %d, "p50_us": %.1f, "p99_us": %.1f, "max_us": %.1f, )"
          R"("server_rss_bytes": %s, "server_cpu_us_per_call": %.1f})",
          calls, w.errors, Percentile(w.latencies_ns, 0.5), Percentile(w.latencies_ns, 0.99),
          Percentile(w.latencies_ns, 1.0), RssJson(server_pid),
          calls == 0 ? 0.0 : static_cast<double>(cpu_now - cpu_before) / calls));
      cpu_before = cpu_now;
      ++reported;
    }
    if (reported == windows) break;
    // Issue what is due.
    Clock::time_point earliest = Clock::time_point::max();
    for (int i = 0; i < n; ++i) {
      if (now >= next[i] && next[i] < end) {
        if (pending[i].busy) {
          ++skipped;
        } else {
          const int w = static_cast<int>((next[i] - start) / window_len);
          pending[i] = Pending{Clock::now(), &stats[w], true};
          const uint64_t offset =
              absl::Uniform<uint64_t>(random, 0, file_size / kReadSize) * kReadSize;
          if (nfs_pread_async(mounts[i].nfs, mounts[i].fh, offset, kReadSize, &ReadDone,
                              &pending[i]) != 0) {
            pending[i].busy = false;
            ++stats[w].errors;
          }
        }
        next[i] += period;
      }
      if (next[i] < end) earliest = std::min(earliest, next[i]);
    }
    for (int i = 0; i < n; ++i) {
      fds[i] = pollfd{nfs_get_fd(mounts[i].nfs), static_cast<short>(nfs_which_events(mounts[i].nfs)), 0};
    }
    int timeout_ms = 100;
    if (earliest != Clock::time_point::max()) {
      timeout_ms = static_cast<int>(std::clamp<int64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(earliest - Clock::now()).count(),
          0, 100));
    }
    if (poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) {
      perror("poll");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents != 0 && nfs_service(mounts[i].nfs, fds[i].revents) < 0) {
        fprintf(stderr, "localnfs-scale: connection %d: %s\n", i, nfs_get_error(mounts[i].nfs));
        return 1;
      }
    }
  }
  std::vector<uint32_t> all;
  uint64_t errors = 0;
  for (Window& w : stats) {
    all.insert(all.end(), w.latencies_ns.begin(), w.latencies_ns.end());
    errors += w.errors;
  }
  std::sort(all.begin(), all.end());
  printf("all: %zu calls, %llu errors, %llu skipped (previous call of the connection still "
         "in flight), p50 %.1f us, p99 %.1f us, max %.1f us; server RSS %s with %d "
         "connections\n",
         all.size(), static_cast<unsigned long long>(errors),
         static_cast<unsigned long long>(skipped), Percentile(all, 0.5), Percentile(all, 0.99),
         Percentile(all, 1.0), Rss(server_pid).c_str(), n);
  const std::string rss_connected_json = RssJson(server_pid);
  mounts.clear();
  printf("server RSS after disconnecting: %s\n", Rss(server_pid).c_str());
  WriteJson(absl::StrFormat(
      R"({"mode": "connections", "connections": %d, "rate": %g, "setup_seconds": %.2f, )"
      R"("calls": %d, "errors": %d, "skipped": %d, "p50_us": %.1f, "p99_us": %.1f, )"
      R"("max_us": %.1f, "server_rss_before": %s, "server_rss_connected": %s, )"
      R"("server_rss_after": %s, "windows": [%s]})",
      n, rate, setup_s, all.size(), errors, skipped, Percentile(all, 0.5),
      Percentile(all, 0.99), Percentile(all, 1.0), rss_before_json, rss_connected_json,
      RssJson(server_pid), absl::StrJoin(window_json, ", ")));
  return errors == 0 ? 0 : 1;
}

// ---- walk ----

// Creates DIR/scale-tree once; a marker file records the shape it was made with.
absl::Status MakeTree(const std::string& export_dir, int dirs, int files) {
  const std::string root = absl::StrCat(export_dir, "/", kTreeName);
  const std::string marker_path = root + "/.complete";
  const std::string shape = absl::StrCat(dirs, " x ", files, "\n");
  {
    std::ifstream marker(marker_path);
    std::string have((std::istreambuf_iterator<char>(marker)), std::istreambuf_iterator<char>());
    if (have == shape) return absl::OkStatus();
    if (!have.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(root, " holds a tree of another shape (", have,
                       "): remove it first"));
    }
  }
  const auto t0 = Clock::now();
  if (mkdir(root.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoToStatus(errno, root);
  for (int d = 0; d < dirs; ++d) {
    const std::string dir = absl::StrFormat("%s/d%05d", root, d);
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoToStatus(errno, dir);
    for (int f = 0; f < files; ++f) {
      const std::string name = absl::StrFormat("%s/f%05d", dir, f);
      const int fd = open(name.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) return ErrnoToStatus(errno, name);
      close(fd);
    }
  }
  std::ofstream(marker_path) << shape;
  printf("created %s: %d directories x %d files in %.1f s\n", root.c_str(), dirs, files,
         std::chrono::duration<double>(Clock::now() - t0).count());
  return absl::OkStatus();
}

struct WalkCount {
  uint64_t dirs = 0;
  uint64_t entries = 0;
};

absl::Status WalkDir(nfs_context* nfs, const std::string& path, WalkCount* count) {
  nfsdir* dir = nullptr;
  if (nfs_opendir(nfs, path.c_str(), &dir) != 0)
    return absl::UnavailableError(absl::StrCat("opendir ", path, ": ", nfs_get_error(nfs)));
  ++count->dirs;
  std::vector<std::string> subdirs;
  while (nfsdirent* e = nfs_readdir(nfs, dir)) {
    const std::string name = e->name;
    if (name == "." || name == "..") continue;
    ++count->entries;
    if (S_ISDIR(e->mode)) subdirs.push_back(path + "/" + name);
  }
  nfs_closedir(nfs, dir);
  for (const std::string& sub : subdirs) RETURN_IF_ERROR(WalkDir(nfs, sub, count));
  return absl::OkStatus();
}

int Walk(const std::string& url, pid_t server_pid) {
  const std::string tree = absl::GetFlag(FLAGS_tree);
  const int dirs = absl::GetFlag(FLAGS_dirs), files = absl::GetFlag(FLAGS_files_per_dir);
  if (tree.empty() || dirs < 1 || files < 0) {
    fprintf(stderr, "localnfs-scale walk: need --tree DIR, --dirs >= 1, --files-per-dir >= 0\n");
    return kExitUsage;
  }
  if (absl::Status s = MakeTree(tree, dirs, files); !s.ok()) {
    fprintf(stderr, "localnfs-scale: %s\n", s.ToString().c_str());
    return 1;
  }
  Mount m;
  if (absl::Status s = MountUrl(url, &m); !s.ok()) {
    fprintf(stderr, "localnfs-scale: %s\n", s.ToString().c_str());
    return 1;
  }
  const std::string rss_before = Rss(server_pid);
  const std::string rss_before_json = RssJson(server_pid);
  std::atomic<bool> done{false};
  std::atomic<uint64_t> peak{0};
  std::thread sampler([&] {
    while (!done.load()) {
      if (server_pid > 0) {
        const uint64_t rss = ProcessRssBytes(server_pid).value_or(0);
        uint64_t seen = peak.load();
        while (rss > seen && !peak.compare_exchange_weak(seen, rss)) {
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  const uint64_t cpu_before = server_pid > 0 ? ProcessCpuMicros(server_pid).value_or(0) : 0;
  const auto t0 = Clock::now();
  WalkCount count;
  absl::Status s = WalkDir(m.nfs, absl::StrCat("/", kTreeName), &count);
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const uint64_t cpu_after = server_pid > 0 ? ProcessCpuMicros(server_pid).value_or(0) : 0;
  done.store(true);
  sampler.join();
  if (!s.ok()) {
    fprintf(stderr, "localnfs-scale: %s\n", s.ToString().c_str());
    return 1;
  }
  printf("walked %llu directories, %llu entries in %.1f s (%.0f entries/s); server CPU "
         "%.2f us per entry; server RSS before %s, peak %s, after %s\n",
         static_cast<unsigned long long>(count.dirs),
         static_cast<unsigned long long>(count.entries), seconds, count.entries / seconds,
         count.entries == 0 ? 0.0 : static_cast<double>(cpu_after - cpu_before) / count.entries,
         rss_before.c_str(),
         server_pid > 0 ? absl::StrFormat("%.1f MiB", Mib(peak.load())).c_str() : "-",
         Rss(server_pid).c_str());
  WriteJson(absl::StrFormat(
      R"({"mode": "walk", "dirs": %d, "entries": %d, "seconds": %.2f, "entries_per_second": %.0f, )"
      R"("server_cpu_us_per_entry": %.2f, "server_rss_before": %s, "server_rss_peak": %s, )"
      R"("server_rss_after": %s})",
      count.dirs, count.entries, seconds, count.entries / seconds,
      count.entries == 0 ? 0.0 : static_cast<double>(cpu_after - cpu_before) / count.entries,
      rss_before_json, server_pid > 0 ? absl::StrCat(peak.load()) : "null",
      RssJson(server_pid)));
  const uint64_t expected = static_cast<uint64_t>(dirs) * (files + 1) + 1;  // + .complete
  if (count.entries != expected) {
    fprintf(stderr, "localnfs-scale: expected %llu entries, saw %llu\n",
            static_cast<unsigned long long>(expected),
            static_cast<unsigned long long>(count.entries));
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace localnfs::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "localnfs-scale connections|walk --url nfs://HOST/EXPORT?nfsport=P&mountport=M "
      "[--server-pid PID] ...");
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) args.push_back(localnfs::AbslFlagSpelling(argv[i]));
  std::vector<char*> rest = localnfs::ParseFlagsOrExitUsage(args);
  const std::string url = absl::GetFlag(FLAGS_url);
  if (rest.size() != 2 || url.empty()) {
    fprintf(stderr, "usage: %s\n", absl::ProgramUsageMessage().data());
    return localnfs::kExitUsage;
  }
  const std::string mode = rest[1];
  const pid_t pid = absl::GetFlag(FLAGS_server_pid);
  if (mode == "connections") return localnfs::bench::Connections(url, pid);
  if (mode == "walk") return localnfs::bench::Walk(url, pid);
  fprintf(stderr, "localnfs-scale: unknown mode '%s' (connections or walk)\n", mode.c_str());
  return localnfs::kExitUsage;
}
