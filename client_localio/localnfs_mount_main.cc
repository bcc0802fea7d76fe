// client_localio/localnfs_mount_main.cc — localnfs-mount's startup (fuse_mount.h):
// parse the command line, MOUNT the export, install the LOCALIO data path, probe the
// splice pipe size, mount /dev/fuse, daemonise (handshaking LOCALIO again in the
// daemon), run the multi-threaded FUSE loop, and on the way out remove the hidden names
// of files still open and unmount.
//
// Exit status: 0 after a clean unmount, 2 for usage errors, 1 for runtime failures.
#include "client_localio/fuse_mount.h"  // first: it sets FUSE_USE_VERSION

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client_localio/mount_args.h"
#include "common/log.h"
#include "common/mutex_mode.h"

namespace localnfs::client {
namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

int Run(int argc, char** argv) {
  ConfigureMutexDeadlockDetection();
  SetLogProgramName("localnfs-mount");
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(kMountUsage, stdout);
      return 0;
    }
  }
  MountArgs args;
  if (absl::Status s = ParseMountArgs(argc, argv, &args); !s.ok()) {
    fprintf(stderr, "localnfs-mount: %s\n%s", std::string(s.message()).c_str(), kMountUsage);
    return kExitUsage;
  }
  const std::string what = absl::StrCat(args.host, ":", args.export_path);

  MountState state;
  state.localio = args.localio;
  MountOptions options;
  absl::StatusOr<std::unique_ptr<Nfs3Client>> client = Nfs3Client::Mount(
      args.host, args.nfs_port, args.mount_port, args.export_path, options);
  if (!client.ok()) {
    fprintf(stderr, "localnfs-mount: mount %s: %s\n", what.c_str(),
            std::string(client.status().message()).c_str());
    return kExitRuntime;
  }
  state.client = *std::move(client);
  state.inodes = std::make_unique<InodeTable>(state.client->root());
  state.silly_counter.store(std::random_device{}(), std::memory_order_relaxed);
  LocalioOptions lio_options;
  lio_options.mode = args.localio;
  lio_options.runtime_dir = args.runtime_dir;
  absl::StatusOr<LocalioDataPath*> lio = LocalioDataPath::Install(state.client.get(), lio_options);
  if (!lio.ok()) {  // only localio=on fails here
    fprintf(stderr, "localnfs-mount: mount %s: localio=on: %s\n", what.c_str(),
            std::string(lio.status().message()).c_str());
    return kExitRuntime;
  }
  state.localio_path = *lio;
  if (args.localio != LocalioMode::kOff) state.splice_max = ProbeSpliceMax();
  LOG_INFO("mount %s: localio=%s: data path %s", what, LocalioModeName(args.localio),
           state.localio_path->Describe());

  std::vector<std::string> fuse_argv_storage = {"localnfs-mount"};
  std::vector<std::string> mount_opts = {
      absl::StrCat("fsname=localnfs:", what), "subtype=localnfs",
      absl::StrCat("max_read=", state.splice_max != 0 ? state.splice_max : kMaxIo)};
  // The kernel checks permissions on the attributes we report (fuse_mount.h,
  // "Permissions"); the server checks every operation again with the caller's
  // credentials. As root, serve every user like a kernel NFS mount.
  mount_opts.push_back("default_permissions");
  if (geteuid() == 0) mount_opts.push_back("allow_other");
  for (const std::string& o : args.fuse_options) mount_opts.push_back(o);
  fuse_argv_storage.push_back("-o");
  fuse_argv_storage.push_back(absl::StrJoin(mount_opts, ","));
  if (args.debug) fuse_argv_storage.push_back("-d");
  std::vector<char*> fuse_argv;
  for (std::string& s : fuse_argv_storage) fuse_argv.push_back(s.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(fuse_argv.size()), fuse_argv.data());

  const fuse_lowlevel_ops ops = MakeOps();
  fuse_session* se = fuse_session_new(&fargs, &ops, sizeof(ops), &state);
  if (se == nullptr) {
    fprintf(stderr, "localnfs-mount: mount %s: bad FUSE options '%s'\n", what.c_str(),
            fuse_argv_storage[2].c_str());
    return kExitUsage;
  }
  int rc = kExitRuntime;
  if (fuse_set_signal_handlers(se) != 0) {
    fprintf(stderr, "localnfs-mount: cannot install signal handlers\n");
  } else {
    if (fuse_session_mount(se, args.mountpoint.c_str()) != 0) {
      fprintf(stderr, "localnfs-mount: mount %s on %s: FUSE mount failed\n", what.c_str(),
              args.mountpoint.c_str());
    } else {
      // The NFS connections are plain sockets and survive the fork of fuse_daemonize;
      // no thread exists yet. The LOCALIO uuid does not (it names our pid).
      if (!args.foreground && args.localio != LocalioMode::kOff)
        state.localio_path->ReleaseBeforeFork();
      fuse_daemonize(args.foreground ? 1 : 0);
      if (!args.foreground && args.localio != LocalioMode::kOff) {
        // The daemon is a new pid: its parent's uuid does not authenticate it.
        absl::Status s = state.localio_path->RehandshakeAfterFork();
        LOG_INFO("mount %s: daemon data path %s", what,
                 s.ok() ? state.localio_path->Describe() : std::string(s.message()));
      }
      if (args.passthrough && args.localio == LocalioMode::kOff) {
        LOG_WARNING("mount %s: passthrough needs LOCALIO (localio=off): not used", what);
      } else if (args.passthrough) {
        absl::StatusOr<std::unique_ptr<FusePassthrough>> pt = FusePassthrough::Attach(se);
        if (pt.ok()) {
          state.passthrough = *std::move(pt);
        } else {
          LOG_WARNING("mount %s: passthrough: %s; opens use the FUSE data path", what,
                      std::string(pt.status().message()));
        }
      }
      fuse_loop_config* cfg = fuse_loop_cfg_create();
      // One /dev/fuse fd per worker thread; threads stay once started, so a burst of
      // I/O never pays for thread creation again.
      fuse_loop_cfg_set_clone_fd(cfg, 1);
      fuse_loop_cfg_set_idle_threads(cfg, kMaxThreads);
      fuse_loop_cfg_set_max_threads(cfg, kMaxThreads);
      rc = fuse_session_loop_mt(se, cfg) == 0 ? 0 : kExitRuntime;
      fuse_loop_cfg_destroy(cfg);
      // Files unlinked while open and still open now (a signal ended the loop) can
      // never be reached again: their hidden names go with us.
      for (const SillyName& silly : state.inodes->TakeSillyNames())
        RemoveSillyName(state, silly);
      fuse_session_unmount(se);
    }
    fuse_remove_signal_handlers(se);
  }
  fuse_session_destroy(se);
  fuse_opt_free_args(&fargs);
  return rc;
}

}  // namespace
}  // namespace localnfs::client

int main(int argc, char** argv) { return localnfs::client::Run(argc, argv); }
