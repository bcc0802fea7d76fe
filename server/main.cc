// server/main.cc — localnfsd: flags, startup in order, signals, orderly shutdown in
// exact reverse order.
//
// Startup: parse flags → RCU registration of the main thread → release queue →
// exports (ExportTable) → handle key → handle resolver → backend (the POSIX backend
// under the caching layer, which owns the file cache NFSv3, MOUNT and LOCALIO share) →
// LOCALIO broker (Broker::CreateForServer + PublishServer: our ops-table record in fresh
// files renamed into place; a live server on the same runtime dir refuses us, a dead one
// is reaped; nothing a client wrote or holds is waited on or believed) → local socket
// (<runtime-dir>/localio.sock) → programs (NFSv3, MOUNT, LOCALIO) → rpc::Server
// (listen on the NFS and MOUNT ports, start) → rpcbind (--rpcbind; LOCALIO is hidden)
// → control socket (<runtime-dir>/control.sock: localnfs-ctl's status, exports, reload)
// → the metrics endpoint (--metrics: server/metrics_http.h, the same figures as the
// status) → "localnfsd: ready nfs=PORT mount=PORT[ metrics=PORT]" on stdout, then READY=1
// to systemd (server/service_notify.h; nothing without $NOTIFY_SOCKET). --no-localio: no
// broker and no local socket; the LOCALIO program still answers (void) but binds nothing.
// NFSv4.1/4.2 (server/nfs4/) answers on the NFS port next to v3 (a version mismatch then
// reports 3..4); --nonfs4 registers nothing of v4, so clients negotiate v3 as before
// (--nfs4-preview, the flag of the preview, is still accepted and means --nfs4).
// Shutdown (SIGTERM/SIGINT; STOPPING=1 to systemd first) undoes it: reload queue
// closed (a waiting localnfs-ctl reload is refused) → metrics endpoint → control socket →
// rpcbind → Server::Stop (drains in-flight requests; no more UUID_IS_LOCAL) → local
// socket → Broker::Withdraw (unbind every uuid, drop their references, bump the
// generation: clients fall back; plain stores, bounded whatever clients do) → the
// backend's file cache (closes fds) → resolver → ExportTable::Shutdown (unregister,
// drain, destroy) → release queue. SIGHUP and `localnfs-ctl reload` (handed over by
// the control thread through the ReloadQueue, server/reload.h) both run Reload() in
// the main loop, one at a time: it re-reads the --exports file and reloads the table
// (refused without one; errors are logged and the old table stays); when an export was
// removed or changed, the backend closes the removed exports' files and the LOCALIO
// clients are invalidated (nfs_uuid_invalidate_clients). systemd hears RELOADING=1
// before and READY=1 (with the result in STATUS=) after.
//
// Exit status: 0 after an orderly shutdown; 2 for bad usage or configuration (the
// message names the problem); 1 for runtime failures.
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/localio/broker_server.h"
#include "common/control.h"
#include "common/flags.h"
#include "common/localio/proto.h"
#include "common/log.h"
#include "common/mutex_mode.h"
#include "common/rcu.h"
#include "common/release_queue.h"
#include "common/status.h"
#include "export_cache/export_table.h"
#include "export_cache/exports_parser.h"
#include "rpc/server.h"
#include "server/admin_requests.h"
#include "server/control_socket.h"
#include "server/metrics_http.h"
#include "server/policy/creds.h"
#include "server/policy/fhandle.h"
#include "server/backend/caching_backend.h"
#include "server/backend/file_cache.h"
#include "server/backend/posix_backend.h"
#include "server/localio/local_socket.h"
#include "server/localio/localio_program.h"
#include "server/mount/mount_program.h"
#include "server/nfs3/nfs3_program.h"
#include "server/nfs4/client_records.h"
#include "server/nfs4/compound.h"
#include "server/nfs4/nfs4_program.h"
#include "server/nfs4/open_state.h"
#include "server/nfs4/pseudofs.h"
#include "server/nfs4/state.h"
#include "server/service_notify.h"
#include "server/reload.h"
#include "server/status.h"

// Only for --help: main() takes every --export out of argv itself (PrepareArgs).
ABSL_FLAG(std::string, export, "",
          "DIR[:OPTIONS] to export (repeatable; OPTIONS comma-separated as in "
          "exports(5), for every client)");
ABSL_FLAG(std::string, exports, "", "exports(5) file");
ABSL_FLAG(int32_t, port, 2049, "NFS port (0 = any free port)");
ABSL_FLAG(int32_t, mount_port, 20048, "MOUNT port (0 = any free port)");
ABSL_FLAG(std::string, bind, "", "address to listen on (empty = all interfaces)");
ABSL_FLAG(int32_t, threads, 4, "worker threads");
ABSL_FLAG(std::string, runtime_dir, "",
          "runtime directory (default /run/localnfs as root, "
          "$XDG_RUNTIME_DIR/localnfs otherwise)");
ABSL_FLAG(std::string, state_dir, "",
          "state directory holding handle.key and nfs4-clients (default /var/lib/localnfs as root, "
          "$XDG_STATE_HOME/localnfs or ~/.local/state/localnfs otherwise)");
ABSL_FLAG(bool, no_localio, false, "do not offer LOCALIO");
ABSL_FLAG(bool, rpcbind, false, "register NFS and MOUNT with a running rpcbind");
ABSL_FLAG(bool, nfs4, true,
          "answer NFSv4.1/4.2 on the NFS port next to NFSv3 (--nonfs4: NFSv3 only)");
ABSL_FLAG(bool, nfs4_preview, false,
          "accepted for scripts written for the preview: the same as --nfs4 (the default)");
ABSL_FLAG(int32_t, lease_time, 90,
          "NFSv4 lease in seconds: a client that sends nothing for longer becomes a "
          "courtesy client (its state kept until another client conflicts)");
