--[[
  Adds one job the way BullMQ's own add scripts leave it, so Node producers, workers and
  dashboards read it: the job hash, the added/waiting|delayed events, and the job id in wait
  (FIFO: LPUSH, LIFO: RPUSH), prioritized (priority * 2^32 + pc counter) or delayed
  ((timestamp + delay) * 0x1000 + n), with the marker a blocked worker waits on.

  KEYS[1] wait      KEYS[2] meta     KEYS[3] id        KEYS[4] delayed   KEYS[5] prioritized
  KEYS[6] pc        KEYS[7] marker   KEYS[8] events    KEYS[9] active
  ARGV[1] key prefix of jobs ("<prefix>:<queue>:")    ARGV[2] custom job id or ""
  ARGV[3] name      ARGV[4] timestamp (ms)             ARGV[5] data (JSON)
  ARGV[6] opts (JSON, as stored in the hash)           ARGV[7] delay (ms)
  ARGV[8] priority  ARGV[9] "1" for LIFO
  Returns {jobId, 1} when added, {jobId, 0} when a job with that id already existed.
]]
local rcall = redis.call
local maxEvents = rcall("HGET", KEYS[2], "opts.maxLenEvents")
if not maxEvents then
  maxEvents = 10000
  rcall("HSET", KEYS[2], "opts.maxLenEvents", maxEvents)
end

local jobCounter = rcall("INCR", KEYS[3])
local jobId = ARGV[2]
if jobId == "" then
  jobId = tostring(jobCounter)
end
local jobKey = ARGV[1] .. jobId
if rcall("EXISTS", jobKey) == 1 then
  rcall("XADD", KEYS[8], "MAXLEN", "~", maxEvents, "*", "event", "duplicated", "jobId", jobId)
  return {jobId, 0}
end

local timestamp = tonumber(ARGV[4])
local delay = tonumber(ARGV[7])
local priority = tonumber(ARGV[8])
rcall("HMSET", jobKey, "name", ARGV[3], "data", ARGV[5], "opts", ARGV[6], "timestamp", timestamp,
      "delay", delay, "priority", priority)
rcall("XADD", KEYS[8], "*", "event", "added", "jobId", jobId, "name", ARGV[3])

if delay > 0 then
  local due = timestamp + delay
  local minScore = due * 0x1000
  local maxScore = (due + 1) * 0x1000 - 1
  local score = minScore
  local last = rcall("ZREVRANGEBYSCORE", KEYS[4], maxScore, minScore, "WITHSCORES", "LIMIT", 0, 1)
  if last[2] then
    score = math.min(tonumber(last[2]) + 1, maxScore)
  end
  rcall("ZADD", KEYS[4], score, jobId)
  rcall("XADD", KEYS[8], "MAXLEN", "~", maxEvents, "*", "event", "delayed", "jobId", jobId,
        "delay", due)
  local first = rcall("ZRANGE", KEYS[4], 0, 0, "WITHSCORES")
  if first[2] then
    rcall("ZADD", KEYS[7], tonumber(first[2]) / 0x1000, "1")
  end
  return {jobId, 1}
end

-- Paused, or at the queue's global concurrency: no marker, workers are not woken.
local meta = rcall("HMGET", KEYS[2], "paused", "concurrency")
local held = meta[1] ~= false or
  (meta[2] ~= false and rcall("LLEN", KEYS[9]) >= tonumber(meta[2]))

if priority > 0 then
  local counter = rcall("INCR", KEYS[6])
  rcall("ZADD", KEYS[5], priority * 0x100000000 + counter % 0x100000000, jobId)
else
  rcall(ARGV[9] == "1" and "RPUSH" or "LPUSH", KEYS[1], jobId)
end
if not held then
  rcall("ZADD", KEYS[7], 0, "0")
end
rcall("XADD", KEYS[8], "MAXLEN", "~", maxEvents, "*", "event", "waiting", "jobId", jobId)
return {jobId, 1}
