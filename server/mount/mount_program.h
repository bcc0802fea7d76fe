// server/mount/mount_program.h — MOUNT version 3 (program 100005, RFC 1813 appendix I).
//
// Owns: the list of mounts recorded by MNT (host, path) and removed by UMNT/UMNTALL
// (what DUMP reports; advisory, like rmtab). Calls are counted by the dispatcher
// (rpc/procedure_stats.h). Not owned: the export table, the handle key and the backend
// (backend/backend.h; they outlive the program).
// The mount list is bounded (Deps::max_mounts, --max-mounts): any directory below an
// export can be mounted, so a client could otherwise grow it without end. When it is
// full, the entry mounted least recently is forgotten (DUMP is advisory; nothing else
// reads the list), with a log line at most once a second counting what was dropped.
//
// MNT: the path is an export's path exactly, or a directory below an export; the
// longest matching export wins. The client rule is checked first, then the directory is
// resolved by the backend (Backend::OpenPath: beneath the export root, never following
// a symlink nor crossing a mount — the POSIX backend's openat2 RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV — as the server, before any credential switch),
// and the reply carries the wire handle (fhandle.h) of the object's backend handle; the
// caching layer keeps the node, which the client's next call uses. No path →
// MNT3ERR_NOENT (also a symlink on the way, ELOOP, or leaving the root or its mount,
// EXDEV); no client rule for the peer (or `secure` and a peer port ≥ 1024) →
// MNT3ERR_ACCES; not a directory → MNT3ERR_NOTDIR; a path with a NUL in it (dirpath is
// decoded with its wire length: as a C string it would be cut short and name another
// directory) → MNT3ERR_INVAL, with a rate-limited log line. The reply's flavor list is
// [AUTH_SYS]. EXPORT lists every export with its client patterns as groups.
//
// Thread-safety: Dispatch() is safe concurrently; the mount list has its own mutex.
// The procedure table is immutable.
#pragma once

#include <stdint.h>

#include <array>
#include <atomic>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "export_cache/export_table.h"
#include "rpc/call.h"
#include "rpc/mount3.h"
#include "rpc/procedure.h"
#include "rpc/program.h"
#include "server/backend/backend.h"
#include "server/policy/fhandle.h"

namespace localnfs::server {

inline constexpr uint32_t kMountProcCount = 6;
inline constexpr size_t kDefaultMaxMounts = 1024;

class MountProgram : public rpc::Program {
 public:
  struct Deps {
    exports::ExportTable* exports = nullptr;
    const HandleKey* key = nullptr;
    backend::Backend* backend = nullptr;
    size_t max_mounts = kDefaultMaxMounts;
  };
  explicit MountProgram(Deps deps) : deps_(deps) {}

  uint32_t prog() const override { return MOUNT_PROGRAM; }
  uint32_t vers() const override { return MOUNT_V3; }
  const char* name() const override { return "mount"; }
  uint32_t proc_count() const override { return kMountProcCount; }
  const rpc::ProcedureDesc* procedure(uint32_t proc) const override;
  size_t mount_count() const ABSL_LOCKS_EXCLUDED(mu_);
  // Entries forgotten because the list was full.
  uint64_t mounts_forgotten() const { return forgotten_.load(std::memory_order_relaxed); }

 private:
  // Handlers.
  void Null(rpc::Call&, const rpc::Void&, rpc::Void&) {}
  void Mnt(rpc::Call& call, const dirpath& arg, mountres3& res);
  void Dump(rpc::Call&, const rpc::Void&, mountlist& res) ABSL_LOCKS_EXCLUDED(mu_);
  void Umnt(rpc::Call& call, const dirpath& arg, rpc::Void&) ABSL_LOCKS_EXCLUDED(mu_);
  void UmntAll(rpc::Call& call, const rpc::Void&, rpc::Void&) ABSL_LOCKS_EXCLUDED(mu_);
  void Export(rpc::Call&, const rpc::Void&, exportlist3& res);
  void RecordMount(const std::string& host, const std::string& path) ABSL_LOCKS_EXCLUDED(mu_);

  Deps deps_;
  std::atomic<uint64_t> forgotten_{0};
  mutable absl::Mutex mu_;
  // (host, path) → the sequence number of its latest MNT; by_age_ is the same set
  // ordered oldest first, for eviction and for DUMP.
  using MountKey = std::pair<std::string, std::string>;
  absl::flat_hash_map<MountKey, uint64_t> mounts_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, MountKey> by_age_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  LogRateLimit forget_log_{1, absl::Seconds(1)};
  LogRateLimit bad_path_log_{1, absl::Seconds(1)};
};

}  // namespace localnfs::server
