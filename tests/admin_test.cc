// tests/admin_test.cc — localnfs-ctl exports and localnfs-ctl reload against a real
// localnfsd with an exports file, checked from the NFS side through the raw wire
// client (tests/wire.h):
//   - `exports` lists what the file says, with every option and the ids;
//   - `reload` reports exactly the exports added, changed and removed, and MOUNT,
//     LOOKUP and writes follow the new table;
//   - a malformed file is refused naming its line, exit 3, and the old table keeps
//     serving (NFS and `exports` both);
//   - SIGHUP and `reload` are one code path: the same change gives the same report,
//     and reloads asked for at once never overlap;
//   - a server without an exports file refuses `reload`; only root or the server's
//     user may ask.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/control.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/localnfsd.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

using Json = nlohmann::json;

std::string CtlBinary() {
  const char* p = getenv("LOCALNFS_CTL");
  return p != nullptr ? p : "";
}

// One localnfsd with an exports file (ServerOptions::exports_file) and exports
// <base>/a, <base>/b, <base>/c, <base>/d to pick from.
class AdminTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (the exports are no_root_squash)";
    ASSERT_FALSE(CtlBinary().empty()) << "$LOCALNFS_CTL unset";
    for (const char* d : {"a", "b", "c", "d"}) ASSERT_EQ(mkdir(Dir(d).c_str(), 0755), 0);
    ASSERT_TRUE(WriteFile(Dir("b") + "/inb", "in b"));
  }
  void TearDown() override {
    if (srv_ && srv_->running()) {
      EXPECT_TRUE(srv_->Stop());
    }
  }
  std::string Dir(const std::string& name) const { return base_.Sub(name); }

  void StartWith(const std::vector<std::string>& lines) {
    ServerOptions o;
    o.exports_file = lines;
    srv_ = std::make_unique<ServerProcess>(o);
    ASSERT_TRUE(srv_->Start());
  }
  void WriteExports(const std::vector<std::string>& lines) {
    std::string text;
    for (const std::string& l : lines) text += l + "\n";
    ASSERT_TRUE(WriteFile(srv_->exports_file(), text));
  }
  // Runs localnfs-ctl against the server; stdout and stderr both land in *out.
  int Ctl(const std::vector<std::string>& args, std::string* out) {
    std::vector<std::string> argv = {CtlBinary(), "--runtime-dir", srv_->runtime_dir()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, out, std::chrono::seconds(60));
  }
  Json CtlJson(const std::vector<std::string>& args, int want_exit = 0) {
    std::string out;
    EXPECT_EQ(Ctl(args, &out), want_exit) << out;
    Json j = Json::parse(out, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_object()) << out;
    return j;
  }
  // The paths of a list of changes in a reload report.
  static std::vector<std::string> Paths(const Json& changes) {
    std::vector<std::string> paths;
    for (const Json& c : changes) paths.push_back(c.value("path", ""));
    return paths;
  }

  TempDir base_;
  std::unique_ptr<ServerProcess> srv_;
};

