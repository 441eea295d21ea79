--[[
  Pauses or resumes a queue as BullMQ's pause script does: "paused" in meta stops claims and
  the marker is dropped; resuming moves any legacy "paused" list back to wait (7000 at a time)
  and restores the marker when jobs are waiting (or the delayed marker).
  KEYS[1..12] as worker_step.lua   KEYS[13] paused (legacy list)
  ARGV[1] "paused" or "resumed"   ARGV[2] "0" to skip the event (a resume's later calls)
  Returns how many jobs remain in the legacy paused list.
]]
local q = bullQueue(KEYS, "")
local remaining = 0
if ARGV[1] == "paused" then
  rcall("HSET", q.meta, "paused", 1)
  rcall("DEL", q.marker)
else
  rcall("HDEL", q.meta, "paused")
  if rcall("EXISTS", KEYS[13]) == 1 then
    if rcall("EXISTS", q.wait) == 0 then
      rcall("RENAME", KEYS[13], q.wait)
    else
      local jobs = rcall("LRANGE", KEYS[13], 0, 6999)
      rcall("RPUSH", q.wait, unpack(jobs))
      rcall("LTRIM", KEYS[13], #jobs, -1)
      remaining = rcall("LLEN", KEYS[13])
    end
  end
  if rcall("LLEN", q.wait) + rcall("ZCARD", q.prioritized) > 0 then
    rcall("ZADD", q.marker, 0, "0")
  else
    local nextAt = nextDelayedAt(q.delayed)
    if nextAt then rcall("ZADD", q.marker, nextAt, "1") end
  end
end
if ARGV[2] ~= "0" then rcall("XADD", q.events, "*", "event", ARGV[1]) end
return remaining
