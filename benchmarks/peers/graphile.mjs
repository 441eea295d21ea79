#!/usr/bin/env node
// graphile-worker peer benchmark (method: shared/PEERS.md). Schema graphile_bench,
// dropped and re-migrated before every measurement so runs are repeatable.
//
//   eval "$(scripts/services env)"; node benchmarks/peers/graphile.mjs [--jobs 20000] [--only run-c10-lq500]
//
// Measurements (--only NAME):
//   addJobs        workerUtils.addJobs() in chunks of 1,000                 -> jobs/s
//   addJobs-warm   the same after an untimed pass on the same pool and a TRUNCATE
//   addJob         workerUtils.addJob() one at a time, sequential awaited (--seq-jobs, default 2,000)
//   run-c10        N preloaded jobs, run({ concurrency: 10 }), no batching
//   run-c10-lq500  N preloaded jobs, run({ concurrency: 10 }) with preset.worker
//                  { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 }
// Processing throughput = N / (time from run() until no job row is left; graphile-worker
// deletes completed jobs; polled in the database every 20 ms). No-op task handler.
import pg from 'pg'
import { Logger, makeWorkerUtils, run } from 'graphile-worker'
import {
  chunks, emit, log, now, parseArgs, payload, pkgVersion, pollUntil, readyForWarmPass, waitForAutovacuum, withTimeout
} from './common.mjs'

const PEER = 'graphile-worker'
const SCHEMA = 'graphile_bench'
const TASK = 'noop'
const CHUNK = 1000
const CONCURRENCY = 10
const LOCAL_QUEUE_SIZE = 500
const MEASUREMENTS = ['addJobs', 'addJobs-warm', 'addJob', 'run-c10', 'run-c10-lq500']

const opts = parseArgs(process.argv.slice(2), 'benchmarks/peers/graphile.mjs', MEASUREMENTS)
const version = pkgVersion('graphile-worker')
const DATABASE_URL = process.env.DATABASE_URL

// graphile-worker logs every start/stop at info level; keep warnings and errors.
const logger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') log(`graphile-worker ${level}: ${message}`)
})

const mon = new pg.Client({ connectionString: DATABASE_URL, application_name: 'bench-peers-monitor' })

