#include "common/broker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <type_traits>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "common/status.h"
#include "common/tsan.h"
#include "common/unique_fd.h"

namespace localnfs::broker {
namespace {

// "LNFSBRKR" read as a little-endian u64.
constexpr uint64_t kMagic = 0x524b5242'53464e4cULL;

// Record states beyond the public ones are transient: seen only while the mutex is held,
// or after its holder died mid-update.
constexpr uint32_t kRecEmpty = static_cast<uint32_t>(RecordState::kEmpty);
constexpr uint32_t kRecLive = static_cast<uint32_t>(RecordState::kLive);
constexpr uint32_t kRecWithdrawn = static_cast<uint32_t>(RecordState::kWithdrawn);
constexpr uint32_t kRecPublishing = 3;
constexpr uint32_t kRecWithdrawing = 4;

constexpr uint32_t kSlotFree = static_cast<uint32_t>(SlotState::kFree);
constexpr uint32_t kSlotPending = static_cast<uint32_t>(SlotState::kPending);
constexpr uint32_t kSlotBound = static_cast<uint32_t>(SlotState::kBound);
constexpr uint32_t kSlotClaiming = 3;
constexpr uint32_t kSlotBinding = 4;
constexpr uint32_t kSlotFreeing = 5;

static_assert(std::atomic_ref<uint32_t>::is_always_lock_free);
static_assert(std::atomic_ref<uint64_t>::is_always_lock_free);
static_assert(std::atomic_ref<int32_t>::is_always_lock_free);

// The ops-table record. Scalars are accessed only through Load/Store (atomic_ref);
// byte arrays only under the mutex.
struct Record {
  uint32_t state;
  uint32_t ops_version;
  uint64_t capabilities;
  int32_t pid;
  uint32_t refcount;
  uint64_t start_time;
  uint64_t pidns;
  uint64_t generation;
  uint8_t instance_id[16];
  char socket_path[kMaxSocketPath];
};

struct Slot {
  uint32_t state;  // first: everything after it is cleared when the slot is freed
  uint32_t export_id;
  int32_t owner_pid;
  uint32_t reserved;
  uint64_t owner_start;
  uint64_t owner_pidns;
  uint64_t bound_generation;
  uint8_t uuid[16];
  uint8_t instance_id[16];
  char domain[kMaxDomain];
  // Client-maintained LOCALIO counters (CountLocalIo), indexed by LocalIoKind; each
  // pair is (calls, bytes). Informational only: nothing is decided from them.
  uint64_t local_io[3][2];
};

template <class T>
T Load(const T& field) {
  static_assert(std::is_integral_v<T>);
  return std::atomic_ref<T>(const_cast<T&>(field)).load(std::memory_order_acquire);
}
template <class T>
void Store(T& field, std::type_identity_t<T> value) {
  std::atomic_ref<T>(field).store(value, std::memory_order_release);
}

template <size_t N>
bool Equal(const uint8_t (&a)[N], const std::array<uint8_t, N>& b) {
  return memcmp(a, b.data(), N) == 0;
}
template <size_t N>
std::array<uint8_t, N> ToArray(const uint8_t (&a)[N]) {
  std::array<uint8_t, N> out;
  memcpy(out.data(), a, N);
  return out;
}

// Copies a NUL-terminated string out of a fixed array in the segment. Copies first and
// measures the copy, so a concurrent scribbler cannot change the length under us.
template <size_t N>
bool ReadBoundedString(const char (&field)[N], std::string* out) {
  char copy[N];
  memcpy(copy, field, N);
  size_t len = strnlen(copy, N);
  if (len == N) return false;  // no NUL within the array: corrupt
  out->assign(copy, len);
  return true;
}
template <size_t N>
void WriteBoundedString(char (&field)[N], std::string_view value) {
  memset(field, 0, N);
  memcpy(field, value.data(), std::min(value.size(), N - 1));
}

void ClearSlotFields(Slot& slot) {
  memset(reinterpret_cast<char*>(&slot) + offsetof(Slot, export_id), 0,
         sizeof(Slot) - offsetof(Slot, export_id));
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

// A server in another pid namespace is alive while its local socket accepts.
bool SocketAnswers(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
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

// The shared layout. Fixed size; every party checks magic, version, slot count and the
// file size before touching anything else.
struct internal::Segment {
  uint64_t magic;  // stored last at initialisation
  uint32_t format_version;
  uint32_t slot_count;
  uint64_t segment_size;
  uint64_t reserved[5];
  alignas(64) pthread_mutex_t mutex;
  alignas(64) Record record;
  alignas(64) Slot slots[kUuidSlots];
};

static_assert(std::is_trivially_copyable_v<Record> && std::is_trivially_copyable_v<Slot>);
static_assert(offsetof(Slot, state) == 0);
// The header and the mutex fill the first 128 bytes; broker_test fuzzes everything after.
static_assert(offsetof(internal::Segment, record) == 128);
static_assert(offsetof(Record, generation) % alignof(uint64_t) == 0);
static_assert(offsetof(Slot, owner_start) % alignof(uint64_t) == 0);
static_assert(sizeof(Slot) % alignof(uint64_t) == 0);

namespace {

using internal::Segment;

absl::Status InitSegment(Segment* seg) {
  memset(seg, 0, sizeof(Segment));
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  absl::Cleanup destroy_attr = [&attr] { pthread_mutexattr_destroy(&attr); };
  if (int rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED))
    return ErrnoToStatus(rc, "pthread_mutexattr_setpshared");
  if (int rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST))
    return ErrnoToStatus(rc, "pthread_mutexattr_setrobust");
  if (int rc = pthread_mutex_init(&seg->mutex, &attr))
    return ErrnoToStatus(rc, "pthread_mutex_init");
  seg->format_version = kFormatVersion;
  seg->slot_count = kUuidSlots;
  seg->segment_size = sizeof(Segment);
  Store(seg->record.state, kRecEmpty);
  Store(seg->magic, kMagic);
  return absl::OkStatus();
}

// Maps `fd` after checking that it is a regular file of exactly the segment's size;
// then checks the header. Never reads past the checked size.
absl::StatusOr<Segment*> MapAndValidate(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoToStatus(errno, "fstat " + path);
  if (!S_ISREG(st.st_mode))
    return absl::FailedPreconditionError(
        absl::StrFormat("broker segment %s is not a regular file", path));
  if (static_cast<uint64_t>(st.st_size) != sizeof(Segment))
    return absl::FailedPreconditionError(absl::StrFormat(
        "broker segment %s has %d bytes, expected %d (truncated or another format)", path,
        st.st_size, sizeof(Segment)));
  void* p = ::mmap(nullptr, sizeof(Segment), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return ErrnoToStatus(errno, "mmap " + path);
  auto* seg = static_cast<Segment*>(p);
  absl::Status bad;
  if (Load(seg->magic) != kMagic) {
    bad = absl::FailedPreconditionError(
        absl::StrFormat("broker segment %s has a bad magic number", path));
  } else if (Load(seg->format_version) != kFormatVersion) {
    bad = absl::FailedPreconditionError(
        absl::StrFormat("broker segment %s has format version %d, this build speaks %d",
                        path, Load(seg->format_version), kFormatVersion));
  } else if (Load(seg->slot_count) != kUuidSlots ||
             Load(seg->segment_size) != sizeof(Segment)) {
    bad = absl::FailedPreconditionError(
        absl::StrFormat("broker segment %s has an inconsistent header", path));
  }
  if (!bad.ok()) {
    ::munmap(p, sizeof(Segment));
    return bad;
  }
  return seg;
}

// Builds a fresh segment in a temporary file and moves it into place, so nobody ever
// maps a half-initialised one. `replace` renames over an existing (bad) segment;
// otherwise link() fails with EEXIST when another server created one first
// (→ kAlreadyExists, the caller opens that one).
absl::StatusOr<Segment*> CreateSegment(int dirfd, const std::string& path, bool replace) {
  std::string tmp = absl::StrFormat("%s.new.%d", kSegmentName, ::getpid());
  ::unlinkat(dirfd, tmp.c_str(), 0);
  UniqueFd fd(::openat(dirfd, tmp.c_str(),
                       O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return ErrnoToStatus(errno, "create " + path + ".new");
  absl::Cleanup unlink_tmp = [&] { ::unlinkat(dirfd, tmp.c_str(), 0); };
  // The mode must not depend on the umask: clients of the group need rw.
  if (::fchmod(fd.get(), 0660) != 0) return ErrnoToStatus(errno, "fchmod " + path);
  if (::ftruncate(fd.get(), sizeof(Segment)) != 0)
    return ErrnoToStatus(errno, "ftruncate " + path);
  void* p =
      ::mmap(nullptr, sizeof(Segment), PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return ErrnoToStatus(errno, "mmap " + path);
  auto* seg = static_cast<Segment*>(p);
  absl::Status s = InitSegment(seg);
  if (s.ok()) {
    int rc = replace ? ::renameat(dirfd, tmp.c_str(), dirfd, kSegmentName)
                     : ::linkat(dirfd, tmp.c_str(), dirfd, kSegmentName, 0);
    if (rc != 0) {
      s = errno == EEXIST ? absl::AlreadyExistsError(path)
                          : ErrnoToStatus(errno, "publish " + path);
    }
  }
  if (!s.ok()) {
    ::munmap(p, sizeof(Segment));
    return s;
  }
  return seg;
}

}  // namespace

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

Broker::Broker(std::string runtime_dir, std::string path, Segment* segment)
    : runtime_dir_(std::move(runtime_dir)),
      path_(std::move(path)),
      segment_(segment),
      generation_(&segment->record.generation) {}

Broker::~Broker() { ::munmap(segment_, sizeof(Segment)); }

absl::StatusOr<std::unique_ptr<Broker>> Broker::CreateForServer(
    const std::string& runtime_dir) {
  if (runtime_dir.empty()) return absl::InvalidArgumentError("empty runtime dir");
  if (::mkdir(runtime_dir.c_str(), 0700) != 0 && errno != EEXIST)
    return ErrnoToStatus(errno, "mkdir " + runtime_dir);
  // O_NOFOLLOW: a symlink planted at the runtime dir must not redirect the segment.
  UniqueFd dirfd(
      ::open(runtime_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dirfd) return ErrnoToStatus(errno, "open runtime dir " + runtime_dir);
  struct stat dst;
  if (::fstat(dirfd.get(), &dst) != 0) return ErrnoToStatus(errno, "fstat " + runtime_dir);
  if ((dst.st_mode & S_IWOTH) != 0 && (dst.st_mode & S_ISVTX) == 0)
    return absl::FailedPreconditionError(absl::StrFormat(
        "runtime dir %s is world-writable: anyone could replace the broker", runtime_dir));
  const std::string path = runtime_dir + "/" + kSegmentName;

  for (int attempt = 0; attempt < 4; ++attempt) {
    UniqueFd fd(::openat(dirfd.get(), kSegmentName, O_RDWR | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
      if (errno != ENOENT) return ErrnoToStatus(errno, "open " + path);
      absl::StatusOr<Segment*> seg = CreateSegment(dirfd.get(), path, /*replace=*/false);
      if (seg.ok()) return std::unique_ptr<Broker>(new Broker(runtime_dir, path, *seg));
      if (absl::IsAlreadyExists(seg.status())) continue;  // another server won the race
      return seg.status();
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return ErrnoToStatus(errno, "fstat " + path);
    if (st.st_uid != ::geteuid())
      return absl::FailedPreconditionError(absl::StrFormat(
          "broker segment %s is owned by uid %d, not by this server's uid %d", path,
          st.st_uid, ::geteuid()));
    absl::StatusOr<Segment*> seg = MapAndValidate(fd.get(), path);
    if (seg.ok()) {
      if (::fchmod(fd.get(), 0660) != 0) {
        ::munmap(*seg, sizeof(Segment));
        return ErrnoToStatus(errno, "fchmod " + path);
      }
      auto broker = std::unique_ptr<Broker>(new Broker(runtime_dir, path, *seg));
      // A mutex that can never be taken again (ENOTRECOVERABLE) makes the segment
      // useless: treat it like a bad one.
      absl::Status lock = broker->LockSegment();
      if (lock.ok()) {
        broker->UnlockSegment();
        return broker;
      }
      if (!absl::IsDataLoss(lock)) return lock;
      seg = lock;
    } else if (!absl::IsFailedPrecondition(seg.status())) {
      return seg.status();
    }
    LOG_WARNING("replacing bad broker segment: %s", seg.status().ToString());
    seg = CreateSegment(dirfd.get(), path, /*replace=*/true);
    if (!seg.ok()) return seg.status();
    return std::unique_ptr<Broker>(new Broker(runtime_dir, path, *seg));
  }
  return absl::UnavailableError("broker segment " + path + " keeps changing under us");
}

absl::StatusOr<std::unique_ptr<Broker>> Broker::OpenForClient(
    const std::string& runtime_dir) {
  const std::string path = runtime_dir + "/" + kSegmentName;
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT || errno == ENOTDIR)
      return absl::NotFoundError("no broker at " + path + ": LOCALIO off");
    return ErrnoToStatus(errno, "open " + path);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoToStatus(errno, "fstat " + path);
  // A segment anyone can write is a segment anyone can forge: do not trust its server.
  if ((st.st_mode & S_IWOTH) != 0)
    return absl::FailedPreconditionError("broker segment " + path + " is world-writable");
  ASSIGN_OR_RETURN(Segment * seg, MapAndValidate(fd.get(), path));
  return std::unique_ptr<Broker>(new Broker(runtime_dir, path, seg));
}

// ---- Locking and repair ----

absl::Status Broker::LockSegment() const {
  timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += kLockTimeout.count();
  int rc;
  // gcc 12's ThreadSanitizer does not intercept pthread_mutex_clocklock, only the
  // unlock: without the annotation every UnlockSegment() was "unlock of an unlocked
  // mutex" and the segment's fields looked unprotected (common/tsan.h; no-op otherwise).
  tsan::MutexPreLock(&segment_->mutex);
  do {
    rc = pthread_mutex_clocklock(&segment_->mutex, CLOCK_MONOTONIC, &deadline);
  } while (rc == EINTR);
  tsan::MutexPostLock(&segment_->mutex, rc == 0 || rc == EOWNERDEAD);
  switch (rc) {
    case 0:
      return absl::OkStatus();
    case EOWNERDEAD:
      // The previous holder died inside an update. We own the mutex now; make the
      // segment consistent before declaring the mutex so.
      LOG_WARNING("broker %s: lock holder died; repairing the segment", path_);
      RepairLocked();
      pthread_mutex_consistent(&segment_->mutex);
      return absl::OkStatus();
    case ENOTRECOVERABLE:
      return absl::DataLossError("broker segment " + path_ + ": mutex is not recoverable");
    case ETIMEDOUT:
      LOG_ERROR("broker %s: lock not acquired within %d s", path_, kLockTimeout.count());
      return absl::UnavailableError("broker segment " + path_ + ": lock timed out");
    default:
      LOG_ERROR("broker %s: pthread_mutex_clocklock: %s", path_, strerror(rc));
      return ErrnoToStatus(rc, "lock broker segment " + path_);
  }
}

void Broker::UnlockSegment() const { pthread_mutex_unlock(&segment_->mutex); }

uint64_t Broker::BumpGeneration() const {
  return std::atomic_ref<uint64_t>(*generation_).fetch_add(1, std::memory_order_acq_rel) +
         1;
}

// Brings every transient or impossible state back to a consistent one. Idempotent, so a
// repairer that dies too just leaves the work to the next locker.
void Broker::RepairLocked() const {
  Record& rec = segment_->record;
  uint32_t rstate = Load(rec.state);
  bool drop_bindings = false;
  if (rstate == kRecPublishing) {
    // The publisher died before its record went live: nobody can have bound to it.
    Store(rec.state, kRecEmpty);
  } else if (rstate != kRecEmpty && rstate != kRecLive && rstate != kRecWithdrawn) {
    // Withdrawing (or garbage): finish the withdrawal.
    Store(rec.state, kRecWithdrawn);
    drop_bindings = true;
  }
  const bool live = Load(rec.state) == kRecLive;
  const InstanceId instance = ToArray(rec.instance_id);
  uint32_t bound = 0;
  int repaired = 0;
  for (size_t i = 0; i < kUuidSlots; ++i) {
    Slot& slot = segment_->slots[i];
    uint32_t s = Load(slot.state);
    if (s == kSlotFree || s == kSlotPending) continue;
    if (s == kSlotBound && live && Equal(slot.instance_id, instance)) {
      ++bound;
      continue;
    }
    // Half-claimed, half-bound, half-freed, bound to a record that is gone, or garbage.
    if (s == kSlotBound) drop_bindings = true;
    Store(slot.state, kSlotFreeing);
    ClearSlotFields(slot);
    Store(slot.state, kSlotFree);
    ++repaired;
  }
  Store(rec.refcount, bound);
  if (drop_bindings) BumpGeneration();
  if (repaired > 0) LOG_WARNING("broker %s: freed %d inconsistent slots", path_, repaired);
}

bool Broker::RecordAliveLocked() const {
  const Record& rec = segment_->record;
  if (Load(rec.state) != kRecLive) return false;
  if (Load(rec.pidns) != CurrentProcess().pidns) {
    std::string socket_path;
    return ReadBoundedString(rec.socket_path, &socket_path) && SocketAnswers(socket_path);
  }
  return ProcessAlive(Load(rec.pid), Load(rec.start_time));
}

bool Broker::OwnsLiveRecordLocked() const {
  const Record& rec = segment_->record;
  return published_.has_value() && Load(rec.state) == kRecLive &&
         Equal(rec.instance_id, *published_);
}

// The record's process is gone: whatever its count, it is dead.
void Broker::ReapRecordLocked() const {
  Record& rec = segment_->record;
  LOG_WARNING("broker %s: reaping the record of dead localnfsd pid %d (%d bound uuids)",
              path_, Load(rec.pid), Load(rec.refcount));
  Store(rec.state, kRecWithdrawing);
  UnbindRecordLocked(ToArray(rec.instance_id));
  BumpGeneration();
  Store(rec.state, kRecWithdrawn);
}

// Frees every slot bound to `instance`; the record's references go with them.
int Broker::UnbindRecordLocked(const InstanceId& instance) const {
  int n = 0;
  for (size_t i = 0; i < kUuidSlots; ++i) {
    Slot& slot = segment_->slots[i];
    if (Load(slot.state) == kSlotBound && Equal(slot.instance_id, instance)) {
      FreeSlotLocked(i);
      ++n;
    }
  }
  Store(segment_->record.refcount, 0u);
  return n;
}

void Broker::FreeSlotLocked(size_t index) const {
  Slot& slot = segment_->slots[index];
  Record& rec = segment_->record;
  const Uuid uuid = ToArray(slot.uuid);
  if (Load(slot.state) == kSlotBound && Load(rec.state) == kRecLive &&
      Equal(slot.instance_id, ToArray(rec.instance_id))) {
    uint32_t refs = Load(rec.refcount);
    Store(rec.refcount, refs > 0 ? refs - 1 : 0);
  }
  Store(slot.state, kSlotFreeing);
  ClearSlotFields(slot);
  Store(slot.state, kSlotFree);
  if (auto it = bindings_.find(uuid); it != bindings_.end() && it->second.slot == index)
    bindings_.erase(it);
}

std::optional<size_t> Broker::FindSlotLocked(const Uuid& uuid) const {
  for (size_t i = 0; i < kUuidSlots; ++i) {
    const Slot& slot = segment_->slots[i];
    if (Load(slot.state) != kSlotFree && Equal(slot.uuid, uuid)) return i;
  }
  return std::nullopt;
}

bool Broker::PrivateBindingValidLocked(const PrivateBinding& b) const {
  if (!OwnsLiveRecordLocked() || b.slot >= kUuidSlots) return false;
  const Slot& slot = segment_->slots[b.slot];
  return Load(slot.state) == kSlotBound && Equal(slot.uuid, b.client.uuid) &&
         Equal(slot.instance_id, *published_) &&
         Load(slot.owner_pid) == b.client.owner_pid &&
         Load(slot.owner_start) == b.client.owner_start_time;
}

// ---- Server side ----

absl::Status Broker::PublishServer(const ServerRecord& record) {
  if (record.socket_path.empty() || record.socket_path.size() >= kMaxSocketPath ||
      record.socket_path.find('\0') != std::string::npos)
    return absl::InvalidArgumentError(
        absl::StrFormat("local socket path must be 1..%d bytes", kMaxSocketPath - 1));
  InstanceId instance;
  RETURN_IF_ERROR(FillRandom(instance.data(), instance.size()));
  const Self self = CurrentProcess();

  RETURN_IF_ERROR(LockSegment());
  absl::Cleanup unlock = [this] { UnlockSegment(); };
  if (published_.has_value())
    return absl::FailedPreconditionError("this broker already published a server record");
  Record& rec = segment_->record;
  if (Load(rec.state) == kRecLive) {
    if (RecordAliveLocked())
      return absl::FailedPreconditionError(absl::StrFormat(
          "runtime dir %s is served by localnfsd pid %d", runtime_dir_, Load(rec.pid)));
    ReapRecordLocked();
  }
  // Whatever is still bound belongs to no live record.
  RepairLocked();

  Store(rec.state, kRecPublishing);
  Store(rec.ops_version, record.ops_version);
  Store(rec.capabilities, record.capabilities);
  Store(rec.pid, static_cast<int32_t>(self.pid));
  Store(rec.start_time, self.start_time);
  Store(rec.pidns, self.pidns);
  Store(rec.refcount, 0u);
  memcpy(rec.instance_id, instance.data(), instance.size());
  WriteBoundedString(rec.socket_path, record.socket_path);
  Store(rec.state, kRecLive);
  published_ = instance;
  bindings_.clear();
  LOG_INFO("broker %s: published localnfsd pid %d, socket %s", path_, self.pid,
           record.socket_path);
  return absl::OkStatus();
}

void Broker::Withdraw() {
  if (!LockSegment().ok()) {
    // Clients must still stop local I/O; the reaper of the next start does the rest.
    BumpGeneration();
    return;
  }
  absl::Cleanup unlock = [this] { UnlockSegment(); };
  if (!published_.has_value()) return;
  if (OwnsLiveRecordLocked()) {
    Record& rec = segment_->record;
    Store(rec.state, kRecWithdrawing);
    UnbindRecordLocked(*published_);
    BumpGeneration();
    Store(rec.state, kRecWithdrawn);
  }
  published_.reset();
  bindings_.clear();
}

bool Broker::BindUuid(const Uuid& uuid, std::string_view domain, uint32_t export_id) {
  if (domain.size() >= kMaxDomain || domain.find('\0') != std::string_view::npos) {
    LOG_WARNING("broker: domain of %d bytes cannot be bound", domain.size());
    return false;
  }
  if (!LockSegment().ok()) return false;
  absl::Cleanup unlock = [this] { UnlockSegment(); };
  if (!OwnsLiveRecordLocked()) return false;
  std::optional<size_t> index = FindSlotLocked(uuid);
  if (!index) return false;
  Slot& slot = segment_->slots[*index];
  if (Load(slot.state) != kSlotPending) return false;
  const pid_t owner = Load(slot.owner_pid);
  const uint64_t owner_start = Load(slot.owner_start);
  if (!OwnerAlive(owner, owner_start, Load(slot.owner_pidns))) {
    FreeSlotLocked(*index);
    return false;
  }
  Record& rec = segment_->record;
  Store(slot.state, kSlotBinding);
  memcpy(slot.instance_id, published_->data(), published_->size());
  WriteBoundedString(slot.domain, domain);
  Store(slot.export_id, export_id);
  Store(slot.bound_generation, LoadGeneration());
  Store(slot.state, kSlotBound);
  Store(rec.refcount, Load(rec.refcount) + 1);
  bindings_[uuid] = PrivateBinding{
      *index, BoundClient{uuid, std::string(domain), export_id, owner, owner_start,
                          Load(slot.owner_pidns)}};
  return true;
}

void Broker::UnbindUuid(const Uuid& uuid) {
  if (!LockSegment().ok()) {
    BumpGeneration();
    return;
  }
  absl::Cleanup unlock = [this] { UnlockSegment(); };
  bindings_.erase(uuid);
  if (!OwnsLiveRecordLocked()) return;
  std::optional<size_t> index = FindSlotLocked(uuid);
  if (!index) return;
  const Slot& slot = segment_->slots[*index];
  if (Load(slot.state) != kSlotBound || !Equal(slot.instance_id, *published_)) return;
  FreeSlotLocked(*index);
  BumpGeneration();
}

void Broker::InvalidateClients() {
  if (!LockSegment().ok()) {
    BumpGeneration();
    return;
  }
  absl::Cleanup unlock = [this] { UnlockSegment(); };
  if (OwnsLiveRecordLocked()) UnbindRecordLocked(*published_);
  bindings_.clear();
  BumpGeneration();
}

std::optional<BoundClient> Broker::LookupBound(const Uuid& uuid) const {
  if (!LockSegment().ok()) return std::nullopt;
  absl::Cleanup unlock = [this] { UnlockSegment(); };
  auto it = bindings_.find(uuid);
  if (it == bindings_.end()) return std::nullopt;
  if (!PrivateBindingValidLocked(it->second)) {
    bindings_.erase(it);  // released by its client or reaped: the segment took it away
    return std::nullopt;
  }
  return it->second.client;
}

std::vector<BoundClient> Broker::ListBound() const {
  std::vector<BoundClient> out;
  if (!LockSegment().ok()) return out;
  absl::Cleanup unlock = [this] { UnlockSegment(); };
  absl::erase_if(bindings_,
                 [this](const auto& kv) { return !PrivateBindingValidLocked(kv.second); });
  out.reserve(bindings_.size());
  for (const auto& [uuid, binding] : bindings_) out.push_back(binding.client);
  return out;
}

int Broker::ReapDeadClientsLocked() {
  int n = 0;
  for (size_t i = 0; i < kUuidSlots; ++i) {
    const Slot& slot = segment_->slots[i];
    uint32_t s = Load(slot.state);
    if (s != kSlotPending && s != kSlotBound) continue;
    if (OwnerAlive(Load(slot.owner_pid), Load(slot.owner_start), Load(slot.owner_pidns)))
      continue;
    FreeSlotLocked(i);
    ++n;
  }
  return n;
}

int Broker::ReapDeadClients() {
  if (!LockSegment().ok()) return 0;
  absl::Cleanup unlock = [this] { UnlockSegment(); };
  int n = ReapDeadClientsLocked();
  if (n > 0) LOG_INFO("broker %s: reaped %d slots of dead clients", path_, n);
  return n;
}

std::optional<InstanceId> Broker::PublishedInstance() const {
  if (!LockSegment().ok()) return std::nullopt;
  absl::Cleanup unlock = [this] { UnlockSegment(); };
  if (!OwnsLiveRecordLocked()) return std::nullopt;
  return published_;
}

// ---- Client side ----

absl::StatusOr<Uuid> Broker::UuidBegin() {
  const Self self = CurrentProcess();
  Uuid uuid;
  RETURN_IF_ERROR(LockSegment());
  absl::Cleanup unlock = [this] { UnlockSegment(); };
  // A duplicate of 122 random bits is not going to happen; an all-zero uuid would mean
  // a broken RNG, and both are cheap to refuse.
  do {
    RETURN_IF_ERROR(FillRandom(uuid.data(), uuid.size()));
    uuid[6] = (uuid[6] & 0x0f) | 0x40;  // version 4
    uuid[8] = (uuid[8] & 0x3f) | 0x80;  // RFC 4122 variant
  } while (FindSlotLocked(uuid).has_value());

  std::optional<size_t> free_index;
  for (int pass = 0; pass < 2 && !free_index; ++pass) {
    if (pass == 1 && ReapDeadClientsLocked() == 0) break;
    for (size_t i = 0; i < kUuidSlots; ++i) {
      if (Load(segment_->slots[i].state) == kSlotFree) {
        free_index = i;
        break;
      }
    }
  }
  if (!free_index)
    return absl::ResourceExhaustedError(absl::StrFormat(
        "broker %s: all %d uuid slots are held by live clients", path_, kUuidSlots));
  Slot& slot = segment_->slots[*free_index];
  Store(slot.state, kSlotClaiming);
  ClearSlotFields(slot);
  memcpy(slot.uuid, uuid.data(), uuid.size());
  Store(slot.owner_pid, static_cast<int32_t>(self.pid));
  Store(slot.owner_start, self.start_time);
  Store(slot.owner_pidns, self.pidns);
  Store(slot.state, kSlotPending);
  return uuid;
}

absl::StatusOr<Binding> Broker::UuidEnd(const Uuid& uuid) {
  RETURN_IF_ERROR(LockSegment());
  absl::Cleanup unlock = [this] { UnlockSegment(); };
  std::optional<size_t> index = FindSlotLocked(uuid);
  if (!index)
    return absl::NotFoundError("uuid " + UuidToString(uuid) + " is not in the broker");
  const Slot& slot = segment_->slots[*index];
  if (Load(slot.state) != kSlotBound)
    return absl::NotFoundError("uuid " + UuidToString(uuid) +
                               " was not bound by the server: not local");
  const Record& rec = segment_->record;
  const uint64_t generation = Load(slot.bound_generation);
  if (Load(rec.state) != kRecLive || !Equal(slot.instance_id, ToArray(rec.instance_id)) ||
      generation != LoadGeneration())
    return absl::NotFoundError("uuid " + UuidToString(uuid) +
                               " is bound to a server record that is gone");
  Binding binding;
  if (!ReadBoundedString(rec.socket_path, &binding.socket_path) ||
      binding.socket_path.empty())
    return absl::FailedPreconditionError("broker " + path_ + ": corrupt socket path");
  binding.instance_id = ToArray(rec.instance_id);
  binding.generation = generation;
  binding.capabilities = Load(rec.capabilities);
  binding.ops_version = Load(rec.ops_version);
  binding.export_id = Load(slot.export_id);
  binding.slot_index = *index;
  return binding;
}

void Broker::CountLocalIo(const Binding& binding, LocalIoKind kind, uint64_t bytes) {
  if (binding.slot_index >= kUuidSlots) return;
  uint64_t(&counts)[2] =
      segment_->slots[binding.slot_index].local_io[static_cast<int>(kind)];
  std::atomic_ref<uint64_t>(counts[0]).fetch_add(1, std::memory_order_relaxed);
  std::atomic_ref<uint64_t>(counts[1]).fetch_add(bytes, std::memory_order_relaxed);
}

void Broker::UuidRelease(const Uuid& uuid) {
  if (!LockSegment().ok()) return;
  absl::Cleanup unlock = [this] { UnlockSegment(); };
  std::optional<size_t> index = FindSlotLocked(uuid);
  if (!index) return;
  const Slot& slot = segment_->slots[*index];
  const Self self = CurrentProcess();
  uint32_t s = Load(slot.state);
  if ((s != kSlotPending && s != kSlotBound) || Load(slot.owner_pid) != self.pid ||
      Load(slot.owner_start) != self.start_time)
    return;
  FreeSlotLocked(*index);
}

bool Broker::ServerAlive() const {
  if (!LockSegment().ok()) return false;
  absl::Cleanup unlock = [this] { UnlockSegment(); };
  return RecordAliveLocked();
}

// ---- Both sides ----

absl::StatusOr<ServerInfo> Broker::ReadServer() const {
  RETURN_IF_ERROR(LockSegment());
  absl::Cleanup unlock = [this] { UnlockSegment(); };
  const Record& rec = segment_->record;
  ServerInfo info;
  uint32_t state = Load(rec.state);
  if (state != kRecEmpty && state != kRecLive && state != kRecWithdrawn)
    return absl::FailedPreconditionError("broker " + path_ + ": corrupt record state");
  if (!ReadBoundedString(rec.socket_path, &info.socket_path))
    return absl::FailedPreconditionError("broker " + path_ + ": corrupt socket path");
  info.state = static_cast<RecordState>(state);
  info.ops_version = Load(rec.ops_version);
  info.capabilities = Load(rec.capabilities);
  info.pid = Load(rec.pid);
  info.start_time = Load(rec.start_time);
  info.instance_id = ToArray(rec.instance_id);
  info.generation = LoadGeneration();
  info.refcount = Load(rec.refcount);
  info.alive = RecordAliveLocked();
  return info;
}

absl::StatusOr<std::vector<SlotInfo>> Broker::ListSlots() const {
  RETURN_IF_ERROR(LockSegment());
  absl::Cleanup unlock = [this] { UnlockSegment(); };
  std::vector<SlotInfo> out;
  for (size_t i = 0; i < kUuidSlots; ++i) {
    const Slot& slot = segment_->slots[i];
    uint32_t s = Load(slot.state);
    if (s == kSlotFree) continue;
    if (s != kSlotPending && s != kSlotBound)
      return absl::FailedPreconditionError(
          absl::StrFormat("broker %s: slot %d has corrupt state %d", path_, i, s));
    SlotInfo info;
    info.index = i;
    info.state = static_cast<SlotState>(s);
    info.uuid = ToArray(slot.uuid);
    info.owner_pid = Load(slot.owner_pid);
    info.owner_start_time = Load(slot.owner_start);
    if (s == kSlotBound) {
      info.instance_id = ToArray(slot.instance_id);
      info.export_id = Load(slot.export_id);
      if (!ReadBoundedString(slot.domain, &info.domain))
        return absl::FailedPreconditionError(
            absl::StrFormat("broker %s: slot %d has a corrupt domain", path_, i));
      for (int k = 0; k < 3; ++k) {
        info.local_io[k].calls = Load(slot.local_io[k][0]);
        info.local_io[k].bytes = Load(slot.local_io[k][1]);
      }
    }
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<Uuid> Broker::ClaimSlotAndHoldLockForTesting() {
  RETURN_IF_ERROR(LockSegment());
  for (size_t i = 0; i < kUuidSlots; ++i) {
    Slot& slot = segment_->slots[i];
    if (Load(slot.state) != kSlotFree) continue;
    Uuid uuid;
    RETURN_IF_ERROR(FillRandom(uuid.data(), uuid.size()));
    Store(slot.state, kSlotClaiming);
    memcpy(slot.uuid, uuid.data(), uuid.size());
    return uuid;  // mutex deliberately still held, slot deliberately half-claimed
  }
  UnlockSegment();
  return absl::ResourceExhaustedError("no free slot");
}

}  // namespace localnfs::broker
