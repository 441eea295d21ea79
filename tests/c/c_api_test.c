/* The C API against the real local servers (DATABASE_URL, REDIS_URL from scripts/services env).
 * Written in C11 so the header is proven to be C. Uses a fresh schema c_api_<pid> and a queue
 * name of the same form in Redis, and removes both at the end. Run under valgrind by ctest
 * too, so every handle and message it gets is released. */
#define _POSIX_C_SOURCE 200809L

#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jobqueue/c.h"

static const char* phase = "";
static int failures = 0;

#define CHECK(cond)                                                                        \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "%s:%d: [%s] check failed: %s\n", __FILE__, __LINE__, phase, #cond); \
      failures++;                                                                          \
    }                                                                                      \
  } while (0)

/* A call that must succeed; prints the error message otherwise. */
#define CHECK_OK(call)                                                                      \
  do {                                                                                      \
    char* err_ = NULL;                                                                      \
    jq_status_t st_ = (call);                                                               \
    if (st_ != JQ_OK) {                                                                     \
      fprintf(stderr, "%s:%d: [%s] %s returned %s: %s\n", __FILE__, __LINE__, phase, #call, \
              jq_status_name(st_), err_ ? err_ : "(no message)");                           \
      failures++;                                                                           \
    }                                                                                       \
    jq_free(err_);                                                                          \
  } while (0)

#define OK_ERR &err_

/* A call that must fail with `code` and a message containing `needle`. */
#define CHECK_ERR(code, needle, call)                                                      \
  do {                                                                                     \
    char* err_ = NULL;                                                                     \
    jq_status_t st_ = (call);                                                              \
    if (st_ != (code) || err_ == NULL || strstr(err_, (needle)) == NULL) {                 \
      fprintf(stderr, "%s:%d: [%s] %s: want %s containing \"%s\", got %s: %s\n", __FILE__, \
              __LINE__, phase, #call, jq_status_name(code), (needle), jq_status_name(st_), \
              err_ ? err_ : "(no message)");                                               \
      failures++;                                                                          \
    }                                                                                      \
    jq_free(err_);                                                                         \
  } while (0)

static void StartPhase(const char* name) {
  phase = name;
  fprintf(stderr, "=== %s\n", name);
}

static const char* Env(const char* name) {
  const char* value = getenv(name);
  if (value == NULL || value[0] == '\0') {
    fprintf(stderr, "%s is not set: run eval \"$(scripts/services env)\"\n", name);
    exit(2);
  }
  return value;
}

static void SleepMs(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static char schema[64];
static char bull_name[64];
static char consumer_name[80];
static char bull_worker_name[80];

static void RunSql(const char* sql) {
  PGconn* conn = PQconnectdb(Env("DATABASE_URL"));
  CHECK(PQstatus(conn) == CONNECTION_OK);
  PQclear(PQexec(conn, "SET client_min_messages = warning"));
  PGresult* result = PQexec(conn, sql);
  CHECK(PQresultStatus(result) == PGRES_COMMAND_OK);
  PQclear(result);
  PQfinish(conn);
}

/* The first column of the first row of `sql`, as a number; -1 on failure. */
static long SqlNumber(const char* sql) {
  PGconn* conn = PQconnectdb(Env("DATABASE_URL"));
  CHECK(PQstatus(conn) == CONNECTION_OK);
  PGresult* result = PQexec(conn, sql);
  long value = -1;
  if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1) {
    value = atol(PQgetvalue(result, 0, 0));
  }
  CHECK(value >= 0);
  PQclear(result);
  PQfinish(conn);
  return value;
}

/* ---- basics ------------------------------------------------------------------------------ */

static void TestBasics(void) {
  StartPhase("basics");
  CHECK(strcmp(jq_status_name(JQ_OK), "OK") == 0);
  /* A lost lease has its own code, apart from a retryable ABORTED. */
  CHECK(JQ_LEASE_LOST != JQ_ABORTED);
  CHECK(strcmp(jq_status_name(JQ_LEASE_LOST), "LEASE_LOST") == 0);
  CHECK(strcmp(jq_status_name(JQ_ABORTED), "ABORTED") == 0);
  CHECK(strcmp(jq_status_name((jq_status_t)99), "UNKNOWN") == 0);
  CHECK(strlen(jq_version()) >= 5);
  jq_free(NULL);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "log level", jq_configure_logging("loud", NULL, NULL, OK_ERR));
  CHECK_OK(jq_configure_logging("warn", "text", "c_api_test", OK_ERR));

  /* One error variable across calls: the earlier message is freed and replaced. */
  char* err = NULL;
  CHECK(jq_pg_queue_migrate(NULL, NULL, &err) == JQ_INVALID_ARGUMENT);
  CHECK(err != NULL && strstr(err, "jq_pg_queue_migrate: queue is NULL") != NULL);
  CHECK(jq_pg_enqueue(NULL, "t", NULL, NULL, NULL, NULL, &err) == JQ_INVALID_ARGUMENT);
  CHECK(err != NULL && strstr(err, "jq_pg_enqueue") != NULL);
  jq_free(err);
  /* errptr may be NULL. */
  CHECK(jq_pg_cancel(NULL, 1, NULL) == JQ_INVALID_ARGUMENT);
}

/* ---- configuration ------------------------------------------------------------------------ */

static jq_config_options_t* ConfigOptions(const char* service) {
  jq_config_options_t* options = jq_config_options_create();
  jq_config_options_set_service(options, service);
  jq_config_options_set_env(options, "DATABASE_URL", Env("DATABASE_URL"));
  jq_config_options_set_env(options, "REDIS_URL", Env("REDIS_URL"));
  return options;
}

static void TestConfig(const char* env_dir) {
  StartPhase("config");
  jq_config_options_t* options = ConfigOptions("worker");
  jq_config_options_set_env_dir(options, env_dir);
  jq_config_t* config = NULL;
  CHECK_OK(jq_config_load(options, &config, OK_ERR));
  CHECK(config != NULL);
  CHECK(strcmp(jq_config_service(config), "worker") == 0);
  CHECK(strcmp(jq_config_environment(config), "dev") == 0);
  CHECK(strcmp(jq_config_supabase_mode(config), "unset") == 0);
  CHECK(jq_config_has_database_url(config));
  CHECK(jq_config_has_redis_url(config));
  CHECK(strcmp(jq_config_database_url_source(config), "DATABASE_URL") == 0);
  /* The password never shows. */
  CHECK(strstr(jq_config_database_url_redacted(config), "****") != NULL);
  CHECK(strstr(jq_config_redis_url_redacted(config), "****") != NULL);
  /* From the .env file written by main(). */
  CHECK(jq_config_poll_interval_ms(config) == 2500);
  char* value = NULL;
  CHECK_OK(jq_config_get(config, "INGEST_BUCKET", &value, OK_ERR));
  CHECK(value != NULL && strcmp(value, "uploads") == 0);
  jq_free(value);
  value = NULL;
  CHECK_ERR(JQ_NOT_FOUND, "NOT_THERE", jq_config_get(config, "NOT_THERE", &value, OK_ERR));
  CHECK(value == NULL);
  CHECK_OK(jq_config_get_secret(config, "DATABASE_URL", &value, OK_ERR));
  CHECK(value != NULL && strcmp(value, Env("DATABASE_URL")) == 0);
  jq_free(value);
  CHECK(jq_config_warning_count(config) == 0);
  CHECK(strcmp(jq_config_warning(config, 99), "") == 0);
  jq_config_destroy(config);
  jq_config_options_destroy(options);

  StartPhase("config: scopes");
  /* A worker-only secret in the API: a warning in dev, refused in prod (exit code 77). */
  options = ConfigOptions("api");
  jq_config_options_set_env(options, "JUDIT_API_KEY", "k-123");
  config = NULL;
  CHECK_OK(jq_config_load(options, &config, OK_ERR));
  CHECK(jq_config_scope_violation_count(config) == 1);
  CHECK(strcmp(jq_config_scope_violation(config, 0), "JUDIT_API_KEY") == 0);
  CHECK(jq_config_warning_count(config) >= 1);
  value = NULL;
  CHECK_ERR(JQ_PERMISSION_DENIED, "JUDIT_API_KEY",
            jq_config_get_secret(config, "JUDIT_API_KEY", &value, OK_ERR));
  CHECK(value == NULL);
  jq_config_destroy(config);
  jq_config_options_set_env(options, "ENVIRONMENT", "prod");
  config = NULL;
  char* err = NULL;
  jq_status_t status = jq_config_load(options, &config, &err);
  CHECK(status == JQ_PERMISSION_DENIED);
  CHECK(config == NULL);
  CHECK(err != NULL && strstr(err, "JUDIT_API_KEY") != NULL && strstr(err, "k-123") == NULL);
  CHECK(jq_config_exit_code(status) == 77);
  jq_free(err);
  jq_config_options_destroy(options);

  StartPhase("config: bad input");
  options = ConfigOptions("worker");
  jq_config_options_set_env(options, "LOG_LEVEL", "loud");
  jq_config_options_set_env(options, "WORKER_POLL_INTERVAL", "-1");
  err = NULL;
  status = jq_config_load(options, &config, &err);
  CHECK(status == JQ_INVALID_ARGUMENT);
  /* All problems in one message. */
  CHECK(err != NULL && strstr(err, "LOG_LEVEL") != NULL);
  CHECK(err != NULL && strstr(err, "WORKER_POLL_INTERVAL") != NULL);
  CHECK(jq_config_exit_code(status) == 78);
  jq_free(err);
  jq_config_options_destroy(options);
  options = jq_config_options_create();
  CHECK_ERR(JQ_INVALID_ARGUMENT, "service", jq_config_load(options, &config, OK_ERR));
  CHECK_ERR(JQ_INVALID_ARGUMENT, "options is NULL", jq_config_load(NULL, &config, OK_ERR));
  jq_config_options_destroy(options);
  /* Setters on NULL handles are no-ops. */
  jq_config_options_set_service(NULL, "x");
  jq_config_options_destroy(NULL);
}

/* ---- Postgres queue ----------------------------------------------------------------------- */

static int64_t Total(jq_pg_queue_t* queue, const char* job_type, const char* status) {
  jq_pg_counts_t* counts = NULL;
  CHECK_OK(jq_pg_counts(queue, &counts, OK_ERR));
  int64_t total = jq_pg_counts_total(counts, NULL, job_type, status);
  jq_pg_counts_destroy(counts);
  return total;
}

static jq_pg_lease_t** Claim(jq_pg_queue_t* queue, const char* job_type, int limit, size_t* count) {
  jq_claim_options_t* claim = jq_claim_options_create();
  jq_claim_options_add_job_type(claim, job_type);
  jq_claim_options_set_limit(claim, limit);
  jq_pg_lease_t** leases = NULL;
  *count = 0;
  CHECK_OK(jq_pg_claim(queue, claim, &leases, count, OK_ERR));
  jq_claim_options_destroy(claim);
  return leases;
}

static const char* JobStatus(jq_pg_queue_t* queue, int64_t id, char* last_error, size_t size) {
  static char status[32];
  jq_pg_job_t* job = NULL;
  status[0] = '\0';
  CHECK_OK(jq_pg_get(queue, id, &job, OK_ERR));
  if (job != NULL) {
    snprintf(status, sizeof(status), "%s", jq_pg_job_status(job));
    if (last_error != NULL) snprintf(last_error, size, "%s", jq_pg_job_last_error(job));
    jq_pg_job_destroy(job);
  }
  return status;
}

