// server/nfs3/nfs3_program_test.cc — the NFSv3 procedure table's reply bounds
// (rpc::ProcedureDesc::max_result_bytes): what the rpc server reserves before it runs a call.
#include <string>

#include "gtest/gtest.h"
#include "rpc/nfs3.h"
#include "rpc/test_program.h"
#include "server/nfs3/nfs3_program.h"
#include "server/backend/vfs.h"

namespace localnfs::server {
namespace {

using rpc::testing::U32;

// An nfs_fh3 of `len` bytes, padded.
std::string Fh(uint32_t len) { return U32(len) + std::string((len + 3) & ~3u, 'h'); }

TEST(Nfs3ProgramTest, ReadAndDirectoryListingsBoundTheirResultByTheClientsCount) {
  Nfs3Program nfs3(Nfs3Program::Deps{});
  auto bound = [&](uint32_t proc, const std::string& args) {
    const rpc::ProcedureDesc* px = nfs3.procedure(proc);
    EXPECT_NE(px, nullptr);
    EXPECT_NE(px->max_result_bytes, nullptr) << px->name;
    return px->max_result_bytes(args);
  };
  const std::string offset(8, '\0'), verf(8, '\0');
  // READ: fh, offset, count.
  const size_t read_4k = bound(NFSPROC3_READ, Fh(30) + offset + U32(4096));
  EXPECT_GE(read_4k, 4096u + 100);
  EXPECT_LE(read_4k, 4096u + 512);
  EXPECT_EQ(bound(NFSPROC3_READ, Fh(30) + offset + U32(1u << 20)), read_4k - 4096 + (1u << 20));
  // A count beyond what the server reads is clamped as the handler clamps it.
  EXPECT_EQ(bound(NFSPROC3_READ, Fh(64) + offset + U32(0xffffffff)),
            read_4k - 4096 + vfs::kMaxIoSize);
  // READDIR: fh, cookie, cookieverf, count; READDIRPLUS: ... dircount, maxcount.
  EXPECT_EQ(bound(NFSPROC3_READDIR, Fh(30) + offset + verf + U32(32768)),
            read_4k - 4096 + 32768);
  EXPECT_EQ(bound(NFSPROC3_READDIRPLUS, Fh(30) + offset + verf + U32(512) + U32(65536)),
            read_4k - 4096 + 65536);
  // Arguments that cannot decode (cut short, a handle longer than NFS3_FHSIZE): small.
  EXPECT_LE(bound(NFSPROC3_READ, Fh(30) + offset), 512u);
  EXPECT_LE(bound(NFSPROC3_READ, ""), 512u);
  EXPECT_LE(bound(NFSPROC3_READ, Fh(200) + offset + U32(1u << 20)), 512u);
  // Other procedures answer with little: no bound of their own.
  EXPECT_EQ(nfs3.procedure(NFSPROC3_GETATTR)->max_result_bytes, nullptr);
  EXPECT_EQ(nfs3.procedure(NFSPROC3_WRITE)->max_result_bytes, nullptr);
}

}  // namespace
}  // namespace localnfs::server
