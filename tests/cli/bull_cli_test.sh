#!/usr/bin/env bash
# The jobqueue CLI's BullMQ subcommands against the real local Redis, on a queue of their own,
# run as an operator would.
set -u
cli=${JOBQUEUE_CLI:?}
: "${REDIS_URL:?run eval \"\$(scripts/services env)\"}"
source "$(dirname "$0")/lib.sh"

q="cli-bull-$$"
dir=$(mktemp -d)
cleanup() {
  redis-cli -u "$REDIS_URL" --no-auth-warning --scan --pattern "bull:$q:*" 2>/dev/null |
    xargs -r redis-cli -u "$REDIS_URL" --no-auth-warning DEL >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir"  # no stray .env files

check add 0 "$cli" bull add --queue "$q" --name echo --data '{"n":1}' --count 3
check pause 0 "$cli" bull pause --queue "$q"
expect_in pause "$q paused"
# Paused: the worker claims nothing and exits when idle.
check work-paused 0 "$cli" bull work --queue "$q" --handler echo --exit-when-idle 0.3
expect_in work-paused "completed 0"
check resume 0 "$cli" bull resume --queue "$q"
check work 0 "$cli" bull work --queue "$q" --handler echo --exit-when-idle 0.3
expect_in work "completed 3, failed 0"
check get 0 "$cli" bull get 1 --queue "$q"
expect_in get '"returnvalue":"{\"n\":1}"'
check add-fail 0 "$cli" bull add --queue "$q" --name boom --data '{}' --opts '{"attempts":2}'
check work-fail 0 "$cli" bull work --queue "$q" --handler 'fail:no disk' --exit-when-idle 0.3
expect_in work-fail "failed 1, retried 1"
check counts 0 "$cli" bull counts --queue "$q" --json
expect_in counts '"completed":3'
expect_in counts '"failed":1'
check clean 0 "$cli" bull clean --queue "$q" --state completed
expect_in clean "removed 3"
check clean-failed 0 "$cli" bull clean --queue "$q" --state failed --grace 1h
expect_in clean-failed "removed 0"
# Each command takes only its own flags: clean's is --limit, and --count must not be ignored.
check clean-count 64 "$cli" bull clean --queue "$q" --state failed --count 100
expect_in clean-count "count"
check add-fixed-id-twice 64 "$cli" bull add --queue "$q" --name x --opts '{"jobId":"x"}' --count 5
expect_in add-fixed-id-twice "jobId"

# Administration: listing, retry, promote, progress, logs, remove, drain, events.
q2="$q-admin"
trap 'cleanup; redis-cli -u "$REDIS_URL" --no-auth-warning --scan --pattern "bull:$q2:*" 2>/dev/null | xargs -r redis-cli -u "$REDIS_URL" --no-auth-warning DEL >/dev/null 2>&1' EXIT
# From the start of the (new) queue's stream, so the reader cannot miss the adds below.
"$cli" bull events --queue "$q2" --count 2 --from 0 >"$dir/events.out" 2>&1 &
events_pid=$!
check add-a 0 "$cli" bull add --queue "$q2" --name a --data '1' --opts '{"jobId":"a"}'
check add-d 0 "$cli" bull add --queue "$q2" --name d --data '2' --opts '{"jobId":"d","delay":600000}'
wait "$events_pid"
grep -q '"event":"added"' "$dir/events.out" && grep -q '"jobId":"a"' "$dir/events.out" ||
  { echo "FAIL events: $(cat "$dir/events.out")"; fails=$((fails + 1)); }
check jobs 0 "$cli" bull jobs --queue "$q2" --state delayed
expect_in jobs '"id":"d"'
check promote 0 "$cli" bull promote d --queue "$q2"
expect_in promote "promoted d"
check jobs-wait 0 "$cli" bull jobs --queue "$q2" --state wait --asc
expect_in jobs-wait '"id":"a"'
check progress 0 "$cli" bull progress a --queue "$q2" --data '{"pct":50}'
check log 0 "$cli" bull log a --queue "$q2" --line "step one"
expect_in log "lines 1"
check logs 0 "$cli" bull logs a --queue "$q2"
expect_in logs "step one"
check get-progress 0 "$cli" bull get a --queue "$q2"
expect_in get-progress '"progress":"{\"pct\":50}"'
check work-admin 0 "$cli" bull work --queue "$q2" --handler 'fail:nope' --exit-when-idle 0.3
check retry 0 "$cli" bull retry --queue "$q2"
expect_in retry "retried 2"
check remove 0 "$cli" bull remove a --queue "$q2"
check remove-again 1 "$cli" bull remove a --queue "$q2"
expect_in remove-again "no job a"
check drain 0 "$cli" bull drain --queue "$q2"
expect_in drain "removed 1"
check events-idle 0 "$cli" bull events --queue "$q2" --timeout 0.2
check bad-jobs-state 64 "$cli" bull jobs --queue "$q2" --state nope
check bad-progress 64 "$cli" bull progress d --queue "$q2" --data '{x'

# Bad input: clear errors and usage exit codes.
check bad-state 64 "$cli" bull clean --queue "$q" --state active
expect_in bad-state "cannot clean state"
check bad-handler 64 "$cli" bull work --queue "$q" --handler nope
expect_in bad-handler "unknown handler"
check bad-concurrency 64 "$cli" bull work --queue "$q" --concurrency 0
expect_in bad-concurrency "concurrency"
check bad-queue 64 "$cli" bull pause --queue "a:b"
expect_in bad-queue "may not contain ':'"
check stray-word 64 "$cli" bull counts --queue "$q" extra
expect_in stray-word 'unexpected argument "extra"'
check log-without-line 64 "$cli" bull log 1 --queue "$q"
expect_in log-without-line "--line"
check bad-prefetch 64 "$cli" bull work --queue "$q" --prefetch -5
expect_in bad-prefetch "got -5"
check help 0 "$cli" bull add --help
expect_in help "usage: jobqueue bull"
check no-redis 78 env -i PATH="$PATH" HOME="$dir" "$cli" bull counts --queue "$q"

echo "bull_cli_test: $fails failure(s)"
[ "$fails" -eq 0 ]
