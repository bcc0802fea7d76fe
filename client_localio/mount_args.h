// client_localio/mount_args.h — localnfs-mount's command line (fuse_mount.h):
//
//   localnfs-mount [-o localio=auto|on|off,runtime_dir=DIR,passthrough,OPT...]
//                  [--mount-port N] [--runtime-dir DIR] [-f] [-d]
//                  HOST[:PORT]:/EXPORT MOUNTPOINT
//
// Owns: nothing (values). Thread-safety: stateless.
#pragma once

#include <stdint.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client_localio/localio_data_path.h"

namespace localnfs::client {

// What the command line asks for; -o options this program does not know go to FUSE.
struct MountArgs {
  std::string host;
  uint16_t nfs_port = 2049;
  uint16_t mount_port = 20048;
  std::string export_path;
  std::string source;  // as given, for messages and fsname
  std::string mountpoint;
  bool foreground = false;
  bool debug = false;
  LocalioMode localio = LocalioMode::kAuto;
  std::string runtime_dir;  // empty: DefaultRuntimeDir()
  bool passthrough = false;  // -o passthrough
  std::vector<std::string> fuse_options;  // -o options passed on to FUSE
};

inline constexpr char kMountUsage[] =
    "usage: localnfs-mount [-o localio=auto|on|off,OPT...] [--mount-port N] [-f] [-d]\n"
    "                      HOST[:PORT]:/EXPORT MOUNTPOINT\n"
    "  -o localio=MODE   auto (default): LOCALIO when possible, else RPC; on: fail\n"
    "                    the mount unless LOCALIO works; off: always RPC\n"
    "  -o runtime_dir=DIR  where localnfsd's broker is (also --runtime-dir DIR;\n"
    "                    default /run/localnfs as root, $XDG_RUNTIME_DIR/localnfs)\n"
    "  -o passthrough    with LOCALIO, let the kernel read and write open files on\n"
    "                    the server's file itself (Linux >= 6.9, root); an open file\n"
    "                    then keeps that access until closed, even if the server\n"
    "                    stops or unexports (see fuse_passthrough.h)\n"
    "  -o OPT            any other option is passed to FUSE (e.g. allow_other, ro)\n"
    "  --mount-port N    MOUNT v3 port (default 20048); the NFS port is PORT (2049)\n"
    "  -f                stay in the foreground;  -d  FUSE debug output (implies -f)\n"
    "Counters: cat MOUNTPOINT/.localnfs-stats.  Unmount: fusermount3 -u MOUNTPOINT\n";

// Parses argv (-h/--help is the caller's). Errors (kInvalidArgument) name the bad
// argument; the caller prints them with kMountUsage and exits 2.
absl::Status ParseMountArgs(int argc, char** argv, MountArgs* a);

}  // namespace localnfs::client
