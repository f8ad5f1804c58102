-- Take or renew the lease. KEYS: lease. ARGV: owner, now, expires at. Returns 1 if held.
local l = redis.call('HMGET', KEYS[1], 'owner', 'expires_at')
if l[1] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'expires_at', ARGV[3])
  return 1
end
if not l[1] or not l[2] or tonumber(l[2]) <= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'acquired_at', ARGV[2], 'expires_at', ARGV[3])
  return 1
end
return 0
