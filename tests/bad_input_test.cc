// tests/bad_input_test.cc — malformed and hostile input over raw TCP against a real
// localnfsd: framing errors close only that connection, call-header errors get the
// exact RPC reply, forged/stale handles get BADHANDLE/STALE, and nothing reaches a
// file outside the export. After every test a fresh client must still get NULL and
// GETATTR answered (TearDown), and under ASan the server must exit cleanly.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <thread>

#include "gtest/gtest.h"
#include "tests/support/localnfsd.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

using std::chrono::milliseconds;

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteFile(root_.Sub("file"), "hello world"));
    ASSERT_EQ(mkdir(root_.Sub("sub").c_str(), 0755), 0);
    server_ = std::make_unique<ServerProcess>(
        std::vector<std::string>{"--export", root_.path() + ":rw,no_root_squash"});
    ASSERT_TRUE(server_->Start());
    WireConn c;
    ASSERT_TRUE(c.Connect(server_->nfs_port()));
    Nfs3Wire n(&c);
    ASSERT_EQ(n.Mount(root_.path(), &rootfh_), 0u) << n.last_rpc().error;
    ASSERT_EQ(n.Getattr(rootfh_, &root_attr_), kNfs3Ok);
  }
  void TearDown() override {
    if (!server_ || !server_->running()) return;
    ExpectServerStillServes();
  }
  // A fresh client: NULL and GETATTR of the root work.
  void ExpectServerStillServes() {
    WireConn c;
    ASSERT_TRUE(c.Connect(server_->nfs_port())) << "server no longer accepts connections";
    Nfs3Wire n(&c);
    EXPECT_EQ(n.Null(), 0u) << "NULL from a fresh client: " << n.last_rpc().error;
    Fattr a;
    EXPECT_EQ(n.Getattr(rootfh_, &a), kNfs3Ok) << n.last_rpc().error;
    EXPECT_EQ(a.fileid, root_attr_.fileid);
  }
  RpcReply RawCall(uint32_t prog, uint32_t vers, uint32_t proc, const std::string& args,
                   uint32_t rpcvers = 2) {
    WireConn c;
    EXPECT_TRUE(c.Connect(server_->nfs_port()));
    AuthSys root;
    return c.Call(prog, vers, proc, args, &root, rpcvers);
  }

  TempDir root_;
  std::unique_ptr<ServerProcess> server_;
  std::string rootfh_;
  Fattr root_attr_;
};

// --- framing -----------------------------------------------------------------------

TEST_F(BadInputTest, MultiFragmentRecordIsAccepted) {
  // Positive control for the framing tests: a NULL call split into three fragments.
  std::string msg = WireConn::CallMessage(7, kNfsProg, 3, NFS3_NULL, "", nullptr);
  ASSERT_EQ(msg.size(), 40u);
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  std::string wire;
  auto frag = [&](const std::string& part, bool last) {
    XdrOut m;
    m.U32((last ? 0x80000000u : 0) | static_cast<uint32_t>(part.size()));
    wire += m.bytes() + part;
  };
  frag(msg.substr(0, 12), false);
  frag(msg.substr(12, 20), false);
  frag(msg.substr(32), true);
  ASSERT_TRUE(c.SendAll(wire));
  auto rec = c.RecvRecord();
  ASSERT_TRUE(rec.has_value()) << "no reply to a multi-fragment call";
  RpcReply r = WireConn::ParseReply(*rec);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.xid, 7u);
  EXPECT_EQ(r.accept_stat, kSuccess);
}

