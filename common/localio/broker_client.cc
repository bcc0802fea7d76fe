// common/localio/broker_client.cc — see broker_client.h.
#include "common/localio/broker_client.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/localio/proc_identity.h"
#include "common/sharded_counter.h"
#include "common/status.h"

namespace localnfs::broker {

// The layouts and their accessors (broker_format.h): this file is one of their two users.
using format::Cas;
using format::IoShard;
using format::kIoShards;
using format::CheckHeader;
using format::EntryCopy;
using format::FillRandom;
using format::kEntryBound;
using format::kRecLive;
using format::kTagClaiming;
using format::kTagRegistered;
using format::Load;
using format::LoadString;
using format::LoadUuid;
using format::PidOf;
using format::ReadEntry;
using format::Record;
using format::RecordAliveOf;
using format::Segment;
using format::Slot;
using format::SlotTable;
using format::SlotWord;
using format::Store;
using format::StoreBytes;
using format::StoreUuid;
using format::TagOf;

BrokerClient::BrokerClient(std::string path, Segment* segment, UniqueFd slots_fd,
                           SlotTable* slots)
    : path_(std::move(path)),
      segment_(segment),
      slots_fd_(std::move(slots_fd)),
      slots_(slots),
      generation_(&segment->record.generation) {}

BrokerClient::~BrokerClient() {
  ::munmap(segment_, sizeof(Segment));
  ::munmap(slots_, sizeof(SlotTable));
}

absl::StatusOr<std::unique_ptr<BrokerClient>> BrokerClient::Open(
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
    return std::unique_ptr<BrokerClient>(
        new BrokerClient(path, seg, std::move(slots_fd), static_cast<SlotTable*>(q)));
  }
}

absl::StatusOr<Uuid> BrokerClient::UuidBegin() {
  const ProcessIdentity self = CurrentProcess();
  // The proof of ownership HELLO will carry; the slot shows only its hash.
  ASSIGN_OR_RETURN(Secret secret, Secret::Generate());
  const SecretHash hash = secret.Hash();
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
    // Made from the hash, so that nobody can register another hash under this uuid.
    const Uuid uuid = UuidCommittingTo(hash, *index);
    Slot& s = slots_->slots[*index];
    Store(s.owner_start, self.start_time);
    Store(s.owner_pidns, self.pidns);
    StoreUuid(s.uuid, uuid);
    StoreBytes(s.secret_hash, hash.data(), hash.size());
    for (uint64_t& v : s.unused) Store(v, uint64_t{0});
    Store(s.reserved, uint64_t{0});
    for (IoShard& shard : slots_->io[*index].shards) {
      for (auto& kind : shard.local_io)
        for (uint64_t& v : kind) Store(v, uint64_t{0});
      for (uint64_t& v : shard.reserved) Store(v, uint64_t{0});
    }
    if (Cas(s.word, claiming, SlotWord(kTagRegistered, self.pid))) {
      absl::MutexLock l(&mu_);
      secrets_.insert_or_assign(uuid, secret);
      return uuid;
    }
    // Our half-done claim was taken over (judged gone, or scribbled): start again.
  }
  return absl::UnavailableError("broker " + path_ + ": uuid slots keep being overwritten");
}

absl::StatusOr<Binding> BrokerClient::UuidEnd(const Uuid& uuid) {
  const ProcessIdentity self = CurrentProcess();
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

void BrokerClient::CountLocalIo(const Binding& binding, LocalIoKind kind, uint64_t bytes) {
  if (binding.slot_index >= kUuidSlots) return;
  const CounterShard& shard = ThisThreadsCounterShard();
  uint64_t(&counts)[2] =
      slots_->io[binding.slot_index].shards[shard.index].local_io[static_cast<int>(kind)];
  AddToShard(counts[0], 1, shard);
  AddToShard(counts[1], bytes, shard);
}

std::optional<Secret> BrokerClient::SecretOf(const Uuid& uuid) const {
  absl::MutexLock l(&mu_);
  auto it = secrets_.find(uuid);
  if (it == secrets_.end()) return std::nullopt;
  return it->second;
}

void BrokerClient::UuidRelease(const Uuid& uuid) {
  {
    absl::MutexLock l(&mu_);
    secrets_.erase(uuid);
  }
  const ProcessIdentity self = CurrentProcess();
  Slot& s = slots_->slots[SlotOfUuid(uuid)];
  const uint64_t mine = SlotWord(kTagRegistered, self.pid);
  if (Load(s.word) != mine || LoadUuid(s.uuid) != uuid || Load(s.owner_start) != self.start_time)
    return;
  Cas(s.word, mine, 0);
}

bool BrokerClient::ServerAlive() const { return RecordAliveOf(segment_->record); }

absl::StatusOr<ServerInfo> BrokerClient::ReadServer() const {
  return format::ReadServerInfo(segment_, path_);
}

absl::StatusOr<std::vector<SlotInfo>> BrokerClient::ListSlots() const {
  return format::ReadSlotInfos(slots_fd_.get(), segment_, path_);
}

}  // namespace localnfs::broker
