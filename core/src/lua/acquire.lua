-- acquire: take the lock, re-enter it (same explicit owner), or queue as a waiter.
-- KEYS[1] lock key K   KEYS[2] holder hash H   KEYS[3] queue Q   KEYS[4] waiter hash W
-- ARGV[1] value (fresh per acquisition; also the id of the hold it makes)
-- ARGV[2] ttl_ms  ARGV[3] owner ('' = none)  ARGV[4] priority
-- ARGV[5] waiter id ('' = do not queue)  ARGV[6] fair ('1'/'0')
-- ARGV[7] waiter lease ms  ARGV[8] fence grace ms
-- ARGV[9] channel  ARGV[10] publish command (to hand over when a victim leaves a free lock)
-- ARGV[11] unused (kept for the argument layout)
-- ARGV[12] '1' if this waiter may already be queued (not its first attempt)
-- Replies:
--   {1, value, token, hold_count, validity_ms}  acquired (hold_count > 1: re-entered)
--   {0, pttl, holder_kind}   busy; pttl of K (-1 none, -2 free but not this waiter's turn:
--                            then holder_kind is how long, in ms, the head has to claim it);
--                            holder_kind 1 = a txcoord holder (announces its release), 0 = foreign
--   {-1}                     this waiter was marked as a deadlock victim (entry removed)
local K, H, Q, W = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local value, ttl, owner, prio = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local wid, fair = ARGV[5], ARGV[6] == '1'
local lease, grace = tonumber(ARGV[7]), tonumber(ARGV[8])

-- Redis time, read once per call
local clock = nil
local function now()
  clock = clock or now_us()
  return clock
end
local function now_ms()
  return math.floor(now() / 1000)
end

local mine = false
if wid ~= '' and ARGV[12] == '1' then
  mine = redis.call('HGET', W, wid)
  if mine and string.sub(mine, 1, 1) == 'a' then
    redis.call('ZREM', Q, wid)
    redis.call('HDEL', W, wid)
    if redis.call('EXISTS', K) == 0 then wake_head(Q, W, ARGV[9], ARGV[10]) end
    return {-1}
  end
end

local function leave_queue()
  if mine then
    redis.call('ZREM', Q, wid)
    redis.call('HDEL', W, wid)
  end
end

local function join_queue()
  if wid == '' then return end
  local since = fmt(now_ms())
  if mine then
    since = string.match(mine, '^%a|%d+|(%d+)|') or since
    -- non-fair: a waiter that lost its chance goes to the back, so the next release wakes
    -- another one (release notices go to the head only)
    if not fair then redis.call('ZADD', Q, 'XX', fmt(now()), wid) end
  end
  -- ZADD NX: a first attempt, or an entry dropped meanwhile (its claim ran out) queues anew
  redis.call('ZADD', Q, 'NX', fmt(now()), wid)
  local state = fair and 'f|' or 'w|'
  redis.call('HSET', W, wid, state .. fmt(now_ms() + lease) .. '|' .. since .. '|' .. prio .. '|' .. owner)
  if redis.call('PTTL', Q) < lease then redis.call('PEXPIRE', Q, fmt(lease)) end
  if redis.call('PTTL', W) < lease then redis.call('PEXPIRE', W, fmt(lease)) end
end

-- Fair mode: only the first live waiter may take a free lock. A head that does not claim a
-- free lock within the claim window is skipped (its entry expires).
local my_turn = true
local head_claim = 0
if fair then
  for i = 1, 65 do
    local head = redis.call('ZRANGE', Q, 0, 0)[1]
    if not head or head == wid then break end
    local entry = redis.call('HGET', W, head)
    local expires = entry_expiry(entry)
    if i == 65 or (expires and expires > now_ms()) then
      my_turn = false
      if expires and redis.call('EXISTS', K) == 0 then
        offer(W, head, entry, now_ms(), CLAIM_MS)
        head_claim = math.min(expires, now_ms() + CLAIM_MS) - now_ms()
      end
      break
    end
    redis.call('ZREM', Q, head)
    redis.call('HDEL', W, head)
  end
end

if my_turn and redis.call('SET', K, value, 'NX', 'PX', fmt(ttl)) then
  -- Granted. The fence never goes below the Redis clock (µs): a counter that came back older
  -- (a restart from an old snapshot, a failover to a lagging replica) cannot repeat a token.
  local token = math.max((tonumber(redis.call('HGET', H, 'f')) or 0) + 1, now())
  -- a fresh record: holds of earlier holders must not be mistaken for holds of this one
  redis.call('DEL', H)
  if owner ~= '' then
    redis.call('HSET', H, 'f', fmt(token), 'v', value, 'o', owner, 'n', '1', 'p', prio, 't', fmt(now_ms()), 'r:' .. value, '1')
  else
    redis.call('HSET', H, 'f', fmt(token), 'v', value, 'o', owner, 'n', '1', 'p', prio, 't', fmt(now_ms()))
  end
  redis.call('PEXPIRE', H, fmt(ttl + grace))
  leave_queue()
  return {1, value, token, 1, ttl}
end

local cur = redis.call('GET', K)
if cur == value then
  -- an earlier attempt with this value succeeded but its reply was lost: the same grant again
  local h = redis.call('HMGET', H, 'f', 'n')
  leave_queue()
  return {1, value, tonumber(h[1]) or 0, tonumber(h[2]) or 1, redis.call('PTTL', K)}
end
if cur then
  local h = redis.call('HMGET', H, 'v', 'o', 'f')
  local ours = h[1] == cur
  if ours and owner ~= '' and h[2] == owner then
    -- re-entry: one hold per acquisition, recorded under its value, so that an attempt retried
    -- after a lost reply is recognised instead of counted twice
    local n
    if redis.call('HSETNX', H, 'r:' .. value, '1') == 1 then
      n = redis.call('HINCRBY', H, 'n', 1)
    else
      n = tonumber(redis.call('HGET', H, 'n')) or 1
    end
    local pttl = redis.call('PTTL', K)
    if pttl >= 0 and pttl < ttl then
      redis.call('PEXPIRE', K, fmt(ttl))
      pttl = ttl
    end
    if redis.call('PTTL', H) < pttl + grace then redis.call('PEXPIRE', H, fmt(pttl + grace)) end
    leave_queue()
    return {1, cur, tonumber(h[3]) or 0, n, pttl}
  end
  join_queue()
  return {0, redis.call('PTTL', K), ours and 1 or 0}
end
-- free, but another waiter's turn
join_queue()
return {0, -2, head_claim}
