#include "pg/jsonb_text.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "jobqueue/job.h"
#include "jobqueue/json.h"
#include "jobqueue/pg_queue.h"

namespace jobqueue::internal {

absl::Status ValidateStorableJson(absl::string_view json) {
  // Size first: no parse of an oversized value.
  if (json.size() > kMaxPayloadBytes) return ValidateStorableValidJson(json);
  if (absl::Status valid = ValidateJson(json); !valid.ok()) return valid;
  return ValidateStorableValidJson(json);
}

absl::Status ValidateStorableValidJson(absl::string_view json) {
  if (json.size() > kMaxPayloadBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(json.size(), " bytes; the limit is ", kMaxPayloadBytes));
  }
  // In valid JSON a backslash only starts an escape inside a string.
  size_t i = 0;
  while (i < json.size()) {
    const void* found = std::memchr(json.data() + i, '\\', json.size() - i);
    if (found == nullptr) break;
    i = static_cast<size_t>(static_cast<const char*>(found) - json.data());
    if (json.substr(i + 1, 5) == "u0000") {
      return absl::InvalidArgumentError(absl::StrCat("not storable as jsonb: \\u0000 at byte ", i,
                                                     " (Postgres text cannot hold NUL)"));
    }
    i += 2;  // the escaped character is never the start of another escape
  }
  return absl::OkStatus();
}

}  // namespace jobqueue::internal

namespace jobqueue {

absl::Status ValidateStorableJson(absl::string_view json) {
  return internal::ValidateStorableJson(json);
}

}  // namespace jobqueue
