--[[
  Removes jobs of one state older than a grace period, as BullMQ's Queue.clean does, with the
  "cleaned" event. Finished jobs are judged by their score (finishedOn); waiting, delayed and
  prioritized ones by processedOn/timestamp. Locked jobs are left alone.
  KEYS[1..12] as worker_step.lua   KEYS[13] the state's key
  ARGV[1] job key prefix   ARGV[2] cutoff (ms; older goes)   ARGV[3] limit (0 = none)
  ARGV[4] state: completed, failed, delayed, prioritized, wait or paused
  Returns the removed ids.
]]
local q = bullQueue(KEYS, ARGV[1])
local cutoff, limit, state = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local setKey = KEYS[13]
local isList = state == "wait" or state == "paused"
local candidates
if state == "completed" or state == "failed" then
  if limit > 0 then
    candidates = rcall("ZRANGEBYSCORE", setKey, "-inf", cutoff, "LIMIT", 0, limit)
  else
    candidates = rcall("ZRANGEBYSCORE", setKey, "-inf", cutoff)
  end
elseif isList then
  candidates = rcall("LRANGE", setKey, 0, -1)
else
  candidates = rcall("ZRANGE", setKey, 0, -1)
end

local removed = {}
for _, jobId in ipairs(candidates) do
  if limit > 0 and #removed >= limit then break end
  local jobKey = q.prefix .. jobId
  local old = state == "completed" or state == "failed"
  if not old and rcall("EXISTS", jobKey .. ":lock") == 0 then
    local times = rcall("HMGET", jobKey, "processedOn", "timestamp")
    local ts = tonumber(times[1]) or tonumber(times[2])
    old = ts == nil or ts <= cutoff
  end
  if old then
    releaseDedupId(q, rcall("HGET", jobKey, "deid"), jobId)
    removeJobKeys(jobKey)
    if isList then rcall("LREM", setKey, 0, jobId) end
    removed[#removed + 1] = jobId
  end
end
if not isList then
  for from = 1, #removed, 7000 do
    rcall("ZREM", setKey, unpack(removed, from, math.min(from + 6999, #removed)))
  end
end
rcall("XADD", q.events, "*", "event", "cleaned", "count", #removed)
return removed
