-- Delete a job with its claim and run state.
-- KEYS: jobs, schedule, claims, changes, running (all). ARGV: job prefix, running prefix,
-- channel, id, run ledger key. Returns 1 if the job existed.
-- Runs after helpers.lua (prepended by the store).
local id = ARGV[4]
if redis.call('DEL', ARGV[1] .. id) == 0 then
  return 0
end
redis.call('SREM', KEYS[1], id)
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
local rkey = ARGV[2] .. id
for _, task in ipairs(redis.call('ZRANGE', rkey, 0, -1)) do
  redis.call('ZREM', KEYS[5], id .. '\0' .. task)
end
redis.call('DEL', rkey)
redis.call('DEL', ARGV[5])
notify(KEYS[4], ARGV[3])
return 1