// Our own pool with idle connections kept (pg-pool closes them after 10 s by default, and the
// warm pass's wait for autovacuum can be longer), for every measurement alike.
async function freshUtils () {
  await mon.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`)
  const pgPool = new pg.Pool({ connectionString: DATABASE_URL, idleTimeoutMillis: 0 })
  pgPool.on('error', (err) => log(`graphile-worker pool error: ${err.message}`))
  pgPool.on('connect', (client) => client.on('error', (err) => log(`graphile-worker client error: ${err.message}`)))
  const utils = await makeWorkerUtils({ pgPool, schema: SCHEMA, logger })
  await utils.migrate()
  const release = async () => {
    await utils.release()
    await pgPool.end()
  }
  return { utils, release }
}

async function jobCount () {
  const { rows } = await mon.query(`SELECT count(*)::int AS n FROM ${SCHEMA}._private_jobs`)
  return rows[0].n
}

async function expectJobs (n) {
  const got = await jobCount()
  if (got !== n) throw new Error(`${got} job rows, expected ${n}`)
}

async function bulkAdd (utils, total) {
  for (const [a, b] of chunks(total, CHUNK)) {
    const specs = []
    for (let i = a; i < b; i++) specs.push({ identifier: TASK, payload: payload(i) })
    await utils.addJobs(specs)
  }
}

// warm: as pgboss.mjs insert-warm (an untimed pass on the same pool, then TRUNCATE).
async function measureAddJobs (warm = false) {
  const { utils, release } = await freshUtils()
  const n = opts.jobs
  if (warm) {
    await bulkAdd(utils, n)
    await readyForWarmPass(mon, `${SCHEMA}._private_jobs`)
  }
  log(`graphile-worker addJobs: ${n} jobs in chunks of ${CHUNK}${warm ? ', warm pool' : ''}`)
  const t0 = now()
  await bulkAdd(utils, n)
  const seconds = (now() - t0) / 1000
  await expectJobs(n)
  await release()
  emit({ peer: PEER, version, what: `addJobs chunks=${CHUNK}${warm ? ', warm pool' : ''}`, jobs: n, seconds })
}

async function measureAddJob () {
  const { utils, release } = await freshUtils()
  const n = opts.seqJobs
  log(`graphile-worker addJob: ${n} jobs one at a time`)
  const t0 = now()
  for (let i = 0; i < n; i++) await utils.addJob(TASK, payload(i))
  const seconds = (now() - t0) / 1000
  await expectJobs(n)
  await release()
  emit({ peer: PEER, version, what: 'addJob one at a time', jobs: n, seconds })
}

// Completed jobs are deleted, so "all completed" = no row left. The primary-key
// probe stays cheap while dead rows pile up (killed index entries are skipped).
async function allCompleted () {
  const { rows } = await mon.query(`SELECT id FROM ${SCHEMA}._private_jobs ORDER BY id LIMIT 1`)
  if (rows.length === 0) return true
  return false
}

async function failedJobs () {
  const { rows } = await mon.query(
    `SELECT count(*)::int AS n, min(last_error) AS err FROM ${SCHEMA}._private_jobs WHERE last_error IS NOT NULL`)
  return rows[0]
}

async function measureRun (what, preset) {
  const { utils, release } = await freshUtils()
  const n = opts.jobs
  log(`graphile-worker ${what}: preloading ${n} jobs`)
  await bulkAdd(utils, n)
  await expectJobs(n)
  await release()
  // VACUUM too, as benchmarks/pg_e2e does after our preload (hint bits, visibility map, no
  // insert-triggered autovacuum during the measurement).
  await mon.query(`VACUUM ANALYZE ${SCHEMA}._private_jobs`)

  let handled = 0
  let failed = null
  const taskList = { [TASK]: async () => { handled++ } }
  const t0 = now()
  const runner = await run({
    connectionString: DATABASE_URL,
    schema: SCHEMA,
    concurrency: CONCURRENCY,
    noHandleSignals: true,
    taskList,
    logger,
    ...(preset ? { preset } : {})
  })
  runner.events.on('job:failed', ({ error }) => { failed = failed || error })
  await pollUntil(async () => {
    if (failed) throw new Error(`a job failed: ${failed && failed.message ? failed.message : failed}`)
    return allCompleted()
  }, { intervalMs: 20, label: `graphile-worker ${what}`, progress: () => `${handled}/${n} handled` })
  const seconds = (now() - t0) / 1000
  await runner.stop()
  const bad = await failedJobs()
  if (bad.n > 0) throw new Error(`${bad.n} jobs failed: ${bad.err}`)
  if (handled !== n) throw new Error(`handler saw ${handled} jobs, expected ${n}`)
  emit({ peer: PEER, version, what, jobs: n, seconds })
}

const RUN = {
  addJobs: () => measureAddJobs(false),
  'addJobs-warm': () => measureAddJobs(true),
  addJob: measureAddJob,
  'run-c10': () => measureRun(`run concurrency=${CONCURRENCY}`, null),
  'run-c10-lq500': () => measureRun(
    `run concurrency=${CONCURRENCY} localQueue=${LOCAL_QUEUE_SIZE} batchDelays=0`,
    { worker: { localQueue: { size: LOCAL_QUEUE_SIZE }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } })
}

await withTimeout('connect', 30, () => mon.connect())
for (const name of MEASUREMENTS) {
  if (opts.only && opts.only !== name) continue
  await withTimeout('autovacuum', 90, () => waitForAutovacuum(mon))
  await withTimeout(`graphile-worker ${name}`, opts.timeout, RUN[name])
}
await withTimeout('cleanup', 30, async () => {
  await mon.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`)
  await mon.end()
})