static jq_pg_queue_t* OpenQueue(void) {
  jq_config_options_t* options = ConfigOptions("worker");
  jq_config_t* config = NULL;
  CHECK_OK(jq_config_load(options, &config, OK_ERR));
  jq_config_options_destroy(options);
  jq_pg_options_t* pg = jq_pg_options_create();
  jq_pg_options_set_schema(pg, schema);
  jq_pg_options_set_pool_size(pg, 4);
  jq_pg_options_set_application_name(pg, "c_api_test");
  jq_pg_options_set_retry(pg, 1000, 2.0, 60000, 0.0);
  jq_pg_queue_t* queue = NULL;
  CHECK_OK(jq_pg_queue_open_config(config, pg, &queue, OK_ERR));
  jq_pg_options_destroy(pg);
  jq_config_destroy(config);
  return queue;
}

static jq_status_t HandleBullJob(void* user_data, jq_bull_job_context_t* job);

static void TestOpenErrors(void) {
  StartPhase("pg: open errors");
  jq_pg_queue_t* queue = NULL;
  jq_pg_options_t* pg = jq_pg_options_create();
  jq_pg_options_set_connect_timeout_ms(pg, 2000);
  /* Nothing listens on port 1. */
  CHECK_ERR(JQ_UNAVAILABLE, "connecting to",
            jq_pg_queue_open("postgresql://u:secret-pw@127.0.0.1:1/db", pg, &queue, OK_ERR));
  CHECK(queue == NULL);
  char* err = NULL;
  jq_pg_queue_open("postgresql://u:secret-pw@127.0.0.1:1/db", pg, &queue, &err);
  CHECK(err != NULL && strstr(err, "secret-pw") == NULL);
  jq_free(err);
  jq_pg_options_set_schema(pg, "Bad-Schema");
  CHECK_ERR(JQ_INVALID_ARGUMENT, "schema",
            jq_pg_queue_open(Env("DATABASE_URL"), pg, &queue, OK_ERR));
  jq_pg_options_destroy(pg);

  /* Each pool setting reaches the queue's own checks. */
  pg = jq_pg_options_create();
  jq_pg_options_set_pool_size(pg, 2);
  jq_pg_options_set_connections_at_open(pg, 3);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "connections_at_open must be 1..pool_size (2), got 3",
            jq_pg_queue_open(Env("DATABASE_URL"), pg, &queue, OK_ERR));
  jq_pg_options_set_connections_at_open(pg, 2);
  jq_pg_options_set_max_enqueue_statements(pg, -1);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "max_enqueue_statements must be 0..1000, got -1",
            jq_pg_queue_open(Env("DATABASE_URL"), pg, &queue, OK_ERR));
  jq_pg_options_set_max_enqueue_statements(pg, 0);
  jq_pg_options_set_migrate_lock_timeout_ms(pg, 0);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "migrate_lock_timeout",
            jq_pg_queue_open(Env("DATABASE_URL"), pg, &queue, OK_ERR));
  jq_pg_options_set_migrate_lock_timeout_ms(pg, 2000);
  jq_pg_options_set_held_batch_idle_timeout_ms(pg, 500);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "held_batch_idle_timeout",
            jq_pg_queue_open(Env("DATABASE_URL"), pg, &queue, OK_ERR));
  CHECK(queue == NULL);
  /* Valid values: open makes the two connections asked for before it returns. */
  jq_pg_options_set_held_batch_idle_timeout_ms(pg, 30000);
  /* Per process: ctest runs this binary and its valgrind run side by side. */
  char app[64];
  snprintf(app, sizeof app, "c_api_%d_at_open", (int)getpid());
  jq_pg_options_set_application_name(pg, app);
  CHECK_OK(jq_pg_queue_open(Env("DATABASE_URL"), pg, &queue, OK_ERR));
  char count_sql[160];
  snprintf(count_sql, sizeof count_sql,
           "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'", app);
  CHECK(SqlNumber(count_sql) == 2);
  jq_pg_queue_close(queue);
  queue = NULL;
  jq_pg_options_destroy(pg);
  /* A configuration without a database. */
  jq_config_options_t* options = jq_config_options_create();
  jq_config_options_set_service(options, "cli");
  jq_config_options_set_env(options, "LOG_LEVEL", "warn");
  jq_config_t* config = NULL;
  CHECK_OK(jq_config_load(options, &config, OK_ERR));
  CHECK(!jq_config_has_database_url(config));
  CHECK_ERR(JQ_FAILED_PRECONDITION, "no database configured",
            jq_pg_queue_open_config(config, NULL, &queue, OK_ERR));
  jq_bull_queue_t* bull = NULL;
  CHECK_ERR(JQ_FAILED_PRECONDITION, "REDIS_URL",
            jq_bull_queue_open_config(config, "q", NULL, &bull, OK_ERR));
  jq_bull_consumer_t* consumer = NULL;
  CHECK_ERR(JQ_FAILED_PRECONDITION, "REDIS_URL",
            jq_bull_consumer_open_config(config, "q", NULL, NULL, &consumer, OK_ERR));
  CHECK(consumer == NULL);
  jq_bull_worker_t* bull_worker = NULL;
  CHECK_ERR(JQ_FAILED_PRECONDITION, "REDIS_URL",
            jq_bull_worker_create_config(config, "q", NULL, NULL, HandleBullJob, NULL, &bull_worker,
                                         OK_ERR));
  CHECK(bull_worker == NULL);
  jq_config_destroy(config);
  jq_config_options_destroy(options);
}

static void TestEnqueue(jq_pg_queue_t* queue) {
  StartPhase("pg: enqueue");
  int64_t id = 0;
  int inserted = -1;
  /* Before the migration the table is missing: a clear error, not a crash. */
  CHECK_ERR(JQ_FAILED_PRECONDITION, "migrate",
            jq_pg_enqueue(queue, "c_one", "{}", NULL, &id, &inserted, OK_ERR));
  int version = 0;
  CHECK_OK(jq_pg_queue_migrate(queue, &version, OK_ERR));
  CHECK(version >= 1);
  int again = 0;
  CHECK_OK(jq_pg_queue_migrate(queue, &again, OK_ERR));
  CHECK(again == version);

  CHECK_OK(jq_pg_enqueue(queue, "c_one", "{\"n\": 1}", NULL, &id, &inserted, OK_ERR));
  CHECK(id > 0);
  CHECK(inserted == 1);
  jq_pg_job_t* job = NULL;
  CHECK_OK(jq_pg_get(queue, id, &job, OK_ERR));
  CHECK(strcmp(jq_pg_job_type(job), "c_one") == 0);
  CHECK(strcmp(jq_pg_job_status(job), "pending") == 0);
  CHECK(strstr(jq_pg_job_payload(job), "\"n\"") != NULL);
  CHECK(strcmp(jq_pg_job_queue(job), "default") == 0);
  CHECK(jq_pg_job_max_attempts(job) == 5);
  CHECK(jq_pg_job_result(job) == NULL);
  jq_pg_job_destroy(job);

  /* Options: priority, attempts, dedupe key, delay. */
  jq_enqueue_options_t* options = jq_enqueue_options_create();
  jq_enqueue_options_set_priority(options, -5);
  jq_enqueue_options_set_max_attempts(options, 2);
  jq_enqueue_options_set_dedupe_key(options, "case-7");
  int64_t first = 0, second = 0;
  CHECK_OK(jq_pg_enqueue(queue, "c_dedupe", NULL, options, &first, &inserted, OK_ERR));
  CHECK(inserted == 1);
  CHECK_OK(jq_pg_enqueue(queue, "c_dedupe", NULL, options, &second, &inserted, OK_ERR));
  CHECK(inserted == 0);
  CHECK(second == first);
  CHECK_OK(jq_pg_get(queue, first, &job, OK_ERR));
  CHECK(jq_pg_job_priority(job) == -5);
  CHECK(jq_pg_job_max_attempts(job) == 2);
  CHECK(strcmp(jq_pg_job_dedupe_key(job), "case-7") == 0);
  CHECK(strcmp(jq_pg_job_payload(job), "{}") == 0);
  jq_pg_job_destroy(job);
  jq_enqueue_options_set_dedupe_key(options, NULL);
  jq_enqueue_options_set_delay_ms(options, 3600 * 1000);
  CHECK_OK(jq_pg_enqueue(queue, "c_delayed", "[1,2]", options, &id, NULL, OK_ERR));
  CHECK_OK(jq_pg_get(queue, id, &job, OK_ERR));
  CHECK(jq_pg_job_run_at_unix_ms(job) > (int64_t)time(NULL) * 1000 + 3500 * 1000);
  jq_pg_job_destroy(job);
  size_t count = 0;
  jq_pg_lease_t** leases = Claim(queue, "c_delayed", 10, &count);
  CHECK(count == 0);
  CHECK(leases == NULL);
  jq_enqueue_options_destroy(options);

  StartPhase("pg: enqueue bad input");
  CHECK_ERR(JQ_INVALID_ARGUMENT, "JSON",
            jq_pg_enqueue(queue, "c_one", "{nope", NULL, NULL, NULL, OK_ERR));
  CHECK_ERR(JQ_INVALID_ARGUMENT, "job type",
            jq_pg_enqueue(queue, "bad type!", "{}", NULL, NULL, NULL, OK_ERR));
  CHECK_ERR(JQ_INVALID_ARGUMENT, "job_type is NULL",
            jq_pg_enqueue(queue, NULL, "{}", NULL, NULL, NULL, OK_ERR));
  options = jq_enqueue_options_create();
  jq_enqueue_options_set_priority(options, 40000);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "priority",
            jq_pg_enqueue(queue, "c_one", "{}", options, NULL, NULL, OK_ERR));
  jq_enqueue_options_set_priority(options, 0);
  jq_enqueue_options_set_max_attempts(options, 0);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "attempts",
            jq_pg_enqueue(queue, "c_one", "{}", options, NULL, NULL, OK_ERR));
  jq_enqueue_options_destroy(options);

  StartPhase("pg: batch");
  jq_pg_batch_t* batch = jq_pg_batch_create();
  char payload[64];
  for (int i = 0; i < 10; ++i) {
    snprintf(payload, sizeof(payload), "{\"i\": %d}", i);
    jq_pg_batch_add(batch, "c_batch", payload, NULL);
  }
  CHECK(jq_pg_batch_size(batch) == 10);
  int64_t ids[10] = {0};
  int flags[10] = {0};
  CHECK_OK(jq_pg_enqueue_batch(queue, batch, ids, flags, OK_ERR));
  for (int i = 0; i < 10; ++i) {
    CHECK(ids[i] > 0);
    CHECK(flags[i] == 1);
    if (i > 0) CHECK(ids[i] > ids[i - 1]);
  }
  /* One bad job rejects the whole batch; nothing is written. */
  jq_pg_batch_clear(batch);
  jq_pg_batch_add(batch, "c_batch", "{}", NULL);
  jq_pg_batch_add(batch, "c_batch", "not json", NULL);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "JSON", jq_pg_enqueue_batch(queue, batch, NULL, NULL, OK_ERR));
  CHECK(Total(queue, "c_batch", NULL) == 10);
  jq_pg_batch_destroy(batch);
}

