-- Add, replace or update jobs.
-- KEYS: jobs, schedule, claims, changes.
-- ARGV: job prefix, mode ('add' | 'replace'), notify ('1' | '0'), channel, a JSON list with
-- per job `[id, [field, value, ...], status, next run epoch or '', definition JSON]`, then the
-- definition prefix, audit log prefix. The state goes in the job's hash, the definition in its
-- own string; a replaced job's "added" entry kept in its hash goes to its audit log first.
-- Returns per job its new revision, or -1 for a conflicting id (add). A replaced job loses
-- its claim (the record is written anew); a job that did not exist has none, so new jobs
-- are indexed in bulk.
-- Runs after helpers.lua (prepended by the store).
local jp, mode, dp, hp = ARGV[1], ARGV[2], ARGV[6], ARGV[7]
local out, changed, new_ids, due = {}, false, {}, {}
for n, item in ipairs(cjson.decode(ARGV[5])) do
  local id, fields = item[1], item[2]
  local key = jp .. id
  local exists = redis.call('EXISTS', key) == 1
  if exists and mode == 'add' then
    out[n] = -1
  else
    local rev = 1
    if exists then
      rev = (tonumber(redis.call('HGET', key, 'revision')) or 0) + 1
      keep_added(key, dp .. id, hp .. id, id)
      redis.call('DEL', key)
      redis.call('ZREM', KEYS[3], id)
    end
    redis.call('HSET', key, 'revision', rev, unpack(fields))
    redis.call('SET', dp .. id, item[5])
    if exists then
      reindex(KEYS[2], KEYS[3], key, id)
    else
      new_ids[#new_ids + 1] = id
      if item[4] ~= '' and schedulable(item[3]) then
        due[#due + 1] = item[4]
        due[#due + 1] = id
      end
    end
    out[n] = rev
    changed = true
  end
end
in_chunks('SADD', KEYS[1], new_ids)
in_chunks('ZADD', KEYS[2], due)
if changed and ARGV[3] == '1' then
  notify(KEYS[4], ARGV[4])
end
return out
