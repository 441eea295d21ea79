#include "jobqueue/status.h"

#include <gtest/gtest.h>

#include "jobqueue/job.h"
#include "testing/status_matchers.h"

namespace jobqueue {
namespace {

using ::jobqueue::testing::IsOk;
using ::jobqueue::testing::StatusIs;
using ::testing::HasSubstr;

absl::StatusOr<int> Half(int n) {
  if (n % 2 != 0) return absl::InvalidArgumentError("odd");
  return n / 2;
}

absl::StatusOr<int> Quarter(int n) {
  JQ_ASSIGN_OR_RETURN(int half, Half(n));
  JQ_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

absl::Status CheckEven(int n) {
  JQ_RETURN_IF_ERROR(Half(n).status());
  return absl::OkStatus();
}

TEST(StatusMacrosTest, AssignOrReturnPropagates) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_THAT(Quarter(6), StatusIs(absl::StatusCode::kInvalidArgument, "odd"));
  EXPECT_THAT(Quarter(3), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(StatusMacrosTest, ReturnIfErrorPropagates) {
  EXPECT_THAT(CheckEven(4), IsOk());
  EXPECT_THAT(CheckEven(5), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(StatusMacrosTest, AnnotateKeepsCodeAndAddsContext) {
  const absl::Status s = Annotate(absl::NotFoundError("no such job"), "job 42");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound, "job 42: no such job"));
  EXPECT_THAT(Annotate(absl::OkStatus(), "ctx"), IsOk());
  // The payload that marks a lost lease survives, or callers would retry a job they lost.
  EXPECT_TRUE(IsLeaseLost(Annotate(LeaseLostError("taken over"), "complete")));
}

TEST(StatusMatchersTest, MatchersCanFail) {
  EXPECT_FALSE(::testing::Matches(IsOk())(absl::InternalError("x")));
  EXPECT_FALSE(::testing::Matches(StatusIs(absl::StatusCode::kNotFound))(absl::OkStatus()));
  EXPECT_FALSE(::testing::Matches(StatusIs(absl::StatusCode::kInternal, HasSubstr("y")))(
      absl::InternalError("x")));
}

}  // namespace
}  // namespace jobqueue
