// Shared helpers for the Postgres peer benchmarks (pgboss.mjs, graphile.mjs).
//
// Output contract: one JSON object per measurement on stdout, everything else on
// stderr. Every measurement runs under a hard timeout; on timeout or error the
// process exits non-zero (2 = timeout, 1 = error) without waiting for pools.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'

export const PAYLOAD_S = 'hello world'
export const payload = (i) => ({ n: i, s: PAYLOAD_S })

export function log (...args) {
  process.stderr.write(`[${new Date().toISOString().slice(11, 23)}] ${args.join(' ')}\n`)
}

export function die (msg, code = 1) {
  log(`error: ${msg}`)
  process.exit(code)
}

export function usage (script, measurements) {
  return `usage: node ${script} [--jobs N] [--seq-jobs N] [--only NAME] [--timeout SECONDS]
  --jobs N         jobs for the bulk insert and processing measurements (default 20000)
  --seq-jobs N     jobs for the one-at-a-time enqueue measurement (default min(2000, jobs))
  --only NAME      run one measurement: ${measurements.join(', ')}
  --timeout S      per-measurement timeout in seconds (default 30 + jobs/200)
env: DATABASE_URL (required)`
}

export function parseArgs (argv, script, measurements) {
  const opts = { jobs: 20000, seqJobs: null, only: null, timeout: null }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) die(`${a} needs a value\n${usage(script, measurements)}`, 64)
      return argv[++i]
    }
    const int = (v) => {
      const n = Number(v)
      if (!Number.isInteger(n) || n < 1) die(`${a}: expected a positive integer, got ${v}`, 64)
      return n
    }
    if (a === '--jobs') opts.jobs = int(next())
    else if (a === '--seq-jobs') opts.seqJobs = int(next())
    else if (a === '--only') opts.only = next()
    else if (a === '--timeout') opts.timeout = int(next())
    else if (a === '-h' || a === '--help') { process.stderr.write(usage(script, measurements) + '\n'); process.exit(0) }
    else die(`unknown argument ${a}\n${usage(script, measurements)}`, 64)
  }
  if (opts.seqJobs == null) opts.seqJobs = Math.min(2000, opts.jobs)
  if (opts.timeout == null) opts.timeout = Math.ceil(30 + opts.jobs / 200)
  if (opts.only && !measurements.includes(opts.only)) {
    die(`--only: unknown measurement ${opts.only} (one of: ${measurements.join(', ')})`, 64)
  }
  if (!process.env.DATABASE_URL) die('DATABASE_URL is not set (eval "$(scripts/services env)")', 64)
  return opts
}

// Installed version of a dependency (for the JSON lines).
export function pkgVersion (name) {
  const require = createRequire(import.meta.url)
  const pj = require.resolve(`${name}/package.json`)
  return JSON.parse(readFileSync(pj, 'utf8')).version
}

export const now = () => performance.now()
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Runs fn under a hard deadline. On timeout: log, exit 2 (pools may be stuck, so
// don't try to clean up). On error: log, exit 1.
export async function withTimeout (name, seconds, fn) {
  const timer = setTimeout(() => {
    log(`${name}: timed out after ${seconds} s`)
    process.exit(2)
  }, seconds * 1000)
  try {
    return await fn()
  } catch (err) {
    log(`${name}: failed: ${err && err.stack ? err.stack : err}`)
    process.exit(1)
  } finally {
    clearTimeout(timer)
  }
}

// Emit one result line on stdout.
export function emit (fields) {
  const { jobs, seconds } = fields
  const out = {
    ...fields,
    seconds: Number(seconds.toFixed(4)),
    jobs_per_s: Math.round(jobs / seconds)
  }
  process.stdout.write(JSON.stringify(out) + '\n')
  log(`${fields.peer} | ${fields.what} | ${jobs} jobs in ${out.seconds} s = ${out.jobs_per_s} jobs/s`)
  return out
}

// Polls isDone() every intervalMs until it returns true; reports progress
// (progress() -> number) to stderr about once a second.
export async function pollUntil (isDone, { intervalMs = 20, progress = null, label = '' } = {}) {
  let lastReport = now()
  for (;;) {
    if (await isDone()) return
    if (progress && now() - lastReport >= 1000) {
      lastReport = now()
      log(`${label} progress: ${progress()}`)
    }
    await sleep(intervalMs)
  }
}

export function chunks (total, size) {
  const out = []
  for (let start = 0; start < total; start += size) out.push([start, Math.min(total, start + size)])
  return out
}

// Waits, at most a minute, until no autovacuum worker runs: one left busy by an earlier
// measurement takes a core of this 2-core machine from the next. pg_e2e's FreshQueue does the
// same before each of ours.
export async function waitForAutovacuum (client) {
  const { rows } = await client.query("SELECT pg_has_role('pg_read_all_stats', 'USAGE') AS sees")
  if (!rows[0].sees) {
    log('this role cannot see autovacuum workers (needs pg_read_all_stats): not waiting')
    return
  }
  await client.query(`DO $$ BEGIN
  FOR i IN 1..300 LOOP
    PERFORM pg_stat_clear_snapshot();
    EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'autovacuum worker');
    PERFORM pg_sleep(0.2);
  END LOOP;
END $$`)
}

// Between a warm measurement's untimed pass and its timed one: the table emptied, its stats
// taken again (TRUNCATE keeps the count of changed rows that makes an autoanalyze due), dirty
// pages written and no autovacuum worker running. pg_e2e --warm does the same for ours.
export async function readyForWarmPass (client, table) {
  await client.query(`TRUNCATE ${table}`)
  await client.query(`ANALYZE ${table}`)
  await client.query('CHECKPOINT')
  await waitForAutovacuum(client)
}
