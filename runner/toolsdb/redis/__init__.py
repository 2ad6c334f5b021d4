"""toolsdb's Redis toolkit: cache, rate limiter, session store and
distributed lock, cluster-safe. See docs/redis.md."""

from .cache import CacheManager, cache_result, get_cache_manager
from .connection import (
    RedisConfigError,
    RedisSettings,
    RedisUnavailable,
    get_redis_client,
    reset_default_client,
)
from .lock import DistributedLock, Lease, LockLost, LockTimeout
from .ratelimit import Decision, RateLimiter, get_rate_limiter
from .sessions import SessionExists, SessionManager, get_session_manager

__all__ = [
    "CacheManager",
    "Decision",
    "DistributedLock",
    "Lease",
    "LockLost",
    "LockTimeout",
    "RateLimiter",
    "RedisConfigError",
    "RedisSettings",
    "RedisUnavailable",
    "SessionExists",
    "SessionManager",
    "cache_result",
    "get_cache_manager",
    "get_rate_limiter",
    "get_redis_client",
    "get_session_manager",
    "reset_default_client",
]
