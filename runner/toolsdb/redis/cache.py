"""The cache manager: JSON values with a TTL, SCAN-based clearing, and
the ``cache_result`` decorator with stampede protection (see docs/redis.md)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from redis.cluster import RedisCluster

from . import scripts
from ._common import canonical, check_key, default_prefix, dumps, loads, milliseconds
from .connection import Client, get_redis_client, on_default_client, translate_errors, translated

_MISSING = object()
DEFAULT_TTL = 3600
SCAN_COUNT = 1000
_GLOB = str.maketrans({c: "\\" + c for c in "*?[]\\"})

F = TypeVar("F", bound=Callable[..., Any])


class CacheManager:
    """Get, set (JSON, TTL), delete and clear cache entries under ``<prefix>cache:``."""

    def __init__(self, client: Client | None = None, *, prefix: str | None = None) -> None:
        self.client = client if client is not None else get_redis_client()
        self.namespace = default_prefix(prefix) + "cache:"
        self._lookup = scripts.bind(self.client, "cache_lookup")
        self._fill = scripts.bind(self.client, "cache_fill")
        self._release = scripts.bind(self.client, "compare_and_delete")

    def key(self, key: str) -> str:
        """The Redis key of cache entry ``key``."""
        return self.namespace + check_key(key)

    @translated
    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default`` when there is none."""
        raw = self.client.get(self.key(key))
        return default if raw is None else loads(raw)

    @translated
    def set(self, key: str, value: Any, ttl_seconds: float | None = DEFAULT_TTL) -> None:
        """Store ``value`` (as JSON) for ``ttl_seconds`` (None: until deleted)."""
        name = self.key(key)
        ms = milliseconds(ttl_seconds, "ttl_seconds", allow_none=True)
        self.client.set(name, dumps(value, f"cache value for {key!r}"), px=ms)

    @translated
    def delete(self, *keys: str) -> int:
        """Delete entries; returns how many existed."""
        if not keys:
            return 0
        return int(self.client.delete(*[self.key(k) for k in keys]))

    @translated
    def exists(self, key: str) -> bool:
        return bool(self.client.exists(self.key(key)))

    @translated
    def ttl(self, key: str) -> float | None:
        """Seconds left; None when the entry has no expiry; raises KeyError when missing."""
        ms = self.client.pttl(self.key(key))
        if ms == -2:
            raise KeyError(key)
        return None if ms == -1 else ms / 1000

    @translated
    def clear_pattern(self, pattern: str) -> int:
        """Delete the entries whose key matches the glob ``pattern`` (relative to
        the cache namespace); walks SCAN, never KEYS. Returns how many it deleted."""
        check_key(pattern, "pattern")
        return self._unlink_matching(self.namespace.translate(_GLOB) + pattern)

    def _unlink_matching(self, match: str) -> int:
        deleted = 0
        batch: list[bytes] = []
        for name in self._scan(match):
            batch.append(name)
            if len(batch) >= SCAN_COUNT:
                deleted += self._unlink(batch)
                batch = []
        if batch:
            deleted += self._unlink(batch)
        return deleted

    def _scan(self, match: str) -> Iterable[bytes]:
        if isinstance(self.client, RedisCluster):
            # Every primary, each with its own cursor (redis-py walks them).
            return self.client.scan_iter(match=match, count=SCAN_COUNT, target_nodes=RedisCluster.PRIMARIES)
        return self.client.scan_iter(match=match, count=SCAN_COUNT)

    def _unlink(self, names: list[bytes]) -> int:
        # On a cluster, redis-py splits a multi-key UNLINK by slot.
        return int(self.client.unlink(*names))

    @translated
    def _delete_name(self, name: str) -> bool:
        return bool(self.client.delete(name))

    @translated
    def _clear_match(self, match: str) -> int:
        return self._unlink_matching(match)

    # -- cache_result's protocol -------------------------------------------------

    def get_or_compute(
        self,
        name: str,
        compute: Callable[[], Any],
        *,
        ttl_ms: int | None,
        cache_none: bool,
        lock_ms: int,
        wait_seconds: float,
    ) -> Any:
        """The value of Redis key ``name`` (a full key with a hash tag), or the
        result of ``compute()`` stored there, with one computing caller at a time.
        Errors raised by ``compute`` pass through untouched."""
        fill = name + ":fill"
        token = secrets.token_hex(16)
        deadline = None
        delay = 0.005
        while True:
            with translate_errors(self.client):
                answer = self._lookup(keys=[name, fill], args=[token, lock_ms])
            state = answer[0]
            if state == 1:
                return loads(answer[1])
            if state == 2:
                return self._compute_and_fill(name, fill, token, compute, ttl_ms, cache_none)
            now = time.monotonic()
            if deadline is None:
                deadline = now + wait_seconds
            if now >= deadline:
                # The filler is too slow: compute without the lock rather than fail.
                value = compute()
                if value is not None or cache_none:
                    text = dumps(value, "cached result")
                    with translate_errors(self.client):
                        self.client.set(name, text, px=ttl_ms)
                return value
            holder_left = max(int(answer[1]), 1) / 1000
            time.sleep(min(delay, holder_left, deadline - now))
            delay = min(delay * 2, 0.1)

    def _compute_and_fill(self, name, fill, token, compute, ttl_ms, cache_none) -> Any:
        try:
            value = compute()
            text = None if value is None and not cache_none else dumps(value, "cached result")
        except BaseException:
            # Drop the fill lock so a waiter computes at once; if Redis is gone
            # too, the lock expires on its own and the caller sees its own error.
            with contextlib.suppress(Exception):
                self._release(keys=[fill], args=[token])
            raise
        with translate_errors(self.client):
            if text is None:
                self._release(keys=[fill], args=[token])
            else:
                self._fill(keys=[name, fill], args=[token, text, ttl_ms or 0])
        return value


