"""Lua sources for the Redis backends (docs/design/redis-backends.md explains the key layout).

Every timestamp is taken from Redis' own clock (`TIME`), so nodes with skewed clocks agree on
ages and expiries. Scripts receive every key they touch in KEYS; they still assume a single
Redis primary (one script touches several users' keys), not Redis Cluster.
"""

from __future__ import annotations

_NOW = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function id_pos(id)
  return tonumber(string.match(id, '^(%d+)'))
end
"""

# KEYS[1] epoch, KEYS[2] global append counter, KEYS[3] feed stream, KEYS[4] seen-event key,
# KEYS[5] the channel's newest appended sequence (chanseq:<channel>; untouched without one),
# then per recipient i: KEYS[4 + 2i] its head counter, KEYS[5 + 2i] its log stream.
# ARGV[1] channel, [2] epoch to create when missing, [3] dedupe ms, [4] min_events,
# [5] min_age ms, [6] max_events, [7] idle ttl ms (0: none), [8] feed length,
# [9] meta (a JSON array), [10] payload, [11] commit xid (0: none), [12] channel sequence
# (0: none), [13] chanseq ttl ms, [14..] recipient user ids.
# An entry whose channel already has a later sequence appended is stored with field l = 1 (and
# "l":1 in the header): late, see EventMeta.late. The xid goes to field x and header "x".
# Returns {global seq (0 for a duplicate), epoch, late (0 or 1)}.
APPEND = (
    _NOW
    + """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[2]
  redis.call('SET', KEYS[1], epoch)
end
if not redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[3]) then
  return {0, epoch, 0}
end
local late = 0
local chanseq = tonumber(ARGV[12])
if chanseq > 0 then
  local newest = tonumber(redis.call('GET', KEYS[5]) or '0')
  if chanseq < newest then
    late = 1
  elseif chanseq > newest then
    redis.call('SET', KEYS[5], chanseq, 'PX', ARGV[13])
  end
end
local xid = ARGV[11]
local extra = {}
local extra_header = ''
if xid ~= '0' then
  extra[#extra + 1] = 'x'
  extra[#extra + 1] = xid
  extra_header = extra_header .. ',"x":' .. xid
end
if late == 1 then
  extra[#extra + 1] = 'l'
  extra[#extra + 1] = '1'
  extra_header = extra_header .. ',"l":1'
end

local now = now_ms()
local min_events = tonumber(ARGV[4])
local cutoff = now - tonumber(ARGV[5])
local max_events = tonumber(ARGV[6])
local idle = tonumber(ARGV[7])
local meta = ARGV[9]
local payload = ARGV[10]

-- Retention: keep an entry while it is among the newest min_events OR younger than min_age,
-- never more than max_events. Entries are in creation order, so old ones form a prefix.
local function trim(key, head)
  local len = redis.call('XLEN', key)
  if len > max_events then
    redis.call('XTRIM', key, 'MAXLEN', max_events)
    len = max_events
  end
  if len <= min_events then
    return
  end
  local last_candidate = (head - min_events) .. '-0'
  local start = '-'
  local count = 1
  while true do
    local batch = redis.call('XRANGE', key, start, last_candidate, 'COUNT', count)
    if #batch == 0 then
      redis.call('XTRIM', key, 'MINID', (head - min_events + 1) .. '-0')
      return
    end
    for _, entry in ipairs(batch) do
      -- fields are written in the order t, m, p
      if tonumber(entry[2][2]) >= cutoff then
        redis.call('XTRIM', key, 'MINID', entry[1])
        return
      end
    end
    start = '(' .. batch[#batch][1]
    if count < 256 then
      count = count * 4
    end
  end
end

local recipients = {}
for i = 1, #ARGV - 13 do
  local head_key = KEYS[4 + 2 * i]
  local log_key = KEYS[5 + 2 * i]
  local pos = redis.call('INCR', head_key)
  redis.call('XADD', log_key, pos .. '-0', 't', now, 'm', meta, 'p', payload, unpack(extra))
  trim(log_key, pos)
  if idle > 0 then
    redis.call('PEXPIRE', log_key, idle)
  end
  recipients[i] = '[' .. cjson.encode(ARGV[13 + i]) .. ',' .. pos .. ']'
end

local seq = redis.call('INCR', KEYS[2])
local header = '{"e":' .. cjson.encode(epoch) .. ',"g":' .. seq .. ',"t":' .. now
  .. ',"m":' .. meta .. extra_header .. ',"r":[' .. table.concat(recipients, ',') .. ']}'
local message = header .. '\\n' .. payload
redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[8], seq .. '-0', 'd', message)
redis.call('PUBLISH', ARGV[1], message)
return {seq, epoch, late}
"""
)

# KEYS[1] head counter, KEYS[2] log stream, KEYS[3] epoch; ARGV[1] first position wanted,
# ARGV[2] count. Returns {head, oldest retained position (0: none), entries, epoch ("": none)}.
READ = (
    _NOW
    + """
local head = tonumber(redis.call('GET', KEYS[1]) or '0')
local first = 0
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #oldest > 0 then
  first = id_pos(oldest[1][1])
end
local entries = redis.call('XRANGE', KEYS[2], ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])
return {head, first, entries, redis.call('GET', KEYS[3]) or ''}
"""
)

# KEYS[1] epoch; ARGV[1] the epoch to replace, [2] the new one. 1 if replaced, else 0.
SWAP_EPOCH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# Connection records: hash fields u user, e epoch, l live flag, o owner (node instance),
# n node id, t updated ms, c checkpoints "seq:pos;seq:pos" (oldest first), x live until ms,
# s the hello's commit snapshot (hubbub.realtime.commitclock; "" when unknown).
# Presence: KEYS live:<user> hash cid -> "<expires ms>|<owner>", and a sorted set of users
# scored by their newest expiry.

_PRESENCE = """
local function refresh_presence(live_key, users_key, user, now)
  local fields = redis.call('HGETALL', live_key)
  local best = 0
  local count = 0
  for i = 1, #fields, 2 do
    local expires = tonumber(string.match(fields[i + 1], '^(%d+)'))
    if expires > now then
      count = count + 1
      if expires > best then
        best = expires
      end
    else
      redis.call('HDEL', live_key, fields[i])
    end
  end
  if best > 0 then
    redis.call('ZADD', users_key, best, user)
  else
    redis.call('ZREM', users_key, user)
  end
  return count
end
local function owner_of(value)
  return string.match(value, '|(.*)$')
end
"""

# KEYS[1] record, KEYS[2] live:<user>, KEYS[3] users; ARGV[1] cid, [2] user, [3] epoch,
# [4] owner, [5] node, [6] checkpoints, [7] retention ms, [8] live ttl ms, [9] snapshot.
OPEN = (
    _NOW
    + """
local now = now_ms()
local ttl = tonumber(ARGV[8])
local expires = now + ttl
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'u', ARGV[2], 'e', ARGV[3], 'l', '1', 'o', ARGV[4], 'n', ARGV[5],
  't', now, 'c', ARGV[6], 'x', expires, 's', ARGV[9] or '')
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[7]) + ttl)
redis.call('HSET', KEYS[2], ARGV[1], expires .. '|' .. ARGV[4])
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('ZADD', KEYS[3], 'GT', expires, ARGV[2])
return now
"""
)

# KEYS[1] record; ARGV[1] "seq:pos[;seq:pos...]", [2] cap, [3] retention ms, [4] live ttl ms,
# [5] owner. Only the owner may add checkpoints: once another node resumed the connection, a
# late batch from the old socket's node would mix two numberings.
CHECKPOINT = (
    _NOW
    + """
