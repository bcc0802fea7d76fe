// common/localio/broker_server.h — the broker: localnfs's nfs_common.
//
// The kernel's NFS client and nfsd share exactly one thing, nfs_common (the nfs_uuid
// list and the `nfs_to` ops table, include/linux/nfslocalio.h). localnfsd and its
// co-located clients (client_localio, the FUSE daemon — separate processes, maybe other
// users of the runtime dir's group) share exactly this header and two files in the
// runtime dir, both fixed-size, both mapped MAP_SHARED:
//
//   <runtime-dir>/broker        written by the server only (mode 0640): a header
//     (magic, format version, sizes, and the device + inode of the slot file made with
//     it), the server's ops-table record (state, ops version, capability bits, the path
//     of the local AF_UNIX socket, pid + process start time + pid namespace, a random
//     instance id, the generation word, the number of bound uuids) and the binding
//     table: one entry per slot, filled by UUID_IS_LOCAL (uuid, owner, export id,
//     export-client domain, the generation at bind time) under a per-entry sequence
//     word. Clients map it read-only.
//   <runtime-dir>/broker-slots  the uuid slots (kUuidSlots), written by clients (mode
//     0660): a state word (free / claiming / registered, with the owner's pid), the
//     uuid, the owner's start time and pid namespace, and the owner's LOCALIO counters.
//     No header: everything that says which slot file belongs to which record is in the
//     server's file. The server never maps it; it reads one slot at a time with pread.
//   <runtime-dir>/broker.lock   mode 0600, never opened by clients: a server flocks it
//     (without waiting) from PublishServer to Withdraw, so two servers starting at once
//     cannot both take the runtime dir over.
//
// The handshake: a client claims a free slot by compare-and-swap on its state word and
// registers a random uuid whose last bits name the slot (uuid_begin); UUID_IS_LOCAL
// makes the server pread exactly that slot, check it, and write the binding into the
// entry of the same index (nfs_uuid_is_local); the client reads that entry (uuid_end).
//
// Lifetimes: each server start (PublishServer) makes both files afresh under temporary
// names and renames them into place, slot file first; the previous record, if its
// server is gone, is withdrawn first (state withdrawn, generation bumped), so a client
// still holding the old mapping falls back to RPC and handshakes again with the new
// files. Kernel module lifetime becomes process lifetime: a record whose process is
// gone (pid dead, zombie, or reused — the start time differs) is dead whatever its
// count. Withdraw() at clean exit, InvalidateClients() on unexport, and UnbindUuid()
// bump the generation word; a client compares it (one acquire load, no lock, no
// syscall) before each local I/O.
//
// Cross-process synchronisation — no lock anywhere in shared memory:
//   - Slots: clients claim, register and release by compare-and-swap on the 64-bit
//     state word (std::atomic_ref, statically asserted always lock-free). A claim that
//     stops halfway leaves a `claiming` word with the claimer's pid, which another
//     client reclaims once that pid is gone; a word that is no valid state (scribbled)
//     is reclaimable at once.
//   - Binding entries and the record: one writer, the server, serialised by a private
//     absl::Mutex no client can reach. Entries carry a sequence word (odd while being
//     written) so that clients read them without a lock and retry a torn read.
//   - The server's private table of the bindings it made is authoritative:
//     LookupBound()/ListBound() answer from it and re-read the client's slot only to
//     see whether the client let go (released, died, or its slot was overwritten).
//
// What a malicious LOCALIO client can and cannot do (a member of the runtime dir's
// group, of another uid than the server; broker_test and tests/localio_hostile_test.cc
// check each "cannot" and the first "can" with real processes of another uid):
//   - It cannot write the server's file (0640, the server's owner), so it cannot forge
//     or freeze the record, redirect other clients to a socket of its own, bump or hold
//     the generation, or make a starting server believe another server is live (nor
//     open, let alone hold, broker.lock).
//   - It cannot make any server thread wait: the server takes no lock in shared memory
//     and reads the slot file only by pread of bounded copies — a poisoned or held
//     lock word, an flock or OFD lock on either file, changes no server call.
//     UUID_IS_LOCAL is one pread, one /proc read and a short private critical section.
//   - It cannot crash the server by truncating the slot file (the server never maps
//     it: pread returns short, the slot is "not registered"), nor truncate the server's
//     file (no write permission). A server start reads only the previous server's
//     file, trusted only when it is owned by the server's uid and not group- or
//     world-writable; it never depends on the slot file, which it replaces.
//   - It cannot obtain a binding for another process: HELLO on the local socket
//     authenticates the peer (SO_PEERCRED pid + start time) against the owner the slot
//     named at bind time. Registering a uuid in another process's name yields a binding
//     nobody can use.
//   - It can overwrite, release or fill slots of the slot file (scribbling, truncating,
//     or registering uuids in every slot while it lives): the clients whose slots it
//     hits, or every client when it truncates the file or holds every slot, lose
//     LOCALIO and use RPC until the next server start makes a new slot file. Slots it
//     merely scribbled are reclaimed by the next client that needs one.
//   - It can make clients that have the slot file mapped crash with SIGBUS by
//     truncating it (they touch it on every local I/O to count it). The client library
//     installs no signal handler; among clients the group is the trust boundary. (A
//     sealed memfd handed out over the local socket would close this; not done.)
//   - It can send UUID_IS_LOCAL for a uuid it read from another client's slot before
//     that client does: the binding then carries the attacker's connection as its
//     export-client domain (the victim's own credentials still apply to every open).
// The runtime dir itself must not be writable by clients (CreateForServer refuses a
// dir writable by group or others, or owned by another user): whoever can rename files
// there can replace the broker and the sockets.
//
// Pid namespaces: every pid is recorded as its owner's own namespace numbers it, with
// that namespace (the inode of /proc/self/ns/pid) — a client in a container that shares
// the runtime dir writes its container pid. Liveness is judged only within the same
// namespace: a client slot owned from another namespace is treated as alive (a leaked
// slot is better than revoking a live client); a server record from another namespace
// is dead when its local socket refuses connections. The server authenticates a
// container client's local-socket peer with IsOwnerProcess(): SO_PEERCRED's pid (in
// the server's namespace) → /proc/PID/ns/pid and the innermost "NSpid:" entry. (A proof
// of locality that does not rest on pids — a secret whose hash the client registers in
// its slot and presents in HELLO — has room in the slot's reserved words.)
//
// Thread-safety: every method may be called from any thread, except that
// PublishServer() must return before other threads use the Broker. Process-safety: any
// number of processes may map the files; at most one server record is live at a time
// (PublishServer refuses a second live server). Lifetime: a Broker owns its mappings
// and fds; the destructor unmaps and does NOT withdraw — call Withdraw() at clean exit
// (a crash is handled by the next start). Do not use a Broker inherited across fork()
// as a server; create a new one in the child.
#pragma once

