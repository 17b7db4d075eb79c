-- extend (and renew): compare-and-pexpire, as the seed's extend script, plus the holder hash.
-- KEYS[1] K  KEYS[2] H
-- ARGV[1] value  ARGV[2] ms  ARGV[3] fence grace ms
-- Replies: 1 extended;  -1 the key is gone (expired);  -2 the key holds another value (taken)
-- While the owner holds the lock more than once, no hold may shorten it under the others: the
-- expiry then only moves later (PEXPIRE GT).
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  local h = redis.call('HMGET', KEYS[2], 'v', 'n')
  local ms = tonumber(ARGV[2])
  if h[1] == cur and (tonumber(h[2]) or 1) > 1 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2], 'GT')
    redis.call('PEXPIRE', KEYS[2], fmt(ms + tonumber(ARGV[3])), 'GT')
  else
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    redis.call('PEXPIRE', KEYS[2], fmt(ms + tonumber(ARGV[3])))
  end
  return 1
end
if cur then return -2 end
return -1
