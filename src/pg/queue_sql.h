// Every SQL statement of <schema>.job_queue, built once per schema name.
#ifndef JOBQUEUE_SRC_PG_QUEUE_SQL_H_
#define JOBQUEUE_SRC_PG_QUEUE_SQL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "pg/connection.h"

namespace jobqueue::internal {

struct Migration {
  int version;
  std::string name;
  std::string sql;  // a script; runs in the migrator's transaction
};

// [a-z_][a-z0-9_]*, at most kMaxSchemaNameBytes: the statement names and channel built from it
// must stay within Postgres's 63-byte identifiers.
inline constexpr size_t kMaxSchemaNameBytes = 40;
absl::Status ValidateSchemaName(absl::string_view schema);

// A worker id (locked_by): 1-256 bytes of UTF-8 without NUL. Postgres refuses other bytes on
// every statement, and libpq would cut a NUL short, so two ids could fence as one.
absl::Status ValidateWorkerId(absl::string_view worker_id);

std::vector<Migration> QueueMigrations(absl::string_view schema);

struct QueueSql {
  explicit QueueSql(absl::string_view schema);

  std::string schema;
  std::string channel;  // pg_notify channel
  std::string migrations_table;

  PgStatement enqueue_one;
  PgStatement enqueue_one_plain;
  PgStatement find_live_dedupe;
  PgStatement enqueue_many;
  PgStatement enqueue_many_plain;
  // One transaction sent as one query: reserves `jobs` ids (a row result, in input order),
  // then `copies` COPYs ... FROM STDIN (FORMAT binary) of (id, queue, job_type, payload,
  // priority, max_attempts), wakes waiting workers and commits.
  std::string BulkEnqueueScript(size_t jobs, size_t copies) const;
  PgStatement claim;
  PgStatement complete_and_claim;
  PgStatement complete_and_claim_delete;
  PgStatement claim_held;
  PgStatement settle_held;
  PgStatement settle_held_delete;
  PgStatement relock_held;
  PgStatement complete;
  PgStatement complete_delete;
  PgStatement fail;
  PgStatement release_many;
  PgStatement release_orphans;
  PgStatement heartbeat_many;
  PgStatement lease_state;
  PgStatement cancel;
  PgStatement get;
  PgStatement counts;
  PgStatement list_stale;
  PgStatement recover_batch;
  PgStatement purge_batch;
  PgStatement retry_failed;
  PgStatement next_run_at;
  PgStatement add_waiter;
  PgStatement remove_waiter;
  PgStatement notify_if_waiting;
  PgStatement try_sweep_lock;

 private:
  std::string reserve_ids_;  // ends in generate_series(1, : the count follows
  std::string copy_jobs_;
  std::string wake_waiters_;
};

}  // namespace jobqueue::internal

#endif  // JOBQUEUE_SRC_PG_QUEUE_SQL_H_
