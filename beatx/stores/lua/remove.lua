-- Delete a job with its definition, claim and run state.
-- KEYS: jobs, schedule, claims, changes, running (all). ARGV: job prefix, running prefix,
-- channel, id, run ledger key, definition key, audit log key (kept: an "added" entry kept in
-- the job's hash goes there). Returns 1 if the job existed.
-- Runs after helpers.lua (prepended by the store).
local id = ARGV[4]
keep_added(ARGV[1] .. id, ARGV[6], ARGV[7], id)
redis.call('DEL', ARGV[6])
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
