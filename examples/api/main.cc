// jobqueue-api: the seeds' HTTP API service in front of the Postgres queue. It loads the "api"
// secret scope (a secret allowed only in workers never reaches it), enqueues jobs, and leaves
// the work to `jobqueue work` processes.
//
//   GET  /healthz          200 {"status":"ok","schema_version":N} when Postgres answers, else 503
//   POST /jobs/TYPE        body: the payload, Content-Type application/json (an empty body is
//                          {}), at most 1 MiB; URL query: queue, priority, delay (seconds or
//                          a duration such as 90s), max_attempts, dedupe_key.
//                          201 {"id":N,"inserted":true}; 200 with the live job's id when the
//                          dedupe key is taken; 400 for bad input, 415 for another content
//                          type or a Content-Encoding, 411 for a body without Content-Length
//                          (chunked), 413 over 1 MiB, 400 for a Content-Length that is not
//                          one number, with nothing written; a client that sends Expect:
//                          100-continue hears these before it sends the body. Every
//                          connection serves one request.
//   GET  /jobs/ID          the job's row as JSON; 404 when there is none
//   GET  /stats            counts by queue, type and status
//   POST /bull/QUEUE/NAME  adds a BullMQ job on Redis (body: its data, application/json; URL
//                          query opts: Node JobsOptions as JSON). 201 {"id":"..."}. Only the
//                          queues listed in BULL_QUEUES (comma-separated); 404 for others,
//                          503 without REDIS_URL
//
// Configuration: DATABASE_URL or SUPABASE_MODE + SUPABASE_DB_URL_<MODE> (docs/configuration.md),
// REDIS_URL and BULL_QUEUES for the BullMQ route, JOBQUEUE_SCHEMA (default ops), API_HOST
// (default 127.0.0.1), PORT (default 8080; 0 picks a free port, printed in the "Listening on"
// line), all from the environment or .env. SIGTERM/SIGINT: stop accepting, finish the requests
// in flight for up to SHUTDOWN_TIMEOUT (default 10s), exit 0. Server-side
// failures answer a generic message (the details, which name hosts and statements, go to the log).
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "jobqueue/bull_queue.h"
#include "jobqueue/config.h"
#include "jobqueue/duration.h"
#include "jobqueue/job.h"
#include "jobqueue/json.h"
#include "jobqueue/logging.h"
#include "jobqueue/pg_queue.h"

namespace jobqueue {
namespace {

constexpr int kHttpThreads = 32;
constexpr uint64_t kMaxBodyBytes = 1 << 20;

std::atomic<bool> g_stop{false};
extern "C" void OnStopSignal(int) { g_stop.store(true); }

int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAborted:  // a conflict that a retry resolves
    case absl::StatusCode::kAlreadyExists:
      return 409;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kCancelled:
      return 503;
    default:
      return 500;
  }
}

void Reply(httplib::Response& res, int code, const std::string& json) {
  res.status = code;
  res.set_content(json + "\n", "application/json");
}

// What a client may read of an error: client errors as they are; server errors (which name
// hosts and statements) are logged and summed up.
enum class Backend { kPostgres, kRedis };

std::string PublicMessage(const absl::Status& status, Backend backend = Backend::kPostgres) {
  const int code = HttpStatusFor(status);
  if (code < 500) return std::string(status.message());
  Log(LogLevel::kError, status.ToString());
  if (backend == Backend::kRedis) {
    return code == 503 ? "Redis cannot take the job now; try again" : "internal error";
  }
  if (status.code() == absl::StatusCode::kFailedPrecondition) {
    return "the job table is not migrated; run jobqueue migrate";
  }
  return code == 503 ? "the database is unavailable; try again" : "internal error";
}

void ReplyError(httplib::Response& res, const absl::Status& status,
                Backend backend = Backend::kPostgres) {
  Reply(res, HttpStatusFor(status),
        absl::StrCat("{\"error\":", JsonQuote(PublicMessage(status, backend)), "}"));
}

bool IsJsonType(absl::string_view type) {
  const std::string lower = absl::AsciiStrToLower(type);
  return lower == "application/json" || absl::StartsWith(lower, "application/json;");
}

