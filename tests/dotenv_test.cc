#include "dotenv.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/status_matchers.h"

namespace jobqueue::internal {
namespace {

using ::jobqueue::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::pair<std::string, std::string>> Pairs(absl::string_view text) {
  absl::StatusOr<std::vector<DotenvEntry>> entries = ParseDotenv(text, ".env");
  EXPECT_TRUE(entries.ok()) << entries.status();
  std::vector<std::pair<std::string, std::string>> out;
  if (entries.ok()) {
    for (const DotenvEntry& e : *entries) out.emplace_back(e.key, e.value);
  }
  return out;
}

using P = std::pair<std::string, std::string>;

TEST(DotenvTest, PlainValuesCommentsAndExport) {
  EXPECT_THAT(Pairs("# comment\n\nA=1\nexport B = two words \nC=x#not-comment\nD=y # comment\n"),
              ::testing::ElementsAre(P{"A", "1"}, P{"B", "two words"}, P{"C", "x#not-comment"},
                                     P{"D", "y"}));
}

TEST(DotenvTest, QuotedValues) {
  EXPECT_THAT(
      Pairs("A='single $X \\n'\nB=\"dq \\\"q\\\" \\n end\"\nC=\"\" # empty\n"),
      ::testing::ElementsAre(P{"A", "single $X \\n"}, P{"B", "dq \"q\" \n end"}, P{"C", ""}));
}

TEST(DotenvTest, MultilineQuotedValueAndLineNumbers) {
  absl::StatusOr<std::vector<DotenvEntry>> entries =
      ParseDotenv("KEY=\"-----BEGIN-----\nabc\n-----END-----\"\nNEXT=1\n", ".env");
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].value, "-----BEGIN-----\nabc\n-----END-----");
  EXPECT_EQ((*entries)[1].key, "NEXT");
  EXPECT_EQ((*entries)[1].line, 4);
}

TEST(DotenvTest, CrlfLineEndings) {
  EXPECT_THAT(Pairs("A=1\r\nB=2\r\n"), ::testing::ElementsAre(P{"A", "1"}, P{"B", "2"}));
}

TEST(DotenvTest, CommentRightAfterTheEqualsSignLeavesTheValueEmpty) {
  EXPECT_THAT(Pairs("A= # comment\nB=\t# tab\nC=#not-comment\n"),
              ::testing::ElementsAre(P{"A", ""}, P{"B", ""}, P{"C", "#not-comment"}));
}

TEST(DotenvTest, ByteOrderMarkIsSkipped) {
  EXPECT_THAT(Pairs("\xEF\xBB\xBF"
                    "A=1\nB=2\n"),
              ::testing::ElementsAre(P{"A", "1"}, P{"B", "2"}));
}

TEST(DotenvTest, CrlfInsideQuotesIsANewline) {
  EXPECT_THAT(Pairs("A=\"x\r\ny\"\r\nB='p\r\nq'\r\nC=\"r\\r\"\r\n"),
              ::testing::ElementsAre(P{"A", "x\ny"}, P{"B", "p\nq"}, P{"C", "r\r"}));
}

TEST(DotenvTest, EmptyValueAndLastWins) {
  EXPECT_THAT(Pairs("A=\nA=2\n"), ::testing::ElementsAre(P{"A", ""}, P{"A", "2"}));
}

TEST(DotenvTest, ErrorsNameLineButNotValue) {
  EXPECT_THAT(ParseDotenv("A=1\nnot a pair secret-value\n", ".env.local"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(".env.local:2"), Not(HasSubstr("secret-value")))));
  EXPECT_THAT(ParseDotenv("TOKEN=\"unterminated secret-value\n", ".env"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(".env:1: unterminated quoted value for TOKEN"),
                             Not(HasSubstr("secret-value")))));
  EXPECT_THAT(ParseDotenv("1BAD=x\n", ".env"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDotenv("A='x' trailing\n", ".env"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("after the quoted value")));
}

TEST(DotenvTest, VariableNames) {
  EXPECT_TRUE(IsValidVariableName("_A1"));
  EXPECT_FALSE(IsValidVariableName("1A"));
  EXPECT_FALSE(IsValidVariableName("A-B"));
  EXPECT_FALSE(IsValidVariableName(""));
}

}  // namespace
}  // namespace jobqueue::internal
