#include "common/localio/broker_server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/status.h"

namespace localnfs::broker {
namespace {

// "LNFSBRKR" read as a little-endian u64.
constexpr uint64_t kMagic = 0x524b5242'53464e4cULL;

constexpr uint32_t kRecLive = static_cast<uint32_t>(RecordState::kLive);
constexpr uint32_t kRecWithdrawn = static_cast<uint32_t>(RecordState::kWithdrawn);

// A slot's state word: a tag in the low 32 bits, the owner's pid (as its own pid
// namespace numbers it) in the high 32. Zero is free. The tags are arbitrary constants
// so that bytes scribbled over a word almost never form a valid state; a word that is
// neither zero nor a valid tag is garbage, which any client may reclaim.
constexpr uint32_t kTagClaiming = 0x4d4c4143;    // "CALM": fields being written
constexpr uint32_t kTagRegistered = 0x47455252;  // "RREG": uuid_begin done

uint64_t SlotWord(uint32_t tag, pid_t pid) {
  return uint64_t{static_cast<uint32_t>(pid)} << 32 | tag;
}
uint32_t TagOf(uint64_t word) { return static_cast<uint32_t>(word); }
pid_t PidOf(uint64_t word) { return static_cast<pid_t>(static_cast<uint32_t>(word >> 32)); }

constexpr uint32_t kEntryFree = 0;
constexpr uint32_t kEntryBound = 1;

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
  // Client-maintained LOCALIO counters (CountLocalIo), indexed by LocalIoKind; each
  // pair is (calls, bytes). Informational only: nothing is decided from them.
  uint64_t local_io[3][2];
  uint64_t reserved[5];  // zero; room for a proof of locality without pids
};
static_assert(sizeof(Slot) == 128);

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

template <class T>
T Load(const T& field) {
  static_assert(std::is_integral_v<T>);
  return std::atomic_ref<T>(const_cast<T&>(field)).load(std::memory_order_acquire);
}
template <class T>
void Store(T& field, std::type_identity_t<T> value) {
  std::atomic_ref<T>(field).store(value, std::memory_order_release);
}
bool Cas(uint64_t& field, uint64_t expected, uint64_t desired) {
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
void StoreUuid(uint64_t (&words)[2], const std::array<uint8_t, 16>& id) {
  StoreBytes(words, id.data(), id.size());
}
std::array<uint8_t, 16> LoadUuid(const uint64_t (&words)[2]) {
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

// /proc/PID/stat: "pid (comm) S ppid ... starttime(22) ...". comm may hold spaces and
// parentheses, so fields are counted from the LAST ')'.
// `path` is /proc/PID/stat or /proc/self/stat.
bool ReadProcStat(const std::string& path, char* state, uint64_t* start_time) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  char buf[1024];
  ssize_t n;
  do {
    n = ::read(fd.get(), buf, sizeof buf - 1);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  buf[n] = '\0';
  char* p = strrchr(buf, ')');
  if (p == nullptr || p[1] != ' ') return false;
  p += 2;  // field 3
  *state = *p;
  for (int field = 3; field < 22; ++field) {
    p = strchr(p, ' ');
    if (p == nullptr) return false;
    ++p;
  }
  char* end = nullptr;
  errno = 0;
  unsigned long long value = strtoull(p, &end, 10);
  if (end == p || errno != 0) return false;
  *start_time = value;
  return true;
}

uint64_t PidNamespaceOf(const char* proc_path) {
  struct stat st;
  if (::stat(proc_path, &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_ino);
}

// This process's identity, recomputed after fork().
struct Self {
  pid_t pid;
  uint64_t start_time;
  uint64_t pidns;
};
Self CurrentProcess() {
  static thread_local Self cached{0, 0, 0};
  pid_t pid = ::getpid();
  if (cached.pid != pid) {
    // /proc/self, not /proc/PID: in a pid namespace whose /proc is still the parent's
    // (unshare --pid without --mount-proc), PID names another process there.
    char state;
    uint64_t start = 0;
    if (!ReadProcStat("/proc/self/stat", &state, &start)) start = 0;
    cached = Self{pid, start, PidNamespaceOf("/proc/self/ns/pid")};
  }
  return cached;
}

// Liveness of a process recorded from pid namespace `pidns`. Another namespace's pids
// mean nothing here: treat as alive (see the header).
bool OwnerAlive(pid_t pid, uint64_t start_time, uint64_t pidns) {
  if (pidns != CurrentProcess().pidns) return true;
  return ProcessAlive(pid, start_time);
}

// The last field of "NSpid:" in /proc/PID/status: the pid in the process's own (the
// innermost) pid namespace; 0 if unreadable.
pid_t InnermostPid(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.compare(0, 6, "NSpid:") != 0) continue;
    std::istringstream in(line.substr(6));
    long value = 0, last = 0;
    while (in >> value) last = value;
    return static_cast<pid_t>(last);
  }
  return 0;
}

// A server in another pid namespace is alive while its local socket accepts. Never
// waits: a full backlog (EAGAIN) counts as alive.
bool SocketAnswers(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return true;  // cannot tell: do not declare it dead
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return false;
  memcpy(addr.sun_path, path.data(), path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
    return true;
  return errno != ECONNREFUSED && errno != ENOENT;
}

absl::Status FillRandom(uint8_t* out, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::getrandom(out + done, len - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, "getrandom");
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

struct internal::SlotTable {
  Slot slots[kUuidSlots];
};

struct internal::Segment {
  Header header;
  alignas(64) Record record;
  alignas(64) Entry entries[kUuidSlots];
};

static_assert(std::is_trivially_copyable_v<Slot> && std::is_trivially_copyable_v<Entry>);
static_assert(offsetof(internal::Segment, record) == 64);
static_assert(sizeof(Entry) % alignof(uint64_t) == 0);

namespace {

using internal::Segment;
using internal::SlotTable;

// A copy of one slot's identity, as pread returned it (the counters left out: they
// change with every local I/O and decide nothing).
struct SlotIdentity {
  uint64_t word = 0;
  uint64_t owner_start = 0;
  uint64_t owner_pidns = 0;
  Uuid uuid{};
};
SlotIdentity IdentityOf(const Slot& s) {
  SlotIdentity id{s.word, s.owner_start, s.owner_pidns, {}};
  memcpy(id.uuid.data(), s.uuid, id.uuid.size());
  return id;
}
bool SameIdentity(const SlotIdentity& a, const SlotIdentity& b) {
  return a.word == b.word && a.owner_start == b.owner_start &&
         a.owner_pidns == b.owner_pidns && a.uuid == b.uuid;
}
// True if the slot still holds `client`'s uuid, registered by the same process.
bool SlotHolds(const SlotIdentity& slot, const BoundClient& client) {
  return slot.word == SlotWord(kTagRegistered, client.owner_pid) && slot.uuid == client.uuid &&
         slot.owner_start == client.owner_start_time;
}

// Slot `index` of the slot file, by pread (never a mapping: a client may truncate the
// file). Read twice until two reads agree, so that the fields belong to one claim;
// nullopt when the file is short or the slot keeps changing.
std::optional<SlotIdentity> PreadSlot(int fd, size_t index) {
  std::optional<SlotIdentity> last;
  for (int attempt = 0; attempt < 4; ++attempt) {
    Slot s;
    const ssize_t n = ::pread(fd, &s, sizeof s, static_cast<off_t>(index * sizeof s));
    if (n != static_cast<ssize_t>(sizeof s)) return std::nullopt;
    const SlotIdentity id = IdentityOf(s);
    if (last && SameIdentity(*last, id)) return id;
    last = id;
  }
  return std::nullopt;
}

// The whole slot table by one pread; a short file gives the slots it holds.
std::vector<Slot> PreadSlots(int fd) {
  std::vector<Slot> slots(kUuidSlots);
  ssize_t n;
  do {
    n = ::pread(fd, slots.data(), sizeof(Slot) * slots.size(), 0);
  } while (n < 0 && errno == EINTR);
  slots.resize(n > 0 ? static_cast<size_t>(n) / sizeof(Slot) : 0);
  return slots;
}

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
bool ReadEntry(const Entry& e, EntryCopy* out) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    const uint32_t before = Load(e.seq);
    if ((before & 1) == 0) {
      out->state = Load(e.state);
      out->export_id = Load(e.export_id);
      out->owner_pid = Load(e.owner_pid);
      out->owner_start = Load(e.owner_start);
      out->owner_pidns = Load(e.owner_pidns);
      out->generation = Load(e.generation);
      out->uuid = LoadUuid(e.uuid);
      out->domain_ok = LoadString(e.domain, &out->domain);
      // The loads above are acquire loads: this one cannot move before them.
      if (Load(e.seq) == before) return true;
    }
    std::this_thread::yield();
  }
  return false;
}

// Whether the record's server runs: same pid namespace → its pid and start time;
// another → its local socket accepts.
bool RecordAliveOf(const Record& rec) {
  if (Load(rec.state) != kRecLive) return false;
  if (Load(rec.pidns) != CurrentProcess().pidns) {
    std::string socket_path;
    return LoadString(rec.socket_path, &socket_path) && SocketAnswers(socket_path);
  }
  return ProcessAlive(Load(rec.pid), Load(rec.start_time));
}

absl::Status CheckHeader(const Segment& seg, const std::string& path) {
  const Header& h = seg.header;
  if (Load(h.magic) != kMagic)
    return absl::FailedPreconditionError(
        absl::StrFormat("broker %s has a bad magic number", path));
  if (Load(h.format_version) != kFormatVersion)
    return absl::FailedPreconditionError(
        absl::StrFormat("broker %s has format version %d, this build speaks %d", path,
                        Load(h.format_version), kFormatVersion));
  if (Load(h.slot_count) != kUuidSlots || Load(h.segment_size) != sizeof(Segment) ||
      Load(h.slots_size) != sizeof(SlotTable))
    return absl::FailedPreconditionError(
        absl::StrFormat("broker %s has an inconsistent header", path));
  return absl::OkStatus();
}

// A file made under a temporary name in the runtime dir and renamed into place by
// Commit(); unlinked if never committed. Mode `mode` whatever the umask, the group of
// the runtime dir (the clients' group) when the server may give it that group.
class NewFile {
 public:
  static absl::StatusOr<NewFile> Create(int dirfd, const std::string& dir, const char* name,
                                        mode_t mode, size_t size) {
    NewFile f;
    f.dirfd_ = dirfd;
    f.name_ = name;
    f.tmp_ = absl::StrFormat("%s.new.%d", name, ::getpid());
    f.path_ = dir + "/" + name;
    ::unlinkat(dirfd, f.tmp_.c_str(), 0);
    f.fd_.reset(::openat(dirfd, f.tmp_.c_str(),
                         O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!f.fd_) return ErrnoToStatus(errno, "create " + f.path_ + ".new");
    struct stat dst;
    if (::fstat(dirfd, &dst) == 0 && ::fchown(f.fd_.get(), static_cast<uid_t>(-1), dst.st_gid) != 0)
      LOG_DEBUG("broker: %s keeps its group: fchown: %s", f.path_, strerror(errno));
    if (::fchmod(f.fd_.get(), mode) != 0) return ErrnoToStatus(errno, "fchmod " + f.path_);
    if (::ftruncate(f.fd_.get(), static_cast<off_t>(size)) != 0)
      return ErrnoToStatus(errno, "ftruncate " + f.path_);
    return f;
  }
  NewFile() = default;
  NewFile(NewFile&& other) noexcept
      : dirfd_(other.dirfd_),
        name_(std::move(other.name_)),
        tmp_(std::exchange(other.tmp_, std::string())),
        path_(std::move(other.path_)),
        fd_(std::move(other.fd_)) {}
  ~NewFile() {
    if (!tmp_.empty()) ::unlinkat(dirfd_, tmp_.c_str(), 0);
  }
  int fd() const { return fd_.get(); }
  UniqueFd ReleaseFd() { return std::move(fd_); }
  absl::Status Commit() {
    if (::renameat(dirfd_, tmp_.c_str(), dirfd_, name_.c_str()) != 0)
      return ErrnoToStatus(errno, "rename into " + path_);
    tmp_.clear();
    return absl::OkStatus();
  }

 private:
  int dirfd_ = -1;
  std::string name_, tmp_, path_;
  UniqueFd fd_;
};

// The previous server's file, mapped read-write, if this server's uid wrote it and
// nobody else may write it; null (logged) when there is none or it cannot be believed —
// it is then just replaced.
struct PreviousFile {
  Segment* seg = nullptr;
  ~PreviousFile() {
    if (seg != nullptr) ::munmap(seg, sizeof(Segment));
  }
};
std::unique_ptr<PreviousFile> OpenPrevious(int dirfd, const std::string& path) {
  UniqueFd fd(::openat(dirfd, kSegmentName, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    if (errno != ENOENT) LOG_WARNING("broker %s: %s; replacing it", path, strerror(errno));
    return nullptr;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() ||
      (st.st_mode & (S_IWGRP | S_IWOTH)) != 0 ||
      static_cast<uint64_t>(st.st_size) != sizeof(Segment)) {
    LOG_WARNING("broker %s is not one this server version wrote (mode %o, uid %d, %d "
                "bytes); replacing it",
                path, st.st_mode & 07777, st.st_uid, st.st_size);
    return nullptr;
  }
  void* p = ::mmap(nullptr, sizeof(Segment), PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) {
    LOG_WARNING("broker %s: mmap: %s; replacing it", path, strerror(errno));
    return nullptr;
  }
  auto prev = std::make_unique<PreviousFile>();
  prev->seg = static_cast<Segment*>(p);
  if (absl::Status s = CheckHeader(*prev->seg, path); !s.ok()) {
    LOG_WARNING("%s; replacing it", s.message());
    return nullptr;
  }
  return prev;
}

// Takes over the runtime dir from the previous server: refuses while another server
// holds the lock file or the previous record is live and its process runs; withdraws
// that record (generation bumped) when its process is gone. Returns the generation the
// new record starts at.
absl::StatusOr<uint64_t> TakeOverPrevious(int dirfd, const std::string& runtime_dir,
                                          bool locked_by_another) {
  const std::string path = runtime_dir + "/" + kSegmentName;
  std::unique_ptr<PreviousFile> prev = OpenPrevious(dirfd, path);
  Record* rec = prev != nullptr ? &prev->seg->record : nullptr;
  const bool live = rec != nullptr && Load(rec->state) == kRecLive;
  if (live && (locked_by_another || RecordAliveOf(*rec)))
    return absl::FailedPreconditionError(absl::StrFormat(
        "runtime dir %s is served by localnfsd pid %d", runtime_dir, Load(rec->pid)));
  if (locked_by_another)
    return absl::FailedPreconditionError(
        absl::StrFormat("runtime dir %s is being taken over by another localnfsd", runtime_dir));
  if (rec == nullptr) return 1;
  if (live) {
    LOG_WARNING("broker %s: reaping the record of dead localnfsd pid %d (%d bound uuids)",
                path, Load(rec->pid), Load(rec->refcount));
    Store(rec->state, kRecWithdrawn);
    // Its clients still hold this mapping: they see the bump and fall back.
    std::atomic_ref<uint64_t>(rec->generation).fetch_add(1, std::memory_order_acq_rel);
  }
  return Load(rec->generation) + 1;
}

// The lock a server holds on <runtime-dir>/broker.lock (mode 0600: no client can open
// it) from PublishServer to Withdraw: what keeps two servers starting at once apart.
// Never waits. *held_elsewhere when another server holds it.
absl::StatusOr<UniqueFd> LockRuntimeDir(int dirfd, const std::string& runtime_dir,
                                        bool* held_elsewhere) {
  const std::string path = runtime_dir + "/" + kLockName;
  UniqueFd fd(::openat(dirfd, kLockName, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return ErrnoToStatus(errno, "open " + path);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoToStatus(errno, "fstat " + path);
  if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 077) != 0)
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s is not this server's lock file (mode %o, uid %d)", path, st.st_mode & 07777,
        st.st_uid));
  *held_elsewhere = false;
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) return ErrnoToStatus(errno, "flock " + path);
    *held_elsewhere = true;
  }
  return fd;
}

uint64_t kNoGeneration = 0;  // what an unpublished server's LoadGeneration() reads

}  // namespace

