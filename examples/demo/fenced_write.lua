-- SPDX-License-Identifier: MIT OR Apache-2.0
-- The demo's "storage": a write fenced by a lock's fencing token, as a database would check
-- `WHERE fence <= $token`. Shared by the Rust, Python and Node workers of `make demo`.
--
-- KEYS[1] the highest token that has written (the fence), KEYS[2] the data (a list of writes)
-- ARGV[1] the writer's fencing token, ARGV[2] what it writes
-- Returns 1 if the write is accepted, 0 if a newer token has written since (a stale holder).
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local token = tonumber(ARGV[1])
if token < last then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
