// tests/logging_test.cc — localnfsd's --log-level and --log-format against a real
// server: JSON lines that parse from the first line to the last, no line per request
// at the default level, nothing but errors at --log-level error, bad values refused.
#include <signal.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/localnfsd.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

// NFS traffic that succeeds: CREATE, then `rounds` x GETATTR, WRITE, READ and NULL.
void NfsTraffic(Nfs3Wire& nfs, const std::string& root, int rounds) {
  std::string fh;
  ASSERT_EQ(nfs.Create(root, "f", 0644, &fh), kNfs3Ok);
  for (int i = 0; i < rounds; ++i) {
    ASSERT_EQ(nfs.Getattr(fh), kNfs3Ok);
    ASSERT_EQ(nfs.Write(fh, 0, "hello", /*stable=*/0), kNfs3Ok);
    std::string data;
    ASSERT_EQ(nfs.Read(fh, 0, 5, &data), kNfs3Ok);
    ASSERT_EQ(nfs.Null(), kNfs3Ok);
  }
}

// MOUNT (logged at info level, one line per mount, as rpc.mountd does), then NfsTraffic.
void Traffic(const ServerProcess& srv, const std::string& export_path, int rounds) {
  WireConn conn;
  ASSERT_TRUE(conn.Connect(srv.nfs_port()));
  Nfs3Wire nfs(&conn);
  std::string root;
  ASSERT_EQ(nfs.Mount(export_path, &root), kNfs3Ok);
  NfsTraffic(nfs, root, rounds);
}

TEST(LoggingTest, JsonFormatGivesOneObjectPerLineFromStartToShutdown) {
  TempDir root;
  ServerProcess srv({"--export", root.path() + ":rw,no_root_squash", "--log-format", "json"});
  ASSERT_TRUE(srv.Start());
  Traffic(srv, root.path(), 3);
  const pid_t pid = srv.pid();
  ASSERT_TRUE(srv.Stop());
  const std::vector<std::string> lines = Lines(srv.StderrText());
  ASSERT_GE(lines.size(), 10u) << srv.StderrText();
  bool saw_shutdown = false;
  for (const std::string& line : lines) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(j.is_object()) << "not a JSON object: " << line;
    EXPECT_EQ(j.size(), 6u) << line;
    for (const char* key : {"time", "level", "program", "source", "message"})
      EXPECT_TRUE(j.contains(key) && j[key].is_string()) << key << " in " << line;
    EXPECT_EQ(j.value("program", ""), "localnfsd") << line;
    EXPECT_EQ(j.value("pid", 0), pid) << line;
    const std::string level = j.value("level", "");
    EXPECT_TRUE(level == "info" || level == "warn" || level == "error") << line;
    if (j.value("message", "").rfind("shutdown: ", 0) == 0) saw_shutdown = true;
  }
  EXPECT_TRUE(saw_shutdown) << srv.StderrText();
}

TEST(LoggingTest, DefaultLevelWritesNoLinePerRequest) {
  TempDir root;
  // An exports file: the SIGHUP below must find something to reload.
  ServerOptions options;
  options.exports_file = {root.path() + " *(rw,no_root_squash)"};
  ServerProcess srv(options);
  ASSERT_TRUE(srv.Start());
  WireConn conn;
  ASSERT_TRUE(conn.Connect(srv.nfs_port()));
  Nfs3Wire nfs(&conn);
  std::string root_fh;
  ASSERT_EQ(nfs.Mount(root.path(), &root_fh), kNfs3Ok);
  ASSERT_TRUE(srv.WaitForStderr("mount " + root.path() + " from"));
  const size_t before = Lines(srv.StderrText()).size();
  NfsTraffic(nfs, root_fh, 100);
  // A line the traffic caused would be written before the reload's (main thread,
  // after every reply above was received).
  srv.Signal(SIGHUP);
  ASSERT_TRUE(srv.WaitForStderr("exports reloaded"));
  std::vector<std::string> lines = Lines(srv.StderrText());
  std::vector<std::string> extra;
  for (size_t i = before; i < lines.size(); ++i)
    if (lines[i].find("reloading exports") == std::string::npos &&
        lines[i].find("exports reloaded") == std::string::npos)
      extra.push_back(lines[i]);
  EXPECT_TRUE(extra.empty()) << "401 NFS requests logged " << extra.size()
                             << " line(s), the first: " << extra.front();
  ASSERT_TRUE(srv.Stop());
}

TEST(LoggingTest, ErrorLevelWritesNothingForAnOrderlyRun) {
  TempDir root;
  ServerProcess srv({"--export", root.path() + ":rw,no_root_squash", "--log-level", "error"});
  ASSERT_TRUE(srv.Start());
  Traffic(srv, root.path(), 3);
  ASSERT_TRUE(srv.Stop());
  EXPECT_EQ(srv.StderrText(), "");
}

TEST(LoggingTest, BadLevelOrFormatIsAUsageError) {
  TempDir root;
  for (const auto& flag : {std::vector<std::string>{"--log-level", "verbose"},
                           std::vector<std::string>{"--log-format", "xml"}}) {
    std::vector<std::string> args = {"--export", root.path(), "--port", "0", "--mount-port", "0"};
    args.insert(args.end(), flag.begin(), flag.end());
    RunResult r = RunLocalnfsdToExit(args, std::chrono::seconds(30));
    ASSERT_TRUE(WIFEXITED(r.wstatus)) << r.stderr_text;
    EXPECT_EQ(WEXITSTATUS(r.wstatus), 2) << r.stderr_text;
    EXPECT_NE(r.stderr_text.find(flag[0]), std::string::npos) << r.stderr_text;
  }
}

}  // namespace
}  // namespace localnfs::testing
