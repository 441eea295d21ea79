#!/usr/bin/env bash
# What a one-row insert into our job_queue costs beyond a plain table with the same columns:
# pgbench (one client, -M prepared) inserts the row `jobqueue enqueue` would write into
#   full    a fresh `jobqueue migrate` schema (guard domains, all indexes), with the check for
#           waiting workers our enqueue statement makes in its RETURNING (the count migration 5
#           keeps in a sequence)
#   scan    the same, checking by a look at the waiters table (up to migration 4)
#   trig    the schema with the notify trigger migration 4 dropped, and no check of its own
#   plain   the same columns as plain text/integer, primary key and claim index only
#   checks  plain + the guards as five table CHECK constraints (migration 1's way)
#   status  plain + the status CHECK only
#   merged  plain + the five checks as one constraint
#   domains plain + the guards as domains (migration 2's way)
#   trigger plain + the notify trigger
#   indexes plain + the three other partial indexes
# and prints, ROUNDS times, each one's durable rate and its share of pgbench's insert1.sql on
# bench_raw.job_queue, all run in turn in 100 ms blocks for SECONDS by
# build/benchmarks/pg_statement_pairs (the disk's speed drifts too fast for separate runs), then
# the server's CPU time per insert (the backend's user+system time over N inserts with
# synchronous_commit off, read from the postmaster's reaped-children times).
#
#   eval "$(scripts/services env)"
#   benchmarks/peers/pgbench/insert_variants.sh [ROUNDS=3] [SECONDS=20] [N=20000]
#
# SECONDS=0 skips the durable rounds; N=0 the CPU rounds.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
rounds=${1:-3}
seconds=${2:-20}
inserts=${3:-20000}
cli=${JOBQUEUE_CLI:-$root/build/examples/jobqueue}
[[ -x $cli ]] || { echo "insert_variants: build the CLI first ($cli)" >&2; exit 1; }
pairs=${JOBQUEUE_STATEMENT_PAIRS:-$root/build/benchmarks/pg_statement_pairs}
[[ -x $pairs ]] || { echo "insert_variants: build pg_statement_pairs first ($pairs)" >&2; exit 1; }
: "${DATABASE_URL:?eval \"\$(scripts/services env)\" first}"
PG_BIN=${JOBQUEUE_PG_BIN:-/usr/lib/postgresql/15/bin}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c 'SET client_min_messages = warning' "$@"; }

variants=(full scan trig plain checks status merged domains trigger indexes)
cleanup() {
  for v in "${variants[@]}"; do psql_ -c "DROP SCHEMA IF EXISTS iv_$v CASCADE"; done
  psql_ -c "DROP SCHEMA IF EXISTS bench_raw CASCADE"
}
cleanup
psql -X -q -v ON_ERROR_STOP=1 -v rows=0 -f "$root/benchmarks/peers/pgbench/setup.sql" \
  "$DATABASE_URL" >/dev/null
for v in full scan trig; do JOBQUEUE_SCHEMA=iv_$v "$cli" migrate >/dev/null; done
psql_ -c "CREATE TRIGGER job_queue_notify AFTER INSERT ON iv_trig.job_queue
            FOR EACH STATEMENT EXECUTE FUNCTION iv_trig.job_queue_notify()"
for v in plain checks status merged domains trigger indexes; do
  psql_ -c "CREATE SCHEMA iv_$v" \
    -c "CREATE TABLE iv_$v.job_queue (LIKE iv_full.job_queue INCLUDING DEFAULTS)" \
    -c "ALTER TABLE iv_$v.job_queue ALTER status TYPE text, ALTER queue TYPE text,
          ALTER job_type TYPE text, ALTER attempts TYPE integer, ALTER max_attempts TYPE integer" \
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
  -c "ALTER TABLE iv_domains.job_queue ALTER status TYPE iv_full.job_status,
        ALTER queue TYPE iv_full.job_name, ALTER job_type TYPE iv_full.job_name,
        ALTER attempts TYPE iv_full.job_attempts, ALTER max_attempts TYPE iv_full.job_max_attempts" \
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
  returning=id
  [[ $v == full ]] && returning="id, (SELECT pg_notify('jobqueue_iv_full', '')
        WHERE pg_sequence_last_value('iv_full.job_queue_waiting'::regclass) > 0)"
  [[ $v == scan ]] && returning="id, (SELECT pg_notify('jobqueue_iv_scan', '')
        FROM iv_scan.job_queue_waiters LIMIT 1)"
  cat >"$work/$v.sql" <<EOF
\\set n random(1, 1000000000)
INSERT INTO iv_$v.job_queue (queue, job_type, payload, priority, run_at, max_attempts)
VALUES ('default', 'bench', jsonb_build_object('n', CAST(:n AS bigint), 's', 'hello world'), 0,
        now(), 5) RETURNING $returning;
EOF
  # The same statement for pg_statement_pairs, whose one parameter is the n.
  sed -e '1d' -e 's/:n/$1/' -e 's/;$//' "$work/$v.sql" >"$work/$v.pair.sql"
done
sed -e '/^--/d' -e '/^\\set/d' -e 's/:n/$1/' -e 's/;$//' \
  "$root/benchmarks/peers/pgbench/insert1.sql" >"$work/insert1.pair.sql"
pm=$(head -1 "${JOBQUEUE_STATE_DIR:-$root/.local}/pg/data/postmaster.pid")
reaped_ticks() { awk '{print $16 + $17}' "/proc/$pm/stat"; }
ticks_per_s=$(getconf CLK_TCK)
header() {
  printf '%-8s' round
  printf ' %8s' "${variants[@]}"
  printf '   (%s)\n' "$1"
}
for ((r = 1; r <= rounds && seconds > 0; r++)); do
  echo "round $r: durable one-row inserts, 100 ms blocks in turn for ${seconds}s (rate, share of insert1)"
  (cd "$work" && "$pairs" "$seconds" insert1.pair.sql "${variants[@]/%/.pair.sql}")
done
((inserts == 0)) || header "server CPU µs per insert, synchronous_commit off"
for ((r = 1; r <= rounds && inserts > 0; r++)); do
  printf '%-8s' "$r"
  for v in "${variants[@]}"; do
    before=$(reaped_ticks)
    PGOPTIONS='-c synchronous_commit=off' "$PG_BIN/pgbench" -n -M prepared -c 1 -t "$inserts" \
      -f "$work/$v.sql" "$DATABASE_URL" >/dev/null 2>&1
    sleep 0.3  # the backend exits and is reaped
    after=$(reaped_ticks)
    printf ' %8s' "$(((after - before) * 1000000 / ticks_per_s / inserts))"
  done
  printf '\n'
done
cleanup
