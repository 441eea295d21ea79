#include "pg/queue_sql.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "internal/json_escape.h"

namespace jobqueue::internal {
namespace {

// Statements are written with {s} for the schema and {ch} for the notify channel.
std::string Expand(absl::string_view schema, absl::string_view sql) {
  return absl::StrReplaceAll(sql, {{"{s}", absl::StrCat("\"", schema, "\"")},
                                   {"{ch}", absl::StrCat("jobqueue_", schema)}});
}

constexpr absl::string_view kMigration1 = R"sql(
CREATE SCHEMA IF NOT EXISTS {s};

CREATE TABLE IF NOT EXISTS {s}.job_queue (
  id            bigserial PRIMARY KEY,
  queue         text        NOT NULL DEFAULT 'default',
  job_type      text        NOT NULL,
  payload       jsonb       NOT NULL DEFAULT '{}'::jsonb,
  status        text        NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
  priority      smallint    NOT NULL DEFAULT 0,
  run_at        timestamptz NOT NULL DEFAULT now(),
  attempts      integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  max_attempts  integer     NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
  locked_by     text,
  locked_at     timestamptz,
  heartbeat_at  timestamptz,
  last_error    text,
  result        jsonb,
  dedupe_key    text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz,
  CHECK (char_length(queue) BETWEEN 1 AND 128),
  CHECK (char_length(job_type) BETWEEN 1 AND 128)
);

-- Claims walk only pending rows, in claim order, so finished rows never slow them down.
CREATE INDEX IF NOT EXISTS job_queue_claim_idx
  ON {s}.job_queue (queue, priority, run_at, id) WHERE status = 'pending';
-- The stale-lock reaper scans processing rows by heartbeat age.
CREATE INDEX IF NOT EXISTS job_queue_heartbeat_idx
  ON {s}.job_queue (heartbeat_at) WHERE status = 'processing';
-- Retention deletes finished rows by age.
CREATE INDEX IF NOT EXISTS job_queue_finished_idx
  ON {s}.job_queue (finished_at) WHERE status IN ('completed', 'failed', 'cancelled');
-- One live job per dedupe key and queue.
CREATE UNIQUE INDEX IF NOT EXISTS job_queue_dedupe_idx
  ON {s}.job_queue (queue, dedupe_key)
  WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'processing');

-- Idle workers register here; inserts notify only while someone waits, so busy periods pay
-- nothing for NOTIFY (whose commit-time lock would otherwise serialize every enqueue).
CREATE UNLOGGED TABLE IF NOT EXISTS {s}.job_queue_waiters (
  worker_id  text PRIMARY KEY,
  queue      text NOT NULL,
  since      timestamptz NOT NULL DEFAULT now()
);

-- No transition table: capturing every inserted row would cost more than the notification.
-- Idle workers of every queue wake and look; busy periods (no waiters) pay one EXISTS.
CREATE OR REPLACE FUNCTION {s}.job_queue_notify() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF EXISTS (SELECT 1 FROM {s}.job_queue_waiters) THEN
    PERFORM pg_notify('{ch}', '');
  END IF;
  RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS job_queue_notify ON {s}.job_queue;
CREATE TRIGGER job_queue_notify
  AFTER INSERT ON {s}.job_queue
  FOR EACH STATEMENT EXECUTE FUNCTION {s}.job_queue_notify();
)sql";

// Postgres re-parses and plans a table's CHECK expressions for every INSERT or UPDATE
// statement, but keeps a domain's planned, so the row guards move to domains (about a fifth
// of a one-row insert's server time here). The domains start empty and get their checks after
// the columns switch: no table rewrite, indexes kept, existing rows still validated.
constexpr absl::string_view kMigration2 = R"sql(
DO $do$
BEGIN
  IF to_regtype('{s}.job_status') IS NULL THEN CREATE DOMAIN {s}.job_status AS text; END IF;
  IF to_regtype('{s}.job_name') IS NULL THEN CREATE DOMAIN {s}.job_name AS text; END IF;
  IF to_regtype('{s}.job_attempts') IS NULL THEN CREATE DOMAIN {s}.job_attempts AS integer; END IF;
  IF to_regtype('{s}.job_max_attempts') IS NULL THEN
    CREATE DOMAIN {s}.job_max_attempts AS integer;
  END IF;
END
$do$;

ALTER TABLE {s}.job_queue
  ALTER status TYPE {s}.job_status,
  ALTER queue TYPE {s}.job_name,
  ALTER job_type TYPE {s}.job_name,
  ALTER attempts TYPE {s}.job_attempts,
  ALTER max_attempts TYPE {s}.job_max_attempts;

ALTER DOMAIN {s}.job_status DROP CONSTRAINT IF EXISTS job_status_check;
ALTER DOMAIN {s}.job_status ADD CONSTRAINT job_status_check
  CHECK (VALUE IN ('pending', 'processing', 'completed', 'failed', 'cancelled'));
ALTER DOMAIN {s}.job_name DROP CONSTRAINT IF EXISTS job_name_check;
ALTER DOMAIN {s}.job_name ADD CONSTRAINT job_name_check
  CHECK (char_length(VALUE) BETWEEN 1 AND 128);
