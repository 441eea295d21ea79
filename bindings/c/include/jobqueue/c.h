/* The C API of libjobqueue: configuration, the Postgres queue and worker, the BullMQ producer,
 * consumer and worker. See docs/c-api.md.
 *
 * Conventions (as in LevelDB's c.h):
 *  - Every type is an opaque handle made by a *_create / *_open / *_load function and released
 *    by the matching *_destroy / *_close. Options are handles with one setter per field, so
 *    adding a field never changes the ABI.
 *  - Every fallible call returns a jq_status_t (JQ_OK on success) and takes `char** errptr`
 *    last. On failure, when errptr is not NULL, *errptr receives a malloc'd message with
 *    context (any message already there is freed first, so one variable initialised to NULL
 *    can serve many calls). Free it with jq_free. On success *errptr is left as it was.
 *  - Strings go in as NUL-terminated UTF-8 and are copied. `const char*` results are borrowed
 *    from the handle and valid until it is destroyed; `char**` results are malloc'd and freed
 *    with jq_free. JSON arguments are validated before anything is written.
 *  - No C++ exception crosses this API; NULL handles are reported as JQ_INVALID_ARGUMENT.
 *  - Handles may be used from several threads except where noted; options handles are not
 *    synchronised.
 *
 * Error messages name variables and jobs, never secret values.
 */
#ifndef JOBQUEUE_C_H_
#define JOBQUEUE_C_H_

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define JQ_EXPORT __declspec(dllexport)
#else
#define JQ_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes ---------------------------------------------------------------------- */

/* The canonical (absl / gRPC) status codes, same values, plus JQ_LEASE_LOST. */
typedef enum jq_status_t {
  JQ_OK = 0,
  JQ_CANCELLED = 1,
  JQ_UNKNOWN = 2,
  JQ_INVALID_ARGUMENT = 3,
  JQ_DEADLINE_EXCEEDED = 4,
  JQ_NOT_FOUND = 5,
  JQ_ALREADY_EXISTS = 6,
  JQ_PERMISSION_DENIED = 7, /* e.g. a secret outside the service's scope, in prod */
  JQ_RESOURCE_EXHAUSTED = 8,
  JQ_FAILED_PRECONDITION = 9, /* e.g. the schema is not migrated, cancel of a running job */
  JQ_ABORTED = 10,            /* e.g. a deadlock or serialization failure: retrying may help */
  JQ_OUT_OF_RANGE = 11,
  JQ_UNIMPLEMENTED = 12,
  JQ_INTERNAL = 13,
  JQ_UNAVAILABLE = 14, /* the server is unreachable; retrying may help */
  JQ_DATA_LOSS = 15,
  JQ_UNAUTHENTICATED = 16,
  /* Not a canonical code (kept out of their range): the lease or lock was lost, so the job is
   * no longer ours and nothing was written. Reported by complete, fail, heartbeat, release
   * and extend; the C++ library's IsLeaseLost() statuses. */
  JQ_LEASE_LOST = 100
} jq_status_t;

/* "OK", "INVALID_ARGUMENT", ..., "LEASE_LOST"; "UNKNOWN" for values outside the enum. Static
 * storage. */
JQ_EXPORT const char* jq_status_name(jq_status_t code);

/* Frees anything this API returned through a char** or other pointer-to-pointer result
 * (messages, strings, arrays). NULL is fine. */
JQ_EXPORT void jq_free(void* ptr);

/* The library version, "MAJOR.MINOR.PATCH". Static storage. */
JQ_EXPORT const char* jq_version(void);

/* Logging of the library (stderr): level trace|debug|info|warn|error|critical|off, format
 * text|json; service tags every line. NULL keeps the current value. */
JQ_EXPORT jq_status_t jq_configure_logging(const char* level, const char* format,
                                           const char* service, char** errptr);

/* ---- configuration (include/jobqueue/config.h, docs/configuration.md) ------------------- */

typedef struct jq_config_options_t jq_config_options_t;
typedef struct jq_config_t jq_config_t;

JQ_EXPORT jq_config_options_t* jq_config_options_create(void);
JQ_EXPORT void jq_config_options_destroy(jq_config_options_t* options);
/* The service whose secret scope applies ("api", "worker", "ingest", ...). Required. */
JQ_EXPORT void jq_config_options_set_service(jq_config_options_t* options, const char* service);
/* Folder with .env, .env.local, .env.<service>. Default ".". */
JQ_EXPORT void jq_config_options_set_env_dir(jq_config_options_t* options, const char* dir);
/* Read the .env files at all. Default 1. */
JQ_EXPORT void jq_config_options_set_load_env_files(jq_config_options_t* options, int load);
/* A secret-scope manifest instead of $JOBQUEUE_SECRET_SCOPES or the built-in one. */
JQ_EXPORT void jq_config_options_set_scopes_path(jq_config_options_t* options, const char* path);
/* One more variable the service cannot run without. */
JQ_EXPORT void jq_config_options_add_required(jq_config_options_t* options, const char* name);
/* Permit SUPABASE_MODE=prod with ENVIRONMENT=dev. Default 0. */
JQ_EXPORT void jq_config_options_set_allow_prod_database_in_dev(jq_config_options_t* options,
                                                                int allow);
/* Record scope violations without failing, even in prod. Default 0. */
JQ_EXPORT void jq_config_options_set_report_only(jq_config_options_t* options, int report_only);
/* The first call replaces the process environment by an explicit one (tests, embedders);
 * each call adds one variable to it. */
JQ_EXPORT void jq_config_options_set_env(jq_config_options_t* options, const char* name,
                                         const char* value);

/* Loads the service's configuration. JQ_INVALID_ARGUMENT lists every problem found;
 * JQ_PERMISSION_DENIED is a secret outside the scope in prod. Loading neither logs nor changes
 * the logging setup: see jq_configure_logging and the warnings accessors. */
JQ_EXPORT jq_status_t jq_config_load(const jq_config_options_t* options, jq_config_t** config,
                                     char** errptr);
JQ_EXPORT void jq_config_destroy(jq_config_t* config);

/* The process exit code for a failed jq_config_load: 77 (scope violation), 78 (other), 0. */
JQ_EXPORT int jq_config_exit_code(jq_status_t code);

