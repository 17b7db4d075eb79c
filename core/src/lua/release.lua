-- release: compare-and-delete, or drop one hold of a re-entered lock; hand off to the next waiter.
-- KEYS[1] K  KEYS[2] H  KEYS[3] Q  KEYS[4] W
-- ARGV[1] value  ARGV[2] channel  ARGV[3] publish command ('PUBLISH' or 'SPUBLISH')
-- ARGV[4] '1' if the lock was taken with an owner id (only those can have several holds)
-- Replies: {1, woken waiter id or ''} released;  {2, holds left} still held;  {0} not held
-- The holder fields of H are left as they are: they describe K only while H.v equals K.
local K, H, Q, W = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local value = ARGV[1]
if redis.call('GET', K) ~= value then return {0} end
if ARGV[4] == '1' then
  local h = redis.call('HMGET', H, 'v', 'n')
  if h[1] == value and (tonumber(h[2]) or 1) > 1 then
    return {2, redis.call('HINCRBY', H, 'n', -1)}
  end
end
redis.call('DEL', K)
return {1, wake_head(Q, W, ARGV[2], ARGV[3]) or ''}
