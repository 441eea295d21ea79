// The C API over the C++ library (see include/jobqueue/c.h). Every entry point catches all
// exceptions: none may unwind into C.
#include "jobqueue/c.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "jobqueue/bull_consumer.h"
#include "jobqueue/bull_events.h"
#include "jobqueue/bull_queue.h"
#include "jobqueue/bull_worker.h"
#include "jobqueue/config.h"
#include "jobqueue/job.h"
#include "jobqueue/json.h"
#include "jobqueue/logging.h"
#include "jobqueue/pg_queue.h"
#include "jobqueue/status.h"
#include "jobqueue/version.h"
#include "jobqueue/worker.h"

using jobqueue::Secret;

struct jq_config_options_t {
  jobqueue::ConfigOptions options;
  std::optional<std::map<std::string, std::string>> environment;
};

struct jq_config_t {
  jobqueue::Config config;
  std::string environment;
  std::string supabase_mode;
  std::string database_url_redacted;
  std::string redis_url_redacted;
  std::string log_level;
};

struct jq_pg_options_t {
  jobqueue::PgOptions options;
};

struct jq_pg_queue_t {
  std::unique_ptr<jobqueue::PgQueue> queue;
};

struct jq_enqueue_options_t {
  jobqueue::EnqueueOptions options;
};

struct jq_pg_batch_t {
  std::vector<jobqueue::NewJob> jobs;
};

struct jq_claim_options_t {
  jobqueue::ClaimRequest request;
};

struct jq_pg_lease_t {
  jobqueue::Lease lease;
};

struct jq_pg_job_t {
  jobqueue::Job job;
};

struct jq_pg_counts_t {
  std::vector<jobqueue::StatusCount> rows;
};

struct jq_worker_options_t {
  jobqueue::WorkerOptions options;
};

struct jq_pg_worker_t {
  std::unique_ptr<jobqueue::Worker> worker;
};

struct jq_job_context_t {
  jobqueue::JobContext* context;
  jq_pg_lease_t lease;
  std::optional<std::string> result;
  std::string error;
};

struct jq_bull_options_t {
  jobqueue::BullQueueOptions options;
};

struct jq_bull_queue_t {
  std::unique_ptr<jobqueue::BullQueue> queue;
};

struct jq_bull_worker_options_t {
  jobqueue::BullWorkerOptions options;
};

struct jq_bull_consumer_t {
  std::unique_ptr<jobqueue::BullConsumer> consumer;
};

struct jq_bull_events_t {
  std::unique_ptr<jobqueue::BullQueueEvents> events;
};

struct jq_bull_lease_t {
  jobqueue::BullLease lease;
};

struct jq_bull_worker_t {
  std::unique_ptr<jobqueue::BullWorker> worker;
};

struct jq_bull_job_context_t {
  jobqueue::BullJobContext* context;
  jq_bull_lease_t lease;
  std::optional<std::string> result;
  std::string error;
  bool unrecoverable = false;
  std::string stacktrace;
};

namespace {

char* CopyString(absl::string_view text) {
  char* out = static_cast<char*>(std::malloc(text.size() + 1));
  if (out == nullptr) throw std::bad_alloc();
  std::memcpy(out, text.data(), text.size());
  out[text.size()] = '\0';
  return out;
}

jq_status_t Code(const absl::Status& status) {
  // A lost lease shares kAborted with retryable conflicts (40001, 40P01); C callers must tell
  // them apart.
  if (jobqueue::IsLeaseLost(status)) return JQ_LEASE_LOST;
  return static_cast<jq_status_t>(static_cast<int>(status.code()));
}

// Stores the message (replacing an earlier one) and returns the code.
jq_status_t Report(char** errptr, const absl::Status& status) {
  if (status.ok()) return JQ_OK;
  if (errptr != nullptr) {
    std::free(*errptr);
    *errptr = nullptr;
    // The code is the return value; the message carries the context.
    const absl::string_view message = status.message();
    *errptr = static_cast<char*>(std::malloc(message.size() + 1));
    if (*errptr != nullptr) {
      std::memcpy(*errptr, message.data(), message.size());
      (*errptr)[message.size()] = '\0';
    }
  }
  return Code(status);
}

// Runs `body` (returning absl::Status) for the C entry point `function`, turning exceptions
// into statuses.
template <typename Body>
jq_status_t Guard(const char* function, char** errptr, Body&& body) {
  absl::Status status;
  try {
    status = body();
  } catch (const std::bad_alloc&) {
    status = absl::ResourceExhaustedError("out of memory");
  } catch (const std::exception& e) {
    status = absl::InternalError(absl::StrCat("unexpected exception: ", e.what()));
  } catch (...) {
    status = absl::UnknownError("unexpected non-standard exception");
  }
  if (!status.ok() && !absl::StartsWith(status.message(), function)) {
    status = jobqueue::Annotate(status, function);  // keeps the payload IsLeaseLost() reads
  }
  return Report(errptr, status);
}

// For setters and accessors that cannot report: only allocation can throw there.
template <typename Body>
void Quietly(Body&& body) noexcept {
  try {
    body();
  } catch (...) {
  }
}

absl::Status NullArgument(const char* what) {
  return absl::InvalidArgumentError(absl::StrCat(what, " is NULL"));
}

std::string OrEmpty(const char* text) { return text == nullptr ? std::string() : text; }

std::string DefaultClaimerId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::random_device rd;
  return absl::StrFormat("%s:%d:c%08x", host, getpid(), rd());
}

int64_t UnixMillis(absl::Time time) { return absl::ToUnixMillis(time); }

const char* StrOrEmpty(const std::string* text) { return text == nullptr ? "" : text->c_str(); }

// Wraps each item in a new Handle and returns them as a malloc'd array (NULL when empty).
// Everything is built first, so an allocation failure leaves nothing half-made.
template <typename Handle, typename Item>
Handle** HandleArray(std::vector<Item>& items) {
  if (items.empty()) return nullptr;
  std::vector<std::unique_ptr<Handle>> made;
  made.reserve(items.size());
  for (Item& item : items) made.push_back(std::make_unique<Handle>(Handle{std::move(item)}));
  auto** array = static_cast<Handle**>(std::malloc(made.size() * sizeof(void*)));
  if (array == nullptr) throw std::bad_alloc();
  for (size_t i = 0; i < made.size(); ++i) array[i] = made[i].release();
  return array;
}

template <typename Handle>
void FreeHandleArray(Handle** array, size_t count) {
  if (array == nullptr) return;
  for (size_t i = 0; i < count; ++i) delete array[i];
  std::free(array);
}

// A C handler's failure as a status: its code (UNKNOWN when out of range) and message. Only
// JQ_LEASE_LOST is a lost lease; JQ_ABORTED is an ordinary failure, retried with backoff.
absl::Status HandlerFailure(jq_status_t code, std::string message) {
  if (message.empty()) message = absl::StrCat("handler returned ", jq_status_name(code));
  if (code == JQ_LEASE_LOST) return jobqueue::LeaseLostError(message);
  int raw = static_cast<int>(code);
  if (raw < 1 || raw > static_cast<int>(JQ_UNAUTHENTICATED)) raw = JQ_UNKNOWN;
  return absl::Status(static_cast<absl::StatusCode>(raw), message);
}

// The result and error setters of the Postgres and BullMQ job contexts.
template <typename Context>
void SetContextResult(Context* job, const char* result_json) {
  if (job == nullptr) return;
  Quietly([&] {
    if (result_json == nullptr) {
      job->result.reset();
    } else {
      job->result = result_json;
    }
  });
}

template <typename Context>
void SetContextError(Context* job, const char* message) {
  if (job != nullptr) Quietly([&] { job->error = OrEmpty(message); });
}

// An exit-when-idle option: < 0 means never.
void SetIdleExit(std::optional<absl::Duration>& exit_when_idle, int64_t ms) {
  if (ms < 0) {
    exit_when_idle.reset();
  } else {
    exit_when_idle = absl::Milliseconds(ms);
  }
}

// The reconnect backoff of a Postgres or BullMQ worker.
template <typename Options>
void SetReconnectBackoff(Options& options, int64_t min_ms, int64_t max_ms) {
  options.reconnect_min = absl::Milliseconds(min_ms);
  options.reconnect_max = absl::Milliseconds(max_ms);
}

absl::StatusOr<Secret> ConfigRedisUrl(const jq_config_t* config) {
  if (config == nullptr) return NullArgument("config");
  if (config->config.redis_url().empty()) {
    return absl::FailedPreconditionError("no Redis configured: set REDIS_URL");
  }
  return config->config.redis_url();
}

}  // namespace

// The definitions take C linkage from their declarations in c.h.

// ---- basics ---------------------------------------------------------------------------------

const char* jq_status_name(jq_status_t code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  if (code == JQ_LEASE_LOST) return "LEASE_LOST";
  const int index = static_cast<int>(code);
  if (index < 0 || index >= static_cast<int>(sizeof(kNames) / sizeof(kNames[0]))) {
    return "UNKNOWN";
  }
  return kNames[index];
}

void jq_free(void* ptr) { std::free(ptr); }

const char* jq_version(void) { return JOBQUEUE_VERSION_STRING; }

