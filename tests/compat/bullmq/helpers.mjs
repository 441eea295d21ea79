// Shared by the interop tests: Redis connections, queues (obliterated afterwards) and the
// `jobqueue bull` CLI of the build.
import assert from 'node:assert/strict'
import { after } from 'node:test'
import { execFileSync } from 'node:child_process'
import { Queue } from 'bullmq'
import IORedis from 'ioredis'

export const cli = process.env.JOBQUEUE_CLI || 'build/examples/jobqueue'
const url = process.env.REDIS_URL
assert.ok(url, 'REDIS_URL is not set: eval "$(scripts/services env)"')
export const connection = new IORedis(url, { maxRetriesPerRequest: null })
const queues = []
const extraConnections = []
export const cleanups = []

// Workers and QueueEvents block on their own connection; BullMQ does not close a connection
// it was given, so we do.
export function newConnection () {
  const c = new IORedis(url, { maxRetriesPerRequest: null })
  extraConnections.push(c)
  return c
}

export function open (name) {
  const queue = new Queue(name, { connection })
  queues.push(queue)
  return queue
}

export function cpp (...args) {
  return execFileSync(cli, ['bull', ...args], { encoding: 'utf8', env: process.env }).trim()
}

after(async () => {
  for (const cleanup of cleanups) cleanup()
  for (const q of queues) await q.obliterate({ force: true })
  for (const q of queues) await q.close()
  for (const c of extraConnections) c.disconnect()
  await connection.quit()
})