TEST_F(BadInputTest, GarbageBytesCloseTheConnection) {
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  // "GET " as a record mark announces a ~1.2 GB non-last fragment.
  ASSERT_TRUE(c.SendAll("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  EXPECT_TRUE(c.WaitClosedByPeer(5000)) << "garbage bytes did not close the connection";
}

TEST_F(BadInputTest, GarbageInsideAValidRecordGetsNoCrash) {
  // Valid framing, random message body: the server may drop it or close, but must not
  // reply with success nor die.
  std::mt19937 rng(1);
  for (int i = 0; i < 50; i++) {
    std::string body(4 + 4 * (rng() % 64), '\0');
    for (auto& ch : body) ch = static_cast<char>(rng());
    WireConn c;
    ASSERT_TRUE(c.Connect(server_->nfs_port()));
    ASSERT_TRUE(c.SendRecord(body));
    if (auto rec = c.RecvRecord(300)) {
      RpcReply r = WireConn::ParseReply(*rec);
      EXPECT_FALSE(r.ok && r.reply_stat == 0 && r.accept_stat == kSuccess)
          << "random body answered with SUCCESS: " << Hex(body);
    }
  }
}

TEST_F(BadInputTest, RecordLengthOf2GiBClosesTheConnection) {
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  ASSERT_TRUE(c.SendAll(std::string("\xff\xff\xff\xff", 4)));  // last fragment, 2^31-1
  EXPECT_TRUE(c.WaitClosedByPeer(5000));
}

TEST_F(BadInputTest, FragmentsAnnouncing4GiBCloseTheConnection) {
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  // Two non-last fragments of 2^31-1 bytes each (4 GiB in total), the first with a
  // little data: the server must refuse on the header, not after buffering.
  std::string hdr("\x7f\xff\xff\xff", 4);
  ASSERT_TRUE(c.SendAll(hdr + std::string(4096, 'x')));
  EXPECT_TRUE(c.WaitClosedByPeer(5000)) << "a 4 GiB record was not refused";
}

TEST_F(BadInputTest, TruncatedFragmentThenCloseLeavesServerServing) {
  for (int i = 0; i < 20; i++) {
    WireConn c;
    ASSERT_TRUE(c.Connect(server_->nfs_port()));
    std::string msg = WireConn::CallMessage(9, kNfsProg, 3, NFS3_NULL, "", nullptr);
    XdrOut mark;
    mark.U32(0x80000000u | 100);  // announces 100 bytes, sends 40
    ASSERT_TRUE(c.SendAll(mark.bytes() + msg));
    EXPECT_FALSE(c.RecvRecord(200).has_value()) << "answered an incomplete record";
  }
  ExpectServerStillServes();
}

TEST_F(BadInputTest, ClientVanishingHalfWayThroughA1MiBWriteLeavesFileUntouched) {
  ASSERT_TRUE(WriteFile(root_.Sub("target"), ""));
  std::string fh;
  {
    WireConn c;
    ASSERT_TRUE(c.Connect(server_->nfs_port()));
    Nfs3Wire n(&c);
    ASSERT_EQ(n.Lookup(rootfh_, "target", &fh), kNfs3Ok);
  }
  std::string data(1 << 20, 'w');
  XdrOut args;
  args.Opaque(fh).U64(0).U32(static_cast<uint32_t>(data.size())).U32(2).Opaque(data);
  AuthSys cred;
  std::string msg = WireConn::CallMessage(11, kNfsProg, 3, NFS3_WRITE, args.bytes(), &cred);
  XdrOut mark;
  mark.U32(0x80000000u | static_cast<uint32_t>(msg.size()));
  std::string wire = mark.bytes() + msg;
  for (int i = 0; i < 10; i++) {
    WireConn c;
    ASSERT_TRUE(c.Connect(server_->nfs_port()));
    ASSERT_TRUE(c.SendAll(wire.substr(0, wire.size() / 2)));
    c.Close();
  }
  // And once with the whole request but closing before the reply is read.
  {
    WireConn c;
    ASSERT_TRUE(c.Connect(server_->nfs_port()));
    ASSERT_TRUE(c.SendAll(wire.substr(0, wire.size() - 1)));
    c.Close();
  }
  ExpectServerStillServes();
  struct stat st;
  ASSERT_EQ(stat(root_.Sub("target").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0) << "an incomplete WRITE record was executed";
}

// --- call header -------------------------------------------------------------------

TEST_F(BadInputTest, UnknownProgramGetsProgUnavail) {
  RpcReply r = RawCall(200999, 1, 0, "");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.reply_stat, 0u);
  EXPECT_EQ(r.accept_stat, kProgUnavail);
}

TEST_F(BadInputTest, WrongNfsVersionGetsProgMismatch3To4) {
  for (uint32_t vers : {2u, 5u}) {
    RpcReply r = RawCall(kNfsProg, vers, 0, "");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.reply_stat, 0u);
    EXPECT_EQ(r.accept_stat, kProgMismatch) << "vers " << vers;
    EXPECT_EQ(r.low, 3u);
    EXPECT_EQ(r.high, 4u);  // NFSv3 and NFSv4 (4.1, 4.2)
  }
  RpcReply m = RawCall(kMountProg, 9, 0, "");
  ASSERT_TRUE(m.ok) << m.error;
  EXPECT_EQ(m.accept_stat, kProgMismatch);
  EXPECT_LE(m.low, 3u);
  EXPECT_EQ(m.high, 3u);
}

TEST_F(BadInputTest, UnknownProcedureGetsProcUnavail) {
  for (uint32_t proc : {22u, 1000u, 0xffffffffu}) {
    RpcReply r = RawCall(kNfsProg, 3, proc, "");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.accept_stat, kProcUnavail) << "proc " << proc;
  }
  RpcReply m = RawCall(kMountProg, 3, 6, "");
  ASSERT_TRUE(m.ok) << m.error;
  EXPECT_EQ(m.accept_stat, kProcUnavail);
}

