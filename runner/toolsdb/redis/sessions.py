"""The session store: JSON session data under ``<prefix>session:<id>``
with a TTL; ids from ``secrets`` when the caller gives none."""

from __future__ import annotations

import secrets
from typing import Any

from ..errors import ToolsdbError
from ._common import default_prefix, dumps, loads, milliseconds
from .connection import Client, get_redis_client, on_default_client, translated

DEFAULT_TTL = 3600
MAX_ID_LENGTH = 256


class SessionExists(ToolsdbError, KeyError):
    """create() was given an id that is in use; nothing was written."""


class SessionManager:
    """Create, read, refresh and delete sessions."""

    def __init__(
        self, client: Client | None = None, *, ttl_seconds: float = DEFAULT_TTL, prefix: str | None = None
    ) -> None:
        self.client = client if client is not None else get_redis_client()
        self.namespace = default_prefix(prefix) + "session:"
        self.ttl_ms = milliseconds(ttl_seconds, "ttl_seconds")

    def key(self, session_id: str) -> str:
        return self.namespace + check_session_id(session_id)

    def _ttl_ms(self, ttl_seconds: float | None) -> int:
        return self.ttl_ms if ttl_seconds is None else milliseconds(ttl_seconds, "ttl_seconds")

    @translated
    def create(
        self, session_id: str | None = None, data: dict[str, Any] | None = None, ttl_seconds: float | None = None
    ) -> str:
        """Store a new session and return its id (a new 256-bit random one when
        ``session_id`` is None). An id in use raises SessionExists."""
        if session_id is None:
            session_id = secrets.token_urlsafe(32)
        name = self.key(session_id)
        ms = self._ttl_ms(ttl_seconds)
        text = dumps({} if data is None else data, "session data")
        if not self.client.set(name, text, px=ms, nx=True):
            raise SessionExists(f"session {session_id!r} already exists; nothing was written")
        return session_id

    @translated
    def get(self, session_id: str, *, refresh: bool = False, ttl_seconds: float | None = None) -> Any:
        """The session's data, or None when it does not exist (or expired).
        ``refresh=True`` also restarts its TTL (one GETEX)."""
        name = self.key(session_id)
        raw = self.client.getex(name, px=self._ttl_ms(ttl_seconds)) if refresh else self.client.get(name)
        return None if raw is None else loads(raw)

    @translated
    def update(self, session_id: str, data: Any) -> bool:
        """Replace the session's data, keeping its TTL; False when it does not exist."""
        name = self.key(session_id)
        text = dumps(data, "session data")
        return bool(self.client.set(name, text, xx=True, keepttl=True))

    @translated
    def refresh(self, session_id: str, ttl_seconds: float | None = None) -> bool:
        """Restart the session's TTL (``ttl_seconds``, default the manager's);
        False when it does not exist."""
        return bool(self.client.pexpire(self.key(session_id), self._ttl_ms(ttl_seconds)))

    @translated
    def delete(self, session_id: str) -> bool:
        """Delete the session; True when it existed."""
        return bool(self.client.delete(self.key(session_id)))

    @translated
    def exists(self, session_id: str) -> bool:
        return bool(self.client.exists(self.key(session_id)))

    @translated
    def ttl(self, session_id: str) -> float | None:
        """Seconds the session has left, or None when it does not exist."""
        ms = self.client.pttl(self.key(session_id))
        return None if ms < 0 else ms / 1000


def check_session_id(session_id: Any) -> str:
    if not isinstance(session_id, str):
        raise TypeError(f"session_id must be a string, got {type(session_id).__name__}")
    if not session_id:
        raise ValueError("session_id must not be empty")
    if len(session_id) > MAX_ID_LENGTH:
        raise ValueError(f"session_id must be at most {MAX_ID_LENGTH} characters, got {len(session_id)}")
    if not session_id.isprintable() or any(c.isspace() for c in session_id):
        raise ValueError(f"session_id must be printable characters without spaces, got {session_id!r}")
    return session_id


_default = on_default_client(SessionManager)


def get_session_manager() -> SessionManager:
    """The process's SessionManager, on get_redis_client() (rebuilt after
    reset_default_client())."""
    return _default()
