// server/backend/posix_backend.h — the Backend over the exported directories, through the
// kernel: what localnfsd serves.
//
// Owns: nothing long-lived. It is the Backend face of what already does the work — the
// system calls of server/backend/vfs.h (lookups confined to the export, creation that undoes
// itself on failure, getdents cookies, metadata commits), the credential switch and the
// mode-bit checks of server/policy/creds.h, and the handle resolution of server/policy/fhandle.h — and
// adds what the interface promises on top: the switch to the caller around each namespace
// operation (the one place it happens for a request that goes through the Backend), the
// metadata commits of `sync`, the remembered locations of every object it hands out when
// the server cannot open_by_handle_at (HandleResolver::Remember/Forget), and attributes as
// backend::Attrs. Nodes are NfsFiles of mode kPath around O_PATH fds; open files are
// NfsFiles around fds opened as the server through /proc/self/fd. It caches nothing:
// CachingBackend (caching_backend.h) does.
//
// Which operations switch to the caller: LOOKUP, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE,
// RENAME, LINK, READDIR (what the NFSv3 program switched for before it moved onto the
// Backend); SETATTR for all its changes, the truncation included (through a file opened
// as the server, so that the kernel clears set-id bits as for a local writer); WRITE,
// ALLOCATE, DEALLOCATE and COPY to a file with set-id bits. Metadata commits run after
// the switch, as the server.
//
// Thread-safety: safe from any thread; the resolver is (fhandle.h). Must not be called
// with the thread's credentials already switched (creds.h: ScopedFsCredentials does not
// nest).
#pragma once

#include <initializer_list>

#include "server/backend/backend.h"
#include "server/policy/fhandle.h"
#include "server/backend/vfs.h"

namespace localnfs::server::backend {

class PosixBackend final : public Backend {
 public:
  // `resolver` (not owned) must outlive the backend.
  explicit PosixBackend(HandleResolver& resolver) : resolver_(resolver) {}

  const char* name() const override { return "posix"; }
  uint32_t capabilities() const override {
    return kCapAllocate | kCapDeallocate | kCapSeek | kCapCopy | kCapClone | kCapLocalIo |
           kCapLocks;
  }

  absl::StatusOr<Object> OpenPath(const exports::Export& exp, std::string_view rel) override;
  absl::StatusOr<Attrs> GetAttr(const Object& obj) override;
  absl::StatusOr<Object> Lookup(const Object& dir, std::string_view name,
                                const Credentials& cred) override;
  absl::StatusOr<Object> Create(const Object& dir, std::string_view name, CreateHow how,
                                const SetAttrRequest& attrs, uint64_t verifier,
                                const Caller& caller) override;
  absl::StatusOr<Object> Mkdir(const Object& dir, std::string_view name,
                               const SetAttrRequest& attrs, const Caller& caller) override;
  absl::StatusOr<Object> Symlink(const Object& dir, std::string_view name,
                                 std::string_view target, const SetAttrRequest& attrs,
                                 const Caller& caller) override;
  absl::StatusOr<Object> Mknod(const Object& dir, std::string_view name, FileType type,
                               uint32_t rdev_major, uint32_t rdev_minor,
                               const SetAttrRequest& attrs, const Caller& caller) override;
  absl::StatusOr<std::optional<Handle>> Remove(const Object& dir, std::string_view name,
                                               RemoveKind kind, const Caller& caller) override;
  absl::StatusOr<std::optional<Handle>> Rename(const Object& from_dir,
                                               std::string_view from_name,
                                               const Object& to_dir, std::string_view to_name,
                                               const Caller& caller) override;
  absl::Status Link(const Object& obj, const Object& dir, std::string_view name,
                    const Caller& caller) override;
  absl::StatusOr<std::string> ReadLink(const Object& obj) override;
  absl::StatusOr<ReadDirResult> ReadDir(const Object& dir, uint64_t cookie, bool plus,
                                        const Credentials& cred,
                                        absl::FunctionRef<bool(const DirEntry&)> emit) override;
  absl::StatusOr<FsStat> StatFs(const Object& obj) override;
  absl::StatusOr<PathConf> GetPathConf(const Object& obj) override;

 protected:
  absl::StatusOr<Ref<NfsFile>> OpenNode(const exports::Export& exp, const Handle& handle,
                                        bool may_search) override;
  absl::StatusOr<Attrs> Validate(const exports::Export& exp, NfsFile& node) override;
  absl::StatusOr<Ref<NfsFile>> OpenFile(const Object& obj, FileMode mode) override;
  absl::StatusOr<ReadResult> ReadFile(NfsFile& file, const Attrs& attrs, uint64_t offset,
                                      absl::Span<char> buf, bool nowait) override;
  absl::StatusOr<WriteResult> WriteFile(NfsFile& file, const Object& obj,
                                        const Credentials& cred, uint64_t offset,
                                        absl::Span<const char> data, Stability stable) override;
  absl::Status SyncFile(NfsFile& file, const Object& obj) override;
  absl::Status ApplySetAttr(const Object& obj, const SetAttrRequest& req, NfsFile* resized,
                            const Caller& caller) override;
  bool server_checks() const override;
  absl::Status AllocateFile(NfsFile& file, const Object& obj, const Credentials& cred,
                            uint64_t offset, uint64_t length, bool punch_hole) override;
  // OFD locks: F_OFD_SETLK, F_OFD_GETLK.
  absl::StatusOr<std::optional<LockConflict>> LockFile(NfsFile& lock_file, LockOp op,
                                                       LockType type, LockRange range) override;
  absl::StatusOr<SeekResult> SeekFile(NfsFile& file, const Object& obj, uint64_t offset,
                                      SeekWhat what) override;
  absl::StatusOr<uint64_t> CopyFile(NfsFile& src, NfsFile& dst, const Object& dst_obj,
                                    const Credentials& cred, uint64_t src_offset,
                                    uint64_t dst_offset, uint64_t count, bool clone) override;

 private:
  // An object a sync operation changed, for CommitMetadata.
  struct Changed {
    const Object& obj;      // its O_PATH fd and attributes (type and identity)
    bool created = false;   // new: left to its directory's commit unless openable
  };
  // With caller.sync: commits `changed` in order as the server (vfs::MetadataCommits) and
  // reports each object once.
  absl::Status CommitMetadata(const exports::Export& exp, std::initializer_list<Changed> changed);
  // CREATE/MKDIR/SYMLINK/MKNOD's last steps: remember, commit, make the Object.
  absl::StatusOr<Object> Made(const Object& dir, std::string_view name,
                              vfs::LookupResult made, const Caller& caller);
  // Unprivileged: where `made` (found as `name` in `dir_fd`) can be opened again.
  void Remember(const exports::Export& exp, const vfs::LookupResult& made, int dir_fd,
                std::string_view name);

  HandleResolver& resolver_;
};

}  // namespace localnfs::server::backend
