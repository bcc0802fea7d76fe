// client_localio/inode_table.h — FUSE inode numbers ↔ NFS file handles for
// localnfs-mount.
//
// Owns: the map fuse_ino_t → {file handle, lookup count} and its reverse (so one file —
// also under several hard links — has one inode number). Implements the FUSE lookup
// count contract: every successful entry reply (lookup, create, mkdir, readdirplus, …)
// adds one reference with Ref(); forget() drops `nlookup` with Forget(); at zero the
// inode number is retired. Numbers are never reused (a 64-bit counter), so a late
// forget can never hit a new file. The root (kRootIno) is pinned and never forgotten.
//
// Thread-safety: all methods are safe to call concurrently (one mutex). Returned
// handles are copies owned by the caller.
#pragma once

#include <stdint.h>

#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "client_localio/client.h"

namespace localnfs::client {

class InodeTable {
 public:
  static constexpr uint64_t kRootIno = 1;  // FUSE_ROOT_ID
  // The first number handed out; numbers below it are reserved for virtual files.
  static constexpr uint64_t kFirstIno = 16;

  explicit InodeTable(FileHandle root);

  // One more kernel reference to the inode of `fh` (created if new); its number.
  uint64_t Ref(const FileHandle& fh);
  // The handle of `ino`, if the kernel still references it.
  std::optional<FileHandle> Get(uint64_t ino) const;
  // Drops `nlookup` references; the entry goes at zero.
  void Forget(uint64_t ino, uint64_t nlookup);
  // Inodes currently known (root included).
  size_t size() const;

 private:
  struct Node {
    FileHandle handle;
    uint64_t nlookup = 0;
  };
  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, Node> by_ino_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<FileHandle, uint64_t> by_handle_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ ABSL_GUARDED_BY(mu_) = kFirstIno;
};

}  // namespace localnfs::client