ABSL_FLAG(int32_t, grace, -1,
          "NFSv4 grace period in seconds after a restart, while the clients of the previous "
          "instance reclaim (default: the lease time; 0 = none); ends early once every one "
          "of them has sent RECLAIM_COMPLETE");
ABSL_FLAG(bool, inline_quick_calls, true,
          "run the quick calls (GETATTR, LOOKUP, READ, CREATE, REMOVE, ...) a round reads "
          "from one connection on the event-loop thread instead of waking workers");
ABSL_FLAG(int32_t, busy_poll_us, 0,
          "after reading requests, poll this many microseconds for the next before "
          "sleeping (lower latency at one request in flight, paid in CPU); 0 = off");
ABSL_FLAG(std::string, zerocopy, "auto",
          "MSG_ZEROCOPY for large READ replies: auto (until the kernel reports it copied "
          "anyway, as for a client on this host), always, off");
ABSL_FLAG(int64_t, zerocopy_min_bytes, localnfs::rpc::ServerOptions{}.zerocopy_min_bytes,
          "smallest READ payload sent with MSG_ZEROCOPY");
ABSL_FLAG(int32_t, file_cache_size, 1024, "open files kept for READ/WRITE/COMMIT");
// rpc limits and the duplicate request cache (rpc/server.h, rpc/drc.h): each refuses
// cleanly (closed connection or back-pressure, with a log line), never grows memory.
// The defaults are those of the option structs.
ABSL_FLAG(int64_t, max_record_size, localnfs::rpc::ServerOptions{}.max_record_size,
          "largest RPC record accepted; a larger one closes the connection");
ABSL_FLAG(int32_t, max_connections, localnfs::rpc::ServerOptions{}.max_connections,
          "TCP connections open at once; beyond, the longest-idle one is closed (a new one "
          "is refused when all are busy)");
ABSL_FLAG(int32_t, max_connections_per_client,
          localnfs::rpc::ServerOptions{}.max_connections_per_client,
          "TCP connections open at once from one client address, 0 = no limit of its own; "
          "beyond, that client's longest-idle one is closed");
ABSL_FLAG(int64_t, max_reply_bytes, localnfs::rpc::ServerOptions{}.max_reply_bytes,
          "memory for replies in total (reserved for running requests, queued, awaiting "
          "zero-copy completion); at the cap, requests whose reply does not fit wait");
ABSL_FLAG(int64_t, max_reply_bytes_per_connection,
          localnfs::rpc::ServerOptions{}.max_reply_bytes_per_connection,
          "memory for replies per connection; at the cap, the connection is not read");
ABSL_FLAG(int32_t, max_requests_per_connection,
          localnfs::rpc::ServerOptions{}.max_requests_per_connection,
          "requests queued or running per connection before it is no longer read");
ABSL_FLAG(int32_t, max_requests, localnfs::rpc::ServerOptions{}.max_requests_total,
          "requests queued or running in total before busy connections are no longer "
          "read");
ABSL_FLAG(int32_t, idle_timeout,
          absl::ToInt64Seconds(localnfs::rpc::ServerOptions{}.idle_timeout),
          "seconds without traffic after which a connection is closed (0 = never)");
ABSL_FLAG(int32_t, drain_timeout,
          absl::ToInt64Seconds(localnfs::rpc::ServerOptions{}.drain_timeout),
          "SIGTERM: seconds to wait for running requests and unsent replies");
ABSL_FLAG(int32_t, drc_max_entries, localnfs::rpc::DrcOptions{}.max_entries,
          "duplicate request cache: replies kept for retransmits (0 = no cache)");
ABSL_FLAG(int64_t, drc_max_bytes, localnfs::rpc::DrcOptions{}.max_bytes,
          "duplicate request cache: bytes kept");
ABSL_FLAG(int32_t, handle_cache_size, localnfs::server::kResolverCacheEntries,
          "unprivileged mode: handle locations remembered (one fd each)");
ABSL_FLAG(std::string, log_level, "",
          "lowest level logged: error, warn, info (default; or $LOCALNFS_LOG) or debug");
ABSL_FLAG(std::string, log_format, "text",
          "log lines on stderr: text, or json (one object per line)");
ABSL_FLAG(std::string, metrics, "",
          "ADDR:PORT ([IPV6]:PORT, :PORT = every interface; port 0 = any free port) to serve "
          "Prometheus metrics on (GET /metrics); empty = none");
ABSL_FLAG(int32_t, max_mounts, static_cast<int32_t>(localnfs::server::kDefaultMaxMounts),
          "MOUNT: (host, path) entries kept for DUMP; the oldest is forgotten beyond");

namespace localnfs::server {
namespace {

constexpr int kExitRuntime = 1;

// Runs the shutdown steps one by one and logs each with its duration and the time
// since the signal ("shutdown: rpc server stopped (requests drained) in 12 ms, 13 ms
// since SIGTERM"), so a slow shutdown shows which drain it waited on.
class ShutdownSteps {
 public:
  void Begin() { begin_ = absl::Now(); }
  template <class F>
  void Step(const char* what, F&& step) {
    const absl::Time t0 = absl::Now();
    step();
    const absl::Time t1 = absl::Now();
    if (begin_ == absl::InfinitePast()) {  // startup failed: no signal to measure from
      LOG_INFO("shutdown: %s in %d ms", what, absl::ToInt64Milliseconds(t1 - t0));
    } else {
      LOG_INFO("shutdown: %s in %d ms, %d ms since the signal", what,
               absl::ToInt64Milliseconds(t1 - t0), absl::ToInt64Milliseconds(t1 - begin_));
    }
  }

