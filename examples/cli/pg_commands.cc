// The Postgres subcommands of the jobqueue CLI: migrate, enqueue, work, stats, get, cancel,
// stale, recover, retry, purge.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/handlers.h"
#include "jobqueue/config.h"
#include "jobqueue/json.h"
#include "jobqueue/logging.h"
#include "jobqueue/maintenance.h"
#include "jobqueue/pg_queue.h"
#include "jobqueue/status.h"
#include "jobqueue/worker.h"

namespace jobqueue::cli {
namespace {

constexpr int kExitError = 1;

// Flags every Postgres subcommand takes.
const std::set<std::string> kCommonValueFlags = {"schema", "service", "env-dir"};

int Fail(absl::string_view command, const absl::Status& status, int code = kExitError) {
  std::fprintf(stderr, "jobqueue %s: %s\n", std::string(command).c_str(),
               status.ToString().c_str());
  return code;
}

int Usage(absl::string_view command, absl::string_view message) {
  std::fprintf(stderr, "jobqueue %s: %s (see jobqueue %s --help)\n", std::string(command).c_str(),
               std::string(message).c_str(), std::string(command).c_str());
  return kExitUsage;
}

absl::StatusOr<Args> ParseFor(const std::vector<std::string>& argv,
                              std::set<std::string> value_flags, std::set<std::string> bool_flags,
                              size_t max_positional = 0) {
  value_flags.insert(kCommonValueFlags.begin(), kCommonValueFlags.end());
  bool_flags.insert("help");
  return Args::Parse(argv, value_flags, bool_flags, max_positional);
}

struct Session {
  Config config;
  std::unique_ptr<PgQueue> queue;
};

struct SessionError {
  int exit_code;
  absl::Status status;
};

// A session, or why there is none (configuration errors keep their own exit codes).
class SessionOr {
 public:
  SessionOr(Session session) : session_(std::move(session)) {}                             // NOLINT
  SessionOr(SessionError error) : error_(std::move(error)) {}                              // NOLINT
  SessionOr(absl::Status status) : error_{SessionError{kExitError, std::move(status)}} {}  // NOLINT
  bool ok() const { return session_.has_value(); }
  Session* operator->() { return &*session_; }
  int Fail(absl::string_view command) const {
    return cli::Fail(command, error_->status, error_->exit_code);
  }

