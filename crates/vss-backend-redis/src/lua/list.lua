#!lua flags=no-writes
-- One listKeyVersions page, newest first, with the global version read in
-- the same atomic step as the keys.
-- KEYS[1] store hash, KEYS[2] store order.
-- ARGV[1] upper score bound ('+inf' or '(' .. before_sequence, exclusive),
-- ARGV[2] literal key prefix, ARGV[3] matching keys wanted (page size + 1),
-- ARGV[4] most sorted-set entries to scan in this call.
-- Returns {global version, stopped_at, key1, version1, sequence1, ...}, where
-- stopped_at is the sequence of the last entry scanned when the scan budget
-- ran out before enough keys were found, and '' otherwise.
local hash, order = KEYS[1], KEYS[2]
local upper, prefix = ARGV[1], ARGV[2]
local wanted, budget = tonumber(ARGV[3]), tonumber(ARGV[4])
local prefix_len = string.len(prefix)

local global_version = redis.call('HGET', hash, 'g') or '0'
local keys, sequences = {}, {}
local scanned, last = 0, nil
local exhausted = wanted == 0

while (not exhausted) and #keys < wanted and scanned < budget do
  local chunk = math.min(budget - scanned, math.max(wanted - #keys, 64))
  local batch = redis.call('ZRANGE', order, upper, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, chunk, 'WITHSCORES')
  for j = 1, #batch, 2 do
    local member = batch[j]
    scanned = scanned + 1
    last = batch[j + 1]
    if prefix_len == 0 or string.sub(member, 1, prefix_len) == prefix then
      keys[#keys + 1] = member
      sequences[#sequences + 1] = last
      if #keys >= wanted then
        break
      end
    end
  end
  if #batch < 2 * chunk then
    exhausted = true
  elseif last then
    upper = '(' .. last
  end
end

local stopped_at = ''
if (not exhausted) and #keys < wanted and last then
  stopped_at = last
end

local reply = {global_version, stopped_at}
for k = 1, #keys do
  reply[#reply + 1] = keys[k]
  reply[#reply + 1] = redis.call('HGET', hash, 'v' .. keys[k])
  reply[#reply + 1] = sequences[k]
end
return reply
