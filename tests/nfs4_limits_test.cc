// tests/nfs4_limits_test.cc — hostile NFSv4.1 clients against a real localnfsd, through
// real TCP sockets (limits_test.cc is the NFSv3 side): a client that pipelines 1 MiB
// READ COMPOUNDs (also on slots it does not have, and on sequence ids it repeats) and
// never reads a reply; floods of EXCHANGE_ID, of confirmed clients, of CREATE_SESSION
// and of connections bound to one session; floods of OPEN (open owners, files) and LOCK
// (lock owners); malformed COMPOUNDs (a 4 GiB tag, a huge op count, huge opaque and
// array lengths, records cut short or declared larger than the server takes).
//
// Each test checks the bound the server documents (server/nfs4/state.h,
// open_state.h, rpc/server.h) and the error a client gets beyond it, that the server
// stays up, and that a separate well-behaved NFSv4.1 client and an NFSv3 client keep
// being answered. Figures (the server's RSS from /proc/PID/status, its open file
// descriptors from /proc/PID/fd) are test properties and go to stdout. Every negative
// check waits for the event that would falsify it or measures a state after the
// flood's last reply; the sleeps left are measurement windows (RSS growth over time).
//
// Thread-safety: one test thread per test.
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/nfs4_wire.h"
#include "tests/support/localnfsd.h"
#include "tests/support/proc_status.h"
#include "tests/support/wait.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// As limits_test.cc: generous for a loaded 2-core CI machine under ASan.
constexpr double kMaxLatencyMs = 1500;
constexpr uint32_t kOneMiB = 1u << 20;
// A READ whose COMPOUND reply fits the session's ca_maxresponsesize (1 MiB, what
// Nfs4Wire::Establish asks) with its headers.
constexpr uint32_t kBigRead = kOneMiB - 4096;
constexpr uint32_t kNfs4Prog = 100003;

// The server's documented bounds (server/nfs4/state.h, open_state.h).
constexpr int kMaxClients = 1024;
constexpr int kMaxSessionsPerClient = 8;
constexpr int kMaxStatesPerClient = 1 << 14;
constexpr int kMaxLockFilesPerClient = 1024;
constexpr int kMaxLockFiles = 8192;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}



std::string Framed(const std::string& body) {
  XdrOut mark;
  mark.U32(0x80000000u | static_cast<uint32_t>(body.size()));
  return mark.bytes() + body;
}

// An RPC call of NFSv4 COMPOUND with `args` (COMPOUND4args bytes) as root.
std::string CompoundCall(uint32_t xid, const std::string& args) {
  AuthSys root;
  return WireConn::CallMessage(xid, kNfs4Prog, 4, 1, args, &root);
}

// The status of op `op` in a reply (NFS4ERR_SERVERFAULT when absent).
nfsstat4 StatusOf(const Nfs4Reply& r, nfs_opnum4 op, int nth = 0) {
  const nfs_resop4* res = r.Find(op, nth);
  if (res == nullptr) return NFS4ERR_SERVERFAULT;
  nfsstat4 s;
  memcpy(&s, &res->nfs_resop4_u, sizeof(s));
  return s;
}

nfs_argop4 ExchangeIdOp(const std::string& owner) {
  nfs_argop4 op;
  memset(&op, 0, sizeof(op));
  op.argop = OP_EXCHANGE_ID;
  EXCHANGE_ID4args& e = op.nfs_argop4_u.opexchange_id;
  memcpy(e.eia_clientowner.co_verifier, "verifier", NFS4_VERIFIER_SIZE);
  e.eia_clientowner.co_ownerid.co_ownerid_len = static_cast<u_int>(owner.size());
  e.eia_clientowner.co_ownerid.co_ownerid_val = const_cast<char*>(owner.data());
  e.eia_state_protect.spa_how = SP4_NONE;
  return op;
}

nfs_argop4 CreateSessionOp(uint64_t clientid, uint32_t sequence, uint32_t slots) {
  nfs_argop4 op;
  memset(&op, 0, sizeof(op));
  op.argop = OP_CREATE_SESSION;
  CREATE_SESSION4args& c = op.nfs_argop4_u.opcreate_session;
  c.csa_clientid = clientid;
  c.csa_sequence = sequence;
  c.csa_fore_chan_attrs = {0, 1 << 20, 1 << 20, 4096, 16, slots, {0, nullptr}};
  c.csa_back_chan_attrs = {0, 4096, 4096, 0, 2, 1, {0, nullptr}};
  c.csa_cb_program = 0x40000000;
  return op;
}

// One NFSv4.1 client with a connection and a session of its own.
struct V4Client {
  WireConn conn;
  Nfs4Wire wire{&conn};
  bool Start(int port, const std::string& owner, uint32_t slots = 1, uint32_t max_ops = 16) {
    return conn.Connect(port) && wire.Establish(owner, slots, max_ops);
  }
};

class Nfs4LimitsTest : public ::testing::Test {
 protected:
  // `nofile` > 0: the server runs with that RLIMIT_NOFILE (soft and hard: it raises its
  // soft limit to the hard one), set by a shell that then execs it. Every test here
  // measures the server's RSS: under ASan, freed memory sits in a quarantine (256 MiB
  // by default) and counts in RSS, so the server gets a small one (as limits_test's
  // StartServerMeasuringMemory; appended, the suite's other ASAN_OPTIONS stay; a build
  // without ASan ignores the variable).
  void StartServer(std::vector<std::string> extra = {}, int nofile = 0) {
    ASSERT_TRUE(WriteFile(root_.Sub("file"), "hello"));
    ASSERT_TRUE(WriteFile(root_.Sub("big"), std::string(kOneMiB, 'b')));
    ServerOptions opts;
    if (nofile > 0) {
      opts.binary = "/bin/sh";
      opts.args = {"-c", "ulimit -n " + std::to_string(nofile) + " && exec \"$0\" \"$@\"",
                   LocalnfsdPath()};
    }
    opts.args.insert(opts.args.end(), {"--export", root_.path() + ":rw,no_root_squash"});
    opts.args.insert(opts.args.end(), extra.begin(), extra.end());
    server_ = std::make_unique<ServerProcess>(std::move(opts));
    const char* asan = getenv("ASAN_OPTIONS");
    const std::string saved = asan ? asan : "";
    setenv("ASAN_OPTIONS",
           (saved.empty() ? "" : saved + ":").append("quarantine_size_mb=8").c_str(), 1);
    const bool started = server_->Start();
    if (asan) {
      setenv("ASAN_OPTIONS", saved.c_str(), 1);
    } else {
      unsetenv("ASAN_OPTIONS");
    }
    ASSERT_TRUE(started);
    V4Client probe;
    ASSERT_TRUE(probe.Start(server_->nfs_port(), "nfs4-limits-probe")) << probe.wire.error();
    ASSERT_EQ(probe.wire.LookupPath(root_.path(), &dirfh_), NFS4_OK);
    ASSERT_EQ(probe.wire.LookupPath(root_.path() + "/big", &bigfh_), NFS4_OK);
  }
  void Report(const std::string& key, double value) {
    RecordProperty(key, std::to_string(value));
    printf("[ figure ] %s = %.3f\n", key.c_str(), value);
  }

