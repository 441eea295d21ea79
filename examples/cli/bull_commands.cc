// `jobqueue bull ...`: the BullMQ queue on Redis (REDIS_URL): add, counts, get, jobs, work,
// pause, resume, clean, drain, remove, retry, promote, progress, log, logs, events.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/handlers.h"
#include "jobqueue/bull_events.h"
#include "jobqueue/bull_queue.h"
#include "jobqueue/bull_worker.h"
#include "jobqueue/config.h"
#include "jobqueue/json.h"
#include "jobqueue/logging.h"
#include "jobqueue/status.h"
#include "jobqueue/worker.h"

namespace jobqueue::cli {
namespace {

constexpr char kBullHelp[] =
    "usage: jobqueue bull <command> --queue Q [--prefix bull] [options]\n"
    "  add --name N --data JSON [--opts JSON] [--count N]\n"
    "      Adds a job (or N, in one pipelined round trip per 1000) and prints the id(s).\n"
    "      --opts takes BullMQ's JobsOptions JSON (jobId, delay, priority, lifo, attempts,\n"
    "      backoff, removeOnComplete, removeOnFail, ...).\n"
    "  counts [--json]     job counts by state, as Queue.getJobCounts() reports them\n"
    "  get ID [--json]     one job's hash\n"
    "  work --handler noop|echo|fail[:msg]|sleep:MS [--concurrency N] [--exit-when-idle S]\n"
    "       [--worker-name NAME] [--lock-duration D] [--stalled-interval D] [--prefetch N]\n"
    "      Runs a BullMQ-compatible worker; SIGTERM/SIGINT stop it gracefully, a second one\n"
    "      (a second or more later) hands running jobs back at once. --prefetch: most jobs\n"
    "      claimed ahead of a free handler while jobs are short (default 64; 0 off).\n"
    "  pause | resume      pause or resume the queue for every worker (Node ones too)\n"
    "  clean [--state S] [--grace D] [--limit N]\n"
    "      Removes jobs of S (completed by default; failed, delayed, prioritized, wait,\n"
    "      paused) older than D (default 0s), at most N (default all), oldest first, like\n"
    "      Queue.clean; a job scheduler's current job stays. Prints how many.\n"
    "  jobs --state S [--start N] [--end N] [--asc]\n"
    "      One JSON line per job of S (wait, active, paused, prioritized, delayed,\n"
    "      completed, failed), positions N..N, newest first unless --asc.\n"
    "  drain [--delayed]   removes waiting (and with --delayed, delayed) jobs but a job\n"
    "                      scheduler's current one\n"
    "  remove ID           removes a job that is not running (nor a job scheduler's)\n"
    "  retry [ID] [--state failed|completed]   moves that job, or all of the state, to wait\n"
    "  promote [ID]        moves that delayed job, or all of them, to wait now\n"
    "  progress ID --data JSON | log ID --line TEXT [--keep N] | logs ID\n"
    "  events [--from ID|0|$] [--count N] [--timeout D]\n"
    "      Prints the queue's events as JSON lines (like QueueEvents) until N were printed,\n"
    "      D passed with none, or SIGINT/SIGTERM.\n"
    "Redis comes from REDIS_URL (redis://, rediss://, unix://); --tls-ca FILE for rediss://.\n";

int Fail(absl::string_view what, const absl::Status& status, int code = 1) {
  std::fprintf(stderr, "jobqueue bull %s: %s\n", std::string(what).c_str(),
               status.ToString().c_str());
  return code;
}

struct Opened {
  std::unique_ptr<BullQueue> queue;
  int exit_code = 0;
  Secret redis_url;
};

Opened OpenFailure(int exit_code) {
  Opened opened;
  opened.exit_code = exit_code;
  return opened;
}

// The Redis URL from the configuration and the --queue name; on failure, the exit code.
struct Target {
  Secret redis_url;
  std::string queue;
  int exit_code = 0;
};

Target LoadTarget(const Args& args, absl::string_view what) {
  Target target;
  ConfigOptions config_options;
  config_options.service = args.GetOr("service", "cli");
  config_options.env_dir = args.GetOr("env-dir", ".");
  absl::StatusOr<Config> config = Config::Load(config_options);
  if (!config.ok()) {
    target.exit_code = Fail(what, config.status(), ExitCodeForConfigError(config.status()));
    return target;
  }
  ConfigureLogging(config->logging_options());
  if (config->redis_url().empty()) {
    target.exit_code =
        Fail(what, absl::FailedPreconditionError("REDIS_URL is not set"), kExitConfigError);
    return target;
  }
  absl::StatusOr<std::string> name = args.Require("queue");
  if (!name.ok()) {
    target.exit_code = Fail(what, name.status(), kExitUsage);
    return target;
  }
  target.redis_url = config->redis_url();
  target.queue = *std::move(name);
  return target;
}

Opened OpenQueue(const Args& args, absl::string_view what) {
  Target target = LoadTarget(args, what);
  if (target.exit_code != 0) return OpenFailure(target.exit_code);
  BullQueueOptions options;
  options.prefix = args.GetOr("prefix", "bull");
  options.redis.tls_ca_file = args.GetOr("tls-ca", "");
  options.pool_size = 1;
  absl::StatusOr<std::unique_ptr<BullQueue>> queue =
      BullQueue::Open(target.redis_url, target.queue, options);
  if (!queue.ok()) {
    return OpenFailure(
        Fail(what, queue.status(), absl::IsInvalidArgument(queue.status()) ? kExitUsage : 1));
  }
  return {*std::move(queue), 0, target.redis_url};
}

int RunAdd(const Args& args) {
  absl::StatusOr<std::string> name = args.Require("name");
  if (!name.ok()) return Fail("add", name.status(), kExitUsage);
  absl::StatusOr<BullJobOptions> options = ParseBullJobOptions(args.GetOr("opts", "{}"));
  if (!options.ok()) return Fail("add", options.status(), kExitUsage);
  int64_t count = 1;
  if (auto v = args.Get("count");
      v && (!absl::SimpleAtoi(*v, &count) || count < 1 || count > 10000000)) {
    return Fail("add", absl::InvalidArgumentError("--count must be 1..10000000"), kExitUsage);
  }
  if (count > 1 && !options->job_id.empty()) {
    // The same id n times is one job: printing it n times would say n were added.
    return Fail("add", absl::InvalidArgumentError("--count above 1 with a fixed jobId in --opts"),
                kExitUsage);
  }
  const std::string data = args.GetOr("data", "{}");
  if (absl::Status s = ValidateJson(data); !s.ok()) {
    return Fail("add", absl::InvalidArgumentError(absl::StrCat("--data is ", s.message())),
                kExitUsage);
  }
  Opened opened = OpenQueue(args, "add");
  if (!opened.queue) return opened.exit_code;
  for (int64_t done = 0; done < count;) {
    std::vector<BullQueue::NewBullJob> batch;
    for (; done < count && batch.size() < 1000; ++done) batch.push_back({*name, data, *options});
    absl::StatusOr<std::vector<std::string>> ids = opened.queue->AddBulk(batch);
    if (!ids.ok()) return Fail("add", ids.status());
    for (const std::string& id : *ids) std::printf("%s\n", id.c_str());
  }
  return 0;
}

int RunCounts(const Args& args) {
  Opened opened = OpenQueue(args, "counts");
  if (!opened.queue) return opened.exit_code;
  absl::StatusOr<BullJobCounts> c = opened.queue->Counts();
  if (!c.ok()) return Fail("counts", c.status());
  const std::pair<const char*, int64_t> rows[] = {
      {"active", c->active},   {"completed", c->completed},
      {"delayed", c->delayed}, {"failed", c->failed},
      {"paused", c->paused},   {"prioritized", c->prioritized},
      {"waiting", c->waiting}, {"waiting-children", c->waiting_children}};
  if (args.Has("json")) {
    std::vector<std::string> fields;
    for (const auto& [state, n] : rows) fields.push_back(absl::StrCat("\"", state, "\":", n));
    std::printf("{%s}\n", absl::StrJoin(fields, ",").c_str());
  } else {
    for (const auto& [state, n] : rows)
      std::printf("%-17s %lld\n", state, static_cast<long long>(n));
  }
  return 0;
}

std::string JobJson(const BullJob& job) {
  std::vector<std::string> fields;
  for (const auto& [k, v] : job.fields)
    fields.push_back(absl::StrCat(JsonQuote(k), ":", JsonQuote(v)));
  return absl::StrCat("{\"id\":", JsonQuote(job.id), ",\"fields\":{", absl::StrJoin(fields, ","),
                      "}}");
}

int RunGet(const Args& args) {
  if (args.positional().size() != 1) {
    return Fail("get", absl::InvalidArgumentError("expected one job id"), kExitUsage);
  }
  Opened opened = OpenQueue(args, "get");
  if (!opened.queue) return opened.exit_code;
  absl::StatusOr<BullJob> job = opened.queue->GetJob(args.positional()[0]);
  if (!job.ok()) return Fail("get", job.status());
  std::printf("%s\n", JobJson(*job).c_str());
  return 0;
}

absl::Status ParseWorkOptions(const Args& args, BullWorkerOptions* options) {
  options->prefix = args.GetOr("prefix", "bull");
  options->redis.tls_ca_file = args.GetOr("tls-ca", "");
  options->name = args.GetOr("worker-name", "");
  if (auto v = args.Get("concurrency")) {
    JQ_ASSIGN_OR_RETURN(options->concurrency, ParseInt32Flag("concurrency", *v));
  }
  if (auto v = args.Get("exit-when-idle")) {
    JQ_ASSIGN_OR_RETURN(options->exit_when_idle, ParseDurationFlag("exit-when-idle", *v));
  }
  if (auto v = args.Get("prefetch")) {
    JQ_ASSIGN_OR_RETURN(options->prefetch, ParseInt32Flag("prefetch", *v));
  }
  if (auto v = args.Get("lock-duration")) {
    JQ_ASSIGN_OR_RETURN(options->lock_duration, ParseDurationFlag("lock-duration", *v));
  }
  if (auto v = args.Get("stalled-interval")) {
    JQ_ASSIGN_OR_RETURN(options->stalled_interval, ParseDurationFlag("stalled-interval", *v));
  }
  return options->Validate();
}

int RunWork(const Args& args) {
  absl::StatusOr<BuiltIn> builtin = ParseBuiltInHandler(args.GetOr("handler", "noop"));
  if (!builtin.ok()) return Fail("work", builtin.status(), kExitUsage);
  BullWorkerOptions options;
  if (absl::Status s = ParseWorkOptions(args, &options); !s.ok()) {
    return Fail("work", s, kExitUsage);
  }
  absl::StatusOr<std::string> queue = args.Require("queue");
  if (!queue.ok()) return Fail("work", queue.status(), kExitUsage);
  // Opening the queue checks the URL and loads the logging config.
  Opened opened = OpenQueue(args, "work");
  if (!opened.queue) return opened.exit_code;
  BullHandler handler = [builtin = *builtin](BullJobContext& job) {
    return builtin(job.job().data_json, [&job] { return job.stopping(); });
  };
  absl::StatusOr<std::unique_ptr<BullWorker>> worker =
      BullWorker::Create(opened.redis_url, *queue, handler, options);
  if (!worker.ok()) return Fail("work", worker.status());
  std::fprintf(stderr, "Starting BullMQ worker on %s (concurrency %d)\n", queue->c_str(),
               options.concurrency);
  StopWorkersOnSignals();
  const absl::Time start = absl::Now();
  if (absl::Status s = (*worker)->Run(); !s.ok()) return Fail("work", s);
  const BullWorkerStats stats = (*worker)->stats();
  std::printf("completed %lld, failed %lld, retried %lld, released %lld, lost %lld in %.2fs\n",
              static_cast<long long>(stats.completed), static_cast<long long>(stats.failed),
              static_cast<long long>(stats.retried), static_cast<long long>(stats.released),
              static_cast<long long>(stats.lost), absl::ToDoubleSeconds(absl::Now() - start));
  return 0;
}

int RunPause(const Args& args, bool pause) {
  const char* what = pause ? "pause" : "resume";
  Opened opened = OpenQueue(args, what);
  if (!opened.queue) return opened.exit_code;
  absl::Status s = pause ? opened.queue->Pause() : opened.queue->Resume();
  if (!s.ok()) return Fail(what, s);
  std::printf("%s %s\n", opened.queue->name().c_str(), pause ? "paused" : "resumed");
  return 0;
}

int RunClean(const Args& args) {
  absl::Duration grace = absl::ZeroDuration();
  int64_t limit = 0;
  if (auto v = args.Get("grace")) {
    absl::StatusOr<absl::Duration> parsed = ParseDurationFlag("grace", *v);
    if (!parsed.ok()) return Fail("clean", parsed.status(), kExitUsage);
    grace = *parsed;
  }
  if (auto v = args.Get("limit")) {
    absl::StatusOr<int64_t> parsed = ParseIntFlag("limit", *v);
    if (!parsed.ok() || *parsed < 0) {
      return Fail("clean", absl::InvalidArgumentError("--limit must be a non-negative integer"),
                  kExitUsage);
    }
    limit = *parsed;
  }
  Opened opened = OpenQueue(args, "clean");
  if (!opened.queue) return opened.exit_code;
  absl::StatusOr<std::vector<std::string>> removed =
      opened.queue->Clean(args.GetOr("state", "completed"), grace, limit);
  if (!removed.ok()) {
    return Fail("clean", removed.status(),
                absl::IsInvalidArgument(removed.status()) ? kExitUsage : 1);
  }
  std::printf("removed %zu\n", removed->size());
  return 0;
}

// The one positional job id of `what`, or none when `optional`.
absl::StatusOr<std::string> JobIdArg(const Args& args, bool optional) {
  if (args.positional().size() == 1) return args.positional()[0];
  if (args.positional().empty() && optional) return std::string();
  return absl::InvalidArgumentError(optional ? "expected at most one job id"
                                             : "expected one job id");
}

int RunJobs(const Args& args) {
  int64_t start = 0, end = 99;
  for (auto [flag, value] : {std::pair{"start", &start}, std::pair{"end", &end}}) {
    if (auto v = args.Get(flag)) {
      absl::StatusOr<int64_t> parsed = ParseIntFlag(flag, *v);
      if (!parsed.ok()) return Fail("jobs", parsed.status(), kExitUsage);
      *value = *parsed;
    }
  }
  absl::StatusOr<std::string> state = args.Require("state");
  if (!state.ok()) return Fail("jobs", state.status(), kExitUsage);
  Opened opened = OpenQueue(args, "jobs");
  if (!opened.queue) return opened.exit_code;
  absl::StatusOr<std::vector<BullJob>> jobs =
      opened.queue->GetJobs(*state, start, end, args.Has("asc"));
  if (!jobs.ok()) {
    return Fail("jobs", jobs.status(), absl::IsInvalidArgument(jobs.status()) ? kExitUsage : 1);
  }
  for (const BullJob& job : *jobs) std::printf("%s\n", JobJson(job).c_str());
  return 0;
}

// drain, remove, retry, promote, progress, log: one call on the queue, one line of output.
int RunAdmin(const std::string& command, const Args& args) {
  const bool id_optional = command == "retry" || command == "promote" || command == "drain";
  absl::StatusOr<std::string> id = JobIdArg(args, id_optional);
  if (!id.ok()) return Fail(command, id.status(), kExitUsage);
  if (command == "drain" && !id->empty()) {
    return Fail(command, absl::InvalidArgumentError("drain takes no job id"), kExitUsage);
  }
  int64_t keep = 0;
  if (auto v = args.Get("keep")) {
    absl::StatusOr<int64_t> parsed = ParseIntFlag("keep", *v);
    if (!parsed.ok() || *parsed < 0) {
      return Fail(command, absl::InvalidArgumentError("--keep must be a non-negative integer"),
                  kExitUsage);
    }
    keep = *parsed;
  }
  Opened opened = OpenQueue(args, command);
  if (!opened.queue) return opened.exit_code;
  BullQueue& queue = *opened.queue;
  absl::StatusOr<std::string> out;
  auto count = [](absl::string_view verb,
                  absl::StatusOr<int64_t> n) -> absl::StatusOr<std::string> {
    if (!n.ok()) return n.status();
    return absl::StrCat(verb, " ", *n);
  };
  auto done = [&](absl::string_view verb, absl::Status s) -> absl::StatusOr<std::string> {
    if (!s.ok()) return s;
    return absl::StrCat(verb, " ", *id);
  };
  const std::string state = args.GetOr("state", "failed");
  if (command == "drain") {
    out = count("removed", queue.Drain(args.Has("delayed")));
  } else if (command == "remove") {
    out = done("removed", queue.Remove(*id));
  } else if (command == "retry") {
    out = id->empty() ? count("retried", queue.RetryJobs(state))
                      : done("retried", queue.RetryJob(*id, state));
  } else if (command == "promote") {
    out =
        id->empty() ? count("promoted", queue.PromoteAll()) : done("promoted", queue.Promote(*id));
  } else if (command == "progress") {
    out = done("updated", queue.UpdateProgress(*id, args.GetOr("data", "")));
  } else if (!args.Has("line")) {
    return Fail(command, absl::InvalidArgumentError("--line is required"), kExitUsage);
  } else {
    out = count("lines", queue.AddLog(*id, args.GetOr("line", ""), keep));
  }
  if (!out.ok()) {
    return Fail(command, out.status(), absl::IsInvalidArgument(out.status()) ? kExitUsage : 1);
  }
  std::printf("%s\n", out->c_str());
  return 0;
}

int RunLogs(const Args& args) {
  absl::StatusOr<std::string> id = JobIdArg(args, false);
  if (!id.ok()) return Fail("logs", id.status(), kExitUsage);
  Opened opened = OpenQueue(args, "logs");
  if (!opened.queue) return opened.exit_code;
  absl::StatusOr<BullQueue::Logs> logs = opened.queue->GetLogs(*id);
  if (!logs.ok()) return Fail("logs", logs.status());
  for (const std::string& line : logs->lines) std::printf("%s\n", line.c_str());
  return 0;
}

std::atomic<bool> g_stop{false};
extern "C" void OnStopSignal(int) { g_stop.store(true); }

int RunEvents(const Args& args) {
  int64_t limit = 0;
  if (auto v = args.Get("count")) {
    absl::StatusOr<int64_t> parsed = ParseIntFlag("count", *v);
    if (!parsed.ok() || *parsed < 1) {
      return Fail("events", absl::InvalidArgumentError("--count must be a positive integer"),
                  kExitUsage);
    }
    limit = *parsed;
  }
  std::optional<absl::Duration> idle;
  if (auto v = args.Get("timeout")) {
    absl::StatusOr<absl::Duration> parsed = ParseDurationFlag("timeout", *v);
    if (!parsed.ok()) return Fail("events", parsed.status(), kExitUsage);
    idle = *parsed;
  }
  // Only the events connection: no producer queue is opened for this command.
  Target target = LoadTarget(args, "events");
  if (target.exit_code != 0) return target.exit_code;
  BullQueueEventsOptions options;
  options.prefix = args.GetOr("prefix", "bull");
  options.redis.tls_ca_file = args.GetOr("tls-ca", "");
  options.last_event_id = args.GetOr("from", "$");
  absl::StatusOr<std::unique_ptr<BullQueueEvents>> events =
      BullQueueEvents::Open(target.redis_url, target.queue, options);
  if (!events.ok()) {
    return Fail("events", events.status(),
                absl::IsInvalidArgument(events.status()) ? kExitUsage : 1);
  }
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
  int64_t printed = 0;
  absl::Time last = absl::Now();
  // Short reads so a stop signal is noticed within a quarter second.
  while (!g_stop.load()) {
    absl::StatusOr<std::vector<BullEvent>> batch = (*events)->Read(absl::Milliseconds(250));
    if (!batch.ok()) return Fail("events", batch.status());
    for (const BullEvent& event : *batch) {
      std::vector<std::string> fields;
      for (const auto& [k, v] : event.fields) {
        fields.push_back(absl::StrCat(JsonQuote(k), ":", JsonQuote(v)));
      }
      std::printf("{\"id\":%s,%s}\n", JsonQuote(event.id).c_str(),
                  absl::StrJoin(fields, ",").c_str());
      std::fflush(stdout);
      if (limit > 0 && ++printed >= limit) return 0;
    }
    if (!batch->empty()) last = absl::Now();
    if (idle && absl::Now() - last >= *idle) return 0;
  }
  return 0;
}

int RunBull(const std::vector<std::string>& argv) {
  if (argv.empty() || argv[0] == "--help" || argv[0] == "help") {
    std::fputs(kBullHelp, argv.empty() ? stderr : stdout);
    return argv.empty() ? kExitUsage : 0;
  }
  const std::string command = argv[0];
  const std::vector<std::string> rest(argv.begin() + 1, argv.end());
  const bool takes_id = command == "get" || command == "logs" || command == "drain" ||
                        command == "remove" || command == "retry" || command == "promote" ||
                        command == "progress" || command == "log";
  // Each command takes only its own flags: `clean --count 100` is refused, not run as a clean
  // of every job (its flag is --limit).
  struct Flags {
    std::set<std::string> values, bools;
  };
  const Flags admin = {{"keep", "state", "data", "line"}, {"delayed"}};
  const std::map<std::string, Flags> kFlags = {
      {"add", {{"name", "opts", "count", "data"}, {}}},
      {"counts", {{}, {"json"}}},
      {"get", {}},
      {"work",
       {{"handler", "worker-name", "concurrency", "exit-when-idle", "prefetch", "lock-duration",
         "stalled-interval"},
        {}}},
      {"pause", {}},
      {"resume", {}},
      {"clean", {{"grace", "limit", "state"}, {}}},
      {"jobs", {{"start", "end", "state"}, {"asc"}}},
      {"logs", {}},
      {"events", {{"count", "timeout", "from"}, {}}},
      {"drain", admin},
      {"remove", admin},
      {"retry", admin},
      {"promote", admin},
      {"progress", admin},
      {"log", admin}};
  auto known = kFlags.find(command);
  if (known == kFlags.end()) {
    std::fprintf(stderr, "jobqueue bull: unknown command '%s'\n\n%s", command.c_str(), kBullHelp);
    return kExitUsage;
  }
  std::set<std::string> values = known->second.values, bools = known->second.bools;
  values.insert({"queue", "prefix", "tls-ca", "service", "env-dir"});
  bools.insert("help");
  absl::StatusOr<Args> args = Args::Parse(rest, values, bools, takes_id ? 1 : 0);
  if (!args.ok()) return Fail(command, args.status(), kExitUsage);
  if (args->Has("help")) return std::fputs(kBullHelp, stdout), 0;
  if (command == "add") return RunAdd(*args);
  if (command == "counts") return RunCounts(*args);
  if (command == "get") return RunGet(*args);
  if (command == "work") return RunWork(*args);
  if (command == "pause") return RunPause(*args, true);
  if (command == "resume") return RunPause(*args, false);
  if (command == "clean") return RunClean(*args);
  if (command == "jobs") return RunJobs(*args);
  if (command == "logs") return RunLogs(*args);
  if (command == "events") return RunEvents(*args);
  if (command == "drain" || command == "remove" || command == "retry" || command == "promote" ||
      command == "progress" || command == "log") {
    return RunAdmin(command, *args);
  }
  std::fprintf(stderr, "jobqueue bull: unknown command '%s'\n\n%s", command.c_str(), kBullHelp);
  return kExitUsage;
}

}  // namespace

void AddBullCommands(std::map<std::string, CommandFn>* commands) { (*commands)["bull"] = RunBull; }

}  // namespace jobqueue::cli
