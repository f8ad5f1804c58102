-- Record a run in flight. KEYS: running (job), running (all). ARGV: job key, task id,
-- started at, expiry, member. Drops entries that had expired before this run started.
if redis.call('EXISTS', ARGV[1]) == 0 then
  return 0
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return 1