static jq_pg_lease_t* ClaimAs(jq_pg_queue_t* queue, const char* job_type, const char* owner) {
  jq_claim_options_t* claim = jq_claim_options_create();
  jq_claim_options_add_job_type(claim, job_type);
  jq_claim_options_set_worker_id(claim, owner);
  jq_pg_lease_t** leases = NULL;
  size_t count = 0;
  CHECK_OK(jq_pg_claim(queue, claim, &leases, &count, OK_ERR));
  jq_claim_options_destroy(claim);
  CHECK(count == 1);
  if (count != 1) {
    jq_pg_leases_free(leases, count);
    return NULL;
  }
  jq_pg_lease_t* lease = leases[0];
  jq_free(leases);
  return lease;
}

/* Leases of two owners take two round trips; a result the table cannot store (the escape
 * \u0000, or over 16 MiB) in the second must not leave the first written. */
static void TestCompleteManyOwners(jq_pg_queue_t* queue) {
  int64_t ids[2] = {0, 0};
  CHECK_OK(jq_pg_enqueue(queue, "c_owners", "{}", NULL, &ids[0], NULL, OK_ERR));
  CHECK_OK(jq_pg_enqueue(queue, "c_owners", "{}", NULL, &ids[1], NULL, OK_ERR));
  jq_pg_lease_t* leases[2] = {ClaimAs(queue, "c_owners", "a"), ClaimAs(queue, "c_owners", "b")};
  if (leases[0] == NULL || leases[1] == NULL) {
    jq_pg_lease_destroy(leases[0]);
    jq_pg_lease_destroy(leases[1]);
    return;
  }
  CHECK(jq_pg_lease_job_id(leases[0]) == ids[0]);
  int64_t* lost = NULL;
  size_t lost_count = 99;
  const char* nul[2] = {"{\"ok\":1}", "\"bad\\u0000\""};
  CHECK_ERR(JQ_INVALID_ARGUMENT, "u0000",
            jq_pg_complete_many(queue, leases, nul, 2, &lost, &lost_count, OK_ERR));
  CHECK(lost == NULL && lost_count == 0);
  /* 16 MiB + 1 of valid JSON: a string of that many bytes with its quotes. */
  const size_t big_size = 16 * 1024 * 1024 + 1;
  char* big = malloc(big_size + 1);
  CHECK(big != NULL);
  if (big != NULL) {
    memset(big, 'x', big_size);
    big[0] = big[big_size - 1] = '"';
    big[big_size] = '\0';
    const char* oversize[2] = {"{\"ok\":1}", big};
    CHECK_ERR(JQ_INVALID_ARGUMENT, "limit",
              jq_pg_complete_many(queue, leases, oversize, 2, NULL, NULL, OK_ERR));
    free(big);
  }
  CHECK(strcmp(JobStatus(queue, ids[0], NULL, 0), "processing") == 0);
  CHECK(strcmp(JobStatus(queue, ids[1], NULL, 0), "processing") == 0);
  /* Both owners' leases are still good. */
  const char* good[2] = {"{\"ok\":1}", "\"fine\""};
  CHECK_OK(jq_pg_complete_many(queue, leases, good, 2, &lost, &lost_count, OK_ERR));
  CHECK(lost == NULL && lost_count == 0);
  CHECK(strcmp(JobStatus(queue, ids[0], NULL, 0), "completed") == 0);
  CHECK(strcmp(JobStatus(queue, ids[1], NULL, 0), "completed") == 0);
  jq_pg_lease_destroy(leases[0]);
  jq_pg_lease_destroy(leases[1]);
}

/* A trigger raising SQLSTATE 40001 when a c_conflict job completes: the retryable ABORTED a
 * caller retries, which must not read as a lost lease (that job is still ours). */
static void TestSerializationFailure(jq_pg_queue_t* queue) {
  char sql[1024];
  snprintf(sql, sizeof(sql),
           "CREATE FUNCTION %s.c_conflict() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
           "RAISE EXCEPTION 'simulated conflict' USING ERRCODE = '40001'; END $$; "
           "CREATE TRIGGER c_conflict BEFORE UPDATE ON %s.job_queue FOR EACH ROW "
           "WHEN (NEW.job_type = 'c_conflict' AND NEW.status = 'completed') "
           "EXECUTE FUNCTION %s.c_conflict()",
           schema, schema, schema);
  RunSql(sql);
  int64_t id = 0;
  CHECK_OK(jq_pg_enqueue(queue, "c_conflict", "{}", NULL, &id, NULL, OK_ERR));
  size_t count = 0;
  jq_pg_lease_t** leases = Claim(queue, "c_conflict", 1, &count);
  CHECK(count == 1);
  if (count == 1) {
    char* err = NULL;
    const jq_status_t st = jq_pg_complete(queue, leases[0], NULL, &err);
    CHECK(st == JQ_ABORTED && st != JQ_LEASE_LOST);
    CHECK(err != NULL && strstr(err, "simulated conflict") != NULL);
    jq_free(err);
    /* The lease still holds: failing the attempt works. */
    CHECK_OK(jq_pg_fail(queue, leases[0], "conflict", 0, NULL, NULL, OK_ERR));
  }
  jq_pg_leases_free(leases, count);
  CHECK(strcmp(JobStatus(queue, id, NULL, 0), "pending") == 0);
  snprintf(sql, sizeof(sql), "DROP TRIGGER c_conflict ON %s.job_queue", schema);
  RunSql(sql);
}

static void TestLeases(jq_pg_queue_t* queue) {
  StartPhase("pg: claim, heartbeat, complete");
  size_t count = 0;
  jq_pg_lease_t** leases = Claim(queue, "c_batch", 4, &count);
  CHECK(count == 4);
  if (count != 4) return;
  CHECK(jq_pg_lease_attempt(leases[0]) == 1);
  CHECK(jq_pg_lease_max_attempts(leases[0]) == 5);
  CHECK(strcmp(jq_pg_lease_job_type(leases[0]), "c_batch") == 0);
  CHECK(strcmp(jq_pg_lease_queue(leases[0]), "default") == 0);
  CHECK(strstr(jq_pg_lease_payload(leases[0]), "\"i\": 0") != NULL ||
        strstr(jq_pg_lease_payload(leases[0]), "\"i\":0") != NULL);
  CHECK(strchr(jq_pg_lease_worker_id(leases[0]), ':') != NULL);
  CHECK(jq_pg_lease_job_id(leases[1]) > jq_pg_lease_job_id(leases[0]));
  CHECK(Total(queue, "c_batch", "processing") == 4);

  CHECK_OK(jq_pg_heartbeat(queue, leases[0], OK_ERR));
  CHECK_OK(jq_pg_complete(queue, leases[0], "{\"ok\": true}", OK_ERR));
  jq_pg_job_t* job = NULL;
  CHECK_OK(jq_pg_get(queue, jq_pg_lease_job_id(leases[0]), &job, OK_ERR));
  CHECK(strcmp(jq_pg_job_status(job), "completed") == 0);
  CHECK(jq_pg_job_result(job) != NULL && strstr(jq_pg_job_result(job), "ok") != NULL);
  /* The row keeps who finished it. */
  CHECK(strcmp(jq_pg_job_locked_by(job), jq_pg_lease_worker_id(leases[0])) == 0);
  jq_pg_job_destroy(job);
  /* Finished jobs are no longer ours: fenced off. */
  CHECK_ERR(JQ_LEASE_LOST, "lease lost", jq_pg_complete(queue, leases[0], NULL, OK_ERR));
  CHECK_ERR(JQ_LEASE_LOST, "lease lost", jq_pg_heartbeat(queue, leases[0], OK_ERR));
  CHECK_ERR(JQ_INVALID_ARGUMENT, "JSON", jq_pg_complete(queue, leases[1], "{bad", OK_ERR));

  StartPhase("pg: fail, release");
  int will_retry = -1;
  int64_t retry_at = 0;
  CHECK_OK(jq_pg_fail(queue, leases[1], "boom: bad row 3", 0, &will_retry, &retry_at, OK_ERR));
  CHECK(will_retry == 1);
  CHECK(retry_at > 0);
  char last_error[128];
  CHECK(strcmp(JobStatus(queue, jq_pg_lease_job_id(leases[1]), last_error, sizeof(last_error)),
               "pending") == 0);
  CHECK(strcmp(last_error, "boom: bad row 3") == 0);
  CHECK_OK(jq_pg_release(queue, leases[2], OK_ERR));
  CHECK(strcmp(JobStatus(queue, jq_pg_lease_job_id(leases[2]), NULL, 0), "pending") == 0);
  CHECK_ERR(JQ_LEASE_LOST, "lease lost", jq_pg_fail(queue, leases[2], "x", -1, NULL, NULL, OK_ERR));

  StartPhase("pg: complete many");
  const char* results[2] = {"{\"n\": 3}", NULL};
  int64_t* lost = NULL;
  size_t lost_count = 99;
  /* leases[3] is live, leases[0] was completed above: reported lost, the rest completes. */
  jq_pg_lease_t* batch[2] = {leases[3], leases[0]};
  CHECK_OK(jq_pg_complete_many(queue, batch, results, 2, &lost, &lost_count, OK_ERR));
  CHECK(lost_count == 1);
  CHECK(lost != NULL && lost[0] == jq_pg_lease_job_id(leases[0]));
  jq_free(lost);
  CHECK(strcmp(JobStatus(queue, jq_pg_lease_job_id(leases[3]), NULL, 0), "completed") == 0);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "leases[1] is NULL",
            jq_pg_complete_many(queue, (jq_pg_lease_t* const[]){leases[3], NULL}, NULL, 2, NULL,
                                NULL, OK_ERR));
  jq_pg_leases_free(leases, count);

  /* The rest of the batch, claimed and completed in one round trip each. */
  leases = Claim(queue, "c_batch", 100, &count);
  CHECK(count == 8);
  CHECK_OK(jq_pg_complete_many(queue, leases, NULL, count, NULL, NULL, OK_ERR));
  jq_pg_leases_free(leases, count);
  CHECK(Total(queue, "c_batch", "completed") == 10);

  StartPhase("pg: complete many validates every result first");
  TestCompleteManyOwners(queue);

  StartPhase("pg: a serialization failure is ABORTED, not a lost lease");
  TestSerializationFailure(queue);

  StartPhase("pg: attempts spent, cancel");
  jq_enqueue_options_t* options = jq_enqueue_options_create();
  jq_enqueue_options_set_max_attempts(options, 1);
  int64_t id = 0;
  CHECK_OK(jq_pg_enqueue(queue, "c_once", "{}", options, &id, NULL, OK_ERR));
  jq_enqueue_options_destroy(options);
  leases = Claim(queue, "c_once", 1, &count);
  CHECK(count == 1);
  if (count == 1) {
    CHECK_OK(jq_pg_fail(queue, leases[0], "corrupt CSV header", -1, &will_retry, NULL, OK_ERR));
    CHECK(will_retry == 0);
  }
  jq_pg_leases_free(leases, count);
  CHECK(strcmp(JobStatus(queue, id, NULL, 0), "failed") == 0);
  CHECK_ERR(JQ_FAILED_PRECONDITION, "failed", jq_pg_cancel(queue, id, OK_ERR));
  CHECK_OK(jq_pg_enqueue(queue, "c_cancel", "{}", NULL, &id, NULL, OK_ERR));
  CHECK_OK(jq_pg_cancel(queue, id, OK_ERR));
  CHECK(strcmp(JobStatus(queue, id, NULL, 0), "cancelled") == 0);
  jq_pg_job_t* job2 = NULL;
  CHECK_ERR(JQ_NOT_FOUND, "999999999", jq_pg_get(queue, 999999999, &job2, OK_ERR));
  CHECK(job2 == NULL);

  StartPhase("pg: stale-lock recovery and retention");
  {
    int64_t stuck = 0, spent = 0, to_pending = -1, to_failed = -1, deleted = -1;
    jq_enqueue_options_t* once = jq_enqueue_options_create();
    CHECK_OK(jq_pg_enqueue(queue, "c_stale", "{}", NULL, &stuck, NULL, OK_ERR));
    jq_enqueue_options_set_max_attempts(once, 1);
    CHECK_OK(jq_pg_enqueue(queue, "c_stale", "{}", once, &spent, NULL, OK_ERR));
    jq_enqueue_options_destroy(once);
    leases = Claim(queue, "c_stale", 2, &count);
    CHECK(count == 2);
    jq_pg_leases_free(leases, count);
    CHECK_OK(jq_pg_recover_stale(queue, 60000, &to_pending, &to_failed, OK_ERR));
    CHECK(to_pending == 0 && to_failed == 0); /* the heartbeats are fresh */
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE \"%s\".job_queue SET heartbeat_at = now() - interval '2 hours'"
             " WHERE job_type = 'c_stale'",
             schema);
    RunSql(sql);
    CHECK_OK(jq_pg_recover_stale(queue, 60000, &to_pending, &to_failed, OK_ERR));
    CHECK(to_pending == 1 && to_failed == 1);
    CHECK(strcmp(JobStatus(queue, stuck, NULL, 0), "pending") == 0);
    CHECK(strcmp(JobStatus(queue, spent, NULL, 0), "failed") == 0);
    CHECK_ERR(JQ_INVALID_ARGUMENT, "stale", jq_pg_recover_stale(queue, -1, NULL, NULL, OK_ERR));
    /* A type that runs long without heartbeats keeps its own, longer threshold. */
    {
      int64_t slow = 0, quick = 0;
      const char* types[] = {"c_slow"};
      const int64_t three_hours[] = {3 * 3600 * 1000};
      const int64_t negative[] = {-1};
      CHECK_OK(jq_pg_enqueue(queue, "c_slow", "{}", NULL, &slow, NULL, OK_ERR));
      CHECK_OK(jq_pg_enqueue(queue, "c_quick", "{}", NULL, &quick, NULL, OK_ERR));
      leases = Claim(queue, "c_slow", 1, &count);
      CHECK(count == 1);
      jq_pg_leases_free(leases, count);
      leases = Claim(queue, "c_quick", 1, &count);
      CHECK(count == 1);
      jq_pg_leases_free(leases, count);
      snprintf(sql, sizeof sql,
               "UPDATE \"%s\".job_queue SET heartbeat_at = now() - interval '2 hours'"
               " WHERE job_type IN ('c_slow', 'c_quick')",
               schema);
      RunSql(sql);
      CHECK_OK(jq_pg_recover_stale_by_type(queue, 60000, types, three_hours, 1, &to_pending,
                                           &to_failed, OK_ERR));
      CHECK(to_pending == 1 && to_failed == 0);
      CHECK(strcmp(JobStatus(queue, slow, NULL, 0), "processing") == 0);
      CHECK(strcmp(JobStatus(queue, quick, NULL, 0), "pending") == 0);
      CHECK_ERR(
          JQ_INVALID_ARGUMENT, "job_types",
          jq_pg_recover_stale_by_type(queue, 60000, NULL, three_hours, 1, NULL, NULL, OK_ERR));
      CHECK_ERR(JQ_INVALID_ARGUMENT, "stale",
                jq_pg_recover_stale_by_type(queue, 60000, types, negative, 1, NULL, NULL, OK_ERR));
      {
        /* Errors name this function and the NULL entry. */
        const char* with_null[] = {"c_slow", NULL};
        const int64_t two[] = {1000, 1000};
        CHECK_ERR(JQ_INVALID_ARGUMENT, "jq_pg_recover_stale_by_type: job_types[1] is NULL",
                  jq_pg_recover_stale_by_type(queue, 60000, with_null, two, 2, NULL, NULL, OK_ERR));
        CHECK_ERR(JQ_INVALID_ARGUMENT, "jq_pg_recover_stale: queue is NULL",
                  jq_pg_recover_stale(NULL, 60000, NULL, NULL, OK_ERR));
      }
    }
    snprintf(sql, sizeof sql,
             "UPDATE \"%s\".job_queue SET finished_at = now() - interval '40 days'"
             " WHERE id = %lld",
             schema, (long long)spent);
    RunSql(sql);
    CHECK_OK(jq_pg_purge(queue, -1, 41LL * 86400 * 1000, &deleted, OK_ERR));
    CHECK(deleted == 0);
    CHECK_OK(jq_pg_purge(queue, -1, -1, &deleted, OK_ERR));
    CHECK(deleted == 1);
    CHECK(jq_pg_purge(NULL, -1, -1, NULL, NULL) == JQ_INVALID_ARGUMENT);
  }

  StartPhase("pg: claim bad input");
  jq_claim_options_t* claim = jq_claim_options_create();
  jq_claim_options_set_limit(claim, 0);
  jq_pg_lease_t** none = NULL;
  CHECK_ERR(JQ_INVALID_ARGUMENT, "limit", jq_pg_claim(queue, claim, &none, &count, OK_ERR));
  jq_claim_options_set_limit(claim, 1);
  jq_claim_options_set_worker_id(claim, "");
  CHECK_ERR(JQ_INVALID_ARGUMENT, "worker id", jq_pg_claim(queue, claim, &none, &count, OK_ERR));
  jq_claim_options_destroy(claim);

  StartPhase("pg: counts");
  jq_pg_counts_t* counts = NULL;
  CHECK_OK(jq_pg_counts(queue, &counts, OK_ERR));
  CHECK(jq_pg_counts_size(counts) >= 5);
  int found = 0;
  for (size_t i = 0; i < jq_pg_counts_size(counts); ++i) {
    if (strcmp(jq_pg_counts_job_type(counts, i), "c_once") == 0) {
      CHECK(strcmp(jq_pg_counts_status(counts, i), "failed") == 0);
      CHECK(strcmp(jq_pg_counts_queue(counts, i), "default") == 0);
      CHECK(jq_pg_counts_count(counts, i) == 1);
      found = 1;
    }
  }
  CHECK(found);
  CHECK(jq_pg_counts_total(counts, "default", "c_batch", "completed") == 10);
  CHECK(jq_pg_counts_total(counts, "other", NULL, NULL) == 0);
  CHECK(strcmp(jq_pg_counts_status(counts, 9999), "") == 0);
  jq_pg_counts_destroy(counts);
}

