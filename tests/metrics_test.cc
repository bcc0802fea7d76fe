// tests/metrics_test.cc — `localnfsd --metrics` against a real server: NFSv3 calls on a
// raw connection (tests/wire.h) and a real LOCALIO client (client_localio), /metrics
// scraped over a real TCP socket and parsed by Prometheus's own Python parser
// (tests/metrics_parse.py, prometheus_client). The figures must be the calls made, the
// histograms consistent, the bytes the bytes moved, the LOCALIO figures the client's
// local I/O, and the same as `localnfs-ctl status --json` reports; the endpoint must
// answer only GET/HEAD /metrics, refuse a bad --metrics, and neither it nor the RPC
// path may be held up by HTTP clients that stall.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client_localio/client.h"
#include "client_localio/localio_data_path.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/localnfsd.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

using Json = nlohmann::json;
using Labels = std::map<std::string, std::string>;

const Credentials kRoot{.uid = 0, .gid = 0, .groups = {}};

std::string Env(const char* name) {
  const char* v = getenv(name);
  return v != nullptr ? v : "";
}

// ---- HTTP over a real socket ----

// A TCP connection to host ("127.0.0.1" or "::1"):port, or -1. rcvbuf > 0: that
// SO_RCVBUF, set before connecting (so the window is small from the start).
int ConnectTo(const std::string& host, int port, int rcvbuf = 0) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof(*v6);
  } else {
    return -1;
  }
  const int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Everything `fd` delivers until EOF, waiting at most timeout_ms in total; nullopt on
// timeout or error.
std::optional<std::string> ReadToEof(int fd, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string out;
  char buf[65536];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) return std::nullopt;
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) return std::nullopt;
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

struct HttpAnswer {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;
};

// One request on a fresh connection (Connection: close), read to EOF.
std::optional<HttpAnswer> Http(const std::string& host, int port, const std::string& method,
                               const std::string& path, int timeout_ms = 10000) {
  const int fd = ConnectTo(host, port);
  if (fd < 0) return std::nullopt;
  const bool sent = SendAll(fd, absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: ", host,
                                             "\r\nConnection: close\r\n\r\n"));
  std::optional<std::string> raw = sent ? ReadToEof(fd, timeout_ms) : std::nullopt;
  close(fd);
  if (!raw) return std::nullopt;
  const size_t end = raw->find("\r\n\r\n");
  if (end == std::string::npos || raw->compare(0, 9, "HTTP/1.1 ") != 0) return std::nullopt;
  HttpAnswer a;
  a.head = raw->substr(0, end);
  a.body = raw->substr(end + 4);
  if (!absl::SimpleAtoi(a.head.substr(9, 3), &a.status)) return std::nullopt;
  return a;
}

// ---- the Prometheus parser ----

