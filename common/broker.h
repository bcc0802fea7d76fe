// common/broker.h — the broker: localnfs's nfs_common.
//
// The kernel's NFS client and nfsd share exactly one thing, nfs_common (the nfs_uuid
// list and the `nfs_to` ops table, include/linux/nfslocalio.h). localnfsd and its
// co-located clients (client_localio, the FUSE daemon — separate processes, maybe other
// users of the same group) share exactly this header and the segment it describes.
//
// Owns: the shared-memory segment `<runtime-dir>/broker` (fixed size, magic + format
// version), mapped MAP_SHARED by every party. It holds
//   - the server's ops-table record: state, ops version, capability bits, the path of the
//     server's local AF_UNIX socket, pid + process start time (+ pid namespace), a random
//     instance id, the generation word and a reference count (= uuids bound to it);
//   - the uuid table (kUuidSlots slots): free / pending (a client's uuid_begin) / bound
//     (the server found it via UUID_IS_LOCAL; the slot then holds the reference on the
//     record, the export-client domain of the connection and the export id).
// Kernel module lifetime becomes process lifetime: a record or slot whose process is
// gone (pid dead, zombie, or reused — the start time differs) is dead whatever its count,
// and is reaped by the next server start (PublishServer) or by ReapDeadClients().
//
// Cross-process synchronisation — which mechanism for what, and why:
//   - ONE robust, process-shared pthread mutex (PTHREAD_MUTEX_ROBUST |
//     PTHREAD_PROCESS_SHARED) in the segment serialises every state transition of the
//     record and the slots. Why a mutex and not lock-free words: a transition writes
//     several fields (uuid + owner, or instance + domain + export + refcount) that must
//     appear together, and the party that may die halfway is another process; a robust
//     mutex tells the next locker exactly that (EOWNERDEAD), which a CAS protocol
//     cannot without its own recovery scheme. Every transition first stores a transient
//     state (claiming / binding / freeing, publishing / withdrawing), then the fields,
//     then the final state, so a half-done update is recognisable: on EOWNERDEAD the next
//     locker frees transient slots, finishes or undoes a transient record, recomputes the
//     reference count from the bound slots, and only then calls pthread_mutex_consistent.
//     The lock is taken with a timeout (kLockTimeout): a holder that is alive but stuck,
//     or a mutex word scribbled over, yields kUnavailable instead of a hung mount.
//   - Lock-free atomics (std::atomic_ref on naturally aligned integers, statically
//     asserted always-lock-free) for every scalar field, so that readers outside the
//     mutex never see torn values. The one reader on the hot path is the client's
//     LoadGeneration(): a single acquire load before each local I/O, no lock, no syscall.
//     Invalidation bumps the generation even when the mutex cannot be taken, so a
//     client never misses one.
//
// Trust: the segment is mode 0660 and writable by every client, so nothing in it is
// trusted. Readers check file size, magic, version and slot count before use, bound every
// string read (a string without its NUL within its array is corrupt), never take an
// index or length from the segment, and treat unknown state values as garbage. The
// server never authenticates from the segment alone: LookupBound()/ListBound() answer
// from the server's private table of the bindings it made, and the segment can only take
// a binding away (a client released it), never grant one. A bad segment yields an error
// Status — the client then runs without LOCALIO. Residual risk: a group member that
// truncates the file after others mapped it makes their next access SIGBUS; the group is
// the trust boundary (use a private runtime dir, mode 0700, for single-user setups).
//
// Pid namespaces: every pid is recorded as its owner's own namespace numbers it, with
// that namespace (the inode of /proc/self/ns/pid) — a client in a container that shares
// the runtime dir writes its container pid. Liveness is judged only within the same
// namespace: a client slot owned from another namespace is treated as alive (a leaked
// slot is better than revoking a live client); a server record from another namespace
// is dead when its local socket refuses connections. The server authenticates a
// container client's local-socket peer with IsOwnerProcess(): SO_PEERCRED's pid (in
// the server's namespace) → /proc/PID/ns/pid and the innermost "NSpid:" entry.
//
// Thread-safety: every method may be called from any thread; methods serialise on the
// segment mutex. Process-safety: any number of processes may map the segment; at most
// one server record is live at a time (PublishServer refuses a second live server).
// Lifetime: a Broker owns its mapping; the destructor unmaps and does NOT withdraw —
// call Withdraw() at clean exit (a crash is handled by reaping). Do not use a Broker
// inherited across fork() as a server; create a new one in the child.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace localnfs::broker {

