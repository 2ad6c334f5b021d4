-- toolsdb rate limiter: one decision of an exact sliding window (a log).
-- KEYS[1]  the key's log: a list of the last admissions, newest first, each
--          the Redis server's clock in microseconds; never longer than the limit
-- ARGV[1]  max_requests (>= 1)
-- ARGV[2]  window in microseconds (>= 1000)
-- ARGV[3]  '0': return only 1 (admitted) or 0 (refused);
--          '1': return {admitted 1|0, remaining, retry_after in microseconds}
-- A request is admitted when fewer than max_requests admissions lie inside
-- (now - window, now], that is when the max_requests-th newest admission is
-- older than the window. A refused request is not recorded.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local limit = tonumber(ARGV[1])
local edge = now - tonumber(ARGV[2])
if ARGV[3] == '0' then
    -- The decision alone: the limit-th newest admission decides.
    local last = redis.call('LINDEX', KEYS[1], limit - 1)
    if last and tonumber(last) > edge then
        return 0
    end
    redis.call('LPUSH', KEYS[1], clock[1] .. string.format('%06d', tonumber(clock[2])))
    if last then
        redis.call('LTRIM', KEYS[1], 0, limit - 1)
    end
    redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) / 1000))
    return 1
end
-- The decision with what is left: first drop the admissions that have left
-- the window (the oldest are at the tail; each is dropped once, so this is
-- O(1) per admission over time), then the list's length is the count.
local oldest = redis.call('LINDEX', KEYS[1], -1)
while oldest and tonumber(oldest) <= edge do
    redis.call('RPOP', KEYS[1])
    oldest = redis.call('LINDEX', KEYS[1], -1)
end
local used = redis.call('LLEN', KEYS[1])
if used >= limit then
    return {0, 0, tonumber(redis.call('LINDEX', KEYS[1], limit - 1)) - edge}
end
redis.call('LPUSH', KEYS[1], clock[1] .. string.format('%06d', tonumber(clock[2])))
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) / 1000))
if used + 1 < limit then
    return {1, limit - used - 1, 0}
end
-- That was the last one: the next comes when the oldest leaves the window.
return {1, 0, tonumber(redis.call('LINDEX', KEYS[1], -1)) - edge}
