#include "client_localio/unstable_writes.h"

#include <iterator>
#include <utility>

#include "absl/cleanup/cleanup.h"

namespace localnfs::client {

std::string BufferPool::Take(size_t size) {
  std::string buf;
  if (size >= kMinPooled) {
    absl::MutexLock l(&mu_);
    if (!free_.empty()) {
      buf = std::move(free_.back());
      free_.pop_back();
      bytes_ -= buf.capacity();
    }
  }
  buf.clear();
  buf.reserve(size);
  return buf;
}

void BufferPool::Give(std::string buf) {
  if (buf.capacity() < kMinPooled) return;
  absl::MutexLock l(&mu_);
  if (bytes_ + buf.capacity() > max_bytes_) return;  // freed after the unlock
  bytes_ += buf.capacity();
  free_.push_back(std::move(buf));
}

size_t BufferPool::pooled_bytes() const {
  absl::MutexLock l(&mu_);
  return bytes_;
}

void FileWrites::Recycle(std::vector<std::string> buffers) {
  if (pool_ == nullptr) return;
  for (std::string& b : buffers) pool_->Give(std::move(b));
}

void FileWrites::Record(uint64_t offset, std::string_view data,
                        const std::optional<WriteVerifier>& verifier,
                        const Credentials& cred) {
  if (data.empty()) return;
  const uint64_t end = offset + data.size();
  // A large write gets its own range, copied here, outside mu_.
  std::string copy;
  const bool own_range = verifier.has_value() && data.size() >= BufferPool::kMinPooled;
  if (own_range) {
    copy = pool_ != nullptr ? pool_->Take(data.size()) : std::string();
    copy.assign(data);
  }
  std::vector<std::string> freed;  // buffers of displaced ranges, recycled after mu_
  absl::Cleanup recycle = [&] { Recycle(std::move(freed)); };
  absl::MutexLock l(&mu_);
  writer_ = cred;
  // A range that starts before `offset` and reaches into [offset, end): keep its head,
  // and its tail if it extends past `end`.
  auto it = ranges_.lower_bound(offset);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    Range& p = prev->second;
    const uint64_t p_end = p.offset + p.data.size();
    if (p_end > offset) {
      if (p_end > end) {
        Range tail{end, p.data.substr(end - p.offset), p.verifier, p.recorded};
        ranges_.emplace(end, std::move(tail));
      }
      pending_bytes_ -= p_end - offset;
      if (p_end > end) pending_bytes_ += p_end - end;  // the tail stays pending
      p.data.resize(offset - p.offset);
    }
  }
  // Ranges that start inside [offset, end): drop them, keeping a tail past `end`.
  it = ranges_.lower_bound(offset);
  while (it != ranges_.end() && it->first < end) {
    Range& r = it->second;
    const uint64_t r_end = r.offset + r.data.size();
    pending_bytes_ -= r.data.size();
    if (r_end > end) {
      Range tail{end, r.data.substr(end - r.offset), r.verifier, r.recorded};
      pending_bytes_ += tail.data.size();
      freed.push_back(std::move(r.data));
      it = ranges_.erase(it);
      ranges_.emplace(end, std::move(tail));
      break;
    }
    freed.push_back(std::move(r.data));
    it = ranges_.erase(it);
  }
  if (!verifier.has_value()) return;
  pending_bytes_ += data.size();
  const uint64_t recorded = next_recorded_++;
  if (own_range) {
    ranges_.emplace(offset, Range{offset, std::move(copy), *verifier, recorded});
    return;
  }
  // Small sequential writes with one verifier grow one range instead of many.
  it = ranges_.lower_bound(offset);
  if (it != ranges_.begin()) {
    Range& p = std::prev(it)->second;
    if (p.offset + p.data.size() == offset && p.verifier == *verifier &&
        p.data.size() + data.size() <= kMaxMergedBytes) {
      p.data.append(data);
      p.recorded = recorded;
      return;
    }
  }
  ranges_.emplace(offset, Range{offset, std::string(data), *verifier, recorded});
}

uint64_t FileWrites::WrittenSoFar() const {
  absl::MutexLock l(&mu_);
  return next_recorded_;
}

bool FileWrites::CommitWrittenBefore(uint64_t point, const WriteVerifier& committed) {
  std::vector<std::string> freed;
  absl::Cleanup recycle = [&] { Recycle(std::move(freed)); };
  absl::MutexLock l(&mu_);
  bool all_matched = true;
  for (auto it = ranges_.begin(); it != ranges_.end();) {
    if (it->second.recorded >= point) {
      ++it;
    } else if (it->second.verifier != committed) {
      all_matched = false;
      ++it;
    } else {
      pending_bytes_ -= it->second.data.size();
      freed.push_back(std::move(it->second.data));
      it = ranges_.erase(it);
    }
  }
  return all_matched;
}

std::vector<FileWrites::Range> FileWrites::Commit(const WriteVerifier& committed) {
  std::vector<std::string> freed;
  absl::Cleanup recycle = [&] { Recycle(std::move(freed)); };
  absl::MutexLock l(&mu_);
  std::vector<Range> stale;
  for (auto it = ranges_.begin(); it != ranges_.end();) {
    if (it->second.verifier == committed) {
      pending_bytes_ -= it->second.data.size();
      freed.push_back(std::move(it->second.data));
      it = ranges_.erase(it);
    } else {
      stale.push_back(it->second);
      ++it;
    }
  }
  return stale;
}

void FileWrites::Clear() {
  std::vector<std::string> freed;
  absl::Cleanup recycle = [&] { Recycle(std::move(freed)); };
  absl::MutexLock l(&mu_);
  for (auto& [off, r] : ranges_) freed.push_back(std::move(r.data));
  ranges_.clear();
  pending_bytes_ = 0;
}

uint64_t FileWrites::pending_bytes() const {
  absl::MutexLock l(&mu_);
  return pending_bytes_;
}

size_t FileWrites::range_count() const {
  absl::MutexLock l(&mu_);
  return ranges_.size();
}

Credentials FileWrites::writer() const {
  absl::MutexLock l(&mu_);
  return writer_;
}

std::vector<FileWrites::Range> FileWrites::Snapshot() const {
  absl::MutexLock l(&mu_);
  std::vector<Range> out;
  for (const auto& [off, r] : ranges_) out.push_back(r);
  return out;
}

std::shared_ptr<FileWrites> UnstableWrites::Get(const FileHandle& fh) {
  absl::MutexLock l(&mu_);
  auto& slot = files_[fh];
  if (slot == nullptr) slot = std::make_shared<FileWrites>(&pool_);
  return slot;
}

std::shared_ptr<FileWrites> UnstableWrites::Find(const FileHandle& fh) const {
  absl::MutexLock l(&mu_);
  auto it = files_.find(fh);
  return it == files_.end() ? nullptr : it->second;
}

void UnstableWrites::MaybeErase(const FileHandle& fh, std::shared_ptr<FileWrites> state) {
  absl::MutexLock l(&mu_);
  state.reset();
  auto it = files_.find(fh);
  if (it == files_.end()) return;
  // References are only copied under mu_, so use_count() == 1 here means no other
  // thread holds this state and none can get it before we erase it.
  if (it->second.use_count() == 1 && it->second->pending_bytes() == 0) files_.erase(it);
}

}  // namespace localnfs::client
