// server/backend/file_cache.cc — see file_cache.h for the lifetimes.
#include "server/backend/file_cache.h"

#include <vector>

#include "common/log.h"
#include "common/status.h"

namespace localnfs::server {
namespace {

void DropAll(std::vector<NfsFile*>& files) {
  for (NfsFile* f : files) f->Put();  // may close the fd: never under the lock
  files.clear();
}

}  // namespace

FileCache::FileCache(FileCacheOptions options) : options_(options) {}

FileCache::~FileCache() { Shutdown(); }

void FileCache::Start() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = false;
  }
  reaper_ = std::thread([this] { ReaperLoop(); });
}

void FileCache::Shutdown() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (reaper_.joinable()) reaper_.join();
  std::vector<NfsFile*> dropped;
  {
    absl::MutexLock l(&mu_);
    while (!lru_.empty()) UnhashLocked(lru_.begin(), dropped);
  }
  DropAll(dropped);
}

void FileCache::ReaperLoop() {
  absl::MutexLock l(&mu_);
  while (!stopping_) {
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.reaper_interval);
    if (stopping_) break;
    mu_.Unlock();
    Reap(absl::Now());
    mu_.Lock();
  }
}

Ref<NfsFile> FileCache::LookupLocked(const Key& key, absl::Time now) {
  auto it = index_.find(key);
  if (it == index_.end()) return Ref<NfsFile>();
  Lru::iterator e = it->second;
  e->last_used = now;
  lru_.splice(lru_.begin(), lru_, e);
  return Ref<NfsFile>::Share(e->file);
}

void FileCache::UnhashLocked(Lru::iterator it, std::vector<NfsFile*>& out) {
  --stats_.entries[static_cast<size_t>(it->key.mode)];
  out.push_back(it->file);
  index_.erase(it->key);
  lru_.erase(it);
}

absl::StatusOr<Ref<NfsFile>> FileCache::Acquire(uint32_t export_id, const KernelHandle& kh,
                                                FileMode mode, const Opener& open) {
  return AcquireFile(export_id, kh, mode,
                     [&open](FileMode m) -> absl::StatusOr<Ref<NfsFile>> {
                       ASSIGN_OR_RETURN(UniqueFd fd, open(m));
                       return NfsFile::Make(std::move(fd), m);
                     });
}

absl::StatusOr<Ref<NfsFile>> FileCache::AcquireFile(uint32_t export_id,
                                                    const KernelHandle& kh, FileMode mode,
                                                    Maker make) {
  Key key{export_id, kh, mode};
  {
    absl::MutexLock l(&mu_);
    const absl::Time now = absl::Now();
    const size_t m = static_cast<size_t>(mode);
    if (Ref<NfsFile> f = LookupLocked(key, now)) {
      ++stats_.hits[m];
      return f;
    }
    if (mode == FileMode::kRead) {
      if (Ref<NfsFile> f = LookupLocked(Key{export_id, kh, FileMode::kReadWrite}, now)) {
        ++stats_.hits[m];
        return f;
      }
    }
    ++stats_.misses[m];
  }
  // Made outside the lock: two racing misses may both open; the loser's file is
  // used for its one call and closed when it is done.
  ASSIGN_OR_RETURN(Ref<NfsFile> result, make(mode));
  NfsFile* file = result.get();
  file->Get();  // the cache's reference
  std::vector<NfsFile*> dropped;
  {
    absl::MutexLock l(&mu_);
    if (stopping_ || index_.contains(key)) {
      dropped.push_back(file);
    } else {
      lru_.push_front(Entry{key, file, absl::Now()});
      index_.emplace(key, lru_.begin());
      ++stats_.entries[static_cast<size_t>(mode)];
      while (lru_.size() > options_.max_entries) {
        UnhashLocked(std::prev(lru_.end()), dropped);
        ++stats_.evictions;
      }
    }
  }
  DropAll(dropped);
  return result;
}

void FileCache::Close(uint32_t export_id, const KernelHandle& kh) {
  std::vector<NfsFile*> dropped;
  {
    absl::MutexLock l(&mu_);
    for (FileMode m : {FileMode::kRead, FileMode::kReadWrite, FileMode::kPath}) {
      auto it = index_.find(Key{export_id, kh, m});
      if (it != index_.end()) UnhashLocked(it->second, dropped);
    }
    stats_.closed += dropped.size();
  }
  DropAll(dropped);
}

void FileCache::CloseExport(uint32_t export_id) {
  std::vector<NfsFile*> dropped;
  {
    absl::MutexLock l(&mu_);
    for (auto it = lru_.begin(); it != lru_.end();) {
      auto next = std::next(it);
      if (it->key.export_id == export_id) UnhashLocked(it, dropped);
      it = next;
    }
    stats_.closed += dropped.size();
  }
  DropAll(dropped);
}

size_t FileCache::size() const {
  absl::MutexLock l(&mu_);
  return lru_.size();
}

FileCacheStats FileCache::stats() const {
  absl::MutexLock l(&mu_);
  return stats_;
}

void FileCache::Reap(absl::Time now) {
  std::vector<NfsFile*> dropped;
  {
    absl::MutexLock l(&mu_);
    // Oldest at the back: stop at the first entry used recently enough.
    while (!lru_.empty()) {
      auto it = std::prev(lru_.end());
      if (now - it->last_used < options_.idle_timeout) break;
      if (it->file->RefCountForTesting() > 1) {
        // In use right now: counts as used.
        it->last_used = now;
        lru_.splice(lru_.begin(), lru_, it);
        continue;
      }
      UnhashLocked(it, dropped);
    }
    stats_.reaped += dropped.size();
  }
  if (!dropped.empty()) LOG_DEBUG("file cache: closing %d idle files", dropped.size());
  DropAll(dropped);
}

void FileCache::ReapForTesting(absl::Time now) { Reap(now); }

}  // namespace localnfs::server
