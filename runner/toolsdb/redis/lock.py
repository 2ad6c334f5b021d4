"""The distributed lock: a lease on one Redis primary with a random
token, compare-and-delete release, extension, and a fencing token per
acquisition. docs/redis.md says what it guarantees and what it does not."""

from __future__ import annotations

import contextlib
import random
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import ToolsdbError
from . import scripts
from ._common import check_key, default_prefix, milliseconds
from .connection import Client, get_redis_client, translated

DEFAULT_TIMEOUT = 30
FIRST_BACKOFF = 0.002
MAX_BACKOFF = 0.1


class LockTimeout(ToolsdbError, TimeoutError):
    """hold() could not take the lock within blocking_timeout."""


class LockLost(ToolsdbError, RuntimeError):
    """The lock expired (or was taken by someone else) while it was held."""


@dataclass(frozen=True)
class Lease:
    """One acquisition: the lock's name, the holder's token, and the fencing
    token (grows with every acquisition of this name, never reused; None on a
    lock made with ``fencing=False``)."""

    name: str
    token: str
    fencing_token: int | None


class DistributedLock:
    """Named locks under ``<prefix>lock:{<name>}`` that expire after
    ``timeout_seconds`` unless extended. ``fencing=False`` skips the fencing
    counter: acquire is then a plain SET NX PX, and no counter key is kept per
    name (for many short-lived names where nothing checks a fence)."""

    def __init__(
        self,
        client: Client | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT,
        *,
        prefix: str | None = None,
        fencing: bool = True,
    ) -> None:
        self.client = client if client is not None else get_redis_client()
        self.namespace = default_prefix(prefix) + "lock:"
        self.timeout_ms = milliseconds(timeout_seconds, "timeout_seconds")
        if not isinstance(fencing, bool):
            raise TypeError(f"fencing must be True or False, got {type(fencing).__name__}")
        self.fencing = fencing
        self._acquire = scripts.bind(self.client, "lock_acquire")
        self._release = scripts.bind(self.client, "compare_and_delete")
        self._expire = scripts.bind(self.client, "compare_and_expire")
        self._local = threading.local()

    def keys(self, name: str) -> list[str]:
        """The lock's key and its fencing counter's (one hash tag, one slot)."""
        check_key(name, "lock name")
        if "{" in name or "}" in name:
            raise ValueError(f"lock name must not contain '{{' or '}}' (it becomes a hash tag), got {name!r}")
        lock = f"{self.namespace}{{{name}}}"
        return [lock, lock + ":fence"]

    def _leases(self) -> dict[str, Lease]:
        leases = getattr(self._local, "leases", None)
        if leases is None:
            leases = self._local.leases = {}
        return leases

    # -- leases --------------------------------------------------------------

    @translated
    def try_lease(self, name: str) -> tuple[Lease | None, int | None]:
        """One attempt: (the lease, 0) when taken, else (None, the holder's ms
        left, or None when not asked: a lock without fencing does not ask)."""
        keys = self.keys(name)
        token = secrets.token_hex(16)
        if not self.fencing:
            if self.client.set(keys[0], token, nx=True, px=self.timeout_ms):
                return Lease(name, token, None), 0
            return None, None
        taken, value = self._acquire(keys=keys, args=[token, self.timeout_ms])
        if taken == 1:
            return Lease(name, token, int(value)), 0
        return None, int(value)

    def lease(self, name: str, *, blocking: bool = False, blocking_timeout: float | None = None) -> Lease | None:
        """Take the lock and return the lease, or None when it is held elsewhere
        (after waiting up to ``blocking_timeout`` seconds when ``blocking``;
        None waits forever)."""
        if blocking_timeout is not None:
            if isinstance(blocking_timeout, bool) or not isinstance(blocking_timeout, (int, float)):
                raise TypeError(f"blocking_timeout must be a number of seconds, got {type(blocking_timeout).__name__}")
            if not blocking_timeout >= 0:  # negative, or NaN
                raise ValueError(f"blocking_timeout must be a non-negative number of seconds, got {blocking_timeout!r}")
        lease, holder_ms = self.try_lease(name)
        if lease is not None or not blocking:
            return lease
        deadline = None if blocking_timeout is None else time.monotonic() + blocking_timeout
        delay = FIRST_BACKOFF
        while True:
            pause = delay if holder_ms is None else min(delay, max(holder_ms, 1) / 1000)
            pause *= random.uniform(0.5, 1.0)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                pause = min(pause, left)
            time.sleep(pause)
            delay = min(delay * 2, MAX_BACKOFF)
            lease, holder_ms = self.try_lease(name)
            if lease is not None:
                return lease

    @translated
    def release_lease(self, lease: Lease) -> bool:
        """Release if still held by this lease; False when it had expired or is someone else's."""
        return self._release([self.namespace + "{" + lease.name + "}"], [lease.token]) == 1

    @translated
    def extend_lease(self, lease: Lease, seconds: float | None = None) -> bool:
        """Set the lease's remaining time to ``seconds`` (default timeout_seconds);
        False when it is no longer this holder's."""
        ms = self.timeout_ms if seconds is None else milliseconds(seconds, "seconds")
        return self._expire(keys=self.keys(lease.name)[:1], args=[lease.token, ms]) == 1

    # -- the by-name interface (acquire/release a name), tokens kept per thread -

    def acquire(self, name: str, blocking: bool = False, blocking_timeout: float | None = None) -> bool:
        """Take lock ``name`` for this thread; False when someone else holds it."""
        lease = self.lease(name, blocking=blocking, blocking_timeout=blocking_timeout)
        if lease is None:
            return False
        self._leases()[name] = lease
        return True

    def release(self, name: str) -> bool:
        """Release lock ``name`` if this thread holds it; False when it does not
        (never acquired here, expired, or taken by someone else since)."""
        lease = self._leases().pop(name, None)
        return lease is not None and self.release_lease(lease)

    def extend(self, name: str, seconds: float | None = None) -> bool:
        """Set the remaining time of lock ``name``, if this thread holds it."""
        lease = self._leases().get(name)
        return lease is not None and self.extend_lease(lease, seconds)

    def fencing_token(self, name: str) -> int | None:
        """The fencing token of this thread's acquisition of ``name``."""
        lease = self._leases().get(name)
        return None if lease is None else lease.fencing_token

    @translated
    def locked(self, name: str) -> bool:
        """Whether anyone holds lock ``name`` now."""
        return bool(self.client.exists(self.keys(name)[0]))

    @contextlib.contextmanager
    def hold(self, name: str, *, blocking: bool = True, blocking_timeout: float | None = None) -> Iterator[Lease]:
        """``with lock.hold(name) as lease:`` run the block holding the lock.
        LockTimeout when it cannot be taken; LockLost on leaving when it expired
        while held (the block then did not run alone)."""
        lease = self.lease(name, blocking=blocking, blocking_timeout=blocking_timeout)
        if lease is None:
            raise LockTimeout(
                f"lock {name!r} is held elsewhere"
                + (f"; gave up after {blocking_timeout} s" if blocking and blocking_timeout is not None else "")
            )
        try:
            yield lease
        except BaseException:
            # The block's own error wins; if Redis is unreachable, the lease expires.
            with contextlib.suppress(Exception):
                self.release_lease(lease)
            raise
        if not self.release_lease(lease):
            raise LockLost(
                f"lock {name!r} expired or was taken while held (lease of {self.timeout_ms / 1000:g} s); "
                "the block did not run alone"
            )
