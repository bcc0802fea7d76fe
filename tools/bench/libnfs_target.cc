// tools/bench/libnfs_target.cc — the libnfs:// target: an NFSv3 client that is not
// ours (libnfs's raw async RPC layer), so that localnfsd and NFS-Ganesha are compared
// by the same independent client with the same calls.
//
// One TCP connection, one thread; queue depth = that many calls in flight at once (an
// event loop keeps every slot busy: when a reply arrives, its slot issues the next call
// from inside the callback). Calls per operation, identical for every server:
//   randread / seqread: READ3          seqwrite: WRITE3 UNSTABLE, then one COMMIT3
//   meta: CREATE3 GUARDED mode 0644 → GETATTR3 → REMOVE3 (NFSv3 has no close)
// Setup (MNT, LOOKUP, FSINFO, filling the read file) uses the same context
// synchronously. Credentials are libnfs's default AUTH_SYS: this process's uid/gid.
#include <poll.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>

#include <functional>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "tools/bench/targets.h"

namespace localnfs::bench {
namespace {

constexpr int kCallTimeoutSeconds = 60;

nfs_fh3 ToFh3(const std::string& handle) {
  nfs_fh3 fh{};
  fh.data.data_len = handle.size();
  fh.data.data_val = const_cast<char*>(handle.data());
  return fh;
}

std::string FromFh3(const nfs_fh3& fh) {
  return std::string(fh.data.data_val, fh.data.data_len);
}

absl::Status NfsStatusError(int status, absl::string_view proc) {
  return absl::InternalError(absl::StrCat(proc, ": nfsstat3 ", status));
}

// One libnfs rpc_context connected to one program, with a blocking Call() for setup
// and Poll() for the benchmark's event loop.
class RpcConnection {
 public:
  RpcConnection() : rpc_(rpc_init_context()) {}
  ~RpcConnection() { Close(); }
  RpcConnection(const RpcConnection&) = delete;
  RpcConnection& operator=(const RpcConnection&) = delete;

  rpc_context* get() { return rpc_; }

  // Destroys the context; libnfs completes the calls still in flight with
  // RPC_STATUS_CANCEL, so whatever their callbacks use must still be alive.
  void Close() {
    if (rpc_ != nullptr) rpc_destroy_context(rpc_);
    rpc_ = nullptr;
  }

  absl::Status Connect(const std::string& host, int port, int program, int version) {
    if (rpc_ == nullptr) return absl::ResourceExhaustedError("rpc_init_context failed");
    Waiter w;
    if (rpc_connect_port_async(rpc_, host.c_str(), port, program, version, &Done, &w) != 0)
      return absl::UnavailableError(absl::StrCat("connect: ", rpc_get_error(rpc_)));
    return Wait(w, absl::StrCat("connect to ", host, ":", port));
  }

  // Issues one call with `issue` and waits for it; `on_reply` sees the decoded result
  // (valid only inside it) and returns the call's status.
  absl::Status Call(absl::string_view what, const std::function<int(rpc_cb, void*)>& issue,
                    std::function<absl::Status(void*)> on_reply) {
    Waiter w;
    w.on_reply = std::move(on_reply);
    if (issue(&Done, &w) != 0)
      return absl::InternalError(absl::StrCat(what, ": ", rpc_get_error(rpc_)));
    return Wait(w, what);
  }

  // One round of the event loop: waits up to `timeout_ms` for the socket, then lets
  // libnfs read/write and run the callbacks of completed calls.
  absl::Status Poll(int timeout_ms) {
    pollfd p{rpc_get_fd(rpc_), static_cast<short>(rpc_which_events(rpc_)), 0};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno != EINTR) return ErrnoToStatus(errno, "poll");
    if (rpc_service(rpc_, r > 0 ? p.revents : 0) < 0)
      return absl::UnavailableError(absl::StrCat("rpc_service: ", rpc_get_error(rpc_)));
    return absl::OkStatus();
  }