JQ_EXPORT const char* jq_config_service(const jq_config_t* config);
/* "dev", "staging" or "prod". */
JQ_EXPORT const char* jq_config_environment(const jq_config_t* config);
/* "unset", "dev" or "prod". */
JQ_EXPORT const char* jq_config_supabase_mode(const jq_config_t* config);
JQ_EXPORT int jq_config_has_database_url(const jq_config_t* config);
/* The database URL with its password masked; "" when none. */
JQ_EXPORT const char* jq_config_database_url_redacted(const jq_config_t* config);
/* The variable the database URL came from ("DATABASE_URL", "SUPABASE_DB_URL_DEV", ...). */
JQ_EXPORT const char* jq_config_database_url_source(const jq_config_t* config);
JQ_EXPORT int jq_config_has_redis_url(const jq_config_t* config);
JQ_EXPORT const char* jq_config_redis_url_redacted(const jq_config_t* config);
/* LOG_LEVEL as a name ("info", ...). */
JQ_EXPORT const char* jq_config_log_level(const jq_config_t* config);
/* WORKER_POLL_INTERVAL in milliseconds. */
JQ_EXPORT int64_t jq_config_poll_interval_ms(const jq_config_t* config);
/* Applies LOG_LEVEL and LOG_FORMAT, tagging lines with the service. */
JQ_EXPORT void jq_config_configure_logging(const jq_config_t* config);
/* A plain variable; JQ_NOT_FOUND when unset. *value is malloc'd. */
JQ_EXPORT jq_status_t jq_config_get(const jq_config_t* config, const char* name, char** value,
                                    char** errptr);
/* A secret the scope allows, in plain text (send it, never log it; jq_free it). JQ_NOT_FOUND
 * when unset, JQ_PERMISSION_DENIED when outside the service's scope. */
JQ_EXPORT jq_status_t jq_config_get_secret(const jq_config_t* config, const char* name,
                                           char** value, char** errptr);
JQ_EXPORT size_t jq_config_warning_count(const jq_config_t* config);
JQ_EXPORT const char* jq_config_warning(const jq_config_t* config, size_t index);
/* Secrets present that the service may not hold (non-empty only outside prod, or in prod when
 * loaded report-only). */
JQ_EXPORT size_t jq_config_scope_violation_count(const jq_config_t* config);
JQ_EXPORT const char* jq_config_scope_violation(const jq_config_t* config, size_t index);

/* ---- Postgres queue (include/jobqueue/pg_queue.h, docs/postgres.md) --------------------- */

typedef struct jq_pg_options_t jq_pg_options_t;
typedef struct jq_pg_queue_t jq_pg_queue_t;
typedef struct jq_enqueue_options_t jq_enqueue_options_t;
typedef struct jq_pg_batch_t jq_pg_batch_t;
typedef struct jq_claim_options_t jq_claim_options_t;
typedef struct jq_pg_lease_t jq_pg_lease_t;
typedef struct jq_pg_job_t jq_pg_job_t;
typedef struct jq_pg_counts_t jq_pg_counts_t;

JQ_EXPORT jq_pg_options_t* jq_pg_options_create(void);
JQ_EXPORT void jq_pg_options_destroy(jq_pg_options_t* options);
/* Schema holding job_queue. Default "ops". */
JQ_EXPORT void jq_pg_options_set_schema(jq_pg_options_t* options, const char* schema);
/* Connections kept open. Default 4. */
JQ_EXPORT void jq_pg_options_set_pool_size(jq_pg_options_t* options, int pool_size);
/* Per connection attempt. Default 10000. */
JQ_EXPORT void jq_pg_options_set_connect_timeout_ms(jq_pg_options_t* options, int64_t ms);
/* Shown in pg_stat_activity. Default "jobqueue". */
JQ_EXPORT void jq_pg_options_set_application_name(jq_pg_options_t* options, const char* name);
/* Connections jq_pg_queue_open makes before it returns, 1..pool_size (it fails when one cannot
 * be made); the rest open on first need. Default 1. */
JQ_EXPORT void jq_pg_options_set_connections_at_open(jq_pg_options_t* options, int connections);
/* Concurrent single enqueues that send their own statement (0..1000; at most pool_size take
 * effect); callers beyond that wait and share one statement and commit. 0 turns sharing off.
 * Default 2. */
JQ_EXPORT void jq_pg_options_set_max_enqueue_statements(jq_pg_options_t* options, int statements);
/* How long jq_pg_queue_migrate waits for the table's lock before JQ_UNAVAILABLE, 1..3600000.
 * Default 5000. */
JQ_EXPORT void jq_pg_options_set_migrate_lock_timeout_ms(jq_pg_options_t* options, int64_t ms);
/* Short-job mode: the server ends a held batch's session idle this long, so a vanished worker's
 * batch is pending again then. 1000..3600000. Default 60000. */
JQ_EXPORT void jq_pg_options_set_held_batch_idle_timeout_ms(jq_pg_options_t* options, int64_t ms);
/* Nonzero: completing a job deletes its row instead of keeping it as 'completed' (no result,
 * count or jq_pg_queue_get afterwards). Default 0. */
JQ_EXPORT void jq_pg_options_set_delete_completed(jq_pg_options_t* options, int delete_completed);
/* Backoff of failed attempts: base delay (default 1000 ms), multiplier (2), cap (1 h), jitter
 * (0.2). */
JQ_EXPORT void jq_pg_options_set_retry(jq_pg_options_t* options, int64_t base_delay_ms,
                                       double multiplier, int64_t max_delay_ms, double jitter);

/* Connects to a postgres:// URL or libpq key=value string. options may be NULL. Does not
 * create the schema: see jq_pg_queue_migrate. */
JQ_EXPORT jq_status_t jq_pg_queue_open(const char* database_url, const jq_pg_options_t* options,
                                       jq_pg_queue_t** queue, char** errptr);
/* Connects to the configuration's database; JQ_FAILED_PRECONDITION when it has none. */
JQ_EXPORT jq_status_t jq_pg_queue_open_config(const jq_config_t* config,
                                              const jq_pg_options_t* options, jq_pg_queue_t** queue,
                                              char** errptr);
/* Closes the pool. Workers on the queue must be destroyed first. */
JQ_EXPORT void jq_pg_queue_close(jq_pg_queue_t* queue);
/* Applies pending migrations (safe concurrently); *version (may be NULL) gets the version. */
JQ_EXPORT jq_status_t jq_pg_queue_migrate(jq_pg_queue_t* queue, int* version, char** errptr);

JQ_EXPORT jq_enqueue_options_t* jq_enqueue_options_create(void);
JQ_EXPORT void jq_enqueue_options_destroy(jq_enqueue_options_t* options);
/* Default "default". */
JQ_EXPORT void jq_enqueue_options_set_queue(jq_enqueue_options_t* options, const char* queue);
/* Runs no earlier than now + delay. Default 0. */
JQ_EXPORT void jq_enqueue_options_set_delay_ms(jq_enqueue_options_t* options, int64_t delay_ms);
/* Runs no earlier than this time (ms since the Unix epoch); overrides the delay. */
JQ_EXPORT void jq_enqueue_options_set_run_at_unix_ms(jq_enqueue_options_t* options,
                                                     int64_t unix_ms);
