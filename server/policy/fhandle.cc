// server/policy/fhandle.cc — see fhandle.h for the format and the resolution scheme.
#include "server/policy/fhandle.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string.h>

#include <deque>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "export_cache/export.h"
#include "server/backend/vfs.h"

namespace localnfs::server {
namespace {

void PutU32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

uint32_t GetU32(std::string_view s, size_t at) {
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(s[at + i])); };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

absl::Status BadHandle(std::string_view why) {
  return ErrnoToStatus(EBADMSG, std::string("file handle: ").append(why));
}

absl::StatusOr<KernelHandle> HandleFromSyscall(int dirfd, const char* name, int flags) {
  union {
    file_handle fh;
    char space[sizeof(file_handle) + MAX_HANDLE_SZ];
  } u;
  u.fh.handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (name_to_handle_at(dirfd, name, &u.fh, &mount_id, flags) != 0)
    return ErrnoToStatus(errno, "name_to_handle_at");
  KernelHandle kh;
  kh.type = u.fh.handle_type;
  kh.bytes.assign(reinterpret_cast<const char*>(u.fh.f_handle), u.fh.handle_bytes);
  return kh;
}

bool SameObject(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

absl::StatusOr<KernelHandle> KernelHandleOfFd(int fd) {
  return HandleFromSyscall(fd, "", AT_EMPTY_PATH);
}

absl::StatusOr<KernelHandle> KernelHandleAt(int dirfd, const char* name) {
  return HandleFromSyscall(dirfd, name, 0);
}

absl::StatusOr<HandleKey> HandleKey::LoadOrCreate(const std::string& state_dir) {
  if (mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST)
    return ErrnoToStatus(errno, absl::StrCat("mkdir ", state_dir));
  const std::string path = absl::StrCat(state_dir, "/handle.key");
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd) {
    char buf[kHandleKeySize + 1];
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0) return ErrnoToStatus(errno, absl::StrCat("read ", path));
    if (static_cast<size_t>(n) != kHandleKeySize)
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": expected ", kHandleKeySize, " bytes, found ", n));
    return HandleKey(std::string(buf, kHandleKeySize));
  }
  if (errno != ENOENT) return ErrnoToStatus(errno, absl::StrCat("open ", path));

  std::string key(kHandleKeySize, '\0');
  if (getrandom(key.data(), key.size(), 0) != static_cast<ssize_t>(key.size()))
    return ErrnoToStatus(errno, "getrandom");
  // Written to a temporary name and renamed, so a crash never leaves a short key
  // (which would make every handle given out so far unverifiable).
  const std::string tmp = absl::StrCat(path, ".tmp");
  UniqueFd out(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out) return ErrnoToStatus(errno, absl::StrCat("create ", tmp));
  if (write(out.get(), key.data(), key.size()) != static_cast<ssize_t>(key.size()) ||
      fsync(out.get()) != 0)
    return ErrnoToStatus(errno, absl::StrCat("write ", tmp));
  out.reset();
  if (rename(tmp.c_str(), path.c_str()) != 0)
    return ErrnoToStatus(errno, absl::StrCat("rename ", tmp));
  LOG_INFO("created handle key %s", path);
  return HandleKey(std::move(key));
}

HandleKey HandleKey::FromBytes(std::string_view bytes) { return HandleKey(std::string(bytes)); }

namespace {

// HMAC-SHA256 through a context keyed once per thread. The one-shot HMAC() (EVP_Q_mac)
// fetches the MAC and digest implementations from the provider store and keys a fresh
// context on every call: ~7 % of the server's CPU per READ. Re-initialising a keyed
// context with a NULL key restarts it from the saved inner/outer digest states.
// One slot per thread: the server has one key; another key (tests) re-keys the slot.
//
// It also remembers the last handle this thread verified: a client working on one
// file sends the same handle again and again, and bytes equal to a handle whose MAC
// was verified under the same key are that handle, so they need no second HMAC. The
// comparison is constant-time, so it tells a forger nothing about a valid MAC.
class ThreadMac {
 public:
  ~ThreadMac() { EVP_MAC_CTX_free(ctx_); }

