// Interop of the C++ BullMQ worker (`jobqueue bull work`) with the real, pinned `bullmq`:
// Node adds, C++ processes, Node reads results and events; failures and retries; stalled jobs
// recovered across languages; pause/resume; a mixed drain; getWorkers(); the job Node keeps
// for a deduplication id (keepLastIfActive) while C++ runs the job holding it.
//
//   eval "$(scripts/services env)"; JOBQUEUE_CLI=build/examples/jobqueue node --test tests/compat/bullmq/
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Worker, QueueEvents } from 'bullmq'
import { cleanups, cli, connection, cpp, newConnection, open } from './helpers.mjs'

const children = new Set()
cleanups.push(() => { for (const child of children) child.kill('SIGKILL') })
function queueName (what) { return `interop-w-${what}-${process.pid}` }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Starts `jobqueue bull work`; `exited` resolves with {code, signal, stdout}.
function cppWorker (name, ...args) {
  const child = spawn(cli, ['bull', 'work', '--queue', name, ...args], { env: process.env })
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => { stdout += d })
  child.stderr.on('data', (d) => { stderr += d })
  // 'close', not 'exit': only then has all of stdout arrived.
  child.exited = new Promise((resolve) => child.on('close', (code, signal) => {
    children.delete(child)
    resolve({ code, signal, stdout, stderr })
  }))
  return child
}

async function until (what, check, limitMs = 60000) {
  const deadline = Date.now() + limitMs
  while (Date.now() < deadline) {
    if (await check()) return
    await sleep(20)
  }
  assert.fail(`timed out waiting for ${what}`)
}

// (f) Node's getJobCounts() and ours agree.
async function assertSameCounts (queue) {
  const node = await queue.getJobCounts()
  const ours = JSON.parse(cpp('counts', '--queue', queue.name, '--json'))
  for (const state of ['active', 'completed', 'delayed', 'failed', 'paused', 'prioritized', 'waiting', 'waiting-children']) {
    assert.equal(ours[state], node[state] ?? 0, `count of ${state}`)
  }
  return node
}

test('(a) Node adds, the C++ worker processes, Node sees results and QueueEvents events', async () => {
  const name = queueName('a')
  const queue = open(name)
  // From the (new) queue's first event: waitUntilReady() does not wait for the first XREAD.
  const events = new QueueEvents(name, { connection: newConnection(), lastEventId: '0-0' })
  await events.waitUntilReady()
  const seen = []
  events.on('active', ({ jobId }) => seen.push(['active', jobId]))
  events.on('completed', ({ jobId, returnvalue }) => seen.push(['completed', jobId, returnvalue]))

  const plain = await queue.add('echo', { file: 'a.csv', rows: [1, 2, 3] })
  const custom = await queue.add('echo', { custom: true }, { jobId: 'order-42', attempts: 3, backoff: { type: 'fixed', delay: 10 } })
  const prio = await queue.add('echo', { p: 1 }, { priority: 2 })
  const removed = await queue.add('echo', { gone: true }, { removeOnComplete: true })
  await assertSameCounts(queue)

  const worker = cppWorker(name, '--handler', 'echo', '--worker-name', 'cpp-a', '--exit-when-idle', '0.5')
  const result = await worker.exited
  assert.equal(result.code, 0, result.stderr)
  assert.match(result.stdout, /completed 4, failed 0/)

  for (const job of [plain, custom, prio]) {
    const done = await queue.getJob(job.id)
    assert.equal(await done.getState(), 'completed')
    assert.deepEqual(done.returnvalue, job.data)
    assert.equal(done.attemptsMade, 1)
    assert.equal(done.processedBy, 'cpp-a')
    assert.ok(done.finishedOn >= done.processedOn)
  }
  assert.equal(await queue.getJob(removed.id), undefined)
  await until('QueueEvents completions', () => seen.filter((e) => e[0] === 'completed').length === 4, 10000)
  const completedPlain = seen.find((e) => e[0] === 'completed' && e[1] === plain.id)
  assert.deepEqual(completedPlain[2], plain.data)
  assert.ok(seen.some((e) => e[0] === 'active' && e[1] === custom.id))
  const counts = await assertSameCounts(queue)
  assert.equal(counts.completed, 3)
  await events.close()
})

