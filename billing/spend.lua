-- The ledger's one script: check the budgets of a charge and record it, atomically (billing/_ledger.py).
-- KEYS: 1 user day, 2 member day, 3 turn, 4 user budget, 5 member budget, 6 ledger stream,
--       7 holds, 8 holds by expiry, 9 users of the day, 10 members of the day, 11 prices
-- ARGV: 1 mode, 2 hold id, 3 now, 4 day ttl, 5 turn ttl, 6 hold ttl, 7 has member, 8 has turn,
--       9 limits json, 10 charge json, 11 stream maxlen
local mode, rid, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local has_member, has_turn = ARGV[7] == '1', ARGV[8] == '1'
local units = {'tokens', 'ms', 'micros'}
local function int(n) return string.format('%.0f', n) end

local function release(id)
  local raw = redis.call('HGET', KEYS[7], id)
  if not raw then return false end
  local hold = cjson.decode(raw)
  for _, key in ipairs(hold.keys) do
    if redis.call('EXISTS', key) == 1 then
      for _, u in ipairs(units) do
        if (hold[u] or 0) ~= 0 then redis.call('HINCRBY', key, 'held:' .. u, int(-hold[u])) end
      end
    end
  end
  redis.call('HDEL', KEYS[7], id)
  redis.call('ZREM', KEYS[8], id)
  return true
end

-- Holds nobody settled, a few per call.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', now, 'LIMIT', 0, 20)) do release(id) end

if mode == 'release' then return {1, release(rid) and 1 or 0} end

local charge = cjson.decode(ARGV[10])
local amount = {tokens = 0, ms = charge.q.compute_ms or 0, micros = 0}
local micros = 0
for name, n in pairs(charge.q) do
  if name == 'input_tokens' or name == 'output_tokens' then amount.tokens = amount.tokens + n end
  local per = redis.call('HGET', KEYS[11], charge.kind .. ':' .. charge.item .. '|' .. name)
  if not per then per = redis.call('HGET', KEYS[11], charge.kind .. ':*|' .. name) end
  micros = micros + n * (tonumber(per) or 0)
end
amount.micros = math.floor(micros + 0.5)

local scopes = {{'user', KEYS[1], KEYS[4], charge.user}}
if has_member then table.insert(scopes, {'member', KEYS[2], KEYS[5], charge.member}) end
if has_turn then table.insert(scopes, {'turn', KEYS[3], false, charge.turn_id}) end

if mode ~= 'settle' then
  local limits = cjson.decode(ARGV[9])
  for _, s in ipairs(scopes) do
    local scope, key, conf = s[1], s[2], s[3]
    if conf and redis.call('HGET', conf, 'frozen') == '1' then return {0, scope, s[4], 'frozen', 0, 0, 0} end
    for _, u in ipairs(units) do
      local limit = conf and redis.call('HGET', conf, 'limit:' .. u)
      limit = tonumber(limit) or (limits[scope] or {})[u]
      if limit and limit >= 0 then
        local c = redis.call('HMGET', key, 'used:' .. u, 'held:' .. u, 'topup:' .. u)
        local spent = (tonumber(c[1]) or 0) + (tonumber(c[2]) or 0)
        local cap = limit + (tonumber(c[3]) or 0)
        local over
        if mode == 'check' then over = spent >= cap else over = amount[u] > 0 and spent + amount[u] > cap end
        if over then return {0, scope, s[4], u, int(spent), int(cap), int(amount[u])} end
      end
    end
  end
end
if mode == 'check' then return {1} end

local day_ttl, turn_ttl = ARGV[4], ARGV[5]
if mode == 'reserve' then
  release(rid)
  local hold = {keys = {}, tokens = amount.tokens, ms = amount.ms, micros = amount.micros}
  for _, s in ipairs(scopes) do
    for _, u in ipairs(units) do
      if amount[u] ~= 0 then redis.call('HINCRBY', s[2], 'held:' .. u, int(amount[u])) end
    end
    redis.call('EXPIRE', s[2], s[1] == 'turn' and turn_ttl or day_ttl)
    table.insert(hold.keys, s[2])
  end
  redis.call('HSET', KEYS[7], rid, cjson.encode(hold))
  redis.call('ZADD', KEYS[8], now + tonumber(ARGV[6]), rid)
  return {1, amount.tokens, amount.ms, amount.micros}
end

-- debit or settle: record.
if mode == 'settle' then release(rid) end
for _, s in ipairs(scopes) do
  local key = s[2]
  for _, u in ipairs(units) do
    if amount[u] ~= 0 then redis.call('HINCRBY', key, 'used:' .. u, int(amount[u])) end
  end
  for name, n in pairs(charge.q) do redis.call('HINCRBY', key, 'q:' .. name, int(n)) end
  redis.call('HINCRBY', key, 'entries', 1)
  if s[1] == 'user' and has_member then
    local m = 'm:' .. charge.member .. ':'
    for _, u in ipairs(units) do redis.call('HINCRBY', key, m .. u, int(amount[u])) end
  end
  redis.call('EXPIRE', key, s[1] == 'turn' and turn_ttl or day_ttl)
end
redis.call('SADD', KEYS[9], charge.user)
redis.call('EXPIRE', KEYS[9], day_ttl)
if has_member then
  redis.call('SADD', KEYS[10], charge.member)
  redis.call('EXPIRE', KEYS[10], day_ttl)
end
charge.at = now
charge.tokens, charge.ms, charge.micros = amount.tokens, amount.ms, amount.micros
local id = redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[11], '*', 'j', cjson.encode(charge))
redis.call('EXPIRE', KEYS[6], day_ttl)
return {1, id, amount.tokens, amount.ms, amount.micros}