// The exposition as prometheus_client parsed it (metrics_parse.py), or a test failure.
Json Parse(const std::string& text) {
  TempDir dir;
  const std::string file = dir.path() + "/metrics.txt";
  std::ofstream(file) << text;
  std::string out;
  const int rc = RunCommand({Env("LOCALNFS_PYTHON"), Env("LOCALNFS_METRICS_PARSE"), file}, &out,
                            std::chrono::seconds(60));
  EXPECT_EQ(rc, 0) << "the Prometheus parser refused the exposition: " << out << "\n" << text;
  Json j = Json::parse(out, nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(j.is_object()) << out;
  return j;
}

// The value of the sample `name` whose labels include `labels`; nullopt when none.
std::optional<double> Value(const Json& parsed, const std::string& name,
                            const Labels& labels = {}) {
  if (!parsed.is_object()) return std::nullopt;
  for (const Json& fam : parsed["families"]) {
    for (const Json& s : fam["samples"]) {
      if (s["name"] != name) continue;
      bool match = true;
      for (const auto& [k, v] : labels)
        if (!s["labels"].contains(k) || s["labels"][k] != v) match = false;
      if (match && s["value"].is_number()) return s["value"].get<double>();
    }
  }
  return std::nullopt;
}

double V(const Json& parsed, const std::string& name, const Labels& labels = {}) {
  std::optional<double> v = Value(parsed, name, labels);
  EXPECT_TRUE(v.has_value()) << name << " " << Json(labels).dump() << " missing";
  return v.value_or(-1);
}

Labels Proc(const std::string& program, const std::string& version, const std::string& proc) {
  return {{"program", program}, {"version", version}, {"procedure", proc}};
}

// Every family has HELP and a TYPE; every histogram series has monotone buckets ending
// at +Inf == _count == the series' localnfs_rpc_calls_total, and a sum that is > 0
// exactly when calls were counted.
void ExpectWellFormed(const Json& parsed) {
  ASSERT_TRUE(parsed.is_object());
  bool saw_histogram = false;
  for (const Json& fam : parsed["families"]) {
    const std::string name = fam["name"];
    EXPECT_TRUE(absl::StartsWith(name, "localnfs_")) << name;
    EXPECT_FALSE(fam["help"].get<std::string>().empty()) << name << " has no HELP";
    EXPECT_TRUE(fam["type"] == "counter" || fam["type"] == "gauge" || fam["type"] == "histogram")
        << name << " " << fam["type"];
    if (fam["type"] != "histogram") continue;
    saw_histogram = true;
    EXPECT_EQ(name, "localnfs_rpc_duration_seconds");
    // series key → (le values in order, bucket values in order, sum, count)
    struct Series {
      std::vector<std::string> le;
      std::vector<double> buckets;
      std::optional<double> sum, count;
      Labels labels;
    };
    std::map<std::string, Series> series;
    for (const Json& s : fam["samples"]) {
      Labels l;
      for (const auto& [k, v] : s["labels"].items())
        if (k != "le") l[k] = v.get<std::string>();
      Series& x = series[Json(l).dump()];
      x.labels = l;
      const std::string sname = s["name"];
      if (sname == name + "_bucket") {
        x.le.push_back(s["labels"]["le"]);
        x.buckets.push_back(s["value"].get<double>());
      } else if (sname == name + "_sum") {
        x.sum = s["value"].get<double>();
      } else if (sname == name + "_count") {
        x.count = s["value"].get<double>();
      }
    }
    EXPECT_GE(series.size(), 22u + 6u + 2u);  // NFSv3, MOUNT, LOCALIO procedures
    for (const auto& [key, x] : series) {
      ASSERT_FALSE(x.le.empty()) << key;
      ASSERT_TRUE(x.sum && x.count) << key;
      EXPECT_EQ(x.le.back(), "+Inf") << key;
      for (size_t i = 1; i < x.le.size(); ++i) {
        double a = 0, b = 0;
        if (x.le[i] != "+Inf") {
          ASSERT_TRUE(absl::SimpleAtod(x.le[i - 1], &a) && absl::SimpleAtod(x.le[i], &b)) << key;
          EXPECT_LT(a, b) << key << " le not ascending";
        }
        EXPECT_LE(x.buckets[i - 1], x.buckets[i]) << key << " buckets not cumulative";
      }
      EXPECT_EQ(x.buckets.back(), *x.count) << key << " +Inf != _count";
      EXPECT_EQ(*x.count, V(parsed, "localnfs_rpc_calls_total", x.labels)) << key;
      EXPECT_EQ(*x.sum > 0, *x.count > 0) << key << " sum " << *x.sum;
    }
  }
  EXPECT_TRUE(saw_histogram);
}

// ---- the fixture ----

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Env("LOCALNFS_HAVE_METRICS") != "1")
      GTEST_SKIP() << "localnfsd built without libmicrohttpd (see the RefusedWithout... test)";
    if (Env("LOCALNFS_PYTHON").empty())
      GTEST_SKIP() << "no python3 with prometheus_client (apt-get install "
                      "python3-prometheus-client): nothing to parse the exposition with";
  }
  void TearDown() override {
    client_.reset();
    if (srv_ && srv_->running()) {
      EXPECT_TRUE(srv_->Stop());
    }
  }
  // A server exporting exp_ (no_root_squash: the LOCALIO client is root) with
  // --metrics `metrics`.
  void StartServer(const std::string& metrics, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--export", exp_.path() + ":rw,no_root_squash",
                                     "--metrics", metrics};
    args.insert(args.end(), extra.begin(), extra.end());
    srv_ = std::make_unique<ServerProcess>(args);
    ASSERT_TRUE(srv_->Start());
    ASSERT_GT(srv_->metrics_port(), 0) << "no metrics=PORT on the ready line";
  }
  // GET /metrics, checked (200, the exposition's content type) and parsed.
  Json Scrape(const std::string& host = "127.0.0.1") {
    std::optional<HttpAnswer> a = Http(host, srv_->metrics_port(), "GET", "/metrics");
    EXPECT_TRUE(a.has_value()) << "no answer from " << host << ":" << srv_->metrics_port();
    if (!a) return Json();
    EXPECT_EQ(a->status, 200) << a->head;
    EXPECT_TRUE(absl::StrContains(
        a->head, "Content-Type: text/plain; version=0.0.4; charset=utf-8"))
        << a->head;
    last_text_ = a->body;
    return Parse(a->body);
  }

  TempDir exp_;
  std::unique_ptr<ServerProcess> srv_;
  std::unique_ptr<client::Nfs3Client> client_;
  std::string last_text_;
};

