-- toolsdb cache_result: store the computed value and drop the fill lock.
-- KEYS[1]  the entry, KEYS[2] its fill lock (same hash tag)
-- ARGV[1]  the filler's token, ARGV[2] the value (JSON),
-- ARGV[3]  the entry's time to live in ms (0: no expiry)
-- The lock is deleted only if it is still this filler's.
if tonumber(ARGV[3]) > 0 then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
    redis.call('SET', KEYS[1], ARGV[2])
end
if redis.call('GET', KEYS[2]) == ARGV[1] then
    redis.call('DEL', KEYS[2])
end
return 1
