// tests/localio_user_test.cc — the container use case end to end: localnfsd and the
// FUSE mount both run as an ordinary user (uid 65534 "nobody", no capabilities; the
// mount goes through the setuid fusermount3 like any user's), with no --runtime-dir:
// both default to $XDG_RUNTIME_DIR/localnfs, the client finds the broker there, and the
// data path is local (the mount's counters, and localnfs-ctl run as that user).
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client_localio/test_util.h"
#include "gtest/gtest.h"
#include "tests/support/localnfsd.h"

namespace localnfs::testing {
namespace {

using namespace std::chrono_literals;
using client::testing::IsMountedAs;

constexpr uid_t kUser = 65534;

std::string Env(const char* name) {
  const char* p = getenv(name);
  return p != nullptr ? p : "";
}

class LocalioAsUserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to become uid " << kUser;
    if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/fuse";
    // fusermount3 needs a user name for the uid.
    if (getpwuid(kUser) == nullptr) GTEST_SKIP() << "no passwd entry for uid " << kUser;
    ASSERT_FALSE(Env("LOCALNFSD").empty() || Env("LOCALNFS_MOUNT").empty() ||
                 Env("LOCALNFS_CTL").empty())
        << "$LOCALNFSD, $LOCALNFS_MOUNT, $LOCALNFS_CTL";
    for (const std::string& d : {top_.path(), exp_, mnt_, xdg_}) {
      ASSERT_TRUE(d == top_.path() || mkdir(d.c_str(), 0700) == 0) << d;
      ASSERT_EQ(chown(d.c_str(), kUser, kUser), 0) << d;
    }
  }
  void TearDown() override {
    std::string out;
    if (IsMountedAs(mnt_, "fuse.localnfs")) RunCommand({"fusermount3", "-uz", mnt_}, &out, 30s);
    if (server_ && server_->running()) server_->Kill9();
  }
  // The user's clean environment, whose XDG_RUNTIME_DIR is ours.
  std::vector<std::string> UserEnv() const {
    return {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + top_.path(),
            "XDG_RUNTIME_DIR=" + xdg_};
  }
  // argv run as the user, in that environment.
  std::vector<std::string> AsUser(std::vector<std::string> argv) const {
    std::vector<std::string> out = {"setpriv", "--reuid=65534", "--regid=65534",
                                    "--clear-groups", "env", "-i"};
    for (const std::string& e : UserEnv()) out.push_back(e);
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }

  TempDir top_;
  std::string exp_ = top_.Sub("export");
  std::string mnt_ = top_.Sub("mnt");
  std::string xdg_ = top_.Sub("xdg");
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(LocalioAsUserTest, ServerAndFuseMountAsUserUseLocalio) {
  // As the user, with no --runtime-dir: the default, $XDG_RUNTIME_DIR/localnfs.
  server_ = std::make_unique<ServerProcess>(ServerOptions{.args = {"--export", exp_ + ":rw"},
                                                          .state_dir = top_.Sub("state"),
                                                          .pass_runtime_dir = false,
                                                          .env = UserEnv(),
                                                          .run_as_uid = kUser,
                                                          .run_as_gid = kUser});
  ASSERT_TRUE(server_->Start());
  const std::string nfs_port = std::to_string(server_->nfs_port());
  const std::string mount_port = std::to_string(server_->mount_port());
  std::string out;
  EXPECT_TRUE(
      server_->WaitForStderr(absl::StrCat("localio: published in ", xdg_, "/localnfs/broker")))
      << server_->StderrText();

  // Daemonised (no -f): the mount command returns once mounted, as a user runs it.
  ASSERT_EQ(RunCommand(AsUser({Env("LOCALNFS_MOUNT"), "-o", "localio=on", "--mount-port",
                               mount_port,
                               absl::StrCat("127.0.0.1:", nfs_port, ":", exp_), mnt_}),
                       &out, 60s),
            0)
      << out;
  ASSERT_TRUE(IsMountedAs(mnt_, "fuse.localnfs"));
  ASSERT_EQ(RunCommand(AsUser({"sh", "-ec",
                               absl::StrCat("head -c 8388608 /dev/urandom > ", top_.Sub("src"),
                                            "; dd if=", top_.Sub("src"), " of=", mnt_,
                                            "/f bs=1M conv=fsync status=none; cmp ",
                                            top_.Sub("src"), " ", mnt_, "/f; cmp ",
                                            top_.Sub("src"), " ", exp_, "/f")}),
                       &out, 120s),
            0)
      << out;
  std::string stats;
  ASSERT_EQ(RunCommand(AsUser({"cat", mnt_ + "/.localnfs-stats"}), &stats, 30s), 0) << stats;
  EXPECT_NE(stats.find("localio_active 1"), std::string::npos) << stats;
  EXPECT_NE(stats.find("rpc_reads 0\n"), std::string::npos) << stats;
  EXPECT_NE(stats.find("rpc_writes 0\n"), std::string::npos) << stats;
  EXPECT_NE(stats.find("local_write_bytes 8388608\n"), std::string::npos) << stats;
  EXPECT_EQ(stats.find("local_read_bytes 0\n"), std::string::npos) << stats;

  // localnfs-ctl as the same user, default runtime dir: one client, the daemon
  // (its parent released the uuid it had before daemonising), uid 65534.
  ASSERT_EQ(RunCommand(AsUser({Env("LOCALNFS_CTL"), "status"}), &out, 30s), 0) << out;
  EXPECT_NE(out.find("clients (1):"), std::string::npos) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("uid 65534 from 127\\.0\\.0\\.1:\\d+ export " +
                                                exp_ + ": [12] opens")))
      << out;

  ASSERT_EQ(RunCommand(AsUser({"fusermount3", "-u", mnt_}), &out, 30s), 0) << out;
  // SIGTERM: exit 0 and no sanitizer report.
  EXPECT_TRUE(server_->Stop());
  EXPECT_EQ(server_->StderrText().find("Sanitizer"), std::string::npos) << server_->StderrText();
}

}  // namespace
}  // namespace localnfs::testing
