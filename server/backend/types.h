// server/backend/types.h — the vocabulary of the Backend interface (backend.h): attributes
// with a mask, the changes a SETATTR or a CREATE asks for, and the results of I/O.
//
// Owns: nothing; plain values. No protocol in here: an NFSv3 fattr3, an NFSv4 fattr4
// bitmap and a LOCALIO attribute record are all filled from an Attrs by protocol code.
//
// Attributes with a mask. `Attrs::valid` says which fields hold a value: what the
// backend could give (GetAttr takes no request mask today: the POSIX backend takes
// everything with one statx — the fields of STATX_BASIC_STATS plus the mount id — so
// asking for fewer would cost nothing less). The mask is there so that NFSv4 GETATTR, which asks for
// attributes by bitmap, can tell "not supported" from zero, and so that a backend whose
// attributes are not all free (a remote one) may skip what nobody asked for.
//
// The change attribute (NFSv4's `change`, also the cookie of "did it change" checks): the
// POSIX backend derives it from ctime as knfsd does for file systems without i_version
// (nfsd4_change_attribute: ctime seconds << 30 + nanoseconds); the memory backend makes
// every ctime it sets strictly larger than the last one, so the same derivation is
// monotonic there too. One derivation, ChangeFromCtime().
//
// Thread-safety: values.
#pragma once

#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <optional>

namespace localnfs::server::backend {

inline constexpr uint32_t kMaxIoSize = 1u << 20;  // rtmax / wtmax
inline constexpr uint32_t kPrefDirSize = 64u << 10;
inline constexpr size_t kMaxNameLen = 255;

// The type of an object. The values are NFSv3's ftype3 (and NFSv4's nfs_ftype4 for the
// first seven), so protocol code converts with a cast.
enum class FileType : uint8_t {
  kNone = 0,
  kRegular = 1,
  kDirectory = 2,
  kBlockDevice = 3,
  kCharDevice = 4,
  kSymlink = 5,
  kSocket = 6,
  kFifo = 7,
};
FileType FileTypeOfMode(mode_t mode);
// S_IF* of `type`; 0 for kNone.
mode_t ModeOfFileType(FileType type);

// Attrs::valid bits.
inline constexpr uint32_t kAttrType = 1u << 0;
inline constexpr uint32_t kAttrMode = 1u << 1;
inline constexpr uint32_t kAttrNlink = 1u << 2;
inline constexpr uint32_t kAttrUid = 1u << 3;
inline constexpr uint32_t kAttrGid = 1u << 4;
inline constexpr uint32_t kAttrSize = 1u << 5;
inline constexpr uint32_t kAttrUsed = 1u << 6;
inline constexpr uint32_t kAttrRdev = 1u << 7;
inline constexpr uint32_t kAttrFsid = 1u << 8;
inline constexpr uint32_t kAttrFileid = 1u << 9;
inline constexpr uint32_t kAttrMountId = 1u << 10;
inline constexpr uint32_t kAttrAtime = 1u << 11;
inline constexpr uint32_t kAttrMtime = 1u << 12;
inline constexpr uint32_t kAttrCtime = 1u << 13;
inline constexpr uint32_t kAttrChange = 1u << 14;
// Everything a stat gives: what NFSv3's fattr3 needs, and NFSv4's change.
inline constexpr uint32_t kAttrBasic = kAttrType | kAttrMode | kAttrNlink | kAttrUid |
                                       kAttrGid | kAttrSize | kAttrUsed | kAttrRdev |
                                       kAttrFsid | kAttrFileid | kAttrAtime | kAttrMtime |
                                       kAttrCtime | kAttrChange;
// What a permission check reads (creds.h CheckPermission): a rule given attributes
// without one of these fails closed (EACCES).
inline constexpr uint32_t kAttrAccess = kAttrType | kAttrMode | kAttrUid | kAttrGid;

struct Attrs {
  uint32_t valid = 0;  // kAttr* bits of the fields that hold a value
  FileType type = FileType::kNone;
  uint32_t mode = 0;  // permission, set-id and sticky bits (07777), without the type
  uint32_t nlink = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint64_t used = 0;  // bytes allocated (st_blocks * 512)
  uint32_t rdev_major = 0;
  uint32_t rdev_minor = 0;
  uint64_t fsid = 0;     // the file system's device (st_dev); the wire fsid is the export's
  uint64_t fileid = 0;   // inode number
  uint64_t mount_id = 0; // statx STATX_MNT_ID (POSIX); 0 when unknown
  timespec atime{};
  timespec mtime{};
  timespec ctime{};
  uint64_t change = 0;

  bool has(uint32_t mask) const { return (valid & mask) == mask; }
  bool is_dir() const { return type == FileType::kDirectory; }
  bool is_regular() const { return type == FileType::kRegular; }
};

// knfsd's change attribute for file systems without i_version.
inline uint64_t ChangeFromCtime(const timespec& ctime) {
  return (static_cast<uint64_t>(ctime.tv_sec) << 30) + static_cast<uint64_t>(ctime.tv_nsec);
}

// Every field of kAttrBasic from `st` (change from its ctime); mount_id unset. The one
// way in: the POSIX backend converts what the kernel gives where it takes it; the rules
// (rules.h, creds.h) and everything above them judge Attrs.
Attrs AttrsFromStat(const struct stat& st);

// SETATTR and the attributes of a CREATE/MKDIR/SYMLINK/MKNOD.
enum class TimeHow { kDontChange, kServerTime, kClientTime };
struct SetTime {
  TimeHow how = TimeHow::kDontChange;
  timespec time{};
};
struct SetAttrRequest {
  std::optional<mode_t> mode;
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<uint64_t> size;
  SetTime atime;
  SetTime mtime;

  bool empty() const {
    return !mode && !uid && !gid && !size && atime.how == TimeHow::kDontChange &&
           mtime.how == TimeHow::kDontChange;
  }
};

// SETATTR's guard: the change is refused with this errno (NFS3ERR_NOT_SYNC) unless the
// object's ctime is the one given.
inline constexpr int kErrNotSync = EBADE;

enum class CreateHow { kUnchecked, kGuarded, kExclusive };

struct ReadResult {
  uint32_t count = 0;
  bool eof = false;
  bool would_block = false;  // only with `nowait`: count and eof mean nothing then
};

enum class Stability { kUnstable = 0, kDataSync = 1, kFileSync = 2 };
struct WriteResult {
  uint32_t count = 0;
  Stability committed = Stability::kUnstable;
};

struct FsStat {
  uint64_t tbytes = 0, fbytes = 0, abytes = 0, tfiles = 0, ffiles = 0, afiles = 0;
};
struct PathConf {
  uint32_t linkmax = 0;
  uint32_t name_max = 0;
};

}  // namespace localnfs::server::backend