ALTER DOMAIN {s}.job_attempts DROP CONSTRAINT IF EXISTS job_attempts_check;
ALTER DOMAIN {s}.job_attempts ADD CONSTRAINT job_attempts_check CHECK (VALUE >= 0);
ALTER DOMAIN {s}.job_max_attempts DROP CONSTRAINT IF EXISTS job_max_attempts_check;
ALTER DOMAIN {s}.job_max_attempts ADD CONSTRAINT job_max_attempts_check CHECK (VALUE >= 1);

ALTER TABLE {s}.job_queue
  DROP CONSTRAINT IF EXISTS job_queue_status_check,
  DROP CONSTRAINT IF EXISTS job_queue_attempts_check,
  DROP CONSTRAINT IF EXISTS job_queue_max_attempts_check,
  DROP CONSTRAINT IF EXISTS job_queue_queue_check,
  DROP CONSTRAINT IF EXISTS job_queue_job_type_check;
)sql";

// A waiter's row names the backend its worker listens on, so a row left by a killed worker is
// dropped once that backend is gone (while any row exists, every insert pays for NOTIFY).
constexpr absl::string_view kMigration3 = R"sql(
ALTER TABLE {s}.job_queue_waiters ADD COLUMN IF NOT EXISTS pid integer;
)sql";

// The statement trigger cost a one-row insert more than its check for waiters: our inserts
// now check in their own statement (kWakeWaiters). The function stays for operators who want
// rows other tools insert to wake workers too (docs/postgres.md).
constexpr absl::string_view kMigration4 = R"sql(
DO $do$
BEGIN
  -- Not DROP TRIGGER IF EXISTS: its notice would reach the operator's terminal.
  IF EXISTS (SELECT 1 FROM pg_trigger
              WHERE tgrelid = '{s}.job_queue'::regclass AND tgname = 'job_queue_notify') THEN
    DROP TRIGGER job_queue_notify ON {s}.job_queue;
  END IF;
END
$do$;
)sql";

// Scanning even an empty waiters table cost a one-row insert 3-4% of its rate; reading a
// sequence costs next to nothing. So the waiters table keeps its count in one: a statement
// trigger recounts after every change, one transaction at a time (the advisory lock), and the
// last to recount has seen every earlier change committed.
constexpr absl::string_view kMigration5 = R"sql(
CREATE SEQUENCE IF NOT EXISTS {s}.job_queue_waiting MINVALUE 0 START 0;

-- Definer's rights: a worker's role may read the count but not set it.
CREATE OR REPLACE FUNCTION {s}.job_queue_count_waiters() RETURNS trigger LANGUAGE plpgsql
  SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('{s}.job_queue_waiters'), 0);
  PERFORM setval('{s}.job_queue_waiting', (SELECT count(*) FROM {s}.job_queue_waiters), true);
  RETURN NULL;
END
$fn$;

DO $do$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = '{s}.job_queue_waiters'::regclass
                    AND tgname = 'job_queue_count_waiters') THEN
    CREATE TRIGGER job_queue_count_waiters
      AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {s}.job_queue_waiters
      FOR EACH STATEMENT EXECUTE FUNCTION {s}.job_queue_count_waiters();
  END IF;
END
$do$;

SELECT setval('{s}.job_queue_waiting', (SELECT count(*) FROM {s}.job_queue_waiters), true);

-- The trigger function kept for operators (migration 4) reads the count too.
CREATE OR REPLACE FUNCTION {s}.job_queue_notify() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF pg_sequence_last_value('{s}.job_queue_waiting'::regclass) > 0 THEN
    PERFORM pg_notify('{ch}', '');
  END IF;
  RETURN NULL;
END
$fn$;
)sql";

// In an inserting statement: one notification while any worker of the schema waits (they all
// wake and look), nothing but a read of the waiters' count otherwise. Uncorrelated, so Postgres
// evaluates it once per statement however many rows go in.
constexpr absl::string_view kWakeWaiters =
    "(SELECT pg_notify('{ch}', '') "
    "WHERE pg_sequence_last_value('{s}.job_queue_waiting'::regclass) > 0)";

// Statements that find their rows by id test the status as `(status = '...') IS TRUE`: the
// same test (status is NOT NULL), but one the planner cannot match to a partial index's
// condition. Statistics taken while no row had that status make such an index look empty,
// and the planner read all of it (every processing row, say) for each completion instead of
// looking the ids up (30,000 leases held elsewhere cost the no-op drain about 10%). A batch's ids
// also go through `id = ANY (ARRAY(SELECT ...))`, an array whose size the planner cannot see:
// joined to 1,000 ids it could see, it chose to read a table of 30,000 rows whole.

// Columns of a claimed job, in the order ParseLeases reads them.
constexpr absl::string_view kClaimReturning =
    "j.id, j.attempts, j.job_type, j.payload::text, j.max_attempts, j.priority, "
    "(extract(epoch FROM j.run_at) * 1000000)::bigint, "
    "(extract(epoch FROM j.locked_at) * 1000000)::bigint";

