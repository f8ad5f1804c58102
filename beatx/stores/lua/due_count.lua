-- The backlog: unclaimed jobs due at `now` plus claimed jobs whose next run is at or before
-- it (a frozen or dead leader's). KEYS: schedule, claims. ARGV: now, job prefix.
-- Runs after helpers.lua (prepended by the store).
local n = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[1])
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local st = redis.call('HMGET', ARGV[2] .. id, 'next_run_ts', 'status')
  if st[1] and schedulable(st[2]) and tonumber(st[1]) <= tonumber(ARGV[1]) then
    n = n + 1
  end
end
return n
