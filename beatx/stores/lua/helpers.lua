-- Shared helpers, prepended to the scripts that need them.
local function schedulable(status)
  return status == 'active' or status == 'failed'
end

-- Put a job in the schedule, or take it out, from its stored status and next run time.
-- A claimed job stays out: its release re-indexes it.
local function reindex(schedule, claims, job_key, id)
  if redis.call('ZSCORE', claims, id) then
    return
  end
  local st = redis.call('HMGET', job_key, 'status', 'next_run_ts')
  if st[2] and schedulable(st[1]) then
    redis.call('ZADD', schedule, st[2], id)
  else
    redis.call('ZREM', schedule, id)
  end
end

-- Run one command over a long list of arguments, 2,000 at a time (Lua's unpack has a limit).
local function in_chunks(command, key, items)
  for i = 1, #items, 2000 do
    redis.call(command, key, unpack(items, i, math.min(i + 1999, #items)))
  end
end

-- End a job's claim (its token and its entry in the claims set).
local function unclaim(claims, job_key, id)
  redis.call('ZREM', claims, id)
  redis.call('HDEL', job_key, 'claim')
end

-- Append entries (JSON strings) to a job's run ledger: a list cut to its last `cap` entries,
-- kept `ttl` seconds after its last entry. cap '0': the ledger is off.
local function ledger_add(key, cap, ttl, entries)
  if cap == '0' or #entries == 0 then
    return
  end
  local length = 0
  for i = 1, #entries, 1000 do
    length = redis.call('RPUSH', key, unpack(entries, i, math.min(i + 999, #entries)))
  end
  if length > tonumber(cap) then
    redis.call('LTRIM', key, -tonumber(cap), -1)
  end
  redis.call('EXPIRE', key, ttl)
end

-- A job's "added" audit entry kept in its hash (field `added`: JSON [at, status, source,
-- actor]; the rest of the entry is what the definition says) is moved to the job's audit log,
-- with the definition it describes, before that definition changes or the log grows.
local function keep_added(job_key, def_key, history_key, id)
  local added = redis.call('HGET', job_key, 'added')
  if not added then
    return
  end
  local definition = redis.call('GET', def_key) or cjson.null
  redis.call('RPUSH', history_key, cjson.encode({job_id = id, added = added, definition = definition}))
  redis.call('HDEL', job_key, 'added')
end

local function notify(changes, channel)
  local n = redis.call('INCR', changes)
  redis.call('PUBLISH', channel, n)
end

-- The time leases and claims are judged by: the caller's (a decimal string, tests with a
-- fake clock) or, given '', the server's own (TIME), so beats' clocks need not agree.
local function clock(now)
  if now ~= '' then
    return now
  end
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end

-- A time ``seconds`` after ``now`` (decimal strings, microseconds kept).
local function later(now, seconds)
  return string.format('%.6f', tonumber(now) + tonumber(seconds))
end

local function check_owner(lease, owner, now)
  if owner == '' then
    return
  end
  now = clock(now)
  local l = redis.call('HMGET', lease, 'owner', 'expires_at')
  if l[1] ~= owner or not l[2] or tonumber(l[2]) <= tonumber(now) then
    -- A string, not error({err = ...}): Redis 6's script error handler fails on a table.
    error('BEATX_LEASE_LOST beat does not hold the leader lease')
  end
end
