// tests/localio_user_test.cc — the container use case end to end: localnfsd and the
// FUSE mount both run as an ordinary user (uid 65534 "nobody", no capabilities; the
// mount goes through the setuid fusermount3 like any user's), with no --runtime-dir:
// both default to $XDG_RUNTIME_DIR/localnfs, the client finds the broker there, and the
// data path is local (the mount's counters, and localnfs-ctl run as that user).
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client_localio/test_util.h"
#include "gtest/gtest.h"
#include "tests/harness.h"

namespace localnfs::testing {
namespace {

using client::testing::Child;
using client::testing::IsMountedAs;
using client::testing::RunCommand;

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
    if (IsMountedAs(mnt_, "fuse.localnfs")) RunCommand({"fusermount3", "-uz", mnt_}, &out, 30);
    mount_.Kill(SIGKILL);
    if (server_.running()) {
      server_.Kill(SIGTERM);
      int status = 0;
      if (!server_.Wait(15000, &status)) server_.Kill(SIGKILL);
    }
  }
  // argv run as the user, in a clean environment whose XDG_RUNTIME_DIR is ours.
  std::vector<std::string> AsUser(std::vector<std::string> argv) const {
    std::vector<std::string> out = {"setpriv",   "--reuid=65534", "--regid=65534",
                                    "--clear-groups", "env", "-i",
                                    "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                                    "HOME=" + top_.path(), "XDG_RUNTIME_DIR=" + xdg_};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }

  TempDir top_;
  std::string exp_ = top_.Sub("export");
  std::string mnt_ = top_.Sub("mnt");
  std::string xdg_ = top_.Sub("xdg");
  Child server_, mount_;
};

TEST_F(LocalioAsUserTest, ServerAndFuseMountAsUserUseLocalio) {
  ASSERT_TRUE(server_.Start(AsUser({Env("LOCALNFSD"), "--export", exp_ + ":rw", "--port", "0",
                                    "--mount-port", "0", "--bind", "127.0.0.1",
                                    "--state-dir", top_.Sub("state")})));
  std::smatch m;
  std::string out;
  for (int i = 0; i < 3000 && !std::regex_search(out, m, std::regex("ready nfs=(\\d+) mount=(\\d+)"));
       ++i) {
    int status;
    ASSERT_FALSE(server_.Wait(10, &status)) << server_.Output();
    out = server_.Output();
  }
  ASSERT_FALSE(m.empty()) << out;
  const std::string nfs_port = m[1], mount_port = m[2];
  EXPECT_NE(out.find(absl::StrCat("localio: published in ", xdg_, "/localnfs/broker")),
            std::string::npos)
      << out;

  // Daemonised (no -f): the mount command returns once mounted, as a user runs it.
  ASSERT_EQ(RunCommand(AsUser({Env("LOCALNFS_MOUNT"), "-o", "localio=on", "--mount-port",
                               mount_port,
                               absl::StrCat("127.0.0.1:", nfs_port, ":", exp_), mnt_}),
                       &out, 60),
            0)
      << out;
  ASSERT_TRUE(IsMountedAs(mnt_, "fuse.localnfs"));
  ASSERT_EQ(RunCommand(AsUser({"sh", "-ec",
                               absl::StrCat("head -c 8388608 /dev/urandom > ", top_.Sub("src"),
                                            "; dd if=", top_.Sub("src"), " of=", mnt_,
                                            "/f bs=1M conv=fsync status=none; cmp ",
                                            top_.Sub("src"), " ", mnt_, "/f; cmp ",
                                            top_.Sub("src"), " ", exp_, "/f")}),
                       &out, 120),
            0)
      << out;
  std::string stats;
  ASSERT_EQ(RunCommand(AsUser({"cat", mnt_ + "/.localnfs-stats"}), &stats, 30), 0) << stats;
  EXPECT_NE(stats.find("localio_active 1"), std::string::npos) << stats;
  EXPECT_NE(stats.find("rpc_reads 0\n"), std::string::npos) << stats;
  EXPECT_NE(stats.find("rpc_writes 0\n"), std::string::npos) << stats;
  EXPECT_NE(stats.find("local_write_bytes 8388608\n"), std::string::npos) << stats;
  EXPECT_EQ(stats.find("local_read_bytes 0\n"), std::string::npos) << stats;

  // localnfs-ctl as the same user, default runtime dir: one client, the daemon
  // (its parent released the uuid it had before daemonising), uid 65534.
  ASSERT_EQ(RunCommand(AsUser({Env("LOCALNFS_CTL"), "status"}), &out, 30), 0) << out;
  EXPECT_NE(out.find("clients (1):"), std::string::npos) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("uid 65534 from 127\\.0\\.0\\.1:\\d+ export " +
                                                exp_ + ": [12] opens")))
      << out;

  ASSERT_EQ(RunCommand(AsUser({"fusermount3", "-u", mnt_}), &out, 30), 0) << out;
  server_.Kill(SIGTERM);
  int status = 0;
  ASSERT_TRUE(server_.Wait(15000, &status));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << server_.Output();
  EXPECT_EQ(server_.Output().find("Sanitizer"), std::string::npos) << server_.Output();
}

}  // namespace
}  // namespace localnfs::testing
