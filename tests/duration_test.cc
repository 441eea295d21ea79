#include "jobqueue/duration.h"

#include <gtest/gtest.h>

#include "testing/status_matchers.h"

namespace jobqueue {
namespace {

using ::jobqueue::testing::StatusIs;

TEST(DurationTest, SecondsOrAbslDurations) {
  EXPECT_EQ(*ParseSecondsOrDuration("2.5"), absl::Milliseconds(2500));
  EXPECT_EQ(*ParseSecondsOrDuration(" 0 "), absl::ZeroDuration());
  EXPECT_EQ(*ParseSecondsOrDuration("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseSecondsOrDuration("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseSecondsOrDuration("0s"), absl::ZeroDuration());
}

TEST(DurationTest, RefusesWhatIsNotAFiniteNonNegativeDuration) {
  for (const char* bad : {"", "soon", "5 minutes", "-5", "-1s", "inf", "nan", "-inf", "1e400"}) {
    EXPECT_THAT(ParseSecondsOrDuration(bad).status(), StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
}

}  // namespace
}  // namespace jobqueue