#include <sys/types.h>

#include <array>
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
#include "common/unique_fd.h"

namespace localnfs::broker {

namespace internal {
struct Segment;    // the server's file, defined in broker.cc
struct SlotTable;  // the clients' file, defined in broker.cc
}  // namespace internal

// The kernel's uuid_t: 16 random bytes (RFC 4122 version 4).
using Uuid = std::array<uint8_t, 16>;
// A random id for one publication of a server record; a new one per server start.
using InstanceId = std::array<uint8_t, 16>;

// "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" for logs and localnfs-ctl.
std::string UuidToString(const std::array<uint8_t, 16>& uuid);

inline constexpr char kSegmentName[] = "broker";
inline constexpr char kSlotsName[] = "broker-slots";
inline constexpr char kLockName[] = "broker.lock";
// Layout version of both files; files of another version are rejected by clients and
// replaced by a starting server.
// 2: per-slot LOCALIO counters. 3: the server's record and bindings in a file only the
// server writes, the clients' slots in their own file; no shared mutex.
inline constexpr uint32_t kFormatVersion = 3;
// Version of the ops table the record advertises (the local-socket protocol).
inline constexpr uint32_t kOpsVersion = 1;
// The fuzz build (-Dfuzz=true) shrinks the table to 64 slots: every loop over it runs
// the same code, but mapping, zeroing and scanning the 1024 slots was most of
// broker_segment_fuzz's time per input (docs/FUZZING.md, "Speed of the slow targets").
// A power of two: a uuid names its slot by its last bits (SlotOfUuid).
#ifdef LOCALNFS_FUZZ_SMALL_BROKER
inline constexpr size_t kUuidSlots = 64;
#else
inline constexpr size_t kUuidSlots = 1024;
#endif
static_assert((kUuidSlots & (kUuidSlots - 1)) == 0 && kUuidSlots <= 65536);
// Both include the terminating NUL.
inline constexpr size_t kMaxSocketPath = 108;  // sizeof(sockaddr_un::sun_path)
inline constexpr size_t kMaxDomain = 256;
// Capability bits of the record.
inline constexpr uint64_t kCapOpenLocalFh = uint64_t{1} << 0;

enum class RecordState : uint32_t {
  kEmpty = 0,      // never seen in a valid file (a record is live when its file appears)
  kLive = 1,       // a server published and has not withdrawn (it may have died)
  kWithdrawn = 2,  // the server withdrew cleanly, or its successor reaped it
};

enum class SlotState : uint32_t { kFree = 0, kPending = 1, kBound = 2 };

// The slot a uuid lives in: its last two bytes, big-endian, modulo kUuidSlots.
size_t SlotOfUuid(const Uuid& uuid);

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

// One registered slot as the files show it (for localnfs-ctl and tests; untrusted).
struct SlotInfo {
  size_t index = 0;
  SlotState state = SlotState::kFree;  // kPending or kBound
  Uuid uuid{};
  pid_t owner_pid = 0;
  uint64_t owner_start_time = 0;
  InstanceId instance_id{};  // bound only: the record's
  std::string domain;        // bound only
  uint32_t export_id = 0;    // bound only
  // The owner's CountLocalIo() figures, indexed by LocalIoKind.
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
  // it 0750 or 2750 with the clients' group beforehand for clients of other users) and
  // opens it. Refuses (kFailedPrecondition) a runtime dir writable by group or others,
  // or owned by a user other than this server's and root. Creates no file yet.
  static absl::StatusOr<std::unique_ptr<Broker>> CreateForServer(
      const std::string& runtime_dir);
  // Client side. Never creates anything. No server file → kNotFound ("LOCALIO off");
  // bad files (size, magic, version, a server file others may write, a world-writable
  // slot file, a slot file that is not the one the live record names) →
  // kFailedPrecondition; kUnavailable when a server start kept replacing them while we
  // looked (a start in progress is waited for a few milliseconds).
  static absl::StatusOr<std::unique_ptr<Broker>> OpenForClient(
      const std::string& runtime_dir);

  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;
  ~Broker();  // unmaps; does not withdraw

