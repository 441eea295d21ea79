#ifndef JOBQUEUE_SRC_INTERNAL_JSON_ESCAPE_H_
#define JOBQUEUE_SRC_INTERNAL_JSON_ESCAPE_H_

#include <string>

#include "absl/strings/string_view.h"

namespace jobqueue::internal {

// Appends `in` as the inside of a JSON string literal (no surrounding quotes). Bytes that are
// not valid UTF-8 become U+FFFD so the output is always valid JSON.
void AppendJsonEscaped(absl::string_view in, std::string* out);

// `in` with every byte that is not valid UTF-8, and every NUL, replaced by U+FFFD: what a
// Postgres text column accepts.
std::string ToValidUtf8(absl::string_view in);

inline std::string JsonQuote(absl::string_view in) {
  std::string out = "\"";
  AppendJsonEscaped(in, &out);
  out.push_back('"');
  return out;
}

}  // namespace jobqueue::internal

#endif  // JOBQUEUE_SRC_INTERNAL_JSON_ESCAPE_H_
