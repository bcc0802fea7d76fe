// server/nfs4/open_state.cc — stateids, share reservations and locks (see open_state.h).
#include "server/nfs4/open_state.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <algorithm>

#include "common/status.h"
#include "export_cache/export.h"

namespace localnfs::server::nfs4 {
namespace {

constexpr uint32_t kAccessRead = OPEN4_SHARE_ACCESS_READ;
constexpr uint32_t kAccessWrite = OPEN4_SHARE_ACCESS_WRITE;
constexpr uint32_t kBoth = OPEN4_SHARE_ACCESS_BOTH;  // == OPEN4_SHARE_DENY_BOTH

std::array<char, 4> RandomInstance() {
  std::array<char, 4> b{};
  while (getrandom(b.data(), b.size(), 0) != static_cast<ssize_t>(b.size())) {
  }
  return b;
}

// The nfsstat4 of a Backend error on a lock file (the errno's NFSv4 name; the codes
// NFSv4 shares with NFSv3 have its numbers).
nfsstat4 StatusOf(const absl::Status& s) {
  switch (StatusErrno(s)) {
    case EBADF: return NFS4ERR_OPENMODE;
    case EINVAL: return NFS4ERR_INVAL;
    case EISDIR: return NFS4ERR_ISDIR;
    case EACCES: return NFS4ERR_ACCESS;
    case EPERM: return NFS4ERR_PERM;
    case ESTALE: return NFS4ERR_STALE;
    case ENOLCK: return NFS4ERR_DENIED;
    case EOPNOTSUPP: return NFS4ERR_LOCK_NOTSUPP;
    case EIO: return NFS4ERR_IO;
    default: return NFS4ERR_SERVERFAULT;
  }
}

uint64_t EndOf(backend::LockRange r) {
  return r.length == 0 ? backend::RangeLocks::kToEnd : r.offset + r.length;
}

}  // namespace

struct OpenStateTable::State {
  enum class Kind { kOpen, kLock };
  uint64_t id = 0;
  uint32_t seqid = 1;
  uint64_t clientid = 0;
  File* file = nullptr;
  Kind kind = Kind::kOpen;
  std::string owner;  // open_owner4 or lock_owner4 bytes
  // kOpen: the share reservation, and the lock stateids opened under it.
  uint32_t access = 0;
  uint32_t deny = 0;
  std::vector<State*> locks;
  // kLock: the open it locks under, and its lock file.
  State* open = nullptr;
  Ref<NfsFile> lock_file;
};

struct OpenStateTable::File {
  FileKey key;
  std::vector<State*> opens;
  backend::RangeLocks held;  // the locks each lock stateid holds (owner: State*)
};

OpenStateTable::Options OpenStateTable::Options::ForFileLimit(size_t nofile, size_t other_fds) {
  Options o;
  const size_t spare = nofile > other_fds ? nofile - other_fds : 0;
  o.max_lock_files = std::min(o.max_lock_files, std::max(spare, nofile / 8));
  o.max_lock_files_per_client = std::min(
      o.max_lock_files_per_client, std::max<size_t>(o.max_lock_files / 4, 1));
  return o;
}

OpenStateTable::OpenStateTable(backend::Backend& backend, Options options)
    : backend_(backend), options_(options), instance_(RandomInstance()) {}

OpenStateTable::~OpenStateTable() {
  absl::MutexLock l(&mu_);
  std::vector<uint64_t> clients;
  for (const auto& [c, n] : per_client_) clients.push_back(c);
  for (uint64_t c : clients) ReleaseClientLocked(c);
}

StateId OpenStateTable::IdOf(const State& s) const {
  StateId id;
  id.seqid = s.seqid;
  memcpy(id.other.data(), instance_.data(), instance_.size());
  memcpy(id.other.data() + instance_.size(), &s.id, sizeof(s.id));
  return id;
}

OpenStateTable::State* OpenStateTable::Find(const StateId& id) const {
  if (memcmp(id.other.data(), instance_.data(), instance_.size()) != 0) return nullptr;
  uint64_t n;
  memcpy(&n, id.other.data() + instance_.size(), sizeof(n));
  auto it = states_.find(n);
  return it == states_.end() ? nullptr : it->second.get();
}

nfsstat4 OpenStateTable::Lookup(uint64_t clientid, const StateId& id, State** out) const {
  State* s = Find(id);
  // Another client's stateid is as unknown to this one as a made-up one.
  if (s == nullptr || s->clientid != clientid) return NFS4ERR_BAD_STATEID;
  // RFC 8881 §8.2.2: seqid 0 is "the current one" in 4.1.
  if (id.seqid != 0 && id.seqid != s->seqid) {
    return id.seqid < s->seqid ? NFS4ERR_OLD_STATEID : NFS4ERR_BAD_STATEID;
  }
  *out = s;
  return NFS4_OK;
}

bool OpenStateTable::Admit(uint64_t clientid) const {
  if (states_.size() >= options_.max_states) return false;
  auto it = per_client_.find(clientid);
  return it == per_client_.end() || it->second < options_.max_states_per_client;
}

OpenStateTable::State* OpenStateTable::NewState(uint64_t clientid, File* file) {
  auto s = std::make_unique<State>();
  s->id = next_id_++;
  s->clientid = clientid;
  s->file = file;
  State* raw = s.get();
  states_.emplace(raw->id, std::move(s));
  ++per_client_[clientid];
  return raw;
}

OpenStateTable::File* OpenStateTable::FileOf(const backend::Object& obj) {
  FileKey key{obj.exp().id(), obj.handle()};
  auto it = files_.find(key);
  if (it != files_.end()) return it->second.get();
  auto f = std::make_unique<File>();
  f->key = key;
  File* raw = f.get();
  files_.emplace(std::move(key), std::move(f));
  return raw;
}

void OpenStateTable::Drop(State* s) {
  File* f = s->file;
  if (s->kind == State::Kind::kOpen) {
    for (State* l : std::vector<State*>(s->locks)) Drop(l);
    std::erase(f->opens, s);
  } else {
    f->held.ReleaseAll(s);
    // Unlocked explicitly: the locks must go now, whoever else still holds the file.
    if (s->lock_file) (void)backend_.Unlock(*s->lock_file, backend::LockRange{0, 0});
    s->lock_file = Ref<NfsFile>();
    if (s->open != nullptr) std::erase(s->open->locks, s);
    --lock_files_;
    if (auto it = lock_files_per_client_.find(s->clientid);
        it != lock_files_per_client_.end() && --it->second == 0) {
      lock_files_per_client_.erase(it);
    }
  }
  if (auto it = per_client_.find(s->clientid); it != per_client_.end() && --it->second == 0) {
    per_client_.erase(it);
  }
  const bool file_unused = f->opens.empty();
  states_.erase(s->id);  // s is gone
  if (file_unused) files_.erase(f->key);
}

std::vector<uint64_t> OpenStateTable::ShareConflicts(const File& file, const State* self,
                                                     uint32_t access, uint32_t deny) const {
  std::vector<uint64_t> clients;
  for (const State* o : file.opens) {
    // The owner's own deny refuses its own re-open too (knfsd's nfs4_file_get_access
    // checks the file's deny, to which its open contributes); its own access does not
    // refuse the deny it adds.
    const bool conflict = (o->deny & access) != 0 || (o != self && (o->access & deny) != 0);
    if (conflict) clients.push_back(o->clientid);
  }
  return clients;
}

nfsstat4 OpenStateTable::Open(const OpenRequest& req, const MayDiscard& may_discard,
                              StateId* out) {
  if (req.access == 0 || (req.access & ~kBoth) != 0 || (req.deny & ~kBoth) != 0)
    return NFS4ERR_INVAL;
  absl::MutexLock l(&mu_);
  for (int attempt = 0;; ++attempt) {
    File* f = FileOf(*req.file);
    State* mine = nullptr;
    for (State* o : f->opens) {
      if (o->clientid == req.clientid && o->owner == req.owner) mine = o;
    }
    const std::vector<uint64_t> conflicts = ShareConflicts(*f, mine, req.access, req.deny);
    if (!conflicts.empty()) {
      const bool discard = attempt == 0 && may_discard &&
                           std::all_of(conflicts.begin(), conflicts.end(), may_discard);
      if (!discard) {
        if (f->opens.empty()) files_.erase(f->key);
        return NFS4ERR_SHARE_DENIED;
      }
      for (uint64_t c : conflicts) ReleaseClientLocked(c);
      continue;  // the file's state may be gone with them: look again
    }
    if (mine != nullptr) {
      mine->access |= req.access;
      mine->deny |= req.deny;
      ++mine->seqid;
    } else {
      if (!Admit(req.clientid)) {
        if (f->opens.empty()) files_.erase(f->key);
        return kOpenTableFull;
      }
      mine = NewState(req.clientid, f);
      mine->kind = State::Kind::kOpen;
      mine->owner.assign(req.owner);
      mine->access = req.access;
      mine->deny = req.deny;
      f->opens.push_back(mine);
    }
    *out = IdOf(*mine);
    return NFS4_OK;
  }
}

nfsstat4 OpenStateTable::Downgrade(uint64_t clientid, const FileKey& file, const StateId& open,
                                   uint32_t access, uint32_t deny, StateId* out) {
  absl::MutexLock l(&mu_);
  State* s;
  if (nfsstat4 st = Lookup(clientid, open, &s); st != NFS4_OK) return st;
  if (s->kind != State::Kind::kOpen || !(s->file->key == file)) return NFS4ERR_BAD_STATEID;
  if (access == 0 || (access & ~s->access) != 0 || (deny & ~s->deny) != 0) return NFS4ERR_INVAL;
  s->access = access;
  s->deny = deny;
  ++s->seqid;
  *out = IdOf(*s);
  return NFS4_OK;
}

nfsstat4 OpenStateTable::Close(uint64_t clientid, const FileKey& file, const StateId& open) {
  absl::MutexLock l(&mu_);
  State* s;
  if (nfsstat4 st = Lookup(clientid, open, &s); st != NFS4_OK) return st;
  if (s->kind != State::Kind::kOpen || !(s->file->key == file)) return NFS4ERR_BAD_STATEID;
  Drop(s);
  return NFS4_OK;
}

std::optional<backend::LockRange> OpenStateTable::LockRangeOf(uint64_t offset, uint64_t length) {
  // RFC 8881 §18.10.3: a length of 0, or one that runs past 2^64 - 1 (all ones excepted:
  // to the end), is NFS4ERR_INVAL.
  if (length == 0) return std::nullopt;
  if (length != NFS4_UINT64_MAX && length > NFS4_UINT64_MAX - offset) return std::nullopt;
  // Beyond off_t the kernel has no bytes: a range reaching there is a range to the end,
  // one starting there locks the last byte (knfsd's last_byte_offset clamps so too).
  const uint64_t max = backend::kMaxLockOffset;
  const uint64_t start = std::min(offset, max - 1);
  if (length == NFS4_UINT64_MAX || offset + length > max) return backend::LockRange{start, 0};
  return backend::LockRange{start, std::max<uint64_t>(length, 1)};
}

void OpenStateTable::FillDenied(const File& file, const State* self,
                                const backend::LockConflict& c, Denied* denied) const {
  denied->conflict = c;
  denied->clientid = 0;
  denied->owner.clear();
  // Whose is it? One of our lock stateids that holds an overlapping lock of that type.
  const uint64_t end = EndOf(backend::LockRange{c.offset, c.length});
  for (const State* o : file.opens) {
    for (const State* l : o->locks) {
      if (l == self) continue;
      if (file.held.HeldBy(l, c.type, c.offset, end)) {
        denied->clientid = l->clientid;
        denied->owner = l->owner;
        return;
      }
    }
  }
}

nfsstat4 OpenStateTable::Lock(const LockRequest& req, const MayDiscard& may_discard,
                              StateId* out, Denied* denied) {
  absl::MutexLock l(&mu_);
  const FileKey key{req.file->exp().id(), req.file->handle()};
  State* ls = nullptr;
  bool created = false;
  if (req.lock) {
    if (nfsstat4 st = Lookup(req.clientid, *req.lock, &ls); st != NFS4_OK) return st;
    if (ls->kind != State::Kind::kLock || !(ls->file->key == key)) return NFS4ERR_BAD_STATEID;
  } else {
    if (!req.open) return NFS4ERR_BAD_STATEID;
    State* os;
    if (nfsstat4 st = Lookup(req.clientid, *req.open, &os); st != NFS4_OK) return st;
    if (os->kind != State::Kind::kOpen || !(os->file->key == key)) return NFS4ERR_BAD_STATEID;
    for (State* existing : os->locks) {
      if (existing->owner == req.lock_owner) ls = existing;
    }
    if (ls == nullptr) {
      auto held = lock_files_per_client_.find(req.clientid);
      if (!Admit(req.clientid) || lock_files_ >= options_.max_lock_files ||
          (held != lock_files_per_client_.end() &&
           held->second >= options_.max_lock_files_per_client)) {
        return kLockTableFull;
      }
      // Read-write where the server may (so that an open upgraded to write access later
      // can take write locks on it), else read-only: which lock types the owner may
      // take is decided by its open's access below, not by the lock file.
      absl::StatusOr<Ref<NfsFile>> lf =
          backend_.OpenLockFile(*req.file, FileMode::kReadWrite);
      if (!lf.ok()) lf = backend_.OpenLockFile(*req.file, FileMode::kRead);
      if (!lf.ok()) return StatusOf(lf.status());
      ls = NewState(req.clientid, os->file);
      ls->kind = State::Kind::kLock;
      ls->owner.assign(req.lock_owner);
      ls->open = os;
      ls->lock_file = std::move(*lf);
      os->locks.push_back(ls);
      ++lock_files_;
      ++lock_files_per_client_[req.clientid];
      created = true;
    }
  }
  // The open's access decides the lock types (knfsd: nfs4_check_openmode).
  if (req.type == backend::LockType::kWrite && (ls->open->access & kAccessWrite) == 0) {
    if (created) Drop(ls);
    return NFS4ERR_OPENMODE;
  }
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<std::optional<backend::LockConflict>> r =
        backend_.SetLock(*ls->lock_file, req.type, req.range);
    if (!r.ok()) {
      if (created) Drop(ls);
      return StatusOf(r.status());
    }
    File* f = ls->file;
    if (!r->has_value()) {
      (void)f->held.Set(ls, req.type, req.range.offset, EndOf(req.range));
      if (!created) ++ls->seqid;
      *out = IdOf(*ls);
      return NFS4_OK;
    }
    // Refused. By an expired client's lock that may go? Then once more.
    if (attempt == 0 && may_discard) {
      std::vector<uint64_t> holders;
      for (const void* owner : f->held.Conflicting(ls, req.type, req.range.offset,
                                                   EndOf(req.range))) {
        holders.push_back(static_cast<const State*>(owner)->clientid);
      }
      if (!holders.empty() && std::all_of(holders.begin(), holders.end(), may_discard)) {
        for (uint64_t c : holders) {
          if (c != req.clientid) ReleaseClientLocked(c);
        }
        continue;
      }
    }
    FillDenied(*f, ls, **r, denied);
    if (created) Drop(ls);
    return NFS4ERR_DENIED;
  }
}

