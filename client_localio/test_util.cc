// client_localio/test_util.cc — see test_util.h.
#include "client_localio/test_util.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace localnfs::client::testing {

using namespace std::chrono_literals;

ServerOptions ExportToAll(const std::string& export_dir, int nfs_port, int mount_port) {
  return ServerOptions{.exports_file = {ExportsLine(export_dir)},
                       .nfs_port = nfs_port,
                       .mount_port = mount_port,
                       .keep_ports = true};
}

std::string ExportsLine(const std::string& dir, const std::string& options) {
  return absl::StrCat(dir, " *(", options, ")");
}

std::optional<uint64_t> FindStatsCounter(const std::string& stats, const std::string& name) {
  std::istringstream in(stats);
  std::string key;
  std::string value;
  while (in >> key >> value) {
    if (key == name) return std::stoull(value);
    std::getline(in, value);
  }
  return std::nullopt;
}

uint64_t StatsCounter(const std::string& stats, const std::string& name) {
  if (std::optional<uint64_t> v = FindStatsCounter(stats, name)) return *v;
  ADD_FAILURE() << "no counter " << name << " in:\n" << stats;
  return 0;
}

std::string Sha256OfFile(const std::string& path) {
  std::string out;
  if (RunCommand({"sha256sum", path}, &out) != 0) return "";
  return out.substr(0, out.find(' '));
}

bool IsMountedAs(const std::string& path, const std::string& fstype) {
  FILE* f = fopen("/proc/self/mountinfo", "r");
  if (f == nullptr) return false;
  char line[4096];
  bool found = false;
  while (fgets(line, sizeof(line), f) != nullptr) {
    // "id parent maj:min root mountpoint opts ... - fstype source superopts"
    char mp[2048];
    if (sscanf(line, "%*d %*d %*s %*s %2047s", mp) != 1) continue;
    const char* dash = strstr(line, " - ");
    char type[256];
    if (dash == nullptr || sscanf(dash + 3, "%255s", type) != 1) continue;
    if (path == mp && fstype == type) found = true;
  }
  fclose(f);
  return found;
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    const uint64_t v = rng();
    memcpy(&out[i], &v, 8);
  }
  return out;
}

std::string MountBinary() {
  const char* p = getenv("LOCALNFS_MOUNT");
  return p != nullptr ? p : "";
}

::testing::AssertionResult FuseDaemon::Mount(const std::string& source, int mount_port,
                                             const std::string& mnt,
                                             const std::vector<std::string>& extra,
                                             const std::vector<std::string>& prefix) {
  std::vector<std::string> argv = prefix;
  for (const std::string& a :
       {MountBinary(), std::string("-f"), std::string("--mount-port"), std::to_string(mount_port)})
    argv.push_back(a);
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(source);
  argv.push_back(mnt);
  mnt_ = mnt;
  if (!child_.Start(argv)) return ::testing::AssertionFailure() << "spawn failed";
  bool exited = false;
  if (WaitUntil(
          [&] {
            exited = child_.Wait(0ms);
            return exited || IsMountedAs(mnt, "fuse.localnfs");
          },
          10s) &&
      !exited)
    return ::testing::AssertionSuccess();
  if (exited) return ::testing::AssertionFailure() << "localnfs-mount exited: " << child_.Output();
  return ::testing::AssertionFailure() << "not mounted after 10 s: " << child_.Output();
}

void UnmountFuse(const std::string& mnt) {
  std::string out;
  if (IsMountedAs(mnt, "fuse.localnfs") && RunCommand({"fusermount3", "-u", mnt}, &out, 30s) != 0)
    RunCommand({"fusermount3", "-uz", mnt}, &out, 30s);
}

void FuseDaemon::Unmount() {
  if (!mnt_.empty()) UnmountFuse(mnt_);
  if (child_.running()) {
    int status = 0;
    if (!child_.Wait(10s, &status)) {
      ADD_FAILURE() << "localnfs-mount did not exit after unmount";
      child_.Kill(SIGKILL);
      child_.Wait(5s, &status);
    }
  }
}

std::string FuseMountFixture::Stats() const {
  return ReadFile(mnt_.path() + "/.localnfs-stats");
}

bool FuseMountFixture::PassthroughNotOffered() const {
  return Stats().find("passthrough not-offered") != std::string::npos;
}

void FuseMountFixture::SetUp() {
  if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
  ASSERT_FALSE(MountBinary().empty()) << "$LOCALNFS_MOUNT unset";
  server_ = std::make_unique<ServerProcess>(ExportToAll(export_.path()));
  ASSERT_TRUE(server_->Start());
  source_ = absl::StrCat("127.0.0.1:", server_->nfs_port(), ":", export_.path());
}

void FuseMountFixture::TearDown() {
  UnmountFuse(mnt_.path());  // also a daemonised mount, which daemon_ did not start
  daemon_.Unmount();
  EXPECT_FALSE(HasSanitizerReport(daemon_.Output())) << daemon_.Output();
  if (server_ && server_->running()) {
    EXPECT_TRUE(server_->Stop());
  }
}

}  // namespace localnfs::client::testing
