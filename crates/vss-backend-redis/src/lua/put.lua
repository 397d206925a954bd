-- One putObjects, all or nothing. store.rs puts the `#!lua` shebang and
-- usage.lua in front of this; the shebang makes Redis refuse the whole script
-- up front when it is out of memory, instead of failing half-way.
--
-- KEYS[1] store hash, KEYS[2] store order (sorted set), KEYS[3] the user's
-- usage hash (absent on Redis Cluster, where usage is not kept and ARGV[5],
-- ARGV[6] must be '').
-- ARGV[1] expected global version ('' = not checked), ARGV[2] new global version,
-- ARGV[3] number of writes, ARGV[4] number of deletes,
-- ARGV[5] most bytes the user may store ('' = no limit),
-- ARGV[6] most keys the user may store ('' = no limit), then
--   per write:  key, condition ('n' absent | 'v' version is | 'a' any), expected version, new version, value
--   per delete: key, condition ('v' version is | 'e' exists), expected version
-- Versions are decimal strings written only by this backend, so comparing
-- strings compares versions exactly.
-- Returns {'ok'}, or {'g', stored global version}, {'w', write index},
-- {'d', delete index}, or {'q', bytes before, keys before, bytes after, keys
-- after} when the quota refuses the put.
local hash, order, usage = KEYS[1], KEYS[2], KEYS[3]
local expected_gv = ARGV[1]
local writes, deletes = tonumber(ARGV[3]), tonumber(ARGV[4])
local max_bytes, max_keys = tonumber(ARGV[5]), tonumber(ARGV[6])
local first_write = 7
local first_delete = first_write + 5 * writes

if expected_gv ~= '' then
  local stored = redis.call('HGET', hash, 'g') or '0'
  if stored ~= expected_gv then
    return {'g', stored}
  end
end

-- Check everything before writing anything.
local existed = {}
for w = 1, writes do
  local i = first_write + 5 * (w - 1)
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

-- Then the quota, on the user's usage before and after this put (a conflict
-- is answered first). A store written before usage was kept is counted in
-- now, and flagged below only when the put goes through.
local counted, stored_bytes, stored_keys, after_bytes, after_keys
if usage then
  counted = is_counted(hash)
  stored_bytes, stored_keys = read_usage(usage)
  local before_bytes, before_keys = math.max(stored_bytes, 0), math.max(stored_keys, 0)
  if not counted then
    local store_bytes, store_keys = store_usage(hash, order)
    before_bytes, before_keys = before_bytes + store_bytes, before_keys + store_keys
  end
  after_bytes, after_keys = before_bytes, before_keys
  for w = 1, writes do
    local i = first_write + 5 * (w - 1)
    local key = ARGV[i]
    if existed[w] then
      after_bytes = after_bytes - string.len(key) - redis.call('HSTRLEN', hash, 'd' .. key)
      after_keys = after_keys - 1
    end
    after_bytes = after_bytes + string.len(key) + string.len(ARGV[i + 4])
    after_keys = after_keys + 1
  end
  for d = 1, deletes do
    local key = ARGV[first_delete + 3 * (d - 1)]
    after_bytes = after_bytes - string.len(key) - redis.call('HSTRLEN', hash, 'd' .. key)
    after_keys = after_keys - 1
  end
  after_bytes, after_keys = math.max(after_bytes, 0), math.max(after_keys, 0)
  if (max_bytes and after_bytes > before_bytes and after_bytes > max_bytes)
    or (max_keys and after_keys > before_keys and after_keys > max_keys) then
    return {'q', before_bytes, before_keys, after_bytes, after_keys}
  end
end

for w = 1, writes do
  local i = first_write + 5 * (w - 1)
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

if usage then
  if after_bytes ~= stored_bytes then
    redis.call('HINCRBY', usage, 'bytes', int(after_bytes - stored_bytes))
  end
  if after_keys ~= stored_keys then
    redis.call('HINCRBY', usage, 'keys', int(after_keys - stored_keys))
  end
  -- The store's data is in its user's usage now. A store that still does not
  -- exist (a put that wrote nothing) held nothing to count.
  if (not counted) and redis.call('EXISTS', hash) == 1 then
    redis.call('HSET', hash, 'c', '1')
  end
end
return {'ok'}
