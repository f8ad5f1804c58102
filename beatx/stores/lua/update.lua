-- A management write of one job's definition. KEYS: schedule, claims, changes.
-- ARGV: job key, id, expected revision ('' for any), def JSON, reschedule ('1' | '0'),
-- status, next run time ISO or '', next run epoch or '', channel.
-- Returns the new revision; -2 for a missing job, -3 for another revision (the stored one
-- follows as a second value). Counters and run records are never touched; with reschedule
-- the status and next run time are written and any claim ends.
-- Runs after helpers.lua (prepended by the store).
local key, id = ARGV[1], ARGV[2]
local stored = redis.call('HGET', key, 'revision')
if not stored then
  return {-2, 0}
end
if ARGV[3] ~= '' and stored ~= ARGV[3] then
  return {-3, tonumber(stored)}
end
local rev = tonumber(stored) + 1
redis.call('HSET', key, 'revision', rev, 'def', ARGV[4])
if ARGV[5] == '1' then
  unclaim(KEYS[2], key, id)
  redis.call('HSET', key, 'status', ARGV[6])
  if ARGV[7] == '' then
    redis.call('HDEL', key, 'next_run_time', 'next_run_ts')
  else
    redis.call('HSET', key, 'next_run_time', ARGV[7], 'next_run_ts', ARGV[8])
  end
  reindex(KEYS[1], KEYS[2], key, id)
end
notify(KEYS[3], ARGV[9])
return {rev, 0}
