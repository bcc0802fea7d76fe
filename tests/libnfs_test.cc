// tests/libnfs_test.cc — interop with libnfs (an independent NFSv3 implementation)
// against a real localnfsd: every NFSv3 procedure and MOUNT v3, results compared
// with the exported directory as seen directly on the server side.
//
// The raw API (nfsc/libnfs-raw*.h) is used where exact nfsstat3 values, verifiers or
// guards matter; the high-level sync API (nfs_mount with ?nfsport=&mountport=) for an
// ordinary client session.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <random>
#include <set>

// clang-format off
#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>
// clang-format on

#include "gtest/gtest.h"
#include "tests/support/localnfsd.h"

namespace localnfs::testing {
namespace {

constexpr int kNfsProgram = 100003;
constexpr int kMountProgram = 100005;

// A synchronous wrapper around one libnfs rpc_context.
class RawRpc {
 public:
  RawRpc() : rpc_(rpc_init_context()) {}
  ~RawRpc() {
    if (rpc_) rpc_destroy_context(rpc_);
  }
  rpc_context* get() { return rpc_; }

  bool Connect(int port, int prog, int vers) {
    Waiter w;
    if (rpc_connect_port_async(rpc_, "127.0.0.1", port, prog, vers, &Callback, &w) != 0) {
      error_ = rpc_get_error(rpc_);
      return false;
    }
    return Pump(w) && w.status == RPC_STATUS_SUCCESS;
  }

  // Issues one call; `on_reply` sees the decoded result (valid only inside it).
  // Returns false when the RPC itself failed (error() says why).
  bool Call(const std::function<int(rpc_context*, rpc_cb, void*)>& issue,
            const std::function<void(void*)>& on_reply) {
    Waiter w;
    w.on_reply = on_reply;
    if (issue(rpc_, &Callback, &w) != 0) {
      error_ = std::string("issue: ") + rpc_get_error(rpc_);
      return false;
    }
    if (!Pump(w)) return false;
    if (w.status != RPC_STATUS_SUCCESS) {
      error_ = "rpc status " + std::to_string(w.status) + ": " + w.err;
      return false;
    }
    return true;
  }
  const std::string& error() const { return error_; }

 private:
  struct Waiter {
    bool done = false;
    int status = -1;
    std::string err;
    std::function<void(void*)> on_reply;
  };
  static void Callback(rpc_context*, int status, void* data, void* priv) {
    auto* w = static_cast<Waiter*>(priv);
    w->status = status;
    if (status == RPC_STATUS_SUCCESS) {
      if (w->on_reply && data) w->on_reply(data);
    } else if (data) {
      w->err = static_cast<const char*>(data);
    }
    w->done = true;
  }
  bool Pump(Waiter& w) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!w.done) {
      pollfd p{rpc_get_fd(rpc_), static_cast<short>(rpc_which_events(rpc_)), 0};
      int r = poll(&p, 1, 100);
      if (r < 0 && errno != EINTR) {
        error_ = "poll failed";
        return false;
      }
      if (rpc_service(rpc_, r > 0 ? p.revents : 0) < 0) {
        error_ = std::string("rpc_service: ") + rpc_get_error(rpc_);
        if (w.done) break;
        return false;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        error_ = "timeout";
        return false;
      }
    }
    return true;
  }
  rpc_context* rpc_;
  std::string error_;
};

// Handles as values.
using Fh = std::string;
nfs_fh3 ToFh(const Fh& s) {
  nfs_fh3 f;
  f.data.data_len = static_cast<u_int>(s.size());
  f.data.data_val = const_cast<char*>(s.data());
  return f;
}
Fh FromFh(const nfs_fh3& f) { return Fh(f.data.data_val, f.data.data_len); }

struct Stat {
  struct stat st{};
  bool ok = false;
};
Stat LStat(const std::string& p) {
  Stat s;
  s.ok = lstat(p.c_str(), &s.st) == 0;
  return s;
}

sattr3 NoAttrs() {
  sattr3 a;
  memset(&a, 0, sizeof a);
  return a;
}
sattr3 ModeAttr(uint32_t mode) {
  sattr3 a = NoAttrs();
  a.mode.set_it = 1;
  a.mode.set_mode3_u.mode = mode;
  return a;
}

class LibnfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(
        std::vector<std::string>{"--export", root_.path() + ":rw,no_root_squash"});
    ASSERT_TRUE(server_->Start());
    ASSERT_TRUE(mnt_.Connect(server_->mount_port(), kMountProgram, 3)) << mnt_.error();
    ASSERT_EQ(Mnt(root_.path(), &rootfh_), MNT3_OK);
    ASSERT_TRUE(nfs_.Connect(server_->nfs_port(), kNfsProgram, 3)) << nfs_.error();
  }

  mountstat3 Mnt(const std::string& path, Fh* fh, std::vector<int>* flavors = nullptr) {
    mountstat3 st = MNT3ERR_SERVERFAULT;
    std::string p = path;
    EXPECT_TRUE(mnt_.Call(
        [&](rpc_context* r, rpc_cb cb, void* w) {
          return rpc_mount3_mnt_async(r, cb, p.data(), w);
        },
        [&](void* d) {
          auto* res = static_cast<mountres3*>(d);
          st = res->fhs_status;
          if (st == MNT3_OK) {
            auto& ok = res->mountres3_u.mountinfo;
            fh->assign(ok.fhandle.fhandle3_val, ok.fhandle.fhandle3_len);
            if (flavors)
              flavors->assign(ok.auth_flavors.auth_flavors_val,
                              ok.auth_flavors.auth_flavors_val + ok.auth_flavors.auth_flavors_len);
          }
        }))
        << mnt_.error();
    return st;
  }

  // --- NFS procedures, returning nfsstat3 (NFS3ERR_SERVERFAULT on RPC failure) ---