TEST_F(BadInputTest, UndecodableArgumentsGetGarbageArgs) {
  // LOOKUP with only a handle (no name).
  RpcReply r = RawCall(kNfsProg, 3, NFS3_LOOKUP, XdrOut().Opaque(rootfh_).bytes());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.accept_stat, kGarbageArgs);
  // GETATTR with a handle length beyond NFS3_FHSIZE (64) and beyond the record.
  r = RawCall(kNfsProg, 3, NFS3_GETATTR, XdrOut().U32(1000).bytes());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.accept_stat, kGarbageArgs);
  r = RawCall(kNfsProg, 3, NFS3_GETATTR, XdrOut().Opaque(std::string(65, 'a')).bytes());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.accept_stat, kGarbageArgs) << "a 65-byte nfs_fh3 violates the XDR bound";
  // WRITE whose opaque data is shorter than announced.
  XdrOut w;
  w.Opaque(rootfh_).U64(0).U32(100).U32(0).U32(100).Fixed("short");
  r = RawCall(kNfsProg, 3, NFS3_WRITE, w.bytes());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.accept_stat, kGarbageArgs);
  // MNT with a path string longer than the record.
  r = RawCall(kMountProg, 3, 1, XdrOut().U32(5000).bytes());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.accept_stat, kGarbageArgs);
}

TEST_F(BadInputTest, RpcVersion3GetsRpcMismatch) {
  RpcReply r = RawCall(kNfsProg, 3, 0, "", /*rpcvers=*/3);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.reply_stat, 1u) << "must be MSG_DENIED";
  EXPECT_EQ(r.reject_stat, kRpcMismatch);
  EXPECT_EQ(r.low, 2u);
  EXPECT_EQ(r.high, 2u);
}

TEST_F(BadInputTest, UnknownAuthFlavorIsDeniedWithAuthError) {
  XdrOut x;
  x.U32(77).U32(0).U32(2).U32(kNfsProg).U32(3).U32(NFS3_GETATTR);
  x.U32(6 /*RPCSEC_GSS*/).Opaque("xxxx").U32(0).U32(0);
  x.Opaque(rootfh_);
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  ASSERT_TRUE(c.SendRecord(x.bytes()));
  auto rec = c.RecvRecord();
  ASSERT_TRUE(rec.has_value());
  RpcReply r = WireConn::ParseReply(*rec);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.reply_stat, 1u);
  EXPECT_EQ(r.reject_stat, kAuthError);
  // A malformed AUTH_SYS body (machine name length beyond the credential).
  XdrOut y;
  y.U32(78).U32(0).U32(2).U32(kNfsProg).U32(3).U32(NFS3_GETATTR);
  y.U32(1).Opaque(XdrOut().U32(0).U32(500).bytes()).U32(0).U32(0);
  y.Opaque(rootfh_);
  ASSERT_TRUE(c.SendRecord(y.bytes()));
  rec = c.RecvRecord();
  if (rec) {  // a reply is optional here; if there is one it must be a denial
    r = WireConn::ParseReply(*rec);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.reply_stat, 1u);
    EXPECT_EQ(r.reject_stat, kAuthError);
  }
}