// The claim index is (queue, priority, run_at, id), so `run_at <= now()` cannot end a scan in
// claim order: with no due job left it walked every delayed one (34 ms a claim beside a
// million jobs a day ahead; pg_e2e --only claim-delayed). Instead the priorities present are
// found one index probe each (`prio`, from the newest end: the oldest holds the rows claims
// have just left, dead until vacuumed), and each is scanned in (run_at, id) order up to its first
// job not yet due. The nested loop takes them in priority order and pulls, so locks, only the rows
// it returns. {q} is the queue parameter, {t} the job types, {n} the limit; {cols} what to return.
constexpr absl::string_view kPendingPriorities = R"sql(
  WITH RECURSIVE prio AS (
    (SELECT priority FROM {s}.job_queue
      WHERE status = 'pending' AND queue = {q} ORDER BY priority DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT j.priority FROM {s}.job_queue j
             WHERE j.status = 'pending' AND j.queue = {q} AND j.priority < prio.priority
             ORDER BY j.priority DESC LIMIT 1)
      FROM prio WHERE prio.priority IS NOT NULL))sql";

constexpr absl::string_view kDueInClaimOrder = R"sql(
  SELECT due.* FROM (SELECT priority FROM prio WHERE priority IS NOT NULL ORDER BY priority) p,
  LATERAL (
    SELECT {cols} FROM {s}.job_queue
     WHERE status = 'pending' AND queue = {q} AND priority = p.priority AND run_at <= now()
       AND ({t}::text[] IS NULL OR job_type = ANY ({t}::text[]))
     ORDER BY run_at, id
     LIMIT {n}
     FOR UPDATE SKIP LOCKED) due
   LIMIT {n})sql";

std::string DueInClaimOrder(absl::string_view cols, absl::string_view queue,
                            absl::string_view types, absl::string_view limit) {
  return absl::StrReplaceAll(absl::StrCat(kPendingPriorities, kDueInClaimOrder),
                             {{"{cols}", cols}, {"{q}", queue}, {"{t}", types}, {"{n}", limit}});
}

// The earliest run_at of the queue's pending jobs: the first of each priority's, as above.
constexpr absl::string_view kNextRunAt = R"sql(
  SELECT (extract(epoch FROM min(first.run_at)) * 1000000)::bigint FROM prio, LATERAL (
    SELECT run_at FROM {s}.job_queue
     WHERE status = 'pending' AND queue = $1 AND priority = prio.priority
       AND ($2::text[] IS NULL OR job_type = ANY ($2::text[]))
     ORDER BY run_at
     LIMIT 1) first
   WHERE prio.priority IS NOT NULL)sql";

// By id through ANY, not a join to `next`: after a few runs the statement's plan is generic,
// guessing `LIMIT $4` at a tenth of the pending rows, and with a big backlog the join then
// hashed or merge-scanned the whole table on every claim.
constexpr absl::string_view kClaimUpdate = R"sql(
  UPDATE {s}.job_queue j
     SET status = 'processing', attempts = j.attempts + 1, locked_by = $1,
         locked_at = now(), heartbeat_at = now(), updated_at = now()
   WHERE j.id = ANY (ARRAY(SELECT id FROM next)))sql";

// Row j still held under lease l by worker $1; `in` names the relation of l, with columns
// (id, attempt, claimed_at_us).
constexpr absl::string_view kLeaseFence =
    R"sql(j.id = ANY (ARRAY(SELECT id FROM {in})) AND j.id = l.id
     AND j.attempts = l.attempt AND j.locked_by = $1 AND (j.status = 'processing') IS TRUE
     AND (extract(epoch FROM j.locked_at) * 1000000)::bigint = l.claimed_at_us)sql";

std::string LeaseFence(absl::string_view in) {
  return absl::StrReplaceAll(kLeaseFence, {{"{in}", in}});
}

std::string LeasesHeld(absl::string_view in) {
  return absl::StrCat("\n  SELECT j.id FROM {s}.job_queue j, ", in, " l\n   WHERE ",
                      LeaseFence(in));
}

constexpr absl::string_view kLeasesInput = R"sql(
WITH leases AS (
  SELECT * FROM unnest($2::bigint[], $3::int[], $4::bigint[]) AS l(id, attempt, claimed_at_us)))sql";

constexpr absl::string_view kRunAt =
    "CASE WHEN {ra} IS NULL THEN now() + {dl} * interval '1 microsecond' "
    "ELSE to_timestamp({ra} / 1000000.0) END";

std::string RunAtExpr(absl::string_view run_at_us, absl::string_view delay_us) {
  return absl::StrReplaceAll(kRunAt, {{"{ra}", run_at_us}, {"{dl}", delay_us}});
}

}  // namespace

