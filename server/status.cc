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

namespace localnfs::server {
namespace {

// ---- the snapshot ----

struct ProcCount {
  std::string name;
  uint64_t calls = 0;
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
struct Snapshot {
  int64_t uptime_s = 0;
  uint64_t connections_accepted = 0, connections_closed_on_error = 0, calls = 0,
           garbage_args = 0, bad_headers = 0, connections_refused = 0,
           connections_evicted = 0, connections_closed_idle = 0;
  int64_t reply_bytes_held = 0;
  uint64_t zerocopy_sends = 0, zerocopy_sends_copied = 0, zerocopy_replies_freed = 0;
  int64_t zerocopy_replies_held = 0;
  rpc::DrcStats drc;
  size_t mounts = 0;
  uint64_t mounts_forgotten = 0;
  std::vector<ExportStatus> exports;
  std::vector<ProgramStatus> programs;
  bool localio = false;
  broker::ServerInfo record;
  std::string record_error;  // ReadServer failed
  uint64_t hellos_accepted = 0, hellos_refused = 0, malformed = 0;
  std::vector<std::pair<std::string, uint64_t>> opens_by_status;
  std::vector<ClientStatus> clients;
  std::array<broker::LocalIoCount, 3> local_io_total{};
};

template <class P>
ProgramStatus ProgramOf(const P& program) {
  ProgramStatus out{program.name(), program.prog(), program.vers(), {}};
  for (uint32_t proc = 0; proc < program.proc_count(); ++proc) {
    const rpc::ProcedureDesc* x = program.procedure(proc);
    out.procs.push_back({x != nullptr ? x->name : absl::StrCat(proc), program.calls(proc)});
  }
  return out;
}

Snapshot Gather(const StatusSources& src) {
  Snapshot s;
  s.uptime_s = absl::ToInt64Seconds(absl::Now() - src.started);
  if (src.rpc_server != nullptr) {
    const rpc::ServerCounters& c = src.rpc_server->counters();
    s.connections_accepted = c.connections_accepted.load(std::memory_order_relaxed);
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
  if (src.nfs3 != nullptr) s.programs.push_back(ProgramOf(*src.nfs3));
  if (src.mount != nullptr) s.programs.push_back(ProgramOf(*src.mount));
  if (src.localio != nullptr) s.programs.push_back(ProgramOf(*src.localio));

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

// ---- text ----

std::string RenderText(const StatusSources& src, const Snapshot& s) {
  std::string out;
  absl::StrAppendFormat(&out, "localnfsd pid %d, up %ds, nfs port %d, mount port %d, %d workers\n",
                        getpid(), s.uptime_s, src.nfs_port, src.mount_port,
                        src.worker_threads);
  absl::StrAppendFormat(&out, "runtime dir %s\n", src.runtime_dir);
  absl::StrAppendFormat(&out,
                        "rpc: %d connections accepted, %d closed on error, %d calls, "
                        "%d garbage args, %d bad headers\n",
                        s.connections_accepted, s.connections_closed_on_error, s.calls,
                        s.garbage_args, s.bad_headers);
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
  absl::StrAppendFormat(&out, "  hellos: %d accepted, %d refused; %d malformed packets\n",
                        s.hellos_accepted, s.hellos_refused, s.malformed);
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
  rpc["connections_accepted"] = s.connections_accepted;
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
  Json& localio = doc["localio"];  // null with --no-localio
  if (s.localio) {
    Json& record = localio["record"];  // null when the record cannot be read
    if (s.record_error.empty()) {
      record["instance_id"] = broker::UuidToString(s.record.instance_id);
      record["generation"] = s.record.generation;
      record["bound_uuids"] = s.record.refcount;
      record["socket"] = s.record.socket_path;
    }
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

}  // namespace

std::string RenderStatus(const StatusSources& sources, StatusFormat format) {
  const Snapshot s = Gather(sources);
  return format == StatusFormat::kJson ? RenderJson(sources, s) : RenderText(sources, s);
}

std::string AnswerControlRequest(const StatusSources& sources, std::string_view request) {
  if (request == "status") return RenderStatus(sources, StatusFormat::kText);
  if (request == "status json") return RenderStatus(sources, StatusFormat::kJson);
  std::string shown(request.substr(0, 32));
  for (char& c : shown)
    if (c < 0x20 || c == 0x7f) c = '?';
  return absl::StrCat("error: unknown request '", shown, "' (try 'status', 'status json', 'exports', 'exports json' or 'reload')\n");
}

}  // namespace localnfs::server
