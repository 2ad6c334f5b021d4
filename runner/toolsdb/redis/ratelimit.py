"""The rate limiter: an exact sliding window, decided in one Lua script
(lua/sliding_window.lua) so concurrent clients never over-admit."""

from __future__ import annotations

from typing import NamedTuple

from . import scripts
from ._common import check_key, default_prefix, milliseconds, positive_int
from .connection import Client, get_redis_client, on_default_client, translated


class Decision(NamedTuple):
    """One rate-limit decision: admitted or not, what is left, and the seconds
    until the next request would be admitted (0.0 while some are left)."""

    allowed: bool
    remaining: int
    retry_after: float


class RateLimiter:
    """Sliding-window limits per key, under ``<prefix>rl:``."""

    def __init__(
        self,
        client: Client | None = None,
        *,
        max_requests: int = 100,
        window_seconds: float = 60,
        prefix: str | None = None,
    ) -> None:
        self.client = client if client is not None else get_redis_client()
        self.namespace = default_prefix(prefix) + "rl:"
        self.max_requests = positive_int(max_requests, "max_requests")
        self.window_seconds = window_seconds
        self._default_window_us = _window_us(window_seconds)
        self._windows: dict[float, int] = {}
        self._decide = scripts.bind(self.client, "sliding_window")
        self._peek = scripts.bind(self.client, "sliding_window_peek")

    def _arguments(self, key: str, max_requests: int | None, window_seconds: float | None) -> tuple[str, int, int]:
        """The Redis key, the limit and the window in microseconds, checked.
        The common cases (a str key, an int limit, a window seen before) take
        the fast path; anything else goes through the full checks."""
        if type(key) is not str or not key:
            check_key(key)
        if max_requests is None:
            limit = self.max_requests
        elif type(max_requests) is int and max_requests >= 1:
            limit = max_requests
        else:
            limit = positive_int(max_requests, "max_requests")
        if window_seconds is None:
            window = self._default_window_us
        else:
            window = self._windows.get(window_seconds) if type(window_seconds) in (int, float) else None
            if window is None:
                window = _window_us(window_seconds)
                if len(self._windows) < 256:
                    self._windows[window_seconds] = window
        return self.namespace + key, limit, window

    @translated
    def hit(self, key: str, max_requests: int | None = None, window_seconds: float | None = None) -> Decision:
        """Count one request for ``key`` if the window has room; the decision,
        with what is left and the wait for the next admission."""
        name, limit, window = self._arguments(key, max_requests, window_seconds)
        allowed, remaining, retry_us = self._decide([name], [limit, window, 1])
        return Decision(allowed == 1, remaining, retry_us / 1_000_000)

    @translated
    def is_allowed(self, key: str, max_requests: int | None = None, window_seconds: float | None = None) -> bool:
        """True (and the request counted) when ``key`` has had fewer than
        ``max_requests`` admitted requests in the last ``window_seconds``."""
        name, limit, window = self._arguments(key, max_requests, window_seconds)
        return self._decide([name], [limit, window, 0]) == 1

    @translated
    def peek(self, key: str, max_requests: int | None = None, window_seconds: float | None = None) -> Decision:
        """The state of ``key``'s window without counting a request."""
        name, limit, window = self._arguments(key, max_requests, window_seconds)
        remaining, retry_us = self._peek([name], [limit, window])
        return Decision(remaining > 0, remaining, retry_us / 1_000_000)

    def get_remaining(self, key: str, max_requests: int | None = None, window_seconds: float | None = None) -> int:
        """How many more requests ``key`` may make now."""
        return self.peek(key, max_requests, window_seconds).remaining

    def retry_after(self, key: str, max_requests: int | None = None, window_seconds: float | None = None) -> float:
        """Seconds until ``key``'s next request would be admitted (0.0: now)."""
        return self.peek(key, max_requests, window_seconds).retry_after

    @translated
    def reset(self, key: str) -> bool:
        """Forget ``key``'s window; True when it had one."""
        return bool(self.client.delete(self.namespace + check_key(key)))


def _window_us(window_seconds: float) -> int:
    return milliseconds(window_seconds, "window_seconds") * 1000


_default = on_default_client(RateLimiter)


def get_rate_limiter() -> RateLimiter:
    """The process's RateLimiter, on get_redis_client() (rebuilt after
    reset_default_client())."""
    return _default()
