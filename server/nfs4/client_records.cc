// server/nfs4/client_records.cc — the client records file (see client_records.h).
#include "server/nfs4/client_records.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace localnfs::server::nfs4 {
namespace {

constexpr char kRecordsMagic[] = "LNFS4CL1";
constexpr size_t kRecordsMagicSize = sizeof(kRecordsMagic) - 1;
constexpr size_t kRecordHeaderSize = 16;  // flavor, uid, gid, owner length

void AppendLe32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void AppendLe64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
uint32_t LoadLe32(std::string_view b, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<uint8_t>(b[at + i])} << (8 * i);
  return v;
}
uint64_t LoadLe64(std::string_view b, size_t at) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>(b[at + i])} << (8 * i);
  return v;
}

uint64_t RecordsChecksum(std::string_view b) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : b) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace

std::string EncodeClientRecords(const std::vector<ClientRecord>& records) {
  std::string out(kRecordsMagic, kRecordsMagicSize);
  AppendLe32(&out, static_cast<uint32_t>(records.size()));
  for (const ClientRecord& r : records) {
    AppendLe32(&out, static_cast<uint32_t>(r.principal.flavor));
    AppendLe32(&out, r.principal.uid);
    AppendLe32(&out, r.principal.gid);
    AppendLe32(&out, static_cast<uint32_t>(r.owner.size()));
    out += r.owner;
  }
  AppendLe64(&out, RecordsChecksum(out));
  return out;
}

namespace {

absl::Status DecodeRecordsInto(std::string_view bytes, size_t max_records, std::vector<ClientRecord>* out,
                        bool* truncated) {
  if (bytes.size() < kRecordsMagicSize + 4 + 8 || bytes.substr(0, kRecordsMagicSize) != kRecordsMagic)
    return absl::DataLossError("not a client records file (no LNFS4CL1 header)");
  const std::string_view body = bytes.substr(0, bytes.size() - 8);
  if (LoadLe64(bytes, body.size()) != RecordsChecksum(body)) return absl::DataLossError("checksum mismatch");
  const uint32_t count = LoadLe32(body, kRecordsMagicSize);
  size_t at = kRecordsMagicSize + 4;
  for (uint32_t i = 0; i < count; ++i) {
    if (body.size() - at < kRecordHeaderSize)
      return absl::DataLossError(absl::StrCat("record ", i, " of ", count, " cut short"));
    const uint32_t flavor = LoadLe32(body, at);
    const uint32_t uid = LoadLe32(body, at + 4);
    const uint32_t gid = LoadLe32(body, at + 8);
    const uint32_t len = LoadLe32(body, at + 12);
    at += kRecordHeaderSize;
    if (len == 0 || len > NFS4_OPAQUE_LIMIT || body.size() - at < len)
      return absl::DataLossError(absl::StrCat("record ", i, ": bad owner length ", len));
    if (out->size() < max_records) {
      out->push_back(ClientRecord{std::string(body.substr(at, len)),
                                  Principal{static_cast<rpc::AuthFlavor>(flavor), uid, gid}});
    } else {
      *truncated = true;
    }
    at += len;
  }
  if (at != body.size())
    return absl::DataLossError(absl::StrCat(body.size() - at, " bytes after the records"));
  return absl::OkStatus();
}

}  // namespace

absl::Status DecodeClientRecords(std::string_view bytes, size_t max_records,
                                 std::vector<ClientRecord>* out, bool* truncated) {
  out->clear();
  *truncated = false;
  absl::Status s = DecodeRecordsInto(bytes, max_records, out, truncated);
  if (!s.ok()) out->clear();  // all or nothing
  return s;
}

