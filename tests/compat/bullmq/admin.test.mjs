// Interop of queue administration and events with the real `bullmq`: what our producer's
// drain / remove / retry / promote / progress / logs / getJobs do is what Node then sees, and
// our events reader (`jobqueue bull events`) reads what a Node Worker emits.
//
//   eval "$(scripts/services env)"; JOBQUEUE_CLI=build/examples/jobqueue node --test tests/compat/bullmq/
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { FlowProducer, Worker, QueueEvents } from 'bullmq'
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

test('our clean takes the oldest waiting jobs first, as Node\'s does', async () => {
  const name = queueName('clean-order')
  const queue = open(name)
  const jobs = await queue.addBulk([1, 2, 3, 4, 5].map((n) => ({ name: 'n', data: { n } })))
  assert.equal(cpp('clean', '--queue', name, '--state', 'wait', '--grace', '0', '--limit', '2'),
    'removed 2')
  const left = (await queue.getJobs(['wait'], 0, -1, true)).map((j) => j.id)
  assert.deepEqual(left, jobs.slice(2).map((j) => j.id))
})

test('our drain, clean and remove leave a Node job scheduler\'s current job', async () => {
  const name = queueName('scheduler')
  const queue = open(name)
  await queue.upsertJobScheduler('tick', { every: 600000, startDate: Date.now() + 600000 })
  const [current] = await queue.getDelayed()
  assert.ok(current && current.id.startsWith('repeat:tick:'), `scheduler job: ${current?.id}`)
  await queue.add('plain', {}, { delay: 600000 })

  assert.equal(cpp('drain', '--queue', name, '--delayed'), 'removed 1')
  await queue.add('plain', {}, { delay: 600000 })
  assert.equal(cpp('clean', '--queue', name, '--state', 'delayed', '--grace', '0'), 'removed 1')
  assert.throws(() => execFileSync(cli, ['bull', 'remove', current.id, '--queue', name],
    { encoding: 'utf8', env: process.env, stdio: 'pipe' }), /job scheduler/)

  assert.deepEqual((await queue.getDelayed()).map((j) => j.id), [current.id])
  assert.equal((await queue.getJobSchedulers()).length, 1)
})

test('after our remove, Node adds a job with the same deduplication id again', async () => {
  const name = queueName('dedup')
  const queue = open(name)
  const dedup = { deduplication: { id: 'same', ttl: 600000 } }
  const first = await queue.add('d', { n: 1 }, dedup)
  cpp('remove', first.id, '--queue', name)
  const second = await queue.add('d', { n: 2 }, dedup)
  assert.notEqual(second.id, first.id)
  assert.deepEqual((await queue.getJob(second.id)).data, { n: 2 })

  assert.equal(cpp('drain', '--queue', name), 'removed 1')
  const third = await queue.add('d', { n: 3 }, dedup)
  assert.notEqual(third.id, second.id)
  assert.equal((await queue.getJobCounts()).waiting, 1)
})

test('removing and draining flow children settles their parents as Node does', async () => {
  // The same flows in two queues: Node removes and drains one, we the other; the parents must
  // end up alike (a lone child removed: parent waiting, then drained with the rest; drained
  // children: a parent in the same queue removed with them, one in another queue waiting).
  const flows = new FlowProducer({ connection: newConnection() })
  try {
    const outcome = async (name, remove, drain) => {
      const queue = open(name)
      const other = open(`${name}-parents`)
      const two = await flows.add({ name: 'two', queueName: name,
        children: [{ name: 'c', queueName: name }, { name: 'c', queueName: name }] })
      const one = await flows.add({ name: 'one', queueName: name,
        children: [{ name: 'c', queueName: name }] })
      const far = await flows.add({ name: 'far', queueName: other.name,
        children: [{ name: 'c', queueName: name }] })
      await remove(queue, two.children[0].job.id)
      const afterOne = await (await queue.getJob(two.job.id)).getState()
      await remove(queue, one.children[0].job.id)
      const oneAfterRemove = await (await queue.getJob(one.job.id)).getState()
      await drain(queue)
      const state = async (q, id) => { const j = await q.getJob(id); return j ? j.getState() : 'gone' }
      return {
        afterOne,
        oneAfterRemove,
        two: await state(queue, two.job.id),
        one: await state(queue, one.job.id),
        far: await state(other, far.job.id),
        counts: await queue.getJobCounts(),
        otherCounts: await other.getJobCounts()
      }
    }
    const node = await outcome(queueName('flow-node'), (q, id) => q.remove(id), (q) => q.drain())
    const ours = await outcome(queueName('flow-ours'),
      (q, id) => cpp('remove', id, '--queue', q.name), (q) => cpp('drain', '--queue', q.name))
    assert.deepEqual(ours, node)
    assert.equal(ours.afterOne, 'waiting-children')
    assert.equal(ours.oneAfterRemove, 'waiting')
    assert.equal(ours.far, 'waiting')
  } finally {
    await flows.close()
  }
})