TEST_F(MetricsTest, CountsTheCallsBytesAndLocalIoThatWereMadeAsLocalnfsCtlDoes) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (the export is no_root_squash)";
  StartServer("127.0.0.1:0");
  WireConn conn;
  ASSERT_TRUE(conn.Connect(srv_->nfs_port()));
  Nfs3Wire nfs(&conn);
  std::string root;
  ASSERT_EQ(nfs.Mount(exp_.path(), &root), 0u);
  const Json before = Scrape();
  ExpectWellFormed(before);

  // ---- NFSv3 over RPC: exactly these calls ----
  for (int i = 0; i < 3; ++i) ASSERT_EQ(nfs.Null(), 0u);
  for (int i = 0; i < 2; ++i) ASSERT_EQ(nfs.Getattr(root), 0u);
  std::string fh;
  ASSERT_EQ(nfs.Create(root, "f", 0644, &fh), 0u);
  ASSERT_EQ(nfs.Write(fh, 0, std::string(4096, 'a'), /*UNSTABLE*/ 0), 0u);
  ASSERT_EQ(nfs.Write(fh, 4096, std::string(4096, 'b'), /*FILE_SYNC*/ 2), 0u);
  std::string data;
  ASSERT_EQ(nfs.Read(fh, 0, 8192, &data), 0u);
  ASSERT_EQ(data.size(), 8192u);
  ASSERT_EQ(nfs.Commit(fh), 0u);
  std::string found;
  ASSERT_EQ(nfs.Lookup(root, "f", &found), 0u);
  ASSERT_EQ(nfs.Lookup(root, "missing", &found), 2u);  // NFS3ERR_NOENT: still a call
  const Json after = Scrape();
  ExpectWellFormed(after);

  const std::map<std::string, double> made = {{"NULL", 3},   {"GETATTR", 2}, {"CREATE", 1},
                                              {"WRITE", 2},  {"READ", 1},    {"COMMIT", 1},
                                              {"LOOKUP", 2}};
  for (const char* p : {"NULL", "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK", "READ",
                        "WRITE", "CREATE", "MKDIR", "SYMLINK", "MKNOD", "REMOVE", "RMDIR",
                        "RENAME", "LINK", "READDIR", "READDIRPLUS", "FSSTAT", "FSINFO",
                        "PATHCONF", "COMMIT"}) {
    const Labels l = Proc("nfs", "3", p);
    const double delta =
        V(after, "localnfs_rpc_calls_total", l) - V(before, "localnfs_rpc_calls_total", l);
    EXPECT_EQ(delta, made.count(p) ? made.at(p) : 0) << p;
    EXPECT_EQ(V(after, "localnfs_rpc_duration_seconds_count", l) -
                  V(before, "localnfs_rpc_duration_seconds_count", l),
              delta)
        << p;
  }
  EXPECT_EQ(V(after, "localnfs_rpc_calls_total", Proc("mount", "3", "MNT")), 1);
  EXPECT_GT(V(after, "localnfs_rpc_duration_seconds_sum", Proc("nfs", "3", "NULL")), 0);
  // The bytes READ carried and WRITE wrote.
  EXPECT_EQ(V(after, "localnfs_nfs_read_bytes_total") - V(before, "localnfs_nfs_read_bytes_total"),
            8192);
  EXPECT_EQ(
      V(after, "localnfs_nfs_write_bytes_total") - V(before, "localnfs_nfs_write_bytes_total"),
      8192);
  // Our connection is open; CREATE and the WRITEs went through the reply cache; the
  // WRITE opened the file read-write and the handles were resolved once each.
  EXPECT_GE(V(after, "localnfs_rpc_connections"), 1);
  EXPECT_GE(V(after, "localnfs_rpc_connections_accepted_total"), 1);
  EXPECT_GE(V(after, "localnfs_drc_lookups_total", {{"result", "miss"}}) -
                V(before, "localnfs_drc_lookups_total", {{"result", "miss"}}),
            3);
  EXPECT_GE(V(after, "localnfs_drc_entries"), 3);
  EXPECT_GE(V(after, "localnfs_file_cache_misses_total", {{"mode", "read_write"}}), 1);
  EXPECT_GE(V(after, "localnfs_file_cache_entries", {{"mode", "object"}}), 1);
  EXPECT_GE(V(after, "localnfs_file_cache_hits_total", {{"mode", "object"}}), 1);
  EXPECT_EQ(V(after, "localnfs_exports"), 1);

  // localnfs-ctl status reads the same counters: nothing ran since the scrape.
  const Json status = Json::parse(srv_->StatusJson(), nullptr, false);
  ASSERT_TRUE(status.is_object());
  for (const auto& [program, p] : status["programs"].items()) {
    for (const auto& [proc, calls] : p["calls"].items()) {
      EXPECT_EQ(calls.get<double>(),
                V(after, "localnfs_rpc_calls_total",
                  Proc(program, std::to_string(p["version"].get<int>()), proc)))
          << program << " " << proc;
    }
  }
  EXPECT_EQ(status["nfs_data"]["read_bytes"].get<double>(),
            V(after, "localnfs_nfs_read_bytes_total"));
  EXPECT_EQ(status["nfs_data"]["write_bytes"].get<double>(),
            V(after, "localnfs_nfs_write_bytes_total"));
  EXPECT_EQ(status["rpc"]["connections_open"].get<double>(), V(after, "localnfs_rpc_connections"));
  EXPECT_EQ(status["drc"]["entries"].get<double>(), V(after, "localnfs_drc_entries"));
  EXPECT_EQ(status["file_cache"]["read_write"]["misses"].get<double>(),
            V(after, "localnfs_file_cache_misses_total", {{"mode", "read_write"}}));

  // ---- LOCALIO: a real client whose data goes local ----
  auto c = client::Nfs3Client::Mount("127.0.0.1", srv_->nfs_port(), srv_->mount_port(),
                                     exp_.path(), {});
  ASSERT_TRUE(c.ok()) << c.status();
  client_ = *std::move(c);
  auto lio = client::LocalioDataPath::Install(
      client_.get(), {.mode = client::LocalioMode::kOn, .runtime_dir = srv_->runtime_dir()});
  ASSERT_TRUE(lio.ok()) << lio.status();
  auto g = client_->Create(client_->root(), "g", client::CreateMode::kGuarded, 0644, kRoot);
  ASSERT_TRUE(g.ok()) << g.status();
  const std::string mib(1 << 20, 'x');
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(client_->Write(g->handle, uint64_t(i) << 20, mib, kRoot).ok());
  ASSERT_TRUE(client_->Commit(g->handle, kRoot).ok());
  ASSERT_TRUE(client_->Read(g->handle, 0, 1 << 20, kRoot).ok());
  const Json local = Scrape();
  ExpectWellFormed(local);
  for (const char* p : {"READ", "WRITE", "COMMIT"})
    EXPECT_EQ(V(local, "localnfs_rpc_calls_total", Proc("nfs", "3", p)),
              V(after, "localnfs_rpc_calls_total", Proc("nfs", "3", p)))
        << p << " went over RPC";
  EXPECT_EQ(V(local, "localnfs_nfs_write_bytes_total"), V(after, "localnfs_nfs_write_bytes_total"));
  EXPECT_EQ(V(local, "localnfs_rpc_calls_total", Proc("localio", "1", "UUID_IS_LOCAL")), 1);
  EXPECT_EQ(V(local, "localnfs_localio_enabled"), 1);
  EXPECT_EQ(V(local, "localnfs_localio_uuid_binds_total"), 1);
  EXPECT_GE(V(local, "localnfs_localio_hellos_total", {{"result", "accepted"}}), 1);
  EXPECT_GE(V(local, "localnfs_localio_opens_total", {{"status", "NFS3_OK"}}), 1);
  EXPECT_EQ(V(local, "localnfs_localio_clients"), 1);
  EXPECT_EQ(V(local, "localnfs_localio_client_calls", {{"op", "read"}}), 1);
  EXPECT_EQ(V(local, "localnfs_localio_client_calls", {{"op", "write"}}), 2);
  EXPECT_EQ(V(local, "localnfs_localio_client_calls", {{"op", "commit"}}), 1);
  EXPECT_EQ(V(local, "localnfs_localio_client_bytes", {{"op", "read"}}), 1 << 20);
  EXPECT_EQ(V(local, "localnfs_localio_client_bytes", {{"op", "write"}}), 2 << 20);
  EXPECT_GE(V(local, "localnfs_rpc_connections"), 2);
}

