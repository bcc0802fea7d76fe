// server/nfs4/pseudofs.h — the NFSv4 namespace (RFC 8881 §7): the pseudo file system
// that joins the exports, and the filehandles of the COMPOUND state (what PUTROOTFH,
// PUTFH, LOOKUP and LOOKUPP make current).
//
// Owns: the pseudo tree (rebuilt from the export table whenever its generation
// changes: exports are reloaded), pseudo-directory handles, and the crossings between
// pseudo directories and export roots. Not owned (outlive it): the export table, the
// handle key and the Backend.
//
// The v4 path of an export is its directory path: /srv/src is the same directory over
// v3 (MOUNT /srv/src) and v4 (LOOKUP srv, src), as knfsd without fsid=0. The pseudo
// directories are the proper prefixes of export paths that are not inside another
// export ("/", "/srv"); each lists only the names that lead to exports the client may
// see — an export whose client rules match the connection's peer (client_rules.h) —
// and is read-only (FileHandle4::read_only: the COMPOUND loop answers NFS4ERR_ROFS).
// A name inside an export is the export's own directory (Backend::Lookup), even when
// another export lies below it (no crossing below an export, as knfsd without crossmnt).
// When an export IS "/", the root is that export and there is no pseudo directory.
//
// Handles. Objects of exports have the NFSv3 wire handle (policy/fhandle.h), so a v3
// handle works in PUTFH and LOOKUP from the pseudo root lands on the handle MOUNT gives;
// every PUTFH takes exactly the v3 pipeline's steps: AuthorizeHandle (BADHANDLE, STALE,
// ACCES for no client rule, PERM for `secure`, squash; request_policy.h) and
// Backend::Resolve (STALE). A pseudo directory's handle is
//   [0] kPseudoHandleVersion  [1..8] the first 8 bytes of SHA-256(path)  [+8] MAC
// signed with the same HandleKey (HandleKey::Sign), so it cannot be forged, never equals
// an export handle (another version byte) and stays the same across restarts and
// reloads while its path is a pseudo directory; once it is not → NFS4ERR_STALE. A pseudo
// directory the client may not see is NFS4ERR_ACCES (as an export's handle would be).
//
// Errors are absl::Status with the errno of nfs_status.h (Nfs4StatusFromStatus maps):
// EBADMSG BADHANDLE, ESTALE, EACCES, EPERM, ENOENT, ENOTDIR.
//
// Thread-safety: safe for concurrent use (the tree snapshot is swapped under a mutex
// and immutable once built). Call from RCU-registered threads (the export table).
#pragma once

#include <stdint.h>
#include <time.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/credentials.h"
#include "common/refcount.h"
#include "export_cache/export_options.h"
#include "export_cache/export_table.h"
#include "rpc/program.h"
#include "server/backend/backend.h"
#include "server/nfs4/compound.h"
#include "server/policy/fhandle.h"

namespace localnfs::server::nfs4 {

inline constexpr uint8_t kPseudoHandleVersion = 0x84;
static_assert(kPseudoHandleVersion != kHandleVersion);

// The fsid of the pseudo file system; an export's is {export id, 0} (the same number
// NFSv3's fsid carries), so the Linux client makes a submount where LOOKUP crosses.
inline constexpr uint64_t kPseudoFsidMajor = 0;
inline constexpr uint64_t kPseudoFsidMinor = 1;

// What a current or saved filehandle names: a pseudo directory, or an object of an
// export as the v3 pipeline authorises and resolves it.
struct Nfs4Object {
  bool pseudo = false;
  std::string path;  // pseudo: the directory ("/" the root)
  // Export objects:
  Ref<exports::Export> exp;
  exports::ExportOptions options;  // of the client rule that matched
  Credentials cred;                // squashed
  backend::Object obj;             // &obj.exp() == exp.get()

