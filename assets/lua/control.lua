-- Operator controls, each one atomic with its event: pause, resume, kill switch.
-- KEYS[1] PAUSE:{contactId} or PAUSE:ALL   KEYS[2] PAUSEMETA:{contactId} or PAUSEMETA:ALL
-- KEYS[3] SECONDME:state (kill_off), CONTACTS:activity (pause)
-- ARGV[1] op: pause | resume | kill_on | kill_off
-- ARGV[2] contactId ("ALL" for the kill switch)  ARGV[3] duration in ms  ARGV[4] reason
-- ARGV[5] the events:pause channel
-- Returns the expiry (pause), the activation time (kill_on), or 1/0 whether anything changed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op, contact, channel = ARGV[1], ARGV[2], ARGV[5]

local function publish(action, expires, reason)
  local ev = { contactId = contact, action = action, reason = reason }
  ev.expiresAt = expires or cjson.null
  redis.call('PUBLISH', channel, cjson.encode(ev))
end

if op == 'pause' then
  local expires = now + tonumber(ARGV[3])
  redis.call('SET', KEYS[1], tostring(expires), 'PXAT', expires)
  redis.call('SET', KEYS[2], ARGV[4], 'PXAT', expires)
  -- Listed among the contacts (score 0: no activity yet) so that readers, which look
  -- only at known contacts, see the pause of one who never wrote.
  redis.call('ZADD', KEYS[3], 'NX', 0, contact)
  publish('pause', expires, ARGV[4])
  return expires
elseif op == 'resume' then
  local removed = redis.call('DEL', KEYS[1], KEYS[2])
  publish('resume', nil, ARGV[4])
  return removed > 0 and 1 or 0
elseif op == 'kill_on' then
  -- Keep the first activation time: switching on twice must not move it.
  local set = redis.call('SET', KEYS[1], tostring(now), 'NX')
  if set then
    -- Why it is on, for `secondme status`; gone with the switch.
    redis.call('SET', KEYS[2], ARGV[4])
    publish('pause', nil, ARGV[4])
    return now
  end
  return tonumber(redis.call('GET', KEYS[1])) or now
elseif op == 'kill_off' then
  local removed = redis.call('DEL', KEYS[1], KEYS[2])
  -- The operator's "off" is a decision about this Redis's state: without the marker
  -- the next batch would take the state for lost and switch the twin off again. A
  -- later restart without persistence loses the marker, and the rule holds again.
  redis.call('SET', KEYS[3], tostring(now), 'NX')
  publish('resume', nil, ARGV[4])
  return removed > 0 and 1 or 0
end
return redis.error_reply('unknown control op ' .. tostring(op))
