"""A psycopg-pool connection pool for the runner and for applications.

``create_pool()`` resolves the database as every toolsdb command does
(``--database``/argument, ``DATABASE_URL``, PG*/DB_* variables, embedded
server; see ``toolsdb.target``) and returns an open ``ToolsdbPool``, a
``psycopg_pool.ConnectionPool`` with:

* sizes and timeouts from the ``DB_POOL_*`` variables (``PoolSettings``),
  1 to 20 connections by default;
* the first connection tried ``connect_attempts`` times with exponential backoff
  and jitter, then one ``ToolsdbError`` line naming the target (password hidden);
  connections lost later are re-made in the background by psycopg-pool;
* ``statement_timeout`` (``DB_QUERY_TIMEOUT``) set local in every transaction,
  and nothing set on the server session, so a transaction pooler (PgBouncer)
  in between is safe; server-side prepared statements are off behind one
  (``TOOLSDB_POOLER``, else detected: pooler.py);
* every ``execute``/``executemany`` of its cursors timed: statements slower than
  ``DB_SLOW_QUERY_THRESHOLD`` are logged on the ``toolsdb.pool`` logger at
  WARNING (the SQL shortened, never the parameters) and counted, see ``stats()``;
* ``health_check()``, which never raises, and ``transaction(fn)``, which re-runs
  ``fn`` on serialization failures and deadlocks (``retrying``);
* with ``DB_HEALTH_CHECK_ENABLED=true``, every ``DB_HEALTH_CHECK_INTERVAL`` ms
  the idle connections are checked and broken ones replaced (``pool.check()``),
  besides the check of each connection as it is handed out;
* the statement-logging switch ``DB_LOG_QUERIES`` (alias ``AUTOMAGIK_LOG_SQL``):
  every statement logged at INFO on ``toolsdb.pool`` (the SQL, never the
  parameters); ``DB_LOG_SLOW_QUERIES=false`` stops the slow-query lines (they
  are still counted); ``DB_LOGGING_ENABLED=false`` silences the
  ``toolsdb.pool`` logger and ``DB_LOGGING_LEVEL`` (error, warn, info, debug)
  sets its level.

``POSTGRES_POOL_MIN``/``POSTGRES_POOL_MAX`` are read as ``DB_POOL_MIN``/``DB_POOL_MAX``;
two variables of one setting that disagree are an error.

Read replica: ``create_pool(read_only=True)`` connects to ``DATABASE_REPLICA_URL``
when it is set (else to the primary), and begins every transaction READ ONLY;
a write then fails with ReadOnlySqlTransaction (25006).

``get_pool()`` is the process's shared pool (one per ``read_only`` value), built
on first use and closed at exit; a forked child builds its own.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar, TypeVar

import psycopg
import psycopg.errors
from psycopg import IsolationLevel, pq, sql
from psycopg import conninfo as pg_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from . import pooler
from .errors import ToolsdbError
from .target import first_line, redact, replica_url, resolve

logger = logging.getLogger("toolsdb.pool")

RETRYABLE: tuple[type[Exception], ...] = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)
SQL_SHOWN = 200  # characters of a slow statement's SQL written to the log
_INT4_MAX = 2**31 - 1  # the largest statement_timeout PostgreSQL takes, in ms

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class PoolSettings:
    """Sizes and timeouts, in milliseconds as the DB_* variables give them; ``from_env`` reads them."""

    min_size: int = 1  # DB_POOL_MIN: connections kept open
    max_size: int = 20  # DB_POOL_MAX
    idle_timeout_ms: int = 30_000  # DB_POOL_IDLE_TIMEOUT: connections above min_size idle longer are closed
    connection_timeout_ms: int = 2_000  # DB_POOL_CONNECTION_TIMEOUT: libpq connect_timeout (whole seconds, >= 2)
    acquire_timeout_ms: int = 30_000  # DB_POOL_ACQUIRE_TIMEOUT: wait for a free connection, then PoolTimeout
    query_timeout_ms: int = 30_000  # DB_QUERY_TIMEOUT: statement_timeout; 0 = none
    slow_query_ms: int = 1_000  # DB_SLOW_QUERY_THRESHOLD: log and count slower statements; 0 = off
    connect_attempts: int = 3  # tries of the first connection before create_pool fails
    reconnect_timeout_ms: int = 300_000  # psycopg-pool keeps re-making lost connections this long
    health_check_interval_ms: int = 0  # DB_HEALTH_CHECK_ENABLED / _INTERVAL: check idle connections; 0 = off
    log_queries: bool = False  # DB_LOG_QUERIES (or AUTOMAGIK_LOG_SQL): log every statement at INFO
    log_slow_queries: bool = True  # DB_LOG_SLOW_QUERIES: log the slow ones at WARNING

    # field -> (variable, smallest value)
    VARIABLES: ClassVar[dict[str, tuple[str, int]]] = {
        "min_size": ("DB_POOL_MIN", 0),
        "max_size": ("DB_POOL_MAX", 1),
        "idle_timeout_ms": ("DB_POOL_IDLE_TIMEOUT", 1),
        "connection_timeout_ms": ("DB_POOL_CONNECTION_TIMEOUT", 1),
        "acquire_timeout_ms": ("DB_POOL_ACQUIRE_TIMEOUT", 1),
        "query_timeout_ms": ("DB_QUERY_TIMEOUT", 0),
        "slow_query_ms": ("DB_SLOW_QUERY_THRESHOLD", 0),
    }
    _FLOORS: ClassVar[dict[str, int]] = {
        "connect_attempts": 1,
        "reconnect_timeout_ms": 1,
        "health_check_interval_ms": 0,
    }
    # another name of a variable above -> that variable (both set and different: an error)
    ALIASES: ClassVar[dict[str, str]] = {"POSTGRES_POOL_MIN": "DB_POOL_MIN", "POSTGRES_POOL_MAX": "DB_POOL_MAX"}

    def __post_init__(self) -> None:
        for name, floor in {**{k: v[1] for k, v in self.VARIABLES.items()}, **self._FLOORS}.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not floor <= value <= _INT4_MAX:
                raise ToolsdbError(f"{name} must be an integer from {floor} to {_INT4_MAX}, got {value!r}")
        for name in ("log_queries", "log_slow_queries"):
            if not isinstance(getattr(self, name), bool):
                raise ToolsdbError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.min_size > self.max_size:
            raise ToolsdbError(
                f"the pool's minimum size ({self.min_size}, DB_POOL_MIN) is greater than its maximum size "
                f"({self.max_size}, DB_POOL_MAX)"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: int) -> PoolSettings:
        """The settings from DB_POOL_* / DB_QUERY_TIMEOUT / DB_SLOW_QUERY_THRESHOLD (blank = default);
        keyword ``overrides`` (field names) win over the environment."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, (variable, floor) in cls.VARIABLES.items():
            raw, variable = _one_of(env, [variable, *(a for a, v in cls.ALIASES.items() if v == variable)])
            if not raw or name in overrides:
                continue
            try:
                value = int(raw, 10)
            except ValueError:
                value = None
            if value is None or not floor <= value <= _INT4_MAX:
                unit = "" if name.endswith("size") else " (milliseconds)"
                raise ToolsdbError(f"{variable} must be an integer from {floor} to {_INT4_MAX}{unit}, got {raw!r}")
            values[name] = value
        if env_flag(env, "DB_HEALTH_CHECK_ENABLED", False):
            raw = env.get("DB_HEALTH_CHECK_INTERVAL", "").strip() or "30000"
            if not raw.isdigit() or not 1 <= int(raw) <= _INT4_MAX:
                raise ToolsdbError(
                    f"DB_HEALTH_CHECK_INTERVAL must be an integer from 1 to {_INT4_MAX} (milliseconds), got {raw!r}"
                )
            values["health_check_interval_ms"] = int(raw)
        values["log_queries"] = statement_logging(env)
        values["log_slow_queries"] = env_flag(env, "DB_LOG_SLOW_QUERIES", True)
        values = {k: v for k, v in values.items() if k not in overrides}
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"unknown pool setting(s): {', '.join(unknown)}")
        return cls(**{**values, **overrides})


