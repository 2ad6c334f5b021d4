-- toolsdb: delete a key only if it still holds the caller's token (the
-- release of a lock, or of a cache fill lock). KEYS[1] the key, ARGV[1] the token.
-- Returns 1 when deleted, 0 when the key had expired or belongs to someone else.
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
