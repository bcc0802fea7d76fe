// tests/ctl_test.cc — localnfs-ctl status against a real localnfsd with a real LOCALIO
// client (client_localio): the figures come from the objects that own them — RPC calls
// per procedure from the programs, OPEN_LOCAL_FH answers from the local socket, and the
// client's own local reads/writes/commits from its broker slot — and the control socket
// answers only root or the server's user.
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "client_localio/client.h"
#include "client_localio/localio_data_path.h"
#include "common/control.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/localnfsd.h"

namespace localnfs::testing {
namespace {

const Credentials kRoot{.uid = 0, .gid = 0, .groups = {}};

std::string CtlBinary() {
  const char* p = getenv("LOCALNFS_CTL");
  return p != nullptr ? p : "";
}

class CtlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (the export is no_root_squash)";
    ASSERT_FALSE(CtlBinary().empty()) << "$LOCALNFS_CTL unset";
    srv_ = std::make_unique<ServerProcess>(
        std::vector<std::string>{"--export", exp_.path() + ":rw,no_root_squash"});
    ASSERT_TRUE(srv_->Start());
    runtime_dir_ = srv_->runtime_dir();
  }
  void TearDown() override {
    client_.reset();
    if (srv_ && srv_->running()) {
      EXPECT_TRUE(srv_->Stop());
    }
  }
  int Ctl(const std::vector<std::string>& args, std::string* out) {
    std::vector<std::string> argv = {CtlBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, out, std::chrono::seconds(30));
  }

  TempDir exp_;
  std::unique_ptr<ServerProcess> srv_;
  std::string runtime_dir_;
  std::unique_ptr<client::Nfs3Client> client_;
};

