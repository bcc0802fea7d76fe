// tests/wire.cc — see wire.h.
#include "tests/wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/support/wait.h"

namespace localnfs::testing {

XdrOut& XdrOut::U32(uint32_t v) {
  uint32_t n = htonl(v);
  b_.append(reinterpret_cast<const char*>(&n), 4);
  return *this;
}
XdrOut& XdrOut::U64(uint64_t v) {
  U32(static_cast<uint32_t>(v >> 32));
  return U32(static_cast<uint32_t>(v));
}
XdrOut& XdrOut::Fixed(const std::string& bytes) {
  b_ += bytes;
  b_.append((4 - bytes.size() % 4) % 4, '\0');
  return *this;
}
XdrOut& XdrOut::Opaque(const std::string& bytes) {
  U32(static_cast<uint32_t>(bytes.size()));
  return Fixed(bytes);
}
XdrOut& XdrOut::Sattr(int64_t mode, int64_t uid, int64_t gid, int64_t size,
                      uint32_t atime_how, uint32_t mtime_how) {
  auto opt32 = [&](int64_t v) {
    if (v < 0) {
      U32(0);
    } else {
      U32(1);
      U32(static_cast<uint32_t>(v));
    }
  };
  opt32(mode);
  opt32(uid);
  opt32(gid);
  if (size < 0) {
    U32(0);
  } else {
    U32(1);
    U64(static_cast<uint64_t>(size));
  }
  U32(atime_how);
  U32(mtime_how);
  return *this;
}

bool XdrIn::U32(uint32_t* v) {
  if (remaining() < 4) return false;
  uint32_t n;
  memcpy(&n, b_.data() + pos_, 4);
  pos_ += 4;
  *v = ntohl(n);
  return true;
}
bool XdrIn::U64(uint64_t* v) {
  uint32_t hi, lo;
  if (!U32(&hi) || !U32(&lo)) return false;
  *v = (uint64_t{hi} << 32) | lo;
  return true;
}
bool XdrIn::Opaque(std::string* v, uint32_t max) {
  uint32_t len;
  if (!U32(&len) || len > max) return false;
  size_t padded = (len + 3u) & ~size_t{3};
  if (remaining() < padded) return false;
  v->assign(b_.data() + pos_, len);
  pos_ += padded;
  return true;
}
bool XdrIn::Skip(size_t n) {
  if (remaining() < n) return false;
  pos_ += n;
  return true;
}

bool ReadFattr(XdrIn& in, Fattr* a) {
  Fattr tmp;
  if (!a) a = &tmp;
  uint64_t used, rdev, fsid, atime;
  return in.U32(&a->type) && in.U32(&a->mode) && in.U32(&a->nlink) && in.U32(&a->uid) &&
         in.U32(&a->gid) && in.U64(&a->size) && in.U64(&used) && in.U64(&rdev) &&
         in.U64(&fsid) && in.U64(&a->fileid) && in.U64(&atime) && in.U32(&a->mtime_s) &&
         in.U32(&a->mtime_ns) && in.U32(&a->ctime_s) && in.U32(&a->ctime_ns);
}

bool ReadPostOpAttr(XdrIn& in, Fattr* attr, bool* present) {
  uint32_t follows;
  if (!in.U32(&follows)) return false;
  if (present) *present = follows != 0;
  if (!follows) return true;
  return ReadFattr(in, attr);
}

bool SkipWcc(XdrIn& in) {
  uint32_t pre;
  if (!in.U32(&pre)) return false;
  if (pre && !in.Skip(24)) return false;
  return ReadPostOpAttr(in, nullptr);
}

std::string Hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (unsigned char c : bytes) {
    s += d[c >> 4];
    s += d[c & 15];
  }
  return s;
}

WireConn::~WireConn() { Close(); }

void WireConn::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

bool WireConn::Connect(int port, const std::string& host) {
  Close();
  sockaddr_storage ss{};
  socklen_t len;
  if (host.find(':') != std::string::npos) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, host.c_str(), &s6->sin6_addr) != 1) return false;
    len = sizeof *s6;
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    if (inet_pton(AF_INET, host.c_str(), &s4->sin_addr) != 1) return false;
    len = sizeof *s4;
  }
  fd_ = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    Close();
    return false;
  }
  return true;
}

bool WireConn::SendAll(const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += n;
  }
  return true;
}

bool WireConn::SendRecord(const std::string& body) {
  XdrOut mark;
  mark.U32(0x80000000u | static_cast<uint32_t>(body.size()));
  return SendAll(mark.bytes() + body);
}