local rec = redis.call('HMGET', KEYS[1], 'c', 'l', 'o')
if not rec[2] or rec[3] ~= ARGV[5] then
  return 0
end
local cps = rec[1] or ''
if cps == '' then
  cps = ARGV[1]
else
  cps = cps .. ';' .. ARGV[1]
end
local _, separators = string.gsub(cps, ';', '')
for _ = 1, separators + 1 - tonumber(ARGV[2]) do
  cps = string.sub(cps, string.find(cps, ';', 1, true) + 1)
end
redis.call('HSET', KEYS[1], 'c', cps, 't', now_ms())
local ttl = tonumber(ARGV[3])
if rec[2] == '1' then
  ttl = ttl + tonumber(ARGV[4])
end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""
)

# KEYS[1] record, KEYS[2] live:<user>, KEYS[3] users; ARGV[1] cid, [2] user, [3] owner,
# [4] retention ms. Only the owner may detach: another node may have taken the id over.
DETACH = (
    _NOW
    + _PRESENCE
    + """
local now = now_ms()
local owner = redis.call('HGET', KEYS[1], 'o')
if owner and owner ~= ARGV[3] then
  return 0
end
if owner then
  redis.call('HSET', KEYS[1], 'l', '0', 't', now, 'x', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
local value = redis.call('HGET', KEYS[2], ARGV[1])
if value and owner_of(value) == ARGV[3] then
  redis.call('HDEL', KEYS[2], ARGV[1])
end
refresh_presence(KEYS[2], KEYS[3], ARGV[2], now)
return 1
"""
)

# KEYS[1] record, KEYS[2] live:<user>, KEYS[3] users; ARGV[1] cid, [2] user.
FORGET = (
    _NOW
    + _PRESENCE
    + """
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[1])
refresh_presence(KEYS[2], KEYS[3], ARGV[2], now_ms())
return 1
"""
)

# KEYS[1] record. Returns {now ms, flat field list}.
GET = (
    _NOW
    + """
return {now_ms(), redis.call('HGETALL', KEYS[1])}
"""
)

# KEYS[1] live:<user>, KEYS[2] users; ARGV[1] user. Returns the live connection count.
LIVE_COUNT = (
    _NOW
    + _PRESENCE
    + """
return refresh_presence(KEYS[1], KEYS[2], ARGV[1], now_ms())
"""
)

# KEYS[1] users. Returns the users with at least one unexpired live connection.
CONNECTED_USERS = (
    _NOW
    + """
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
)

# KEYS[1] users, then per connection i: KEYS[2i] record, KEYS[2i + 1] live:<user>.
# ARGV[1] owner, [2] live ttl ms, [3] retention ms, then per connection: cid, user.
# Refreshes this node's live connections; returns the ids another node has taken over.
HEARTBEAT = (
    _NOW
    + """
local now = now_ms()
local ttl = tonumber(ARGV[2])
local expires = now + ttl
local record_ttl = tonumber(ARGV[3]) + ttl
local lost = {}
for i = 1, (#KEYS - 1) / 2 do
  local record = KEYS[2 * i]
  local live = KEYS[2 * i + 1]
  local cid = ARGV[2 + 2 * i]
  local user = ARGV[3 + 2 * i]
  local owner = redis.call('HGET', record, 'o')
  if owner and owner ~= ARGV[1] then
    lost[#lost + 1] = cid
  else
    -- A missing record (Redis lost its data) still counts for presence: the socket is open.
    if owner then
      redis.call('HSET', record, 'x', expires)
      redis.call('PEXPIRE', record, record_ttl)
    end
    redis.call('HSET', live, cid, expires .. '|' .. ARGV[1])
    redis.call('PEXPIRE', live, ttl)
    redis.call('ZADD', KEYS[1], 'GT', expires, user)
  end
end
return lost
"""
)
