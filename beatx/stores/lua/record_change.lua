-- Record a change in a job's audit log, or keep an "added" change in the job's hash.
-- KEYS: job, definition, audit log. ARGV: id, the change (JSON of JobChange), most entries
-- kept, the change as the hash keeps it (JSON [at, status, source, actor]; '' for none: append
-- it), the revision that change describes.
-- An "added" change is kept in the hash (see `keep_added`) when it is exactly what the
-- stored definition of that revision says, the log is empty and the definition is in its own
-- string; any later change, or write of the definition, moves it to the log first.
-- Returns 1 when kept in the hash, 0 when appended to the log.
-- Runs after helpers.lua (prepended by the store).
local job, def, log, id = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
if ARGV[4] ~= '' and redis.call('HGET', job, 'revision') == ARGV[5] and redis.call('EXISTS', def) == 1
    and redis.call('HEXISTS', job, 'def') == 0 and redis.call('EXISTS', log) == 0
    and redis.call('HEXISTS', job, 'added') == 0 then
  redis.call('HSET', job, 'added', ARGV[4])
  return 1
end
keep_added(job, def, log, id)
redis.call('RPUSH', log, ARGV[2])
redis.call('LTRIM', log, -tonumber(ARGV[3]), -1)
return 0
