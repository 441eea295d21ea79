#include "jobqueue/json.h"

#include <simdjson.h>

#include "absl/strings/str_cat.h"
#include "internal/json_escape.h"

namespace jobqueue {

std::string JsonQuote(absl::string_view in) { return internal::JsonQuote(in); }

absl::Status ValidateJson(absl::string_view text) {
  // One parser per thread: allocation is the main cost of a parse this small.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element element;
  const simdjson::padded_string padded(text.data(), text.size());
  if (auto error = parser.parse(padded).get(element); error != simdjson::SUCCESS) {
    return absl::InvalidArgumentError(
        absl::StrCat("not valid JSON: ", simdjson::error_message(error)));
  }
  return absl::OkStatus();
}

}  // namespace jobqueue