#define LNFS_CALL(fn, args, body)                                                          \
  EXPECT_TRUE(nfs_.Call([&](rpc_context* lnfs_rpc, rpc_cb lnfs_cb, void* lnfs_w) {         \
    return fn(lnfs_rpc, lnfs_cb, &args, lnfs_w); },                                         \
                        [&](void* d) body))                                                \
      << nfs_.error()

  nfsstat3 Getattr(const Fh& fh, fattr3* out) {
    nfsstat3 st = NFS3ERR_SERVERFAULT;
    GETATTR3args a{ToFh(fh)};
    LNFS_CALL(rpc_nfs3_getattr_async, a, {
      auto* res = static_cast<GETATTR3res*>(d);
      st = res->status;
      if (st == NFS3_OK && out) *out = res->GETATTR3res_u.resok.obj_attributes;
    });
    return st;
  }
  nfsstat3 Lookup(const Fh& dir, const std::string& name, Fh* out, fattr3* attr = nullptr) {
    nfsstat3 st = NFS3ERR_SERVERFAULT;
    std::string n = name;
    LOOKUP3args a;
    a.what.dir = ToFh(dir);
    a.what.name = n.data();
    LNFS_CALL(rpc_nfs3_lookup_async, a, {
      auto* res = static_cast<LOOKUP3res*>(d);
      st = res->status;
      if (st == NFS3_OK) {
        if (out) *out = FromFh(res->LOOKUP3res_u.resok.object);
        if (attr) {
          EXPECT_TRUE(res->LOOKUP3res_u.resok.obj_attributes.attributes_follow);
          *attr = res->LOOKUP3res_u.resok.obj_attributes.post_op_attr_u.attributes;
        }
      }
    });
    return st;
  }
  nfsstat3 Setattr(const Fh& fh, const sattr3& attrs, const nfstime3* guard = nullptr) {
    nfsstat3 st = NFS3ERR_SERVERFAULT;
    SETATTR3args a;
    memset(&a, 0, sizeof a);
    a.object = ToFh(fh);
    a.new_attributes = attrs;
    if (guard) {
      a.guard.check = 1;
      a.guard.sattrguard3_u.obj_ctime = *guard;
    }
    LNFS_CALL(rpc_nfs3_setattr_async, a, { st = static_cast<SETATTR3res*>(d)->status; });
    return st;
  }
  nfsstat3 Create(const Fh& dir, const std::string& name, createmode3 mode, Fh* out,
                  const char* verf = nullptr, uint32_t perm = 0644) {
    nfsstat3 st = NFS3ERR_SERVERFAULT;
    std::string n = name;
    CREATE3args a;
    memset(&a, 0, sizeof a);
    a.where.dir = ToFh(dir);
    a.where.name = n.data();
    a.how.mode = mode;
    if (mode == EXCLUSIVE)
      memcpy(a.how.createhow3_u.verf, verf, NFS3_CREATEVERFSIZE);
    else
      a.how.createhow3_u.obj_attributes = ModeAttr(perm);
    LNFS_CALL(rpc_nfs3_create_async, a, {
      auto* res = static_cast<CREATE3res*>(d);
      st = res->status;
      if (st == NFS3_OK && out) {
        auto& ok = res->CREATE3res_u.resok;
        out->clear();
        if (ok.obj.handle_follows) *out = FromFh(ok.obj.post_op_fh3_u.handle);
      }
    });
    if (st == NFS3_OK && out && out->empty()) Lookup(dir, name, out);
    return st;
  }
  nfsstat3 Write(const Fh& fh, uint64_t off, const std::string& data, stable_how how,
                 stable_how* committed = nullptr, std::string* verf = nullptr,
                 uint32_t* count = nullptr) {
    nfsstat3 st = NFS3ERR_SERVERFAULT;
    WRITE3args a;
    memset(&a, 0, sizeof a);
    a.file = ToFh(fh);
    a.offset = off;
    a.count = static_cast<count3>(data.size());
    a.stable = how;
    a.data.data_len = static_cast<u_int>(data.size());
    a.data.data_val = const_cast<char*>(data.data());
    LNFS_CALL(rpc_nfs3_write_async, a, {
      auto* res = static_cast<WRITE3res*>(d);
      st = res->status;
      if (st == NFS3_OK) {
        if (committed) *committed = res->WRITE3res_u.resok.committed;
        if (verf) verf->assign(res->WRITE3res_u.resok.verf, NFS3_WRITEVERFSIZE);
        if (count) *count = res->WRITE3res_u.resok.count;
      }
    });
    return st;
  }
  nfsstat3 Read(const Fh& fh, uint64_t off, uint32_t count, std::string* data, bool* eof) {
    nfsstat3 st = NFS3ERR_SERVERFAULT;
    READ3args a{ToFh(fh), off, count};
    LNFS_CALL(rpc_nfs3_read_async, a, {
      auto* res = static_cast<READ3res*>(d);
      st = res->status;
      if (st == NFS3_OK) {
        auto& ok = res->READ3res_u.resok;
        data->assign(ok.data.data_val, ok.data.data_len);
        EXPECT_EQ(ok.count, ok.data.data_len);
        *eof = ok.eof;
      }
    });
    return st;
  }
  // Full READDIRPLUS (plus=true) or READDIR listing: name → fileid. Counts duplicates.
  nfsstat3 List(const Fh& dir, bool plus, std::map<std::string, uint64_t>* names,
                int* duplicates, int* calls, uint32_t dircount = 8192) {
    uint64_t cookie = 0;
    char verf[NFS3_COOKIEVERFSIZE] = {0};
    bool eof = false;
    *duplicates = 0;
    *calls = 0;
    while (!eof) {
      nfsstat3 st = NFS3ERR_SERVERFAULT;
      int got = 0;
      ++*calls;
      auto take = [&](const char* name, uint64_t fileid, uint64_t c) {
        if (!names->emplace(name, fileid).second) ++*duplicates;
        cookie = c;
        got++;
      };
      if (plus) {
        READDIRPLUS3args a;
        memset(&a, 0, sizeof a);
        a.dir = ToFh(dir);
        a.cookie = cookie;
        memcpy(a.cookieverf, verf, sizeof verf);
        a.dircount = dircount;
        a.maxcount = dircount * 4;
        LNFS_CALL(rpc_nfs3_readdirplus_async, a, {
          auto* res = static_cast<READDIRPLUS3res*>(d);
          st = res->status;
          if (st != NFS3_OK) return;
          auto& ok = res->READDIRPLUS3res_u.resok;
          memcpy(verf, ok.cookieverf, sizeof verf);
          for (entryplus3* e = ok.reply.entries; e; e = e->nextentry) {
            std::string n = e->name;
            if (n != "." && n != "..") {
              EXPECT_TRUE(e->name_attributes.attributes_follow) << n;
              EXPECT_TRUE(e->name_handle.handle_follows) << n;
              if (e->name_attributes.attributes_follow) {
                EXPECT_EQ(e->name_attributes.post_op_attr_u.attributes.fileid, e->fileid) << n;
              }
            }
            take(e->name, e->fileid, e->cookie);
          }
          eof = ok.reply.eof;
        });
      } else {
        READDIR3args a;
        memset(&a, 0, sizeof a);
        a.dir = ToFh(dir);
        a.cookie = cookie;
        memcpy(a.cookieverf, verf, sizeof verf);
        a.count = dircount;
        LNFS_CALL(rpc_nfs3_readdir_async, a, {
          auto* res = static_cast<READDIR3res*>(d);
          st = res->status;
          if (st != NFS3_OK) return;
          auto& ok = res->READDIR3res_u.resok;
          memcpy(verf, ok.cookieverf, sizeof verf);
          for (entry3* e = ok.reply.entries; e; e = e->nextentry) take(e->name, e->fileid, e->cookie);
          eof = ok.reply.eof;
        });
      }
      if (st != NFS3_OK) return st;
      if (got == 0 && !eof) {
        ADD_FAILURE() << "READDIR reply with no entries and no eof";
        return NFS3ERR_SERVERFAULT;
      }
      if (*calls > 100000) return NFS3ERR_SERVERFAULT;
    }
    return NFS3_OK;
  }

  TempDir root_;
  std::unique_ptr<ServerProcess> server_;
  RawRpc mnt_, nfs_;
  Fh rootfh_;
};

