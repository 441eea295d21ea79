--[[
  Removes one job from whichever state holds it, with its keys and the "removed" event, as
  BullMQ's removeJob does. A locked (running) job stays.
  A job scheduler's current job is refused (-8), as BullMQ refuses it. The deduplication id
  is freed whenever it points at the job (BullMQ's removal rule, TTL or not). A flow parent
  left with no pending child moves to wait with the "waiting" event. Children stay. An id
  left in a state without its hash (an orphan) is removed too, without the event, as
  BullMQ's removeJob does.
  KEYS[1..12] as worker_step.lua   KEYS[13] paused   KEYS[14] waiting-children
  KEYS[15] repeat (job schedulers)
  ARGV[1] job key prefix   ARGV[2] job id
  Returns 1 when removed, 0 when locked, -1 when there is no such job, -8 when the job is a
  job scheduler's current one.
]]
local q = bullQueue(KEYS, ARGV[1])
local jobId = ARGV[2]
local jobKey = q.prefix .. jobId
if isSchedulerJob(jobId, jobKey, KEYS[15]) then return -8 end
if rcall("EXISTS", jobKey .. ":lock") == 1 then return 0 end
removeParentDependency(jobKey, false, q.prefix)
local prev = "unknown"
for _, state in ipairs({{"completed", q.completed}, {"waiting-children", KEYS[14]},
                        {"delayed", q.delayed}, {"failed", q.failed},
                        {"prioritized", q.prioritized}}) do
  if rcall("ZREM", state[2], jobId) == 1 then
    prev = state[1]
    break
  end
end
if prev == "unknown" then
  for _, state in ipairs({{"wait", q.wait}, {"paused", KEYS[13]}, {"active", q.active}}) do
    if rcall("LREM", state[2], 1, jobId) == 1 then
      prev = state[1]
      break
    end
  end
end
if rcall("SREM", q.stalled, jobId) == 0 and prev == "unknown" and
    rcall("EXISTS", jobKey) == 0 then
  return -1
end
releaseDedupIdOnRemoval(q, jobKey, jobId)
-- As BullMQ: the event only when there was data to delete (not for a bare orphan id).
if removeJobKeys(jobKey) > 0 then
  rcall("XADD", q.events, "MAXLEN", "~", maxEvents(q.meta), "*", "event", "removed", "jobId",
        jobId, "prev", prev)
end
return 1