namespace internal {
struct Segment;  // the shared layout, defined in broker.cc
}  // namespace internal

// The kernel's uuid_t: 16 random bytes (RFC 4122 version 4).
using Uuid = std::array<uint8_t, 16>;
// A random id for one publication of a server record; a new one per server start.
using InstanceId = std::array<uint8_t, 16>;

// "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" for logs and localnfs-ctl.
std::string UuidToString(const std::array<uint8_t, 16>& uuid);

inline constexpr char kSegmentName[] = "broker";
// Segment layout version; a segment of another version is rejected by clients and
// replaced by a starting server.
inline constexpr uint32_t kFormatVersion = 2;  // 2: per-slot LOCALIO counters
// Version of the ops table the record advertises (the local-socket protocol).
inline constexpr uint32_t kOpsVersion = 1;
// The fuzz build (-Dfuzz=true) shrinks the table to 64 slots: every loop over it runs
// the same code, but mapping, zeroing and scanning the 1024 slots (370 KiB) was most of
// broker_segment_fuzz's time per input (docs/FUZZING.md, "Speed of the slow targets").
#ifdef LOCALNFS_FUZZ_SMALL_BROKER
inline constexpr size_t kUuidSlots = 64;
#else
inline constexpr size_t kUuidSlots = 1024;
#endif
// Both include the terminating NUL.
inline constexpr size_t kMaxSocketPath = 108;  // sizeof(sockaddr_un::sun_path)
inline constexpr size_t kMaxDomain = 256;
// Capability bits of the record.
inline constexpr uint64_t kCapOpenLocalFh = uint64_t{1} << 0;
// How long a caller waits for the segment mutex before giving up with kUnavailable.
inline constexpr std::chrono::seconds kLockTimeout{5};

enum class RecordState : uint32_t {
  kEmpty = 0,      // no server has published since the segment was created
  kLive = 1,       // a server published and has not withdrawn (it may have died)
  kWithdrawn = 2,  // the last server withdrew cleanly or was reaped
};

enum class SlotState : uint32_t { kFree = 0, kPending = 1, kBound = 2 };

// What a server publishes. pid, start time, pid namespace and instance id are filled in
// by PublishServer(), not chosen by the caller.
struct ServerRecord {
  std::string socket_path;  // the local AF_UNIX socket; shorter than kMaxSocketPath
  uint64_t capabilities = kCapOpenLocalFh;
  uint32_t ops_version = kOpsVersion;
};

// A snapshot of the record, for localnfs-ctl and tests.
struct ServerInfo {
  RecordState state = RecordState::kEmpty;
  uint32_t ops_version = 0;
  uint64_t capabilities = 0;
  std::string socket_path;
  pid_t pid = 0;
  uint64_t start_time = 0;
  InstanceId instance_id{};
  uint64_t generation = 0;
  uint32_t refcount = 0;  // uuids bound to this record
  bool alive = false;     // live and its process still runs
};

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

// The I/O a client does on local fds, counted in its slot for localnfs-ctl (the server
// never sees these calls).
enum class LocalIoKind : int { kRead = 0, kWrite = 1, kCommit = 2 };
struct LocalIoCount {
  uint64_t calls = 0;
  uint64_t bytes = 0;
};