TEST_F(MetricsTest, AnswersOnlyGetAndHeadOfMetrics) {
  StartServer("127.0.0.1:0");
  const int port = srv_->metrics_port();
  std::optional<HttpAnswer> a = Http("127.0.0.1", port, "GET", "/");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->status, 404) << a->head;
  a = Http("127.0.0.1", port, "GET", "/metrics/x");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->status, 404) << a->head;
  a = Http("127.0.0.1", port, "POST", "/metrics");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->status, 405) << a->head;
  EXPECT_TRUE(absl::StrContains(a->head, "Allow: GET, HEAD")) << a->head;
  a = Http("127.0.0.1", port, "HEAD", "/metrics");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->status, 200) << a->head;
  EXPECT_TRUE(a->body.empty());
  EXPECT_TRUE(absl::StrContains(a->head, "text/plain; version=0.0.4")) << a->head;
  ExpectWellFormed(Scrape());
}

// By default (NFSv4 on): the NFSv4 families, well formed, and the op counted by the
// COMPOUND loop (an op refused before a session is counted as an error). With
// --nonfs4 none of them (NoNfs4FamiliesWithNoNfs4).
TEST_F(MetricsTest, Nfs4ClientsGraceAndOpsByDefault) {
  StartServer("127.0.0.1:0");
  WireConn conn;
  ASSERT_TRUE(conn.Connect(srv_->nfs_port()));
  // COMPOUND (tag "m", minor version 1) of one PUTROOTFH: OP_NOT_IN_SESSION.
  const std::string args = XdrOut().Str("m").U32(1).U32(1).U32(24).bytes();
  RpcReply r = conn.Call(kNfsProg, 4, 1, args);
  ASSERT_TRUE(r.ok) << r.error;
  const Json parsed = Scrape();
  ExpectWellFormed(parsed);
  EXPECT_EQ(V(parsed, "localnfs_nfs4_clients", {{"kind", "confirmed"}}), 0);
  EXPECT_EQ(V(parsed, "localnfs_nfs4_sessions"), 0);
  EXPECT_EQ(V(parsed, "localnfs_nfs4_in_grace"), 0);
  EXPECT_EQ(V(parsed, "localnfs_nfs4_ops_total", {{"op", "PUTROOTFH"}}), 1);
  EXPECT_EQ(V(parsed, "localnfs_nfs4_op_errors_total", {{"op", "PUTROOTFH"}}), 1);
  EXPECT_EQ(srv_->StatusNumber("/nfs4/ops/PUTROOTFH/errors"), 1);
}

