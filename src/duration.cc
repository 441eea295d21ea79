#include "jobqueue/duration.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"

namespace jobqueue {

absl::StatusOr<absl::Duration> ParseSecondsOrDuration(absl::string_view text) {
  const absl::string_view stripped = absl::StripAsciiWhitespace(text);
  double seconds = 0;
  absl::Duration duration;
  if (absl::SimpleAtod(stripped, &seconds)) {
    // SimpleAtod takes "inf" and "nan" too.
    if (!std::isfinite(seconds)) return absl::InvalidArgumentError("must be finite");
    duration = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(stripped, &duration)) {
    return absl::InvalidArgumentError("must be seconds or a duration such as 500ms, 90s or 1h30m");
  }
  if (duration == absl::InfiniteDuration() || duration == -absl::InfiniteDuration()) {
    return absl::InvalidArgumentError("must be finite");
  }
  if (duration < absl::ZeroDuration()) return absl::InvalidArgumentError("must not be negative");
  return duration;
}

}  // namespace jobqueue
