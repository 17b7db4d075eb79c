-- index: note that a lock has waiters, in a cross-resource index (its own slot): the index of
-- locks with waiters, or the index of the locks one owner waits on.
-- KEYS[1] index zset  ARGV[1] lock key  ARGV[2] lease ms
-- Members are lock keys scored by expiry (server ms); expired members are dropped here.
local now_ms = math.floor(now_us() / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], fmt(now_ms + lease), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now_ms))
if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], fmt(lease)) end
return 1