TEST_F(MetricsTest, NoNfs4FamiliesWithNoNfs4) {
  StartServer("127.0.0.1:0", {"--nonfs4"});
  Scrape();
  EXPECT_FALSE(absl::StrContains(last_text_, "localnfs_nfs4_"));
}

// A client that connects and sends nothing, and one that asks and never reads its
// answers (a tiny receive buffer, requests pipelined), hold one connection each: the
// RPC path and other scrapes go on at once, the server closes both after its timeout,
// and a shutdown with them connected is orderly.
TEST_F(MetricsTest, StalledHttpClientsHoldUpNeitherRpcNorOtherScrapes) {
  StartServer("127.0.0.1:0");
  const int port = srv_->metrics_port();
  const auto start = std::chrono::steady_clock::now();
  const int silent = ConnectTo("127.0.0.1", port);
  ASSERT_GE(silent, 0);
  // 16 answers of ~80 KiB each into a 1 KiB receive buffer it never reads.
  const int reader = ConnectTo("127.0.0.1", port, /*rcvbuf=*/1024);
  ASSERT_GE(reader, 0);
  std::string pipelined;
  for (int i = 0; i < 16; ++i)
    absl::StrAppend(&pipelined, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(SendAll(reader, pipelined));

  WireConn conn;
  ASSERT_TRUE(conn.Connect(srv_->nfs_port()));
  Nfs3Wire nfs(&conn);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) ASSERT_EQ(nfs.Null(), 0u);
  const Json parsed = Scrape();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, std::chrono::seconds(3)) << "RPC or a scrape waited for the stalled clients";
  EXPECT_GE(V(parsed, "localnfs_rpc_calls_total", Proc("nfs", "3", "NULL")), 50);

  // Both are closed by the server once they made no progress for its connection
  // timeout (MetricsHttpServer::kConnectionTimeout, 5 s). Closed: recv() ends (EOF or
  // reset) within `within`, after whatever was already buffered.
  auto closed_by_server = [](int fd, std::chrono::milliseconds within) {
    char buf[65536];
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 100) > 0 && recv(fd, buf, sizeof(buf), 0) <= 0) return true;
    }
    return false;
  };
  EXPECT_TRUE(closed_by_server(silent, std::chrono::seconds(10)));
  const auto silent_for = std::chrono::steady_clock::now() - start;
  EXPECT_GE(silent_for, std::chrono::seconds(4));  // by the timeout, not at once
  // The reader, left alone past the timeout, is closed too: draining it now ends at
  // once instead of receiving the rest of its 16 answers (which would take the server
  // a further idle timeout to end).
  std::this_thread::sleep_until(start + std::chrono::seconds(7));
  EXPECT_TRUE(closed_by_server(reader, std::chrono::seconds(3)));
  close(silent);
  close(reader);

  // A connected client does not hold up an orderly shutdown.
  const int lingering = ConnectTo("127.0.0.1", port);
  ASSERT_GE(lingering, 0);
  EXPECT_TRUE(srv_->Stop());
  close(lingering);
}

