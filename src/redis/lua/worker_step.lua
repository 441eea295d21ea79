--[[
  One step of a worker: finishes K jobs it holds, then claims up to M more, in one call.

  Finishing writes what BullMQ's moveToFinished / retryJob / moveToDelayed /
  moveJobFromActiveToWait write; claiming what its moveToActive writes (lock with a per-job
  token, "active" event, processedOn, pb, ats). A finish is refused unless the caller's token
  still holds the job's lock (-2 lock missing, -6 held by another, -1 no job, -3 not active).

  KEYS[1..12]  wait active prioritized events stalled limiter delayed meta pc marker completed
               failed
  ARGV[1] job key prefix ("<prefix>:<queue>:")  ARGV[2] now (ms), or "" for Redis's clock
  ARGV[3] M: jobs to claim                      ARGV[4] lock duration (ms)
  ARGV[5] worker name or ""                     ARGV[6] token prefix (claim i gets "<prefix>-<i>")
  ARGV[7] worker rate limit max or ""           ARGV[8] worker rate limit duration (ms) or ""
  ARGV[9] K: jobs to finish, then 10 arguments each:
    id, token, kind, value, stacktrace JSON or "", keep count (-1 all, 0 none, n), keep age (s)
    or "", extra, ms between the job's finish and now (its finishedOn and set score), keep
    limit (jobs one age trim removes at most, as keepJobs.limit)
  kind: "completed" (value = return value JSON), "failed" (value = reason, extra = attempts),
        "retry" (value = reason, extra = "1" for LIFO), "delay" (value = reason, extra = delay
        ms), "release" (hand back; value unused, extra = "unstarted" gives back the claim's
        "ats" count)
  Returns {finish codes, claimed {{id, token, fields}, ...}, rate limit ttl ms, next delayed ms}.
]]
local q = bullQueue(KEYS, ARGV[1])
local nowText = ARGV[2] -- written as given: no number-to-text formatting per job
if nowText == "" then -- a claim sent ahead, behind a blocking wait: stamp it when it runs
  local time = rcall("TIME")
  nowText = time[1] .. string.format("%03d", math.floor(tonumber(time[2]) / 1000))
end
local now = tonumber(nowText)
local finishCount = tonumber(ARGV[9])

-- Lock keys to delete, stalled ids to clear and completed/failed set entries, written once
-- per step for all finished jobs (a lock or set entry per call would cost a call per job).
local unlocked, unstalled = {}, {}
local finished = {}     -- set key -> {score, id, ...}, in the order the jobs finished
-- "set|count|age|limit" -> {set, count, age, limit, finishes that asked for it}
local trims, trimOrder = {}, {}
local trimmed = {}      -- ids removed by this step's trims

local function removeJobs(set, ids)
  for _, id in ipairs(ids) do
    removeJobKeys(q.prefix .. id)
    trimmed[id] = true
  end
  for k = 1, #ids, 5000 do rcall("ZREM", set, unpack(ids, k, math.min(k + 4999, #ids))) end
end

