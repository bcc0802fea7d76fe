// server/backend/range_locks.cc — fcntl's byte-range lock rules (see range_locks.h).
#include "server/backend/range_locks.h"

#include <algorithm>

namespace localnfs::server::backend {
namespace {

bool Overlaps(uint64_t a_offset, uint64_t a_end, uint64_t b_offset, uint64_t b_end) {
  return a_offset < b_end && b_offset < a_end;
}

}  // namespace

LockConflict RangeLocks::ConflictOf(const Lock& l) {
  return LockConflict{l.type, l.offset, l.end == kToEnd ? 0 : l.end - l.offset};
}

std::optional<LockConflict> RangeLocks::Test(const void* owner, LockType type, uint64_t offset,
                                             uint64_t end) const {
  for (const Lock& l : locks_) {
    if (l.owner == owner || !Overlaps(l.offset, l.end, offset, end)) continue;
    if (type == LockType::kWrite || l.type == LockType::kWrite) return ConflictOf(l);
  }
  return std::nullopt;
}

std::optional<LockConflict> RangeLocks::Set(const void* owner, LockType type, uint64_t offset,
                                            uint64_t end) {
  if (std::optional<LockConflict> c = Test(owner, type, offset, end)) return c;
  // The owner's own locks: what the new range covers is replaced; a lock of the same
  // type that overlaps or touches it merges into it.
  Unlock(owner, offset, end);
  uint64_t merged_offset = offset, merged_end = end;
  std::erase_if(locks_, [&](const Lock& l) {
    if (l.owner != owner || l.type != type) return false;
    const bool touches = l.end == offset || end == l.offset;
    if (!touches) return false;
    merged_offset = std::min(merged_offset, l.offset);
    merged_end = std::max(merged_end, l.end);
    return true;
  });
  locks_.push_back(Lock{owner, type, merged_offset, merged_end});
  return std::nullopt;
}

void RangeLocks::Unlock(const void* owner, uint64_t offset, uint64_t end) {
  std::vector<Lock> kept;
  kept.reserve(locks_.size() + 1);
  for (const Lock& l : locks_) {
    if (l.owner != owner || !Overlaps(l.offset, l.end, offset, end)) {
      kept.push_back(l);
      continue;
    }
    // The parts outside [offset, end) stay: a hole splits a lock in two.
    if (l.offset < offset) kept.push_back(Lock{owner, l.type, l.offset, offset});
    if (end < l.end) kept.push_back(Lock{owner, l.type, end, l.end});
  }
  locks_ = std::move(kept);
}

bool RangeLocks::Holds(const void* owner) const {
  return std::any_of(locks_.begin(), locks_.end(),
                     [owner](const Lock& l) { return l.owner == owner; });
}

bool RangeLocks::HeldBy(const void* owner, LockType type, uint64_t offset, uint64_t end) const {
  return std::any_of(locks_.begin(), locks_.end(), [&](const Lock& l) {
    return l.owner == owner && l.type == type && Overlaps(l.offset, l.end, offset, end);
  });
}

std::vector<const void*> RangeLocks::Conflicting(const void* owner, LockType type,
                                                 uint64_t offset, uint64_t end) const {
  std::vector<const void*> owners;
  for (const Lock& l : locks_) {
    if (l.owner == owner || !Overlaps(l.offset, l.end, offset, end)) continue;
    if (type != LockType::kWrite && l.type != LockType::kWrite) continue;
    if (std::find(owners.begin(), owners.end(), l.owner) == owners.end()) owners.push_back(l.owner);
  }
  return owners;
}

void RangeLocks::ReleaseAll(const void* owner) {
  std::erase_if(locks_, [owner](const Lock& l) { return l.owner == owner; });
}

}  // namespace localnfs::server::backend
