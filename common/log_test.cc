// common/log_test.cc — the log line formats and levels (common/log.h).
#include "common/log.h"

#include <stdio.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace localnfs {
namespace {

// Captures what is written to fd 2 while it lives.
class StderrCapture {
 public:
  StderrCapture() {
    file_ = tmpfile();
    saved_ = dup(2);
    dup2(fileno(file_), 2);
  }
  ~StderrCapture() {
    Restore();
    fclose(file_);
  }
  std::string Text() {
    Restore();
    std::string out;
    rewind(file_);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), file_)) > 0) out.append(buf, n);
    return out;
  }

 private:
  void Restore() {
    if (saved_ >= 0) {
      dup2(saved_, 2);
      close(saved_);
      saved_ = -1;
    }
  }
  FILE* file_;
  int saved_;
};

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override {
    SetLogFormat(LogFormat::kText);
    SetLogLevel(LogLevel::kInfo);
  }
};

TEST_F(LogTest, ParsesTheFlagNames) {
  EXPECT_EQ(ParseLogLevel("error").value(), LogLevel::kError);
  EXPECT_EQ(ParseLogLevel("warn").value(), LogLevel::kWarning);
  EXPECT_EQ(ParseLogLevel("warning").value(), LogLevel::kWarning);
  EXPECT_EQ(ParseLogLevel("info").value(), LogLevel::kInfo);
  EXPECT_EQ(ParseLogLevel("debug").value(), LogLevel::kDebug);
  EXPECT_FALSE(ParseLogLevel("verbose").ok());
  EXPECT_FALSE(ParseLogLevel("").ok());
  EXPECT_EQ(ParseLogFormat("text").value(), LogFormat::kText);
  EXPECT_EQ(ParseLogFormat("json").value(), LogFormat::kJson);
  EXPECT_FALSE(ParseLogFormat("JSON").ok());
}

TEST_F(LogTest, JsonLineIsOneObjectWithEveryFieldAndSurvivesBytesThatAreNotUtf8) {
  SetLogProgramName("log_test");
  SetLogFormat(LogFormat::kJson);
  StderrCapture cap;
  LOG_WARNING("name \"%s\"\n next", std::string("bad\xff\xfe byte"));
  const std::string text = cap.Text();
  ASSERT_EQ(text.back(), '\n');
  ASSERT_EQ(text.find('\n'), text.size() - 1) << "one line per event: " << text;
  const nlohmann::json j = nlohmann::json::parse(text);
  EXPECT_EQ(j["level"], "warn");
  EXPECT_EQ(j["program"], "log_test");
  EXPECT_EQ(j["pid"], getpid());
  EXPECT_TRUE(j["source"].get<std::string>().rfind("log_test.cc:", 0) == 0) << j["source"];
  EXPECT_EQ(j["message"], "name \"bad\xEF\xBF\xBD\xEF\xBF\xBD byte\"\n next");
  // RFC 3339, UTC, microseconds: 2026-01-02T03:04:05.678901Z
  EXPECT_EQ(j["time"].get<std::string>().size(), 27u) << j["time"];
  EXPECT_EQ(j["time"].get<std::string>().back(), 'Z');
}

TEST_F(LogTest, TextLineKeepsItsFormat) {
  SetLogProgramName("log_test");
  StderrCapture cap;
  LOG_ERROR("disk %d failed", 3);
  const std::string text = cap.Text();
  EXPECT_EQ(text.rfind("log_test[" + std::to_string(getpid()) + "]: ERROR log_test.cc:", 0), 0u)
      << text;
  EXPECT_NE(text.find(": disk 3 failed\n"), std::string::npos) << text;
}

int g_formatted = 0;
int CountFormatting() { return ++g_formatted; }

TEST_F(LogTest, MessagesBelowTheLevelAreNeitherFormattedNorWritten) {
  SetLogLevel(LogLevel::kError);
  StderrCapture cap;
  LOG_INFO("%d", CountFormatting());
  LOG_WARNING("%d", CountFormatting());
  LOG_DEBUG("%d", CountFormatting());
  EXPECT_EQ(cap.Text(), "");
  EXPECT_EQ(g_formatted, 0);
}

}  // namespace
}  // namespace localnfs
