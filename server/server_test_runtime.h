// server/server_test_runtime.h — for tests of server code: the process state that
// localnfsd's main() sets up before any server code runs (main.cc's startup order): the
// thread registered with RCU, the shared release queue running (common/release_queue.h),
// and the server's own credentials recorded (policy/creds.h: InitServerCredentials).
// Every gtest program of server code holds one for its whole run, made by the environment
// of server_test_environment.cc (linked into each: fixtures make none of their own);
// destroying it stops the release queue, which runs what is still queued, and then
// leaves RCU. A test that needs what is queued run now calls DrainReleases().
//
// Thread-safety: made and destroyed on the test's main thread; one at a time.
#pragma once

#include "common/rcu.h"
#include "common/release_queue.h"
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

}  // namespace localnfs::server