// --- handles -----------------------------------------------------------------------

bool IsBadOrStale(uint32_t st) { return st == kNfs3ErrBadhandle || st == kNfs3ErrStale; }

TEST_F(BadInputTest, RandomHandlesGetBadhandleOrStale) {
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  Nfs3Wire n(&c);
  std::mt19937 rng(7);
  for (int i = 0; i < 200; i++) {
    std::string fh(1 + rng() % 64, '\0');
    for (auto& ch : fh) ch = static_cast<char>(rng());
    uint32_t st = n.Getattr(fh);
    EXPECT_TRUE(IsBadOrStale(st)) << "GETATTR of random handle " << Hex(fh) << " -> " << st;
  }
  EXPECT_TRUE(IsBadOrStale(n.Getattr(""))) << "empty handle";
}

TEST_F(BadInputTest, EveryFlippedByteOfARealHandleIsRejected) {
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  Nfs3Wire n(&c);
  std::string fh;
  ASSERT_EQ(n.Lookup(rootfh_, "file", &fh), kNfs3Ok);
  for (size_t i = 0; i < fh.size(); i++) {
    for (unsigned char mask : {0x01, 0x80}) {
      std::string bad = fh;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      std::string data;
      uint32_t st = n.Read(bad, 0, 100, &data);
      EXPECT_TRUE(IsBadOrStale(st))
          << "READ with byte " << i << " ^ " << int(mask) << " (" << Hex(bad) << ") -> " << st;
    }
  }
  // Truncated and extended handles.
  EXPECT_TRUE(IsBadOrStale(n.Getattr(fh.substr(0, fh.size() - 1))));
  if (fh.size() < 64) {
    EXPECT_TRUE(IsBadOrStale(n.Getattr(fh + '\0')));
  }
  // The real one still works.
  std::string data;
  ASSERT_EQ(n.Read(fh, 0, 100, &data), kNfs3Ok);
  EXPECT_EQ(data, "hello world");
}

TEST_F(BadInputTest, HandleOfAnExportRemovedBySighupReloadIsStale) {
  TempDir a, b, cfg("localnfs-cfg");
  ASSERT_TRUE(WriteFile(b.Sub("inb"), "in b"));
  std::string exports = cfg.Sub("exports");
  ASSERT_TRUE(WriteFile(exports, "# two exports\n" + a.path() + " *(rw,no_root_squash)\n" +
                                     b.path() + " 127.0.0.1(rw,no_root_squash)\n"));
  ServerProcess srv({"--exports", exports});
  ASSERT_TRUE(srv.Start());
  WireConn c;
  ASSERT_TRUE(c.Connect(srv.nfs_port()));
  Nfs3Wire n(&c);
  std::string afh, bfh, infh;
  ASSERT_EQ(n.Mount(a.path(), &afh), 0u);
  ASSERT_EQ(n.Mount(b.path(), &bfh), 0u);
  ASSERT_EQ(n.Lookup(bfh, "inb", &infh), kNfs3Ok);

  ASSERT_TRUE(WriteFile(exports, a.path() + " *(rw,no_root_squash)\n"));
  // SIGHUP, and the reload's "exports reloaded" line: the table is replaced by then.
  // On the SAME connection: connections stay up across a reload.
  ASSERT_TRUE(srv.Reload());
  const uint32_t st = n.Getattr(infh);
  EXPECT_EQ(st, kNfs3ErrStale) << "handle inside a removed export";
  EXPECT_EQ(n.Getattr(bfh), kNfs3ErrStale) << "root handle of a removed export";
  std::string tmp;
  EXPECT_NE(n.Mount(b.path(), &tmp), 0u) << "MNT of a removed export";
  EXPECT_EQ(n.Getattr(afh), kNfs3Ok) << "the remaining export still works";
  // A fresh connection sees the same.
  WireConn c2;
  ASSERT_TRUE(c2.Connect(srv.nfs_port()));
  Nfs3Wire n2(&c2);
  EXPECT_EQ(n2.Getattr(infh), kNfs3ErrStale);
  EXPECT_EQ(n2.Getattr(afh), kNfs3Ok);
  ASSERT_TRUE(srv.Stop());
}

