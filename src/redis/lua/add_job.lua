--[[
  Adds jobs the way BullMQ's own add scripts leave them, so Node producers, workers and
  dashboards read them: the job hash, the added/waiting|delayed events, and the job id in wait
  (FIFO: LPUSH, LIFO: RPUSH), prioritized (priority * 2^32 + pc counter) or delayed
  ((timestamp + delay) * 0x1000 + n), with the marker a blocked worker waits on. Several jobs
  per call share the per-call work (meta reads, the marker), in order.

  KEYS[1] wait      KEYS[2] meta     KEYS[3] id        KEYS[4] delayed   KEYS[5] prioritized
  KEYS[6] pc        KEYS[7] marker   KEYS[8] events    KEYS[9] active
  ARGV[1] key prefix of jobs ("<prefix>:<queue>:")    ARGV[2] timestamp (ms)
  then 7 per job: custom job id or "", name, data (JSON), opts (JSON, as stored in the hash),
  delay (ms), priority, "1" for LIFO
  Returns {jobId, 1 when added or 0 when a job with that id already existed, ...}.
]]
local rcall = redis.call
local maxEvents = rcall("HGET", KEYS[2], "opts.maxLenEvents")
if not maxEvents then
  maxEvents = 10000
  rcall("HSET", KEYS[2], "opts.maxLenEvents", maxEvents)
end
local timestamp = tonumber(ARGV[2])
local held = nil -- paused or at global concurrency: no marker, workers are not woken
local wake = false
local result = {}

for base = 3, #ARGV, 7 do
  local jobCounter = rcall("INCR", KEYS[3])
  local jobId = ARGV[base]
  if jobId == "" then jobId = tostring(jobCounter) end
  local name, delay, priority = ARGV[base + 1], tonumber(ARGV[base + 4]), tonumber(ARGV[base + 5])
  local jobKey = ARGV[1] .. jobId
  if rcall("EXISTS", jobKey) == 1 then
    rcall("XADD", KEYS[8], "MAXLEN", "~", maxEvents, "*", "event", "duplicated", "jobId", jobId)
    result[#result + 1], result[#result + 2] = jobId, 0
  else
    rcall("HSET", jobKey, "name", name, "data", ARGV[base + 2], "opts", ARGV[base + 3],
          "timestamp", timestamp, "delay", delay, "priority", priority)
    rcall("XADD", KEYS[8], "*", "event", "added", "jobId", jobId, "name", name)
    if delay > 0 then
      local due = timestamp + delay
      local minScore = due * 0x1000
      local maxScore = (due + 1) * 0x1000 - 1
      local score = minScore
      local last = rcall("ZREVRANGEBYSCORE", KEYS[4], maxScore, minScore, "WITHSCORES", "LIMIT",
                         0, 1)
      if last[2] then score = math.min(tonumber(last[2]) + 1, maxScore) end
      rcall("ZADD", KEYS[4], score, jobId)
      rcall("XADD", KEYS[8], "MAXLEN", "~", maxEvents, "*", "event", "delayed", "jobId", jobId,
            "delay", due)
      local first = rcall("ZRANGE", KEYS[4], 0, 0, "WITHSCORES")
      if first[2] then rcall("ZADD", KEYS[7], tonumber(first[2]) / 0x1000, "1") end
    else
      if held == nil then
        local meta = rcall("HMGET", KEYS[2], "paused", "concurrency")
        local limit = tonumber(meta[2]) -- not a number: no limit
        held = meta[1] ~= false or (limit ~= nil and rcall("LLEN", KEYS[9]) >= limit)
      end
      if priority > 0 then
        local counter = rcall("INCR", KEYS[6])
        rcall("ZADD", KEYS[5], priority * 0x100000000 + counter % 0x100000000, jobId)
      else
        rcall(ARGV[base + 6] == "1" and "RPUSH" or "LPUSH", KEYS[1], jobId)
      end
      wake = wake or not held
      rcall("XADD", KEYS[8], "MAXLEN", "~", maxEvents, "*", "event", "waiting", "jobId", jobId)
    end
    result[#result + 1], result[#result + 2] = jobId, 1
  end
end
if wake then rcall("ZADD", KEYS[7], 0, "0") end
return result
