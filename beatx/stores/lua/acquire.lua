-- Claim due jobs. KEYS: lease, schedule, claims.
-- ARGV: owner ('' for none), now (what is due, and runs in flight), limit, claim lifetime
-- (seconds), job prefix, running prefix, claim token, claim clock ('' for the server's: claim
-- deadlines and the lease are judged by it), definition prefix, then the hash fields to return
-- (`RECORD_FIELDS`). Returns id, the record (the fields' values, then the definition string or
-- nil), running count for each claimed job, earliest first; each claimed job's hash holds the
-- token in its `claim` field until its write-back.
-- Runs after helpers.lua (prepended by the store).
local owner, now, limit, jp, rp = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[5], ARGV[6]
local claim_now = clock(ARGV[8])
local deadline = later(claim_now, ARGV[4])
check_owner(KEYS[1], owner, claim_now)
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', claim_now)) do
  unclaim(KEYS[3], jp .. id, id)
  reindex(KEYS[2], KEYS[3], jp .. id, id)
end
local out = {}
if limit <= 0 then
  return out
end
local token = ARGV[7]
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
local claims = {}
local dp = ARGV[9]
local fields = {unpack(ARGV, 10)}
for n, id in ipairs(ids) do
  claims[2 * n - 1] = deadline
  claims[2 * n] = id
  redis.call('HSET', jp .. id, 'claim', token)
  out[#out + 1] = id
  local record = redis.call('HMGET', jp .. id, unpack(fields))
  record[#fields + 1] = redis.call('GET', dp .. id)
  out[#out + 1] = record
  out[#out + 1] = redis.call('ZCOUNT', rp .. id, '(' .. now, '+inf')
end
in_chunks('ZREM', KEYS[2], ids)
in_chunks('ZADD', KEYS[3], claims)
return out
