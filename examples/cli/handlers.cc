#include "cli/handlers.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace jobqueue::cli {

absl::StatusOr<BuiltIn> ParseBuiltInHandler(const std::string& spec) {
  if (spec == "noop") {
    return BuiltIn(
        [](absl::string_view, const std::function<bool()>&) -> absl::StatusOr<std::string> {
          return std::string("null");
        });
  }
  if (spec == "echo") {
    return BuiltIn(
        [](absl::string_view payload, const std::function<bool()>&) -> absl::StatusOr<std::string> {
          return std::string(payload);
        });
  }
  if (spec == "fail" || absl::StartsWith(spec, "fail:")) {
    std::string message = spec == "fail" ? "failed by the fail handler" : spec.substr(5);
    return BuiltIn(
        [message](absl::string_view, const std::function<bool()>&) -> absl::StatusOr<std::string> {
          return absl::InternalError(message);
        });
  }
  if (absl::StartsWith(spec, "sleep:")) {
    int64_t ms = 0;
    if (!absl::SimpleAtoi(spec.substr(6), &ms) || ms < 0) {
      return absl::InvalidArgumentError("sleep:MS needs a non-negative number of milliseconds");
    }
    return BuiltIn([ms](absl::string_view,
                        const std::function<bool()>& stopping) -> absl::StatusOr<std::string> {
      const absl::Time end = absl::Now() + absl::Milliseconds(ms);
      while (absl::Now() < end) {
        if (stopping()) return absl::CancelledError("worker is stopping");
        absl::SleepFor(std::min(absl::Milliseconds(10), end - absl::Now()));
      }
      return std::string("null");
    });
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown handler \"", spec, "\"; built-in handlers: noop, echo, fail[:message], sleep:MS"));
}

}  // namespace jobqueue::cli