TEST_F(AdminTest, ExportsListsTheFileWithEveryOptionAndId) {
  StartWith({"# two exports",
             Dir("a") + " 127.0.0.1(rw,no_root_squash,async) *(ro,all_squash,anonuid=1234,"
                        "anongid=5678,secure)",
             Dir("b") + " -ro,fsid=42 10.0.0.0/8 localhost(rw)"});
  Json j = CtlJson({"exports", "--json"});
  EXPECT_EQ(j["exports_file"], srv_->exports_file()) << j;
  EXPECT_TRUE(j["last_reload"].is_null()) << j;
  ASSERT_EQ(j["exports"].size(), 2u) << j;
  Json& a = j["exports"][0];
  EXPECT_EQ(a["path"], Dir("a")) << j;
  ASSERT_EQ(a["rules"].size(), 2u) << j;
  EXPECT_EQ(a["rules"][0]["clients"], "127.0.0.1");
  EXPECT_EQ(a["rules"][0]["match"], "address");
  EXPECT_EQ(a["rules"][0]["options"], "rw,async,no_root_squash");
  EXPECT_EQ(a["rules"][0]["access"], "rw");
  EXPECT_EQ(a["rules"][0]["sync"], false);
  EXPECT_EQ(a["rules"][0]["squash"], "no_root_squash");
  EXPECT_TRUE(a["rules"][0]["fsid"].is_null());
  EXPECT_EQ(a["rules"][1]["clients"], "*");
  EXPECT_EQ(a["rules"][1]["match"], "anyone");
  EXPECT_EQ(a["rules"][1]["options"],
            "ro,sync,all_squash,anonuid=1234,anongid=5678,secure");
  EXPECT_EQ(a["rules"][1]["anonuid"], 1234);
  EXPECT_EQ(a["rules"][1]["anongid"], 5678);
  EXPECT_EQ(a["rules"][1]["secure"], true);
  Json& b = j["exports"][1];
  EXPECT_EQ(b["path"], Dir("b")) << j;
  EXPECT_EQ(b["id"], 42) << "fsid= is the export id";
  ASSERT_EQ(b["rules"].size(), 2u) << j;
  EXPECT_EQ(b["rules"][0]["match"], "cidr");
  EXPECT_EQ(b["rules"][0]["options"], "ro,sync,root_squash,anonuid=65534,anongid=65534,fsid=42");
  EXPECT_EQ(b["rules"][1]["match"], "hostname");
  EXPECT_EQ(b["rules"][1]["access"], "rw") << "a rule's own options override the line's -opts";
  EXPECT_TRUE(b["rules"][1]["addresses"].is_array()) << j;

  std::string text;
  ASSERT_EQ(Ctl({"exports"}, &text), 0) << text;
  EXPECT_NE(text.find("exports file: " + srv_->exports_file()), std::string::npos) << text;
  EXPECT_NE(text.find("last reload: none since start"), std::string::npos) << text;
  EXPECT_NE(text.find("exports (2):"), std::string::npos) << text;
  EXPECT_NE(text.find(Dir("b") + "  id 0000002a"), std::string::npos) << text;
  EXPECT_NE(text.find("127.0.0.1  rw,async,no_root_squash"), std::string::npos) << text;
  EXPECT_NE(text.find("*          ro,sync,all_squash,anonuid=1234,anongid=5678,secure"),
            std::string::npos)
      << text;
}

TEST_F(AdminTest, ReloadReportsExactlyTheChangesAndNfsFollowsThem) {
  StartWith({Dir("a") + " 127.0.0.1(rw,no_root_squash)",
             Dir("b") + " 127.0.0.1(rw,no_root_squash)",
             Dir("c") + " 127.0.0.1(rw,no_root_squash)"});
  WireConn conn;
  ASSERT_TRUE(conn.Connect(srv_->nfs_port()));
  Nfs3Wire nfs(&conn);
  std::string afh, bfh, cfh, dfh, fh;
  ASSERT_EQ(nfs.Mount(Dir("a"), &afh), 0u);
  ASSERT_EQ(nfs.Mount(Dir("b"), &bfh), 0u);
  ASSERT_EQ(nfs.Mount(Dir("c"), &cfh), 0u);
  EXPECT_NE(nfs.Mount(Dir("d"), &dfh), 0u) << "not exported yet";
  ASSERT_EQ(nfs.Create(bfh, "before", 0644, &fh), kNfs3Ok);

  // a unchanged, b now read-only, c gone, d new.
  WriteExports({Dir("a") + " 127.0.0.1(rw,no_root_squash)",
                Dir("b") + " 127.0.0.1(ro,no_root_squash)",
                Dir("d") + " 127.0.0.1(rw,no_root_squash)"});
  const size_t mark = srv_->StderrMark();
  Json r = CtlJson({"reload", "--json"});
  EXPECT_EQ(r["result"], "reloaded") << r;
  EXPECT_EQ(r["cause"], "localnfs-ctl") << r;
  EXPECT_EQ(r["exports_file"], srv_->exports_file()) << r;
  EXPECT_EQ(Paths(r["added"]), std::vector<std::string>{Dir("d")}) << r;
  EXPECT_EQ(Paths(r["changed"]), std::vector<std::string>{Dir("b")}) << r;
  EXPECT_EQ(Paths(r["removed"]), std::vector<std::string>{Dir("c")}) << r;
  EXPECT_EQ(r["unchanged"], 1) << r;
  EXPECT_EQ(r["exports"], 3) << r;
  EXPECT_EQ(r["changed"][0]["rules"], "127.0.0.1(ro,sync,no_root_squash)") << r;
  EXPECT_EQ(r["changed"][0]["old_rules"], "127.0.0.1(rw,sync,no_root_squash)") << r;
  EXPECT_TRUE(srv_->WaitForStderr("localnfs-ctl: reloading exports", std::chrono::seconds(5),
                                  mark));

  // The answer came after the table was replaced: the NFS side already follows it, on
  // the same connection.
  EXPECT_EQ(nfs.Getattr(afh), kNfs3Ok) << "unchanged export";
  EXPECT_EQ(nfs.Lookup(bfh, "before", &fh), kNfs3Ok) << "changed export still serves";
  EXPECT_EQ(nfs.Create(bfh, "after", 0644, &fh), kNfs3ErrRofs) << "b is read-only now";
  EXPECT_EQ(nfs.Getattr(cfh), kNfs3ErrStale) << "removed export";
  EXPECT_NE(nfs.Mount(Dir("c"), &fh), 0u) << "MNT of a removed export";
  ASSERT_EQ(nfs.Mount(Dir("d"), &dfh), 0u) << "MNT of the added export";
  EXPECT_EQ(nfs.Create(dfh, "new", 0644, &fh), kNfs3Ok);

  // `exports` shows the new table and this reload.
  Json e = CtlJson({"exports", "--json"});
  ASSERT_EQ(e["exports"].size(), 3u) << e;
  EXPECT_EQ(e["exports"][0]["path"], Dir("a"));
  EXPECT_EQ(e["exports"][1]["path"], Dir("b"));
  EXPECT_EQ(e["exports"][1]["rules"][0]["access"], "ro");
  EXPECT_EQ(e["exports"][2]["path"], Dir("d"));
  EXPECT_EQ(e["last_reload"]["result"], "reloaded") << e;
  EXPECT_EQ(e["last_reload"]["generation"], e["generation"]) << e;

  // The text form, of a reload that changes nothing.
  std::string text;
  ASSERT_EQ(Ctl({"reload"}, &text), 0) << text;
  EXPECT_NE(text.find("reloaded " + srv_->exports_file() +
                      ": 0 added, 0 changed, 0 removed, 3 unchanged (3 exports)"),
            std::string::npos)
      << text;
}

