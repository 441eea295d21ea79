// A Node BullMQ worker whose jobs never finish: worker.test.mjs kills it mid-job with SIGKILL.
//   node slow_node_worker.mjs QUEUE
import { Worker } from 'bullmq'
import IORedis from 'ioredis'

const connection = new IORedis(process.env.REDIS_URL, { maxRetriesPerRequest: null })
// A short lock, so that the job is seen as stalled soon after this process dies.
const worker = new Worker(process.argv[2], () => new Promise(() => {}),
  { connection, lockDuration: 1000 })
worker.on('error', (err) => console.error(err))
