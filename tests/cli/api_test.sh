#!/usr/bin/env bash
# The example HTTP API (jobqueue-api) against the real local Postgres and Redis, driven with
# curl: health, enqueue, dedupe, lookup, counts, a BullMQ add, bad input (nothing written),
# secret scope, SIGTERM.
set -u
api=${JOBQUEUE_API:?}
cli=${JOBQUEUE_CLI:?}
: "${DATABASE_URL:?run eval \"\$(scripts/services env)\"}"
: "${REDIS_URL:?run eval \"\$(scripts/services env)\"}"
source "$(dirname "$0")/lib.sh"
sql() { psql "$DATABASE_URL" -XAtq -c "$1"; }

schema="api_$$"
bq="api-bull-$$"
export JOBQUEUE_SCHEMA=$schema
dir=$(mktemp -d)
pid=''
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null
  sql "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1
  redis-cli -u "$REDIS_URL" --no-auth-warning --scan --pattern "bull:$bq:*" 2>/dev/null |
    xargs -r redis-cli -u "$REDIS_URL" --no-auth-warning DEL >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir"  # no stray .env files

# Runs COMMAND (which starts the API) in the background with a fresh log, so an earlier
# instance's Listening line cannot count; sets pid and base (http://127.0.0.1:PORT).
launch_api() {
  : >"$dir/api.log"
  "$@" >"$dir/api.log" 2>&1 &
  pid=$!
  base=''
  for _ in $(seq 100); do
    base=$(sed -n 's/.*Listening on \(http:[^ ]*\).*/\1/p' "$dir/api.log")
    [ -n "$base" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "FAIL start: no Listening line"; cat "$dir/api.log"; fails=$((fails + 1))
  return 1
}
# Starts the API on a free port with the given extra settings (NAME=VALUE...).
start_api() { launch_api env PORT=0 LOG_FORMAT=text LOG_LEVEL=info "$@" "$api"; }
# http NAME EXPECTED_CODE CURL_ARGS... ; body in $out
http() {
  local name=$1 want=$2; shift 2
  local code
  code=$(curl -s --max-time 10 -o "$dir/body" -w '%{http_code}' "$@")
  out=$(cat "$dir/body")
  if [ "$code" != "$want" ]; then echo "FAIL $name: HTTP $code, want $want"; echo "$out"; fails=$((fails + 1)); fi
}
jobs_count() { sql "SELECT count(*) FROM $schema.job_queue"; }

check migrate 0 "$cli" migrate
start_api BULL_QUEUES="other, $bq" || exit 1
out=$(cat "$dir/api.log")
expect_in startup "Starting API (env=dev)"
expect_in startup "Schema: $schema"

http healthz 200 "$base/healthz"
expect_in healthz '{"status":"ok","schema_version":5}'

json=(-H 'Content-Type: application/json')
http enqueue 201 -X POST "${json[@]}" \
  --data '{"file": "a.csv"}' "$base/jobs/ingest_csv?priority=-1&max_attempts=3"
id=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' <<<"$out")
expect_in enqueue '"inserted":true'
http get 200 "$base/jobs/$id"
expect_in get '"job_type":"ingest_csv"'
expect_in get '"payload":{"file": "a.csv"}'
expect_in get '"status":"pending","priority":-1'
expect_in get '"max_attempts":3'

http dedupe-first 201 -X POST "${json[@]}" --data '{"case": 7}' \
  "$base/jobs/enforcement_drafting?dedupe_key=case-7"
first=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' <<<"$out")
http dedupe-second 200 -X POST "${json[@]}" --data '{"case": 7}' \
  "$base/jobs/enforcement_drafting?dedupe_key=case-7"
expect_in dedupe-second "{\"id\":$first,\"inserted\":false}"

http delayed 201 -X POST --data "" "$base/jobs/later?delay=90s&queue=slow"
delayed=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' <<<"$out")
[ "$(sql "SELECT queue, payload::text, run_at > now() + interval '80 seconds' FROM $schema.job_queue WHERE id = $delayed")" = "slow|{}|t" ] ||
  { echo "FAIL delayed: queue, empty payload or run_at"; fails=$((fails + 1)); }

before=$(jobs_count)
head -c 1100000 /dev/zero | tr '\0' '1' >"$dir/huge.json"  # over the 1 MiB limit
http bad-json 400 -X POST "${json[@]}" --data '{"file": ' "$base/jobs/ingest_csv"
expect_in bad-json '"error":'
http bad-type 400 -X POST "${json[@]}" --data '{}' "$base/jobs/bad%20type%27%3B"
http long-type 400 -X POST "${json[@]}" --data '{}' "$base/jobs/$(printf 't%.0s' $(seq 200))"
http negative-delay 400 -X POST "${json[@]}" --data '{}' "$base/jobs/t?delay=-5"
http bad-delay 400 -X POST "${json[@]}" --data '{}' "$base/jobs/t?delay=soon"
http nan-delay 400 -X POST "${json[@]}" --data '{}' "$base/jobs/t?delay=nan"
http bad-priority 400 -X POST "${json[@]}" --data '{}' "$base/jobs/t?priority=high"
http zero-attempts 400 -X POST "${json[@]}" --data '{}' "$base/jobs/t?max_attempts=0"
http bad-queue 400 -X POST "${json[@]}" --data '{}' "$base/jobs/t?queue=a%20b"
# A form-encoded body (curl's default) is refused, not read as options.
http form-body 415 -X POST --data 'priority=5&queue=x' "$base/jobs/t"
http huge-body 413 -X POST "${json[@]}" --data-binary "@$dir/huge.json" "$base/jobs/t"
# httplib bounds only Content-Length bodies: chunked and compressed ones are refused unread
# (a 150 KB gzip body used to inflate to 150 MB in memory).
head -c 3000000 /dev/zero | tr '\0' '1' | gzip >"$dir/bomb.gz"
http gzip-body 415 -X POST "${json[@]}" -H 'Content-Encoding: gzip' --data-binary "@$dir/bomb.gz" \
  "$base/jobs/t"
http chunked-body 411 -X POST "${json[@]}" -H 'Transfer-Encoding: chunked' \
  --data-binary "@$dir/huge.json" "$base/jobs/t"
expect_in chunked-body 'Content-Length'
# raw NAME REQUEST: sends REQUEST (printf escapes) in one write on one connection; all replies
# until the server closes it in $out.
raw() {
  out=$(printf "$2" | /usr/bin/python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(sys.stdin.buffer.read())
got = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
sys.stdout.write(got.decode("latin-1"))' "${base##*:}")
}
# A refused request's unread body never runs as a request of its own: the connection ends.
inner='POST /jobs/smuggled HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}'
raw smuggle-415 "POST /jobs/t HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 90\r\n\r\n$inner"
expect_in smuggle-415 'HTTP/1.1 415'
expect_not_in smuggle-415 'HTTP/1.1 201'
raw smuggle-411 "POST /jobs/t HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n$inner"
expect_in smuggle-411 'HTTP/1.1 411'
expect_not_in smuggle-411 'HTTP/1.1 201'
# Asked first, a refusal comes instead of 100 Continue (told to go on, curl could still be
# sending its body when the refusal closed the connection, and see a reset, not the reply).
raw expect-411 "POST /jobs/t HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
expect_in expect-411 'HTTP/1.1 411'
expect_not_in expect-411 'HTTP/1.1 100'
raw expect-413 "POST /jobs/t HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\nExpect: 100-continue\r\n\r\n"
expect_in expect-413 'HTTP/1.1 413'
expect_not_in expect-413 'HTTP/1.1 100'
raw bad-length "POST /jobs/t HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n$inner"
expect_in bad-length 'HTTP/1.1 400'
expect_not_in bad-length 'HTTP/1.1 201'
raw two-lengths "POST /jobs/t HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 90\r\n\r\n{}"
expect_in two-lengths 'HTTP/1.1 400'
# httplib reads a DELETE body without Content-Length until the client closes: refused unread.
raw delete-405 "DELETE /jobs/1 HTTP/1.1\r\nHost: x\r\n\r\nstill sending"
expect_in delete-405 'HTTP/1.1 405'
[ "$(sql "SELECT count(*) FROM $schema.job_queue WHERE job_type = 'smuggled'")" = 0 ] ||
  { echo "FAIL a refused request's body ran as a request"; fails=$((fails + 1)); }
[ "$(jobs_count)" = "$before" ] || { echo "FAIL bad input wrote rows"; fails=$((fails + 1)); }

# Media types are case-insensitive.
http mixed-case-type 201 -X POST -H 'Content-Type: Application/JSON; charset=utf-8' --data '{}' \
  "$base/jobs/t"
http unknown-job 404 "$base/jobs/999999999"
expect_in unknown-job 'does not exist'
http unknown-path 404 "$base/nope"
expect_in unknown-path '"error":"HTTP 404"'

http stats 200 "$base/stats"
expect_in stats '{"queue":"default","job_type":"ingest_csv","status":"pending","count":1}'
expect_in stats '{"queue":"default","job_type":"enforcement_drafting","status":"pending","count":1}'

# BullMQ: a job as a Node producer would add it, only to the queues in BULL_QUEUES.
opts='%7B%22jobId%22%3A%22fixed-1%22%2C%22attempts%22%3A3%7D'  # {"jobId":"fixed-1","attempts":3}
http bull-add 201 -X POST "${json[@]}" --data '{"to": "ops@example.com"}' \
  "$base/bull/$bq/send_email?opts=$opts"
expect_in bull-add '{"id":"fixed-1"}'
check bull-get 0 "$cli" bull get --queue "$bq" fixed-1
expect_in bull-get '"name":"send_email"'
expect_in bull-get '"data":"{\"to\": \"ops@example.com\"}"'
expect_in bull-get '\"attempts\":3'
http bull-unlisted 404 -X POST "${json[@]}" --data '{}' "$base/bull/elsewhere/send_email"
expect_in bull-unlisted 'BULL_QUEUES'
http bull-bad-opts 400 -X POST "${json[@]}" --data '{}' "$base/bull/$bq/x?opts=%7B%22bogus%22%3A1%7D"
http bull-bad-data 400 -X POST "${json[@]}" --data '{"to": ' "$base/bull/$bq/x"
check bull-counts 0 "$cli" bull counts --queue "$bq" --json
expect_in bull-counts '"waiting":1'

# The worker drains what the API enqueued.
check work 0 "$cli" work --types ingest_csv,enforcement_drafting --handler echo --exit-when-idle 0.5
http done 200 "$base/jobs/$id"
expect_in done '"status":"completed"'
expect_in done '"result":{"file": "a.csv"}'

kill -TERM "$pid"
wait "$pid"
code=$?
pid=''
[ "$code" = 0 ] || { echo "FAIL sigterm: exit $code"; fails=$((fails + 1)); }
out=$(cat "$dir/api.log")
expect_in sigterm "API stopped"

# A client that never finishes its request does not hold up shutdown past SHUTDOWN_TIMEOUT.
start_api SHUTDOWN_TIMEOUT=1s || exit 1
port=${base##*:}
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'POST /jobs/t HTTP/1.1\r\nHost: x\r\n' >&3
(for _ in $(seq 60); do printf 'X-Slow: 1\r\n' >&3 2>/dev/null || exit 0; sleep 0.5; done) &
trickle=$!
sleep 1
kill -TERM "$pid"
stopped=0
# Well past SHUTDOWN_TIMEOUT on a loaded machine, yet well before the client's 30 s trickle
# would end by itself.
for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || { stopped=1; break; }; sleep 0.1; done
if [ "$stopped" = 1 ]; then
  wait "$pid"; code=$?
  [ "$code" = 0 ] || { echo "FAIL slow-client shutdown: exit $code"; fails=$((fails + 1)); }
else
  echo "FAIL slow-client shutdown: still running 20 s after SIGTERM"; fails=$((fails + 1))
fi
pid=''
kill "$trickle" 2>/dev/null; wait "$trickle" 2>/dev/null
exec 3>&-
out=$(cat "$dir/api.log")
expect_in slow-client-shutdown "SHUTDOWN_TIMEOUT"
expect_in slow-client-shutdown "API stopped"

# Settings come from a .env file like the rest of the configuration.
mkdir "$dir/envdir"
printf 'JOBQUEUE_SCHEMA=%s\nPORT=0\n' "$schema" >"$dir/envdir/.env"
launch_api env -C "$dir/envdir" -u JOBQUEUE_SCHEMA LOG_FORMAT=text "$api" || exit 1
out=$(cat "$dir/api.log")
expect_in dotenv-settings "Schema: $schema"
expect_not_in dotenv-settings ":8080"
kill -TERM "$pid" 2>/dev/null; wait "$pid"; pid=''

# Not migrated: the health check says so and the service stays up.
JOBQUEUE_SCHEMA=api_never_migrated_$$ start_api || exit 1
http unmigrated 503 "$base/healthz"
expect_in unmigrated '"status":"unavailable"'
expect_in unmigrated 'jobqueue migrate'
kill -TERM "$pid"; wait "$pid"; pid=''

# A database that refuses the role (permissions changed under a running service): still 503,
# which load balancers act on, not 500.
np_role="api_np_$$"
sql "CREATE ROLE $np_role LOGIN PASSWORD 'np-pw'" >/dev/null
sql "CREATE SCHEMA IF NOT EXISTS $schema" >/dev/null
DATABASE_URL="postgresql://$np_role:np-pw@$PGHOST:$PGPORT/$PGDATABASE" start_api || exit 1
http refused-role 503 "$base/healthz"
expect_in refused-role '"status":"unavailable"'
kill -TERM "$pid"; wait "$pid"; pid=''
sql "DROP ROLE $np_role" >/dev/null

# A secret allowed in workers only keeps the API from starting in prod, and is never printed.
check prod-violation 77 timeout 10 env PORT=0 ENVIRONMENT=prod JUDIT_API_KEY=judit-KEY-LEAK "$api"
expect_in prod-violation "JUDIT_API_KEY"
expect_not_in prod-violation "judit-KEY-LEAK"
password=$(sed -n 's|^postgres[a-z]*://[^:]*:\([^@]*\)@.*|\1|p' <<<"$DATABASE_URL")
[ -z "$password" ] || expect_not_in prod-violation "$password"
check bad-port 78 timeout 10 env PORT=99999 "$api"

[ "$fails" = 0 ] && echo "api_test: all passed"
exit "$fails"