jq_status_t jq_configure_logging(const char* level, const char* format, const char* service,
                                 char** errptr) {
  return Guard("jq_configure_logging", errptr, [&]() -> absl::Status {
    jobqueue::LoggingOptions options = jobqueue::CurrentLoggingOptions();
    if (level != nullptr) {
      absl::StatusOr<jobqueue::LogLevel> parsed = jobqueue::ParseLogLevel(level);
      if (!parsed.ok()) return parsed.status();
      options.level = *parsed;
    }
    if (format != nullptr) {
      absl::StatusOr<jobqueue::LogFormat> parsed = jobqueue::ParseLogFormat(format);
      if (!parsed.ok()) return parsed.status();
      options.format = *parsed;
    }
    if (service != nullptr) options.service = service;
    jobqueue::ConfigureLogging(options);
    return absl::OkStatus();
  });
}

// ---- configuration --------------------------------------------------------------------------

jq_config_options_t* jq_config_options_create(void) {
  return new (std::nothrow) jq_config_options_t();
}

void jq_config_options_destroy(jq_config_options_t* options) { delete options; }

void jq_config_options_set_service(jq_config_options_t* options, const char* service) {
  if (options != nullptr) Quietly([&] { options->options.service = OrEmpty(service); });
}

void jq_config_options_set_env_dir(jq_config_options_t* options, const char* dir) {
  if (options != nullptr) Quietly([&] { options->options.env_dir = OrEmpty(dir); });
}

void jq_config_options_set_load_env_files(jq_config_options_t* options, int load) {
  if (options != nullptr) options->options.load_env_files = load != 0;
}

void jq_config_options_set_scopes_path(jq_config_options_t* options, const char* path) {
  if (options != nullptr) Quietly([&] { options->options.scopes_path = OrEmpty(path); });
}

void jq_config_options_add_required(jq_config_options_t* options, const char* name) {
  if (options != nullptr && name != nullptr) {
    Quietly([&] { options->options.required.push_back(name); });
  }
}

void jq_config_options_set_allow_prod_database_in_dev(jq_config_options_t* options, int allow) {
  if (options != nullptr) options->options.allow_prod_database_in_dev = allow != 0;
}

void jq_config_options_set_report_only(jq_config_options_t* options, int report_only) {
  if (options != nullptr) options->options.report_only = report_only != 0;
}

void jq_config_options_set_env(jq_config_options_t* options, const char* name, const char* value) {
  if (options == nullptr || name == nullptr) return;
  Quietly([&] {
    if (!options->environment) options->environment.emplace();
    (*options->environment)[name] = OrEmpty(value);
  });
}

jq_status_t jq_config_load(const jq_config_options_t* options, jq_config_t** config,
                           char** errptr) {
  return Guard("jq_config_load", errptr, [&]() -> absl::Status {
    if (options == nullptr) return NullArgument("options");
    if (config == nullptr) return NullArgument("config");
    *config = nullptr;
    jobqueue::ConfigOptions effective = options->options;
    if (options->environment) effective.environment = &*options->environment;
    // Explicit in C: jq_configure_logging and the warnings accessors.
    effective.configure_logging = false;
    absl::StatusOr<jobqueue::Config> loaded = jobqueue::Config::Load(effective);
    if (!loaded.ok()) return loaded.status();
    auto out =
        std::unique_ptr<jq_config_t>(new jq_config_t{*std::move(loaded), "", "", "", "", ""});
    const jobqueue::Config& c = out->config;
    out->environment = std::string(jobqueue::EnvironmentName(c.environment()));
    out->supabase_mode = std::string(jobqueue::SupabaseModeName(c.supabase_mode()));
    out->database_url_redacted = c.database_url().empty() ? "" : c.database_url().Redacted();
    out->redis_url_redacted = c.redis_url().empty() ? "" : c.redis_url().Redacted();
    out->log_level = std::string(jobqueue::LogLevelName(c.log_level()));
    *config = out.release();
    return absl::OkStatus();
  });
}

void jq_config_destroy(jq_config_t* config) { delete config; }

int jq_config_exit_code(jq_status_t code) {
  if (code == JQ_OK) return 0;
  return code == JQ_PERMISSION_DENIED ? jobqueue::kExitScopeViolation : jobqueue::kExitConfigError;
}

const char* jq_config_service(const jq_config_t* config) {
  return config == nullptr ? "" : config->config.service().c_str();
}

const char* jq_config_environment(const jq_config_t* config) {
  return config == nullptr ? "" : config->environment.c_str();
}

const char* jq_config_supabase_mode(const jq_config_t* config) {
  return config == nullptr ? "" : config->supabase_mode.c_str();
}

int jq_config_has_database_url(const jq_config_t* config) {
  return config != nullptr && !config->config.database_url().empty();
}

const char* jq_config_database_url_redacted(const jq_config_t* config) {
  return config == nullptr ? "" : config->database_url_redacted.c_str();
}

const char* jq_config_database_url_source(const jq_config_t* config) {
  return config == nullptr ? "" : config->config.database_url_source().c_str();
}

int jq_config_has_redis_url(const jq_config_t* config) {
  return config != nullptr && !config->config.redis_url().empty();
}

const char* jq_config_redis_url_redacted(const jq_config_t* config) {
  return config == nullptr ? "" : config->redis_url_redacted.c_str();
}

const char* jq_config_log_level(const jq_config_t* config) {
  return config == nullptr ? "" : config->log_level.c_str();
}

int64_t jq_config_poll_interval_ms(const jq_config_t* config) {
  return config == nullptr ? 0 : absl::ToInt64Milliseconds(config->config.poll_interval());
}

void jq_config_configure_logging(const jq_config_t* config) {
  if (config != nullptr) {
    Quietly([&] { jobqueue::ConfigureLogging(config->config.logging_options()); });
  }
}

jq_status_t jq_config_get(const jq_config_t* config, const char* name, char** value,
                          char** errptr) {
  return Guard("jq_config_get", errptr, [&]() -> absl::Status {
    if (config == nullptr) return NullArgument("config");
    if (name == nullptr) return NullArgument("name");
    if (value == nullptr) return NullArgument("value");
    *value = nullptr;
    std::optional<std::string> found = config->config.Get(name);
    if (!found) return absl::NotFoundError(absl::StrCat(name, " is not set"));
    *value = CopyString(*found);
    return absl::OkStatus();
  });
}

jq_status_t jq_config_get_secret(const jq_config_t* config, const char* name, char** value,
                                 char** errptr) {
  return Guard("jq_config_get_secret", errptr, [&]() -> absl::Status {
    if (config == nullptr) return NullArgument("config");
    if (name == nullptr) return NullArgument("name");
    if (value == nullptr) return NullArgument("value");
    *value = nullptr;
    absl::StatusOr<Secret> secret = config->config.GetSecret(name);
    if (!secret.ok()) return secret.status();
    *value = CopyString(secret->Reveal());
    return absl::OkStatus();
  });
}

size_t jq_config_warning_count(const jq_config_t* config) {
  return config == nullptr ? 0 : config->config.warnings().size();
}

const char* jq_config_warning(const jq_config_t* config, size_t index) {
  if (config == nullptr || index >= config->config.warnings().size()) return "";
  return config->config.warnings()[index].c_str();
}

size_t jq_config_scope_violation_count(const jq_config_t* config) {
  return config == nullptr ? 0 : config->config.scope_violations().size();
}

const char* jq_config_scope_violation(const jq_config_t* config, size_t index) {
  if (config == nullptr || index >= config->config.scope_violations().size()) return "";
  return config->config.scope_violations()[index].c_str();
}

// ---- Postgres queue -------------------------------------------------------------------------

jq_pg_options_t* jq_pg_options_create(void) { return new (std::nothrow) jq_pg_options_t(); }

void jq_pg_options_destroy(jq_pg_options_t* options) { delete options; }

void jq_pg_options_set_schema(jq_pg_options_t* options, const char* schema) {
  if (options != nullptr) Quietly([&] { options->options.schema = OrEmpty(schema); });
}

void jq_pg_options_set_pool_size(jq_pg_options_t* options, int pool_size) {
  if (options != nullptr) options->options.pool_size = pool_size;
}

void jq_pg_options_set_connect_timeout_ms(jq_pg_options_t* options, int64_t ms) {
  if (options != nullptr) options->options.connect_timeout = absl::Milliseconds(ms);
}

void jq_pg_options_set_application_name(jq_pg_options_t* options, const char* name) {
  if (options != nullptr) Quietly([&] { options->options.application_name = OrEmpty(name); });
}

void jq_pg_options_set_connections_at_open(jq_pg_options_t* options, int connections) {
  if (options != nullptr) options->options.connections_at_open = connections;
}

void jq_pg_options_set_max_enqueue_statements(jq_pg_options_t* options, int statements) {
  if (options != nullptr) options->options.max_enqueue_statements = statements;
}

void jq_pg_options_set_migrate_lock_timeout_ms(jq_pg_options_t* options, int64_t ms) {
  if (options != nullptr) options->options.migrate_lock_timeout = absl::Milliseconds(ms);
}

void jq_pg_options_set_held_batch_idle_timeout_ms(jq_pg_options_t* options, int64_t ms) {
  if (options != nullptr) options->options.held_batch_idle_timeout = absl::Milliseconds(ms);
}

void jq_pg_options_set_delete_completed(jq_pg_options_t* options, int delete_completed) {
  if (options != nullptr) options->options.delete_completed = delete_completed != 0;
}

void jq_pg_options_set_retry(jq_pg_options_t* options, int64_t base_delay_ms, double multiplier,
                             int64_t max_delay_ms, double jitter) {
  if (options == nullptr) return;
  options->options.retry.base_delay = absl::Milliseconds(base_delay_ms);
  options->options.retry.multiplier = multiplier;
  options->options.retry.max_delay = absl::Milliseconds(max_delay_ms);
  options->options.retry.jitter = jitter;
}

