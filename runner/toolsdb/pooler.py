"""Whether a connection goes through a transaction pooler, and what then changes.

A transaction pooler (PgBouncer with ``pool_mode = transaction``, the usual
way to serve many short connections) gives each client transaction whichever
server connection is free: anything a client leaves on a server connection
outside a transaction (a ``set``, a role, an advisory lock, a prepared
statement, a LISTEN) reaches, or misses, some other client. toolsdb's clients
keep nothing there (every setting is ``set local`` or ``set_config(..., true)``
or part of ``begin``), with two exceptions this module decides:

* **prepared statements**: psycopg prepares a statement on the server after
  it ran 5 times on a connection; PgBouncer before 1.21 (Debian 12 ships
  1.18) cannot carry them (``prepared statement "_pg3_0" already exists``).
  They are off behind a transaction pooler.
* **commands that need a session** (``toolsdb migrate``/``rollback``: an
  advisory lock, ``set role toolsdb_owner``; ``backup``/``restore``: pg_dump's
  and pg_restore's session settings; the worker's LISTEN) use
  ``DATABASE_DIRECT_URL`` when it is set; without it, all but the worker
  refuse in one line to run through a transaction pooler (the worker polls).

The setting is ``TOOLSDB_POOLER``: ``transaction`` (a transaction or
statement pooler is in between), ``session`` or ``none`` (sessions are kept:
no pooler, a session pooler, a TCP proxy such as HAProxy), or ``auto``
(blank: detect). Detection opens two connections and asks each for its server
process id, five times in turn: two client connections open at once that
reach the same server process (an idle pooler hands the last server
connection back), or one client connection whose statements reach different
processes (a busy one), can only be a pooler multiplexing them. It never
mistakes a direct connection or a session pooler for a transaction pooler; a
pooler could still go unnoticed if it kept giving each of the two clients
its own server connection ten times running, which is why the setting exists.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .errors import ToolsdbError

if TYPE_CHECKING:
    from .target import Target

POOLER_ENV = "TOOLSDB_POOLER"
DIRECT_URL_ENV = "DATABASE_DIRECT_URL"
TRANSACTION = "transaction"
VALUES = ("auto", TRANSACTION, "session", "none")
ROUNDS = 5

_detected: dict[str, bool] = {}
_detected_lock = threading.Lock()


def configured(env: Mapping[str, str] | None = None) -> str:
    """``TOOLSDB_POOLER`` checked: one of VALUES ("auto" when blank); else one line."""
    env = os.environ if env is None else env
    raw = env.get(POOLER_ENV, "").strip().lower() or "auto"
    if raw == "statement":
        raw = TRANSACTION  # what toolsdb must do is the same
    if raw not in VALUES:
        raise ToolsdbError(
            f"{POOLER_ENV} must be one of transaction, session, none or auto, got {env.get(POOLER_ENV)!r}"
        )
    return raw


BACKEND_PID = "select pg_catalog.pg_backend_pid()"


def multiplexed(first: Callable[[], int], second: Callable[[], int]) -> bool:
    """The detection over two open client connections, each given as a call
    returning the server process id its next statement reaches: True when
    they reach the same process, or either reaches two (see the module
    text). Shared by the psycopg path and the libpq one (migrate_fast.py)."""
    seen_first: set[int] = set()
    seen_second: set[int] = set()
    for _ in range(ROUNDS):
        a, b = first(), second()
        seen_first.add(a)
        seen_second.add(b)
        if a == b or len(seen_first) > 1 or len(seen_second) > 1:
            return True
    return False


def shares_server_connections(conninfo: str, connect_timeout: int = 5) -> bool:
    """True when client connections are multiplexed over server connections (a
    transaction or statement pooler): two client connections open at the same
    time reach the same server process, or one client connection's statements
    reach different server processes. Neither can happen on a direct
    connection or through a session pooler. See the module text."""
    import psycopg

    kwargs = {"autocommit": True, "prepare_threshold": None, "connect_timeout": connect_timeout}
    with psycopg.connect(conninfo, **kwargs) as first, psycopg.connect(conninfo, **kwargs) as second:
        return multiplexed(
            lambda: first.execute(BACKEND_PID).fetchone()[0], lambda: second.execute(BACKEND_PID).fetchone()[0]
        )


def behind_transaction_pooler(conninfo: str, env: Mapping[str, str] | None = None, *, detect: bool = True) -> bool:
    """What ``TOOLSDB_POOLER`` says; when it says auto and ``detect``, the
    detection's answer (once per conninfo and process); else False."""
    mode = configured(env)
    if mode != "auto":
        return mode == TRANSACTION
    if not detect:
        return False
    with _detected_lock:
        if conninfo not in _detected:
            _detected[conninfo] = shares_server_connections(conninfo)
        return _detected[conninfo]


def prepare_threshold(conninfo: str, env: Mapping[str, str] | None = None, *, detect: bool = True) -> int | None:
    """psycopg's prepare_threshold for a connection to ``conninfo``: None (never
    prepare) behind a transaction pooler, else psycopg's default of 5."""
    return None if behind_transaction_pooler(conninfo, env, detect=detect) else 5


def direct_url(env: Mapping[str, str] | None = None) -> str | None:
    """``DATABASE_DIRECT_URL``: the server itself, for work that needs a session."""
    env = os.environ if env is None else env
    return env.get(DIRECT_URL_ENV, "").strip() or None


def session_target(target: Target, what: str) -> Target:
    """Where a command that needs a session (``what``: migrate's advisory lock
    and ``set role``, pg_dump's and pg_restore's session settings) connects:
    DATABASE_DIRECT_URL when set (unless ``--database`` named the target),
    else the target itself, unless that is a transaction pooler (one line)."""
    from .target import Target, validate

    direct = direct_url()
    if direct is not None and target.source != "--database":
        return Target(validate(direct, DIRECT_URL_ENV), DIRECT_URL_ENV)
    if not target.embedded:
        import psycopg

        try:
            shared = behind_transaction_pooler(target.conninfo)
        except psycopg.OperationalError:
            shared = False  # unreachable: the command's own connection says why, in one line
        if shared:
            raise refusal(what)
    return target


def refusal(what: str) -> ToolsdbError:
    """The one line of a command that needs a session and found a transaction pooler."""
    return ToolsdbError(
        f"{what} needs a session of its own and this connection goes through a transaction pooler "
        f"({POOLER_ENV}=transaction, or detected: client connections multiplexed over server processes); "
        f"set {DIRECT_URL_ENV} to the server itself (not the pooler), or {POOLER_ENV}=session if the pooler "
        "keeps sessions"
    )
