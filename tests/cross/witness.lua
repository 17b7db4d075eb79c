-- SPDX-License-Identifier: MIT OR Apache-2.0
-- The witness of the cross-language tests: a fenced write, as storage protected by fencing
-- tokens would do it (`UPDATE ... WHERE fence < $token`). Accepted only when the token is
-- above every token accepted before; every write, accepted or not, is logged.
--   KEYS[1] witness hash (fields: token, writer, accepted, rejected)
--   ARGV[1] fencing token (decimal; tokens stay below 2^53, exact in Lua numbers)
--   ARGV[2] writer name
-- Returns 1 (accepted) or 0 (rejected: a token at or below the last accepted one).
local last = redis.call('HGET', KEYS[1], 'token')
local log = KEYS[1] .. ':log'
if last and tonumber(ARGV[1]) <= tonumber(last) then
  redis.call('HINCRBY', KEYS[1], 'rejected', 1)
  redis.call('RPUSH', log, 'rejected ' .. ARGV[1] .. ' ' .. ARGV[2])
  return 0
end
redis.call('HSET', KEYS[1], 'token', ARGV[1], 'writer', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'accepted', 1)
redis.call('RPUSH', log, 'accepted ' .. ARGV[1] .. ' ' .. ARGV[2])
return 1
