-- SPDX-License-Identifier: MIT OR Apache-2.0
-- txcoord protocol 2: helpers prepended to the scripts of the contended path (PROTOCOL.md).
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- integers are written as plain decimal strings, never in exponent form
local function fmt(n)
  return string.format('%.0f', n)
end

-- A waiter entry is "2|<state>|<expires_ms>|<since_ms>|<priority>|<owner>"; state 'w' (waits),
-- 'f' (waits in fair mode), 'a' (aborted: a deadlock victim).
local function entry_expiry(entry)
  if not entry then return nil end
  return tonumber(string.match(entry, '^2|%a|(%d+)|'))
end

-- How long a woken head of the queue has to claim a free lock before the waiters behind it may
-- skip it (a crashed head would otherwise hold everyone up until its lease ran out).
local CLAIM_MS = 500

-- Gives the entry of waiter `id` at most `ms` more to live (the claim window of a free lock).
local function offer(W, id, entry, now_ms, ms)
  local expires = entry_expiry(entry)
  if expires and expires > now_ms + ms then
    local state, rest = string.match(entry, '^2|(%a)|%d+(|.*)$')
    redis.call('HSET', W, id, '2|' .. state .. '|' .. fmt(now_ms + ms) .. rest)
  end
end

-- Wake the first live waiter of a lock: drop expired entries from the head of the queue, then
-- publish the live head's id on the lock's channel and give it CLAIM_MS to claim the lock.
-- A fair head ('f') has the next live waiter woken too, so that it can take over at once
-- should the head be dead. Returns the head's id or false.
local function wake_head(Q, W, channel, publish)
  local now_ms = nil
  for _ = 1, 64 do
    local head = redis.call('ZRANGE', Q, 0, 0)[1]
    if not head then return false end
    now_ms = now_ms or math.floor(now_us() / 1000)
    local entry = redis.call('HGET', W, head)
    local expires = entry_expiry(entry)
    if expires and expires > now_ms then
      offer(W, head, entry, now_ms, CLAIM_MS)
      redis.call(publish, channel, head)
      if string.sub(entry, 3, 3) == 'f' then
        for _, next_id in ipairs(redis.call('ZRANGE', Q, 1, 4)) do
          local e = entry_expiry(redis.call('HGET', W, next_id))
          if e and e > now_ms then
            redis.call(publish, channel, next_id)
            break
          end
        end
      end
      return head
    end
    redis.call('ZREM', Q, head)
    redis.call('HDEL', W, head)
  end
  return false
end