FLAG_VALUES = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def env_flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A true/false variable (true/false, 1/0, yes/no, on/off; blank = ``default``); else one clear line."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return FLAG_VALUES[raw.lower()]
    except KeyError:
        raise ToolsdbError(f"{name} must be true or false (or 1/0, yes/no, on/off), got {raw!r}") from None


def _one_of(env: Mapping[str, str], names: list[str], flag: bool = False) -> tuple[str, str]:
    """(value, variable) of the first of ``names`` that is set (``("", names[0])`` when none);
    two of them set to different values is an error."""
    found = [(name, env[name].strip()) for name in names if env.get(name, "").strip()]
    for name, value in found[1:]:
        first, first_value = found[0]
        same = (
            FLAG_VALUES.get(first_value.lower()) == FLAG_VALUES.get(value.lower()) is not None
            if flag
            else first_value == value
        )
        if not same:
            raise ToolsdbError(
                f"{first} and {name} disagree ({first}={first_value!r}, {name}={value!r}); "
                f"set only one ({name} is another name of {first})"
            )
    return (found[0][1], found[0][0]) if found else ("", names[0])


def statement_logging(env: Mapping[str, str] | None = None) -> bool:
    """The statement-logging switch: DB_LOG_QUERIES or its other name AUTOMAGIK_LOG_SQL (default off)."""
    env = os.environ if env is None else env
    raw, name = _one_of(env, ["DB_LOG_QUERIES", "AUTOMAGIK_LOG_SQL"], flag=True)
    return env_flag(env, name, False) if raw else False