namespace {

absl::Status OpenPg(const Secret& url, const jq_pg_options_t* options, jq_pg_queue_t** queue) {
  if (queue == nullptr) return NullArgument("queue");
  *queue = nullptr;
  const jobqueue::PgOptions defaults;
  absl::StatusOr<std::unique_ptr<jobqueue::PgQueue>> opened =
      jobqueue::PgQueue::Open(url, options != nullptr ? options->options : defaults);
  if (!opened.ok()) return opened.status();
  *queue = new jq_pg_queue_t{*std::move(opened)};
  return absl::OkStatus();
}

}  // namespace

jq_status_t jq_pg_queue_open(const char* database_url, const jq_pg_options_t* options,
                             jq_pg_queue_t** queue, char** errptr) {
  return Guard("jq_pg_queue_open", errptr, [&]() -> absl::Status {
    if (database_url == nullptr) return NullArgument("database_url");
    return OpenPg(Secret::Url(database_url), options, queue);
  });
}

jq_status_t jq_pg_queue_open_config(const jq_config_t* config, const jq_pg_options_t* options,
                                    jq_pg_queue_t** queue, char** errptr) {
  return Guard("jq_pg_queue_open_config", errptr, [&]() -> absl::Status {
    if (config == nullptr) return NullArgument("config");
    if (config->config.database_url().empty()) {
      return absl::FailedPreconditionError(
          "no database configured: set DATABASE_URL, or SUPABASE_MODE with "
          "SUPABASE_DB_URL_<MODE>");
    }
    return OpenPg(config->config.database_url(), options, queue);
  });
}

void jq_pg_queue_close(jq_pg_queue_t* queue) { delete queue; }

jq_status_t jq_pg_queue_migrate(jq_pg_queue_t* queue, int* version, char** errptr) {
  return Guard("jq_pg_queue_migrate", errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    absl::StatusOr<int> migrated = queue->queue->Migrate();
    if (!migrated.ok()) return migrated.status();
    if (version != nullptr) *version = *migrated;
    return absl::OkStatus();
  });
}

jq_enqueue_options_t* jq_enqueue_options_create(void) {
  return new (std::nothrow) jq_enqueue_options_t();
}

void jq_enqueue_options_destroy(jq_enqueue_options_t* options) { delete options; }

void jq_enqueue_options_set_queue(jq_enqueue_options_t* options, const char* queue) {
  if (options != nullptr) Quietly([&] { options->options.queue = OrEmpty(queue); });
}

void jq_enqueue_options_set_delay_ms(jq_enqueue_options_t* options, int64_t delay_ms) {
  if (options != nullptr) options->options.delay = absl::Milliseconds(delay_ms);
}

void jq_enqueue_options_set_run_at_unix_ms(jq_enqueue_options_t* options, int64_t unix_ms) {
  if (options != nullptr) options->options.run_at = absl::FromUnixMillis(unix_ms);
}

void jq_enqueue_options_set_priority(jq_enqueue_options_t* options, int priority) {
  if (options != nullptr) options->options.priority = priority;
}

void jq_enqueue_options_set_max_attempts(jq_enqueue_options_t* options, int max_attempts) {
  if (options != nullptr) options->options.max_attempts = max_attempts;
}

void jq_enqueue_options_set_dedupe_key(jq_enqueue_options_t* options, const char* key) {
  if (options != nullptr) Quietly([&] { options->options.dedupe_key = OrEmpty(key); });
}

namespace {

jobqueue::NewJob MakeJob(const char* job_type, const char* payload_json,
                         const jq_enqueue_options_t* options) {
  jobqueue::NewJob job;
  job.job_type = OrEmpty(job_type);
  if (payload_json != nullptr) job.payload_json = payload_json;
  if (options != nullptr) job.options = options->options;
  return job;
}

}  // namespace

jq_status_t jq_pg_enqueue(jq_pg_queue_t* queue, const char* job_type, const char* payload_json,
                          const jq_enqueue_options_t* options, int64_t* id, int* inserted,
                          char** errptr) {
  return Guard("jq_pg_enqueue", errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    if (job_type == nullptr) return NullArgument("job_type");
    absl::StatusOr<jobqueue::EnqueueResult> added =
        queue->queue->Enqueue(MakeJob(job_type, payload_json, options));
    if (!added.ok()) return added.status();
    if (id != nullptr) *id = added->id;
    if (inserted != nullptr) *inserted = added->inserted ? 1 : 0;
    return absl::OkStatus();
  });
}

jq_pg_batch_t* jq_pg_batch_create(void) { return new (std::nothrow) jq_pg_batch_t(); }

void jq_pg_batch_destroy(jq_pg_batch_t* batch) { delete batch; }

void jq_pg_batch_add(jq_pg_batch_t* batch, const char* job_type, const char* payload_json,
                     const jq_enqueue_options_t* options) {
  if (batch == nullptr) return;
  Quietly([&] { batch->jobs.push_back(MakeJob(job_type, payload_json, options)); });
}

size_t jq_pg_batch_size(const jq_pg_batch_t* batch) {
  return batch == nullptr ? 0 : batch->jobs.size();
}

void jq_pg_batch_clear(jq_pg_batch_t* batch) {
  if (batch != nullptr) batch->jobs.clear();
}

jq_status_t jq_pg_enqueue_batch(jq_pg_queue_t* queue, const jq_pg_batch_t* batch, int64_t* ids,
                                int* inserted, char** errptr) {
  return Guard("jq_pg_enqueue_batch", errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    if (batch == nullptr) return NullArgument("batch");
    if (batch->jobs.empty()) return absl::OkStatus();
    absl::StatusOr<std::vector<jobqueue::EnqueueResult>> added =
        queue->queue->EnqueueMany(batch->jobs);
    if (!added.ok()) return added.status();
    for (size_t i = 0; i < added->size(); ++i) {
      if (ids != nullptr) ids[i] = (*added)[i].id;
      if (inserted != nullptr) inserted[i] = (*added)[i].inserted ? 1 : 0;
    }
    return absl::OkStatus();
  });
}

jq_claim_options_t* jq_claim_options_create(void) {
  jq_claim_options_t* options = new (std::nothrow) jq_claim_options_t();
  if (options != nullptr) Quietly([&] { options->request.worker_id = DefaultClaimerId(); });
  return options;
}

void jq_claim_options_destroy(jq_claim_options_t* options) { delete options; }

void jq_claim_options_set_worker_id(jq_claim_options_t* options, const char* worker_id) {
  if (options != nullptr) Quietly([&] { options->request.worker_id = OrEmpty(worker_id); });
}

void jq_claim_options_set_queue(jq_claim_options_t* options, const char* queue) {
  if (options != nullptr) Quietly([&] { options->request.queue = OrEmpty(queue); });
}

void jq_claim_options_add_job_type(jq_claim_options_t* options, const char* job_type) {
  if (options != nullptr) {
    Quietly([&] { options->request.job_types.push_back(OrEmpty(job_type)); });
  }
}

void jq_claim_options_set_limit(jq_claim_options_t* options, int limit) {
  if (options != nullptr) options->request.limit = limit;
}

jq_status_t jq_pg_claim(jq_pg_queue_t* queue, const jq_claim_options_t* options,
                        jq_pg_lease_t*** leases, size_t* count, char** errptr) {
  return Guard("jq_pg_claim", errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    if (options == nullptr) return NullArgument("options");
    if (leases == nullptr) return NullArgument("leases");
    if (count == nullptr) return NullArgument("count");
    *leases = nullptr;
    *count = 0;
    absl::StatusOr<std::vector<jobqueue::Lease>> claimed = queue->queue->Claim(options->request);
    if (!claimed.ok()) return claimed.status();
    // On an allocation failure the claimed jobs return to pending through the reaper.
    *leases = HandleArray<jq_pg_lease_t>(*claimed);
    *count = claimed->size();
    return absl::OkStatus();
  });
}

void jq_pg_leases_free(jq_pg_lease_t** leases, size_t count) { FreeHandleArray(leases, count); }

void jq_pg_lease_destroy(jq_pg_lease_t* lease) { delete lease; }

int64_t jq_pg_lease_job_id(const jq_pg_lease_t* lease) {
  return lease == nullptr ? 0 : lease->lease.job_id;
}

int jq_pg_lease_attempt(const jq_pg_lease_t* lease) {
  return lease == nullptr ? 0 : lease->lease.attempt;
}

int jq_pg_lease_max_attempts(const jq_pg_lease_t* lease) {
  return lease == nullptr ? 0 : lease->lease.max_attempts;
}

const char* jq_pg_lease_worker_id(const jq_pg_lease_t* lease) {
  return StrOrEmpty(lease == nullptr ? nullptr : &lease->lease.worker_id);
}

const char* jq_pg_lease_queue(const jq_pg_lease_t* lease) {
  return StrOrEmpty(lease == nullptr ? nullptr : &lease->lease.queue);
}

const char* jq_pg_lease_job_type(const jq_pg_lease_t* lease) {
  return StrOrEmpty(lease == nullptr ? nullptr : &lease->lease.job_type);
}

const char* jq_pg_lease_payload(const jq_pg_lease_t* lease) {
  return StrOrEmpty(lease == nullptr ? nullptr : &lease->lease.payload_json);
}

jq_status_t jq_pg_heartbeat(jq_pg_queue_t* queue, const jq_pg_lease_t* lease, char** errptr) {
  return Guard("jq_pg_heartbeat", errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    if (lease == nullptr) return NullArgument("lease");
    return queue->queue->Heartbeat(lease->lease);
  });
}

