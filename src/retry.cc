#include "jobqueue/retry.h"

#include <algorithm>
#include <cmath>

namespace jobqueue {

absl::Status RetryPolicy::Validate() const {
  if (base_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("retry base_delay must not be negative");
  }
  if (max_delay < base_delay) {
    return absl::InvalidArgumentError("retry max_delay must be at least base_delay");
  }
  if (!(multiplier >= 1.0) || !std::isfinite(multiplier)) {
    return absl::InvalidArgumentError("retry multiplier must be a finite number >= 1");
  }
  if (!(jitter >= 0.0 && jitter <= 1.0)) {
    return absl::InvalidArgumentError("retry jitter must be within 0..1");
  }
  return absl::OkStatus();
}

absl::Duration RetryPolicy::DelayAfter(int attempt, double random01) const {
  const int exponent = std::clamp(attempt, 1, 64) - 1;
  // In seconds as double: multiplier^63 overflows Duration arithmetic but not a double.
  const double raw = absl::ToDoubleSeconds(base_delay) * std::pow(multiplier, exponent);
  const double capped = std::min(raw, absl::ToDoubleSeconds(max_delay));
  const double factor = 1.0 + jitter * (2.0 * std::clamp(random01, 0.0, 1.0) - 1.0);
  const double seconds = std::clamp(capped * factor, 0.0, absl::ToDoubleSeconds(kMaxRetryDelay));
  return absl::Seconds(std::isnan(seconds) ? 0.0 : seconds);
}

}  // namespace jobqueue