/* Lower runs first; -32768..32767, default 0. */
JQ_EXPORT void jq_enqueue_options_set_priority(jq_enqueue_options_t* options, int priority);
/* Attempts before the job fails for good; >= 1, default 5. */
JQ_EXPORT void jq_enqueue_options_set_max_attempts(jq_enqueue_options_t* options, int max_attempts);
/* At most one pending or processing job per queue and key; NULL or "" for none. */
JQ_EXPORT void jq_enqueue_options_set_dedupe_key(jq_enqueue_options_t* options, const char* key);

/* Enqueues one job. payload_json NULL means {}; options may be NULL. *id and *inserted may be
 * NULL; *inserted is 0 when a live job with the same dedupe key existed (*id is that job). */
JQ_EXPORT jq_status_t jq_pg_enqueue(jq_pg_queue_t* queue, const char* job_type,
                                    const char* payload_json, const jq_enqueue_options_t* options,
                                    int64_t* id, int* inserted, char** errptr);

/* A list of jobs for jq_pg_enqueue_batch. */
JQ_EXPORT jq_pg_batch_t* jq_pg_batch_create(void);
JQ_EXPORT void jq_pg_batch_destroy(jq_pg_batch_t* batch);
/* Copies the job; it is validated when the batch is enqueued. options may be NULL. */
JQ_EXPORT void jq_pg_batch_add(jq_pg_batch_t* batch, const char* job_type, const char* payload_json,
                               const jq_enqueue_options_t* options);
JQ_EXPORT size_t jq_pg_batch_size(const jq_pg_batch_t* batch);
JQ_EXPORT void jq_pg_batch_clear(jq_pg_batch_t* batch);
/* Enqueues the whole batch in one transaction (one statement; 32+ plain jobs go by COPY, a
 * few round trips); one bad job rejects it all. ids and inserted
 * (either may be NULL) must hold jq_pg_batch_size() entries; results are in batch order. */
JQ_EXPORT jq_status_t jq_pg_enqueue_batch(jq_pg_queue_t* queue, const jq_pg_batch_t* batch,
                                          int64_t* ids, int* inserted, char** errptr);

JQ_EXPORT jq_claim_options_t* jq_claim_options_create(void);
JQ_EXPORT void jq_claim_options_destroy(jq_claim_options_t* options);
/* The lease owner written to locked_by. Default: "<host>:<pid>:c<random>", fixed per options
 * object. */
JQ_EXPORT void jq_claim_options_set_worker_id(jq_claim_options_t* options, const char* worker_id);
JQ_EXPORT void jq_claim_options_set_queue(jq_claim_options_t* options, const char* queue);
/* Adds a job type to claim; none means any type in the queue. */
JQ_EXPORT void jq_claim_options_add_job_type(jq_claim_options_t* options, const char* job_type);
/* At most this many jobs, 1..10000. Default 1. */
JQ_EXPORT void jq_claim_options_set_limit(jq_claim_options_t* options, int limit);

/* Claims up to the limit of due jobs. *leases gets a malloc'd array of *count lease handles
 * (NULL when none); release them with jq_pg_leases_free (or each with jq_pg_lease_destroy,
 * then the array with jq_free). */
JQ_EXPORT jq_status_t jq_pg_claim(jq_pg_queue_t* queue, const jq_claim_options_t* options,
                                  jq_pg_lease_t*** leases, size_t* count, char** errptr);
JQ_EXPORT void jq_pg_leases_free(jq_pg_lease_t** leases, size_t count);
JQ_EXPORT void jq_pg_lease_destroy(jq_pg_lease_t* lease);
JQ_EXPORT int64_t jq_pg_lease_job_id(const jq_pg_lease_t* lease);
/* 1 on the first claim. */
JQ_EXPORT int jq_pg_lease_attempt(const jq_pg_lease_t* lease);
JQ_EXPORT int jq_pg_lease_max_attempts(const jq_pg_lease_t* lease);
JQ_EXPORT const char* jq_pg_lease_worker_id(const jq_pg_lease_t* lease);
JQ_EXPORT const char* jq_pg_lease_queue(const jq_pg_lease_t* lease);
JQ_EXPORT const char* jq_pg_lease_job_type(const jq_pg_lease_t* lease);
JQ_EXPORT const char* jq_pg_lease_payload(const jq_pg_lease_t* lease);

/* The calls below succeed only while the job is still processing under this lease; otherwise
 * JQ_LEASE_LOST (and nothing changes), or JQ_NOT_FOUND when the job is gone. */
JQ_EXPORT jq_status_t jq_pg_heartbeat(jq_pg_queue_t* queue, const jq_pg_lease_t* lease,
                                      char** errptr);
/* result_json NULL means null. */
JQ_EXPORT jq_status_t jq_pg_complete(jq_pg_queue_t* queue, const jq_pg_lease_t* lease,
                                     const char* result_json, char** errptr);
/* Completes n leases in one round trip per lease owner. results may be NULL (all null) or hold
 * n entries (NULL entries mean null); every result is checked first, so a bad one
 * (JQ_INVALID_ARGUMENT) writes nothing. *lost_ids (malloc'd, may be NULL when *lost_count is
 * 0) lists the jobs whose lease was lost; lost_ids and lost_count may be NULL. When a later
 * owner's round trip fails, the owners written before it stay completed: the error says so,
 * and *lost_ids still lists their lost jobs (free it then too). */
JQ_EXPORT jq_status_t jq_pg_complete_many(jq_pg_queue_t* queue, jq_pg_lease_t* const* leases,
                                          const char* const* results, size_t n, int64_t** lost_ids,
                                          size_t* lost_count, char** errptr);
/* Records the error; the job goes back to pending after the retry backoff (retry_delay_ms < 0:
 * the queue's policy) or fails for good when its attempts are spent. will_retry and
 * retry_at_unix_ms may be NULL. */
JQ_EXPORT jq_status_t jq_pg_fail(jq_pg_queue_t* queue, const jq_pg_lease_t* lease,
                                 const char* error, int64_t retry_delay_ms, int* will_retry,
                                 int64_t* retry_at_unix_ms, char** errptr);
/* Gives the job back to pending without using up an attempt. */
JQ_EXPORT jq_status_t jq_pg_release(jq_pg_queue_t* queue, const jq_pg_lease_t* lease,
                                    char** errptr);
