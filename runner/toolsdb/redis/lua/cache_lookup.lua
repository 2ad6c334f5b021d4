-- toolsdb cache_result: a read that lets one caller fill a missing entry.
-- KEYS[1]  the entry, KEYS[2] its fill lock (same hash tag)
-- ARGV[1]  the caller's random token, ARGV[2] the fill lock's lease in ms
-- Returns {1, value} on a hit, {2} when this caller took the fill lock and
-- must compute, {0, the filler's remaining ms} when another caller is filling.
local value = redis.call('GET', KEYS[1])
if value then
    return {1, value}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return {2}
end
return {0, redis.call('PTTL', KEYS[2])}