  // True when `wire` equals the last handle verified by this thread under `key`.
  bool VerifiedLast(const std::string& key, std::string_view wire) const {
    return ctx_ != nullptr && last_len_ != 0 && wire.size() == last_len_ && key == key_ &&
           CRYPTO_memcmp(wire.data(), last_, last_len_) == 0;
  }
  // Records `wire` (at most kMaxHandleSize bytes) as verified under the current key.
  void SetVerifiedLast(std::string_view wire) {
    memcpy(last_, wire.data(), wire.size());
    last_len_ = wire.size();
  }

  // Writes HMAC-SHA256(key, data) to out[0..32); false on an OpenSSL failure.
  bool Compute(const std::string& key, std::string_view data, unsigned char* out) {
    if (ctx_ == nullptr || key != key_) {
      if (!Rekey(key)) return false;
    } else if (EVP_MAC_init(ctx_, nullptr, 0, nullptr) != 1) {
      return false;
    }
    size_t len = 0;
    return EVP_MAC_update(ctx_, reinterpret_cast<const unsigned char*>(data.data()),
                          data.size()) == 1 &&
           EVP_MAC_final(ctx_, out, &len, EVP_MAX_MD_SIZE) == 1 && len == 32;
  }

 private:
  bool Rekey(const std::string& key) {
    // Fetched once per process; the EVP_MAC is reference counted by its contexts.
    static EVP_MAC* const hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (hmac == nullptr) return false;
    EVP_MAC_CTX_free(ctx_);
    key_.clear();
    last_len_ = 0;
    ctx_ = EVP_MAC_CTX_new(hmac);
    if (ctx_ == nullptr) return false;
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end()};
    if (EVP_MAC_init(ctx_, reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                     params) != 1) {
      EVP_MAC_CTX_free(ctx_);
      ctx_ = nullptr;
      return false;
    }
    key_ = key;
    return true;
  }

  EVP_MAC_CTX* ctx_ = nullptr;
  std::string key_;  // what ctx_ is keyed with
  char last_[kMaxHandleSize];
  size_t last_len_ = 0;  // 0: none
};

ThreadMac& ThisThreadsMac() {
  thread_local ThreadMac mac;
  return mac;
}

}  // namespace

absl::StatusOr<std::string> HandleKey::Mac(std::string_view data) const {
  unsigned char out[EVP_MAX_MD_SIZE];
  if (!ThisThreadsMac().Compute(key_, data, out))
    return absl::InternalError("HMAC-SHA256 failed");
  return std::string(reinterpret_cast<const char*>(out), kHandleMacSize);
}

absl::StatusOr<std::string> HandleKey::Encode(uint32_t export_id,
                                              const KernelHandle& kh) const {
  if (kh.bytes.size() > kMaxKernelHandleBytes)
    return ErrnoToStatus(EOVERFLOW, "kernel file handle too large for NFSv3");
  std::string out;
  out.reserve(kMaxHandleSize);
  out.push_back(static_cast<char>(kHandleVersion));
  out.push_back(static_cast<char>(kh.bytes.size()));
  PutU32(out, export_id);
  PutU32(out, static_cast<uint32_t>(kh.type));
  out += kh.bytes;
  ASSIGN_OR_RETURN(std::string mac, Mac(out));
  out += mac;
  return out;
}

absl::StatusOr<DecodedHandle> HandleKey::Decode(std::string_view wire) const {
  if (wire.size() < kHandleHeaderSize + kHandleMacSize || wire.size() > kMaxHandleSize)
    return BadHandle("bad length");
  if (static_cast<uint8_t>(wire[0]) != kHandleVersion) return BadHandle("bad version");
  const size_t n = static_cast<uint8_t>(wire[1]);
  if (n > kMaxKernelHandleBytes || kHandleHeaderSize + n + kHandleMacSize != wire.size())
    return BadHandle("bad length");
  if (!ThisThreadsMac().VerifiedLast(key_, wire)) {
    std::string_view body = wire.substr(0, kHandleHeaderSize + n);
    ASSIGN_OR_RETURN(std::string mac, Mac(body));
    if (CRYPTO_memcmp(mac.data(), wire.data() + body.size(), kHandleMacSize) != 0)
      return BadHandle("bad MAC");
    ThisThreadsMac().SetVerifiedLast(wire);
  }
  DecodedHandle d;
  d.export_id = GetU32(wire, 2);
  d.kernel.type = static_cast<int32_t>(GetU32(wire, 6));
  d.kernel.bytes.assign(wire.substr(kHandleHeaderSize, n));
  return d;
}

