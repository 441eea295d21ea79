// `.env` file parsing.
#ifndef JOBQUEUE_SRC_DOTENV_H_
#define JOBQUEUE_SRC_DOTENV_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace jobqueue::internal {

struct DotenvEntry {
  std::string key;
  std::string value;
  int line = 0;
};

// Parses `KEY=value` lines: `export ` prefix, `#` comments, unquoted values (an inline comment
// needs a space before `#`), 'single-quoted' literal values, "double-quoted" values with \n \t
// \r \" \\ escapes; quoted values may span lines. No variable expansion. Errors name `origin`
// and the line, never a value.
absl::StatusOr<std::vector<DotenvEntry>> ParseDotenv(absl::string_view text,
                                                     absl::string_view origin);

// A variable name as the shell accepts it: [A-Za-z_][A-Za-z0-9_]*.
bool IsValidVariableName(absl::string_view name);

}  // namespace jobqueue::internal

#endif  // JOBQUEUE_SRC_DOTENV_H_
