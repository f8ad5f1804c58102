-- Record that a run asked for a retry, in the job's run ledger only (the run stays in
-- flight). KEYS: job, run ledger. ARGV: cap, ttl, the entry (JSON). Returns 0 (nothing
-- written) for an unknown job.
-- Runs after helpers.lua (prepended by the store).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
ledger_add(KEYS[2], ARGV[1], ARGV[2], {ARGV[3]})
return 1
