// export_cache/export.cc — see export.h.
#include "export_cache/export.h"

#include <fcntl.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <atomic>
#include <cerrno>
#include <optional>

#include "absl/strings/str_format.h"
#include "common/release_queue.h"
#include "common/status.h"

namespace localnfs::exports {
namespace {

std::atomic<int64_t> live_exports{0};

// The fsid= of a spec: options are per client rule, the id is per export, so the
// rules that give one must agree.
absl::StatusOr<std::optional<uint32_t>> SpecFsid(const ExportSpec& spec) {
  std::optional<uint32_t> fsid;
  for (const ClientRule& rule : spec.rules) {
    if (!rule.options.fsid) continue;
    if (fsid && *fsid != *rule.options.fsid)
      return absl::InvalidArgumentError(
          absl::StrFormat("export %s: conflicting fsid=%u and fsid=%u", spec.path, *fsid,
                          *rule.options.fsid));
    fsid = rule.options.fsid;
  }
  return fsid;
}

}  // namespace

uint32_t ExportIdForPath(std::string_view path) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(path.data()), path.size(), digest);
  uint32_t id = (uint32_t{digest[0]} << 24) | (uint32_t{digest[1]} << 16) |
                (uint32_t{digest[2]} << 8) | uint32_t{digest[3]};
  return id == 0 ? 1 : id;  // 0 is never an export id
}

Export::Export(ExportSpec spec, uint32_t id, UniqueFd root, uint64_t dev, uint64_t ino,
               uint64_t mnt_id)
    : spec_(std::move(spec)),
      id_(id),
      root_fd_(std::move(root)),
      root_dev_(dev),
      root_ino_(ino),
      root_mnt_id_(mnt_id) {
  live_exports.fetch_add(1, std::memory_order_relaxed);
}

Export::~Export() { live_exports.fetch_sub(1, std::memory_order_relaxed); }

int64_t Export::LiveCount() { return live_exports.load(std::memory_order_relaxed); }

void Export::LastReferenceDropped() {
  // An RCU reader may still hold this pointer (found in a cache index it loaded before
  // the unlink); the delete, which closes the root fd, waits for a grace period.
  QueueReleaseAfterGracePeriod([this] { delete this; });
}

absl::StatusOr<Ref<Export>> Export::Create(ExportSpec spec) {
  const std::string what = absl::StrFormat("export %s", spec.path);
  ASSIGN_OR_RETURN(std::optional<uint32_t> fsid, SpecFsid(spec));
  UniqueFd root(open(spec.path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return ErrnoToStatus(errno, what);
  struct statx stx;
  if (statx(root.get(), "", AT_EMPTY_PATH, STATX_INO | STATX_MNT_ID, &stx) != 0)
    return ErrnoToStatus(errno, what);
  // The same encoding as struct stat's st_dev (glibc's makedev, as its own stat).
  const uint64_t dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
  const uint64_t mnt_id = (stx.stx_mask & STATX_MNT_ID) ? stx.stx_mnt_id : 0;
  const uint32_t id = fsid ? *fsid : ExportIdForPath(spec.path);
  return Ref<Export>::Adopt(
      new Export(std::move(spec), id, std::move(root), dev, stx.stx_ino, mnt_id));
}

const ClientRule* Export::MatchClient(const PeerAddress& peer) const {
  return FirstMatchingRule(spec_.rules, peer);
}

}  // namespace localnfs::exports
