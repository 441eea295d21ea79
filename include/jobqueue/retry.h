// Exponential backoff with jitter for failed attempts.
#ifndef JOBQUEUE_RETRY_H_
#define JOBQUEUE_RETRY_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace jobqueue {

// Every retry delay, with jitter or given by a handler, is capped here (10 years): a run_at
// beyond what a timestamp holds would make the failure impossible to record.
inline constexpr absl::Duration kMaxRetryDelay = absl::Hours(24 * 3650);

struct RetryPolicy {
  // Delay after the first failed attempt. Default 1 s.
  absl::Duration base_delay = absl::Seconds(1);
  // Each further failure multiplies the delay by this. Default 2.
  double multiplier = 2.0;
  // Upper bound of a delay before jitter. Default 1 h; kMaxRetryDelay bounds it after jitter.
  absl::Duration max_delay = absl::Hours(1);
  // Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]. 0..1, default 0.2.
  double jitter = 0.2;

  absl::Status Validate() const;
  // The delay after failed attempt `attempt` (1-based). `random01` is a uniform draw in [0, 1).
  absl::Duration DelayAfter(int attempt, double random01) const;
};

}  // namespace jobqueue

#endif  // JOBQUEUE_RETRY_H_
