--[[
  Functions shared by our worker-side scripts (prepended to each at build time). They write
  what BullMQ's own scripts write: the same keys, fields, scores, markers and events.
]]
local rcall = redis.call

-- HINCRBY that survives a counter a foreign client garbled (restarting it at 1): a script
-- error midway would leave a job half-moved, as Redis does not roll scripts back.
local function incrCounter(jobKey, field)
  local n = redis.pcall("HINCRBY", jobKey, field, 1)
  if type(n) == "table" then
    rcall("HSET", jobKey, field, 1)
    return 1
  end
  return n
end

local function maxEvents(metaKey)
  local n = rcall("HGET", metaKey, "opts.maxLenEvents")
  if not n then
    n = 10000
    rcall("HSET", metaKey, "opts.maxLenEvents", n)
  end
  return n
end

-- Paused, or at the queue's global concurrency (meta "concurrency").
local function pausedOrMaxed(metaKey, activeKey)
  local meta = rcall("HMGET", metaKey, "paused", "concurrency")
  if meta[1] then return true end
  -- Not a number: no limit (a script error here would leave a finish half-applied).
  local limit = tonumber(meta[2])
  return limit ~= nil and rcall("LLEN", activeKey) >= limit
end

local function priorityScore(priority, pcKey)
  return priority * 0x100000000 + rcall("INCR", pcKey) % 0x100000000
end

-- Next delayed job's due time in ms, or nil.
local function nextDelayedAt(delayedKey)
  local first = rcall("ZRANGE", delayedKey, 0, 0, "WITHSCORES")
  if first[2] then return math.floor(tonumber(first[2]) / 0x1000) end
  return nil
end

-- Moves due delayed jobs (up to 1000) to wait/prioritized with their "waiting" events.
local function promoteDelayed(q, now, held)
  local due = rcall("ZRANGEBYSCORE", q.delayed, 0, (now + 1) * 0x1000 - 1, "LIMIT", 0, 1000)
  if #due == 0 then return end
  rcall("ZREM", q.delayed, unpack(due))
  for _, jobId in ipairs(due) do
    local jobKey = q.prefix .. jobId
    local priority = tonumber(rcall("HGET", jobKey, "priority")) or 0
    if priority == 0 then
      rcall("LPUSH", q.wait, jobId)
    else
      rcall("ZADD", q.prioritized, priorityScore(priority, q.pc), jobId)
    end
    rcall("XADD", q.events, "*", "event", "waiting", "jobId", jobId, "prev", "delayed")
    rcall("HSET", jobKey, "delay", 0)
  end
  if not held then rcall("ZADD", q.marker, 0, "0") end
end

-- Puts a job back in line (wait or prioritized), waking workers unless the queue is held.
-- `front`: a job handed back unprocessed goes ahead of its priority level, as Node's
-- pushBackJobWithPriority puts it (no counter); otherwise behind it.
local function requeue(q, jobKey, jobId, pushCmd, front)
  local held = pausedOrMaxed(q.meta, q.active)
  local priority = tonumber(rcall("HGET", jobKey, "priority")) or 0
  if priority == 0 then
    rcall(pushCmd, q.wait, jobId)
  elseif front then
    rcall("ZADD", q.prioritized, priority * 0x100000000, jobId)
  else
    rcall("ZADD", q.prioritized, priorityScore(priority, q.pc), jobId)
  end
  if not held then rcall("ZADD", q.marker, 0, "0") end
end

-- 0 when `token` holds the job's lock (which is then released), -2 when the lock is gone,
-- -6 when another worker holds it.
local function releaseLock(q, jobKey, jobId, token)
  if token == "0" then return 0 end
  local holder = rcall("GET", jobKey .. ":lock")
  if holder == token then
    rcall("DEL", jobKey .. ":lock")
    rcall("SREM", q.stalled, jobId)
    return 0
  end
  if holder then return -6 end
  return -2
end

local function removeJobKeys(jobKey)
  return rcall("DEL", jobKey, jobKey .. ":logs", jobKey .. ":dependencies",
               jobKey .. ":processed", jobKey .. ":failed", jobKey .. ":unsuccessful")
end

