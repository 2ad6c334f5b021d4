"""Which database a command talks to; first match wins.

1. ``--database URL`` (a ``postgresql://`` URI or a libpq ``key=value`` string);
2. ``DATABASE_URL`` (or ``TOOLS_DB_URL``, its alias; docs/names.md);
3. libpq's own ``PG*`` variables (PGHOST, PGPORT, PGDATABASE, PGUSER,
   PGPASSWORD, PGSERVICE, ...), read by libpq itself exactly as psql reads them,
   and two families of aliases of them: the ``DB_*`` variables of CI/CD task
   trackers (``DB_ALIASES``) and the ``POSTGRES_*`` variables of platform
   and agents-framework setups (``POSTGRES_ALIASES``);
4. otherwise the one embedded server (serverinfo.locate_root(): TOOLSDB_HOME,
   the nearest ``.toolsdb/`` of the working directory or its parents, the
   per-user default ``make migrate`` recorded), started on demand. Only the
   commands that set up a database (``toolsdb migrate``, ``reset``,
   ``server start``) create one, in ``.toolsdb/`` of the working directory,
   when none is found; every other command, the MCP server, the hook and the
   Python API fail with one line saying how to point them at one.

The aliases count only at step 3 (names such as DB_HOST are common, so a
``--database`` or ``DATABASE_URL`` makes toolsdb ignore them). There they are
checked: a port from 1 to 65535, one of libpq's sslmodes, certificate files
that exist, and no two variables naming the same setting (``DB_PORT``,
``POSTGRES_PORT``, ``PGPORT``) with different values: that is one clear
error, never a silent choice.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import psycopg
from psycopg import conninfo as pg_conninfo

from . import pooler
from .errors import ToolsdbError
from .libpq import LIBPQ_ENV, LIBPQ_TARGET_VARS, redact
from .server import EmbeddedServer
from .serverinfo import locate_root, no_server_message

# DB_* variable (the CI/CD task tracker's names) -> (libpq keyword, libpq's own variable).
DB_ALIASES: dict[str, tuple[str, str]] = {
    alias: (keyword, LIBPQ_ENV[keyword])
    for alias, keyword in {
        "DB_HOST": "host",
        "DB_PORT": "port",
        "DB_NAME": "dbname",
        "DB_USER": "user",
        "DB_PASSWORD": "password",
        "DB_SSL_MODE": "sslmode",
        "DB_SSL_CA": "sslrootcert",
        "DB_SSL_CERT": "sslcert",
        "DB_SSL_KEY": "sslkey",
    }.items()
}
# POSTGRES_* variable (platform and agents-framework setups' names) -> (libpq keyword, libpq's own variable).
POSTGRES_ALIASES: dict[str, tuple[str, str]] = {
    alias: (keyword, LIBPQ_ENV[keyword])
    for alias, keyword in {
        "POSTGRES_HOST": "host",
        "POSTGRES_PORT": "port",
        "POSTGRES_DB": "dbname",
        "POSTGRES_USER": "user",
        "POSTGRES_PASSWORD": "password",
    }.items()
}
ALIASES = {**DB_ALIASES, **POSTGRES_ALIASES}
# The aliases that pick a server or database (like LIBPQ_TARGET_VARS); the
# SSL ones alone do not move toolsdb off the embedded server.
DB_TARGET_VARS = ("DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", *POSTGRES_ALIASES)
REPLICA_VAR = "DATABASE_REPLICA_URL"
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_SECRET_VARS = {"DB_PASSWORD", "POSTGRES_PASSWORD", "PGPASSWORD"}


@dataclass
class Target:
    """A resolved database: the libpq conninfo and where it came from."""

    conninfo: str
    source: str  # "--database", "DATABASE_URL", "TOOLS_DB_URL", "PG* variables", "DB_* variables", ... or "embedded"
    server: EmbeddedServer | None = field(default=None, repr=False)
    found: str = ""  # how the embedded server was found (serverinfo.locate_root), "" when created here

    @property
    def embedded(self) -> bool:
        return self.server is not None

    def describe(self) -> str:
        """The target for humans, password hidden."""
        if self.server is not None:
            return f"{self.server.url()} (embedded server in {self.server.root})"
        if self.source.endswith(" variables"):
            names = [*ALIASES, *LIBPQ_TARGET_VARS]
            shown = " ".join(
                f"{name}={os.environ[name]}"
                for name in sorted(names)
                if os.environ.get(name) and name not in _SECRET_VARS
            )
            return f"{shown} (from {self.source})"
        return f"{redact(self.conninfo)} (from {self.source})"

    def connect(self, **kwargs) -> psycopg.Connection:
        return connect(self.conninfo, **kwargs)


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
        raise ToolsdbError(f"{source} is malformed: {first_line(exc)}") from None
    bad = _bad_port(str(params.get("port", "")))
    if bad is not None:
        raise ToolsdbError(f"{source} is malformed: port {bad!r} is not a number from 1 to 65535")
    return text


def _bad_port(ports: str) -> str | None:
    """The first entry of a libpq port list (``5432,5433``) that is not a port number, if any."""
    for port in ports.split(","):
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            return port
    return None


def database_url(env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(URL, variable name) from DATABASE_URL or its alias TOOLS_DB_URL, checked; None if neither is set."""
    env = os.environ if env is None else env
    urls = {name: env[name] for name in ("DATABASE_URL", "TOOLS_DB_URL") if env.get(name, "").strip()}
    if len(set(urls.values())) > 1:
        raise ToolsdbError(
            f"DATABASE_URL={redact(urls['DATABASE_URL'])!r} and TOOLS_DB_URL={redact(urls['TOOLS_DB_URL'])!r} "
            "disagree; set only one (TOOLS_DB_URL is an alias of DATABASE_URL)"
        )
    for name, url in urls.items():
        return validate(url, name), name
    return None