TEST_F(AdminTest, TextReportNamesEachChange) {
  StartWith({Dir("a") + " *(rw)", Dir("c") + " *(rw)"});
  WriteExports({Dir("a") + " *(ro)", Dir("b") + " 127.0.0.1(rw)"});
  std::string text;
  ASSERT_EQ(Ctl({"reload"}, &text), 0) << text;
  EXPECT_NE(text.find("1 added, 1 changed, 1 removed, 0 unchanged (2 exports)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  added    " + Dir("b")), std::string::npos) << text;
  EXPECT_NE(text.find("127.0.0.1(rw,sync,root_squash,anonuid=65534,anongid=65534)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  changed  " + Dir("a")), std::string::npos) << text;
  EXPECT_NE(text.find("(was *(rw,sync,root_squash"), std::string::npos) << text;
  EXPECT_NE(text.find("  removed  " + Dir("c")), std::string::npos) << text;
}

TEST_F(AdminTest, MalformedFileIsRefusedWithItsLineAndTheOldExportsServe) {
  StartWith({Dir("a") + " 127.0.0.1(rw,no_root_squash)",
             Dir("b") + " 127.0.0.1(rw,no_root_squash)"});
  WireConn conn;
  ASSERT_TRUE(conn.Connect(srv_->nfs_port()));
  Nfs3Wire nfs(&conn);
  std::string afh, bfh, fh;
  ASSERT_EQ(nfs.Mount(Dir("a"), &afh), 0u);
  ASSERT_EQ(nfs.Mount(Dir("b"), &bfh), 0u);
  const Json before = CtlJson({"exports", "--json"});

  // A typo on line 3 (b would be dropped, d added, if it parsed).
  WriteExports({"# edited", Dir("a") + " 127.0.0.1(rw,no_root_squash)",
                Dir("d") + " 127.0.0.1(rx)"});
  std::string out;
  EXPECT_EQ(Ctl({"reload"}, &out), 3) << out;
  EXPECT_NE(out.find("reload refused, the current exports keep serving: " +
                     srv_->exports_file() + ":3: unknown option 'rx'"),
            std::string::npos)
      << out;
  // --json: the same report as JSON, the same exit status.
  Json r = CtlJson({"reload", "--json"}, 3);
  EXPECT_EQ(r["result"], "refused") << r;
  EXPECT_EQ(r["error"], srv_->exports_file() + ":3: unknown option 'rx'") << r;
  EXPECT_EQ(r["exports"], 2) << r;
  EXPECT_TRUE(r["added"].empty() && r["changed"].empty() && r["removed"].empty()) << r;

  // A directory that does not exist is refused with its line too.
  WriteExports({Dir("a") + " 127.0.0.1(rw,no_root_squash)", "",
                Dir("missing") + " 127.0.0.1(rw)"});
  r = CtlJson({"reload", "--json"}, 3);
  EXPECT_EQ(r["result"], "refused") << r;
  EXPECT_NE(r.value("error", "").find(":3:"), std::string::npos) << r;
  EXPECT_NE(r.value("error", "").find(Dir("missing")), std::string::npos) << r;

  // The old table still serves: both exports, on the old connection and a new one...
  EXPECT_EQ(nfs.Getattr(afh), kNfs3Ok);
  EXPECT_EQ(nfs.Lookup(bfh, "inb", &fh), kNfs3Ok);
  EXPECT_EQ(nfs.Create(bfh, "still-rw", 0644, &fh), kNfs3Ok);
  WireConn conn2;
  ASSERT_TRUE(conn2.Connect(srv_->nfs_port()));
  Nfs3Wire nfs2(&conn2);
  EXPECT_EQ(nfs2.Mount(Dir("b"), &fh), 0u);
  EXPECT_NE(nfs2.Mount(Dir("d"), &fh), 0u);
  // ...and `exports` shows it unchanged, with the refused reload.
  Json after = CtlJson({"exports", "--json"});
  EXPECT_EQ(after["exports"], before["exports"]) << after;
  EXPECT_EQ(after["generation"], before["generation"]) << after;
  EXPECT_EQ(after["last_reload"]["result"], "refused") << after;
  std::string text;
  ASSERT_EQ(Ctl({"exports"}, &text), 0) << text;
  EXPECT_NE(text.find("refused, the exports below kept serving: " + srv_->exports_file() +
                      ":3:"),
            std::string::npos)
      << text;

  // Fixed: the next reload goes through.
  WriteExports({Dir("a") + " 127.0.0.1(rw,no_root_squash)"});
  r = CtlJson({"reload", "--json"});
  EXPECT_EQ(Paths(r["removed"]), std::vector<std::string>{Dir("b")}) << r;
}