// Runs before httplib reads a body. Its 1 MiB limit holds only for bodies sent with
// Content-Length: it would read a chunked body whole and inflate a gzip one without limit. So
// a body must come uncompressed, with one all-digit Content-Length, as JSON; otherwise it is
// refused unread. The connection then ends (each serves one request: httplib 0.11 keeps a
// connection open whatever a handler says, and would take the unread body for a request).
httplib::Server::HandlerResponse CheckBodyFraming(const httplib::Request& req,
                                                  httplib::Response& res) {
  auto refuse = [&](int code, absl::string_view error) {
    Reply(res, code, absl::StrCat("{\"error\":", JsonQuote(error), "}"));
    return httplib::Server::HandlerResponse::Handled;
  };
  // httplib reads a DELETE (or PRI) body without Content-Length until the client closes, past
  // the payload limit; no route here takes other methods anyway.
  if (req.method != "GET" && req.method != "HEAD" && req.method != "POST") {
    res.set_header("Allow", "GET, HEAD, POST");
    return refuse(405, "method not allowed: use GET or POST");
  }
  const size_t lengths = req.get_header_value_count("Content-Length");
  const std::string length = req.get_header_value("Content-Length");
  const bool decimal = !length.empty() && length.size() <= 18 &&
                       std::all_of(length.begin(), length.end(), absl::ascii_isdigit);
  if (lengths > 1 || (lengths == 1 && !decimal)) {
    return refuse(400, "Content-Length must be one decimal number");
  }
  uint64_t body_bytes = 0;
  if (decimal && absl::SimpleAtoi(length, &body_bytes) && body_bytes > kMaxBodyBytes) {
    return refuse(413, "the body is over 1 MiB");  // before a 100 Continue, not after
  }
  const std::string encoding = req.get_header_value("Content-Encoding");
  if (!encoding.empty() && !absl::EqualsIgnoreCase(encoding, "identity")) {
    return refuse(415, "send the body uncompressed (no Content-Encoding)");
  }
  // Without Content-Length httplib reads a POST body until the client closes.
  if (req.has_header("Transfer-Encoding") ||
      (req.method == "POST" && !req.has_header("Content-Length"))) {
    return refuse(411, "send the body with Content-Length (chunked bodies are not accepted)");
  }
  if (!length.empty() && length != "0" && !IsJsonType(req.get_header_value("Content-Type"))) {
    return refuse(415, "the body must be sent as Content-Type: application/json");
  }
  return httplib::Server::HandlerResponse::Unhandled;
}

// Options come from the URL's query only: httplib also parses form-encoded bodies into params.
httplib::Params QueryParams(const httplib::Request& req) {
  httplib::Params params;
  const size_t question = req.target.find('?');
  if (question != std::string::npos) {
    httplib::detail::parse_query_text(req.target.substr(question + 1), params);
  }
  return params;
}

std::optional<std::string> Param(const httplib::Params& params, const char* name) {
  auto it = params.find(name);
  if (it == params.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<int> IntParam(const httplib::Params& params, const char* name, int fallback) {
  std::optional<std::string> text = Param(params, name);
  if (!text) return fallback;
  int value = 0;
  if (!absl::SimpleAtoi(*text, &value)) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be an integer"));
  }
  return value;
}

// "2.5" (seconds) or an absl duration such as "90s" or "1h30m".
absl::StatusOr<absl::Duration> DelayParam(const httplib::Params& params) {
  std::optional<std::string> text = Param(params, "delay");
  if (!text) return absl::ZeroDuration();
  absl::StatusOr<absl::Duration> delay = ParseSecondsOrDuration(*text);
  if (!delay.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("delay ", delay.status().message()));
  }
  return delay;
}