-- A finished job frees its deduplication id (BullMQ's "deid"), unless a TTL still holds it.
local function releaseDedupId(q, dedupId, jobId)
  if not dedupId then return end
  local key = q.prefix .. "de:" .. dedupId
  local pttl = rcall("PTTL", key)
  if pttl == 0 or (pttl == -1 and rcall("GET", key) == jobId) then rcall("DEL", key) end
end

-- Puts a delayed job in the delayed set, due at `due` (ms), with BullMQ's score (the low 12
-- bits order jobs due in the same ms), its "delayed" event and the marker of the next due job.
local function addDelayed(q, jobId, due, maxLen)
  local minScore, maxScore = due * 0x1000, (due + 1) * 0x1000 - 1
  local score = minScore
  local last = rcall("ZREVRANGEBYSCORE", q.delayed, maxScore, minScore, "WITHSCORES", "LIMIT",
                     0, 1)
  if last[2] then score = math.min(tonumber(last[2]) + 1, maxScore) end
  rcall("ZADD", q.delayed, score, jobId)
  rcall("XADD", q.events, "MAXLEN", "~", maxLen, "*", "event", "delayed", "jobId", jobId,
        "delay", due)
  local nextAt = nextDelayedAt(q.delayed)
  if nextAt then rcall("ZADD", q.marker, nextAt, "1") end
end

