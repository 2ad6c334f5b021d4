"""Argument checks and JSON encoding shared by the toolkit's parts."""

from __future__ import annotations

import json
import math
import os
from numbers import Real
from typing import Any

from .connection import DEFAULT_PREFIX, check_prefix

_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_canonical = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True)


def default_prefix(prefix: str | None) -> str:
    """``prefix`` when given, else REDIS_KEY_PREFIX, else "toolsdb:"."""
    if prefix is None:
        return check_prefix(os.environ.get("REDIS_KEY_PREFIX", DEFAULT_PREFIX), "REDIS_KEY_PREFIX")
    return check_prefix(prefix)


def check_key(key: Any, what: str = "key") -> str:
    if not isinstance(key, str):
        raise TypeError(f"{what} must be a string, got {type(key).__name__}")
    if not key:
        raise ValueError(f"{what} must not be empty")
    return key


def milliseconds(seconds: Any, what: str, *, allow_none: bool = False) -> int | None:
    """A positive duration in seconds as whole milliseconds (at least 1)."""
    if seconds is None and allow_none:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, Real):
        raise TypeError(f"{what} must be a number of seconds, got {type(seconds).__name__}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{what} must be a positive number of seconds, got {seconds!r}")
    # Rounded to the nanosecond first, so 2.007 s is 2007 ms, not 2008
    # (2.007 * 1000 is 2007.0000000000002 in binary floating point).
    exact = round(seconds * 1000, 6)
    if exact < 1:
        raise ValueError(f"{what} must be at least 0.001 seconds (Redis counts milliseconds), got {seconds!r}")
    return math.ceil(exact)


def positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an integer, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{what} must be at least 1, got {value!r}")
    return value


def dumps(value: Any, what: str = "value") -> str:
    """JSON text of ``value``; a one-line TypeError or ValueError when it has none."""
    try:
        return _encoder.encode(value)
    except TypeError as exc:
        raise TypeError(f"{what} is not JSON serializable: {exc}") from None
    except ValueError as exc:  # NaN, infinities, circular references
        raise ValueError(f"{what} cannot be stored as JSON: {exc}") from None


def canonical(value: Any, what: str) -> str:
    """Canonical JSON (sorted keys, no spaces) of ``value``, for cache keys."""
    try:
        return _canonical.encode(value)
    except TypeError as exc:
        raise TypeError(f"{what} is not JSON serializable, so it cannot be part of a cache key: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{what} cannot be part of a cache key: {exc}") from None


def loads(raw: bytes | str) -> Any:
    return json.loads(raw)
