// server/nfs4/client_records_test.cc — the client records file: written and removed,
// read back by the next instance, crash-safe replacement, and every kind of damaged
// file read as no records without a crash.
#include "server/nfs4/client_records.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

// A namespace of its own: the unity build puts several tests in one unit.
namespace localnfs::server::nfs4::client_records_test {
namespace {

constexpr Principal kRoot{rpc::AuthFlavor::kSys, 0, 0};
constexpr Principal kUser{rpc::AuthFlavor::kSys, 1000, 100};

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// The file's checksum (FNV-1a 64, little-endian) appended to `body`.
std::string WithChecksum(const std::string& body) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : body) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  std::string out = body;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(h >> (8 * i)));
  return out;
}

TEST(ClientRecordsTest, NoFileIsNoRecordsAndNothingIsWrittenUntilAChange) {
  localnfs::testing::TempDir dir("client-records");
  ClientRecordFile f(dir.path(), 16);
  EXPECT_TRUE(f.loaded().empty());
  ASSERT_TRUE(f.Flush().ok());
  EXPECT_EQ(f.writes(), 0u);
  EXPECT_NE(access(f.path().c_str(), F_OK), 0);
}

TEST(ClientRecordsTest, RecordsWrittenAndRemovedSurviveARestart) {
  localnfs::testing::TempDir dir("client-records");
  {
    ClientRecordFile f(dir.path(), 16);
    f.Put({"Linux NFSv4.1 host-a", kRoot});
    f.Put({std::string("bin\0ary\xff", 8), kUser});
    f.Put({"host-c", kRoot});
    ASSERT_TRUE(f.Flush().ok());
    EXPECT_EQ(f.writes(), 1u);
    f.Remove("host-c");
    f.Remove("never-there");
    ASSERT_TRUE(f.Flush().ok());
    EXPECT_EQ(f.writes(), 2u);
    // Nothing changed: no write. The same record again: no change either.
    f.Put({"Linux NFSv4.1 host-a", kRoot});
    ASSERT_TRUE(f.Flush().ok());
    EXPECT_EQ(f.writes(), 2u);
  }
  struct stat st;
  ASSERT_EQ(stat((dir.path() + "/nfs4-clients").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(access((dir.path() + "/nfs4-clients.tmp").c_str(), F_OK), 0);

  ClientRecordFile next(dir.path(), 16);
  const std::vector<ClientRecord> want = {{"Linux NFSv4.1 host-a", kRoot},
                                          {std::string("bin\0ary\xff", 8), kUser}};
  std::vector<ClientRecord> got = next.loaded();
  std::sort(got.begin(), got.end(), [](auto& a, auto& b) { return a.owner < b.owner; });
  std::vector<ClientRecord> sorted = want;
  std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.owner < b.owner; });
  EXPECT_EQ(got, sorted);
  EXPECT_EQ(next.records().size(), 2u);
}

TEST(ClientRecordsTest, ALeftoverTemporaryFileIsIgnoredAndReplaced) {
  // A crash between writing the temporary file and the rename: the old file stands.
  localnfs::testing::TempDir dir("client-records");
  {
    ClientRecordFile f(dir.path(), 16);
    f.Put({"host-a", kRoot});
    ASSERT_TRUE(f.Flush().ok());
  }
  WriteFile(dir.path() + "/nfs4-clients.tmp", "half a fi");
  ClientRecordFile f(dir.path(), 16);
  ASSERT_EQ(f.loaded().size(), 1u);
  f.Put({"host-b", kRoot});
  ASSERT_TRUE(f.Flush().ok());
  EXPECT_EQ(ClientRecordFile(dir.path(), 16).loaded().size(), 2u);
}

TEST(ClientRecordsTest, DamagedFilesAreReadAsNoRecords) {
  const std::string good = EncodeClientRecords({{"host-a", kRoot}, {"host-b", kUser}});
  std::vector<std::string> bad = {
      "",
      "garbage",
      std::string(4096, '\xff'),
      good.substr(0, good.size() - 1),  // cut short
      good + "x",                       // trailing byte
  };
  std::string flipped = good;
  flipped[14] ^= 1;  // a bit of a record: the checksum says so
  bad.push_back(flipped);
  // Right checksums, wrong contents: an owner length past the end, a count too high.
  {
    std::string body = good.substr(0, good.size() - 8);
    body[24] = static_cast<char>(0xff);  // the first owner length's low byte
    bad.push_back(WithChecksum(body));
    body = good.substr(0, good.size() - 8);
    body[8] = 3;  // count
    bad.push_back(WithChecksum(body));
  }
  for (size_t i = 0; i < bad.size(); ++i) {
    std::vector<ClientRecord> out;
    bool truncated = false;
    EXPECT_FALSE(DecodeClientRecords(bad[i], 16, &out, &truncated).ok()) << i;
    EXPECT_TRUE(out.empty() || i == 0) << i;
    localnfs::testing::TempDir dir("client-records");
    WriteFile(dir.path() + "/nfs4-clients", bad[i]);
    ClientRecordFile f(dir.path(), 16);
    EXPECT_TRUE(f.loaded().empty()) << i;
    // The next change replaces the damaged file with a good one.
    f.Put({"host-z", kRoot});
    ASSERT_TRUE(f.Flush().ok());
    EXPECT_EQ(ClientRecordFile(dir.path(), 16).loaded().size(), 1u) << i;
  }
}

TEST(ClientRecordsTest, OwnerLengthBoundsAreChecked) {
  std::vector<ClientRecord> out;
  bool truncated = false;
  // An empty owner and one longer than NFS4_OPAQUE_LIMIT are not records.
  EXPECT_FALSE(DecodeClientRecords(EncodeClientRecords({{"", kRoot}}), 16, &out, &truncated).ok());
  EXPECT_FALSE(
      DecodeClientRecords(EncodeClientRecords({{std::string(NFS4_OPAQUE_LIMIT + 1, 'o'), kRoot}}),
                          16, &out, &truncated)
          .ok());
  EXPECT_TRUE(
      DecodeClientRecords(EncodeClientRecords({{std::string(NFS4_OPAQUE_LIMIT, 'o'), kRoot}}), 16,
                          &out, &truncated)
          .ok());
  EXPECT_EQ(out.size(), 1u);
}

TEST(ClientRecordsTest, MoreRecordsThanTheBoundAreCut) {
  localnfs::testing::TempDir dir("client-records");
  std::vector<ClientRecord> many;
  for (int i = 0; i < 10; ++i) many.push_back({"host-" + std::to_string(i), kRoot});
  WriteFile(dir.path() + "/nfs4-clients", EncodeClientRecords(many));
  ClientRecordFile f(dir.path(), 4);
  EXPECT_EQ(f.loaded().size(), 4u);
  EXPECT_EQ(f.records().size(), 4u);
}

TEST(ClientRecordsTest, AnUnwritableDirectoryIsAnErrorThenRetried) {
  if (geteuid() == 0) GTEST_SKIP() << "root writes anywhere";
  localnfs::testing::TempDir dir("client-records");
  ClientRecordFile f(dir.path(), 16);
  ASSERT_EQ(chmod(dir.path().c_str(), 0500), 0);
  f.Put({"host-a", kRoot});
  EXPECT_FALSE(f.Flush().ok());
  ASSERT_EQ(chmod(dir.path().c_str(), 0700), 0);
  EXPECT_TRUE(f.Flush().ok());  // still dirty: written now
  EXPECT_EQ(ClientRecordFile(dir.path(), 16).loaded().size(), 1u);
}

}  // namespace
}  // namespace localnfs::server::nfs4::client_records_test
