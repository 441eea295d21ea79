#include "jobqueue/logging.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "jobqueue/json.h"
#include "testing/status_matchers.h"

namespace jobqueue {
namespace {

using ::jobqueue::testing::IsOk;
using ::jobqueue::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

class LoggingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    id_ = AddLogSink([this](LogLevel level, absl::string_view line) {
      levels_.push_back(level);
      lines_.emplace_back(line);
    });
  }
  void TearDown() override {
    RemoveLogSink(id_);
    ConfigureLogging(LoggingOptions());
  }
  std::vector<std::string> lines_;
  std::vector<LogLevel> levels_;
  int id_ = 0;
};

TEST_F(LoggingTest, ParsesLevelsCaseInsensitively) {
  EXPECT_EQ(*ParseLogLevel("INFO"), LogLevel::kInfo);
  EXPECT_EQ(*ParseLogLevel("Warning"), LogLevel::kWarn);
  EXPECT_EQ(*ParseLogLevel(" debug "), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("fatal"), LogLevel::kCritical);
  EXPECT_THAT(ParseLogLevel("verbose"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(*ParseLogFormat("Json"), LogFormat::kJson);
  EXPECT_THAT(ParseLogFormat("logfmt"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(LoggingTest, LevelFilters) {
  LoggingOptions options;
  options.level = LogLevel::kWarn;
  options.to_stderr = false;
  ConfigureLogging(options);
  Log(LogLevel::kInfo, "dropped");
  Log(LogLevel::kWarn, "kept");
  Log(LogLevel::kError, "kept too");
  EXPECT_THAT(levels_, ElementsAre(LogLevel::kWarn, LogLevel::kError));
}

TEST_F(LoggingTest, TextFormatHasTimestampLevelAndService) {
  LoggingOptions options;
  options.service = "api";
  options.to_stderr = false;
  ConfigureLogging(options);
  Log(LogLevel::kInfo, "hello");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(lines_[0], MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z info \\[api\\] hello"));
}

TEST_F(LoggingTest, JsonFormatIsValidJsonWithEscaping) {
  LoggingOptions options;
  options.format = LogFormat::kJson;
  options.service = "worker";
  options.to_stderr = false;
  ConfigureLogging(options);
  Log(LogLevel::kError, "quote \" backslash \\ newline \n tab \t bad \xff byte");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(ValidateJson(lines_[0]), IsOk()) << lines_[0];
  EXPECT_THAT(lines_[0], HasSubstr("\"level\":\"error\""));
  EXPECT_THAT(lines_[0], HasSubstr("\"service\":\"worker\""));
  EXPECT_THAT(lines_[0],
              HasSubstr("quote \\\" backslash \\\\ newline \\n tab \\t bad \xEF\xBF\xBD"));
}

TEST_F(LoggingTest, RemovedSinkGetsNothing) {
  LoggingOptions options;
  options.to_stderr = false;
  ConfigureLogging(options);
  RemoveLogSink(id_);
  Log(LogLevel::kError, "after removal");
  EXPECT_TRUE(lines_.empty());
}

TEST_F(LoggingTest, CurrentOptionsRoundTrip) {
  LoggingOptions options;
  options.level = LogLevel::kDebug;
  options.service = "x";
  ConfigureLogging(options);
  EXPECT_EQ(CurrentLoggingOptions().level, LogLevel::kDebug);
  EXPECT_EQ(CurrentLoggingOptions().service, "x");
}

}  // namespace
}  // namespace jobqueue
