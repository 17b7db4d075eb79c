-- SPDX-License-Identifier: MIT OR Apache-2.0
-- txcoord protocol v1: helpers prepended to every script (see PROTOCOL.md).
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- integers are written as plain decimal strings, never in exponent form
local function fmt(n)
  return string.format('%.0f', n)
end

-- a waiter entry is "<state>|<expires_ms>|<since_ms>|<priority>|<owner>"
local function entry_expiry(entry)
  if not entry then return nil end
  return tonumber(string.match(entry, '^%a|(%d+)|'))
end

-- Wake the first live waiter of a lock: drop expired entries from the head of the
-- queue, then publish the live head's id on the lock's channel. Returns the id or false.
local function wake_head(Q, W, channel, publish)
  local now_ms = nil
  for _ = 1, 64 do
    local head = redis.call('ZRANGE', Q, 0, 0)[1]
    if not head then return false end
    now_ms = now_ms or math.floor(now_us() / 1000)
    local expires = entry_expiry(redis.call('HGET', W, head))
    if expires and expires > now_ms then
      redis.call(publish, channel, head)
      return head
    end
    redis.call('ZREM', Q, head)
    redis.call('HDEL', W, head)
  end
  return false
end
