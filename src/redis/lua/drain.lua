--[[
  Removes every job waiting to run (wait, legacy paused list, prioritized and, when asked,
  delayed) with its keys, as BullMQ's drain does; active and finished jobs stay, and so does
  each job scheduler's current job ("repeat:<scheduler>:<millis>" per the repeat zset), or the
  scheduler would stop. Deduplication ids pointing at removed jobs are freed; a flow parent
  whose last pending child goes is removed too (moved to wait when in another queue). Unlike BullMQ it
  also resets the priority counter once nothing is prioritized, and the marker to what is left.
  KEYS[1..12] as worker_step.lua   KEYS[13] paused (legacy list)   KEYS[14] repeat (schedulers)
  ARGV[1] job key prefix   ARGV[2] "1" to drain delayed jobs too
  Returns how many jobs were removed.
]]
local q = bullQueue(KEYS, ARGV[1])
local scheduled = {}
local schedulers = rcall("ZRANGE", KEYS[14], 0, -1, "WITHSCORES")
for i = 1, #schedulers, 2 do
  scheduled["repeat:" .. schedulers[i] .. ":" .. schedulers[i + 1]] = true
end

local removed = 0
-- Removes the jobs among `ids` that no scheduler holds; returns those kept and those removed.
local function removeAll(ids)
  local kept, gone = {}, {}
  for _, jobId in ipairs(ids) do
    if scheduled[jobId] then
      kept[#kept + 1] = jobId
    else
      local jobKey = q.prefix .. jobId
      removeParentDependency(jobKey, true, q.prefix)
      releaseDedupIdOnRemoval(q, jobKey, jobId)
      removeJobKeys(jobKey)
      gone[#gone + 1] = jobId
    end
  end
  removed = removed + #gone
  return kept, gone
end
local function drainList(key)
  local kept = removeAll(rcall("LRANGE", key, 0, -1))
  rcall("DEL", key)
  for from = 1, #kept, 7000 do
    rcall("RPUSH", key, unpack(kept, from, math.min(from + 6999, #kept)))
  end
end
local function drainSet(key)
  local kept, gone = removeAll(rcall("ZRANGE", key, 0, -1))
  if #kept == 0 then
    rcall("DEL", key)
    return
  end
  for from = 1, #gone, 7000 do
    rcall("ZREM", key, unpack(gone, from, math.min(from + 6999, #gone)))
  end
end

drainList(q.wait)
drainList(KEYS[13])
drainSet(q.prioritized)
if rcall("ZCARD", q.prioritized) == 0 then rcall("DEL", q.pc) end
if ARGV[2] == "1" then drainSet(q.delayed) end
if rcall("LLEN", q.wait) + rcall("ZCARD", q.prioritized) == 0 then
  local nextAt = nextDelayedAt(q.delayed)
  if not nextAt then
    rcall("DEL", q.marker)
  elseif ARGV[2] == "1" then
    -- Only a scheduler's delayed job is left: wake workers when it is due.
    rcall("DEL", q.marker)
    if rcall("HEXISTS", q.meta, "paused") == 0 then rcall("ZADD", q.marker, nextAt, "1") end
  end
end
return removed
