//! The ledger's Lua scripts. Each takes every key it touches in KEYS, all under
//! one tenant's hash tag; amounts arrive as decimal strings and are written
//! back as integers. RESERVE and SETTLE are sent with `cost::bucket::BUCKET_LUA`
//! prepended.

/// Reserves against every budget and both token buckets, all or nothing.
pub(super) const RESERVE: &str = r#"
if redis.call('EXISTS', KEYS[5]) == 1 then return {'dup'} end
local tok, nusd = tonumber(ARGV[3]), tonumber(ARGV[4])
local K = ARGV[5]
local checks = {
  {'tenant', 'usd_day', 1, 1, 6}, {'tenant', 'usd_month', 2, 1, 7},
  {'tenant', 'tokens_day', 1, 0, 8}, {'tenant', 'tokens_month', 2, 0, 9},
  {'tenant', 'session_usd', 3, 1, 10}, {'tenant', 'session_tokens', 3, 0, 11},
  {K, 'usd_day', 1, 1, 12}, {K, 'usd_month', 2, 1, 13},
  {K, 'tokens_day', 1, 0, 14}, {K, 'tokens_month', 2, 0, 15},
}
local granted = {'ok'}
for _, c in ipairs(checks) do
  local limit = redis.call('HGET', KEYS[4], c[1] .. ':' .. c[2])
  if not limit then limit = ARGV[c[5]] end
  if limit ~= '' then
    limit = tonumber(limit)
    local s, r = ':st', ':rt'
    local ask = tok
    if c[4] == 1 then s, r, ask = ':sn', ':rn', nusd end
    local used = tonumber(redis.call('HGET', KEYS[c[3]], c[1] .. s) or '0')
      + tonumber(redis.call('HGET', KEYS[c[3]], c[1] .. r) or '0')
    if used + ask > limit then
      return {'budget', c[1], c[2], string.format('%.0f', limit), string.format('%.0f', used)}
    end
    table.insert(granted, c[1]); table.insert(granted, c[2])
    table.insert(granted, string.format('%.0f', limit))
    table.insert(granted, string.format('%.0f', used + ask))
  end
end
local now = tonumber(ARGV[1])
local buckets = {{KEYS[7], ARGV[16], ARGV[17], 'tokens_tenant'}, {KEYS[8], ARGV[18], ARGV[19], 'tokens_key'}}
for i, b in ipairs(buckets) do
  if b[2] ~= '' then
    local wait = bucket_take(b[1], tonumber(b[2]), tonumber(b[3]), now, tok)
    if wait > 0 then
      if i == 2 and ARGV[16] ~= '' then
        bucket_refund(KEYS[7], tonumber(ARGV[16]), tonumber(ARGV[17]), now, tok)
      end
      return {'rate', b[4], string.format('%.0f', wait)}
    end
  end
end
for i = 1, 3 do
  redis.call('HINCRBY', KEYS[i], 'tenant:rt', ARGV[3])
  redis.call('HINCRBY', KEYS[i], 'tenant:rn', ARGV[4])
end
for i = 1, 2 do
  redis.call('HINCRBY', KEYS[i], K .. ':rt', ARGV[3])
  redis.call('HINCRBY', KEYS[i], K .. ':rn', ARGV[4])
end
redis.call('PEXPIREAT', KEYS[1], ARGV[20])
redis.call('PEXPIREAT', KEYS[2], ARGV[21])
redis.call('PEXPIRE', KEYS[3], ARGV[22])
redis.call('HSET', KEYS[5], 'state', 'reserved', 'tok', ARGV[3], 'nusd', ARGV[4],
  'day', ARGV[23], 'month', ARGV[24], 'session', ARGV[25], 'key', K,
  'dexp', ARGV[20], 'mexp', ARGV[21], 'sttl', ARGV[22])
redis.call('PEXPIRE', KEYS[5], ARGV[26])
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[27])
return granted
"#;