  // A fresh NFSv4.1 client (its own connection, client record and session) opens
  // "file" and reads it back, and an NFSv3 client mounts and reads it: each within
  // kMaxLatencyMs per call.
  void ExpectOthersServed(const std::string& what) {
    static int n = 0;
    auto t0 = Clock::now();
    V4Client v4;
    ASSERT_TRUE(v4.Start(server_->nfs_port(), "nfs4-limits-other-" + std::to_string(++n)))
        << what << ": " << v4.wire.error();
    std::string fh, data;
    stateid4 sid;
    ASSERT_EQ(v4.wire.OpenFile(dirfh_, "file", OPEN4_SHARE_ACCESS_READ, false, &fh, &sid),
              NFS4_OK)
        << what;
    ASSERT_EQ(v4.wire.ReadFile(fh, sid, 0, 100, &data), NFS4_OK) << what;
    EXPECT_EQ(data, "hello") << what;
    EXPECT_EQ(v4.wire.CloseFile(fh, sid), NFS4_OK) << what;
    const double v4_ms = MsSince(t0) / 6;  // EXCHANGE_ID … CLOSE: six calls
    t0 = Clock::now();
    WireConn c3;
    ASSERT_TRUE(c3.Connect(server_->nfs_port()));
    Nfs3Wire n3(&c3);
    WireConn m;
    ASSERT_TRUE(m.Connect(server_->mount_port()));
    std::string root3, file3;
    ASSERT_EQ(Nfs3Wire(&m).Mount(root_.path(), &root3), 0u) << what;
    ASSERT_EQ(n3.Lookup(root3, "file", &file3), kNfs3Ok) << what;
    ASSERT_EQ(n3.Read(file3, 0, 100, &data), kNfs3Ok) << what;
    EXPECT_EQ(data, "hello") << what;
    const double v3_ms = MsSince(t0) / 3;
    EXPECT_LT(v4_ms, kMaxLatencyMs) << what;
    EXPECT_LT(v3_ms, kMaxLatencyMs) << what;
    Report(what + "_v4_ms_per_call", v4_ms);
    Report(what + "_v3_ms_per_call", v3_ms);
  }

  // The lock-file bounds the server chose for its RLIMIT_NOFILE (open_state.h
  // Options::ForFileLimit), from its log line.
  struct LockBounds {
    int total = 0, per_client = 0, nofile = 0;
  };
  LockBounds LockFileBounds() {
    LockBounds b;
    EXPECT_TRUE(server_->WaitForStderr("nfs4: at most "));
    const std::string err = server_->StderrText();
    const size_t at = err.find("nfs4: at most ");
    if (at == std::string::npos ||
        sscanf(err.c_str() + at, "nfs4: at most %d lock files, %d per client (RLIMIT_NOFILE %d)",
               &b.total, &b.per_client, &b.nofile) != 3) {
      ADD_FAILURE() << "no lock-file bounds in the log";
    }
    return b;
  }

  TempDir root_;
  std::unique_ptr<ServerProcess> server_;
  std::string dirfh_, bigfh_;
};

// Sends `calls` (each an RPC message) pipelined, then reads as many replies: their
// COMPOUND results by xid (a missing reply is an absent entry).
std::map<uint32_t, std::string> PipelineAndCollect(WireConn& c,
                                                   const std::vector<std::string>& calls) {
  std::string stream;
  for (const std::string& call : calls) stream += Framed(call);
  std::map<uint32_t, std::string> out;
  std::thread sender([&] { c.SendAll(stream); });
  for (size_t i = 0; i < calls.size(); ++i) {
    std::optional<std::string> rec = c.RecvRecord(20000);
    if (!rec) break;
    RpcReply r = WireConn::ParseReply(*rec);
    out[r.xid] = r.results;
  }
  sender.join();
  return out;
}

// ---- 1. A client that pipelines 1 MiB READs and never reads