// A uuid bound by this server, as the local socket needs it to authenticate a peer:
// SO_PEERCRED's pid must be owner_pid, and the open is checked against domain/export.
struct BoundClient {
  Uuid uuid{};
  std::string domain;
  uint32_t export_id = 0;
  pid_t owner_pid = 0;          // as the owner's own pid namespace numbers it
  uint64_t owner_start_time = 0;
  uint64_t owner_pidns = 0;     // inode of the owner's /proc/self/ns/pid
};

// One non-free slot as the segment shows it (for localnfs-ctl and tests; untrusted).
struct SlotInfo {
  size_t index = 0;
  SlotState state = SlotState::kFree;
  Uuid uuid{};
  pid_t owner_pid = 0;
  uint64_t owner_start_time = 0;
  InstanceId instance_id{};  // bound only
  std::string domain;        // bound only
  uint32_t export_id = 0;    // bound only
  // Bound only: the owner's CountLocalIo() figures, indexed by LocalIoKind.
  std::array<LocalIoCount, 3> local_io{};
};

// Field 22 of /proc/PID/stat (start time in clock ticks since boot); 0 if unreadable.
uint64_t ProcessStartTime(pid_t pid);
// True if `pid` runs, is not a zombie, and started at `start_time` (so the pid was not
// reused). When /proc hides the process (hidepid) but kill(pid, 0) says it exists, the
// start time cannot be checked and the process counts as alive.
bool ProcessAlive(pid_t pid, uint64_t start_time);
// True if `peer_pid` (a pid of OUR pid namespace, e.g. from SO_PEERCRED, which the
// kernel translates for the receiver) is the process that owns `client`'s uuid: same
// pid namespace and pid, or — for a client in another pid namespace (a container) —
// a process whose /proc/PID/ns/pid is the recorded namespace and whose innermost pid
// ("NSpid:") is the recorded one; and in both cases the recorded start time.
bool IsOwnerProcess(pid_t peer_pid, const BoundClient& client);

class Broker {
 public:
  // Server side. Creates `runtime_dir` (mode 0700; an existing one keeps its mode — make
  // it 0750/2770 beforehand for clients of other users in the group) and the segment
  // (mode 0660 whatever the umask), or opens and validates an existing one. A segment
  // that fails validation is replaced atomically; one owned by another user, or in a
  // world-writable directory, is refused (kFailedPrecondition).
  static absl::StatusOr<std::unique_ptr<Broker>> CreateForServer(
      const std::string& runtime_dir);
  // Client side. Never creates anything. No segment → kNotFound ("LOCALIO off"); a bad
  // segment (size, magic, version, world-writable) → kFailedPrecondition.
  static absl::StatusOr<std::unique_ptr<Broker>> OpenForClient(
      const std::string& runtime_dir);

  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;
  ~Broker();  // unmaps; does not withdraw

  // ---- Server side (nfsd) ----

  // Writes this process's record (nfsd_localio_ops_init). A live record of another live
  // process → kFailedPrecondition "runtime dir X is served by localnfsd pid N". A live
  // record whose process is gone is reaped first: its bound uuids freed, generation
  // bumped. The generation word is never reset, so bindings of an earlier server never
  // match again. kFailedPrecondition if this Broker already published.
  absl::Status PublishServer(const ServerRecord& record);
  // Clean exit: unbinds every uuid of this record (dropping their references), bumps the
  // generation and marks the record withdrawn. No-op if not published.
  void Withdraw();
  // UUID_IS_LOCAL: a pending uuid is bound to this server's live record with the
  // connection's export-client domain and export id, taking a reference. Returns false
  // and changes nothing if the uuid is unknown, not pending, its owner is gone, the
  // domain is too long, or this Broker has no live record.
  bool BindUuid(const Uuid& uuid, std::string_view domain, uint32_t export_id);
  // Revokes one binding: frees the slot, drops its reference, bumps the generation
  // (the owner's cached fds must go too, and the generation is all it checks).
  void UnbindUuid(const Uuid& uuid);
  // Unexport / shutdown (nfs_uuid_invalidate_clients): unbind all, drop the references,
  // bump the generation — the bump happens even if the mutex cannot be taken.
  void InvalidateClients();
  // The binding this server made for `uuid`, if the segment still shows it bound to
  // this record with the same owner. Used to authenticate the local socket.
  std::optional<BoundClient> LookupBound(const Uuid& uuid) const;
  std::vector<BoundClient> ListBound() const;
  // Frees pending and bound slots whose owning client process is gone; returns how
  // many. Bound ones drop their reference.
  int ReapDeadClients();
  // The instance id of this Broker's live record, if it published and has not withdrawn.
  std::optional<InstanceId> PublishedInstance() const;