size_t SlotOfUuid(const Uuid& uuid) {
  return ((size_t{uuid[14]} << 8) | uuid[15]) & (kUuidSlots - 1);
}

std::string UuidToString(const std::array<uint8_t, 16>& u) {
  return absl::StrFormat(
      "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
      u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
      u[15]);
}

uint64_t ProcessStartTime(pid_t pid) {
  char state;
  uint64_t start = 0;
  if (pid <= 0 || !ReadProcStat(absl::StrFormat("/proc/%d/stat", pid), &state, &start))
    return 0;
  return start;
}

bool IsOwnerProcess(pid_t peer_pid, const BoundClient& client) {
  if (peer_pid <= 0) return false;
  if (client.owner_pidns == CurrentProcess().pidns) {
    if (peer_pid != client.owner_pid) return false;
  } else {
    // A client in a container: it recorded its pid as its own namespace numbers it.
    // The peer must live in exactly that namespace and be that pid there.
    if (PidNamespaceOf(absl::StrCat("/proc/", peer_pid, "/ns/pid").c_str()) !=
            client.owner_pidns ||
        InnermostPid(peer_pid) != client.owner_pid)
      return false;
  }
  // The pid alone could be reused; the start time (ticks since boot, the same in
  // every pid namespace) pins the process.
  return client.owner_start_time == 0 ||
         ProcessStartTime(peer_pid) == client.owner_start_time;
}

