// common/localio/broker_server.h — the server's side of the broker (nfsd's part of
// nfs_common: nfsd_localio_ops_init, nfs_uuid_is_local, nfs_uuid_invalidate_clients):
// what localnfsd does with the files broker_format.h describes. It makes the runtime
// dir's files afresh at each start after taking over from a dead predecessor, holds
// broker.lock, publishes its record, binds the uuids UUID_IS_LOCAL names (reading the
// client's slot by pread, never by mapping it), keeps the authoritative private table
// of its bindings for the local socket's HELLO — with the SHA-256 of each client's HELLO
// secret as its slot showed it at bind time —, reaps the bindings of clients that are
// gone, and withdraws at clean exit.
//
// Thread-safety: every method may be called from any thread, except that
// PublishServer() must return before other threads use the Broker. Process-safety: any
// number of processes may map the files; at most one server record is live at a time
// (PublishServer refuses a second live server). Lifetime: a Broker owns its mapping of
// the server's file and its fds; the destructor unmaps and does NOT withdraw — call
// Withdraw() at clean exit (a crash is handled by the next start). Do not use a Broker
// inherited across fork(); create a new one in the child.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/localio/broker_format.h"
#include "common/unique_fd.h"

namespace localnfs::broker {

// What a server publishes. pid, start time, pid namespace and instance id are filled in
// by PublishServer(), not chosen by the caller.
struct ServerRecord {
  std::string socket_path;  // the local AF_UNIX socket; shorter than kMaxSocketPath
  uint64_t capabilities = kCapOpenLocalFh;
  uint32_t ops_version = kOpsVersion;
};

// A uuid bound by this server, as the local socket needs it to authenticate a peer:
// HELLO's secret must hash to secret_hash (SecretMatches), and the opens are checked
// against domain/export. The owner's pid, start time and namespace say only whether
// the binding's client still lives (and whether its slot still holds it).
struct BoundClient {
  Uuid uuid{};
  std::string domain;
  uint32_t export_id = 0;
  pid_t owner_pid = 0;          // as the owner's own pid namespace numbers it
  uint64_t owner_start_time = 0;
  uint64_t owner_pidns = 0;     // inode of the owner's /proc/self/ns/pid
  // The slot's hash when BindUuid read it: the server's copy, which no later write to
  // the slot file changes.
  SecretHash secret_hash{};
};

class Broker {
 public:
  // Creates `runtime_dir` (mode 0700; an existing one keeps its mode — make it 0750 or
  // 2750 with the clients' group beforehand for clients of other users) and opens it.
  // Refuses (kFailedPrecondition) a runtime dir writable by group or others, or owned
  // by a user other than this server's and root. Creates no file yet.
  static absl::StatusOr<std::unique_ptr<Broker>> CreateForServer(
      const std::string& runtime_dir);

  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;
  ~Broker();  // unmaps; does not withdraw

  // nfsd_localio_ops_init: refuses (kFailedPrecondition "runtime dir X is served by
  // localnfsd pid N") when another server holds broker.lock, or the previous record in
  // the runtime dir is live and its process runs; withdraws that record when its
  // process is gone (generation bumped: its clients fall back); then creates a fresh
  // slot file and a fresh server file with this process's live record and renames them
  // into place. Never waits for anything. The generation continues from
  // the previous record's, so no binding of an earlier server matches again. Both files
  // get the runtime dir's group. Once per Broker (kFailedPrecondition after that).
  absl::Status PublishServer(const ServerRecord& record) ABSL_LOCKS_EXCLUDED(mu_);
  // Clean exit: unbinds every uuid (dropping their references), bumps the generation,
  // marks the record withdrawn and lets go of broker.lock. Plain stores: bounded
  // whatever clients do. No-op if not published.
  void Withdraw() ABSL_LOCKS_EXCLUDED(mu_);
  // UUID_IS_LOCAL: the uuid's slot (one pread) must hold it registered by a live owner,
  // with the secret hash the uuid is made from (UuidCommittingTo); then it is bound to
  // this server's live record with the connection's export-client domain and export id
  // and a copy of that hash, taking a reference. Returns false and changes nothing if
  // the uuid is not registered there, its hash does not make it, it is already bound,
  // its owner is gone, the domain is too long, or this Broker has no live record.
  // Never waits for a client.
  bool BindUuid(const Uuid& uuid, std::string_view domain, uint32_t export_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Revokes one binding: drops its reference, bumps the generation (the owner's cached
  // fds must go too, and the generation is all it checks).
  void UnbindUuid(const Uuid& uuid) ABSL_LOCKS_EXCLUDED(mu_);
  // Unexport / shutdown (nfs_uuid_invalidate_clients): unbind all, drop the references,
  // bump the generation.
  void InvalidateClients() ABSL_LOCKS_EXCLUDED(mu_);
  // The binding this server made for `uuid`, if its slot still holds it registered by
  // the same owner (a slot the client released or lost drops the binding; the slot's
  // hash is not looked at again). Used to authenticate the local socket.
  std::optional<BoundClient> LookupBound(const Uuid& uuid) const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<BoundClient> ListBound() const ABSL_LOCKS_EXCLUDED(mu_);
  // Drops bindings whose owner is gone or whose slot no longer holds them; returns how
  // many. (Slots of dead clients are reclaimed by the next client that needs one.)
  int ReapDeadClients() ABSL_LOCKS_EXCLUDED(mu_);
  // The instance id of this Broker's live record, if it published and has not withdrawn.
  std::optional<InstanceId> PublishedInstance() const ABSL_LOCKS_EXCLUDED(mu_);

  // The generation word of this server's record (0 before publication): one acquire
  // load, no lock.
  uint64_t LoadGeneration() const {
    return std::atomic_ref<uint64_t>(*generation_).load(std::memory_order_acquire);
  }
  // True if this server's record is live and its process still runs.
  bool ServerAlive() const;
  // The record as clients see it (kFailedPrecondition before publication).
  absl::StatusOr<ServerInfo> ReadServer() const;
  // The registered slots (read with pread: a truncated file gives fewer, never a
  // fault; garbage slots are skipped).
  absl::StatusOr<std::vector<SlotInfo>> ListSlots() const;
  // <runtime-dir>/broker.
  const std::string& path() const { return path_; }

 private:
  Broker(std::string runtime_dir, UniqueFd dirfd);

  // Drops the binding in slot `index` (if it is still `expected`): clears its entry and
  // its reference. No generation bump.
  void DropBindingLocked(size_t index, const BoundClient& expected) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes (or, with nullptr, clears) the shared entry of slot `index`.
  void WriteEntryLocked(size_t index, const BoundClient* client) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t BumpGeneration() const;

  const std::string runtime_dir_;
  const std::string path_;
  UniqueFd dirfd_;                      // the runtime dir
  format::Segment* segment_ = nullptr;  // read-write once published
  UniqueFd slots_fd_;                   // pread only: never mapped
  uint64_t* generation_;                // inside segment_; a zero word before publication

  // This Broker's publication and the bindings it made, by slot index.
  mutable absl::Mutex mu_;
  bool publish_tried_ ABSL_GUARDED_BY(mu_) = false;
  UniqueFd lock_fd_ ABSL_GUARDED_BY(mu_);  // flock on broker.lock while published
  std::optional<InstanceId> published_ ABSL_GUARDED_BY(mu_);
  // LookupBound()/ListBound() drop what the slots took away: mutable.
  mutable std::vector<std::optional<BoundClient>> bindings_ ABSL_GUARDED_BY(mu_);
  mutable uint32_t bound_count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace localnfs::broker