absl::Status ValidateSchemaName(absl::string_view schema) {
  // Statement names (jq_<schema>_<name>) and the channel (jobqueue_<schema>) must fit
  // Postgres's 63-byte identifiers: longer ones are cut and collide.
  if (schema.empty() || schema.size() > kMaxSchemaNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("schema name must be 1-", kMaxSchemaNameBytes, " characters"));
  }
  for (size_t i = 0; i < schema.size(); ++i) {
    const char c = schema[i];
    const bool ok = (c >= 'a' && c <= 'z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("schema name \"", schema, "\" must match [a-z_][a-z0-9_]*"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateWorkerId(absl::string_view worker_id) {
  if (worker_id.empty()) return absl::InvalidArgumentError("worker id is empty");
  if (worker_id.size() > 256) return absl::InvalidArgumentError("worker id too long");
  if (ToValidUtf8(worker_id) != worker_id) {
    return absl::InvalidArgumentError("worker id must be UTF-8 without NUL bytes");
  }
  return absl::OkStatus();
}

std::vector<Migration> QueueMigrations(absl::string_view schema) {
  return {{1, "create job_queue", Expand(schema, kMigration1)},
          {2, "row checks as domains", Expand(schema, kMigration2)},
          {3, "waiter backend pid", Expand(schema, kMigration3)},
          {4, "inserts notify in their own statement", Expand(schema, kMigration4)},
          {5, "waiters counted in a sequence", Expand(schema, kMigration5)}};
}

QueueSql::QueueSql(absl::string_view schema_name)
    : schema(schema_name),
      channel(absl::StrCat("jobqueue_", schema_name)),
      migrations_table(Expand(schema_name, "{s}.job_queue_migrations")) {
  auto stmt = [&](absl::string_view name, absl::string_view sql) {
    return PgStatement{absl::StrCat("jq_", schema_name, "_", name), Expand(schema_name, sql)};
  };

  enqueue_one =
      stmt("enqueue_one", absl::StrCat(R"sql(
INSERT INTO {s}.job_queue (queue, job_type, payload, priority, run_at, max_attempts, dedupe_key)
VALUES ($1, $2, $3::jsonb, $4, )sql",
                                       RunAtExpr("$5::bigint", "$6::bigint"), R"sql(, $7, $8)
ON CONFLICT (queue, dedupe_key)
  WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'processing') DO NOTHING
RETURNING id, )sql",
                                       kWakeWaiters));

  // Without a dedupe key there is nothing to conflict with: no arbiter index check.
  enqueue_one_plain =
      stmt("enqueue_one_plain", absl::StrCat(R"sql(
INSERT INTO {s}.job_queue (queue, job_type, payload, priority, run_at, max_attempts)
VALUES ($1, $2, $3::jsonb, $4, )sql",
                                             RunAtExpr("$5::bigint", "$6::bigint"), R"sql(, $7)
RETURNING id, )sql",
                                             kWakeWaiters));

  find_live_dedupe = stmt("find_live_dedupe", R"sql(
SELECT id FROM {s}.job_queue
 WHERE queue = $1 AND dedupe_key = $2 AND status IN ('pending', 'processing'))sql");

  // Ids are drawn per input row first, so results map back to input order without relying
  // on the order of RETURNING. The wake-up check runs at the first row inserted, if any: a
  // batch of duplicates wakes nobody.
  enqueue_many = stmt("enqueue_many", absl::StrCat(R"sql(
WITH input AS MATERIALIZED (
  SELECT nextval('{s}.job_queue_id_seq'::regclass) AS id, t.*
    FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::smallint[], $5::bigint[], $6::bigint[],
                $7::int[], $8::text[]) WITH ORDINALITY
         AS t(queue, job_type, payload, priority, run_at_us, delay_us, max_attempts, dedupe_key, ord)),
ins AS (
  INSERT INTO {s}.job_queue (id, queue, job_type, payload, priority, run_at, max_attempts, dedupe_key)
  SELECT id, queue, job_type, payload, priority, )sql",
                                                   RunAtExpr("run_at_us", "delay_us"), R"sql(,
         max_attempts, dedupe_key
    FROM input ORDER BY ord
  ON CONFLICT (queue, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'processing') DO NOTHING
  RETURNING id)
SELECT input.id, ins.id IS NOT NULL, existing.id,
       CASE WHEN ins.id IS NOT NULL THEN )sql",
                                                   kWakeWaiters, R"sql( END
  FROM input
  LEFT JOIN ins ON ins.id = input.id
  LEFT JOIN {s}.job_queue existing
         ON ins.id IS NULL AND input.dedupe_key IS NOT NULL
        AND existing.queue = input.queue AND existing.dedupe_key = input.dedupe_key
        AND existing.status IN ('pending', 'processing')
 ORDER BY input.ord)sql"));

  // The common case, no dedupe keys in the batch: no arbiter index, no joins.
  enqueue_many_plain =
      stmt("enqueue_many_plain", absl::StrCat(R"sql(
WITH input AS MATERIALIZED (
  SELECT nextval('{s}.job_queue_id_seq'::regclass) AS id, t.*
    FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::smallint[], $5::bigint[], $6::bigint[],
                $7::int[]) WITH ORDINALITY
         AS t(queue, job_type, payload, priority, run_at_us, delay_us, max_attempts, ord)),
ins AS (
  INSERT INTO {s}.job_queue (id, queue, job_type, payload, priority, run_at, max_attempts)
  SELECT id, queue, job_type, payload, priority, )sql",
                                              RunAtExpr("run_at_us", "delay_us"), R"sql(,
         max_attempts
    FROM input)
