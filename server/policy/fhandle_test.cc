#include "server/policy/fhandle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "common/status.h"
#include "gtest/gtest.h"
#include "tests/support/temp_dir.h"

namespace localnfs::server {
namespace {

HandleKey TestKey(char fill = 'k') { return HandleKey::FromBytes(std::string(kHandleKeySize, fill)); }

KernelHandle SampleKernelHandle() { return KernelHandle{1, std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8)}; }

TEST(FileHandleTest, EncodeDecodeRoundTrip) {
  HandleKey key = TestKey();
  auto wire = key.Encode(0xdeadbeef, SampleKernelHandle());
  ASSERT_TRUE(wire.ok());
  EXPECT_LE(wire->size(), kMaxHandleSize);
  auto d = key.Decode(*wire);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->export_id, 0xdeadbeefu);
  EXPECT_EQ(d->kernel, SampleKernelHandle());
}

// Handles given out before a restart must still decode: the per-thread keyed context
// computes exactly HMAC-SHA256 as OpenSSL's one-shot HMAC() does, for any key, on any
// thread, also when threads alternate between keys.
TEST(FileHandleTest, MacIsTruncatedHmacSha256OnEveryThread) {
  auto expected_mac = [](char fill, std::string_view body) {
    const std::string k(kHandleKeySize, fill);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), k.data(), static_cast<int>(k.size()),
         reinterpret_cast<const unsigned char*>(body.data()), body.size(), out, &len);
    return std::string(reinterpret_cast<const char*>(out), kHandleMacSize);
  };
  auto check = [&] {
    for (int round = 0; round < 3; ++round) {
      for (char fill : {'a', 'b'}) {
        std::string wire = *TestKey(fill).Encode(7 + round, SampleKernelHandle());
        const size_t body = wire.size() - kHandleMacSize;
        EXPECT_EQ(wire.substr(body), expected_mac(fill, wire.substr(0, body)));
        EXPECT_TRUE(TestKey(fill).Decode(wire).ok());
      }
    }
  };
  check();
  std::thread other(check);
  other.join();
}

// A thread skips the HMAC for bytes equal to the handle it verified last; any other
// bytes, or the same bytes under another key, are verified in full.
TEST(FileHandleTest, HandleVerifiedJustBeforeIsNoPassForForgeriesOrOtherKeys) {
  HandleKey key = TestKey('a');
  std::string wire = *key.Encode(7, SampleKernelHandle());
  ASSERT_TRUE(key.Decode(wire).ok());
  ASSERT_TRUE(key.Decode(wire).ok());
  std::string forged = wire;
  forged.back() ^= 1;
  EXPECT_EQ(StatusErrno(key.Decode(forged).status()), EBADMSG);
  EXPECT_TRUE(key.Decode(wire).ok());
  EXPECT_EQ(StatusErrno(TestKey('b').Decode(wire).status()), EBADMSG);
  EXPECT_TRUE(key.Decode(wire).ok());
  EXPECT_EQ(StatusErrno(TestKey('b').Decode(wire).status()), EBADMSG);
}

TEST(FileHandleTest, FlippedBitAnywhereIsBadHandle) {
  HandleKey key = TestKey();
  std::string wire = *key.Encode(7, SampleKernelHandle());
  for (size_t i = 0; i < wire.size(); ++i) {
    std::string forged = wire;
    forged[i] ^= 0x40;
    auto d = key.Decode(forged);
    ASSERT_FALSE(d.ok()) << "byte " << i;
    EXPECT_EQ(StatusErrno(d.status()), EBADMSG);
  }
}

TEST(FileHandleTest, AnotherKeysHandleIsBadHandle) {
  std::string wire = *TestKey('a').Encode(7, SampleKernelHandle());
  EXPECT_EQ(StatusErrno(TestKey('b').Decode(wire).status()), EBADMSG);
}

TEST(FileHandleTest, TruncatedOrExtendedIsBadHandle) {
  HandleKey key = TestKey();
  std::string wire = *key.Encode(7, SampleKernelHandle());
  for (size_t n = 0; n < wire.size(); ++n)
    EXPECT_EQ(StatusErrno(key.Decode(wire.substr(0, n)).status()), EBADMSG) << n;
  EXPECT_EQ(StatusErrno(key.Decode(wire + "x").status()), EBADMSG);
  EXPECT_EQ(StatusErrno(key.Decode(std::string(65, '\1')).status()), EBADMSG);
}

TEST(FileHandleTest, WrongVersionIsBadHandle) {
  HandleKey key = TestKey();
  std::string wire = *key.Encode(7, SampleKernelHandle());
  wire[0] = 2;
  EXPECT_EQ(StatusErrno(key.Decode(wire).status()), EBADMSG);
}

TEST(FileHandleTest, OversizedKernelHandleIsRefused) {
  KernelHandle big{1, std::string(kMaxKernelHandleBytes + 1, 'x')};
  EXPECT_FALSE(TestKey().Encode(1, big).ok());
  KernelHandle max{1, std::string(kMaxKernelHandleBytes, 'x')};
  auto wire = TestKey().Encode(1, max);
  ASSERT_TRUE(wire.ok());
  EXPECT_EQ(wire->size(), kMaxHandleSize);
}

TEST(FileHandleTest, KeyIsCreatedOnceWithMode0600AndReused) {
  localnfs::testing::TempDir tmp("fhkey");
  const std::string dir = tmp.path() + "/state";
  auto k1 = HandleKey::LoadOrCreate(dir);
  ASSERT_TRUE(k1.ok()) << k1.status();
  struct stat st;
  ASSERT_EQ(stat((dir + "/handle.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, static_cast<off_t>(kHandleKeySize));
  auto k2 = HandleKey::LoadOrCreate(dir);
  ASSERT_TRUE(k2.ok());
  // A handle made before a "restart" still decodes after it.
  std::string wire = *k1->Encode(3, SampleKernelHandle());
  EXPECT_TRUE(k2->Decode(wire).ok());
}

TEST(FileHandleTest, KernelHandleOfFdMatchesKernelHandleAt) {
  int dir = open("/tmp", O_PATH | O_DIRECTORY);
  ASSERT_GE(dir, 0);
  int self = openat(dir, ".", O_PATH);
  auto a = KernelHandleOfFd(self);
  auto b = KernelHandleAt(dir, ".");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
  close(self);
  close(dir);
}

}  // namespace
}  // namespace localnfs::server
