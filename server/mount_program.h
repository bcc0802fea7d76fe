// server/mount_program.h — MOUNT version 3 (program 100005, RFC 1813 appendix I).
//
// Owns: the list of mounts recorded by MNT (host, path) and removed by UMNT/UMNTALL
// (what DUMP reports; advisory, like rmtab), and per-procedure call counters. Not
// owned: the export table, the handle key and resolver (they outlive the program).
//
// MNT: the path is an export's path exactly, or a directory below an export, which
// is resolved beneath the export root without following any symlink (openat2
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS); the longest matching export wins. No path →
// MNT3ERR_NOENT; no client rule for the peer (or `secure` and a peer port ≥ 1024) →
// MNT3ERR_ACCES; not a directory → MNT3ERR_NOTDIR. The reply carries the directory's
// handle and the flavor list [AUTH_SYS].
//
// Thread-safety: Dispatch() is safe concurrently; the mount list has its own mutex.
#pragma once

#include <stdint.h>

#include <array>
#include <atomic>
#include <set>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "export_cache/export.h"
#include "rpc/mount3.h"
#include "rpc/program.h"
#include "server/fhandle.h"

namespace localnfs::server {

inline constexpr uint32_t kMountProcCount = 6;

class MountProgram : public rpc::Program {
 public:
  struct Deps {
    exports::ExportTable* exports = nullptr;
    const HandleKey* key = nullptr;
    HandleResolver* resolver = nullptr;
  };
  explicit MountProgram(Deps deps) : deps_(deps) {}

  uint32_t prog() const override { return MOUNT_PROGRAM; }
  uint32_t vers() const override { return MOUNT_V3; }
  const char* name() const override { return "mount"; }
  uint32_t proc_count() const override { return kMountProcCount; }
  const rpc::ProcXdr* procedure(uint32_t proc) const override;
  rpc::DispatchResult Dispatch(rpc::CallContext& ctx, void* args, void* result) override;

  uint64_t calls(uint32_t proc) const {
    return proc < kMountProcCount ? calls_[proc].load(std::memory_order_relaxed) : 0;
  }

 private:
  void Mnt(rpc::CallContext& ctx, const char* path, mountres3& res);
  void Dump(mountlist& res);
  void Umnt(rpc::CallContext& ctx, const char* path);
  void UmntAll(rpc::CallContext& ctx);
  void Export(exportlist3& res);

  Deps deps_;
  std::array<std::atomic<uint64_t>, kMountProcCount> calls_{};
  absl::Mutex mu_;
  std::set<std::pair<std::string, std::string>> mounts_ ABSL_GUARDED_BY(mu_);  // host, path
};

}  // namespace localnfs::server
