-- Usage bookkeeping, shared by the scripts that write (store.rs puts this
-- file after the shebang line and before put.lua, delete.lua and count.lua).
--
-- A user's usage hash (KEYS[3] of put and delete) has the fields 'bytes'
-- (every stored key's length plus its value's length, over all the user's
-- stores) and 'keys' (stored keys). A store's hash has the field 'c' once the
-- store's data is part of its user's usage; until then its data is counted
-- by the first script that meets the store (stores written before usage was
-- kept), so no data is ever counted twice or missed.

-- A whole number as a decimal string, for HINCRBY: Redis turns a Lua number
-- argument into text in its own way (possibly with an exponent), which
-- HINCRBY would refuse.
local function int(n)
  return string.format('%d', n)
end

-- What a store holds, by walking its sorted set: bytes (each key's length
-- plus its value's) and keys.
local function store_usage(hash, order)
  local bytes, keys = 0, 0
  local members = redis.call('ZRANGE', order, 0, -1)
  for m = 1, #members do
    local key = members[m]
    bytes = bytes + string.len(key) + redis.call('HSTRLEN', hash, 'd' .. key)
    keys = keys + 1
  end
  return bytes, keys
end

-- Whether the store's data is already part of its user's usage.
local function is_counted(hash)
  return redis.call('HEXISTS', hash, 'c') == 1
end

-- The user's usage as stored (absent: nothing), never below zero.
local function read_usage(usage)
  local stored = redis.call('HMGET', usage, 'bytes', 'keys')
  return tonumber(stored[1] or '0') or 0, tonumber(stored[2] or '0') or 0
end

-- Adds the store's data to its user's usage and flags the store, unless it
-- is flagged already or does not exist. Answers 1 when it counted, else 0.
local function count_store(usage, hash, order)
  if is_counted(hash) or redis.call('EXISTS', hash) == 0 then
    return 0
  end
  local bytes, keys = store_usage(hash, order)
  if keys > 0 then
    redis.call('HINCRBY', usage, 'bytes', int(bytes))
    redis.call('HINCRBY', usage, 'keys', int(keys))
  end
  redis.call('HSET', hash, 'c', '1')
  return 1
end
