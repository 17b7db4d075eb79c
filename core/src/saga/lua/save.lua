-- save: write a saga record, keep the indexes and the running totals (PROTOCOL.md, section 8).
-- KEYS[1] the record  KEYS[2] active  KEYS[3] active:<type>  KEYS[4] types  KEYS[5] totals
-- KEYS[6] finished (stream)  KEYS[7] started
-- ARGV[1] id  ARGV[2] type  ARGV[3] status  ARGV[4] priority  ARGV[5] createdAt (ms)
-- ARGV[6] updatedAt (ms, '' = the Redis time)  ARGV[7] retryCount  ARGV[8] error
-- ARGV[9] stuckReason  ARGV[10] stuckDetail
-- ARGV[11] expected version ('' = any)  ARGV[12] writer's term ('' = none)
-- ARGV[13] '1': refuse to change a finished saga  ARGV[14] keep finished records (ms, '' = forever)
-- Replies: {1, version} written;  {0, version, term, status} refused (the condition failed);
--          {-2, version} the record is of another protocol version;  {-3, type} the type differs
local R = KEYS[1]
local cur = redis.call('HMGET', R, 'pv', 'version', 'term', 'status', 'type')
if cur[1] and cur[1] ~= '2' then return {-2, tonumber(cur[1]) or 0} end
local version = tonumber(cur[2]) or 0
local term = tonumber(cur[3]) or 0
local status = ARGV[3]
local function finished(s)
  return s == 'COMPLETED' or s == 'COMPENSATED' or s == 'FAILED'
end
local function refuse()
  return {0, version, term, cur[4] or ''}
end
if ARGV[11] ~= '' and tonumber(ARGV[11]) ~= version then return refuse() end
local writer = tonumber(ARGV[12]) or 0
if ARGV[12] ~= '' and term > writer then return refuse() end
if ARGV[13] == '1' and cur[4] and finished(cur[4]) and cur[4] ~= status then return refuse() end
if cur[5] and cur[5] ~= ARGV[2] then return {-3, cur[5]} end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local updated = tonumber(ARGV[6]) or now
local created = tonumber(ARGV[5]) or now
local new_version = version + 1
redis.call('HSET', R, 'pv', '2', 'id', ARGV[1], 'type', ARGV[2], 'status', status,
  'priority', ARGV[4], 'createdAt', string.format('%.0f', created),
  'updatedAt', string.format('%.0f', updated), 'retryCount', ARGV[7], 'error', ARGV[8],
  'stuckReason', ARGV[9], 'stuckDetail', ARGV[10], 'version', new_version,
  'term', string.format('%.0f', math.max(term, writer)))
if finished(status) then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[7], ARGV[1])
  if not (cur[4] and finished(cur[4])) then
    local field = ({COMPLETED = 'completed', COMPENSATED = 'compensated', FAILED = 'failed'})[status]
    local duration = math.max(updated - created, 0)
    redis.call('HINCRBY', KEYS[5], field, 1)
    redis.call('HINCRBY', KEYS[5], 'durationMsSum', duration)
    redis.call('HINCRBY', KEYS[5], 'durationCount', 1)
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', 10000, '*', 'id', ARGV[1], 'type', ARGV[2],
      'status', status, 'durationMs', string.format('%.0f', duration))
  end
  if ARGV[14] ~= '' then redis.call('PEXPIRE', R, ARGV[14]) end
else
  redis.call('ZADD', KEYS[2], updated, ARGV[1])
  redis.call('ZADD', KEYS[3], updated, ARGV[1])
  redis.call('ZADD', KEYS[7], created, ARGV[1])
  redis.call('SADD', KEYS[4], ARGV[2])
  redis.call('PERSIST', R)
end
return {1, new_version}
