// common/localio/broker_server.cc — see broker_server.h.
#include "common/localio/broker_server.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/localio/proc_identity.h"
#include "common/log.h"
#include "common/status.h"

namespace localnfs::broker {

// The layouts and their accessors (broker_format.h): this file is one of their two users.
using format::CheckHeader;
using format::FillRandom;
using format::Entry;
using format::Header;
using format::IdentityOf;
using format::kEntryBound;
using format::kEntryFree;
using format::kMagic;
using format::kRecLive;
using format::kRecWithdrawn;
using format::kTagRegistered;
using format::Load;
using format::PidOf;
using format::PreadSlot;
using format::PreadSlots;
using format::Record;
using format::RecordAliveOf;
using format::Segment;
using format::Slot;
using format::SlotIdentity;
using format::SlotTable;
using format::SlotWord;
using format::Store;
using format::StoreString;
using format::StoreUuid;
using format::TagOf;

namespace {

// True if the slot still holds `client`'s uuid, registered by the same process.
bool SlotHolds(const SlotIdentity& slot, const BoundClient& client) {
  return slot.word == SlotWord(kTagRegistered, client.owner_pid) && slot.uuid == client.uuid &&
         slot.owner_start == client.owner_start_time;
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

// ---- Construction, and what clients see too ----

Broker::Broker(std::string runtime_dir, UniqueFd dirfd)
    : runtime_dir_(std::move(runtime_dir)),
      path_(runtime_dir_ + "/" + kSegmentName),
      dirfd_(std::move(dirfd)),
      generation_(&kNoGeneration) {}

Broker::~Broker() {
  if (segment_ != nullptr) ::munmap(segment_, sizeof(Segment));
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

uint64_t Broker::BumpGeneration() const {
  return std::atomic_ref<uint64_t>(*generation_).fetch_add(1, std::memory_order_acq_rel) +
         1;
}

bool Broker::ServerAlive() const {
  return segment_ != nullptr && RecordAliveOf(segment_->record);
}

absl::StatusOr<ServerInfo> Broker::ReadServer() const {
  return format::ReadServerInfo(segment_, path_);
}

absl::StatusOr<std::vector<SlotInfo>> Broker::ListSlots() const {
  return format::ReadSlotInfos(slots_fd_.get(), segment_, path_);
}

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
  const ProcessIdentity self = CurrentProcess();

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
  if (!slots_fd_) return false;  // unpublished
  // Outside the mutex: a pread of the client's slot and a /proc read of its owner.
  const size_t index = SlotOfUuid(uuid);
  const std::optional<SlotIdentity> slot = PreadSlot(slots_fd_.get(), index);
  if (!slot || TagOf(slot->word) != kTagRegistered || slot->uuid != uuid) return false;
  // The uuid commits to the hash its registrant chose: a hash written over it since
  // (by anyone who may write the slot file) does not make this uuid.
  if (UuidCommittingTo(slot->secret_hash, index) != uuid) {
    static LogRateLimit* limit = new LogRateLimit(10, absl::Seconds(1));
    uint64_t left_out = 0;
    if (limit->Allow(&left_out))
      LOG_WARNING("broker: uuid %s not bound: its slot's secret hash does not make it "
                  "(slot overwritten?)%s",
                  UuidToString(uuid),
                  left_out > 0 ? absl::StrFormat(" (%d similar not logged)", left_out) : "");
    return false;
  }
  BoundClient client{uuid,           std::string(domain), export_id,
                     PidOf(slot->word), slot->owner_start, slot->owner_pidns,
                     slot->secret_hash};
  if (!RecordedProcessAlive(client.owner_pid, client.owner_start_time, client.owner_pidns))
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
        RecordedProcessAlive(client.owner_pid, client.owner_start_time, client.owner_pidns))
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

}  // namespace localnfs::broker
