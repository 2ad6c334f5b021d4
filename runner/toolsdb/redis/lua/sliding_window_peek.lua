-- toolsdb rate limiter: the state of a sliding window, without a request.
-- KEYS[1]  the key's log (see sliding_window.lua)
-- ARGV[1]  max_requests, ARGV[2] window in microseconds
-- Returns {remaining, retry_after in microseconds}. It drops admissions that
-- have left the window (as sliding_window.lua does), and records nothing.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local limit = tonumber(ARGV[1])
local edge = now - tonumber(ARGV[2])
local oldest = redis.call('LINDEX', KEYS[1], -1)
while oldest and tonumber(oldest) <= edge do
    redis.call('RPOP', KEYS[1])
    oldest = redis.call('LINDEX', KEYS[1], -1)
end
local used = redis.call('LLEN', KEYS[1])
if used < limit then
    return {limit - used, 0}
end
return {0, tonumber(redis.call('LINDEX', KEYS[1], limit - 1)) - edge}
