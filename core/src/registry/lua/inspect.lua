-- inspect: one lock's holder and waiters, read atomically (pipelined per lock by readers).
-- KEYS[1] K  KEYS[2] H  KEYS[3] Q  KEYS[4] W
-- Reply: {value or nil, pttl, SMEMBERS H, ZRANGE Q 0 -1 WITHSCORES, HGETALL W, now_ms}
return {
  redis.call('GET', KEYS[1]),
  redis.call('PTTL', KEYS[1]),
  redis.call('SMEMBERS', KEYS[2]),
  redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES'),
  redis.call('HGETALL', KEYS[4]),
  fmt(math.floor(now_us() / 1000)),
}
