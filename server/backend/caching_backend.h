// server/backend/caching_backend.h — the caching layer: a Backend over another that keeps
// hot objects resolved and hot files open (knfsd's filecache + the dentry cache's role for
// fh_verify; NFS-Ganesha's MDCACHE stacked over an FSAL, without its attribute cache).
//
// Owns: the FileCache (file_cache.h, whose essay gives the lifetimes: who holds which
// reference, when an fd closes, what the reaper evicts) holding, per (export id, handle):
//  * kPath: the inner backend's node of the object, so that a handle in use is resolved by
//    handle once (open_by_handle_at, or an unprivileged search), not on every request.
//    Resolve() validates it on every use (the inner backend's Validate: one statx,
//    CheckResolved); one found stale is dropped, so later requests do not find it either.
//    LOOKUP, CREATE, MKDIR, SYMLINK, MKNOD and MOUNT's OpenPath put the node they made
//    into it (the client uses a handle it was just given next).
//  * kRead, kReadWrite: open files, for READ, WRITE, COMMIT, SETATTR's truncation and
//    the v4.2 operations. A read may use a read-write file. LOCALIO's OpenForLocalIo
//    resolves through the cache (the node) but gives each client a file of its own, never
//    a cached one (backend.h: a shared open file description's status flags are the
//    client's to change).
// REMOVE and RENAME drop every entry of an object that lost its last link, so its blocks
// are freed once in-flight I/O finishes. CloseExport() drops an export's (unexport).
//
// What it does not cache: attributes (each request takes its own: the one statx of
// Resolve), permissions or any access decision, directory contents.
//
// Lifetimes: the inner backend must outlive it. Start() starts the reaper; Shutdown()
// stops it and drops every entry — call it after the server stopped serving (file_cache.h).
//
// Thread-safety: as every Backend (backend.h); the cache has its own lock.
#pragma once

#include "server/backend/backend.h"
#include "server/backend/file_cache.h"

namespace localnfs::server::backend {

class CachingBackend final : public Backend {
 public:
  CachingBackend(Backend& inner, FileCacheOptions options);
  ~CachingBackend() override;

  void Start() { cache_.Start(); }
  void Shutdown() { cache_.Shutdown(); }
  // Drops every entry of an export (removed on reload).
  void CloseExport(uint32_t export_id) { cache_.CloseExport(export_id); }
  FileCache& file_cache() { return cache_; }
  const FileCache& file_cache() const { return cache_; }
  Backend& inner() { return inner_; }

  const char* name() const override { return "caching"; }
  uint32_t capabilities() const override { return inner_.capabilities(); }

  absl::StatusOr<Object> Resolve(const exports::Export& exp, Handle handle,
                                 bool may_search = true) override;
  absl::StatusOr<Object> OpenPath(const exports::Export& exp, std::string_view rel) override;
  absl::StatusOr<Attrs> GetAttr(const Object& obj) override { return inner_.GetAttr(obj); }
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
                    const Caller& caller) override {
    return inner_.Link(obj, dir, name, caller);
  }
  absl::StatusOr<std::string> ReadLink(const Object& obj) override {
    return inner_.ReadLink(obj);
  }
  absl::StatusOr<ReadDirResult> ReadDir(const Object& dir, uint64_t cookie, bool plus,
                                        const Credentials& cred,
                                        absl::FunctionRef<bool(const DirEntry&)> emit) override {
    return inner_.ReadDir(dir, cookie, plus, cred, emit);
  }
  absl::StatusOr<FsStat> StatFs(const Object& obj) override { return inner_.StatFs(obj); }
  absl::StatusOr<PathConf> GetPathConf(const Object& obj) override {
    return inner_.GetPathConf(obj);
  }
  void set_commit_observer(CommitObserver* observer) override {
    inner_.set_commit_observer(observer);
  }

 protected:
  absl::StatusOr<Ref<NfsFile>> OpenNode(const exports::Export& exp, const Handle& handle,
                                        bool may_search) override {
    return inner_.OpenNode(exp, handle, may_search);
  }
  absl::StatusOr<Attrs> Validate(const exports::Export& exp, NfsFile& node) override {
    return inner_.Validate(exp, node);
  }
  absl::StatusOr<Ref<NfsFile>> AcquireFile(const Object& obj, FileMode mode) override;
  absl::StatusOr<Ref<NfsFile>> OpenFile(const Object& obj, FileMode mode) override {
    return inner_.OpenFile(obj, mode);
  }
  absl::StatusOr<ReadResult> ReadFile(NfsFile& file, const Attrs& attrs, uint64_t offset,
                                      absl::Span<char> buf, bool nowait) override {
    return inner_.ReadFile(file, attrs, offset, buf, nowait);
  }
  absl::StatusOr<WriteResult> WriteFile(NfsFile& file, const Object& obj,
                                        const Credentials& cred, uint64_t offset,
                                        absl::Span<const char> data, Stability stable) override {
    return inner_.WriteFile(file, obj, cred, offset, data, stable);
  }
  absl::Status SyncFile(NfsFile& file, const Object& obj) override {
    return inner_.SyncFile(file, obj);
  }
  absl::Status ApplySetAttr(const Object& obj, const SetAttrRequest& req, NfsFile* resized,
                            const Caller& caller) override {
    return inner_.ApplySetAttr(obj, req, resized, caller);
  }
  bool server_checks() const override { return inner_.server_checks(); }
  absl::Status AllocateFile(NfsFile& file, const Object& obj, const Credentials& cred,
                            uint64_t offset, uint64_t length, bool punch_hole) override {
    return inner_.AllocateFile(file, obj, cred, offset, length, punch_hole);
  }
  absl::StatusOr<std::optional<LockConflict>> LockFile(NfsFile& lock_file, LockOp op,
                                                       LockType type, LockRange range) override {
    return inner_.LockFile(lock_file, op, type, range);
  }
  absl::StatusOr<SeekResult> SeekFile(NfsFile& file, const Object& obj, uint64_t offset,
                                      SeekWhat what) override {
    return inner_.SeekFile(file, obj, offset, what);
  }
  absl::StatusOr<uint64_t> CopyFile(NfsFile& src, NfsFile& dst, const Object& dst_obj,
                                    const Credentials& cred, uint64_t src_offset,
                                    uint64_t dst_offset, uint64_t count, bool clone) override {
    return inner_.CopyFile(src, dst, dst_obj, cred, src_offset, dst_offset, count, clone);
  }

 private:
  // Puts a node the inner backend just made into the cache (unless one is there).
  absl::StatusOr<Object> Keep(absl::StatusOr<Object> made);
  // Drops every entry of an object that lost its last link.
  void Forget(const exports::Export& exp, const std::optional<Handle>& gone);

  Backend& inner_;
  FileCache cache_;
};

}  // namespace localnfs::server::backend
