-- The operator's steps, in the same library as secondme.lua (appended to it, so its
-- helpers are in scope): pause, resume and the kill switch; the decisions on drafts,
-- the worker's sweep of them, and the operator's own words (issue 21). Each is one
-- atomic step with its events.

-- Operator controls, each one atomic with its event: pause, resume, kill switch.
-- KEYS[1] PAUSE:{contactId} or PAUSE:ALL   KEYS[2] PAUSEMETA:{contactId} or PAUSEMETA:ALL
-- KEYS[3] SECONDME:state (kill_off), CONTACTS:activity (pause)
-- ARGV[1] op: pause | resume | kill_on | kill_off
-- ARGV[2] contactId ("ALL" for the kill switch)  ARGV[3] duration in ms  ARGV[4] reason
-- ARGV[5] the events:pause channel
-- Returns the expiry (pause), the activation time (kill_on), or 1/0 whether anything changed.
local function control(KEYS, ARGV)
  local now = now_ms()
  local op, contact, channel = ARGV[1], ARGV[2], ARGV[5]
  if op == 'pause' then
    local expires = now + tonumber(ARGV[3])
    -- Listed among the contacts (score 0: no activity yet) so that readers, which look
    -- only at known contacts, see the pause of one who never wrote. Only the screens
    -- need it: a foreign key there must not stop (or half-write) the pause.
    redis.pcall('ZADD', KEYS[3], 'NX', 0, contact)
    set_pause(KEYS[1], KEYS[2], expires, ARGV[4])
    pause_event(channel, contact, 'pause', expires, ARGV[4])
    return expires
  elseif op == 'resume' then
    local removed = redis.call('DEL', KEYS[1], KEYS[2])
    pause_event(channel, contact, 'resume', nil, ARGV[4])
    return removed > 0 and 1 or 0
  elseif op == 'kill_on' then
    -- Keep the first activation time: switching on twice must not move it.
    if redis.call('SET', KEYS[1], tostring(now), 'NX') then
      -- Why it is on, for `secondme status`; gone with the switch.
      redis.call('SET', KEYS[2], ARGV[4])
      pause_event(channel, contact, 'pause', nil, ARGV[4])
      return now
    end
    return tonumber(redis.call('GET', KEYS[1])) or now
  elseif op == 'kill_off' then
    local removed = redis.call('DEL', KEYS[1], KEYS[2])
    -- The operator's "off" is a decision about this Redis's state: without the marker
    -- the next batch would take the state for lost and switch the twin off again. A
    -- later restart without persistence loses the marker, and the rule holds again.
    redis.call('SET', KEYS[3], tostring(now), 'NX')
    pause_event(channel, contact, 'resume', nil, ARGV[4])
    return removed > 0 and 1 or 0
  end
  return redis.error_reply('unknown control op ' .. tostring(op))
end

