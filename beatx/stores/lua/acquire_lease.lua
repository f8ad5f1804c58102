-- Take or renew the lease. KEYS: lease. ARGV: owner, now ('' for the server's clock), ttl
-- seconds. Returns the expiry written (epoch seconds) if ``owner`` holds the lease, else 0.
-- Runs after helpers.lua (prepended by the store).
local now = clock(ARGV[2])
local expires = later(now, ARGV[3])
local l = redis.call('HMGET', KEYS[1], 'owner', 'expires_at')
if l[1] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'expires_at', expires)
  return expires
end
if not l[1] or not l[2] or tonumber(l[2]) <= tonumber(now) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'acquired_at', now, 'expires_at', expires)
  return expires
end
return 0
