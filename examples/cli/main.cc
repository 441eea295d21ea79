// jobqueue: the operator CLI.
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "jobqueue/config.h"
#include "jobqueue/version.h"

namespace {

constexpr char kUsage[] =
    "usage: jobqueue <command> [options]\n"
    "\n"
    "commands:\n"
    "  config --service NAME [--env-dir DIR] [--scopes FILE] [--json]\n"
    "      Print the effective configuration (secrets masked) and the secret-scope verdict.\n"
    "      Exit 0: pass; 77: a secret outside the service's scope; 78: configuration error.\n"
    "  version\n"
    "      Print the library version.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "help") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? jobqueue::kExitUsage : 0;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  const std::map<std::string, std::function<int(const std::vector<std::string>&)>> commands = {
      {"config", jobqueue::cli::RunConfig},
      {"version",
       [](const std::vector<std::string>&) {
         std::printf("jobqueue %s\n", JOBQUEUE_VERSION_STRING);
         return 0;
       }},
  };
  auto it = commands.find(command);
  if (it == commands.end()) {
    std::fprintf(stderr, "jobqueue: unknown command '%s'\n\n%s", command.c_str(), kUsage);
    return jobqueue::kExitUsage;
  }
  return it->second(args);
}