// The change a → a+b, made once by SIGHUP and once by localnfs-ctl, gives the same
// report (the SIGHUP one is read back from `exports`), and the same log lines.
TEST_F(AdminTest, SighupAndCtlReloadAreTheSameReload) {
  const std::vector<std::string> one = {Dir("a") + " 127.0.0.1(rw)"};
  const std::vector<std::string> two = {Dir("a") + " 127.0.0.1(ro)", Dir("b") + " *(rw)"};
  StartWith(one);
  WriteExports(two);
  ASSERT_TRUE(srv_->Reload());  // SIGHUP, and its outcome line
  Json by_signal = CtlJson({"exports", "--json"})["last_reload"];
  EXPECT_EQ(by_signal["cause"], "SIGHUP") << by_signal;

  WriteExports(one);
  EXPECT_EQ(CtlJson({"reload", "--json"})["result"], "reloaded");
  WriteExports(two);
  Json by_ctl = CtlJson({"reload", "--json"});
  EXPECT_EQ(by_ctl["cause"], "localnfs-ctl") << by_ctl;
  for (const char* key :
       {"result", "exports_file", "added", "changed", "removed", "unchanged", "exports"})
    EXPECT_EQ(by_ctl[key], by_signal[key]) << key << "\nSIGHUP: " << by_signal
                                           << "\nctl: " << by_ctl;
  EXPECT_EQ(Paths(by_ctl["added"]), std::vector<std::string>{Dir("b")});
  EXPECT_EQ(Paths(by_ctl["changed"]), std::vector<std::string>{Dir("a")});
  // Each generation is one reload: start 1, SIGHUP 2, two by ctl 3 and 4.
  EXPECT_EQ(by_ctl["generation"].get<int64_t>(), by_signal["generation"].get<int64_t>() + 2);
}

