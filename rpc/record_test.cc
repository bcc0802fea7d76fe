#include "rpc/record.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace localnfs::rpc {
namespace {

std::string Header(uint32_t v) {
  std::string h(4, '\0');
  h[0] = static_cast<char>(v >> 24);
  h[1] = static_cast<char>(v >> 16);
  h[2] = static_cast<char>(v >> 8);
  h[3] = static_cast<char>(v);
  return h;
}

TEST(RecordDecoderTest, SingleFragmentRecordIsEmitted) {
  RecordDecoder d(1024);
  std::vector<std::string> out;
  ASSERT_TRUE(d.Feed(EncodeRecord("hello"), &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], "hello");
  EXPECT_FALSE(d.InRecord());
}

TEST(RecordDecoderTest, MultiFragmentRecordIsJoined) {
  RecordDecoder d(1024);
  std::vector<std::string> out;
  const std::string stream =
      EncodeRecord("abc", false) + EncodeRecord("def", false) + EncodeRecord("g", true);
  ASSERT_TRUE(d.Feed(stream, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], "abcdefg");
}

TEST(RecordDecoderTest, TruncatedInputWaitsForMore) {
  RecordDecoder d(1024);
  const std::string stream =
      EncodeRecord("one", false) + EncodeRecord("two") + EncodeRecord("three");
  std::vector<std::string> out;
  // One byte at a time: headers and payloads split everywhere.
  for (size_t i = 0; i < stream.size(); ++i) {
    ASSERT_TRUE(d.Feed(stream.substr(i, 1), &out).ok());
    if (i + 1 < stream.size()) {
      EXPECT_TRUE(d.InRecord() || out.size() == 1u);
    }
  }
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], "onetwo");
  EXPECT_EQ(out[1], "three");
  EXPECT_FALSE(d.InRecord());
}

TEST(RecordDecoderTest, PartialHeaderEmitsNothing) {
  RecordDecoder d(1024);
  std::vector<std::string> out;
  ASSERT_TRUE(d.Feed(EncodeRecord("xyz").substr(0, 5), &out).ok());
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(d.InRecord());
}

TEST(RecordDecoderTest, ManyRecordsInOneRead) {
  RecordDecoder d(1024);
  std::string stream;
  for (int i = 0; i < 100; ++i) stream += EncodeRecord(std::to_string(i));
  std::vector<std::string> out;
  ASSERT_TRUE(d.Feed(stream, &out).ok());
  ASSERT_EQ(out.size(), 100u);
  EXPECT_EQ(out[42], "42");
}

TEST(RecordDecoderTest, OversizedFragmentIsAnError) {
  RecordDecoder d(16);
  std::vector<std::string> out;
  EXPECT_FALSE(d.Feed(Header(kLastFragmentBit | 17), &out).ok());
  EXPECT_TRUE(out.empty());
}

TEST(RecordDecoderTest, RecordAtTheLimitIsAccepted) {
  RecordDecoder d(16);
  std::vector<std::string> out;
  ASSERT_TRUE(d.Feed(EncodeRecord(std::string(16, 'a')), &out).ok());
  EXPECT_EQ(out.size(), 1u);
}

TEST(RecordDecoderTest, OversizedAcrossFragmentsIsAnError) {
  RecordDecoder d(16);
  std::vector<std::string> out;
  ASSERT_TRUE(d.Feed(EncodeRecord(std::string(10, 'a'), false), &out).ok());
  EXPECT_FALSE(d.Feed(Header(kLastFragmentBit | 7), &out).ok());
}

TEST(RecordDecoderTest, FourGiBLengthIsRejectedBeforeAnyPayload) {
  RecordDecoder d(4u << 20);
  std::vector<std::string> out;
  // 0xffffffff: last fragment of 2^31-1 bytes; after one 2 GiB non-last fragment a
  // second one would bring the record to 4 GiB. Both are refused on the header.
  EXPECT_EQ(d.Feed(Header(0xffffffffu), &out).code(),
            absl::StatusCode::kResourceExhausted);
  RecordDecoder d2(4u << 20);
  EXPECT_FALSE(d2.Feed(Header(0x7fffffffu), &out).ok());
}

TEST(RecordDecoderTest, ZeroLengthNonLastFragmentIsAnError) {
  RecordDecoder d(1024);
  std::vector<std::string> out;
  EXPECT_EQ(d.Feed(Header(0), &out).code(), absl::StatusCode::kInvalidArgument);
}

TEST(RecordDecoderTest, ZeroLengthLastFragmentEndsTheRecord) {
  RecordDecoder d(1024);
  std::vector<std::string> out;
  ASSERT_TRUE(d.Feed(EncodeRecord("ab", false) + Header(kLastFragmentBit), &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], "ab");
}

TEST(RecordDecoderTest, ErrorIsSticky) {
  RecordDecoder d(8);
  std::vector<std::string> out;
  ASSERT_FALSE(d.Feed(Header(0), &out).ok());
  EXPECT_FALSE(d.Feed(EncodeRecord("ok"), &out).ok());
  EXPECT_TRUE(out.empty());
}

TEST(RecordEncodeTest, MarkCarriesLengthAndLastBit) {
  const std::string r = EncodeRecord("abcd");
  ASSERT_EQ(r.size(), 8u);
  EXPECT_EQ(r.substr(0, 4), Header(kLastFragmentBit | 4));
  EXPECT_EQ(EncodeRecord("a", false).substr(0, 4), Header(1));
}

}  // namespace
}  // namespace localnfs::rpc
