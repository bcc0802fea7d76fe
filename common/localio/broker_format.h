// common/localio/broker_format.h — the broker: localnfs's nfs_common. What localnfsd and
// its co-located clients share: the two files' format, the constants, and the protocol
// of the UUID_IS_LOCAL handshake. What each side does with them is in
// broker_server.h (localnfsd: publish, bind, reap, withdraw) and broker_client.h
// (client_localio: claim a slot, uuid_begin/uuid_end, the generation check).
//
// The kernel's NFS client and nfsd share exactly one thing, nfs_common (the nfs_uuid
// list and the `nfs_to` ops table, include/linux/nfslocalio.h). localnfsd and its
// co-located clients (client_localio, the FUSE daemon — separate processes, maybe other
// users of the runtime dir's group) share exactly this header, proto.h (the local
// socket) and two files in the runtime dir, both fixed-size, both mapped MAP_SHARED:
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
//     uuid, the SHA-256 of the owner's HELLO secret, the owner's start time and pid
//     namespace, and the owner's LOCALIO counters.
//     No header: everything that says which slot file belongs to which record is in the
//     server's file. The server never maps it; it reads one slot at a time with pread.
//   <runtime-dir>/broker.lock   mode 0600, never opened by clients: a server flocks it
//     (without waiting) from PublishServer to Withdraw, so two servers starting at once
//     cannot both take the runtime dir over.
//
// The handshake: a client claims a free slot by compare-and-swap on its state word,
// draws a secret (32 random bytes that never leave its memory but for HELLO) and
// registers SHA-256(secret) with a uuid made from that hash whose last bits name the
// slot (uuid_begin; UuidCommittingTo); UUID_IS_LOCAL makes the server pread exactly
// that slot, check it — the uuid must be the one the slot's hash makes — and write the
// binding into the entry of the same index (nfs_uuid_is_local), keeping the hash in
// its private table; the client reads that entry (uuid_end). HELLO on the local socket
// then carries the uuid and the secret (proto.h), and the server compares SHA-256 of
// the secret with the hash it kept (SecretMatches: CRYPTO_memcmp).
//
// Proof of locality: whoever presents the secret is the process that registered the
// uuid — no pid is involved, so it works when the server cannot see the client's pid
// (client and server in different pid namespaces: SO_PEERCRED reports pid 0). Why no
// pid check is kept beside it, even where the pid is visible: the secret is in one
// process's memory only; what else can read it (ptrace, /proc/PID/mem, a core dump, a
// fork() child) is that process's uid or root, who could act as that process anyway
// (use its connection, its fds) — and a check that holds in some deployments and not in
// others (pid 0 across namespaces) is nothing a client or an operator could rely on.
// One proof, the same everywhere. The uid of the peer (SO_PEERCRED) still decides what
// each open may do (local_socket.h), exactly as for an RPC.
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
//   - It cannot use another client's binding: HELLO must carry the secret whose
//     SHA-256 the server took from the slot when it bound the uuid. The slot shows the
//     hash, never the secret; replaying a uuid (and its hash) read from the slot file
//     with any other secret is refused. Rewriting the hash in a bound client's slot
//     changes nothing (the server kept its copy at bind time, and never reads the hash
//     again).
//   - It cannot slip its own hash under another client's uuid before that uuid is
//     bound (to be bound through the victim's NFS connection, with the victim's
//     export-client domain — e.g. a privileged source port — and then HELLO with its own
//     secret): the uuid is made from the hash (at least 112 of its bits are hash
//     bits, UuidCommittingTo) and the server binds a uuid only when the slot's hash makes it,
//     so another hash means a second preimage of SHA-256. Scribbling the hash before
//     the bind, or the slot's owner pid, at most makes that client's UUID_IS_LOCAL bind
//     nothing it can use: it falls back to RPC.
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
// that namespace (the inode of /proc/self/ns/pid; proc_identity.h) — a client in a
// container that shares the runtime dir writes its container pid. Liveness is judged
// only within the same namespace: a client slot owned from another namespace is treated
// as alive (a leaked slot is better than revoking a live client); a server record from
// another namespace is dead when its local socket refuses connections. Pids decide
// liveness only: the local socket authenticates by the secret, so a client whose pid
// the server cannot see (SO_PEERCRED pid 0) is served like any other.
//
// Owns: nothing at run time. The public part (namespace broker) is the vocabulary both
// sides and their tools use; namespace broker::format is the byte layout of the two
// files and the lock-free accessors to it, for broker_server.cc and broker_client.cc
// only: nothing else reads or writes the files' fields.
//
// Thread-safety: the functions are stateless; the layouts are read and written only
// through atomic_ref (Load/Store/Cas below), so any number of threads and processes may
// use them at once.
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/sharded_counter.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace localnfs::broker {

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
// server writes, the clients' slots in their own file; no shared mutex. 4: each slot
// holds SHA-256 of its owner's HELLO secret, and the uuid is made from it. 5: the
// LOCALIO counters of a slot in kIoShards cache lines (SlotTable::io), one per group of
// the owner's threads.
inline constexpr uint32_t kFormatVersion = 5;
// Version of the ops table the record advertises (the local-socket protocol).
// 2: HELLO carries the secret.
inline constexpr uint32_t kOpsVersion = 2;
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
// The HELLO secret of one registration (uuid_begin) and its SHA-256, which the slot shows.
inline constexpr size_t kSecretSize = 32;
using SecretHash = std::array<uint8_t, 32>;

// 32 random bytes that prove, in HELLO, that the sender registered the uuid. Zeroed
// (OPENSSL_cleanse) when destroyed, every copy; never logged (no formatter exists).
class Secret {
 public:
  Secret() { bytes_.fill(0); }
  // getrandom(2).
  static absl::StatusOr<Secret> Generate();
  static Secret FromBytes(const uint8_t* bytes);  // kSecretSize bytes
  Secret(const Secret& other) : bytes_(other.bytes_) {}
  Secret& operator=(const Secret& other) {
    bytes_ = other.bytes_;
    return *this;
  }
  ~Secret();
  const uint8_t* data() const { return bytes_.data(); }
  static constexpr size_t size() { return kSecretSize; }
  SecretHash Hash() const;

 private:
  std::array<uint8_t, kSecretSize> bytes_;
};
// SHA-256(secret) == expected, compared in constant time (CRYPTO_memcmp).
bool SecretMatches(const Secret& secret, const SecretHash& expected);
// The uuid a registration in slot `slot_index` with secret hash `hash` gets: the hash's
// first 16 bytes, with the RFC 4122 version-4 and variant bits and the slot's bits
// (SlotOfUuid) set. The uuid thereby commits to the hash: the server binds a uuid only
// when the slot's hash makes exactly it (broker_format.h, "cannot slip its own hash").
Uuid UuidCommittingTo(const SecretHash& hash, size_t slot_index);

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

// The I/O a client does on local fds, counted in its slot for localnfs-ctl (the server
// never sees these calls).
enum class LocalIoKind : int { kRead = 0, kWrite = 1, kCommit = 2 };
struct LocalIoCount {
  uint64_t calls = 0;
  uint64_t bytes = 0;
};

// One registered slot as the files show it (for localnfs-ctl and tests; untrusted).
struct SlotInfo {
  size_t index = 0;
  SlotState state = SlotState::kFree;  // kPending or kBound
  Uuid uuid{};
  pid_t owner_pid = 0;
  uint64_t owner_start_time = 0;
  SecretHash secret_hash{};  // as the slot shows it now (the server kept its own copy)
  InstanceId instance_id{};  // bound only: the record's
  std::string domain;        // bound only
  uint32_t export_id = 0;    // bound only
  // The owner's CountLocalIo() figures, indexed by LocalIoKind.
  std::array<LocalIoCount, 3> local_io{};
};

// ---- The files' layout, for broker_server.cc and broker_client.cc ----
namespace format {

// "LNFSBRKR" read as a little-endian u64.
inline constexpr uint64_t kMagic = 0x524b5242'53464e4cULL;

inline constexpr uint32_t kRecLive = static_cast<uint32_t>(RecordState::kLive);
inline constexpr uint32_t kRecWithdrawn = static_cast<uint32_t>(RecordState::kWithdrawn);

// A slot's state word: a tag in the low 32 bits, the owner's pid (as its own pid
// namespace numbers it) in the high 32. Zero is free. The tags are arbitrary constants
// so that bytes scribbled over a word almost never form a valid state; a word that is
// neither zero nor a valid tag is garbage, which any client may reclaim.
inline constexpr uint32_t kTagClaiming = 0x4d4c4143;    // "CALM": fields being written
inline constexpr uint32_t kTagRegistered = 0x47455252;  // "RREG": uuid_begin done

inline uint64_t SlotWord(uint32_t tag, pid_t pid) {
  return uint64_t{static_cast<uint32_t>(pid)} << 32 | tag;
}
inline uint32_t TagOf(uint64_t word) { return static_cast<uint32_t>(word); }
inline pid_t PidOf(uint64_t word) {
  return static_cast<pid_t>(static_cast<uint32_t>(word >> 32));
}

inline constexpr uint32_t kEntryFree = 0;
inline constexpr uint32_t kEntryBound = 1;

static_assert(std::atomic_ref<uint32_t>::is_always_lock_free);
static_assert(std::atomic_ref<uint64_t>::is_always_lock_free);
static_assert(std::atomic_ref<int32_t>::is_always_lock_free);

// ---- The shared layouts. Every field, byte arrays included (as 64-bit words), is
// accessed through atomic_ref, so that a reader never sees a torn scalar and
// ThreadSanitizer sees every cross-thread access of an in-process test.

// One client's slot (broker-slots). 128 bytes: two cache lines, none shared between
// two clients' counters.
struct Slot {
  uint64_t word;         // SlotWord(tag, pid); first: a claim CASes it before the rest
  uint64_t owner_start;  // ProcessStartTime of the owner
  uint64_t owner_pidns;  // the owner's pid namespace
  uint64_t uuid[2];
  uint64_t unused[6];       // zero (format 4's counters: SlotIo now)
  uint64_t secret_hash[4];  // SHA-256 of the owner's HELLO secret; the uuid is made from it
  uint64_t reserved;        // zero
};
static_assert(sizeof(Slot) == 128);

// One slot's client-maintained LOCALIO counters (CountLocalIo): indexed by LocalIoKind,
// each pair (calls, bytes), summed over the shards by readers. Informational only:
// nothing is decided from them. A thread of the owner adds to its own shard, the index
// of common/sharded_counter.h (owned alone: plain stores; the last one shared): one line
// that every thread of a client added to per read cost a quarter of its local 4 KiB
// read rate at 16 threads on 2 CPUs.
inline constexpr size_t kIoShards = kCounterShards;
struct alignas(64) IoShard {
  uint64_t local_io[3][2];
  uint64_t reserved[2];  // zero
};
static_assert(sizeof(IoShard) == 64);
struct SlotIo {
  IoShard shards[kIoShards];
};

struct Header {
  uint64_t magic;  // stored last
  uint32_t format_version;
  uint32_t slot_count;
  uint64_t segment_size;
  // The slot file made with this record: a client pairs the two by the slot file's
  // identity, which no client can write.
  uint64_t slots_dev;
  uint64_t slots_ino;
  uint64_t slots_size;
  uint64_t reserved[2];
};
static_assert(sizeof(Header) == 64);

// The ops-table record. Everything but state, refcount and generation is written
// before the file is renamed into place and never changes afterwards.
struct Record {
  uint32_t state;
  uint32_t ops_version;
  uint64_t capabilities;
  int32_t pid;
  uint32_t refcount;
  uint64_t start_time;
  uint64_t pidns;
  uint64_t generation;
  uint64_t instance_id[2];
  uint64_t socket_path[14];  // 112 bytes, NUL-terminated, at most kMaxSocketPath with it
};

// The server's binding of slot i, read by the client of slot i (uuid_end). One writer
// (the server, under its private mutex); `seq` is odd while it writes.
struct Entry {
  uint32_t seq;
  uint32_t state;  // kEntryFree / kEntryBound
  uint32_t export_id;
  int32_t owner_pid;
  uint64_t owner_start;
  uint64_t owner_pidns;
  uint64_t generation;  // at bind time
  uint64_t uuid[2];
  uint64_t domain[kMaxDomain / 8];  // NUL-terminated
};
static_assert(kMaxDomain % 8 == 0 && sizeof(Record::socket_path) >= kMaxSocketPath);

// <runtime-dir>/broker-slots.
struct SlotTable {
  Slot slots[kUuidSlots];
  SlotIo io[kUuidSlots];  // io[i]: slot i's counters
};

// <runtime-dir>/broker.
struct Segment {
  Header header;
  alignas(64) Record record;
  alignas(64) Entry entries[kUuidSlots];
};

static_assert(std::is_trivially_copyable_v<Slot> && std::is_trivially_copyable_v<Entry>);
static_assert(offsetof(Segment, record) == 64);
static_assert(sizeof(Entry) % alignof(uint64_t) == 0);

template <class T>
T Load(const T& field) {
  static_assert(std::is_integral_v<T>);
  return std::atomic_ref<T>(const_cast<T&>(field)).load(std::memory_order_acquire);
}
template <class T>
void Store(T& field, std::type_identity_t<T> value) {
  std::atomic_ref<T>(field).store(value, std::memory_order_release);
}
inline bool Cas(uint64_t& field, uint64_t expected, uint64_t desired) {
  return std::atomic_ref<uint64_t>(field).compare_exchange_strong(expected, desired,
                                                                  std::memory_order_acq_rel);
}

// Byte arrays kept as 64-bit words.
template <size_t N>
void StoreBytes(uint64_t (&words)[N], const void* src, size_t len) {
  uint64_t tmp[N] = {};
  memcpy(tmp, src, std::min(len, sizeof tmp));
  for (size_t i = 0; i < N; ++i) Store(words[i], tmp[i]);
}
template <size_t N>
void LoadBytes(const uint64_t (&words)[N], void* dst) {
  uint64_t tmp[N];
  for (size_t i = 0; i < N; ++i) tmp[i] = Load(words[i]);
  memcpy(dst, tmp, sizeof tmp);
}
inline void StoreUuid(uint64_t (&words)[2], const std::array<uint8_t, 16>& id) {
  StoreBytes(words, id.data(), id.size());
}
inline std::array<uint8_t, 16> LoadUuid(const uint64_t (&words)[2]) {
  std::array<uint8_t, 16> out;
  LoadBytes(words, out.data());
  return out;
}
// A NUL-terminated string out of a word array; false when it has no NUL (corrupt).
template <size_t N>
bool LoadString(const uint64_t (&words)[N], std::string* out) {
  char copy[N * 8];
  LoadBytes(words, copy);
  const size_t len = strnlen(copy, sizeof copy);
  if (len == sizeof copy) return false;
  out->assign(copy, len);
  return true;
}
template <size_t N>
void StoreString(uint64_t (&words)[N], std::string_view value) {
  StoreBytes(words, value.data(), std::min(value.size(), N * 8 - 1));
}

// A copy of one slot's identity, as pread returned it (the counters left out: they
// change with every local I/O and decide nothing).
struct SlotIdentity {
  uint64_t word = 0;
  uint64_t owner_start = 0;
  uint64_t owner_pidns = 0;
  Uuid uuid{};
  SecretHash secret_hash{};
};
SlotIdentity IdentityOf(const Slot& s);

// Slot `index` of the slot file, by pread (never a mapping: a client may truncate the
// file). Read twice until two reads agree, so that the fields belong to one claim;
// nullopt when the file is short or the slot keeps changing.
std::optional<SlotIdentity> PreadSlot(int fd, size_t index);
// The whole slot table by one pread; a short file gives the slots it holds.
std::vector<Slot> PreadSlots(int fd);
// The counters part of the table (SlotTable::io), as PreadSlots.
std::vector<SlotIo> PreadSlotIo(int fd);

// One binding entry as a client reads it.
struct EntryCopy {
  uint32_t state = kEntryFree;
  uint32_t export_id = 0;
  pid_t owner_pid = 0;
  uint64_t owner_start = 0;
  uint64_t owner_pidns = 0;
  uint64_t generation = 0;
  Uuid uuid{};
  std::string domain;
  bool domain_ok = false;
};
// Reads entry `e` without a lock: retries while the server is writing it (odd `seq`)
// or wrote it meanwhile. False when it keeps changing (the caller is not bound).
bool ReadEntry(const Entry& e, EntryCopy* out);

// Whether the record's server runs: same pid namespace → its pid and start time;
// another → its local socket accepts (never waits: a full backlog counts as alive).
bool RecordAliveOf(const Record& rec);

// Magic, version and sizes of a mapped server file at `path` (for messages):
// kFailedPrecondition naming what is wrong.
absl::Status CheckHeader(const Segment& seg, const std::string& path);

// `len` random bytes (getrandom): instance ids and uuids.
absl::Status FillRandom(uint8_t* out, size_t len);

// What both sides' ReadServer() and ListSlots() answer, from a server file mapped at
// `seg` (null: none yet, kFailedPrecondition) and the slot file `slots_fd` (read with
// pread: a truncated file gives fewer slots, never a fault; garbage slots are skipped).
// `path` names the server file in messages.
absl::StatusOr<ServerInfo> ReadServerInfo(const Segment* seg, const std::string& path);
absl::StatusOr<std::vector<SlotInfo>> ReadSlotInfos(int slots_fd, const Segment* seg,
                                                    const std::string& path);

}  // namespace format
}  // namespace localnfs::broker
