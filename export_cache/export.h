// export_cache/export.h — exports: parsing (exports(5) and --export), client rules,
// squashing, and the export table (an instance of the generic RCU cache, seed 000).
//
// Owns: ExportSpec values (parsed, not yet validated against the file system), the
// Export objects (immutable once created; each holds an O_PATH fd on its root
// directory) and the table that maps export id and path to them.
//
// Lifetimes: ExportTable is two instances of the generic RCU cache
// (export_cache/rcu_cache.h), by id and by path, like nfsd's expkey and export
// caches; each holds one reference on each live Export. Lookups return a
// Ref<Export> taken under the RCU read lock (TryGet: a dying export is not found).
// When an export is removed (reload) or the table shuts down, the table drops its
// references; the export's release (closing its root fd) runs after an RCU grace
// period on the shared release queue (common/release_queue.h) once the last Ref is
// gone. Dropping a Ref<Export> never blocks (it only queues), so it is fine inside an
// RCU read section or on an event loop. Teardown = Unregister (no more lookups
// succeed) → DrainReleases() → destroy.
//
// Thread-safety: FindById/FindByPath/List are lock-free (RCU) and may be called from
// any RCU-registered thread concurrently with Load(); Load/Shutdown are serialized by
// the table's own mutex. Every thread that touches the table or drops a Ref<Export>
// must be RCU-registered (common/rcu.h: the release uses call_rcu). Shutdown() and
// the destructor wait for grace periods: call them outside any RCU read section.
// A lookup racing with a reload finds either the old or the new export of a path,
// never nothing, unless the reload removed it.
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
  bool read_only = false;         // rw (default) / ro
  // sync (default) / async: a change of the namespace or of attributes is on stable
  // storage before its reply (knfsd's EX_ISSYNC and commit_metadata). WRITE's stable_how
  // and COMMIT are honoured either way (knfsd's async also skips their syncs).
  bool sync = true;
  Squash squash = Squash::kRoot;  // root_squash (default) / no_root_squash / all_squash
  uint32_t anonuid = kNobodyUid;
  uint32_t anongid = kNobodyGid;
  bool secure = false;           // secure: only peers with source port < 1024
  std::optional<uint32_t> fsid;  // fsid=N (numeric)
  friend bool operator==(const ExportOptions&, const ExportOptions&) = default;
};

// Who a rule applies to: "*", a host name or address, "a.b.c.d/len" or "addr6/len",
// or a wildcard host name ("*.example.com" — matched against the peer's reverse DNS
// name only when the resolver gives one; on loopback tests use addresses).
// IPv4 rules match IPv4 peers on a dual-stack socket (::ffff:a.b.c.d); a v4-mapped
// IPv6 rule is stored as the IPv4 rule it means.
struct ClientPattern {
  enum class Kind { kAnyone, kAddress, kCidr, kWildcardName, kHostName };
  Kind kind = Kind::kAnyone;
  std::string text;     // as written
  std::string address;  // 4 or 16 network-order bytes (kAddress, kCidr)
  int prefix_len = 0;   // kCidr
  // kHostName: every address the name resolved to when it was parsed (4 or 16
  // bytes each). Empty when it did not resolve: the rule never matches.
  std::vector<std::string> addresses;
  // kWildcardName does a reverse DNS lookup of the peer (getnameinfo, may block);
  // the other kinds never touch the resolver.
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
// The split is at the last ':'; write "DIR:" for a path that contains ':'.
absl::StatusOr<ExportSpec> ParseExportArg(std::string_view arg);
// Parses one client pattern ("*", address, CIDR, netmask, wildcard or host name;
// host names are resolved now). The error message does not name a file or line.
absl::StatusOr<ClientPattern> ParseClientPattern(std::string_view text);
// Normalises an export path: absolute, "//" and "/./" collapsed, no trailing '/',
// no ".." component (rejected).
absl::StatusOr<std::string> NormalizeExportPath(std::string_view path);

// The credentials a request acts as under `options`: root_squash maps uid 0 / gid 0
// to anonuid/anongid (and drops gid 0 from groups), all_squash maps everyone
// (groups cleared), no_root_squash changes nothing.
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

class ExportTable {
 public:
  ExportTable();
  ~ExportTable();  // Shutdown() if not done

  // Replaces the table's contents by `specs`: new exports appear, changed ones
  // (rules/options) are replaced, removed ones disappear (their ids are no longer
  // found → their handles become stale). Validates everything first: on error nothing
  // changes and the status names the export (and file line). Duplicate ids → error.
  // An export whose spec (path and rules; the line number is ignored) is unchanged
  // and whose path is still the same directory (through the same mount) keeps its
  // Export object. After Shutdown() → FailedPrecondition.
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
