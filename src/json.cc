#include "jobqueue/json.h"

#include <simdjson.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "internal/json_escape.h"

namespace jobqueue {

std::string JsonQuote(absl::string_view in) { return internal::JsonQuote(in); }

namespace {

// Length of the RFC 8259 number at the start of `text`, or 0 when there is none or it runs on
// into other token characters ("01", "1.", "1e", "1.2.3").
size_t NumberLength(absl::string_view text) {
  auto digits = [&](size_t i) {
    while (i < text.size() && absl::ascii_isdigit(text[i])) ++i;
    return i;
  };
  size_t i = 0;
  if (i < text.size() && text[i] == '-') ++i;
  if (i >= text.size() || !absl::ascii_isdigit(text[i])) return 0;
  i = text[i] == '0' ? i + 1 : digits(i);
  if (i < text.size() && text[i] == '.') {
    const size_t end = digits(i + 1);
    if (end == i + 1) return 0;
    i = end;
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    size_t start = i + 1;
    if (start < text.size() && (text[start] == '+' || text[start] == '-')) ++start;
    const size_t end = digits(start);
    if (end == start) return 0;
    i = end;
  }
  if (i < text.size() &&
      (absl::ascii_isalnum(text[i]) || text[i] == '.' || text[i] == '+' || text[i] == '-')) {
    return 0;
  }
  return i;
}

// `text` with every well-formed number outside strings replaced by 0 (same length, so positions
// in simdjson's messages still hold). Malformed numbers stay for the parser to reject.
std::string WithNumbersZeroed(absl::string_view text) {
  std::string out(text);
  for (size_t i = 0; i < out.size();) {
    const char c = out[i];
    if (c == '"') {
      for (++i; i < out.size() && out[i] != '"'; ++i) {
        if (out[i] == '\\') ++i;
      }
      ++i;
    } else if (c == '-' || absl::ascii_isdigit(c)) {
      const size_t length = NumberLength(absl::string_view(out).substr(i));
      if (length == 0) return out;
      out.replace(i, length, absl::StrCat("0", std::string(length - 1, ' ')));
      i += length;
    } else {
      ++i;
    }
  }
  return out;
}

simdjson::error_code ParseError(absl::string_view text) {
  // One parser per thread: allocation is the main cost of a parse this small.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element element;
  const simdjson::padded_string padded(text.data(), text.size());
  return parser.parse(padded).get(element);
}

}  // namespace

absl::Status ValidateJson(absl::string_view text) {
  simdjson::error_code error = ParseError(text);
  // simdjson's DOM refuses numbers beyond a double or a 64-bit integer, which JSON allows, jsonb
  // stores exactly and Node's JSON.stringify writes (1e20 as 100000000000000000000): check their
  // grammar here and the rest of the document with them zeroed.
  if (error == simdjson::NUMBER_ERROR) error = ParseError(WithNumbersZeroed(text));
  if (error != simdjson::SUCCESS) {
    return absl::InvalidArgumentError(
        absl::StrCat("not valid JSON: ", simdjson::error_message(error)));
  }
  return absl::OkStatus();
}

}  // namespace jobqueue