test('(c) order, retries with fixed and exponential backoff, stacktraces, removeOn counts', async () => {
  const name = queueName('c')
  const queue = open(name)
  // Order: LIFO first, FIFO next, then prioritized by priority, the delayed job when due.
  const fifo1 = await queue.add('o', { n: 'fifo1' })
  const fifo2 = await queue.add('o', { n: 'fifo2' })
  const lifo = await queue.add('o', { n: 'lifo' }, { lifo: true })
  const low = await queue.add('o', { n: 'low' }, { priority: 9 })
  const high = await queue.add('o', { n: 'high' }, { priority: 1 })
  const later = await queue.add('o', { n: 'later' }, { delay: 400 })
  let result = await cppWorker(name, '--handler', 'echo', '--exit-when-idle', '1').exited
  assert.equal(result.code, 0, result.stderr)
  const jobs = await Promise.all([lifo, fifo1, fifo2, high, low, later].map((j) => queue.getJob(j.id)))
  const started = jobs.map((j) => j.processedOn)
  for (let i = 1; i < started.length; i++) assert.ok(started[i] >= started[i - 1], `order at ${i}: ${started}`)
  assert.ok(jobs[5].processedOn >= later.timestamp + 400)

  // Failures on the C++ side, retried per the job's backoff, seen by Node.
  const fixed = await queue.add('f', {}, { attempts: 3, backoff: { type: 'fixed', delay: 50 } })
  const expo = await queue.add('f', {}, { attempts: 3, backoff: { type: 'exponential', delay: 30 }, stackTraceLimit: 2 })
  const once = await queue.add('f', {}, { removeOnFail: 1 })
  const once2 = await queue.add('f', {}, { removeOnFail: 1 })
  result = await cppWorker(name, '--handler', 'fail:disk full', '--exit-when-idle', '1').exited
  assert.equal(result.code, 0, result.stderr)
  assert.match(result.stdout, /failed 4, retried 4/)
  for (const [job, traces] of [[fixed, 3], [expo, 2]]) {
    const failed = await queue.getJob(job.id)
    assert.equal(await failed.getState(), 'failed')
    assert.equal(failed.attemptsMade, 3)
    assert.equal(failed.failedReason, 'disk full')
    assert.equal(failed.stacktrace.length, traces)
    assert.match(failed.stacktrace[0], /^Error: disk full/)
  }
  // removeOnFail: 1 trims the failed set to one job when each of those two fails (the other
  // failed jobs came later): one of the two is left.
  const left = [await queue.getJob(once.id), await queue.getJob(once2.id)].filter(Boolean)
  assert.equal(left.length, 1)
  const counts = await assertSameCounts(queue)
  assert.equal(counts.failed, 3)
})

test('(d) a C++ worker killed mid-job is recovered by a Node worker, and the reverse', async () => {
  const name = queueName('d')
  const queue = open(name)
  const job = await queue.add('slow', { k: 1 })
  // Its own stalled checks run every 300 ms too (the check key would hold others off for the
  // whole interval).
  const victim = cppWorker(name, '--handler', 'sleep:60000', '--lock-duration', '1s', '--stalled-interval', '300ms')
  await until('the C++ worker to start the job', async () => (await queue.getJob(job.id)).processedOn > 0)
  victim.kill('SIGKILL')
  await victim.exited
  const rescuer = new Worker(name, async (j) => ({ rescued: j.id }),
    { connection: newConnection(), stalledInterval: 300, lockDuration: 1000 })
  await until('Node to recover and finish the job', async () => (await queue.getJob(job.id)).finishedOn > 0)
  await rescuer.close()
  let done = await queue.getJob(job.id)
  assert.deepEqual(done.returnvalue, { rescued: job.id })
  assert.equal(done.stalledCounter, 1)

  // The reverse: a Node worker (in its own process) dies mid-job; the C++ worker's stalled
  // check recovers the job.
  const job2 = await queue.add('slow', { k: 2 })
  const nodeVictim = spawn(process.execPath, [fileURLToPath(new URL('./slow_node_worker.mjs', import.meta.url)), name],
    { env: process.env, stdio: ['ignore', 'pipe', 'inherit'] })
  children.add(nodeVictim)
  await until('the Node worker to start the job', async () => (await queue.getJob(job2.id)).processedOn > 0)
  nodeVictim.kill('SIGKILL')
  const cppRescuer = cppWorker(name, '--handler', 'echo', '--stalled-interval', '300ms')
  await until('C++ to recover and finish the job', async () => (await queue.getJob(job2.id)).finishedOn > 0)
  cppRescuer.kill('SIGTERM')
  assert.equal((await cppRescuer.exited).code, 0)
  done = await queue.getJob(job2.id)
  assert.deepEqual(done.returnvalue, { k: 2 })
  assert.equal(done.stalledCounter, 1)
  await assertSameCounts(queue)
})

test('(e) pause and resume from Node stop and restart a C++ worker; (h) getWorkers lists it', async () => {
  const name = queueName('e')
  const queue = open(name)
  const worker = cppWorker(name, '--handler', 'noop', '--worker-name', 'cpp-e')
  // (h) BullMQ lists workers by connection name.
  await until('getWorkers() to list the C++ worker', async () =>
    (await queue.getWorkers()).some((w) => w.rawname === `bull:${Buffer.from(name).toString('base64')}:w:cpp-e`))
  assert.equal(await queue.getWorkersCount(), 1)

  await queue.pause()
  for (let i = 0; i < 5; i++) await queue.add('p', { i })
  await sleep(500)
  let counts = await assertSameCounts(queue)
  assert.equal(counts.completed, 0)
  assert.equal(await queue.isPaused(), true)
  await queue.resume()
  await until('the C++ worker to resume', async () => (await queue.getJobCounts()).completed === 5)
  counts = await assertSameCounts(queue)
  assert.equal(counts.waiting, 0)
  worker.kill('SIGTERM')
  const result = await worker.exited
  assert.equal(result.code, 0, result.stderr)
  // Graceful stop: nothing left locked or active.
  assert.equal((await queue.getJobCounts()).active, 0)
})

