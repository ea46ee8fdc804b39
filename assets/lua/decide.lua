-- Decides a whole batch of parsed queue entries in one atomic step.
-- KEYS[1] PAUSE:ALL  KEYS[2] OPTIN:contacts  KEYS[3] SECONDME:state  KEYS[4] QUEUE:messages
-- KEYS[5] CONTACTS:activity  KEYS[6] SECONDME:stats
-- ARGV[1] group  ARGV[2] takeover pause ms  ARGV[3] rate max  ARGV[4] rate window s
-- ARGV[5] rate-limit pause ms  ARGV[6] DONE ttl s  ARGV[7] history length
-- ARGV[8] events:pause  ARGV[9] events:messages
-- then 6 values per entry: streamId messageId contactId kind(in|me|out) timestamp eventJson
-- Returns one verdict per entry: answer | duplicate | echo | takeover | recorded |
-- skip:kill_switch | skip:not_enabled | skip:paused | skip:rate_limit
-- Every verdict but `answer` is acknowledged here; `answer` waits for commit.lua.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local group = ARGV[1]
local takeover_ms, rate_max, rate_window = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local rate_pause_ms, done_ttl, history_len = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local ch_pause, ch_messages = ARGV[8], ARGV[9]

local function pause_event(contact, action, expires, reason)
  local ev = { contactId = contact, action = action, reason = reason }
  ev.expiresAt = expires or cjson.null
  redis.call('PUBLISH', ch_pause, cjson.encode(ev))
end

-- A Redis that lost SecondMe's state (restart without persistence) must answer nobody
-- until the operator says so.
if redis.call('EXISTS', KEYS[3]) == 0 then
  if redis.call('SET', KEYS[1], tostring(now), 'NX') then
    pause_event('ALL', 'pause', nil, 'state_lost')
  end
  redis.call('SET', KEYS[3], tostring(now))
end
local killed = redis.call('EXISTS', KEYS[1]) == 1

local function paused(contact)
  local v = redis.call('GET', 'PAUSE:' .. contact)
  if not v then return false end
  local expires = tonumber(v)
  -- A value other programs wrote that is not a number still means paused: be conservative.
  return expires == nil or expires > now
end

local function pause(contact, ms, reason)
  local expires = now + ms
  redis.call('SET', 'PAUSE:' .. contact, tostring(expires), 'PXAT', expires)
  redis.call('SET', 'PAUSEMETA:' .. contact, reason, 'PXAT', expires)
  pause_event(contact, 'pause', expires, reason)
end

local function record(contact, event)
  redis.call('PUBLISH', ch_messages, event)
  local h = 'HISTORY:' .. contact
  redis.call('LPUSH', h, event)
  redis.call('LTRIM', h, 0, history_len - 1)
end

local function finish(sid, mid, state)
  redis.call('SET', 'DONE:' .. mid, state, 'EX', done_ttl)
  redis.call('XACK', KEYS[4], group, sid)
end

local verdicts = {}
local counts = { received = 0, skipped = 0, takeovers = 0, rate_limited = 0, duplicates = 0 }
local i = 10
while i + 5 <= #ARGV do
  local sid, mid, contact, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local ts, event = tonumber(ARGV[i + 4]), ARGV[i + 5]
  i = i + 6
  local done = redis.call('GET', 'DONE:' .. mid)
  local verdict
  if done and done ~= 'seen' then
    redis.call('XACK', KEYS[4], group, sid)
    counts.duplicates = counts.duplicates + 1
    verdict = 'duplicate'
  elseif kind == 'me' then
    if redis.call('EXISTS', 'SENT:' .. mid) == 1 then
      finish(sid, mid, 'echo')
      verdict = 'echo'
    else
      redis.call('ZADD', KEYS[5], 'GT', ts, contact)
      record(contact, event)
      pause(contact, takeover_ms, 'takeover')
      finish(sid, mid, 'takeover')
      counts.takeovers = counts.takeovers + 1
      verdict = 'takeover'
    end
  elseif kind == 'out' then
    redis.call('ZADD', KEYS[5], 'GT', ts, contact)
    record(contact, event)
    finish(sid, mid, 'recorded')
    verdict = 'recorded'
  else
    local count
    if done == 'seen' then
      -- Redelivered after a crash between decide and commit: counted and shown already.
      count = tonumber(redis.call('GET', 'COUNTER:' .. contact .. ':msgs')) or 0
    else
      counts.received = counts.received + 1
      redis.call('ZADD', KEYS[5], 'GT', ts, contact)
      record(contact, event)
      local ckey = 'COUNTER:' .. contact .. ':msgs'
      count = redis.call('INCR', ckey)
      -- Set in the same atomic step, so the counter can never outlive its window.
      if redis.call('TTL', ckey) < 0 then redis.call('EXPIRE', ckey, rate_window) end
    end
    if count > rate_max and not paused(contact) then
      pause(contact, rate_pause_ms, 'rate_limit')
      counts.rate_limited = counts.rate_limited + 1
      verdict = 'skip:rate_limit'
    elseif killed then
      verdict = 'skip:kill_switch'
    elseif redis.call('SISMEMBER', KEYS[2], contact) == 0 then
      verdict = 'skip:not_enabled'
    elseif paused(contact) then
      verdict = 'skip:paused'
    else
      redis.call('SET', 'DONE:' .. mid, 'seen', 'EX', done_ttl)
      verdict = 'answer'
    end
    if verdict ~= 'answer' then
      finish(sid, mid, verdict)
      counts.skipped = counts.skipped + 1
    end
  end
  verdicts[#verdicts + 1] = verdict
end
for name, n in pairs(counts) do
  if n > 0 then redis.call('HINCRBY', KEYS[6], name, n) end
end
return verdicts