SELECT id, true, NULL::bigint, )sql",
                                              kWakeWaiters, R"sql( FROM input ORDER BY ord)sql"));

  // Bulk path: ids reserved first (in input order), then the rows streamed by binary COPY,
  // which skips SQL parsing of every value and writes many rows per WAL record.
  reserve_ids_ = Expand(
      schema_name, "SELECT nextval('{s}.job_queue_id_seq'::regclass) FROM generate_series(1, ");
  copy_jobs_ = Expand(schema_name,
                      "COPY {s}.job_queue (id, queue, job_type, payload, priority, max_attempts) "
                      "FROM STDIN (FORMAT binary)");
  wake_waiters_ = Expand(schema_name, absl::StrCat("SELECT ", kWakeWaiters));

  const std::string claim_next = DueInClaimOrder("id", "$2", "$3", "$4");
  claim = stmt("claim", absl::StrCat("WITH next AS (", claim_next, ")", kClaimUpdate, " RETURNING ",
                                     kClaimReturning));

  // Completes the finished batch and claims the next in one statement: one round trip and
  // one commit per batch instead of two. A completion not written is 'l' (lease lost),
  // or 'd' when this very lease had already completed the job (a resend after a lost reply).
  // `done` writes the finished batch's completions; `finished` tells, for a completion not
  // written, whether this very lease had already finished the job.
  auto complete_and_claim_with = [&](absl::string_view name, absl::string_view done,
                                     absl::string_view finished) {
    return stmt(name, absl::StrCat(R"sql(
WITH input AS (
  SELECT * FROM unnest($5::bigint[], $6::int[], $7::jsonb[], $8::bigint[])
           AS d(id, attempt, result, claimed_at_us)),
done AS ()sql",
                                   done, R"sql(
  RETURNING j.id),
next AS ()sql",
                                   claim_next, "),\nclaimed AS (", kClaimUpdate, " RETURNING ",
                                   kClaimReturning, R"sql()
SELECT 'c', * FROM claimed
UNION ALL
SELECT CASE WHEN )sql",
                                   finished, R"sql( THEN 'd' ELSE 'l' END,
       input.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM input WHERE input.id NOT IN (SELECT id FROM done))sql"));
  };

  // Completes the finished batch and claims the next in one statement: one round trip and
  // one commit per batch instead of two. A completion not written is 'l' (lease lost),
  // or 'd' when this very lease had already completed the job (a resend after a lost reply).
  complete_and_claim = complete_and_claim_with("complete_and_claim",
                                               absl::StrCat(R"sql(
  UPDATE {s}.job_queue j
     SET status = 'completed', result = l.result, finished_at = now(), updated_at = now(),
         heartbeat_at = NULL
    FROM input l
   WHERE )sql",
                                                            LeaseFence("input")),
                                               R"sql((
         SELECT true FROM {s}.job_queue j
          WHERE j.id = input.id AND (j.status = 'completed') IS TRUE
            AND j.attempts = input.attempt AND j.locked_by = $1
            AND (extract(epoch FROM j.locked_at) * 1000000)::bigint = input.claimed_at_us))sql");

  // The same with completed rows deleted (PgOptions::delete_completed): no new row version and
  // no index entries per completion. A completion not written finds its row gone when it had
  // already been done (by this lease, or by another after a recovery: either way, done).
  complete_and_claim_delete = complete_and_claim_with(
      "complete_claim_del",
      absl::StrCat("\n  DELETE FROM {s}.job_queue j USING input l\n   WHERE ", LeaseFence("input")),
      "NOT EXISTS (SELECT FROM {s}.job_queue j WHERE j.id = input.id)");

  // Short-job batches: rows stay pending, held by this transaction's row locks. Columns as
  // kClaimReturning, with the attempt the settle will record and no claim time yet.
  claim_held = stmt("claim_held",
                    DueInClaimOrder("id, attempts + 1, job_type, payload::text, max_attempts, "
                                    "priority, (extract(epoch FROM run_at) * 1000000)::bigint, "
                                    "0::bigint",
                                    "$1", "$2", "$3"));

  // One row write per held job, in the claiming transaction: 'c' completes, 'f' fails (retry
  // or give up), 'k' keeps it as an ordinary processing lease. Times are the statement's, not
  // the transaction's (which began at the claim).
  const std::string settle_input = R"sql(
WITH d AS (
  SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[])
           AS d(id, kind, body, delay_us)))sql";
  // {only}: which of the batch's rows this UPDATE writes.
  const std::string settle_update = R"sql(
