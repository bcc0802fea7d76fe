// server/status.cc — see status.h.
#include "server/status.h"

#include <unistd.h>

#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "export_cache/export_text.h"
#include "nlohmann/json.hpp"
#include "rpc/protocol_names.h"
#include "server/nfs4/compound.h"
#include "server/nfs4/open_state.h"
#include "server/nfs4/state.h"

namespace localnfs::server {
namespace {

// ---- the snapshot ----

// FileCacheStats' modes (FileMode order), as JSON members and metric labels name them.
constexpr const char* kFileCacheModes[FileCacheStats::kModes] = {"read", "read_write",
                                                                 "object"};

struct ProcCount {
  std::string name;
  uint64_t calls = 0;  // = latency.calls
  rpc::ProcedureStats::Snapshot latency;
};
struct ProgramStatus {
  std::string name;
  uint32_t prog = 0, vers = 0;
  std::vector<ProcCount> procs;
};
struct ExportStatus {
  uint32_t id = 0;
  std::string path;
  std::vector<std::pair<std::string, std::string>> rules;  // (clients, options)
};
struct ClientStatus {
  LocalClientStats seen;  // by the local socket
  std::string export_path;
  std::array<broker::LocalIoCount, 3> local_io{};  // from the client's broker slot
};
struct Nfs4Status {
  nfs4::Nfs4State::Counts counts;
  std::vector<nfs4::Nfs4State::ClientInfo> clients;  // the first kNfs4ClientsShown
  std::optional<nfs4::OpenStateTable::Counts> open;  // null: open state not wired
  nfs4::Nfs4State::GraceInfo grace;
  std::vector<std::pair<std::string, nfs4::OpCounters::Entry>> ops;  // (name, counts)
};
struct Snapshot {
  std::optional<Nfs4Status> nfs4;  // not with --nonfs4
  int64_t uptime_s = 0;
  uint64_t connections_accepted = 0, connections_closed = 0, connections_open = 0,
           connections_closed_on_error = 0, calls = 0,
           garbage_args = 0, bad_headers = 0, connections_refused = 0,
           connections_evicted = 0, connections_closed_idle = 0;
  int64_t reply_bytes_held = 0;
  uint64_t zerocopy_sends = 0, zerocopy_sends_copied = 0, zerocopy_replies_freed = 0;
  int64_t zerocopy_replies_held = 0;
  rpc::DrcStats drc;
  uint64_t nfs_bytes_read = 0, nfs_bytes_written = 0;
  bool file_cache_shown = false;
  FileCacheStats file_cache;
  size_t mounts = 0;
  uint64_t mounts_forgotten = 0;
  std::vector<ExportStatus> exports;
  std::vector<ProgramStatus> programs;
  bool localio = false;
  broker::ServerInfo record;
  std::string record_error;  // ReadServer failed
  uint64_t binds = 0;  // UUID_IS_LOCAL calls that bound a uuid
  uint64_t hellos_accepted = 0, hellos_refused = 0, malformed = 0;
  std::vector<std::pair<std::string, uint64_t>> opens_by_status;
  std::vector<ClientStatus> clients;
  std::array<broker::LocalIoCount, 3> local_io_total{};
};

// The program's procedures with what the dispatcher counted for each (zeros when the
// program is not registered with `server`).
ProgramStatus ProgramOf(const rpc::Program& program, const rpc::Server* server) {
  ProgramStatus out{program.name(), program.prog(), program.vers(), {}};
  const rpc::ProcedureStats* stats =
      server != nullptr ? server->procedure_stats(program) : nullptr;
  for (uint32_t proc = 0; proc < program.proc_count(); ++proc) {
    const rpc::ProcedureDesc* x = program.procedure(proc);
    ProcCount pc{x != nullptr ? x->name : absl::StrCat(proc), 0, {}};
    if (stats != nullptr) pc.latency = stats[proc].Read();
    pc.calls = pc.latency.calls;
    out.procs.push_back(std::move(pc));
  }
  return out;
}

Snapshot Gather(const StatusSources& src) {
  Snapshot s;
  s.uptime_s = absl::ToInt64Seconds(absl::Now() - src.started);
  if (src.rpc_server != nullptr) {
    const rpc::ServerCounters& c = src.rpc_server->counters();
    // Closed first (acquire, against the loop's release): every close seen has its
    // accept counted, so open never goes below 0.
    s.connections_closed = c.connections_closed.load(std::memory_order_acquire);
    s.connections_accepted = c.connections_accepted.load(std::memory_order_relaxed);
    s.connections_open = s.connections_accepted >= s.connections_closed
                             ? s.connections_accepted - s.connections_closed
                             : 0;
    s.connections_closed_on_error = c.connections_closed_on_error.load(std::memory_order_relaxed);
    s.calls = c.calls.load(std::memory_order_relaxed);
    s.garbage_args = c.garbage_args.load(std::memory_order_relaxed);
    s.bad_headers = c.bad_headers.load(std::memory_order_relaxed);
    s.connections_refused = c.connections_refused.load(std::memory_order_relaxed);
    s.connections_evicted = c.connections_evicted.load(std::memory_order_relaxed);
    s.reply_bytes_held = src.rpc_server->reply_bytes_held();
    s.connections_closed_idle = c.connections_closed_idle.load(std::memory_order_relaxed);
    s.zerocopy_sends = c.zerocopy_sends.load(std::memory_order_relaxed);
    s.zerocopy_sends_copied = c.zerocopy_sends_copied.load(std::memory_order_relaxed);
    s.zerocopy_replies_freed = c.zerocopy_replies_freed.load(std::memory_order_relaxed);
    s.zerocopy_replies_held = src.rpc_server->zerocopy_replies_held();
    s.drc = src.rpc_server->drc_stats();
  }
  if (src.nfs3 != nullptr) {
    s.nfs_bytes_read = src.nfs3->bytes_read();
    s.nfs_bytes_written = src.nfs3->bytes_written();
  }
  if (src.file_cache != nullptr) {
    s.file_cache_shown = true;
    s.file_cache = src.file_cache->stats();
  }
  if (src.localio != nullptr) s.binds = src.localio->binds();
  if (src.mount != nullptr) {
    s.mounts = src.mount->mount_count();
    s.mounts_forgotten = src.mount->mounts_forgotten();
  }
  absl::flat_hash_map<uint32_t, std::string> export_paths;
  if (src.exports != nullptr) {
    for (const Ref<exports::Export>& e : src.exports->List()) {
      ExportStatus es{e->id(), e->path(), {}};
      for (const exports::ClientRule& r : e->spec().rules)
        es.rules.emplace_back(exports::ClientPatternText(r.pattern),
                              exports::ExportOptionsText(r.options));
      export_paths[e->id()] = e->path();
      s.exports.push_back(std::move(es));
    }
  }
  if (src.nfs4 != nullptr && src.nfs4->state != nullptr) {
    Nfs4Status& v4 = s.nfs4.emplace();
    v4.counts = src.nfs4->state->counts();
    v4.clients = src.nfs4->state->clients(kNfs4ClientsShown);
    v4.grace = src.nfs4->state->grace();
    if (src.nfs4->open_state != nullptr) v4.open = src.nfs4->open_state->counts();
    if (src.nfs4->op_counters != nullptr) {
      for (const nfs4::OpCounters::Entry& e : src.nfs4->op_counters->Read()) {
        const nfs4::OpDesc* d = nfs4::FindOp(e.op);
        v4.ops.emplace_back(d != nullptr ? d->name : "ILLEGAL", e);
      }
    }
  }
  if (src.nfs3 != nullptr) s.programs.push_back(ProgramOf(*src.nfs3, src.rpc_server));
  if (src.mount != nullptr) s.programs.push_back(ProgramOf(*src.mount, src.rpc_server));
  if (src.localio != nullptr) s.programs.push_back(ProgramOf(*src.localio, src.rpc_server));

  s.localio = src.broker != nullptr && src.local_socket != nullptr;
  if (!s.localio) return s;
  absl::StatusOr<broker::ServerInfo> record = src.broker->ReadServer();
  if (record.ok()) {
    s.record = *record;
  } else {
    s.record_error = std::string(record.status().message());
  }
  s.hellos_accepted = src.local_socket->hellos_accepted();
  s.hellos_refused = src.local_socket->hellos_refused();
  s.malformed = src.local_socket->malformed();
  for (const auto& [status, n] : src.local_socket->OpensByStatus())
    s.opens_by_status.emplace_back(rpc::NfsStatusName(status), n);
  std::sort(s.opens_by_status.begin(), s.opens_by_status.end());
  absl::flat_hash_map<broker::Uuid, std::array<broker::LocalIoCount, 3>> slot_io;
  if (absl::StatusOr<std::vector<broker::SlotInfo>> slots = src.broker->ListSlots(); slots.ok())
    for (const broker::SlotInfo& slot : *slots)
      if (slot.state == broker::SlotState::kBound) slot_io[slot.uuid] = slot.local_io;
  for (const LocalClientStats& c : src.local_socket->Clients()) {
    ClientStatus cs{c, {}, {}};
    if (auto it = export_paths.find(c.export_id); it != export_paths.end())
      cs.export_path = it->second;
    if (auto it = slot_io.find(c.uuid); it != slot_io.end()) cs.local_io = it->second;
    for (int k = 0; k < 3; ++k) {
      s.local_io_total[k].calls += cs.local_io[k].calls;
      s.local_io_total[k].bytes += cs.local_io[k].bytes;
    }
    s.clients.push_back(std::move(cs));
  }
  return s;
}

// ---- NFSv4 pieces shared by the formats ----

// A client id as knfsd's /proc/fs/nfsd/clients shows none: the boot half and the
// counter half, in hex.
std::string ClientIdText(uint64_t id) {
  return absl::StrFormat("%08x-%08x", static_cast<uint32_t>(id >> 32), static_cast<uint32_t>(id));
}

// The owner bytes as shown: printable ASCII as is, anything else (and '"', '\\') as
// \xNN, at most kNfs4OwnerShown bytes of the owner, then "..." when cut.
std::string OwnerText(std::string_view owner) {
  std::string out;
  const std::string_view shown = owner.substr(0, kNfs4OwnerShown);
  for (char ch : shown) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += ch;
    } else {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    }
  }
  if (shown.size() < owner.size()) out += "...";
  return out;
}