_default = on_default_client(CacheManager)


def get_cache_manager() -> CacheManager:
    """The process's CacheManager, on get_redis_client() (rebuilt after
    reset_default_client())."""
    return _default()


def _drops_first(fn: Callable) -> bool:
    params = list(inspect.signature(fn).parameters)
    return bool(params) and params[0] in ("self", "cls")


def cache_result(
    ttl_seconds: float | None = DEFAULT_TTL,
    *,
    cache: CacheManager | None = None,
    cache_none: bool = False,
    key: Callable[..., Any] | None = None,
    lock_seconds: float = 30,
    wait_seconds: float | None = None,
) -> Callable[[F], F]:
    """Cache a function's JSON result in Redis, keyed on the function and its
    arguments (see docs/redis.md for the key format and the stampede protection).

    ``key``: a callable taking the same arguments and returning a JSON value that
    replaces the arguments in the key. ``cache_none``: also store a None result.
    ``lock_seconds``: lease of the fill lock; ``wait_seconds``: how long a caller
    waits for another's fill before computing itself (default lock_seconds)."""
    ttl_ms = milliseconds(ttl_seconds, "ttl_seconds", allow_none=True)
    lock_ms = milliseconds(lock_seconds, "lock_seconds")
    if ttl_ms is not None:
        lock_ms = min(lock_ms, ttl_ms)
    wait = lock_ms / 1000 if wait_seconds is None else milliseconds(wait_seconds, "wait_seconds") / 1000
    if key is not None and not callable(key):
        raise TypeError(f"key must be a callable, got {type(key).__name__}")

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):
            raise TypeError(f"cache_result cannot wrap the coroutine function {fn.__qualname__}")
        signature = inspect.signature(fn)
        drop_first = _drops_first(fn)
        label = f"fn:{fn.__module__}:{fn.__qualname__}:"

        def argument_part(args: tuple, kwargs: dict) -> str:
            if key is not None:
                return canonical(key(*args, **kwargs), f"the key of {fn.__qualname__}")
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            if drop_first:
                arguments.pop(next(iter(signature.parameters)), None)
            try:
                return canonical(arguments, f"an argument of {fn.__qualname__}")
            except (TypeError, ValueError):
                for name, value in arguments.items():  # name the culprit
                    canonical(value, f"argument {name!r} of {fn.__qualname__}")
                raise

        def redis_key(manager: CacheManager, args: tuple, kwargs: dict) -> str:
            digest = hashlib.sha256(argument_part(args, kwargs).encode()).hexdigest()
            return f"{manager.namespace}{label}{{{digest}}}"

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            manager = cache if cache is not None else get_cache_manager()
            name = redis_key(manager, args, kwargs)
            return manager.get_or_compute(
                name,
                lambda: fn(*args, **kwargs),
                ttl_ms=ttl_ms,
                cache_none=cache_none,
                lock_ms=lock_ms,
                wait_seconds=wait,
            )

        def cache_key(*args, **kwargs) -> str:
            """The Redis key a call with these arguments uses."""
            return redis_key(cache if cache is not None else get_cache_manager(), args, kwargs)

        def invalidate(*args, **kwargs) -> bool:
            """Forget the entry of a call with these arguments; True when there was one."""
            manager = cache if cache is not None else get_cache_manager()
            name = redis_key(manager, args, kwargs)
            return manager._delete_name(name)

        def cache_clear() -> int:
            """Forget every entry of this function; returns how many."""
            manager = cache if cache is not None else get_cache_manager()
            match = (manager.namespace + label).translate(_GLOB) + "*"
            return manager._clear_match(match)

        wrapper.cache_key = cache_key  # type: ignore[attr-defined]
        wrapper.invalidate = invalidate  # type: ignore[attr-defined]
        wrapper.cache_clear = cache_clear  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
