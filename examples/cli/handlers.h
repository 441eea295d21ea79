// The CLI's built-in job handlers (noop, echo, fail[:message], sleep:MS), shared by the
// Postgres and BullMQ `work` commands.
#ifndef JOBQUEUE_EXAMPLES_CLI_HANDLERS_H_
#define JOBQUEUE_EXAMPLES_CLI_HANDLERS_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace jobqueue::cli {

// Takes the job's JSON payload and a "worker is stopping" probe; returns the JSON result.
using BuiltIn = std::function<absl::StatusOr<std::string>(absl::string_view payload,
                                                          const std::function<bool()>& stopping)>;

absl::StatusOr<BuiltIn> ParseBuiltInHandler(const std::string& spec);

}  // namespace jobqueue::cli

#endif  // JOBQUEUE_EXAMPLES_CLI_HANDLERS_H_
