// tools/localnfs_ctl.cc — localnfs-ctl: ask a running localnfsd how it is doing, what it
// exports, and to reload its exports file.
//
//   localnfs-ctl [--runtime-dir DIR] status  [--json]
//   localnfs-ctl [--runtime-dir DIR] exports [--json]
//   localnfs-ctl [--runtime-dir DIR] reload  [--json]
//
// Talks to the server's control socket `<runtime-dir>/control.sock` (common/control.h;
// root or the server's own user only). status and exports print what the server
// renders (server/status.h, server/admin_requests.h). reload asks the server to reload
// its exports file exactly as SIGHUP does, waits for the result and prints which
// exports were added, changed and removed; the server answers it as JSON, rendered
// here as text unless --json.
// Exit: 0 ok, 1 no server answering (or an error answer), 2 bad usage, 3 reload
// refused (the old exports keep serving), 4 reload result not known in time. --help
// prints the usage (exit 0).
#include <stdio.h>
#include <string.h>

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/control.h"
#include "common/flags.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, runtime_dir, "",
          "localnfsd's --runtime-dir (default /run/localnfs as root, "
          "$XDG_RUNTIME_DIR/localnfs otherwise)");
ABSL_FLAG(bool, json, false, "print the answer as one JSON object");

namespace {

constexpr int kExitNoServer = 1;
constexpr int kExitReloadRefused = 3;
constexpr int kExitReloadUnknown = 4;

constexpr char kUsage[] = "localnfs-ctl [--runtime-dir DIR] status | exports | reload [--json]";
constexpr char kHelp[] =
    "  --runtime-dir DIR  localnfsd's --runtime-dir (default /run/localnfs as root,\n"
    "                     $XDG_RUNTIME_DIR/localnfs otherwise)\n"
    "  status             the server, its exports, calls, LOCALIO and its clients,\n"
    "                     NFSv4 clients, sessions, grace and op counts (unless --nonfs4)\n"
    "  exports            the exports and client rules the server serves now\n"
    "  reload             reload the exports file (as SIGHUP), wait, print what changed\n"
    "  --json             the answer as one JSON object\n"
    "Exit: 0 ok, 1 no server answering, 2 bad usage, 3 reload refused (the old\n"
    "exports keep serving), 4 reload result not known in time.\n";

using Json = nlohmann::json;

// "  added    /srv/x  id 0000002a  *(rw,...)" lines of one kind of change.
void PrintChanges(const Json& changes, const char* what) {
  if (!changes.is_array()) return;
  for (const Json& c : changes) {
    const std::string path = c.value("path", std::string("?"));
    printf("  %-8s %s  id %08x", what, path.c_str(), c.value("id", 0u));
    if (std::string(what) != "removed") printf("  %s", c.value("rules", std::string()).c_str());
    if (c.contains("old_rules")) {
      const std::string old_path = c.value("old_path", path);
      if (old_path != path) printf("  (was %s", old_path.c_str());
      else printf("  (was");
      printf(" %s)", c.value("old_rules", std::string()).c_str());
    }
    printf("\n");
  }
}

// Prints a reload answer (server/admin_requests.h: ReloadReportJson) and returns the
// exit status it means.
int ReportReload(const std::string& answer, bool json) {
  const Json report = Json::parse(answer, nullptr, /*allow_exceptions=*/false);
  if (!report.is_object() || !report.contains("result")) {
    fprintf(stderr, "localnfs-ctl: the server's reload answer is not a report: %s\n",
            answer.c_str());
    return kExitNoServer;
  }
  const std::string result = report.value("result", std::string());
  const int status = result == "reloaded"  ? 0
                     : result == "refused" ? kExitReloadRefused
                                           : kExitReloadUnknown;
  if (json) {  // the report is the whole output; the exit status still tells the outcome
    fwrite(answer.data(), 1, answer.size(), stdout);
    return status;
  }
  if (result == "reloaded") {
    printf("reloaded %s: %zu added, %zu changed, %zu removed, %zu unchanged (%zu exports)\n",
           report.value("exports_file", std::string()).c_str(), report["added"].size(),
           report["changed"].size(), report["removed"].size(),
           report.value("unchanged", size_t{0}), report.value("exports", size_t{0}));
    PrintChanges(report["added"], "added");
    PrintChanges(report["changed"], "changed");
    PrintChanges(report["removed"], "removed");
    return 0;
  }
  const std::string error = report.value("error", std::string());
  if (result == "refused") {
    fprintf(stderr, "localnfs-ctl: reload refused, the current exports keep serving: %s\n",
            error.c_str());
  } else {
    fprintf(stderr, "localnfs-ctl: reload: %s\n", error.c_str());
  }
  return status;
}

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
  const std::string command = rest.size() == 2 ? rest[1] : "";
  if (command != "status" && command != "exports" && command != "reload") {
    fprintf(stderr, "usage: %s\n", kUsage);
    return localnfs::kExitUsage;
  }
  const bool json = absl::GetFlag(FLAGS_json);
  std::string runtime_dir = absl::GetFlag(FLAGS_runtime_dir);
  if (runtime_dir.empty()) runtime_dir = localnfs::DefaultRuntimeDir();
  // A reload answers once it is done: wait longer than the server waits for it.
  const std::string request =
      command == "reload" ? command : absl::StrCat(command, json ? " json" : "");
  const absl::Duration timeout = command == "reload"
                                     ? localnfs::kReloadWaitBound + absl::Seconds(10)
                                     : absl::Seconds(10);
  absl::StatusOr<std::string> answer =
      localnfs::QueryControl(runtime_dir, request, timeout);
  if (!answer.ok()) {
    fprintf(stderr, "localnfs-ctl: %s (is localnfsd running with --runtime-dir %s?)\n",
            std::string(answer.status().message()).c_str(), runtime_dir.c_str());
    return kExitNoServer;
  }
  if (command == "reload") return ReportReload(*answer, json);
  fwrite(answer->data(), 1, answer->size(), stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
