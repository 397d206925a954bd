-- Counts stores written before usage was kept into their users' usage, once
-- (the startup pass of RedisStore::connect; see usage.lua).
-- KEYS: triples of (store hash, store order, the store user's usage hash).
-- Returns how many of the stores were counted now (the others were counted
-- already, by an earlier pass or by a write).
local counted = 0
for i = 1, #KEYS, 3 do
  counted = counted + count_store(KEYS[i + 2], KEYS[i], KEYS[i + 1])
end
return counted