 private:
  struct Waiter {
    bool done = false;
    absl::Status status;
    std::function<absl::Status(void*)> on_reply;
  };
  static void Done(rpc_context*, int status, void* data, void* priv) {
    auto* w = static_cast<Waiter*>(priv);
    if (status != RPC_STATUS_SUCCESS) {
      w->status = absl::UnavailableError(
          status == RPC_STATUS_ERROR && data ? static_cast<const char*>(data)
                                             : absl::StrCat("rpc status ", status));
    } else if (w->on_reply) {
      w->status = w->on_reply(data);
    }
    w->done = true;
  }
  absl::Status Wait(Waiter& w, absl::string_view what) {
    Clock::time_point deadline = Clock::now() + std::chrono::seconds(kCallTimeoutSeconds);
    while (!w.done) {
      absl::Status s = Poll(100);
      if (!s.ok() && !w.done) return s;
      if (Clock::now() > deadline)
        return absl::DeadlineExceededError(absl::StrCat(what, ": no reply"));
    }
    if (!w.status.ok())
      return absl::Status(w.status.code(), absl::StrCat(what, ": ", w.status.message()));
    return absl::OkStatus();
  }

  rpc_context* rpc_;
};

class LibnfsTarget final : public Target {
 public:
  explicit LibnfsTarget(TargetUrl url) : url_(std::move(url)) {}

  ~LibnfsTarget() override {
    if (!root_.empty()) {
      std::string path = url_.path;
      mount_.Call(
          "UMNT",
          [&](rpc_cb cb, void* w) {
            return rpc_mount3_umnt_async(mount_.get(), cb, path.data(), w);
          },
          [](void*) { return absl::OkStatus(); })
          .IgnoreError();
    }
    // While every member (slots_, error_) is still alive for the cancel callbacks.
    nfs_.Close();
    mount_.Close();
  }

  absl::Status Mount() {
    RETURN_IF_ERROR(mount_.Connect(url_.host, url_.mount_port, MOUNT_PROGRAM, MOUNT_V3));
    std::string path = url_.path;
    RETURN_IF_ERROR(mount_.Call(
        "MNT",
        [&](rpc_cb cb, void* w) { return rpc_mount3_mnt_async(mount_.get(), cb, path.data(), w); },
        [&](void* data) {
          auto* res = static_cast<mountres3*>(data);
          if (res->fhs_status != MNT3_OK)
            return absl::PermissionDeniedError(absl::StrCat("mountstat3 ", res->fhs_status));
          const fhandle3& fh = res->mountres3_u.mountinfo.fhandle;
          root_.assign(fh.fhandle3_val, fh.fhandle3_len);
          return absl::OkStatus();
        }));
    RETURN_IF_ERROR(nfs_.Connect(url_.host, url_.nfs_port, NFS_PROGRAM, NFS_V3));
    FSINFO3args args{ToFh3(root_)};
    return nfs_.Call(
        "FSINFO",
        [&](rpc_cb cb, void* w) { return rpc_nfs3_fsinfo_async(nfs_.get(), cb, &args, w); },
        [&](void* data) {
          auto* res = static_cast<FSINFO3res*>(data);
          if (res->status != NFS3_OK) return NfsStatusError(res->status, "FSINFO");
          rtmax_ = res->FSINFO3res_u.resok.rtmax;
          wtmax_ = res->FSINFO3res_u.resok.wtmax;
          return absl::OkStatus();
        });
  }

  std::string Describe() const override {
    return absl::StrCat("libnfs raw async NFSv3 client, 1 connection to ", url_.host, ":",
                        url_.nfs_port, " export ", url_.path);
  }
  std::string Concurrency(int qd) const override {
    return absl::StrCat(qd, " in flight on 1 connection");
  }