nfsstat4 OpenStateTable::TestLock(uint64_t clientid, std::string_view lock_owner,
                                  const backend::Object& file, backend::LockType type,
                                  backend::LockRange range, Denied* denied) {
  absl::MutexLock l(&mu_);
  const FileKey key{file.exp().id(), file.handle()};
  auto fit = files_.find(key);
  File* f = fit == files_.end() ? nullptr : fit->second.get();
  State* ls = nullptr;
  if (f != nullptr) {
    for (State* o : f->opens) {
      for (State* lk : o->locks) {
        if (lk->clientid == clientid && lk->owner == lock_owner) ls = lk;
      }
    }
  }
  Ref<NfsFile> probe;
  if (ls == nullptr) {
    // An owner without locks here: a fresh lock file has none, so every lock conflicts.
    absl::StatusOr<Ref<NfsFile>> lf = backend_.OpenLockFile(file, FileMode::kRead);
    if (!lf.ok()) return StatusOf(lf.status());
    probe = std::move(*lf);
  }
  absl::StatusOr<std::optional<backend::LockConflict>> r =
      backend_.TestLock(ls != nullptr ? *ls->lock_file : *probe, type, range);
  if (!r.ok()) return StatusOf(r.status());
  if (!r->has_value()) return NFS4_OK;
  if (f != nullptr) {
    FillDenied(*f, ls, **r, denied);
  } else {
    *denied = Denied{**r, 0, {}};
  }
  return NFS4ERR_DENIED;
}

