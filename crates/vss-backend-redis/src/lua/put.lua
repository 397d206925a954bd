#!lua
-- One putObjects, all or nothing. The shebang makes Redis refuse the whole
-- script up front when it is out of memory, instead of failing half-way.
--
-- KEYS[1] store hash, KEYS[2] store order (sorted set).
-- ARGV[1] expected global version ('' = not checked), ARGV[2] new global version,
-- ARGV[3] number of writes, ARGV[4] number of deletes, then
--   per write:  key, condition ('n' absent | 'v' version is | 'a' any), expected version, new version, value
--   per delete: key, condition ('v' version is | 'e' exists), expected version
-- Versions are decimal strings written only by this backend, so comparing
-- strings compares versions exactly.
-- Returns {'ok'}, or {'g', stored global version}, {'w', write index}, {'d', delete index}.
local hash, order = KEYS[1], KEYS[2]
local expected_gv = ARGV[1]
local writes, deletes = tonumber(ARGV[3]), tonumber(ARGV[4])
local first_delete = 5 + 5 * writes

if expected_gv ~= '' then
  local stored = redis.call('HGET', hash, 'g') or '0'
  if stored ~= expected_gv then
    return {'g', stored}
  end
end

-- Check everything before writing anything.
local existed = {}
for w = 1, writes do
  local i = 5 + 5 * (w - 1)
  local current = redis.call('HGET', hash, 'v' .. ARGV[i])
  local condition = ARGV[i + 1]
  if (condition == 'n' and current) or (condition == 'v' and current ~= ARGV[i + 2]) then
    return {'w', w}
  end
  existed[w] = current and true or false
end
for d = 1, deletes do
  local i = first_delete + 3 * (d - 1)
  local current = redis.call('HGET', hash, 'v' .. ARGV[i])
  if (not current) or (ARGV[i + 1] == 'v' and current ~= ARGV[i + 2]) then
    return {'d', d}
  end
end

for w = 1, writes do
  local i = 5 + 5 * (w - 1)
  local key = ARGV[i]
  if not existed[w] then
    -- A new key takes the next creation sequence; updates keep theirs.
    local sequence = redis.call('HINCRBY', hash, 's', 1)
    redis.call('ZADD', order, sequence, key)
  end
  redis.call('HSET', hash, 'v' .. key, ARGV[i + 3], 'd' .. key, ARGV[i + 4])
end
for d = 1, deletes do
  local key = ARGV[first_delete + 3 * (d - 1)]
  redis.call('HDEL', hash, 'v' .. key, 'd' .. key)
  redis.call('ZREM', order, key)
end
if expected_gv ~= '' then
  redis.call('HSET', hash, 'g', ARGV[2])
end
return {'ok'}