 private:
  absl::Time begin_ = absl::InfinitePast();
};


constexpr char kUsage[] =
    "usage: localnfsd --export DIR[:OPTIONS] ... | --exports FILE [flags]\n"
    "  --export DIR[:OPTS]  export DIR to everyone with exports(5) options (repeatable)\n"
    "  --exports FILE       exports(5) file; SIGHUP re-reads it\n"
    "  --port N             NFS port (default 2049, 0 = any free port)\n"
    "  --mount-port N       MOUNT v3 port (default 20048, 0 = any free port)\n"
    "  --bind ADDR          listen address (default: all interfaces)\n"
    "  --threads N          worker threads (default 4)\n"
    "  --state-dir DIR      persistent state (file-handle key, NFSv4 client records)\n"
    "  --runtime-dir DIR    runtime state (LOCALIO broker)\n"
    "  --file-cache-size N  open files kept for READ/WRITE/COMMIT (default 1024)\n"
    "  --max-record-size B  largest RPC record (default 4194304)\n"
    "  --max-connections N  TCP connections at once; beyond, the longest-idle one is\n"
    "                       closed (default 1024)\n"
    "  --max-connections-per-client N  the same per client address, 0 = off (default 0)\n"
    "  --max-reply-bytes B  memory for replies in total (default 268435456)\n"
    "  --max-reply-bytes-per-connection B  ... per connection (default 16777216)\n"
    "  --max-requests-per-connection N  requests pending per connection (default 128)\n"
    "  --max-requests N     requests pending in total (default 1024)\n"
    "  --idle-timeout S     close connections idle for S seconds, 0 = never (default 360)\n"
    "  --drain-timeout S    SIGTERM: wait S seconds for running requests (default 10)\n"
    "  --drc-max-entries N  duplicate request cache entries, 0 = off (default 8192)\n"
    "  --drc-max-bytes B    duplicate request cache bytes (default 16777216)\n"
    "  --handle-cache-size N  unprivileged: handle locations kept (default 16384)\n"
    "  --max-mounts N       MOUNT DUMP entries kept, oldest forgotten (default 1024)\n"
    "  --no-localio         do not offer LOCALIO\n"
    "  --rpcbind            register NFS and MOUNT with a running rpcbind\n"
    "  --busy-poll-us N     after reading requests, poll N us for the next before sleeping:\n"
    "                       lower latency at one request in flight, paid in CPU (default 0)\n"
    "  --nonfs4             NFSv3 only: no NFSv4.1/4.2 on the NFS port (it is on by\n"
    "                       default; --nfs4-preview is accepted and means --nfs4)\n"
    "  --lease-time S       NFSv4 lease in seconds, 1..3600 (default 90)\n"
    "  --grace S            NFSv4 grace period after a restart, 0..3600 (default: the\n"
    "                       lease time; 0 = none); ends early once every client of the\n"
    "                       previous run (kept in --state-dir) sent RECLAIM_COMPLETE\n"
    "  --zerocopy auto|always|off  MSG_ZEROCOPY for READ payloads >= --zerocopy-min-bytes\n"
    "                       (default auto: until the kernel reports it copies anyway)\n"
    "  --log-level L        error, warn, info (default) or debug\n"
    "  --log-format F       text (default) or json: one line per event on stderr\n"
    "  --metrics ADDR:PORT  serve Prometheus metrics on http://ADDR:PORT/metrics\n"
    "                       ([IPV6]:PORT; :PORT = every interface; port 0 = any free port)\n"
    "Prints 'localnfsd: ready nfs=PORT mount=PORT[ metrics=PORT]' when serving.\n"
    "SIGTERM: orderly shutdown. SIGHUP: reload exports. Exit: 0 ok, 1 runtime failure,\n"
    "2 bad usage.\n";

// The --export values, taken out of argv before absl parses it: an absl vector flag
// splits at ',' (export options are comma-separated) and keeps only the last of
// repeated occurrences.
std::vector<std::string> g_export_args;

// The documented spelling is --mount-port, --state-dir, …; absl flag names use '_'.
// Rewrites "--a-b[=v]" to "--a_b[=v]" (names only, never values) and moves every
// "--export X" / "--export=X" to g_export_args.
std::vector<std::string> PrepareArgs(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (i == 0 || a.size() < 3 || a.compare(0, 2, "--") != 0) {
      out.push_back(std::move(a));
      continue;
    }
    if (a == "--") {
      for (; i < argc; ++i) out.push_back(argv[i]);
      break;
    }
    const size_t end = std::min(a.find('='), a.size());
    std::string name = a.substr(2, end - 2);
    std::replace(name.begin(), name.end(), '-', '_');
    a = AbslFlagSpelling(std::move(a));
    if (name == "help" || name == "helpfull" || name == "helpshort") {
      fputs(kUsage, stdout);
      exit(0);
    }
    // absl reports unknown names with '-' turned into '_'; name the flag as written.
    static const absl::flat_hash_set<std::string> kAbslBuiltins = {
        "help",     "helpfull", "helpshort", "helpon",   "helpmatch", "helppackage",
        "version",  "only_check_args", "flagfile", "fromenv", "tryfromenv", "undefok"};
    if (name != "export" && !kAbslBuiltins.contains(name) &&
        absl::FindCommandLineFlag(name) == nullptr &&
        !(name.size() > 2 && name.compare(0, 2, "no") == 0 &&
          absl::FindCommandLineFlag(name.substr(2)) != nullptr)) {
      fprintf(stderr, "localnfsd: unknown flag '%s' (see --help)\n", argv[i]);
      exit(kExitUsage);
    }
    if (a == "--export" && i + 1 < argc) {
      g_export_args.push_back(argv[++i]);
      continue;
    }
    if (a.compare(0, 9, "--export=") == 0) {
      g_export_args.push_back(a.substr(9));
      continue;
    }
    out.push_back(std::move(a));
  }
  return out;
}

[[noreturn]] void Die(int code, const std::string& message) {
  fprintf(stderr, "localnfsd: %s\n", message.c_str());
  exit(code);
}

// --state-dir's default: /var/lib/localnfs as root, else $XDG_STATE_HOME/localnfs or
// ~/.local/state/localnfs.
std::string DefaultStateDir(bool root) {
  if (root) return "/var/lib/localnfs";
  if (const char* x = getenv("XDG_STATE_HOME"); x != nullptr && x[0] == '/')
    return absl::StrCat(x, "/localnfs");
  const char* home = getenv("HOME");
  return absl::StrCat(home ? home : "/tmp", "/.local/state/localnfs");
}

// mkdir -p with `mode` for the directories it creates.
absl::Status MakeDirs(const std::string& path, mode_t mode) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i < path.size() && path[i] != '/') continue;
    std::string prefix = path.substr(0, i);
    if (mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST)
      return ErrnoToStatus(errno, absl::StrCat("mkdir ", prefix));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> PortFlag(const char* name, int32_t value) {
  if (value < 0 || value > 65535)
    return absl::InvalidArgumentError(absl::StrFormat("--%s=%d: not a port", name, value));
  return value;
}

