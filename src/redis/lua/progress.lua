--[[
  Sets a job's progress (JSON) with the "progress" event, as BullMQ's updateProgress does.
  KEYS[1..12] as worker_step.lua   ARGV[1] job key prefix   ARGV[2] job id   ARGV[3] progress
  Returns 0, or -1 when there is no such job.
]]
local q = bullQueue(KEYS, ARGV[1])
local jobKey = q.prefix .. ARGV[2]
if rcall("EXISTS", jobKey) == 0 then return -1 end
rcall("HSET", jobKey, "progress", ARGV[3])
rcall("XADD", q.events, "MAXLEN", "~", maxEvents(q.meta), "*", "event", "progress", "jobId",
      ARGV[2], "data", ARGV[3])
return 0