UPDATE {s}.job_queue j
   SET status = CASE WHEN d.kind = 'c' THEN 'completed'
                     WHEN d.kind = 'k' THEN 'processing'
                     WHEN j.attempts + 1 >= j.max_attempts THEN 'failed'
                     ELSE 'pending' END,
       attempts = j.attempts + 1,
       result = CASE WHEN d.kind = 'c' THEN d.body::jsonb ELSE j.result END,
       last_error = CASE WHEN d.kind = 'f' THEN d.body ELSE j.last_error END,
       run_at = CASE WHEN d.kind = 'f' AND j.attempts + 1 < j.max_attempts
                     THEN statement_timestamp() + d.delay_us * interval '1 microsecond'
                     ELSE j.run_at END,
       locked_by = CASE WHEN d.kind = 'f' AND j.attempts + 1 < j.max_attempts THEN NULL
                        ELSE $1 END,
       locked_at = CASE WHEN d.kind = 'f' AND j.attempts + 1 < j.max_attempts THEN NULL
                        ELSE statement_timestamp() END,
       heartbeat_at = CASE WHEN d.kind = 'k' THEN statement_timestamp() END,
       finished_at = CASE WHEN d.kind = 'c' OR (d.kind = 'f' AND j.attempts + 1 >= j.max_attempts)
                          THEN statement_timestamp() END,
       updated_at = statement_timestamp()
  FROM d
 WHERE j.id = ANY (ARRAY(SELECT id FROM d{only})) AND j.id = d.id AND (j.status = 'pending') IS TRUE
