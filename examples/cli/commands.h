// The jobqueue CLI's subcommands. Each returns the process exit code.
#ifndef JOBQUEUE_EXAMPLES_CLI_COMMANDS_H_
#define JOBQUEUE_EXAMPLES_CLI_COMMANDS_H_

#include <string>
#include <vector>

namespace jobqueue::cli {

int RunConfig(const std::vector<std::string>& args);

}  // namespace jobqueue::cli

#endif  // JOBQUEUE_EXAMPLES_CLI_COMMANDS_H_