absl::StatusOr<NewJob> JobFromRequest(const httplib::Request& req) {
  NewJob job;
  job.job_type = req.matches[1];
  job.payload_json = req.body.empty() ? "{}" : req.body;
  const httplib::Params params = QueryParams(req);
  if (auto queue = Param(params, "queue")) job.options.queue = *queue;
  if (auto key = Param(params, "dedupe_key")) job.options.dedupe_key = *key;
  absl::StatusOr<int> priority = IntParam(params, "priority", job.options.priority);
  if (!priority.ok()) return priority.status();
  job.options.priority = *priority;
  absl::StatusOr<int> max_attempts = IntParam(params, "max_attempts", job.options.max_attempts);
  if (!max_attempts.ok()) return max_attempts.status();
  job.options.max_attempts = *max_attempts;
  absl::StatusOr<absl::Duration> delay = DelayParam(params);
  if (!delay.ok()) return delay.status();
  job.options.delay = *delay;
  return job;  // PgQueue::Enqueue validates names, JSON, ranges and the delay's sign
}

// The BullMQ queues this API may add to, opened on first use and kept.
class BullQueues {
 public:
  BullQueues(Secret redis_url, absl::string_view allowed) : redis_url_(std::move(redis_url)) {
    for (absl::string_view name : absl::StrSplit(allowed, ',', absl::SkipWhitespace())) {
      allowed_.insert(std::string(absl::StripAsciiWhitespace(name)));
    }
  }

  absl::StatusOr<BullQueue*> Get(const std::string& name) {
    if (!allowed_.contains(name)) {
      return absl::NotFoundError(
          absl::StrCat("BullMQ queue \"", name.substr(0, 64), "\" is not in BULL_QUEUES"));
    }
    if (redis_url_.empty()) return absl::UnavailableError("REDIS_URL is not set");
    absl::MutexLock lock(&mu_);
    std::unique_ptr<BullQueue>& queue = open_[name];
    if (queue == nullptr) {
      BullQueueOptions options;
      options.pool_size = 2;
      absl::StatusOr<std::unique_ptr<BullQueue>> opened =
          BullQueue::Open(redis_url_, name, options);
      if (!opened.ok()) return opened.status();
      queue = *std::move(opened);
    }
    return queue.get();
  }

 private:
  const Secret redis_url_;
  absl::flat_hash_set<std::string> allowed_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<BullQueue>> open_ ABSL_GUARDED_BY(mu_);
};

