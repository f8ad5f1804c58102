-- Give the lease up if `owner` holds it (compare-and-delete). KEYS: lease. ARGV: owner.
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
