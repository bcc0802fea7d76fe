// nfs_dispatch_fuzz — the whole request path a call record takes in localnfsd after
// record marking: rpc::Dispatcher::Receive and Run (call header, AUTH_SYS, program /
// version / procedure lookup, the rpcgen argument decoder, xdr_free on every path; a
// quick call first told not to block, and continued when it would) into the
// real NFSv3, MOUNT v3 and LOCALIO programs (handle decoding, the request policy,
// credential switching, the procedures themselves) against real temporary exports
// on disk, and the reply encoders on the way back.
//
// Input:
//   byte 0  what to call: 0..21 NFSv3 procedure, 22..27 MOUNT procedure 0..5,
//           28..29 LOCALIO procedure 0..1; 30..255: the rest of the input is a whole
//           call record, passed to the dispatcher as it is.
//   byte 1  bits 0-2: the leading handle (NFSv3) — 0 rw export root, 1 file,
//           2 directory, 3 symlink, 4 file in the directory, 5 ro export root,
//           6 file in the ro export, 7 none: the arguments carry their own handle.
//           For MNT/UMNT, choices 0..6 prefix the arguments (a relative path) with
//           the rw (ro for 5, 6) export's path; for UUID_IS_LOCAL they send a uuid
//           that is pending in the broker; 7 sends the arguments as they are.
//           bits 3-4: credentials — AUTH_SYS root, AUTH_SYS uid 1000, AUTH_NONE,
//           AUTH_SYS nobody. bit 5: the client's port is unprivileged (>= 1024).
//   then    the XDR arguments (after the leading handle when one is chosen).
// A real handle cannot be forged (it carries an HMAC), so the target supplies
// signed handles of fixture objects; byte 1 = 7 still fuzzes the handle decoder.
// Before every input the fixture is restored (same names, types, modes, owners,
// sizes; everything else removed), so inputs replay alike.
//
// Properties beyond "no crash, no leak": every reply the dispatcher produces is a
// well-formed record mark + reply header with the call's xid.
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/localio/broker_client.h"
#include "common/localio/broker_server.h"
#include "common/rcu.h"
#include "common/release_queue.h"
#include "common/unique_fd.h"
#include "export_cache/export_table.h"
#include "export_cache/exports_parser.h"
#include "rpc/dispatch.h"
#include "rpc/message.h"
#include "rpc/record.h"
#include "rpc/reply.h"
#include "server/policy/creds.h"
#include "server/policy/fhandle.h"
#include "server/backend/caching_backend.h"
#include "server/backend/file_cache.h"
#include "server/backend/posix_backend.h"
#include "server/localio/localio_program.h"
#include "server/mount/mount_program.h"
#include "server/nfs3/nfs3_program.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace localnfs;
using namespace localnfs::server;

constexpr uint8_t kFirstMountSelector = 22;
constexpr uint8_t kFirstLocalioSelector = 28;
constexpr uint8_t kFirstRawSelector = 30;
constexpr uint8_t kNoHandle = 7;
constexpr size_t kFileSize = 8192;

// One object of the fixture: where it lives, what it is, and its signed handle.
struct FixtureObject {
  int root;          // 0 = the rw export, 1 = the ro export
  std::string rel;   // "" = the export root
  mode_t type;       // S_IFREG, S_IFDIR, S_IFLNK
  mode_t perm;
  std::string handle;  // filled by Restore
  ino_t ino = 0;
};