// Reloads asked for at once, by SIGHUP and by several localnfs-ctl, run one after the
// other on the main thread: in the log, every "reloading exports" is followed by its
// outcome before the next one begins, and every ctl gets a whole report.
TEST_F(AdminTest, ConcurrentReloadsAreSerialized) {
  StartWith({Dir("a") + " 127.0.0.1(rw)"});
  WriteExports({Dir("a") + " 127.0.0.1(rw)", Dir("b") + " 127.0.0.1(rw)"});
  const size_t mark = srv_->StderrMark();
  std::vector<std::thread> ctls;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    ctls.emplace_back([&] {
      std::string out;
      if (Ctl({"reload", "--json"}, &out) != 0) return;
      Json r = Json::parse(out, nullptr, false);
      if (r.is_object() && r["result"] == "reloaded" && r["exports"] == 2) ++ok;
    });
  }
  for (int i = 0; i < 4; ++i) srv_->Signal(SIGHUP);
  for (std::thread& t : ctls) t.join();
  EXPECT_EQ(ok.load(), 4);
  // The last SIGHUP's reload may still run: a ctl reload after it waits for it.
  EXPECT_EQ(CtlJson({"reload", "--json"})["result"], "reloaded");
  // Every reload has ended in the server; its log lines may still be on their way
  // through the pipe: wait until each begun reload's outcome line is here too.
  auto count = [](const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  std::string log;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    log = srv_->StderrText().substr(mark);
    if (count(log, "reloading exports") ==
            count(log, "exports reloaded") + count(log, "reload failed") ||
        std::chrono::steady_clock::now() > deadline)
      break;
    srv_->WaitForStderr("\n", std::chrono::milliseconds(100), mark + log.size());
  }
  int running = 0, reloads = 0;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (absl::StrContains(line, "reloading exports")) {
      EXPECT_EQ(running, 0) << "a reload began while another ran:\n" << log;
      running = 1;
      ++reloads;
    } else if (absl::StrContains(line, "exports reloaded") ||
               absl::StrContains(line, "reload failed")) {
      EXPECT_EQ(running, 1) << log;
      running = 0;
    }
  }
  EXPECT_EQ(running, 0) << log;
  EXPECT_GE(reloads, 2) << log;
}

TEST_F(AdminTest, WithoutAnExportsFileReloadIsRefused) {
  srv_ = std::make_unique<ServerProcess>(
      std::vector<std::string>{"--export", Dir("a") + ":rw"});
  ASSERT_TRUE(srv_->Start());
  std::string out;
  EXPECT_EQ(Ctl({"reload"}, &out), 3) << out;
  EXPECT_NE(out.find("nothing to reload: localnfsd was started without --exports FILE"),
            std::string::npos)
      << out;
  // SIGHUP takes the same path.
  const size_t mark = srv_->StderrMark();
  srv_->Signal(SIGHUP);
  EXPECT_TRUE(srv_->WaitForStderr("reload failed, keeping the current exports: nothing to "
                                  "reload",
                                  std::chrono::seconds(10), mark));
  Json e = CtlJson({"exports", "--json"});
  EXPECT_TRUE(e["exports_file"].is_null()) << e;
  ASSERT_EQ(e["exports"].size(), 1u) << e;
  EXPECT_EQ(e["exports"][0]["path"], Dir("a"));
  ASSERT_EQ(Ctl({"exports"}, &out), 0) << out;
  EXPECT_NE(out.find("exports file: none (--export flags only)"), std::string::npos) << out;
}

TEST_F(AdminTest, OnlyRootOrTheServersUserMayReload) {
  StartWith({Dir("a") + " 127.0.0.1(rw)"});
  WriteExports({Dir("b") + " 127.0.0.1(rw)"});
  // Even with the socket opened up, the server checks SO_PEERCRED.
  ASSERT_EQ(chmod(srv_->runtime_dir().c_str(), 0755), 0);
  ASSERT_EQ(chmod((srv_->runtime_dir() + "/" + kControlSocketName).c_str(), 0666), 0);
  const size_t mark = srv_->StderrMark();
  std::string out;
  EXPECT_EQ(RunCommand({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        CtlBinary(), "--runtime-dir", srv_->runtime_dir(), "reload"},
                       &out, std::chrono::seconds(30)),
            1)
      << out;
  EXPECT_NE(out.find("permission denied"), std::string::npos) << out;
  ASSERT_TRUE(srv_->WaitForStderr("control socket: refused pid", std::chrono::seconds(5), mark));
  EXPECT_EQ(srv_->StderrText().find("reloading exports", mark), std::string::npos);
  Json e = CtlJson({"exports", "--json"});
  ASSERT_EQ(e["exports"].size(), 1u) << e;
  EXPECT_EQ(e["exports"][0]["path"], Dir("a")) << "nothing was reloaded";
}

TEST_F(AdminTest, BadUsage) {
  StartWith({Dir("a") + " *(rw)"});
  std::string out;
  EXPECT_EQ(Ctl({"reload", "now"}, &out), 2) << out;
  EXPECT_EQ(Ctl({"exportz"}, &out), 2) << out;
  // An old client's request the server does not know: an error line, exit 1.
  auto raw = QueryControl(srv_->runtime_dir(), "reload please");
  EXPECT_FALSE(raw.ok());
  EXPECT_NE(std::string(raw.status().message()).find("unknown request"), std::string::npos)
      << raw.status();
}

}  // namespace
}  // namespace localnfs::testing
