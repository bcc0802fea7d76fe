// server/nfs4/client_records.h — the NFSv4 client records kept in --state-dir across
// restarts (RFC 8881 §8.4.2.1: what a server keeps on stable storage so that after a
// restart it knows which clients may reclaim; knfsd's nfsdcld database). A record is
// a client's co_ownerid bytes and its principal — never open or lock state, which the
// clients themselves reclaim (Nfs4State decides when a record is written and removed,
// state.h "Restart and grace").
//
// Owns: the records in memory (owner → record) and the file <state-dir>/nfs4-clients.
//
// The file is rewritten whole on every change: written to nfs4-clients.tmp, fsync'd,
// renamed over nfs4-clients, and the directory fsync'd — so after a crash the file is
// the old set or the new one, never a mix. Why not an append log: the records are few
// and bounded (Nfs4State's max_clients; a Linux owner string is ~50 bytes) and change
// only when a client mounts, unmounts or expires, so a rewrite costs little; the file
// is then always one complete snapshot with one checksum, and there is no torn tail to
// recover and no compaction to run.
//
// Format (little-endian): "LNFS4CL1", u32 count, count × {u32 flavor, u32 uid, u32 gid,
// u32 owner length (1..NFS4_OPAQUE_LIMIT), owner bytes}, u64 FNV-1a of everything
// before it. A file that is short, long, fails its checksum or breaks a bound is
// logged and read as no records (it is replaced at the next write); more records than
// `max_records` (a smaller --nfs4 client bound than the run that wrote it) are cut to
// the first max_records, logged. Never a crash.
//
// Put and Remove change memory only; Flush writes when something changed since the
// last write. Nfs4State changes records under its own lock and flushes after releasing
// it, before the op answers: a client's record is on disk before the RECLAIM_COMPLETE
// that made it is answered. Bounded: Nfs4State puts only the records of its live
// clients (at most its max_clients) beside the previous instance's (at most
// max_records, all removed or replaced by the end of grace).
//
// Thread-safety: every method may be called from any thread. mu_ guards the records;
// write_mu_ serialises Flush (taken before mu_, which Flush holds only to copy).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/nfs4/state.h"

namespace localnfs::server::nfs4 {

struct ClientRecord {
  std::string owner;  // co_ownerid, as the client sent it
  Principal principal;
  friend bool operator==(const ClientRecord&, const ClientRecord&) = default;
};

// The file's bytes for `records` (exposed for the tests of the reader's bounds).
std::string EncodeClientRecords(const std::vector<ClientRecord>& records);
// The records in `bytes`, or an error saying what is wrong with them; at most
// `max_records` (the rest cut, *truncated set).
absl::Status DecodeClientRecords(std::string_view bytes, size_t max_records,
                                 std::vector<ClientRecord>* out, bool* truncated);

class ClientRecordFile {
 public:
  static constexpr char kFileName[] = "nfs4-clients";

  // Reads <dir>/nfs4-clients (missing: none; unreadable or corrupt: logged, none).
  // `dir` must exist (main.cc creates --state-dir).
  ClientRecordFile(std::string dir, size_t max_records);
  ClientRecordFile(const ClientRecordFile&) = delete;
  ClientRecordFile& operator=(const ClientRecordFile&) = delete;

  // What the previous instance left (as read at construction).
  const std::vector<ClientRecord>& loaded() const { return loaded_; }

  // Adds or replaces the record of r.owner.
  void Put(const ClientRecord& r);
  // Removes the record of `owner`, if any.
  void Remove(std::string_view owner);
  // Writes the file if the records changed since the last write. On failure the error
  // is logged and returned, and the next Flush tries again.
  absl::Status Flush();

  std::vector<ClientRecord> records() const;
  std::string path() const;
  // Writes done so far (tests).
  uint64_t writes() const;

 private:
  absl::Status Write(const std::string& bytes);

  const std::string dir_;
  std::vector<ClientRecord> loaded_;
  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  absl::btree_map<std::string, Principal> records_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;     // bumped by every change
  uint64_t written_ ABSL_GUARDED_BY(write_mu_) = 0;  // the generation on disk
  uint64_t writes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace localnfs::server::nfs4
