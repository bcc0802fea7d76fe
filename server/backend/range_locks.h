// server/backend/range_locks.h — byte-range locks of one file as the kernel keeps OFD
// locks (fcntl F_OFD_SETLK): the model the memory backend gives its files, so that the
// NFSv4 LOCK tests that run on memory see what the POSIX backend's kernel does.
//
// Owns: the locks of one file, each held by an owner (an opaque pointer: the memory
// backend's lock file, as the kernel's owner is the open file description). The rules
// are fcntl(2)'s:
//  - locks of different owners conflict when their ranges overlap and one of them is a
//    write lock; Set of a conflicting range changes nothing and returns the conflict
//    (nothing waits: NFSv4 clients poll);
//  - an owner's own locks never conflict with its new lock: the part of its locks that
//    the new range covers is replaced (a read lock becomes a write lock or back, a lock
//    is split around an unlocked hole), and adjacent or overlapping locks of one type
//    merge into one;
//  - Unlock of a range nobody locked is no error.
// Ranges are [offset, end) with end kToEnd for "to the end of the file" (fcntl's l_len
// 0): what an NFSv4 length of all ones means.
//
// Thread-safety: none; the caller serializes (the memory backend's mutex).
#pragma once

#include <stdint.h>

#include <optional>
#include <vector>

#include "server/backend/backend.h"

namespace localnfs::server::backend {

class RangeLocks {
 public:
  static constexpr uint64_t kToEnd = UINT64_MAX;

  // The lock `owner` asks for: granted (nullopt) or the first conflicting lock.
  std::optional<LockConflict> Set(const void* owner, LockType type, uint64_t offset,
                                  uint64_t end);
  // The first lock of another owner that would refuse Set, changing nothing.
  std::optional<LockConflict> Test(const void* owner, LockType type, uint64_t offset,
                                   uint64_t end) const;
  void Unlock(const void* owner, uint64_t offset, uint64_t end);
  // Every lock of `owner` (its lock file is closed).
  void ReleaseAll(const void* owner);

  bool empty() const { return locks_.empty(); }
  // Whether `owner` holds any lock / a lock of `type` overlapping [offset, end).
  bool Holds(const void* owner) const;
  bool HeldBy(const void* owner, LockType type, uint64_t offset, uint64_t end) const;
  // The owners whose locks would refuse Set (each once).
  std::vector<const void*> Conflicting(const void* owner, LockType type, uint64_t offset,
                                       uint64_t end) const;

 private:
  struct Lock {
    const void* owner;
    LockType type;
    uint64_t offset;
    uint64_t end;  // exclusive; kToEnd
  };
  static LockConflict ConflictOf(const Lock& l);

  std::vector<Lock> locks_;  // unordered; a file has few
};

}  // namespace localnfs::server::backend
