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

namespace {

// Postgres numeric, jsonb's number type: at most 131072 digits before the decimal point and
// 16383 after it (trailing zeros count), exponents below 2^30 in magnitude.
constexpr int64_t kMaxNumericWeight = 131071;  // power of ten of the first significant digit
constexpr int64_t kMaxNumericScale = 16383;
constexpr int64_t kMaxNumericExponent = 1073741822;  // INT_MAX / 2 - 1

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// The number starting at `begin`: whether numeric holds it; `end` is set past it.
bool FitsNumeric(absl::string_view json, size_t begin, size_t* end) {
  size_t i = begin;
  if (i < json.size() && json[i] == '-') ++i;
  int64_t int_digits = 0, frac_digits = 0, leading_zeros = 0;
  bool significant = false;
  auto digit = [&](char c) {
    if (!significant && c == '0') {
      ++leading_zeros;
    } else {
      significant = true;
    }
  };
  for (; i < json.size() && IsDigit(json[i]); ++i, ++int_digits) digit(json[i]);
  if (i < json.size() && json[i] == '.') {
    for (++i; i < json.size() && IsDigit(json[i]); ++i, ++frac_digits) digit(json[i]);
  }
  int64_t exponent = 0;
  if (i < json.size() && (json[i] == 'e' || json[i] == 'E')) {
    ++i;
    bool negative = false;
    if (i < json.size() && (json[i] == '+' || json[i] == '-')) negative = json[i++] == '-';
    for (; i < json.size() && IsDigit(json[i]); ++i) {
      // Saturates: anything past the limit is refused whatever its other digits.
      if (exponent <= kMaxNumericExponent) exponent = exponent * 10 + (json[i] - '0');
    }
    if (negative) exponent = -exponent;
  }
  *end = i;
  if (exponent > kMaxNumericExponent || exponent < -kMaxNumericExponent) return false;
  if (frac_digits - exponent > kMaxNumericScale) return false;
  return !significant || int_digits - 1 - leading_zeros + exponent <= kMaxNumericWeight;
}

}  // namespace

absl::Status ValidateStorableValidJson(absl::string_view json) {
  if (json.size() > kMaxPayloadBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(json.size(), " bytes; the limit is ", kMaxPayloadBytes));
  }
  size_t i = 0;
  while (i < json.size()) {
    const char c = json[i];
    if (c == '"') {
      // To the closing quote, escape by escape (an escaped character never starts another).
      const char* const text = json.data();
      ++i;
      size_t quote = 0;  // the next quote at or after i, once found
      while (true) {
        if (quote < i) {
          const void* quote_at = std::memchr(text + i, '"', json.size() - i);
          if (quote_at == nullptr) return absl::OkStatus();  // unterminated: not valid JSON
          quote = static_cast<size_t>(static_cast<const char*>(quote_at) - text);
        }
        const void* escape_at = std::memchr(text + i, '\\', quote - i);
        if (escape_at == nullptr) {
          i = quote + 1;
          break;
        }
        const size_t escape = static_cast<size_t>(static_cast<const char*>(escape_at) - text);
        if (json.substr(escape + 1, 5) == "u0000") {
          return absl::InvalidArgumentError(absl::StrCat("not storable as jsonb: \\u0000 at byte ",
                                                         escape,
                                                         " (Postgres text cannot hold NUL)"));
        }
        i = escape + 2;
      }
    } else if (c == '-' || IsDigit(c)) {
      size_t end = i;
      if (!FitsNumeric(json, i, &end)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "not storable as jsonb: the number at byte ", i,
            " is outside Postgres numeric's range (131072 digits before the point, 16383 after)"));
      }
      i = end;
    } else {
      ++i;
    }
  }
  return absl::OkStatus();
}

}  // namespace jobqueue::internal

namespace jobqueue {

absl::Status ValidateStorableJson(absl::string_view json) {
  return internal::ValidateStorableJson(json);
}

}  // namespace jobqueue
