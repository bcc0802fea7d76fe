// common/localio/broker_format.cc — see broker_format.h: the readers both sides use.
#include "common/localio/broker_format.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <thread>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "absl/strings/str_format.h"
#include "common/localio/proc_identity.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace localnfs::broker {

size_t SlotOfUuid(const Uuid& uuid) {
  return ((size_t{uuid[14]} << 8) | uuid[15]) & (kUuidSlots - 1);
}

Secret::~Secret() { OPENSSL_cleanse(bytes_.data(), bytes_.size()); }

absl::StatusOr<Secret> Secret::Generate() {
  Secret s;
  RETURN_IF_ERROR(format::FillRandom(s.bytes_.data(), s.bytes_.size()));
  return s;
}

Secret Secret::FromBytes(const uint8_t* bytes) {
  Secret s;
  memcpy(s.bytes_.data(), bytes, kSecretSize);
  return s;
}

SecretHash Secret::Hash() const {
  SecretHash h;
  static_assert(SHA256_DIGEST_LENGTH == sizeof(SecretHash));
  SHA256(bytes_.data(), bytes_.size(), h.data());
  return h;
}

bool SecretMatches(const Secret& secret, const SecretHash& expected) {
  const SecretHash got = secret.Hash();
  return CRYPTO_memcmp(got.data(), expected.data(), got.size()) == 0;
}

Uuid UuidCommittingTo(const SecretHash& hash, size_t slot_index) {
  Uuid uuid;
  memcpy(uuid.data(), hash.data(), uuid.size());
  uuid[6] = (uuid[6] & 0x0f) | 0x40;  // version 4
  uuid[8] = (uuid[8] & 0x3f) | 0x80;  // RFC 4122 variant
  // The last bits name the slot (SlotOfUuid); the rest stay the hash's.
  const size_t tail = (((size_t{uuid[14]} << 8) | uuid[15]) & ~(kUuidSlots - 1)) |
                      (slot_index & (kUuidSlots - 1));
  uuid[14] = static_cast<uint8_t>(tail >> 8);
  uuid[15] = static_cast<uint8_t>(tail);
  return uuid;
}

std::string UuidToString(const std::array<uint8_t, 16>& u) {
  return absl::StrFormat(
      "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
      u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
      u[15]);
}

namespace format {
namespace {

bool SameIdentity(const SlotIdentity& a, const SlotIdentity& b) {
  return a.word == b.word && a.owner_start == b.owner_start &&
         a.owner_pidns == b.owner_pidns && a.uuid == b.uuid && a.secret_hash == b.secret_hash;
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

}  // namespace

SlotIdentity IdentityOf(const Slot& s) {
  SlotIdentity id{s.word, s.owner_start, s.owner_pidns, {}, {}};
  memcpy(id.uuid.data(), s.uuid, id.uuid.size());
  memcpy(id.secret_hash.data(), s.secret_hash, id.secret_hash.size());
  return id;
}

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

std::vector<Slot> PreadSlots(int fd) {
  std::vector<Slot> slots(kUuidSlots);
  ssize_t n;
  do {
    n = ::pread(fd, slots.data(), sizeof(Slot) * slots.size(), 0);
  } while (n < 0 && errno == EINTR);
  slots.resize(n > 0 ? static_cast<size_t>(n) / sizeof(Slot) : 0);
  return slots;
}

std::vector<SlotIo> PreadSlotIo(int fd) {
  std::vector<SlotIo> io(kUuidSlots);
  ssize_t n;
  do {
    n = ::pread(fd, io.data(), sizeof(SlotIo) * io.size(), offsetof(SlotTable, io));
  } while (n < 0 && errno == EINTR);
  io.resize(n > 0 ? static_cast<size_t>(n) / sizeof(SlotIo) : 0);
  return io;
}

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

absl::StatusOr<ServerInfo> ReadServerInfo(const Segment* seg, const std::string& path) {
  if (seg == nullptr)
    return absl::FailedPreconditionError("broker " + path + ": no record published");
  const Record& rec = seg->record;
  ServerInfo info;
  const uint32_t state = Load(rec.state);
  if (state != kRecLive && state != kRecWithdrawn)
    return absl::FailedPreconditionError("broker " + path + ": corrupt record state");
  if (!LoadString(rec.socket_path, &info.socket_path))
    return absl::FailedPreconditionError("broker " + path + ": corrupt socket path");
  info.state = static_cast<RecordState>(state);
  info.ops_version = Load(rec.ops_version);
  info.capabilities = Load(rec.capabilities);
  info.pid = Load(rec.pid);
  info.start_time = Load(rec.start_time);
  info.instance_id = LoadUuid(rec.instance_id);
  info.generation = Load(rec.generation);
  info.refcount = Load(rec.refcount);
  info.alive = RecordAliveOf(rec);
  return info;
}

absl::StatusOr<std::vector<SlotInfo>> ReadSlotInfos(int slots_fd, const Segment* seg,
                                                    const std::string& path) {
  if (slots_fd < 0 || seg == nullptr)
    return absl::FailedPreconditionError("broker " + path + ": no record published");
  const std::vector<Slot> slots = PreadSlots(slots_fd);
  const std::vector<SlotIo> io = PreadSlotIo(slots_fd);
  const Record& rec = seg->record;
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
    memcpy(info.secret_hash.data(), s.secret_hash, info.secret_hash.size());
    if (i < io.size()) {
      for (const IoShard& shard : io[i].shards) {
        for (int k = 0; k < 3; ++k) {
          info.local_io[k].calls += shard.local_io[k][0];
          info.local_io[k].bytes += shard.local_io[k][1];
        }
      }
    }
    EntryCopy e;
    if (live && ReadEntry(seg->entries[i], &e) && e.state == kEntryBound &&
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

}  // namespace format
}  // namespace localnfs::broker