/* ---- worker ------------------------------------------------------------------------------- */

typedef struct Tally {
  atomic_int ok;
  atomic_int failed;
} Tally;

static jq_status_t HandleOk(void* user_data, jq_job_context_t* job) {
  Tally* tally = (Tally*)user_data;
  const jq_pg_lease_t* lease = jq_job_context_lease(job);
  char result[256];
  snprintf(result, sizeof(result), "{\"seen\": %s, \"stopping\": %d}", jq_pg_lease_payload(lease),
           jq_job_context_stopping(job));
  jq_job_context_set_result(job, result);
  atomic_fetch_add(&tally->ok, 1);
  return JQ_OK;
}

static jq_status_t HandleFail(void* user_data, jq_job_context_t* job) {
  Tally* tally = (Tally*)user_data;
  atomic_fetch_add(&tally->failed, 1);
  jq_job_context_set_error(job, "handler said no");
  return JQ_INTERNAL;
}

/* A retryable conflict the handler hit: an ordinary failure, not a lost lease. */
static jq_status_t HandleAborted(void* user_data, jq_job_context_t* job) {
  (void)user_data;
  jq_job_context_set_error(job, "deadlock detected");
  return JQ_ABORTED;
}

static jq_status_t HandleLeaseLost(void* user_data, jq_job_context_t* job) {
  (void)user_data;
  (void)job;
  return JQ_LEASE_LOST;
}

static jq_status_t HandleBadResult(void* user_data, jq_job_context_t* job) {
  (void)user_data;
  jq_job_context_set_result(job, "{not json");
  return JQ_OK;
}

static jq_worker_options_t* WorkerOptions(int64_t idle_ms) {
  jq_worker_options_t* options = jq_worker_options_create();
  jq_worker_options_set_name(options, "C Test");
  jq_worker_options_set_concurrency(options, 2);
  jq_worker_options_set_batch_size(options, 8);
  jq_worker_options_set_poll_interval_ms(options, 100);
  jq_worker_options_set_heartbeat_interval_ms(options, 1000);
  jq_worker_options_set_shutdown_timeout_ms(options, 2000);
  jq_worker_options_set_exit_when_idle_ms(options, idle_ms);
  jq_worker_options_set_log_startup(options, 0);
  jq_worker_options_set_reconnect_backoff_ms(options, 50, 1000);
  return options;
}

static jq_pg_worker_t* NewWorker(jq_pg_queue_t* queue, int64_t idle_ms) {
  jq_worker_options_t* options = WorkerOptions(idle_ms);
  jq_pg_worker_t* worker = NULL;
  CHECK_OK(jq_pg_worker_create(queue, options, &worker, OK_ERR));
  jq_worker_options_destroy(options);
  return worker;
}

static void InitTally(Tally* tally) {
  atomic_init(&tally->ok, 0);
  atomic_init(&tally->failed, 0);
}

static jq_pg_worker_t* volatile signalled_worker = NULL;

static void OnUsr1(int signo) {
  (void)signo;
  jq_pg_worker_stop(signalled_worker);
}

typedef struct Stopper {
  jq_pg_worker_t* worker;
  int use_signal;
} Stopper;

/* Stops the worker once it has claimed (a fixed sleep could stop it before its first claim on a
   loaded machine, and the claims check after Run() would fail), then waits into its idle wait. */
static void* StopLater(void* arg) {
  Stopper* stopper = (Stopper*)arg;
  for (int waited = 0; waited < 30000 && jq_pg_worker_stat(stopper->worker, JQ_WORKER_CLAIMS) < 1;
       waited += 10) {
    SleepMs(10);
  }
  SleepMs(100);
  if (stopper->use_signal) {
    kill(getpid(), SIGUSR1);
  } else {
    jq_pg_worker_stop(stopper->worker);
  }
  return NULL;
}

static void RunAndStop(jq_pg_queue_t* queue, int use_signal) {
  jq_pg_worker_t* worker = NewWorker(queue, -1);
  if (worker == NULL) return;
  Tally tally;
  InitTally(&tally);
  CHECK_OK(jq_pg_worker_register(worker, "c_idle", HandleOk, &tally, OK_ERR));
  signalled_worker = worker;
  Stopper stopper = {worker, use_signal};
  pthread_t thread;
  CHECK(pthread_create(&thread, NULL, StopLater, &stopper) == 0);
  time_t start = time(NULL);
  CHECK_OK(jq_pg_worker_run(worker, OK_ERR));
  CHECK(time(NULL) - start < 10);
  pthread_join(thread, NULL);
  CHECK(jq_pg_worker_stat(worker, JQ_WORKER_CLAIMS) >= 1);
  signalled_worker = NULL;
  jq_pg_worker_destroy(worker);
}

typedef struct Stubborn {
  atomic_int started;
  atomic_int finish;
} Stubborn;

/* Runs until told to finish (or 60 s), whatever the worker's stopping flag says. */
static jq_status_t HandleStubborn(void* user_data, jq_job_context_t* job) {
  Stubborn* stubborn = (Stubborn*)user_data;
  atomic_store(&stubborn->started, 1);
  for (int waited = 0; waited < 60000 && !atomic_load(&stubborn->finish); waited += 5) SleepMs(5);
  jq_job_context_set_result(job, "\"late\"");
  return JQ_OK;
}

