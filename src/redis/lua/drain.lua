--[[
  Removes every job waiting to run (wait, legacy paused list, prioritized and, when asked,
  delayed) with its keys, as BullMQ's drain does; active and finished jobs stay. Unlike BullMQ
  it also resets the priority counter and the marker once nothing is left to claim.
  KEYS[1..12] as worker_step.lua   KEYS[13] paused (legacy list)
  ARGV[1] job key prefix   ARGV[2] "1" to drain delayed jobs too
  Returns how many jobs were removed.
]]
local q = bullQueue(KEYS, ARGV[1])
local removed = 0
local function removeAll(ids)
  for _, jobId in ipairs(ids) do
    local jobKey = q.prefix .. jobId
    releaseDedupId(q, rcall("HGET", jobKey, "deid"), jobId)
    removeJobKeys(jobKey)
  end
  removed = removed + #ids
end
removeAll(rcall("LRANGE", q.wait, 0, -1))
removeAll(rcall("LRANGE", KEYS[13], 0, -1))
removeAll(rcall("ZRANGE", q.prioritized, 0, -1))
rcall("DEL", q.wait, KEYS[13], q.prioritized, q.pc)
if ARGV[2] == "1" then
  removeAll(rcall("ZRANGE", q.delayed, 0, -1))
  rcall("DEL", q.delayed, q.marker)
elseif rcall("ZCARD", q.delayed) == 0 then
  rcall("DEL", q.marker)
end
return removed
