#!lua
-- Appends one completed turn to a session, atomically (agentd's Redis session store).
-- The "#!lua" line makes Redis (7.0 and later) treat it as a script that writes: it
-- refuses the whole script up front when out of memory, never half of it.
-- KEYS[1] the session's meta hash, KEYS[2] its list of message records.
-- ARGV[1] expected turns, ARGV[2] now (unix ms, agentd's clock), ARGV[3] max age (ms),
-- ARGV[4] max records kept, ARGV[5] record format ("MAJOR.MINOR"), ARGV[6] the turn's
-- id, ARGV[7..] records.
-- Returns {1, turns, created_at_ms} when written, {3, turns, created_at_ms} when this
-- very turn was written already (a retry after a dropped connection), {0, turns} on a
-- version conflict, {2, format} when the session is in another major format.
local meta = redis.call('HMGET', KEYS[1], 'turns', 'updated_at_ms', 'created_at_ms', 'format',
  'last_turn')
local function major(format) return string.match(format, '^(%d+)%.') end
local turns = tonumber(meta[1])
local now = tonumber(ARGV[2])
local max_age = tonumber(ARGV[3])
-- Expired by agentd's clock, though Redis has not expired it yet: it is gone.
local expired = turns ~= nil and now - (tonumber(meta[2]) or 0) > max_age
if not expired and meta[4] and major(meta[4]) ~= major(ARGV[5]) then
  return {2, meta[4]}
end
if expired or turns == nil then
  -- No live session: this turn starts one. Leftovers (an expired session, a list
  -- whose hash was deleted by hand) must not become its history.
  redis.call('DEL', KEYS[1], KEYS[2])
  turns = nil
end
local current = turns or 0
if current ~= tonumber(ARGV[1]) then
  if turns ~= nil and meta[5] == ARGV[6] and current == tonumber(ARGV[1]) + 1 then
    return {3, current, meta[3]}
  end
  return {0, current}
end
local created = ARGV[2]
if turns ~= nil then created = meta[3] end
for i = 7, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
if turns == nil then
  redis.call('HSET', KEYS[1], 'created_at_ms', created, 'format', ARGV[5])
end
-- Only the fields this version owns are set: fields a newer version added stay.
redis.call('HSET', KEYS[1], 'turns', current + 1, 'updated_at_ms', ARGV[2], 'last_turn', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {1, current + 1, created}