typedef struct StopNowRun {
  jq_pg_worker_t* worker;
  jq_status_t status;
} StopNowRun;

static void* RunWorker(void* arg) {
  StopNowRun* run = (StopNowRun*)arg;
  char* err = NULL;
  run->status = jq_pg_worker_run(run->worker, &err);
  if (run->status != JQ_OK) fprintf(stderr, "stop_now run: %s\n", err ? err : "(no message)");
  jq_free(err);
  return NULL;
}

/* jq_pg_worker_stop leaves a running job running (the shutdown timeout is long);
   jq_pg_worker_stop_now then releases it while its handler still runs. */
static void TestStopNow(jq_pg_queue_t* queue) {
  StartPhase("worker: stop_now releases a running job at once");
  int64_t id = 0;
  int inserted = 0;
  CHECK_OK(jq_pg_enqueue(queue, "c_stubborn", "{}", NULL, &id, &inserted, OK_ERR));
  jq_worker_options_t* options = WorkerOptions(-1);
  jq_worker_options_set_shutdown_timeout_ms(options, 60000);
  jq_pg_worker_t* worker = NULL;
  CHECK_OK(jq_pg_worker_create(queue, options, &worker, OK_ERR));
  jq_worker_options_destroy(options);
  if (worker == NULL) return;
  Stubborn stubborn;
  atomic_init(&stubborn.started, 0);
  atomic_init(&stubborn.finish, 0);
  CHECK_OK(jq_pg_worker_register(worker, "c_stubborn", HandleStubborn, &stubborn, OK_ERR));
  StopNowRun run = {worker, JQ_OK};
  pthread_t thread;
  CHECK(pthread_create(&thread, NULL, RunWorker, &run) == 0);
  for (int waited = 0; waited < 30000 && !atomic_load(&stubborn.started); waited += 10) SleepMs(10);
  CHECK(atomic_load(&stubborn.started));
  jq_pg_worker_stop(worker);
  SleepMs(300);
  CHECK(strcmp(JobStatus(queue, id, NULL, 0), "processing") == 0);
  jq_pg_worker_stop_now(worker);
  int released = 0;
  for (int waited = 0; waited < 10000 && !released; waited += 20) {
    released = strcmp(JobStatus(queue, id, NULL, 0), "pending") == 0;
    if (!released) SleepMs(20);
  }
  CHECK(released);
  atomic_store(&stubborn.finish, 1);
  pthread_join(thread, NULL);
  CHECK(run.status == JQ_OK);
  CHECK(jq_pg_worker_stat(worker, JQ_WORKER_RELEASED) == 1);
  CHECK(strcmp(JobStatus(queue, id, NULL, 0), "pending") == 0);
  jq_pg_worker_destroy(worker);
  jq_pg_worker_stop_now(NULL);
}

static void TestWorker(jq_pg_queue_t* queue) {
  StartPhase("worker: handlers");
  jq_pg_batch_t* batch = jq_pg_batch_create();
  jq_enqueue_options_t* once = jq_enqueue_options_create();
  jq_enqueue_options_set_max_attempts(once, 1);
  char payload[32];
  for (int i = 0; i < 20; ++i) {
    snprintf(payload, sizeof(payload), "{\"i\": %d}", i);
    jq_pg_batch_add(batch, "c_ok", payload, NULL);
  }
  jq_pg_batch_add(batch, "c_fail", "{}", once);
  jq_pg_batch_add(batch, "c_badresult", "{}", once);
  int64_t ids[22] = {0};
  CHECK_OK(jq_pg_enqueue_batch(queue, batch, ids, NULL, OK_ERR));
  jq_pg_batch_destroy(batch);
  jq_enqueue_options_destroy(once);

  jq_pg_worker_t* worker = NewWorker(queue, 500);
  if (worker == NULL) return;
  CHECK(strlen(jq_pg_worker_id(worker)) > 0);
  CHECK_ERR(JQ_FAILED_PRECONDITION, "no job handlers", jq_pg_worker_run(worker, OK_ERR));
  jq_pg_worker_destroy(worker);
  worker = NewWorker(queue, 500);
  if (worker == NULL) return;

  Tally tally;
  InitTally(&tally);
  CHECK_OK(jq_pg_worker_register(worker, "c_ok", HandleOk, &tally, OK_ERR));
  CHECK_OK(jq_pg_worker_register(worker, "c_fail", HandleFail, &tally, OK_ERR));
  CHECK_OK(jq_pg_worker_register(worker, "c_badresult", HandleBadResult, NULL, OK_ERR));
  CHECK_ERR(JQ_ALREADY_EXISTS, "c_ok",
            jq_pg_worker_register(worker, "c_ok", HandleOk, &tally, OK_ERR));
  CHECK_ERR(JQ_INVALID_ARGUMENT, "job type",
            jq_pg_worker_register(worker, "no spaces", HandleOk, &tally, OK_ERR));
  CHECK_ERR(JQ_INVALID_ARGUMENT, "fn is NULL",
            jq_pg_worker_register(worker, "c_other", NULL, &tally, OK_ERR));
  CHECK_OK(jq_pg_worker_run(worker, OK_ERR));
  CHECK(atomic_load(&tally.ok) == 20);
  CHECK(atomic_load(&tally.failed) == 1);
  CHECK(jq_pg_worker_stat(worker, JQ_WORKER_COMPLETED) == 20);
  CHECK(jq_pg_worker_stat(worker, JQ_WORKER_FAILED) == 2);
  CHECK(jq_pg_worker_stat(worker, JQ_WORKER_LOST) == 0);
  CHECK(jq_pg_worker_stat(worker, (jq_worker_stat_t)42) == 0);
  CHECK_ERR(JQ_FAILED_PRECONDITION, "runs only once", jq_pg_worker_run(worker, OK_ERR));
  jq_pg_worker_destroy(worker);

  CHECK(Total(queue, "c_ok", "completed") == 20);
  jq_pg_job_t* job = NULL;
  CHECK_OK(jq_pg_get(queue, ids[0], &job, OK_ERR));
  CHECK(jq_pg_job_result(job) != NULL && strstr(jq_pg_job_result(job), "\"seen\"") != NULL);
  jq_pg_job_destroy(job);
  char last_error[128];
  CHECK(strcmp(JobStatus(queue, ids[20], last_error, sizeof(last_error)), "failed") == 0);
  CHECK(strcmp(last_error, "handler said no") == 0);
  CHECK(strcmp(JobStatus(queue, ids[21], last_error, sizeof(last_error)), "failed") == 0);
  CHECK(strstr(last_error, "handler result") != NULL);

  StartPhase("worker: JQ_ABORTED fails the attempt, JQ_LEASE_LOST writes nothing");
  jq_enqueue_options_t* retry = jq_enqueue_options_create();
  jq_enqueue_options_set_max_attempts(retry, 2);
  int64_t aborted_id = 0, lost_id = 0;
  CHECK_OK(jq_pg_enqueue(queue, "c_aborted", "{}", retry, &aborted_id, NULL, OK_ERR));
  CHECK_OK(jq_pg_enqueue(queue, "c_lease_lost", "{}", retry, &lost_id, NULL, OK_ERR));
  jq_enqueue_options_destroy(retry);
  worker = NewWorker(queue, 500);
  if (worker != NULL) {
    CHECK_OK(jq_pg_worker_register(worker, "c_aborted", HandleAborted, NULL, OK_ERR));
    CHECK_OK(jq_pg_worker_register(worker, "c_lease_lost", HandleLeaseLost, NULL, OK_ERR));
    CHECK_OK(jq_pg_worker_run(worker, OK_ERR));
    CHECK(jq_pg_worker_stat(worker, JQ_WORKER_FAILED) >= 1);
    CHECK(jq_pg_worker_stat(worker, JQ_WORKER_LOST) == 1);
    jq_pg_worker_destroy(worker);
  }
  /* Failed with its error: pending for a retry after backoff (or failed, if retried). */
  CHECK(strcmp(JobStatus(queue, aborted_id, last_error, sizeof(last_error)), "processing") != 0);
  CHECK(strcmp(last_error, "deadlock detected") == 0);
  CHECK(strcmp(JobStatus(queue, lost_id, last_error, sizeof(last_error)), "processing") == 0);
  CHECK(strcmp(last_error, "") == 0);

  StartPhase("worker: short-job mode");
  batch = jq_pg_batch_create();
  for (int i = 0; i < 10; ++i) jq_pg_batch_add(batch, "c_ok", "{}", NULL);
  CHECK_OK(jq_pg_enqueue_batch(queue, batch, ids, NULL, OK_ERR));
  jq_pg_batch_destroy(batch);
  jq_worker_options_t* options = WorkerOptions(500);
  jq_worker_options_set_transaction_budget_ms(options, 1000);
  worker = NULL;
  CHECK_OK(jq_pg_worker_create(queue, options, &worker, OK_ERR));
  if (worker != NULL) {
    CHECK_OK(jq_pg_worker_register(worker, "c_ok", HandleOk, &tally, OK_ERR));
    CHECK_OK(jq_pg_worker_run(worker, OK_ERR));
    CHECK(jq_pg_worker_stat(worker, JQ_WORKER_COMPLETED) == 10);
    jq_pg_worker_destroy(worker);
  }
  CHECK(Total(queue, "c_ok", "completed") == 30);
  jq_worker_options_set_transaction_budget_ms(options, 60000);
  worker = NULL;
  CHECK_ERR(JQ_INVALID_ARGUMENT, "transaction budget",
            jq_pg_worker_create(queue, options, &worker, OK_ERR));
  CHECK(worker == NULL);
  jq_worker_options_destroy(options);

  StartPhase("worker: bad options");
  options = WorkerOptions(500);
  jq_worker_options_set_concurrency(options, 0);
  worker = NULL;
  CHECK_ERR(JQ_INVALID_ARGUMENT, "concurrency",
            jq_pg_worker_create(queue, options, &worker, OK_ERR));
  CHECK(worker == NULL);
  jq_worker_options_set_concurrency(options, 2);
  jq_worker_options_set_reconnect_backoff_ms(options, 500, 100);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "reconnect backoff",
            jq_pg_worker_create(queue, options, &worker, OK_ERR));
  CHECK(worker == NULL);
  jq_worker_options_destroy(options);

  StartPhase("worker: stop from another thread");
  RunAndStop(queue, 0);
  StartPhase("worker: stop from a signal handler");
  struct sigaction action;
  memset(&action, 0, sizeof(action));
  action.sa_handler = OnUsr1;
  sigemptyset(&action.sa_mask);
  CHECK(sigaction(SIGUSR1, &action, NULL) == 0);
  RunAndStop(queue, 1);
}

/* ---- BullMQ producer ---------------------------------------------------------------------- */

