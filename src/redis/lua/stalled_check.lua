--[[
  BullMQ's stalled-job check (moveStalledJobsToWait), safe beside Node workers: at most one
  check per interval runs (the "stalled-check" key). Jobs marked in the previous check whose
  lock is gone go back to wait with a "stalled" event; past maxStalledCount they carry a
  deferred failure ("defa") that the next worker to claim them records. Then every active job
  is marked for the next check; renewing a lock unmarks it.
  KEYS[1..12] as worker_step.lua   KEYS[13] stalled-check   KEYS[14] repeat
  ARGV[1] job key prefix  ARGV[2] now (ms)  ARGV[3] maxStalledCount  ARGV[4] interval (ms)
  Returns the ids moved back to wait.
]]
local q = bullQueue(KEYS, ARGV[1])
if rcall("EXISTS", KEYS[13]) == 1 then return {} end
rcall("SET", KEYS[13], ARGV[2], "PX", ARGV[4])
rcall("XTRIM", q.events, "MAXLEN", "~", maxEvents(q.meta))

local maxStalled = tonumber(ARGV[3])
local recovered = {}
local marked = rcall("SMEMBERS", q.stalled)
if #marked > 0 then
  rcall("DEL", q.stalled)
  for _, jobId in ipairs(marked) do
    if string.sub(jobId, 1, 2) == "0:" then
      rcall("LREM", q.active, 1, jobId)
    else
      local jobKey = q.prefix .. jobId
      if rcall("EXISTS", jobKey .. ":lock") == 0 and rcall("LREM", q.active, 1, jobId) > 0 then
        local stalledCount = incrCounter(jobKey, "stc")
        local schedulerId = rcall("HGET", jobKey, "rjk")
        local repeatable = schedulerId and
          (rcall("EXISTS", KEYS[14] .. ":" .. schedulerId) == 1 or
           rcall("ZSCORE", KEYS[14], schedulerId) ~= false)
        if stalledCount > maxStalled and not repeatable then
          rcall("HSET", jobKey, "defa", "job stalled more than allowable limit")
        end
        local held = pausedOrMaxed(q.meta, q.active)
        rcall("RPUSH", q.wait, jobId)
        if not held then rcall("ZADD", q.marker, 0, "0") end
        rcall("XADD", q.events, "*", "event", "waiting", "jobId", jobId, "prev", "active")
        rcall("XADD", q.events, "*", "event", "stalled", "jobId", jobId)
        recovered[#recovered + 1] = jobId
      end
    end
  end
end

local active = rcall("LRANGE", q.active, 0, -1)
for from = 1, #active, 7000 do
  rcall("SADD", q.stalled, unpack(active, from, math.min(from + 6999, #active)))
end
return recovered
