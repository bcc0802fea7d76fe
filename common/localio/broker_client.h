// common/localio/broker_client.h — the client's side of the broker (fs/nfs/localio.c's
// part of nfs_common): what client_localio does with the files broker_format.h
// describes. It maps the server's file read-only and the slot file read-write, claims
// a slot and registers a uuid in it (nfs_uuid_begin), reads the binding the server
// wrote for it after UUID_IS_LOCAL (nfs_uuid_end), checks the generation word before
// each local I/O, counts its local I/O in its slot, and frees the slot at unmount.
// Each registration gets its own HELLO secret (broker_format.h): the slot shows its
// SHA-256, the secret itself stays in this object (SecretOf) until UuidRelease or the
// destructor zeroes it.
//
// A client never creates, repairs or withdraws anything: the server's file is the
// server's (broker_server.h), and a slot file it cannot use (bad size, another
// format, not the one the live record names) means "LOCALIO off", not something to
// fix.
//
// Thread-safety: every method may be called from any thread (the secrets are under a
// mutex). Lifetime: a BrokerClient owns its two mappings, the slot file's fd and the
// secrets of its registrations; the destructor unmaps and zeroes the secrets. The uuids it
// registered belong to the process that registered them (its pid is in the slot): a
// child after fork() must open its own BrokerClient and handshake again.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/localio/broker_format.h"
#include "common/unique_fd.h"

namespace localnfs::broker {

// What a client learns from UuidEnd() when the server bound its uuid.
struct Binding {
  std::string socket_path;
  InstanceId instance_id{};
  // The generation word at bind time: local I/O is allowed while LoadGeneration()
  // still returns this value.
  uint64_t generation = 0;
  uint64_t capabilities = 0;
  uint32_t ops_version = 0;
  uint32_t export_id = 0;
  // Which slot holds the uuid (CountLocalIo adds there without a search).
  size_t slot_index = kUuidSlots;
};

class BrokerClient {
 public:
  // Opens the broker of `runtime_dir`. Never creates anything. No server file →
  // kNotFound ("LOCALIO off"); bad files (size, magic, version, a server file others
  // may write, a world-writable slot file, a slot file that is not the one the live
  // record names) → kFailedPrecondition; kUnavailable when a server start kept
  // replacing them while we looked (a start in progress is waited for a few
  // milliseconds).
  static absl::StatusOr<std::unique_ptr<BrokerClient>> Open(const std::string& runtime_dir);

  BrokerClient(const BrokerClient&) = delete;
  BrokerClient& operator=(const BrokerClient&) = delete;
  ~BrokerClient();  // unmaps, zeroes the secrets

  // uuid_begin: a fresh secret, and the uuid made from its hash (UuidCommittingTo)
  // registered with the hash in a free (or reclaimed) slot, owned by this process.
  // kResourceExhausted when every slot is held by a live client.
  absl::StatusOr<Uuid> UuidBegin() ABSL_LOCKS_EXCLUDED(mu_);
  // The HELLO secret of a uuid this BrokerClient registered and has not released;
  // nullopt otherwise. The copy zeroes itself when destroyed.
  std::optional<Secret> SecretOf(const Uuid& uuid) const ABSL_LOCKS_EXCLUDED(mu_);
  // uuid_end: bound → where and how to reach the server; still pending (or unknown, or
  // bound to a record that is no longer live) → kNotFound, meaning "not local".
  absl::StatusOr<Binding> UuidEnd(const Uuid& uuid);
  // Unmount: frees the slot of `uuid` if this process registered it, and forgets (zeroes)
  // its secret. Unknown uuids are ignored. The server drops its binding when it next
  // looks.
  void UuidRelease(const Uuid& uuid) ABSL_LOCKS_EXCLUDED(mu_);
  // The generation word: one acquire load, no lock. Compare with Binding::generation
  // before each local I/O; a different value means "drop local fds, use RPC".
  uint64_t LoadGeneration() const {
    return std::atomic_ref<uint64_t>(*generation_).load(std::memory_order_acquire);
  }
  // True if a record is live and its process still runs.
  bool ServerAlive() const;
  // Adds one local read/write/commit of `bytes` to the counters in the slot of
  // `binding` (two relaxed atomic adds, no lock: it is on the I/O path). Statistics
  // only: a slot released a moment ago may absorb a count; a claim clears them.
  void CountLocalIo(const Binding& binding, LocalIoKind kind, uint64_t bytes);

  absl::StatusOr<ServerInfo> ReadServer() const;
  // The registered slots (read with pread: a truncated file gives fewer, never a
  // fault; garbage slots are skipped).
  absl::StatusOr<std::vector<SlotInfo>> ListSlots() const;
  // <runtime-dir>/broker.
  const std::string& path() const { return path_; }

 private:
  BrokerClient(std::string path, format::Segment* segment, UniqueFd slots_fd,
               format::SlotTable* slots);

  const std::string path_;
  format::Segment* const segment_;  // mapped read-only
  const UniqueFd slots_fd_;         // for ListSlots' pread
  format::SlotTable* const slots_;  // mapped read-write
  uint64_t* const generation_;      // inside segment_
  // The secrets of the uuids registered through this object (Secret zeroes itself).
  mutable absl::Mutex mu_;
  absl::flat_hash_map<Uuid, Secret> secrets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace localnfs::broker