def replica_url(explicit: str | None = None, source: str = "--replica") -> tuple[str, str] | None:
    """(URL, where it came from) of the read replica: ``explicit`` (named ``source``
    in errors), else DATABASE_REPLICA_URL; checked like DATABASE_URL; None when neither."""
    if explicit is not None:
        return validate(explicit, source), source
    env = os.environ.get(REPLICA_VAR, "").strip()
    return (validate(env, REPLICA_VAR), REPLICA_VAR) if env else None


def libpq_aliases(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """libpq keywords from the DB_* and POSTGRES_* variables that are set (blank
    ones are ignored), checked; two variables of one setting that disagree are an error."""
    env = os.environ if env is None else env
    params: dict[str, str] = {}
    given: dict[str, str] = {}  # keyword -> the alias that gave it
    for name, (keyword, pg_name) in ALIASES.items():
        value = env.get(name, "").strip()
        if not value:
            continue
        for other in (pg_name, given.get(keyword)):
            if other is None or not env.get(other, "").strip() or env[other].strip() == value:
                continue
            secret = name in _SECRET_VARS
            shown = "(values hidden)" if secret else f"({name}={value!r}, {other}={env[other].strip()!r})"
            raise ToolsdbError(f"{name} and {other} disagree {shown}; set only one (both name the {keyword})")
        given.setdefault(keyword, name)
        params[keyword] = value
    if _bad_port(params.get("port", "")) is not None:
        raise ToolsdbError(f"{given['port']} must be a port number from 1 to 65535, got {env[given['port']].strip()!r}")
    if "sslmode" in params and params["sslmode"] not in SSL_MODES:
        raise ToolsdbError(f"DB_SSL_MODE must be one of {', '.join(SSL_MODES)}; got {params['sslmode']!r}")
    for name in ("DB_SSL_CA", "DB_SSL_CERT", "DB_SSL_KEY"):
        path = params.get(DB_ALIASES[name][0])
        if path and not (name == "DB_SSL_CA" and path == "system") and not os.path.isfile(path):
            raise ToolsdbError(f"{name} names a file that does not exist: {path!r}")
    return params


def resolve(database: str | None, *, start: bool = True, create: bool = False) -> Target:
    """Pick the database per the order above; start the embedded server if needed.

    ``create``: with no embedded server found, create one in ``.toolsdb/`` of
    the working directory (the set-up commands only); otherwise that is one
    clear ToolsdbError."""
    if database is not None:
        return Target(validate(database, "--database"), "--database")
    from_env = database_url()
    if from_env is not None:
        return Target(*from_env)
    uses_pg = any(os.environ.get(var) for var in LIBPQ_TARGET_VARS)
    uses_db = any(os.environ.get(var, "").strip() for var in DB_TARGET_VARS)
    if uses_db or (uses_pg and any(os.environ.get(var, "").strip() for var in ALIASES)):
        params = libpq_aliases()
        families = [
            family
            for family, names in (("DB_*", DB_ALIASES), ("POSTGRES_*", POSTGRES_ALIASES))
            if any(os.environ.get(var, "").strip() for var in names)
        ]
        source = "/".join(families + (["PG*"] if uses_pg else [])) + " variables"
        return Target(pg_conninfo.make_conninfo("", **params), source)
    if uses_pg:
        return Target("", "PG* variables")
    found = locate_root()
    server = EmbeddedServer(root=found[0] if found else None)
    if not create and not server.initialized:
        raise ToolsdbError(no_server_message(server.root))
    how = found[1] if found else ""
    if start:
        info = server.start()
        return Target(server.conninfo(info), "embedded", server, how)
    return Target("", "embedded", server, how)


def connect(conninfo: str, **kwargs) -> psycopg.Connection:
    """psycopg.connect with connection failures turned into one line. No
    server-side prepared statements unless TOOLSDB_POOLER says sessions are
    kept (none or session): a command's connection is short-lived and may go
    through a transaction pooler (pooler.py; the long-lived clients detect)."""
    kwargs.setdefault("connect_timeout", 10)
    if "prepare_threshold" not in kwargs:
        kwargs["prepare_threshold"] = 5 if pooler.configured() in ("none", "session") else None
    try:
        return psycopg.connect(conninfo, **kwargs)
    except psycopg.OperationalError as exc:
        raise ToolsdbError(
            f"cannot connect to {redact(conninfo) or 'the PG* variables server'}: {first_line(exc)}"
        ) from None


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's text."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    # libpq prefixes "connection to server at ... failed:"; keep the reason.
    return lines[0] if lines else type(exc).__name__
