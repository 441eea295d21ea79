--[[
  Renews the locks a worker still holds (BullMQ's extendLocks): a lock is extended only while
  it holds the caller's token, and the job leaves the stalled set.
  KEYS[1..12] as worker_step.lua
  ARGV[1] job key prefix   ARGV[2] lock duration (ms)   ARGV[3..] job id, token pairs
  Returns the ids whose lock was lost.
]]
local q = bullQueue(KEYS, ARGV[1])
local lost = {}
for i = 3, #ARGV, 2 do
  local jobId, token = ARGV[i], ARGV[i + 1]
  local lockKey = q.prefix .. jobId .. ":lock"
  if rcall("GET", lockKey) == token then
    rcall("SET", lockKey, token, "PX", ARGV[2])
    rcall("SREM", q.stalled, jobId)
  else
    lost[#lost + 1] = jobId
  end
end
return lost
