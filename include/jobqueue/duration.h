// Durations as operators write them in flags, query parameters and environment variables.
#ifndef JOBQUEUE_DURATION_H_
#define JOBQUEUE_DURATION_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace jobqueue {

// "2.5" (seconds, fractions allowed) or an absl duration such as "500ms", "90s" or "1h30m",
// surrounding blanks ignored. InvalidArgument for anything else, for a negative, infinite or
// NaN value. The message ("must not be negative", ...) reads after the setting's name, which
// the caller puts in front; it does not repeat the text.
absl::StatusOr<absl::Duration> ParseSecondsOrDuration(absl::string_view text);

}  // namespace jobqueue

#endif  // JOBQUEUE_DURATION_H_