jq_status_t jq_pg_complete(jq_pg_queue_t* queue, const jq_pg_lease_t* lease,
                           const char* result_json, char** errptr) {
  return Guard("jq_pg_complete", errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    if (lease == nullptr) return NullArgument("lease");
    return queue->queue->Complete(lease->lease, result_json == nullptr ? "null" : result_json);
  });
}

jq_status_t jq_pg_complete_many(jq_pg_queue_t* queue, jq_pg_lease_t* const* leases,
                                const char* const* results, size_t n, int64_t** lost_ids,
                                size_t* lost_count, char** errptr) {
  return Guard("jq_pg_complete_many", errptr, [&]() -> absl::Status {
    if (lost_ids != nullptr) *lost_ids = nullptr;
    if (lost_count != nullptr) *lost_count = 0;
    if (queue == nullptr) return NullArgument("queue");
    if (n == 0) return absl::OkStatus();
    if (leases == nullptr) return NullArgument("leases");
    // CompleteAndClaim takes the leases of one worker at a time: group them by owner. Every
    // result is checked first, so a bad one writes nothing at all.
    std::map<std::string, std::vector<jobqueue::PgQueue::Completion>> by_owner;
    for (size_t i = 0; i < n; ++i) {
      if (leases[i] == nullptr) return NullArgument(absl::StrCat("leases[", i, "]").c_str());
      const char* result = results == nullptr ? nullptr : results[i];
      if (result != nullptr) {
        absl::Status valid = jobqueue::ValidateStorableJson(result);
        if (!valid.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat("result of job ", leases[i]->lease.job_id, ": ", valid.message()));
        }
      }
      by_owner[leases[i]->lease.worker_id].push_back(
          {leases[i]->lease, result == nullptr ? "null" : result});
    }
    // Groups already written stay written when a later one fails (a lost connection): their
    // lost ids are still handed out with the error.
    std::vector<int64_t> lost;
    size_t completed_jobs = 0;
    absl::Status status;
    for (const auto& [owner, done] : by_owner) {
      jobqueue::ClaimRequest none;
      none.worker_id = owner;
      none.queue = done.front().lease.queue;
      none.limit = 0;
      absl::StatusOr<jobqueue::PgQueue::CompleteAndClaimResult> flushed =
          queue->queue->CompleteAndClaim(done, none);
      if (!flushed.ok()) {
        status = flushed.status();
        if (completed_jobs > 0) {
          status = jobqueue::Annotate(
              status, absl::StrCat("leases of owner \"", owner, "\" (", completed_jobs,
                                   " leases of other owners were completed first)"));
        }
        break;
      }
      completed_jobs += done.size();
      lost.insert(lost.end(), flushed->lost_job_ids.begin(), flushed->lost_job_ids.end());
    }
    if (lost_ids != nullptr && !lost.empty()) {
      *lost_ids = static_cast<int64_t*>(std::malloc(lost.size() * sizeof(int64_t)));
      if (*lost_ids == nullptr) throw std::bad_alloc();
      std::memcpy(*lost_ids, lost.data(), lost.size() * sizeof(int64_t));
    }
    if (lost_count != nullptr) *lost_count = lost.size();  // only once the ids are there
    return status;
  });
}

jq_status_t jq_pg_fail(jq_pg_queue_t* queue, const jq_pg_lease_t* lease, const char* error,
                       int64_t retry_delay_ms, int* will_retry, int64_t* retry_at_unix_ms,
                       char** errptr) {
  return Guard("jq_pg_fail", errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    if (lease == nullptr) return NullArgument("lease");
    std::optional<absl::Duration> delay;
    if (retry_delay_ms >= 0) delay = absl::Milliseconds(retry_delay_ms);
    absl::StatusOr<jobqueue::FailOutcome> outcome =
        queue->queue->Fail(lease->lease, error == nullptr ? "failed" : error, delay);
    if (!outcome.ok()) return outcome.status();
    if (will_retry != nullptr) *will_retry = outcome->will_retry ? 1 : 0;
    if (retry_at_unix_ms != nullptr) {
      *retry_at_unix_ms = outcome->will_retry ? UnixMillis(outcome->retry_at) : 0;
    }
    return absl::OkStatus();
  });
}

jq_status_t jq_pg_release(jq_pg_queue_t* queue, const jq_pg_lease_t* lease, char** errptr) {
  return Guard("jq_pg_release", errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    if (lease == nullptr) return NullArgument("lease");
    return queue->queue->Release(lease->lease);
  });
}

jq_status_t jq_pg_cancel(jq_pg_queue_t* queue, int64_t job_id, char** errptr) {
  return Guard("jq_pg_cancel", errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    return queue->queue->Cancel(job_id);
  });
}

namespace {

// Both recover entry points, each reporting errors under its own name.
jq_status_t RecoverStale(const char* function, jq_pg_queue_t* queue, int64_t stale_after_ms,
                         const char* const* job_types, const int64_t* stale_after_ms_by_type,
                         size_t type_count, int64_t* to_pending, int64_t* to_failed,
                         char** errptr) {
  return Guard(function, errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    if (type_count > 0 && job_types == nullptr) return NullArgument("job_types");
    if (type_count > 0 && stale_after_ms_by_type == nullptr) {
      return NullArgument("stale_after_ms_by_type");
    }
    jobqueue::RecoverOptions options;
    options.stale_after = absl::Milliseconds(stale_after_ms);
    for (size_t i = 0; i < type_count; ++i) {
      if (job_types[i] == nullptr) {
        return NullArgument(absl::StrCat("job_types[", i, "]").c_str());
      }
      options.stale_after_by_type.emplace_back(job_types[i],
                                               absl::Milliseconds(stale_after_ms_by_type[i]));
    }
    JQ_ASSIGN_OR_RETURN(jobqueue::RecoverResult result, queue->queue->RecoverStale(options));
    int64_t pending = 0;
    for (const jobqueue::RecoveredJob& job : result.jobs) {
      if (job.new_status == jobqueue::JobStatus::kPending) ++pending;
    }
    if (to_pending != nullptr) *to_pending = pending;
    if (to_failed != nullptr) *to_failed = static_cast<int64_t>(result.jobs.size()) - pending;
    return absl::OkStatus();
  });
}

}  // namespace

jq_status_t jq_pg_recover_stale(jq_pg_queue_t* queue, int64_t stale_after_ms, int64_t* to_pending,
                                int64_t* to_failed, char** errptr) {
  return RecoverStale("jq_pg_recover_stale", queue, stale_after_ms, nullptr, nullptr, 0, to_pending,
                      to_failed, errptr);
}

jq_status_t jq_pg_recover_stale_by_type(jq_pg_queue_t* queue, int64_t stale_after_ms,
                                        const char* const* job_types,
                                        const int64_t* stale_after_ms_by_type, size_t type_count,
                                        int64_t* to_pending, int64_t* to_failed, char** errptr) {
  return RecoverStale("jq_pg_recover_stale_by_type", queue, stale_after_ms, job_types,
                      stale_after_ms_by_type, type_count, to_pending, to_failed, errptr);
}

jq_status_t jq_pg_purge(jq_pg_queue_t* queue, int64_t completed_older_than_ms,
                        int64_t failed_older_than_ms, int64_t* deleted, char** errptr) {
  return Guard("jq_pg_purge", errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    jobqueue::PurgeOptions options;
    if (completed_older_than_ms >= 0) {
      options.completed_older_than = absl::Milliseconds(completed_older_than_ms);
    }
    if (failed_older_than_ms >= 0) {
      options.failed_older_than = absl::Milliseconds(failed_older_than_ms);
    }
    JQ_ASSIGN_OR_RETURN(int64_t removed, queue->queue->Purge(options));
    if (deleted != nullptr) *deleted = removed;
    return absl::OkStatus();
  });
}

jq_status_t jq_pg_get(jq_pg_queue_t* queue, int64_t job_id, jq_pg_job_t** job, char** errptr) {
  return Guard("jq_pg_get", errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    if (job == nullptr) return NullArgument("job");
    *job = nullptr;
    absl::StatusOr<jobqueue::Job> found = queue->queue->Get(job_id);
    if (!found.ok()) return found.status();
    *job = new jq_pg_job_t{*std::move(found)};
    return absl::OkStatus();
  });
}

void jq_pg_job_destroy(jq_pg_job_t* job) { delete job; }

int64_t jq_pg_job_id(const jq_pg_job_t* job) { return job == nullptr ? 0 : job->job.id; }

const char* jq_pg_job_queue(const jq_pg_job_t* job) {
  return StrOrEmpty(job == nullptr ? nullptr : &job->job.queue);
}

const char* jq_pg_job_type(const jq_pg_job_t* job) {
  return StrOrEmpty(job == nullptr ? nullptr : &job->job.job_type);
}

const char* jq_pg_job_payload(const jq_pg_job_t* job) {
  return StrOrEmpty(job == nullptr ? nullptr : &job->job.payload_json);
}

const char* jq_pg_job_status(const jq_pg_job_t* job) {
  // JobStatusName returns views of string literals, so .data() is NUL-terminated.
  return job == nullptr ? "" : jobqueue::JobStatusName(job->job.status).data();
}

int jq_pg_job_priority(const jq_pg_job_t* job) { return job == nullptr ? 0 : job->job.priority; }

int jq_pg_job_attempts(const jq_pg_job_t* job) { return job == nullptr ? 0 : job->job.attempts; }