const char* ClientKindName(nfs4::Nfs4State::ClientKind k) {
  switch (k) {
    case nfs4::Nfs4State::ClientKind::kConfirmed: return "confirmed";
    case nfs4::Nfs4State::ClientKind::kCourtesy: return "courtesy";
    case nfs4::Nfs4State::ClientKind::kUnconfirmed: return "unconfirmed";
  }
  return "?";
}

const char* GracePhaseName(nfs4::Nfs4State::GraceInfo::Phase p) {
  switch (p) {
    case nfs4::Nfs4State::GraceInfo::Phase::kNone: return "none";
    case nfs4::Nfs4State::GraceInfo::Phase::kInGrace: return "in_grace";
    case nfs4::Nfs4State::GraceInfo::Phase::kEnded: return "ended";
  }
  return "?";
}

void RenderNfs4Text(const Nfs4Status& v4, std::string* out) {
  const nfs4::Nfs4State::Counts& c = v4.counts;
  absl::StrAppendFormat(out,
                        "\nnfs4: %d clients (%d confirmed, %d courtesy, %d unconfirmed), %d "
                        "sessions",
                        c.confirmed + c.courtesy + c.unconfirmed, c.confirmed, c.courtesy,
                        c.unconfirmed, c.sessions);
  if (v4.open) {
    absl::StrAppendFormat(out, ", %d opens, %d lock stateids\n", v4.open->opens,
                          v4.open->lock_states);
  } else {
    *out += ", opens and locks: not served yet\n";
  }
  const nfs4::Nfs4State::GraceInfo& g = v4.grace;
  using Phase = nfs4::Nfs4State::GraceInfo::Phase;
  if (g.phase == Phase::kInGrace) {
    absl::StrAppendFormat(out,
                          "  grace: in grace, at most %.1f s left; of %d previous client(s) %d "
                          "reclaimed, %d gone, %d pending\n",
                          g.left_ms / 1000.0, g.previous, g.reclaimed, g.gone, g.pending);
  } else if (g.phase == Phase::kEnded) {
    absl::StrAppendFormat(out,
                          "  grace: ended %.1f s ago (%s); of %d previous client(s) %d "
                          "reclaimed\n",
                          g.ended_ago_ms / 1000.0, g.why, g.previous, g.reclaimed);
  } else {
    absl::StrAppendFormat(out, "  grace: none (%s)\n", g.why.empty() ? "no records kept" : g.why);
  }
  const size_t total = c.confirmed + c.courtesy + c.unconfirmed;
  if (!v4.clients.empty()) {
    absl::StrAppendFormat(out, "  clients%s:\n",
                          total > v4.clients.size()
                              ? absl::StrFormat(" (first %d of %d)", v4.clients.size(), total)
                              : "");
  }
  for (const nfs4::Nfs4State::ClientInfo& ci : v4.clients) {
    absl::StrAppendFormat(out, "    %s  %-11s  %s  lease %s  %d session(s)%s  owner \"%s\"\n",
                          ClientIdText(ci.id), ClientKindName(ci.kind),
                          ci.address.empty() ? "-" : ci.address,
                          ci.lease_left_ms >= 0
                              ? absl::StrFormat("%.1fs left", ci.lease_left_ms / 1000.0)
                              : absl::StrFormat("expired %.1fs ago", -ci.lease_left_ms / 1000.0),
                          ci.sessions, ci.reclaim_complete ? ", reclaim complete" : "",
                          OwnerText(ci.owner));
  }
  std::vector<std::string> ops;
  for (const auto& [name, e] : v4.ops) {
    ops.push_back(e.errors == 0 ? absl::StrCat(name, " ", e.calls)
                                : absl::StrCat(name, " ", e.calls, " (", e.errors, " errors)"));
  }
  absl::StrAppendFormat(out, "  ops (zero counts omitted): %s\n",
                        ops.empty() ? "-" : absl::StrJoin(ops, ", "));
}

