--[[
  Moves finished jobs back in line to run again, as BullMQ's retryJobs / Job.retry do: up to
  ARGV[3] of the oldest failed (or completed) jobs finished by ARGV[4], or just the job ARGV[5].
  finishedOn, processedOn and failedReason/returnvalue are cleared; attemptsMade is kept unless
  ARGV[6] is "1". Jobs with a priority go back to prioritized (BullMQ's bulk retry ignores it).
  KEYS[1..12] as worker_step.lua
  ARGV[1] job key prefix   ARGV[2] "failed" or "completed"   ARGV[3] batch size
  ARGV[4] finished at or before (ms)   ARGV[5] one job id or ""   ARGV[6] reset attempts "1"/"0"
  Returns how many jobs moved; -1 no such job, -3 the job is not in that state.
]]
local q = bullQueue(KEYS, ARGV[1])
local state = ARGV[2]
local set = state == "failed" and q.failed or q.completed
local valueField = state == "failed" and "failedReason" or "returnvalue"
local ids
if ARGV[5] ~= "" then
  if rcall("EXISTS", q.prefix .. ARGV[5]) == 0 then return -1 end
  if not rcall("ZSCORE", set, ARGV[5]) then return -3 end
  ids = {ARGV[5]}
else
  ids = rcall("ZRANGEBYSCORE", set, "-inf", ARGV[4], "LIMIT", 0, tonumber(ARGV[3]))
end
if #ids == 0 then return 0 end
local events = maxEvents(q.meta)
for _, jobId in ipairs(ids) do
  local jobKey = q.prefix .. jobId
  rcall("ZREM", set, jobId)
  if ARGV[6] == "1" then
    rcall("HDEL", jobKey, "finishedOn", "processedOn", valueField, "atm", "ats")
  else
    rcall("HDEL", jobKey, "finishedOn", "processedOn", valueField)
  end
  -- One job goes back as BullMQ's reprocessJob puts it: a lifo job at the front (the right
  -- end, where workers take from). The bulk retry LPUSHes every job, as moveJobsToWait does.
  local lifo = false
  if ARGV[5] ~= "" then
    local ok, opts = pcall(cjson.decode, rcall("HGET", jobKey, "opts") or "{}")
    lifo = ok and type(opts) == "table" and opts.lifo == true
  end
  requeue(q, jobKey, jobId, lifo and "RPUSH" or "LPUSH")
  rcall("XADD", q.events, "MAXLEN", "~", events, "*", "event", "waiting", "jobId", jobId,
        "prev", state)
end
return #ids
