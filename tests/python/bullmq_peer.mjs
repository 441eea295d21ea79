// The Node side of test_interop.py, on the pinned bullmq of package.json.
//   node bullmq_peer.mjs work QUEUE COUNT   Worker: processes COUNT jobs, prints their ids
//   node bullmq_peer.mjs add QUEUE JOBS     Queue.add each [name, data, opts] of the JSON
//                                           array JOBS, prints {"ids": [...]}, then waits for
//                                           every job and prints {"results": {id: ...}}
// Output is one JSON object per line; REDIS_URL names the server. Gives up after 60 s.
import { Queue, QueueEvents, Worker } from 'bullmq'
import IORedis from 'ioredis'

const [mode, name, arg] = process.argv.slice(2)
const connect = () => new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null })
const print = (value) => process.stdout.write(JSON.stringify(value) + '\n')
const giveUp = setTimeout(() => { console.error('bullmq_peer: timed out'); process.exit(2) }, 60000)

if (mode === 'work') {
  const count = Number(arg)
  const done = []
  const connection = connect()
  const worker = new Worker(name, async (job) => ({ by: 'node', name: job.name, data: job.data }),
    { connection, name: 'node-peer' })
  worker.on('error', (err) => console.error(err))
  await new Promise((resolve) => worker.on('completed', (job) => {
    done.push(job.id)
    if (done.length === count) resolve()
  }))
  await worker.close()
  connection.disconnect()
  print({ completed: done })
} else if (mode === 'add') {
  const connection = connect()
  const queue = new Queue(name, { connection })
  // BullMQ does not close a connection it was given, so we do.
  const eventsConnection = connect()
  const events = new QueueEvents(name, { connection: eventsConnection })
  await events.waitUntilReady()
  const jobs = []
  for (const [jobName, data, opts] of JSON.parse(arg)) jobs.push(await queue.add(jobName, data, opts))
  print({ ids: jobs.map((job) => job.id) })
  const results = {}
  for (const job of jobs) {
    try {
      results[job.id] = { returnvalue: await job.waitUntilFinished(events) }
    } catch (err) {
      results[job.id] = { failedReason: err.message }
    }
  }
  print({ results })
  await events.close()
  await queue.close()
  eventsConnection.disconnect()
  connection.disconnect()
} else {
  console.error(`bullmq_peer: unknown mode ${mode}`)
  process.exit(2)
}
clearTimeout(giveUp)
