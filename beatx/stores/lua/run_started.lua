-- Record a run in flight. KEYS: running (job), running (all). ARGV: job key, task id,
-- started at, expiry, member, then for the run ledger: its key, cap, ttl, the entry (JSON).
-- Drops entries that had expired before this run started.
-- Runs after helpers.lua (prepended by the store).
if redis.call('EXISTS', ARGV[1]) == 0 then
  return 0
end
ledger_add(ARGV[6], ARGV[7], ARGV[8], {ARGV[9]})
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return 1
