// tools/bench/targets.h — the clients localnfs-bench can measure, named by a URL:
//
//   file://DIR                 pread / pwrite / fsync / open+stat+unlink on local files
//                              in DIR: the limit (queue depth = threads)
//   nfs://HOST:PORT/EXPORT?mountport=M[&localio=off|on|auto][&runtime_dir=D]
//                              our NFSv3 client library (client_localio/client.h); with
//                              localio=on the LOCALIO data path (localio_data_path.h)
//                              must bind, off (the default) is plain RPC
//                              (queue depth = threads, one connection per thread)
//   libnfs://HOST:PORT/EXPORT?mountport=M
//                              libnfs's raw async NFSv3 calls: an independent client,
//                              for comparing servers (queue depth = calls in flight on
//                              one TCP connection, one thread)
//
// Each factory returns a Target that owns its connections and files and closes them
// when destroyed. Only the data file of the job and the meta cycle's own names are
// touched in the directory.
#pragma once

#include <stdint.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tools/bench/bench.h"

namespace localnfs::bench {

struct TargetUrl {
  enum class Kind { kFile, kLocalnfs, kLibnfs } kind = Kind::kFile;
  std::string path;  // DIR for file://, the export path otherwise
  std::string host;
  uint16_t nfs_port = 2049;
  uint16_t mount_port = 20048;
  std::string localio = "off";  // nfs:// only
  std::string runtime_dir;      // nfs:// only; empty = the client library's default
};

// Parses one of the URL forms above; a bad one yields kInvalidArgument naming it.
absl::StatusOr<TargetUrl> ParseTargetUrl(absl::string_view url);

// `queue_depth` sizes the connection pool of nfs:// targets (one per thread).
absl::StatusOr<std::unique_ptr<Target>> OpenTarget(const TargetUrl& url, int queue_depth);

absl::StatusOr<std::unique_ptr<Target>> OpenFileTarget(const std::string& dir);
absl::StatusOr<std::unique_ptr<Target>> OpenLocalnfsTarget(const TargetUrl& url,
                                                           int queue_depth);
absl::StatusOr<std::unique_ptr<Target>> OpenLibnfsTarget(const TargetUrl& url);

}  // namespace localnfs::bench
