#!/usr/bin/env bash
# The jobqueue CLI's Postgres subcommands against the real local Postgres, in a schema of
# their own, run as an operator would.
set -u
cli=${JOBQUEUE_CLI:?}
: "${DATABASE_URL:?run eval \"\$(scripts/services env)\"}"
source "$(dirname "$0")/lib.sh"
sql() { psql "$DATABASE_URL" -XAtq -c "$1"; }

schema="cli_$$"
export JOBQUEUE_SCHEMA=$schema
dir=$(mktemp -d)
trap 'sql "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1; rm -rf "$dir"' EXIT
cd "$dir"  # no stray .env files

check migrate 0 "$cli" migrate
expect_in migrate "$schema.job_queue is at schema version 5"
# JOBQUEUE_SCHEMA may come from .env like every other setting.
mkdir "$dir/envdir" && printf 'JOBQUEUE_SCHEMA=%s\n' "$schema" >"$dir/envdir/.env"
check dotenv-schema 0 env -u JOBQUEUE_SCHEMA "$cli" migrate --env-dir "$dir/envdir"
expect_in dotenv-schema "$schema.job_queue is at schema version 5"
check migrate-again 0 "$cli" migrate
check migrate-bad-lock-timeout 64 "$cli" migrate --lock-timeout soon
check migrate-zero-lock-timeout 1 "$cli" migrate --lock-timeout 0s
expect_in migrate-zero-lock-timeout "migrate_lock_timeout"

check enqueue 0 "$cli" enqueue --type ingest_csv --payload '{"file": "a.csv"}'
id=$out
check get 0 "$cli" get "$id" --json
expect_in get '"status":"pending"'
expect_in get '"payload":{"file": "a.csv"}'

check enqueue-many 0 "$cli" enqueue --type bulk --payload '{}' --count 2500
expect_in enqueue-many "enqueued 2500 jobs"
check stats-json 0 "$cli" stats --json
expect_in stats-json '{"queue":"default","job_type":"bulk","status":"pending","count":2500}'
check stats-text 0 "$cli" stats
expect_in stats-text "ingest_csv"

check dedupe-first 0 "$cli" enqueue --type sync --dedupe-key k1
first=$out
check dedupe-second 0 "$cli" enqueue --type sync --dedupe-key k1
expect_in dedupe-second "$first (existing job with this dedupe key)"

# Bad input: clear errors, non-zero exits, nothing written.
before=$(sql "SELECT count(*) FROM $schema.job_queue")
check bad-json 1 "$cli" enqueue --type t --payload '{not json'
expect_in bad-json "payload"
check empty-type 1 "$cli" enqueue --type '' --payload '{}'
check long-type 1 "$cli" enqueue --type "$(printf 'a%.0s' {1..200})"
check quoted-type 1 "$cli" enqueue --type "x'); DROP TABLE $schema.job_queue; --"
check negative-delay 64 "$cli" enqueue --type t --delay=-5
expect_in negative-delay "must not be negative"
check infinite-delay 64 "$cli" enqueue --type t --delay=inf
expect_in infinite-delay "must be finite"
check zero-attempts 1 "$cli" enqueue --type t --max-attempts 0
expect_in zero-attempts "max attempts"
check bad-count 64 "$cli" enqueue --type t --count lots
check unknown-flag 64 "$cli" enqueue --type t --bogus 1
check missing-type 64 "$cli" enqueue --payload '{}'
check bad-schema 1 "$cli" stats --schema 'x;drop'
check huge-attempts 64 "$cli" enqueue --type t --max-attempts 99999999999
expect_in huge-attempts '"99999999999"'
check huge-priority 1 "$cli" enqueue --type t --priority 99999
expect_in huge-priority "priority 99999"
# A stray word is refused, not ignored: `retry TYPE` used to retry every type.
check stray-word 64 "$cli" retry flaky
expect_in stray-word 'unexpected argument "flaky"'
check stray-id 64 "$cli" get 1 2
check dedupe-count 64 "$cli" enqueue --type sync --dedupe-key k2 --count 3
expect_in dedupe-count "--count must be 1 with --dedupe-key"
after=$(sql "SELECT count(*) FROM $schema.job_queue")
[ "$before" = "$after" ] || { echo "FAIL bad input wrote rows: $before -> $after"; fails=$((fails+1)); }

# Output that cannot be written is a failure, not exit 0 with nothing shown.
out=$("$cli" stats 2>&1 >/dev/full); got=$?
[ "$got" = 1 ] || { echo "FAIL stdout-full: exit $got, want 1"; fails=$((fails+1)); }
expect_in stdout-full "could not be written"

# A worker drains the bulk jobs and exits when idle; echo stores the payload as the result.
check work-bulk 0 "$cli" work --types bulk --handler noop --concurrency 4 --batch 100 --exit-when-idle 1
expect_in work-bulk "completed 2500"
check work-echo 0 "$cli" work --types ingest_csv --handler echo --exit-when-idle 0.5
check get-echo 0 "$cli" get "$id" --json
expect_in get-echo '"result":{"file": "a.csv"}'
# Short-job mode: each job written once (completed, attempt 1) in its held batch.
check enqueue-short 0 "$cli" enqueue --type short --payload '{"n": 1}' --count 300
check work-short 0 "$cli" work --types short --handler echo --concurrency 4 --batch 50 \
  --transaction-budget 500ms --exit-when-idle 0.5