  absl::Status PrepareReadFile(const std::string& name, uint64_t size) override {
    absl::StatusOr<std::pair<std::string, uint64_t>> found = Lookup(name);
    if (!found.ok() && absl::IsNotFound(found.status())) found = Create(name, UNCHECKED);
    RETURN_IF_ERROR(found.status());
    file_ = found->first;
    if (found->second >= size) return absl::OkStatus();
    const uint32_t chunk = std::min<uint32_t>(wtmax_, 1 << 20);
    const std::string pattern = FillPattern(chunk);
    for (uint64_t off = 0; off < size; off += chunk) {
      uint32_t n = std::min<uint64_t>(chunk, size - off);
      WRITE3args args{ToFh3(file_), off, n, UNSTABLE, {n, const_cast<char*>(pattern.data())}};
      RETURN_IF_ERROR(nfs_.Call(
          "WRITE",
          [&](rpc_cb cb, void* w) { return rpc_nfs3_write_async(nfs_.get(), cb, &args, w); },
          [&](void* data) {
            auto* res = static_cast<WRITE3res*>(data);
            if (res->status != NFS3_OK) return NfsStatusError(res->status, "WRITE");
            if (res->WRITE3res_u.resok.count != n) return absl::DataLossError("short WRITE");
            return absl::OkStatus();
          }));
    }
    return CommitSync();
  }

  absl::Status PrepareWriteFile(const std::string& name) override {
    RETURN_IF_ERROR(RemoveFile(name));
    ASSIGN_OR_RETURN(auto created, Create(name, GUARDED));
    file_ = created.first;
    return absl::OkStatus();
  }

  absl::Status RemoveFile(const std::string& name) override {
    REMOVE3args args{{ToFh3(root_), const_cast<char*>(name.c_str())}};
    return nfs_.Call(
        "REMOVE",
        [&](rpc_cb cb, void* w) { return rpc_nfs3_remove_async(nfs_.get(), cb, &args, w); },
        [&](void* data) {
          auto* res = static_cast<REMOVE3res*>(data);
          if (res->status != NFS3_OK && res->status != NFS3ERR_NOENT)
            return NfsStatusError(res->status, "REMOVE");
          return absl::OkStatus();
        });
  }

  absl::Status Run(const RunContext& ctx) override;

 private:
  // One in-flight operation of the event loop.
  struct Slot {
    LibnfsTarget* target;
    const RunContext* ctx;
    int index;
    OpCursor cursor;
    Op op;
    Clock::time_point issued;
    int meta_step = 0;
    std::string name;
    std::string created;  // the handle CREATE returned
  };

  absl::StatusOr<std::pair<std::string, uint64_t>> Lookup(const std::string& name) {
    LOOKUP3args args{{ToFh3(root_), const_cast<char*>(name.c_str())}};
    std::pair<std::string, uint64_t> out;
    bool missing = false;
    RETURN_IF_ERROR(nfs_.Call(
        "LOOKUP",
        [&](rpc_cb cb, void* w) { return rpc_nfs3_lookup_async(nfs_.get(), cb, &args, w); },
        [&](void* data) {
          auto* res = static_cast<LOOKUP3res*>(data);
          if (res->status == NFS3ERR_NOENT) {
            missing = true;
            return absl::OkStatus();
          }
          if (res->status != NFS3_OK) return NfsStatusError(res->status, "LOOKUP");
          const LOOKUP3resok& ok = res->LOOKUP3res_u.resok;
          out.first = FromFh3(ok.object);
          if (ok.obj_attributes.attributes_follow)
            out.second = ok.obj_attributes.post_op_attr_u.attributes.size;
          return absl::OkStatus();
        }));
    if (missing) return absl::NotFoundError(absl::StrCat(name, " not found"));
    return out;
  }

  absl::StatusOr<std::pair<std::string, uint64_t>> Create(const std::string& name,
                                                          createmode3 mode) {
    CREATE3args args{};
    FillCreateArgs(name, mode, &args);
    std::pair<std::string, uint64_t> out;
    RETURN_IF_ERROR(nfs_.Call(
        "CREATE",
        [&](rpc_cb cb, void* w) { return rpc_nfs3_create_async(nfs_.get(), cb, &args, w); },
        [&](void* data) {
          auto* res = static_cast<CREATE3res*>(data);
          if (res->status != NFS3_OK) return NfsStatusError(res->status, "CREATE");
          const post_op_fh3& fh = res->CREATE3res_u.resok.obj;
          if (!fh.handle_follows) return absl::InternalError("CREATE returned no handle");
          out.first = FromFh3(fh.post_op_fh3_u.handle);
          return absl::OkStatus();
        }));
    return out;
  }

