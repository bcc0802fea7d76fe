// client_localio/inode_table.h — FUSE inode numbers ↔ NFS file handles for
// localnfs-mount, with the open files of each inode and their silly renames.
//
// Owns: the map fuse_ino_t → {file handle, lookup count, opens, silly name} and its
// reverse (so one file — also under several hard links — has one inode number).
// Implements the FUSE lookup count contract: every successful entry reply (lookup,
// create, mkdir, readdirplus, …) adds one reference with Ref(); forget() drops `nlookup`
// with Forget(); an inode neither referenced nor open is retired. Numbers are never
// reused (a 64-bit counter), so a late forget can never hit a new file. The root
// (kRootIno) is pinned and never forgotten.
//
// Silly rename (the kernel NFS client's fs/nfs/unlink.c, for the same reason): NFS has
// no open state, so a file that loses its last name on the server is gone for every
// open of it. When a name that is about to be unlinked or renamed over names a file
// open through this mount, the mount renames the file to a hidden name instead
// (MakeSillyName) and removes that name at the file's last close. PlanRemove() says
// which to do and pins the open file while the rename is on the wire, so that a last
// close meanwhile cannot miss the name (FinishSillyRename() hands it back then).
//
// Thread-safety: all methods are safe to call concurrently (one mutex). Returned
// handles and names are copies owned by the caller.
#pragma once

#include <stdint.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "client_localio/client.h"

namespace localnfs::client {

// The hidden name an open file gets in place of the one it lost: ".nfs", the fileid in
// 16 hex digits and a counter in 8 (the kernel NFS client's format, 28 characters).
std::string MakeSillyName(uint64_t fileid, uint32_t counter);
// True for every name of that form, whoever made it (also a kernel NFS client).
bool IsSillyName(std::string_view name);

// Where a silly-renamed file is, and who hid it: the REMOVE at its last close acts with
// the credentials of the caller whose unlink or rename made it (as the kernel's does).
struct SillyName {
  FileHandle file;  // the file itself
  FileHandle dir;
  std::string name;
  Credentials cred;
};

class InodeTable {
 public:
  static constexpr uint64_t kRootIno = 1;  // FUSE_ROOT_ID
  // The first number handed out; numbers below it are reserved for virtual files.
  static constexpr uint64_t kFirstIno = 16;

  explicit InodeTable(FileHandle root);

  // One more kernel reference to the inode of `fh` (created if new); its number.
  uint64_t Ref(const FileHandle& fh) ABSL_LOCKS_EXCLUDED(mu_);
  // The handle of `ino`, if the kernel still references it.
  std::optional<FileHandle> Get(uint64_t ino) const ABSL_LOCKS_EXCLUDED(mu_);
  // Drops `nlookup` references; the entry goes at zero unless the inode is open.
  void Forget(uint64_t ino, uint64_t nlookup) ABSL_LOCKS_EXCLUDED(mu_);
  // Inodes currently known (root included).
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

  // ---- open files and silly rename ----

  // One more open of `ino` (open, create: before the server is asked, so that an unlink
  // racing with it sees it). `ino` must be referenced.
  void Open(uint64_t ino) ABSL_LOCKS_EXCLUDED(mu_);
  // One open fewer (release, or an open that failed). At the last close of a
  // silly-renamed inode, returns its hidden name: the caller removes it.
  std::optional<SillyName> Close(uint64_t ino) ABSL_LOCKS_EXCLUDED(mu_);
  // True while any inode is open (only then do unlink and rename look at their victim).
  bool AnyOpen() const ABSL_LOCKS_EXCLUDED(mu_);

  enum class RemovePlan {
    kRemove,       // not open here, or already kept alive by a silly name: remove `name`
    kSillyRename,  // open: rename it to a silly name, then FinishSillyRename()
    kBusy,         // `name` is the file's own silly name (EBUSY, as the kernel)
  };
  // Before `name` in directory `dir`, which names the file `fh`, is unlinked or renamed
  // over. kSillyRename pins the inode (as one more open) until FinishSillyRename().
  RemovePlan PlanRemove(const FileHandle& fh, const FileHandle& dir, std::string_view name)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Ends a kSillyRename of `fh`: `silly` is its new name, nullopt if the rename failed.
  // Returns the name to remove now when the last close came meanwhile.
  std::optional<SillyName> FinishSillyRename(const FileHandle& fh, std::optional<SillyName> silly)
      ABSL_LOCKS_EXCLUDED(mu_);
  // True while `ino` has a silly name: the mount reports its nlink one lower (the hidden
  // name is not a link the caller made), so fstat of an unlinked open file says 0.
  bool SillyRenamed(uint64_t ino) const ABSL_LOCKS_EXCLUDED(mu_);
  // Every silly name still held (the mount is going away, its files with it).
  std::vector<SillyName> TakeSillyNames() ABSL_LOCKS_EXCLUDED(mu_);
  // For the stats file: opens (pins included) and silly names held.
  uint64_t open_count() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t silly_count() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Node {
    FileHandle handle;
    uint64_t nlookup = 0;
    uint32_t opens = 0;          // open files, plus a PlanRemove pin
    bool silly_pending = false;  // a silly rename is on the wire
    std::optional<SillyName> silly;
  };
  using NodeMap = absl::flat_hash_map<uint64_t, Node>;
  // Retires the node at `it` when the kernel neither references nor holds it open.
  void MaybeEraseLocked(NodeMap::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // opens of `n` minus one; at zero, its silly name (taken out of the node).
  std::optional<SillyName> DropOpenLocked(Node& n) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  NodeMap by_ino_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<FileHandle, uint64_t> by_handle_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ ABSL_GUARDED_BY(mu_) = kFirstIno;
  uint64_t open_count_ ABSL_GUARDED_BY(mu_) = 0;  // sum of Node::opens
};

}  // namespace localnfs::client
