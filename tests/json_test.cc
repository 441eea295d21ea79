#include "jobqueue/json.h"

#include <gtest/gtest.h>

#include "jobqueue/job.h"
#include "pg/jsonb_text.h"
#include "testing/status_matchers.h"

namespace jobqueue {
namespace {

using ::jobqueue::testing::IsOk;
using ::jobqueue::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(JsonTest, QuoteEscapes) {
  EXPECT_EQ(JsonQuote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
  EXPECT_EQ(JsonQuote("héllo ☃"), "\"héllo ☃\"");
  EXPECT_EQ(JsonQuote("\xC3"), "\"\xEF\xBF\xBD\"");  // truncated sequence
  EXPECT_EQ(JsonQuote("\xED\xA0\x80"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");  // surrogate
}

TEST(JsonTest, Validate) {
  EXPECT_THAT(ValidateJson(R"({"n": 1, "s": "hello world"})"), IsOk());
  EXPECT_THAT(ValidateJson("[1,2,3]"), IsOk());
  EXPECT_THAT(ValidateJson("\"text\""), IsOk());
  EXPECT_THAT(ValidateJson("{\"secret\": \"sk-123\""),
              StatusIs(absl::StatusCode::kInvalidArgument, Not(HasSubstr("sk-123"))));
  EXPECT_THAT(ValidateJson(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateJson("{} trailing"), StatusIs(absl::StatusCode::kInvalidArgument));
}

// JSON numbers have no range limit; jsonb keeps them exactly and Node writes integers up to
// 1e21 in digits, so numbers past a double or a 64-bit integer are valid too.
TEST(JsonTest, ValidateNumbersOutsideDoubleRange) {
  EXPECT_THAT(ValidateJson("123456789012345678901234567890"), IsOk());
  EXPECT_THAT(ValidateJson(R"({"a": 100000000000000000000, "b": -1e400, "c": [1E+999, 0.5e-999]})"),
              IsOk());
  EXPECT_THAT(ValidateJson(R"(["x\"1e400 ", 1e400, "\\", -0])"), IsOk());
  for (const char* bad : {"[1e400, 01]", "[1e400, 1.]", "[1e400, -]", "[1e400, 1e]",
                          "[1e400, 1.5.5]", "[1e400, +1]", "[1e400 1]", "1e400 1", "[1e400,]",
                          "{1e400: 1}", "[1e400x]", "[1e400, \"\xff\"]", "[1e400, \"abc]"}) {
    EXPECT_THAT(ValidateJson(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
}

// What jsonb refuses although it is valid JSON, checked before a statement is sent.
TEST(JsonTest, StorableJson) {
  using internal::ValidateStorableJson;
  EXPECT_THAT(ValidateStorableJson(R"({"s": "a\u0041 \n \\u0000 \ud83d\ude00"})"), IsOk());
  EXPECT_THAT(ValidateStorableJson(R"({"s": "a\u0000b"})"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\\u0000")));
  EXPECT_THAT(ValidateStorableJson(R"({"k\u0000": 1})"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateStorableJson(R"(["\ud800"])"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateStorableJson(R"(["\ud800\u0041"])"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateStorableJson(R"(["\udc00x"])"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateStorableJson("{not json"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ValidateStorableJson(std::string(kMaxPayloadBytes + 1, ' ')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("the limit is")));
}

// Postgres 15's verdicts on these (psql: SELECT '<number>'::jsonb), read on 2026-12-01.
TEST(JsonTest, StorableNumbersAreTheOnesNumericHolds) {
  using internal::ValidateStorableJson;
  const std::string zeros(16383, '0');
  for (const std::string& fits :
       {std::string("1e131071"), std::string("-1e131071"), std::string("10e131070"),
        std::string("0.01e131073"), std::string("1E+131071"), std::string("1e-16383"),
        std::string("123e-16382"), std::string("0.5e-16382"), std::string("0e999999999"),
        "0." + zeros, "[1." + std::string(16383, '9') + "]", std::string("-0"),
        std::string("[0.000, 12, -3.5e2]")}) {
    EXPECT_THAT(ValidateStorableJson(fits), IsOk()) << fits.substr(0, 40);
  }
  for (const std::string& refused :
       {std::string("1e131072"), std::string("10e131071"), std::string("0.01e131074"),
        std::string("1e+131072"), std::string("1e1000000"), std::string("1e-16384"),
        std::string("0.1e-16383"), std::string("0.0e-16383"), std::string("0.00e-16382"),
        std::string("1e-20000"), std::string("1e2147483647"), std::string("1e-2147483648"),
        std::string("0e-9999999999"), std::string("1e99999999999999999999999"), "0." + zeros + "0",
        "1." + std::string(20000, '9'), std::string(R"({"a": [1, {"b": 1e-20000}]})")}) {
    EXPECT_THAT(ValidateStorableJson(refused),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("numeric")))
        << refused.substr(0, 40);
  }
  // Digits inside strings are not numbers, escaped quotes included.
  EXPECT_THAT(ValidateStorableJson(R"(["1e-20000", "a\"1e-20000", "\\", 1])"), IsOk());
  EXPECT_THAT(ValidateStorableJson(R"(["\\", 1e-20000])"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("byte 7")));
}

}  // namespace
}  // namespace jobqueue