/* Pending -> cancelled; JQ_FAILED_PRECONDITION when the job is not pending. */
JQ_EXPORT jq_status_t jq_pg_cancel(jq_pg_queue_t* queue, int64_t job_id, char** errptr);

/* One stale-lock reaper sweep: processing jobs without a heartbeat for stale_after_ms go back
 * to pending, or to failed when their attempts are spent. *to_pending and *to_failed (either
 * may be NULL) get how many; both 0 when another process held the sweep. */
JQ_EXPORT jq_status_t jq_pg_recover_stale(jq_pg_queue_t* queue, int64_t stale_after_ms,
                                          int64_t* to_pending, int64_t* to_failed, char** errptr);
/* The same with per job type thresholds: job_types[i] is stale after stale_after_ms_by_type[i]
 * (for types known to run long without heartbeats); other types after stale_after_ms. A type
 * listed twice is JQ_INVALID_ARGUMENT. */
JQ_EXPORT jq_status_t jq_pg_recover_stale_by_type(jq_pg_queue_t* queue, int64_t stale_after_ms,
                                                  const char* const* job_types,
                                                  const int64_t* stale_after_ms_by_type,
                                                  size_t type_count, int64_t* to_pending,
                                                  int64_t* to_failed, char** errptr);
/* Retention: deletes completed/cancelled jobs finished longer ago than completed_older_than_ms
 * and failed ones older than failed_older_than_ms (a negative age: the default, 7 and 30
 * days), in bounded batches. *deleted (may be NULL) gets how many. */
JQ_EXPORT jq_status_t jq_pg_purge(jq_pg_queue_t* queue, int64_t completed_older_than_ms,
                                  int64_t failed_older_than_ms, int64_t* deleted, char** errptr);

/* One job as stored. JQ_NOT_FOUND when there is no such job. */
JQ_EXPORT jq_status_t jq_pg_get(jq_pg_queue_t* queue, int64_t job_id, jq_pg_job_t** job,
                                char** errptr);
JQ_EXPORT void jq_pg_job_destroy(jq_pg_job_t* job);
JQ_EXPORT int64_t jq_pg_job_id(const jq_pg_job_t* job);
JQ_EXPORT const char* jq_pg_job_queue(const jq_pg_job_t* job);
JQ_EXPORT const char* jq_pg_job_type(const jq_pg_job_t* job);
JQ_EXPORT const char* jq_pg_job_payload(const jq_pg_job_t* job);
/* "pending", "processing", "completed", "failed" or "cancelled". */
JQ_EXPORT const char* jq_pg_job_status(const jq_pg_job_t* job);
JQ_EXPORT int jq_pg_job_priority(const jq_pg_job_t* job);
JQ_EXPORT int jq_pg_job_attempts(const jq_pg_job_t* job);
JQ_EXPORT int jq_pg_job_max_attempts(const jq_pg_job_t* job);
/* "" when none. */
JQ_EXPORT const char* jq_pg_job_last_error(const jq_pg_job_t* job);
/* The handler's JSON result; NULL when there is none. */
JQ_EXPORT const char* jq_pg_job_result(const jq_pg_job_t* job);
JQ_EXPORT const char* jq_pg_job_dedupe_key(const jq_pg_job_t* job);
JQ_EXPORT const char* jq_pg_job_locked_by(const jq_pg_job_t* job);
JQ_EXPORT int64_t jq_pg_job_run_at_unix_ms(const jq_pg_job_t* job);

/* Job counts by queue, type and status. */
JQ_EXPORT jq_status_t jq_pg_counts(jq_pg_queue_t* queue, jq_pg_counts_t** counts, char** errptr);
JQ_EXPORT void jq_pg_counts_destroy(jq_pg_counts_t* counts);
JQ_EXPORT size_t jq_pg_counts_size(const jq_pg_counts_t* counts);
JQ_EXPORT const char* jq_pg_counts_queue(const jq_pg_counts_t* counts, size_t index);
JQ_EXPORT const char* jq_pg_counts_job_type(const jq_pg_counts_t* counts, size_t index);
JQ_EXPORT const char* jq_pg_counts_status(const jq_pg_counts_t* counts, size_t index);
JQ_EXPORT int64_t jq_pg_counts_count(const jq_pg_counts_t* counts, size_t index);
/* The sum over the rows matching every non-NULL filter. */
JQ_EXPORT int64_t jq_pg_counts_total(const jq_pg_counts_t* counts, const char* queue,
                                     const char* job_type, const char* status);

/* ---- Postgres worker (include/jobqueue/worker.h) ---------------------------------------- */

typedef struct jq_worker_options_t jq_worker_options_t;
typedef struct jq_pg_worker_t jq_pg_worker_t;
typedef struct jq_job_context_t jq_job_context_t;

/* A handler runs one job on a worker thread. Return JQ_OK to complete the job with the result
 * set by jq_job_context_set_result (null when none). Any other code fails the attempt with the
 * message set by jq_job_context_set_error; it is retried per the queue's retry policy, or,
 * while the worker is stopping, released without using up an attempt (JQ_ABORTED too).
 * JQ_LEASE_LOST means the job is no longer ours and nothing is written. */
typedef jq_status_t (*jq_handler_fn)(void* user_data, jq_job_context_t* job);

/* The job being handled; valid only during the handler call. */
JQ_EXPORT const jq_pg_lease_t* jq_job_context_lease(const jq_job_context_t* job);
/* 1 once the worker is shutting down: long handlers may return early. */
JQ_EXPORT int jq_job_context_stopping(const jq_job_context_t* job);
/* Copies the JSON result (validated after the handler returns). */
JQ_EXPORT void jq_job_context_set_result(jq_job_context_t* job, const char* result_json);
/* Copies the message recorded as the job's last_error when the handler fails. */
JQ_EXPORT void jq_job_context_set_error(jq_job_context_t* job, const char* message);

JQ_EXPORT jq_worker_options_t* jq_worker_options_create(void);
JQ_EXPORT void jq_worker_options_destroy(jq_worker_options_t* options);
/* The name in the start-up line "Starting <name> Worker (env=...)". Default "Job". */
JQ_EXPORT void jq_worker_options_set_name(jq_worker_options_t* options, const char* name);
/* The environment in the start-up line. Default "dev". */
JQ_EXPORT void jq_worker_options_set_environment(jq_worker_options_t* options,
                                                 const char* environment);
