// tests/shutdown_test.cc — SIGTERM while localnfsd is busy: the shutdown is orderly
// (every step of server/main.cc in reverse order of startup, each logged with its
// time), bounded (by --drain-timeout when a client never reads its replies), exits 0
// without a sanitizer report, and loses nothing that was acknowledged: every WRITE
// answered FILE_SYNC, and every UNSTABLE WRITE followed by a COMMIT answered with the
// same verifier, is on disk byte for byte after the process has exited.
//
// Figures (time from SIGTERM to exit, requests served during the load) are printed as
// "[ figure ] name = value" and recorded as test properties.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/localnfsd.h"
#include "tests/support/wait.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint32_t kPiece = 64 * 1024;
constexpr uint32_t kOneMiB = 1u << 20;
constexpr uint32_t kUnstable = 0, kFileSync = 2;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The bytes of piece `i` of writer `w`: distinct per writer and piece, so a piece
// written at the wrong offset or mixed with another is caught.
std::string PieceData(int w, int i) {
  std::string d(kPiece, '\0');
  uint32_t x = 0x9e3779b9u * static_cast<uint32_t>(w + 1) + static_cast<uint32_t>(i);
  for (size_t k = 0; k < d.size(); ++k) {
    x = x * 1664525u + 1013904223u;
    d[k] = static_cast<char>(x >> 24);
  }
  return d;
}

class ShutdownTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> extra) {
    ASSERT_TRUE(WriteFile(root_.Sub("big"), std::string(4 * kOneMiB, 'r')));
    ASSERT_TRUE(StartServerAndMount(root_.path(), std::move(extra), &server_, &rootfh_));
    WireConn c;
    ASSERT_TRUE(c.Connect(server_->nfs_port()));
    Nfs3Wire n(&c);
    ASSERT_EQ(n.Lookup(rootfh_, "big", &bigfh_), kNfs3Ok);
  }
  // SIGTERM, then wait for the exit; returns the milliseconds it took (-1: still
  // running after `limit`, then it is killed).
  double TermAndWait(milliseconds limit, int* status) {
    const auto t0 = Clock::now();
    server_->Signal(SIGTERM);
    *status = server_->WaitExit(limit);
    if (*status == -1) {
      server_->Kill9();
      return -1;
    }
    return MsSince(t0);
  }
  void Report(const std::string& key, double value) {
    RecordProperty(key, std::to_string(value));
    printf("[ figure ] %s = %.1f\n", key.c_str(), value);
  }
  // The shutdown steps must appear in this order (reverse of startup).
  void ExpectOrderlyShutdownLog(const std::string& log) {
    const char* steps[] = {"SIGTERM: shutting down",
                           "shutdown: control socket closed",
                           "shutdown: rpc server stopped",
                           "shutdown: localio: local socket closed",
                           "shutdown: localio: record withdrawn",
                           "shutdown: file cache closed",
                           "shutdown: handle resolver closed",
                           "shutdown: exports torn down",
                           "shutdown: release queue drained and stopped",
                           "exiting with status 0"};
    size_t pos = 0;
    for (const char* step : steps) {
      const size_t at = log.find(step, pos);
      EXPECT_NE(at, std::string::npos) << "missing or out of order: " << step << "\n" << log;
      if (at != std::string::npos) pos = at;
    }
  }

  TempDir root_;
  std::unique_ptr<ServerProcess> server_;
  std::string rootfh_, bigfh_;
};

