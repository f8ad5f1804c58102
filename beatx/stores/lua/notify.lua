-- Bump the change counter and publish it. KEYS: changes. ARGV: channel.
-- Runs after helpers.lua (prepended by the store).
notify(KEYS[1], ARGV[1])
return 0