ClientRecordFile::ClientRecordFile(std::string dir, size_t max_records) : dir_(std::move(dir)) {
  const std::string file = path();
  UniqueFd fd(open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    if (errno != ENOENT) LOG_ERROR("%s: %s: read as no client records", file, strerror(errno));
    return;
  }
  // Bounded read: the largest file as many records as the default client bound (or
  // this run's, if larger) can make. Records beyond max_records are cut when decoded.
  const size_t limit = kRecordsMagicSize + 4 +
                       std::max<size_t>(max_records, 1024) * (kRecordHeaderSize + NFS4_OPAQUE_LIMIT) +
                       8;
  std::string bytes;
  char buf[65536];
  for (;;) {
    const ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      LOG_ERROR("%s: %s: read as no client records", file, strerror(errno));
      return;
    }
    if (n == 0) break;
    bytes.append(buf, static_cast<size_t>(n));
    if (bytes.size() > limit) {
      LOG_ERROR(
          "%s: larger than %d bytes, more than the records can be: read as no client "
          "records",
          file, limit);
      return;
    }
  }
  bool truncated = false;
  if (absl::Status s = DecodeClientRecords(bytes, max_records, &loaded_, &truncated); !s.ok()) {
    LOG_ERROR("%s: %s: read as no client records", file, s.message());
    loaded_.clear();
    return;
  }
  if (truncated)
    LOG_WARNING("%s: more client records than the %d kept: the rest are forgotten", file,
                max_records);
  absl::MutexLock l(&mu_);
  for (const ClientRecord& r : loaded_) records_[r.owner] = r.principal;
  // Read as it is on disk, nothing to write until something changes (a cut set is
  // rewritten at the first change).
}

std::string ClientRecordFile::path() const { return absl::StrCat(dir_, "/", kFileName); }

void ClientRecordFile::Put(const ClientRecord& r) {
  absl::MutexLock l(&mu_);
  auto [it, added] = records_.try_emplace(r.owner, r.principal);
  if (!added) {
    if (it->second == r.principal) return;
    it->second = r.principal;
  }
  ++generation_;
}

void ClientRecordFile::Remove(std::string_view owner) {
  absl::MutexLock l(&mu_);
  if (records_.erase(std::string(owner)) != 0) ++generation_;
}

std::vector<ClientRecord> ClientRecordFile::records() const {
  absl::MutexLock l(&mu_);
  std::vector<ClientRecord> out;
  for (const auto& [owner, who] : records_) out.push_back(ClientRecord{owner, who});
  return out;
}

uint64_t ClientRecordFile::writes() const {
  absl::MutexLock l(&mu_);
  return writes_;
}

absl::Status ClientRecordFile::Flush() {
  absl::MutexLock w(&write_mu_);
  uint64_t generation;
  std::vector<ClientRecord> snapshot;
  {
    absl::MutexLock l(&mu_);
    generation = generation_;
    if (generation == written_) return absl::OkStatus();
    for (const auto& [owner, who] : records_) snapshot.push_back(ClientRecord{owner, who});
  }
  absl::Status s = Write(EncodeClientRecords(snapshot));
  if (!s.ok()) {
    LOG_ERROR("nfs4 client records: %s (kept in memory; written at the next change)", s.message());
    return s;
  }
  written_ = generation;
  absl::MutexLock l(&mu_);
  ++writes_;
  return absl::OkStatus();
}

absl::Status ClientRecordFile::Write(const std::string& bytes) {
  const std::string file = path();
  const std::string tmp = absl::StrCat(file, ".tmp");
  {
    UniqueFd out(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!out) return ErrnoToStatus(errno, absl::StrCat("create ", tmp));
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = write(out.get(), bytes.data() + done, bytes.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoToStatus(errno, absl::StrCat("write ", tmp));
      }
      done += static_cast<size_t>(n);
    }
    if (fsync(out.get()) != 0) return ErrnoToStatus(errno, absl::StrCat("fsync ", tmp));
  }
  if (rename(tmp.c_str(), file.c_str()) != 0)
    return ErrnoToStatus(errno, absl::StrCat("rename ", tmp));
  // The rename itself is durable only once the directory is.
  UniqueFd dir(open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return ErrnoToStatus(errno, absl::StrCat("open ", dir_));
  if (fsync(dir.get()) != 0) return ErrnoToStatus(errno, absl::StrCat("fsync ", dir_));
  return absl::OkStatus();
}

}  // namespace localnfs::server::nfs4