TEST_F(BadInputTest, DotDotAtExportRootStaysAtRoot) {
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  Nfs3Wire n(&c);
  std::string up, up2, dot, subfh, subup;
  Fattr a;
  ASSERT_EQ(n.Lookup(rootfh_, "..", &up, &a), kNfs3Ok);
  Fattr g;
  ASSERT_EQ(n.Getattr(up, &g), kNfs3Ok);
  EXPECT_EQ(g.fileid, root_attr_.fileid) << "'..' of the export root left the export";
  ASSERT_EQ(n.Lookup(up, "..", &up2), kNfs3Ok);
  ASSERT_EQ(n.Getattr(up2, &g), kNfs3Ok);
  EXPECT_EQ(g.fileid, root_attr_.fileid);
  ASSERT_EQ(n.Lookup(rootfh_, ".", &dot), kNfs3Ok);
  ASSERT_EQ(n.Getattr(dot, &g), kNfs3Ok);
  EXPECT_EQ(g.fileid, root_attr_.fileid);
  ASSERT_EQ(n.Lookup(rootfh_, "sub", &subfh), kNfs3Ok);
  ASSERT_EQ(n.Lookup(subfh, "..", &subup), kNfs3Ok);
  ASSERT_EQ(n.Getattr(subup, &g), kNfs3Ok);
  EXPECT_EQ(g.fileid, root_attr_.fileid);
  // Names with a slash never walk anywhere.
  std::string x;
  EXPECT_NE(n.Lookup(rootfh_, "../" + std::string("etc"), &x), kNfs3Ok);
  EXPECT_NE(n.Lookup(rootfh_, "sub/..", &x), kNfs3Ok);
  EXPECT_NE(n.Lookup(rootfh_, "/etc", &x), kNfs3Ok);
}

TEST_F(BadInputTest, SymlinkPointingOutsideTheExportLeadsNowhere) {
  TempDir outside("localnfs-outside");
  ASSERT_TRUE(WriteFile(outside.Sub("secret"), "TOP SECRET"));
  ASSERT_EQ(symlink(outside.path().c_str(), root_.Sub("to-dir").c_str()), 0);
  ASSERT_EQ(symlink(outside.Sub("secret").c_str(), root_.Sub("to-file").c_str()), 0);
  ASSERT_EQ(symlink("../../../../../../../../etc/passwd", root_.Sub("rel").c_str()), 0);
  WireConn c;
  ASSERT_TRUE(c.Connect(server_->nfs_port()));
  Nfs3Wire n(&c);
  for (const char* name : {"to-dir", "to-file", "rel"}) {
    std::string fh, data, target;
    Fattr a;
    ASSERT_EQ(n.Lookup(rootfh_, name, &fh, &a), kNfs3Ok) << name;
    EXPECT_EQ(a.type, 5u /*NF3LNK*/) << name << ": LOOKUP must return the link itself";
    Fattr g;
    ASSERT_EQ(n.Getattr(fh, &g), kNfs3Ok);
    EXPECT_EQ(g.type, 5u);
    uint32_t st = n.Read(fh, 0, 4096, &data);
    EXPECT_NE(st, kNfs3Ok) << name << ": READ on a symlink handle succeeded";
    EXPECT_EQ(data.find("SECRET"), std::string::npos);
    EXPECT_EQ(data.find("root:"), std::string::npos);
    std::string child;
    EXPECT_NE(n.Lookup(fh, "secret", &child), kNfs3Ok) << name << ": LOOKUP through a symlink";
    EXPECT_NE(n.Write(fh, 0, "x", 2), kNfs3Ok);
    ASSERT_EQ(n.Readlink(fh, &target), kNfs3Ok);
  }
  EXPECT_EQ(ReadFile(outside.Sub("secret")), "TOP SECRET");
}

