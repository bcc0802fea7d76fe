// tests/wire.h — a small, independent ONC RPC / NFSv3 / MOUNT v3 client on a raw TCP
// socket, for integration tests that need exact bytes on the wire (bad input), chosen
// AUTH_SYS credentials (security) or raw handles (restart).
//
// It deliberately shares no code with rpc/ or the rpcgen output of the server: the XDR
// here is written by hand from RFC 5531 / RFC 1813, so a bug in the server's XDR does
// not cancel out against the same bug in the test.
//
// Thread-safety: one thread per WireConn.
#pragma once

#include <stdint.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/localnfsd.h"

namespace localnfs::testing {

inline constexpr uint32_t kNfsProg = 100003;
inline constexpr uint32_t kMountProg = 100005;

// RFC 1813 procedure numbers.
enum Nfs3Proc : uint32_t {
  NFS3_NULL = 0, NFS3_GETATTR = 1, NFS3_SETATTR = 2, NFS3_LOOKUP = 3, NFS3_ACCESS = 4,
  NFS3_READLINK = 5, NFS3_READ = 6, NFS3_WRITE = 7, NFS3_CREATE = 8, NFS3_MKDIR = 9,
  NFS3_SYMLINK = 10, NFS3_MKNOD = 11, NFS3_REMOVE = 12, NFS3_RMDIR = 13, NFS3_RENAME = 14,
  NFS3_LINK = 15, NFS3_READDIR = 16, NFS3_READDIRPLUS = 17, NFS3_FSSTAT = 18,
  NFS3_FSINFO = 19, NFS3_PATHCONF = 20, NFS3_COMMIT = 21,
};
// nfsstat3 values used by the tests.
enum : uint32_t {
  kNfs3Ok = 0, kNfs3ErrPerm = 1, kNfs3ErrNoent = 2, kNfs3ErrIo = 5, kNfs3ErrAcces = 13,
  kNfs3ErrExist = 17, kNfs3ErrNotdir = 20, kNfs3ErrIsdir = 21, kNfs3ErrInval = 22,
  kNfs3ErrRofs = 30, kNfs3ErrNotempty = 66, kNfs3ErrStale = 70, kNfs3ErrBadhandle = 10001,
  kNfs3ErrNotSync = 10002,
};
// accept_stat / reject_stat
enum : uint32_t {
  kSuccess = 0, kProgUnavail = 1, kProgMismatch = 2, kProcUnavail = 3, kGarbageArgs = 4,
  kSystemErr = 5,
};
enum : uint32_t { kRpcMismatch = 0, kAuthError = 1 };

class XdrOut {
 public:
  XdrOut& U32(uint32_t v);
  XdrOut& U64(uint64_t v);
  XdrOut& Opaque(const std::string& bytes);  // variable length, padded
  XdrOut& Fixed(const std::string& bytes);   // fixed length, padded
  XdrOut& Str(const std::string& s) { return Opaque(s); }
  // sattr3 with only mode set (mode < 0: nothing set).
  // sattr3; atime_how/mtime_how: 0 DONT_CHANGE, 1 SET_TO_SERVER_TIME (time_how).
  XdrOut& Sattr(int64_t mode = -1, int64_t uid = -1, int64_t gid = -1, int64_t size = -1,
                uint32_t atime_how = 0, uint32_t mtime_how = 0);
  const std::string& bytes() const { return b_; }

 private:
  std::string b_;
};

class XdrIn {
 public:
  explicit XdrIn(std::string b) : b_(std::move(b)) {}
  bool U32(uint32_t* v);
  bool U64(uint64_t* v);
  bool Opaque(std::string* v, uint32_t max = 1u << 30);
  bool Skip(size_t n);
  size_t remaining() const { return b_.size() - pos_; }

 private:
  std::string b_;
  size_t pos_ = 0;
};

struct AuthSys {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> gids;
  std::string machine = "localnfs-test";
};

// The decoded reply header.
struct RpcReply {
  bool ok = false;           // a reply was received and parsed
  std::string error;         // why not
  uint32_t xid = 0;
  uint32_t reply_stat = 0;   // 0 accepted, 1 denied
  uint32_t accept_stat = 0;  // when accepted
  uint32_t reject_stat = 0;  // when denied
  uint32_t low = 0, high = 0;  // PROG_MISMATCH / RPC_MISMATCH
  uint32_t auth_stat = 0;
  std::string results;       // bytes after the header (accepted + SUCCESS)
};

struct Fattr {
  uint32_t type = 0, mode = 0, nlink = 0, uid = 0, gid = 0;
  uint64_t size = 0, fileid = 0;
  uint32_t ctime_s = 0, ctime_ns = 0, mtime_s = 0, mtime_ns = 0;
};

class WireConn {
 public:
  WireConn() = default;
  ~WireConn();
  WireConn(const WireConn&) = delete;
  WireConn& operator=(const WireConn&) = delete;

