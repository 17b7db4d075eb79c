-- abort_waiter: mark a waiter as a deadlock victim and wake it; its next attempt fails fast,
-- and reads why (the explained cycle) from the field '<waiter id>|why'.
-- KEYS[1] Q  KEYS[2] W
-- ARGV[1] waiter id  ARGV[2] channel  ARGV[3] publish command  ARGV[4] why ('' = nothing)
-- Reply: 1 marked, 0 no such waiter (or already marked): two probes racing on one cycle
-- abort one waiter.
local entry = redis.call('HGET', KEYS[2], ARGV[1])
if not entry or string.sub(entry, 1, 3) == '2|a' then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], '2|a' .. string.sub(entry, 4))
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], ARGV[1] .. '|why', ARGV[4]) end
redis.call(ARGV[3], ARGV[2], ARGV[1])
return 1
