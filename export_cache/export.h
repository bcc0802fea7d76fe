// export_cache/export.h — exports: parsing (exports(5) and --export), client rules,
// squashing, and the export table (an instance of the generic RCU cache, seed 000).
//
// Owns: ExportSpec values (parsed, not yet validated against the file system), the
// Export objects (immutable once created; each holds an O_PATH fd on its root
// directory) and the table that maps export id and path to them.
//
// Lifetimes: ExportTable holds one reference on each live Export. Lookups return a
// Ref<Export> taken under the RCU read lock (TryGet: a dying export is not found).
// When an export is removed (reload) or the table shuts down, the table drops its
// reference; the export's release (closing its root fd) runs after an RCU grace
// period on the shared release queue (common/release_queue.h) once the last Ref is
// gone. Teardown = Unregister (no more lookups succeed) → DrainReleases() → destroy.
//
// Thread-safety: FindById/FindByPath/List are lock-free (RCU) and may be called from
// any RCU-registered thread concurrently with Load(); Load/Shutdown are serialized by
// the table's own mutex.
#pragma once

#include <stdint.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/credentials.h"
#include "common/peer_address.h"
#include "common/refcount.h"
#include "common/unique_fd.h"

namespace localnfs::exports {

enum class Squash { kRoot, kNone, kAll };

struct ExportOptions {
  bool read_only = false;             // rw (default) / ro
  Squash squash = Squash::kRoot;      // root_squash (default) / no_root_squash / all_squash
  uint32_t anonuid = kNobodyUid;
  uint32_t anongid = kNobodyGid;
  bool secure = false;                // secure: only peers with source port < 1024
  std::optional<uint32_t> fsid;       // fsid=N (numeric)
  friend bool operator==(const ExportOptions&, const ExportOptions&) = default;
};

// Who a rule applies to: "*", a host name or address, "a.b.c.d/len" or "addr6/len",
// or a wildcard host name ("*.example.com" — matched against the peer's reverse DNS
// name only when the resolver gives one; on loopback tests use addresses).
struct ClientPattern {
  enum class Kind { kAnyone, kAddress, kCidr, kWildcardName };
  Kind kind = Kind::kAnyone;
  std::string text;          // as written
  std::string address;       // 4 or 16 network-order bytes (kAddress, kCidr)
  int prefix_len = 0;        // kCidr
  bool Matches(const PeerAddress& peer) const;
  friend bool operator==(const ClientPattern&, const ClientPattern&) = default;
};

struct ClientRule {
  ClientPattern pattern;
  ExportOptions options;
  friend bool operator==(const ClientRule&, const ClientRule&) = default;
};

struct ExportSpec {
  std::string path;               // absolute, normalised (no trailing '/', no '..')
  std::vector<ClientRule> rules;  // first match wins, in the order written
  int line = 0;                   // line in the exports file (0 for --export)
  friend bool operator==(const ExportSpec&, const ExportSpec&) = default;
};

// Parses exports(5) text: "/dir host(opts) 10.0.0.0/8(opts) *(opts)", '#' comments,
// '\' continuation lines, a bare host means default options, a path with no clients
// means "*". Errors name `filename` and the line: "exports:3: unknown option 'rx'".
absl::StatusOr<std::vector<ExportSpec>> ParseExports(std::string_view text,
                                                     std::string_view filename);
// Parses a command-line export "DIR[:OPTS]" (OPTS comma-separated, for everyone "*").
absl::StatusOr<ExportSpec> ParseExportArg(std::string_view arg);

// The credentials a request acts as under `options`: root_squash maps uid 0 / gid 0
// to anonuid/anongid (and drops gid 0 from groups), all_squash maps everyone.
Credentials SquashCredentials(const ExportOptions& options, const Credentials& cred);

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
  // The first rule that matches `peer`, or nullptr (no access).
  const ClientRule* MatchClient(const PeerAddress& peer) const;

 private:
  Export(ExportSpec spec, uint32_t id, UniqueFd root, uint64_t dev);
  ~Export() override;
  void LastReferenceDropped() override;  // queues the release after a grace period

  const ExportSpec spec_;
  const uint32_t id_;
  UniqueFd root_fd_;
  const uint64_t root_dev_;
};

// Returns the export id for a path when no fsid is set: 32 bits of SHA-256(path),
// never 0.
uint32_t ExportIdForPath(std::string_view path);

class ExportTable {
 public:
  ExportTable();
  ~ExportTable();  // Shutdown() if not done

  // Replaces the table's contents by `specs`: new exports appear, changed ones
  // (rules/options) are replaced, removed ones disappear (their ids are no longer
  // found → their handles become stale). Validates everything first: on error nothing
  // changes and the status names the export (and file line). Duplicate ids → error.
  absl::Status Load(const std::vector<ExportSpec>& specs);

  Ref<Export> FindById(uint32_t id) const;
  // The export whose path equals `path` exactly.
  Ref<Export> FindByPath(std::string_view path) const;
  std::vector<Ref<Export>> List() const;
  // Bumped by every successful Load(); lets per-connection caches notice reloads.
  uint64_t generation() const;

  // Teardown, in the order of sunrpc_cache_destroy_net(): unregister (empty the table,
  // no lookup succeeds after this), DrainReleases(), destroy.
  void Shutdown();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace localnfs::exports
