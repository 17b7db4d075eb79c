-- owner_index: note that an owner (a saga) waits on a lock, in that owner's record (its own
-- slot), so a deadlock probe can follow the owner's waits without reading the whole registry.
-- KEYS[1] owner record O (hash)  ARGV[1] lock key  ARGV[2] lease ms  ARGV[3] keep ms
-- Fields: 'since' = when the owner was first seen waiting (Redis ms; kept while the record
-- lives, so a retry of the same saga keeps its age), 'w:<lock key>' = expiry of that wait
-- (Redis ms). Expired waits are dropped here; the record lives `keep` ms after its last use.
local now_ms = math.floor(now_us() / 1000)
local O = KEYS[1]
redis.call('HSET', O, 'w:' .. ARGV[1], fmt(now_ms + tonumber(ARGV[2])))
redis.call('HSETNX', O, 'since', fmt(now_ms))
local fields = redis.call('HGETALL', O)
for i = 1, #fields, 2 do
  local f, v = fields[i], fields[i + 1]
  if string.sub(f, 1, 2) == 'w:' and tonumber(v) <= now_ms then redis.call('HDEL', O, f) end
end
redis.call('PEXPIRE', O, ARGV[3])
return 1