// A NFSv4.1 client pipelines 1 000 COMPOUNDs of SEQUENCE + PUTFH + READ ~1 MiB on its
// session — on its 16 slots in turn, on 4 slots it was never given, every tenth on the
// sequence id of the one before — and reads no reply. The server holds at most its
// per-connection reply memory for it (rpc/server.h: 16 MiB, each COMPOUND reserving
// what its READs may answer), so its RSS stays within limits_test's bounds, another
// NFSv4.1 client and an NFSv3 client are served meanwhile, and once the hog is gone
// the memory is given back.
TEST_F(Nfs4LimitsTest, NonReadingClientPipeliningReadCompoundsStaysBounded) {
  // A 32 MiB server-wide cap: the hog's 16 MiB are half of it, which arms the server's
  // trim (rpc/server.h: freed reply memory goes back to the system once reply memory
  // falls back to little), so "back near the baseline" is what is checked below.
  constexpr long kCapMiB = 32;
  StartServer({"--max-reply-bytes", std::to_string(kCapMiB << 20)});
  V4Client hog;
  ASSERT_TRUE(hog.Start(server_->nfs_port(), "nfs4-limits-hog", 16)) << hog.wire.error();
  const long rss_before = RssKiB(server_->pid());
  constexpr int kCalls = 1000, kSlots = 16, kBogusSlots = 4;
  const stateid4 anonymous{};
  std::vector<uint32_t> seqid(kSlots + kBogusSlots, 0);
  seqid[0] = 1;  // Establish's RECLAIM_COMPLETE
  std::string stream;
  for (int i = 0; i < kCalls; ++i) {
    const uint32_t slot = static_cast<uint32_t>(i % (kSlots + kBogusSlots));
    if (i % 10 != 9) ++seqid[slot];  // every tenth repeats the slot's last sequence id
    Nfs4Ops ops;
    ops.Sequence(hog.wire.sessionid(), slot, std::max<uint32_t>(seqid[slot], 1), kSlots - 1)
        .PutFh(bigfh_)
        .Read(anonymous, 0, kBigRead);
    stream += Framed(CompoundCall(0x9000000 + i, Nfs4Wire::EncodeArgs(ops)));
  }
  int small = 64 * 1024;
  setsockopt(hog.conn.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  timeval tv{5, 0};  // the server may stop reading us: never block the test on it
  setsockopt(hog.conn.fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  hog.conn.SendAll(stream);  // may stop short when the server no longer reads: fine
  const long rss_loaded = SettledRssKiB(server_->pid(), milliseconds(6000));
  ExpectOthersServed("with_v4_non_reader");
  // The growth over one more second of the stall (a rate: the time is the measure).
  std::this_thread::sleep_for(milliseconds(1000));
  const long rss_later = RssKiB(server_->pid());
  Report("v4_non_reader_rss_kib_before", rss_before);
  Report("v4_non_reader_rss_kib_loaded", rss_loaded);
  Report("v4_non_reader_rss_kib_later", rss_later);
  EXPECT_LT(rss_loaded - rss_before, 48 * 1024) << "v4 reply memory is not bounded";
  EXPECT_LT(rss_later - rss_loaded, 32 * 1024) << "memory still grows while stalled";
  // The hog was answered (not just dropped): its first reply is a whole READ.
  std::optional<std::string> first = hog.conn.RecvRecord(10000);
  ASSERT_TRUE(first.has_value());
  EXPECT_GT(first->size(), kBigRead) << "the first reply is not the READ's";
  hog.conn.Close();
  long rss_after = 0;
  EXPECT_TRUE(WaitUntil(
      [&] {
        rss_after = RssKiB(server_->pid());
        return rss_after < rss_before + 16 * 1024;  // ASan: its allocator keeps ~9 MiB
      },
      std::chrono::seconds(15), milliseconds(200)))
      << "memory not given back after the hog left: " << rss_after << " KiB";
  Report("v4_non_reader_rss_kib_after_close", rss_after);
  ExpectOthersServed("after_v4_non_reader");
}

// Many connections, each a session's client pipelining 32 such COMPOUNDs without
// reading: every COMPOUND's reservation counts against the server-wide cap
// (--max-reply-bytes 64 MiB here), so the peak RSS stays under the cap + 128 MiB as
// limits_test's NFSv3 READs do.
TEST_F(Nfs4LimitsTest, ManyNonReadingV4ConnectionsStayUnderTheServerWideReplyCap) {
  constexpr int kConns = 48, kCallsPerConn = 32;
  constexpr long kCapMiB = 64;
  StartServer({"--max-reply-bytes", std::to_string(kCapMiB << 20)});
  std::vector<std::unique_ptr<V4Client>> hogs;
  for (int i = 0; i < kConns; ++i) {
    hogs.push_back(std::make_unique<V4Client>());
    ASSERT_TRUE(
        hogs.back()->Start(server_->nfs_port(), "nfs4-limits-hogs-" + std::to_string(i), 16))
        << hogs.back()->wire.error();
  }
  const long rss_before = RssKiB(server_->pid());
  const stateid4 anonymous{};
  for (int i = 0; i < kConns; ++i) {
    V4Client& h = *hogs[i];
    std::string stream;
    for (int j = 0; j < kCallsPerConn; ++j) {
      Nfs4Ops ops;
      const uint32_t slot = j % 16;  // slot 0 did Establish's RECLAIM_COMPLETE
      ops.Sequence(h.wire.sessionid(), slot, 1 + j / 16 + (slot == 0 ? 1 : 0), 15)
          .PutFh(bigfh_)
          .Read(anonymous, 0, kBigRead);
      stream += Framed(CompoundCall(0xa000000 + j, Nfs4Wire::EncodeArgs(ops)));
    }
    int small = 4096;
    setsockopt(h.conn.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    timeval tv{5, 0};
    setsockopt(h.conn.fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    h.conn.SendAll(stream);
  }
  EXPECT_TRUE(server_->WaitForStderr("--max-reply-bytes", std::chrono::seconds(20)))
      << "no log line for the reached cap";
  const long rss_loaded = SettledRssKiB(server_->pid(), milliseconds(10000));
  ExpectOthersServed("with_48_v4_non_readers");
  const long peak = StatusKiB(server_->pid(), "VmHWM:");
  Report("v4_non_readers_rss_kib_before", rss_before);
  Report("v4_non_readers_rss_kib_loaded", rss_loaded);
  Report("v4_non_readers_rss_kib_peak", peak);
  EXPECT_LT(peak, rss_before + (kCapMiB + 128) * 1024)
      << "v4 reply memory exceeds the server-wide cap of " << kCapMiB << " MiB";
  hogs.clear();
  long rss_after = 0;
  EXPECT_TRUE(WaitUntil(
      [&] {
        rss_after = RssKiB(server_->pid());
        return rss_after < rss_before + 32 * 1024;
      },
      std::chrono::seconds(15), milliseconds(200)))
      << "memory not given back after the close: " << rss_after << " KiB";
  Report("v4_non_readers_rss_kib_after_close", rss_after);
}

// ---- 2. Client records, sessions, connections

// 1 100 EXCHANGE_IDs of distinct owners, none confirmed (more than the 1 024 records
// the table holds): each is answered NFS4_OK — the oldest unconfirmed record makes
// room, as knfsd's laundromat would discard it — the memory stays flat, and a client
// that then establishes itself is served.
TEST_F(Nfs4LimitsTest, ExchangeIdFloodOfDistinctOwnersIsBounded) {
  StartServer();
  const long rss_before = RssKiB(server_->pid());
  constexpr int kOwners = kMaxClients + 76;
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  // Two rounds of new owners: the second must not need more memory than the first
  // left (the table is full of unconfirmed records after the first; each new one
  // replaces the oldest).
  long rss_round[2] = {0, 0};
  std::map<uint32_t, std::string> replies;
  for (int round = 0; round < 2; ++round) {
    std::vector<std::string> owners, calls;
    for (int i = 0; i < kOwners; ++i) {
      owners.push_back("flood-owner-" + std::to_string(round) + "-" + std::to_string(i));
    }
    for (int i = 0; i < kOwners; ++i) {
      Nfs4Ops ops;
      ops.Raw(ExchangeIdOp(owners[i]));
      calls.push_back(CompoundCall(0xb000000 + round * 0x10000 + i, Nfs4Wire::EncodeArgs(ops)));
    }
    // The first of the round alone, answered before the others are sent: pipelined
    // calls may run in any order on the server, and the check below needs this one to
    // be the round's oldest record.
    replies = PipelineAndCollect(c, {calls[0]});
    std::map<uint32_t, std::string> rest =
        PipelineAndCollect(c, std::vector<std::string>(calls.begin() + 1, calls.end()));
    replies.merge(rest);
    ASSERT_EQ(replies.size(), static_cast<size_t>(kOwners)) << "not every EXCHANGE_ID answered";
    int ok = 0;
    for (auto& [xid, results] : replies) {
      Nfs4Reply r;
      ASSERT_TRUE(Nfs4Wire::DecodeResults(results, &r));
      if (r.status() == NFS4_OK) ++ok;
    }
    EXPECT_EQ(ok, kOwners) << "unconfirmed records must make room for new ones";
    rss_round[round] = RssKiB(server_->pid());
  }
  // The oldest unconfirmed records went: CREATE_SESSION on the first of the last
  // round's is refused (kOwners > kMaxClients: it was replaced by the last ones).
  {
    Nfs4Reply first;
    ASSERT_TRUE(Nfs4Wire::DecodeResults(replies[0xb010000], &first));
    const EXCHANGE_ID4resok& e = first.res.resarray.resarray_val[0]
                                     .nfs_resop4_u.opexchange_id.EXCHANGE_ID4res_u.eir_resok4;
    Nfs4Ops ops;
    ops.Raw(CreateSessionOp(e.eir_clientid, e.eir_sequenceid, 4));
    Nfs4Wire w(&c);
    Nfs4Reply r;
    ASSERT_TRUE(w.CompoundNoSequence(ops, &r)) << r.error;
    EXPECT_EQ(r.status(), NFS4ERR_STALE_CLIENTID) << "the oldest unconfirmed record was kept";
  }
  ExpectOthersServed("after_exchange_id_flood");
  Report("exchange_id_flood_rss_kib_before", rss_before);
  Report("exchange_id_flood_rss_kib_after_1100", rss_round[0]);
  Report("exchange_id_flood_rss_kib_after_2200", rss_round[1]);
  // (ASan's allocator keeps more of what it freed; the figures without it: < 1 MiB.)
  EXPECT_LT(rss_round[0] - rss_before, 32 * 1024);
  EXPECT_LT(rss_round[1] - rss_round[0], 8 * 1024) << "records beyond the bound still cost";
}

// Confirmed clients with live leases fill the table (1 024): the next EXCHANGE_ID of a
// new owner is NFS4ERR_DELAY — what knfsd answered at its client limit (v6.0's
// nfs4_max_clients: alloc_client fails, nfsd4_exchange_id returns nfserr_jukebox); a
// live client's state cannot be taken from it, and DELAY makes a real client retry —
// and it gets in as soon as one of them goes (DESTROY_CLIENTID here; a lease that runs
// out makes a courtesy client that gives way the same).
TEST_F(Nfs4LimitsTest, ConfirmedClientFloodAnswersDelayUntilOneGoes) {
  StartServer();
  const long rss_before = RssKiB(server_->pid());
  // The probe of StartServer() holds one record already.
  const int kFlood = kMaxClients - 1;
  std::vector<std::string> owners, calls;
  for (int i = 0; i < kFlood; ++i) owners.push_back("confirmed-owner-" + std::to_string(i));
  for (int i = 0; i < kFlood; ++i) {
    Nfs4Ops ops;
    ops.Raw(ExchangeIdOp(owners[i]));
    calls.push_back(CompoundCall(0xc000000 + i, Nfs4Wire::EncodeArgs(ops)));
  }
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  auto replies = PipelineAndCollect(c, calls);
  ASSERT_EQ(replies.size(), static_cast<size_t>(kFlood));
  std::vector<uint64_t> ids;
  calls.clear();
  for (int i = 0; i < kFlood; ++i) {
    Nfs4Reply r;
    ASSERT_TRUE(Nfs4Wire::DecodeResults(replies[0xc000000 + i], &r));
    ASSERT_EQ(r.status(), NFS4_OK) << "EXCHANGE_ID " << i;
    const EXCHANGE_ID4resok& e =
        r.res.resarray.resarray_val[0].nfs_resop4_u.opexchange_id.EXCHANGE_ID4res_u.eir_resok4;
    ids.push_back(e.eir_clientid);
    Nfs4Ops ops;
    ops.Raw(CreateSessionOp(e.eir_clientid, e.eir_sequenceid, 16));
    calls.push_back(CompoundCall(0xd000000 + i, Nfs4Wire::EncodeArgs(ops)));
  }
  replies = PipelineAndCollect(c, calls);
  ASSERT_EQ(replies.size(), static_cast<size_t>(kFlood));
  std::vector<std::string> sessions(kFlood);
  for (int i = 0; i < kFlood; ++i) {
    Nfs4Reply r;
    ASSERT_TRUE(Nfs4Wire::DecodeResults(replies[0xd000000 + i], &r));
    ASSERT_EQ(r.status(), NFS4_OK) << "CREATE_SESSION " << i;
    sessions[i].assign(r.res.resarray.resarray_val[0]
                           .nfs_resop4_u.opcreate_session.CREATE_SESSION4res_u.csr_resok4
                           .csr_sessionid,
                       NFS4_SESSIONID_SIZE);
  }
  // The table is full of live clients: a new owner waits.
  WireConn lc;
  ASSERT_TRUE(lc.Connect(server_->nfs_port()));
  Nfs4Wire late(&lc);
  EXPECT_FALSE(late.Establish("late-client"));
  EXPECT_NE(late.error().find("EXCHANGE_ID:  status 10008"), std::string::npos)
      << "not NFS4ERR_DELAY: " << late.error();
  // A client of the table is still served (its session works).
  {
    Nfs4Ops ops;
    ops.Sequence(sessions[0], 0, 1, 0).PutRootFh();
    Nfs4Wire w(&c);
    Nfs4Reply r;
    ASSERT_TRUE(w.CompoundNoSequence(ops, &r)) << r.error;
    EXPECT_EQ(r.status(), NFS4_OK);
  }
  // One goes: the next new owner gets in.
  {
    nfs_argop4 ds;
    memset(&ds, 0, sizeof(ds));
    ds.argop = OP_DESTROY_SESSION;
    memcpy(ds.nfs_argop4_u.opdestroy_session.dsa_sessionid, sessions[1].data(),
           NFS4_SESSIONID_SIZE);
    Nfs4Ops ops;
    ops.Raw(ds);
    Nfs4Wire w(&c);
    Nfs4Reply r;
    ASSERT_TRUE(w.CompoundNoSequence(ops, &r)) << r.error;
    ASSERT_EQ(r.status(), NFS4_OK);
    nfs_argop4 dc;
    memset(&dc, 0, sizeof(dc));
    dc.argop = OP_DESTROY_CLIENTID;
    dc.nfs_argop4_u.opdestroy_clientid.dca_clientid = ids[1];
    Nfs4Ops ops2;
    ops2.Raw(dc);
    Nfs4Reply r2;
    ASSERT_TRUE(w.CompoundNoSequence(ops2, &r2)) << r2.error;
    ASSERT_EQ(r2.status(), NFS4_OK);
  }
  EXPECT_TRUE(late.Establish("late-client")) << late.error();
  std::string fh;
  EXPECT_EQ(late.LookupPath(root_.path() + "/file", &fh), NFS4_OK);
  const long rss_after = RssKiB(server_->pid());
  Report("confirmed_flood_rss_kib_before", rss_before);
  Report("confirmed_flood_rss_kib_after", rss_after);
  EXPECT_LT(rss_after - rss_before, 64 * 1024);
}

// Clients with the longest owners (1 KiB) each send RECLAIM_COMPLETE, which writes
// their record to --state-dir (client_records.h: the file is rewritten and fsync'd on
// every change): the file stays bounded (max_clients records) and another client is
// served meanwhile.
TEST_F(Nfs4LimitsTest, RecordFloodKeepsTheStateFileBoundedAndOthersServed) {
  StartServer();
  constexpr int kClients = 512;
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  std::vector<std::string> owners, calls;
  for (int i = 0; i < kClients; ++i) {
    std::string o = "record-flood-" + std::to_string(i) + "-";
    o.resize(1024, 'o');
    owners.push_back(o);
  }
  for (int i = 0; i < kClients; ++i) {
    Nfs4Ops ops;
    ops.Raw(ExchangeIdOp(owners[i]));
    calls.push_back(CompoundCall(0x7000000 + i, Nfs4Wire::EncodeArgs(ops)));
  }
  auto replies = PipelineAndCollect(c, calls);
  ASSERT_EQ(replies.size(), static_cast<size_t>(kClients));
  calls.clear();
  for (int i = 0; i < kClients; ++i) {
    Nfs4Reply r;
    ASSERT_TRUE(Nfs4Wire::DecodeResults(replies[0x7000000 + i], &r));
    ASSERT_EQ(r.status(), NFS4_OK);
    const EXCHANGE_ID4resok& e =
        r.res.resarray.resarray_val[0].nfs_resop4_u.opexchange_id.EXCHANGE_ID4res_u.eir_resok4;
    Nfs4Ops ops;
    ops.Raw(CreateSessionOp(e.eir_clientid, e.eir_sequenceid, 1));
    calls.push_back(CompoundCall(0x7100000 + i, Nfs4Wire::EncodeArgs(ops)));
  }
  replies = PipelineAndCollect(c, calls);
  ASSERT_EQ(replies.size(), static_cast<size_t>(kClients));
  calls.clear();
  for (int i = 0; i < kClients; ++i) {
    Nfs4Reply r;
    ASSERT_TRUE(Nfs4Wire::DecodeResults(replies[0x7100000 + i], &r));
    ASSERT_EQ(r.status(), NFS4_OK);
    const std::string sid(r.res.resarray.resarray_val[0]
                              .nfs_resop4_u.opcreate_session.CREATE_SESSION4res_u.csr_resok4
                              .csr_sessionid,
                          NFS4_SESSIONID_SIZE);
    Nfs4Ops ops;
    nfs_argop4 rc;
    memset(&rc, 0, sizeof(rc));
    rc.argop = OP_RECLAIM_COMPLETE;
    ops.Sequence(sid, 0, 1, 0).Raw(rc);
    calls.push_back(CompoundCall(0x7200000 + i, Nfs4Wire::EncodeArgs(ops)));
  }
  const auto t0 = Clock::now();
  std::map<uint32_t, std::string> done;
  std::thread flood([&] { done = PipelineAndCollect(c, calls); });
  // Another client meanwhile (its calls are timed; the flood is running: its replies
  // take longer than these).
  ExpectOthersServed("during_record_flood");
  flood.join();
  Report("record_flood_ms", MsSince(t0));
  ASSERT_EQ(done.size(), static_cast<size_t>(kClients));
  for (auto& [xid, results] : done) {
    Nfs4Reply r;
    ASSERT_TRUE(Nfs4Wire::DecodeResults(results, &r));
    EXPECT_EQ(r.status(), NFS4_OK) << xid;
  }
  struct stat st{};
  ASSERT_EQ(stat((server_->state_dir() + "/nfs4-clients").c_str(), &st), 0);
  Report("record_flood_file_bytes", st.st_size);
  EXPECT_LT(st.st_size, (kMaxClients + 1) * (1024 + 16) + 64);
}

// CREATE_SESSION beyond a client's 8 sessions is NFS4ERR_NOSPC (RFC 8881 §18.36.3 lists
// it). Clients that each take 8 sessions of 64 slots exhaust the sessions' reply-cache
// budget (64 MiB): later sessions get fewer slots, down to one — as knfsd's
// nfsd4_get_drc_mem gives one slot rather than fail — so a new client still gets a
// session and is served.
TEST_F(Nfs4LimitsTest, SessionFloodIsBoundedPerClientAndDoesNotLockOutANewClient) {
  StartServer();
  const long rss_before = RssKiB(server_->pid());
  constexpr int kClients = 40;  // 40 × 8 × 64 slots × 4 KiB = 80 MiB asked
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  Nfs4Wire w(&c);
  int nospc = 0, created = 0, fewer_slots = 0;
  for (int i = 0; i < kClients; ++i) {
    const std::string owner = "session-flood-" + std::to_string(i);
    Nfs4Ops ex;
    ex.Raw(ExchangeIdOp(owner));
    Nfs4Reply er;
    ASSERT_TRUE(w.CompoundNoSequence(ex, &er)) << er.error;
    ASSERT_EQ(er.status(), NFS4_OK);
    const EXCHANGE_ID4resok& e =
        er.res.resarray.resarray_val[0].nfs_resop4_u.opexchange_id.EXCHANGE_ID4res_u.eir_resok4;
    uint32_t seq = e.eir_sequenceid;
    for (int s = 0; s < kMaxSessionsPerClient + 2; ++s) {
      Nfs4Ops cs;
      cs.Raw(CreateSessionOp(e.eir_clientid, seq, 64));
      Nfs4Reply r;
      ASSERT_TRUE(w.CompoundNoSequence(cs, &r)) << r.error;
      if (r.status() == NFS4_OK) {
        ++seq;
        ++created;
        const CREATE_SESSION4resok& ok =
            r.res.resarray.resarray_val[0].nfs_resop4_u.opcreate_session.CREATE_SESSION4res_u
                .csr_resok4;
        if (ok.csr_fore_chan_attrs.ca_maxrequests < 64) ++fewer_slots;
        EXPECT_GE(ok.csr_fore_chan_attrs.ca_maxrequests, 1u);
      } else {
        EXPECT_EQ(r.status(), NFS4ERR_NOSPC) << "client " << i << " session " << s;
        EXPECT_GE(s, kMaxSessionsPerClient) << "refused below the per-client bound";
        ++nospc;
      }
    }
  }
  EXPECT_EQ(created, kClients * kMaxSessionsPerClient);
  EXPECT_EQ(nospc, kClients * 2);
  EXPECT_GT(fewer_slots, 0) << "the reply-cache budget was never reached";
  Report("session_flood_sessions", created);
  Report("session_flood_sessions_with_fewer_slots", fewer_slots);
  ExpectOthersServed("after_session_flood");
  const long rss_after = RssKiB(server_->pid());
  Report("session_flood_rss_kib_before", rss_before);
  Report("session_flood_rss_kib_after", rss_after);
  // The cache budget (64 MiB) + one slot for each session beyond it, at most.
  EXPECT_LT(rss_after - rss_before, 96 * 1024);
}

// 300 connections bind themselves to one session (BIND_CONN_TO_SESSION) and use it:
// each is answered, the server remembers at most 16 of them (state.h), and the session's
// own client and others are served meanwhile.
TEST_F(Nfs4LimitsTest, ManyConnectionsBindingToOneSessionAreServed) {
  StartServer();
  V4Client owner;
  ASSERT_TRUE(owner.Start(server_->nfs_port(), "bind-flood", 2)) << owner.wire.error();
  const long rss_before = RssKiB(server_->pid());
  constexpr int kConns = 300;
  std::vector<std::unique_ptr<WireConn>> conns;
  int bound = 0, used = 0;
  for (int i = 0; i < kConns; ++i) {
    conns.push_back(std::make_unique<WireConn>());
    ASSERT_TRUE(conns.back()->Connect(server_->nfs_port())) << i;
    nfs_argop4 b;
    memset(&b, 0, sizeof(b));
    b.argop = OP_BIND_CONN_TO_SESSION;
    memcpy(b.nfs_argop4_u.opbind_conn_to_session.bctsa_sessid, owner.wire.sessionid().data(),
           NFS4_SESSIONID_SIZE);
    b.nfs_argop4_u.opbind_conn_to_session.bctsa_dir = CDFC4_FORE_OR_BOTH;
    Nfs4Ops ops;
    ops.Raw(b);
    Nfs4Wire w(conns.back().get());
    Nfs4Reply r;
    ASSERT_TRUE(w.CompoundNoSequence(ops, &r)) << i << ": " << r.error;
    if (r.status() == NFS4_OK) ++bound;
    // SEQUENCE on the bound connection: slot 1 of the session, in turn.
    Nfs4Ops seq;
    seq.Sequence(owner.wire.sessionid(), 1, static_cast<uint32_t>(i + 1), 1).PutRootFh();
    Nfs4Reply sr;
    ASSERT_TRUE(w.CompoundNoSequence(seq, &sr)) << i << ": " << sr.error;
    if (sr.status() == NFS4_OK) ++used;
  }
  EXPECT_EQ(bound, kConns);
  EXPECT_EQ(used, kConns);
  std::string fh;
  EXPECT_EQ(owner.wire.LookupPath(root_.path(), &fh), NFS4_OK) << "the session's own client";
  ExpectOthersServed("with_300_bound_connections");
  conns.clear();
  const long rss_after = RssKiB(server_->pid());
  Report("bind_flood_rss_kib_before", rss_before);
  Report("bind_flood_rss_kib_after", rss_after);
  EXPECT_LT(rss_after - rss_before, 32 * 1024);
}

// ---- 3. Opens and locks

// One client opens one file with 16 Ki + 99 distinct open owners (99 OPENs a COMPOUND):
// the 16 385th is NFS4ERR_NOSPC (open_state.h: 16 Ki stateids per client), the
// server holds no file descriptor per open, and another client still opens the file.
// Then 600 distinct files created and opened: an open holds no descriptor of its own,
// the file cache's (--file-cache-size 256 here) are all there are.
TEST_F(Nfs4LimitsTest, OpenFloodIsBoundedPerClientWithoutFileDescriptors) {
  constexpr int kFileCache = 256;
  StartServer({"--file-cache-size", std::to_string(kFileCache)});
  const pid_t pid = server_->pid();
  const int fds_before = FdCount(pid);
  const long rss_before = RssKiB(pid);
  V4Client hog;
  ASSERT_TRUE(hog.Start(server_->nfs_port(), "open-flood", 1, 200)) << hog.wire.error();
  constexpr int kPerCompound = 99;  // SEQUENCE + 99 × (PUTFH + OPEN) = 199 ops
  int opened = 0;
  nfsstat4 refused = NFS4_OK;
  const auto t0 = Clock::now();
  for (int batch = 0; refused == NFS4_OK && batch < kMaxStatesPerClient / kPerCompound + 2;
       ++batch) {
    Nfs4Ops ops;
    for (int i = 0; i < kPerCompound; ++i) {
      ops.PutFh(dirfh_).Open(hog.wire.clientid(),
                             "open-owner-" + std::to_string(batch * kPerCompound + i), "file",
                             OPEN4_SHARE_ACCESS_READ, OPEN4_SHARE_DENY_NONE, false);
    }
    Nfs4Reply r;
    ASSERT_TRUE(hog.wire.Compound(ops, &r)) << r.error;
    for (int i = 0; i < kPerCompound; ++i) {
      const nfsstat4 s = StatusOf(r, OP_OPEN, i);
      if (s == NFS4_OK) {
        ++opened;
      } else {
        refused = s;
        break;
      }
    }
  }
  Report("open_flood_ms", MsSince(t0));
  Report("open_flood_opened", opened);
  EXPECT_EQ(opened, kMaxStatesPerClient);
  EXPECT_EQ(refused, NFS4ERR_NOSPC);
  const int fds_opens = FdCount(pid);
  Report("open_flood_fds_before", fds_before);
  Report("open_flood_fds_with_16k_opens", fds_opens);
  EXPECT_LT(fds_opens - fds_before, 64) << "opens hold file descriptors";
  ExpectOthersServed("with_16k_opens");

  // Many files: 600 created and opened by one owner.
  V4Client files;
  ASSERT_TRUE(files.Start(server_->nfs_port(), "open-flood-files", 1, 200)) << files.wire.error();
  constexpr int kFiles = 600;
  int created = 0;
  for (int batch = 0; batch * kPerCompound < kFiles; ++batch) {
    Nfs4Ops ops;
    const int n = std::min(kPerCompound, kFiles - batch * kPerCompound);
    for (int i = 0; i < n; ++i) {
      ops.PutFh(dirfh_).Open(files.wire.clientid(), "one-owner",
                             "f" + std::to_string(batch * kPerCompound + i),
                             OPEN4_SHARE_ACCESS_BOTH, OPEN4_SHARE_DENY_NONE, true);
    }
    Nfs4Reply r;
    ASSERT_TRUE(files.wire.Compound(ops, &r)) << r.error;
    ASSERT_EQ(r.status(), NFS4_OK) << "batch " << batch;
    created += n;
  }
  EXPECT_EQ(created, kFiles);
  const int fds_files = FdCount(pid);
  Report("open_flood_fds_with_600_files", fds_files);
  EXPECT_LT(fds_files - fds_before, kFileCache + 64)
      << "opens of many files hold file descriptors beyond the file cache's";
  ExpectOthersServed("with_600_open_files");
  const long rss_after = RssKiB(pid);
  Report("open_flood_rss_kib_before", rss_before);
  Report("open_flood_rss_kib_after", rss_after);
  EXPECT_LT(rss_after - rss_before, 64 * 1024);  // ~17 Ki stateids of ~250 bytes and more
}

// Lock owners each take a lock stateid, which holds a lock file (an fd): one client
// gets its share (open_state.h: 1 024, less when RLIMIT_NOFILE is low), the next is
// NFS4ERR_DELAY; clients together get the server-wide bound (8 192 at most); the
// server's file descriptors grow by that much and no more, a new client is still served
// (its connection accepted, its open answered), and closing the opens gives every lock
// file back.
TEST_F(Nfs4LimitsTest, LockFloodIsBoundedPerClientAndServerWide) {
  StartServer();
  const pid_t pid = server_->pid();
  const int fds_before = FdCount(pid);
  const LockBounds bounds = LockFileBounds();
  ASSERT_GT(bounds.per_client, 0);
  EXPECT_LE(bounds.total, kMaxLockFiles);
  EXPECT_LE(bounds.per_client, kMaxLockFilesPerClient);
  Report("lock_flood_bound_total", bounds.total);
  Report("lock_flood_bound_per_client", bounds.per_client);
  const int kClients = bounds.total / bounds.per_client + 1;
  constexpr int kPerCompound = 198;  // SEQUENCE + PUTFH + 198 LOCKs
  std::vector<std::unique_ptr<V4Client>> clients;
  std::vector<std::string> fhs(kClients);
  std::vector<stateid4> opens(kClients);
  int total = 0;
  const auto t0 = Clock::now();
  for (int c = 0; c < kClients; ++c) {
    clients.push_back(std::make_unique<V4Client>());
    V4Client& v = *clients.back();
    ASSERT_TRUE(v.Start(server_->nfs_port(), "lock-flood-" + std::to_string(c), 1, 200))
        << v.wire.error();
    ASSERT_EQ(v.wire.OpenFile(dirfh_, "big", OPEN4_SHARE_ACCESS_BOTH, false, &fhs[c], &opens[c]),
              NFS4_OK);
    int locked = 0;
    nfsstat4 refused = NFS4_OK;
    for (int batch = 0; refused == NFS4_OK; ++batch) {
      Nfs4Ops ops;
      ops.PutFh(fhs[c]);
      for (int i = 0; i < kPerCompound; ++i) {
        const uint64_t n = static_cast<uint64_t>(batch) * kPerCompound + i;
        // Distinct ranges: a lock owner per byte of the client's own 64 KiB.
        ops.LockNewOwner(v.wire.clientid(), "lock-owner-" + std::to_string(n), opens[c],
                         WRITE_LT, static_cast<uint64_t>(c) * 65536 + n, 1);
      }
      Nfs4Reply r;
      ASSERT_TRUE(v.wire.Compound(ops, &r)) << r.error;
      for (int i = 0; i < kPerCompound; ++i) {
        const nfsstat4 s = StatusOf(r, OP_LOCK, i);
        if (s == NFS4_OK) {
          ++locked;
        } else {
          refused = s;
          break;
        }
      }
    }
    EXPECT_EQ(refused, NFS4ERR_DELAY) << "client " << c;
    const int want = std::min(bounds.per_client, bounds.total - total);
    EXPECT_EQ(locked, want) << "client " << c;
    total += locked;
  }
  Report("lock_flood_ms", MsSince(t0));
  Report("lock_flood_lock_stateids", total);
  const int fds_locked = FdCount(pid);
  Report("lock_flood_fds_before", fds_before);
  Report("lock_flood_fds_with_all_locks", fds_locked);
  EXPECT_EQ(total, bounds.total);
  EXPECT_LE(fds_locked - fds_before, bounds.total + kClients + 64)
      << "more file descriptors than lock stateids";
  ExpectOthersServed("with_all_lock_stateids");
  for (int c = 0; c < kClients; ++c) {
    EXPECT_EQ(clients[c]->wire.CloseFile(fhs[c], opens[c]), NFS4_OK) << c;
  }
  int fds_after = 0;
  EXPECT_TRUE(WaitUntil(
      [&] {
        fds_after = FdCount(pid);
        return fds_after - fds_before < 64;
      },
      std::chrono::seconds(10)))
      << "lock files not given back: " << fds_after << " fds";
  Report("lock_flood_fds_after_close", fds_after);
}

// The same flood against a server started with few file descriptors (RLIMIT_NOFILE
// 2048, as a service manager may set): the lock files get what the connections and
// caches leave (an eighth of the limit here), so after the flood a new client is still
// accepted and served — before, 2 048 lock files left the server unable to accept
// anyone — and every LOCK beyond is NFS4ERR_DELAY.
TEST_F(Nfs4LimitsTest, LockFloodUnderALowFileLimitLeavesDescriptorsForOthers) {
  constexpr int kLimit = 2048;
  rlimit ours{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &ours), 0);
  if (ours.rlim_max < static_cast<rlim_t>(kLimit)) {
    GTEST_SKIP() << "RLIMIT_NOFILE's hard limit is below " << kLimit;
  }
  StartServer({}, kLimit);
  const pid_t pid = server_->pid();
  const LockBounds bounds = LockFileBounds();
  EXPECT_EQ(bounds.nofile, kLimit);
  EXPECT_LE(bounds.total, kLimit / 4) << "lock files may take most fds";
  ASSERT_GT(bounds.per_client, 0);
  const int kClients = bounds.total / bounds.per_client + 2;
  constexpr int kPerCompound = 198;
  std::vector<std::unique_ptr<V4Client>> clients;
  int total = 0, delayed = 0;
  for (int c = 0; c < kClients; ++c) {
    clients.push_back(std::make_unique<V4Client>());
    V4Client& v = *clients.back();
    ASSERT_TRUE(v.Start(server_->nfs_port(), "low-fd-lock-" + std::to_string(c), 1, 200))
        << v.wire.error();
    std::string fh;
    stateid4 open;
    ASSERT_EQ(v.wire.OpenFile(dirfh_, "big", OPEN4_SHARE_ACCESS_BOTH, false, &fh, &open),
              NFS4_OK);
    nfsstat4 refused = NFS4_OK;
    for (int batch = 0; refused == NFS4_OK; ++batch) {
      Nfs4Ops ops;
      ops.PutFh(fh);
      for (int i = 0; i < kPerCompound; ++i) {
        const uint64_t n = static_cast<uint64_t>(batch) * kPerCompound + i;
        ops.LockNewOwner(v.wire.clientid(), "lock-owner-" + std::to_string(n), open, WRITE_LT,
                         static_cast<uint64_t>(c) * 65536 + n, 1);
      }
      Nfs4Reply r;
      ASSERT_TRUE(v.wire.Compound(ops, &r)) << r.error;
      for (int i = 0; i < kPerCompound && refused == NFS4_OK; ++i) {
        const nfsstat4 s = StatusOf(r, OP_LOCK, i);
        if (s == NFS4_OK) {
          ++total;
        } else {
          refused = s;
        }
      }
    }
    EXPECT_EQ(refused, NFS4ERR_DELAY) << "client " << c;
    if (refused == NFS4ERR_DELAY) ++delayed;
  }
  EXPECT_EQ(total, bounds.total);
  EXPECT_EQ(delayed, kClients);
  Report("low_fd_lock_stateids", total);
  Report("low_fd_fds", FdCount(pid));
  ExpectOthersServed("low_fd_after_lock_flood");
  // More new clients are still accepted and answered.
  std::vector<std::unique_ptr<V4Client>> more;
  for (int i = 0; i < 32; ++i) {
    more.push_back(std::make_unique<V4Client>());
    ASSERT_TRUE(more.back()->Start(server_->nfs_port(), "low-fd-more-" + std::to_string(i)))
        << i << ": " << more.back()->wire.error();
  }
}

// ---- 4. Malformed COMPOUNDs


// Each malformed call gets a reply (GARBAGE_ARGS, or a COMPOUND error) or its
// connection closed — never a crash, never an allocation of what a length claims:
// a tag of 4 GiB, an op count of 2^32-1 and one of 200 with one op present, a WRITE
// whose data claims 4 GiB, a GETATTR bitmap of 2^30 words, a TEST_STATEID of 2^28
// stateids, a record cut short, a record mark of 2 GiB.
TEST_F(Nfs4LimitsTest, MalformedCompoundsAreAnsweredOrClosedWithoutBigAllocations) {
  StartServer();
  V4Client v;
  ASSERT_TRUE(v.Start(server_->nfs_port(), "malformed")) << v.wire.error();
  const pid_t pid = server_->pid();
  const long vm_before = PeakVirtualKiB(pid);
  const long rss_before = RssKiB(pid);
  uint32_t seq = 1;
  // SEQUENCE's bytes for the next slot-0 request of v's session.
  auto sequence = [&] {
    XdrOut o;
    o.U32(OP_SEQUENCE).Fixed(v.wire.sessionid()).U32(++seq).U32(0).U32(0).U32(0);
    return o.bytes();
  };
  auto header = [](uint32_t tag_len, uint32_t numops) {
    XdrOut o;
    o.U32(tag_len).U32(1).U32(numops);
    return o.bytes();
  };
  struct Case {
    std::string name;
    std::string args;  // COMPOUND4args bytes (possibly not even that)
  };
  std::vector<Case> cases;
  cases.push_back({"tag_4GiB", header(0xfffffffcu, 1) + std::string(64, 'x')});
  cases.push_back({"numops_2^32-1", header(0, 0xffffffffu) + sequence()});
  cases.push_back({"numops_200_one_present", header(0, 200) + sequence()});
  {
    XdrOut w;
    w.U32(OP_PUTFH).Opaque(bigfh_).U32(OP_WRITE).Fixed(std::string(16, '\0')).U64(0).U32(
        FILE_SYNC4).U32(0xfffffff0u);
    cases.push_back({"write_data_4GiB", header(0, 3) + sequence() + w.bytes() + "abcd"});
  }
  {
    XdrOut g;
    g.U32(OP_PUTFH).Opaque(bigfh_).U32(OP_GETATTR).U32(0x3fffffffu).U32(1).U32(2);
    cases.push_back({"getattr_bitmap_2^30_words", header(0, 3) + sequence() + g.bytes()});
  }
  {
    XdrOut t;
    t.U32(OP_TEST_STATEID).U32(0x0fffffffu).Fixed(std::string(16, '\0'));
    cases.push_back({"test_stateid_2^28", header(0, 2) + sequence() + t.bytes()});
  }
  {
    XdrOut p;
    p.U32(OP_PUTFH).U32(0xffffff00u);  // beyond NFS4_FHSIZE
    cases.push_back({"putfh_huge", header(0, 2) + sequence() + p.bytes()});
  }
  {
    XdrOut l;
    l.U32(OP_LOOKUP).U32(0x7ffffff0u).Fixed("name");
    cases.push_back({"lookup_name_2GiB", header(0, 3) + sequence() + XdrOut().U32(OP_PUTROOTFH).bytes() +
                                             l.bytes()});
  }
  int replied = 0, closed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& k = cases[i];
    WireConn c;
    ASSERT_TRUE(c.Connect(server_->nfs_port()));
    ASSERT_TRUE(c.SendRecord(CompoundCall(0xe000000 + i, k.args))) << k.name;
    std::optional<std::string> rec = c.RecvRecord(10000);
    if (!rec) {
      EXPECT_TRUE(c.WaitClosedByPeer(5000)) << k.name << ": neither a reply nor a close";
      ++closed;
      continue;
    }
    ++replied;
    RpcReply r = WireConn::ParseReply(*rec);
    ASSERT_TRUE(r.ok) << k.name;
    EXPECT_EQ(r.xid, 0xe000000 + i) << k.name;
    if (r.accept_stat == 0) {  // SUCCESS: the COMPOUND failed with a status
      Nfs4Reply res;
      ASSERT_TRUE(Nfs4Wire::DecodeResults(r.results, &res)) << k.name;
      EXPECT_NE(res.status(), NFS4_OK) << k.name;
      printf("%s: COMPOUND status %d, %u results\n", k.name.c_str(), res.status(),
             res.res.resarray.resarray_len);
    } else {
      EXPECT_EQ(r.accept_stat, 4u) << k.name << ": not GARBAGE_ARGS";
      printf("%s: accept_stat %u\n", k.name.c_str(), r.accept_stat);
    }
  }
  // Half a record, then the client goes.
  {
    WireConn c;
    ASSERT_TRUE(c.Connect(server_->nfs_port()));
    Nfs4Ops ops;
    ops.Sequence(v.wire.sessionid(), 0, ++seq, 0).PutFh(bigfh_).GetFh();
    const std::string rec = Framed(CompoundCall(0xe100000, Nfs4Wire::EncodeArgs(ops)));
    ASSERT_TRUE(c.SendAll(rec.substr(0, rec.size() / 2)));
  }
  // A record mark that declares 2 GiB: the server closes the connection (its record
  // limit is 1 MiB) instead of waiting for, or allocating, the record.
  {
    WireConn c;
    ASSERT_TRUE(c.Connect(server_->nfs_port()));
    XdrOut mark;
    mark.U32(0x80000000u | 0x7ffffff0u);
    ASSERT_TRUE(c.SendAll(mark.bytes() + CompoundCall(0xe200000, header(0, 0))));
    EXPECT_TRUE(c.WaitClosedByPeer(5000)) << "a 2 GiB record was not refused";
  }
  Report("malformed_replied", replied);
  Report("malformed_closed", closed);
  ExpectOthersServed("after_malformed");
  // v's session still works: every malformed call was refused while its ops were
  // decoded, before its SEQUENCE ran, so slot 0 still expects what v sends next.
  std::string fh;
  EXPECT_EQ(v.wire.LookupPath(root_.path(), &fh), NFS4_OK);
  const long vm_after = PeakVirtualKiB(pid);
  const long rss_after = RssKiB(pid);
  Report("malformed_vm_peak_kib_before", vm_before);
  Report("malformed_vm_peak_kib_after", vm_after);
  Report("malformed_rss_kib_before", rss_before);
  Report("malformed_rss_kib_after", rss_after);
  EXPECT_LT(rss_after - rss_before, 16 * 1024);
  if (vm_before != 0) {
    EXPECT_LT(vm_after - vm_before, 512 * 1024) << "a declared length was allocated";
  }
}

}  // namespace
}  // namespace localnfs::testing
