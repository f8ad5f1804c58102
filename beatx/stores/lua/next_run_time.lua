-- The earliest unclaimed schedulable job. KEYS: schedule. ARGV: job prefix.
-- Returns its stored next run time (ISO) or nil.
local top = redis.call('ZRANGE', KEYS[1], 0, 0)
if #top == 0 then
  return false
end
return redis.call('HGET', ARGV[1] .. top[1], 'next_run_time')