absl::StatusOr<std::string> HandleKey::Sign(std::string_view body) const {
  if (body.empty() || static_cast<uint8_t>(body[0]) == kHandleVersion)
    return ErrnoToStatus(EINVAL, "signed handle body without a version of its own");
  ASSIGN_OR_RETURN(std::string mac, Mac(body));
  std::string out(body);
  out += mac;
  return out;
}

absl::StatusOr<std::string_view> HandleKey::Verify(std::string_view wire) const {
  if (wire.size() <= kHandleMacSize) return BadHandle("bad length");
  std::string_view body = wire.substr(0, wire.size() - kHandleMacSize);
  ASSIGN_OR_RETURN(std::string mac, Mac(body));
  if (CRYPTO_memcmp(mac.data(), wire.data() + body.size(), kHandleMacSize) != 0)
    return BadHandle("bad MAC");
  return body;
}

absl::StatusOr<bool> IsWithinExport(const exports::Export& exp, int dir_fd,
                                    const struct stat& dir_st) {
  // The export's root identity is recorded when it is created, from the fd it keeps:
  // comparing with it costs no system call, so the export root itself (the directory
  // most handles name) is decided at once.
  auto is_root = [&exp](const struct stat& st) {
    return vfs::IsExportRoot(exp, static_cast<uint64_t>(st.st_dev),
                             static_cast<uint64_t>(st.st_ino));
  };
  if (is_root(dir_st)) return true;
  struct stat cur = dir_st;
  UniqueFd fd(openat(dir_fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
  // Bounded: PATH_MAX / 2 levels is deeper than any path the kernel can name.
  for (int depth = 0; fd && depth < PATH_MAX / 2; ++depth) {
    struct stat up;
    if (fstat(fd.get(), &up) != 0) return ErrnoToStatus(errno, "fstat");
    if (is_root(up)) return true;
    if (SameObject(up, cur)) return false;  // reached the file system root
    cur = up;
    fd = UniqueFd(openat(fd.get(), "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
  }
  if (!fd) return ErrnoToStatus(errno, "openat ..");
  return false;
}

absl::StatusOr<bool> IsWithinExport(const exports::Export& exp, int dir_fd) {
  struct stat st;
  if (fstat(dir_fd, &st) != 0) return ErrnoToStatus(errno, "fstat");
  return IsWithinExport(exp, dir_fd, st);
}

absl::Status CheckResolved(const exports::Export& exp, int fd, const struct stat& st,
                           uint64_t mnt_id) {
  // open_by_handle_at gives an fd on the export's own mount, but an fd cached from a
  // LOOKUP, or found by the unprivileged resolver through a name, is on the mount
  // that name led to.
  if (!vfs::InExportMount(exp, st, mnt_id))
    return ErrnoToStatus(ESTALE, "handle names an object on another mount or device");
  // An unlinked object still resolves through an open fd or a cache.
  if (st.st_nlink == 0) return ErrnoToStatus(ESTALE, "object was removed");
  if (S_ISDIR(st.st_mode)) {
    ASSIGN_OR_RETURN(bool inside, IsWithinExport(exp, fd, st));
    if (!inside) return ErrnoToStatus(ESTALE, "directory is outside the export");
  }
  return absl::OkStatus();
}

void HandleResolver::Start(const exports::Export& probe) {
  auto kh = KernelHandleOfFd(probe.root_fd());
  if (!kh.ok()) {
    privileged_ = false;
    LOG_WARNING("name_to_handle_at on %s: %s", probe.path(), kh.status().ToString());
    return;
  }
  privileged_ = ResolvePrivileged(probe, *kh).ok();
  LOG_INFO("file handles: %s",
           privileged_ ? "open_by_handle_at (privileged)"
                       : "no CAP_DAC_READ_SEARCH: resolving through the handle cache "
                         "and a bounded export search");
}

void HandleResolver::Shutdown() {
  {
    absl::MutexLock l(&mu_);
    index_.clear();
    lru_.clear();
  }
  absl::MutexLock l(&mount_mu_);
  mount_fds_.clear();
}

absl::StatusOr<std::shared_ptr<UniqueFd>> HandleResolver::MountFd(
    const exports::Export& exp) {
  absl::MutexLock l(&mount_mu_);
  auto it = mount_fds_.find(exp.id());
  if (it != mount_fds_.end() && it->second.dev == exp.root_dev()) return it->second.fd;
  UniqueFd fd(openat(exp.root_fd(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return ErrnoToStatus(errno, "open export root");
  auto shared = std::make_shared<UniqueFd>(std::move(fd));
  mount_fds_.insert_or_assign(exp.id(), MountFdEntry{exp.root_dev(), shared});
  return shared;
}

absl::StatusOr<UniqueFd> HandleResolver::Open(const exports::Export& exp,
                                              const KernelHandle& kh, bool may_search) {
  return privileged_ ? ResolvePrivileged(exp, kh) : ResolveUnprivileged(exp, kh, may_search);
}

absl::StatusOr<UniqueFd> HandleResolver::Resolve(const exports::Export& exp,
                                                 const KernelHandle& kh) {
  ASSIGN_OR_RETURN(UniqueFd fd, Open(exp, kh));
  ASSIGN_OR_RETURN(vfs::AttrsOnMount a, vfs::GetAttrOnMount(fd.get()));
  RETURN_IF_ERROR(CheckResolved(exp, fd.get(), a.st, a.mnt_id));
  return fd;
}

absl::StatusOr<UniqueFd> HandleResolver::ResolvePrivileged(const exports::Export& exp,
                                                           const KernelHandle& kh) {
  union {
    file_handle fh;
    char space[sizeof(file_handle) + MAX_HANDLE_SZ];
  } u;
  if (kh.bytes.size() > MAX_HANDLE_SZ) return ErrnoToStatus(ESTALE, "handle");
  u.fh.handle_bytes = kh.bytes.size();
  u.fh.handle_type = kh.type;
  memcpy(u.fh.f_handle, kh.bytes.data(), kh.bytes.size());
  ASSIGN_OR_RETURN(std::shared_ptr<UniqueFd> mount_fd, MountFd(exp));
  UniqueFd fd(open_by_handle_at(mount_fd->get(), &u.fh, O_PATH | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    int err = errno;
    // A handle the file system cannot decode (or whose object is gone) is stale.
    if (err == ENOENT || err == EINVAL || err == ESTALE || err == ELOOP) err = ESTALE;
    return ErrnoToStatus(err, "open_by_handle_at");
  }
  return fd;
}

std::shared_ptr<UniqueFd> HandleResolver::ShareFd(int fd) const {
  if (privileged_) return nullptr;
  UniqueFd dup(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!dup) return nullptr;
  return std::make_shared<UniqueFd>(std::move(dup));
}

void HandleResolver::Remember(uint32_t export_id, const KernelHandle& kh,
                              const std::shared_ptr<UniqueFd>& dir, std::string_view name) {
  if (privileged_ || !dir || name.empty() || name == "." || name == "..") return;
  Insert(Key{export_id, kh}, Location{dir, std::string(name)});
}

void HandleResolver::RememberFd(uint32_t export_id, const KernelHandle& kh, int fd) {
  if (privileged_) return;
  UniqueFd dup(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!dup) return;
  Insert(Key{export_id, kh}, Location{std::make_shared<UniqueFd>(std::move(dup)), ""});
}

void HandleResolver::Insert(Key key, Location loc) {
  absl::MutexLock l(&mu_);
  if (auto it = index_.find(key); it != index_.end()) {
    it->second->loc = std::move(loc);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.push_front(Entry{key, std::move(loc)});
  index_.emplace(std::move(key), lru_.begin());
  while (lru_.size() > max_cached_) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
}

void HandleResolver::Forget(uint32_t export_id, const KernelHandle& kh) {
  if (privileged_) return;
  absl::MutexLock l(&mu_);
  auto it = index_.find(Key{export_id, kh});
  if (it == index_.end()) return;
  lru_.erase(it->second);
  index_.erase(it);
}

size_t HandleResolver::CachedEntriesForTesting() const {
  absl::MutexLock l(&mu_);
  return lru_.size();
}

absl::StatusOr<UniqueFd> HandleResolver::ResolveUnprivileged(const exports::Export& exp,
                                                             const KernelHandle& kh,
                                                             bool may_search) {
  auto root_kh = KernelHandleOfFd(exp.root_fd());
  if (root_kh.ok() && *root_kh == kh) {
    UniqueFd fd(fcntl(exp.root_fd(), F_DUPFD_CLOEXEC, 0));
    if (!fd) return ErrnoToStatus(errno, "dup");
    return fd;
  }
  Location loc;
  {
    absl::MutexLock l(&mu_);
    auto it = index_.find(Key{exp.id(), kh});
    if (it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      loc = it->second->loc;
    }
  }
  if (loc.fd) {
    UniqueFd fd(loc.name.empty()
                    ? fcntl(loc.fd->get(), F_DUPFD_CLOEXEC, 0)
                    : openat(loc.fd->get(), loc.name.c_str(),
                             O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (fd) {
      auto now = KernelHandleOfFd(fd.get());
      if (now.ok() && *now == kh) return fd;
    }
    Forget(exp.id(), kh);
  }
  if (!may_search) {
    return ErrnoToStatus(EWOULDBLOCK, "file handle not in the handle cache: a search of "
                                      "the export is needed");
  }
  return Search(exp, kh);
}

absl::StatusOr<UniqueFd> HandleResolver::Search(const exports::Export& exp,
                                                const KernelHandle& kh) {
  const Key key{exp.id(), kh};
  {
    absl::MutexLock l(&search_mu_);
    const absl::Time now = absl::Now();
    auto it = stale_.find(key);
    if (it != stale_.end()) {
      if (it->second > now) return ErrnoToStatus(ESTALE, "file handle searched for recently");
      stale_.erase(it);
    }
    if (searches_running_ >= max_searches_)
      return ErrnoToStatus(ETIMEDOUT, "every search slot is busy: the client retries");
    ++searches_running_;
  }
  absl::StatusOr<UniqueFd> found = SearchExport(exp, kh);
  absl::MutexLock l(&search_mu_);
  --searches_running_;
  if (!found.ok() && StatusErrno(found.status()) == ESTALE) {
    const absl::Time now = absl::Now();
    if (stale_.size() >= kMaxStaleHandles) {
      for (auto e = stale_.begin(); e != stale_.end();) {
        if (e->second <= now) {
          stale_.erase(e++);
        } else {
          ++e;
        }
      }
      if (stale_.size() >= kMaxStaleHandles) stale_.erase(stale_.begin());
    }
    stale_[key] = now + kStaleHandleMemory;
  }
  return found;
}

absl::StatusOr<UniqueFd> HandleResolver::SearchExport(const exports::Export& exp,
                                                      const KernelHandle& kh) {
  // Breadth-first over paths relative to the root; each directory is opened beneath
  // the root without following symlinks, so a concurrent rename cannot lead it out.
  std::deque<std::string> queue{"."};
  size_t visited = 0;
  while (!queue.empty() && visited < kMaxSearchEntries) {
    std::string rel = std::move(queue.front());
    queue.pop_front();
    auto dir = vfs::OpenBeneath(exp.root_fd(), rel, O_RDONLY | O_DIRECTORY);
    if (!dir.ok()) continue;  // removed meanwhile or unreadable: not searchable
    DIR* d = fdopendir(dir->get());
    if (d == nullptr) continue;
    int dfd = dir->release();
    absl::Cleanup close_dir = [d] { closedir(d); };
    while (dirent* e = readdir(d)) {
      if (++visited > kMaxSearchEntries) break;
      std::string_view name = e->d_name;
      if (name == "." || name == "..") continue;
      auto ekh = KernelHandleAt(dfd, e->d_name);
      if (!ekh.ok()) continue;
      if (*ekh == kh) {
        UniqueFd fd(openat(dfd, e->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
        if (!fd) return ErrnoToStatus(errno, "openat");
        RememberFd(exp.id(), kh, fd.get());
        return fd;
      }
      if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN) {
        struct stat st;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
            static_cast<uint64_t>(st.st_dev) == exp.root_dev())
          queue.push_back(rel == "." ? std::string(name) : rel + "/" + std::string(name));
      }
    }
  }
  return ErrnoToStatus(ESTALE, "file handle not found in the export");
}

}  // namespace localnfs::server