namespace {
// Reads exactly n bytes before the deadline.
bool ReadExact(int fd, char* p, size_t n, std::chrono::steady_clock::time_point deadline) {
  while (n > 0) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now())
                                    .count());
    if (left <= 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    int r = poll(&pfd, 1, left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t got = recv(fd, p, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= got;
  }
  return true;
}
}  // namespace

std::optional<std::string> WireConn::RecvRecord(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string rec;
  for (;;) {
    char m[4];
    if (!ReadExact(fd_, m, 4, deadline)) return std::nullopt;
    uint32_t mark;
    memcpy(&mark, m, 4);
    mark = ntohl(mark);
    uint32_t len = mark & 0x7fffffffu;
    if (len > (64u << 20)) return std::nullopt;
    size_t old = rec.size();
    rec.resize(old + len);
    if (len && !ReadExact(fd_, rec.data() + old, len, deadline)) return std::nullopt;
    if (mark & 0x80000000u) return rec;
  }
}

bool WireConn::WaitClosedByPeer(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[4096];
  for (;;) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now())
                                    .count());
    if (left <= 0) return false;
    pollfd pfd{fd_, POLLIN, 0};
    int r = poll(&pfd, 1, left);
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return false;
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n == 0) return true;
    if (n < 0 && (errno == ECONNRESET || errno == EPIPE)) return true;
    if (n < 0 && errno != EINTR && errno != EAGAIN) return true;
  }
}

bool WireConn::WaitSentBytesRead(int timeout_ms) {
  sockaddr_in ours{}, theirs{};
  socklen_t len = sizeof(ours);
  if (getsockname(fd_, reinterpret_cast<sockaddr*>(&ours), &len) != 0 ||
      ours.sin_family != AF_INET)
    return false;
  len = sizeof(theirs);
  if (getpeername(fd_, reinterpret_cast<sockaddr*>(&theirs), &len) != 0) return false;
  // The server's end: local address = our peer, remote address = us (hex, as the
  // kernel prints them: the address in network byte order read as a host u32).
  char local[32], remote[32];
  snprintf(local, sizeof local, "%08X:%04X", theirs.sin_addr.s_addr, ntohs(theirs.sin_port));
  snprintf(remote, sizeof remote, "%08X:%04X", ours.sin_addr.s_addr, ntohs(ours.sin_port));
  return WaitUntil(
      [&] {
        std::ifstream tcp("/proc/net/tcp");
        std::string line;
        while (std::getline(tcp, line)) {
          // "  sl  local_address rem_address   st tx_queue:rx_queue ..."
          std::istringstream in(line);
          std::string sl, l, r, st, queues;
          if (!(in >> sl >> l >> r >> st >> queues) || l != local || r != remote) continue;
          const size_t colon = queues.find(':');
          if (colon != std::string::npos &&
              std::stoul(queues.substr(colon + 1), nullptr, 16) == 0)
            return true;
        }
        return false;
      },
      std::chrono::milliseconds(timeout_ms), std::chrono::milliseconds(1));
}

std::string WireConn::CallMessage(uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc,
                                  const std::string& args, const AuthSys* cred,
                                  uint32_t rpcvers) {
  XdrOut x;
  x.U32(xid).U32(0 /*CALL*/).U32(rpcvers).U32(prog).U32(vers).U32(proc);
  if (cred) {
    XdrOut body;
    body.U32(0x5eed).Str(cred->machine).U32(cred->uid).U32(cred->gid);
    body.U32(static_cast<uint32_t>(cred->gids.size()));
    for (uint32_t g : cred->gids) body.U32(g);
    x.U32(1).Opaque(body.bytes());
  } else {
    x.U32(0).U32(0);
  }
  x.U32(0).U32(0);  // verifier AUTH_NONE
  return x.bytes() + args;
}

RpcReply WireConn::ParseReply(const std::string& record) {
  RpcReply r;
  XdrIn in(record);
  uint32_t mtype;
  if (!in.U32(&r.xid) || !in.U32(&mtype) || mtype != 1 || !in.U32(&r.reply_stat)) {
    r.error = "malformed reply header: " + Hex(record.substr(0, 64));
    return r;
  }
  if (r.reply_stat == 0) {
    uint32_t flavor;
    std::string verf;
    if (!in.U32(&flavor) || !in.Opaque(&verf, 400) || !in.U32(&r.accept_stat)) {
      r.error = "malformed accepted reply";
      return r;
    }
    if (r.accept_stat == kProgMismatch && !(in.U32(&r.low) && in.U32(&r.high))) {
      r.error = "PROG_MISMATCH without low/high";
      return r;
    }
    if (r.accept_stat == kSuccess) {
      size_t n = in.remaining();
      r.results = record.substr(record.size() - n);
    }
  } else if (r.reply_stat == 1) {
    if (!in.U32(&r.reject_stat)) {
      r.error = "malformed denied reply";
      return r;
    }
    if (r.reject_stat == kRpcMismatch && !(in.U32(&r.low) && in.U32(&r.high))) {
      r.error = "RPC_MISMATCH without low/high";
      return r;
    }
    if (r.reject_stat == kAuthError) in.U32(&r.auth_stat);
  } else {
    r.error = "bad reply_stat " + std::to_string(r.reply_stat);
    return r;
  }
  r.ok = true;
  return r;
}

