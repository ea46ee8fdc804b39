-- Decides a whole batch of parsed queue entries in one atomic step and, for
-- entries that come with a reply already written, sends it in the same step.
-- KEYS[1] PAUSE:ALL  KEYS[2] OPTIN:contacts  KEYS[3] SECONDME:state  KEYS[4] QUEUE:messages
-- KEYS[5] CONTACTS:activity  KEYS[6] SECONDME:stats  KEYS[7] QUEUE:responses
-- ARGV[1] group  ARGV[2] takeover pause ms  ARGV[3] rate max  ARGV[4] rate window s
-- ARGV[5] rate-limit pause ms  ARGV[6] HANDLED bucket ms  ARGV[7] history length
-- ARGV[8] events:pause  ARGV[9] events:messages  ARGV[10] responses cap
-- ARGV[11] 1 in sleep hours (no automated replies), else 0
-- then 11 values per entry: streamId messageId contactId kind(in|me|out) timestamp eventJson
--   replyId replyContent persona delayMs replyEventJson  (the five reply values empty when
--   the reply is written later; then an `answer` verdict waits for commit.lua)
-- Returns one verdict per entry: sent | answer | duplicate | echo | takeover | recorded |
-- skip:kill_switch | skip:not_enabled | skip:paused | skip:sleep_hours | skip:rate_limit
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local group = ARGV[1]
local takeover_ms, rate_max, rate_window = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local rate_pause_ms, bucket_ms, history_len = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local ch_pause, ch_messages, cap = ARGV[8], ARGV[9], ARGV[10]
local asleep = ARGV[11] == '1'
local FIRST = 12

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

-- Read what the whole batch needs in a few calls instead of a few per entry: how
-- each message was handled before, the contacts' pauses and their opt-in. Writes
-- below keep these tables current, so a later entry of the same batch sees an
-- earlier one's effect.
local FIELDS = 11
-- Lists grow through explicit counters: Lua's `#t` is a search, not a field.
local mids, contacts, seen_contact = {}, {}, {}
local n_mids, n_contacts = 0, 0
for j = FIRST, #ARGV - FIELDS + 1, FIELDS do
  n_mids = n_mids + 1
  mids[n_mids] = ARGV[j + 1]
  local c = ARGV[j + 2]
  if not seen_contact[c] then
    seen_contact[c] = true
    n_contacts = n_contacts + 1
    contacts[n_contacts] = c
  end
