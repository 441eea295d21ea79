/* A small C program over libjobqueue_c: a Postgres job enqueued, claimed and completed by
 * hand, then BullMQ jobs added and processed by a callback worker.
 *
 *   DATABASE_URL=postgres://... REDIS_URL=redis://... ./jobqueue_c_example [schema]
 *
 * The Postgres part uses schema `schema` (default "ops"), created if missing; the BullMQ part
 * a queue named after the process id, whose jobs are removed when they complete. Exits 0 when
 * every step worked. */
#define _POSIX_C_SOURCE 200809L

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobqueue/c.h"

static int RunPostgres(const char* database_url, const char* schema, const char* queue_name) {
  jq_pg_options_t* options = jq_pg_options_create();
  jq_pg_options_set_schema(options, schema);
  jq_pg_queue_t* queue = NULL;
  jq_status_t opened = jq_pg_queue_open(database_url, options, &queue, NULL);
  jq_pg_options_destroy(options);
  if (opened != JQ_OK) {
    fprintf(stderr, "cannot open the Postgres queue: %s\n", jq_status_name(opened));
    return 1;
  }
  int rc = 1;
  jq_enqueue_options_t* enqueue = jq_enqueue_options_create();
  jq_enqueue_options_set_queue(enqueue, queue_name);
  jq_claim_options_t* claim = jq_claim_options_create();
  jq_claim_options_set_queue(claim, queue_name);
  jq_pg_lease_t** leases = NULL;
  size_t count = 0;
  int64_t id = 0;
  char* err = NULL;
  if (jq_pg_queue_migrate(queue, NULL, &err) == JQ_OK &&
      jq_pg_enqueue(queue, "send_email", "{\"to\": \"ada@example.com\"}", enqueue, &id, NULL,
                    &err) == JQ_OK &&
      jq_pg_claim(queue, claim, &leases, &count, &err) == JQ_OK && count == 1) {
    printf("postgres: claimed job %lld (%s) %s\n", (long long)jq_pg_lease_job_id(leases[0]),
           jq_pg_lease_job_type(leases[0]), jq_pg_lease_payload(leases[0]));
    if (jq_pg_complete(queue, leases[0], "{\"sent\": true}", &err) == JQ_OK) {
      printf("postgres: completed job %lld\n", (long long)id);
      rc = 0;
    }
  }
  if (err != NULL) fprintf(stderr, "postgres: %s\n", err);
  jq_free(err);
  jq_pg_leases_free(leases, count);
  jq_claim_options_destroy(claim);
  jq_enqueue_options_destroy(enqueue);
  jq_pg_queue_close(queue);
  return rc;
}

/* Adds up the numbers in {"numbers": [...]}; "boom" jobs fail for good. */
static jq_status_t Sum(void* user_data, jq_bull_job_context_t* job) {
  atomic_int* handled = (atomic_int*)user_data;
  const jq_bull_lease_t* lease = jq_bull_job_context_lease(job);
  atomic_fetch_add(handled, 1);
  if (strcmp(jq_bull_lease_name(lease), "boom") == 0) {
    jq_bull_job_context_set_unrecoverable(job);
    jq_bull_job_context_set_error(job, "boom jobs always fail");
    return JQ_INVALID_ARGUMENT;
  }
  long total = 0;
  const char* p = strchr(jq_bull_lease_data(lease), '[');
  while (p != NULL && *p != ']' && *p != '\0') {
    char* end = NULL;
    long n = strtol(p + 1, &end, 10);
    if (end == p + 1) break;
    total += n;
    p = end;
  }
  char result[64];
  snprintf(result, sizeof(result), "{\"total\": %ld}", total);
  jq_bull_job_context_set_result(job, result);
  printf("bullmq: job %s -> %s\n", jq_bull_lease_id(lease), result);
  return JQ_OK;
}

static int RunBull(const char* redis_url, const char* queue_name) {
  char* err = NULL;
  jq_bull_queue_t* queue = NULL;
  jq_status_t st = jq_bull_queue_open(redis_url, queue_name, NULL, &queue, &err);
  const char* opts = "{\"removeOnComplete\": true, \"removeOnFail\": true}";
  if (st == JQ_OK) st = jq_bull_add(queue, "sum", "{\"numbers\": [1, 2, 3]}", opts, NULL, &err);
  if (st == JQ_OK) st = jq_bull_add(queue, "sum", "{\"numbers\": [40, 2]}", opts, NULL, &err);
  if (st == JQ_OK) st = jq_bull_add(queue, "boom", "{}", opts, NULL, &err);
  jq_bull_queue_close(queue);
  if (st != JQ_OK) {
    fprintf(stderr, "bullmq: %s: %s\n", jq_status_name(st), err);
    jq_free(err);
    return 1;
  }

  jq_bull_worker_options_t* options = jq_bull_worker_options_create();
  jq_bull_worker_options_set_name(options, "c-example");
  jq_bull_worker_options_set_concurrency(options, 2);
  jq_bull_worker_options_set_exit_when_idle_ms(options, 500); /* return once drained */
  atomic_int handled;
  atomic_init(&handled, 0);
  jq_bull_worker_t* worker = NULL;
  st = jq_bull_worker_create(redis_url, queue_name, NULL, options, Sum, &handled, &worker, &err);
  jq_bull_worker_options_destroy(options);
  if (st == JQ_OK) st = jq_bull_worker_run(worker, &err);
  if (st != JQ_OK) fprintf(stderr, "bullmq: %s: %s\n", jq_status_name(st), err);
  jq_free(err);
  const int64_t completed = jq_bull_worker_stat(worker, JQ_BULL_WORKER_COMPLETED);
  const int64_t failed = jq_bull_worker_stat(worker, JQ_BULL_WORKER_FAILED);
  jq_bull_worker_destroy(worker);
  printf("bullmq: %d handled, %lld completed, %lld failed\n", atomic_load(&handled),
         (long long)completed, (long long)failed);
  return st == JQ_OK && completed == 2 && failed == 1 ? 0 : 1;
}

int main(int argc, char** argv) {
  const char* database_url = getenv("DATABASE_URL");
  const char* redis_url = getenv("REDIS_URL");
  if (database_url == NULL || redis_url == NULL) {
    fprintf(stderr, "set DATABASE_URL and REDIS_URL\n");
    return 2;
  }
  char queue_name[64];
  snprintf(queue_name, sizeof(queue_name), "c-example-%d", (int)getpid());
  if (RunPostgres(database_url, argc > 1 ? argv[1] : "ops", queue_name) != 0) return 1;
  if (RunBull(redis_url, queue_name) != 0) return 1;
  printf("ok\n");
  return 0;
}