class Fixture {
 public:
  Fixture() : dir_("localnfs-fuzz-dispatch"), dispatcher_(&counters_) {
    fuzz::QuietLogs();
    umask(0);
    InitServerCredentials();
    StartReleaseQueue();
    roots_ = {dir_.Sub("rw"), dir_.Sub("ro")};
    for (const std::string& r : roots_) mkdir(r.c_str(), 0777);
    std::vector<exports::ExportSpec> specs;
    for (const std::string& arg : {roots_[0] + ":rw,no_root_squash", roots_[1] + ":ro"}) {
      absl::StatusOr<exports::ExportSpec> spec = exports::ParseExportArg(arg);
      if (!spec.ok()) abort();
      specs.push_back(*std::move(spec));
    }
    if (!table_.Load(specs).ok()) abort();
    for (int i = 0; i < 2; ++i) export_ids_[i] = exports::ExportIdForPath(roots_[i]);
    objects_ = {
        {0, "", S_IFDIR, 0777},          {0, "file", S_IFREG, 0666},
        {0, "dir", S_IFDIR, 0777},       {0, "link", S_IFLNK, 0777},
        {0, "dir/inner", S_IFREG, 0644}, {1, "", S_IFDIR, 0755},
        {1, "file", S_IFREG, 0644},
    };
    Restore();
    resolver_.Start(*table_.List().front());
    FileCacheOptions fc;
    fc.max_entries = 8;
    // The backend stack of main.cc: the POSIX backend under the caching layer.
    posix_backend_ = std::make_unique<backend::PosixBackend>(resolver_);
    backend_ = std::make_unique<backend::CachingBackend>(*posix_backend_, fc);
    backend_->Start();

    const std::string runtime = dir_.Sub("run");
    absl::StatusOr<std::unique_ptr<broker::Broker>> b = broker::Broker::CreateForServer(runtime);
    if (!b.ok() || !(*b)->PublishServer(broker::ServerRecord{runtime + "/localio.sock"}).ok())
      abort();
    broker_ = *std::move(b);
    // The uuids of LOCALIO calls are registered as a client would register them.
    absl::StatusOr<std::unique_ptr<broker::BrokerClient>> c =
        broker::BrokerClient::Open(runtime);
    if (!c.ok()) abort();
    client_broker_ = *std::move(c);

    Nfs3Program::Deps deps;
    deps.exports = &table_;
    deps.key = &key_;
    deps.backend = backend_.get();
    deps.write_verifier = 0x0123456789abcdefULL;
    nfs3_ = std::make_unique<Nfs3Program>(deps);
    mount_ = std::make_unique<MountProgram>(MountProgram::Deps{&table_, &key_, backend_.get()});
    localio_ = std::make_unique<LocalioProgram>(broker_.get());
    dispatcher_.AddProgram(nfs3_.get());
    dispatcher_.AddProgram(mount_.get());
    dispatcher_.AddProgram(localio_.get());
    PeerAddress local, privileged, unprivileged;
    if (!PeerAddress::Parse("127.0.0.1", 2049, &local) ||
        !PeerAddress::Parse("127.0.0.1", 700, &privileged) ||
        !PeerAddress::Parse("127.0.0.1", 40000, &unprivileged)) {
      abort();
    }
    conns_[0] = std::make_unique<rpc::ConnectionInfo>(1, privileged, local);
    conns_[1] = std::make_unique<rpc::ConnectionInfo>(2, unprivileged, local);
  }

  void Run(const uint8_t* data, size_t size) {
    if (size < 2) return;
    Restore();
    const uint8_t selector = data[0];
    const uint8_t flags = data[1];
    const std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
    rpc::ConnectionInfo* conn = conns_[(flags >> 5) & 1].get();
    std::string record;
    std::optional<broker::Uuid> uuid;
    if (selector >= kFirstRawSelector) {
      record.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
    } else {
      record = CallRecord(selector, flags, rest, &uuid);
    }
    // As the server runs it: a quick call first on the "event loop" (told not to
    // block); one that would block continues as a worker would, from where it stopped.
    std::unique_ptr<rpc::Call> call = dispatcher_.Receive(record, conn);
    rpc::ReplyRecord reply;
    rpc::Dispatcher::RunOptions run;
    run.must_not_block = call->quick();
    rpc::Dispatcher::Outcome outcome = dispatcher_.Run(*call, &reply, std::move(run));
    if (outcome == rpc::Dispatcher::Outcome::kWouldBlock) {
      outcome = dispatcher_.Run(*call, &reply, rpc::Dispatcher::RunOptions{});
    }
    if (outcome == rpc::Dispatcher::Outcome::kReply) CheckReply(record, reply.Flatten());
    if (uuid) client_broker_->UuidRelease(*uuid);
    FlushThisThread();
  }

