// JSON helpers for payloads and results (simdjson does the parsing, privately).
#ifndef JOBQUEUE_JSON_H_
#define JOBQUEUE_JSON_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace jobqueue {

// `in` as a JSON string literal, quotes included. Invalid UTF-8 becomes U+FFFD.
std::string JsonQuote(absl::string_view in);

// OK when `text` is one complete JSON value (numbers of any size, as JSON allows); otherwise
// InvalidArgument saying what is wrong (never quoting the text, which may hold secrets).
absl::Status ValidateJson(absl::string_view text);

}  // namespace jobqueue

#endif  // JOBQUEUE_JSON_H_
