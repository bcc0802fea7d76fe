#include "client_localio/inode_table.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"

namespace localnfs::client {

namespace {
constexpr std::string_view kSillyPrefix = ".nfs";
constexpr size_t kSillyHexDigits = 16 + 8;
}  // namespace

std::string MakeSillyName(uint64_t fileid, uint32_t counter) {
  return absl::StrFormat("%s%016x%08x", kSillyPrefix, fileid, counter);
}

bool IsSillyName(std::string_view name) {
  if (name.size() != kSillyPrefix.size() + kSillyHexDigits ||
      name.substr(0, kSillyPrefix.size()) != kSillyPrefix) {
    return false;
  }
  for (char c : name.substr(kSillyPrefix.size())) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

InodeTable::InodeTable(FileHandle root) {
  by_ino_[kRootIno] = Node{root, 1};
  by_handle_[root] = kRootIno;
}

uint64_t InodeTable::Ref(const FileHandle& fh) {
  absl::MutexLock l(&mu_);
  auto it = by_handle_.find(fh);
  if (it != by_handle_.end()) {
    if (it->second != kRootIno) ++by_ino_[it->second].nlookup;
    return it->second;
  }
  const uint64_t ino = next_++;
  by_ino_[ino] = Node{fh, 1};
  by_handle_[fh] = ino;
  return ino;
}

std::optional<FileHandle> InodeTable::Get(uint64_t ino) const {
  absl::MutexLock l(&mu_);
  auto it = by_ino_.find(ino);
  if (it == by_ino_.end()) return std::nullopt;
  return it->second.handle;
}

void InodeTable::MaybeEraseLocked(NodeMap::iterator it) {
  if (it->first == kRootIno || it->second.nlookup > 0 || it->second.opens > 0) return;
  by_handle_.erase(it->second.handle);
  by_ino_.erase(it);
}

void InodeTable::Forget(uint64_t ino, uint64_t nlookup) {
  if (ino == kRootIno) return;
  absl::MutexLock l(&mu_);
  auto it = by_ino_.find(ino);
  if (it == by_ino_.end()) return;
  Node& n = it->second;
  n.nlookup = nlookup >= n.nlookup ? 0 : n.nlookup - nlookup;
  MaybeEraseLocked(it);
}

size_t InodeTable::size() const {
  absl::MutexLock l(&mu_);
  return by_ino_.size();
}

void InodeTable::Open(uint64_t ino) {
  absl::MutexLock l(&mu_);
  auto it = by_ino_.find(ino);
  if (it == by_ino_.end()) return;
  ++it->second.opens;
  ++open_count_;
}

std::optional<SillyName> InodeTable::DropOpenLocked(Node& n) {
  if (n.opens == 0) return std::nullopt;
  --n.opens;
  --open_count_;
  if (n.opens > 0 || !n.silly) return std::nullopt;
  std::optional<SillyName> out = std::move(n.silly);
  n.silly.reset();
  return out;
}

std::optional<SillyName> InodeTable::Close(uint64_t ino) {
  absl::MutexLock l(&mu_);
  auto it = by_ino_.find(ino);
  if (it == by_ino_.end()) return std::nullopt;
  std::optional<SillyName> out = DropOpenLocked(it->second);
  MaybeEraseLocked(it);
  return out;
}

bool InodeTable::AnyOpen() const {
  absl::MutexLock l(&mu_);
  return open_count_ > 0;
}

InodeTable::RemovePlan InodeTable::PlanRemove(const FileHandle& fh, const FileHandle& dir,
                                              std::string_view name) {
  absl::MutexLock l(&mu_);
  auto h = by_handle_.find(fh);
  if (h == by_handle_.end()) return RemovePlan::kRemove;
  Node& n = by_ino_[h->second];
  if (n.silly && n.silly->dir == dir && n.silly->name == name) return RemovePlan::kBusy;
  if (n.silly || n.silly_pending || n.opens == 0) return RemovePlan::kRemove;
  n.silly_pending = true;
  ++n.opens;
  ++open_count_;
  return RemovePlan::kSillyRename;
}

std::optional<SillyName> InodeTable::FinishSillyRename(const FileHandle& fh,
                                                       std::optional<SillyName> silly) {
  absl::MutexLock l(&mu_);
  auto h = by_handle_.find(fh);
  if (h == by_handle_.end()) return silly;  // not pinned: cannot happen; never leak it
  auto it = by_ino_.find(h->second);
  Node& n = it->second;
  n.silly_pending = false;
  if (silly) n.silly = std::move(silly);
  std::optional<SillyName> out = DropOpenLocked(n);
  MaybeEraseLocked(it);
  return out;
}

bool InodeTable::SillyRenamed(uint64_t ino) const {
  absl::MutexLock l(&mu_);
  auto it = by_ino_.find(ino);
  return it != by_ino_.end() && it->second.silly.has_value();
}

std::vector<SillyName> InodeTable::TakeSillyNames() {
  absl::MutexLock l(&mu_);
  std::vector<SillyName> out;
  for (auto& [ino, n] : by_ino_) {
    if (n.silly) out.push_back(*std::move(n.silly));
    n.silly.reset();
  }
  return out;
}

uint64_t InodeTable::open_count() const {
  absl::MutexLock l(&mu_);
  return open_count_;
}

size_t InodeTable::silly_count() const {
  absl::MutexLock l(&mu_);
  size_t n = 0;
  for (const auto& [ino, node] : by_ino_) n += node.silly.has_value() ? 1 : 0;
  return n;
}

}  // namespace localnfs::client
