// server/mount/mount_program.cc — see mount_program.h.
#include "server/mount/mount_program.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "absl/strings/escaping.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status.h"
#include "server/nfs3/nfs3xdr.h"
#include "server/policy/client_rules.h"

namespace localnfs::server {
namespace {

// A decoded dirpath with its wire length (opaque<> in mount3.x: a NUL stays in it).
std::string_view DirpathOf(const dirpath& p) {
  return p.dirpath_val ? std::string_view(p.dirpath_val, p.dirpath_len) : std::string_view();
}

void SetDirpath(dirpath* out, std::string_view path) {
  out->dirpath_val = MallocBytes(path);
  out->dirpath_len = static_cast<u_int>(path.size());
}

}  // namespace

const rpc::ProcedureDesc* MountProgram::procedure(uint32_t proc) const {
  using rpc::Procedure;
  using rpc::XdrVoid;
  static const std::array<rpc::ProcedureDesc, kMountProcCount> kProcs = {{
      Procedure<&MountProgram::Null, XdrVoid, XdrVoid>("NULL"),
      Procedure<&MountProgram::Mnt, xdr_dirpath, xdr_mountres3>("MNT"),
      Procedure<&MountProgram::Dump, XdrVoid, xdr_mountlist>("DUMP"),
      Procedure<&MountProgram::Umnt, xdr_dirpath, XdrVoid>("UMNT"),
      Procedure<&MountProgram::UmntAll, XdrVoid, XdrVoid>("UMNTALL"),
      Procedure<&MountProgram::Export, XdrVoid, xdr_exportlist3>("EXPORT"),
  }};
  return proc < kMountProcCount ? &kProcs[proc] : nullptr;
}

void MountProgram::Mnt(rpc::Call& call, const dirpath& arg, mountres3& res) {
  const rpc::CallContext& ctx = call.ctx();
  const std::string_view path = DirpathOf(arg);
  if (path.find('\0') != std::string_view::npos) {
    uint64_t left_out = 0;
    if (bad_path_log_.Allow(&left_out))
      LOG_WARNING("mount from %s: refused a path with a NUL: \"%s\" (and %d more since "
                  "the last line)",
                  ctx.conn->peer().ToString(),
                  absl::CHexEscape(absl::string_view(path.data(), path.size())), left_out);
    res.fhs_status = MNT3ERR_INVAL;
    return;
  }
  // The export with the longest path that is `path` or a parent of it.
  Ref<exports::Export> exp;
  std::string rel = ".";
  if (!path.empty() && path != "/") {
    std::string_view p = path;
    while (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
    exp = deps_.exports->FindByPath(p);
    if (!exp) {
      for (Ref<exports::Export>& e : deps_.exports->List()) {
        const std::string& ep = e->path();
        const bool below = ep == "/" ? p.size() > 1
                                     : p.size() > ep.size() && p.substr(0, ep.size()) == ep &&
                                           p[ep.size()] == '/';
        if (below && (!exp || ep.size() > exp->path().size())) {
          exp = e;
          rel = std::string(p.substr(ep == "/" ? 1 : ep.size() + 1));
        }
      }
    }
  } else {
    exp = deps_.exports->FindByPath("/");
  }
  if (!exp) {
    LOG_INFO("mount %s from %s: no such export", path, ctx.conn->peer().ToString());
    res.fhs_status = MNT3ERR_NOENT;
    return;
  }
  std::optional<exports::ExportOptions> options =
      RuleForConnection(*ctx.conn, *exp, deps_.exports->generation());
  if (!options || (options->secure && ctx.conn->peer().port() >= 1024)) {
    LOG_INFO("mount %s from %s: access denied", path, ctx.conn->peer().ToString());
    res.fhs_status = MNT3ERR_ACCES;
    return;
  }
  // The directory through the backend (the caching layer keeps its node: the client's
  // next call uses the handle it is given here), then its wire handle.
  absl::StatusOr<backend::Object> dir = deps_.backend->OpenPath(*exp, rel);
  absl::StatusOr<std::string> wire = dir.ok() ? deps_.key->Encode(exp->id(), dir->handle())
                                              : absl::StatusOr<std::string>(dir.status());
  if (!wire.ok()) {
    const int err = StatusErrno(wire.status());
    LOG_INFO("mount %s from %s: %s", path, ctx.conn->peer().ToString(),
             wire.status().ToString());
    res.fhs_status = err == ENOTDIR ? MNT3ERR_NOTDIR
                     : err == ENOENT || err == ELOOP || err == EXDEV ? MNT3ERR_NOENT
                     : err == EACCES || err == EPERM ? MNT3ERR_ACCES
                                                    : MNT3ERR_SERVERFAULT;
    return;
  }
  res.fhs_status = MNT3_OK;
  mountres3_ok& ok = res.mountres3_u.mountinfo;
  ok.fhandle.fhandle3_val = static_cast<char*>(malloc(wire->size()));
  if (ok.fhandle.fhandle3_val == nullptr) abort();
  memcpy(ok.fhandle.fhandle3_val, wire->data(), wire->size());
  ok.fhandle.fhandle3_len = static_cast<u_int>(wire->size());
  ok.auth_flavors.auth_flavors_val = static_cast<int*>(malloc(sizeof(int)));
  if (ok.auth_flavors.auth_flavors_val == nullptr) abort();
  ok.auth_flavors.auth_flavors_val[0] = 1;  // AUTH_SYS
  ok.auth_flavors.auth_flavors_len = 1;
  LOG_INFO("mount %s from %s", path, ctx.conn->peer().ToString());
  RecordMount(ctx.conn->peer().HostText(), std::string(path));
}

void MountProgram::RecordMount(const std::string& host, const std::string& path) {
  absl::MutexLock l(&mu_);
  MountKey key(host, path);
  auto [it, inserted] = mounts_.try_emplace(key, next_seq_);
  if (!inserted) {  // mounted again: now the youngest
    by_age_.erase(it->second);
    it->second = next_seq_;
  }
  by_age_.emplace(next_seq_++, std::move(key));
  while (mounts_.size() > deps_.max_mounts) {
    auto oldest = by_age_.begin();
    uint64_t left_out = 0;
    if (forget_log_.Allow(&left_out)) {
      LOG_WARNING("mount list full (--max-mounts %u): forgot %s:%s, the oldest entry "
                  "(and %d more since the last line)",
                  deps_.max_mounts, oldest->second.first, oldest->second.second, left_out);
    }
    mounts_.erase(oldest->second);
    by_age_.erase(oldest);
    forgotten_.fetch_add(1, std::memory_order_relaxed);
  }
}

size_t MountProgram::mount_count() const {
  absl::MutexLock l(&mu_);
  return mounts_.size();
}

void MountProgram::Dump(rpc::Call&, const rpc::Void&, mountlist& res) {
  absl::MutexLock l(&mu_);
  mountlist* tail = &res;
  for (const auto& [seq, key] : by_age_) {
    const auto& [host, path] = key;
    mountbody* b = NewNode<mountbody>();
    b->ml_hostname = MallocString(host);
    SetDirpath(&b->ml_directory, path);
    *tail = b;
    tail = &b->ml_next;
  }
}

void MountProgram::Umnt(rpc::Call& call, const dirpath& arg, rpc::Void&) {
  MountKey key(call.ctx().conn->peer().HostText(), std::string(DirpathOf(arg)));
  absl::MutexLock l(&mu_);
  auto it = mounts_.find(key);
  if (it == mounts_.end()) return;
  by_age_.erase(it->second);
  mounts_.erase(it);
}

void MountProgram::UmntAll(rpc::Call& call, const rpc::Void&, rpc::Void&) {
  const std::string host = call.ctx().conn->peer().HostText();
  absl::MutexLock l(&mu_);
  for (auto it = by_age_.begin(); it != by_age_.end();) {
    if (it->second.first == host) {
      mounts_.erase(it->second);
      it = by_age_.erase(it);
    } else {
      ++it;
    }
  }
}

void MountProgram::Export(rpc::Call&, const rpc::Void&, exportlist3& res) {
  exportlist3* tail = &res;
  for (Ref<exports::Export>& e : deps_.exports->List()) {
    exportnode* n = NewNode<exportnode>();
    SetDirpath(&n->ex_dir, e->path());
    grouplist3* gtail = &n->ex_groups;
    for (const exports::ClientRule& rule : e->spec().rules) {
      groupnode* g = NewNode<groupnode>();
      g->gr_name = MallocString(rule.pattern.text.substr(0, MNTNAMLEN));
      *gtail = g;
      gtail = &g->gr_next;
    }
    *tail = n;
    tail = &n->ex_next;
  }
}

}  // namespace localnfs::server