test('(g) Node and C++ workers drain 20,000 jobs together, each processed exactly once', async () => {
  const name = queueName('g')
  const queue = open(name)
  const total = 20000
  for (let i = 0; i < total; i += 1000) {
    await queue.addBulk(Array.from({ length: 1000 }, (_, j) => ({ name: 'n', data: { i: i + j } })))
  }
  const cppWorkers = [cppWorker(name, '--handler', 'echo', '--concurrency', '16', '--exit-when-idle', '2'),
    cppWorker(name, '--handler', 'echo', '--concurrency', '4', '--exit-when-idle', '2')]
  const seenByNode = new Map()
  const nodeWorker = new Worker(name, async (job) => {
    seenByNode.set(job.data.i, (seenByNode.get(job.data.i) ?? 0) + 1)
    return job.data
  }, { connection: newConnection(), concurrency: 16 })
  const results = await Promise.all(cppWorkers.map((w) => w.exited))
  await until('all completed', async () => (await queue.getJobCounts()).completed === total)
  await nodeWorker.close()
  let byCpp = 0
  for (const r of results) {
    assert.equal(r.code, 0, r.stderr)
    byCpp += Number(/completed (\d+)/.exec(r.stdout)[1])
  }
  assert.equal(byCpp + seenByNode.size, total)
  for (const n of seenByNode.values()) assert.equal(n, 1)
  assert.ok(byCpp > 0 && seenByNode.size > 0, `both sides worked: C++ ${byCpp}, Node ${seenByNode.size}`)
  // Every job was started once and finished once, with its own data as the result.
  const jobs = await queue.getJobs(['completed'], 0, total)
  assert.equal(jobs.length, total)
  for (const job of jobs) {
    assert.equal(job.attemptsStarted, 1, `job ${job.id}`)
    assert.equal(job.attemptsMade, 1, `job ${job.id}`)
    assert.deepEqual(job.returnvalue, job.data)
  }
  await assertSameCounts(queue)
})

test('(i) deduplication with keepLastIfActive: a job added while the deduplicated one runs on the C++ worker runs after it, as with a Node worker', async () => {
  const deduplication = { id: 'd1', keepLastIfActive: true, replace: true }
  // Adds a deduplicated job, and another while the worker runs it; returns what is left. Jobs
  // take 2 s: the second add must land while the first is still active on a loaded machine.
  async function scenario (what, startWorker) {
    const name = queueName(`i-${what}`)
    const queue = open(name)
    const first = await queue.add('a', { v: 1 }, { deduplication })
    const stop = startWorker(name)
    try {
      await until(`the ${what} worker to start the first job`, async () => (await queue.getJobState(first.id)) === 'active')
      // Node keeps it in dn:<id> and answers with the active job.
      const second = await queue.add('a', { v: 2 }, { deduplication })
      assert.equal(second.id, first.id)
      assert.equal(await connection.exists(`bull:${name}:dn:d1`), 1)
      await until(`the ${what} worker to complete both`, async () => (await queue.getJobCounts()).completed === 2, 20000)
    } finally {
      await stop()
    }
    const done = await queue.getJobs(['completed'])
    const left = {
      data: done.map((j) => j.data.v).sort(),
      counts: await queue.getJobCounts(),
      pending: await connection.exists(`bull:${name}:dn:d1`),
      dedupId: await connection.exists(`bull:${name}:de:d1`)
    }
    // The id is free again: a later add is a new job, not deduplicated.
    left.freed = (await queue.add('a', { v: 3 }, { deduplication })).id !== first.id
    if (what === 'cpp') await assertSameCounts(queue)
    return left
  }
  const viaNode = await scenario('node', (name) => {
    const worker = new Worker(name, async (job) => { await sleep(2000); return job.data },
      { connection: newConnection() })
    return () => worker.close()
  })
  const viaCpp = await scenario('cpp', (name) => {
    const worker = cppWorker(name, '--handler', 'sleep:2000', '--prefetch', '0')
    return async () => {
      worker.kill('SIGTERM')
      const result = await worker.exited
      assert.equal(result.code, 0, result.stderr)
    }
  })
  assert.deepEqual(viaNode.data, [1, 2])
  assert.equal(viaNode.pending, 0)
  assert.deepEqual(viaCpp, viaNode)
})
