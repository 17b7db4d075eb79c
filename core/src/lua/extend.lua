-- extend (and renew): compare-and-pexpire, as the seed's extend script, plus the holder hash.
-- KEYS[1] K  KEYS[2] H
-- ARGV[1] value  ARGV[2] ms  ARGV[3] fence grace ms
-- Replies: 1 extended;  -1 the key is gone (expired);  -2 the key holds another value (taken)
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], fmt(tonumber(ARGV[2]) + tonumber(ARGV[3])))
  return 1
end
if cur then return -2 end
return -1