TEST_F(CtlTest, StatusShowsExportsRpcCountersAndTheLocalClientsIo) {
  auto c = client::Nfs3Client::Mount("127.0.0.1", srv_->nfs_port(), srv_->mount_port(),
                                     exp_.path(), {});
  ASSERT_TRUE(c.ok()) << c.status();
  client_ = *std::move(c);
  auto lio = client::LocalioDataPath::Install(
      client_.get(), {.mode = client::LocalioMode::kOn, .runtime_dir = runtime_dir_});
  ASSERT_TRUE(lio.ok()) << lio.status();
  auto f = client_->Create(client_->root(), "f", client::CreateMode::kGuarded, 0644, kRoot);
  ASSERT_TRUE(f.ok()) << f.status();
  const std::string data(1 << 20, 'x');
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(client_->Write(f->handle, uint64_t(i) << 20, data, kRoot).ok());
  ASSERT_TRUE(client_->Commit(f->handle, kRoot).ok());
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(client_->Read(f->handle, uint64_t(i) << 20, 1 << 20, kRoot).ok());

  std::string json;
  ASSERT_EQ(Ctl({"--runtime-dir", runtime_dir_, "status", "--json"}, &json), 0) << json;
  // Well-formed JSON (python3 is there: meson runs on it).
  std::string check;
  ASSERT_EQ(RunCommand({"sh", "-c", "printf '%s' \"$0\" | python3 -m json.tool >/dev/null", json},
                       &check, std::chrono::seconds(30)),
            0)
      << check << json;
  // Not const: a missing member reads as null (and fails the comparison) instead of
  // asserting.
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(j.is_object()) << json;
  ASSERT_EQ(j["exports"].size(), 1u) << json;
  EXPECT_EQ(j["exports"][0]["path"], exp_.path()) << json;
  EXPECT_EQ(j["server"]["pid"], srv_->pid()) << json;
  for (const char* key : {"uptime_s", "nfs_port", "mount_port", "worker_threads", "runtime_dir"})
    EXPECT_TRUE(j["server"].contains(key)) << key << json;
  // The data went local: the server saw no RPC READ/WRITE/COMMIT, one CREATE.
  const nlohmann::json& nfs = j["programs"]["nfs"]["calls"];
  EXPECT_EQ(nfs["READ"], 0) << json;
  EXPECT_EQ(nfs["WRITE"], 0) << json;
  EXPECT_EQ(nfs["COMMIT"], 0) << json;
  EXPECT_EQ(nfs["CREATE"], 1) << json;
  EXPECT_EQ(j["programs"]["localio"]["calls"]["UUID_IS_LOCAL"], 1) << json;
  // The one MNT is in the mount list; the CREATE's reply is in the duplicate request cache.
  EXPECT_EQ(j["mount"], nlohmann::json({{"entries", 1}, {"forgotten", 0}})) << json;
  EXPECT_EQ(j["drc"]["entries"], 1) << json;
  for (const char* key : {"bytes", "replays", "parked", "dropped", "evictions"})
    EXPECT_TRUE(j["drc"].contains(key)) << key << json;
  for (const char* key : {"connections_refused", "connections_closed_idle", "zerocopy_sends",
                          "zerocopy_sends_copied", "zerocopy_replies_freed",
                          "zerocopy_replies_held"})
    EXPECT_EQ(j["rpc"][key], 0) << key << json;
  for (const char* key : {"connections_accepted", "connections_closed_on_error", "calls",
                          "garbage_args", "bad_headers"})
    EXPECT_TRUE(j["rpc"].contains(key)) << key << json;
  nlohmann::json& localio = j["localio"];
  ASSERT_EQ(localio["opens"].size(), 1u) << json;
  EXPECT_TRUE(localio["opens"]["NFS3_OK"] == 1 || localio["opens"]["NFS3_OK"] == 2) << json;
  for (const char* key : {"instance_id", "generation", "bound_uuids", "socket"})
    EXPECT_TRUE(localio["record"].contains(key)) << key << json;
  // The client, with the counts it keeps in its broker slot.
  ASSERT_EQ(localio["clients"].size(), 1u) << json;
  nlohmann::json& client = localio["clients"][0];
  EXPECT_EQ(client["pid"], getpid()) << json;
  EXPECT_EQ(client["uid"], 0) << json;
  EXPECT_EQ(client["export"], exp_.path()) << json;
  EXPECT_TRUE(client["opens"] == 1 || client["opens"] == 2) << json;
  EXPECT_EQ(client["connections"], 1) << json;
  const nlohmann::json io = {{"reads", 2}, {"read_bytes", 2097152}, {"writes", 3},
                             {"write_bytes", 3145728}, {"commits", 1}};
  EXPECT_EQ(client["local_io"], io) << json;
  for (const char* key : {"uuid", "domain", "export_id"})
    EXPECT_TRUE(client.contains(key)) << key << json;

  std::string text;
  ASSERT_EQ(Ctl({"--runtime-dir", runtime_dir_, "status"}, &text), 0) << text;
  EXPECT_NE(text.find("clients (1):"), std::string::npos) << text;
  EXPECT_NE(text.find("local 2 reads (2097152 bytes), 3 writes (3145728 bytes), 1 commits"),
            std::string::npos)
      << text;

  // Unmount: the client's uuid is released and it leaves the list.
  client_.reset();
  ASSERT_EQ(Ctl({"--runtime-dir", runtime_dir_, "status"}, &text), 0) << text;
  EXPECT_NE(text.find("clients (0):"), std::string::npos) << text;
}

