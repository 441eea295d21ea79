// jobqueue-api: the seeds' HTTP API service in front of the Postgres queue. It loads the "api"
// secret scope (a secret allowed only in workers never reaches it), enqueues jobs, and leaves
// the work to `jobqueue work` processes.
//
//   GET  /healthz          200 {"status":"ok","schema_version":N} when Postgres answers, else 503
//   POST /jobs/TYPE        body: the payload (JSON); query: queue, priority, delay (seconds or
//                          a duration such as 90s), max_attempts, dedupe_key.
//                          201 {"id":N,"inserted":true}; 200 with the live job's id when the
//                          dedupe key is taken; 400 for bad input, with nothing written
//   GET  /jobs/ID          the job's row as JSON; 404 when there is none
//   GET  /stats            counts by queue, type and status
//
// Configuration: DATABASE_URL or SUPABASE_MODE + SUPABASE_DB_URL_<MODE> (see docs/config.md),
// JOBQUEUE_SCHEMA (default ops), API_HOST (default 127.0.0.1), PORT (default 8080; 0 picks a
// free port, printed in the "Listening on" line). SIGTERM/SIGINT: stop accepting, finish the
// requests in flight, exit 0.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "jobqueue/config.h"
#include "jobqueue/job.h"
#include "jobqueue/json.h"
#include "jobqueue/logging.h"
#include "jobqueue/pg_queue.h"

namespace jobqueue {
namespace {

std::atomic<bool> g_stop{false};
extern "C" void OnStopSignal(int) { g_stop.store(true); }

int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return 503;
    default:
      return 500;
  }
}

void Reply(httplib::Response& res, int code, const std::string& json) {
  res.status = code;
  res.set_content(json + "\n", "application/json");
}

void ReplyError(httplib::Response& res, const absl::Status& status) {
  Reply(res, HttpStatusFor(status), absl::StrCat("{\"error\":", JsonQuote(status.message()), "}"));
}

absl::StatusOr<int> IntParam(const httplib::Request& req, const char* name, int fallback) {
  if (!req.has_param(name)) return fallback;
  const std::string text = req.get_param_value(name);
  int value = 0;
  if (!absl::SimpleAtoi(text, &value)) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be an integer"));
  }
  return value;
}

// "2.5" (seconds) or an absl duration such as "90s" or "1h30m".
absl::StatusOr<absl::Duration> DelayParam(const httplib::Request& req) {
  if (!req.has_param("delay")) return absl::ZeroDuration();
  const std::string text = req.get_param_value("delay");
  double seconds = 0;
  absl::Duration delay;
  if (absl::SimpleAtod(text, &seconds)) {
    delay = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &delay)) {
    return absl::InvalidArgumentError("delay must be seconds or a duration such as 90s");
  }
  return delay;
}

absl::StatusOr<NewJob> JobFromRequest(const httplib::Request& req) {
  NewJob job;
  job.job_type = req.matches[1];
  job.payload_json = req.body.empty() ? "{}" : req.body;
  if (req.has_param("queue")) job.options.queue = req.get_param_value("queue");
  if (req.has_param("dedupe_key")) job.options.dedupe_key = req.get_param_value("dedupe_key");
  absl::StatusOr<int> priority = IntParam(req, "priority", job.options.priority);
  if (!priority.ok()) return priority.status();
  job.options.priority = *priority;
  absl::StatusOr<int> max_attempts = IntParam(req, "max_attempts", job.options.max_attempts);
  if (!max_attempts.ok()) return max_attempts.status();
  job.options.max_attempts = *max_attempts;
  absl::StatusOr<absl::Duration> delay = DelayParam(req);
  if (!delay.ok()) return delay.status();
  job.options.delay = *delay;
  return job;  // PgQueue::Enqueue validates names, JSON, ranges and the delay's sign
}

