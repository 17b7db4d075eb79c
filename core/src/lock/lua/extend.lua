-- extend (and renew): the seed's compare-and-pexpire. While the owner holds the lock more than
-- once (H has several holds), no hold may shorten it under the others: the expiry then only
-- moves later (PEXPIRE GT).
-- KEYS[1] K  KEYS[2] H
-- ARGV[1] value  ARGV[2] ms
-- Replies: 1 extended;  -1 the key is gone (expired);  -2 the key holds another value (taken)
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  local holds = redis.call('SCARD', KEYS[2])
  if holds > 1 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2], 'GT')
    redis.call('PEXPIRE', KEYS[2], ARGV[2], 'GT')
  else
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    if holds == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
  end
  return 1
end
if cur then return -2 end
return -1
