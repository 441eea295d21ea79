--[[
  One bounded step of BullMQ's Queue.clean: removes jobs of one state older than a grace
  period, with the "cleaned" event. Each state is judged by the first of its job's times that
  is set, as BullMQ's cleanJobsInSet: finished jobs by their score (finishedOn), wait and
  paused by finishedOn, processedOn, timestamp, delayed by processedOn, timestamp, and
  prioritized by timestamp alone. Locked jobs and a job
  scheduler's current job are left alone. Removal frees deduplication ids and settles flow
  parents as drain.lua does. The oldest go first: lists from the tail (jobs are
  pushed on the left), sets from the lowest score. The caller loops, passing how many kept
  jobs the earlier steps passed over, so each call reads at most ARGV[6] entries.
  KEYS[1..12] as worker_step.lua   KEYS[13] the state's key   KEYS[14] repeat (schedulers)
  ARGV[1] job key prefix   ARGV[2] cutoff (ms; older goes)   ARGV[3] most to remove (> 0)
  ARGV[4] state: completed, failed, delayed, prioritized, wait or paused
  ARGV[5] kept entries to skip at the oldest end   ARGV[6] most entries to read
  Returns {removed ids, entries read and kept, 1 when the state's end was reached else 0}.
]]
local q = bullQueue(KEYS, ARGV[1])
local cutoff, limit, state = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local skip, window = tonumber(ARGV[5]), tonumber(ARGV[6])
local setKey, repeatKey = KEYS[13], KEYS[14]
local isList = state == "wait" or state == "paused"
local finished = state == "completed" or state == "failed"
local removed, kept, done = {}, 0, 0
-- The job times that tell a job's age, in the order BullMQ's cleanJobsInSet reads them.
local timeFields = {"timestamp"}
if isList then
  timeFields = {"finishedOn", "processedOn", "timestamp"}
elseif state == "delayed" then
  timeFields = {"processedOn", "timestamp"}
end

local function isOld(jobId, jobKey)
  if finished then return true end
  if rcall("EXISTS", jobKey .. ":lock") == 1 or isSchedulerJob(jobId, jobKey, repeatKey) then
    return false
  end
  local times = rcall("HMGET", jobKey, unpack(timeFields))
  -- The first one set decides, as Node's getTimestamp (one a foreign client garbled is passed
  -- over); a job with none is old, as in Node.
  for i = 1, #timeFields do
    local ts = tonumber(times[i])
    if ts then return ts <= cutoff end
  end
  return true
end

local function removeOne(jobId, jobKey)
  removeParentDependency(jobKey, true, q.prefix)
  releaseDedupIdOnRemoval(q, jobKey, jobId)
  removeJobKeys(jobKey)
  removed[#removed + 1] = jobId
end

if isList then
  -- Oldest last; removed entries become "" and go in one LREM, keeping the step linear.
  local ids = rcall("LRANGE", setKey, -(skip + window), -(skip + 1))
  local examined = 0
  for i = #ids, 1, -1 do
    if #removed >= limit then break end
    examined = examined + 1
    local jobId = ids[i]
    local jobKey = q.prefix .. jobId
    if isOld(jobId, jobKey) then
      rcall("LSET", setKey, -(skip + examined), "")
      removeOne(jobId, jobKey)
    else
      kept = kept + 1
    end
  end
  if #removed > 0 then rcall("LREM", setKey, 0, "") end
  if examined == #ids and #ids < window then done = 1 end
else
  local ids
  if finished then
    ids = rcall("ZRANGEBYSCORE", setKey, "-inf", cutoff, "LIMIT", skip, math.min(limit, window))
  else
    ids = rcall("ZRANGE", setKey, skip, skip + window - 1)
  end
  local examined = 0
  for _, jobId in ipairs(ids) do
    if #removed >= limit then break end
    examined = examined + 1
    local jobKey = q.prefix .. jobId
    if isOld(jobId, jobKey) then
      removeOne(jobId, jobKey)
    else
      kept = kept + 1
    end
  end
  for from = 1, #removed, 7000 do
    rcall("ZREM", setKey, unpack(removed, from, math.min(from + 6999, #removed)))
  end
  if examined == #ids and #ids < (finished and math.min(limit, window) or window) then
    done = 1
  end
end
rcall("XADD", q.events, "*", "event", "cleaned", "count", #removed)
return {removed, kept, done}
