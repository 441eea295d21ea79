#!/usr/bin/env bash
# The Postgres benchmarks, ours and the Node peers', run small: a change that breaks one fails
# here instead of in the next scripts/bench-pg. Figures are not checked (speed belongs in the
# benchmark runs): each measurement must finish and print its line for the jobs asked for, and
# the peers' own checks (every job inserted, every job completed) must pass.
set -u
e2e=${PG_E2E:?}
: "${DATABASE_URL:?run eval \"\$(scripts/services env)\"}"
source "$(dirname "$0")/../cli/lib.sh"
peers=$(cd "$(dirname "$0")/../../benchmarks/peers" && pwd)

check insert 0 "$e2e" --only insert --jobs 3000
expect_in insert '"what":"insert chunks=1000","jobs":3000,'
check insert-2-warm 0 "$e2e" --only insert-2 --jobs 3000 --warm
expect_in insert-2-warm '"what":"insert chunks=1000, 2 threads, warm pool","jobs":3000,'
check insert-backlog 0 "$e2e" --only insert --jobs 2000 --backlog 1000
expect_in insert-backlog '"what":"insert chunks=1000, backlog 1000","jobs":2000,'
# The warm pass's TRUNCATE would take the backlog with it.
check warm-and-backlog 1 "$e2e" --only insert --warm --backlog 10
expect_in warm-and-backlog "--warm and --backlog do not go together"
check send 0 "$e2e" --only send --seq-jobs 300
expect_in send '"what":"send one at a time","jobs":300,'
check send-paired-ours 0 "$e2e" --only send-paired --send-seconds 1 --paired-raw-ours
expect_in send-paired-ours '"what":"send paired with our insert by libpq, 1 thread"'
check work 0 "$e2e" --only work --jobs 3000 --concurrency 4 --batch 500 --dispatchers 2
expect_in work '"jobs":3000,'
check work-short 0 "$e2e" --only work --jobs 3000 --concurrency 4 --batch 500 \
  --transaction-budget-ms 200
expect_in work-short 'transaction_budget=200ms","jobs":3000,'

for measurement in insert insert-warm work-5000x4; do
  check "pg-boss $measurement" 0 node "$peers/pgboss.mjs" --jobs 2000 --only "$measurement"
  expect_in "pg-boss $measurement" '"jobs":2000,'
done
for measurement in addJobs addJobs-warm run-c10-lq500; do
  check "graphile $measurement" 0 node "$peers/graphile.mjs" --jobs 2000 --only "$measurement"
  expect_in "graphile $measurement" '"jobs":2000,'
done

if ((fails > 0)); then
  echo "$fails checks failed"
  exit 1
fi
echo "all checks passed"