/// Settles a reservation to what was spent, once.
pub(super) const SETTLE: &str = r#"
local function neg(s) if s == '0' then return '0' end return '-' .. s end
local state = redis.call('HGET', KEYS[4], 'state')
if state == 'settled' then return 0 end
local K = ARGV[6]
local function tombstone()
  redis.call('HDEL', KEYS[4], 'tok', 'nusd', 'day', 'month', 'session', 'key')
  redis.call('HSET', KEYS[4], 'state', 'settled')
  redis.call('PEXPIRE', KEYS[4], ARGV[18])
  redis.call('ZREM', KEYS[5], ARGV[19])
end
-- Never reserved and nothing spent (a call dropped while reserving): only
-- the tombstone, so the reservation, if it comes later, is a duplicate.
if not state and ARGV[4] == '0' and ARGV[5] == '0' then
  tombstone()
  return 1
end
local rtok, rnusd, atok, anusd = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local function charge(field, amount)
  for i = 1, 3 do redis.call('HINCRBY', KEYS[i], 'tenant:' .. field, amount) end
  for i = 1, 2 do redis.call('HINCRBY', KEYS[i], K .. ':' .. field, amount) end
end
if state == 'reserved' then
  charge('rt', neg(rtok)); charge('rn', neg(rnusd))
  charge('st', atok); charge('sn', anusd)
  local now = tonumber(ARGV[1])
  local unused = tonumber(rtok) - tonumber(atok)
  local buckets = {{KEYS[6], ARGV[7], ARGV[8]}, {KEYS[7], ARGV[9], ARGV[10]}}
  for _, b in ipairs(buckets) do
    if b[2] ~= '' then
      if unused >= 0 then
        bucket_refund(b[1], tonumber(b[2]), tonumber(b[3]), now, unused)
      else
        bucket_force(b[1], tonumber(b[2]), tonumber(b[3]), now, -unused)
      end
    end
  end
elseif state == 'expired' then
  charge('st', neg(rtok)); charge('sn', neg(rnusd))
  charge('st', atok); charge('sn', anusd)
else
  charge('st', atok); charge('sn', anusd)
end
tombstone()
-- The counters live as long as the reservation gave them.
redis.call('PEXPIREAT', KEYS[1], ARGV[21])
redis.call('PEXPIREAT', KEYS[2], ARGV[22])
redis.call('PEXPIRE', KEYS[3], ARGV[23])
local names = {'calls', 'estimated', 'input', 'cached', 'output', 'nusd'}
for i = 1, 6 do
  if ARGV[11 + i] ~= '0' then
    redis.call('HINCRBY', KEYS[8], ARGV[11] .. '|' .. names[i], ARGV[11 + i])
  end
end
redis.call('PEXPIREAT', KEYS[8], ARGV[20])
return 1
"#;

/// Charges an expired reservation in full.
pub(super) const EXPIRE: &str = r#"
local function neg(s) if s == '0' then return '0' end return '-' .. s end
if redis.call('HGET', KEYS[4], 'state') ~= 'reserved' then
  redis.call('ZREM', KEYS[5], ARGV[4])
  return 0
end
local K = ARGV[1]
for _, f in ipairs({{'rt', 'st', ARGV[2]}, {'rn', 'sn', ARGV[3]}}) do
  for i = 1, 3 do
    redis.call('HINCRBY', KEYS[i], 'tenant:' .. f[1], neg(f[3]))
    redis.call('HINCRBY', KEYS[i], 'tenant:' .. f[2], f[3])
  end
  for i = 1, 2 do
    redis.call('HINCRBY', KEYS[i], K .. ':' .. f[1], neg(f[3]))
    redis.call('HINCRBY', KEYS[i], K .. ':' .. f[2], f[3])
  end
end
redis.call('HSET', KEYS[4], 'state', 'expired')
redis.call('ZREM', KEYS[5], ARGV[4])
local ttl = redis.call('HMGET', KEYS[4], 'dexp', 'mexp', 'sttl')
if ttl[1] then redis.call('PEXPIREAT', KEYS[1], ttl[1]) end
if ttl[2] then redis.call('PEXPIREAT', KEYS[2], ttl[2]) end
if ttl[3] then redis.call('PEXPIRE', KEYS[3], ttl[3]) end
return 1
"#;