RpcReply WireConn::Call(uint32_t prog, uint32_t vers, uint32_t proc, const std::string& args,
                        const AuthSys* cred, uint32_t rpcvers, int timeout_ms) {
  RpcReply bad;
  if (fd_ < 0) {
    bad.error = "not connected";
    return bad;
  }
  uint32_t xid = next_xid_++;
  if (!SendRecord(CallMessage(xid, prog, vers, proc, args, cred, rpcvers))) {
    bad.error = std::string("send failed: ") + strerror(errno);
    return bad;
  }
  for (;;) {
    auto rec = RecvRecord(timeout_ms);
    if (!rec) {
      bad.error = "no reply (timeout or connection closed)";
      return bad;
    }
    RpcReply r = ParseReply(*rec);
    if (r.ok && r.xid != xid) continue;  // a stale reply
    if (r.ok) return r;
    return r;
  }
}

uint32_t Nfs3Wire::Status(uint32_t prog, uint32_t vers, uint32_t proc,
                          const std::string& args, XdrIn* rest) {
  last_ = c_->Call(prog, vers, proc, args, &cred_);
  if (!last_.ok || last_.reply_stat != 0 || last_.accept_stat != kSuccess) return kRpcFailed;
  *rest = XdrIn(last_.results);
  uint32_t st;
  if (proc == 0) return 0;
  if (!rest->U32(&st)) return kRpcFailed;
  return st;
}

uint32_t Nfs3Wire::Null() {
  XdrIn in("");
  return Status(kNfsProg, 3, NFS3_NULL, "", &in);
}

uint32_t Nfs3Wire::Mount(const std::string& path, std::string* fh) {
  XdrIn in("");
  uint32_t st = Status(kMountProg, 3, 1, XdrOut().Str(path).bytes(), &in);
  if (st == 0 && !in.Opaque(fh, 64)) return kRpcFailed;
  return st;
}

uint32_t Nfs3Wire::Getattr(const std::string& fh, Fattr* attr) {
  XdrIn in("");
  uint32_t st = Status(kNfsProg, 3, NFS3_GETATTR, XdrOut().Opaque(fh).bytes(), &in);
  if (st == 0 && !ReadFattr(in, attr)) return kRpcFailed;
  return st;
}

uint32_t Nfs3Wire::Lookup(const std::string& dir, const std::string& name, std::string* fh,
                          Fattr* attr) {
  XdrIn in("");
  uint32_t st = Status(kNfsProg, 3, NFS3_LOOKUP, XdrOut().Opaque(dir).Str(name).bytes(), &in);
  std::string tmp;
  if (st == 0 && !(in.Opaque(fh ? fh : &tmp, 64) && ReadPostOpAttr(in, attr))) return kRpcFailed;
  return st;
}

uint32_t Nfs3Wire::Access(const std::string& fh, uint32_t want, uint32_t* granted) {
  XdrIn in("");
  uint32_t st = Status(kNfsProg, 3, NFS3_ACCESS, XdrOut().Opaque(fh).U32(want).bytes(), &in);
  if (st == 0 && !(ReadPostOpAttr(in, nullptr) && in.U32(granted))) return kRpcFailed;
  return st;
}

namespace {
bool ReadPostOpFh(XdrIn& in, std::string* fh) {
  uint32_t follows;
  if (!in.U32(&follows)) return false;
  if (!follows) {
    if (fh) fh->clear();
    return true;
  }
  std::string tmp;
  return in.Opaque(fh ? fh : &tmp, 64);
}
}  // namespace

uint32_t Nfs3Wire::Create(const std::string& dir, const std::string& name, uint32_t mode,
                          std::string* fh) {
  XdrIn in("");
  XdrOut a;
  a.Opaque(dir).Str(name).U32(0 /*UNCHECKED*/).Sattr(mode);
  uint32_t st = Status(kNfsProg, 3, NFS3_CREATE, a.bytes(), &in);
  if (st == 0 && !ReadPostOpFh(in, fh)) return kRpcFailed;
  return st;
}

