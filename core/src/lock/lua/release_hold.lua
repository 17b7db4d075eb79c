-- release_hold (a lock taken with an owner id): drop this acquisition's hold; the lock is
-- deleted, and the head of the queue woken, when it was the owner's last hold.
-- KEYS[1] K  KEYS[2] H  KEYS[3] Q  KEYS[4] W
-- ARGV[1] K's value as the hold knows it ('' = unknown: an acquisition whose reply was lost)
-- ARGV[2] hold id (the acquisition's own "2:<uuid>")
-- Replies: 1 released;  2 still held by other holds of the owner;  0 this hold is not held
-- (released already, expired, or never granted): a release sent again after a lost reply
-- never drops another hold.
local K, H, Q = KEYS[1], KEYS[2], KEYS[3]
local value, hold = ARGV[1], ARGV[2]
local cur = redis.call('GET', K)
if not cur then return 0 end
if value ~= '' and cur ~= value then return 0 end
if redis.call('EXISTS', H) == 1 then
  if redis.call('SREM', H, hold) == 0 then return 0 end
  if redis.call('SCARD', H) > 0 then return 2 end
elseif string.sub(cur, 1, #hold + 1) ~= hold .. ':' and cur ~= hold then
  return 0
end
redis.call('DEL', K)
if redis.call('EXISTS', Q) == 1 then
  --@prelude
  wake_head(Q, KEYS[4], string.sub(Q, 1, -3) .. '~c', 'PUBLISH')
end
return 1
