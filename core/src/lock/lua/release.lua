-- release (a lock taken without an owner id): the seed's compare-and-delete; when waiters are
-- queued, wake the head of the queue. This is the uncontended path: no helpers, no TIME, one
-- argument, an integer reply.
-- KEYS[1] K  KEYS[2] Q  KEYS[3] W
-- ARGV[1] value
-- Reply: 1 released, 0 not held (already released, expired or taken)
local K, Q = KEYS[1], KEYS[2]
if redis.call('GET', K) ~= ARGV[1] then return 0 end
redis.call('DEL', K)
if redis.call('EXISTS', Q) == 1 then
  --@prelude
  -- the channel is the queue's key with the suffix ~c for ~q (PROTOCOL.md, section 1)
  wake_head(Q, KEYS[3], string.sub(Q, 1, -3) .. '~c', 'PUBLISH')
end
return 1
