"""Which database a command talks to; first match wins.

1. ``--database URL`` (a ``postgresql://`` URI or a libpq ``key=value`` string);
2. ``DATABASE_URL``;
3. libpq's own ``PG*`` variables (PGHOST, PGPORT, PGDATABASE, PGUSER,
   PGPASSWORD, PGSERVICE, ...), read by libpq itself exactly as psql reads them;
4. otherwise the embedded server under ``.toolsdb/``, started on demand.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import psycopg
from psycopg import conninfo as pg_conninfo

from .errors import ToolsdbError
from .libpq import LIBPQ_TARGET_VARS
from .server import EmbeddedServer


@dataclass
class Target:
    """A resolved database: the libpq conninfo and where it came from."""

    conninfo: str
    source: str  # "--database", "DATABASE_URL", "PG* variables" or "embedded"
    server: EmbeddedServer | None = field(default=None, repr=False)

    @property
    def embedded(self) -> bool:
        return self.server is not None

    def describe(self) -> str:
        """The target for humans, password hidden."""
        if self.server is not None:
            return f"{self.server.url()} (embedded server in {self.server.root})"
        if self.conninfo == "":
            parts = {k: v for k, v in os.environ.items() if k in LIBPQ_TARGET_VARS}
            parts.pop("PGPASSWORD", None)
            shown = " ".join(f"{k}={v}" for k, v in sorted(parts.items()))
            return f"{shown} (from PG* variables)"
        return f"{redact(self.conninfo)} (from {self.source})"

    def connect(self, **kwargs) -> psycopg.Connection:
        return connect(self.conninfo, **kwargs)


def redact(conninfo: str) -> str:
    """The conninfo with any password replaced by ``***``."""
    redacted = re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", conninfo)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", redacted)


def validate(conninfo: str, source: str) -> str:
    """Check that a URL or key=value string parses; one clear line if not."""
    text = conninfo.strip()
    if not text:
        raise ToolsdbError(f"{source} is empty")
    if "://" in text and not re.match(r"^postgres(ql)?://", text):
        raise ToolsdbError(
            f"{source} is not a PostgreSQL URL: {redact(text)!r} (expected postgresql://user@host:port/dbname)"
        )
    if "://" not in text and "=" not in text:
        raise ToolsdbError(
            f"{source} is not a PostgreSQL URL: {redact(text)!r} "
            "(expected postgresql://user@host:port/dbname or 'host=... dbname=...')"
        )
    try:
        params = pg_conninfo.conninfo_to_dict(text)
    except psycopg.ProgrammingError as exc:
        raise ToolsdbError(f"{source} is malformed: {_first_line(exc)}") from None
    for port in str(params.get("port", "")).split(","):
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ToolsdbError(f"{source} is malformed: port {port!r} is not a number from 1 to 65535")
    return text


def resolve(database: str | None, *, start: bool = True) -> Target:
    """Pick the database per the order above; start the embedded server if needed."""
    if database is not None:
        return Target(validate(database, "--database"), "--database")
    env_url = os.environ.get("DATABASE_URL")
    if env_url:
        return Target(validate(env_url, "DATABASE_URL"), "DATABASE_URL")
    if any(os.environ.get(var) for var in LIBPQ_TARGET_VARS):
        return Target("", "PG* variables")
    server = EmbeddedServer()
    if start:
        info = server.start()
        return Target(server.conninfo(info), "embedded", server)
    return Target("", "embedded", server)


def connect(conninfo: str, **kwargs) -> psycopg.Connection:
    """psycopg.connect with connection failures turned into one line."""
    kwargs.setdefault("connect_timeout", 10)
    try:
        return psycopg.connect(conninfo, **kwargs)
    except psycopg.OperationalError as exc:
        raise ToolsdbError(
            f"cannot connect to {redact(conninfo) or 'the PG* variables server'}: {_first_line(exc)}"
        ) from None


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    # libpq prefixes "connection to server at ... failed:"; keep the reason.
    return lines[0] if lines else type(exc).__name__
