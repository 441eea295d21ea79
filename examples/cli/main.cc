// jobqueue: the operator CLI.
#include <cerrno>
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
    "\n"
    "Postgres queue (DATABASE_URL or SUPABASE_MODE + SUPABASE_DB_URL_<MODE>; --schema, default "
    "ops):\n"
    "  migrate                     create or upgrade <schema>.job_queue\n"
    "  enqueue --type T --payload JSON [--count N] [--delay S] [--priority P]\n"
    "          [--max-attempts N] [--dedupe-key K] [--queue Q]\n"
    "  work --types T1,T2 --handler noop|echo|fail[:msg]|sleep:MS [--concurrency N]\n"
    "       [--batch N] [--exit-when-idle SECONDS]\n"
    "  stats [--json]              counts by queue, type and status\n"
    "  get ID [--json] | cancel ID\n"
    "  stale [--older-than 30m]    processing jobs without a recent heartbeat\n"
    "  recover [--older-than 30m]  run the stale-lock reaper now\n"
    "  retry [--type T]            failed jobs back to pending\n"
    "  purge [--completed-older-than D] [--failed-older-than D]\n"
    "Each command takes --help.\n"
    "\n"
    "BullMQ queue on Redis (REDIS_URL):\n"
    "  bull add --queue Q --name N --data JSON [--opts JSON] [--count N]\n"
    "  bull counts --queue Q [--json] | bull get ID --queue Q\n"
    "\n"
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
  std::map<std::string, jobqueue::cli::CommandFn> commands = {
      {"config", jobqueue::cli::RunConfig},
      {"version",
       [](const std::vector<std::string>&) {
         std::printf("jobqueue %s\n", JOBQUEUE_VERSION_STRING);
         return 0;
       }},
  };
  jobqueue::cli::AddPgCommands(&commands);
  jobqueue::cli::AddBullCommands(&commands);
  auto it = commands.find(command);
  if (it == commands.end()) {
    std::fprintf(stderr, "jobqueue: unknown command '%s'\n\n%s", command.c_str(), kUsage);
    return jobqueue::kExitUsage;
  }
  const int rc = it->second(args);
  // Output nobody got (a full disk, a closed pipe) is a failure: a caller reading the id of an
  // enqueued job must not get an exit code of 0 and no id.
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::fprintf(stderr, "jobqueue %s: the command ran, but its output could not be written: %s\n",
                 command.c_str(), std::strerror(errno));
    return rc != 0 ? rc : 1;
  }
  return rc;
}
