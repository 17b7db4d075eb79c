-- release: compare-and-delete, or drop one hold of a re-entered lock; hand off to the next waiter.
-- KEYS[1] K  KEYS[2] H  KEYS[3] Q  KEYS[4] W
-- ARGV[1] value: K's value as the hold knows it ('' = whatever K holds, for a hold whose
--         acquisition reply was lost)
-- ARGV[2] hold id: the value of the acquisition that made the hold
-- ARGV[3] channel  ARGV[4] publish command ('PUBLISH' or 'SPUBLISH')
-- ARGV[5] '1' if the lock was taken with an owner id (only those can have several holds)
-- Replies: {1, woken waiter id or ''} released;  {2, holds left} still held;  {0} not held
-- Each hold of an owned lock is recorded as H field 'r:<hold id>', so a release sent again after
-- a lost reply never drops a second hold.
local K, H, Q, W = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local value, hold = ARGV[1], ARGV[2]
local cur = redis.call('GET', K)
if not cur then return {0} end
if value ~= '' and cur ~= value then return {0} end
if ARGV[5] == '1' and redis.call('HGET', H, 'v') == cur then
  if redis.call('HDEL', H, 'r:' .. hold) == 0 then return {0} end
  local n = redis.call('HINCRBY', H, 'n', -1)
  if n > 0 then return {2, n} end
elseif cur ~= hold then
  return {0}
end
redis.call('DEL', K)
return {1, wake_head(Q, W, ARGV[3], ARGV[4]) or ''}
