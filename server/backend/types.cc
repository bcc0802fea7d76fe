// server/backend/types.cc — see types.h.
#include "server/backend/types.h"

#include <sys/sysmacros.h>

namespace localnfs::server::backend {

FileType FileTypeOfMode(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return FileType::kRegular;
    case S_IFDIR: return FileType::kDirectory;
    case S_IFBLK: return FileType::kBlockDevice;
    case S_IFCHR: return FileType::kCharDevice;
    case S_IFLNK: return FileType::kSymlink;
    case S_IFSOCK: return FileType::kSocket;
    case S_IFIFO: return FileType::kFifo;
    default: return FileType::kNone;
  }
}

mode_t ModeOfFileType(FileType type) {
  switch (type) {
    case FileType::kRegular: return S_IFREG;
    case FileType::kDirectory: return S_IFDIR;
    case FileType::kBlockDevice: return S_IFBLK;
    case FileType::kCharDevice: return S_IFCHR;
    case FileType::kSymlink: return S_IFLNK;
    case FileType::kSocket: return S_IFSOCK;
    case FileType::kFifo: return S_IFIFO;
    case FileType::kNone: break;
  }
  return 0;
}

Attrs AttrsFromStat(const struct stat& st) {
  Attrs a;
  a.valid = kAttrBasic;
  a.type = FileTypeOfMode(st.st_mode);
  a.mode = st.st_mode & 07777;
  a.nlink = static_cast<uint32_t>(st.st_nlink);
  a.uid = st.st_uid;
  a.gid = st.st_gid;
  a.size = static_cast<uint64_t>(st.st_size);
  a.used = static_cast<uint64_t>(st.st_blocks) * 512;
  a.rdev_major = major(st.st_rdev);
  a.rdev_minor = minor(st.st_rdev);
  a.fsid = static_cast<uint64_t>(st.st_dev);
  a.fileid = static_cast<uint64_t>(st.st_ino);
  a.atime = st.st_atim;
  a.mtime = st.st_mtim;
  a.ctime = st.st_ctim;
  a.change = ChangeFromCtime(st.st_ctim);
  return a;
}

}  // namespace localnfs::server::backend
