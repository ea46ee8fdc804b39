-- SecondMe's atomic server-side steps, one Redis Functions library: the worker's
-- batch decision and commit, and the operator's controls. The library is loaded
-- by the worker and the CLI (`FUNCTION LOAD REPLACE`) under a name that carries a
-- hash of its text, so two SecondMe versions sharing a Redis each call their own.
-- `VERSION`, the constants that are not key names (`K`) and `contact_keys` come from
-- a prelude generated in Rust (src/store/functions.rs). No key name is built here:
-- every key a step touches comes in KEYS, computed by the caller from src/schema
-- (src/store/functions/keys.rs), so Redis Cluster's slot checks and ACL key patterns
-- see them all. Arguments say where in KEYS a contact's keys begin (`keysAt`):
-- `contact_keys(KEYS, keysAt)` is the table of them, `pause` PAUSE:{c}, `pause_meta`
-- PAUSEMETA:{c}, `counter` COUNTER:{c}:msgs, `history` HISTORY:{c}, `own_history`
-- SECONDME:history:{c}, `draft` DRAFT:{c}.

-- Time from the server's clock, in ms: every worker and the CLI agree on it.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function pause_event(channel, contact, action, expires, reason)
  local ev = { contactId = contact, action = action, reason = reason }
  ev.expiresAt = expires or cjson.null
  redis.call('PUBLISH', channel, cjson.encode(ev))
end

-- Whether a `PAUSE:` value holds at `now`. A value other programs wrote that is
-- not a number (or a key of another type) still means paused: be conservative.
local function pause_holds(v, now)
  if not v then return false end
  local expires = tonumber(v)
  return expires == nil or expires > now
end

local function set_pause(pause_key, meta_key, expires, reason)
  redis.call('SET', pause_key, tostring(expires), 'PXAT', expires)
  redis.call('SET', meta_key, reason, 'PXAT', expires)
end