int jq_pg_job_max_attempts(const jq_pg_job_t* job) {
  return job == nullptr ? 0 : job->job.max_attempts;
}

const char* jq_pg_job_last_error(const jq_pg_job_t* job) {
  return StrOrEmpty(job == nullptr ? nullptr : &job->job.last_error);
}

const char* jq_pg_job_result(const jq_pg_job_t* job) {
  if (job == nullptr || !job->job.result_json) return nullptr;
  return job->job.result_json->c_str();
}

const char* jq_pg_job_dedupe_key(const jq_pg_job_t* job) {
  return StrOrEmpty(job == nullptr ? nullptr : &job->job.dedupe_key);
}

const char* jq_pg_job_locked_by(const jq_pg_job_t* job) {
  return StrOrEmpty(job == nullptr ? nullptr : &job->job.locked_by);
}

int64_t jq_pg_job_run_at_unix_ms(const jq_pg_job_t* job) {
  return job == nullptr ? 0 : UnixMillis(job->job.run_at);
}

jq_status_t jq_pg_counts(jq_pg_queue_t* queue, jq_pg_counts_t** counts, char** errptr) {
  return Guard("jq_pg_counts", errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    if (counts == nullptr) return NullArgument("counts");
    *counts = nullptr;
    absl::StatusOr<std::vector<jobqueue::StatusCount>> rows = queue->queue->Counts();
    if (!rows.ok()) return rows.status();
    *counts = new jq_pg_counts_t{*std::move(rows)};
    return absl::OkStatus();
  });
}

void jq_pg_counts_destroy(jq_pg_counts_t* counts) { delete counts; }

size_t jq_pg_counts_size(const jq_pg_counts_t* counts) {
  return counts == nullptr ? 0 : counts->rows.size();
}

namespace {

const jobqueue::StatusCount* Row(const jq_pg_counts_t* counts, size_t index) {
  if (counts == nullptr || index >= counts->rows.size()) return nullptr;
  return &counts->rows[index];
}

}  // namespace

const char* jq_pg_counts_queue(const jq_pg_counts_t* counts, size_t index) {
  const jobqueue::StatusCount* row = Row(counts, index);
  return StrOrEmpty(row == nullptr ? nullptr : &row->queue);
}

const char* jq_pg_counts_job_type(const jq_pg_counts_t* counts, size_t index) {
  const jobqueue::StatusCount* row = Row(counts, index);
  return StrOrEmpty(row == nullptr ? nullptr : &row->job_type);
}

const char* jq_pg_counts_status(const jq_pg_counts_t* counts, size_t index) {
  const jobqueue::StatusCount* row = Row(counts, index);
  return row == nullptr ? "" : jobqueue::JobStatusName(row->status).data();
}

int64_t jq_pg_counts_count(const jq_pg_counts_t* counts, size_t index) {
  const jobqueue::StatusCount* row = Row(counts, index);
  return row == nullptr ? 0 : row->count;
}

int64_t jq_pg_counts_total(const jq_pg_counts_t* counts, const char* queue, const char* job_type,
                           const char* status) {
  if (counts == nullptr) return 0;
  int64_t total = 0;
  for (const jobqueue::StatusCount& row : counts->rows) {
    if (queue != nullptr && row.queue != queue) continue;
    if (job_type != nullptr && row.job_type != job_type) continue;
    if (status != nullptr && jobqueue::JobStatusName(row.status) != status) continue;
    total += row.count;
  }
  return total;
}

// ---- Postgres worker ------------------------------------------------------------------------

const jq_pg_lease_t* jq_job_context_lease(const jq_job_context_t* job) {
  return job == nullptr ? nullptr : &job->lease;
}

int jq_job_context_stopping(const jq_job_context_t* job) {
  return job != nullptr && job->context->stopping() ? 1 : 0;
}

void jq_job_context_set_result(jq_job_context_t* job, const char* result_json) {
  SetContextResult(job, result_json);
}

void jq_job_context_set_error(jq_job_context_t* job, const char* message) {
  SetContextError(job, message);
}

jq_worker_options_t* jq_worker_options_create(void) {
  return new (std::nothrow) jq_worker_options_t();
}

void jq_worker_options_destroy(jq_worker_options_t* options) { delete options; }

void jq_worker_options_set_name(jq_worker_options_t* options, const char* name) {
  if (options != nullptr) Quietly([&] { options->options.name = OrEmpty(name); });
}

void jq_worker_options_set_environment(jq_worker_options_t* options, const char* environment) {
  if (options != nullptr) Quietly([&] { options->options.environment = OrEmpty(environment); });
}

void jq_worker_options_set_worker_id(jq_worker_options_t* options, const char* worker_id) {
  if (options != nullptr) Quietly([&] { options->options.worker_id = OrEmpty(worker_id); });
}

void jq_worker_options_set_queue(jq_worker_options_t* options, const char* queue) {
  if (options != nullptr) Quietly([&] { options->options.queue = OrEmpty(queue); });
}

void jq_worker_options_set_concurrency(jq_worker_options_t* options, int concurrency) {
  if (options != nullptr) options->options.concurrency = concurrency;
}

void jq_worker_options_set_batch_size(jq_worker_options_t* options, int batch_size) {
  if (options != nullptr) options->options.batch_size = batch_size;
}

void jq_worker_options_set_dispatchers(jq_worker_options_t* options, int dispatchers) {
  if (options != nullptr) options->options.dispatchers = dispatchers;
}

void jq_worker_options_set_transaction_budget_ms(jq_worker_options_t* options, int64_t ms) {
  if (options != nullptr) options->options.transaction_budget = absl::Milliseconds(ms);
}

void jq_worker_options_set_poll_interval_ms(jq_worker_options_t* options, int64_t ms) {
  if (options != nullptr) options->options.poll_interval = absl::Milliseconds(ms);
}

void jq_worker_options_set_listen(jq_worker_options_t* options, int listen) {
  if (options != nullptr) options->options.listen = listen != 0;
}

void jq_worker_options_set_heartbeat_interval_ms(jq_worker_options_t* options, int64_t ms) {
  if (options != nullptr) options->options.heartbeat_interval = absl::Milliseconds(ms);
}

void jq_worker_options_set_shutdown_timeout_ms(jq_worker_options_t* options, int64_t ms) {
  if (options != nullptr) options->options.shutdown_timeout = absl::Milliseconds(ms);
}

void jq_worker_options_set_exit_when_idle_ms(jq_worker_options_t* options, int64_t ms) {
  if (options != nullptr) SetIdleExit(options->options.exit_when_idle, ms);
}

void jq_worker_options_set_reconnect_backoff_ms(jq_worker_options_t* options, int64_t min_ms,
                                                int64_t max_ms) {
  if (options != nullptr) SetReconnectBackoff(options->options, min_ms, max_ms);
}

void jq_worker_options_set_log_startup(jq_worker_options_t* options, int log_startup) {
  if (options != nullptr) options->options.log_startup = log_startup != 0;
}

void jq_worker_options_apply_config(jq_worker_options_t* options, const jq_config_t* config) {
  if (options == nullptr || config == nullptr) return;
  Quietly([&] {
    options->options.environment = config->environment;
    options->options.poll_interval = config->config.poll_interval();
  });
}

jq_status_t jq_pg_worker_create(jq_pg_queue_t* queue, const jq_worker_options_t* options,
                                jq_pg_worker_t** worker, char** errptr) {
  return Guard("jq_pg_worker_create", errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    if (worker == nullptr) return NullArgument("worker");
    *worker = nullptr;
    absl::StatusOr<std::unique_ptr<jobqueue::Worker>> created = jobqueue::Worker::Create(
        queue->queue.get(), options != nullptr ? options->options : jobqueue::WorkerOptions());
    if (!created.ok()) return created.status();
    *worker = new jq_pg_worker_t{*std::move(created)};
    return absl::OkStatus();
  });
}

void jq_pg_worker_destroy(jq_pg_worker_t* worker) { delete worker; }

jq_status_t jq_pg_worker_register(jq_pg_worker_t* worker, const char* job_type, jq_handler_fn fn,
                                  void* user_data, char** errptr) {
  return Guard("jq_pg_worker_register", errptr, [&]() -> absl::Status {
    if (worker == nullptr) return NullArgument("worker");
    if (job_type == nullptr) return NullArgument("job_type");
    if (fn == nullptr) return NullArgument("fn");
    auto handler = [fn, user_data](jobqueue::JobContext& job) -> absl::StatusOr<std::string> {
      jq_job_context_t context{&job, jq_pg_lease_t{job.lease()}, std::nullopt, ""};
      const jq_status_t code = fn(user_data, &context);
      if (code == JQ_OK) return context.result.value_or("null");
      return HandlerFailure(code, std::move(context.error));
    };
    return worker->worker->Register(job_type, std::move(handler));
  });
}

jq_status_t jq_pg_worker_run(jq_pg_worker_t* worker, char** errptr) {
  return Guard("jq_pg_worker_run", errptr, [&]() -> absl::Status {
    if (worker == nullptr) return NullArgument("worker");
    return worker->worker->Run();
  });
}

void jq_pg_worker_stop(jq_pg_worker_t* worker) {
  if (worker != nullptr) worker->worker->Stop();
}

void jq_pg_worker_stop_now(jq_pg_worker_t* worker) {
  if (worker != nullptr) worker->worker->StopNow();
}

void jq_stop_workers_on_signals(void) { jobqueue::StopWorkersOnSignals(); }