static void TestBull(void) {
  StartPhase("bull: producer");
  jq_bull_options_t* options = jq_bull_options_create();
  jq_bull_options_set_prefix(options, "bull");
  jq_bull_options_set_pool_size(options, 2);
  jq_bull_options_set_connect_timeout_ms(options, 3000);
  jq_bull_options_set_io_timeout_ms(options, 3000);
  jq_bull_queue_t* bull = NULL;
  CHECK_OK(jq_bull_queue_open(Env("REDIS_URL"), bull_name, options, &bull, OK_ERR));
  if (bull == NULL) {
    jq_bull_options_destroy(options);
    return;
  }
  char* id = NULL;
  CHECK_OK(jq_bull_add(bull, "email", "{\"to\": \"a@example.com\"}", NULL, &id, OK_ERR));
  CHECK(id != NULL && strcmp(id, "1") == 0);
  jq_free(id);
  CHECK_OK(jq_bull_add(bull, "email", NULL, "{\"delay\": 60000, \"attempts\": 3}", NULL, OK_ERR));
  CHECK_OK(jq_bull_add(bull, "email", "{}", "{\"priority\": 5}", NULL, OK_ERR));
  char* first = NULL;
  char* second = NULL;
  CHECK_OK(jq_bull_add(bull, "report", "{}", "{\"jobId\": \"report-7\"}", &first, OK_ERR));
  CHECK_OK(jq_bull_add(bull, "report", "{}", "{\"jobId\": \"report-7\"}", &second, OK_ERR));
  CHECK(first != NULL && second != NULL && strcmp(first, "report-7") == 0 &&
        strcmp(second, "report-7") == 0);
  jq_free(first);
  jq_free(second);
  int64_t counts[JQ_BULL_STATE_COUNT] = {0};
  CHECK_OK(jq_bull_counts(bull, counts, JQ_BULL_STATE_COUNT, OK_ERR));
  CHECK(counts[JQ_BULL_WAITING] == 2);
  CHECK(counts[JQ_BULL_DELAYED] == 1);
  CHECK(counts[JQ_BULL_PRIORITIZED] == 1);
  CHECK(counts[JQ_BULL_ACTIVE] == 0);
  /* A short array gets only what fits. */
  int64_t two[2] = {-1, -1};
  CHECK_OK(jq_bull_counts(bull, two, 2, OK_ERR));
  CHECK(two[0] == 0 && two[1] == 0);

  StartPhase("bull: administration");
  int64_t count = -1;
  CHECK_OK(jq_bull_promote(bull, "2", &count, OK_ERR)); /* the delayed job */
  CHECK(count == 1);
  CHECK_ERR(JQ_FAILED_PRECONDITION, "delayed", jq_bull_promote(bull, "2", &count, OK_ERR));
  CHECK(count == 0);
  CHECK_OK(jq_bull_promote(bull, NULL, &count, OK_ERR));
  CHECK(count == 0);
  CHECK_OK(jq_bull_remove(bull, "report-7", OK_ERR));
  CHECK_ERR(JQ_NOT_FOUND, "report-7", jq_bull_remove(bull, "report-7", OK_ERR));
  CHECK_OK(jq_bull_clean(bull, "wait", 3600 * 1000, 0, &count, OK_ERR)); /* none that old */
  CHECK(count == 0);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "state", jq_bull_clean(bull, "bogus", 0, 0, &count, OK_ERR));
  CHECK_ERR(JQ_INVALID_ARGUMENT, "negative", jq_bull_clean(bull, "wait", -1, 0, NULL, OK_ERR));
  CHECK_OK(jq_bull_retry_jobs(bull, NULL, &count, OK_ERR));
  CHECK(count == 0);
  CHECK_OK(jq_bull_counts(bull, counts, JQ_BULL_STATE_COUNT, OK_ERR));
  CHECK(counts[JQ_BULL_WAITING] == 2 && counts[JQ_BULL_PRIORITIZED] == 1);
  CHECK(counts[JQ_BULL_DELAYED] == 0);
  CHECK_OK(jq_bull_drain(bull, 1, &count, OK_ERR));
  CHECK(count == 3);
  CHECK_OK(jq_bull_counts(bull, counts, JQ_BULL_STATE_COUNT, OK_ERR));
  CHECK(counts[JQ_BULL_WAITING] == 0 && counts[JQ_BULL_PRIORITIZED] == 0);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "queue", jq_bull_drain(NULL, 0, NULL, OK_ERR));

  StartPhase("bull: events");
  jq_bull_events_t* events = NULL;
  CHECK_OK(jq_bull_events_open(Env("REDIS_URL"), bull_name, options, "0", &events, OK_ERR));
  if (events != NULL) {
    char* json = NULL;
    CHECK_OK(jq_bull_events_read(events, 1000, &json, OK_ERR));
    /* The whole retained stream: the first add, then what the administration did. */
    CHECK(json != NULL && strncmp(json, "[{\"id\":\"", 8) == 0);
    CHECK(json != NULL && strstr(json, "\"event\":\"added\",\"jobId\":\"1\"") != NULL);
    CHECK(json != NULL && strstr(json, "\"event\":\"removed\",\"jobId\":\"report-7\"") != NULL);
    CHECK(json != NULL && strstr(json, "\"name\":\"email\"") != NULL); /* a field as written */
    jq_free(json);
    CHECK_OK(jq_bull_events_read(events, 10, &json, OK_ERR)); /* nothing new */
    CHECK(json != NULL && strcmp(json, "[]") == 0);
    jq_free(json);
    CHECK_ERR(JQ_INVALID_ARGUMENT, "wait_ms", jq_bull_events_read(events, -1, &json, OK_ERR));
    CHECK_ERR(JQ_INVALID_ARGUMENT, "events_json", jq_bull_events_read(events, 0, NULL, OK_ERR));
    jq_bull_events_stop(events);
    CHECK_ERR(JQ_CANCELLED, "", jq_bull_events_read(events, 1000, &json, OK_ERR));
    CHECK(json == NULL);
    jq_bull_events_close(events);
  }
  CHECK_ERR(JQ_INVALID_ARGUMENT, "queue",
            jq_bull_events_open(Env("REDIS_URL"), NULL, options, NULL, &events, OK_ERR));
  CHECK(events == NULL);

  StartPhase("bull: bad input");
  CHECK_ERR(JQ_INVALID_ARGUMENT, "bogus",
            jq_bull_add(bull, "email", "{}", "{\"bogus\": 1}", NULL, OK_ERR));
  CHECK_ERR(JQ_INVALID_ARGUMENT, "JSON", jq_bull_add(bull, "email", "{", NULL, NULL, OK_ERR));
  CHECK_ERR(JQ_INVALID_ARGUMENT, "name is NULL", jq_bull_add(bull, NULL, "{}", NULL, NULL, OK_ERR));
  jq_bull_queue_t* other = NULL;
  CHECK_ERR(JQ_INVALID_ARGUMENT, "queue name",
            jq_bull_queue_open(Env("REDIS_URL"), "has:colon", options, &other, OK_ERR));
  CHECK(other == NULL);
  jq_bull_queue_close(bull);
  jq_bull_options_destroy(options);
}

/* ---- BullMQ consumer ---------------------------------------------------------------------- */

/* Runs redis-cli with `args` against $REDIS_URL; the first line of its output goes to out. */
static void RedisCli(const char* args, char* out, size_t size) {
  char command[512];
  snprintf(command, sizeof(command), "redis-cli --no-auth-warning -u \"$REDIS_URL\" %s", args);
  FILE* pipe = popen(command, "r");
  CHECK(pipe != NULL);
  if (out != NULL && size > 0) out[0] = '\0';
  if (pipe == NULL) return;
  char line[512] = {0};
  if (fgets(line, sizeof(line), pipe) != NULL) {
    line[strcspn(line, "\n")] = '\0';
    if (out != NULL) snprintf(out, size, "%s", line);
  }
  CHECK(pclose(pipe) == 0);
}

/* A field of a job's hash in queue `queue`. */
static void JobField(const char* queue, const char* id, const char* field, char* out, size_t size) {
  char args[256];
  snprintf(args, sizeof(args), "hget bull:%s:%s %s", queue, id, field);
  RedisCli(args, out, size);
}

static jq_bull_queue_t* OpenBull(const char* name) {
  jq_bull_queue_t* bull = NULL;
  CHECK_OK(jq_bull_queue_open(Env("REDIS_URL"), name, NULL, &bull, OK_ERR));
  return bull;
}

static int64_t BullCount(jq_bull_queue_t* bull, jq_bull_state_t state) {
  int64_t counts[JQ_BULL_STATE_COUNT] = {0};
  CHECK_OK(jq_bull_counts(bull, counts, JQ_BULL_STATE_COUNT, OK_ERR));
  return counts[state];
}

/* Fetches exactly one job (waiting up to wait_ms); NULL (and a failed check) otherwise. */
static jq_bull_lease_t* FetchOne(jq_bull_consumer_t* consumer, int64_t wait_ms) {
  jq_bull_lease_t** leases = NULL;
  size_t count = 0;
  CHECK_OK(jq_bull_consumer_fetch(consumer, 1, wait_ms, &leases, &count, OK_ERR));
  CHECK(count == 1);
  jq_bull_lease_t* lease = count == 1 ? leases[0] : NULL;
  if (count != 1) jq_bull_leases_free(leases, count);
  jq_free(leases);
  return lease;
}

typedef struct LateAdd {
  jq_bull_queue_t* bull;
  char* id;
} LateAdd;

static void* AddLater(void* arg) {
  LateAdd* late = (LateAdd*)arg;
  SleepMs(200);
  CHECK_OK(jq_bull_add(late->bull, "late", "{\"late\": true}", NULL, &late->id, OK_ERR));
  return NULL;
}