// --- MOUNT ----------------------------------------------------------------------------

TEST_F(LibnfsTest, MountNullMntDumpUmntExport) {
  // NULL
  EXPECT_TRUE(mnt_.Call([](rpc_context* r, rpc_cb cb, void* w) { return rpc_mount3_null_async(r, cb, w); },
                        nullptr))
      << mnt_.error();
  // MNT returned a handle and AUTH_SYS.
  Fh fh;
  std::vector<int> flavors;
  ASSERT_EQ(Mnt(root_.path(), &fh, &flavors), MNT3_OK);
  EXPECT_FALSE(fh.empty());
  EXPECT_LE(fh.size(), 64u);
  EXPECT_NE(std::find(flavors.begin(), flavors.end(), 1 /*AUTH_SYS*/), flavors.end());
  // Not exported → an error, never a handle.
  Fh other;
  EXPECT_NE(Mnt("/etc", &other), MNT3_OK);
  EXPECT_NE(Mnt(root_.path() + "/../", &other), MNT3_OK);

  auto dump = [&]() {
    std::vector<std::string> dirs;
    EXPECT_TRUE(mnt_.Call([](rpc_context* r, rpc_cb cb, void* w) { return rpc_mount3_dump_async(r, cb, w); },
                          [&](void* d) {
                            for (mountbody* m = *static_cast<mountlist*>(d); m; m = m->ml_next)
                              dirs.push_back(m->ml_directory);
                          }))
        << mnt_.error();
    return dirs;
  };
  auto dirs = dump();
  EXPECT_NE(std::find(dirs.begin(), dirs.end(), root_.path()), dirs.end())
      << "DUMP does not list the mounted export";
  // UMNT removes it.
  std::string p = root_.path();
  EXPECT_TRUE(mnt_.Call([&](rpc_context* r, rpc_cb cb, void* w) { return rpc_mount3_umnt_async(r, cb, p.data(), w); },
                        nullptr))
      << mnt_.error();
  dirs = dump();
  EXPECT_EQ(std::find(dirs.begin(), dirs.end(), root_.path()), dirs.end())
      << "DUMP still lists the export after UMNT";
  // EXPORT lists the export.
  std::vector<std::string> exported;
  EXPECT_TRUE(mnt_.Call([](rpc_context* r, rpc_cb cb, void* w) { return rpc_mount3_export_async(r, cb, w); },
                        [&](void* d) {
                          for (exportnode* e = *static_cast<exports*>(d); e; e = e->ex_next)
                            exported.push_back(e->ex_dir);
                        }))
      << mnt_.error();
  EXPECT_EQ(exported, std::vector<std::string>{root_.path()});
  // UMNTALL is accepted.
  EXPECT_TRUE(mnt_.Call([](rpc_context* r, rpc_cb cb, void* w) { return rpc_mount3_umntall_async(r, cb, w); },
                        nullptr))
      << mnt_.error();
}

TEST_F(LibnfsTest, MountIsAlsoServedOnTheNfsPort) {
  RawRpc m;
  ASSERT_TRUE(m.Connect(server_->nfs_port(), kMountProgram, 3)) << m.error();
  std::string p = root_.path();
  mountstat3 st = MNT3ERR_SERVERFAULT;
  Fh fh;
  ASSERT_TRUE(m.Call([&](rpc_context* r, rpc_cb cb, void* w) { return rpc_mount3_mnt_async(r, cb, p.data(), w); },
                     [&](void* d) {
                       auto* res = static_cast<mountres3*>(d);
                       st = res->fhs_status;
                       if (st == MNT3_OK)
                         fh.assign(res->mountres3_u.mountinfo.fhandle.fhandle3_val,
                                   res->mountres3_u.mountinfo.fhandle.fhandle3_len);
                     }))
      << m.error();
  ASSERT_EQ(st, MNT3_OK);
  fattr3 a;
  ASSERT_EQ(Getattr(fh, &a), NFS3_OK);
  EXPECT_EQ(a.fileid, LStat(root_.path()).st.st_ino);
}

// --- attributes -----------------------------------------------------------------------

TEST_F(LibnfsTest, NullAndGetattrMatchTheFileSystem) {
  EXPECT_TRUE(nfs_.Call([](rpc_context* r, rpc_cb cb, void* w) { return rpc_nfs3_null_async(r, cb, w); },
                        nullptr))
      << nfs_.error();
  ASSERT_TRUE(WriteFile(root_.Sub("f"), std::string(12345, 'x')));
  ASSERT_EQ(chmod(root_.Sub("f").c_str(), 0640), 0);
  ASSERT_EQ(chown(root_.Sub("f").c_str(), 1234, 5678), 0);
  fattr3 ra;
  ASSERT_EQ(Getattr(rootfh_, &ra), NFS3_OK);
  Stat rs = LStat(root_.path());
  EXPECT_EQ(ra.type, NF3DIR);
  EXPECT_EQ(ra.fileid, rs.st.st_ino);
  EXPECT_EQ(ra.mode, rs.st.st_mode & 07777);
  EXPECT_EQ(ra.nlink, rs.st.st_nlink);

  Fh fh;
  fattr3 la, fa;
  ASSERT_EQ(Lookup(rootfh_, "f", &fh, &la), NFS3_OK);
  ASSERT_EQ(Getattr(fh, &fa), NFS3_OK);
  Stat fs = LStat(root_.Sub("f"));
  EXPECT_EQ(fa.type, NF3REG);
  EXPECT_EQ(fa.mode, 0640u);
  EXPECT_EQ(fa.uid, 1234u);
  EXPECT_EQ(fa.gid, 5678u);
  EXPECT_EQ(fa.size, 12345u);
  EXPECT_EQ(fa.fileid, fs.st.st_ino);
  EXPECT_EQ(fa.nlink, 1u);
  EXPECT_EQ(fa.mtime.seconds, static_cast<u_int>(fs.st.st_mtim.tv_sec));
  EXPECT_EQ(fa.mtime.nseconds, static_cast<u_int>(fs.st.st_mtim.tv_nsec));
  EXPECT_EQ(fa.ctime.seconds, static_cast<u_int>(fs.st.st_ctim.tv_sec));
  EXPECT_EQ(la.fileid, fa.fileid);
}