void AddRoutes(httplib::Server& server, PgQueue& queue, BullQueues& bull) {
  server.set_pre_routing_handler(CheckBodyFraming);
  // A client that asks before sending its body (curl does for large and chunked ones) hears
  // the refusal instead of 100 Continue; told to go on, it could still be sending when the
  // refusal closes the connection, and see a reset instead of the reply.
  server.set_expect_100_continue_handler([](const httplib::Request& req, httplib::Response& res) {
    return CheckBodyFraming(req, res) == httplib::Server::HandlerResponse::Handled ? res.status
                                                                                   : 100;
  });
  server.Get("/healthz", [&](const httplib::Request&, httplib::Response& res) {
    absl::StatusOr<int> version = queue.SchemaVersion();
    if (!version.ok()) {
      // Whatever the cause (a refused role, a dropped table), this instance cannot serve: 503.
      const std::string message = HttpStatusFor(version.status()) == 503
                                      ? PublicMessage(version.status())
                                      : PublicMessage(absl::UnavailableError(absl::StrCat(
                                            "health check: ", version.status().ToString())));
      Reply(res, 503,
            absl::StrCat("{\"status\":\"unavailable\",\"error\":", JsonQuote(message), "}"));
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
  server.Post(R"(/bull/([^/]+)/([^/]+))", [&](const httplib::Request& req, httplib::Response& res) {
    const std::string data = req.body.empty() ? "{}" : req.body;
    absl::Status valid = ValidateJson(data);
    if (!valid.ok()) return ReplyError(res, valid);
    const std::optional<std::string> opts = Param(QueryParams(req), "opts");
    absl::StatusOr<BullJobOptions> options = ParseBullJobOptions(opts.value_or("{}"));
    if (!options.ok()) return ReplyError(res, options.status());
    absl::StatusOr<BullQueue*> target = bull.Get(req.matches[1]);
    if (!target.ok()) return ReplyError(res, target.status(), Backend::kRedis);
    absl::StatusOr<std::string> id = (*target)->Add(std::string(req.matches[2]), data, *options);
    if (!id.ok()) return ReplyError(res, id.status(), Backend::kRedis);
    Reply(res, 201, absl::StrCat("{\"id\":", JsonQuote(*id), "}"));
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

// From the environment or a .env file, like every other setting.
std::string SettingOr(const Config& config, const char* name, const char* fallback) {
  std::optional<std::string> value = config.Get(name);
  return value.has_value() && !value->empty() ? *value : fallback;
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
  const std::string host = SettingOr(*config, "API_HOST", "127.0.0.1");
  int port = 0;
  if (!absl::SimpleAtoi(SettingOr(*config, "PORT", "8080"), &port) || port < 0 || port > 65535) {
    std::fprintf(stderr, "jobqueue-api: PORT must be 0-65535\n");
    return kExitConfigError;
  }
  PgOptions pg;
  pg.schema = SettingOr(*config, "JOBQUEUE_SCHEMA", "ops");
  pg.pool_size = 4;
  pg.application_name = "jobqueue-api";
  absl::StatusOr<std::unique_ptr<PgQueue>> queue = PgQueue::Open(config->database_url(), pg);
  if (!queue.ok()) {
    std::fprintf(stderr, "jobqueue-api: %s\n", queue.status().ToString().c_str());
    return 1;
  }

  BullQueues bull(config->redis_url(), config->Get("BULL_QUEUES").value_or(""));

  absl::StatusOr<absl::Duration> shutdown_timeout =
      ParseSecondsOrDuration(SettingOr(*config, "SHUTDOWN_TIMEOUT", "10s"));
  if (!shutdown_timeout.ok()) {
    std::fprintf(stderr, "jobqueue-api: SHUTDOWN_TIMEOUT %s\n",
                 std::string(shutdown_timeout.status().message()).c_str());
    return kExitConfigError;
  }

  httplib::Server server;
  server.set_payload_max_length(kMaxBodyBytes);
  // A connection holds a thread while it trickles in its headers (httplib has no deadline for
  // the whole request): more threads than httplib's 8, and short idle keep-alives.
  server.new_task_queue = [] { return new httplib::ThreadPool(kHttpThreads); };
  server.set_keep_alive_timeout(2);
  // One request per connection: see CheckBodyFraming.
  server.set_keep_alive_max_count(1);
  AddRoutes(server, **queue, bull);
  const int bound = port == 0                         ? server.bind_to_any_port(host)
                    : server.bind_to_port(host, port) ? port
                                                      : -1;
  if (bound <= 0) {
    std::fprintf(stderr, "jobqueue-api: cannot listen on %s:%d\n", host.c_str(), port);
    return 1;
  }
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
  std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not end the service
  std::atomic<bool> listen_returned{false};
  // stop() does nothing before listen has started: wait for that, then call it once.
  std::thread stopper([&server, &listen_returned, grace = *shutdown_timeout] {
    while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    while (!listen_returned.load() && !server.is_running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (listen_returned.load()) return;
    server.stop();
    // Requests still open after the grace period (a client that never finishes sending) must
    // not keep the service from exiting.
    const absl::Time deadline = absl::Now() + grace;
    while (!listen_returned.load()) {
      if (absl::Now() >= deadline) {
        Log(LogLevel::kWarn, "requests still open after SHUTDOWN_TIMEOUT; exiting without them");
        Log(LogLevel::kInfo, "API stopped");
        std::fflush(nullptr);
        std::_Exit(0);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  Log(LogLevel::kInfo,
      absl::StrCat("Starting API (env=", EnvironmentName(config->environment()), ")"));
  Log(LogLevel::kInfo, absl::StrCat("Schema: ", pg.schema));
  Log(LogLevel::kInfo, absl::StrCat("Listening on http://", host, ":", bound));
  const bool listened = server.listen_after_bind();
  listen_returned.store(true);
  g_stop.store(true);
  stopper.join();
  Log(LogLevel::kInfo, "API stopped");
  return listened ? 0 : 1;
}

}  // namespace
}  // namespace jobqueue

int main() { return jobqueue::Run(); }
