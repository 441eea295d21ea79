#!/usr/bin/env bash
# The throwaway comparison behind docs/benchmarks.md, "Claims as HOT updates (tried, not
# taken)": builds pg_e2e with hot-claims.patch applied in a temporary worktree and runs it
# interleaved with build-bench's pg_e2e (main). Needs the servers of scripts/services and a
# built build-bench/. The patch applies to the queue_sql.cc of commit e6c9c5b and later ones
# that leave its statements alone. Usage: hot-claims.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
base=build-bench/benchmarks/pg_e2e
[[ -x $base ]] || { echo "hot-claims: build $base first (docs/benchmarks.md)" >&2; exit 1; }
tree=$(mktemp -d /tmp/hot-claims.XXXXXX)
trap 'git worktree remove --force "$tree"' EXIT
git worktree add -q --detach "$tree" HEAD
git -C "$tree" apply "$PWD/benchmarks/experiments/hot-claims.patch"
cmake -S "$tree" -B "$tree/build" -DCMAKE_BUILD_TYPE=Release -DJOBQUEUE_BUILD_TESTS=OFF >/dev/null
cmake --build "$tree/build" -j2 --target pg_e2e >/dev/null
hot=$tree/build/benchmarks/pg_e2e
eval "$(scripts/services env)"
rate() { "$@" 2>/dev/null | grep -o '"jobs_per_s":[0-9]*' | cut -d: -f2; }
for ((r = 1; r <= rounds; r++)); do
  for cfg in "--batch 1000 --dispatchers 1" "--batch 2000 --dispatchers 2"; do
    for ff in 50 100; do
      # shellcheck disable=SC2086
      echo "round $r, work 100000 $cfg, HOT claims at fillfactor $ff: $(FF=$ff rate "$hot" --only work --jobs 100000 --concurrency 8 $cfg)"
    done
    # shellcheck disable=SC2086
    echo "round $r, work 100000 $cfg, main: $(rate "$base" --only work --jobs 100000 --concurrency 8 $cfg)"
  done
  echo "round $r, insert 20000, HOT claims at fillfactor 50: $(FF=50 rate "$hot" --only insert --jobs 20000)"
  echo "round $r, insert 20000, main: $(rate "$base" --only insert --jobs 20000)"
done