uint32_t Nfs3Wire::Mkdir(const std::string& dir, const std::string& name, uint32_t mode,
                         std::string* fh) {
  XdrIn in("");
  XdrOut a;
  a.Opaque(dir).Str(name).Sattr(mode);
  uint32_t st = Status(kNfsProg, 3, NFS3_MKDIR, a.bytes(), &in);
  if (st == 0 && !ReadPostOpFh(in, fh)) return kRpcFailed;
  return st;
}

uint32_t Nfs3Wire::Write(const std::string& fh, uint64_t off, const std::string& data,
                         uint32_t stable, uint32_t* count, uint32_t* committed,
                         std::string* verf) {
  XdrIn in("");
  XdrOut a;
  a.Opaque(fh).U64(off).U32(static_cast<uint32_t>(data.size())).U32(stable).Opaque(data);
  uint32_t st = Status(kNfsProg, 3, NFS3_WRITE, a.bytes(), &in);
  uint32_t c = 0, com = 0;
  if (st == 0 && !(SkipWcc(in) && in.U32(&c) && in.U32(&com))) return kRpcFailed;
  if (st == 0 && verf) {
    uint64_t v;
    if (!in.U64(&v)) return kRpcFailed;
    verf->assign(reinterpret_cast<const char*>(&v), 8);
  }
  if (count) *count = c;
  if (committed) *committed = com;
  return st;
}

uint32_t Nfs3Wire::Commit(const std::string& fh, std::string* verf) {
  XdrIn in("");
  uint32_t st = Status(kNfsProg, 3, NFS3_COMMIT, XdrOut().Opaque(fh).U64(0).U32(0).bytes(), &in);
  uint64_t v = 0;
  if (st == 0 && !(SkipWcc(in) && in.U64(&v))) return kRpcFailed;
  if (st == 0 && verf) verf->assign(reinterpret_cast<const char*>(&v), 8);
  return st;
}

uint32_t Nfs3Wire::Read(const std::string& fh, uint64_t off, uint32_t count, std::string* data,
                        bool* eof) {
  XdrIn in("");
  uint32_t st =
      Status(kNfsProg, 3, NFS3_READ, XdrOut().Opaque(fh).U64(off).U32(count).bytes(), &in);
  uint32_t c, e;
  std::string tmp;
  if (st == 0 &&
      !(ReadPostOpAttr(in, nullptr) && in.U32(&c) && in.U32(&e) && in.Opaque(data ? data : &tmp)))
    return kRpcFailed;
  if (st == 0 && eof) *eof = e != 0;
  return st;
}

uint32_t Nfs3Wire::Remove(const std::string& dir, const std::string& name) {
  XdrIn in("");
  return Status(kNfsProg, 3, NFS3_REMOVE, XdrOut().Opaque(dir).Str(name).bytes(), &in);
}

uint32_t Nfs3Wire::Rename(const std::string& from_dir, const std::string& from,
                          const std::string& to_dir, const std::string& to) {
  XdrIn in("");
  return Status(kNfsProg, 3, NFS3_RENAME,
                XdrOut().Opaque(from_dir).Str(from).Opaque(to_dir).Str(to).bytes(), &in);
}

uint32_t Nfs3Wire::SetattrMode(const std::string& fh, uint32_t mode) {
  XdrIn in("");
  XdrOut a;
  a.Opaque(fh).Sattr(mode).U32(0 /*no guard*/);
  return Status(kNfsProg, 3, NFS3_SETATTR, a.bytes(), &in);
}

uint32_t Nfs3Wire::Readlink(const std::string& fh, std::string* target) {
  XdrIn in("");
  uint32_t st = Status(kNfsProg, 3, NFS3_READLINK, XdrOut().Opaque(fh).bytes(), &in);
  if (st == 0 && !(ReadPostOpAttr(in, nullptr) && in.Opaque(target))) return kRpcFailed;
  return st;
}

::testing::AssertionResult StartServerAndMount(const std::string& dir,
                                               std::vector<std::string> extra,
                                               std::unique_ptr<ServerProcess>* server,
                                               std::string* root_fh) {
  std::vector<std::string> args = {"--export", dir + ":rw,no_root_squash"};
  args.insert(args.end(), extra.begin(), extra.end());
  *server = std::make_unique<ServerProcess>(std::move(args));
  if (::testing::AssertionResult started = (*server)->Start(); !started) return started;
  WireConn c;
  if (!c.Connect((*server)->nfs_port()))
    return ::testing::AssertionFailure() << "cannot connect to port " << (*server)->nfs_port();
  Nfs3Wire n(&c);
  if (const uint32_t st = n.Mount(dir, root_fh); st != 0)
    return ::testing::AssertionFailure() << "MOUNT " << dir << ": " << st << " "
                                         << n.last_rpc().error;
  return ::testing::AssertionSuccess();
}

}  // namespace localnfs::testing