// ---- text ----

std::string RenderText(const StatusSources& src, const Snapshot& s) {
  std::string out;
  absl::StrAppendFormat(&out, "localnfsd pid %d, up %ds, nfs port %d, mount port %d, %d workers\n",
                        getpid(), s.uptime_s, src.nfs_port, src.mount_port,
                        src.worker_threads);
  absl::StrAppendFormat(&out, "runtime dir %s\n", src.runtime_dir);
  absl::StrAppendFormat(&out,
                        "rpc: %d connections open, %d accepted, %d closed on error, %d calls, "
                        "%d garbage args, %d bad headers\n",
                        s.connections_open, s.connections_accepted,
                        s.connections_closed_on_error, s.calls, s.garbage_args,
                        s.bad_headers);
  absl::StrAppendFormat(&out,
                        "zero-copy: %d sends (%d copied by the kernel), %d replies "
                        "freed after completion, %d held\n",
                        s.zerocopy_sends, s.zerocopy_sends_copied, s.zerocopy_replies_freed,
                        s.zerocopy_replies_held);
  absl::StrAppendFormat(&out,
                        "limits: %d reply bytes held (--max-reply-bytes); %d connections "
                        "closed idle to admit new ones, %d refused (--max-connections); "
                        "%d closed idle (--idle-timeout); mount list %d entries, %d "
                        "forgotten (--max-mounts)\n",
                        s.reply_bytes_held, s.connections_evicted, s.connections_refused,
                        s.connections_closed_idle, s.mounts, s.mounts_forgotten);
  absl::StrAppendFormat(&out,
                        "duplicate request cache: %d entries, %d bytes; %d replays, %d "
                        "parked, %d dropped, %d evictions\n",
                        s.drc.entries, s.drc.bytes, s.drc.replays, s.drc.parked,
                        s.drc.dropped, s.drc.evictions);
  if (s.file_cache_shown) {
    const FileCacheStats& f = s.file_cache;
    absl::StrAppendFormat(&out,
                          "file cache: %d open files (%d read, %d read-write), %d resolved "
                          "objects; hits/misses: read %d/%d, read-write %d/%d, objects "
                          "%d/%d; %d evicted (--file-cache-size), %d idle, %d invalidated\n",
                          f.entries[0] + f.entries[1], f.entries[0], f.entries[1],
                          f.entries[2], f.hits[0], f.misses[0], f.hits[1], f.misses[1],
                          f.hits[2], f.misses[2], f.evictions, f.reaped, f.closed);
  }
  absl::StrAppendFormat(&out, "nfs data: %d bytes read, %d bytes written\n",
                        s.nfs_bytes_read, s.nfs_bytes_written);
  absl::StrAppendFormat(&out, "\nexports (%d):\n", s.exports.size());
  for (const ExportStatus& e : s.exports) {
    std::vector<std::string> rules;
    for (const auto& [who, opts] : e.rules) rules.push_back(absl::StrCat(who, "(", opts, ")"));
    absl::StrAppendFormat(&out, "  %08x  %s  %s\n", e.id, e.path, absl::StrJoin(rules, " "));
  }
  out += "\nrpc calls by procedure (zero counts omitted):\n";
  for (const ProgramStatus& p : s.programs) {
    std::vector<std::string> counts;
    for (const ProcCount& pc : p.procs)
      if (pc.calls != 0) counts.push_back(absl::StrCat(pc.name, " ", pc.calls));
    absl::StrAppendFormat(&out, "  %-8s (%d v%d): %s\n", p.name, p.prog, p.vers,
                          counts.empty() ? "-" : absl::StrJoin(counts, ", "));
  }
  if (s.nfs4) RenderNfs4Text(*s.nfs4, &out);
  if (!s.localio) {
    out += "\nlocalio: off (--no-localio)\n";
    return out;
  }
  out += "\nlocalio:\n";
  if (s.record_error.empty()) {
    absl::StrAppendFormat(&out,
                          "  record: instance %s, generation %d, %d bound uuid(s), socket %s\n",
                          broker::UuidToString(s.record.instance_id), s.record.generation,
                          s.record.refcount, s.record.socket_path);
  } else {
    absl::StrAppendFormat(&out, "  record: unreadable (%s)\n", s.record_error);
  }
  std::vector<std::string> opens;
  for (const auto& [name, n] : s.opens_by_status) opens.push_back(absl::StrCat(name, " ", n));
  absl::StrAppendFormat(&out,
                        "  UUID_IS_LOCAL binds: %d; hellos: %d accepted, %d refused; %d "
                        "malformed packets\n",
                        s.binds, s.hellos_accepted, s.hellos_refused, s.malformed);
  absl::StrAppendFormat(&out, "  OPEN_LOCAL_FH: %s\n",
                        opens.empty() ? "-" : absl::StrJoin(opens, ", "));
  const auto& t = s.local_io_total;
  absl::StrAppendFormat(&out,
                        "  local I/O of bound clients (client-counted): %d reads (%d bytes), "
                        "%d writes (%d bytes), %d commits\n",
                        t[0].calls, t[0].bytes, t[1].calls, t[1].bytes, t[2].calls);
  absl::StrAppendFormat(&out, "  clients (%d):\n", s.clients.size());
  for (const ClientStatus& c : s.clients) {
    absl::StrAppendFormat(
        &out,
        "    %s pid %d uid %d from %s export %s: %d opens, %d connection(s); "
        "local %d reads (%d bytes), %d writes (%d bytes), %d commits\n",
        broker::UuidToString(c.seen.uuid), c.seen.pid, c.seen.uid, c.seen.domain,
        c.seen.export_id == 0       ? std::string("-")
        : c.export_path.empty() ? absl::StrFormat("%08x", c.seen.export_id)
                                : c.export_path,
        c.seen.opens, c.seen.connections, c.local_io[0].calls, c.local_io[0].bytes,
        c.local_io[1].calls, c.local_io[1].bytes, c.local_io[2].calls);
  }
  return out;
}

