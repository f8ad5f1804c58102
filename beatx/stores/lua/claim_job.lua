-- Claim one job, whatever its next run time, for a fire sent outside the schedule
-- (`RedisStore.claim_job`, no lease owner). KEYS: jobs, schedule, claims.
-- ARGV: job id, its job key, its running key, claim lifetime (seconds), claim token, claim
-- clock ('' for the server's: claim deadlines are judged by it, as acquire.lua judges them),
-- now (runs in flight).
-- Returns -1 when there is no such job, 0 while a live claim holds it (nothing written), else
-- `{token, running count}`: the job's hash holds the token in its `claim` field and the id
-- moved from the schedule to the claims set, scored by the claim deadline, until its
-- write-back (release.lua) or the deadline (an expired claim is taken over here, as acquire.lua
-- takes it). Only the `claim` field is written: the caller reads the job itself.
-- Runs after helpers.lua (prepended by the store).
local id, job_key, running_key = ARGV[1], ARGV[2], ARGV[3]
if redis.call('SISMEMBER', KEYS[1], id) == 0 then
  return -1
end
local claim_now = clock(ARGV[6])
local held = redis.call('ZSCORE', KEYS[3], id)
if held and tonumber(held) > tonumber(claim_now) then
  return 0
end
redis.call('HSET', job_key, 'claim', ARGV[5])
redis.call('ZREM', KEYS[2], id)
redis.call('ZADD', KEYS[3], later(claim_now, ARGV[4]), id)
return {ARGV[5], redis.call('ZCOUNT', running_key, '(' .. ARGV[7], '+inf')}
