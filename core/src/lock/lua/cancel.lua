-- cancel: a waiter gives up (timeout, cancellation); if the lock is free, wake the next waiter.
-- KEYS[1] K  KEYS[2] Q  KEYS[3] W
-- ARGV[1] waiter id  ARGV[2] channel  ARGV[3] publish command
-- Reply: the woken waiter id or ''
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1], ARGV[1] .. '|why')
if removed == 1 and redis.call('EXISTS', KEYS[1]) == 0 then
  return wake_head(KEYS[2], KEYS[3], ARGV[2], ARGV[3]) or ''
end
return ''