local function as_table(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- The contact's draft (keys `ck`) as a table of its fields while it is the draft `id`
-- and waits at `now`; nil once decided, replaced (another id) or expired (the sweep
-- records that, never a decision). The caller found the contact by reading DRAFTS;
-- this is the check that counts, in the same step as the decision.
local function live_draft(ck, id, now)
  if redis.pcall('HGET', ck.draft, 'draftId') ~= id then return nil end
  local t = as_table(redis.call('HGETALL', ck.draft))
  if (tonumber(t.expiresAt) or 0) <= now then return nil end
  return t
end

local function drop_draft(o, ck, contact)
  redis.call('DEL', ck.draft)
  redis.call('ZREM', o.index, contact)
  redis.call('HDEL', o.regen, contact)
end

local function history_ttl(o, contact)
  return redis.call('SISMEMBER', o.optin, contact) == 1 and o.ttl_enabled or o.ttl_other
end

-- Sends the draft `id` (the operator's edit of it when `edited` is 1), exactly once:
-- found, sent and deleted in one step. The operator decided, so no pause, kill switch
-- or sleep hours hold it back. Returns done | gone | fail:{why} (a history key of
-- another type: nothing written, the draft waits).
local function approve(o, now, id, contact, ck, edited, text, delay)
  local draft = live_draft(ck, id, now)
  if not draft then return 'gone' end
  if edited ~= '1' then text = draft.content end
  local event = cjson.encode({ messageId = draft.replyId, contactId = contact, content = text,
    botSent = true, timestamp = now, fromMe = false })
  local failed = push_history(ck, history_ttl(o, contact), o.history_len, event)
  if failed then return failed end
  -- `approved`: the gateway's pause check must not hold back the operator's decision.
  add_reply(o.responses, o.cap, draft.replyId, contact, text, draft.inReplyTo, draft.persona, now,
    delay, 'approved', 'true')
  redis.call('PUBLISH', o.ch_messages, event)
  drop_draft(o, ck, contact)
  draft_event(o.channel, 'approved', id, contact, now)
  local warnings = {}
  best_effort(warnings, o.unanswered, 'HDEL', o.unanswered, contact)
  -- The operator read the conversation to decide: what the twin could not hear is seen.
  best_effort(warnings, o.unheard, 'HDEL', o.unheard, contact)
  add_counts(warnings, o.stats, { answered = 1 })
  return 'done'
end

-- Drops the draft `id` unsent. Returns done | gone.
local function discard(o, now, id, contact, ck)
  if not live_draft(ck, id, now) then return 'gone' end
  drop_draft(o, ck, contact)
  draft_event(o.channel, 'discarded', id, contact, now)
  return 'done'
end

-- Asks the workers to write the draft `id` again (DRAFTS:regenerate). Returns done | gone.
local function regenerate(o, now, id, contact, ck)
  if not live_draft(ck, id, now) then return 'gone' end
  redis.call('HSET', o.regen, contact, id)
  draft_event(o.channel, 'regenerate', id, contact, now)
  return 'done'
end

-- Takes requests to write a draft again, for one worker, from the ones the worker read
-- in DRAFTS:regenerate (ARGV[first..]: contactId draftId keysAt each): each still there is
-- removed, so a request another worker took meanwhile is not taken twice, and returned
-- (contactId draftId streamId inReplyTo) while its draft waits.
local function take(o, now, KEYS, ARGV, first)
  local out = {}
  for j = first, #ARGV - 2, 3 do
    local contact, id = ARGV[j], ARGV[j + 1]
    if redis.call('HGET', o.regen, contact) == id then
      redis.call('HDEL', o.regen, contact)
      local draft = live_draft(contact_keys(KEYS, ARGV[j + 2]), id, now)
      if draft then append(out, { contact, id, draft.streamId, draft.inReplyTo }) end
    end
  end
  return out
end

-- Replaces the draft `expected` with one written again, under the commit step's
-- checks (pauses, kill switch, opt-in, sleep hours stop drafting). Returns
-- drafted | gone (decided, expired or replaced meanwhile) | withheld.
local function rewrite(o, now, expected, contact, ck, sid, mid, rid, content, persona, asleep)
  if not live_draft(ck, expected, now) then return 'gone' end
  local v, failed = try(ck.pause, 'GET', ck.pause)
  if asleep == '1' or redis.call('EXISTS', o.kill) == 1 or failed or pause_holds(v, now)
    or redis.call('SISMEMBER', o.optin, contact) == 0 then
    return 'withheld'
  end
  put_draft(o, ck, contact, sid, mid, rid, content, persona, now, true)
  add_counts({}, o.stats, { drafted = 1 })
  return 'drafted'
end

-- Moves the drafts the caller found past their expiry in DRAFTS (ARGV[first..]: contactId
-- keysAt each) to QUEUE:deadletter (reason `expired`, the draft's fields, `sourceId`
-- its entry's stream id), never sent, each only if it is past its expiry now. Returns
-- how many.
local function expire(o, now, cap, f_source, f_reason, f_at, KEYS, ARGV, first)
  local n = 0
  for j = first, #ARGV - 1, 2 do
    local contact, key = ARGV[j], contact_keys(KEYS, ARGV[j + 1]).draft
    local flat = redis.pcall('HGETALL', key)
    local t = (type(flat) == 'table' and not flat.err) and as_table(flat) or {}
    local expires = tonumber(t.expiresAt)
    if expires and expires > now then
      -- The index fell out of step with the draft: follow the draft.
      redis.call('ZADD', o.index, expires, contact)
    else
      if t.draftId then
        local args = { o.deadletter, 'MAXLEN', '~', cap, '*',
          f_source, t.streamId or '', f_reason, 'expired', f_at, tostring(now) }
        redis.call('XADD', unpack(append(args, flat)))
        redis.call('DEL', key)
        draft_event(o.channel, 'expired', t.draftId, contact, now)
        n = n + 1
      end
      redis.call('ZREM', o.index, contact)
      redis.call('HDEL', o.regen, contact)
    end
  end
  add_counts({}, o.stats, { dead_letters = n })
  return n
end

-- The operator's own words to `contact`, sent as the person (`fromOwner`, no typing
-- delay), kept and shown as typed by the person, and the twin steps back from the
-- contact as when the person types on the phone (the takeover pause). Any contact,
-- enabled or not. Returns sent | fail:{why} (a history key of another type).
local function own(o, now, contact, ck, text, rid, takeover_ms, ch_pause)
  local event = cjson.encode({ messageId = rid, contactId = contact, content = text,
    botSent = false, timestamp = now, fromMe = true })
  local failed = push_history(ck, history_ttl(o, contact), o.history_len, event)
  if failed then return failed end
  redis.call('XADD', o.responses, 'MAXLEN', '~', o.cap, '*',
    'replyId', rid, 'contactId', contact, 'content', text, 'inReplyTo', '', 'persona', '',
    'timestamp', tostring(now), 'delayMs', '0', 'fromOwner', 'true')
  redis.call('PUBLISH', o.ch_messages, event)
  local expires = now + tonumber(takeover_ms)
  set_pause(ck.pause, ck.pause_meta, expires, 'takeover')
  pause_event(ch_pause, contact, 'pause', expires, 'takeover')
  local warnings = {}
  best_effort(warnings, o.activity, 'ZADD', o.activity, 'GT', now, contact)
  best_effort(warnings, o.unanswered, 'HDEL', o.unanswered, contact)
  best_effort(warnings, o.unheard, 'HDEL', o.unheard, contact)
  -- The person answered: a message kept for the end of the night needs no reply.
  best_effort(warnings, o.deferred, 'HDEL', o.deferred, contact)
  add_counts(warnings, o.stats, { takeovers = 1 })
  return 'sent'
end

-- The drafts' and the operator's own words' steps.
-- KEYS[1] DRAFTS  KEYS[2] DRAFTS:regenerate  KEYS[3] QUEUE:responses  KEYS[4] OPTIN:contacts
-- KEYS[5] SECONDME:stats  KEYS[6] CONTACTS:activity  KEYS[7] QUEUE:deadletter  KEYS[8] PAUSE:ALL
-- KEYS[9] SECONDME:unanswered  KEYS[10] SECONDME:deferred  KEYS[11] SECONDME:unheard
-- ARGV[1] op  ARGV[2] events:drafts  ARGV[3] events:messages  ARGV[4] history length
-- ARGV[5] history TTL ms of an enabled contact  ARGV[6] of any other  ARGV[7] responses cap
-- then per op, where `keysAt` says where a contact's keys (contact_keys) begin in KEYS,
-- after the eleven above: approve draftId contactId keysAt edited(1|0) text delayMs |
-- discard draftId contactId keysAt | regenerate draftId contactId keysAt |
-- take (contactId draftId keysAt)... | rewrite draftId contactId keysAt streamId messageId
-- replyId content persona lifetimeMs asleep(1|0) | expire cap sourceField reasonField
-- atField (contactId keysAt)... | own contactId keysAt text replyId takeoverMs events:pause
-- The caller finds the contact of a draft id (its DRAFT:{contactId} holds the id) and the
-- drafts to take or expire by reading first; each op checks again what it acts on.
-- A shared key of a foreign type fails the call with a SHARED_KEY error before any write.
local function draft(KEYS, ARGV)
  local now = now_ms()
  local refused = check_shared({
    { KEYS[1], 'zset' }, { KEYS[2], 'hash' }, { KEYS[3], 'stream' }, { KEYS[4], 'set' },
    { KEYS[7], 'stream' },
  })
  if refused then return refused end
  local o = { index = KEYS[1], regen = KEYS[2], responses = KEYS[3], optin = KEYS[4],
    stats = KEYS[5], activity = KEYS[6], deadletter = KEYS[7], kill = KEYS[8],
    unanswered = KEYS[9], deferred = KEYS[10], unheard = KEYS[11],
    channel = ARGV[2], ch_messages = ARGV[3], history_len = tonumber(ARGV[4]),
    ttl_enabled = tonumber(ARGV[5]), ttl_other = tonumber(ARGV[6]), cap = ARGV[7] }
  local op, a = ARGV[1], function(k) return ARGV[7 + k] end
  local ck = function(k) return contact_keys(KEYS, a(k)) end
  if op == 'approve' then return approve(o, now, a(1), a(2), ck(3), a(4), a(5), a(6))
  elseif op == 'discard' then return discard(o, now, a(1), a(2), ck(3))
  elseif op == 'regenerate' then return regenerate(o, now, a(1), a(2), ck(3))
  elseif op == 'take' then return take(o, now, KEYS, ARGV, 8)
  elseif op == 'rewrite' then
    o.ttl = tonumber(a(9))
    return rewrite(o, now, a(1), a(2), ck(3), a(4), a(5), a(6), a(7), a(8), a(10))
  elseif op == 'expire' then
    return expire(o, now, a(1), a(2), a(3), a(4), KEYS, ARGV, 12)
  elseif op == 'own' then return own(o, now, a(1), ck(2), a(3), a(4), a(5), a(6))
  end
  return redis.error_reply('unknown draft op ' .. tostring(op))
end

redis.register_function('secondme_control_' .. VERSION, control)
redis.register_function('secondme_draft_' .. VERSION, draft)
