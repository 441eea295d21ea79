#!/usr/bin/env bash
# jobqueue config: masked output, verdicts and exit codes, run as an operator would.
set -u
cli=${JOBQUEUE_CLI:?}
source "$(dirname "$0")/lib.sh"

dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
base=(env -i PATH="$PATH" HOME="$dir")
db='postgresql://app:db-PASSWORD-LEAK@127.0.0.1:5432/app'

check usage 64 "$cli"
check unknown-command 64 "$cli" frobnicate
check missing-service 64 "$cli" config
check unknown-flag 64 "$cli" config --service api --bogus

cd "$dir"
check pass 0 "${base[@]}" DATABASE_URL="$db" "$cli" config --service api
expect_in pass "scope check: PASS"
expect_in pass "postgresql://app:****@127.0.0.1:5432/app"
expect_not_in pass "db-PASSWORD-LEAK"

check dev-violation 77 "${base[@]}" DATABASE_URL="$db" JUDIT_API_KEY=judit-KEY-LEAK "$cli" config --service api
expect_in dev-violation "scope check: FAIL"
expect_in dev-violation "JUDIT_API_KEY"
expect_not_in dev-violation "judit-KEY-LEAK"

check prod-violation 77 "${base[@]}" ENVIRONMENT=prod DATABASE_URL="$db" JUDIT_API_KEY=judit-KEY-LEAK "$cli" config --service api
expect_in prod-violation "refuses to start in prod"
expect_not_in prod-violation "judit-KEY-LEAK"

check worker-may-hold 0 "${base[@]}" ENVIRONMENT=prod DATABASE_URL="$db" JUDIT_API_KEY=judit-KEY-LEAK "$cli" config --service worker --json
expect_in worker-json '"verdict":"pass"'
expect_in worker-json '"name":"JUDIT_API_KEY","value":"[redacted]"'
expect_not_in worker-json "judit-KEY-LEAK"
expect_not_in worker-json "db-PASSWORD-LEAK"

check config-error 78 "${base[@]}" DATABASE_URL="$db" WORKER_POLL_INTERVAL=-3 "$cli" config --service worker
expect_in config-error "WORKER_POLL_INTERVAL"

check missing-vars 78 "${base[@]}" SUPABASE_MODE=dev "$cli" config --service api
expect_in missing-vars "missing required variables: SUPABASE_DB_URL_DEV, SUPABASE_SERVICE_ROLE_KEY_DEV, SUPABASE_URL_DEV"

# A typo in --env-dir is an error, not an empty configuration.
check config-help 0 "$cli" config --help
expect_in config-help "usage: jobqueue config --service NAME"
check missing-env-dir 78 "${base[@]}" DATABASE_URL="$db" "$cli" config --service api --env-dir "$dir/nope"
expect_in missing-env-dir "nope"
# A violation is reported (77) even when something else is wrong too.
check violation-and-missing 77 "${base[@]}" ENVIRONMENT=prod JUDIT_API_KEY=judit-KEY-LEAK "$cli" config --service api
expect_in violation-and-missing "JUDIT_API_KEY"
expect_in violation-and-missing "DATABASE_URL"
expect_not_in violation-and-missing "judit-KEY-LEAK"
# Secrets the manifest does not list by name are still masked in the report; the generic
# patterns scope them (AWS_SECRET_ACCESS_KEY is not the API's).
check unlisted-secrets 77 "${base[@]}" DATABASE_URL="$db" AWS_SECRET_ACCESS_KEY=aws-LEAK API_KEY=api-LEAK \
  DIRECT_URL=postgresql://u:direct-LEAK@h/db "$cli" config --service api
expect_in unlisted-secrets "AWS_SECRET_ACCESS_KEY outside its scope"
expect_not_in unlisted-secrets "LEAK"

printf 'DATABASE_URL=%s\nJUDIT_API_KEY=from-FILE-LEAK\n' "$db" > "$dir/.env.local"; chmod 600 "$dir/.env.local"
check env-file 77 "${base[@]}" "$cli" config --service api --env-dir "$dir"
expect_in env-file "JUDIT_API_KEY"
expect_in env-file ".env.local"
expect_not_in env-file "from-FILE-LEAK"

if [ "$fails" -eq 0 ]; then echo "config CLI: all checks passed"; exit 0; fi
echo "config CLI: $fails checks failed"; exit 1
