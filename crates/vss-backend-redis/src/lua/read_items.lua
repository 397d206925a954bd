#!lua flags=no-writes
-- One page of a store's state for the admin interface, with the global
-- version read in the same atomic step.
-- KEYS[1] store hash, KEYS[2] store order.
-- ARGV[1] position after which to start (exclusive), ARGV[2] most items,
-- ARGV[3] most bytes of values (the first item is taken whatever its size).
-- Returns {global version, key1, version1, position1, value1, ...}, by
-- ascending position.
local hash, order = KEYS[1], KEYS[2]
local most, budget = tonumber(ARGV[2]), tonumber(ARGV[3])
local reply = {redis.call('HGET', hash, 'g') or '0'}
local batch = redis.call('ZRANGE', order, '(' .. ARGV[1], '+inf', 'BYSCORE', 'LIMIT', 0, most, 'WITHSCORES')
local bytes, taken = 0, 0
for j = 1, #batch, 2 do
  local key = batch[j]
  bytes = bytes + redis.call('HSTRLEN', hash, 'd' .. key)
  if taken > 0 and bytes > budget then
    break
  end
  local fields = redis.call('HMGET', hash, 'v' .. key, 'd' .. key)
  reply[#reply + 1] = key
  reply[#reply + 1] = fields[1] or '0'
  reply[#reply + 1] = batch[j + 1]
  reply[#reply + 1] = fields[2] or ''
  taken = taken + 1
end
return reply
