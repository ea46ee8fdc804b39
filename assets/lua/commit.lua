-- Writes the replies of a batch, each exactly once, and acknowledges their entries.
-- The pause checks run again here: a kill switch or pause set while the replies were
-- being written withholds them.
-- KEYS[1] PAUSE:ALL  KEYS[2] OPTIN:contacts  KEYS[3] QUEUE:messages  KEYS[4] QUEUE:responses
-- KEYS[5] SECONDME:stats
-- ARGV[1] group  ARGV[2] DONE ttl s  ARGV[3] history length  ARGV[4] responses cap
-- ARGV[5] events:messages
-- then 8 values per reply: streamId messageId contactId replyId content persona delayMs eventJson
-- Returns one result per reply: sent | duplicate | withheld
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local group, done_ttl, history_len, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local channel = ARGV[5]
local killed = redis.call('EXISTS', KEYS[1]) == 1

local function paused(contact)
  local v = redis.call('GET', 'PAUSE:' .. contact)
  if not v then return false end
  local expires = tonumber(v)
  return expires == nil or expires > now
end

local results, acks = {}, {}
local sent, withheld = 0, 0
local i = 6
while i + 7 <= #ARGV do
  local sid, mid, contact, rid = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local content, persona, delay, event = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  i = i + 8
  local done = redis.call('GET', 'DONE:' .. mid)
  local result
  if done and done ~= 'seen' then
    result = 'duplicate'
  elseif killed or paused(contact) or redis.call('SISMEMBER', KEYS[2], contact) == 0 then
    redis.call('SET', 'DONE:' .. mid, 'skip:withheld', 'EX', done_ttl)
    withheld = withheld + 1
    result = 'withheld'
  else
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', cap, '*',
      'replyId', rid, 'contactId', contact, 'content', content, 'inReplyTo', mid,
      'persona', persona, 'timestamp', tostring(now), 'delayMs', delay)
    redis.call('PUBLISH', channel, event)
    local h = 'HISTORY:' .. contact
    if redis.call('LPUSH', h, event) > history_len then
      redis.call('LTRIM', h, 0, history_len - 1)
    end
    redis.call('SET', 'DONE:' .. mid, 'answered', 'EX', done_ttl)
    sent = sent + 1
    result = 'sent'
  end
  acks[#acks + 1] = sid
  results[#results + 1] = result
end
for s = 1, #acks, 1000 do
  redis.call('XACK', KEYS[3], group, unpack(acks, s, math.min(s + 999, #acks)))
end
if sent > 0 then redis.call('HINCRBY', KEYS[5], 'answered', sent) end
if withheld > 0 then redis.call('HINCRBY', KEYS[5], 'skipped', withheld) end
return results