  // ---- Client side (nfs client) ----

  // uuid_begin: a fresh random uuid registered as pending, owned by this process.
  // kResourceExhausted when every slot is taken by a live client.
  absl::StatusOr<Uuid> UuidBegin();
  // uuid_end: bound → where and how to reach the server; still pending (or unknown, or
  // bound to a record that is no longer the live one) → kNotFound, meaning "not local".
  absl::StatusOr<Binding> UuidEnd(const Uuid& uuid);
  // Unmount: frees the slot of `uuid` if this process owns it; a bound slot drops its
  // reference. Unknown uuids are ignored (the server may have unbound it already).
  void UuidRelease(const Uuid& uuid);
  // The generation word: one acquire load, no lock. Compare with Binding::generation
  // before each local I/O; a different value means "drop local fds, use RPC".
  uint64_t LoadGeneration() const {
    return std::atomic_ref<uint64_t>(*generation_).load(std::memory_order_acquire);
  }
  // True if a record is live and its process still runs.
  bool ServerAlive() const;
  // Adds one local read/write/commit of `bytes` to the counters in the slot of
  // `binding` (two relaxed atomic adds, no lock: it is on the I/O path). Statistics
  // only: a slot the server freed a moment ago (the caller's generation check raced
  // with an unbind) may absorb a count; freeing clears the counters.
  void CountLocalIo(const Binding& binding, LocalIoKind kind, uint64_t bytes);

  // ---- Both sides ----

  absl::StatusOr<ServerInfo> ReadServer() const;
  absl::StatusOr<std::vector<SlotInfo>> ListSlots() const;
  const std::string& path() const { return path_; }

  // Test hook: takes the mutex, leaves one slot half-claimed (transient state) and
  // returns WITHOUT unlocking, so a test can kill the process mid-update.
  absl::StatusOr<Uuid> ClaimSlotAndHoldLockForTesting();

 private:
  using Segment = internal::Segment;
  struct PrivateBinding {
    size_t slot = 0;
    BoundClient client;
  };

  Broker(std::string runtime_dir, std::string path, Segment* segment);

  // Takes the segment mutex (repairing after a dead holder); logs on failure.
  absl::Status LockSegment() const;
  void UnlockSegment() const;

  // All *Locked helpers require the segment mutex.
  void RepairLocked() const;
  bool RecordAliveLocked() const;
  bool OwnsLiveRecordLocked() const;
  void ReapRecordLocked() const;
  int UnbindRecordLocked(const InstanceId& instance) const;
  void FreeSlotLocked(size_t index) const;
  std::optional<size_t> FindSlotLocked(const Uuid& uuid) const;
  bool PrivateBindingValidLocked(const PrivateBinding& binding) const;
  int ReapDeadClientsLocked();
  uint64_t BumpGeneration() const;

  const std::string runtime_dir_;
  const std::string path_;
  Segment* const segment_;
  uint64_t* const generation_;  // inside segment_
  // Guarded by the segment mutex: this Broker's publication and the bindings it made.
  std::optional<InstanceId> published_;
  mutable absl::flat_hash_map<Uuid, PrivateBinding> bindings_;
};

}  // namespace localnfs::broker