// The exports named by the flags: --export arguments, then the --exports file. A rule
// without anonuid/anongid squashes to DefaultAnonymousIdentity() (server/policy/creds.h).
absl::StatusOr<std::vector<exports::ExportSpec>> ReadExportSpecs() {
  exports::ExportOptions base;
  const Credentials anon = DefaultAnonymousIdentity();
  base.anonuid = anon.uid;
  base.anongid = anon.gid;
  std::vector<exports::ExportSpec> specs;
  for (const std::string& arg : g_export_args) {
    ASSIGN_OR_RETURN(exports::ExportSpec spec, exports::ParseExportArg(arg, base));
    specs.push_back(std::move(spec));
  }
  const std::string file = absl::GetFlag(FLAGS_exports);
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) return ErrnoToStatus(errno ? errno : ENOENT, absl::StrCat("exports file ", file));
    std::stringstream text;
    text << in.rdbuf();
    ASSIGN_OR_RETURN(std::vector<exports::ExportSpec> more,
                     exports::ParseExports(text.str(), file, base));
    for (auto& s : more) specs.push_back(std::move(s));
  }
  if (specs.empty()) return absl::InvalidArgumentError("no export given (--export DIR or --exports FILE)");
  return specs;
}

// Export id → the Export object: a reload keeps the object of an unchanged export,
// so a different object under the same id means its rules or options changed. The
// references keep the old objects alive, so their addresses cannot be reused by new
// ones while we compare.
ExportsById ExportObjects(const exports::ExportTable& table) {
  ExportsById ids;
  for (Ref<exports::Export>& e : table.List()) ids.emplace(e->id(), std::move(e));
  return ids;
}

// The one reload of the exports, for SIGHUP and `localnfs-ctl reload` alike (the main
// loop runs it for both, one at a time: server/reload.h). `cause` names who asked.
// Refused — the old table keeps serving — when there is no --exports file (the --export
// flags cannot change), the file cannot be read or parsed (the error names the file
// and line), or an export cannot be loaded.
ReloadReport Reload(const char* cause, exports::ExportTable& table,
                    backend::CachingBackend& backend, broker::Broker* broker) {
  LOG_INFO("%s: reloading exports", cause);
  ReloadReport report;
  report.cause = cause;
  report.exports_file = absl::GetFlag(FLAGS_exports);
  const ExportsById before = ExportObjects(table);
  absl::Status s = absl::OkStatus();
  if (report.exports_file.empty()) {
    s = absl::FailedPreconditionError(
        "nothing to reload: localnfsd was started without --exports FILE (the --export "
        "flags are fixed until it is restarted)");
  } else {
    absl::StatusOr<std::vector<exports::ExportSpec>> specs = ReadExportSpecs();
    s = specs.ok() ? table.Load(*specs) : specs.status();
  }
  report.finished = absl::Now();
  report.generation = table.generation();
  if (!s.ok()) {
    LOG_ERROR("reload failed, keeping the current exports: %s", s.message());
    report.outcome = ReloadReport::Outcome::kRefused;
    report.error = std::string(s.message());
    report.exports = before.size();
    return report;
  }
  const ExportsById now = ExportObjects(table);
  report.outcome = ReloadReport::Outcome::kReloaded;
  report.exports = now.size();
  DiffExports(before, now, &report);
  // Open files of removed exports are closed (their handles are stale now).
  for (const ExportChange& gone : report.removed) backend.CloseExport(gone.id);
  LOG_INFO("exports reloaded: %d export(s); %d added, %d changed, %d removed", now.size(),
           report.added.size(), report.changed.size(), report.removed.size());
  // Local clients hold fds that the old rules allowed; the kernel's
  // nfs_uuid_invalidate_clients on unexport: unbind, drop references, bump the
  // generation. They fall back to RPC (which applies the new rules) and re-handshake.
  if (broker != nullptr && (!report.removed.empty() || !report.changed.empty())) {
    broker->InvalidateClients();
    LOG_INFO("localio: clients invalidated (an export was removed or changed)");
  }
  return report;
}