// A READ's data goes out from its own buffer (rpc::Call::AddBulk, rpc/reply.h) once it
// is at least rpc::kMinBulkBytes (16 KiB); a smaller one is copied into the reply.
// Seen from outside: with --zerocopy always only a reply with such a buffer is sent with
// MSG_ZEROCOPY (rpc.zerocopy_sends), and the data arrive whole either way.
TEST_F(CtlTest, LargeReadsGoOutFromTheirOwnBufferSmallOnesAreCopied) {
  ASSERT_TRUE(srv_->Stop());
  srv_ = std::make_unique<ServerProcess>(std::vector<std::string>{
      "--export", exp_.path() + ":rw,no_root_squash", "--zerocopy", "always",
      "--zerocopy-min-bytes", "4096"});
  ASSERT_TRUE(srv_->Start());
  runtime_dir_ = srv_->runtime_dir();
  auto c = client::Nfs3Client::Mount("127.0.0.1", srv_->nfs_port(), srv_->mount_port(),
                                     exp_.path(), {});
  ASSERT_TRUE(c.ok()) << c.status();
  client_ = *std::move(c);  // no LOCALIO: reads are RPCs
  auto f = client_->Create(client_->root(), "f", client::CreateMode::kGuarded, 0644, kRoot);
  ASSERT_TRUE(f.ok()) << f.status();
  std::string data(64 * 1024, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 23);
  ASSERT_TRUE(client_->Write(f->handle, 0, data, kRoot).ok());
  ASSERT_TRUE(client_->Commit(f->handle, kRoot).ok());
  auto rpc_counters = [&] {
    std::string json;
    EXPECT_EQ(Ctl({"--runtime-dir", runtime_dir_, "status", "--json"}, &json), 0) << json;
    nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
    return j["rpc"];
  };

  // 8 KiB: copied (no buffer of its own), so nothing goes zero-copy.
  auto small = client_->Read(f->handle, 4096, 8192, kRoot);
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(small->data, data.substr(4096, 8192));
  EXPECT_EQ(rpc_counters()["zerocopy_sends"], 0);

  // 64 KiB from an odd offset (the data needs XDR padding): its own buffer, zero-copy.
  auto large = client_->Read(f->handle, 1, 64 * 1024 - 2, kRoot);
  ASSERT_TRUE(large.ok()) << large.status();
  EXPECT_EQ(large->data, data.substr(1, 64 * 1024 - 2));
  const nlohmann::json counters = rpc_counters();
  EXPECT_GE(counters["zerocopy_sends"].get<int64_t>(), 1) << counters;
}

TEST_F(CtlTest, OnlyRootOrTheServersUserIsAnswered) {
  // An admin loosening the socket's mode does not open it to everyone: the server
  // checks SO_PEERCRED itself.
  ASSERT_EQ(chmod(runtime_dir_.c_str(), 0755), 0);
  const std::string sock = absl::StrCat(runtime_dir_, "/", kControlSocketName);
  ASSERT_EQ(chmod(sock.c_str(), 0666), 0);
  std::string out;
  EXPECT_EQ(RunCommand({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        CtlBinary(), "--runtime-dir", runtime_dir_, "status"},
                       &out, std::chrono::seconds(30)),
            1)
      << out;
  EXPECT_NE(out.find("permission denied"), std::string::npos) << out;
  EXPECT_TRUE(srv_->WaitForStderr("control socket: refused pid"));
  // Root still is.
  EXPECT_EQ(Ctl({"--runtime-dir", runtime_dir_, "status"}, &out), 0) << out;
  // An unknown request is answered with an error line, and the server stays up.
  auto raw = QueryControl(runtime_dir_, "reboot");
  EXPECT_FALSE(raw.ok());
  EXPECT_NE(std::string(raw.status().message()).find("unknown request 'reboot'"),
            std::string::npos)
      << raw.status();
  EXPECT_EQ(Ctl({"--runtime-dir", runtime_dir_, "status", "--json"}, &out), 0) << out;
}

TEST_F(CtlTest, NoServerAndBadUsage) {
  TempDir empty;
  std::string out;
  EXPECT_EQ(Ctl({"--runtime-dir", empty.path(), "status"}, &out), 1) << out;
  EXPECT_NE(out.find("is localnfsd running"), std::string::npos) << out;
  EXPECT_EQ(Ctl({"--runtime-dir", runtime_dir_}, &out), 2) << out;
  EXPECT_EQ(Ctl({"--runtime-dir", runtime_dir_, "stop"}, &out), 2) << out;
  EXPECT_EQ(Ctl({"--bogus", "status"}, &out), 2) << out;
}

}  // namespace
}  // namespace localnfs::testing
