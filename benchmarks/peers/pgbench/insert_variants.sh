#!/usr/bin/env bash
# What a one-row insert into our job_queue costs beyond a plain table with the same columns:
# pgbench (one client, -M prepared) inserts the row `jobqueue enqueue` would write into
#   full    a fresh `jobqueue migrate` schema (trigger, CHECK constraints, all indexes)
#   plain   the same columns, primary key and claim index only
#   checks  plain + the five CHECK constraints
#   status  plain + the status CHECK only
#   merged  plain + the five checks as one constraint
#   trigger plain + the notify trigger
#   indexes plain + the three other partial indexes
# and prints the average latency of each, in interleaved rounds (the machine is noisy).
#
#   eval "$(scripts/services env)"
#   benchmarks/peers/pgbench/insert_variants.sh [ROUNDS=3] [SECONDS=5]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
rounds=${1:-3}
seconds=${2:-5}
cli=${JOBQUEUE_CLI:-$root/build/examples/jobqueue}
[[ -x $cli ]] || { echo "insert_variants: build the CLI first ($cli)" >&2; exit 1; }
: "${DATABASE_URL:?eval \"\$(scripts/services env)\" first}"
PG_BIN=${JOBQUEUE_PG_BIN:-/usr/lib/postgresql/15/bin}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c 'SET client_min_messages = warning' "$@"; }

variants=(full plain checks status merged trigger indexes)
cleanup() { for v in "${variants[@]}"; do psql_ -c "DROP SCHEMA IF EXISTS iv_$v CASCADE"; done; }
cleanup
JOBQUEUE_SCHEMA=iv_full "$cli" migrate >/dev/null
for v in plain checks status merged trigger indexes; do
  psql_ -c "CREATE SCHEMA iv_$v" \
    -c "CREATE TABLE iv_$v.job_queue (LIKE iv_full.job_queue INCLUDING DEFAULTS)" \
    -c "CREATE SEQUENCE iv_$v.seq OWNED BY iv_$v.job_queue.id" \
    -c "ALTER TABLE iv_$v.job_queue ALTER id SET DEFAULT nextval('iv_$v.seq'), ADD PRIMARY KEY (id)" \
    -c "CREATE INDEX ON iv_$v.job_queue (queue, priority, run_at, id) WHERE status = 'pending'"
done
checks="status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')"
lengths="char_length(queue) BETWEEN 1 AND 128 AND char_length(job_type) BETWEEN 1 AND 128"
psql_ -c "ALTER TABLE iv_checks.job_queue ADD CHECK ($checks), ADD CHECK (attempts >= 0),
            ADD CHECK (max_attempts >= 1), ADD CHECK (char_length(queue) BETWEEN 1 AND 128),
            ADD CHECK (char_length(job_type) BETWEEN 1 AND 128)" \
  -c "ALTER TABLE iv_status.job_queue ADD CHECK ($checks)" \
  -c "ALTER TABLE iv_merged.job_queue ADD CHECK ($checks AND attempts >= 0 AND max_attempts >= 1
            AND $lengths)" \
  -c "CREATE TRIGGER job_queue_notify AFTER INSERT ON iv_trigger.job_queue
        FOR EACH STATEMENT EXECUTE FUNCTION iv_full.job_queue_notify()" \
  -c "CREATE INDEX ON iv_indexes.job_queue (heartbeat_at) WHERE status = 'processing'" \
  -c "CREATE INDEX ON iv_indexes.job_queue (finished_at)
        WHERE status IN ('completed', 'failed', 'cancelled')" \
  -c "CREATE UNIQUE INDEX ON iv_indexes.job_queue (queue, dedupe_key)
        WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'processing')"

for v in "${variants[@]}"; do
  cat >"$work/$v.sql" <<EOF
\\set n random(1, 1000000000)
INSERT INTO iv_$v.job_queue (queue, job_type, payload, priority, run_at, max_attempts)
VALUES ('default', 'bench', jsonb_build_object('n', CAST(:n AS bigint), 's', 'hello world'), 0,
        now(), 5) RETURNING id;
EOF
done
printf '%-8s' round
printf ' %8s' "${variants[@]}"
printf '   (ms per insert)\n'
for ((r = 1; r <= rounds; r++)); do
  printf '%-8s' "$r"
  for v in "${variants[@]}"; do
    ms=$("$PG_BIN/pgbench" -n -M prepared -c 1 -T "$seconds" -f "$work/$v.sql" "$DATABASE_URL" 2>&1 |
      sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p')
    printf ' %8s' "${ms:-?}"
  done
  printf '\n'
done
cleanup