 private:
  std::string CallRecord(uint8_t selector, uint8_t flags, std::string_view rest,
                         std::optional<broker::Uuid>* uuid) {
    uint32_t prog, vers, proc;
    if (selector < kFirstMountSelector) {
      prog = 100003, vers = 3, proc = selector;
    } else if (selector < kFirstLocalioSelector) {
      prog = 100005, vers = 3, proc = selector - kFirstMountSelector;
    } else {
      prog = 400122, vers = 1, proc = selector - kFirstLocalioSelector;
    }
    rpc::CallAuth auth;
    switch ((flags >> 3) & 3) {
      case 0:
        auth.flavor = rpc::AuthFlavor::kSys;
        auth.cred.uid = auth.cred.gid = 0;
        auth.cred.groups = {0};
        break;
      case 1:
        auth.flavor = rpc::AuthFlavor::kSys;
        auth.cred.uid = auth.cred.gid = 1000;
        auth.cred.groups = {1000, 100};
        break;
      case 2:
        auth.flavor = rpc::AuthFlavor::kNone;
        break;
      case 3:
        auth.flavor = rpc::AuthFlavor::kSys;
        auth.cred.uid = auth.cred.gid = kNobodyUid;
        break;
    }
    auth.machine_name = "fuzz";
    std::string record(rpc::CallHeaderSize(auth), '\0');
    XDR x;
    xdrmem_create(&x, record.data(), static_cast<u_int>(record.size()), XDR_ENCODE);
    if (!rpc::EncodeCallHeader(&x, ++xid_, prog, vers, proc, auth)) abort();
    record.resize(xdr_getpos(&x));
    xdr_destroy(&x);

    const uint8_t choice = flags & 7;
    if (choice == kNoHandle) {
      record.append(rest);
    } else if (prog == 100003) {
      fuzz::PutOpaque(&record, objects_[choice].handle);
      record.append(rest);
    } else if (prog == 100005 && (proc == 1 || proc == 3)) {
      fuzz::PutOpaque(&record, roots_[choice >= 5 ? 1 : 0] + std::string(rest));
    } else if (prog == 400122 && proc == 1) {
      absl::StatusOr<broker::Uuid> pending = client_broker_->UuidBegin();
      if (!pending.ok()) abort();  // every input releases its uuid: slots never run out
      *uuid = *pending;
      record.append(reinterpret_cast<const char*>(pending->data()), pending->size());
    } else {
      record.append(rest);
    }
    return record;
  }

  static void CheckReply(const std::string& call, const std::string& reply) {
    if (reply.size() < rpc::kRecordMarkSize + 12) abort();
    const uint32_t mark = uint32_t{uint8_t(reply[0])} << 24 | uint32_t{uint8_t(reply[1])} << 16 |
                          uint32_t{uint8_t(reply[2])} << 8 | uint8_t(reply[3]);
    if (mark != (rpc::kLastFragmentBit | (reply.size() - rpc::kRecordMarkSize))) abort();
    XDR x;
    xdrmem_create(&x, const_cast<char*>(reply.data()) + rpc::kRecordMarkSize,
                  static_cast<u_int>(reply.size() - rpc::kRecordMarkSize), XDR_DECODE);
    uint32_t xid = 0;
    rpc::RpcError error;
    const bool ok = rpc::DecodeReplyHeader(&x, &xid, &error).ok();
    xdr_destroy(&x);
    const uint32_t call_xid = uint32_t{uint8_t(call[0])} << 24 | uint32_t{uint8_t(call[1])} << 16 |
                              uint32_t{uint8_t(call[2])} << 8 | uint8_t(call[3]);
    if (!ok || xid != call_xid) abort();
  }

