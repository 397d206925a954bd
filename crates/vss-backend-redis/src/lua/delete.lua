-- One deleteObject: idempotent, optionally conditional on the version.
-- (store.rs puts the `#!lua` shebang and usage.lua in front of this.)
-- KEYS[1] store hash, KEYS[2] store order, KEYS[3] the user's usage hash
-- (absent on Redis Cluster, where usage is not kept).
-- ARGV[1] key, ARGV[2] expected version ('' = any).
-- Returns 1 when the key was deleted, 0 when nothing changed.
local hash, order, usage = KEYS[1], KEYS[2], KEYS[3]
local key, expected = ARGV[1], ARGV[2]
if usage then
  -- A store written before usage was kept is counted first, so that what
  -- this delete frees is taken from a usage that includes it.
  count_store(usage, hash, order)
end
local current = redis.call('HGET', hash, 'v' .. key)
if current and (expected == '' or current == expected) then
  if usage then
    local freed = string.len(key) + redis.call('HSTRLEN', hash, 'd' .. key)
    redis.call('HINCRBY', usage, 'bytes', int(-freed))
    redis.call('HINCRBY', usage, 'keys', -1)
  end
  redis.call('HDEL', hash, 'v' .. key, 'd' .. key)
  redis.call('ZREM', order, key)
  return 1
end
return 0