// ---- JSON ----
// Built with nlohmann-json (ordered: members in the order written here). Strings that
// are not UTF-8 (a path with such bytes) have those bytes replaced by U+FFFD. A
// reference into an object is used only until the next member is added to that
// object (ordered_json keeps its members in a vector).

using Json = nlohmann::ordered_json;

Json IoJson(const std::array<broker::LocalIoCount, 3>& io) {
  Json j = Json::object();
  j["reads"] = io[0].calls;
  j["read_bytes"] = io[0].bytes;
  j["writes"] = io[1].calls;
  j["write_bytes"] = io[1].bytes;
  j["commits"] = io[2].calls;
  return j;
}

std::string RenderJson(const StatusSources& src, const Snapshot& s) {
  Json doc = Json::object();
  Json& server = doc["server"];
  server["pid"] = getpid();
  server["uptime_s"] = s.uptime_s;
  server["nfs_port"] = src.nfs_port;
  server["mount_port"] = src.mount_port;
  server["worker_threads"] = src.worker_threads;
  server["runtime_dir"] = src.runtime_dir;
  Json& rpc = doc["rpc"];
  rpc["connections_open"] = s.connections_open;
  rpc["connections_accepted"] = s.connections_accepted;
  rpc["connections_closed"] = s.connections_closed;
  rpc["connections_closed_on_error"] = s.connections_closed_on_error;
  rpc["calls"] = s.calls;
  rpc["garbage_args"] = s.garbage_args;
  rpc["bad_headers"] = s.bad_headers;
  rpc["reply_bytes_held"] = s.reply_bytes_held;
  rpc["connections_evicted"] = s.connections_evicted;
  rpc["connections_refused"] = s.connections_refused;
  rpc["connections_closed_idle"] = s.connections_closed_idle;
  rpc["zerocopy_sends"] = s.zerocopy_sends;
  rpc["zerocopy_sends_copied"] = s.zerocopy_sends_copied;
  rpc["zerocopy_replies_freed"] = s.zerocopy_replies_freed;
  rpc["zerocopy_replies_held"] = s.zerocopy_replies_held;
  Json& drc = doc["drc"];
  drc["entries"] = s.drc.entries;
  drc["bytes"] = s.drc.bytes;
  drc["replays"] = s.drc.replays;
  drc["parked"] = s.drc.parked;
  drc["dropped"] = s.drc.dropped;
  drc["evictions"] = s.drc.evictions;
  if (s.file_cache_shown) {
    Json& fc = doc["file_cache"];
    for (size_t m = 0; m < FileCacheStats::kModes; ++m) {
      Json& mode = fc[kFileCacheModes[m]];
      mode["entries"] = s.file_cache.entries[m];
      mode["hits"] = s.file_cache.hits[m];
      mode["misses"] = s.file_cache.misses[m];
    }
    fc["evictions"] = s.file_cache.evictions;
    fc["reaped_idle"] = s.file_cache.reaped;
    fc["invalidated"] = s.file_cache.closed;
  }
  Json& nfs_data = doc["nfs_data"];
  nfs_data["read_bytes"] = s.nfs_bytes_read;
  nfs_data["write_bytes"] = s.nfs_bytes_written;
  Json& mount = doc["mount"];
  mount["entries"] = s.mounts;
  mount["forgotten"] = s.mounts_forgotten;
  Json& exports = doc["exports"] = Json::array();
  for (const ExportStatus& e : s.exports) {
    Json ex = Json::object();
    ex["id"] = e.id;
    ex["path"] = e.path;
    Json& rules = ex["rules"] = Json::array();
    for (const auto& [who, opts] : e.rules) {
      Json rule = Json::object();
      rule["clients"] = who;
      rule["options"] = opts;
      rules.push_back(std::move(rule));
    }
    exports.push_back(std::move(ex));
  }
  Json& programs = doc["programs"] = Json::object();
  for (const ProgramStatus& p : s.programs) {
    Json& prog = programs[p.name];
    prog["program"] = p.prog;
    prog["version"] = p.vers;
    Json& calls = prog["calls"] = Json::object();
    for (const ProcCount& pc : p.procs) calls[pc.name] = pc.calls;
  }
  if (s.nfs4) {  // not with --nonfs4
    const Nfs4Status& v4 = *s.nfs4;
    Json& nfs4 = doc["nfs4"];
    Json& clients = nfs4["clients"];
    clients["confirmed"] = v4.counts.confirmed;
    clients["courtesy"] = v4.counts.courtesy;
    clients["unconfirmed"] = v4.counts.unconfirmed;
    Json& list = clients["list"] = Json::array();
    for (const nfs4::Nfs4State::ClientInfo& ci : v4.clients) {
      Json c = Json::object();
      c["id"] = ClientIdText(ci.id);
      c["kind"] = ClientKindName(ci.kind);
      c["address"] = ci.address;
      c["owner"] = OwnerText(ci.owner);
      c["lease_left_ms"] = ci.lease_left_ms;
      c["sessions"] = ci.sessions;
      c["reclaim_complete"] = ci.reclaim_complete;
      list.push_back(std::move(c));
    }
    nfs4["sessions"] = v4.counts.sessions;
    Json& open = nfs4["open_state"];  // null until opens and locks are served
    if (v4.open) {
      open["opens"] = v4.open->opens;
      open["lock_stateids"] = v4.open->lock_states;
      open["files"] = v4.open->files;
    }
    Json& grace = nfs4["grace"];
    grace["state"] = GracePhaseName(v4.grace.phase);
    grace["left_ms"] = v4.grace.left_ms;
    grace["ended_ago_ms"] = v4.grace.ended_ago_ms;
    grace["why"] = v4.grace.why;
    grace["previous_clients"] = v4.grace.previous;
    grace["reclaimed"] = v4.grace.reclaimed;
    grace["gone"] = v4.grace.gone;
    grace["pending"] = v4.grace.pending;
    Json& ops = nfs4["ops"] = Json::object();
    for (const auto& [name, e] : v4.ops) {
      Json& op = ops[name];
      op["calls"] = e.calls;
      op["errors"] = e.errors;
    }
  }
  Json& localio = doc["localio"];  // null with --no-localio
  if (s.localio) {
    Json& record = localio["record"];  // null when the record cannot be read
    if (s.record_error.empty()) {
      record["instance_id"] = broker::UuidToString(s.record.instance_id);
      record["generation"] = s.record.generation;
      record["bound_uuids"] = s.record.refcount;
      record["socket"] = s.record.socket_path;
    }
    localio["uuid_binds"] = s.binds;
    localio["hellos_accepted"] = s.hellos_accepted;
    localio["hellos_refused"] = s.hellos_refused;
    localio["malformed"] = s.malformed;
    Json& opens = localio["opens"] = Json::object();
    for (const auto& [name, n] : s.opens_by_status) opens[name] = n;
    localio["local_io"] = IoJson(s.local_io_total);
    Json& clients = localio["clients"] = Json::array();
    for (const ClientStatus& c : s.clients) {
      Json client = Json::object();
      client["uuid"] = broker::UuidToString(c.seen.uuid);
      client["pid"] = c.seen.pid;
      client["uid"] = c.seen.uid;
      client["domain"] = c.seen.domain;
      client["export_id"] = c.seen.export_id;
      client["export"] = c.export_path;
      client["opens"] = c.seen.opens;
      client["connections"] = c.seen.connections;
      client["local_io"] = IoJson(c.local_io);
      clients.push_back(std::move(client));
    }
  }
  return doc.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}


