-- Writes the replies of a batch, each exactly once, and acknowledges their entries.
-- The pause checks run again here: a kill switch or pause set while the replies were
-- being written withholds them.
-- KEYS[1] PAUSE:ALL  KEYS[2] OPTIN:contacts  KEYS[3] QUEUE:messages  KEYS[4] QUEUE:responses
-- KEYS[5] SECONDME:stats
-- ARGV[1] group  ARGV[2] HANDLED bucket ms  ARGV[3] history length  ARGV[4] responses cap
-- ARGV[5] events:messages  ARGV[6] 1 in sleep hours (withhold every reply), else 0
-- then 8 values per reply: streamId messageId contactId replyId content persona delayMs eventJson
-- Returns one result per reply: sent | duplicate | withheld
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local group, bucket_ms, history_len, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local channel = ARGV[5]
local asleep = ARGV[6] == '1'
local killed = redis.call('EXISTS', KEYS[1]) == 1

local function paused(contact)
  local v = redis.call('GET', 'PAUSE:' .. contact)
  if not v then return false end
  local expires = tonumber(v)
  return expires == nil or expires > now
end

-- How each message was handled, from this hour's and the last hour's HANDLED hash.
local bucket = math.floor(now / bucket_ms)
local handled_now = 'HANDLED:' .. bucket
local function handled(mid)
  local a = redis.call('HGET', handled_now, mid)
  if a and a ~= 'seen' then return a end
  local b = redis.call('HGET', 'HANDLED:' .. (bucket - 1), mid)
  if b and b ~= 'seen' then return b end
  return a or b
end

local results, acks, marks = {}, {}, {}
local sent, withheld = 0, 0
local i = 7
while i + 7 <= #ARGV do
  local sid, mid, contact, rid = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local content, persona, delay, event = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  i = i + 8
  local done = handled(mid)
  local result
  if done and done ~= 'seen' then
    result = 'duplicate'
  elseif asleep or killed or paused(contact) or redis.call('SISMEMBER', KEYS[2], contact) == 0 then
    marks[#marks + 1] = mid
    marks[#marks + 1] = 'skip:withheld'
    withheld = withheld + 1
    result = 'withheld'
  else
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', cap, '*',
      'replyId', rid, 'contactId', contact, 'content', content, 'inReplyTo', mid,
      'persona', persona, 'timestamp', tostring(now), 'delayMs', delay)
    redis.call('PUBLISH', channel, event)
    local h = 'HISTORY:' .. contact
    -- Trimmed with some slack, so a busy conversation is not trimmed at every message.
    if redis.call('LPUSH', h, event) > history_len + 10 then
      redis.call('LTRIM', h, 0, history_len - 1)
    end
    marks[#marks + 1] = mid
    marks[#marks + 1] = 'answered'
    sent = sent + 1
    result = 'sent'
  end
  acks[#acks + 1] = sid
  results[#results + 1] = result
end
for s = 1, #acks, 1000 do
  redis.call('XACK', KEYS[3], group, unpack(acks, s, math.min(s + 999, #acks)))
end
for s = 1, #marks, 1000 do
  redis.call('HSET', handled_now, unpack(marks, s, math.min(s + 999, #marks)))
end
if #marks > 0 then redis.call('PEXPIREAT', handled_now, (bucket + 2) * bucket_ms) end
if sent > 0 then redis.call('HINCRBY', KEYS[5], 'answered', sent) end
if withheld > 0 then redis.call('HINCRBY', KEYS[5], 'skipped', withheld) end
return results
