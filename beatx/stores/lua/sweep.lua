-- One step of the sweep that puts back in the schedule any job found in no index (a script
-- that failed half-way in an older beatx, a key edited by hand): an SSCAN of `jobs` and, for
-- each schedulable job with a next run that is neither scheduled nor claimed, a ZADD.
-- KEYS: jobs, schedule, claims. ARGV: job prefix, cursor, count.
-- Returns the next cursor, then the ids re-indexed.
-- Runs after helpers.lua (prepended by the store).
local scan = redis.call('SSCAN', KEYS[1], ARGV[2], 'COUNT', ARGV[3])
local out = {scan[1]}
for _, id in ipairs(scan[2]) do
  if not redis.call('ZSCORE', KEYS[2], id) and not redis.call('ZSCORE', KEYS[3], id) then
    local st = redis.call('HMGET', ARGV[1] .. id, 'status', 'next_run_ts')
    if st[2] and schedulable(st[1]) then
      redis.call('ZADD', KEYS[2], st[2], id)
      out[#out + 1] = id
    end
  end
end
return out
