// server/status.h — what `localnfs-ctl status` and the metrics endpoint (--metrics,
// server/metrics_http.h) show: a snapshot of the running server gathered from the
// objects that own each figure, rendered as text, JSON or the Prometheus text format —
// the same figures, read from the same counters, whatever the format.
//
//   server     pid, instance id, uptime, ports, runtime dir
//   rpc        connections and call counters of the rpc::Server
//   exports    id, path, client rules with their options
//   programs   calls per procedure of NFSv3, MOUNT v3 and LOCALIO (RPC only; the
//              dispatcher's rpc::ProcedureStats, with their latency histograms), and
//              the bytes NFSv3 READ and WRITE moved
//   caches     the duplicate request cache, the file cache (per mode)
//   localio    the broker record (generation, bound uuids), local-socket HELLOs and
//              OPEN_LOCAL_FH answers by nfsstat3, and per bound client: uuid, peer
//              pid/uid, domain, export, opens, and the local reads / writes / commits
//              the client counted in its broker slot (the server never sees those
//              calls; they are the client's figures, shown as such)
//   nfs4       with --nfs4-preview only (nothing of it otherwise, so the v3 output is
//              as it was): clients by kind (confirmed, courtesy, unconfirmed) and
//              the first kNfs4ClientsShown of them (id, address, owner escaped and
//              cut, lease left, sessions, RECLAIM_COMPLETE), sessions, open and lock
//              stateids (when the open state is wired), the grace period, and calls
//              and errors per NFSv4 op (the COMPOUND loop's OpCounters)
//
// Owns nothing: every source is borrowed for the duration of one RenderStatus() call.
// Thread-safety: RenderStatus reads atomics and lock-protected snapshots; call it from
// an RCU-registered thread (it lists the export table).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "common/localio/broker_server.h"
#include "export_cache/export_table.h"
#include "rpc/server.h"
#include "server/backend/file_cache.h"
#include "server/localio/local_socket.h"
#include "server/localio/localio_program.h"
#include "server/mount/mount_program.h"
#include "server/nfs3/nfs3_program.h"
#include "server/nfs4/services.h"

namespace localnfs::server {

struct StatusSources {
  std::string runtime_dir;
  uint16_t nfs_port = 0;
  uint16_t mount_port = 0;
  int worker_threads = 0;
  absl::Time started;
  const exports::ExportTable* exports = nullptr;
  const rpc::Server* rpc_server = nullptr;
  const Nfs3Program* nfs3 = nullptr;
  const MountProgram* mount = nullptr;
  const LocalioProgram* localio = nullptr;
  // Null with --no-localio.
  const broker::Broker* broker = nullptr;
  const LocalSocket* local_socket = nullptr;
  // The backend's file cache (null: not shown).
  const FileCache* file_cache = nullptr;
  // NFSv4's state and counters (null: v4 not served, nothing of it shown).
  const nfs4::Nfs4Services* nfs4 = nullptr;
};

// The most NFSv4 clients listed one by one (the counts cover all of them).
inline constexpr size_t kNfs4ClientsShown = 64;
// The most bytes of a client's owner string shown (escaped: non-printable bytes
// and '"', '\\' as \xNN).
inline constexpr size_t kNfs4OwnerShown = 48;

// kPrometheus: the text exposition format 0.0.4 (what GET /metrics answers; metric
// names and labels are listed in docs/man/localnfsd.8.scd, METRICS).
enum class StatusFormat { kText, kJson, kPrometheus };

std::string RenderStatus(const StatusSources& sources, StatusFormat format);

// The control-socket handler: "status" → text, "status json" → JSON, anything else →
// "error: unknown request …".
std::string AnswerControlRequest(const StatusSources& sources, std::string_view request);

}  // namespace localnfs::server