nfsstat4 OpenStateTable::Unlock(uint64_t clientid, const FileKey& file, const StateId& lock,
                                backend::LockRange range, StateId* out) {
  absl::MutexLock l(&mu_);
  State* ls;
  if (nfsstat4 st = Lookup(clientid, lock, &ls); st != NFS4_OK) return st;
  if (ls->kind != State::Kind::kLock || !(ls->file->key == file)) return NFS4ERR_BAD_STATEID;
  if (absl::Status s = backend_.Unlock(*ls->lock_file, range); !s.ok()) return StatusOf(s);
  ls->file->held.Unlock(ls, range.offset, EndOf(range));
  ++ls->seqid;
  *out = IdOf(*ls);
  return NFS4_OK;
}

nfsstat4 OpenStateTable::Check(uint64_t clientid, const FileKey& file, const StateId& id,
                               uint32_t need) const {
  absl::ReaderMutexLock l(&mu_);
  State* s;
  if (nfsstat4 st = Lookup(clientid, id, &s); st != NFS4_OK) return st;
  if (!(s->file->key == file)) return NFS4ERR_BAD_STATEID;
  const State* open = s->kind == State::Kind::kLock ? s->open : s;
  // Reading is allowed with write access too (knfsd: access_permit_read).
  const uint32_t allows = (open->access & kAccessWrite) != 0 ? kBoth : open->access;
  return (need & ~allows) != 0 ? NFS4ERR_OPENMODE : NFS4_OK;
}

