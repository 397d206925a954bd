-- Deletes a store and frees its usage, for the admin interface (store.rs
-- puts the shebang and usage.lua in front of this).
-- KEYS[1] store hash, KEYS[2] store order, KEYS[3] the user's usage hash.
local hash, order, usage = KEYS[1], KEYS[2], KEYS[3]
if is_counted(hash) then
  local bytes, keys = store_usage(hash, order)
  if keys > 0 then
    redis.call('HINCRBY', usage, 'bytes', int(-bytes))
    redis.call('HINCRBY', usage, 'keys', int(-keys))
  end
end
return redis.call('DEL', hash, order)
