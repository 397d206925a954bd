-- Writes items of a store exactly, for the admin interface (store.rs puts
-- the shebang and usage.lua in front of this).
-- KEYS[1] store hash, KEYS[2] store order, KEYS[3] the user's usage hash.
-- ARGV[1] the global version to set ('' = unchanged), ARGV[2] number of
-- items, then per item: key, version, position, value. Positions ascend.
-- Keys created later by puts get positions above the last one written.
local hash, order, usage = KEYS[1], KEYS[2], KEYS[3]
-- A store written before usage was kept is counted in first.
count_store(usage, hash, order)
local items = tonumber(ARGV[2])
local bytes, keys = 0, 0
for n = 1, items do
  local i = 3 + 4 * (n - 1)
  local key = ARGV[i]
  if redis.call('HEXISTS', hash, 'v' .. key) == 1 then
    bytes = bytes - string.len(key) - redis.call('HSTRLEN', hash, 'd' .. key)
    keys = keys - 1
  end
  redis.call('HSET', hash, 'v' .. key, ARGV[i + 1], 'd' .. key, ARGV[i + 3])
  redis.call('ZADD', order, ARGV[i + 2], key)
  bytes = bytes + string.len(key) + string.len(ARGV[i + 3])
  keys = keys + 1
end
if items > 0 then
  local last = ARGV[3 + 4 * (items - 1) + 2]
  local handed_out = tonumber(redis.call('HGET', hash, 's') or '0')
  if tonumber(last) > handed_out then
    redis.call('HSET', hash, 's', last)
  end
end
if ARGV[1] ~= '' then
  redis.call('HSET', hash, 'g', ARGV[1])
end
if bytes ~= 0 then
  redis.call('HINCRBY', usage, 'bytes', int(bytes))
end
if keys ~= 0 then
  redis.call('HINCRBY', usage, 'keys', int(keys))
end
if redis.call('EXISTS', hash) == 1 then
  redis.call('HSET', hash, 'c', '1')
end
return 1