/* Lease owner. Default "<host>:<pid>:<random>". */
JQ_EXPORT void jq_worker_options_set_worker_id(jq_worker_options_t* options, const char* worker_id);
JQ_EXPORT void jq_worker_options_set_queue(jq_worker_options_t* options, const char* queue);
/* Handler threads, 1..1024. Default 1. */
JQ_EXPORT void jq_worker_options_set_concurrency(jq_worker_options_t* options, int concurrency);
/* Jobs claimed per round trip; 0 means 2 x concurrency. */
JQ_EXPORT void jq_worker_options_set_batch_size(jq_worker_options_t* options, int batch_size);
/* Connections claiming in parallel, 1..16. Default 1. */
JQ_EXPORT void jq_worker_options_set_dispatchers(jq_worker_options_t* options, int dispatchers);
/* Short-job mode when > 0 (at most 10000): a claimed batch is held by an open transaction and
 * each job finishing within this budget is written once. Default 0 (off). */
JQ_EXPORT void jq_worker_options_set_transaction_budget_ms(jq_worker_options_t* options,
                                                           int64_t ms);
/* Fallback poll when no notification comes. Default 10000. */
JQ_EXPORT void jq_worker_options_set_poll_interval_ms(jq_worker_options_t* options, int64_t ms);
/* Wake on pg_notify from inserts. Default 1. */
JQ_EXPORT void jq_worker_options_set_listen(jq_worker_options_t* options, int listen);
/* Default 30000. */
JQ_EXPORT void jq_worker_options_set_heartbeat_interval_ms(jq_worker_options_t* options,
                                                           int64_t ms);
/* How long running handlers get after a stop before their jobs are released. Default 30000. */
JQ_EXPORT void jq_worker_options_set_shutdown_timeout_ms(jq_worker_options_t* options, int64_t ms);
/* jq_pg_worker_run returns after this long without work; < 0 means never (the default). */
JQ_EXPORT void jq_worker_options_set_exit_when_idle_ms(jq_worker_options_t* options, int64_t ms);
/* Backoff between reconnect attempts after a lost connection: starts at min_ms, doubles up to
 * max_ms (0 < min <= max). Default 100 and 10000. */
JQ_EXPORT void jq_worker_options_set_reconnect_backoff_ms(jq_worker_options_t* options,
                                                          int64_t min_ms, int64_t max_ms);
/* Log the start-up lines. Default 1. */
JQ_EXPORT void jq_worker_options_set_log_startup(jq_worker_options_t* options, int log_startup);
/* Takes the environment and WORKER_POLL_INTERVAL from a loaded configuration. */
JQ_EXPORT void jq_worker_options_apply_config(jq_worker_options_t* options,
                                              const jq_config_t* config);

/* A worker on `queue`, which must outlive it. options may be NULL. */
JQ_EXPORT jq_status_t jq_pg_worker_create(jq_pg_queue_t* queue, const jq_worker_options_t* options,
                                          jq_pg_worker_t** worker, char** errptr);
/* Frees the worker. Call it only when jq_pg_worker_run is not running (stop, then join). */
JQ_EXPORT void jq_pg_worker_destroy(jq_pg_worker_t* worker);
/* Before run. user_data is passed to every call of fn and must outlive the worker.
 * JQ_ALREADY_EXISTS for a second handler of the same type. */
JQ_EXPORT jq_status_t jq_pg_worker_register(jq_pg_worker_t* worker, const char* job_type,
                                            jq_handler_fn fn, void* user_data, char** errptr);
/* Processes jobs until jq_pg_worker_stop, a stop signal (jq_stop_workers_on_signals) or the
 * idle exit; returns JQ_OK after a graceful stop. A worker runs once. */
JQ_EXPORT jq_status_t jq_pg_worker_run(jq_pg_worker_t* worker, char** errptr);
/* Asks run to stop gracefully and returns at once. Safe from any thread and from a signal
 * handler (it only stores an atomic and writes to an eventfd). */
JQ_EXPORT void jq_pg_worker_stop(jq_pg_worker_t* worker);
/* As jq_pg_worker_stop, but running jobs are released at once instead of after the shutdown
 * timeout (their late results are dropped); run still returns only once their handlers do. */
JQ_EXPORT void jq_pg_worker_stop_now(jq_pg_worker_t* worker);
/* SIGTERM and SIGINT stop every worker running in the process; a second one while they stop
 * (a second or more after the first) hands their running jobs back at once instead of waiting
 * out the shutdown timeout. */
JQ_EXPORT void jq_stop_workers_on_signals(void);
JQ_EXPORT const char* jq_pg_worker_id(const jq_pg_worker_t* worker);

typedef enum jq_worker_stat_t {
  JQ_WORKER_COMPLETED = 0,
  JQ_WORKER_FAILED = 1,   /* handler errors (retried or failed for good) */
  JQ_WORKER_LOST = 2,     /* leases lost before finishing */
  JQ_WORKER_RELEASED = 3, /* handed back at shutdown */
  JQ_WORKER_CLAIMS = 4,   /* claim round trips */
  JQ_WORKER_RECONNECTS = 5
} jq_worker_stat_t;
/* One counter of the worker; 0 for an unknown stat. */
JQ_EXPORT int64_t jq_pg_worker_stat(const jq_pg_worker_t* worker, jq_worker_stat_t stat);

/* ---- BullMQ producer (include/jobqueue/bull_queue.h, docs/bullmq-compat.md) -------------- */

typedef struct jq_bull_options_t jq_bull_options_t;
typedef struct jq_bull_queue_t jq_bull_queue_t;

JQ_EXPORT jq_bull_options_t* jq_bull_options_create(void);
JQ_EXPORT void jq_bull_options_destroy(jq_bull_options_t* options);
/* Key prefix. Default "bull". */
JQ_EXPORT void jq_bull_options_set_prefix(jq_bull_options_t* options, const char* prefix);
/* Connections kept open. Default 4. */
JQ_EXPORT void jq_bull_options_set_pool_size(jq_bull_options_t* options, int pool_size);
/* Default 5000 each. */
JQ_EXPORT void jq_bull_options_set_connect_timeout_ms(jq_bull_options_t* options, int64_t ms);
JQ_EXPORT void jq_bull_options_set_io_timeout_ms(jq_bull_options_t* options, int64_t ms);
/* rediss:// only: a PEM file of trusted CAs, and whether to verify the server. */
JQ_EXPORT void jq_bull_options_set_tls_ca_file(jq_bull_options_t* options, const char* path);
JQ_EXPORT void jq_bull_options_set_tls_verify(jq_bull_options_t* options, int verify);

