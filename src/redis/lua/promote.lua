--[[
  Moves delayed jobs to wait (or prioritized) at once, as BullMQ's promote / promoteJobs do:
  the job ARGV[2], or up to ARGV[3] of the soonest when ARGV[2] is "".
  KEYS[1..12] as worker_step.lua
  ARGV[1] job key prefix   ARGV[2] job id or ""   ARGV[3] batch size
  Returns how many moved; -3 when the job is not delayed.
]]
local q = bullQueue(KEYS, ARGV[1])
local ids
if ARGV[2] ~= "" then
  if not rcall("ZSCORE", q.delayed, ARGV[2]) then return -3 end
  ids = {ARGV[2]}
else
  ids = rcall("ZRANGE", q.delayed, 0, tonumber(ARGV[3]) - 1)
end
if #ids == 0 then return 0 end
rcall("ZREM", q.delayed, unpack(ids))
for _, jobId in ipairs(ids) do
  local jobKey = q.prefix .. jobId
  requeue(q, jobKey, jobId, "LPUSH")
  rcall("XADD", q.events, "*", "event", "waiting", "jobId", jobId, "prev", "delayed")
  rcall("HSET", jobKey, "delay", 0)
end
return #ids
