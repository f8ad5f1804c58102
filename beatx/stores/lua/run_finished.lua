-- Record the end of a run (the rule of `beatx.stores.base.status_after_run`).
-- KEYS: running (job), running (all), schedule, claims. ARGV: job key, task id, member,
-- finished at ISO, duration ('' for none), has error ('1' | '0'; '2': leave the status, a
-- revoked run), error, id, then for the run ledger: its key, cap, ttl, the entry (JSON).
-- Runs after helpers.lua (prepended by the store).
local key = ARGV[1]
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[3])
if redis.call('EXISTS', key) == 0 then
  return 0
end
ledger_add(ARGV[9], ARGV[10], ARGV[11], {ARGV[12]})
redis.call('HSET', key, 'last_finished_at', ARGV[4])
if ARGV[5] == '' then
  redis.call('HDEL', key, 'last_duration')
else
  redis.call('HSET', key, 'last_duration', ARGV[5])
end
local st = redis.call('HMGET', key, 'status', 'next_run_ts')
local status = st[1]
if ARGV[6] == '2' then
  status = st[1]
elseif ARGV[6] == '1' then
  redis.call('HSET', key, 'last_error', ARGV[7])
  if status == 'active' or status == 'completed' then
    status = 'failed'
  end
elseif status == 'failed' then
  if st[2] then status = 'active' else status = 'completed' end
end
if status ~= st[1] then
  redis.call('HSET', key, 'status', status)
  reindex(KEYS[3], KEYS[4], key, ARGV[8])
end
-- No change notification: a run's end changes nothing the beat schedules by (ACTIVE and
-- FAILED both fire), and a beat holding a fire back for max_instances polls the job.
return 1