static void TestBullConsumer(void) {
  StartPhase("bull consumer: open");
  jq_bull_options_t* options = jq_bull_options_create();
  jq_bull_options_set_connect_timeout_ms(options, 3000);
  jq_bull_worker_options_t* worker_options = jq_bull_worker_options_create();
  jq_bull_worker_options_set_name(worker_options, "c-consumer");
  jq_bull_worker_options_set_lock_duration_ms(worker_options, 20000);
  jq_bull_consumer_t* consumer = NULL;
  CHECK_ERR(JQ_INVALID_ARGUMENT, "queue name",
            jq_bull_consumer_open(Env("REDIS_URL"), "has:colon", options, worker_options, &consumer,
                                  OK_ERR));
  CHECK(consumer == NULL);
  jq_bull_worker_options_set_lock_duration_ms(worker_options, 1);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "lock duration",
            jq_bull_consumer_open(Env("REDIS_URL"), consumer_name, options, worker_options,
                                  &consumer, OK_ERR));
  /* Past Redis' PX range it failed only in the claim script, leaving the job active. */
  jq_bull_worker_options_set_lock_duration_ms(worker_options, INT64_MAX);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "365 days",
            jq_bull_consumer_open(Env("REDIS_URL"), consumer_name, options, worker_options,
                                  &consumer, OK_ERR));
  jq_bull_worker_options_set_lock_duration_ms(worker_options, 20000);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "queue is NULL",
            jq_bull_consumer_open(Env("REDIS_URL"), NULL, options, NULL, &consumer, OK_ERR));
  CHECK_OK(jq_bull_consumer_open(Env("REDIS_URL"), consumer_name, options, worker_options,
                                 &consumer, OK_ERR));
  jq_bull_options_destroy(options);
  jq_bull_worker_options_destroy(worker_options);
  jq_bull_queue_t* bull = OpenBull(consumer_name);
  if (consumer == NULL || bull == NULL) {
    jq_bull_consumer_close(consumer);
    jq_bull_queue_close(bull);
    return;
  }

  StartPhase("bull consumer: fetch");
  jq_bull_lease_t** leases = NULL;
  size_t count = 7;
  CHECK_OK(jq_bull_consumer_fetch(consumer, 5, 0, &leases, &count, OK_ERR));
  CHECK(count == 0 && leases == NULL);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "1..1000",
            jq_bull_consumer_fetch(consumer, 0, 0, &leases, &count, OK_ERR));
  CHECK_ERR(JQ_INVALID_ARGUMENT, "consumer is NULL",
            jq_bull_consumer_fetch(NULL, 1, 0, &leases, &count, OK_ERR));
  char* first = NULL;
  CHECK_OK(jq_bull_add(bull, "email", "{\"n\": 1}", "{\"attempts\": 2}", &first, OK_ERR));
  CHECK_OK(jq_bull_add(bull, "email", "{\"n\": 2}", NULL, NULL, OK_ERR));
  CHECK_OK(jq_bull_consumer_fetch(consumer, 5, 1000, &leases, &count, OK_ERR));
  CHECK(count == 2);
  if (count == 2) {
    CHECK(first != NULL && strcmp(jq_bull_lease_id(leases[0]), first) == 0);
    CHECK(strcmp(jq_bull_lease_name(leases[0]), "email") == 0);
    CHECK(strstr(jq_bull_lease_data(leases[0]), "\"n\"") != NULL);
    CHECK(strstr(jq_bull_lease_opts(leases[0]), "\"attempts\"") != NULL);
    CHECK(jq_bull_lease_attempts_made(leases[0]) == 0);
    CHECK(jq_bull_lease_timestamp_ms(leases[0]) > 0);
    CHECK(strlen(jq_bull_lease_token(leases[0])) > 0);
    CHECK(strcmp(jq_bull_lease_token(leases[0]), jq_bull_lease_token(leases[1])) != 0);
    char pb[64];
    JobField(consumer_name, first, "pb", pb, sizeof(pb));
    CHECK(strcmp(pb, "c-consumer") == 0);
    CHECK(BullCount(bull, JQ_BULL_ACTIVE) == 2);

    StartPhase("bull consumer: extend and complete");
    CHECK_OK(jq_bull_consumer_extend_lock(consumer, leases[0], OK_ERR));
    CHECK_ERR(JQ_INVALID_ARGUMENT, "return value is",
              jq_bull_consumer_complete(consumer, leases[0], "{not json", OK_ERR));
    CHECK(BullCount(bull, JQ_BULL_ACTIVE) == 2);
    CHECK_OK(jq_bull_consumer_complete(consumer, leases[0], "{\"sent\": true}", OK_ERR));
    CHECK_OK(jq_bull_consumer_complete(consumer, leases[1], NULL, OK_ERR));
    char value[64];
    JobField(consumer_name, first, "returnvalue", value, sizeof(value));
    CHECK(strcmp(value, "{\"sent\": true}") == 0);
    CHECK(BullCount(bull, JQ_BULL_COMPLETED) == 2);
    /* The lock went with the first finish. */
    CHECK_ERR(JQ_LEASE_LOST, "nothing written",
              jq_bull_consumer_complete(consumer, leases[0], "1", OK_ERR));
  }
  jq_bull_leases_free(leases, count);
  jq_free(first);

  StartPhase("bull consumer: fail, retry, unrecoverable");
  char* retried = NULL;
  CHECK_OK(jq_bull_add(bull, "email", "{}", "{\"attempts\": 2}", &retried, OK_ERR));
  jq_bull_lease_t* lease = FetchOne(consumer, 1000);
  CHECK_OK(jq_bull_consumer_fail(consumer, lease, "smtp down", 0, OK_ERR));
  jq_bull_lease_destroy(lease);
  CHECK(BullCount(bull, JQ_BULL_WAITING) == 1);
  lease = FetchOne(consumer, 1000);
  CHECK(jq_bull_lease_attempts_made(lease) == 1);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "reason is NULL",
            jq_bull_consumer_fail(consumer, lease, NULL, 0, OK_ERR));
  CHECK_OK(jq_bull_consumer_fail(consumer, lease, "smtp still down", 0, OK_ERR));
  jq_bull_lease_destroy(lease);
  CHECK(BullCount(bull, JQ_BULL_FAILED) == 1);
  char reason[64];
  JobField(consumer_name, retried, "failedReason", reason, sizeof(reason));
  CHECK(strcmp(reason, "smtp still down") == 0);
  jq_free(retried);
  CHECK_OK(jq_bull_add(bull, "email", "{}", "{\"attempts\": 5}", NULL, OK_ERR));
  lease = FetchOne(consumer, 1000);
  CHECK_OK(jq_bull_consumer_fail(consumer, lease, "bad address", 1, OK_ERR));
  jq_bull_lease_destroy(lease);
  CHECK(BullCount(bull, JQ_BULL_FAILED) == 2);
  CHECK(BullCount(bull, JQ_BULL_WAITING) == 0);

  StartPhase("bull consumer: release");
  char* released = NULL;
  CHECK_OK(jq_bull_add(bull, "email", "{}", NULL, &released, OK_ERR));
  lease = FetchOne(consumer, 1000);
  CHECK_OK(jq_bull_consumer_release(consumer, lease, OK_ERR));
  jq_bull_lease_destroy(lease);
  CHECK(BullCount(bull, JQ_BULL_WAITING) == 1);
  lease = FetchOne(consumer, 1000);
  CHECK(lease != NULL && released != NULL && strcmp(jq_bull_lease_id(lease), released) == 0);
  CHECK(jq_bull_lease_attempts_made(lease) == 0);
  CHECK_OK(jq_bull_consumer_complete(consumer, lease, "null", OK_ERR));
  jq_bull_lease_destroy(lease);
  jq_free(released);

  StartPhase("bull consumer: lost lock");
  char* lost = NULL;
  CHECK_OK(jq_bull_add(bull, "email", "{}", NULL, &lost, OK_ERR));
  lease = FetchOne(consumer, 1000);
  char args[256];
  snprintf(args, sizeof(args), "del bull:%s:%s:lock", consumer_name, lost);
  RedisCli(args, NULL, 0);
  CHECK_ERR(JQ_LEASE_LOST, "lock expired", jq_bull_consumer_complete(consumer, lease, "1", OK_ERR));
  CHECK_ERR(JQ_LEASE_LOST, "lock lost", jq_bull_consumer_extend_lock(consumer, lease, OK_ERR));
  CHECK_ERR(JQ_LEASE_LOST, "lock expired", jq_bull_consumer_fail(consumer, lease, "x", 0, OK_ERR));
  CHECK_ERR(JQ_LEASE_LOST, "lock expired", jq_bull_consumer_release(consumer, lease, OK_ERR));
  CHECK(BullCount(bull, JQ_BULL_ACTIVE) == 1);
  char finished[64];
  JobField(consumer_name, lost, "finishedOn", finished, sizeof(finished));
  CHECK(strcmp(finished, "") == 0);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "lease is NULL",
            jq_bull_consumer_complete(consumer, NULL, "1", OK_ERR));
  jq_bull_lease_destroy(lease);
  jq_free(lost);

  StartPhase("bull consumer: blocking fetch wakes on an add");
  LateAdd late = {bull, NULL};
  pthread_t thread;
  CHECK(pthread_create(&thread, NULL, AddLater, &late) == 0);
  lease = FetchOne(consumer, 30000);
  pthread_join(thread, NULL);
  CHECK(lease != NULL && late.id != NULL && strcmp(jq_bull_lease_id(lease), late.id) == 0);
  CHECK(lease != NULL && strcmp(jq_bull_lease_name(lease), "late") == 0);
  CHECK_OK(jq_bull_consumer_complete(consumer, lease, NULL, OK_ERR));
  jq_bull_lease_destroy(lease);
  jq_free(late.id);

  /* Accessors on NULL handles. */
  CHECK(strcmp(jq_bull_lease_id(NULL), "") == 0);
  CHECK(jq_bull_lease_attempts_made(NULL) == 0);
  jq_bull_leases_free(NULL, 0);
  jq_bull_consumer_close(consumer);
  jq_bull_queue_close(bull);
}

/* ---- BullMQ worker ------------------------------------------------------------------------ */

/* By job name: "ok" returns its data, "fail" fails, "fatal" fails unrecoverably, "badresult"
 * returns something that is not JSON. */
static jq_status_t HandleBullJob(void* user_data, jq_bull_job_context_t* job) {
  Tally* tally = (Tally*)user_data;
  const jq_bull_lease_t* lease = jq_bull_job_context_lease(job);
  const char* name = jq_bull_lease_name(lease);
  if (strcmp(name, "ok") == 0) {
    char result[256];
    snprintf(result, sizeof(result), "{\"seen\": %s, \"stopping\": %d}", jq_bull_lease_data(lease),
             jq_bull_job_context_stopping(job));
    jq_bull_job_context_set_result(job, result);
    if (tally != NULL) {
      /* Progress and log lines as Node's job.updateProgress / job.log write them. */
      if (jq_bull_job_context_update_progress(job, "{\"pct\": 100}", NULL) != JQ_OK ||
          jq_bull_job_context_log(job, "handled in C", NULL) != JQ_OK ||
          jq_bull_job_context_update_progress(job, "{bad", NULL) != JQ_INVALID_ARGUMENT) {
        jq_bull_job_context_set_error(job, "progress or log failed");
        return JQ_INTERNAL;
      }
      atomic_fetch_add(&tally->ok, 1);
    }
    return JQ_OK;
  }
  if (tally != NULL) atomic_fetch_add(&tally->failed, 1);
  if (strcmp(name, "badresult") == 0) {
    jq_bull_job_context_set_result(job, "{not json");
    return JQ_OK;
  }
  if (strcmp(name, "fatal") == 0) jq_bull_job_context_set_unrecoverable(job);
  jq_bull_job_context_set_error(job, "handler said no");
  jq_bull_job_context_set_stacktrace(job, "c_api_test.c: HandleBullJob");
  return JQ_INTERNAL;
}

static jq_bull_worker_options_t* BullWorkerOptions(int64_t idle_ms) {
  jq_bull_worker_options_t* options = jq_bull_worker_options_create();
  jq_bull_worker_options_set_name(options, "c-worker");
  jq_bull_worker_options_set_concurrency(options, 2);
  jq_bull_worker_options_set_lock_duration_ms(options, 5000);
  jq_bull_worker_options_set_exit_when_idle_ms(options, idle_ms);
  jq_bull_worker_options_set_shutdown_timeout_ms(options, 2000);
  jq_bull_worker_options_set_stalled(options, 1000, 1);
  jq_bull_worker_options_set_reconnect_backoff_ms(options, 50, 1000);
  return options;
}

typedef struct BullStopper {
  jq_bull_worker_t* worker;
} BullStopper;

/* As StopLater: once the worker has stepped at least once. */
static void* StopBullLater(void* arg) {
  BullStopper* stopper = (BullStopper*)arg;
  for (int waited = 0;
       waited < 30000 && jq_bull_worker_stat(stopper->worker, JQ_BULL_WORKER_STEPS) < 1;
       waited += 10) {
    SleepMs(10);
  }
  SleepMs(100);
  jq_bull_worker_stop(stopper->worker);
  return NULL;
}

