#!lua
-- One deleteObject: idempotent, optionally conditional on the version.
-- KEYS[1] store hash, KEYS[2] store order.
-- ARGV[1] key, ARGV[2] expected version ('' = any).
-- Returns 1 when the key was deleted, 0 when nothing changed.
local hash, order = KEYS[1], KEYS[2]
local key, expected = ARGV[1], ARGV[2]
local current = redis.call('HGET', hash, 'v' .. key)
if current and (expected == '' or current == expected) then
  redis.call('HDEL', hash, 'v' .. key, 'd' .. key)
  redis.call('ZREM', order, key)
  return 1
end
return 0
