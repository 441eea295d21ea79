// A small `--flag value` parser for the jobqueue CLI's subcommands.
#ifndef JOBQUEUE_EXAMPLES_CLI_ARGS_H_
#define JOBQUEUE_EXAMPLES_CLI_ARGS_H_

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace jobqueue::cli {

class Args {
 public:
  // `value_flags` take a value (`--name V` or `--name=V`); `bool_flags` take none; at most
  // `max_positional` other arguments (a stray word must not widen what a command acts on).
  static absl::StatusOr<Args> Parse(const std::vector<std::string>& argv,
                                    const std::set<std::string>& value_flags,
                                    const std::set<std::string>& bool_flags,
                                    size_t max_positional = 0);

  std::optional<std::string> Get(const std::string& name) const;
  std::string GetOr(const std::string& name, const std::string& fallback) const;
  bool Has(const std::string& name) const;
  absl::StatusOr<std::string> Require(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> present_;
  std::vector<std::string> positional_;
};

// "30m", "90s", "1h30m", "250ms", or plain seconds ("2.5"); never negative.
absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view flag, const std::string& text);
// An age that picks jobs to take back or delete (--older-than, --stale-after, ...): as
// ParseDurationFlag, but a bare number is refused, so "--older-than 30" cannot take live jobs
// from someone thinking of minutes.
absl::StatusOr<absl::Duration> ParseAgeFlag(absl::string_view flag, const std::string& text);
absl::StatusOr<int64_t> ParseIntFlag(absl::string_view flag, const std::string& text);
// The same, for a value that must fit an int (the library checks the finer range).
absl::StatusOr<int> ParseInt32Flag(absl::string_view flag, const std::string& text);

}  // namespace jobqueue::cli

#endif  // JOBQUEUE_EXAMPLES_CLI_ARGS_H_
