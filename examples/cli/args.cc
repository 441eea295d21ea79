#include "cli/args.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "jobqueue/duration.h"
#include "jobqueue/status.h"

namespace jobqueue::cli {

absl::StatusOr<Args> Args::Parse(const std::vector<std::string>& argv,
                                 const std::set<std::string>& value_flags,
                                 const std::set<std::string>& bool_flags, size_t max_positional) {
  Args args;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (!absl::StartsWith(arg, "--")) {
      args.positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (bool_flags.count(name) > 0) {
      if (inline_value)
        return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      args.present_.insert(name);
    } else if (value_flags.count(name) > 0) {
      if (!inline_value) {
        if (i + 1 >= argv.size()) {
          return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
        }
        inline_value = argv[++i];
      }
      args.present_.insert(name);
      args.values_[name] = *inline_value;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown option --", name));
    }
  }
  if (args.positional_.size() > max_positional) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument \"", args.positional_[max_positional], "\"",
                     max_positional == 0 ? " (this command takes only --options)" : ""));
  }
  return args;
}

std::optional<std::string> Args::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string Args::GetOr(const std::string& name, const std::string& fallback) const {
  return Get(name).value_or(fallback);
}

bool Args::Has(const std::string& name) const { return present_.count(name) > 0; }

absl::StatusOr<std::string> Args::Require(const std::string& name) const {
  if (auto value = Get(name)) return *value;
  return absl::InvalidArgumentError(absl::StrCat("--", name, " is required"));
}

// "30m", "90s", "1h30m", "250ms", or plain seconds ("2.5").
absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view flag, const std::string& text) {
  absl::StatusOr<absl::Duration> duration = ParseSecondsOrDuration(text);
  if (!duration.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " ", duration.status().message(), ", got \"", text, "\""));
  }
  // Postgres timestamps and intervals overflow long before absl durations do.
  if (*duration > absl::Hours(24 * 365 * 100)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " must be at most 100 years, got \"", text, "\""));
  }
  return duration;
}

absl::StatusOr<absl::Duration> ParseAgeFlag(absl::string_view flag, const std::string& text) {
  double seconds = 0;
  if (absl::SimpleAtod(absl::StripAsciiWhitespace(text), &seconds)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag,
        " needs a unit, such as 30m, 90s or 720h (a bare number would be seconds), got \"", text,
        "\""));
  }
  return ParseDurationFlag(flag, text);
}

absl::StatusOr<int64_t> ParseIntFlag(absl::string_view flag, const std::string& text) {
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " must be an integer, got \"", text, "\""));
  }
  return value;
}

absl::StatusOr<int> ParseInt32Flag(absl::string_view flag, const std::string& text) {
  JQ_ASSIGN_OR_RETURN(int64_t value, ParseIntFlag(flag, text));
  if (value < INT32_MIN || value > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " is out of range, got \"", text, "\""));
  }
  return static_cast<int>(value);
}

}  // namespace jobqueue::cli