 private:
  std::optional<Session> session_;
  std::optional<SessionError> error_;
};

// Loads the configuration (scope "cli" unless --service says otherwise) and opens the queue.
SessionOr Open(const Args& args, int pool_size = 2, PgOptions pg = {}) {
  ConfigOptions options;
  options.service = args.GetOr("service", "cli");
  options.env_dir = args.GetOr("env-dir", ".");
  absl::StatusOr<Config> loaded = Config::Load(options);
  if (!loaded.ok()) {
    return SessionError{ExitCodeForConfigError(loaded.status()), loaded.status()};
  }
  Config config = *std::move(loaded);
  ConfigureLogging(config.logging_options());
  if (config.database_url().empty()) {
    return SessionError{kExitConfigError, absl::FailedPreconditionError(
                                              "no database configured: set DATABASE_URL, "
                                              "or SUPABASE_MODE with SUPABASE_DB_URL_<MODE>")};
  }
  // JOBQUEUE_SCHEMA from the environment or .env, like the API and the workers.
  pg.schema = args.GetOr("schema", config.Get("JOBQUEUE_SCHEMA").value_or("ops"));
  pg.pool_size = pool_size;
  pg.application_name = "jobqueue-cli";
  absl::StatusOr<std::unique_ptr<PgQueue>> queue = PgQueue::Open(config.database_url(), pg);
  if (!queue.ok()) return queue.status();
  return Session{std::move(config), *std::move(queue)};
}

std::string TimeText(std::optional<absl::Time> time) {
  if (!time) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", *time, absl::UTCTimeZone());
}

// A built-in handler for smoke tests and benchmarks.
absl::StatusOr<JobHandler> BuiltInHandler(const std::string& spec) {
  JQ_ASSIGN_OR_RETURN(BuiltIn builtin, ParseBuiltInHandler(spec));
  return JobHandler([builtin](JobContext& job) {
    return builtin(job.lease().payload_json, [&job] { return job.stopping(); });
  });
}

constexpr char kMigrateHelp[] =
    "usage: jobqueue migrate [--schema S] [--lock-timeout DURATION]\n"
    "  Creates or upgrades <schema>.job_queue (default ops). Safe to run concurrently.\n"
    "  Gives up, changing nothing, when the table stays locked by other transactions for\n"
    "  --lock-timeout (default 5s).\n";

int RunMigrate(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = ParseFor(argv, {"lock-timeout"}, {});
  if (!args.ok()) return Usage("migrate", args.status().message());
  if (args->Has("help")) return std::fputs(kMigrateHelp, stdout), 0;
  PgOptions defaults;
  if (std::optional<std::string> text = args->Get("lock-timeout")) {
    absl::StatusOr<absl::Duration> timeout = ParseDurationFlag("lock-timeout", *text);
    if (!timeout.ok()) return Usage("migrate", timeout.status().message());
    defaults.migrate_lock_timeout = *timeout;
  }
  SessionOr session = Open(*args, 2, defaults);
  if (!session.ok()) return session.Fail("migrate");
  absl::StatusOr<int> version = session->queue->Migrate();
  if (!version.ok()) return Fail("migrate", version.status());
  std::printf("%s.job_queue is at schema version %d\n", session->queue->options().schema.c_str(),
              *version);
  return 0;
}

constexpr char kEnqueueHelp[] =
    "usage: jobqueue enqueue --type T --payload JSON [--queue Q] [--count N] [--delay S]\n"
    "                        [--priority P] [--max-attempts N] [--dedupe-key K] [--schema S]\n"
    "  Adds a job (or N identical jobs, in batches of 1000) and prints its id.\n";

int RunEnqueue(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = ParseFor(
      argv,
      {"type", "payload", "queue", "count", "delay", "priority", "max-attempts", "dedupe-key"}, {});
  if (!args.ok()) return Usage("enqueue", args.status().message());
  if (args->Has("help")) return std::fputs(kEnqueueHelp, stdout), 0;
  absl::StatusOr<std::string> type = args->Require("type");
  if (!type.ok()) return Usage("enqueue", type.status().message());
  NewJob job;
  job.job_type = *type;
  job.payload_json = args->GetOr("payload", "{}");
  job.options.queue = args->GetOr("queue", "default");
  job.options.dedupe_key = args->GetOr("dedupe-key", "");
  int64_t count = 1;
  auto parse = [&]() -> absl::Status {
    if (auto v = args->Get("count")) {
      JQ_ASSIGN_OR_RETURN(count, ParseIntFlag("count", *v));
    }
    if (count < 1 || count > 10'000'000) {
      return absl::InvalidArgumentError("--count must be 1..10000000");
    }
    if (count > 1 && !job.options.dedupe_key.empty()) {
      // A dedupe key allows one live job: the rest would be counted as enqueued and not be.
      return absl::InvalidArgumentError("--count must be 1 with --dedupe-key");
    }
    if (auto v = args->Get("delay")) {
      JQ_ASSIGN_OR_RETURN(job.options.delay, ParseDurationFlag("delay", *v));
    }
    if (auto v = args->Get("priority")) {
      JQ_ASSIGN_OR_RETURN(job.options.priority, ParseInt32Flag("priority", *v));
    }
    if (auto v = args->Get("max-attempts")) {
      JQ_ASSIGN_OR_RETURN(job.options.max_attempts, ParseInt32Flag("max-attempts", *v));
    }
    return absl::OkStatus();
  };
  if (absl::Status s = parse(); !s.ok()) return Usage("enqueue", s.message());
  SessionOr session = Open(*args);
  if (!session.ok()) return session.Fail("enqueue");
  if (count == 1) {
    absl::StatusOr<EnqueueResult> added = session->queue->Enqueue(job);
    if (!added.ok()) return Fail("enqueue", added.status());
    std::printf("%lld%s\n", static_cast<long long>(added->id),
                added->inserted ? "" : " (existing job with this dedupe key)");
    return 0;
  }
  int64_t done = 0;
  int64_t first_id = 0, last_id = 0;
  while (done < count) {
    std::vector<NewJob> batch(static_cast<size_t>(std::min<int64_t>(1000, count - done)), job);
    absl::StatusOr<std::vector<EnqueueResult>> added = session->queue->EnqueueMany(batch);
    if (!added.ok()) {
      std::fprintf(stderr, "jobqueue enqueue: %lld of %lld jobs were enqueued before the error\n",
                   static_cast<long long>(done), static_cast<long long>(count));
      return Fail("enqueue", added.status());
    }
    if (done == 0) first_id = added->front().id;
    last_id = added->back().id;
    done += static_cast<int64_t>(added->size());
  }
  std::printf("enqueued %lld jobs (ids %lld..%lld)\n", static_cast<long long>(done),
              static_cast<long long>(first_id), static_cast<long long>(last_id));
  return 0;
}

constexpr char kWorkHelp[] =
    "usage: jobqueue work --types T1,T2 --handler H [--queue Q] [--concurrency N] [--batch N]\n"
    "                     [--dispatchers N] [--exit-when-idle SECONDS] [--name NAME]\n"
    "                     [--poll-interval S] [--transaction-budget DURATION] [--schema S]\n"
    "                     [--heartbeat-interval D (30s)] [--stale-after D (30m)]\n"
    "                     [--completed-older-than D (168h)] [--failed-older-than D (720h)]\n"
    "                     [--no-maintenance] [--delete-completed]\n"
    "  Runs a worker with a built-in handler: noop, echo (result = payload), fail[:message],\n"
    "  sleep:MS. SIGTERM/SIGINT stop it gracefully; a second one (a second or more later)\n"
    "  releases running jobs at once. Prints its counts when it stops.\n"
    "  --transaction-budget (e.g. 200ms): short-job mode, one row write per job that finishes\n"
    "  within the budget (see docs/postgres.md).\n"
    "  --delete-completed: a completed job's row is deleted, not kept as 'completed'.\n"
    "  Beside the worker run the stale-lock reaper (every minute: jobs without a heartbeat for\n"
    "  --stale-after go back to pending) and retention (hourly: finished jobs past their age are\n"
    "  deleted). With many workers one acts per sweep. --no-maintenance leaves both to others.\n";

// The reaper and the retention cleaner a worker service runs beside its worker.
struct WorkMaintenance {
  bool enabled = true;
  RecoverOptions recover;
  PurgeOptions purge;
};

int RunWork(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args =
      ParseFor(argv,
               {"types", "handler", "queue", "concurrency", "batch", "dispatchers",
                "exit-when-idle", "name", "poll-interval", "transaction-budget",
                "heartbeat-interval", "stale-after", "completed-older-than", "failed-older-than"},
               {"no-maintenance", "delete-completed"});
  if (!args.ok()) return Usage("work", args.status().message());
  if (args->Has("help")) return std::fputs(kWorkHelp, stdout), 0;
  absl::StatusOr<std::string> types = args->Require("types");
  if (!types.ok()) return Usage("work", types.status().message());
  absl::StatusOr<JobHandler> handler = BuiltInHandler(args->GetOr("handler", "noop"));
  if (!handler.ok()) return Usage("work", handler.status().message());
  WorkerOptions options;
  options.name = args->GetOr("name", "CLI");
  options.queue = args->GetOr("queue", "default");
  WorkMaintenance maintenance;
  auto parse = [&]() -> absl::Status {
    if (auto v = args->Get("concurrency")) {
      JQ_ASSIGN_OR_RETURN(options.concurrency, ParseInt32Flag("concurrency", *v));
    }
    if (auto v = args->Get("batch")) {
      JQ_ASSIGN_OR_RETURN(options.batch_size, ParseInt32Flag("batch", *v));
    }
    if (auto v = args->Get("dispatchers")) {
      JQ_ASSIGN_OR_RETURN(options.dispatchers, ParseInt32Flag("dispatchers", *v));
    }
    if (auto v = args->Get("exit-when-idle")) {
      JQ_ASSIGN_OR_RETURN(options.exit_when_idle, ParseDurationFlag("exit-when-idle", *v));
    }
    if (auto v = args->Get("transaction-budget")) {
      JQ_ASSIGN_OR_RETURN(options.transaction_budget, ParseDurationFlag("transaction-budget", *v));
    }
    if (auto v = args->Get("heartbeat-interval")) {
      JQ_ASSIGN_OR_RETURN(options.heartbeat_interval, ParseDurationFlag("heartbeat-interval", *v));
    }
    maintenance.enabled = !args->Has("no-maintenance");
    if (auto v = args->Get("stale-after")) {
      JQ_ASSIGN_OR_RETURN(maintenance.recover.stale_after, ParseAgeFlag("stale-after", *v));
    }
    if (auto v = args->Get("completed-older-than")) {
      JQ_ASSIGN_OR_RETURN(maintenance.purge.completed_older_than,
                          ParseAgeFlag("completed-older-than", *v));
    }
    if (auto v = args->Get("failed-older-than")) {
      JQ_ASSIGN_OR_RETURN(maintenance.purge.failed_older_than,
                          ParseAgeFlag("failed-older-than", *v));
    }
    JQ_RETURN_IF_ERROR(options.Validate());
    // A job heartbeats every heartbeat_interval: a shorter stale timeout would take live jobs.
    if (maintenance.enabled && maintenance.recover.stale_after <= 2 * options.heartbeat_interval) {
      return absl::InvalidArgumentError(
          absl::StrCat("--stale-after (", absl::FormatDuration(maintenance.recover.stale_after),
                       ") must be more than twice --heartbeat-interval (",
                       absl::FormatDuration(options.heartbeat_interval),
                       "), or a running job would be taken from its worker"));
    }
    return absl::OkStatus();
  };
  if (absl::Status s = parse(); !s.ok()) return Usage("work", s.message());
  // The reaper and the cleaner take a connection each while they run.
  PgOptions pg;
  pg.delete_completed = args->Has("delete-completed");
  SessionOr session = Open(*args, options.dispatchers + (maintenance.enabled ? 4 : 2), pg);
  if (!session.ok()) return session.Fail("work");
  options.environment = std::string(EnvironmentName(session->config.environment()));
  options.poll_interval = session->config.poll_interval();
  if (auto v = args->Get("poll-interval")) {
    absl::StatusOr<absl::Duration> poll = ParseDurationFlag("poll-interval", *v);
    if (!poll.ok() || *poll <= absl::ZeroDuration()) {
      return Usage("work", "--poll-interval must be a positive duration");
    }
    options.poll_interval = *poll;
  }
  absl::StatusOr<std::unique_ptr<Worker>> worker = Worker::Create(session->queue.get(), options);
  if (!worker.ok()) return Fail("work", worker.status());
  for (absl::string_view type : absl::StrSplit(*types, ',', absl::SkipEmpty())) {
    if (absl::Status s = (*worker)->Register(type, *handler); !s.ok())
      return Usage("work", s.message());
  }
  std::unique_ptr<StaleLockReaper> reaper;
  std::unique_ptr<RetentionCleaner> cleaner;
  if (maintenance.enabled) {
    reaper = std::make_unique<StaleLockReaper>(session->queue.get(), maintenance.recover);
    cleaner = std::make_unique<RetentionCleaner>(session->queue.get(), maintenance.purge);
    Log(LogLevel::kInfo,
        absl::StrCat(
            "Maintenance: stale-lock reaper every ", absl::FormatDuration(reaper->interval()),
            " (stale after ", absl::FormatDuration(maintenance.recover.stale_after),
            "), retention every ", absl::FormatDuration(cleaner->interval()), " (completed after ",
            absl::FormatDuration(maintenance.purge.completed_older_than), ", failed after ",
            absl::FormatDuration(maintenance.purge.failed_older_than), ")"));
    for (Service* service :
         {static_cast<Service*>(reaper.get()), static_cast<Service*>(cleaner.get())}) {
      if (absl::Status s = service->Start(); !s.ok()) return Fail("work", s);
    }
  }
  StopWorkersOnSignals();
  const absl::Time start = absl::Now();
  absl::Status ran = (*worker)->Run();
  if (reaper != nullptr) reaper->Stop();
  if (cleaner != nullptr) cleaner->Stop();
  if (!ran.ok()) return Fail("work", ran);
  const WorkerStats stats = (*worker)->stats();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf("completed %lld, failed %lld, released %lld, lost %lld in %.2fs\n",
              static_cast<long long>(stats.completed), static_cast<long long>(stats.failed),
              static_cast<long long>(stats.released), static_cast<long long>(stats.lost), seconds);
  return 0;
}

constexpr char kStatsHelp[] =
    "usage: jobqueue stats [--json] [--schema S]\n"
    "  Job counts by queue, type and status.\n";

int RunStats(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = ParseFor(argv, {}, {"json"});
  if (!args.ok()) return Usage("stats", args.status().message());
  if (args->Has("help")) return std::fputs(kStatsHelp, stdout), 0;
  SessionOr session = Open(*args);
  if (!session.ok()) return session.Fail("stats");
  absl::StatusOr<std::vector<StatusCount>> counts = session->queue->Counts();
  if (!counts.ok()) return Fail("stats", counts.status());
  if (args->Has("json")) {
    std::printf("%s\n", StatusCountsToJson(*counts).c_str());
    return 0;
  }
  std::printf("%-16s %-32s %-11s %10s\n", "queue", "job_type", "status", "count");
  for (const StatusCount& c : *counts) {
    std::printf("%-16s %-32s %-11s %10lld\n", c.queue.c_str(), c.job_type.c_str(),
                std::string(JobStatusName(c.status)).c_str(), static_cast<long long>(c.count));
  }
  return 0;
}

absl::StatusOr<int64_t> JobIdArgument(const Args& args) {
  int64_t id = 0;
  if (args.positional().size() != 1 || !absl::SimpleAtoi(args.positional()[0], &id) || id < 1) {
    return absl::InvalidArgumentError("expected one job id (a positive integer)");
  }
  return id;
}

int RunGet(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = ParseFor(argv, {}, {"json"}, 1);
  if (!args.ok()) return Usage("get", args.status().message());
  if (args->Has("help")) return std::fputs("usage: jobqueue get ID [--json]\n", stdout), 0;
  absl::StatusOr<int64_t> id = JobIdArgument(*args);
  if (!id.ok()) return Usage("get", id.status().message());
  SessionOr session = Open(*args);
  if (!session.ok()) return session.Fail("get");
  absl::StatusOr<Job> job = session->queue->Get(*id);
  if (!job.ok()) return Fail("get", job.status());
  if (args->Has("json")) {
    std::printf("%s\n", JobToJson(*job).c_str());
    return 0;
  }
  std::printf(
      "id           %lld\nqueue        %s\ntype         %s\nstatus       %s\n"
      "attempts     %d/%d\npriority     %d\nrun_at       %s\nlocked_by    %s\n"
      "last_error   %s\npayload      %s\nresult       %s\ncreated_at   %s\n"
      "finished_at  %s\n",
      static_cast<long long>(job->id), job->queue.c_str(), job->job_type.c_str(),
      std::string(JobStatusName(job->status)).c_str(), job->attempts, job->max_attempts,
      job->priority, TimeText(job->run_at).c_str(), job->locked_by.c_str(), job->last_error.c_str(),
      job->payload_json.c_str(), job->result_json.value_or("").c_str(),
      TimeText(job->created_at).c_str(), TimeText(job->finished_at).c_str());
  return 0;
}

int RunCancel(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = ParseFor(argv, {}, {}, 1);
  if (!args.ok()) return Usage("cancel", args.status().message());
  if (args->Has("help")) return std::fputs("usage: jobqueue cancel ID\n", stdout), 0;
  absl::StatusOr<int64_t> id = JobIdArgument(*args);
  if (!id.ok()) return Usage("cancel", id.status().message());
  SessionOr session = Open(*args);
  if (!session.ok()) return session.Fail("cancel");
  if (absl::Status s = session->queue->Cancel(*id); !s.ok()) return Fail("cancel", s);
  std::printf("cancelled %lld\n", static_cast<long long>(*id));
  return 0;
}

int RunStale(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = ParseFor(argv, {"older-than"}, {"json"});
  if (!args.ok()) return Usage("stale", args.status().message());
  if (args->Has("help")) {
    return std::fputs(
               "usage: jobqueue stale [--older-than DURATION (default 30m)] [--json]\n"
               "  Processing jobs whose last heartbeat is older than DURATION.\n",
               stdout),
           0;
  }
  absl::StatusOr<absl::Duration> older =
      ParseAgeFlag("older-than", args->GetOr("older-than", "30m"));
  if (!older.ok()) return Usage("stale", older.status().message());
  SessionOr session = Open(*args);
  if (!session.ok()) return session.Fail("stale");
  absl::StatusOr<std::vector<StaleJob>> stale = session->queue->ListStale(*older);
  if (!stale.ok()) return Fail("stale", stale.status());
  if (args->Has("json")) {
    std::vector<std::string> rows;
    for (const StaleJob& j : *stale) {
      rows.push_back(absl::StrCat(
          "{\"id\":", j.id, ",\"queue\":", JsonQuote(j.queue),
          ",\"job_type\":", JsonQuote(j.job_type), ",\"locked_by\":", JsonQuote(j.locked_by),
          ",\"attempts\":", j.attempts, ",\"max_attempts\":", j.max_attempts,
          ",\"heartbeat_age_seconds\":", absl::ToDoubleSeconds(j.heartbeat_age), "}"));
    }
    std::printf("[%s]\n", absl::StrJoin(rows, ",").c_str());
    return 0;
  }
  std::printf("%-10s %-24s %-12s %-9s %s\n", "id", "job_type", "age", "attempts", "locked_by");
  for (const StaleJob& j : *stale) {
    std::printf("%-10lld %-24s %-12s %d/%-7d %s\n", static_cast<long long>(j.id),
                j.job_type.c_str(),
                absl::FormatDuration(absl::Trunc(j.heartbeat_age, absl::Seconds(1))).c_str(),
                j.attempts, j.max_attempts, j.locked_by.c_str());
  }
  std::printf("%zu stale job(s)\n", stale->size());
  return 0;
}

int RunRecover(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = ParseFor(argv, {"older-than"}, {});
  if (!args.ok()) return Usage("recover", args.status().message());
  if (args->Has("help")) {
    return std::fputs(
               "usage: jobqueue recover [--older-than DURATION (default 30m)]\n"
               "  Runs the stale-lock reaper now: stale jobs go back to pending, or to\n"
               "  failed when their attempts are spent.\n",
               stdout),
           0;
  }
  RecoverOptions options;
  absl::StatusOr<absl::Duration> older =
      ParseAgeFlag("older-than", args->GetOr("older-than", "30m"));
  if (!older.ok()) return Usage("recover", older.status().message());
  options.stale_after = *older;
  options.max_batches = 1'000'000;  // an operator's sweep runs to the end
  SessionOr session = Open(*args);
  if (!session.ok()) return session.Fail("recover");
  absl::StatusOr<RecoverResult> result = session->queue->RecoverStale(options);
  if (!result.ok()) return Fail("recover", result.status());
  if (!result->acted) {
    std::printf("another process is sweeping right now; nothing done\n");
    return 0;
  }
  for (const RecoveredJob& j : result->jobs) {
    std::printf("%lld %s from %s -> %s\n", static_cast<long long>(j.id), j.job_type.c_str(),
                j.previous_owner.c_str(), std::string(JobStatusName(j.new_status)).c_str());
  }
  std::printf("recovered %zu job(s)\n", result->jobs.size());
  return 0;
}

int RunRetry(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = ParseFor(argv, {"type"}, {});
  if (!args.ok()) return Usage("retry", args.status().message());
  if (args->Has("help")) {
    return std::fputs("usage: jobqueue retry [--type T]\n  Failed jobs back to pending.\n", stdout),
           0;
  }
  SessionOr session = Open(*args);
  if (!session.ok()) return session.Fail("retry");
  absl::StatusOr<int64_t> moved = session->queue->RetryFailed(args->GetOr("type", ""));
  if (!moved.ok()) return Fail("retry", moved.status());
  std::printf("moved %lld failed job(s) back to pending\n", static_cast<long long>(*moved));
  return 0;
}

int RunPurge(const std::vector<std::string>& argv) {
  absl::StatusOr<Args> args = ParseFor(argv, {"completed-older-than", "failed-older-than"}, {});
  if (!args.ok()) return Usage("purge", args.status().message());
  if (args->Has("help")) {
    return std::fputs(
               "usage: jobqueue purge [--completed-older-than D (7d=168h)] "
               "[--failed-older-than D (30d=720h)]\n"
               "  Deletes finished jobs past their retention, in bounded batches.\n",
               stdout),
           0;
  }
  PurgeOptions options;
  auto parse = [&]() -> absl::Status {
    if (auto v = args->Get("completed-older-than")) {
      JQ_ASSIGN_OR_RETURN(options.completed_older_than, ParseAgeFlag("completed-older-than", *v));
    }
    if (auto v = args->Get("failed-older-than")) {
      JQ_ASSIGN_OR_RETURN(options.failed_older_than, ParseAgeFlag("failed-older-than", *v));
    }
    return absl::OkStatus();
  };
  if (absl::Status s = parse(); !s.ok()) return Usage("purge", s.message());
  options.max_batches = 1'000'000;
  SessionOr session = Open(*args);
  if (!session.ok()) return session.Fail("purge");
  absl::StatusOr<int64_t> deleted = session->queue->Purge(options);
  if (!deleted.ok()) return Fail("purge", deleted.status());
  std::printf("deleted %lld finished job(s)\n", static_cast<long long>(*deleted));
  return 0;
}

}  // namespace

void AddPgCommands(std::map<std::string, CommandFn>* commands) {
  (*commands)["migrate"] = RunMigrate;
  (*commands)["enqueue"] = RunEnqueue;
  (*commands)["work"] = RunWork;
  (*commands)["stats"] = RunStats;
  (*commands)["get"] = RunGet;
  (*commands)["cancel"] = RunCancel;
  (*commands)["stale"] = RunStale;
  (*commands)["recover"] = RunRecover;
  (*commands)["retry"] = RunRetry;
  (*commands)["purge"] = RunPurge;
}

}  // namespace jobqueue::cli