  // The object's fsid and mounted_on_fileid (fattr.h).
  uint64_t fsid_major() const { return pseudo ? kPseudoFsidMajor : exp->id(); }
  uint64_t fsid_minor() const { return pseudo ? kPseudoFsidMinor : 0; }
};

// Who asks: the COMPOUND's connection (its peer decides the client rules) and
// credentials as sent.
struct Requester {
  rpc::ConnectionInfo* conn = nullptr;  // never null
  const Credentials* cred = nullptr;    // never null
};

class PseudoFs {
 public:
  struct Deps {
    const exports::ExportTable* exports = nullptr;
    const HandleKey* key = nullptr;
    backend::Backend* backend = nullptr;
  };
  explicit PseudoFs(Deps deps) : deps_(deps) {}
  PseudoFs(const PseudoFs&) = delete;
  PseudoFs& operator=(const PseudoFs&) = delete;

  const Deps& deps() const { return deps_; }

  // PUTROOTFH (and PUTPUBFH): the pseudo root, or the export "/".
  absl::StatusOr<FileHandle4> Root(const Requester& who);
  // PUTFH: a pseudo directory's handle or an export's (v3 format).
  absl::StatusOr<FileHandle4> FromWire(const Requester& who, std::string_view wire);
  // LOOKUP of one component (already checked: not empty, ".", ".." nor too long).
  absl::StatusOr<FileHandle4> Lookup(const Requester& who, const FileHandle4& dir,
                                     std::string_view name);
  // LOOKUPP: ENOENT at the root.
  absl::StatusOr<FileHandle4> Parent(const Requester& who, const FileHandle4& dir);

  // A visible child of a pseudo directory, in READDIR order.
  struct Child {
    std::string name;
    uint64_t cookie = 0;  // > 2, stable for the name (RFC 8881 §18.23.3: 1, 2 reserved)
  };
  // The children of pseudo directory `dir` the client may see, cookies ascending.
  absl::StatusOr<std::vector<Child>> List(const Requester& who, const Nfs4Object& dir);

  // The attributes of a pseudo directory (read-only, root's, times of the tree).
  backend::Attrs PseudoAttrs(const Nfs4Object& dir);
  // The fileid of a pseudo directory; also the mounted_on_fileid READDIR of a pseudo
  // directory gives an export below it (the directory it covers, as knfsd answers).
  static uint64_t PseudoFileid(std::string_view path);

 private:
  struct Node {
    std::map<std::string, std::string> children;  // name → path
    std::vector<uint32_t> exports_below;          // ids of the exports reached through it
  };
  struct Tree {
    uint64_t generation = 0;
    timespec built{};
    std::optional<uint32_t> root_export;                        // the export "/"
    absl::flat_hash_map<std::string, uint32_t> export_paths;    // path → export id
    std::map<std::string, Node> nodes;                          // pseudo dirs by path
    absl::flat_hash_map<std::string, std::string> by_digest;    // handle digest → path
  };

  std::shared_ptr<const Tree> Current() ABSL_LOCKS_EXCLUDED(mu_);
  static std::shared_ptr<const Tree> Build(const exports::ExportTable& table);
  // Whether the client may see export `export_id` (one of its rules matches the peer),
  // and the pseudo directory or export at `path` (an export it may see is below).
  bool ExportVisible(const Requester& who, uint32_t export_id) const;
  bool ChildVisible(const Requester& who, const Tree& tree, const std::string& path) const;
  absl::StatusOr<FileHandle4> PseudoHandle(const std::string& path);
  absl::StatusOr<FileHandle4> ExportRoot(const Requester& who, uint32_t export_id);
  // The node at `path` of `tree`: a pseudo directory or an export root.
  absl::StatusOr<FileHandle4> AtPath(const Requester& who, const Tree& tree,
                                     const std::string& path);
  // The handle of an export's object from AuthorizeHandle + Backend::Resolve.
  absl::StatusOr<FileHandle4> ExportObject(const Requester& who, std::string_view wire);

  const Deps deps_;
  absl::Mutex mu_;
  std::shared_ptr<const Tree> tree_ ABSL_GUARDED_BY(mu_);
};

// The FileHandle4 of an export object `obj` found from `parent` (same export, rule and
// credentials); EOVERFLOW when its handle does not fit the wire format.
absl::StatusOr<FileHandle4> ExportChild(const HandleKey& key, const Nfs4Object& parent,
                                        backend::Object obj);

// The ONE translation of an internal status to nfsstat4 (nfs_status.h's errno table;
// the NFSv4 numbers are NFSv3's where both exist).
nfsstat4 Nfs4StatusFromStatus(const absl::Status& status);

}  // namespace localnfs::server::nfs4
