-- A management write of one job's definition. KEYS: schedule, claims, changes.
-- ARGV: job key, id, expected revision ('' for any), def JSON, reschedule ('1' | '0'),
-- status, next run time ISO or '', next run epoch or '', channel, definition key, audit log key.
-- The definition goes to its own string (and out of the hash, where an older beatx kept it);
-- an "added" audit entry kept in the hash goes to the audit log first.
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
keep_added(key, ARGV[10], ARGV[11], id)
redis.call('HSET', key, 'revision', rev)
if redis.call('HDEL', key, 'def') == 1 then
  -- Moved from an older beatx's layout: the hash is written anew, so that Redis encodes it
  -- as a small hash again (it never converts a hash back to a listpack by itself).
  local state = redis.call('HGETALL', key)
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(state))
end
redis.call('SET', ARGV[10], ARGV[4])
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
