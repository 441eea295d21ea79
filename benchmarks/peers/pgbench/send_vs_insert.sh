#!/usr/bin/env bash
# One-at-a-time enqueue against pgbench's one-row insert ceiling, interleaved: each round runs
# pgbench (insert1.sql on bench_raw.job_queue, -M prepared) and then `pg_e2e --only send`
# (1 client) or `send-8` (8), SECONDS each, and prints both rates and our share. fsync speed on
# this machine drifts by 4x within an hour, so a ratio taken minutes apart (as in one
# scripts/bench-pg run) can mislead; back-to-back pairs keep both sides under the same disk.
# `pg_e2e --only send-paired` (and send-paired-8) alternates 100 ms blocks in one process: steadier.
#
#   eval "$(scripts/services env)"
#   benchmarks/peers/pgbench/send_vs_insert.sh [CLIENTS=1] [ROUNDS=5] [SECONDS=5]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
clients=${1:-1}
rounds=${2:-5}
seconds=${3:-5}
case $clients in
  1) only=send ;;
  8) only=send-8 ;;
  *) echo "send_vs_insert: CLIENTS must be 1 or 8" >&2; exit 64 ;;
esac
e2e=${JOBQUEUE_PG_E2E:-$root/build-bench/benchmarks/pg_e2e}
[[ -x $e2e ]] || { echo "send_vs_insert: build pg_e2e first ($e2e)" >&2; exit 1; }
: "${DATABASE_URL:?eval \"\$(scripts/services env)\" first}"
PG_BIN=${JOBQUEUE_PG_BIN:-/usr/lib/postgresql/15/bin}
sql_dir=$root/benchmarks/peers/pgbench

psql -X -q -v ON_ERROR_STOP=1 -v rows=0 -f "$sql_dir/setup.sql" "$DATABASE_URL" >/dev/null
printf '%-6s %12s %12s %7s   (jobs/s, %s client(s), %ss each)\n' round pgbench libjobqueue share \
  "$clients" "$seconds"
shares=()
for ((r = 1; r <= rounds; r++)); do
  tps=$("$PG_BIN/pgbench" -n -M prepared -c "$clients" -j "$((clients < 2 ? clients : 2))" \
    -T "$seconds" -f "$sql_dir/insert1.sql" "$DATABASE_URL" 2>&1 |
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
  ours=$("$e2e" --only "$only" --send-seconds "$seconds" 2>/dev/null |
    sed -n 's/.*"jobs_per_s":\([0-9]*\).*/\1/p')
  share=$(awk -v a="$ours" -v b="$tps" 'BEGIN { printf "%.0f%%", 100 * a / b }')
  shares+=("${share%\%}")
  printf '%-6s %12.0f %12s %7s\n' "$r" "$tps" "$ours" "$share"
done
printf '%s\n' "${shares[@]}" | sort -n |
  awk '{ v[NR] = $1 } END { printf "median share %s%% (min %s%%, max %s%%)\n", v[int((NR + 1) / 2)], v[1], v[NR] }'