TEST_F(MetricsTest, ListensOnIpv6AndOnEveryInterface) {
  const int s6 = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 lo{};
  lo.sin6_family = AF_INET6;
  lo.sin6_addr = in6addr_loopback;
  const bool have_v6 =
      s6 >= 0 && bind(s6, reinterpret_cast<sockaddr*>(&lo), sizeof(lo)) == 0;
  if (s6 >= 0) close(s6);
  if (!have_v6) GTEST_SKIP() << "no IPv6 loopback here";

  StartServer("[::1]:0");
  ExpectWellFormed(Scrape("::1"));
  EXPECT_EQ(ConnectTo("127.0.0.1", srv_->metrics_port()), -1) << "[::1] listens on IPv4 too";
  ASSERT_TRUE(srv_->Stop());

  StartServer(":0");
  ExpectWellFormed(Scrape("::1"));
  ExpectWellFormed(Scrape("127.0.0.1"));
}

// Bad --metrics values end localnfsd with exit status 2 and a message naming the flag,
// before anything starts; a port in use is a runtime failure (1). Runs in every build:
// one without libmicrohttpd refuses every --metrics the same way.
TEST(MetricsFlagTest, BadAddressesAreRefusedWithExit2) {
  TempDir exp;
  for (const char* bad : {"nonsense", "127.0.0.1", "127.0.0.1:", "127.0.0.1:70000",
                          "127.0.0.1:-1", "127.0.0.1:9x", "::1:9100", "[::1]9100", "[::1]",
                          "[127.0.0.1]:80", "localhost:9100", "300.1.1.1:80"}) {
    RunResult r = RunLocalnfsdToExit({"--export", exp.path(), "--metrics", bad},
                                     std::chrono::seconds(30));
    ASSERT_TRUE(WIFEXITED(r.wstatus)) << bad << ": " << r.stderr_text;
    EXPECT_EQ(WEXITSTATUS(r.wstatus), 2) << bad << ": " << r.stderr_text;
    EXPECT_TRUE(absl::StrContains(r.stderr_text, "--metrics")) << bad << ": " << r.stderr_text;
  }
  if (Env("LOCALNFS_HAVE_METRICS") != "1") {
    RunResult r = RunLocalnfsdToExit({"--export", exp.path(), "--metrics", "127.0.0.1:0"},
                                     std::chrono::seconds(30));
    EXPECT_EQ(WEXITSTATUS(r.wstatus), 2) << r.stderr_text;
    EXPECT_TRUE(absl::StrContains(r.stderr_text, "without libmicrohttpd")) << r.stderr_text;
    return;
  }
  // A port someone else listens on.
  const int taken = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(taken, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(taken, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(taken, 1), 0);
  socklen_t len = sizeof(a);
  ASSERT_EQ(getsockname(taken, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ServerProcess srv(std::vector<std::string>{
      "--export", exp.path(), "--metrics", absl::StrCat("127.0.0.1:", ntohs(a.sin_port))});
  EXPECT_FALSE(srv.Start());
  EXPECT_TRUE(WIFEXITED(srv.exit_status()));
  EXPECT_EQ(WEXITSTATUS(srv.exit_status()), 1);
  EXPECT_TRUE(absl::StrContains(srv.StderrText(), "metrics: bind")) << srv.StderrText();
  close(taken);
}

}  // namespace
}  // namespace localnfs::testing