-- After a job with a deduplication id finished (completed or failed): a job a Node producer
-- added with keepLastIfActive while this one was active waits in the "dn:<id>" hash (name,
-- data, opts, jid, and pk/pd/pdk/rjk for flows and schedulers). It becomes a real job now, as
-- BullMQ's requeueDeduplicatedJob makes it in moveToFinished: the id counter is incremented
-- (always, as Node), the job takes the id stored in "jid" (else the counter's), "de:<id>"
-- names it (without TTL under keepLastIfActive), its hash, "added" and "waiting"/"delayed"
-- events, list or set and marker are an add's, with `timestamp` (the finish) as its
-- timestamp; then "dn:<id>" is deleted. Unlike Node, a "jid" that names a job added since is
-- not overwritten: the job takes the counter's id instead.
local function requeueDeduplicatedJob(q, dedupId, timestamp)
  local nextKey = q.prefix .. "dn:" .. dedupId
  if rcall("EXISTS", nextKey) == 0 then return end
  local nextJob = rcall("HMGET", nextKey, "name", "data", "opts", "pk", "pd", "pdk", "rjk", "jid")
  local counter = tostring(rcall("INCR", q.prefix .. "id"))
  local jobId = nextJob[8] or counter
  if nextJob[8] and rcall("EXISTS", q.prefix .. jobId) == 1 then jobId = counter end
  local jobKey = q.prefix .. jobId
  local optsText = nextJob[3] or "{}"
  -- Opts a foreign client garbled read as none, rather than failing the finish midway.
  local ok, opts = pcall(cjson.decode, optsText)
  if not ok or type(opts) ~= "table" then opts = {} end
  local de = type(opts.de) == "table" and opts.de or {}

  local dedupKey = q.prefix .. "de:" .. dedupId
  local ttl = tonumber(de.ttl)
  if de.keepLastIfActive or not ttl or ttl <= 0 then
    rcall("SET", dedupKey, jobId)
  else
    rcall("SET", dedupKey, jobId, "PX", math.floor(ttl))
  end

  local name = nextJob[1] or ""
  local delay = math.floor(tonumber(opts.delay) or 0)
  local priority = math.floor(tonumber(opts.priority) or 0)
  local fields = {"name", name, "data", nextJob[2] or "{}", "opts", optsText,
                  "timestamp", timestamp, "delay", delay, "priority", priority}
  if nextJob[4] then
    fields[#fields + 1], fields[#fields + 2] = "parentKey", nextJob[4]
    fields[#fields + 1], fields[#fields + 2] = "parent", nextJob[5] or ""
  end
  if nextJob[7] then fields[#fields + 1], fields[#fields + 2] = "rjk", nextJob[7] end
  fields[#fields + 1], fields[#fields + 2] = "deid", dedupId
  rcall("HSET", jobKey, unpack(fields))
  rcall("XADD", q.events, "*", "event", "added", "jobId", jobId, "name", name)

  local maxLen = maxEvents(q.meta)
  if delay > 0 then
    addDelayed(q, jobId, tonumber(timestamp) + delay, maxLen)
  else
    local held = pausedOrMaxed(q.meta, q.active)
    if priority > 0 then
      rcall("ZADD", q.prioritized, priorityScore(priority, q.pc), jobId)
    else
      rcall(opts.lifo == true and "RPUSH" or "LPUSH", q.wait, jobId)
    end
    if not held then rcall("ZADD", q.marker, 0, "0") end
    rcall("XADD", q.events, "MAXLEN", "~", maxLen, "*", "event", "waiting", "jobId", jobId)
  end
  if nextJob[6] then rcall("SADD", nextJob[6], jobKey) end
  rcall("DEL", nextKey)
end

-- A job being removed (not finished) frees its deduplication id whenever the id still points
-- at it, TTL or not, with any pending "dn:" (next) entry: BullMQ's rule on removal.
local function releaseDedupIdOnRemoval(q, jobKey, jobId)
  local dedupId = rcall("HGET", jobKey, "deid")
  if not dedupId then return end
  local key = q.prefix .. "de:" .. dedupId
  if rcall("GET", key) == jobId then
    rcall("DEL", key, q.prefix .. "dn:" .. dedupId)
  end
end

-- A removed job that its flow parent still waits for is crossed off the parent's
-- dependencies, as BullMQ's removeParentDependencyKey does. When it was the last one the
-- parent leaves waiting-children: `hard` (drain, clean) removes a parent of the same queue
-- (`baseKey`) with its keys, and the same for its own parent, and moves one of another queue
-- to that queue's wait silently; otherwise (remove) the parent goes to wait with the
-- "waiting" event. The parent is pushed on the right, as BullMQ does.
local function removeParentDependency(jobKey, hard, baseKey)
  local parentKey = rcall("HGET", jobKey, "parentKey")
  if not parentKey or parentKey == "" or rcall("EXISTS", parentKey) == 0 then return end
  if rcall("SREM", parentKey .. ":dependencies", jobKey) == 0 then return end
  if rcall("SCARD", parentKey .. ":dependencies") > 0 then return end
  local parentId = string.match(parentKey, ".*:(.*)")
  local parentPrefix = string.sub(parentKey, 1, #parentKey - #parentId)
  if rcall("ZREM", parentPrefix .. "waiting-children", parentId) == 0 then return end
  if hard and parentPrefix == baseKey then
    removeParentDependency(parentKey, hard, baseKey)
    local dedupId = rcall("HGET", parentKey, "deid")
    if dedupId and rcall("GET", parentPrefix .. "de:" .. dedupId) == parentId then
      rcall("DEL", parentPrefix .. "de:" .. dedupId, parentPrefix .. "dn:" .. dedupId)
    end
    removeJobKeys(parentKey)
    return
  end
  rcall("RPUSH", parentPrefix .. "wait", parentId)
  if not pausedOrMaxed(parentPrefix .. "meta", parentPrefix .. "active") then
    rcall("ZADD", parentPrefix .. "marker", 0, "0")
  end
  if not hard then
    rcall("XADD", parentPrefix .. "events", "*", "event", "waiting", "jobId", parentId, "prev",
          "waiting-children")
  end
end

-- True for a job scheduler's current iteration ("repeat:<key>:<millis>" whose hash names the
-- scheduler in "rjk" and whose millis is the scheduler's score in `repeatKey`), which BullMQ's
-- drain and clean leave alone and its removeJob refuses: deleting it stops the scheduler.
local function isSchedulerJob(jobId, jobKey, repeatKey)
  local schedulerId = rcall("HGET", jobKey, "rjk")
  if not schedulerId then return false end
  local millis = rcall("ZSCORE", repeatKey, schedulerId)
  return millis ~= false and jobId == "repeat:" .. schedulerId .. ":" .. millis
end

local function bullQueue(keys, prefix)
  return {wait = keys[1], active = keys[2], prioritized = keys[3], events = keys[4],
          stalled = keys[5], limiter = keys[6], delayed = keys[7], meta = keys[8], pc = keys[9],
          marker = keys[10], completed = keys[11], failed = keys[12], prefix = prefix}
end
