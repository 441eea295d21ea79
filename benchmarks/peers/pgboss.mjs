#!/usr/bin/env node
// pg-boss peer benchmark (method: shared/PEERS.md). Schema pgboss_bench, dropped and
// recreated before every measurement so runs are repeatable.
//
//   eval "$(scripts/services env)"; node benchmarks/peers/pgboss.mjs [--jobs 20000] [--only work-1000x8]
//
// Measurements (--only NAME):
//   insert       boss.insert() in chunks of 1,000                      -> jobs/s
//   insert-warm  the same after an untimed pass on the same pool and a TRUNCATE
//   send         boss.send() one at a time, sequential awaited (--seq-jobs, default 2,000)
//   work-1000x8  N preloaded jobs, 8 work() loops, batchSize 1000, pollingIntervalSeconds 0.5
//   work-5000x4  N preloaded jobs, 4 work() loops, batchSize 5000, pollingIntervalSeconds 0.5
// Processing throughput = N / (time from the first work() call until every job row of
// the queue is 'completed', polled in the database every 20 ms). pg-boss v10 has no
// teamSize: concurrency = several work() calls; 0.5 s is its minimum polling interval.
// Handlers are no-ops; pg-boss completes the batch when the handler resolves.
import pg from 'pg'
import PgBoss from 'pg-boss'
import {
  chunks, emit, log, now, parseArgs, payload, pkgVersion, pollUntil, readyForWarmPass, waitForAutovacuum, withTimeout
} from './common.mjs'

const PEER = 'pg-boss'
const SCHEMA = 'pgboss_bench'
const QUEUE = 'bench'
const CHUNK = 1000
const POLLING_INTERVAL_SECONDS = 0.5
const MEASUREMENTS = ['insert', 'insert-warm', 'send', 'work-1000x8', 'work-5000x4']

const opts = parseArgs(process.argv.slice(2), 'benchmarks/peers/pgboss.mjs', MEASUREMENTS)
const version = pkgVersion('pg-boss')
const DATABASE_URL = process.env.DATABASE_URL

// Monitoring connection, separate from pg-boss's pool.
const mon = new pg.Client({ connectionString: DATABASE_URL, application_name: 'bench-peers-monitor' })