const char* jq_pg_worker_id(const jq_pg_worker_t* worker) {
  return worker == nullptr ? "" : worker->worker->worker_id().c_str();
}

int64_t jq_pg_worker_stat(const jq_pg_worker_t* worker, jq_worker_stat_t stat) {
  if (worker == nullptr) return 0;
  jobqueue::WorkerStats stats;
  Quietly([&] { stats = worker->worker->stats(); });
  switch (stat) {
    case JQ_WORKER_COMPLETED:
      return stats.completed;
    case JQ_WORKER_FAILED:
      return stats.failed;
    case JQ_WORKER_LOST:
      return stats.lost;
    case JQ_WORKER_RELEASED:
      return stats.released;
    case JQ_WORKER_CLAIMS:
      return stats.claims;
    case JQ_WORKER_RECONNECTS:
      return stats.reconnects;
  }
  return 0;
}

// ---- BullMQ producer ------------------------------------------------------------------------

jq_bull_options_t* jq_bull_options_create(void) { return new (std::nothrow) jq_bull_options_t(); }

void jq_bull_options_destroy(jq_bull_options_t* options) { delete options; }

void jq_bull_options_set_prefix(jq_bull_options_t* options, const char* prefix) {
  if (options != nullptr) Quietly([&] { options->options.prefix = OrEmpty(prefix); });
}

void jq_bull_options_set_pool_size(jq_bull_options_t* options, int pool_size) {
  if (options != nullptr) options->options.pool_size = pool_size;
}

void jq_bull_options_set_connect_timeout_ms(jq_bull_options_t* options, int64_t ms) {
  if (options != nullptr) options->options.redis.connect_timeout = absl::Milliseconds(ms);
}

void jq_bull_options_set_io_timeout_ms(jq_bull_options_t* options, int64_t ms) {
  if (options != nullptr) options->options.redis.io_timeout = absl::Milliseconds(ms);
}

void jq_bull_options_set_tls_ca_file(jq_bull_options_t* options, const char* path) {
  if (options != nullptr) Quietly([&] { options->options.redis.tls_ca_file = OrEmpty(path); });
}

void jq_bull_options_set_tls_verify(jq_bull_options_t* options, int verify) {
  if (options != nullptr) options->options.redis.tls_verify = verify != 0;
}

namespace {

absl::Status OpenBull(const Secret& url, const char* name, const jq_bull_options_t* options,
                      jq_bull_queue_t** queue) {
  if (name == nullptr) return NullArgument("name");
  if (queue == nullptr) return NullArgument("queue");
  *queue = nullptr;
  const jobqueue::BullQueueOptions defaults;
  absl::StatusOr<std::unique_ptr<jobqueue::BullQueue>> opened =
      jobqueue::BullQueue::Open(url, name, options != nullptr ? options->options : defaults);
  if (!opened.ok()) return opened.status();
  *queue = new jq_bull_queue_t{*std::move(opened)};
  return absl::OkStatus();
}

}  // namespace

jq_status_t jq_bull_queue_open(const char* redis_url, const char* name,
                               const jq_bull_options_t* options, jq_bull_queue_t** queue,
                               char** errptr) {
  return Guard("jq_bull_queue_open", errptr, [&]() -> absl::Status {
    if (redis_url == nullptr) return NullArgument("redis_url");
    return OpenBull(Secret::Url(redis_url), name, options, queue);
  });
}

jq_status_t jq_bull_queue_open_config(const jq_config_t* config, const char* name,
                                      const jq_bull_options_t* options, jq_bull_queue_t** queue,
                                      char** errptr) {
  return Guard("jq_bull_queue_open_config", errptr, [&]() -> absl::Status {
    absl::StatusOr<Secret> url = ConfigRedisUrl(config);
    if (!url.ok()) return url.status();
    return OpenBull(*url, name, options, queue);
  });
}

void jq_bull_queue_close(jq_bull_queue_t* queue) { delete queue; }

jq_status_t jq_bull_add(jq_bull_queue_t* queue, const char* name, const char* data_json,
                        const char* opts_json, char** id, char** errptr) {
  return Guard("jq_bull_add", errptr, [&]() -> absl::Status {
    if (id != nullptr) *id = nullptr;
    if (queue == nullptr) return NullArgument("queue");
    if (name == nullptr) return NullArgument("name");
    jobqueue::BullJobOptions options;
    if (opts_json != nullptr) {
      absl::StatusOr<jobqueue::BullJobOptions> parsed = jobqueue::ParseBullJobOptions(opts_json);
      if (!parsed.ok()) return parsed.status();
      options = *std::move(parsed);
    }
    absl::StatusOr<std::string> added =
        queue->queue->Add(name, data_json == nullptr ? "{}" : data_json, options);
    if (!added.ok()) return added.status();
    if (id != nullptr) *id = CopyString(*added);
    return absl::OkStatus();
  });
}

jq_status_t jq_bull_counts(jq_bull_queue_t* queue, int64_t* counts, size_t n, char** errptr) {
  return Guard("jq_bull_counts", errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    if (counts == nullptr && n > 0) return NullArgument("counts");
    absl::StatusOr<jobqueue::BullJobCounts> got = queue->queue->Counts();
    if (!got.ok()) return got.status();
    const int64_t values[JQ_BULL_STATE_COUNT] = {
        got->active, got->completed,   got->delayed, got->failed,
        got->paused, got->prioritized, got->waiting, got->waiting_children};
    for (size_t i = 0; i < n && i < JQ_BULL_STATE_COUNT; ++i) counts[i] = values[i];
    return absl::OkStatus();
  });
}

jq_status_t jq_bull_pause(jq_bull_queue_t* queue, char** errptr) {
  return Guard("jq_bull_pause", errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    return queue->queue->Pause();
  });
}

jq_status_t jq_bull_resume(jq_bull_queue_t* queue, char** errptr) {
  return Guard("jq_bull_resume", errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    return queue->queue->Resume();
  });
}

jq_status_t jq_bull_get_job(jq_bull_queue_t* queue, const char* id, char** fields_json,
                            char** errptr) {
  return Guard("jq_bull_get_job", errptr, [&]() -> absl::Status {
    if (fields_json != nullptr) *fields_json = nullptr;
    if (queue == nullptr) return NullArgument("queue");
    if (id == nullptr) return NullArgument("id");
    if (fields_json == nullptr) return NullArgument("fields_json");
    absl::StatusOr<jobqueue::BullJob> job = queue->queue->GetJob(id);
    if (!job.ok()) return job.status();
    std::string json = "{";
    for (const auto& [field, value] : job->fields) {
      if (json.size() > 1) json += ",";
      absl::StrAppend(&json, jobqueue::JsonQuote(field), ":", jobqueue::JsonQuote(value));
    }
    json += "}";
    *fields_json = CopyString(json);
    return absl::OkStatus();
  });
}

namespace {

void SetCount(int64_t* count, int64_t value) {
  if (count != nullptr) *count = value;
}

}  // namespace

jq_status_t jq_bull_drain(jq_bull_queue_t* queue, int include_delayed, int64_t* count,
                          char** errptr) {
  return Guard("jq_bull_drain", errptr, [&]() -> absl::Status {
    SetCount(count, 0);
    if (queue == nullptr) return NullArgument("queue");
    absl::StatusOr<int64_t> removed = queue->queue->Drain(include_delayed != 0);
    if (!removed.ok()) return removed.status();
    SetCount(count, *removed);
    return absl::OkStatus();
  });
}

jq_status_t jq_bull_clean(jq_bull_queue_t* queue, const char* state, int64_t grace_ms,
                          int64_t limit, int64_t* count, char** errptr) {
  return Guard("jq_bull_clean", errptr, [&]() -> absl::Status {
    SetCount(count, 0);
    if (queue == nullptr) return NullArgument("queue");
    if (state == nullptr) return NullArgument("state");
    absl::StatusOr<std::vector<std::string>> removed =
        queue->queue->Clean(state, absl::Milliseconds(grace_ms), limit);
    if (!removed.ok()) return removed.status();
    SetCount(count, static_cast<int64_t>(removed->size()));
    return absl::OkStatus();
  });
}

jq_status_t jq_bull_remove(jq_bull_queue_t* queue, const char* id, char** errptr) {
  return Guard("jq_bull_remove", errptr, [&]() -> absl::Status {
    if (queue == nullptr) return NullArgument("queue");
    if (id == nullptr) return NullArgument("id");
    return queue->queue->Remove(id);
  });
}

jq_status_t jq_bull_retry_jobs(jq_bull_queue_t* queue, const char* state, int64_t* count,
                               char** errptr) {
  return Guard("jq_bull_retry_jobs", errptr, [&]() -> absl::Status {
    SetCount(count, 0);
    if (queue == nullptr) return NullArgument("queue");
    absl::StatusOr<int64_t> moved = queue->queue->RetryJobs(state != nullptr ? state : "failed");
    if (!moved.ok()) return moved.status();
    SetCount(count, *moved);
    return absl::OkStatus();
  });
}

jq_status_t jq_bull_promote(jq_bull_queue_t* queue, const char* id, int64_t* count, char** errptr) {
  return Guard("jq_bull_promote", errptr, [&]() -> absl::Status {
    SetCount(count, 0);
    if (queue == nullptr) return NullArgument("queue");
    if (id != nullptr) {
      JQ_RETURN_IF_ERROR(queue->queue->Promote(id));
      SetCount(count, 1);
      return absl::OkStatus();
    }
    absl::StatusOr<int64_t> moved = queue->queue->PromoteAll();
    if (!moved.ok()) return moved.status();
    SetCount(count, *moved);
    return absl::OkStatus();
  });
}

