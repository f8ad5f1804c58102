-- Write back claimed jobs and end their claims. KEYS: lease, schedule, claims, changes.
-- ARGV: owner ('' for none), now, job prefix, channel, then a JSON list with per release
-- `[id, claim token, next run time ISO or '', next run epoch or '', status, last run time
-- ISO or '', last run epoch or '', fired, missed, skipped, error or null, messages, run
-- ledger entries (JSON strings: one per fire sent, and the missed / skipped records)]`, then
-- this database's number, then for the run ledger: its key prefix, cap ('0': off), ttl; then
-- the messages: `messages` triples per release, in order,
-- `database, list, payload` (a fire's broker message: the atomic fire). A release's
-- messages are pushed (LPUSH, in order) exactly when something of it is written.
-- Per job (see `~beatx.stores.base.JobRelease`): held under the token -> everything
-- applied and the claim ends; no claim (a reschedule dropped it) -> only the counters, last
-- run and error; another claim, or the token already written back (`released_claim`: a
-- retry after an error that hid the success) -> nothing. Every item is checked before the
-- first write, so a bad one fails the call with nothing written. What is written also goes
-- to the job's run ledger (one `sent` entry per fire, the missed / skipped summaries).
-- Runs after helpers.lua (prepended by the store).
check_owner(KEYS[1], ARGV[1], ARGV[2])
local jp = ARGV[3]
local items = cjson.decode(ARGV[5])
local first_message = {}
local next_message = 10
local ledger_prefix, ledger_cap, ledger_ttl = ARGV[7], ARGV[8], ARGV[9]
for i, r in ipairs(items) do
  if type(r[1]) ~= 'string' or type(r[2]) ~= 'string' or type(r[3]) ~= 'string'
      or (r[4] ~= '' and not tonumber(r[4])) or type(r[5]) ~= 'string' or type(r[6]) ~= 'string'
      or (r[7] ~= '' and not tonumber(r[7])) or type(r[8]) ~= 'number' or type(r[9]) ~= 'number'
      or type(r[10]) ~= 'number' or (r[11] ~= cjson.null and type(r[11]) ~= 'string')
      or type(r[12]) ~= 'number' or type(r[13]) ~= 'table' then
    error('BEATX_BAD_RELEASE malformed write-back item for job ' .. tostring(r[1]))
  end
  first_message[i] = next_message
  next_message = next_message + 3 * r[12]
end
if next_message ~= #ARGV + 1 or not tonumber(ARGV[6]) then
  error('BEATX_BAD_RELEASE the messages do not match the write-back items')
end
for m = 10, #ARGV, 3 do
  if not tonumber(ARGV[m]) then
    error('BEATX_BAD_RELEASE bad database number for a message: ' .. ARGV[m])
  end
end
local changed = false
local released, due, unscheduled = {}, {}, {}
-- database -> list -> payloads, pushed after every write of this database is done
local pushes, databases = {}, {}
for i, r in ipairs(items) do
  local id = r[1]
  local key = jp .. id
  local current = redis.call('HMGET', key, 'revision', 'claim', 'status', 'next_run_ts', 'last_run_ts',
    'released_claim')
  local ours = current[2] == r[2]
  local again = r[2] ~= '' and current[6] == r[2]
  if current[1] and (ours or not current[2]) and not again then
    if r[2] ~= '' then
      redis.call('HSET', key, 'released_claim', r[2])
    end
    for m = first_message[i], first_message[i] + 3 * r[12] - 1, 3 do
      local db = ARGV[m]
      if not pushes[db] then
        pushes[db] = {}
        databases[#databases + 1] = db
      end
      local lists = pushes[db]
      if not lists[ARGV[m + 1]] then
        lists[ARGV[m + 1]] = {}
      end
      local payloads = lists[ARGV[m + 1]]
      payloads[#payloads + 1] = ARGV[m + 2]
    end
    if r[8] ~= 0 then
      redis.call('HINCRBY', key, 'total_run_count', r[8])
    end
    ledger_add(ledger_prefix .. id, ledger_cap, ledger_ttl, r[13])
    if r[9] ~= 0 then
      redis.call('HINCRBY', key, 'misfire_count', r[9])
    end
    if r[10] ~= 0 then
      redis.call('HINCRBY', key, 'skip_count', r[10])
    end
    local set = {}
    if r[6] ~= '' and (not current[5] or tonumber(r[7]) > tonumber(current[5])) then
      set[#set + 1] = 'last_run_time'
      set[#set + 1] = r[6]
      set[#set + 1] = 'last_run_ts'
      set[#set + 1] = r[7]
    end
    if r[11] ~= cjson.null then
      set[#set + 1] = 'last_error'
      set[#set + 1] = r[11]
    end
    if ours then
      local status, next_ts = current[3], false
      released[#released + 1] = id
      if r[3] == '' then
        redis.call('HDEL', key, 'next_run_time', 'next_run_ts')
      else
        set[#set + 1] = 'next_run_time'
        set[#set + 1] = r[3]
        set[#set + 1] = 'next_run_ts'
        set[#set + 1] = r[4]
        next_ts = r[4]
      end
      if status ~= r[5] and (r[5] == 'completed' or (r[5] == 'failed' and r[11] ~= cjson.null)) then
        status = r[5]
        set[#set + 1] = 'status'
        set[#set + 1] = status
        changed = true
      end
      if next_ts and schedulable(status) then
        due[#due + 1] = next_ts
        due[#due + 1] = id
      else
        unscheduled[#unscheduled + 1] = id
      end
    end
    if #set > 0 then
      redis.call('HSET', key, unpack(set))
    end
  end
end
in_chunks('ZREM', KEYS[3], released)
for _, id in ipairs(released) do
  redis.call('HDEL', jp .. id, 'claim')
end
in_chunks('ZADD', KEYS[2], due)
in_chunks('ZREM', KEYS[2], unscheduled)
if changed then
  notify(KEYS[4], ARGV[4])
end
-- The fires' messages, in the broker's database (SELECT in a script is the script's own).
for _, db in ipairs(databases) do
  if db ~= ARGV[6] then
    redis.call('SELECT', db)
  end
  for list, payloads in pairs(pushes[db]) do
    in_chunks('LPUSH', list, payloads)
  end
  if db ~= ARGV[6] then
    redis.call('SELECT', ARGV[6])
  end
end
return 0