local function removeOldJobs(set, keepCount, keepAge, keepLimit, finishes)
  if keepAge then
    -- Node trims by age once per finished job, up to limit each; a negative limit is all.
    local cutoff = now - keepAge * 1000
    local limit = keepLimit < 0 and -1 or keepLimit * finishes
    removeJobs(set, rcall("ZREVRANGEBYSCORE", set, cutoff, "-inf", "LIMIT", 0, limit))
  end
  if keepCount > 0 then
    local excess = rcall("ZCARD", set) - keepCount
    if excess <= 0 then return end
    -- Equal scores rank by id text ("9" above "12"), not by when the jobs finished. All
    -- below the last score to go are removed; of those at it, earlier steps' jobs go first
    -- (by id text, as Node ranks them), then this step's in the order they finished.
    local lowest = rcall("ZRANGE", set, 0, excess - 1, "WITHSCORES")
    local edge = lowest[#lowest]
    local old = {}
    for k = 1, #lowest, 2 do
      if lowest[k + 1] ~= edge then old[#old + 1] = lowest[k] end
    end
    local entries, mine, edgeScore = finished[set] or {}, {}, tonumber(edge)
    for k = 2, #entries, 2 do mine[entries[k]] = true end
    for _, id in ipairs(rcall("ZRANGEBYSCORE", set, edge, edge)) do
      if #old >= excess then break end
      if not mine[id] then old[#old + 1] = id end
    end
    for k = 2, #entries, 2 do
      if #old >= excess then break end
      if tonumber(entries[k - 1]) == edgeScore and not trimmed[entries[k]] then
        old[#old + 1] = entries[k]
      end
    end
    removeJobs(set, old)
  end
end

-- Every redis.call costs about as much again as the command itself, so each job's fields are
-- read in one HMGET and written in one HSET.
local function finish(base, holder)
  local jobId, token, kind, value = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local stack, keepCount, keepAge = ARGV[base + 4], tonumber(ARGV[base + 5]),
                                    tonumber(ARGV[base + 6])
  local extra, keepLimit = ARGV[base + 7], tonumber(ARGV[base + 9]) or 1000
  local finishedOn = nowText
  local ago = tonumber(ARGV[base + 8]) or 0
  if ago > 0 then finishedOn = tostring(now - ago) end
  local jobKey = q.prefix .. jobId
  local job = rcall("HMGET", jobKey, "name", "deid", "atm", "defa")
  if not job[1] and rcall("EXISTS", jobKey) == 0 then return -1 end
  if token ~= "0" then
    if holder ~= token then return holder and -6 or -2 end
    unlocked[#unlocked + 1] = jobKey .. ":lock"
    unstalled[#unstalled + 1] = jobId
  end
  if rcall("LREM", q.active, -1, jobId) < 1 then return -3 end
  if kind == "release" then
    if extra == "unstarted" and (tonumber(rcall("HGET", jobKey, "ats")) or 0) > 0 then
      rcall("HINCRBY", jobKey, "ats", -1)
    end
    requeue(q, jobKey, jobId, "RPUSH", true)
    rcall("XADD", q.events, "MAXLEN", "~", maxEvents(q.meta), "*", "event", "waiting", "jobId",
          jobId, "prev", "active")
    return 0
  end

  -- A counter a foreign client garbled restarts at 1 (as incrCounter does).
  local attemptsMade = (tonumber(job[3]) or 0) + 1
  local fields = {"atm", attemptsMade}
  if kind ~= "completed" then
    fields[#fields + 1], fields[#fields + 2] = "failedReason", value
    if stack ~= "" then fields[#fields + 1], fields[#fields + 2] = "stacktrace", stack end
  end
  if kind == "completed" or kind == "failed" then
    releaseDedupId(q, job[2], jobId)
    -- Before this job's own event, as Node's moveToFinished.
    if job[2] then requeueDeduplicatedJob(q, job[2], nowText) end
    local field = kind == "completed" and "returnvalue" or "failedReason"
    if keepCount ~= 0 then
      local set = kind == "completed" and q.completed or q.failed
      local entries = finished[set] or {}
      finished[set] = entries
      entries[#entries + 1], entries[#entries + 2] = finishedOn, jobId
      if kind == "completed" then fields[#fields + 1], fields[#fields + 2] = field, value end
      fields[#fields + 1], fields[#fields + 2] = "finishedOn", finishedOn
      rcall("HSET", jobKey, unpack(fields))
      if job[4] and kind == "failed" then rcall("HDEL", jobKey, "defa") end  -- as Node
      -- Keep-all (the default) trims nothing, so it is not registered at all.
      if keepCount > 0 or keepAge then
        local trim = set .. "|" .. keepCount .. "|" .. (keepAge or "") .. "|" .. keepLimit
        if trims[trim] then
          trims[trim][5] = trims[trim][5] + 1
        else
          trims[trim] = {set, keepCount, keepAge, keepLimit, 1}
          trimOrder[#trimOrder + 1] = trim
        end
      end
    else
      removeJobKeys(jobKey)
    end
    rcall("XADD", q.events, "*", "event", kind, "jobId", jobId, field, value, "prev", "active")
    if kind == "failed" and attemptsMade >= (tonumber(extra) or 1) then
      rcall("XADD", q.events, "*", "event", "retries-exhausted", "jobId", jobId,
            "attemptsMade", attemptsMade)
    end
  elseif kind == "retry" then
    requeue(q, jobKey, jobId, extra == "1" and "RPUSH" or "LPUSH")
    rcall("HSET", jobKey, unpack(fields))
    rcall("XADD", q.events, "MAXLEN", "~", maxEvents(q.meta), "*", "event", "waiting", "jobId",
          jobId, "prev", "active")
  else -- delay
    local delay = tonumber(extra)
    fields[#fields + 1], fields[#fields + 2] = "delay", delay
    rcall("HSET", jobKey, unpack(fields))
    addDelayed(q, jobId, now + delay, maxEvents(q.meta))
  end
  return 0
end

-- The rate limiter's remaining window when `limit` jobs were already started in it, else 0.
local function limitedFor(limit)
  if limit and limit <= tonumber(rcall("GET", q.limiter) or 0) then
    local pttl = rcall("PTTL", q.limiter)
    if pttl == 0 then rcall("DEL", q.limiter) end
    if pttl > 0 then return pttl end
  end
  return 0
end

local function claim(wanted)
  local claimed = {}
  local meta = rcall("HMGET", q.meta, "paused", "concurrency", "max", "duration")
  local concurrency = tonumber(meta[2])
  local held = meta[1] ~= false or
    (concurrency ~= nil and rcall("LLEN", q.active) >= concurrency)
  promoteDelayed(q, now, held)
  if wanted <= 0 then return claimed, 0 end
  local limit = tonumber(meta[3] or ARGV[7])
  local window = tonumber(ARGV[8]) or tonumber(meta[4])
  local ttl = limitedFor(limit)
  if ttl > 0 or held then return claimed, ttl, true end

  local lockMs, name, tokenPrefix = ARGV[4], ARGV[5], ARGV[6]
  -- Without a global concurrency or rate limit, ids are taken in two calls (wait, then
  -- prioritized) instead of one per job; the order is the same as one RPOPLPUSH at a time.
  local batch = nil
  if not concurrency and not limit and wanted > 1 then
    batch = {}
    for _, jobId in ipairs(rcall("RPOP", q.wait, wanted) or {}) do
      if string.sub(jobId, 1, 2) ~= "0:" then batch[#batch + 1] = jobId end -- pre-v5 marker
    end
    local need = wanted - #batch
    if need > 0 then
      local top = rcall("ZPOPMIN", q.prioritized, need)
      for k = 1, #top, 2 do batch[#batch + 1] = top[k] end
      if #top / 2 < need then rcall("DEL", q.pc) end -- emptied: restart the counter
    end
    if #batch > 0 then rcall("LPUSH", q.active, unpack(batch)) end
  end
  for i = 1, batch and #batch or wanted do
    local jobId = batch and batch[i]
    if concurrency and rcall("LLEN", q.active) >= concurrency then break end
    if limit and i > 1 then
      ttl = limitedFor(limit)
      if ttl > 0 then break end
    end
    if not batch then jobId = rcall("RPOPLPUSH", q.wait, q.active) end
    if jobId and string.sub(jobId, 1, 2) == "0:" then -- a pre-v5 marker in wait
      rcall("LREM", q.active, 1, jobId)
      jobId = rcall("RPOPLPUSH", q.wait, q.active)
    end
    if not jobId then
      local top = rcall("ZPOPMIN", q.prioritized)
      if #top == 0 then
        rcall("DEL", q.pc)
        break
      end
      jobId = top[1]
      rcall("LPUSH", q.active, jobId)
    end
    local jobKey = q.prefix .. jobId
    if limit and rcall("HEXISTS", jobKey, "defa") == 0 then
      if rcall("INCR", q.limiter) == 1 then
        rcall("PEXPIRE", q.limiter, math.floor(math.abs(window or 0)))
      end
    end
    local token = tokenPrefix .. "-" .. i
    rcall("SET", jobKey .. ":lock", token, "PX", lockMs)
    rcall("XADD", q.events, "*", "event", "active", "jobId", jobId, "prev", "waiting")
    -- Read the hash once, then write processedOn, pb and ats+1 in one HSET and patch the
    -- copy returned to the worker the same way.
    local hash = rcall("HGETALL", jobKey)
    local updates = {processedOn = nowText, ats = "1"}
    if name ~= "" then updates.pb = name end
    local at = {}
    for k = 1, #hash, 2 do
      if hash[k] == "ats" then updates.ats = tostring((tonumber(hash[k + 1]) or 0) + 1) end
      at[hash[k]] = k + 1
    end
    local write = {}
    for field, v in pairs(updates) do
      write[#write + 1], write[#write + 2] = field, v
      if at[field] then
        hash[at[field]] = v
      else
        hash[#hash + 1], hash[#hash + 2] = field, v
      end
    end
    rcall("HSET", jobKey, unpack(write))
    claimed[#claimed + 1] = {jobId, token, hash}
  end
  -- More left: wake the next worker (BullMQ re-adds the marker after every claim).
  if #claimed > 0 and (rcall("LLEN", q.wait) > 0 or rcall("ZCARD", q.prioritized) > 0) then
    rcall("ZADD", q.marker, 0, "0")
  end
  return claimed, ttl
end

local codes = {}
if finishCount > 0 then
  -- Trimming is approximate (MAXLEN ~) anyway: doing it on big steps and one ms in eight
  -- keeps the stream bounded without two extra calls on every step.
  if finishCount >= 8 or now % 8 == 0 then
    rcall("XTRIM", q.events, "MAXLEN", "~", maxEvents(q.meta))
  end
  local lockKeys = {}
  for i = 0, finishCount - 1 do lockKeys[i + 1] = q.prefix .. ARGV[10 + i * 10] .. ":lock" end
  local holders = rcall("MGET", unpack(lockKeys))
  for i = 0, finishCount - 1 do codes[#codes + 1] = finish(10 + i * 10, holders[i + 1]) end
  if #unlocked > 0 then
    rcall("DEL", unpack(unlocked))
    rcall("SREM", q.stalled, unpack(unstalled))
  end
  for set, entries in pairs(finished) do rcall("ZADD", set, unpack(entries)) end
  for _, trim in ipairs(trimOrder) do
    local t = trims[trim]
    removeOldJobs(t[1], t[2], t[3], t[4], t[5])
  end
end
local wanted = tonumber(ARGV[3])
local claimed, ttl, held = claim(wanted)
-- The caller waits for the next delayed job only when it got fewer jobs than it wanted.
local nextAt = 0
if #claimed < wanted then nextAt = nextDelayedAt(q.delayed) or 0 end
-- As moveToFinished: a step that asked for more is not drained while rate limited, paused,
-- at its global concurrency or with a delayed job to come.
local quiet = wanted <= 0 or (not held and nextAt == 0)
if finishCount > 0 and #claimed == 0 and quiet and rcall("LLEN", q.wait) == 0 and
    rcall("LLEN", q.active) == 0 and rcall("ZCARD", q.prioritized) == 0 then
  rcall("XADD", q.events, "*", "event", "drained")
end
return {codes, claimed, ttl, nextAt}