def logging_from_env(env: Mapping[str, str] | None = None) -> None:
    """DB_LOGGING_ENABLED (false: the toolsdb.pool logger says nothing) and
    DB_LOGGING_LEVEL (error, warn, info, debug) applied to the toolsdb.pool logger."""
    env = os.environ if env is None else env
    logger.disabled = not env_flag(env, "DB_LOGGING_ENABLED", True)
    level = env.get("DB_LOGGING_LEVEL", "").strip().lower()
    if level:
        levels = {
            "error": logging.ERROR,
            "warn": logging.WARNING,
            "warning": logging.WARNING,
            "info": logging.INFO,
            "debug": logging.DEBUG,
        }
        if level not in levels:
            raise ToolsdbError(f"DB_LOGGING_LEVEL must be one of error, warn, info, debug; got {level!r}")
        logger.setLevel(levels[level])


class QueryStats:
    """Counters of the statements run through a pool's cursors (thread-safe)."""

    def __init__(self, slow_query_ms: int, log_queries: bool = False, log_slow_queries: bool = True) -> None:
        self.slow_query_ms = slow_query_ms
        self.log_queries = log_queries
        self.log_slow_queries = log_slow_queries
        self._lock = threading.Lock()
        self.total = self.failed = self.slow = self.connection_errors = 0
        self.total_ms = 0.0

    def record(self, ms: float, ok: bool, query: Any, conn: psycopg.Connection) -> None:
        slow = 0 < self.slow_query_ms <= ms
        with self._lock:
            self.total += 1
            self.total_ms += ms
            self.failed += not ok
            self.slow += slow
        if self.log_queries:
            logger.info("query: %.1f ms%s: %s", ms, "" if ok else ", failed", shown_sql(query, conn))
        if slow and self.log_slow_queries:
            logger.warning(
                "slow query: %.0f ms (threshold %d ms)%s: %s",
                ms,
                self.slow_query_ms,
                "" if ok else ", failed",
                shown_sql(query, conn),
            )

    def add_connection_error(self) -> None:
        with self._lock:
            self.connection_errors += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            total, failed, slow, total_ms = self.total, self.failed, self.slow, self.total_ms
        return {
            "total_queries": total,
            "successful_queries": total - failed,
            "failed_queries": failed,
            "success_rate": (total - failed) / total if total else 1.0,
            "avg_execution_ms": round(total_ms / total, 3) if total else 0.0,
            "slow_queries": slow,
        }


def shown_sql(query: Any, conn: psycopg.Connection | None = None) -> str:
    """The statement for a log line: one line, at most SQL_SHOWN characters, literals as ``?``."""
    try:
        text = _template(query, conn)
    except Exception:  # a log line must never fail the query
        text = f"<{type(query).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= SQL_SHOWN else text[: SQL_SHOWN - 3] + "..."


def _template(query: Any, conn: psycopg.Connection | None) -> str:
    if isinstance(query, bytes):
        return query.decode(errors="replace")
    if isinstance(query, sql.Composed):
        return "".join(_template(part, conn) for part in query)
    if isinstance(query, sql.Literal):
        return "?"  # a value: never logged
    if isinstance(query, sql.Composable):
        return query.as_string(conn)
    return str(query)


