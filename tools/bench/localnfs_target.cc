// tools/bench/localnfs_target.cc — the nfs:// target: our own NFSv3 client library
// (client_localio/client.h), over RPC or with the LOCALIO data path installed.
//
// Queue depth is threads making blocking calls; the client gets one connection per
// thread (its pool serialises calls per connection), so N threads really have N calls
// in flight. Describe() reports the data path's counters, so a figure labelled LOCALIO
// shows how many of its calls were actually local.
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "client_localio/client.h"
#include "client_localio/localio_data_path.h"
#include "common/status.h"
#include "tools/bench/targets.h"

namespace localnfs::bench {
namespace {

using client::CreateMode;
using client::Entry;
using client::FileHandle;
using client::Nfs3Client;

constexpr uint32_t kNfs3ErrNoent = 2;

class LocalnfsTarget final : public ThreadedTarget {
 public:
  LocalnfsTarget(std::unique_ptr<Nfs3Client> nfs, client::LocalioDataPath* localio,
                 int connections)
      : nfs_(std::move(nfs)), localio_(localio), connections_(connections) {
    cred_.uid = getuid();
    cred_.gid = getgid();
  }

  std::string Describe() const override {
    client::IoCounters c = nfs_->Counters();
    std::string calls = absl::StrCat("data calls: ", c.local_reads + c.local_writes +
                                     c.local_commits, " local, ",
                                     c.rpc_reads + c.rpc_writes + c.rpc_commits, " RPC");
    if (localio_ == nullptr)
      return absl::StrCat("localnfs client over RPC, ", connections_,
                          connections_ == 1 ? " connection; " : " connections; ", calls);
    return absl::StrCat("localnfs client with LOCALIO, ", localio_->Describe(), "; ", calls,
                        ", ", c.local_fallbacks, " fallbacks");
  }

  absl::Status PrepareReadFile(const std::string& name, uint64_t size) override {
    absl::StatusOr<Entry> found = nfs_->Lookup(nfs_->root(), name, cred_);
    if (!found.ok() && client::NfsStatusOf(found.status()) == kNfs3ErrNoent)
      found = nfs_->Create(nfs_->root(), name, CreateMode::kUnchecked, 0644, cred_);
    RETURN_IF_ERROR(found.status());
    file_ = found->handle;
    if (found->attributes.size < size) {
      constexpr uint32_t kChunk = 1 << 20;
      const std::string pattern = FillPattern(kChunk);
      for (uint64_t off = 0; off < size; off += kChunk) {
        size_t n = std::min<uint64_t>(kChunk, size - off);
        RETURN_IF_ERROR(
            nfs_->Write(file_, off, std::string_view(pattern.data(), n), cred_).status());
      }
      RETURN_IF_ERROR(nfs_->Commit(file_, cred_).status());
    }
    return absl::OkStatus();
  }

  absl::Status PrepareWriteFile(const std::string& name) override {
    RETURN_IF_ERROR(RemoveFile(name));
    ASSIGN_OR_RETURN(Entry e,
                     nfs_->Create(nfs_->root(), name, CreateMode::kGuarded, 0644, cred_));
    file_ = e.handle;
    return absl::OkStatus();
  }

  absl::Status RemoveFile(const std::string& name) override {
    absl::Status s = nfs_->Remove(nfs_->root(), name, cred_);
    if (!s.ok() && client::NfsStatusOf(s) != kNfs3ErrNoent) return s;
    return absl::OkStatus();
  }

 protected:
  absl::Status Read(uint64_t offset, uint32_t length, char* buffer) override {
    // Into the benchmark's buffer, as an application reading into its own buffer would
    // (with LOCALIO: one pread, no allocation).
    ASSIGN_OR_RETURN(client::ReadIntoResult r,
                     nfs_->ReadInto(file_, offset, absl::Span<char>(buffer, length), cred_));
    if (r.count != length) return absl::OutOfRangeError("short READ");
    return absl::OkStatus();
  }

  absl::Status Write(uint64_t offset, absl::string_view data) override {
    return nfs_->Write(file_, offset, std::string_view(data.data(), data.size()), cred_)
        .status();
  }

  absl::Status Commit() override { return nfs_->Commit(file_, cred_).status(); }

  absl::Status MetaCycle(const std::string& name) override {
    ASSIGN_OR_RETURN(Entry e,
                     nfs_->Create(nfs_->root(), name, CreateMode::kGuarded, 0644, cred_));
    RETURN_IF_ERROR(nfs_->GetAttr(e.handle, cred_).status());
    return nfs_->Remove(nfs_->root(), name, cred_);
  }

 private:
  const std::unique_ptr<Nfs3Client> nfs_;
  client::LocalioDataPath* const localio_;  // owned by nfs_; null over plain RPC
  const int connections_;
  Credentials cred_;
  FileHandle file_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Target>> OpenLocalnfsTarget(const TargetUrl& url,
                                                           int queue_depth) {
  ASSIGN_OR_RETURN(client::LocalioMode mode, client::ParseLocalioMode(url.localio));
  client::MountOptions options;
  options.connections = std::max(1, queue_depth);
  options.mount_credentials.uid = getuid();
  options.mount_credentials.gid = getgid();
  ASSIGN_OR_RETURN(std::unique_ptr<Nfs3Client> nfs,
                   Nfs3Client::Mount(url.host, url.nfs_port, url.mount_port, url.path, options));
  client::LocalioDataPath* localio = nullptr;
  if (mode != client::LocalioMode::kOff) {
    client::LocalioOptions lo;
    lo.mode = mode;
    lo.runtime_dir = url.runtime_dir;
    ASSIGN_OR_RETURN(localio, client::LocalioDataPath::Install(nfs.get(), lo));
  }
  return std::make_unique<LocalnfsTarget>(std::move(nfs), localio, options.connections);
}

}  // namespace localnfs::bench