void AddRoutes(httplib::Server& server, PgQueue& queue) {
  server.Get("/healthz", [&](const httplib::Request&, httplib::Response& res) {
    absl::StatusOr<int> version = queue.SchemaVersion();
    if (!version.ok()) {
      Reply(res, 503,
            absl::StrCat("{\"status\":\"unavailable\",\"error\":",
                         JsonQuote(version.status().message()), "}"));
      return;
    }
    Reply(res, 200, absl::StrCat("{\"status\":\"ok\",\"schema_version\":", *version, "}"));
  });
  server.Post(R"(/jobs/([^/]+))", [&](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<NewJob> job = JobFromRequest(req);
    if (!job.ok()) return ReplyError(res, job.status());
    absl::StatusOr<EnqueueResult> added = queue.Enqueue(*job);
    if (!added.ok()) return ReplyError(res, added.status());
    Reply(res, added->inserted ? 201 : 200,
          absl::StrCat("{\"id\":", added->id, ",\"inserted\":", added->inserted ? "true" : "false",
                       "}"));
  });
  server.Get(R"(/jobs/(\d{1,18}))", [&](const httplib::Request& req, httplib::Response& res) {
    int64_t id = 0;
    if (!absl::SimpleAtoi(std::string(req.matches[1]), &id)) {
      return ReplyError(res, absl::InvalidArgumentError("job id must be a positive integer"));
    }
    absl::StatusOr<Job> job = queue.Get(id);
    if (!job.ok()) return ReplyError(res, job.status());
    Reply(res, 200, JobToJson(*job));
  });
  server.Get("/stats", [&](const httplib::Request&, httplib::Response& res) {
    absl::StatusOr<std::vector<StatusCount>> counts = queue.Counts();
    if (!counts.ok()) return ReplyError(res, counts.status());
    Reply(res, 200, StatusCountsToJson(*counts));
  });
  server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) {
      Reply(res, res.status, absl::StrCat("{\"error\":\"HTTP ", res.status, "\"}"));
    }
  });
  server.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    Log(LogLevel::kDebug, absl::StrCat(req.method, " ", req.path, " ", res.status));
  });
}

std::string EnvOr(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

int Run() {
  ConfigOptions options;
  options.service = "api";
  absl::StatusOr<Config> config = Config::Load(options);
  if (!config.ok()) {
    std::fprintf(stderr, "jobqueue-api: %s\n", config.status().ToString().c_str());
    return ExitCodeForConfigError(config.status());
  }
  ConfigureLogging(config->logging_options());
  if (config->database_url().empty()) {
    std::fprintf(stderr,
                 "jobqueue-api: no database configured: set DATABASE_URL, or SUPABASE_MODE with "
                 "SUPABASE_DB_URL_<MODE>\n");
    return kExitConfigError;
  }
  const std::string host = EnvOr("API_HOST", "127.0.0.1");
  int port = 0;
  if (!absl::SimpleAtoi(EnvOr("PORT", "8080"), &port) || port < 0 || port > 65535) {
    std::fprintf(stderr, "jobqueue-api: PORT must be 0-65535\n");
    return kExitConfigError;
  }
  PgOptions pg;
  pg.schema = EnvOr("JOBQUEUE_SCHEMA", "ops");
  pg.pool_size = 4;
  pg.application_name = "jobqueue-api";
  absl::StatusOr<std::unique_ptr<PgQueue>> queue = PgQueue::Open(config->database_url(), pg);
  if (!queue.ok()) {
    std::fprintf(stderr, "jobqueue-api: %s\n", queue.status().ToString().c_str());
    return 1;
  }

  httplib::Server server;
  server.set_payload_max_length(1 << 20);
  AddRoutes(server, **queue);
  const int bound = port == 0                         ? server.bind_to_any_port(host)
                    : server.bind_to_port(host, port) ? port
                                                      : -1;
  if (bound <= 0) {
    std::fprintf(stderr, "jobqueue-api: cannot listen on %s:%d\n", host.c_str(), port);
    return 1;
  }
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
  std::thread stopper([&server] {
    while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server.stop();
  });
  Log(LogLevel::kInfo,
      absl::StrCat("Starting API (env=", EnvironmentName(config->environment()), ")"));
  Log(LogLevel::kInfo, absl::StrCat("Schema: ", pg.schema));
  Log(LogLevel::kInfo, absl::StrCat("Listening on http://", host, ":", bound));
  const bool listened = server.listen_after_bind();
  g_stop.store(true);
  stopper.join();
  Log(LogLevel::kInfo, "API stopped");
  return listened ? 0 : 1;
}

}  // namespace
}  // namespace jobqueue

int main() { return jobqueue::Run(); }