static void TestBullWorker(void) {
  StartPhase("bull worker: bad input");
  jq_bull_worker_options_t* options = BullWorkerOptions(500);
  jq_bull_worker_t* worker = NULL;
  CHECK_ERR(JQ_INVALID_ARGUMENT, "queue name",
            jq_bull_worker_create(Env("REDIS_URL"), "has space", NULL, options, HandleBullJob, NULL,
                                  &worker, OK_ERR));
  CHECK_ERR(JQ_INVALID_ARGUMENT, "fn is NULL",
            jq_bull_worker_create(Env("REDIS_URL"), bull_worker_name, NULL, options, NULL, NULL,
                                  &worker, OK_ERR));
  jq_bull_worker_options_set_concurrency(options, 0);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "concurrency",
            jq_bull_worker_create(Env("REDIS_URL"), bull_worker_name, NULL, options, HandleBullJob,
                                  NULL, &worker, OK_ERR));
  CHECK(worker == NULL);
  jq_bull_worker_options_set_concurrency(options, 2);
  jq_bull_worker_options_set_prefetch(options, 2000, 2);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "prefetch",
            jq_bull_worker_create(Env("REDIS_URL"), bull_worker_name, NULL, options, HandleBullJob,
                                  NULL, &worker, OK_ERR));
  jq_bull_worker_options_set_prefetch(options, 64, 2);
  jq_bull_worker_options_set_reconnect_backoff_ms(options, 0, 100);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "reconnect backoff",
            jq_bull_worker_create(Env("REDIS_URL"), bull_worker_name, NULL, options, HandleBullJob,
                                  NULL, &worker, OK_ERR));
  CHECK(worker == NULL);
  jq_bull_worker_options_destroy(options);

  StartPhase("bull worker: handlers");
  jq_bull_queue_t* bull = OpenBull(bull_worker_name);
  if (bull == NULL) return;
  char* ok_id = NULL;
  char* fail_id = NULL;
  char* fatal_id = NULL;
  CHECK_OK(jq_bull_add(bull, "ok", "{\"i\": 0}", NULL, &ok_id, OK_ERR));
  for (int i = 1; i < 5; ++i) {
    char data[32];
    snprintf(data, sizeof(data), "{\"i\": %d}", i);
    CHECK_OK(jq_bull_add(bull, "ok", data, NULL, NULL, OK_ERR));
  }
  CHECK_OK(jq_bull_add(bull, "fail", "{}", NULL, &fail_id, OK_ERR));
  CHECK_OK(jq_bull_add(bull, "fatal", "{}", "{\"attempts\": 5}", &fatal_id, OK_ERR));
  CHECK_OK(jq_bull_add(bull, "badresult", "{}", NULL, NULL, OK_ERR));

  jq_bull_options_t* connection = jq_bull_options_create();
  jq_bull_options_set_prefix(connection, "bull");
  options = BullWorkerOptions(500);
  jq_bull_worker_options_set_prefetch(options, 0, 2);
  Tally tally;
  InitTally(&tally);
  CHECK_OK(jq_bull_worker_create(Env("REDIS_URL"), bull_worker_name, connection, options,
                                 HandleBullJob, &tally, &worker, OK_ERR));
  if (worker != NULL) {
    CHECK_OK(jq_bull_worker_run(worker, OK_ERR));
    CHECK(atomic_load(&tally.ok) == 5);
    CHECK(atomic_load(&tally.failed) == 3);
    CHECK(jq_bull_worker_stat(worker, JQ_BULL_WORKER_COMPLETED) == 5);
    CHECK(jq_bull_worker_stat(worker, JQ_BULL_WORKER_FAILED) == 3);
    CHECK(jq_bull_worker_stat(worker, JQ_BULL_WORKER_RETRIED) == 0);
    CHECK(jq_bull_worker_stat(worker, JQ_BULL_WORKER_LOST) == 0);
    CHECK(jq_bull_worker_stat(worker, JQ_BULL_WORKER_STEPS) >= 1);
    CHECK(jq_bull_worker_stat(worker, JQ_BULL_WORKER_PREFETCHED) == 0);
    CHECK(jq_bull_worker_stat(worker, JQ_BULL_WORKER_ADOPTED) == 0);
    CHECK(jq_bull_worker_stat(worker, (jq_bull_worker_stat_t)42) == 0);
    /* A worker runs once: a second run shared the first one's connection. */
    CHECK_ERR(JQ_FAILED_PRECONDITION, "runs only once", jq_bull_worker_run(worker, OK_ERR));
    jq_bull_worker_destroy(worker);
  }
  CHECK(BullCount(bull, JQ_BULL_COMPLETED) == 5);
  CHECK(BullCount(bull, JQ_BULL_FAILED) == 3);
  char value[128];
  JobField(bull_worker_name, ok_id, "returnvalue", value, sizeof(value));
  CHECK(strstr(value, "\"seen\": {\"i\": 0}") != NULL);
  JobField(bull_worker_name, ok_id, "pb", value, sizeof(value));
  CHECK(strcmp(value, "c-worker") == 0);
  JobField(bull_worker_name, fail_id, "failedReason", value, sizeof(value));
  CHECK(strcmp(value, "handler said no") == 0);
  JobField(bull_worker_name, fail_id, "stacktrace", value, sizeof(value));
  CHECK(strcmp(value, "[\"c_api_test.c: HandleBullJob\"]") == 0);
  JobField(bull_worker_name, ok_id, "progress", value, sizeof(value));
  CHECK(strcmp(value, "{\"pct\": 100}") == 0);
  char* fields = NULL;
  CHECK_OK(jq_bull_get_job(bull, ok_id, &fields, OK_ERR));
  CHECK(fields != NULL && strstr(fields, "\"returnvalue\":") != NULL);
  jq_free(fields);
  CHECK_ERR(JQ_NOT_FOUND, "no-such-job", jq_bull_get_job(bull, "no-such-job", &fields, OK_ERR));
  CHECK(fields == NULL);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "fields_json", jq_bull_get_job(bull, ok_id, NULL, OK_ERR));
  CHECK_OK(jq_bull_pause(bull, OK_ERR));
  JobField(bull_worker_name, "meta", "paused", value, sizeof(value));
  CHECK(strcmp(value, "1") == 0);
  CHECK_OK(jq_bull_resume(bull, OK_ERR));
  JobField(bull_worker_name, "meta", "paused", value, sizeof(value));
  CHECK(strcmp(value, "") == 0);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "queue", jq_bull_pause(NULL, OK_ERR));
  /* Unrecoverable: one attempt of five. */
  JobField(bull_worker_name, fatal_id, "atm", value, sizeof(value));
  CHECK(strcmp(value, "1") == 0);
  jq_free(ok_id);
  jq_free(fail_id);
  jq_free(fatal_id);

  StartPhase("bull worker: stop from another thread");
  jq_bull_worker_options_set_exit_when_idle_ms(options, -1);
  worker = NULL;
  CHECK_OK(jq_bull_worker_create(Env("REDIS_URL"), bull_worker_name, connection, options,
                                 HandleBullJob, NULL, &worker, OK_ERR));
  if (worker != NULL) {
    BullStopper stopper = {worker};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, StopBullLater, &stopper) == 0);
    time_t start = time(NULL);
    CHECK_OK(jq_bull_worker_run(worker, OK_ERR));
    CHECK(time(NULL) - start < 10);
    pthread_join(thread, NULL);
    CHECK(jq_bull_worker_stat(worker, JQ_BULL_WORKER_STEPS) >= 1);
    jq_bull_worker_destroy(worker);
  }

  StartPhase("bull worker: from a configuration");
  jq_config_options_t* config_options = ConfigOptions("worker");
  jq_config_t* config = NULL;
  CHECK_OK(jq_config_load(config_options, &config, OK_ERR));
  jq_config_options_destroy(config_options);
  worker = NULL;
  CHECK_OK(jq_bull_worker_create_config(config, bull_worker_name, connection, options,
                                        HandleBullJob, NULL, &worker, OK_ERR));
  CHECK(worker != NULL);
  jq_bull_worker_destroy(worker);
  jq_bull_consumer_t* consumer = NULL;
  CHECK_OK(jq_bull_consumer_open_config(config, bull_worker_name, connection, options, &consumer,
                                        OK_ERR));
  CHECK(consumer != NULL);
  jq_bull_consumer_close(consumer);
  jq_config_destroy(config);
  jq_bull_options_destroy(connection);
  jq_bull_worker_options_destroy(options);
  jq_bull_queue_close(bull);
  /* NULL handles. */
  jq_bull_worker_stop(NULL);
  jq_bull_worker_destroy(NULL);
  CHECK(jq_bull_worker_stat(NULL, JQ_BULL_WORKER_COMPLETED) == 0);
  CHECK_ERR(JQ_INVALID_ARGUMENT, "worker is NULL", jq_bull_worker_run(NULL, OK_ERR));
}

static void CleanUp(void) {
  char sql[128];
  snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", schema);
  RunSql(sql);
  const char* names[] = {bull_name, consumer_name, bull_worker_name};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i) {
    char command[512];
    snprintf(command, sizeof(command),
             "redis-cli --no-auth-warning -u \"$REDIS_URL\" --scan --pattern 'bull:%s:*' | "
             "xargs -r redis-cli --no-auth-warning -u \"$REDIS_URL\" del >/dev/null",
             names[i]);
    CHECK(system(command) == 0);
  }
}

static void TestDeleteCompleted(void) {
  StartPhase("pg: delete completed");
  jq_pg_options_t* pg = jq_pg_options_create();
  jq_pg_options_set_schema(pg, schema);
  jq_pg_options_set_delete_completed(pg, 1);
  jq_pg_queue_t* queue = NULL;
  CHECK_OK(jq_pg_queue_open(Env("DATABASE_URL"), pg, &queue, OK_ERR));
  jq_pg_options_destroy(pg);
  if (queue == NULL) return;
  int64_t id = 0;
  CHECK_OK(jq_pg_enqueue(queue, "c_delete", NULL, NULL, &id, NULL, OK_ERR));
  size_t count = 0;
  jq_pg_lease_t** leases = Claim(queue, "c_delete", 1, &count);
  CHECK(count == 1);
  if (count == 1) {
    CHECK_OK(jq_pg_complete(queue, leases[0], "{\"ok\": true}", OK_ERR));
    jq_pg_job_t* job = NULL;
    CHECK_ERR(JQ_NOT_FOUND, "", jq_pg_get(queue, id, &job, OK_ERR));
    CHECK(job == NULL);
  }
  jq_pg_leases_free(leases, count);
  jq_pg_queue_close(queue);
}

int main(void) {
  snprintf(schema, sizeof(schema), "c_api_%d", (int)getpid());
  snprintf(bull_name, sizeof(bull_name), "c_api_%d", (int)getpid());
  snprintf(consumer_name, sizeof(consumer_name), "c_api_%d_consumer", (int)getpid());
  snprintf(bull_worker_name, sizeof(bull_worker_name), "c_api_%d_worker", (int)getpid());
  Env("DATABASE_URL");
  Env("REDIS_URL");

  char env_dir[] = "/tmp/c_api_test_XXXXXX";
  CHECK(mkdtemp(env_dir) != NULL);
  char path[256];
  snprintf(path, sizeof(path), "%s/.env", env_dir);
  FILE* file = fopen(path, "w");
  CHECK(file != NULL);
  if (file != NULL) {
    fputs("WORKER_POLL_INTERVAL=2.5\nINGEST_BUCKET=uploads\n", file);
    fclose(file);
    chmod(path, 0600);
  }

  TestBasics();
  TestConfig(env_dir);
  TestOpenErrors();
  jq_pg_queue_t* queue = OpenQueue();
  if (queue != NULL) {
    TestEnqueue(queue);
    TestLeases(queue);
    TestWorker(queue);
    TestStopNow(queue);
    TestDeleteCompleted();
    jq_pg_queue_close(queue);
  }
  TestBull();
  TestBullConsumer();
  TestBullWorker();
  CleanUp();
  unlink(path);
  rmdir(env_dir);

  if (failures > 0) {
    fprintf(stderr, "c_api_test: %d check(s) failed\n", failures);
    return 1;
  }
  fprintf(stderr, "c_api_test: all checks passed\n");
  return 0;
}
