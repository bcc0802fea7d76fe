// tests/restart_test.cc — file handles survive an orderly restart (same --state-dir),
// and a FILE_SYNC write acknowledged before a kill -9 is on disk afterwards.
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <random>

#include "gtest/gtest.h"
#include "tests/support/localnfsd.h"
#include "tests/wire.h"

namespace localnfs::testing {
namespace {

uint64_t Inode(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0 ? st.st_ino : 0;
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(RestartTest, HandlesFromBeforeSigtermRestartStillWork) {
  TempDir root;
  ASSERT_EQ(mkdir(root.Sub("d").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(root.Sub("d/f"), "in d"));
  ASSERT_TRUE(WriteFile(root.Sub("a"), "file a"));
  ASSERT_TRUE(WriteFile(root.Sub("b"), "file b"));
  ServerProcess srv({"--export", root.path() + ":rw,no_root_squash"});
  ASSERT_TRUE(srv.Start());

  std::string rootfh, dfh, ffh, afh, bfh;
  Fattr root_attr, f_attr;
  {
    WireConn c;
    ASSERT_TRUE(c.Connect(srv.nfs_port()));
    Nfs3Wire n(&c);
    ASSERT_EQ(n.Mount(root.path(), &rootfh), 0u) << n.last_rpc().error;
    ASSERT_EQ(n.Getattr(rootfh, &root_attr), kNfs3Ok);
    ASSERT_EQ(n.Lookup(rootfh, "d", &dfh), kNfs3Ok);
    ASSERT_EQ(n.Lookup(dfh, "f", &ffh, &f_attr), kNfs3Ok);
    ASSERT_EQ(n.Lookup(rootfh, "a", &afh), kNfs3Ok);
    ASSERT_EQ(n.Lookup(rootfh, "b", &bfh), kNfs3Ok);
    // Rename over NFS before the restart: a → d/a-moved.
    ASSERT_EQ(n.Rename(rootfh, "a", dfh, "a-moved"), kNfs3Ok);
  }
  ASSERT_TRUE(srv.Stop());
  // Renames while the server is down: the directory d → e, and b → e/b-moved.
  ASSERT_EQ(rename(root.Sub("d").c_str(), root.Sub("e").c_str()), 0);
  ASSERT_EQ(rename(root.Sub("b").c_str(), root.Sub("e/b-moved").c_str()), 0);
  ASSERT_TRUE(srv.Start());

  WireConn c;
  ASSERT_TRUE(c.Connect(srv.nfs_port()));
  Nfs3Wire n(&c);
  Fattr attr;
  ASSERT_EQ(n.Getattr(rootfh, &attr), kNfs3Ok) << "root handle after restart";
  EXPECT_EQ(attr.fileid, root_attr.fileid);
  EXPECT_EQ(attr.fileid, Inode(root.path()));

  ASSERT_EQ(n.Getattr(ffh, &attr), kNfs3Ok) << "file handle after restart";
  EXPECT_EQ(attr.fileid, f_attr.fileid);
  std::string data;
  ASSERT_EQ(n.Read(ffh, 0, 100, &data), kNfs3Ok);
  EXPECT_EQ(data, "in d");

  // The directory's old handle (renamed d → e while down) still resolves children.
  std::string f2;
  Fattr f2_attr;
  ASSERT_EQ(n.Lookup(dfh, "f", &f2, &f2_attr), kNfs3Ok) << "LOOKUP in a renamed dir's old handle";
  EXPECT_EQ(f2_attr.fileid, Inode(root.Sub("e/f")));
  ASSERT_EQ(n.Lookup(dfh, "a-moved", &f2, &f2_attr), kNfs3Ok);

  // Files renamed over NFS and while down keep their handles.
  ASSERT_EQ(n.Read(afh, 0, 100, &data), kNfs3Ok) << "renamed-over-NFS file's old handle";
  EXPECT_EQ(data, "file a");
  ASSERT_EQ(n.Getattr(bfh, &attr), kNfs3Ok) << "renamed-while-down file's old handle";
  EXPECT_EQ(attr.fileid, Inode(root.Sub("e/b-moved")));
  ASSERT_EQ(n.Read(bfh, 0, 100, &data), kNfs3Ok);
  EXPECT_EQ(data, "file b");

  // Writes through an old handle land in the renamed file.
  ASSERT_EQ(n.Write(bfh, 0, "FILE", 2 /*FILE_SYNC*/), kNfs3Ok);
  EXPECT_EQ(ReadFile(root.Sub("e/b-moved")), "FILE b");

}

TEST(RestartTest, WriteVerifierChangesOnEveryStart) {
  TempDir root;
  ASSERT_TRUE(WriteFile(root.Sub("f"), ""));
  ServerProcess srv({"--export", root.path() + ":rw,no_root_squash"});
  ASSERT_TRUE(srv.Start());
  std::string rootfh, fh, v1, v2, v3;
  {
    WireConn c;
    ASSERT_TRUE(c.Connect(srv.nfs_port()));
    Nfs3Wire n(&c);
    ASSERT_EQ(n.Mount(root.path(), &rootfh), 0u);
    ASSERT_EQ(n.Lookup(rootfh, "f", &fh), kNfs3Ok);
    ASSERT_EQ(n.Write(fh, 0, "one", 0 /*UNSTABLE*/, nullptr, nullptr, &v1), kNfs3Ok);
    ASSERT_EQ(n.Write(fh, 3, "two", 0, nullptr, nullptr, &v2), kNfs3Ok);
    EXPECT_EQ(v1, v2) << "the verifier must be stable within one server instance";
  }
  ASSERT_TRUE(srv.Restart());
  WireConn c;
  ASSERT_TRUE(c.Connect(srv.nfs_port()));
  Nfs3Wire n(&c);
  ASSERT_EQ(n.Write(fh, 6, "three", 0, nullptr, nullptr, &v3), kNfs3Ok);
  EXPECT_NE(v1, v3) << "a restarted server must present a new write verifier";
}

TEST(RestartTest, FileSyncWriteSurvivesKill9) {
  TempDir root;
  ServerProcess srv({"--export", root.path() + ":rw,no_root_squash"});
  ASSERT_TRUE(srv.Start());
  const std::string data = RandomBytes(1 << 20, 42);
  std::string rootfh, fh;
  {
    WireConn c;
    ASSERT_TRUE(c.Connect(srv.nfs_port()));
    Nfs3Wire n(&c);
    ASSERT_EQ(n.Mount(root.path(), &rootfh), 0u);
    ASSERT_EQ(n.Create(rootfh, "synced", 0644, &fh), kNfs3Ok);
    if (fh.empty()) {
      ASSERT_EQ(n.Lookup(rootfh, "synced", &fh), kNfs3Ok);
    }
    uint32_t count = 0, committed = 0;
    ASSERT_EQ(n.Write(fh, 0, data, 2 /*FILE_SYNC*/, &count, &committed), kNfs3Ok);
    EXPECT_EQ(count, data.size());
    EXPECT_EQ(committed, 2u) << "a FILE_SYNC write must be answered FILE_SYNC";
    // Kill at once, no orderly shutdown.
    srv.Kill9();
  }
  EXPECT_EQ(ReadFile(root.Sub("synced")), data) << "acknowledged FILE_SYNC data lost";
  ASSERT_TRUE(srv.Start()) << "restart after kill -9";
  WireConn c;
  ASSERT_TRUE(c.Connect(srv.nfs_port()));
  Nfs3Wire n(&c);
  std::string got;
  bool eof = false;
  ASSERT_EQ(n.Read(fh, 0, 4096, &got, &eof), kNfs3Ok);
  EXPECT_EQ(got, data.substr(0, 4096));
}

}  // namespace
}  // namespace localnfs::testing