// Six writers (FILE_SYNC pieces, and UNSTABLE pieces made stable by COMMIT), two
// readers keeping eight 1 MiB READs in flight each, and a CREATE/REMOVE cycle, then
// SIGTERM in the middle of it.
TEST_F(ShutdownTest, SigtermUnderLoadIsOrderlyBoundedAndKeepsEveryAcknowledgedWrite) {
  StartServer({});
  constexpr int kWriters = 6, kReaders = 2;
  std::atomic<bool> stop{false};
  std::atomic<long> served{0};
  // acked[w]: the pieces of writer w that the server acknowledged as stable.
  std::vector<std::vector<int>> acked(kWriters);
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      WireConn c;
      if (!c.Connect(server_->nfs_port())) return;
      Nfs3Wire n(&c);
      std::string fh;
      if (n.Create(rootfh_, "w" + std::to_string(w), 0644, &fh) != kNfs3Ok) return;
      std::vector<int> unstable;  // written UNSTABLE, not yet committed
      std::string unstable_verf;
      for (int i = 0; !stop.load(); ++i) {
        const bool sync = i % 2 == 0;
        uint32_t committed = 0;
        std::string verf;
        if (n.Write(fh, uint64_t(i) * kPiece, PieceData(w, i), sync ? kFileSync : kUnstable,
                    nullptr, &committed, &verf) != kNfs3Ok)
          return;  // the server is going away
        ++served;
        if (sync) {
          if (committed == kFileSync) acked[w].push_back(i);
          continue;
        }
        if (!unstable.empty() && verf != unstable_verf) unstable.clear();  // restarted?
        unstable_verf = verf;
        unstable.push_back(i);
        if (unstable.size() < 3) continue;
        // COMMIT: its reply carries the verifier; only the same one makes them stable.
        std::string commit_verf;
        if (n.Commit(fh, &commit_verf) != kNfs3Ok) return;
        ++served;
        if (commit_verf == unstable_verf)
          acked[w].insert(acked[w].end(), unstable.begin(), unstable.end());
        unstable.clear();
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&] {
      WireConn c;
      if (!c.Connect(server_->nfs_port())) return;
      AuthSys root;
      uint32_t xid = 0x5000;
      while (!stop.load()) {
        for (int k = 0; k < 8; ++k) {
          std::string call = WireConn::CallMessage(
              ++xid, kNfsProg, 3, NFS3_READ,
              XdrOut().Opaque(bigfh_).U64(uint64_t(k % 4) * kOneMiB).U32(kOneMiB).bytes(),
              &root);
          if (!c.SendRecord(call)) return;
        }
        for (int k = 0; k < 8; ++k) {
          if (!c.RecvRecord(15000)) return;
          ++served;
        }
      }
    });
  }
  threads.emplace_back([&] {
    WireConn c;
    if (!c.Connect(server_->nfs_port())) return;
    Nfs3Wire n(&c);
    for (int i = 0; !stop.load(); ++i) {
      std::string fh;
      const std::string name = "m" + std::to_string(i % 16);
      if (n.Create(rootfh_, name, 0644, &fh) != kNfs3Ok) return;
      if (n.Remove(rootfh_, name) != kNfs3Ok) return;
      served += 2;
    }
  });

  // SIGTERM once the load is well under way (a loaded ASan run needs longer): after
  // kLoadBeforeSigterm requests, and 100 more, so that every kind is in flight.
  constexpr long kLoadBeforeSigterm = 200;
  WaitUntil([&] { return served.load() >= kLoadBeforeSigterm; }, milliseconds(30000));
  const long at_threshold = served.load();
  WaitUntil([&] { return served.load() >= at_threshold + 100; }, milliseconds(10000));
  const long served_before = served.load();
  int status = 0;
  const double ms = TermAndWait(milliseconds(20000), &status);
  stop.store(true);
  for (auto& t : threads) t.join();

  ASSERT_GE(ms, 0) << "localnfsd did not exit within 20 s of SIGTERM\n" << server_->StderrText();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  EXPECT_FALSE(server_->SanitizerReported());
  EXPECT_GE(served_before, kLoadBeforeSigterm) << "the load never got going";
  // Bounded: well under the 10 s drain timeout — the load here always drains.
  EXPECT_LT(ms, 8000);
  Report("requests_served_before_sigterm", served_before);
  Report("sigterm_to_exit_under_load_ms", ms);
  const std::string log = server_->StderrText();
  ExpectOrderlyShutdownLog(log);
  EXPECT_NE(log.find("rpc: stop: "), std::string::npos) << log;
  EXPECT_EQ(log.find("drain timed out"), std::string::npos) << log;

  size_t pieces = 0;
  for (int w = 0; w < kWriters; ++w) {
    const std::string disk = ReadFile(root_.Sub("w" + std::to_string(w)));
    for (int i : acked[w]) {
      ++pieces;
      ASSERT_GE(disk.size(), (size_t(i) + 1) * kPiece) << "writer " << w << " piece " << i;
      ASSERT_TRUE(disk.compare(size_t(i) * kPiece, kPiece, PieceData(w, i)) == 0)
          << "writer " << w << " piece " << i << " acknowledged but not on disk";
    }
  }
  EXPECT_GT(pieces, 0u);
  Report("acknowledged_pieces_checked", pieces);
}

// A client that sends 1 MiB READs and never reads a reply keeps reply bytes unsent
// forever: the drain gives up after --drain-timeout, and the shutdown still completes
// in order with exit 0.
TEST_F(ShutdownTest, SigtermWithAClientThatNeverReadsIsBoundedByTheDrainTimeout) {
  StartServer({"--drain-timeout", "2"});
  WireConn stuck;
  ASSERT_TRUE(stuck.Connect(server_->nfs_port()));
  AuthSys root;
  std::string burst;
  for (uint32_t k = 0; k < 64; ++k) {
    std::string call = WireConn::CallMessage(
        0x7000 + k, kNfsProg, 3, NFS3_READ,
        XdrOut().Opaque(bigfh_).U64(0).U32(kOneMiB).bytes(), &root);
    XdrOut mark;
    mark.U32(0x80000000u | static_cast<uint32_t>(call.size()));
    burst += mark.bytes() + call;
  }
  ASSERT_TRUE(stuck.SendAll(burst));
  // SIGTERM once the replies fill the socket: the server holds reply bytes it cannot
  // hand over (several 1 MiB replies: more than the socket buffers take).
  EXPECT_TRUE(WaitUntil(
      [&] { return server_->StatusNumber("/rpc/reply_bytes_held").value_or(0) >= 4 * kOneMiB; },
      milliseconds(10000)))
      << server_->StatusJson();
  int status = 0;
  const double ms = TermAndWait(milliseconds(20000), &status);
  ASSERT_GE(ms, 0) << "localnfsd did not exit within 20 s of SIGTERM\n" << server_->StderrText();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "wait status " << status;
  EXPECT_FALSE(server_->SanitizerReported());
  const std::string log = server_->StderrText();
  EXPECT_NE(log.find("drain timed out after 2s"), std::string::npos) << log;
  EXPECT_GE(ms, 1900);  // it did wait for the drain ...
  EXPECT_LT(ms, 6000);  // ... and not much longer
  ExpectOrderlyShutdownLog(log);
  Report("sigterm_to_exit_with_stuck_client_ms", ms);
}

}  // namespace
}  // namespace localnfs::testing
