--[[
  Appends a line to a job's log ("<job key>:logs"), keeping the newest ARGV[4] when given, as
  BullMQ's addLog does.
  KEYS[1..12] as worker_step.lua   ARGV[1] job key prefix   ARGV[2] job id   ARGV[3] line
  ARGV[4] lines to keep or ""
  Returns the log's length, or -1 when there is no such job.
]]
local jobKey = ARGV[1] .. ARGV[2]
if rcall("EXISTS", jobKey) == 0 then return -1 end
local count = rcall("RPUSH", jobKey .. ":logs", ARGV[3])
if ARGV[4] ~= "" then
  local keep = tonumber(ARGV[4])
  rcall("LTRIM", jobKey .. ":logs", -keep, -1)
  return math.min(keep, count)
end
return count