// ---- Prometheus text exposition format 0.0.4 ----
// Every family has its HELP and TYPE lines, then its samples; families are never
// interleaved. Label values are escaped (\\, \", \n); metric and label names are
// constants here. Counters are what they are in the server since it started; a
// figure that can go down is a gauge.

class PromWriter {
 public:
  using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

  // Starts a family: `name` without the _total/_bucket/... suffix its samples add.
  void Family(std::string_view name, std::string_view type, std::string_view help) {
    Put("# HELP ", name, " ");
    for (char c : help) {
      if (c == '\\') out_ += "\\\\";
      else if (c == '\n') out_ += "\\n";
      else out_ += c;
    }
    Put("\n# TYPE ", name, " ");
    Put(type, "\n");
  }
  // A family of one sample without labels: the figure itself.
  void One(std::string_view name, std::string_view type, std::string_view help,
           uint64_t value) {
    Family(name, type, help);
    Sample(name, {}, value);
  }
  void Sample(std::string_view name, Labels labels, uint64_t value) {
    Put(name);
    PutLabels(labels, "");
    Put(" ", std::to_string(value), "\n");
  }
  void Sample(std::string_view name, Labels labels, double value) {
    Put(name);
    PutLabels(labels, "");
    Put(" ", absl::StrFormat("%.17g", value), "\n");
  }
  // A histogram's samples: _bucket{...,le=} for each bound and +Inf, then _sum, _count.
  void Histogram(std::string_view name, Labels labels, const rpc::ProcedureStats::Snapshot& h) {
    static const std::array<std::string, rpc::ProcedureStats::kBuckets> kLe = [] {
      std::array<std::string, rpc::ProcedureStats::kBuckets> le;
      for (size_t i = 0; i + 1 < le.size(); ++i)
        le[i] = absl::StrFormat("%g", rpc::ProcedureStats::kBucketBoundsNs[i] * 1e-9);
      le.back() = "+Inf";
      return le;
    }();
    for (size_t i = 0; i < rpc::ProcedureStats::kBuckets; ++i) {
      Put(name, "_bucket");
      PutLabels(labels, kLe[i]);
      Put(" ", std::to_string(h.cumulative[i]), "\n");
    }
    Put(name, "_sum");
    PutLabels(labels, "");
    Put(" ", absl::StrFormat("%.17g", static_cast<double>(h.sum_ns) * 1e-9), "\n");
    Put(name, "_count");
    PutLabels(labels, "");
    Put(" ", std::to_string(h.calls), "\n");
  }
  std::string Take() { return std::move(out_); }

