"""Helpers of the Redis cache's test modules (test_redis_cache_*.py): the
documented key of a cache_result entry, the check that an error message is
one line, and the body of the modules' ``cache`` fixture (not in
conftest.py, where it would hide pytest's own ``cache`` fixture from every
module).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from toolsdb.redis import CacheManager


def digest_of(arguments) -> str:
    """The documented hash: sha256 of the canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def expected_key(fn: Callable, arguments, prefix: str = "toolsdb:") -> str:
    return f"{prefix}cache:fn:{fn.__module__}:{fn.__qualname__}:{{{digest_of(arguments)}}}"


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, repr(text)
    return text


def cache_manager(redis_client) -> CacheManager:
    """Body of each module's ``cache`` fixture: a CacheManager on ``redis_client``."""
    return CacheManager(redis_client)
