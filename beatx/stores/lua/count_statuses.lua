-- One step of counting jobs per status, in Redis: an SSCAN of `jobs` and each job's status.
-- KEYS: jobs. ARGV: job prefix, cursor, count. Returns the next cursor, then status, n, ...
local scan = redis.call('SSCAN', KEYS[1], ARGV[2], 'COUNT', ARGV[3])
local counts = {}
for _, id in ipairs(scan[2]) do
  local status = redis.call('HGET', ARGV[1] .. id, 'status')
  if status then
    counts[status] = (counts[status] or 0) + 1
  end
end
local out = {scan[1]}
for status, n in pairs(counts) do
  out[#out + 1] = status
  out[#out + 1] = n
end
return out
