-- acquire (the contended path, and every acquisition with an owner id or in fair mode): take
-- the lock, re-enter it (same explicit owner), or queue as a waiter.
-- KEYS[1] lock key K   KEYS[2] holds H   KEYS[3] queue Q   KEYS[4] waiter hash W
-- ARGV[1] hold id: "2:<uuid>", fresh per acquisition, the same in each of its attempts
-- ARGV[2] ttl_ms  ARGV[3] owner ('' = none)  ARGV[4] priority
-- ARGV[5] waiter id ('' = do not queue)  ARGV[6] fair ('1'/'0')  ARGV[7] waiter lease ms
-- ARGV[8] channel  ARGV[9] publish command (to hand over when a victim leaves a free lock)
-- ARGV[10] '1' if this waiter may already be queued (not its first attempt)
-- Replies:
--   {1, value, token, hold_count, validity_ms}  acquired (hold_count > 1: re-entered)
--   {0, pttl, hint}   busy; pttl of K; hint 1 = a txcoord holder (announces its release),
--                     0 = foreign; pttl -2: free but another waiter's turn, hint = what is
--                     left of that waiter's claim window (ms)
--   {-1, why}         this waiter was marked as a deadlock victim (entry removed); why: the
--                     explained cycle, as the aborting process wrote it (JSON, or '')
--   {-2, version}     K holds state of another txcoord protocol version
local K, H, Q, W = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local hold, ttl, owner, prio = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local wid, fair, lease = ARGV[5], ARGV[6] == '1', tonumber(ARGV[7])

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
if wid ~= '' and ARGV[10] == '1' then
  mine = redis.call('HGET', W, wid)
  if mine and string.sub(mine, 1, 3) == '2|a' then
    local why = redis.call('HGET', W, wid .. '|why') or ''
    redis.call('ZREM', Q, wid)
    redis.call('HDEL', W, wid, wid .. '|why')
    if redis.call('EXISTS', K) == 0 then wake_head(Q, W, ARGV[8], ARGV[9]) end
    return {-1, why}
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
    since = string.match(mine, '^2|%a|%d+|(%d+)|') or since
    -- non-fair: a waiter that lost its chance goes to the back, so the next release wakes
    -- another one (release notices go to the head only)
    if not fair then redis.call('ZADD', Q, 'XX', fmt(now()), wid) end
  end
  -- NX: a first attempt, or an entry dropped meanwhile (its claim ran out), queues anew
  redis.call('ZADD', Q, 'NX', fmt(now()), wid)
  local state = fair and '2|f|' or '2|w|'
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

if my_turn then
  -- The fencing token is the Redis clock in µs at the grant (PROTOCOL.md, section 5). With an
  -- owner, the value carries it, with the priority and the owner, for re-entries and readers.
  local token = now()
  local value = hold
  if owner ~= '' then value = hold .. ':' .. fmt(token) .. ':' .. prio .. ':' .. owner end
  if redis.call('SET', K, value, 'NX', 'PX', ttl) then
    leave_queue()
    return {1, value, token, 1, ttl}
  end
end

local cur = redis.call('GET', K)
if cur then
  local base, token, cur_owner = string.match(cur, '^(2:[^:]+):(%d+):%-?%d+:(.*)$')
  base = base or cur
  if base == hold then
    -- an earlier attempt of this acquisition was granted but its reply was lost: the same
    -- grant again (an anonymous grant's token is read anew: any instant of the hold orders it)
    leave_queue()
    return {1, cur, token or now(), math.max(redis.call('SCARD', H), 1), redis.call('PTTL', K)}
  end
  if owner ~= '' and cur_owner == owner then
    -- re-entry: one hold per acquisition in H (the first holder's included), so that an
    -- attempt retried after a lost reply is recognised instead of counted twice
    if redis.call('EXISTS', H) == 0 then
      redis.call('SADD', H, base, hold)
    else
      redis.call('SADD', H, hold)
    end
    local pttl = redis.call('PTTL', K)
    if pttl >= 0 and pttl < ttl then
      redis.call('PEXPIRE', K, ttl)
      pttl = ttl
    end
    if pttl >= 0 then redis.call('PEXPIRE', H, pttl) end
    leave_queue()
    return {1, cur, tonumber(token), redis.call('SCARD', H), pttl}
  end
  local version = string.match(cur, '^(%d+):')
  if version and version ~= '2' then return {-2, tonumber(version)} end
  join_queue()
  return {0, redis.call('PTTL', K), version and 1 or 0}
end
-- free, but another waiter's turn
join_queue()
return {0, -2, head_claim}