nfsstat4 OpenStateTable::CheckAnonymous(const FileKey& file, uint32_t need) const {
  absl::ReaderMutexLock l(&mu_);
  auto it = files_.find(file);
  if (it == files_.end()) return NFS4_OK;
  for (const State* o : it->second->opens) {
    if ((o->deny & need) != 0) return NFS4ERR_LOCKED;
  }
  return NFS4_OK;
}

nfsstat4 OpenStateTable::Test(uint64_t clientid, const StateId& id) const {
  absl::ReaderMutexLock l(&mu_);
  State* s;
  return Lookup(clientid, id, &s);
}

nfsstat4 OpenStateTable::Free(uint64_t clientid, const StateId& id) {
  absl::MutexLock l(&mu_);
  State* s;
  if (nfsstat4 st = Lookup(clientid, id, &s); st != NFS4_OK) return st;
  if (s->kind == State::Kind::kOpen || s->file->held.Holds(s)) return NFS4ERR_LOCKS_HELD;
  Drop(s);
  return NFS4_OK;
}

void OpenStateTable::ReleaseClient(uint64_t clientid) {
  absl::MutexLock l(&mu_);
  ReleaseClientLocked(clientid);
}

void OpenStateTable::ReleaseClientLocked(uint64_t clientid) {
  if (!per_client_.contains(clientid)) return;
  std::vector<State*> opens;
  for (const auto& [id, s] : states_) {
    if (s->clientid == clientid && s->kind == State::Kind::kOpen) opens.push_back(s.get());
  }
  for (State* o : opens) Drop(o);
}

OpenStateTable::Counts OpenStateTable::counts() const {
  absl::ReaderMutexLock l(&mu_);
  Counts c;
  for (const auto& [id, s] : states_) (s->kind == State::Kind::kOpen ? c.opens : c.lock_states)++;
  c.files = files_.size();
  return c;
}

size_t OpenStateTable::states_of(uint64_t clientid) const {
  absl::ReaderMutexLock l(&mu_);
  auto it = per_client_.find(clientid);
  return it == per_client_.end() ? 0 : it->second;
}

}  // namespace localnfs::server::nfs4