void RaiseFdLimit() {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int Main(int argc, char** argv) {
  ConfigureMutexDeadlockDetection();
  SetLogProgramName("localnfsd");
  absl::SetProgramUsageMessage(
      "localnfsd --export DIR[:OPTS] ... | --exports FILE [--port N] [--mount-port N] "
      "[--bind ADDR] [--threads N] [--runtime-dir DIR] [--state-dir DIR] [--rpcbind]");
  std::vector<std::string> args = PrepareArgs(argc, argv);
  std::vector<char*> rest = ParseFlagsOrExitUsage(args);
  if (rest.size() > 1) Die(kExitUsage, absl::StrCat("unexpected argument '", rest[1], "'"));
  // First, so that every line after the flags has the asked format and level.
  absl::StatusOr<LogFormat> log_format = ParseLogFormat(absl::GetFlag(FLAGS_log_format));
  if (!log_format.ok()) Die(kExitUsage, absl::StrCat("--log-format: ", log_format.status().message()));
  SetLogFormat(*log_format);
  if (const std::string level = absl::GetFlag(FLAGS_log_level); !level.empty()) {
    absl::StatusOr<LogLevel> l = ParseLogLevel(level);
    if (!l.ok()) Die(kExitUsage, absl::StrCat("--log-level: ", l.status().message()));
    SetLogLevel(*l);
  }

  const bool root = geteuid() == 0;
  auto nfs_port = PortFlag("port", absl::GetFlag(FLAGS_port));
  if (!nfs_port.ok()) Die(kExitUsage, std::string(nfs_port.status().message()));
  auto mount_port = PortFlag("mount-port", absl::GetFlag(FLAGS_mount_port));
  if (!mount_port.ok()) Die(kExitUsage, std::string(mount_port.status().message()));
  const int threads = absl::GetFlag(FLAGS_threads);
  if (threads < 1 || threads > 1024)
    Die(kExitUsage, absl::StrFormat("--threads=%d: must be 1..1024", threads));
  const int cache_size = absl::GetFlag(FLAGS_file_cache_size);
  if (cache_size < 1) Die(kExitUsage, absl::StrFormat("--file-cache-size=%d: must be >= 1", cache_size));
  // A record must hold the largest WRITE we advertise (FSINFO wtmax) plus headers.
  const int64_t max_record_size = absl::GetFlag(FLAGS_max_record_size);
  constexpr int64_t kMinRecord = vfs::kMaxIoSize + 64 * 1024;
  if (max_record_size < kMinRecord || max_record_size > (int64_t{1} << 30))
    Die(kExitUsage, absl::StrFormat("--max-record-size=%d: must be %d..%d",
                                    max_record_size, kMinRecord, int64_t{1} << 30));
  for (auto [name, value] :
       {std::pair{"max-connections", absl::GetFlag(FLAGS_max_connections)},
        std::pair{"max-requests-per-connection",
                  absl::GetFlag(FLAGS_max_requests_per_connection)},
        std::pair{"max-requests", absl::GetFlag(FLAGS_max_requests)},
        std::pair{"handle-cache-size", absl::GetFlag(FLAGS_handle_cache_size)},
        std::pair{"max-mounts", absl::GetFlag(FLAGS_max_mounts)}}) {
    if (value < 1) Die(kExitUsage, absl::StrFormat("--%s=%d: must be >= 1", name, value));
  }
  if (absl::GetFlag(FLAGS_max_connections_per_client) < 0)
    Die(kExitUsage, absl::StrFormat("--max-connections-per-client=%d: must be >= 0",
                                    absl::GetFlag(FLAGS_max_connections_per_client)));
  // Room for the largest READ reply, so that a cap never serialises the server on it.
  for (auto [name, value] :
       {std::pair{"max-reply-bytes", absl::GetFlag(FLAGS_max_reply_bytes)},
        std::pair{"max-reply-bytes-per-connection",
                  absl::GetFlag(FLAGS_max_reply_bytes_per_connection)}}) {
    if (value < int64_t{vfs::kMaxIoSize} || value > (int64_t{1} << 40))
      Die(kExitUsage, absl::StrFormat("--%s=%d: must be %d..%d", name, value,
                                      vfs::kMaxIoSize, int64_t{1} << 40));
  }
  const int idle_seconds = absl::GetFlag(FLAGS_idle_timeout);
  if (idle_seconds < 0)
    Die(kExitUsage, absl::StrFormat("--idle-timeout=%d: must be >= 0", idle_seconds));
  const absl::Duration idle_timeout =
      idle_seconds == 0 ? absl::InfiniteDuration() : absl::Seconds(idle_seconds);
  const int busy_poll_us = absl::GetFlag(FLAGS_busy_poll_us);
  if (busy_poll_us < 0 || busy_poll_us > 1000000)
    Die(kExitUsage, absl::StrFormat("--busy-poll-us=%d: must be 0..1000000", busy_poll_us));
  const int lease_seconds = absl::GetFlag(FLAGS_lease_time);
  if (lease_seconds < 1 || lease_seconds > 3600)
    Die(kExitUsage, absl::StrFormat("--lease-time=%d: must be 1..3600", lease_seconds));
  int grace_seconds = absl::GetFlag(FLAGS_grace);
  if (grace_seconds == -1) grace_seconds = lease_seconds;
  if (grace_seconds < 0 || grace_seconds > 3600)
    Die(kExitUsage, absl::StrFormat("--grace=%d: must be 0..3600", grace_seconds));
  const int drain_seconds = absl::GetFlag(FLAGS_drain_timeout);
  if (drain_seconds < 0)
    Die(kExitUsage, absl::StrFormat("--drain-timeout=%d: must be >= 0", drain_seconds));
  if (absl::GetFlag(FLAGS_drc_max_entries) < 0 || absl::GetFlag(FLAGS_drc_max_bytes) < 0)
    Die(kExitUsage, "--drc-max-entries and --drc-max-bytes must be >= 0");
  const std::string zerocopy_flag = absl::GetFlag(FLAGS_zerocopy);
  rpc::ZerocopyMode zerocopy = rpc::ZerocopyMode::kAuto;
  if (zerocopy_flag == "always") {
    zerocopy = rpc::ZerocopyMode::kAlways;
  } else if (zerocopy_flag == "off") {
    zerocopy = rpc::ZerocopyMode::kOff;
  } else if (zerocopy_flag != "auto") {
    Die(kExitUsage, absl::StrFormat("--zerocopy=%s: must be auto, always or off", zerocopy_flag));
  }
  if (absl::GetFlag(FLAGS_zerocopy_min_bytes) < 1)
    Die(kExitUsage, "--zerocopy-min-bytes must be >= 1");
  std::optional<PeerAddress> metrics_address;
  if (const std::string m = absl::GetFlag(FLAGS_metrics); !m.empty()) {
    if (!MetricsHttpServer::Available())
      Die(kExitUsage, "--metrics: this localnfsd was built without libmicrohttpd (apt-get "
                      "install libmicrohttpd-dev, then rebuild)");
    absl::StatusOr<PeerAddress> a = ParseMetricsAddress(m);
    if (!a.ok()) Die(kExitUsage, std::string(a.status().message()));
    metrics_address = *a;
  }
  std::string runtime_dir = absl::GetFlag(FLAGS_runtime_dir);
  if (runtime_dir.empty()) runtime_dir = DefaultRuntimeDir();
  std::string state_dir = absl::GetFlag(FLAGS_state_dir);
  if (state_dir.empty())
    state_dir = DefaultStateDir(root);
  // Before the exports are read: an unprivileged server's squashed callers are its own user.
  if (!InitServerCredentials()) {
    const Credentials anon = DefaultAnonymousIdentity();
    LOG_INFO("unprivileged (euid %u): squashed callers act as uid %u gid %u where a rule "
             "names no anonuid/anongid", geteuid(), anon.uid, anon.gid);
  }
  absl::StatusOr<std::vector<exports::ExportSpec>> specs = ReadExportSpecs();
  if (!specs.ok()) Die(kExitUsage, std::string(specs.status().message()));

  // Modes sent by clients are applied exactly.
  umask(0);
  RaiseFdLimit();
  // Signals are handled by the main thread only (signalfd); every thread started
  // from here on inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // The main loop polls it next to the reload queue's wakeup (sigwaitinfo could not).
  UniqueFd signal_fd(signalfd(-1, &signals, SFD_CLOEXEC));
  if (!signal_fd) Die(kExitRuntime, absl::StrCat("signalfd: ", strerror(errno)));

  RcuThread rcu_registration;
  StartReleaseQueue();
  LOG_INFO("release queue started");
  exports::ExportTable table;
  if (absl::Status s = table.Load(*specs); !s.ok()) {
    table.Shutdown();
    StopReleaseQueue();
    Die(kExitUsage, std::string(s.message()));
  }
  LOG_INFO("exports loaded: %d export(s)", table.List().size());

  int exit_code = 0;
  ShutdownSteps shutdown;
  {
    absl::Status dirs = MakeDirs(runtime_dir, 0700);
    if (dirs.ok()) dirs = MakeDirs(state_dir, 0700);
    absl::StatusOr<HandleKey> key =
        dirs.ok() ? HandleKey::LoadOrCreate(state_dir) : absl::StatusOr<HandleKey>(dirs);
    if (!key.ok()) {
      table.Shutdown();
      StopReleaseQueue();
      Die(kExitRuntime, std::string(key.status().message()));
    }
    // Unprivileged export searches at once: one worker always stays for other requests.
    HandleResolver resolver(static_cast<size_t>(absl::GetFlag(FLAGS_handle_cache_size)),
                            std::max(1, absl::GetFlag(FLAGS_threads) - 1));
    resolver.Start(*table.List().front());
    // The files every door serves: the POSIX backend under the caching layer, which owns
    // the file cache of resolved objects and open files (backend/caching_backend.h).
    // NFSv3, MOUNT and LOCALIO's opens share that cache (one entry per object and mode for
    // all, and REMOVE and RENAME drop what they made unreachable from it for all).
    FileCacheOptions fc_opts;
    fc_opts.max_entries = static_cast<size_t>(cache_size);
    backend::PosixBackend posix_backend(resolver);
    backend::CachingBackend backend(posix_backend, fc_opts);
    backend.Start();
    LOG_INFO("file cache started (%d files)", cache_size);

    // LOCALIO: our ops-table record in the broker, then the socket it names. The
    // record is published first: PublishServer is what refuses a second live server on
    // this runtime dir, and only then may the socket file be replaced.
    const bool localio = !absl::GetFlag(FLAGS_no_localio);
    std::unique_ptr<broker::Broker> broker;
    std::optional<LocalSocket> local_socket;
    absl::Status localio_started = absl::OkStatus();
    if (localio) {
      absl::StatusOr<std::unique_ptr<broker::Broker>> b =
          broker::Broker::CreateForServer(runtime_dir);
      const std::string socket_path = absl::StrCat(runtime_dir, "/", localio::kSocketName);
      localio_started = b.status();
      if (b.ok()) {
        broker = std::move(*b);
        localio_started = broker->PublishServer(broker::ServerRecord{socket_path});
      }
      if (localio_started.ok()) {
        local_socket.emplace(
            LocalSocketDeps{broker.get(), PolicyDeps{&table, &*key}, &backend});
        localio_started = local_socket->Listen(socket_path);
        if (localio_started.ok()) localio_started = local_socket->Start();
      }
      if (localio_started.ok()) LOG_INFO("localio: published in %s", broker->path());
    }

    Nfs3Program::Deps deps;
    deps.exports = &table;
    deps.key = &*key;
    deps.backend = &backend;
    Nfs3Program nfs3(deps);
    MountProgram mount(MountProgram::Deps{&table, &*key, &backend,
                                          static_cast<size_t>(absl::GetFlag(FLAGS_max_mounts))});
    LocalioProgram localio_program(broker.get());
    // NFSv4: the client and session state (server/nfs4/state.h), which the program's
    // ops reach through the services; destroyed after the server has stopped. The
    // namespace (server/nfs4/pseudofs.h) shares NFSv3's export table, handle key and
    // backend.
    // The client records of restart and grace live in --state-dir
    // (nfs4/client_records.h); the state writes them, so they outlive it.
    std::optional<nfs4::ClientRecordFile> nfs4_records;
    std::optional<nfs4::Nfs4State> nfs4_state;
    std::optional<nfs4::OpenStateTable> nfs4_open_state;
    nfs4::PseudoFs nfs4_namespace(nfs4::PseudoFs::Deps{&table, &*key, &backend});
    nfs4::OpCounters nfs4_op_counters;
    nfs4::Nfs4Services nfs4_services;
    nfs4_services.namespace_fs = &nfs4_namespace;
    std::optional<nfs4::Nfs4Program> nfs4_program;
    if (absl::GetFlag(FLAGS_nfs4) || absl::GetFlag(FLAGS_nfs4_preview)) {
      nfs4::Nfs4State::Options o;
      o.lease = absl::Seconds(lease_seconds);
      nfs4_records.emplace(state_dir, o.max_clients);
      o.records = &*nfs4_records;
      o.grace = absl::Seconds(grace_seconds);
      o.max_request_size = static_cast<uint32_t>(max_record_size);
      // server_owner and server_scope: the host name, as knfsd's utsname nodename.
      char host[256] = {};
      if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0') {
        o.server_owner = o.server_scope = host;
      }
      o.boot = static_cast<uint32_t>(absl::ToUnixSeconds(absl::Now()));
      // A client the state discards loses its opens and locks (built just below; the
      // server answers nothing before both exist).
      o.on_client_gone = [&nfs4_open_state](clientid4 id) {
        if (nfs4_open_state) nfs4_open_state->ReleaseClient(id);
      };
      nfs4_state.emplace(std::move(o));
      nfs4_services.state = &*nfs4_state;
      // Lock files (one fd each) get what the descriptors can spare after the
      // connections, the file cache, the handle cache (it holds fds only where handles
      // cannot be opened by the kernel: the unprivileged resolver) and a margin for
      // listeners, logs, the state dir.
      rlimit nofile{};
      getrlimit(RLIMIT_NOFILE, &nofile);
      const size_t handle_fds =
          resolver.privileged() ? 0
                                : static_cast<size_t>(absl::GetFlag(FLAGS_handle_cache_size));
      const size_t other_fds = static_cast<size_t>(absl::GetFlag(FLAGS_max_connections)) +
                               static_cast<size_t>(cache_size) + handle_fds + 128;
      const nfs4::OpenStateTable::Options so =
          nfs4::OpenStateTable::Options::ForFileLimit(nofile.rlim_cur, other_fds);
      LOG_INFO("nfs4: at most %u lock files, %u per client (RLIMIT_NOFILE %u)",
               so.max_lock_files, so.max_lock_files_per_client,
               static_cast<uint64_t>(nofile.rlim_cur));
      nfs4_open_state.emplace(backend, so);
      nfs4_services.open_state = &*nfs4_open_state;
      nfs4_services.write_verifier = nfs3.write_verifier();
      nfs4_services.op_counters = &nfs4_op_counters;
      nfs4_program.emplace(nfs4::Nfs4Program::Options{}, &nfs4_services);
    }
    rpc::ServerOptions opts;
    opts.worker_threads = threads;
    opts.inline_quick_calls = absl::GetFlag(FLAGS_inline_quick_calls);
    opts.busy_poll = absl::Microseconds(busy_poll_us);
    opts.zerocopy = zerocopy;
    opts.zerocopy_min_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_zerocopy_min_bytes));
    opts.max_record_size = static_cast<uint32_t>(max_record_size);
    opts.max_connections = static_cast<uint32_t>(absl::GetFlag(FLAGS_max_connections));
    opts.max_connections_per_client =
        static_cast<uint32_t>(absl::GetFlag(FLAGS_max_connections_per_client));
    opts.max_reply_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_reply_bytes));
    opts.max_reply_bytes_per_connection =
        static_cast<size_t>(absl::GetFlag(FLAGS_max_reply_bytes_per_connection));
    opts.max_requests_per_connection =
        static_cast<uint32_t>(absl::GetFlag(FLAGS_max_requests_per_connection));
    opts.max_requests_total = static_cast<uint32_t>(absl::GetFlag(FLAGS_max_requests));
    opts.idle_timeout = idle_timeout;
    opts.drain_timeout = absl::Seconds(drain_seconds);
    opts.drc.max_entries = static_cast<size_t>(absl::GetFlag(FLAGS_drc_max_entries));
    opts.drc.max_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_drc_max_bytes));
    rpc::Server server(opts);
    server.AddProgram(&nfs3);
    server.AddProgram(&mount);
    server.AddProgram(&localio_program);
    if (nfs4_program) {
      server.AddProgram(&*nfs4_program);
      LOG_INFO("nfs4: NFSv4.1 and 4.2 on the NFS port (no delegations or layouts are "
               "granted; --nonfs4 turns NFSv4 off)");
    }
    const std::string bind = absl::GetFlag(FLAGS_bind);
    absl::StatusOr<uint16_t> nfs_bound = server.Listen(bind, static_cast<uint16_t>(*nfs_port));
    absl::StatusOr<uint16_t> mount_bound = nfs_bound;
    if (nfs_bound.ok() && !(*mount_port != 0 && *mount_port == *nfs_port))
      mount_bound = server.Listen(bind, static_cast<uint16_t>(*mount_port));
    absl::Status started = !localio_started.ok() ? localio_started
                           : !nfs_bound.ok()     ? nfs_bound.status()
                           : !mount_bound.ok()   ? mount_bound.status()
                                                 : server.Start();
    bool registered = false;
    if (started.ok() && absl::GetFlag(FLAGS_rpcbind)) {
      started = server.RegisterWithRpcbind(*nfs_bound, *mount_bound);
      registered = started.ok();
    }
    // Last to start, first to stop: localnfs-ctl status reads everything above.
    StatusSources status_sources{runtime_dir,
                                 static_cast<uint16_t>(nfs_bound.value_or(0)),
                                 static_cast<uint16_t>(mount_bound.value_or(0)),
                                 threads,
                                 absl::Now(),
                                 &table,
                                 &server,
                                 &nfs3,
                                 &mount,
                                 &localio_program,
                                 broker.get(),
                                 local_socket ? &*local_socket : nullptr,
                                 &backend.file_cache(),
                                 nfs4_program ? &nfs4_services : nullptr};
    // SIGHUP and `localnfs-ctl reload` reload the exports the same way: on this thread,
    // one at a time, in the loop below (server/reload.h).
    ReloadQueue reloads;
    const AdminSources admin_sources{&table, &reloads, absl::GetFlag(FLAGS_exports),
                                     kReloadWaitBound};
    ControlSocket control([&status_sources, &admin_sources](std::string_view request) {
      if (std::optional<std::string> answer = AnswerAdminRequest(admin_sources, request))
        return *std::move(answer);
      return AnswerControlRequest(status_sources, request);
    });
    if (started.ok())
      started = control.Listen(absl::StrCat(runtime_dir, "/", kControlSocketName));
    if (started.ok()) started = control.Start();
    // After everything it reports on; its thread only reads (status.h).
    MetricsHttpServer metrics([&status_sources] {
      return RenderStatus(status_sources, StatusFormat::kPrometheus);
    });
    if (started.ok() && metrics_address) {
      started = metrics.Listen(*metrics_address);
      if (started.ok()) started = metrics.Start();
      if (started.ok())
        LOG_INFO("metrics: serving /metrics on %s port %d", metrics_address->HostText(),
                 metrics.port());
    }
    if (!started.ok()) {
      fprintf(stderr, "localnfsd: %s\n", std::string(started.message()).c_str());
      exit_code = kExitRuntime;
    } else {
      LOG_INFO("serving nfs on port %d, mount on port %d (%d workers)", *nfs_bound,
               *mount_bound, threads);
      const std::string metrics_port =
          metrics_address ? absl::StrCat(" metrics=", metrics.port()) : "";
      printf("localnfsd: ready nfs=%d mount=%d%s\n", *nfs_bound, *mount_bound,
             metrics_port.c_str());
      fflush(stdout);
      auto serving = [&] {
        return absl::StrFormat("serving nfs=%d mount=%d, %d export(s)", *nfs_bound,
                               *mount_bound, table.List().size());
      };
      NotifyReady(serving());
      // One reload, whoever asked: RELOADING=1, Reload, READY=1 (with the error, if
      // any, in STATUS=), then the answer to the localnfs-ctl requests it covers.
      auto reload = [&](const char* cause) {
        const uint64_t ticket = reloads.Begin();
        NotifyReloading();
        ReloadReport report = Reload(cause, table, backend, broker.get());
        NotifyReady(report.outcome == ReloadReport::Outcome::kReloaded
                        ? serving()
                        : absl::StrCat(serving(), "; reload failed: ", report.error));
        reloads.Finish(ticket, std::move(report));
      };
      for (;;) {
        pollfd fds[2] = {{signal_fd.get(), POLLIN, 0}, {reloads.wake_fd(), POLLIN, 0}};
        if (poll(fds, 2, -1) < 0) continue;  // EINTR
        if ((fds[0].revents & POLLIN) != 0) {
          signalfd_siginfo info;
          if (read(signal_fd.get(), &info, sizeof(info)) != sizeof(info)) continue;
          if (info.ssi_signo == SIGHUP) {
            reload("SIGHUP");
            continue;
          }
          NotifyStopping();
          LOG_INFO("%s: shutting down", info.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
          shutdown.Begin();
          break;
        }
        if ((fds[1].revents & POLLIN) != 0) reload("localnfs-ctl");
      }
    }
    // Before the control socket stops: a localnfs-ctl reload still waiting is refused
    // now instead of holding the control thread (and so Stop) until its bound.
    reloads.Close();
    // Reverse order of startup.
    if (metrics_address) shutdown.Step("metrics endpoint closed", [&] { metrics.Stop(); });
    shutdown.Step("control socket closed", [&] { control.Stop(); });
    if (registered)
      shutdown.Step("unregistered from rpcbind", [&] { server.UnregisterFromRpcbind(); });
    shutdown.Step("rpc server stopped (requests drained)", [&] { server.Stop(); });
    if (local_socket)
      shutdown.Step("localio: local socket closed", [&] { local_socket->Stop(); });
    if (broker)
      shutdown.Step("localio: record withdrawn, clients invalidated",
                    [&] { broker->Withdraw(); });
    shutdown.Step("file cache closed", [&] { backend.Shutdown(); });
    shutdown.Step("handle resolver closed", [&] { resolver.Shutdown(); });
  }
  shutdown.Step("exports torn down", [&] { table.Shutdown(); });
  shutdown.Step("release queue drained and stopped", [] { StopReleaseQueue(); });
  LOG_INFO("exiting with status %d", exit_code);
  return exit_code;
}

}  // namespace
}  // namespace localnfs::server

int main(int argc, char** argv) { return localnfs::server::Main(argc, argv); }
