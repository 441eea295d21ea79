// Interop of queue administration and events with the real `bullmq`: what our producer's
// drain / remove / retry / promote / progress / logs / getJobs do is what Node then sees, and
// our events reader (`jobqueue bull events`) reads what a Node Worker emits.
//
//   eval "$(scripts/services env)"; JOBQUEUE_CLI=build/examples/jobqueue node --test tests/compat/bullmq/
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { Worker, QueueEvents } from 'bullmq'
import { cli, cpp, newConnection, open } from './helpers.mjs'

function queueName (what) { return `interop-admin-${what}-${process.pid}` }

test('Node sees our progress, logs, promote, retry, remove and drain', async () => {
  const name = queueName('ops')
  const queue = open(name)
  // From the stream's start: waitUntilReady() does not wait for the first XREAD, so '$' could
  // miss an event written right after it. The queue is new, so the stream holds only ours.
  const events = new QueueEvents(name, { connection: newConnection(), lastEventId: '0-0' })
  await events.waitUntilReady()
  try {
    await checkOps(name, queue, events)
  } finally {
    await events.close()
  }
})

async function checkOps (name, queue, events) {
  const progress = []
  events.on('progress', ({ jobId, data }) => progress.push({ jobId, data }))

  const job = await queue.add('report', { n: 1 })
  cpp('progress', job.id, '--queue', name, '--data', '{"pct":40}')
  cpp('log', job.id, '--queue', name, '--line', 'first')
  cpp('log', job.id, '--queue', name, '--line', 'second')
  assert.deepEqual((await queue.getJob(job.id)).progress, { pct: 40 })
  assert.deepEqual(await queue.getJobLogs(job.id), { logs: ['first', 'second'], count: 2 })
  for (let i = 0; i < 50 && progress.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 100))
  assert.deepEqual(progress, [{ jobId: job.id, data: { pct: 40 } }])

  // Node's getJobs and ours list the same page.
  const more = await queue.addBulk([1, 2, 3].map((n) => ({ name: 'page', data: { n } })))
  const nodePage = (await queue.getJobs(['wait'], 0, 1)).map((j) => j.id)
  const ourPage = cpp('jobs', '--queue', name, '--state', 'wait', '--start', '0', '--end', '1')
    .split('\n').map((line) => JSON.parse(line).id)
  assert.deepEqual(ourPage, nodePage)

  const later = await queue.add('later', {}, { delay: 600000 })
  cpp('promote', later.id, '--queue', name)
  assert.equal(await (await queue.getJob(later.id)).getState(), 'waiting')

  cpp('remove', more[0].id, '--queue', name)
  assert.equal(await queue.getJob(more[0].id), undefined)

  // Fail everything in Node, retry it from C++: Node sees the jobs waiting again.
  const failing = new Worker(name, async () => { throw new Error('nope') },
    { connection: newConnection(), concurrency: 4 })
  try {
    for (let i = 0; i < 200 && (await queue.getJobCounts()).failed < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  } finally {
    await failing.close()
  }
  assert.equal((await queue.getJobCounts()).failed, 4)
  assert.equal(cpp('retry', '--queue', name), 'retried 4')
  const counts = await queue.getJobCounts()
  assert.equal(counts.failed, 0)
  assert.equal(counts.waiting, 4)
  assert.equal((await queue.getJob(job.id)).failedReason, undefined)

  assert.equal(cpp('drain', '--queue', name), 'removed 4')
  assert.equal((await queue.getJobCounts()).waiting, 0)
  assert.equal(await queue.getJob(job.id), undefined)
}

test('our events reader sees a Node Worker\'s events', async () => {
  const name = queueName('events')
  const queue = open(name)
  // From the stream's start (the queue is new), so a slow start of the reader misses nothing.
  const reader = spawn(cli, ['bull', 'events', '--queue', name, '--count', '4', '--from', '0'],
    { env: process.env })
  let out = ''
  reader.stdout.on('data', (chunk) => { out += chunk })
  const closed = new Promise((resolve) => reader.on('close', resolve))

  const job = await queue.add('square', { n: 7 })
  const worker = new Worker(name, async (j) => j.data.n * j.data.n, { connection: newConnection() })
  try {
    assert.equal(await closed, 0)
  } finally {
    await worker.close()
  }
  const events = out.trim().split('\n').map((line) => JSON.parse(line))
  assert.deepEqual(events.map((e) => e.event), ['added', 'waiting', 'active', 'completed'])
  assert.ok(events.every((e) => e.jobId === job.id))
  assert.equal(events[3].returnvalue, '49')
})
