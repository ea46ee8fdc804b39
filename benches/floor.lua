-- The least work Redis does per message under the contract, with no client I/O and
-- none of SecondMe's own keys: the seed's producer XADD, a consumer-group read and
-- ack, two events:messages publishes, the rate counter with its TTL, and the reply
-- XADD. Used by the load bench as a ceiling for any worker on this server.
-- KEYS[1] stream  KEYS[2] responses  ARGV[1] messages  ARGV[2] group  ARGV[3] channel
local n, group, channel = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local event = '{"messageId":"m","contactId":"c","content":"are we still on for dinner tonight?","botSent":false,"timestamp":1}'
local done = 0
while done < n do
  local k = math.min(256, n - done)
  for i = 1, k do
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', 1000, '*', 'messageId', 'f' .. (done + i),
      'contactId', 'c' .. ((done + i) % 120000), 'content', 'are we still on for dinner tonight?',
      'timestamp', '1', 'direction', 'incoming', 'fromMe', 'false')
  end
  local got = redis.call('XREADGROUP', 'GROUP', group, 'floor', 'COUNT', k, 'STREAMS', KEYS[1], '>')
  local ids = {}
  for _, entry in ipairs(got[1][2]) do
    ids[#ids + 1] = entry[1]
    local contact = entry[2][4]
    redis.call('PUBLISH', channel, event)
    local counter = 'floor:COUNTER:' .. contact .. ':msgs'
    redis.call('INCR', counter)
    redis.call('EXPIRE', counter, 60, 'NX')
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'replyId', 'bot_' .. entry[1],
      'contactId', contact, 'content', 'sounds good!', 'inReplyTo', entry[1],
      'persona', 'casual', 'timestamp', '1', 'delayMs', '1200')
    redis.call('PUBLISH', channel, event)
  end
  redis.call('XACK', KEYS[1], group, unpack(ids))
  done = done + k
end
return done