  // Puts the fixture back: extra entries removed, every object with its type, mode,
  // owner and size; handles re-signed for objects that had to be re-created.
  void Restore() {
    RemoveExtras(roots_[0], {"file", "dir", "link"});
    RemoveExtras(roots_[0] + "/dir", {"inner"});
    RemoveExtras(roots_[1], {"file"});
    for (FixtureObject& o : objects_) {
      const std::string path = o.rel.empty() ? roots_[o.root] : roots_[o.root] + "/" + o.rel;
      struct stat st;
      bool ok = lstat(path.c_str(), &st) == 0 && (st.st_mode & S_IFMT) == o.type;
      if (!ok) {
        fuzz::RemoveTree(path);
        if (o.type == S_IFDIR) mkdir(path.c_str(), o.perm);
        if (o.type == S_IFREG) close(open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, o.perm));
        if (o.type == S_IFLNK && symlink("file", path.c_str()) != 0) abort();
        if (lstat(path.c_str(), &st) != 0) abort();
      }
      if (o.type != S_IFLNK && (st.st_mode & 07777) != o.perm) chmod(path.c_str(), o.perm);
      if (st.st_uid != 0 || st.st_gid != 0) lchown(path.c_str(), 0, 0);
      if (o.type == S_IFREG && st.st_size != static_cast<off_t>(kFileSize) &&
          truncate(path.c_str(), kFileSize) != 0) {
        abort();
      }
      if (o.handle.empty() || st.st_ino != o.ino) {
        absl::StatusOr<KernelHandle> kh = KernelHandleAt(AT_FDCWD, path.c_str());
        if (!kh.ok()) abort();
        absl::StatusOr<std::string> h = key_.Encode(export_ids_[o.root], *kh);
        if (!h.ok()) abort();
        o.handle = *std::move(h);
        o.ino = st.st_ino;
        if (resolver_started_) {
          UniqueFd fd(open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
          resolver_.RememberFd(export_ids_[o.root], *kh, fd.get());
        }
      }
    }
    resolver_started_ = true;
  }

  // Called for three directories before every input, so it must be cheap: one
  // open + getdents64 into a static buffer + close, no opendir() (whose 32 KiB
  // buffer, allocated and freed through ASan per call, cost a quarter of the run).
  static void RemoveExtras(const std::string& dir, std::initializer_list<std::string_view> keep) {
    UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return;
    alignas(8) static char buf[8192];
    std::vector<std::string> extra;
    for (;;) {
      const ssize_t n = getdents64(fd.get(), buf, sizeof(buf));
      if (n <= 0) break;
      for (ssize_t pos = 0; pos < n;) {
        const auto* e = reinterpret_cast<const struct dirent64*>(buf + pos);
        pos += e->d_reclen;
        const std::string_view name = e->d_name;
        if (name == "." || name == "..") continue;
        if (std::find(keep.begin(), keep.end(), name) == keep.end()) extra.emplace_back(name);
      }
    }
    fd.reset();
    for (const std::string& name : extra) fuzz::RemoveTree(dir + "/" + name);
  }

  fuzz::RunDir dir_;
  RcuThread rcu_;
  std::array<std::string, 2> roots_;
  std::array<uint32_t, 2> export_ids_{};
  exports::ExportTable table_;
  const HandleKey key_ = HandleKey::FromBytes(std::string(kHandleKeySize, '\x3c'));
  HandleResolver resolver_;
  bool resolver_started_ = false;
  std::unique_ptr<backend::PosixBackend> posix_backend_;
  std::unique_ptr<backend::CachingBackend> backend_;
  std::unique_ptr<broker::Broker> broker_;
  std::unique_ptr<broker::BrokerClient> client_broker_;
  std::unique_ptr<Nfs3Program> nfs3_;
  std::unique_ptr<MountProgram> mount_;
  std::unique_ptr<LocalioProgram> localio_;
  rpc::ServerCounters counters_;
  rpc::Dispatcher dispatcher_;
  std::array<std::unique_ptr<rpc::ConnectionInfo>, 2> conns_;
  std::vector<FixtureObject> objects_;
  uint32_t xid_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* fixture = new Fixture;  // lives until exit
  fixture->Run(data, size);
  return 0;
}