  // ---- Server side (nfsd) ----

  // nfsd_localio_ops_init: refuses (kFailedPrecondition "runtime dir X is served by
  // localnfsd pid N") when another server holds broker.lock, or the previous record in
  // the runtime dir is live and its process runs; withdraws that record when its
  // process is gone (generation bumped: its clients fall back); then creates a fresh
  // slot file and a fresh server file with this process's live record and renames them
  // into place. Never waits for anything. The generation continues from
  // the previous record's, so no binding of an earlier server matches again. Both files
  // get the runtime dir's group. Once per Broker (kFailedPrecondition after that).
  absl::Status PublishServer(const ServerRecord& record);
  // Clean exit: unbinds every uuid (dropping their references), bumps the generation,
  // marks the record withdrawn and lets go of broker.lock. Plain stores: bounded
  // whatever clients do. No-op if not published.
  void Withdraw();
  // UUID_IS_LOCAL: the uuid's slot (one pread) must hold it registered by a live owner;
  // then it is bound to this server's live record with the connection's export-client
  // domain and export id, taking a reference. Returns false and changes nothing if the
  // uuid is not registered there, already bound, its owner is gone, the domain is too
  // long, or this Broker has no live record. Never waits for a client.
  bool BindUuid(const Uuid& uuid, std::string_view domain, uint32_t export_id);
  // Revokes one binding: drops its reference, bumps the generation (the owner's cached
  // fds must go too, and the generation is all it checks).
  void UnbindUuid(const Uuid& uuid);
  // Unexport / shutdown (nfs_uuid_invalidate_clients): unbind all, drop the references,
  // bump the generation.
  void InvalidateClients();
  // The binding this server made for `uuid`, if its slot still holds it registered by
  // the same owner (a slot the client released or lost drops the binding). Used to
  // authenticate the local socket.
  std::optional<BoundClient> LookupBound(const Uuid& uuid) const;
  std::vector<BoundClient> ListBound() const;
  // Drops bindings whose owner is gone or whose slot no longer holds them; returns how
  // many. (Slots of dead clients are reclaimed by the next client that needs one.)
  int ReapDeadClients();
  // The instance id of this Broker's live record, if it published and has not withdrawn.
  std::optional<InstanceId> PublishedInstance() const;

