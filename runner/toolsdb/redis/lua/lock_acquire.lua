-- toolsdb distributed lock: take the lock if it is free.
-- KEYS[1]  the lock, KEYS[2] its fencing counter (same hash tag)
-- ARGV[1]  the holder's random token, ARGV[2] the lease in milliseconds
-- Returns {1, fencing token} when taken, {0, the holder's remaining ms} when not.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return {1, redis.call('INCR', KEYS[2])}
end
return {0, redis.call('PTTL', KEYS[1])}
