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
// needs a blank before `#`, so `KEY= # note` is empty), 'single-quoted' literal values,
// "double-quoted" values with \n \t \r \" \\ escapes; quoted values may span lines (a CRLF
// line end inside them counts as \n). A leading UTF-8 BOM is skipped. No variable expansion.
// Errors name `origin` and the line, never a value.
absl::StatusOr<std::vector<DotenvEntry>> ParseDotenv(absl::string_view text,
                                                     absl::string_view origin);

// A variable name as the shell accepts it: [A-Za-z_][A-Za-z0-9_]*.
bool IsValidVariableName(absl::string_view name);

}  // namespace jobqueue::internal

#endif  // JOBQUEUE_SRC_DOTENV_H_