/* Opens queue `name` on redis://, rediss:// or unix:// `redis_url`. options may be NULL. */
JQ_EXPORT jq_status_t jq_bull_queue_open(const char* redis_url, const char* name,
                                         const jq_bull_options_t* options, jq_bull_queue_t** queue,
                                         char** errptr);
/* Uses the configuration's REDIS_URL; JQ_FAILED_PRECONDITION when it has none. */
JQ_EXPORT jq_status_t jq_bull_queue_open_config(const jq_config_t* config, const char* name,
                                                const jq_bull_options_t* options,
                                                jq_bull_queue_t** queue, char** errptr);
JQ_EXPORT void jq_bull_queue_close(jq_bull_queue_t* queue);
/* Adds a job as BullMQ's Queue.add(name, data, opts) would. data_json NULL means {};
 * opts_json (BullMQ JobsOptions: jobId, delay, priority, lifo, attempts, backoff, ...) may be
 * NULL. *id (may be NULL) is malloc'd; a duplicate custom jobId returns the existing job's. */
JQ_EXPORT jq_status_t jq_bull_add(jq_bull_queue_t* queue, const char* name, const char* data_json,
                                  const char* opts_json, char** id, char** errptr);

typedef enum jq_bull_state_t {
  JQ_BULL_ACTIVE = 0,
  JQ_BULL_COMPLETED = 1,
  JQ_BULL_DELAYED = 2,
  JQ_BULL_FAILED = 3,
  JQ_BULL_PAUSED = 4,
  JQ_BULL_PRIORITIZED = 5,
  JQ_BULL_WAITING = 6,
  JQ_BULL_WAITING_CHILDREN = 7,
  JQ_BULL_STATE_COUNT = 8
} jq_bull_state_t;
/* Job counts per state, as Queue.getJobCounts() reports them: counts[JQ_BULL_WAITING], ...
 * Fills min(n, JQ_BULL_STATE_COUNT) entries. */
JQ_EXPORT jq_status_t jq_bull_counts(jq_bull_queue_t* queue, int64_t* counts, size_t n,
                                     char** errptr);
/* Pauses or resumes the queue for every worker, Node ones included. */
JQ_EXPORT jq_status_t jq_bull_pause(jq_bull_queue_t* queue, char** errptr);
JQ_EXPORT jq_status_t jq_bull_resume(jq_bull_queue_t* queue, char** errptr);
/* One job's hash as a JSON object of its fields as stored ({"name": ..., "data": "<JSON
 * text>", "returnvalue": ..., ...}); *fields_json is freed with jq_free. JQ_NOT_FOUND when
 * there is no such job. */
JQ_EXPORT jq_status_t jq_bull_get_job(jq_bull_queue_t* queue, const char* id, char** fields_json,
                                      char** errptr);

/* Administration, as the Node Queue and Job methods of the same names. `count` arguments (may
 * be NULL) receive how many jobs were affected. */
/* Queue.drain: removes the waiting and prioritized jobs (and the delayed ones when
 * include_delayed) with their data; running and finished jobs stay. */
JQ_EXPORT jq_status_t jq_bull_drain(jq_bull_queue_t* queue, int include_delayed, int64_t* count,
                                    char** errptr);
/* Queue.clean: removes up to limit (0: all) jobs of state ("completed", "failed", "delayed",
 * "prioritized", "wait" or "paused") older than grace_ms; locked jobs stay. */
JQ_EXPORT jq_status_t jq_bull_clean(jq_bull_queue_t* queue, const char* state, int64_t grace_ms,
                                    int64_t limit, int64_t* count, char** errptr);
/* Job.remove: one job and its data, with the "removed" event. JQ_NOT_FOUND when missing,
 * JQ_FAILED_PRECONDITION while it is locked (running). */
JQ_EXPORT jq_status_t jq_bull_remove(jq_bull_queue_t* queue, const char* id, char** errptr);
/* Queue.retryJobs: every job of state ("failed" or "completed"; NULL: "failed") back to wait. */
JQ_EXPORT jq_status_t jq_bull_retry_jobs(jq_bull_queue_t* queue, const char* state, int64_t* count,
                                         char** errptr);
/* Job.promote for one delayed job (JQ_FAILED_PRECONDITION when it is not delayed), or with id
 * NULL Queue.promoteJobs for all of them: to wait now. */
JQ_EXPORT jq_status_t jq_bull_promote(jq_bull_queue_t* queue, const char* id, int64_t* count,
                                      char** errptr);

/* ---- BullMQ events (include/jobqueue/bull_events.h) --------------------------------------- */

/* A reader of a queue's events stream, like Node's QueueEvents: the entries Node workers and
 * ours write (added, waiting, active, completed, failed, progress, ...), read with a blocking
 * XREAD. Connection settings and prefix from a jq_bull_options_t (NULL: defaults). */
typedef struct jq_bull_events_t jq_bull_events_t;

/* from_id: "$" or NULL (only events after the open), "0" (the whole retained stream) or an
 * entry id (the events after it, to resume). */
JQ_EXPORT jq_status_t jq_bull_events_open(const char* redis_url, const char* queue,
                                          const jq_bull_options_t* options, const char* from_id,
                                          jq_bull_events_t** events, char** errptr);
/* Uses the configuration's REDIS_URL; JQ_FAILED_PRECONDITION when it has none. */
JQ_EXPORT jq_status_t jq_bull_events_open_config(const jq_config_t* config, const char* queue,
                                                 const jq_bull_options_t* options,
                                                 const char* from_id, jq_bull_events_t** events,
                                                 char** errptr);
/* Waits up to wait_ms for events after the last one read. *events_json gets a JSON array, in
 * order, of {"id": "<entry id>", "event": ..., "jobId": ..., "fields": {every field as
 * written}} ("[]" on timeout; jobId "" for queue-wide events); free it with jq_free. Pass the
 * last id as from_id to resume later. JQ_CANCELLED once jq_bull_events_stop was called. */
JQ_EXPORT jq_status_t jq_bull_events_read(jq_bull_events_t* events, int64_t wait_ms,
                                          char** events_json, char** errptr);
/* Ends a blocked or later read with JQ_CANCELLED. Safe from any thread. */
JQ_EXPORT void jq_bull_events_stop(jq_bull_events_t* events);
/* Call it only when no read is running. */
JQ_EXPORT void jq_bull_events_close(jq_bull_events_t* events);

/* ---- BullMQ consumer and worker (include/jobqueue/bull_consumer.h, bull_worker.h) -------- */

