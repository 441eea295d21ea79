// Node bullmq (pinned in package.json) on the same workloads as benchmarks/bull_e2e.cc, printing
// the same JSON line, so scripts/bench-bull can put them side by side.
//
//   REDIS_URL=... node benchmarks/peers/bullmq_bench.mjs add1|bulk|process|latency N [CONC]
//   (internal: preload N QUEUE, what `process` runs in a child process)
//
// Payload {"n": i, "s": "hello world"} as in shared/PEERS.md. `process` preloads from a child
// process, so the worker process' CPU (no garbage of the preload to collect) and peak RSS are
// its own, as PEERS.md measures a worker process.
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Queue, Worker } from 'bullmq'
import IORedis from 'ioredis'

const [mode, nArg, concArg] = process.argv.slice(2)
const jobs = Number(nArg)
const concurrency = mode === 'preload' ? 1 : Number(concArg || 1)
const url = process.env.REDIS_URL
const connection = new IORedis(url, { maxRetriesPerRequest: null })
const name = mode === 'preload' ? concArg : `bench-node-${mode}-${process.pid}`
const payload = (i) => ({ n: i, s: 'hello world' })
const queue = new Queue(name, { connection })
await queue.waitUntilReady()

const cpuSeconds = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6 }
const rssMb = () => process.resourceUsage().maxRSS / 1024

async function preload (n) {
  for (let done = 0; done < n; done += 1000) {
    const size = Math.min(1000, n - done)
    await queue.addBulk(Array.from({ length: size }, (_, k) => ({ name: 'noop', data: payload(done + k) })))
  }
}

let seconds = 0
let cpu = 0
let extra = {}
if (mode === 'preload') {
  await preload(jobs)
  await queue.close()
  await connection.quit()
  process.exit(0)
} else if (mode === 'add1') {
  const cpu0 = cpuSeconds()
  const start = performance.now()
  for (let i = 0; i < jobs; i++) await queue.add('noop', payload(i))
  seconds = (performance.now() - start) / 1000
  cpu = cpuSeconds() - cpu0
} else if (mode === 'bulk') {
  const cpu0 = cpuSeconds()
  const start = performance.now()
  await preload(jobs)
  seconds = (performance.now() - start) / 1000
  cpu = cpuSeconds() - cpu0
} else if (mode === 'process') {
  execFileSync(process.execPath, [fileURLToPath(import.meta.url), 'preload', String(jobs), name],
    { stdio: ['ignore', 'ignore', 'inherit'] })
  let handled = 0
  const cpu0 = cpuSeconds()
  const start = performance.now()
  await new Promise((resolve) => {
    const worker = new Worker(name, async () => null, {
      connection: new IORedis(url, { maxRetriesPerRequest: null }),
      concurrency
    })
    worker.on('completed', async () => {
      if (++handled === jobs) { await worker.close(); resolve() }
    })
  })
  seconds = (performance.now() - start) / 1000
  cpu = cpuSeconds() - cpu0
  const counts = await queue.getJobCounts('completed')
  if (counts.completed !== jobs) throw new Error(`completed ${counts.completed} of ${jobs}`)
  extra = { concurrency }
} else if (mode === 'latency') {
  const samples = []
  let sent = 0
  let onStart = null
  const worker = new Worker(name, async () => {
    samples.push(performance.now() - sent)
    onStart()
    return null
  }, { connection: new IORedis(url, { maxRetriesPerRequest: null }), concurrency: 1 })
  await worker.waitUntilReady()
  await new Promise((resolve) => setTimeout(resolve, 200))
  for (let i = 0; i < jobs; i++) {
    const started = new Promise((resolve) => { onStart = resolve })
    sent = performance.now()
    await queue.add('noop', payload(i))
    await started
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
  await worker.close()
  samples.sort((a, b) => a - b)
  const pct = (p) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]
  console.log(JSON.stringify({ impl: 'bullmq', bench: 'latency', samples: jobs, p50_ms: +pct(0.5).toFixed(3), p99_ms: +pct(0.99).toFixed(3), rss_mb: +rssMb().toFixed(1) }))
  await queue.obliterate({ force: true })
  await queue.close()
  await connection.quit()
  process.exit(0)
} else {
  console.error(`unknown mode ${mode}`)
  process.exit(64)
}
console.log(JSON.stringify({
  impl: 'bullmq',
  bench: mode,
  jobs,
  seconds: +seconds.toFixed(3),
  jobs_per_s: Math.round(jobs / seconds),
  cpu_us_per_job: +(cpu * 1e6 / jobs).toFixed(2),
  rss_mb: +rssMb().toFixed(1),
  ...extra
}))
await queue.obliterate({ force: true })
await queue.close()
await connection.quit()
process.exit(0)
