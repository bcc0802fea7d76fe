#include "client_localio/inode_table.h"

namespace localnfs::client {

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

void InodeTable::Forget(uint64_t ino, uint64_t nlookup) {
  if (ino == kRootIno) return;
  absl::MutexLock l(&mu_);
  auto it = by_ino_.find(ino);
  if (it == by_ino_.end()) return;
  Node& n = it->second;
  n.nlookup = nlookup >= n.nlookup ? 0 : n.nlookup - nlookup;
  if (n.nlookup > 0) return;
  by_handle_.erase(n.handle);
  by_ino_.erase(it);
}

size_t InodeTable::size() const {
  absl::MutexLock l(&mu_);
  return by_ino_.size();
}

}  // namespace localnfs::client
