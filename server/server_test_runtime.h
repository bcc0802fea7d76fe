// server/server_test_runtime.h — for tests of server code: the process state that
// localnfsd's main() sets up before any server code runs (main.cc's startup order): the
// thread registered with RCU, the shared release queue running (common/release_queue.h),
// and the server's own credentials recorded (policy/creds.h: InitServerCredentials).
// Every gtest program of server code holds one for its whole run, made by the environment
// of server_test_environment.cc (linked into each: fixtures make none of their own);
// destroying it stops the release queue, which runs what is still queued, and then
// leaves RCU. A test that needs what is queued run now calls DrainReleases().
//
// MakeExportedDir: the export the backend and vfs tests run on.
//
// Thread-safety: made and destroyed on the test's main thread; one at a time.
#pragma once

#include <errno.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "common/rcu.h"
#include "common/refcount.h"
#include "common/release_queue.h"
#include "common/status.h"
#include "export_cache/export.h"
#include "server/policy/creds.h"

namespace localnfs::server {

class ServerTestRuntime {
 public:
  ServerTestRuntime() {
    StartReleaseQueue();
    InitServerCredentials();
  }
  ~ServerTestRuntime() { StopReleaseQueue(); }
  ServerTestRuntime(const ServerTestRuntime&) = delete;
  ServerTestRuntime& operator=(const ServerTestRuntime&) = delete;

 private:
  RcuThread rcu_;  // constructed before, destroyed after the release queue
};

// Makes the directory `path` (mode `mode`, less the umask) and exports it to every
// client with the default options (one ClientRule{}).
inline absl::StatusOr<Ref<exports::Export>> MakeExportedDir(const std::string& path,
                                                             mode_t mode) {
  if (mkdir(path.c_str(), mode) != 0) return ErrnoToStatus(errno, "mkdir " + path);
  exports::ExportSpec spec;
  spec.path = path;
  spec.rules.push_back(exports::ClientRule{});
  return exports::Export::Create(std::move(spec));
}

}  // namespace localnfs::server
