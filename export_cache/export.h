// export_cache/export.h — the export object (nfsd's svc_export): one exported
// directory with its client rules, as an ExportSpec (export_spec.h) made it, holding an
// O_PATH fd on its root directory. The table of the live exports is export_table.h.
//
// Owns: its root fd. Lifetimes: an Export is immutable once created and reference
// counted (Ref<Export>, common/refcount.h). When the last reference goes, its release
// (closing the root fd) runs after an RCU grace period on the shared release queue
// (common/release_queue.h), because an RCU reader of the table may still hold the
// pointer. Dropping a Ref<Export> never blocks (it only queues), so it is fine inside an
// RCU read section or on an event loop; the thread that drops the last one must be
// RCU-registered (common/rcu.h: the release uses call_rcu).
//
// Thread-safety: every accessor may be called from any thread while a reference is held.
#pragma once

#include <stdint.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/peer_address.h"
#include "common/refcount.h"
#include "common/unique_fd.h"
#include "export_cache/client_pattern.h"
#include "export_cache/export_spec.h"

namespace localnfs::exports {

class Export final : public RefCounted {
 public:
  // Opens `spec.path` (O_PATH|O_DIRECTORY). Fails naming the path when it does not
  // exist or is not a directory.
  static absl::StatusOr<Ref<Export>> Create(ExportSpec spec);

  const std::string& path() const { return spec_.path; }
  const ExportSpec& spec() const { return spec_; }
  // Stable across restarts: fsid if given, else derived from the path.
  uint32_t id() const { return id_; }
  // O_PATH fd of the export root, valid while a reference is held.
  int root_fd() const { return root_fd_.get(); }
  // st_dev of the root (objects on another device are outside the export).
  uint64_t root_dev() const { return root_dev_; }
  // The id of the mount the root fd was opened through (statx STATX_MNT_ID; 0 when
  // the kernel does not report it, before Linux 5.8). Objects reached through
  // another mount — a mount point below the export, even a bind mount of the same
  // device — are outside the export. Stable while root_fd() is open (the fd keeps
  // the mount, and so its id, alive).
  uint64_t root_mnt_id() const { return root_mnt_id_; }
  // st_ino of the root; a reload keeps an export object only while its path still
  // names the same directory.
  uint64_t root_ino() const { return root_ino_; }
  // The first rule that matches `peer`, or nullptr (no access). The pointer is valid
  // while the caller holds its reference on this export. Reverse DNS is done at most
  // once, and only if a wildcard rule is reached.
  const ClientRule* MatchClient(const PeerAddress& peer) const;

  // Export objects created and not yet released (process-wide): after a teardown
  // and a drain with no Ref left anywhere, 0.
  static int64_t LiveCount();

 private:
  Export(ExportSpec spec, uint32_t id, UniqueFd root, uint64_t dev, uint64_t ino,
         uint64_t mnt_id);
  ~Export() override;
  void LastReferenceDropped() override;  // queues the release after a grace period

  const ExportSpec spec_;
  const uint32_t id_;
  UniqueFd root_fd_;
  const uint64_t root_dev_;
  const uint64_t root_ino_;
  const uint64_t root_mnt_id_;
};

// Returns the export id for a path when no fsid is set: 32 bits of SHA-256(path),
// never 0.
uint32_t ExportIdForPath(std::string_view path);

}  // namespace localnfs::exports