RETURNING j.id, j.status::text, (extract(epoch FROM j.locked_at) * 1000000)::bigint,
          (extract(epoch FROM j.run_at) * 1000000)::bigint, j.attempts::int)sql";

  // One row write per held job, in the claiming transaction: 'c' completes, 'f' fails (retry
  // or give up), 'k' keeps it as an ordinary processing lease. Times are the statement's, not
  // the transaction's (which began at the claim).
  settle_held =
      stmt("settle_held",
           absl::StrCat(settle_input, "\n", absl::StrReplaceAll(settle_update, {{"{only}", ""}})));

  // The same with completed rows deleted (PgOptions::delete_completed). Columns as above.
  settle_held_delete =
      stmt("settle_held_del",
           absl::StrCat(settle_input, R"sql(,
gone AS (
  DELETE FROM {s}.job_queue j USING d
   WHERE j.id = ANY (ARRAY(SELECT id FROM d WHERE kind = 'c')) AND j.id = d.id
     AND (j.status = 'pending') IS TRUE
  RETURNING j.id, 'completed'::text, 0::bigint, (extract(epoch FROM j.run_at) * 1000000)::bigint,
            j.attempts + 1),
kept AS ()sql",
                        absl::StrReplaceAll(settle_update, {{"{only}", " WHERE kind <> 'c'"}}),
                        ")\nSELECT * FROM gone UNION ALL SELECT * FROM kept"));

  // A held batch whose settle was refused, locked again to settle row by row: the rows still
  // pending, with their attempts (a row another worker ran meanwhile is not the same claim).
  relock_held = stmt("relock_held", R"sql(
SELECT id, attempts FROM {s}.job_queue
 WHERE id = ANY (ARRAY(SELECT unnest($1::bigint[]))) AND (status = 'pending') IS TRUE
 FOR UPDATE SKIP LOCKED)sql");

  complete = stmt("complete", R"sql(
UPDATE {s}.job_queue
   SET status = 'completed', result = $4::jsonb, finished_at = now(), updated_at = now(),
       heartbeat_at = NULL
 WHERE id = $1 AND attempts = $2 AND locked_by = $3 AND (status = 'processing') IS TRUE
   AND (extract(epoch FROM locked_at) * 1000000)::bigint = $5
RETURNING id)sql");

  complete_delete = stmt("complete_del", R"sql(
DELETE FROM {s}.job_queue
 WHERE id = $1 AND attempts = $2 AND locked_by = $3 AND (status = 'processing') IS TRUE
   AND (extract(epoch FROM locked_at) * 1000000)::bigint = $4
RETURNING id)sql");

  fail = stmt("fail", R"sql(
UPDATE {s}.job_queue
   SET status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END,
       run_at = CASE WHEN attempts >= max_attempts THEN run_at
                     ELSE now() + $5::bigint * interval '1 microsecond' END,
       finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
       locked_by = CASE WHEN attempts >= max_attempts THEN locked_by END,
       locked_at = CASE WHEN attempts >= max_attempts THEN locked_at END,
       last_error = $4, heartbeat_at = NULL, updated_at = now()
 WHERE id = $1 AND attempts = $2 AND locked_by = $3 AND (status = 'processing') IS TRUE
   AND (extract(epoch FROM locked_at) * 1000000)::bigint = $6
RETURNING status, (extract(epoch FROM run_at) * 1000000)::bigint, attempts)sql");

  // Gives leases back without using up their attempts (a graceful stop). Locks the rows in
  // job id order, so two releases over the same leases queue instead of deadlocking.
  release_many = stmt("release_many", absl::StrCat(kLeasesInput, R"sql(,
fenced AS ()sql",
                                                   LeasesHeld("leases"), R"sql(
   ORDER BY j.id
   FOR NO KEY UPDATE OF j),
released AS (
  UPDATE {s}.job_queue j
     SET status = 'pending', attempts = j.attempts - 1, locked_by = NULL, locked_at = NULL,
         heartbeat_at = NULL, updated_at = now()
   WHERE j.id = ANY (ARRAY(SELECT id FROM fenced))
  RETURNING j.id, j.queue)
SELECT id, pg_notify('{ch}', queue) FROM released)sql"));

  // Claims of this worker whose reply never arrived (the connection broke after the commit):
  // processing under its id but not held by it. They never ran, so the attempt is given back.
  release_orphans = stmt("release_orphans", R"sql(
WITH released AS (
  UPDATE {s}.job_queue
     SET status = 'pending', attempts = greatest(attempts - 1, 0), locked_by = NULL,
         locked_at = NULL, heartbeat_at = NULL, updated_at = now()
   WHERE status = 'processing' AND locked_by = $1
     AND NOT EXISTS (
       SELECT 1 FROM unnest($2::bigint[], $3::int[], $4::bigint[]) AS h(id, attempt, claimed_at_us)
        WHERE h.id = job_queue.id AND h.attempt = job_queue.attempts
          AND h.claimed_at_us = (extract(epoch FROM job_queue.locked_at) * 1000000)::bigint)
  RETURNING id, queue)
SELECT id, pg_notify('{ch}', queue) FROM released)sql");

  // Never waits for a row lock: a lease held at the statement's start whose row another
  // transaction has locked (its completion in flight, a reaper's sweep) is skipped, not
  // extended, and counted as still held; the next heartbeat sees how that ended. So a
  // heartbeat cannot close a deadlock with the completions it overlaps, which lock rows in
  // whatever order their plan reads them. Rows are locked by id alone (FOR NO KEY UPDATE, as
  // an UPDATE does: a foreign key's check does not block it) and the update tests the fence on
  // the latest version, so a lease lost after the start is reported lost, not skipped.
  heartbeat_many = stmt("heartbeat_many", absl::StrCat(kLeasesInput, R"sql(,
held AS ()sql",
                                                       LeasesHeld("leases"), R"sql(),
locked AS (
  SELECT id FROM {s}.job_queue WHERE id = ANY (ARRAY(SELECT id FROM held))
   FOR NO KEY UPDATE SKIP LOCKED),
beat AS (
  UPDATE {s}.job_queue j
     SET heartbeat_at = now(), updated_at = now()
    FROM leases l
   WHERE j.id = ANY (ARRAY(SELECT id FROM locked)) AND )sql",
                                                       LeaseFence("leases"), R"sql(
  RETURNING j.id)
SELECT id FROM beat
UNION ALL
SELECT id FROM held WHERE id NOT IN (SELECT id FROM locked))sql"));

  lease_state = stmt("lease_state", R"sql(
SELECT status, attempts, coalesce(locked_by, '') FROM {s}.job_queue WHERE id = $1)sql");

  cancel = stmt("cancel", R"sql(
UPDATE {s}.job_queue
   SET status = 'cancelled', finished_at = now(), updated_at = now()
 WHERE id = $1 AND (status = 'pending') IS TRUE
RETURNING id)sql");

  get = stmt("get", R"sql(
SELECT id, queue, job_type, payload::text, status, priority,
       (extract(epoch FROM run_at) * 1000000)::bigint, attempts, max_attempts,
       coalesce(locked_by, ''), (extract(epoch FROM locked_at) * 1000000)::bigint,
       (extract(epoch FROM heartbeat_at) * 1000000)::bigint, coalesce(last_error, ''),
       result::text, coalesce(dedupe_key, ''),
       (extract(epoch FROM created_at) * 1000000)::bigint,
       (extract(epoch FROM updated_at) * 1000000)::bigint,
       (extract(epoch FROM finished_at) * 1000000)::bigint
  FROM {s}.job_queue WHERE id = $1)sql");

  counts = stmt("counts", R"sql(
SELECT queue, job_type, status, count(*) FROM {s}.job_queue
 GROUP BY queue, job_type, status ORDER BY queue, job_type, status)sql");

  // A row set to processing by other tools has no heartbeat: the later of its lock and update
  // times stands in (the seed's own check is on updated_at; a locked_at left from an earlier
  // run must not make a fresh pickup look old). Processing rows are few; the partial
  // heartbeat index holds exactly them.
  list_stale = stmt("list_stale", R"sql(
SELECT id, queue, job_type, coalesce(locked_by, ''), attempts, max_attempts,
       (extract(epoch FROM now() - coalesce(heartbeat_at, greatest(locked_at, updated_at))) * 1000000)::bigint
  FROM {s}.job_queue
 WHERE status = 'processing'
   AND coalesce(heartbeat_at, greatest(locked_at, updated_at)) < now() - $1::bigint * interval '1 microsecond'
 ORDER BY coalesce(heartbeat_at, greatest(locked_at, updated_at)))sql");

  recover_batch = stmt("recover_batch", R"sql(
WITH cfg AS (
  SELECT * FROM unnest($1::text[], $2::bigint[]) AS c(job_type, stale_us)),
stale AS (
  SELECT j.id, j.locked_by FROM {s}.job_queue j
    LEFT JOIN cfg ON cfg.job_type = j.job_type
   WHERE j.status = 'processing'
     AND coalesce(j.heartbeat_at, greatest(j.locked_at, j.updated_at))
         < now() - coalesce(cfg.stale_us, $3::bigint) * interval '1 microsecond'
   LIMIT $4
   FOR UPDATE OF j SKIP LOCKED),
recovered AS (
  UPDATE {s}.job_queue j
     SET status = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'pending' END,
         finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
         last_error = 'stale lock recovered: no heartbeat from ' || coalesce(j.locked_by, '?')
                      || ' within the stale timeout',
         locked_by = NULL, locked_at = NULL, heartbeat_at = NULL, updated_at = now()
   WHERE j.id = ANY (ARRAY(SELECT id FROM stale))
  RETURNING j.id, j.job_type, j.status, j.queue)
SELECT r.id, r.job_type, r.status, coalesce(stale.locked_by, ''), r.queue
  FROM recovered r JOIN stale USING (id))sql");

  purge_batch = stmt("purge_batch", R"sql(
WITH doomed AS (
  SELECT id FROM {s}.job_queue
   -- The IN repeats the finished index's condition, which a generic plan cannot read
   -- out of the parameter.
   WHERE status = ANY ($1::text[]) AND status IN ('completed', 'failed', 'cancelled')
     AND finished_at < now() - $2::bigint * interval '1 microsecond'
   LIMIT $3
   FOR UPDATE SKIP LOCKED)
DELETE FROM {s}.job_queue WHERE id = ANY (ARRAY(SELECT id FROM doomed)))sql");

  // A failed job whose dedupe key is live again (or taken by a newer failed job of the same
  // key, retried instead) stays failed: moving it would break the unique index and with it
  // the whole statement.
  retry_failed = stmt("retry_failed", R"sql(
WITH failed AS (
  SELECT id, queue, dedupe_key,
         row_number() OVER (PARTITION BY queue, dedupe_key ORDER BY id DESC) AS newest
    FROM {s}.job_queue
   WHERE status = 'failed' AND ($1 = '' OR job_type = $1)),
picked AS (
  SELECT f.id FROM failed f
   WHERE f.dedupe_key IS NULL
      OR (f.newest = 1
          AND NOT EXISTS (SELECT 1 FROM {s}.job_queue live
                           WHERE live.queue = f.queue AND live.dedupe_key = f.dedupe_key
                             AND live.status IN ('pending', 'processing')))),
moved AS (
  UPDATE {s}.job_queue j
     SET status = 'pending', attempts = 0, run_at = now(), finished_at = NULL, locked_by = NULL,
         locked_at = NULL, heartbeat_at = NULL, last_error = NULL, result = NULL,
         updated_at = now()
    FROM picked
   WHERE j.id = picked.id AND (j.status = 'failed') IS TRUE
  RETURNING j.queue)
SELECT count(*), (SELECT count(pg_notify('{ch}', q)) FROM (SELECT DISTINCT queue FROM moved) d(q))
  FROM moved)sql");

  next_run_at =
      stmt("next_run_at",
           absl::StrCat(absl::StrReplaceAll(kPendingPriorities, {{"{q}", "$1"}}), kNextRunAt));

  // Registering also drops rows of workers that died without unregistering: their listening
  // backend is gone, or (rows of versions before the pid) they are over an hour old.
  add_waiter = stmt("add_waiter", R"sql(
WITH gone AS (
  DELETE FROM {s}.job_queue_waiters w
   WHERE w.worker_id <> $1
     AND CASE WHEN w.pid IS NULL THEN w.since < now() - interval '1 hour'
              ELSE NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = w.pid) END)
INSERT INTO {s}.job_queue_waiters (worker_id, queue, pid) VALUES ($1, $2, $3)
ON CONFLICT (worker_id) DO UPDATE SET queue = EXCLUDED.queue, pid = EXCLUDED.pid, since = now())sql");

  remove_waiter = stmt("remove_waiter", "DELETE FROM {s}.job_queue_waiters WHERE worker_id = $1");

  notify_if_waiting = stmt("notify_if_waiting", R"sql(
SELECT pg_notify('{ch}', $1)
 WHERE EXISTS (SELECT 1 FROM {s}.job_queue_waiters WHERE queue = $1))sql");

  try_sweep_lock =
      stmt("try_sweep_lock", "SELECT pg_try_advisory_xact_lock(hashtext($1), hashtext('{s}'))");
}

std::string QueueSql::BulkEnqueueScript(size_t jobs, size_t copies) const {
  std::string script = absl::StrCat("BEGIN; ", reserve_ids_, jobs, "); ");
  for (size_t i = 0; i < copies; ++i) absl::StrAppend(&script, copy_jobs_, "; ");
  absl::StrAppend(&script, wake_waiters_, "; COMMIT");
  return script;
}

}  // namespace jobqueue::internal