/* Both claim and finish jobs exactly as a Node BullMQ worker does (docs/bullmq-compat.md):
 * per-claim lock tokens, the job's attempts/backoff/removeOnComplete/removeOnFail/
 * stackTraceLimit. They take the connection settings and prefix from a jq_bull_options_t
 * (NULL: defaults; its pool size is not used) and the worker settings from a
 * jq_bull_worker_options_t (NULL: defaults). */

typedef struct jq_bull_worker_options_t jq_bull_worker_options_t;
typedef struct jq_bull_consumer_t jq_bull_consumer_t;
typedef struct jq_bull_lease_t jq_bull_lease_t;
typedef struct jq_bull_worker_t jq_bull_worker_t;
typedef struct jq_bull_job_context_t jq_bull_job_context_t;

JQ_EXPORT jq_bull_worker_options_t* jq_bull_worker_options_create(void);
JQ_EXPORT void jq_bull_worker_options_destroy(jq_bull_worker_options_t* options);
/* Stored as each job's processedBy ("pb"); the worker's connection is named after it so
 * Node's getWorkers() lists it. Default: unnamed. Consumer and worker. */
JQ_EXPORT void jq_bull_worker_options_set_name(jq_bull_worker_options_t* options, const char* name);
/* Lock time per job, 10 ms..365 days. Default 30000. Consumer and worker (which renews locks at
 * half of it). */
JQ_EXPORT void jq_bull_worker_options_set_lock_duration_ms(jq_bull_worker_options_t* options,
                                                           int64_t ms);
/* Worker only: handler threads, 1..1024. Default 1. */
JQ_EXPORT void jq_bull_worker_options_set_concurrency(jq_bull_worker_options_t* options,
                                                      int concurrency);
/* Worker only: claiming ahead. Up to `prefetch` (0..1024; 0 turns it off) jobs beyond the
 * running ones are claimed while handlers are fast: at most what they get through in
 * window_ms at their recent pace. Default 64 and 2. */
JQ_EXPORT void jq_bull_worker_options_set_prefetch(jq_bull_worker_options_t* options, int prefetch,
                                                   double window_ms);
/* Worker only: jq_bull_worker_run returns after this long without work; < 0 means never (the
 * default). */
JQ_EXPORT void jq_bull_worker_options_set_exit_when_idle_ms(jq_bull_worker_options_t* options,
                                                            int64_t ms);
/* Worker only: how long running handlers get after a stop before their jobs are handed back
 * to wait. Default 30000. */
JQ_EXPORT void jq_bull_worker_options_set_shutdown_timeout_ms(jq_bull_worker_options_t* options,
                                                              int64_t ms);
/* Worker only: stalled-job check period (default 30000) and the stalls a job may have before
 * it fails (default 1). */
JQ_EXPORT void jq_bull_worker_options_set_stalled(jq_bull_worker_options_t* options,
                                                  int64_t interval_ms, int max_stalled_count);

/* Worker only: backoff between reconnect attempts after Redis goes away: starts at min_ms,
 * doubles up to max_ms (0 < min <= max). Default 100 and 10000. */
JQ_EXPORT void jq_bull_worker_options_set_reconnect_backoff_ms(jq_bull_worker_options_t* options,
                                                               int64_t min_ms, int64_t max_ms);

/* -- consumer: your own loop of fetch, then extend / complete / fail / release per job. It
 * renews no locks by itself (extend long jobs' locks) and runs no stalled check. */

/* Opens a consumer of queue `queue` on redis://, rediss:// or unix:// `redis_url`. */
JQ_EXPORT jq_status_t jq_bull_consumer_open(const char* redis_url, const char* queue,
                                            const jq_bull_options_t* options,
                                            const jq_bull_worker_options_t* worker_options,
                                            jq_bull_consumer_t** consumer, char** errptr);
/* Uses the configuration's REDIS_URL; JQ_FAILED_PRECONDITION when it has none. */
JQ_EXPORT jq_status_t jq_bull_consumer_open_config(const jq_config_t* config, const char* queue,
                                                   const jq_bull_options_t* options,
                                                   const jq_bull_worker_options_t* worker_options,
                                                   jq_bull_consumer_t** consumer, char** errptr);
/* Call it only when no other call on the consumer is running. Leases stay valid (they are
 * separate handles) but can no longer be finished through it. */
JQ_EXPORT void jq_bull_consumer_close(jq_bull_consumer_t* consumer);
/* Claims up to max (1..1000) jobs in BullMQ order. With none ready, waits up to wait_ms for
 * one to be added or come due (0: do not wait). *leases gets a malloc'd array of *count lease
 * handles (NULL when none came; a paused queue gives none); release them with
 * jq_bull_leases_free (or each with jq_bull_lease_destroy, then the array with jq_free). */
JQ_EXPORT jq_status_t jq_bull_consumer_fetch(jq_bull_consumer_t* consumer, int max, int64_t wait_ms,
                                             jq_bull_lease_t*** leases, size_t* count,
                                             char** errptr);
/* The calls below succeed only while the lease still holds the job's lock; otherwise they
 * return JQ_LEASE_LOST (and nothing is written), or JQ_NOT_FOUND when the job is gone. */
/* Renews the lock for another lock duration. */
JQ_EXPORT jq_status_t jq_bull_consumer_extend_lock(jq_bull_consumer_t* consumer,
                                                   const jq_bull_lease_t* lease, char** errptr);
/* Completes the job; return_value_json NULL means null. JQ_INVALID_ARGUMENT (nothing written,
 * the lease still good) when it is not JSON. */
JQ_EXPORT jq_status_t jq_bull_consumer_complete(jq_bull_consumer_t* consumer,
                                                const jq_bull_lease_t* lease,
                                                const char* return_value_json, char** errptr);
/* Fails this attempt with `reason` (failedReason, and a stacktrace entry): retried per the
 * job's attempts and backoff, else failed for good. unrecoverable != 0 fails it for good at
 * once (Node's UnrecoverableError). */
JQ_EXPORT jq_status_t jq_bull_consumer_fail(jq_bull_consumer_t* consumer,
                                            const jq_bull_lease_t* lease, const char* reason,
                                            int unrecoverable, char** errptr);
/* Hands the job back to wait unprocessed, without using up an attempt. */
JQ_EXPORT jq_status_t jq_bull_consumer_release(jq_bull_consumer_t* consumer,
                                               const jq_bull_lease_t* lease, char** errptr);