// ---- BullMQ events ------------------------------------------------------------------------

namespace {

absl::Status OpenEvents(const Secret& url, const char* queue, const jq_bull_options_t* options,
                        const char* from_id, jq_bull_events_t** events) {
  if (events == nullptr) return NullArgument("events");
  *events = nullptr;
  if (queue == nullptr) return NullArgument("queue");
  jobqueue::BullQueueEventsOptions events_options;
  if (options != nullptr) {
    events_options.prefix = options->options.prefix;
    events_options.redis = options->options.redis;
  }
  if (from_id != nullptr) events_options.last_event_id = from_id;
  absl::StatusOr<std::unique_ptr<jobqueue::BullQueueEvents>> opened =
      jobqueue::BullQueueEvents::Open(url, queue, events_options);
  if (!opened.ok()) return opened.status();
  *events = new jq_bull_events_t{*std::move(opened)};
  return absl::OkStatus();
}

}  // namespace

jq_status_t jq_bull_events_open(const char* redis_url, const char* queue,
                                const jq_bull_options_t* options, const char* from_id,
                                jq_bull_events_t** events, char** errptr) {
  return Guard("jq_bull_events_open", errptr, [&]() -> absl::Status {
    if (redis_url == nullptr) return NullArgument("redis_url");
    return OpenEvents(Secret::Url(redis_url), queue, options, from_id, events);
  });
}

jq_status_t jq_bull_events_open_config(const jq_config_t* config, const char* queue,
                                       const jq_bull_options_t* options, const char* from_id,
                                       jq_bull_events_t** events, char** errptr) {
  return Guard("jq_bull_events_open_config", errptr, [&]() -> absl::Status {
    absl::StatusOr<Secret> url = ConfigRedisUrl(config);
    if (!url.ok()) return url.status();
    return OpenEvents(*url, queue, options, from_id, events);
  });
}

jq_status_t jq_bull_events_read(jq_bull_events_t* events, int64_t wait_ms, char** events_json,
                                char** errptr) {
  return Guard("jq_bull_events_read", errptr, [&]() -> absl::Status {
    if (events_json != nullptr) *events_json = nullptr;
    if (events == nullptr) return NullArgument("events");
    if (events_json == nullptr) return NullArgument("events_json");
    if (wait_ms < 0) return absl::InvalidArgumentError("wait_ms must not be negative");
    absl::StatusOr<std::vector<jobqueue::BullEvent>> read =
        events->events->Read(absl::Milliseconds(wait_ms));
    if (!read.ok()) return read.status();
    std::string json = "[";
    for (const jobqueue::BullEvent& event : *read) {
      if (json.size() > 1) json += ",";
      absl::StrAppend(&json, "{\"id\":", jobqueue::JsonQuote(event.id),
                      ",\"event\":", jobqueue::JsonQuote(event.event),
                      ",\"jobId\":", jobqueue::JsonQuote(event.job_id), ",\"fields\":{");
      bool first = true;
      for (const auto& [field, value] : event.fields) {
        absl::StrAppend(&json, first ? "" : ",", jobqueue::JsonQuote(field), ":",
                        jobqueue::JsonQuote(value));
        first = false;
      }
      json += "}}";
    }
    json += "]";
    *events_json = CopyString(json);
    return absl::OkStatus();
  });
}

void jq_bull_events_stop(jq_bull_events_t* events) {
  if (events != nullptr) events->events->Stop();
}

void jq_bull_events_close(jq_bull_events_t* events) { delete events; }

// ---- BullMQ consumer and worker -------------------------------------------------------------

jq_bull_worker_options_t* jq_bull_worker_options_create(void) {
  return new (std::nothrow) jq_bull_worker_options_t();
}

void jq_bull_worker_options_destroy(jq_bull_worker_options_t* options) { delete options; }

void jq_bull_worker_options_set_name(jq_bull_worker_options_t* options, const char* name) {
  if (options != nullptr) Quietly([&] { options->options.name = OrEmpty(name); });
}

void jq_bull_worker_options_set_lock_duration_ms(jq_bull_worker_options_t* options, int64_t ms) {
  if (options != nullptr) options->options.lock_duration = absl::Milliseconds(ms);
}

void jq_bull_worker_options_set_concurrency(jq_bull_worker_options_t* options, int concurrency) {
  if (options != nullptr) options->options.concurrency = concurrency;
}

void jq_bull_worker_options_set_prefetch(jq_bull_worker_options_t* options, int prefetch,
                                         double window_ms) {
  if (options == nullptr) return;
  options->options.prefetch = prefetch;
  // A NaN or infinite window becomes an infinite duration, which Validate refuses.
  options->options.prefetch_window = absl::Milliseconds(window_ms);
}

void jq_bull_worker_options_set_exit_when_idle_ms(jq_bull_worker_options_t* options, int64_t ms) {
  if (options != nullptr) SetIdleExit(options->options.exit_when_idle, ms);
}

void jq_bull_worker_options_set_shutdown_timeout_ms(jq_bull_worker_options_t* options, int64_t ms) {
  if (options != nullptr) options->options.shutdown_timeout = absl::Milliseconds(ms);
}

void jq_bull_worker_options_set_stalled(jq_bull_worker_options_t* options, int64_t interval_ms,
                                        int max_stalled_count) {
  if (options == nullptr) return;
  options->options.stalled_interval = absl::Milliseconds(interval_ms);
  options->options.max_stalled_count = max_stalled_count;
}

void jq_bull_worker_options_set_reconnect_backoff_ms(jq_bull_worker_options_t* options,
                                                     int64_t min_ms, int64_t max_ms) {
  if (options != nullptr) SetReconnectBackoff(options->options, min_ms, max_ms);
}

namespace {

// The worker options with the connection settings and prefix of `options` (either may be
// NULL).
jobqueue::BullWorkerOptions WorkerOptionsOf(const jq_bull_options_t* options,
                                            const jq_bull_worker_options_t* worker_options) {
  jobqueue::BullWorkerOptions out =
      worker_options != nullptr ? worker_options->options : jobqueue::BullWorkerOptions();
  if (options != nullptr) {
    out.prefix = options->options.prefix;
    out.redis = options->options.redis;
  }
  return out;
}

absl::Status OpenConsumer(const Secret& url, const char* queue, const jq_bull_options_t* options,
                          const jq_bull_worker_options_t* worker_options,
                          jq_bull_consumer_t** consumer) {
  if (queue == nullptr) return NullArgument("queue");
  if (consumer == nullptr) return NullArgument("consumer");
  *consumer = nullptr;
  const jobqueue::BullWorkerOptions worker = WorkerOptionsOf(options, worker_options);
  jobqueue::BullConsumerOptions consumer_options;
  consumer_options.prefix = worker.prefix;
  consumer_options.redis = worker.redis;
  consumer_options.name = worker.name;
  consumer_options.lock_duration = worker.lock_duration;
  absl::StatusOr<std::unique_ptr<jobqueue::BullConsumer>> opened =
      jobqueue::BullConsumer::Open(url, queue, consumer_options);
  if (!opened.ok()) return opened.status();
  *consumer = new jq_bull_consumer_t{*std::move(opened)};
  return absl::OkStatus();
}

absl::Status CheckLeaseCall(const jq_bull_consumer_t* consumer, const jq_bull_lease_t* lease) {
  if (consumer == nullptr) return NullArgument("consumer");
  if (lease == nullptr) return NullArgument("lease");
  return absl::OkStatus();
}

}  // namespace

jq_status_t jq_bull_consumer_open(const char* redis_url, const char* queue,
                                  const jq_bull_options_t* options,
                                  const jq_bull_worker_options_t* worker_options,
                                  jq_bull_consumer_t** consumer, char** errptr) {
  return Guard("jq_bull_consumer_open", errptr, [&]() -> absl::Status {
    if (redis_url == nullptr) return NullArgument("redis_url");
    return OpenConsumer(Secret::Url(redis_url), queue, options, worker_options, consumer);
  });
}

jq_status_t jq_bull_consumer_open_config(const jq_config_t* config, const char* queue,
                                         const jq_bull_options_t* options,
                                         const jq_bull_worker_options_t* worker_options,
                                         jq_bull_consumer_t** consumer, char** errptr) {
  return Guard("jq_bull_consumer_open_config", errptr, [&]() -> absl::Status {
    absl::StatusOr<Secret> url = ConfigRedisUrl(config);
    if (!url.ok()) return url.status();
    return OpenConsumer(*url, queue, options, worker_options, consumer);
  });
}

void jq_bull_consumer_close(jq_bull_consumer_t* consumer) { delete consumer; }

jq_status_t jq_bull_consumer_fetch(jq_bull_consumer_t* consumer, int max, int64_t wait_ms,
                                   jq_bull_lease_t*** leases, size_t* count, char** errptr) {
  return Guard("jq_bull_consumer_fetch", errptr, [&]() -> absl::Status {
    if (consumer == nullptr) return NullArgument("consumer");
    if (leases == nullptr) return NullArgument("leases");
    if (count == nullptr) return NullArgument("count");
    *leases = nullptr;
    *count = 0;
    absl::StatusOr<std::vector<jobqueue::BullLease>> fetched =
        consumer->consumer->Fetch(max, absl::Milliseconds(wait_ms));
    if (!fetched.ok()) return fetched.status();
    // On an allocation failure the claimed jobs' locks expire and a stalled check returns them.
    *leases = HandleArray<jq_bull_lease_t>(*fetched);
    *count = fetched->size();
    return absl::OkStatus();
  });
}

