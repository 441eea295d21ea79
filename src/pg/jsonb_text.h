#ifndef JOBQUEUE_SRC_PG_JSONB_TEXT_H_
#define JOBQUEUE_SRC_PG_JSONB_TEXT_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace jobqueue::internal {

// Valid JSON that Postgres's jsonb also accepts: jsonb refuses the escape \u0000, which JSON
// allows (unpaired surrogate escapes, also refused, already fail ValidateJson). Checked before
// a statement is sent, so a bad value fails its own job instead of the batch it travels in.
absl::Status ValidateJsonbText(absl::string_view json);
// The escape checks alone, for text already known to be valid JSON.
absl::Status ValidateJsonbEscapes(absl::string_view json);

}  // namespace jobqueue::internal

#endif  // JOBQUEUE_SRC_PG_JSONB_TEXT_H_