 private:
  template <class... S>
  void Put(const S&... parts) {
    (out_.append(std::string_view(parts)), ...);
  }
  // {k="v",...} with the values escaped, and le="..." last when `le` is not empty;
  // nothing without labels.
  void PutLabels(Labels labels, std::string_view le) {
    if (labels.size() == 0 && le.empty()) return;
    out_ += '{';
    const char* sep = "";
    for (const auto& [k, v] : labels) {
      Put(sep, k, "=\"");
      for (char c : v) {
        if (c == '\\') out_ += "\\\\";
        else if (c == '"') out_ += "\\\"";
        else if (c == '\n') out_ += "\\n";
        else out_ += c;
      }
      out_ += '"';
      sep = ",";
    }
    if (!le.empty()) Put(sep, "le=\"", le, "\"");
    out_ += '}';
  }

  std::string out_;
};

std::string RenderPrometheus(const StatusSources& src, const Snapshot& s) {
  PromWriter w;
  w.Family("localnfs_start_time_seconds", "gauge", "When the server started (Unix time).");
  w.Sample("localnfs_start_time_seconds", {},
           absl::ToDoubleSeconds(src.started - absl::UnixEpoch()));
  w.One("localnfs_worker_threads", "gauge", "RPC worker threads (--threads).",
        static_cast<uint64_t>(src.worker_threads));
  w.One("localnfs_exports", "gauge", "Exports served now.",
        static_cast<uint64_t>(s.exports.size()));

  // ---- rpc ----
  w.Family("localnfs_rpc_calls_total", "counter",
           "Calls per program, version and procedure, counted when each ends (replied, "
           "answered from the duplicate request cache, or dropped).");
  for (const ProgramStatus& p : s.programs) {
    const std::string vers = absl::StrCat(p.vers);
    for (const ProcCount& pc : p.procs)
      w.Sample("localnfs_rpc_calls_total",
               {{"program", p.name}, {"version", vers}, {"procedure", pc.name}}, pc.calls);
  }
  w.Family("localnfs_rpc_duration_seconds", "histogram",
           "Time from taking a call up (its header decoded) to its end (its reply encoded), "
           "per program, version and procedure.");
  for (const ProgramStatus& p : s.programs) {
    const std::string vers = absl::StrCat(p.vers);
    for (const ProcCount& pc : p.procs)
      w.Histogram("localnfs_rpc_duration_seconds",
                  {{"program", p.name}, {"version", vers}, {"procedure", pc.name}}, pc.latency);
  }
  w.One("localnfs_rpc_records_total", "counter",
        "RPC records received and handed to the dispatcher, malformed ones included.",
        s.calls);
  w.One("localnfs_rpc_garbage_args_total", "counter",
        "Calls answered GARBAGE_ARGS (arguments that do not decode).",
        s.garbage_args);
  w.One("localnfs_rpc_bad_headers_total", "counter",
        "Records refused for their header: not a call, RPC_MISMATCH, PROG_UNAVAIL, "
        "PROG_MISMATCH, PROC_UNAVAIL, authentication errors.",
        s.bad_headers);
  w.One("localnfs_rpc_connections", "gauge", "TCP connections open now.",
        s.connections_open);
  w.One("localnfs_rpc_connections_accepted_total", "counter", "TCP connections accepted.",
        s.connections_accepted);
  w.One("localnfs_rpc_connections_closed_total", "counter",
        "Accepted TCP connections closed, for any reason.",
        s.connections_closed);
  w.One("localnfs_rpc_connections_closed_on_error_total", "counter",
        "TCP connections closed on an error (a bad record, a socket error).",
        s.connections_closed_on_error);
  w.One("localnfs_rpc_connections_closed_idle_total", "counter",
        "TCP connections closed after --idle-timeout without traffic.",
        s.connections_closed_idle);
  w.One("localnfs_rpc_connections_evicted_total", "counter",
        "Idle TCP connections closed to admit a new one (--max-connections).",
        s.connections_evicted);
  w.One("localnfs_rpc_connections_refused_total", "counter",
        "New TCP connections closed at once because every connection was busy.",
        s.connections_refused);
  w.Family("localnfs_rpc_reply_bytes_held", "gauge",
           "Memory held for replies now: reserved, queued or awaiting zero-copy completion "
           "(--max-reply-bytes).");
  w.Sample("localnfs_rpc_reply_bytes_held", {},
           static_cast<uint64_t>(std::max<int64_t>(0, s.reply_bytes_held)));
  w.One("localnfs_rpc_zerocopy_sends_total", "counter", "sendmsg calls with MSG_ZEROCOPY.",
        s.zerocopy_sends);
  w.One("localnfs_rpc_zerocopy_sends_copied_total", "counter",
        "MSG_ZEROCOPY sends the kernel reported it copied anyway.",
        s.zerocopy_sends_copied);
  w.Family("localnfs_rpc_zerocopy_replies_held", "gauge",
           "Zero-copy replies whose buffers the kernel may still read.");
  w.Sample("localnfs_rpc_zerocopy_replies_held", {},
           static_cast<uint64_t>(std::max<int64_t>(0, s.zerocopy_replies_held)));

  // ---- NFS data, caches, MOUNT ----
  w.One("localnfs_nfs_read_bytes_total", "counter", "Data bytes NFSv3 READ replies carried.",
        s.nfs_bytes_read);
  w.One("localnfs_nfs_write_bytes_total", "counter", "Data bytes NFSv3 WRITE calls wrote.",
        s.nfs_bytes_written);
  w.One("localnfs_drc_entries", "gauge", "Duplicate request cache: entries kept now.",
        static_cast<uint64_t>(s.drc.entries));
  w.One("localnfs_drc_bytes", "gauge",
        "Duplicate request cache: memory kept now (--drc-max-bytes).",
        static_cast<uint64_t>(s.drc.bytes));
  w.Family("localnfs_drc_lookups_total", "counter",
           "Duplicate request cache lookups of non-idempotent calls, by result: miss (run "
           "and cached), replay (answered from the cache), parked (waited for the original), "
           "dropped, uncached (run, not kept).");
  w.Sample("localnfs_drc_lookups_total", {{"result", "miss"}}, s.drc.misses);
  w.Sample("localnfs_drc_lookups_total", {{"result", "replay"}}, s.drc.replays);
  w.Sample("localnfs_drc_lookups_total", {{"result", "parked"}}, s.drc.parked);
  w.Sample("localnfs_drc_lookups_total", {{"result", "dropped"}}, s.drc.dropped);
  w.Sample("localnfs_drc_lookups_total", {{"result", "uncached"}}, s.drc.uncached);
  w.One("localnfs_drc_evictions_total", "counter",
        "Duplicate request cache entries evicted for room (--drc-max-entries, "
        "--drc-max-bytes).",
        s.drc.evictions);
  if (s.file_cache_shown) {
    const FileCacheStats& f = s.file_cache;
    w.Family("localnfs_file_cache_entries", "gauge",
             "File cache entries now, by mode: open files (read, read_write) and resolved "
             "objects (object).");
    for (size_t m = 0; m < FileCacheStats::kModes; ++m)
      w.Sample("localnfs_file_cache_entries", {{"mode", kFileCacheModes[m]}}, f.entries[m]);
    w.Family("localnfs_file_cache_hits_total", "counter",
             "File cache lookups that found the entry, by the mode asked.");
    for (size_t m = 0; m < FileCacheStats::kModes; ++m)
      w.Sample("localnfs_file_cache_hits_total", {{"mode", kFileCacheModes[m]}}, f.hits[m]);
    w.Family("localnfs_file_cache_misses_total", "counter",
             "File cache lookups that opened the file or resolved the object, by the mode "
             "asked.");
    for (size_t m = 0; m < FileCacheStats::kModes; ++m)
      w.Sample("localnfs_file_cache_misses_total", {{"mode", kFileCacheModes[m]}}, f.misses[m]);
    w.Family("localnfs_file_cache_evictions_total", "counter",
             "File cache entries dropped, by reason: size (--file-cache-size), idle, "
             "invalidated (removed, renamed over, unexported).");
    w.Sample("localnfs_file_cache_evictions_total", {{"reason", "size"}}, f.evictions);
    w.Sample("localnfs_file_cache_evictions_total", {{"reason", "idle"}}, f.reaped);
    w.Sample("localnfs_file_cache_evictions_total", {{"reason", "invalidated"}}, f.closed);
  }
  w.One("localnfs_mount_entries", "gauge", "MOUNT DUMP list entries now (--max-mounts).",
        static_cast<uint64_t>(s.mounts));
  w.One("localnfs_mount_forgotten_total", "counter",
        "MOUNT DUMP list entries forgotten because the list was full.",
        s.mounts_forgotten);

  // ---- NFSv4 (not with --nonfs4) ----
  if (s.nfs4) {
    const Nfs4Status& v4 = *s.nfs4;
    w.Family("localnfs_nfs4_clients", "gauge",
             "NFSv4 client records now, by kind: confirmed, courtesy (lease expired, state "
             "kept), unconfirmed.");
    w.Sample("localnfs_nfs4_clients", {{"kind", "confirmed"}},
             static_cast<uint64_t>(v4.counts.confirmed));
    w.Sample("localnfs_nfs4_clients", {{"kind", "courtesy"}},
             static_cast<uint64_t>(v4.counts.courtesy));
    w.Sample("localnfs_nfs4_clients", {{"kind", "unconfirmed"}},
             static_cast<uint64_t>(v4.counts.unconfirmed));
    w.One("localnfs_nfs4_sessions", "gauge", "NFSv4 sessions now.",
          static_cast<uint64_t>(v4.counts.sessions));
    if (v4.open) {
      w.One("localnfs_nfs4_open_stateids", "gauge", "NFSv4 open stateids now.",
            static_cast<uint64_t>(v4.open->opens));
      w.One("localnfs_nfs4_lock_stateids", "gauge", "NFSv4 lock stateids now.",
            static_cast<uint64_t>(v4.open->lock_states));
    }
    w.One("localnfs_nfs4_in_grace", "gauge",
          "1 while the NFSv4 grace period after a restart lasts (--grace).",
          uint64_t{v4.grace.phase == nfs4::Nfs4State::GraceInfo::Phase::kInGrace ? 1u : 0u});
    w.Family("localnfs_nfs4_ops_total", "counter",
             "NFSv4 operations answered, by op, counted by the COMPOUND loop (refused ones "
             "included).");
    for (const auto& [name, e] : v4.ops)
      w.Sample("localnfs_nfs4_ops_total", {{"op", name}}, e.calls);
    w.Family("localnfs_nfs4_op_errors_total", "counter",
             "NFSv4 operations answered with a status other than NFS4_OK, by op.");
    for (const auto& [name, e] : v4.ops)
      w.Sample("localnfs_nfs4_op_errors_total", {{"op", name}}, e.errors);
  }

  // ---- LOCALIO ----
  w.One("localnfs_localio_enabled", "gauge", "1 when LOCALIO is offered (no --no-localio).",
        uint64_t{s.localio ? 1u : 0u});
  w.One("localnfs_localio_uuid_binds_total", "counter",
        "UUID_IS_LOCAL calls that bound a client's uuid.",
        s.binds);
  if (!s.localio) return w.Take();
  w.Family("localnfs_localio_hellos_total", "counter", "Local-socket HELLOs, by result.");
  w.Sample("localnfs_localio_hellos_total", {{"result", "accepted"}}, s.hellos_accepted);
  w.Sample("localnfs_localio_hellos_total", {{"result", "refused"}}, s.hellos_refused);
  w.One("localnfs_localio_malformed_total", "counter", "Malformed local-socket packets.",
        s.malformed);
  w.Family("localnfs_localio_opens_total", "counter", "OPEN_LOCAL_FH answers, by nfsstat3.");
  for (const auto& [status, n] : s.opens_by_status)
    w.Sample("localnfs_localio_opens_total", {{"status", status}}, n);
  w.One("localnfs_localio_clients", "gauge", "LOCALIO clients bound now.",
        static_cast<uint64_t>(s.clients.size()));
  if (s.record_error.empty()) {
    w.One("localnfs_localio_generation", "gauge",
             "The broker record's generation (bumped when clients are invalidated).",
          s.record.generation);
  }
  // The clients' own counts, from their broker slots: they go when a client unbinds,
  // so the sums can go down — gauges, not counters.
  const auto& t = s.local_io_total;
  w.Family("localnfs_localio_client_calls", "gauge",
           "Local reads, writes and commits the clients bound now counted in their broker "
           "slots (calls that never reach the server as RPCs), summed.");
  w.Sample("localnfs_localio_client_calls", {{"op", "read"}}, t[0].calls);
  w.Sample("localnfs_localio_client_calls", {{"op", "write"}}, t[1].calls);
  w.Sample("localnfs_localio_client_calls", {{"op", "commit"}}, t[2].calls);
  w.Family("localnfs_localio_client_bytes", "gauge",
           "Bytes of those local reads and writes, summed over the clients bound now.");
  w.Sample("localnfs_localio_client_bytes", {{"op", "read"}}, t[0].bytes);
  w.Sample("localnfs_localio_client_bytes", {{"op", "write"}}, t[1].bytes);
  return w.Take();
}

}  // namespace

std::string RenderStatus(const StatusSources& sources, StatusFormat format) {
  const Snapshot s = Gather(sources);
  switch (format) {
    case StatusFormat::kText: return RenderText(sources, s);
    case StatusFormat::kJson: return RenderJson(sources, s);
    case StatusFormat::kPrometheus: return RenderPrometheus(sources, s);
  }
  return {};
}

std::string AnswerControlRequest(const StatusSources& sources, std::string_view request) {
  if (request == "status") return RenderStatus(sources, StatusFormat::kText);
  if (request == "status json") return RenderStatus(sources, StatusFormat::kJson);
  std::string shown(request.substr(0, 32));
  for (char& c : shown)
    if (c < 0x20 || c == 0x7f) c = '?';
  return absl::StrCat("error: unknown request '", shown,
                      "' (try 'status', 'status json', 'exports', 'exports json' or 'reload')\n");
}

}  // namespace localnfs::server