bool ProcessAlive(pid_t pid, uint64_t start_time) {
  if (pid <= 0) return false;
  char state;
  uint64_t start;
  if (ReadProcStat(absl::StrFormat("/proc/%d/stat", pid), &state, &start))
    return state != 'Z' && state != 'X' && start == start_time;
  // /proc hides it (hidepid) or is absent: kill(0) can still say whether the pid exists.
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

// ---- Construction ----

Broker::Broker(std::string runtime_dir, UniqueFd dirfd)
    : runtime_dir_(std::move(runtime_dir)),
      path_(runtime_dir_ + "/" + kSegmentName),
      dirfd_(std::move(dirfd)),
      generation_(&kNoGeneration) {}

Broker::Broker(std::string runtime_dir, Segment* segment, UniqueFd slots_fd, SlotTable* slots)
    : runtime_dir_(std::move(runtime_dir)),
      path_(runtime_dir_ + "/" + kSegmentName),
      segment_(segment),
      slots_fd_(std::move(slots_fd)),
      slots_(slots),
      generation_(&segment->record.generation) {}

Broker::~Broker() {
  if (segment_ != nullptr) ::munmap(segment_, sizeof(Segment));
  if (slots_ != nullptr) ::munmap(slots_, sizeof(SlotTable));
}

absl::StatusOr<std::unique_ptr<Broker>> Broker::CreateForServer(
    const std::string& runtime_dir) {
  if (runtime_dir.empty()) return absl::InvalidArgumentError("empty runtime dir");
  if (::mkdir(runtime_dir.c_str(), 0700) != 0 && errno != EEXIST)
    return ErrnoToStatus(errno, "mkdir " + runtime_dir);
  // O_NOFOLLOW: a symlink planted at the runtime dir must not redirect the broker.
  UniqueFd dirfd(
      ::open(runtime_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dirfd) return ErrnoToStatus(errno, "open runtime dir " + runtime_dir);
  struct stat dst;
  if (::fstat(dirfd.get(), &dst) != 0) return ErrnoToStatus(errno, "fstat " + runtime_dir);
  if ((dst.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    return absl::FailedPreconditionError(absl::StrFormat(
        "runtime dir %s is writable by group or others (mode %o): a client could replace "
        "the broker and the sockets (make it 0750 or 2750)",
        runtime_dir, dst.st_mode & 07777));
  if (dst.st_uid != ::geteuid() && dst.st_uid != 0)
    return absl::FailedPreconditionError(absl::StrFormat(
        "runtime dir %s is owned by uid %d, not by this server's uid %d or root", runtime_dir,
        dst.st_uid, ::geteuid()));
  return std::unique_ptr<Broker>(new Broker(runtime_dir, std::move(dirfd)));
}

absl::StatusOr<std::unique_ptr<Broker>> Broker::OpenForClient(
    const std::string& runtime_dir) {
  const std::string path = runtime_dir + "/" + kSegmentName;
  const std::string slots_path = runtime_dir + "/" + kSlotsName;
  // A server start withdraws the old record, then renames the slot file and then the
  // server file into place: a client that opened the old server file meanwhile sees a
  // slot file that does not match it, and looks again. A mismatch with a live record
  // that is still the one at `path` is no race: the files are bad.
  for (int attempt = 0;; ++attempt) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd) {
      if (errno == ENOENT || errno == ENOTDIR)
        return absl::NotFoundError("no broker at " + path + ": LOCALIO off");
      return ErrnoToStatus(errno, "open " + path);
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return ErrnoToStatus(errno, "fstat " + path);
    if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != sizeof(Segment))
      return absl::FailedPreconditionError(absl::StrFormat(
          "broker %s has %d bytes, expected %d (another format)", path, st.st_size,
          sizeof(Segment)));
    // Only its server may write the record: one others may write could be forged.
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
      return absl::FailedPreconditionError(absl::StrFormat(
          "broker %s is writable by others than its owner (mode %o)", path,
          st.st_mode & 07777));
    void* p = ::mmap(nullptr, sizeof(Segment), PROT_READ, MAP_SHARED, fd.get(), 0);
    if (p == MAP_FAILED) return ErrnoToStatus(errno, "mmap " + path);
    auto* seg = static_cast<Segment*>(p);
    struct Unmap {
      void* p;
      size_t size;
      ~Unmap() {
        if (p != nullptr) ::munmap(p, size);
      }
    } unmap_seg{p, sizeof(Segment)};
    RETURN_IF_ERROR(CheckHeader(*seg, path));
    const ino_t ino = st.st_ino;
    auto mismatch = [&](std::string why) -> absl::Status {
      struct stat now;
      const bool replaced = ::stat(path.c_str(), &now) != 0 || now.st_ino != ino;
      if (attempt < 4 && (replaced || Load(seg->record.state) != kRecLive)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(attempt));
        return absl::OkStatus();  // a start in progress: look again
      }
      return replaced ? absl::UnavailableError("broker files keep changing: " + why)
                      : absl::FailedPreconditionError(why);
    };

    UniqueFd slots_fd(::open(slots_path.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!slots_fd) {
      if (errno != ENOENT) return ErrnoToStatus(errno, "open " + slots_path);
      RETURN_IF_ERROR(mismatch("no " + slots_path));
      continue;
    }
    if (::fstat(slots_fd.get(), &st) != 0) return ErrnoToStatus(errno, "fstat " + slots_path);
    if (static_cast<uint64_t>(st.st_dev) != Load(seg->header.slots_dev) ||
        static_cast<uint64_t>(st.st_ino) != Load(seg->header.slots_ino)) {
      RETURN_IF_ERROR(mismatch(
          absl::StrFormat("%s is not the slot file of the record in %s", slots_path, path)));
      continue;
    }
    if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != sizeof(SlotTable))
      return absl::FailedPreconditionError(absl::StrFormat(
          "broker slot file %s has %d bytes, expected %d (truncated)", slots_path,
          st.st_size, sizeof(SlotTable)));
    if ((st.st_mode & S_IWOTH) != 0)
      return absl::FailedPreconditionError("broker slot file " + slots_path +
                                           " is world-writable");
    void* q = ::mmap(nullptr, sizeof(SlotTable), PROT_READ | PROT_WRITE, MAP_SHARED,
                     slots_fd.get(), 0);
    if (q == MAP_FAILED) return ErrnoToStatus(errno, "mmap " + slots_path);
    unmap_seg.p = nullptr;
    return std::unique_ptr<Broker>(new Broker(runtime_dir, seg, std::move(slots_fd),
                                              static_cast<SlotTable*>(q)));
  }
}

uint64_t Broker::BumpGeneration() const {
  return std::atomic_ref<uint64_t>(*generation_).fetch_add(1, std::memory_order_acq_rel) +
         1;
}

bool Broker::RecordAlive() const {
  return segment_ != nullptr && RecordAliveOf(segment_->record);
}

// ---- Server side ----

absl::Status Broker::PublishServer(const ServerRecord& record) {
  if (record.socket_path.empty() || record.socket_path.size() >= kMaxSocketPath ||
      record.socket_path.find('\0') != std::string::npos)
    return absl::InvalidArgumentError(
        absl::StrFormat("local socket path must be 1..%d bytes", kMaxSocketPath - 1));
  absl::MutexLock l(&mu_);
  if (!dirfd_ || publish_tried_)
    return absl::FailedPreconditionError("this broker already published a server record");
  publish_tried_ = true;
  InstanceId instance;
  RETURN_IF_ERROR(FillRandom(instance.data(), instance.size()));
  const Self self = CurrentProcess();

  bool locked_by_another = false;
  ASSIGN_OR_RETURN(UniqueFd lock,
                   LockRuntimeDir(dirfd_.get(), runtime_dir_, &locked_by_another));
  ASSIGN_OR_RETURN(const uint64_t generation,
                   TakeOverPrevious(dirfd_.get(), runtime_dir_, locked_by_another));
  // The slot file first: once the server file names it, clients may use it.
  ASSIGN_OR_RETURN(NewFile slots, NewFile::Create(dirfd_.get(), runtime_dir_, kSlotsName,
                                                  0660, sizeof(SlotTable)));
  struct stat sst;
  if (::fstat(slots.fd(), &sst) != 0) return ErrnoToStatus(errno, "fstat broker slots");
  RETURN_IF_ERROR(slots.Commit());
  ASSIGN_OR_RETURN(NewFile file, NewFile::Create(dirfd_.get(), runtime_dir_, kSegmentName,
                                                 0640, sizeof(Segment)));
  void* p =
      ::mmap(nullptr, sizeof(Segment), PROT_READ | PROT_WRITE, MAP_SHARED, file.fd(), 0);
  if (p == MAP_FAILED) return ErrnoToStatus(errno, "mmap " + path_);
  auto* seg = static_cast<Segment*>(p);
  // ftruncate gave zeros: every entry free. Nobody sees the file before Commit().
  Header& h = seg->header;
  Store(h.format_version, kFormatVersion);
  Store(h.slot_count, static_cast<uint32_t>(kUuidSlots));
  Store(h.segment_size, sizeof(Segment));
  Store(h.slots_dev, static_cast<uint64_t>(sst.st_dev));
  Store(h.slots_ino, static_cast<uint64_t>(sst.st_ino));
  Store(h.slots_size, sizeof(SlotTable));
  Record& rec = seg->record;
  Store(rec.ops_version, record.ops_version);
  Store(rec.capabilities, record.capabilities);
  Store(rec.pid, static_cast<int32_t>(self.pid));
  Store(rec.start_time, self.start_time);
  Store(rec.pidns, self.pidns);
  Store(rec.generation, generation);
  Store(rec.refcount, 0u);
  StoreUuid(rec.instance_id, instance);
  StoreString(rec.socket_path, record.socket_path);
  Store(rec.state, kRecLive);
  Store(h.magic, kMagic);
  if (absl::Status s = file.Commit(); !s.ok()) {
    ::munmap(p, sizeof(Segment));
    return s;
  }
  segment_ = seg;
  generation_ = &rec.generation;
  slots_fd_ = slots.ReleaseFd();
  lock_fd_ = std::move(lock);
  published_ = instance;
  bindings_.assign(kUuidSlots, std::nullopt);
  bound_count_ = 0;
  LOG_INFO("broker %s: published localnfsd pid %d, socket %s", path_, self.pid,
           record.socket_path);
  return absl::OkStatus();
}

void Broker::WriteEntryLocked(size_t index, const BoundClient* client) const {
  Entry& e = segment_->entries[index];
  uint32_t seq = Load(e.seq);
  if ((seq & 1) != 0) ++seq;
  Store(e.seq, seq + 1);  // odd: being written
  // The stores below are release stores: none is visible before the odd sequence.
  if (client != nullptr) {
    Store(e.export_id, client->export_id);
    Store(e.owner_pid, static_cast<int32_t>(client->owner_pid));
    Store(e.owner_start, client->owner_start_time);
    Store(e.owner_pidns, client->owner_pidns);
    Store(e.generation, LoadGeneration());
    StoreUuid(e.uuid, client->uuid);
    StoreString(e.domain, client->domain);
    Store(e.state, kEntryBound);
  } else {
    Store(e.state, kEntryFree);
    Store(e.owner_pid, 0);
    StoreUuid(e.uuid, Uuid{});
  }
  Store(e.seq, seq + 2);
}

void Broker::DropBindingLocked(size_t index, const BoundClient& expected) const {
  std::optional<BoundClient>& b = bindings_[index];
  if (!b || b->uuid != expected.uuid || b->owner_pid != expected.owner_pid ||
      b->owner_start_time != expected.owner_start_time)
    return;  // replaced meanwhile
  b.reset();
  WriteEntryLocked(index, nullptr);
  --bound_count_;
  Store(segment_->record.refcount, bound_count_);
}

void Broker::Withdraw() {
  absl::MutexLock l(&mu_);
  if (!published_.has_value()) return;
  Record& rec = segment_->record;
  Store(rec.state, kRecWithdrawn);
  for (size_t i = 0; i < bindings_.size(); ++i) {
    if (!bindings_[i]) continue;
    bindings_[i].reset();
    WriteEntryLocked(i, nullptr);
  }
  bound_count_ = 0;
  Store(rec.refcount, 0u);
  BumpGeneration();
  published_.reset();
  lock_fd_.reset();  // the next server may start
}

bool Broker::BindUuid(const Uuid& uuid, std::string_view domain, uint32_t export_id) {
  if (domain.size() >= kMaxDomain || domain.find('\0') != std::string_view::npos) {
    LOG_WARNING("broker: domain of %d bytes cannot be bound", domain.size());
    return false;
  }
  if (!slots_fd_ || slots_ != nullptr) return false;  // unpublished, or a client's Broker
  // Outside the mutex: a pread of the client's slot and a /proc read of its owner.
  const size_t index = SlotOfUuid(uuid);
  const std::optional<SlotIdentity> slot = PreadSlot(slots_fd_.get(), index);
  if (!slot || TagOf(slot->word) != kTagRegistered || slot->uuid != uuid) return false;
  BoundClient client{uuid, std::string(domain), export_id, PidOf(slot->word),
                     slot->owner_start, slot->owner_pidns};
  if (!OwnerAlive(client.owner_pid, client.owner_start_time, client.owner_pidns))
    return false;
  absl::MutexLock l(&mu_);
  if (!published_.has_value()) return false;
  std::optional<BoundClient>& b = bindings_[index];
  if (b && b->uuid == uuid) return false;  // bound already: no longer pending
  // A binding of another uuid in this slot is stale: its client let the slot go.
  if (!b) ++bound_count_;
  b = std::move(client);
  WriteEntryLocked(index, &*b);
  Store(segment_->record.refcount, bound_count_);
  return true;
}

void Broker::UnbindUuid(const Uuid& uuid) {
  absl::MutexLock l(&mu_);
  if (!published_.has_value()) return;
  const size_t index = SlotOfUuid(uuid);
  if (!bindings_[index] || bindings_[index]->uuid != uuid) return;
  DropBindingLocked(index, *bindings_[index]);
  BumpGeneration();
}

void Broker::InvalidateClients() {
  absl::MutexLock l(&mu_);
  if (!published_.has_value()) return;
  for (size_t i = 0; i < bindings_.size(); ++i) {
    if (!bindings_[i]) continue;
    bindings_[i].reset();
    WriteEntryLocked(i, nullptr);
  }
  bound_count_ = 0;
  Store(segment_->record.refcount, 0u);
  BumpGeneration();
}

std::optional<BoundClient> Broker::LookupBound(const Uuid& uuid) const {
  const size_t index = SlotOfUuid(uuid);
  std::optional<BoundClient> bound;
  {
    absl::MutexLock l(&mu_);
    if (!published_.has_value() || !bindings_[index] || bindings_[index]->uuid != uuid)
      return std::nullopt;
    bound = bindings_[index];
  }
  const std::optional<SlotIdentity> slot = PreadSlot(slots_fd_.get(), index);
  if (slot && SlotHolds(*slot, *bound)) return bound;
  // Released by its client, or its slot overwritten: the slot took the binding away.
  absl::MutexLock l(&mu_);
  DropBindingLocked(index, *bound);
  return std::nullopt;
}

std::vector<BoundClient> Broker::ListBound() const {
  std::vector<std::pair<size_t, BoundClient>> bound;
  {
    absl::MutexLock l(&mu_);
    if (!published_.has_value()) return {};
    for (size_t i = 0; i < bindings_.size(); ++i)
      if (bindings_[i]) bound.emplace_back(i, *bindings_[i]);
  }
  if (bound.empty()) return {};
  const std::vector<Slot> slots = PreadSlots(slots_fd_.get());
  std::vector<BoundClient> out;
  absl::MutexLock l(&mu_);
  for (auto& [index, client] : bound) {
    if (index < slots.size() && SlotHolds(IdentityOf(slots[index]), client)) {
      out.push_back(std::move(client));
    } else {
      DropBindingLocked(index, client);
    }
  }
  return out;
}

int Broker::ReapDeadClients() {
  std::vector<std::pair<size_t, BoundClient>> bound;
  {
    absl::MutexLock l(&mu_);
    if (!published_.has_value()) return 0;
    for (size_t i = 0; i < bindings_.size(); ++i)
      if (bindings_[i]) bound.emplace_back(i, *bindings_[i]);
  }
  if (bound.empty()) return 0;
  const std::vector<Slot> slots = PreadSlots(slots_fd_.get());
  std::vector<std::pair<size_t, BoundClient>> gone;
  for (auto& [index, client] : bound) {
    if (index < slots.size() && SlotHolds(IdentityOf(slots[index]), client) &&
        OwnerAlive(client.owner_pid, client.owner_start_time, client.owner_pidns))
      continue;
    gone.emplace_back(index, std::move(client));
  }
  if (gone.empty()) return 0;
  absl::MutexLock l(&mu_);
  for (const auto& [index, client] : gone) DropBindingLocked(index, client);
  LOG_INFO("broker %s: dropped %d binding(s) of clients that are gone", path_, gone.size());
  return static_cast<int>(gone.size());
}

std::optional<InstanceId> Broker::PublishedInstance() const {
  absl::MutexLock l(&mu_);
  return published_;
}

// ---- Client side ----

absl::StatusOr<Uuid> Broker::UuidBegin() {
  if (slots_ == nullptr)
    return absl::FailedPreconditionError("uuid_begin needs a client's broker");
  const Self self = CurrentProcess();
  const uint64_t claiming = SlotWord(kTagClaiming, self.pid);
  for (int attempt = 0; attempt < 8; ++attempt) {
    uint16_t start_bits;
    RETURN_IF_ERROR(FillRandom(reinterpret_cast<uint8_t*>(&start_bits), sizeof start_bits));
    const size_t start = start_bits;
    // A free slot; failing that, one whose claimant is gone or whose word is garbage.
    std::optional<size_t> index;
    for (int pass = 0; pass < 2 && !index; ++pass) {
      for (size_t k = 0; k < kUuidSlots && !index; ++k) {
        const size_t i = (start + k) & (kUuidSlots - 1);
        Slot& s = slots_->slots[i];
        const uint64_t word = Load(s.word);
        bool take = word == 0;
        if (!take && pass == 1) {
          if (TagOf(word) == kTagRegistered) {
            take = Load(s.owner_pidns) == self.pidns &&
                   !ProcessAlive(PidOf(word), Load(s.owner_start));
          } else if (TagOf(word) == kTagClaiming) {
            // Its other fields may still be the previous owner's: judge by the pid
            // alone. A claimant of another pid namespace whose pid is free here loses
            // its claim and takes another slot (its final CAS fails).
            take = PidOf(word) <= 0 || (::kill(PidOf(word), 0) != 0 && errno == ESRCH);
          } else {
            take = true;  // no valid state: scribbled
          }
        }
        if (take && Cas(s.word, word, claiming)) index = i;
      }
    }
    if (!index)
      return absl::ResourceExhaustedError(absl::StrFormat(
          "broker %s: all %d uuid slots are held by live clients", path_, kUuidSlots));
    Uuid uuid;
    RETURN_IF_ERROR(FillRandom(uuid.data(), uuid.size()));
    uuid[6] = (uuid[6] & 0x0f) | 0x40;  // version 4
    uuid[8] = (uuid[8] & 0x3f) | 0x80;  // RFC 4122 variant
    // The last bits name the slot (SlotOfUuid); the rest stay random.
    const size_t tail = (((size_t{uuid[14]} << 8) | uuid[15]) & ~(kUuidSlots - 1)) | *index;
    uuid[14] = static_cast<uint8_t>(tail >> 8);
    uuid[15] = static_cast<uint8_t>(tail);
    Slot& s = slots_->slots[*index];
    Store(s.owner_start, self.start_time);
    Store(s.owner_pidns, self.pidns);
    StoreUuid(s.uuid, uuid);
    for (auto& kind : s.local_io)
      for (uint64_t& v : kind) Store(v, uint64_t{0});
    for (uint64_t& v : s.reserved) Store(v, uint64_t{0});
    if (Cas(s.word, claiming, SlotWord(kTagRegistered, self.pid))) return uuid;
    // Our half-done claim was taken over (judged gone, or scribbled): start again.
  }
  return absl::UnavailableError("broker " + path_ + ": uuid slots keep being overwritten");
}

absl::StatusOr<Binding> Broker::UuidEnd(const Uuid& uuid) {
  if (slots_ == nullptr) return absl::FailedPreconditionError("uuid_end needs a client's broker");
  const Self self = CurrentProcess();
  const size_t index = SlotOfUuid(uuid);
  const Slot& s = slots_->slots[index];
  if (Load(s.word) != SlotWord(kTagRegistered, self.pid) || LoadUuid(s.uuid) != uuid)
    return absl::NotFoundError("uuid " + UuidToString(uuid) + " is not in the broker");
  EntryCopy e;
  if (!ReadEntry(segment_->entries[index], &e) || e.state != kEntryBound || e.uuid != uuid ||
      e.owner_pid != self.pid || e.owner_start != self.start_time)
    return absl::NotFoundError("uuid " + UuidToString(uuid) +
                               " was not bound by the server: not local");
  const Record& rec = segment_->record;
  if (Load(rec.state) != kRecLive || e.generation != LoadGeneration())
    return absl::NotFoundError("uuid " + UuidToString(uuid) +
                               " is bound to a server record that is gone");
  Binding binding;
  if (!LoadString(rec.socket_path, &binding.socket_path) || binding.socket_path.empty())
    return absl::FailedPreconditionError("broker " + path_ + ": corrupt socket path");
  binding.instance_id = LoadUuid(rec.instance_id);
  binding.generation = e.generation;
  binding.capabilities = Load(rec.capabilities);
  binding.ops_version = Load(rec.ops_version);
  binding.export_id = e.export_id;
  binding.slot_index = index;
  return binding;
}

void Broker::CountLocalIo(const Binding& binding, LocalIoKind kind, uint64_t bytes) {
  if (slots_ == nullptr || binding.slot_index >= kUuidSlots) return;
  uint64_t(&counts)[2] = slots_->slots[binding.slot_index].local_io[static_cast<int>(kind)];
  std::atomic_ref<uint64_t>(counts[0]).fetch_add(1, std::memory_order_relaxed);
  std::atomic_ref<uint64_t>(counts[1]).fetch_add(bytes, std::memory_order_relaxed);
}

void Broker::UuidRelease(const Uuid& uuid) {
  if (slots_ == nullptr) return;
  const Self self = CurrentProcess();
  Slot& s = slots_->slots[SlotOfUuid(uuid)];
  const uint64_t mine = SlotWord(kTagRegistered, self.pid);
  if (Load(s.word) != mine || LoadUuid(s.uuid) != uuid || Load(s.owner_start) != self.start_time)
    return;
  Cas(s.word, mine, 0);
}

bool Broker::ServerAlive() const { return RecordAlive(); }

// ---- Both sides ----

absl::StatusOr<ServerInfo> Broker::ReadServer() const {
  if (segment_ == nullptr)
    return absl::FailedPreconditionError("broker " + path_ + ": no record published");
  const Record& rec = segment_->record;
  ServerInfo info;
  const uint32_t state = Load(rec.state);
  if (state != kRecLive && state != kRecWithdrawn)
    return absl::FailedPreconditionError("broker " + path_ + ": corrupt record state");
  if (!LoadString(rec.socket_path, &info.socket_path))
    return absl::FailedPreconditionError("broker " + path_ + ": corrupt socket path");
  info.state = static_cast<RecordState>(state);
  info.ops_version = Load(rec.ops_version);
  info.capabilities = Load(rec.capabilities);
  info.pid = Load(rec.pid);
  info.start_time = Load(rec.start_time);
  info.instance_id = LoadUuid(rec.instance_id);
  info.generation = LoadGeneration();
  info.refcount = Load(rec.refcount);
  info.alive = RecordAliveOf(rec);
  return info;
}

absl::StatusOr<std::vector<SlotInfo>> Broker::ListSlots() const {
  if (!slots_fd_ || segment_ == nullptr)
    return absl::FailedPreconditionError("broker " + path_ + ": no record published");
  const std::vector<Slot> slots = PreadSlots(slots_fd_.get());
  const Record& rec = segment_->record;
  const bool live = Load(rec.state) == kRecLive;
  std::vector<SlotInfo> out;
  for (size_t i = 0; i < slots.size(); ++i) {
    const Slot& s = slots[i];
    if (TagOf(s.word) != kTagRegistered) continue;  // free, being claimed, or garbage
    SlotInfo info;
    info.index = i;
    info.state = SlotState::kPending;
    memcpy(info.uuid.data(), s.uuid, info.uuid.size());
    info.owner_pid = PidOf(s.word);
    info.owner_start_time = s.owner_start;
    for (int k = 0; k < 3; ++k) {
      info.local_io[k].calls = s.local_io[k][0];
      info.local_io[k].bytes = s.local_io[k][1];
    }
    EntryCopy e;
    if (live && ReadEntry(segment_->entries[i], &e) && e.state == kEntryBound &&
        e.uuid == info.uuid && e.owner_pid == info.owner_pid && e.domain_ok) {
      info.state = SlotState::kBound;
      info.instance_id = LoadUuid(rec.instance_id);
      info.domain = std::move(e.domain);
      info.export_id = e.export_id;
    }
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace localnfs::broker
