#ifndef JOBQUEUE_SRC_PG_JSONB_TEXT_H_
#define JOBQUEUE_SRC_PG_JSONB_TEXT_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace jobqueue::internal {

// What the job table stores as a payload or result: at most kMaxPayloadBytes of valid JSON that
// jsonb also accepts (jsonb refuses the escape \u0000, which JSON allows, and numbers numeric
// cannot hold; unpaired surrogate escapes already fail ValidateJson). Checked before a statement is
// sent, so a bad value fails its own job instead of the batch it travels in. Messages read after
// "<what> is ".
absl::Status ValidateStorableJson(absl::string_view json);
// The same for text already known to be valid JSON (a handler's result): size, escapes and
// numbers.
absl::Status ValidateStorableValidJson(absl::string_view json);

}  // namespace jobqueue::internal

#endif  // JOBQUEUE_SRC_PG_JSONB_TEXT_H_