  // ---- Client side (nfs client) ----

  // uuid_begin: a fresh random uuid registered in a free (or reclaimed) slot, owned by
  // this process. kResourceExhausted when every slot is held by a live client;
  // kFailedPrecondition on a server's Broker.
  absl::StatusOr<Uuid> UuidBegin();
  // uuid_end: bound → where and how to reach the server; still pending (or unknown, or
  // bound to a record that is no longer live) → kNotFound, meaning "not local".
  absl::StatusOr<Binding> UuidEnd(const Uuid& uuid);
  // Unmount: frees the slot of `uuid` if this process registered it. Unknown uuids are
  // ignored. The server drops its binding when it next looks.
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
  // only: a slot released a moment ago may absorb a count; a claim clears them.
  void CountLocalIo(const Binding& binding, LocalIoKind kind, uint64_t bytes);

  // ---- Both sides ----

  absl::StatusOr<ServerInfo> ReadServer() const;
  // The registered slots (read with pread: a truncated file gives fewer, never a
  // fault; garbage slots are skipped).
  absl::StatusOr<std::vector<SlotInfo>> ListSlots() const;
  // <runtime-dir>/broker.
  const std::string& path() const { return path_; }

 private:
  using Segment = internal::Segment;
  using SlotTable = internal::SlotTable;

  Broker(std::string runtime_dir, UniqueFd dirfd);
  Broker(std::string runtime_dir, Segment* segment, UniqueFd slots_fd, SlotTable* slots);

  // Drops the binding in slot `index` (if it is still `expected`): clears its entry and
  // its reference. No generation bump.
  void DropBindingLocked(size_t index, const BoundClient& expected) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes (or, with nullptr, clears) the shared entry of slot `index`.
  void WriteEntryLocked(size_t index, const BoundClient* client) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool RecordAlive() const;
  uint64_t BumpGeneration() const;

  const std::string runtime_dir_;
  const std::string path_;
  UniqueFd dirfd_;              // server: the runtime dir
  Segment* segment_ = nullptr;  // server: read-write once published; client: read-only
  UniqueFd slots_fd_;           // both: pread; the server's never mapped
  SlotTable* slots_ = nullptr;  // client only: its read-write mapping
  uint64_t* generation_;        // inside segment_; a zero word before publication

  // Server side: this Broker's publication and the bindings it made, by slot index.
  mutable absl::Mutex mu_;
  bool publish_tried_ ABSL_GUARDED_BY(mu_) = false;
  UniqueFd lock_fd_ ABSL_GUARDED_BY(mu_);  // flock on broker.lock while published
  std::optional<InstanceId> published_ ABSL_GUARDED_BY(mu_);
  // LookupBound()/ListBound() drop what the slots took away: mutable.
  mutable std::vector<std::optional<BoundClient>> bindings_ ABSL_GUARDED_BY(mu_);
  mutable uint32_t bound_count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace localnfs::broker