async function freshBoss () {
  await mon.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`)
  // idleTimeoutMillis 0 (pg-boss hands it to its pg.Pool): idle connections stay open, as ours do,
  // however long the warm pass's wait for autovacuum takes (pg-pool's default closes them at 10 s).
  const boss = new PgBoss({
    connectionString: DATABASE_URL, schema: SCHEMA, application_name: 'bench-pgboss', idleTimeoutMillis: 0
  })
  boss.on('error', (err) => log(`pg-boss error event: ${err && err.message ? err.message : err}`))
  await boss.start()
  await boss.createQueue(QUEUE)
  return boss
}

async function stopBoss (boss) {
  await boss.stop({ graceful: true, wait: true, timeout: 10000 })
}

async function stateCounts () {
  const { rows } = await mon.query(
    `SELECT state::text AS state, count(*)::int AS n FROM ${SCHEMA}.job WHERE name = $1 GROUP BY 1`, [QUEUE])
  return Object.fromEntries(rows.map((r) => [r.state, r.n]))
}

async function expectCounts (expected) {
  const got = await stateCounts()
  const ok = Object.keys(got).length === Object.keys(expected).length &&
    Object.entries(expected).every(([k, v]) => got[k] === v)
  if (!ok) throw new Error(`unexpected job states: ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`)
}

async function bulkInsert (boss, total) {
  for (const [a, b] of chunks(total, CHUNK)) {
    const jobs = []
    for (let i = a; i < b; i++) jobs.push({ name: QUEUE, data: payload(i) })
    await boss.insert(jobs)
  }
}

// warm: the same pass runs untimed first on the same pool and the table is truncated, so the
// timed pass meets server backends that have touched their buffers (as benchmarks/pg_e2e
// --warm does for ours).
async function measureInsert (warm = false) {
  const boss = await freshBoss()
  const n = opts.jobs
  if (warm) {
    await bulkInsert(boss, n)
    await readyForWarmPass(mon, `${SCHEMA}.job`)
  }
  log(`pg-boss insert: ${n} jobs in chunks of ${CHUNK}${warm ? ', warm pool' : ''}`)
  const t0 = now()
  await bulkInsert(boss, n)
  const seconds = (now() - t0) / 1000
  await expectCounts({ created: n })
  await stopBoss(boss)
  emit({ peer: PEER, version, what: `insert chunks=${CHUNK}${warm ? ', warm pool' : ''}`, jobs: n, seconds })
}

async function measureSend () {
  const boss = await freshBoss()
  const n = opts.seqJobs
  log(`pg-boss send: ${n} jobs one at a time`)
  const t0 = now()
  for (let i = 0; i < n; i++) await boss.send(QUEUE, payload(i))
  const seconds = (now() - t0) / 1000
  await expectCounts({ created: n })
  await stopBoss(boss)
  emit({ peer: PEER, version, what: 'send one at a time', jobs: n, seconds })
}

// Cheap completion check: first the partial index job_i5 (state < 'active'); only when
// nothing is waiting any more, look for rows still 'active' (completion is async).
async function allCompleted () {
  const waiting = await mon.query(
    `SELECT EXISTS (SELECT 1 FROM ${SCHEMA}.job WHERE name = $1 AND state < 'active') AS x`, [QUEUE])
  if (waiting.rows[0].x) return false
  const left = await mon.query(
    `SELECT EXISTS (SELECT 1 FROM ${SCHEMA}.job WHERE name = $1 AND state <> 'completed') AS x`, [QUEUE])
  if (!left.rows[0].x) return true
  const bad = await mon.query(
    `SELECT count(*)::int AS n FROM ${SCHEMA}.job WHERE name = $1 AND state IN ('failed', 'cancelled', 'retry')`, [QUEUE])
  if (bad.rows[0].n > 0) throw new Error(`${bad.rows[0].n} jobs failed/retried: ${JSON.stringify(await stateCounts())}`)
  return false
}

async function measureWork (batchSize, loops) {
  const boss = await freshBoss()
  const n = opts.jobs
  log(`pg-boss work batch=${batchSize} loops=${loops}: preloading ${n} jobs`)
  await bulkInsert(boss, n)
  await expectCounts({ created: n })
  // VACUUM too, as benchmarks/pg_e2e does after our preload (hint bits, visibility map, no
  // insert-triggered autovacuum during the measurement).
  await mon.query(`VACUUM ANALYZE ${SCHEMA}.job`)

  let handled = 0
  const handler = async (jobs) => { handled += jobs.length }
  const t0 = now()
  for (let i = 0; i < loops; i++) {
    await boss.work(QUEUE, { batchSize, pollingIntervalSeconds: POLLING_INTERVAL_SECONDS }, handler)
  }
  await pollUntil(allCompleted, { intervalMs: 20, label: 'pg-boss work', progress: () => `${handled}/${n} handled` })
  const seconds = (now() - t0) / 1000
  await boss.offWork(QUEUE)
  await stopBoss(boss)
  await expectCounts({ completed: n })
  if (handled !== n) throw new Error(`handler saw ${handled} jobs, expected ${n}`)
  emit({ peer: PEER, version, what: `work batch=${batchSize} loops=${loops}`, jobs: n, seconds, polling_interval_s: POLLING_INTERVAL_SECONDS })
}

const RUN = {
  insert: () => measureInsert(false),
  'insert-warm': () => measureInsert(true),
  send: measureSend,
  'work-1000x8': () => measureWork(1000, 8),
  'work-5000x4': () => measureWork(5000, 4)
}

await withTimeout('connect', 30, () => mon.connect())
for (const name of MEASUREMENTS) {
  if (opts.only && opts.only !== name) continue
  await withTimeout('autovacuum', 90, () => waitForAutovacuum(mon))
  await withTimeout(`pg-boss ${name}`, opts.timeout, RUN[name])
}
await withTimeout('cleanup', 30, async () => {
  await mon.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`)
  await mon.end()
})