  // Connects to host:port over TCP (host "127.0.0.1" or "::1").
  bool Connect(int port, const std::string& host = "127.0.0.1");
  void Close();
  int fd() const { return fd_; }

  // Raw access for framing tests.
  bool SendAll(const std::string& bytes);
  // Sends `body` as one record (one last fragment).
  bool SendRecord(const std::string& body);
  // Receives one complete record (all fragments). nullopt on close/timeout.
  std::optional<std::string> RecvRecord(int timeout_ms = 10000);
  // True when the peer closes the connection (EOF or reset) within timeout_ms,
  // discarding anything it sends before.
  bool WaitClosedByPeer(int timeout_ms = 5000);
  // True once the server process has read everything sent on this connection (its
  // socket's receive queue, /proc/net/tcp, is empty) within timeout_ms: what a test
  // waits for when the next step must find the request already taken by the server.
  // IPv4 loopback connections only.
  bool WaitSentBytesRead(int timeout_ms = 5000);

  // Builds an RPC call message (without record mark).
  static std::string CallMessage(uint32_t xid, uint32_t prog, uint32_t vers, uint32_t proc,
                                 const std::string& args, const AuthSys* cred,
                                 uint32_t rpcvers = 2);
  static RpcReply ParseReply(const std::string& record);

  // One call/reply; cred nullptr = AUTH_NONE.
  RpcReply Call(uint32_t prog, uint32_t vers, uint32_t proc, const std::string& args,
                const AuthSys* cred = nullptr, uint32_t rpcvers = 2, int timeout_ms = 15000);

 private:
  int fd_ = -1;
  uint32_t next_xid_ = 0x1000;
};

// NFSv3 / MOUNT v3 helpers over a WireConn. Each returns the nfsstat3 (or mountstat3),
// or a value >= 0x80000000 when the RPC itself failed (see last_rpc).
class Nfs3Wire {
 public:
  static constexpr uint32_t kRpcFailed = 0xffffffffu;

  // Root credentials by default.
  explicit Nfs3Wire(WireConn* conn, AuthSys cred = {}) : c_(conn), cred_(std::move(cred)) {}
  void set_cred(const AuthSys& cred) { cred_ = cred; }
  const RpcReply& last_rpc() const { return last_; }

  uint32_t Null();
  uint32_t Mount(const std::string& path, std::string* fh);
  uint32_t Getattr(const std::string& fh, Fattr* attr = nullptr);
  uint32_t Lookup(const std::string& dir, const std::string& name, std::string* fh,
                  Fattr* attr = nullptr);
  uint32_t Access(const std::string& fh, uint32_t want, uint32_t* granted);
  // UNCHECKED create with the given mode.
  uint32_t Create(const std::string& dir, const std::string& name, uint32_t mode,
                  std::string* fh);
  uint32_t Mkdir(const std::string& dir, const std::string& name, uint32_t mode,
                 std::string* fh);
  uint32_t Write(const std::string& fh, uint64_t off, const std::string& data,
                 uint32_t stable, uint32_t* count = nullptr, uint32_t* committed = nullptr,
                 std::string* verf = nullptr);
  uint32_t Read(const std::string& fh, uint64_t off, uint32_t count, std::string* data,
                bool* eof = nullptr);
  // COMMIT of the whole file; *verf gets the write verifier (as Write's).
  uint32_t Commit(const std::string& fh, std::string* verf = nullptr);
  uint32_t Remove(const std::string& dir, const std::string& name);
  uint32_t Rename(const std::string& from_dir, const std::string& from,
                  const std::string& to_dir, const std::string& to);
  uint32_t SetattrMode(const std::string& fh, uint32_t mode);
  uint32_t Readlink(const std::string& fh, std::string* target);

 private:
  uint32_t Status(uint32_t prog, uint32_t vers, uint32_t proc, const std::string& args,
                  XdrIn* rest);
  WireConn* c_;
  AuthSys cred_;
  RpcReply last_;
};

// Skips a post_op_attr, optionally decoding it.
bool ReadPostOpAttr(XdrIn& in, Fattr* attr, bool* present = nullptr);
bool ReadFattr(XdrIn& in, Fattr* attr);
bool SkipWcc(XdrIn& in);

std::string Hex(const std::string& bytes);

// Starts a localnfsd that exports `dir` rw,no_root_squash (plus `extra` flags) into
// *server and MOUNTs the export over the wire: *root_fh is its root handle.
::testing::AssertionResult StartServerAndMount(const std::string& dir,
                                               std::vector<std::string> extra,
                                               std::unique_ptr<ServerProcess>* server,
                                               std::string* root_fh);

}  // namespace localnfs::testing
