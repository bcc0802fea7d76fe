// server/nfs4/pseudofs.cc — see pseudofs.h.
#include "server/nfs4/pseudofs.h"

#include <errno.h>
#include <openssl/sha.h>

#include <algorithm>
#include <utility>

#include "common/status.h"
#include "server/nfs3/nfs_status.h"
#include "server/policy/client_rules.h"
#include "server/policy/request_policy.h"

namespace localnfs::server::nfs4 {
namespace {

constexpr size_t kDigestSize = 8;

// The first kDigestSize bytes of SHA-256(path): what a pseudo handle names.
std::string PathDigest(std::string_view path) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(path.data()), path.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), kDigestSize);
}

uint64_t DigestNumber(std::string_view digest) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && i < digest.size(); ++i)
    v = (v << 8) | static_cast<uint8_t>(digest[i]);
  return v;
}

// The components of an absolute path ("/srv//src/" → srv, src).
std::vector<std::string> Components(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    size_t j = i;
    while (j < path.size() && path[j] != '/') ++j;
    if (j > i) out.emplace_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string Join(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

std::string ParentPath(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

std::string NormalPath(std::string_view path) {
  std::string out;
  for (const std::string& c : Components(path)) out += "/" + c;
  return out.empty() ? "/" : out;
}

}  // namespace

nfsstat4 Nfs4StatusFromStatus(const absl::Status& status) {
  const nfsstat3 s = NfsStatusFromStatus(status);
  switch (s) {
    case NFS3ERR_NOT_SYNC: return NFS4ERR_INVAL;     // NFSv4 has no such error
    case NFS3ERR_JUKEBOX: return NFS4ERR_DELAY;      // the same number
    default: return static_cast<nfsstat4>(s);        // NFSv4 keeps NFSv3's numbers
  }
}

uint64_t PseudoFs::PseudoFileid(std::string_view path) {
  // Never 0; the pseudo fs has an fsid of its own, so these cannot meet an export's.
  const uint64_t v = DigestNumber(PathDigest(path)) >> 1;
  return v == 0 ? 1 : v;
}

std::shared_ptr<const PseudoFs::Tree> PseudoFs::Build(const exports::ExportTable& table) {
  auto tree = std::make_shared<Tree>();
  // The generation first: a reload racing with List() makes the next call rebuild.
  tree->generation = table.generation();
  clock_gettime(CLOCK_REALTIME, &tree->built);
  const std::vector<Ref<exports::Export>> exports = table.List();
  for (const Ref<exports::Export>& exp : exports) {
    const std::string path = NormalPath(exp->path());
    if (path == "/") tree->root_export = exp->id();
    tree->export_paths.emplace(path, exp->id());
  }
  if (tree->root_export) return tree;  // the root is an export: no pseudo directory
  tree->nodes["/"];
  for (const Ref<exports::Export>& exp : exports) {
    std::string at = "/";
    for (const std::string& c : Components(exp->path())) {
      Node& node = tree->nodes[at];
      node.exports_below.push_back(exp->id());
      const std::string next = Join(at, c);
      node.children.emplace(c, next);
      if (tree->export_paths.contains(next)) break;  // below is the export's own tree
      at = next;
    }
  }
  for (const auto& [path, node] : tree->nodes) tree->by_digest.emplace(PathDigest(path), path);
  return tree;
}

std::shared_ptr<const PseudoFs::Tree> PseudoFs::Current() {
  const uint64_t generation = deps_.exports->generation();
  {
    absl::MutexLock lock(&mu_);
    if (tree_ && tree_->generation == generation) return tree_;
  }
  std::shared_ptr<const Tree> tree = Build(*deps_.exports);
  absl::MutexLock lock(&mu_);
  if (!tree_ || tree_->generation < tree->generation) tree_ = tree;
  return tree;
}

bool PseudoFs::ExportVisible(const Requester& who, uint32_t export_id) const {
  Ref<exports::Export> exp = deps_.exports->FindById(export_id);
  return exp && RuleForConnection(*who.conn, *exp, deps_.exports->generation()).has_value();
}

bool PseudoFs::ChildVisible(const Requester& who, const Tree& tree,
                            const std::string& path) const {
  if (auto e = tree.export_paths.find(path); e != tree.export_paths.end())
    return ExportVisible(who, e->second);
  auto node = tree.nodes.find(path);
  if (node == tree.nodes.end()) return false;
  for (uint32_t id : node->second.exports_below) {
    if (ExportVisible(who, id)) return true;
  }
  return false;
}

absl::StatusOr<FileHandle4> PseudoFs::PseudoHandle(const std::string& path) {
  std::string body(1, static_cast<char>(kPseudoHandleVersion));
  body += PathDigest(path);
  ASSIGN_OR_RETURN(std::string wire, deps_.key->Sign(body));
  auto object = std::make_shared<Nfs4Object>();
  object->pseudo = true;
  object->path = path;
  return FileHandle4{std::move(wire), /*read_only=*/true, std::move(object)};
}

absl::StatusOr<FileHandle4> PseudoFs::ExportObject(const Requester& who,
                                                   std::string_view wire) {
  PolicyInput in;
  in.handle = wire;
  in.conn = who.conn;
  in.cred = who.cred;
  ASSIGN_OR_RETURN(Authorization auth,
                   AuthorizeHandle(PolicyDeps{deps_.exports, deps_.key}, in));
  ASSIGN_OR_RETURN(backend::Object obj,
                   deps_.backend->Resolve(*auth.exp, std::move(auth.kh)));
  auto object = std::make_shared<Nfs4Object>();
  object->exp = std::move(auth.exp);
  object->options = auth.options;
  object->cred = std::move(auth.cred);
  object->obj = std::move(obj);
  const bool read_only = object->options.read_only;
  return FileHandle4{std::string(wire), read_only, std::move(object)};
}

absl::StatusOr<FileHandle4> PseudoFs::ExportRoot(const Requester& who, uint32_t export_id) {
  Ref<exports::Export> exp = deps_.exports->FindById(export_id);
  if (!exp) return ErrnoToStatus(ESTALE, "export gone");
  // The root's handle as MOUNT makes it, then exactly PUTFH's steps.
  ASSIGN_OR_RETURN(backend::Object root, deps_.backend->OpenPath(*exp, ""));
  ASSIGN_OR_RETURN(std::string wire, deps_.key->Encode(exp->id(), root.handle()));
  return ExportObject(who, wire);
}

absl::StatusOr<FileHandle4> PseudoFs::AtPath(const Requester& who, const Tree& tree,
                                             const std::string& path) {
  if (auto it = tree.export_paths.find(path); it != tree.export_paths.end())
    return ExportRoot(who, it->second);
  auto node = tree.nodes.find(path);
  if (node == tree.nodes.end()) return ErrnoToStatus(ENOENT, "no such pseudo directory");
  if (path != "/" && !ChildVisible(who, tree, path))
    return ErrnoToStatus(EACCES, "pseudo directory of no export this client may see");
  return PseudoHandle(path);
}

absl::StatusOr<FileHandle4> PseudoFs::Root(const Requester& who) {
  std::shared_ptr<const Tree> tree = Current();
  return AtPath(who, *tree, "/");
}

absl::StatusOr<FileHandle4> PseudoFs::FromWire(const Requester& who, std::string_view wire) {
  if (wire.empty() || static_cast<uint8_t>(wire[0]) != kPseudoHandleVersion)
    return ExportObject(who, wire);
  ASSIGN_OR_RETURN(std::string_view body, deps_.key->Verify(wire));
  if (body.size() != 1 + kDigestSize) return ErrnoToStatus(EBADMSG, "pseudo handle length");
  std::shared_ptr<const Tree> tree = Current();
  auto it = tree->by_digest.find(std::string(body.substr(1)));
  if (it == tree->by_digest.end()) return ErrnoToStatus(ESTALE, "pseudo directory gone");
  return AtPath(who, *tree, it->second);
}

absl::StatusOr<FileHandle4> PseudoFs::Lookup(const Requester& who, const FileHandle4& dir,
                                             std::string_view name) {
  const Nfs4Object& o = *dir.object;
  if (!o.pseudo) {
    ASSIGN_OR_RETURN(backend::Object child, deps_.backend->Lookup(o.obj, name, o.cred));
    return ExportChild(*deps_.key, o, std::move(child));
  }
  std::shared_ptr<const Tree> tree = Current();
  auto node = tree->nodes.find(o.path);
  if (node == tree->nodes.end()) return ErrnoToStatus(ESTALE, "pseudo directory gone");
  auto child = node->second.children.find(std::string(name));
  if (child == node->second.children.end()) return ErrnoToStatus(ENOENT, "no such name");
  // A child the client may not see is not there for it (READDIR does not list it);
  // one it sees is then judged by the export's own rules (AuthorizeHandle: PERM).
  if (!ChildVisible(who, *tree, child->second)) return ErrnoToStatus(ENOENT, "no such name");
  return AtPath(who, *tree, child->second);
}

absl::StatusOr<FileHandle4> PseudoFs::Parent(const Requester& who, const FileHandle4& dir) {
  const Nfs4Object& o = *dir.object;
  std::shared_ptr<const Tree> tree = Current();
  std::string path;
  if (o.pseudo) {
    if (o.path == "/") return ErrnoToStatus(ENOENT, "the root has no parent");
    path = ParentPath(o.path);
  } else {
    if (!o.obj.attrs().is_dir()) return ErrnoToStatus(ENOTDIR, "LOOKUPP of a non-directory");
    ASSIGN_OR_RETURN(backend::Object up, deps_.backend->Lookup(o.obj, "..", o.cred));
    if (!(up.handle() == o.obj.handle())) return ExportChild(*deps_.key, o, std::move(up));
    // ".." of an export root is the root itself: leave the export.
    const std::string root = NormalPath(o.exp->path());
    if (root == "/") return ErrnoToStatus(ENOENT, "the root has no parent");
    path = ParentPath(root);
  }
  return AtPath(who, *tree, path);
}

absl::StatusOr<std::vector<PseudoFs::Child>> PseudoFs::List(const Requester& who,
                                                            const Nfs4Object& dir) {
  std::shared_ptr<const Tree> tree = Current();
  auto node = tree->nodes.find(dir.path);
  if (node == tree->nodes.end()) return ErrnoToStatus(ESTALE, "pseudo directory gone");
  std::vector<Child> out;
  for (const auto& [name, path] : node->second.children) {
    // Cookies from the name: a listing resumed after a reload neither repeats nor
    // skips a name that stayed (1 and 2 are reserved, RFC 8881 §18.23.3).
    if (ChildVisible(who, *tree, path))
      out.push_back(Child{name, 3 + (DigestNumber(PathDigest(name)) >> 2)});
  }
  std::sort(out.begin(), out.end(),
            [](const Child& a, const Child& b) { return a.cookie < b.cookie; });
  return out;
}

backend::Attrs PseudoFs::PseudoAttrs(const Nfs4Object& dir) {
  std::shared_ptr<const Tree> tree = Current();
  backend::Attrs a;
  a.valid = backend::kAttrBasic;
  a.type = backend::FileType::kDirectory;
  a.mode = 0555;
  a.nlink = 2;
  if (auto node = tree->nodes.find(dir.path); node != tree->nodes.end())
    a.nlink += static_cast<uint32_t>(node->second.children.size());
  a.size = 4096;
  a.used = 4096;
  a.fileid = PseudoFileid(dir.path);
  a.atime = a.mtime = a.ctime = tree->built;
  a.change = backend::ChangeFromCtime(tree->built);
  return a;
}

absl::StatusOr<FileHandle4> ExportChild(const HandleKey& key, const Nfs4Object& parent,
                                        backend::Object obj) {
  ASSIGN_OR_RETURN(std::string wire, key.Encode(parent.exp->id(), obj.handle()));
  auto object = std::make_shared<Nfs4Object>();
  object->exp = parent.exp;
  object->options = parent.options;
  object->cred = parent.cred;
  object->obj = std::move(obj);
  return FileHandle4{std::move(wire), parent.options.read_only, std::move(object)};
}

}  // namespace localnfs::server::nfs4