class TimedCursor(psycopg.Cursor):
    """A cursor whose execute/executemany are timed into the pool's QueryStats."""

    _stats: ClassVar[QueryStats]

    def execute(self, query, params=None, **kwargs):  # type: ignore[override]
        start = time.perf_counter()
        ok = False
        try:
            result = super().execute(query, params, **kwargs)
            ok = True
            return result
        finally:
            self._stats.record((time.perf_counter() - start) * 1000.0, ok, query, self.connection)

    def executemany(self, query, params_seq, **kwargs):  # type: ignore[override]
        start = time.perf_counter()
        ok = False
        try:
            super().executemany(query, params_seq, **kwargs)
            ok = True
        finally:
            self._stats.record((time.perf_counter() - start) * 1000.0, ok, query, self.connection)


def backoff(attempt: int, base_delay: float, max_delay: float) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): exponential, capped, half of it random."""
    delay = min(max_delay, base_delay * 2 ** (attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)


def retrying(
    fn: Callable[[], T],
    *,
    attempts: int = 5,
    base_delay: float = 0.05,
    max_delay: float = 2.0,
    retry_on: tuple[type[BaseException], ...] = RETRYABLE,
) -> T:
    """``fn()``, called again after a serialization failure (40001) or a deadlock
    (40P01), with exponential backoff and jitter; the last attempt's error is
    raised. Other errors are raised at once. ``fn`` must run its whole
    transaction (it is re-run from the start) and be safe to run again."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except retry_on as exc:
            if attempt == attempts:
                raise
            delay = backoff(attempt, base_delay, max_delay)
            logger.info(
                "%s (SQLSTATE %s), attempt %d of %d; retrying in %.0f ms",
                type(exc).__name__,
                getattr(exc, "sqlstate", None),
                attempt,
                attempts,
                delay * 1000,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


class ToolsdbPool(ConnectionPool):
    """A ConnectionPool with query statistics, a health check and retried transactions."""

    def __init__(self, conninfo: str, *, where: str, settings: PoolSettings, counters: QueryStats, **kwargs: Any):
        self.where = where  # the target for messages, password hidden
        self.settings = settings
        self.counters = counters
        super().__init__(conninfo, **kwargs)

    def start_health_checks(self, interval: float) -> None:
        """Check the idle connections every ``interval`` seconds (``check()``:
        broken ones are replaced) until the pool closes; a daemon thread."""
        self._checks_stop = threading.Event()

        def loop() -> None:
            while not self._checks_stop.wait(interval) and not self.closed:
                try:
                    self.check()
                except Exception as exc:  # a check never takes the application down
                    logger.warning("health check of pool %r failed: %s", self.name, first_line(exc))

        threading.Thread(target=loop, name=f"{self.name}-health", daemon=True).start()

    def close(self, timeout: float = 5.0) -> None:
        stop = getattr(self, "_checks_stop", None)
        if stop is not None:
            stop.set()
        super().close(timeout)

    def stats(self) -> dict[str, Any]:
        """psycopg-pool's get_stats() (pool_size, pool_available, requests_waiting, ...)
        and the counters of a connection manager's getStats() (total_queries, success_rate, slow_queries, ...)."""
        pool = self.get_stats()
        return {
            **pool,
            **self.counters.snapshot(),
            "connection_errors": self.counters.connection_errors + pool.get("connections_errors", 0),
        }

    def health_check(self, timeout: float = 5.0) -> dict[str, Any]:
        """{healthy, response_ms, checked_at, server_version, pool, error}; never raises
        for an unreachable server (healthy False, ``error`` one line: the connection
        error, or that every connection is in use)."""
        checked_at = datetime.now(timezone.utc).isoformat()
        start = time.perf_counter()
        version = error = None
        try:
            with self.connection(timeout=timeout) as conn:
                # A plain cursor: the check is not counted as a query.
                row = psycopg.Cursor(conn).execute("show server_version").fetchone()
                version = row[0] if row else None
        except PoolTimeout:
            error = f"{self.where}: {self._diagnose()}"
        except (psycopg.Error, ToolsdbError) as exc:
            error = f"{self.where}: {first_line(exc)}"
        return {
            "healthy": error is None,
            "response_ms": round((time.perf_counter() - start) * 1000.0, 3),
            "checked_at": checked_at,
            "server_version": version,
            "pool": self.stats(),
            "error": error,
        }

    def _diagnose(self) -> str:
        """Why the pool gave no connection: the server's connection error, else that all are in use."""
        kwargs = {k: v for k, v in dict(self.kwargs or {}).items() if k != "cursor_factory"}
        try:
            psycopg.connect(str(self.conninfo), **kwargs).close()
        except psycopg.Error as exc:
            self.counters.add_connection_error()
            return first_line(exc)
        stats = self.get_stats()
        return f"no free connection ({stats['pool_size']} of at most {stats['pool_max']} open, all in use)"

    def transaction(
        self,
        fn: Callable[[psycopg.Connection], T],
        *,
        attempts: int = 5,
        isolation: IsolationLevel | None = None,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
    ) -> T:
        """``fn(conn)`` in one transaction on a pooled connection, re-run (see
        ``retrying``) after a serialization failure or a deadlock."""

        def once() -> T:
            with self.connection() as conn:
                previous = conn.isolation_level
                if isolation is not None:
                    conn.isolation_level = isolation
                try:
                    with conn.transaction():
                        return fn(conn)
                finally:
                    if isolation is not None and not conn.closed:
                        conn.isolation_level = previous

        return retrying(once, attempts=attempts, base_delay=base_delay, max_delay=max_delay)


def _check(conn: psycopg.Connection) -> None:
    """ConnectionPool.check_connection with an untimed cursor (checks are not queries)."""
    if conn.autocommit:
        psycopg.Cursor(conn).execute("")
        return
    conn.autocommit = True
    try:
        psycopg.Cursor(conn).execute("")
    finally:
        if not conn.closed:
            conn.autocommit = False


class LocalSettingsConnection(psycopg.Connection):
    """A connection whose every transaction sets ``_local`` (``SET LOCAL ...``)
    right after its BEGIN: the pool's statement timeout lives and dies with
    each transaction, never on the server session, which a transaction pooler
    hands to the next client (pooler.py). Statements run in autocommit outside
    ``transaction()`` have no BEGIN and so run with the server's defaults.

    Hooks psycopg's ``_exec_command`` (the one way BEGIN is sent, by a first
    statement or by ``transaction()``, in and out of pipeline mode);
    tests/test_pool.py checks the setting inside transactions and its absence
    after them, so a psycopg release that changes this fails there."""

    _local: ClassVar[bytes] = b""

    def _exec_command(self, command, result_format=pq.Format.TEXT):  # type: ignore[override]
        result = yield from super()._exec_command(command, result_format)
        if self._local and isinstance(command, bytes) and command.startswith(b"BEGIN"):
            yield from super()._exec_command(self._local)
        return result


def _configure(read_only: bool) -> Callable[[psycopg.Connection], None]:
    """A configure callback: ``read_only`` makes every transaction ``BEGIN ... READ ONLY``
    (psycopg's attribute; nothing is set on the server session)."""

    def configure(conn: psycopg.Connection) -> None:
        if read_only:
            conn.read_only = True

    return configure


def _probe(conninfo: str, kwargs: dict[str, Any], where: str, settings: PoolSettings, counters: QueryStats) -> None:
    """One connection made and closed, tried ``connect_attempts`` times with backoff."""
    for attempt in range(1, settings.connect_attempts + 1):
        try:
            psycopg.connect(conninfo, **kwargs).close()
            return
        except psycopg.OperationalError as exc:
            counters.add_connection_error()
            if attempt == settings.connect_attempts:
                raise ToolsdbError(
                    f"cannot connect to {where} (tried {attempt} time{'s' if attempt > 1 else ''}): {first_line(exc)}"
                ) from None
            logger.info("cannot connect to %s (attempt %d): %s", where, attempt, first_line(exc))
            time.sleep(backoff(attempt, 0.25, 2.0))


def create_pool(
    database: str | None = None,
    *,
    read_only: bool = False,
    replica: str | None = None,
    settings: PoolSettings | None = None,
    wait: bool = True,
    **overrides: int,
) -> ToolsdbPool:
    """An open pool on ``database`` (resolved like ``--database``), or with
    ``read_only=True`` on ``replica``/DATABASE_REPLICA_URL when set.

    ``settings`` defaults to ``PoolSettings.from_env()``; ``overrides`` (field
    names, e.g. ``max_size=5``) change single values. With ``wait=True`` the
    first connections are made now and an unreachable server is a ToolsdbError;
    with ``wait=False`` they are made in the background.
    """
    if settings is None:
        settings = PoolSettings.from_env(**overrides)
    elif overrides:
        settings = dataclasses.replace(settings, **overrides)
    found = replica_url(replica, "replica") if read_only else None
    if found is not None:
        conninfo, source = found
        where = f"{redact(conninfo)} (from {source})"
    else:
        target = resolve(database)
        conninfo, where = target.conninfo, target.describe()

    params = pg_conninfo.conninfo_to_dict(conninfo)
    kwargs: dict[str, Any] = {}
    if "connect_timeout" not in params and not os.environ.get("PGCONNECT_TIMEOUT"):
        kwargs["connect_timeout"] = max(1, math.ceil(settings.connection_timeout_ms / 1000))
    if "application_name" not in params and not os.environ.get("PGAPPNAME"):
        kwargs["application_name"] = "toolsdb-pool-ro" if read_only else "toolsdb-pool"
    logging_from_env()
    counters = QueryStats(settings.slow_query_ms, settings.log_queries, settings.log_slow_queries)
    if wait:
        _probe(conninfo, kwargs, where, settings, counters)
    try:
        kwargs["prepare_threshold"] = pooler.prepare_threshold(conninfo)
    except psycopg.OperationalError:
        kwargs["prepare_threshold"] = None  # not reachable yet (wait=False): the safe choice

    def reconnect_failed(pool: ConnectionPool) -> None:
        logger.error("pool %r gave up reconnecting to %s after %s s", pool.name, where, pool.reconnect_timeout)

    cursor_class = type("TimedCursor", (TimedCursor,), {"_stats": counters})
    local = b"SET LOCAL statement_timeout = %d" % settings.query_timeout_ms
    connection_class = type("ToolsdbConnection", (LocalSettingsConnection,), {"_local": local})
    pool = ToolsdbPool(
        conninfo,
        where=where,
        settings=settings,
        counters=counters,
        kwargs={**kwargs, "cursor_factory": cursor_class},
        min_size=settings.min_size,
        max_size=settings.max_size,
        open=False,
        connection_class=connection_class,
        configure=_configure(read_only),
        check=_check,
        name="toolsdb-ro" if read_only else "toolsdb",
        timeout=settings.acquire_timeout_ms / 1000,
        max_idle=settings.idle_timeout_ms / 1000,
        reconnect_timeout=settings.reconnect_timeout_ms / 1000,
        reconnect_failed=reconnect_failed,
    )
    try:
        pool.open(wait=wait, timeout=settings.acquire_timeout_ms / 1000)
    except PoolTimeout as exc:
        pool.close()
        raise ToolsdbError(
            f"cannot open {settings.min_size} connection(s) to {where} within "
            f"{settings.acquire_timeout_ms} ms (DB_POOL_ACQUIRE_TIMEOUT): {first_line(exc)}"
        ) from None
    if settings.health_check_interval_ms:
        pool.start_health_checks(settings.health_check_interval_ms / 1000)
    return pool


_defaults: dict[bool, ToolsdbPool] = {}
_defaults_lock = threading.Lock()
_forked_away: list[ToolsdbPool] = []  # a parent's pools, kept (never closed) in a forked child
_atexit_registered = False


def get_pool(*, read_only: bool = False) -> ToolsdbPool:
    """The process's pool (``read_only``: the replica's), built once by
    ``create_pool()`` from the environment and closed at exit."""
    global _atexit_registered
    with _defaults_lock:
        pool = _defaults.get(read_only)
        if pool is None or pool.closed:
            pool = _defaults[read_only] = create_pool(read_only=read_only)
            if not _atexit_registered:
                atexit.register(reset_pool)
                _atexit_registered = True
        return pool


def reset_pool() -> None:
    """Close and forget the process's pools (the next get_pool() builds them again)."""
    with _defaults_lock:
        pools = list(_defaults.values())
        _defaults.clear()
    for pool in pools:
        pool.close()


def _after_fork() -> None:
    # The parent's connections are its own: never close them from the child.
    global _defaults_lock
    _forked_away.extend(_defaults.values())
    _defaults.clear()
    _defaults_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