-- A call on a key of one contact, which another program may have given a type or
-- value the call cannot use: its error becomes that entry's verdict (`fail:`)
-- instead of aborting the batch.
local function try(key, ...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r.err then
    -- Only a key's type or value is the entry's fault. Anything else (an ACL
    -- that does not reach the key, which Redis reports as a plain ERR too; a
    -- read-only replica) is the server's: fail the whole step.
    local own = r.err:find('^WRONGTYPE') or r.err:find('^ERR value is not an integer')
      or r.err:find('^ERR increment or decrement would overflow')
    -- SERVER_FAULT tells the worker not to pin it on an entry; the text stays.
    if not own then error({ err = 'SERVER_FAULT ' .. r.err }) end
    return nil, 'fail:' .. key .. ': ' .. r.err
  end
  return r
end

-- A write that only informs the screens (activity scores, counters): a key
-- another program gave a foreign type costs a warning, never a verdict.
local function best_effort(warnings, what, ...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r.err then
    warnings[#warnings + 1] = 'warn:' .. what .. ': ' .. r.err
    return nil
  end
  return r
end

-- Keys every entry of a batch shares: one of a foreign type would make a call
-- fail half-way through, after replies went out. Checked before any write; the
-- error names the key.
local function check_shared(list)
  for _, s in ipairs(list) do
    local got = redis.call('TYPE', s[1])['ok']
    if got ~= 'none' and got ~= s[2] then
      return redis.error_reply('SHARED_KEY ' .. s[1] .. ' holds a ' .. got .. ', not a ' .. s[2] ..
        ': another program wrote it; rename or delete it to let the twin go on')
    end
  end
  return nil
end

-- unpack() is bounded by Lua's C stack: send long lists in slices.
local function in_slices(list, step, send)
  for s = 1, #list, step do
    send(unpack(list, s, math.min(s + step - 1, #list)))
  end
end

-- `command` over `args` (as keys, or as members of `key`), in slices; returns
-- names[k] -> the reply for args[k].
local function fetch(names, args, command, key)
  local out, n_out = {}, 0
  for s = 1, #args, 1000 do
    local e = math.min(s + 999, #args)
    local got
    if key then
      got = redis.call(command, key, unpack(args, s, e))
    else
      got = redis.call(command, unpack(args, s, e))
    end
    for k = 1, #got do
      n_out = n_out + 1
      out[n_out] = got[k]
    end
  end
  local map = {}
  for k = 1, #names do map[names[k]] = out[k] end
  return map
end

-- The hour buckets of `HANDLED:` by the server's clock: this hour's hash is written,
-- the last hour's read. The caller passes four hours in KEYS[at..at+3], its own
-- clock's hour - 2 to hour + 1 (`first` the number of the first), so that when the
-- two clocks differ by less than an hour the server's hour is one of the middle three
-- and the hour before it is passed too. A larger difference fails the step: no key
-- is built here.
local function handled_keys(KEYS, at, first, now, bucket_ms)
  local bucket = math.floor(now / bucket_ms)
  local k = bucket - tonumber(first)
  if k < 1 or k > 3 then
    error({ err = 'SERVER_FAULT the clocks of Redis (hour ' .. bucket .. ') and of the caller (hour ' ..
      (tonumber(first) + 2) .. ') differ by an hour or more: set both right' })
  end
  return KEYS[at + k], KEYS[at + k - 1], (bucket + 2) * bucket_ms
end

-- How each message was handled before: a final state in either hour's hash wins
-- over `seen` (decided, reply not yet committed).
local function handled_states(mids, now_key, before_key)
  local in_now = fetch(mids, mids, 'HMGET', now_key)
  local in_before = fetch(mids, mids, 'HMGET', before_key)
  local done_of = {}
  for _, mid in ipairs(mids) do
    local a, b = in_now[mid], in_before[mid]
    if a and a ~= 'seen' then done_of[mid] = a
    elseif b and b ~= 'seen' then done_of[mid] = b
    else done_of[mid] = a or b end
  end
  return done_of
end

-- Writes the handled states (`mid, state, mid, state, ...`), kept through the next
-- hour so every id is remembered for one to two hours.
local function write_handled(now_key, expire_at, pairs)
  if #pairs == 0 then return end
  in_slices(pairs, 1000, function(...) redis.call('HSET', now_key, ...) end)
  redis.call('PEXPIREAT', now_key, expire_at)
end

-- Pushes events onto a contact's history, the one write of a message or reply
-- that can fail on the contact's keys (`ck`, returns the `fail:` verdict then): its
-- `HISTORY:{id}`, unless another program keeps that key as another type (the
-- original gateway's sorted set), then SecondMe's own `SECONDME:history:{id}`, so
-- a key of theirs is never written or its type changed. Trying the push first
-- costs nothing extra in the common case. LPUSH returns the length: trim only when
-- the list is well over its cap, so a busy conversation is not trimmed at every
-- message. The expiry follows the last write.
local function push_history(ck, ttl_ms, cap, ...)
  local h = ck.history
  local len = redis.pcall('LPUSH', h, ...)
  if type(len) == 'table' and len.err then
    -- Anything but a foreign type (an ACL that does not reach the key) is the
    -- server's fault, as in `try`.
    if not len.err:find('^WRONGTYPE') then error({ err = 'SERVER_FAULT ' .. len.err }) end
    h = ck.own_history
    local failed
    len, failed = try(h, 'LPUSH', h, ...)
    if failed then return failed end
  end
  if len > cap + 10 then
    redis.call('LTRIM', h, 0, cap - 1)
  end
  redis.call('PEXPIRE', h, ttl_ms)
  return nil
end

-- `...`: more field-value pairs (an approved draft's `approved true`).
local function add_reply(stream, cap, rid, contact, content, mid, persona, now, delay, ...)
  redis.call('XADD', stream, 'MAXLEN', '~', cap, '*',
    'replyId', rid, 'contactId', contact, 'content', content, 'inReplyTo', mid,
    'persona', persona, 'timestamp', tostring(now), 'delayMs', delay, ...)
end

local function add_counts(warnings, stats, counts)
  for name, n in pairs(counts) do
    if n > 0 and not best_effort(warnings, stats, 'HINCRBY', stats, name, n) then return end
  end
end

local function append(list, more)
  for _, v in ipairs(more) do list[#list + 1] = v end
  return list
end

-- Draft mode (issue 21). `d` holds the keys and values every step that writes
-- drafts shares: `modes` SECONDME:modes, `index` DRAFTS, `regen` DRAFTS:regenerate,
-- `setting` the reply_mode setting, `ttl` the draft lifetime ms, `channel` events:drafts.

-- Whether replies to `contact` wait as drafts: its own mode in SECONDME:modes, else
-- the `*` default there, else the setting. A value that is neither `auto` nor `draft`
-- (another program's) drafts: conservatively, nothing goes out unseen.
local function drafting(d, contact)
  local m = redis.call('HMGET', d.modes, contact, K.mode_default)
  return (m[1] or m[2] or d.setting) ~= 'auto'
end

-- The id of the contact's waiting draft (false when none), or nil and the `fail:`
-- verdict when another program holds DRAFT:{contactId} as another type: the one call
-- of a draft that can fail on the contact's keys (`ck`), run before any write.
local function waiting_draft(ck)
  return try(ck.draft, 'HGET', ck.draft, 'draftId')
end

local function draft_event(channel, kind, id, contact, now)
  redis.call('PUBLISH', channel,
    cjson.encode({ type = kind, draftId = id, contactId = contact, at = now }))
end

-- Makes a written reply the contact's draft, in place of the waiting one (`replaced`:
-- one draft per burst, answering its last message), and announces it. A request to
-- write the old one again is void with it.
local function put_draft(d, ck, contact, sid, mid, rid, content, persona, now, replaced)
  local key, id, expires = ck.draft, K.draft_id .. mid, now + d.ttl
  redis.call('DEL', key)
  redis.call('HSET', key, 'draftId', id, 'contactId', contact, 'content', content,
    'inReplyTo', mid, 'createdAt', tostring(now), 'expiresAt', tostring(expires),
    'persona', persona, 'streamId', sid, 'replyId', rid)
  redis.call('ZADD', d.index, expires, contact)
  redis.call('HDEL', d.regen, contact)
  draft_event(d.channel, replaced and 'replaced' or 'created', id, contact, now)
end

-- Sleep hours in `defer` mode and the operator's count of messages not answered
-- (issue 21). `SECONDME:deferred` holds, per contact, the newest message it wrote
-- in the sleep hours (`{"streamId":…,"message":<events:messages payload>}`); the
-- workers answer it, with the whole night in the history, when the window ends.
-- The message id a deferral holds (nil when none, or unreadable).
local function deferred_field(key, contact, field)
  local held = redis.call('HGET', key, contact)
  if not held then return nil end
  local ok, t = pcall(cjson.decode, held)
  if not ok or type(t) ~= 'table' then return nil end
  if field == 'streamId' then return t.streamId end
  return type(t.message) == 'table' and t.message.messageId or nil
end

-- Whether stream id `a` comes after `b` (`ms-seq`); an unreadable one never stands.
local function later_entry(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(tostring(b), '^(%d+)-(%d+)$')
  if not bm then return true end
  if not am then return false end
  if tonumber(am) ~= tonumber(bm) then return tonumber(am) > tonumber(bm) end
  return tonumber(as) > tonumber(bs)
end

-- Keeps the contact's newest message of the night: an older entry decided late (a
-- slow engine's commit at the window's start, a claimed entry) never replaces it.
local function defer(key, contact, sid, event)
  local held = deferred_field(key, contact, 'streamId')
  if held and not later_entry(sid, held) then return end
  redis.call('HSET', key, contact, '{"streamId":"' .. sid .. '","message":' .. event .. '}')
end

-- Why the contact of keys `ck` is paused, as PAUSEMETA holds it (nil when unknown).
local function pause_reason(ck)
  local r = redis.pcall('GET', ck.pause_meta)
  if type(r) == 'string' then return r end
  return nil
end

-- A message of an enabled contact the twin chose not to answer, counted for the
-- operator, unless the person is answering the contact themselves (a takeover).
local function not_answered(warnings, key, contact, ck, verdict)
  if verdict == 'skip:paused' and pause_reason(ck) == 'takeover' then return end
  best_effort(warnings, key, 'HINCRBY', key, contact, 1)
end

-- The skips that leave an enabled contact's message for the operator.
local UNANSWERED = { ['skip:sleep_hours'] = true, ['skip:kill_switch'] = true,
  ['skip:rate_limit'] = true, ['skip:paused'] = true }

-- Decides a whole batch of parsed queue entries in one atomic step and, for
-- entries that come with a reply already written, sends it in the same step.
-- KEYS[1] PAUSE:ALL  KEYS[2] OPTIN:contacts  KEYS[3] SECONDME:state  KEYS[4] QUEUE:messages
-- KEYS[5] CONTACTS:activity  KEYS[6] SECONDME:stats  KEYS[7] QUEUE:responses
-- ARGV[1] group  ARGV[2] takeover pause ms  ARGV[3] rate max  ARGV[4] rate window s
-- ARGV[5] rate-limit pause ms  ARGV[6] HANDLED bucket ms  ARGV[7] history length
-- ARGV[8] events:pause  ARGV[9] events:messages  ARGV[10] responses cap
-- ARGV[11] 1 in sleep hours (no automated replies), else 0
-- ARGV[12] history TTL ms of an enabled contact  ARGV[13] history TTL ms of any other
-- ARGV[14] CONTACTS:activity cap
-- ARGV[15] 1 when another program counts COUNTER:{contactId}:msgs (only read here), else 0
-- KEYS[8] SECONDME:modes  KEYS[9] DRAFTS  KEYS[10] DRAFTS:regenerate
-- ARGV[16] reply_mode setting (auto|draft)  ARGV[17] draft lifetime ms  ARGV[18] events:drafts
-- KEYS[11] SECONDME:unanswered  KEYS[12] SECONDME:deferred
-- ARGV[19] sleep_mode (skip|defer): in `defer`, an incoming message of an enabled contact in
-- the sleep hours is kept in SECONDME:deferred (verdict `deferred`) instead of skipped
-- KEYS[13] PAUSEMETA:ALL  KEYS[14] SECONDME:unheard (voice notes and photos of enabled contacts
-- the twin could not understand, `skip:unreadable`: kept apart from SECONDME:unanswered, as the
-- twin's next reply to the contact does not clear them; the person's own message does)
-- KEYS[15..18] four HANDLED hours, the first ARGV[20] (handled_keys)
-- then each contact's keys (contact_keys) and SENT:{messageId} of each entry of kind `me`
-- then 13 values per entry: streamId messageId contactId kind(in|unread|me|out) timestamp
--   eventJson (`unread`: an incoming message whose voice note or photo the worker could not
--   understand; decided as `in`, but where it would be answered it is `skip:unreadable`)
--   replyId replyContent persona delayMs replyEventJson  (the five reply values empty when
--   the reply is written later; then an `answer` verdict waits for commit)
--   keysAt (where the contact's keys begin in KEYS)  sentAt (where SENT:{messageId} is, kind
--   `me`; else 0)
-- A reply written before the decision for a contact in draft mode becomes the contact's
-- draft instead (verdict `drafted`, handled as `drafted`).
-- Returns one verdict per entry: sent | drafted | answer | duplicate | echo | takeover | recorded |
-- deferred | skip:kill_switch | skip:not_enabled | skip:paused | skip:sleep_hours | skip:rate_limit |
-- skip:unreadable |
-- fail:{why} (a key of this entry's contact that another program gave a type or value
-- the step cannot use: nothing was written for the entry, which stays pending for the
-- worker to dead-letter); then `warn:{text}` for each best-effort write that failed.
-- A shared key of a foreign type fails the whole call with a SHARED_KEY error before
-- anything is written.
local function decide(KEYS, ARGV)
  local now = now_ms()
  local group = ARGV[1]
  local takeover_ms, rate_max, rate_window = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
  local rate_pause_ms, bucket_ms, history_len = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
  local ch_pause, ch_messages, cap = ARGV[8], ARGV[9], ARGV[10]
  local asleep = ARGV[11] == '1'
  local history_ttl_enabled, history_ttl_other = tonumber(ARGV[12]), tonumber(ARGV[13])
  local activity_cap = tonumber(ARGV[14])
  local counted_elsewhere = ARGV[15] == '1'
  local d = { modes = KEYS[8], index = KEYS[9], regen = KEYS[10], setting = ARGV[16],
    ttl = tonumber(ARGV[17]), channel = ARGV[18] }
  local unanswered, deferred, deferring = KEYS[11], KEYS[12], ARGV[19] == 'defer'
  local all_meta, unheard = KEYS[13], KEYS[14]
  local FIRST, FIELDS = 21, 13
  local warnings = {}

  local handled_now, handled_before, handled_expiry = handled_keys(KEYS, 15, ARGV[20], now, bucket_ms)
  local refused = check_shared({
    { KEYS[2], 'set' }, { KEYS[4], 'stream' }, { KEYS[7], 'stream' },
    { handled_now, 'hash' }, { handled_before, 'hash' },
    { KEYS[8], 'hash' }, { KEYS[9], 'zset' }, { KEYS[10], 'hash' }, { KEYS[12], 'hash' },
  })
  if refused then return refused end

  -- A Redis that lost SecondMe's state (restart without persistence) must answer
  -- nobody until the operator says so.
  if redis.call('EXISTS', KEYS[3]) == 0 then
    if redis.call('SET', KEYS[1], tostring(now), 'NX') then
      redis.call('SET', all_meta, 'state_lost')
      pause_event(ch_pause, K.all, 'pause', nil, 'state_lost')
    end
    redis.call('SET', KEYS[3], tostring(now))
  end
  local killed = redis.call('EXISTS', KEYS[1]) == 1

  -- Read what the whole batch needs in a few calls instead of a few per entry: how
  -- each message was handled before, the contacts' pauses and their opt-in. Writes
  -- below keep these tables current, so a later entry of the same batch sees an
  -- earlier one's effect. Lists grow through explicit counters: Lua's `#t` is a
  -- search, not a field.
  local mids, contacts, keys_of, pause_keys = {}, {}, {}, {}
  local n_mids, n_contacts = 0, 0
  for j = FIRST, #ARGV - FIELDS + 1, FIELDS do
    n_mids = n_mids + 1
    mids[n_mids] = ARGV[j + 1]
    local c = ARGV[j + 2]
    if not keys_of[c] then
      local ck = contact_keys(KEYS, ARGV[j + 11])
      keys_of[c] = ck
      n_contacts = n_contacts + 1
      contacts[n_contacts] = c
      pause_keys[n_contacts] = ck.pause
    end
  end
  local done_of = handled_states(mids, handled_now, handled_before)
  local pause_of = fetch(contacts, pause_keys, 'MGET')
  -- MGET answers nil for a key of another type too, and such a pause still holds:
  -- one EXISTS tells whether any of the batch's pause keys is one.
  local n_found, n_exist = 0, 0
  for _, c in ipairs(contacts) do
    if pause_of[c] then n_found = n_found + 1 end
  end
  for s = 1, n_contacts, 1000 do
    n_exist = n_exist + redis.call('EXISTS', unpack(pause_keys, s, math.min(s + 999, n_contacts)))
  end
  if n_exist > n_found then
    for _, c in ipairs(contacts) do
      if not pause_of[c] and redis.call('EXISTS', keys_of[c].pause) == 1 then
        pause_of[c] = 'a key of another type'
      end
    end
  end
  local optin_of = fetch(contacts, contacts, 'SMISMEMBER', KEYS[2])

  local function paused(contact)
    return pause_holds(pause_of[contact], now)
  end

  local function pause(contact, ms, reason)
    local expires = now + ms
    local ck = keys_of[contact]
    set_pause(ck.pause, ck.pause_meta, expires, reason)
    pause_of[contact] = tostring(expires)
    pause_event(ch_pause, contact, 'pause', expires, reason)
  end

  local function remember(contact, ...)
    local ttl = optin_of[contact] == 1 and history_ttl_enabled or history_ttl_other
    return push_history(keys_of[contact], ttl, history_len, ...)
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

  -- What an incoming message gets, from what was read above; no writes.
  local function gate(contact, count, rid, unread)
    if count > rate_max and not paused(contact) then return 'skip:rate_limit'
    elseif killed then return 'skip:kill_switch'
    elseif optin_of[contact] == 0 then return 'skip:not_enabled'
    elseif paused(contact) then return 'skip:paused'
    elseif unread then return 'skip:unreadable'
    elseif asleep and deferring then return 'deferred'
    elseif asleep then return 'skip:sleep_hours'
    elseif rid ~= '' then return 'sent'
    end
    return 'answer'
  end

  local verdicts, n_verdicts = {}, 0
  local counts = { received = 0, skipped = 0, takeovers = 0, rate_limited = 0, duplicates = 0,
    answered = 0, drafted = 0, deferred = 0 }
  local i = FIRST
  while i + FIELDS - 1 <= #ARGV do
    local sid, mid, contact, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    local ts, event = ARGV[i + 4], ARGV[i + 5]
    local rid, rcontent, rpersona, rdelay, revent =
      ARGV[i + 6], ARGV[i + 7], ARGV[i + 8], ARGV[i + 9], ARGV[i + 10]
    local ck, sent_at = keys_of[contact], tonumber(ARGV[i + 12])
    i = i + FIELDS
    local done = done_of[mid]
    local verdict
    if done and done ~= 'seen' then
      ack(sid)
      counts.duplicates = counts.duplicates + 1
      verdict = 'duplicate'
    elseif kind == 'me' then
      if redis.call('EXISTS', KEYS[sent_at]) == 1 then
        finish(sid, mid, 'echo')
        verdict = 'echo'
      else
        verdict = remember(contact, event)
        if not verdict then
          touch(contact, ts)
          redis.call('PUBLISH', ch_messages, event)
          pause(contact, takeover_ms, 'takeover')
          -- The person answers the contact: nothing is left for the twin or the operator.
          best_effort(warnings, unanswered, 'HDEL', unanswered, contact)
          best_effort(warnings, unheard, 'HDEL', unheard, contact)
          redis.call('HDEL', deferred, contact)
          finish(sid, mid, 'takeover')
          counts.takeovers = counts.takeovers + 1
          verdict = 'takeover'
        end
      end
    elseif kind == 'out' then
      verdict = remember(contact, event)
      if not verdict then
        touch(contact, ts)
        redis.call('PUBLISH', ch_messages, event)
        finish(sid, mid, 'recorded')
        verdict = 'recorded'
      end
    else
      -- Every call that can fail on this contact's keys runs before the first write
      -- nobody can take back (an event, a pause, a reply).
      local fresh = done ~= 'seen'
      local ckey = ck.counter
      local count, failed
      if fresh and not counted_elsewhere then
        count, failed = try(ckey, 'INCR', ckey)
      else
        -- Redelivered after a crash between decide and commit: counted and shown
        -- already; or the gateway counts every message itself (counting here too
        -- would pause a contact at half the limit).
        count, failed = try(ckey, 'GET', ckey)
        if not failed then count = tonumber(count) or 0 end
      end
      if not failed and fresh and not counted_elsewhere then
        -- In the same atomic step, and NX so a counter left without a TTL by another
        -- program gets one: a counter can never outlive its window.
        redis.call('EXPIRE', ckey, rate_window, 'NX')
      end
      local replaced
      if not failed then
        verdict = gate(contact, count, rid, kind == 'unread')
        if verdict == 'sent' and drafting(d, contact) then
          replaced, failed = waiting_draft(ck)
          verdict = 'drafted'
        end
      end
      if not failed then
        if fresh and verdict == 'sent' then
          failed = remember(contact, event, revent)
        elseif fresh then
          failed = remember(contact, event)
        elseif verdict == 'sent' then
          failed = remember(contact, revent)
        end
      end
      if failed then
        verdict = failed
      else
        if fresh then
          counts.received = counts.received + 1
          touch(contact, ts)
          redis.call('PUBLISH', ch_messages, event)
        end
        if verdict == 'skip:rate_limit' then
          pause(contact, rate_pause_ms, 'rate_limit')
          counts.rate_limited = counts.rate_limited + 1
        end
        if verdict == 'sent' then
          add_reply(KEYS[7], cap, rid, contact, rcontent, mid, rpersona, now, rdelay)
          redis.call('PUBLISH', ch_messages, revent)
          best_effort(warnings, unanswered, 'HDEL', unanswered, contact)
          -- This reply has the night in view: the deferral is answered with it.
          redis.call('HDEL', deferred, contact)
          finish(sid, mid, 'answered')
          counts.answered = counts.answered + 1
        elseif verdict == 'drafted' then
          put_draft(d, ck, contact, sid, mid, rid, rcontent, rpersona, now, replaced)
          redis.call('HDEL', deferred, contact)
          finish(sid, mid, 'drafted')
          counts.drafted = counts.drafted + 1
        elseif verdict == 'answer' then
          mark(mid, 'seen')
        elseif verdict == 'deferred' then
          defer(deferred, contact, sid, event)
          finish(sid, mid, 'deferred')
          counts.deferred = counts.deferred + 1
        else
          local enabled = optin_of[contact] == 1
          if enabled and verdict == 'skip:unreadable' then
            best_effort(warnings, unheard, 'HINCRBY', unheard, contact, 1)
          elseif enabled and UNANSWERED[verdict] then
            not_answered(warnings, unanswered, contact, ck, verdict)
          end
          finish(sid, mid, verdict)
          counts.skipped = counts.skipped + 1
        end
      end
    end
    n_verdicts = n_verdicts + 1
    verdicts[n_verdicts] = verdict
  end
  in_slices(acks, 1000, function(...) redis.call('XACK', KEYS[4], group, ...) end)
  write_handled(handled_now, handled_expiry, handled)
  if n_activity > 0 then
    local ok = true
    in_slices(activity, 1000, function(...)
      if ok then ok = best_effort(warnings, KEYS[5], 'ZADD', KEYS[5], 'GT', ...) ~= nil end
    end)
    -- Capped, so strangers writing from ever new numbers cannot grow it without end.
    if ok and redis.call('ZCARD', KEYS[5]) > activity_cap + 100 then
      redis.call('ZREMRANGEBYRANK', KEYS[5], 0, -(activity_cap + 1))
    end
  end
  add_counts(warnings, KEYS[6], counts)
  return append(verdicts, warnings)
end

-- Writes the replies of a batch, each exactly once, and acknowledges their entries.
-- The pause checks run again here: a kill switch or pause set while the replies were
-- being written withholds them.
-- KEYS[1] PAUSE:ALL  KEYS[2] OPTIN:contacts  KEYS[3] QUEUE:messages  KEYS[4] QUEUE:responses
-- KEYS[5] SECONDME:stats
-- ARGV[1] group  ARGV[2] HANDLED bucket ms  ARGV[3] history length  ARGV[4] responses cap
-- ARGV[5] events:messages  ARGV[6] 1 in sleep hours (withhold every reply), else 0
-- ARGV[7] history TTL ms (the contact is enabled when a reply goes out)
-- KEYS[6] SECONDME:modes  KEYS[7] DRAFTS  KEYS[8] DRAFTS:regenerate
-- ARGV[8] reply_mode setting (auto|draft)  ARGV[9] draft lifetime ms  ARGV[10] events:drafts
-- KEYS[9] SECONDME:unanswered  KEYS[10] SECONDME:deferred  ARGV[11] sleep_mode (skip|defer)
-- KEYS[11..14] four HANDLED hours, the first ARGV[12] (handled_keys), then each contact's keys
-- then 10 values per reply: streamId messageId contactId replyId content persona delayMs eventJson
-- messageEventJson (the answered message's events:messages payload) keysAt (where the
-- contact's keys begin in KEYS, contact_keys)
-- A reply to a contact in draft mode becomes the contact's draft (handled as `drafted`).
-- A message kept for the end of the sleep hours (handled as `deferred`) is answered here
-- like one just decided while its deferral still holds it (else `duplicate`: a reply to a
-- newer message, or the person's own, answered the night); a reply or draft to a contact
-- ends its deferral. In `defer` mode, a reply the sleep hours withhold defers its message
-- instead.
-- Returns one result per reply: sent | drafted | duplicate | withheld | fail:{why} (nothing
-- written, the entry stays pending for the worker to dead-letter); then `warn:{text}`
-- for a failed best-effort write. A shared key of a foreign type fails the whole
-- call with a SHARED_KEY error before anything is written.
local function commit(KEYS, ARGV)
  local now = now_ms()
  local group, bucket_ms, history_len, cap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
  local channel = ARGV[5]
  local asleep = ARGV[6] == '1'
  local history_ttl = tonumber(ARGV[7])
  local d = { modes = KEYS[6], index = KEYS[7], regen = KEYS[8], setting = ARGV[8],
    ttl = tonumber(ARGV[9]), channel = ARGV[10] }
  local unanswered, deferred, deferring = KEYS[9], KEYS[10], ARGV[11] == 'defer'
  local FIRST, FIELDS = 13, 10
  local warnings = {}

  local handled_now, handled_before, handled_expiry = handled_keys(KEYS, 11, ARGV[12], now, bucket_ms)
  local refused = check_shared({
    { KEYS[2], 'set' }, { KEYS[3], 'stream' }, { KEYS[4], 'stream' },
    { handled_now, 'hash' }, { handled_before, 'hash' },
    { KEYS[6], 'hash' }, { KEYS[7], 'zset' }, { KEYS[8], 'hash' }, { KEYS[10], 'hash' },
  })
  if refused then return refused end
  local killed = redis.call('EXISTS', KEYS[1]) == 1

  local mids = {}
  for j = FIRST, #ARGV - FIELDS + 1, FIELDS do mids[#mids + 1] = ARGV[j + 1] end
  local done_of = handled_states(mids, handled_now, handled_before)

  local function paused(ck)
    local v, failed = try(ck.pause, 'GET', ck.pause)
    -- A pause key of a foreign type is still a pause: withhold, conservatively.
    return failed ~= nil or pause_holds(v, now)
  end

  local results, acks, marks = {}, {}, {}
  local counts = { answered = 0, skipped = 0, drafted = 0 }
  local i = FIRST
  while i + FIELDS - 1 <= #ARGV do
    local sid, mid, contact, rid = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    local content, persona, delay, event = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
    local message, ck = ARGV[i + 8], contact_keys(KEYS, ARGV[i + 9])
    i = i + FIELDS
    local done = done_of[mid]
    local result
    local enabled = redis.call('SISMEMBER', KEYS[2], contact) == 1
    if done and done ~= 'seen' and done ~= 'deferred' then
      -- Answered already: a deferral still holding this message is over too.
      if deferred_field(deferred, contact, 'messageId') == mid then
        redis.call('HDEL', deferred, contact)
      end
      result = 'duplicate'
    elseif done ~= 'seen' and deferred_field(deferred, contact, 'streamId') ~= sid
        and #redis.call('XPENDING', KEYS[3], group, sid, sid, 1) == 0 then
      -- A night's reply (its entry was acknowledged when it was deferred) whose
      -- deferral ended meanwhile: a reply to a newer message, or the person, answered it.
      result = 'duplicate'
    elseif asleep and deferring and enabled and not killed and not paused(ck) then
      defer(deferred, contact, sid, message)
      append(marks, { mid, 'deferred' })
      done_of[mid] = 'deferred'
      counts.deferred = (counts.deferred or 0) + 1
      result = 'withheld'
    elseif asleep or killed or paused(ck) or not enabled then
      append(marks, { mid, 'skip:withheld' })
      done_of[mid] = 'skip:withheld'
      counts.skipped = counts.skipped + 1
      if enabled then
        not_answered(warnings, unanswered, contact, ck, paused(ck) and 'skip:paused' or '')
      end
      if not asleep then best_effort(warnings, deferred, 'HDEL', deferred, contact) end
      result = 'withheld'
    elseif drafting(d, contact) then
      local replaced
      replaced, result = waiting_draft(ck)
      if not result then
        put_draft(d, ck, contact, sid, mid, rid, content, persona, now, replaced)
        append(marks, { mid, 'drafted' })
        done_of[mid] = 'drafted'
        counts.drafted = counts.drafted + 1
        redis.call('HDEL', deferred, contact)
        result = 'drafted'
      end
    else
      -- The history first: it is the one write of this reply that can fail.
      result = push_history(ck, history_ttl, history_len, event)
      if not result then
        add_reply(KEYS[4], cap, rid, contact, content, mid, persona, now, delay)
        redis.call('PUBLISH', channel, event)
        append(marks, { mid, 'answered' })
        -- The same message twice in one call (a gateway's duplicate) is answered once.
        done_of[mid] = 'answered'
        counts.answered = counts.answered + 1
        redis.call('HDEL', deferred, contact)
        best_effort(warnings, unanswered, 'HDEL', unanswered, contact)
        result = 'sent'
      end
    end
    if result:sub(1, 5) ~= 'fail:' then acks[#acks + 1] = sid end
    results[#results + 1] = result
  end
  in_slices(acks, 1000, function(...) redis.call('XACK', KEYS[3], group, ...) end)
  write_handled(handled_now, handled_expiry, marks)
  add_counts(warnings, KEYS[5], counts)
  return append(results, warnings)
end

-- Records entries a newer message of the same contact answers (a burst gets one
-- reply, written for its last message): each is marked `superseded` unless it was
-- handled already, and acknowledged, in one step.
-- KEYS[1] QUEUE:messages  KEYS[2] SECONDME:stats  KEYS[3..6] four HANDLED hours (handled_keys)
-- ARGV[1] group  ARGV[2] HANDLED bucket ms  ARGV[3] the first HANDLED hour,
-- then 2 values per entry: streamId messageId
-- (an empty messageId: a second entry of a message another job answers, only
-- acknowledged). Returns one result per entry: superseded | duplicate (handled
-- before, or no messageId: only acknowledged); then `warn:{text}` for a failed best-effort write. A shared key of
-- a foreign type fails the whole call with a SHARED_KEY error before anything is written.
local function supersede(KEYS, ARGV)
  local now = now_ms()
  local group, bucket_ms = ARGV[1], tonumber(ARGV[2])
  local FIRST, FIELDS = 4, 2
  local handled_now, handled_before, handled_expiry = handled_keys(KEYS, 3, ARGV[3], now, bucket_ms)
  local refused = check_shared({
    { KEYS[1], 'stream' }, { handled_now, 'hash' }, { handled_before, 'hash' },
  })
  if refused then return refused end
  local mids = {}
  for j = FIRST, #ARGV - FIELDS + 1, FIELDS do
    if ARGV[j + 1] ~= '' then mids[#mids + 1] = ARGV[j + 1] end
  end
  local done_of = handled_states(mids, handled_now, handled_before)
  local results, acks, marks = {}, {}, {}
  for j = FIRST, #ARGV - FIELDS + 1, FIELDS do
    local sid, mid = ARGV[j], ARGV[j + 1]
    local done = done_of[mid]
    if mid == '' or (done and done ~= 'seen') then
      results[#results + 1] = 'duplicate'
    else
      append(marks, { mid, 'superseded' })
      done_of[mid] = 'superseded'
      results[#results + 1] = 'superseded'
    end
    acks[#acks + 1] = sid
  end
  in_slices(acks, 1000, function(...) redis.call('XACK', KEYS[1], group, ...) end)
  write_handled(handled_now, handled_expiry, marks)
  local warnings = {}
  add_counts(warnings, KEYS[2], { superseded = #marks / 2 })
  return append(results, warnings)
end

-- Moves entries to the dead-letter stream and acknowledges them in one step, so
-- an entry is acknowledged only with its dead letter written.
-- KEYS[1] QUEUE:deadletter  KEYS[2] the entries' stream (QUEUE:messages, or
-- QUEUE:responses for the WhatsApp gateway's replies)  KEYS[3] SECONDME:stats
-- ARGV[1] group  ARGV[2] cap  ARGV[3] time ms  ARGV[4..6] the field names of the
-- source id, the reason and the time; then per entry: streamId reason nFields and
-- nFields name/value pairs (the entry's own fields).
-- An entry no longer pending in the group (acknowledged meanwhile by another
-- consumer, e.g. sent by another gateway) gets no dead letter: it was handled.
-- The letters are written before any acknowledgement, so a failing XADD (the
-- script is not rolled back) leaves every entry pending.
-- Returns `warn:{text}` for each best-effort write that failed.
local function dead_letter(KEYS, ARGV)
  local refused = check_shared({ { KEYS[1], 'stream' }, { KEYS[2], 'stream' } })
  if refused then return refused end
  local group, cap, at = ARGV[1], ARGV[2], ARGV[3]
  local f_source, f_reason, f_at = ARGV[4], ARGV[5], ARGV[6]
  local acks, i = {}, 7
  while i + 2 <= #ARGV do
    local sid, reason, n_fields = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    if #redis.call('XPENDING', KEYS[2], group, sid, sid, 1) > 0 then
      local args = { KEYS[1], 'MAXLEN', '~', cap, '*', f_source, sid, f_reason, reason, f_at, at }
      for k = 1, 2 * n_fields do args[#args + 1] = ARGV[i + 2 + k] end
      redis.call('XADD', unpack(args))
      acks[#acks + 1] = sid
    end
    i = i + 3 + 2 * n_fields
  end
  in_slices(acks, 1000, function(...) redis.call('XACK', KEYS[2], group, ...) end)
  local warnings = {}
  add_counts(warnings, KEYS[3], { dead_letters = #acks })
  return warnings
end

redis.register_function('secondme_decide_' .. VERSION, decide)
redis.register_function('secondme_commit_' .. VERSION, commit)
redis.register_function('secondme_dead_letter_' .. VERSION, dead_letter)
redis.register_function('secondme_supersede_' .. VERSION, supersede)