// --- IPv6 and command line -----------------------------------------------------------

TEST(BadInputCommandLine, ServesIpv6Loopback) {
  if (access("/proc/net/if_inet6", R_OK) != 0) GTEST_SKIP() << "no IPv6";
  TempDir root;
  ServerProcess srv(ServerOptions{.args = {"--export", root.path() + ":rw"}, .bind = "::1"});
  ASSERT_TRUE(srv.Start());
  WireConn c;
  ASSERT_TRUE(c.Connect(srv.nfs_port(), "::1"));
  Nfs3Wire n(&c);
  EXPECT_EQ(n.Null(), 0u);
  std::string fh;
  ASSERT_EQ(n.Mount(root.path(), &fh), 0u);
  EXPECT_EQ(n.Getattr(fh), kNfs3Ok);
  ASSERT_TRUE(srv.Stop());
}

int ExitCode(const RunResult& r) {
  return r.wstatus >= 0 && WIFEXITED(r.wstatus) ? WEXITSTATUS(r.wstatus) : -1;
}

TEST(BadInputCommandLine, MissingExportDirExits2NamingIt) {
  TempDir st("localnfs-state"), rt("localnfs-run");
  RunResult r = RunLocalnfsdToExit({"--export", "/nonexistent/localnfs-xyz", "--port", "0",
                                    "--mount-port", "0", "--bind", "127.0.0.1", "--state-dir",
                                    st.path(), "--runtime-dir", rt.path()},
                                   milliseconds(20000));
  EXPECT_EQ(ExitCode(r), 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("/nonexistent/localnfs-xyz"), std::string::npos) << r.stderr_text;
  EXPECT_EQ(r.stdout_text.find("ready"), std::string::npos);
}

TEST(BadInputCommandLine, UnparsableExportsLineExits2WithLineNumber) {
  TempDir st("localnfs-state"), rt("localnfs-run"), root;
  std::string exports = st.Sub("exports");
  ASSERT_TRUE(WriteFile(exports, "# comment\n" + root.path() + " *(rw)\n" + root.path() +
                                     " *(rw,no_such_option)\n"));
  RunResult r = RunLocalnfsdToExit({"--exports", exports, "--port", "0", "--mount-port", "0",
                                    "--bind", "127.0.0.1", "--state-dir", st.path(),
                                    "--runtime-dir", rt.path()},
                                   milliseconds(20000));
  EXPECT_EQ(ExitCode(r), 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find(":3"), std::string::npos) << "line number missing: " << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("no_such_option"), std::string::npos) << r.stderr_text;
}

TEST(BadInputCommandLine, UnknownFlagExits2) {
  RunResult r = RunLocalnfsdToExit({"--no-such-flag"}, milliseconds(20000));
  EXPECT_EQ(ExitCode(r), 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("no-such-flag"), std::string::npos) << r.stderr_text;
}

TEST(BadInputCommandLine, PortInUseFailsNamingThePort) {
  TempDir root;
  ServerProcess first({"--export", root.path()});
  ASSERT_TRUE(first.Start());
  TempDir st("localnfs-state"), rt("localnfs-run");
  std::string port = std::to_string(first.nfs_port());
  RunResult r = RunLocalnfsdToExit({"--export", root.path(), "--port", port, "--mount-port",
                                    "0", "--bind", "127.0.0.1", "--state-dir", st.path(),
                                    "--runtime-dir", rt.path()},
                                   milliseconds(20000));
  int code = ExitCode(r);
  EXPECT_TRUE(code == 1 || code == 2) << "exit " << code << ": " << r.stderr_text;
  EXPECT_NE(r.stderr_text.find(port), std::string::npos) << r.stderr_text;
  ASSERT_TRUE(first.Stop());
}

}  // namespace
}  // namespace localnfs::testing
