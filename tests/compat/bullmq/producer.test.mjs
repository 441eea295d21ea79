// Interop with the real, pinned `bullmq` package (package-lock.json): jobs added by the C++
// producer (`jobqueue bull add`) are read and processed by Node's Queue, Worker and
// QueueEvents, and jobs added by Node are read by C++.
//
//   eval "$(scripts/services env)"; JOBQUEUE_CLI=build/examples/jobqueue node --test tests/compat/bullmq/
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Worker, QueueEvents } from 'bullmq'
import { cpp, newConnection, open } from './helpers.mjs'

function queueName (what) { return `interop-${what}-${process.pid}` }

test('a job added by C++ reads the same in Node', async () => {
  const name = queueName('read')
  const queue = open(name)
  const id = cpp('add', '--queue', name, '--name', 'ingest_csv', '--data', '{"file":"a.csv","n":1}',
    '--opts', '{"attempts":3,"backoff":{"type":"exponential","delay":500},"removeOnComplete":10}')
  const job = await queue.getJob(id)
  assert.ok(job, `Node cannot see job ${id}`)
  assert.equal(job.name, 'ingest_csv')
  assert.deepEqual(job.data, { file: 'a.csv', n: 1 })
  assert.equal(job.opts.attempts, 3)
  assert.deepEqual(job.opts.backoff, { type: 'exponential', delay: 500 })
  assert.equal(job.opts.removeOnComplete, 10)
  assert.equal(await job.getState(), 'waiting')
  assert.ok(Math.abs(job.timestamp - Date.now()) < 60000)

  const delayedId = cpp('add', '--queue', name, '--name', 'later', '--data', '{}', '--opts', '{"delay":60000}')
  assert.equal(await (await queue.getJob(delayedId)).getState(), 'delayed')
  const prioId = cpp('add', '--queue', name, '--name', 'urgent', '--data', '{}', '--opts', '{"priority":3}')
  assert.equal(await (await queue.getJob(prioId)).getState(), 'prioritized')

  const node = await queue.getJobCounts()
  const ours = JSON.parse(cpp('counts', '--queue', name, '--json'))
  for (const state of ['active', 'completed', 'delayed', 'failed', 'paused', 'prioritized', 'waiting', 'waiting-children']) {
    assert.equal(ours[state], node[state] ?? 0, `count of ${state}`)
  }
})

test('a Node Worker processes jobs added by C++, in BullMQ order, with events', async () => {
  const name = queueName('work')
  open(name)
  // From the (new) queue's first event: waitUntilReady() does not wait for the first XREAD.
  const events = new QueueEvents(name, { connection: newConnection(), lastEventId: '0-0' })
  await events.waitUntilReady()
  const completedEvents = []
  events.on('completed', ({ jobId, returnvalue }) => completedEvents.push({ jobId, returnvalue }))

  const first = cpp('add', '--queue', name, '--name', 'fifo', '--data', '{"n":1}')
  const second = cpp('add', '--queue', name, '--name', 'fifo', '--data', '{"n":2}')
  const lifo = cpp('add', '--queue', name, '--name', 'lifo', '--data', '{"n":3}', '--opts', '{"lifo":true}')
  const bulk = cpp('add', '--queue', name, '--name', 'bulk', '--data', '{"n":4}', '--count', '5').split('\n')
  const delayed = cpp('add', '--queue', name, '--name', 'delayed', '--data', '{"n":5}', '--opts', '{"delay":300}')

  const order = []
  const total = 4 + bulk.length
  const done = new Promise((resolve) => {
    const worker = new Worker(name, async (job) => {
      order.push(job.id)
      return { doubled: job.data.n * 2 }
    }, { connection: newConnection(), concurrency: 1 })
    worker.on('completed', async () => {
      if (order.length === total) { await worker.close(); resolve() }
    })
  })
  await done
  // LIFO first, then FIFO in order, the delayed job once due (last: 300 ms later).
  assert.deepEqual(order.slice(0, 3), [lifo, first, second])
  assert.equal(order[order.length - 1], delayed)
  const queue = open(name)
  const job = await queue.getJob(first)
  assert.equal(await job.getState(), 'completed')
  assert.deepEqual(job.returnvalue, { doubled: 2 })
  const cppView = JSON.parse(cpp('get', first, '--queue', name))
  assert.equal(JSON.parse(cppView.fields.returnvalue).doubled, 2)
  assert.ok(Number(cppView.fields.finishedOn) >= Number(cppView.fields.processedOn))
  for (let i = 0; i < 50 && completedEvents.length < total; i++) await new Promise((r) => setTimeout(r, 100))
  assert.ok(completedEvents.some((e) => e.jobId === first), 'QueueEvents saw the completion')
  await events.close()
})

test('jobs added by Node are read by C++ with the same counts', async () => {
  const name = queueName('node-add')
  const queue = open(name)
  const job = await queue.add('from-node', { x: 'y' }, { attempts: 2, priority: 5 })
  await queue.add('plain', { z: 1 })
  await queue.add('later', {}, { delay: 60000 })
  const seen = JSON.parse(cpp('get', job.id, '--queue', name))
  assert.equal(seen.fields.name, 'from-node')
  assert.deepEqual(JSON.parse(seen.fields.data), { x: 'y' })
  assert.equal(JSON.parse(seen.fields.opts).attempts, 2)
  assert.equal(seen.fields.priority, '5')
  const node = await queue.getJobCounts()
  const ours = JSON.parse(cpp('counts', '--queue', name, '--json'))
  assert.equal(ours.prioritized, node.prioritized)
  assert.equal(ours.waiting, node.waiting)
  assert.equal(ours.delayed, node.delayed)
})