JQ_EXPORT void jq_bull_leases_free(jq_bull_lease_t** leases, size_t count);
JQ_EXPORT void jq_bull_lease_destroy(jq_bull_lease_t* lease);
/* The job as claimed; strings are borrowed from the lease. */
JQ_EXPORT const char* jq_bull_lease_id(const jq_bull_lease_t* lease);
JQ_EXPORT const char* jq_bull_lease_name(const jq_bull_lease_t* lease);
/* The job's data (JSON as stored). */
JQ_EXPORT const char* jq_bull_lease_data(const jq_bull_lease_t* lease);
/* The job's BullMQ JobsOptions (JSON as stored). */
JQ_EXPORT const char* jq_bull_lease_opts(const jq_bull_lease_t* lease);
/* Attempts finished before this one ("attemptsMade"): 0 on the first run. */
JQ_EXPORT int64_t jq_bull_lease_attempts_made(const jq_bull_lease_t* lease);
/* When the job was added, ms since the Unix epoch. */
JQ_EXPORT int64_t jq_bull_lease_timestamp_ms(const jq_bull_lease_t* lease);
/* The lock token of this claim. */
JQ_EXPORT const char* jq_bull_lease_token(const jq_bull_lease_t* lease);

/* -- worker: a callback loop that renews locks, checks for stalled jobs and finishes jobs. */

/* A handler runs one job on a worker thread. Return JQ_OK to complete the job with the
 * return value set by jq_bull_job_context_set_result (null when none; one that is not JSON
 * fails the job). Any other code fails the attempt with the message set by
 * jq_bull_job_context_set_error (the failedReason); it is retried per the job's attempts and
 * backoff unless jq_bull_job_context_set_unrecoverable was called. JQ_LEASE_LOST is such a
 * failure too (unlike a Postgres handler's, it does not mean "write nothing": the worker's
 * lock check refuses the write when the lock is really gone). */
typedef jq_status_t (*jq_bull_handler_fn)(void* user_data, jq_bull_job_context_t* job);

/* The job being handled (use the jq_bull_lease_* accessors); valid only during the call. */
JQ_EXPORT const jq_bull_lease_t* jq_bull_job_context_lease(const jq_bull_job_context_t* job);
/* 1 once the worker is shutting down: long handlers may return early. */
JQ_EXPORT int jq_bull_job_context_stopping(const jq_bull_job_context_t* job);
/* Copies the JSON return value. */
JQ_EXPORT void jq_bull_job_context_set_result(jq_bull_job_context_t* job,
                                              const char* return_value_json);
/* Copies the failure message. */
JQ_EXPORT void jq_bull_job_context_set_error(jq_bull_job_context_t* job, const char* message);
/* A failure of this call is final: no retry whatever the job's attempts. */
JQ_EXPORT void jq_bull_job_context_set_unrecoverable(jq_bull_job_context_t* job);
/* Copies the stack trace stored for this failure in the job's stacktrace list (the caller
 * language's own trace); without it the library writes one naming the queue. */
JQ_EXPORT void jq_bull_job_context_set_stacktrace(jq_bull_job_context_t* job,
                                                  const char* stacktrace);
/* Job.updateProgress: stores the progress (a JSON number or object) and emits "progress". */
JQ_EXPORT jq_status_t jq_bull_job_context_update_progress(jq_bull_job_context_t* job,
                                                          const char* progress_json, char** errptr);
/* Job.log: appends a line to the job's log (trimmed to its keepLogs option). */
JQ_EXPORT jq_status_t jq_bull_job_context_log(jq_bull_job_context_t* job, const char* line,
                                              char** errptr);

/* A worker on queue `queue`; it connects now (failing fast on a bad URL or password) but
 * claims only in jq_bull_worker_run. user_data is passed to every call of fn and must outlive
 * the worker. */
JQ_EXPORT jq_status_t jq_bull_worker_create(const char* redis_url, const char* queue,
                                            const jq_bull_options_t* options,
                                            const jq_bull_worker_options_t* worker_options,
                                            jq_bull_handler_fn fn, void* user_data,
                                            jq_bull_worker_t** worker, char** errptr);
/* Uses the configuration's REDIS_URL; JQ_FAILED_PRECONDITION when it has none. */
JQ_EXPORT jq_status_t jq_bull_worker_create_config(const jq_config_t* config, const char* queue,
                                                   const jq_bull_options_t* options,
                                                   const jq_bull_worker_options_t* worker_options,
                                                   jq_bull_handler_fn fn, void* user_data,
                                                   jq_bull_worker_t** worker, char** errptr);
/* Frees the worker. Call it only when jq_bull_worker_run is not running (stop, then join). */
JQ_EXPORT void jq_bull_worker_destroy(jq_bull_worker_t* worker);
/* Processes jobs until jq_bull_worker_stop, a stop signal (jq_stop_workers_on_signals) or the
 * idle exit; then finishes or hands back in-flight jobs, leaving nothing locked. JQ_OK after
 * a graceful stop. A worker runs once: a second call, concurrent or later, is
 * JQ_FAILED_PRECONDITION. */
JQ_EXPORT jq_status_t jq_bull_worker_run(jq_bull_worker_t* worker, char** errptr);
/* Asks run to stop gracefully and returns at once. Safe from any thread and from a signal
 * handler (it only stores an atomic and writes to an eventfd). */
JQ_EXPORT void jq_bull_worker_stop(jq_bull_worker_t* worker);
/* As jq_bull_worker_stop, but running jobs are handed back at once instead of after the
 * shutdown timeout. */
JQ_EXPORT void jq_bull_worker_stop_now(jq_bull_worker_t* worker);

typedef enum jq_bull_worker_stat_t {
  JQ_BULL_WORKER_COMPLETED = 0,
  JQ_BULL_WORKER_FAILED = 1,            /* failed for good */
  JQ_BULL_WORKER_RETRIED = 2,           /* failed and moved back to wait or delayed */
  JQ_BULL_WORKER_LOST = 3,              /* lock lost before finishing: nothing written */
  JQ_BULL_WORKER_RELEASED = 4,          /* handed back at shutdown */
  JQ_BULL_WORKER_STALLED_RECOVERED = 5, /* jobs its stalled check moved back to wait */
  JQ_BULL_WORKER_STEPS = 6,             /* finish+claim round trips */
  JQ_BULL_WORKER_RECONNECTS = 7,
  JQ_BULL_WORKER_PREFETCHED = 8, /* jobs claimed ahead of a free handler */
  JQ_BULL_WORKER_ADOPTED = 9     /* claims whose reply was lost, found again and kept */
} jq_bull_worker_stat_t;
/* One counter of the worker; 0 for an unknown stat. */
JQ_EXPORT int64_t jq_bull_worker_stat(const jq_bull_worker_t* worker, jq_bull_worker_stat_t stat);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* JOBQUEUE_C_H_ */
