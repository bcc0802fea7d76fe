// tools/localnfs_ctl.cc — localnfs-ctl: ask a running localnfsd how it is doing.
//
//   localnfs-ctl [--runtime-dir DIR] status [--json]
//
// Talks to the server's control socket `<runtime-dir>/control.sock` (common/control.h;
// root or the server's own user only) and prints what the server renders: the server,
// its exports, calls per program and procedure, and the LOCALIO record, open counters
// and bound clients with their local reads/writes/commits (server/status.h).
// Exit: 0 ok, 1 no server answering, 2 bad usage. --help prints the usage (exit 0).
#include <stdio.h>
#include <string.h>

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/control.h"
#include "common/flags.h"

ABSL_FLAG(std::string, runtime_dir, "",
          "localnfsd's --runtime-dir (default /run/localnfs as root, "
          "$XDG_RUNTIME_DIR/localnfs otherwise)");
ABSL_FLAG(bool, json, false, "print the status as one JSON object");

namespace {

constexpr char kUsage[] = "localnfs-ctl [--runtime-dir DIR] status [--json]";
constexpr char kHelp[] =
    "  --runtime-dir DIR  localnfsd's --runtime-dir (default /run/localnfs as root,\n"
    "                     $XDG_RUNTIME_DIR/localnfs otherwise)\n"
    "  status             the server, its exports, calls, LOCALIO and its clients\n"
    "  --json             the same as one JSON object\n"
    "Exit: 0 ok, 1 no server answering, 2 bad usage.\n";

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  // Our own --help: absl's would exit through ParseFlagsOrExitUsage's exit hook with
  // status 2 before its output is flushed.
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("usage: %s\n%s", kUsage, kHelp);
      return 0;
    }
  }
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) args.push_back(localnfs::AbslFlagSpelling(argv[i]));
  std::vector<char*> rest = localnfs::ParseFlagsOrExitUsage(args);
  if (rest.size() != 2 || std::string(rest[1]) != "status") {
    fprintf(stderr, "usage: %s\n", kUsage);
    return localnfs::kExitUsage;
  }
  std::string runtime_dir = absl::GetFlag(FLAGS_runtime_dir);
  if (runtime_dir.empty()) runtime_dir = localnfs::DefaultRuntimeDir();
  absl::StatusOr<std::string> answer =
      localnfs::QueryControl(runtime_dir, absl::GetFlag(FLAGS_json) ? "status json" : "status");
  if (!answer.ok()) {
    fprintf(stderr, "localnfs-ctl: %s (is localnfsd running with --runtime-dir %s?)\n",
            std::string(answer.status().message()).c_str(), runtime_dir.c_str());
    return 1;
  }
  fwrite(answer->data(), 1, answer->size(), stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