  void FillCreateArgs(const std::string& name, createmode3 mode, CREATE3args* args) {
    args->where.dir = ToFh3(root_);
    args->where.name = const_cast<char*>(name.c_str());
    args->how.mode = mode;
    sattr3& attrs = args->how.createhow3_u.obj_attributes;
    attrs.mode.set_it = 1;
    attrs.mode.set_mode3_u.mode = 0644;
  }

  absl::Status CommitSync() {
    COMMIT3args args{ToFh3(file_), 0, 0};
    return nfs_.Call(
        "COMMIT",
        [&](rpc_cb cb, void* w) { return rpc_nfs3_commit_async(nfs_.get(), cb, &args, w); },
        [&](void* data) {
          auto* res = static_cast<COMMIT3res*>(data);
          if (res->status != NFS3_OK) return NfsStatusError(res->status, "COMMIT");
          return absl::OkStatus();
        });
  }

  // Issues the slot's next call (the next op, or the next step of its meta cycle).
  // Returns false when the slot has nothing more to do or the call could not be issued.
  bool Issue(Slot& s);
  static void Completed(rpc_context*, int status, void* data, void* priv);
  void Fail(absl::Status status) {
    if (error_.ok()) error_ = std::move(status);
  }

  const TargetUrl url_;
  // Slots outlive the job that used them: a job that fails on a broken connection
  // returns with calls still queued in libnfs, which references them until Close().
  std::vector<std::unique_ptr<Slot>> slots_;
  RpcConnection mount_, nfs_;
  std::string root_, file_;
  std::string write_data_;  // what every seqwrite WRITE sends
  uint32_t rtmax_ = 0, wtmax_ = 0;
  int in_flight_ = 0;
  absl::Status error_;
};

bool LibnfsTarget::Issue(Slot& s) {
  if (!error_.ok()) return false;
  const JobSpec& spec = *s.ctx->spec;
  if (s.meta_step == 0) {
    std::optional<Op> op = s.ctx->ops->Next(s.cursor, Clock::now());
    if (!op) return false;
    s.op = *op;
    s.issued = Clock::now();
  }
  rpc_context* rpc = nfs_.get();
  int rc = 0;
  switch (spec.kind) {
    case WorkloadKind::kRandRead:
    case WorkloadKind::kSeqRead: {
      READ3args args{ToFh3(file_), s.op.offset, s.op.length};
      rc = rpc_nfs3_read_async(rpc, &Completed, &args, &s);
      break;
    }
    case WorkloadKind::kSeqWrite: {
      WRITE3args args{ToFh3(file_), s.op.offset, s.op.length, UNSTABLE,
                      {s.op.length, write_data_.data()}};
      rc = rpc_nfs3_write_async(rpc, &Completed, &args, &s);
      break;
    }
    case WorkloadKind::kNull:
      rc = rpc_nfs3_null_async(rpc, &Completed, &s);
      break;
    case WorkloadKind::kMeta:
      switch (s.meta_step) {
        case 0: {
          s.name = MetaFileName(s.index, s.op.seq);
          CREATE3args args{};
          FillCreateArgs(s.name, GUARDED, &args);
          rc = rpc_nfs3_create_async(rpc, &Completed, &args, &s);
          break;
        }
        case 1: {
          GETATTR3args args{ToFh3(s.created)};
          rc = rpc_nfs3_getattr_async(rpc, &Completed, &args, &s);
          break;
        }
        default: {
          REMOVE3args args{{ToFh3(root_), const_cast<char*>(s.name.c_str())}};
          rc = rpc_nfs3_remove_async(rpc, &Completed, &args, &s);
          break;
        }
      }
      break;
  }
  if (rc != 0) {
    Fail(absl::InternalError(absl::StrCat("issuing a call: ", rpc_get_error(rpc))));
    return false;
  }
  return true;
}

void LibnfsTarget::Completed(rpc_context*, int status, void* data, void* priv) {
  Slot& s = *static_cast<Slot*>(priv);
  LibnfsTarget& t = *s.target;
  Clock::time_point now = Clock::now();
  if (status == RPC_STATUS_CANCEL) {  // the context is being destroyed
    --t.in_flight_;
    return;
  }
  if (status != RPC_STATUS_SUCCESS) {
    t.Fail(absl::UnavailableError(status == RPC_STATUS_ERROR && data
                                      ? static_cast<const char*>(data)
                                      : absl::StrCat("rpc status ", status)));
  } else {
    nfsstat3 st = NFS3_OK;
    bool cycle_done = true;
    uint64_t bytes = s.op.length;
    switch (s.ctx->spec->kind) {
      case WorkloadKind::kRandRead:
      case WorkloadKind::kSeqRead: {
        auto* res = static_cast<READ3res*>(data);
        st = res->status;
        if (st == NFS3_OK && res->READ3res_u.resok.count != s.op.length)
          t.Fail(absl::OutOfRangeError("short READ"));
        break;
      }
      case WorkloadKind::kSeqWrite: {
        auto* res = static_cast<WRITE3res*>(data);
        st = res->status;
        if (st == NFS3_OK && res->WRITE3res_u.resok.count != s.op.length)
          t.Fail(absl::DataLossError("short WRITE"));
        break;
      }
      case WorkloadKind::kMeta:
        bytes = 0;
        if (s.meta_step == 0) {
          auto* res = static_cast<CREATE3res*>(data);
          st = res->status;
          if (st == NFS3_OK) {
            const post_op_fh3& fh = res->CREATE3res_u.resok.obj;
            if (fh.handle_follows)
              s.created = FromFh3(fh.post_op_fh3_u.handle);
            else
              t.Fail(absl::InternalError("CREATE returned no handle"));
          }
        } else if (s.meta_step == 1) {
          st = static_cast<GETATTR3res*>(data)->status;
        } else {
          st = static_cast<REMOVE3res*>(data)->status;
        }
        s.meta_step = (s.meta_step + 1) % 3;
        cycle_done = s.meta_step == 0;
        break;
      case WorkloadKind::kNull:
        bytes = 0;  // NULL has no result but the RPC's own acceptance
        break;
    }
    if (st != NFS3_OK) t.Fail(NfsStatusError(st, "benchmark call"));
    if (cycle_done) s.ctx->recorder->Record(s.index, s.issued, now, bytes);
  }
  if (!t.Issue(s)) --t.in_flight_;
}

absl::Status LibnfsTarget::Run(const RunContext& ctx) {
  const JobSpec& spec = *ctx.spec;
  if (spec.kind != WorkloadKind::kMeta && spec.kind != WorkloadKind::kNull &&
      spec.block_size > (spec.kind == WorkloadKind::kSeqWrite ? wtmax_ : rtmax_))
    return absl::InvalidArgumentError(absl::StrCat(
        "block size ", spec.block_size, " exceeds the server's rtmax ", rtmax_, " / wtmax ",
        wtmax_));
  error_ = absl::OkStatus();
  in_flight_ = 0;
  if (spec.kind == WorkloadKind::kSeqWrite) write_data_ = FillPattern(spec.block_size);
  slots_.clear();
  for (int i = 0; i < spec.queue_depth; ++i) {
    slots_.push_back(std::make_unique<Slot>());
    Slot& s = *slots_.back();
    s.target = this;
    s.ctx = &ctx;
    s.index = i;
    if (Issue(s)) ++in_flight_;
  }
  while (in_flight_ > 0) {
    absl::Status s = nfs_.Poll(100);
    if (!s.ok()) return s;  // the connection is gone; its calls will not complete
  }
  RETURN_IF_ERROR(error_);
  if (spec.kind == WorkloadKind::kSeqWrite) {
    RETURN_IF_ERROR(CommitSync());
    ctx.recorder->SetWindowEnd(Clock::now());
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Target>> OpenLibnfsTarget(const TargetUrl& url) {
  auto target = std::make_unique<LibnfsTarget>(url);
  RETURN_IF_ERROR(target->Mount());
  return target;
}

}  // namespace localnfs::bench