end
local function fetch(list, prefix, command, key)
  local out, names, n_out, n_names = {}, {}, 0, 0
  for s = 1, #list, 1000 do
    local slice, n_slice = {}, 0
    for k = s, math.min(s + 999, #list) do
      n_slice = n_slice + 1
      slice[n_slice] = prefix .. list[k]
      n_names = n_names + 1
      names[n_names] = list[k]
    end
    local got
    if key then
      got = redis.call(command, key, unpack(slice))
    else
      got = redis.call(command, unpack(slice))
    end
    for k = 1, #got do
      n_out = n_out + 1
      out[n_out] = got[k]
    end
  end
  local map = {}
  for k = 1, n_names do map[names[k]] = out[k] end
  return map
end
-- HANDLED:{hour} hashes, this hour's and the last: a final state in either wins
-- over `seen` (decided, reply not yet committed).
local bucket = math.floor(now / bucket_ms)
local handled_now = 'HANDLED:' .. bucket
local in_now = fetch(mids, '', 'HMGET', handled_now)
local in_before = fetch(mids, '', 'HMGET', 'HANDLED:' .. (bucket - 1))
local done_of = {}
for _, mid in ipairs(mids) do
  local a, b = in_now[mid], in_before[mid]
  if a and a ~= 'seen' then done_of[mid] = a
  elseif b and b ~= 'seen' then done_of[mid] = b
  else done_of[mid] = a or b end
end
local pause_of = fetch(contacts, 'PAUSE:', 'MGET')
local optin_of = fetch(contacts, '', 'SMISMEMBER', KEYS[2])

local function paused(contact)
  local v = pause_of[contact]
  if not v then return false end
  local expires = tonumber(v)
  -- A value other programs wrote that is not a number still means paused: be conservative.
  return expires == nil or expires > now
end

local function pause(contact, ms, reason)
  local expires = now + ms
  redis.call('SET', 'PAUSE:' .. contact, tostring(expires), 'PXAT', expires)
  redis.call('SET', 'PAUSEMETA:' .. contact, reason, 'PXAT', expires)
  pause_of[contact] = tostring(expires)
  pause_event(contact, 'pause', expires, reason)
end

-- LPUSH returns the length: trim only when the list is well over its cap, so a busy
-- conversation is not trimmed at every message (readers take the newest entries).
local function remember(contact, ...)
  local h = 'HISTORY:' .. contact
  if redis.call('LPUSH', h, ...) > history_len + 10 then
    redis.call('LTRIM', h, 0, history_len - 1)
  end
end

local function record(contact, event)
  redis.call('PUBLISH', ch_messages, event)
  remember(contact, event)
end

-- Acknowledgements, activity scores and handled states are sent once per batch,
-- not once per entry.
local acks, activity, handled = {}, {}, {}
local n_acks, n_activity, n_handled = 0, 0, 0
local function mark(mid, state)
  handled[n_handled + 1] = mid
  handled[n_handled + 2] = state
  n_handled = n_handled + 2
  done_of[mid] = state
end
local function ack(sid)
  n_acks = n_acks + 1
  acks[n_acks] = sid
end
local function finish(sid, mid, state)
  mark(mid, state)
  ack(sid)
end
-- `ts` stays the text the worker sent: ZADD parses it, and Lua would only format
-- it back.
local function touch(contact, ts)
  activity[n_activity + 1] = ts
  activity[n_activity + 2] = contact
  n_activity = n_activity + 2
end

local verdicts, n_verdicts = {}, 0
local counts = { received = 0, skipped = 0, takeovers = 0, rate_limited = 0, duplicates = 0, answered = 0 }
local i = FIRST
while i + FIELDS - 1 <= #ARGV do
  local sid, mid, contact, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local ts, event = ARGV[i + 4], ARGV[i + 5]
  local rid, rcontent, rpersona, rdelay, revent =
    ARGV[i + 6], ARGV[i + 7], ARGV[i + 8], ARGV[i + 9], ARGV[i + 10]
  i = i + FIELDS
  local done = done_of[mid]
  local verdict
  if done and done ~= 'seen' then
    ack(sid)
    counts.duplicates = counts.duplicates + 1
    verdict = 'duplicate'
  elseif kind == 'me' then
    if redis.call('EXISTS', 'SENT:' .. mid) == 1 then
      finish(sid, mid, 'echo')
      verdict = 'echo'
    else
      touch(contact, ts)
      record(contact, event)
      pause(contact, takeover_ms, 'takeover')
      finish(sid, mid, 'takeover')
      counts.takeovers = counts.takeovers + 1
      verdict = 'takeover'
    end
  elseif kind == 'out' then
    touch(contact, ts)
    record(contact, event)
    finish(sid, mid, 'recorded')
    verdict = 'recorded'
  else
    local count
    local fresh = done ~= 'seen'
    if not fresh then
      -- Redelivered after a crash between decide and commit: counted and shown already.
      count = tonumber(redis.call('GET', 'COUNTER:' .. contact .. ':msgs')) or 0
    else
      counts.received = counts.received + 1
      touch(contact, ts)
      -- Published now; kept in HISTORY below, together with the reply when there is one.
      redis.call('PUBLISH', ch_messages, event)
      local ckey = 'COUNTER:' .. contact .. ':msgs'
      count = redis.call('INCR', ckey)
      -- In the same atomic step, and NX so a counter left without a TTL by another
      -- program gets one: a counter can never outlive its window.
      redis.call('EXPIRE', ckey, rate_window, 'NX')
    end
    if count > rate_max and not paused(contact) then
      pause(contact, rate_pause_ms, 'rate_limit')
      counts.rate_limited = counts.rate_limited + 1
      verdict = 'skip:rate_limit'
    elseif killed then
      verdict = 'skip:kill_switch'
    elseif optin_of[contact] == 0 then
      verdict = 'skip:not_enabled'
    elseif paused(contact) then
      verdict = 'skip:paused'
    elseif asleep then
      verdict = 'skip:sleep_hours'
    elseif rid ~= '' then
      redis.call('XADD', KEYS[7], 'MAXLEN', '~', cap, '*',
        'replyId', rid, 'contactId', contact, 'content', rcontent, 'inReplyTo', mid,
        'persona', rpersona, 'timestamp', tostring(now), 'delayMs', rdelay)
      redis.call('PUBLISH', ch_messages, revent)
      finish(sid, mid, 'answered')
      counts.answered = counts.answered + 1
      verdict = 'sent'
    else
      mark(mid, 'seen')
      verdict = 'answer'
    end
    if fresh and verdict == 'sent' then
      remember(contact, event, revent)
    elseif fresh then
      remember(contact, event)
    elseif verdict == 'sent' then
      remember(contact, revent)
    end
    if verdict:sub(1, 5) == 'skip:' then
      finish(sid, mid, verdict)
      counts.skipped = counts.skipped + 1
    end
  end
  n_verdicts = n_verdicts + 1
  verdicts[n_verdicts] = verdict
end
-- unpack() is bounded by Lua's C stack: send long lists in slices.
local function in_slices(list, step, send)
  for s = 1, #list, step do
    send(unpack(list, s, math.min(s + step - 1, #list)))
  end
end
in_slices(acks, 1000, function(...) redis.call('XACK', KEYS[4], group, ...) end)
in_slices(activity, 1000, function(...) redis.call('ZADD', KEYS[5], 'GT', ...) end)
if n_handled > 0 then
  in_slices(handled, 1000, function(...) redis.call('HSET', handled_now, ...) end)
  -- Kept through the next hour, so every id is remembered for one to two hours.
  redis.call('PEXPIREAT', handled_now, (bucket + 2) * bucket_ms)
end
for name, n in pairs(counts) do
  if n > 0 then redis.call('HINCRBY', KEYS[6], name, n) end
end
return verdicts