TEST_F(LibnfsTest, SetattrModeOwnerSizeAndTimes) {
  ASSERT_TRUE(WriteFile(root_.Sub("f"), std::string(1000, 'a')));
  Fh fh;
  ASSERT_EQ(Lookup(rootfh_, "f", &fh), NFS3_OK);

  ASSERT_EQ(Setattr(fh, ModeAttr(0604)), NFS3_OK);
  EXPECT_EQ(LStat(root_.Sub("f")).st.st_mode & 07777, 0604u);

  sattr3 own = NoAttrs();
  own.uid.set_it = 1;
  own.uid.set_uid3_u.uid = 4321;
  own.gid.set_it = 1;
  own.gid.set_gid3_u.gid = 8765;
  ASSERT_EQ(Setattr(fh, own), NFS3_OK);
  EXPECT_EQ(LStat(root_.Sub("f")).st.st_uid, 4321u);
  EXPECT_EQ(LStat(root_.Sub("f")).st.st_gid, 8765u);

  sattr3 sz = NoAttrs();
  sz.size.set_it = 1;
  sz.size.set_size3_u.size = 10;
  ASSERT_EQ(Setattr(fh, sz), NFS3_OK);
  EXPECT_EQ(ReadFile(root_.Sub("f")), std::string(10, 'a'));
  sz.size.set_size3_u.size = 5000;
  ASSERT_EQ(Setattr(fh, sz), NFS3_OK);
  EXPECT_EQ(ReadFile(root_.Sub("f")), std::string(10, 'a') + std::string(4990, '\0'));

  sattr3 t = NoAttrs();
  t.atime.set_it = SET_TO_CLIENT_TIME;
  t.atime.set_atime_u.atime = {1500000000, 123456789};
  t.mtime.set_it = SET_TO_CLIENT_TIME;
  t.mtime.set_mtime_u.mtime = {1600000000, 987654321};
  ASSERT_EQ(Setattr(fh, t), NFS3_OK);
  Stat s = LStat(root_.Sub("f"));
  EXPECT_EQ(s.st.st_atim.tv_sec, 1500000000);
  EXPECT_EQ(s.st.st_atim.tv_nsec, 123456789);
  EXPECT_EQ(s.st.st_mtim.tv_sec, 1600000000);
  EXPECT_EQ(s.st.st_mtim.tv_nsec, 987654321);

  sattr3 now = NoAttrs();
  now.atime.set_it = SET_TO_SERVER_TIME;
  now.mtime.set_it = SET_TO_SERVER_TIME;
  ASSERT_EQ(Setattr(fh, now), NFS3_OK);
  s = LStat(root_.Sub("f"));
  time_t t0 = time(nullptr);
  EXPECT_NEAR(static_cast<double>(s.st.st_mtim.tv_sec), static_cast<double>(t0), 5.0);
  EXPECT_NEAR(static_cast<double>(s.st.st_atim.tv_sec), static_cast<double>(t0), 5.0);
}

TEST_F(LibnfsTest, SetattrWithMismatchedCtimeGuardIsNotSync) {
  ASSERT_TRUE(WriteFile(root_.Sub("g"), "guarded"));
  ASSERT_EQ(chmod(root_.Sub("g").c_str(), 0644), 0);
  Fh fh;
  fattr3 a;
  ASSERT_EQ(Lookup(rootfh_, "g", &fh), NFS3_OK);
  ASSERT_EQ(Getattr(fh, &a), NFS3_OK);
  nfstime3 wrong = a.ctime;
  wrong.seconds -= 100;
  EXPECT_EQ(Setattr(fh, ModeAttr(0600), &wrong), NFS3ERR_NOT_SYNC);
  EXPECT_EQ(LStat(root_.Sub("g")).st.st_mode & 07777, 0644u) << "guarded SETATTR changed the file";
  EXPECT_EQ(Setattr(fh, ModeAttr(0600), &a.ctime), NFS3_OK) << "guard with the right ctime";
  EXPECT_EQ(LStat(root_.Sub("g")).st.st_mode & 07777, 0600u);
}

// --- lookup, access, readlink ---------------------------------------------------------