jq_status_t jq_bull_consumer_extend_lock(jq_bull_consumer_t* consumer, const jq_bull_lease_t* lease,
                                         char** errptr) {
  return Guard("jq_bull_consumer_extend_lock", errptr, [&]() -> absl::Status {
    JQ_RETURN_IF_ERROR(CheckLeaseCall(consumer, lease));
    return consumer->consumer->ExtendLock(lease->lease);
  });
}

jq_status_t jq_bull_consumer_complete(jq_bull_consumer_t* consumer, const jq_bull_lease_t* lease,
                                      const char* return_value_json, char** errptr) {
  return Guard("jq_bull_consumer_complete", errptr, [&]() -> absl::Status {
    JQ_RETURN_IF_ERROR(CheckLeaseCall(consumer, lease));
    return consumer->consumer->Complete(lease->lease,
                                        return_value_json == nullptr ? "null" : return_value_json);
  });
}

jq_status_t jq_bull_consumer_fail(jq_bull_consumer_t* consumer, const jq_bull_lease_t* lease,
                                  const char* reason, int unrecoverable, char** errptr) {
  return Guard("jq_bull_consumer_fail", errptr, [&]() -> absl::Status {
    JQ_RETURN_IF_ERROR(CheckLeaseCall(consumer, lease));
    if (reason == nullptr) return NullArgument("reason");
    return consumer->consumer->Fail(lease->lease, reason, unrecoverable != 0);
  });
}

jq_status_t jq_bull_consumer_release(jq_bull_consumer_t* consumer, const jq_bull_lease_t* lease,
                                     char** errptr) {
  return Guard("jq_bull_consumer_release", errptr, [&]() -> absl::Status {
    JQ_RETURN_IF_ERROR(CheckLeaseCall(consumer, lease));
    return consumer->consumer->Release(lease->lease);
  });
}

void jq_bull_leases_free(jq_bull_lease_t** leases, size_t count) { FreeHandleArray(leases, count); }

void jq_bull_lease_destroy(jq_bull_lease_t* lease) { delete lease; }

const char* jq_bull_lease_id(const jq_bull_lease_t* lease) {
  return StrOrEmpty(lease == nullptr ? nullptr : &lease->lease.job.id);
}

const char* jq_bull_lease_name(const jq_bull_lease_t* lease) {
  return StrOrEmpty(lease == nullptr ? nullptr : &lease->lease.job.name);
}

const char* jq_bull_lease_data(const jq_bull_lease_t* lease) {
  return StrOrEmpty(lease == nullptr ? nullptr : &lease->lease.job.data_json);
}

const char* jq_bull_lease_opts(const jq_bull_lease_t* lease) {
  return StrOrEmpty(lease == nullptr ? nullptr : &lease->lease.job.opts_json);
}

int64_t jq_bull_lease_attempts_made(const jq_bull_lease_t* lease) {
  return lease == nullptr ? 0 : lease->lease.job.attempts_made;
}

int64_t jq_bull_lease_timestamp_ms(const jq_bull_lease_t* lease) {
  return lease == nullptr ? 0 : lease->lease.job.timestamp;
}

const char* jq_bull_lease_token(const jq_bull_lease_t* lease) {
  return StrOrEmpty(lease == nullptr ? nullptr : &lease->lease.token);
}

const jq_bull_lease_t* jq_bull_job_context_lease(const jq_bull_job_context_t* job) {
  return job == nullptr ? nullptr : &job->lease;
}

int jq_bull_job_context_stopping(const jq_bull_job_context_t* job) {
  return job != nullptr && job->context->stopping() ? 1 : 0;
}

void jq_bull_job_context_set_result(jq_bull_job_context_t* job, const char* return_value_json) {
  SetContextResult(job, return_value_json);
}

void jq_bull_job_context_set_error(jq_bull_job_context_t* job, const char* message) {
  SetContextError(job, message);
}

void jq_bull_job_context_set_unrecoverable(jq_bull_job_context_t* job) {
  if (job != nullptr) job->unrecoverable = true;
}

void jq_bull_job_context_set_stacktrace(jq_bull_job_context_t* job, const char* stacktrace) {
  if (job == nullptr) return;
  try {
    job->stacktrace = stacktrace == nullptr ? "" : stacktrace;
  } catch (...) {
    job->stacktrace.clear();  // out of memory: the library's own trace is stored instead
  }
}

jq_status_t jq_bull_job_context_update_progress(jq_bull_job_context_t* job,
                                                const char* progress_json, char** errptr) {
  return Guard("jq_bull_job_context_update_progress", errptr, [&]() -> absl::Status {
    if (job == nullptr) return NullArgument("job");
    if (progress_json == nullptr) return NullArgument("progress_json");
    return job->context->UpdateProgress(progress_json);
  });
}

jq_status_t jq_bull_job_context_log(jq_bull_job_context_t* job, const char* line, char** errptr) {
  return Guard("jq_bull_job_context_log", errptr, [&]() -> absl::Status {
    if (job == nullptr) return NullArgument("job");
    if (line == nullptr) return NullArgument("line");
    return job->context->Log(line);
  });
}

namespace {

absl::Status CreateBullWorker(const Secret& url, const char* queue,
                              const jq_bull_options_t* options,
                              const jq_bull_worker_options_t* worker_options, jq_bull_handler_fn fn,
                              void* user_data, jq_bull_worker_t** worker) {
  if (queue == nullptr) return NullArgument("queue");
  if (fn == nullptr) return NullArgument("fn");
  if (worker == nullptr) return NullArgument("worker");
  *worker = nullptr;
  auto handler = [fn, user_data](jobqueue::BullJobContext& job) -> absl::StatusOr<std::string> {
    jq_bull_job_context_t context{
        &job, jq_bull_lease_t{{job.job(), job.token()}}, std::nullopt, "", false, ""};
    const jq_status_t code = fn(user_data, &context);
    if (code == JQ_OK) return context.result.value_or("null");
    absl::Status failure = HandlerFailure(code, std::move(context.error));
    if (context.unrecoverable) failure = jobqueue::BullUnrecoverableError(failure.message());
    return jobqueue::BullErrorWithStacktrace(std::move(failure), context.stacktrace);
  };
  absl::StatusOr<std::unique_ptr<jobqueue::BullWorker>> created = jobqueue::BullWorker::Create(
      url, queue, std::move(handler), WorkerOptionsOf(options, worker_options));
  if (!created.ok()) return created.status();
  *worker = new jq_bull_worker_t{*std::move(created)};
  return absl::OkStatus();
}

}  // namespace

jq_status_t jq_bull_worker_create(const char* redis_url, const char* queue,
                                  const jq_bull_options_t* options,
                                  const jq_bull_worker_options_t* worker_options,
                                  jq_bull_handler_fn fn, void* user_data, jq_bull_worker_t** worker,
                                  char** errptr) {
  return Guard("jq_bull_worker_create", errptr, [&]() -> absl::Status {
    if (redis_url == nullptr) return NullArgument("redis_url");
    return CreateBullWorker(Secret::Url(redis_url), queue, options, worker_options, fn, user_data,
                            worker);
  });
}

jq_status_t jq_bull_worker_create_config(const jq_config_t* config, const char* queue,
                                         const jq_bull_options_t* options,
                                         const jq_bull_worker_options_t* worker_options,
                                         jq_bull_handler_fn fn, void* user_data,
                                         jq_bull_worker_t** worker, char** errptr) {
  return Guard("jq_bull_worker_create_config", errptr, [&]() -> absl::Status {
    absl::StatusOr<Secret> url = ConfigRedisUrl(config);
    if (!url.ok()) return url.status();
    return CreateBullWorker(*url, queue, options, worker_options, fn, user_data, worker);
  });
}

void jq_bull_worker_destroy(jq_bull_worker_t* worker) { delete worker; }

jq_status_t jq_bull_worker_run(jq_bull_worker_t* worker, char** errptr) {
  return Guard("jq_bull_worker_run", errptr, [&]() -> absl::Status {
    if (worker == nullptr) return NullArgument("worker");
    return worker->worker->Run();
  });
}

void jq_bull_worker_stop(jq_bull_worker_t* worker) {
  if (worker != nullptr) worker->worker->Stop();
}

void jq_bull_worker_stop_now(jq_bull_worker_t* worker) {
  if (worker != nullptr) worker->worker->StopNow();
}

int64_t jq_bull_worker_stat(const jq_bull_worker_t* worker, jq_bull_worker_stat_t stat) {
  if (worker == nullptr) return 0;
  jobqueue::BullWorkerStats stats;
  Quietly([&] { stats = worker->worker->stats(); });
  switch (stat) {
    case JQ_BULL_WORKER_COMPLETED:
      return stats.completed;
    case JQ_BULL_WORKER_FAILED:
      return stats.failed;
    case JQ_BULL_WORKER_RETRIED:
      return stats.retried;
    case JQ_BULL_WORKER_LOST:
      return stats.lost;
    case JQ_BULL_WORKER_RELEASED:
      return stats.released;
    case JQ_BULL_WORKER_STALLED_RECOVERED:
      return stats.stalled_recovered;
    case JQ_BULL_WORKER_STEPS:
      return stats.steps;
    case JQ_BULL_WORKER_RECONNECTS:
      return stats.reconnects;
    case JQ_BULL_WORKER_PREFETCHED:
      return stats.prefetched;
    case JQ_BULL_WORKER_ADOPTED:
      return stats.adopted;
  }
  return 0;
}
