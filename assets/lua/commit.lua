-- Writes the replies of a batch, each exactly once, and acknowledges their entries.
-- The pause checks run again here: a kill switch or pause set while the replies were
-- being written withholds them.
-- KEYS[1] PAUSE:ALL  KEYS[2] OPTIN:contacts  KEYS[3] QUEUE:messages  KEYS[4] QUEUE:responses
-- KEYS[5] SECONDME:stats
-- ARGV[1] group  ARGV[2] HANDLED bucket ms  ARGV[3] history length  ARGV[4] responses cap
-- ARGV[5] events:messages  ARGV[6] 1 in sleep hours (withhold every reply), else 0
-- ARGV[7] history TTL ms (the contact is enabled when a reply goes out)
-- then 8 values per reply: streamId messageId contactId replyId content persona delayMs eventJson
-- Returns one result per reply: sent | duplicate | withheld | fail:{why} (a key of the
-- contact another program gave a foreign type: nothing written, the entry stays pending
-- for the worker to dead-letter); then `warn:{text}` for a failed best-effort write.
-- A shared key of a foreign type fails the whole call with a SHARED_KEY error before
-- anything is written.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local group, bucket_ms, history_len, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local channel = ARGV[5]
local asleep = ARGV[6] == '1'
local history_ttl = tonumber(ARGV[7])
local FIRST = 8

local bucket = math.floor(now / bucket_ms)
local handled_now = 'HANDLED:' .. bucket
local handled_before = 'HANDLED:' .. (bucket - 1)
local shared = {
  { KEYS[2], 'set' }, { KEYS[3], 'stream' }, { KEYS[4], 'stream' },
  { handled_now, 'hash' }, { handled_before, 'hash' },
}
for _, s in ipairs(shared) do
  local got = redis.call('TYPE', s[1])['ok']
  if got ~= 'none' and got ~= s[2] then
    return redis.error_reply('SHARED_KEY ' .. s[1] .. ' holds a ' .. got .. ', not a ' .. s[2] ..
      ': another program wrote it; rename or delete it to let the twin go on')
  end
end
local killed = redis.call('EXISTS', KEYS[1]) == 1

-- A call on a key of one contact: its error becomes that reply's result.
local function try(key, ...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r.err then
    -- Only a key's type or value is the entry's fault. Anything else (OOM, which
    -- Redis raises only before a script's first write; ACL; a read-only replica)
    -- is the server's: fail the whole step.
    local code = r.err:match('^%S+')
    if code ~= 'WRONGTYPE' and code ~= 'ERR' then error(r) end
    return nil, 'fail:' .. key .. ': ' .. r.err
  end
  return r
end

local function paused(contact)
  local key = 'PAUSE:' .. contact
  local v, failed = try(key, 'GET', key)
  -- A pause key of a foreign type is still a pause: withhold, conservatively.
  if failed then return true end
  if not v then return false end
  local expires = tonumber(v)
  return expires == nil or expires > now
end

-- How each message was handled, from this hour's and the last hour's HANDLED hash.
local function handled(mid)
  local a = redis.call('HGET', handled_now, mid)
  if a and a ~= 'seen' then return a end
  local b = redis.call('HGET', handled_before, mid)
  if b and b ~= 'seen' then return b end
  return a or b
end

local results, acks, marks = {}, {}, {}
local sent, withheld = 0, 0
local i = FIRST
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
    -- The history first: it is the one write of this reply that can fail.
    local h = 'HISTORY:' .. contact
    local len, failed = try(h, 'LPUSH', h, event)
    if failed then
      result = failed
    else
      -- Trimmed with some slack, so a busy conversation is not trimmed at every message.
      if len > history_len + 10 then
        redis.call('LTRIM', h, 0, history_len - 1)
      end
      redis.call('PEXPIRE', h, history_ttl)
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', cap, '*',
        'replyId', rid, 'contactId', contact, 'content', content, 'inReplyTo', mid,
        'persona', persona, 'timestamp', tostring(now), 'delayMs', delay)
      redis.call('PUBLISH', channel, event)
      marks[#marks + 1] = mid
      marks[#marks + 1] = 'answered'
      sent = sent + 1
      result = 'sent'
    end
  end
  if result:sub(1, 5) ~= 'fail:' then acks[#acks + 1] = sid end
  results[#results + 1] = result
end
for s = 1, #acks, 1000 do
  redis.call('XACK', KEYS[3], group, unpack(acks, s, math.min(s + 999, #acks)))
end
for s = 1, #marks, 1000 do
  redis.call('HSET', handled_now, unpack(marks, s, math.min(s + 999, #marks)))
end
if #marks > 0 then redis.call('PEXPIREAT', handled_now, (bucket + 2) * bucket_ms) end
local function count(field, n)
  if n == 0 then return end
  local r = redis.pcall('HINCRBY', KEYS[5], field, n)
  if type(r) == 'table' and r.err then results[#results + 1] = 'warn:' .. KEYS[5] .. ': ' .. r.err end
end
count('answered', sent)
count('skipped', withheld)
return results