TEST_F(LibnfsTest, LookupDotDotdotAndMissing) {
  ASSERT_EQ(mkdir(root_.Sub("d").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(root_.Sub("d/f"), "x"));
  Fh d, f, x;
  fattr3 a;
  ASSERT_EQ(Lookup(rootfh_, "d", &d, &a), NFS3_OK);
  EXPECT_EQ(a.fileid, LStat(root_.Sub("d")).st.st_ino);
  ASSERT_EQ(Lookup(d, "f", &f, &a), NFS3_OK);
  EXPECT_EQ(a.fileid, LStat(root_.Sub("d/f")).st.st_ino);
  ASSERT_EQ(Lookup(d, ".", &x, &a), NFS3_OK);
  EXPECT_EQ(a.fileid, LStat(root_.Sub("d")).st.st_ino);
  ASSERT_EQ(Lookup(d, "..", &x, &a), NFS3_OK);
  EXPECT_EQ(a.fileid, LStat(root_.path()).st.st_ino);
  ASSERT_EQ(Lookup(rootfh_, "..", &x, &a), NFS3_OK);
  EXPECT_EQ(a.fileid, LStat(root_.path()).st.st_ino) << "'..' at the export root must stay";
  EXPECT_EQ(Lookup(rootfh_, "missing", &x), NFS3ERR_NOENT);
  EXPECT_EQ(Lookup(f, "x", &x), NFS3ERR_NOTDIR);
}

TEST_F(LibnfsTest, AccessReflectsModeBits) {
  ASSERT_TRUE(WriteFile(root_.Sub("f"), "x"));
  ASSERT_EQ(chmod(root_.Sub("f").c_str(), 0644), 0);
  Fh fh;
  ASSERT_EQ(Lookup(rootfh_, "f", &fh), NFS3_OK);
  auto access = [&](const Fh& h, uint32_t want) {
    uint32_t granted = 0;
    nfsstat3 st = NFS3ERR_SERVERFAULT;
    ACCESS3args a{ToFh(h), want};
    LNFS_CALL(rpc_nfs3_access_async, a, {
      auto* res = static_cast<ACCESS3res*>(d);
      st = res->status;
      if (st == NFS3_OK) granted = res->ACCESS3res_u.resok.access;
    });
    EXPECT_EQ(st, NFS3_OK);
    return granted;
  };
  const uint32_t all = ACCESS3_READ | ACCESS3_LOOKUP | ACCESS3_MODIFY | ACCESS3_EXTEND |
                       ACCESS3_DELETE | ACCESS3_EXECUTE;
  uint32_t g = access(fh, all);
  EXPECT_TRUE(g & ACCESS3_READ);
  EXPECT_TRUE(g & ACCESS3_MODIFY);
  EXPECT_FALSE(g & ACCESS3_EXECUTE) << "root has no execute on a 0644 file";
  EXPECT_EQ(g & ~all, 0u) << "granted bits that were not asked for";
  ASSERT_EQ(chmod(root_.Sub("f").c_str(), 0755), 0);
  EXPECT_TRUE(access(fh, ACCESS3_EXECUTE) & ACCESS3_EXECUTE);
  EXPECT_TRUE(access(rootfh_, ACCESS3_LOOKUP) & ACCESS3_LOOKUP);
}

TEST_F(LibnfsTest, ReadlinkReturnsTheTarget) {
  ASSERT_EQ(symlink("some/where/else", root_.Sub("l").c_str()), 0);
  Fh fh;
  fattr3 a;
  ASSERT_EQ(Lookup(rootfh_, "l", &fh, &a), NFS3_OK);
  EXPECT_EQ(a.type, NF3LNK);
  std::string target;
  nfsstat3 st = NFS3ERR_SERVERFAULT;
  READLINK3args args{ToFh(fh)};
  LNFS_CALL(rpc_nfs3_readlink_async, args, {
    auto* res = static_cast<READLINK3res*>(d);
    st = res->status;
    if (st == NFS3_OK) target = res->READLINK3res_u.resok.data;
  });
  ASSERT_EQ(st, NFS3_OK);
  EXPECT_EQ(target, "some/where/else");
}

// --- data -----------------------------------------------------------------------------

TEST_F(LibnfsTest, ReadReportsEofExactly) {
  std::string content(10000, '\0');
  for (size_t i = 0; i < content.size(); i++) content[i] = static_cast<char>(i * 7);
  ASSERT_TRUE(WriteFile(root_.Sub("r"), content));
  Fh fh;
  ASSERT_EQ(Lookup(rootfh_, "r", &fh), NFS3_OK);
  std::string d;
  bool eof = true;
  ASSERT_EQ(Read(fh, 0, 4096, &d, &eof), NFS3_OK);
  EXPECT_EQ(d, content.substr(0, 4096));
  EXPECT_FALSE(eof);
  ASSERT_EQ(Read(fh, 8192, 4096, &d, &eof), NFS3_OK);
  EXPECT_EQ(d, content.substr(8192));
  EXPECT_TRUE(eof);
  ASSERT_EQ(Read(fh, 0, 10000, &d, &eof), NFS3_OK);
  EXPECT_EQ(d, content);
  EXPECT_TRUE(eof);
  ASSERT_EQ(Read(fh, 20000, 100, &d, &eof), NFS3_OK);
  EXPECT_EQ(d, "");
  EXPECT_TRUE(eof);
  Fh dirfh = rootfh_;
  nfsstat3 dst = Read(dirfh, 0, 100, &d, &eof);
  EXPECT_TRUE(dst == NFS3ERR_ISDIR || dst == NFS3ERR_INVAL) << "READ of a directory: " << dst;
}

TEST_F(LibnfsTest, WriteUnstableCommitAndFileSync) {
  ASSERT_TRUE(WriteFile(root_.Sub("w"), ""));
  Fh fh;
  ASSERT_EQ(Lookup(rootfh_, "w", &fh), NFS3_OK);
  stable_how committed;
  std::string verf1, verf2;
  uint32_t count = 0;
  ASSERT_EQ(Write(fh, 0, "hello ", UNSTABLE, &committed, &verf1, &count), NFS3_OK);
  EXPECT_EQ(count, 6u);
  ASSERT_EQ(Write(fh, 6, "world", UNSTABLE, &committed, &verf2), NFS3_OK);
  EXPECT_EQ(verf1, verf2);
  COMMIT3args c{ToFh(fh), 0, 0};
  nfsstat3 st = NFS3ERR_SERVERFAULT;
  std::string cverf;
  LNFS_CALL(rpc_nfs3_commit_async, c, {
    auto* res = static_cast<COMMIT3res*>(d);
    st = res->status;
    if (st == NFS3_OK) cverf.assign(res->COMMIT3res_u.resok.verf, NFS3_WRITEVERFSIZE);
  });
  ASSERT_EQ(st, NFS3_OK);
  EXPECT_EQ(cverf, verf1) << "COMMIT verifier differs from WRITE verifier without a restart";
  EXPECT_EQ(ReadFile(root_.Sub("w")), "hello world");

  ASSERT_EQ(Write(fh, 0, "HELLO", FILE_SYNC, &committed), NFS3_OK);
  EXPECT_EQ(committed, FILE_SYNC);
  EXPECT_EQ(ReadFile(root_.Sub("w")), "HELLO world");

  // One 1 MiB WRITE (wtmax >= 1 MiB) lands in full.
  std::string big(1 << 20, '\0');
  std::mt19937 rng(3);
  for (auto& ch : big) ch = static_cast<char>(rng());
  ASSERT_EQ(Write(fh, 0, big, DATA_SYNC, &committed, nullptr, &count), NFS3_OK);
  EXPECT_EQ(count, big.size());
  EXPECT_NE(committed, UNSTABLE);
  EXPECT_EQ(ReadFile(root_.Sub("w")), big);
}

// --- creation -------------------------------------------------------------------------

TEST_F(LibnfsTest, CreateUncheckedGuardedExclusive) {
  Fh f1, f2;
  ASSERT_EQ(Create(rootfh_, "u", UNCHECKED, &f1, nullptr, 0640), NFS3_OK);
  Stat s = LStat(root_.Sub("u"));
  ASSERT_TRUE(s.ok);
  EXPECT_TRUE(S_ISREG(s.st.st_mode));
  EXPECT_EQ(s.st.st_mode & 07777, 0640u);
  EXPECT_EQ(Create(rootfh_, "u", UNCHECKED, &f2), NFS3_OK) << "UNCHECKED over an existing file";

  EXPECT_EQ(Create(rootfh_, "u", GUARDED, &f2), NFS3ERR_EXIST);
  ASSERT_EQ(Create(rootfh_, "g", GUARDED, &f2), NFS3_OK);
  EXPECT_TRUE(LStat(root_.Sub("g")).ok);

  const char v1[NFS3_CREATEVERFSIZE] = {1, 2, 3, 4, 5, 6, 7, 8};
  const char v2[NFS3_CREATEVERFSIZE] = {8, 7, 6, 5, 4, 3, 2, 1};
  Fh e1, e2, e3;
  ASSERT_EQ(Create(rootfh_, "excl", EXCLUSIVE, &e1, v1), NFS3_OK);
  uint64_t ino = LStat(root_.Sub("excl")).st.st_ino;
  ASSERT_NE(ino, 0u);
  EXPECT_EQ(Create(rootfh_, "excl", EXCLUSIVE, &e2, v1), NFS3_OK)
      << "a retransmitted EXCLUSIVE create (same verifier) must succeed";
  fattr3 a1, a2;
  ASSERT_EQ(Getattr(e1, &a1), NFS3_OK);
  ASSERT_EQ(Getattr(e2, &a2), NFS3_OK);
  EXPECT_EQ(a1.fileid, ino);
  EXPECT_EQ(a2.fileid, ino);
  EXPECT_EQ(Create(rootfh_, "excl", EXCLUSIVE, &e3, v2), NFS3ERR_EXIST)
      << "EXCLUSIVE with another verifier";
  EXPECT_EQ(Create(rootfh_, "u", EXCLUSIVE, &e3, v1), NFS3ERR_EXIST)
      << "EXCLUSIVE over a file not created exclusively";
  // The client then sets the real attributes.
  ASSERT_EQ(Setattr(e1, ModeAttr(0600)), NFS3_OK);
  EXPECT_EQ(LStat(root_.Sub("excl")).st.st_mode & 07777, 0600u);
}

TEST_F(LibnfsTest, MkdirSymlinkMknod) {
  nfsstat3 st = NFS3ERR_SERVERFAULT;
  std::string name = "dir";
  MKDIR3args m;
  memset(&m, 0, sizeof m);
  m.where.dir = ToFh(rootfh_);
  m.where.name = name.data();
  m.attributes = ModeAttr(0750);
  LNFS_CALL(rpc_nfs3_mkdir_async, m, { st = static_cast<MKDIR3res*>(d)->status; });
  ASSERT_EQ(st, NFS3_OK);
  Stat s = LStat(root_.Sub("dir"));
  ASSERT_TRUE(s.ok);
  EXPECT_TRUE(S_ISDIR(s.st.st_mode));
  EXPECT_EQ(s.st.st_mode & 07777, 0750u);
  LNFS_CALL(rpc_nfs3_mkdir_async, m, { st = static_cast<MKDIR3res*>(d)->status; });
  EXPECT_EQ(st, NFS3ERR_EXIST);

  std::string lname = "link", target = "dir/../target";
  SYMLINK3args sl;
  memset(&sl, 0, sizeof sl);
  sl.where.dir = ToFh(rootfh_);
  sl.where.name = lname.data();
  sl.symlink.symlink_attributes = NoAttrs();
  sl.symlink.symlink_data = target.data();
  LNFS_CALL(rpc_nfs3_symlink_async, sl, { st = static_cast<SYMLINK3res*>(d)->status; });
  ASSERT_EQ(st, NFS3_OK);
  char buf[256] = {0};
  ASSERT_GT(readlink(root_.Sub("link").c_str(), buf, sizeof buf - 1), 0);
  EXPECT_STREQ(buf, "dir/../target");

  std::string fname = "fifo";
  MKNOD3args mk;
  memset(&mk, 0, sizeof mk);
  mk.where.dir = ToFh(rootfh_);
  mk.where.name = fname.data();
  mk.what.type = NF3FIFO;
  mk.what.mknoddata3_u.pipe_attributes = ModeAttr(0620);
  LNFS_CALL(rpc_nfs3_mknod_async, mk, { st = static_cast<MKNOD3res*>(d)->status; });
  ASSERT_EQ(st, NFS3_OK);
  s = LStat(root_.Sub("fifo"));
  ASSERT_TRUE(s.ok);
  EXPECT_TRUE(S_ISFIFO(s.st.st_mode));
  EXPECT_EQ(s.st.st_mode & 07777, 0620u);

  std::string sname = "sock";
  mk.where.name = sname.data();
  mk.what.type = NF3SOCK;
  mk.what.mknoddata3_u.sock_attributes = ModeAttr(0600);
  LNFS_CALL(rpc_nfs3_mknod_async, mk, { st = static_cast<MKNOD3res*>(d)->status; });
  ASSERT_EQ(st, NFS3_OK);
  EXPECT_TRUE(S_ISSOCK(LStat(root_.Sub("sock")).st.st_mode));

  Fh ffh;
  fattr3 a;
  ASSERT_EQ(Lookup(rootfh_, "fifo", &ffh, &a), NFS3_OK);
  EXPECT_EQ(a.type, NF3FIFO);
}

// --- removal, rename, link ------------------------------------------------------------

TEST_F(LibnfsTest, RemoveRmdirRenameLink) {
  ASSERT_TRUE(WriteFile(root_.Sub("a"), "A"));
  ASSERT_TRUE(WriteFile(root_.Sub("b"), "B"));
  ASSERT_TRUE(WriteFile(root_.Sub("c"), "C"));
  ASSERT_EQ(mkdir(root_.Sub("d1").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(root_.Sub("d2").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(root_.Sub("empty").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(root_.Sub("d2/inside"), "I"));
  Fh d1, d2, afh;
  ASSERT_EQ(Lookup(rootfh_, "d1", &d1), NFS3_OK);
  ASSERT_EQ(Lookup(rootfh_, "d2", &d2), NFS3_OK);
  ASSERT_EQ(Lookup(rootfh_, "a", &afh), NFS3_OK);

  auto rename = [&](const Fh& fd, std::string from, const Fh& td, std::string to) {
    nfsstat3 st = NFS3ERR_SERVERFAULT;
    RENAME3args r;
    r.from.dir = ToFh(fd);
    r.from.name = from.data();
    r.to.dir = ToFh(td);
    r.to.name = to.data();
    LNFS_CALL(rpc_nfs3_rename_async, r, { st = static_cast<RENAME3res*>(d)->status; });
    return st;
  };
  auto remove = [&](const Fh& dir, std::string name) {
    nfsstat3 st = NFS3ERR_SERVERFAULT;
    REMOVE3args r;
    r.object.dir = ToFh(dir);
    r.object.name = name.data();
    LNFS_CALL(rpc_nfs3_remove_async, r, { st = static_cast<REMOVE3res*>(d)->status; });
    return st;
  };
  auto rmdir = [&](const Fh& dir, std::string name) {
    nfsstat3 st = NFS3ERR_SERVERFAULT;
    RMDIR3args r;
    r.object.dir = ToFh(dir);
    r.object.name = name.data();
    LNFS_CALL(rpc_nfs3_rmdir_async, r, { st = static_cast<RMDIR3res*>(d)->status; });
    return st;
  };

  // RENAME: same dir, across dirs, over an existing file.
  ASSERT_EQ(rename(rootfh_, "a", rootfh_, "a2"), NFS3_OK);
  EXPECT_FALSE(LStat(root_.Sub("a")).ok);
  EXPECT_EQ(ReadFile(root_.Sub("a2")), "A");
  ASSERT_EQ(rename(rootfh_, "a2", d1, "a3"), NFS3_OK);
  EXPECT_EQ(ReadFile(root_.Sub("d1/a3")), "A");
  ASSERT_EQ(rename(rootfh_, "b", d1, "a3"), NFS3_OK);
  EXPECT_EQ(ReadFile(root_.Sub("d1/a3")), "B");
  EXPECT_FALSE(LStat(root_.Sub("b")).ok);
  fattr3 a;
  EXPECT_NE(Getattr(afh, &a), NFS3_OK) << "handle of a file replaced by rename still resolves";
  EXPECT_EQ(rename(rootfh_, "missing", d1, "x"), NFS3ERR_NOENT);

  // LINK
  Fh cfh;
  ASSERT_EQ(Lookup(rootfh_, "c", &cfh), NFS3_OK);
  std::string lname = "c-link";
  LINK3args l;
  l.file = ToFh(cfh);
  l.link.dir = ToFh(d2);
  l.link.name = lname.data();
  nfsstat3 st = NFS3ERR_SERVERFAULT;
  LNFS_CALL(rpc_nfs3_link_async, l, { st = static_cast<LINK3res*>(d)->status; });
  ASSERT_EQ(st, NFS3_OK);
  EXPECT_EQ(LStat(root_.Sub("d2/c-link")).st.st_ino, LStat(root_.Sub("c")).st.st_ino);
  EXPECT_EQ(LStat(root_.Sub("c")).st.st_nlink, 2u);
  ASSERT_EQ(Getattr(cfh, &a), NFS3_OK);
  EXPECT_EQ(a.nlink, 2u);

  // REMOVE
  ASSERT_EQ(remove(rootfh_, "c"), NFS3_OK);
  EXPECT_FALSE(LStat(root_.Sub("c")).ok);
  EXPECT_EQ(LStat(root_.Sub("d2/c-link")).st.st_nlink, 1u);
  EXPECT_EQ(remove(rootfh_, "c"), NFS3ERR_NOENT);

  // RMDIR: non-empty → NOTEMPTY, empty → gone.
  EXPECT_EQ(rmdir(rootfh_, "d2"), NFS3ERR_NOTEMPTY);
  EXPECT_TRUE(LStat(root_.Sub("d2/inside")).ok);
  ASSERT_EQ(rmdir(rootfh_, "empty"), NFS3_OK);
  EXPECT_FALSE(LStat(root_.Sub("empty")).ok);
  EXPECT_NE(rmdir(rootfh_, "d1/.."), NFS3_OK);
  EXPECT_TRUE(LStat(root_.Sub("d1")).ok) << "RMDIR with a slash in the name removed something";

  // Directory rename keeps its subtree.
  ASSERT_EQ(rename(rootfh_, "d2", d1, "d2-moved"), NFS3_OK);
  EXPECT_EQ(ReadFile(root_.Sub("d1/d2-moved/inside")), "I");
}

// --- directories ----------------------------------------------------------------------

TEST_F(LibnfsTest, ReaddirListsEveryNameWithFileids) {
  ASSERT_EQ(mkdir(root_.Sub("d").c_str(), 0755), 0);
  std::map<std::string, uint64_t> want;
  for (int i = 0; i < 300; i++) {
    std::string n = "entry-" + std::to_string(i) + std::string(i % 40, 'x');
    ASSERT_TRUE(WriteFile(root_.Sub("d/" + n), ""));
    want[n] = LStat(root_.Sub("d/" + n)).st.st_ino;
  }
  Fh d;
  ASSERT_EQ(Lookup(rootfh_, "d", &d), NFS3_OK);
  std::map<std::string, uint64_t> got;
  int dups = 0, calls = 0;
  ASSERT_EQ(List(d, /*plus=*/false, &got, &dups, &calls, 1024), NFS3_OK);
  EXPECT_EQ(dups, 0);
  EXPECT_GT(calls, 1) << "a 1 KiB count must need several READDIR calls";
  got.erase(".");
  got.erase("..");
  EXPECT_EQ(got, want);
}

TEST_F(LibnfsTest, ReaddirplusOf10000EntriesSeesEveryNameOnce) {
  ASSERT_EQ(mkdir(root_.Sub("big").c_str(), 0755), 0);
  std::map<std::string, uint64_t> want;
  for (int i = 0; i < 10000; i++) {
    std::string p = root_.Sub("big/f" + std::to_string(i));
    int fd = open(p.c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    close(fd);
    want["f" + std::to_string(i)] = LStat(p).st.st_ino;
  }
  Fh d;
  ASSERT_EQ(Lookup(rootfh_, "big", &d), NFS3_OK);
  std::map<std::string, uint64_t> got;
  int dups = 0, calls = 0;
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(List(d, /*plus=*/true, &got, &dups, &calls), NFS3_OK);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0).count();
  std::cerr << "READDIRPLUS of 10000 entries: " << calls << " calls, " << ms << " ms\n";
  EXPECT_EQ(dups, 0) << "names seen more than once";
  got.erase(".");
  got.erase("..");
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want) << "listing differs from the directory on disk";
}

// --- file system info -----------------------------------------------------------------

TEST_F(LibnfsTest, FsstatFsinfoPathconf) {
  struct statvfs vfs;
  ASSERT_EQ(statvfs(root_.path().c_str(), &vfs), 0);
  FSSTAT3args fa{ToFh(rootfh_)};
  nfsstat3 st = NFS3ERR_SERVERFAULT;
  FSSTAT3resok fs{};
  LNFS_CALL(rpc_nfs3_fsstat_async, fa, {
    auto* res = static_cast<FSSTAT3res*>(d);
    st = res->status;
    if (st == NFS3_OK) fs = res->FSSTAT3res_u.resok;
  });
  ASSERT_EQ(st, NFS3_OK);
  EXPECT_EQ(fs.tbytes, static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize);
  EXPECT_LE(fs.abytes, fs.fbytes);
  EXPECT_LE(fs.fbytes, fs.tbytes);
  EXPECT_EQ(fs.tfiles, static_cast<uint64_t>(vfs.f_files));

  FSINFO3args ia{ToFh(rootfh_)};
  FSINFO3resok fi{};
  LNFS_CALL(rpc_nfs3_fsinfo_async, ia, {
    auto* res = static_cast<FSINFO3res*>(d);
    st = res->status;
    if (st == NFS3_OK) fi = res->FSINFO3res_u.resok;
  });
  ASSERT_EQ(st, NFS3_OK);
  EXPECT_GE(fi.rtmax, 1u << 20);
  EXPECT_GE(fi.wtmax, 1u << 20);
  EXPECT_LE(fi.rtpref, fi.rtmax);
  EXPECT_LE(fi.wtpref, fi.wtmax);
  EXPECT_GT(fi.dtpref, 0u);
  EXPECT_GT(fi.maxfilesize, 1ull << 32);
  EXPECT_TRUE(fi.properties & FSF3_LINK);
  EXPECT_TRUE(fi.properties & FSF3_SYMLINK);
  EXPECT_TRUE(fi.properties & FSF3_CANSETTIME);

  PATHCONF3args pa{ToFh(rootfh_)};
  PATHCONF3resok pc{};
  LNFS_CALL(rpc_nfs3_pathconf_async, pa, {
    auto* res = static_cast<PATHCONF3res*>(d);
    st = res->status;
    if (st == NFS3_OK) pc = res->PATHCONF3res_u.resok;
  });
  ASSERT_EQ(st, NFS3_OK);
  EXPECT_EQ(pc.name_max, static_cast<u_int>(pathconf(root_.path().c_str(), _PC_NAME_MAX)));
  EXPECT_EQ(pc.linkmax, static_cast<u_int>(pathconf(root_.path().c_str(), _PC_LINK_MAX)));
  EXPECT_TRUE(pc.no_trunc);
  EXPECT_TRUE(pc.case_preserving);
  EXPECT_FALSE(pc.case_insensitive);
}

// --- the high-level libnfs client -----------------------------------------------------

TEST_F(LibnfsTest, HighLevelClientSession) {
  nfs_context* nfs = nfs_init_context();
  ASSERT_NE(nfs, nullptr);
  std::unique_ptr<nfs_context, void (*)(nfs_context*)> guard(nfs, nfs_destroy_context);
  std::string url = "nfs://127.0.0.1" + root_.path() + "?nfsport=" +
                    std::to_string(server_->nfs_port()) +
                    "&mountport=" + std::to_string(server_->mount_port()) + "&uid=0&gid=0";
  nfs_url* u = nfs_parse_url_dir(nfs, url.c_str());
  ASSERT_NE(u, nullptr) << nfs_get_error(nfs);
  int rc = nfs_mount(nfs, u->server, u->path);
  nfs_destroy_url(u);
  ASSERT_EQ(rc, 0) << nfs_get_error(nfs);

  ASSERT_EQ(nfs_mkdir(nfs, "/tree"), 0) << nfs_get_error(nfs);
  std::string data(3 << 20, '\0');
  std::mt19937 rng(9);
  for (auto& ch : data) ch = static_cast<char>(rng());
  nfsfh* fh = nullptr;
  ASSERT_EQ(nfs_creat(nfs, "/tree/big", 0644, &fh), 0) << nfs_get_error(nfs);
  size_t off = 0;
  while (off < data.size()) {
    size_t n = std::min<size_t>(data.size() - off, 200000);
    int w = nfs_pwrite(nfs, fh, off, n, data.data() + off);
    ASSERT_GT(w, 0) << nfs_get_error(nfs);
    off += w;
  }
  ASSERT_EQ(nfs_fsync(nfs, fh), 0) << nfs_get_error(nfs);
  ASSERT_EQ(nfs_close(nfs, fh), 0);
  EXPECT_EQ(ReadFile(root_.Sub("tree/big")), data);

  nfs_stat_64 st;
  ASSERT_EQ(nfs_stat64(nfs, "/tree/big", &st), 0) << nfs_get_error(nfs);
  EXPECT_EQ(st.nfs_size, data.size());
  EXPECT_EQ(st.nfs_ino, LStat(root_.Sub("tree/big")).st.st_ino);

  ASSERT_EQ(nfs_open(nfs, "/tree/big", O_RDONLY, &fh), 0) << nfs_get_error(nfs);
  std::string back(data.size(), '\0');
  off = 0;
  while (off < back.size()) {
    int r = nfs_pread(nfs, fh, off, back.size() - off, back.data() + off);
    ASSERT_GT(r, 0) << nfs_get_error(nfs);
    off += r;
  }
  nfs_close(nfs, fh);
  EXPECT_TRUE(back == data) << "content read through libnfs differs";

  ASSERT_EQ(nfs_rename(nfs, "/tree/big", "/tree/big2"), 0) << nfs_get_error(nfs);
  EXPECT_TRUE(LStat(root_.Sub("tree/big2")).ok);
  nfsdir* dir = nullptr;
  ASSERT_EQ(nfs_opendir(nfs, "/tree", &dir), 0) << nfs_get_error(nfs);
  std::set<std::string> names;
  while (nfsdirent* e = nfs_readdir(nfs, dir)) names.insert(e->name);
  nfs_closedir(nfs, dir);
  EXPECT_TRUE(names.count("big2"));
  EXPECT_FALSE(names.count("big"));
  ASSERT_EQ(nfs_unlink(nfs, "/tree/big2"), 0) << nfs_get_error(nfs);
  ASSERT_EQ(nfs_rmdir(nfs, "/tree"), 0) << nfs_get_error(nfs);
  EXPECT_FALSE(LStat(root_.Sub("tree")).ok);
  nfs_umount(nfs);
}

}  // namespace
}  // namespace localnfs::testing
