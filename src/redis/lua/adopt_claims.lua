--[[
  Finds the claims of worker steps whose replies never arrived (the connection broke after the
  call went out): active jobs whose lock holds a token "<step prefix>-<i>" of a given step.
  Each lock is renewed and the job leaves the stalled set, as extend_locks does, so the worker
  runs the job now instead of a stalled check handing it back once the lock expires.
  KEYS[1..12] as worker_step.lua
  ARGV[1] job key prefix   ARGV[2] lock duration (ms)   ARGV[3..] step token prefixes
  Returns {{id, token, fields}, ...} as worker_step's claims.
]]
local q = bullQueue(KEYS, ARGV[1])
local steps = {}
for i = 3, #ARGV do steps[ARGV[i]] = true end
local adopted = {}
local active = rcall("LRANGE", q.active, 0, -1)
for k = 1, #active, 1000 do
  local ids, lockKeys = {}, {}
  for j = k, math.min(k + 999, #active) do
    ids[#ids + 1] = active[j]
    lockKeys[#lockKeys + 1] = q.prefix .. active[j] .. ":lock"
  end
  local tokens = rcall("MGET", unpack(lockKeys))
  for j, token in ipairs(tokens) do
    local step = token and string.match(token, "^(.*)%-%d+$")
    if step and steps[step] then
      -- A job key that is not a hash is left to expire: an error here would fail the whole
      -- call, and every retry, with the other jobs' locks already renewed.
      local hash = redis.pcall("HGETALL", q.prefix .. ids[j])
      if type(hash) == "table" and not hash.err then
        rcall("SET", lockKeys[j], token, "PX", ARGV[2])
        rcall("SREM", q.stalled, ids[j])
        adopted[#adopted + 1] = {ids[j], token, hash}
      end
    end
  end
end
return adopted
