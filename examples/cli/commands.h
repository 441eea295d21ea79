// The jobqueue CLI's subcommands. Each returns the process exit code.
#ifndef JOBQUEUE_EXAMPLES_CLI_COMMANDS_H_
#define JOBQUEUE_EXAMPLES_CLI_COMMANDS_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace jobqueue::cli {

using CommandFn = std::function<int(const std::vector<std::string>&)>;

int RunConfig(const std::vector<std::string>& args);
// migrate, enqueue, work, stats, get, cancel, stale, recover, retry, purge.
void AddPgCommands(std::map<std::string, CommandFn>* commands);
// bull add|counts|get|work|pause|resume|clean: the BullMQ queue on Redis.
void AddBullCommands(std::map<std::string, CommandFn>* commands);

}  // namespace jobqueue::cli

#endif  // JOBQUEUE_EXAMPLES_CLI_COMMANDS_H_