expect_in work-short "completed 300"
short_done=$(sql "SELECT count(*) FROM $schema.job_queue WHERE job_type = 'short' AND status = 'completed' AND attempts = 1 AND result = payload")
[ "$short_done" = 300 ] || { echo "FAIL short-job mode completed $short_done of 300"; fails=$((fails+1)); }
# --delete-completed: completed jobs leave no row.
check enqueue-deleted 0 "$cli" enqueue --type deleted --payload '{}' --count 200
check work-deleted 0 "$cli" work --types deleted --handler noop --batch 50 --delete-completed \
  --exit-when-idle 0.5
expect_in work-deleted "completed 200"
deleted_left=$(sql "SELECT count(*) FROM $schema.job_queue WHERE job_type = 'deleted'")
[ "$deleted_left" = 0 ] || { echo "FAIL --delete-completed left $deleted_left rows"; fails=$((fails+1)); }
check work-bad-budget 64 "$cli" work --types short --handler noop --transaction-budget 1h
expect_in work-bad-budget "transaction budget"
check work-bad-handler 64 "$cli" work --types bulk --handler explode
check work-no-types 64 "$cli" work --handler noop

# Failures: retried until max attempts, then failed; retry sends them back.
check enqueue-fail 0 "$cli" enqueue --type flaky --max-attempts 1
check work-fail 0 "$cli" work --types flaky --handler 'fail:upstream down' --exit-when-idle 0.5
fid=$(sql "SELECT id FROM $schema.job_queue WHERE job_type = 'flaky'")
check get-failed 0 "$cli" get "$fid" --json
expect_in get-failed '"status":"failed"'
expect_in get-failed '"last_error":"upstream down"'
check retry 0 "$cli" retry --type flaky
expect_in retry "moved 1 failed job(s)"

# A job stuck in processing (its worker vanished): listed by stale, recovered by recover.
sql "UPDATE $schema.job_queue SET status = 'processing', attempts = 1, max_attempts = 3, locked_by = 'ghost',
       locked_at = now() - interval '2 hours', heartbeat_at = now() - interval '2 hours'
     WHERE job_type = 'flaky'" >/dev/null
check stale 0 "$cli" stale
expect_in stale "ghost"
expect_in stale "1 stale job(s)"
check stale-recent 0 "$cli" stale --older-than 3h
expect_in stale-recent "0 stale job(s)"
check recover 0 "$cli" recover --older-than 30m
expect_in recover "ghost -> pending"
check bad-duration 64 "$cli" recover --older-than soon
check huge-duration 64 "$cli" stale --older-than 999999h
expect_in huge-duration "at most 100 years"
# A bare number would be seconds: "--older-than 30" must not take back jobs 30 s old.
check bare-age 64 "$cli" recover --older-than 30
expect_in bare-age "needs a unit"
check bare-retention 64 "$cli" purge --failed-older-than 30
expect_in bare-retention "needs a unit"

check cancel 0 "$cli" cancel "$fid"
check cancel-again 1 "$cli" cancel "$fid"
check get-missing 1 "$cli" get 999999999
expect_in get-missing "NOT_FOUND"

# Retention: finished jobs older than the cut-off go.
sql "UPDATE $schema.job_queue SET finished_at = now() - interval '10 days' WHERE job_type = 'bulk'" >/dev/null
check purge 0 "$cli" purge
expect_in purge "deleted 2500 finished job(s)"

# A worker service runs the reaper and retention beside itself: a job its vanished worker left
# in processing is recovered and done, and a finished job past retention is deleted.
sql "INSERT INTO $schema.job_queue (job_type, status, attempts, locked_by, locked_at, heartbeat_at)
     VALUES ('orphan', 'processing', 1, 'gone', now() - interval '2 hours', now() - interval '2 hours')" >/dev/null
check work-no-maintenance 0 "$cli" work --types orphan --handler echo --no-maintenance \
  --poll-interval 0.2 --exit-when-idle 0.5
expect_in work-no-maintenance "completed 0,"
expect_not_in work-no-maintenance "Maintenance:"
# The reaper's and retention's first passes must come before the idle exit: a wide margin, as
# under ASan on a loaded machine they can take over a second.
check work-maintenance 0 "$cli" work --types orphan --handler echo --poll-interval 0.2 \
  --exit-when-idle 5
expect_in work-maintenance "Maintenance: stale-lock reaper every 1m (stale after 30m)"
expect_in work-maintenance "gone"
expect_in work-maintenance "completed 1,"
sql "UPDATE $schema.job_queue SET finished_at = now() - interval '10 days' WHERE job_type = 'orphan'" >/dev/null
check work-retention 0 "$cli" work --types orphan --handler echo --poll-interval 0.2 \
  --exit-when-idle 5 --completed-older-than 216h
[ "$(sql "SELECT count(*) FROM $schema.job_queue WHERE job_type = 'orphan'")" = 0 ] ||
  { echo "FAIL work-retention: the finished orphan job is still there"; fails=$((fails+1)); }
check work-stale-too-short 64 "$cli" work --types orphan --handler noop --stale-after 50s
expect_in work-stale-too-short "more than twice --heartbeat-interval"
check work-stale-ok 0 "$cli" work --types orphan --handler noop --stale-after 50s \
  --heartbeat-interval 20s --exit-when-idle 0.2

# A schema never migrated: the worker stops with the reason instead of retrying forever.
check work-unmigrated 1 timeout 60 "$cli" work --schema "${schema}_never" --types t --handler echo \
  --no-maintenance --exit-when-idle 30
expect_in work-unmigrated "run \`jobqueue migrate\` first"

# No database configured: a configuration error (78), not a crash.
check no-db 78 env -i PATH="$PATH" HOME="$dir" "$cli" stats

echo "pg_cli_test: $fails failure(s)"
[ "$fails" -eq 0 ]
