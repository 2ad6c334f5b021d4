"""The connection pool (toolsdb.pool) and seed 004's DB_* aliases (toolsdb.target),
against the real test servers (pg18, pg15): settings and their one-line errors,
the DB_* variables through ``toolsdb status``, pool sizes, statement_timeout,
slow-query logging and counters, health checks, retried transactions on real
serialization failures and deadlocks, an unreachable server and the read replica."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import psycopg.errors
import pytest
from psycopg import IsolationLevel, sql
from psycopg_pool import PoolTimeout

from toolsdb import pool as poolmod
from toolsdb.errors import ToolsdbError
from toolsdb.libpq import LIBPQ_TARGET_VARS
from toolsdb.pool import PoolSettings, ToolsdbPool, create_pool, get_pool, reset_pool, retrying
from toolsdb.target import DB_ALIASES, libpq_aliases, resolve

from .conftest import Pg, run_cli

POOL_VARS = [variable for variable, _ in PoolSettings.VARIABLES.values()]
ALL_VARS = [
    *DB_ALIASES,
    *LIBPQ_TARGET_VARS,
    *POOL_VARS,
    "DATABASE_URL",
    "TOOLS_DB_URL",
    "DATABASE_REPLICA_URL",
    "PGOPTIONS",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
    "PGSSLMODE",
]
EVENT_WAIT = 30  # seconds: a safeguard against a hang, never an assertion on speed


@pytest.fixture(autouse=True)
def clean_db_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No database or pool variable from the caller's shell; no process pool left over."""
    for name in ALL_VARS:
        monkeypatch.delenv(name, raising=False)
    reset_pool()
    yield
    reset_pool()


def one_line(exc: BaseException | str) -> str:
    text = str(exc)
    assert text and "\n" not in text, f"the error should be one line: {text!r}"
    return text


def blank_db_vars() -> dict[str, str]:
    """For run_cli: every DB_*/alias variable blank (= unset), whatever the caller's shell has."""
    return {name: "" for name in [*DB_ALIASES, *POOL_VARS, "TOOLS_DB_URL", "DATABASE_REPLICA_URL"]}


def db_vars(pg: Pg, dbname: str) -> dict[str, str]:
    """Seed 004's variables pointing at a database of the test server (over its socket)."""
    return {"DB_HOST": pg.host, "DB_PORT": str(pg.port), "DB_NAME": dbname, "DB_USER": "postgres"}


def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_one_error_line(result: subprocess.CompletedProcess[str], *facts: str) -> str:
    assert result.returncode == 1, f"the command should exit 1, it exited {result.returncode}: {result.stdout}"
    assert "Traceback" not in result.stderr + result.stdout, f"the command printed a traceback: {result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), f"stderr should be one 'Error:' line: {result.stderr}"
    for fact in facts:
        assert fact in lines[0], f"the error line should mention {fact!r}: {lines[0]}"
    return lines[0]


def scalar(pool: ToolsdbPool, query: str) -> object:
    with pool.connection() as conn:
        row = conn.execute(query).fetchone()
        assert row is not None
        return row[0]


def wait_for(event: threading.Event, what: str) -> None:
    if not event.wait(EVENT_WAIT):
        raise AssertionError(f"test choreography: {what} did not happen")


# -- PoolSettings: the DB_POOL_* variables, without a server ----------------------------


def test_pool_settings_defaults_are_1_to_20_and_seed_004s_timeouts() -> None:
    settings = PoolSettings.from_env({})
    assert (settings.min_size, settings.max_size) == (1, 20), "seed 000 says 1-20 connections"
    assert settings.idle_timeout_ms == 30_000
    assert settings.connection_timeout_ms == 2_000
    assert settings.acquire_timeout_ms == 30_000
    assert settings.query_timeout_ms == 30_000
    assert settings.slow_query_ms == 1_000


def test_pool_settings_are_read_from_the_environment_and_keywords_win() -> None:
    env = {
        "DB_POOL_MIN": "2",
        "DB_POOL_MAX": " 7 ",
        "DB_POOL_IDLE_TIMEOUT": "5000",
        "DB_POOL_CONNECTION_TIMEOUT": "3000",
        "DB_POOL_ACQUIRE_TIMEOUT": "4000",
        "DB_QUERY_TIMEOUT": "0",
        "DB_SLOW_QUERY_THRESHOLD": "",
    }
    settings = PoolSettings.from_env(env, max_size=9)
    assert (settings.min_size, settings.max_size) == (2, 9), "a keyword should win over DB_POOL_MAX"
    assert (settings.idle_timeout_ms, settings.connection_timeout_ms, settings.acquire_timeout_ms) == (
        5000,
        3000,
        4000,
    )
    assert settings.query_timeout_ms == 0, "DB_QUERY_TIMEOUT=0 means no statement_timeout"
    assert settings.slow_query_ms == 1_000, "a blank variable means the default"
    assert PoolSettings.from_env({"DB_POOL_MIN": "oops"}, min_size=3).min_size == 3, (
        "a keyword replaces the variable, so a bad value it replaces is not an error"
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DB_POOL_MIN", "abc"),
        ("DB_POOL_MIN", "-1"),
        ("DB_POOL_MAX", "0"),
        ("DB_POOL_MAX", "2.5"),
        ("DB_POOL_IDLE_TIMEOUT", "0"),
        ("DB_POOL_CONNECTION_TIMEOUT", "-2000"),
        ("DB_POOL_ACQUIRE_TIMEOUT", "30s"),
        ("DB_QUERY_TIMEOUT", "-1"),
        ("DB_QUERY_TIMEOUT", "9999999999"),
        ("DB_SLOW_QUERY_THRESHOLD", "fast"),
    ],
)
def test_a_bad_pool_variable_is_one_line_naming_it(variable: str, value: str) -> None:
    with pytest.raises(ToolsdbError) as caught:
        PoolSettings.from_env({variable: value})
    message = one_line(caught.value)
    assert variable in message and repr(value) in message, f"the error should name {variable}={value!r}: {message}"


def test_a_pool_minimum_above_the_maximum_is_an_error() -> None:
    with pytest.raises(ToolsdbError) as caught:
        PoolSettings.from_env({"DB_POOL_MIN": "5", "DB_POOL_MAX": "3"})
    message = one_line(caught.value)
    assert "DB_POOL_MIN" in message and "DB_POOL_MAX" in message and "5" in message and "3" in message, message
    with pytest.raises(ToolsdbError, match="min"):
        PoolSettings(min_size=21)  # above the default maximum of 20
    with pytest.raises(ToolsdbError, match="max_size"):
        PoolSettings.from_env({}, max_size=0)
    with pytest.raises(TypeError, match="no_such"):
        PoolSettings.from_env({}, no_such=1)


# -- the DB_* aliases: checks without a server ---------------------------------------------


def test_db_variables_map_to_libpq_keywords(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here")
    env = {
        "DB_HOST": "db.example",
        "DB_PORT": "6543",
        "DB_NAME": "ai_cicd_system",
        "DB_USER": "app",
        "DB_PASSWORD": "pw",
        "DB_SSL_MODE": "verify-full",
        "DB_SSL_CA": str(ca),
        "DB_SSL_CERT": "",
        "PGHOST": "db.example",  # the same value: no conflict
    }
    assert libpq_aliases(env) == {
        "host": "db.example",
        "port": "6543",
        "dbname": "ai_cicd_system",
        "user": "app",
        "password": "pw",
        "sslmode": "verify-full",
        "sslrootcert": str(ca),
    }


@pytest.mark.parametrize(
    ("env", "facts"),
    [
        ({"DB_PORT": "70000"}, ["DB_PORT", "'70000'", "65535"]),
        ({"DB_PORT": "postgres"}, ["DB_PORT", "'postgres'"]),
        ({"DB_SSL_MODE": "required"}, ["DB_SSL_MODE", "'required'", "verify-full"]),
        ({"DB_SSL_KEY": "/nonexistent/client.key"}, ["DB_SSL_KEY", "/nonexistent/client.key"]),
        ({"DB_HOST": "a.example", "PGHOST": "b.example"}, ["DB_HOST", "PGHOST", "a.example", "b.example"]),
    ],
)
def test_a_bad_db_variable_is_one_line_naming_it(env: dict[str, str], facts: list[str]) -> None:
    with pytest.raises(ToolsdbError) as caught:
        libpq_aliases(env)
    message = one_line(caught.value)
    for fact in facts:
        assert fact in message, f"the error should mention {fact!r}: {message}"


def test_conflicting_passwords_are_named_but_never_shown() -> None:
    with pytest.raises(ToolsdbError) as caught:
        libpq_aliases({"DB_PASSWORD": "first-secret", "PGPASSWORD": "second-secret"})
    message = one_line(caught.value)
    assert "DB_PASSWORD" in message and "PGPASSWORD" in message, message
    assert "secret" not in message, f"no password may appear in an error: {message}"


def test_db_variables_are_ignored_when_database_url_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/d")
    monkeypatch.setenv("DB_PORT", "not-a-port")
    target = resolve(None)
    assert (target.conninfo, target.source) == ("postgresql://u@h/d", "DATABASE_URL")


def test_db_ssl_variables_apply_to_the_pg_variables_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "db.example")
    monkeypatch.setenv("DB_SSL_MODE", "require")
    target = resolve(None)
    assert (target.conninfo, target.source) == ("sslmode=require", "DB_*/PG* variables")
    assert target.describe() == "DB_SSL_MODE=require PGHOST=db.example (from DB_*/PG* variables)"


def test_tools_db_url_is_an_alias_of_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLS_DB_URL", "postgresql://u:pw@h/d")
    target = resolve(None)
    assert target.source == "TOOLS_DB_URL"
    assert target.describe() == "postgresql://u:***@h/d (from TOOLS_DB_URL)"
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw@h/d")
    assert resolve(None).conninfo == "postgresql://u:pw@h/d", "the same URL twice is no conflict"
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw@other/d")
    with pytest.raises(ToolsdbError) as caught:
        resolve(None)
    message = one_line(caught.value)
    assert "DATABASE_URL" in message and "TOOLS_DB_URL" in message and "pw" not in message, message


# -- the DB_* aliases through `toolsdb status` ------------------------------------------------


def status_database_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"toolsdb status should succeed: {result.stderr}"
    lines = [line for line in result.stdout.splitlines() if line.startswith("database: ")]
    assert len(lines) == 1, result.stdout
    return lines[0]


def test_status_reaches_the_database_of_the_db_variables(pg: Pg, db: str, tmp_path: Path) -> None:
    env = {**blank_db_vars(), **db_vars(pg, db), "DB_PASSWORD": "hunter2-secret", "DB_SSL_MODE": "disable"}
    result = run_cli("status", cwd=tmp_path, env=env)

    line = status_database_line(result)
    assert line.endswith("(from DB_* variables)"), line
    assert f"DB_NAME={db}" in line and f"DB_HOST={pg.host}" in line, line
    assert "hunter2" not in result.stdout + result.stderr, "DB_PASSWORD must never be shown"
    assert result.stdout.strip().endswith(" 0 pending"), f"the migrated database of DB_NAME: {result.stdout}"


def test_db_variables_mix_with_pg_variables(pg: Pg, db: str, tmp_path: Path) -> None:
    env = {**blank_db_vars(), "PGHOST": pg.host, "PGPORT": str(pg.port), "DB_NAME": db, "DB_USER": "postgres"}
    result = run_cli("status", cwd=tmp_path, env=env)

    line = status_database_line(result)
    assert line.endswith("(from DB_*/PG* variables)") and f"PGHOST={pg.host}" in line, line
    assert result.stdout.strip().endswith(" 0 pending"), result.stdout


def test_tools_db_url_reaches_its_database(pg: Pg, db: str, tmp_path: Path) -> None:
    result = run_cli("status", cwd=tmp_path, env={**blank_db_vars(), "TOOLS_DB_URL": pg.url(db)})
    assert status_database_line(result) == f"database: {pg.url(db)} (from TOOLS_DB_URL)"


@pytest.mark.parametrize(
    ("extra", "facts"),
    [
        ({"DB_PORT": "0"}, ["DB_PORT", "'0'"]),
        ({"DB_PORT": "54x2"}, ["DB_PORT", "'54x2'"]),
        ({"DB_SSL_MODE": "on"}, ["DB_SSL_MODE", "'on'"]),
        ({"DB_SSL_CA": "/nonexistent/root.crt"}, ["DB_SSL_CA", "/nonexistent/root.crt"]),
        ({"PGHOST": "/elsewhere"}, ["DB_HOST", "PGHOST", "/elsewhere"]),
        ({"PGPASSWORD": "pg-secret", "DB_PASSWORD": "db-secret"}, ["DB_PASSWORD", "PGPASSWORD"]),
    ],
)
def test_a_bad_db_variable_fails_the_cli_with_one_line(
    pg: Pg, empty_db: str, tmp_path: Path, extra: dict[str, str], facts: list[str]
) -> None:
    env = {**blank_db_vars(), **db_vars(pg, empty_db), **extra}
    result = run_cli("status", cwd=tmp_path, env=env)

    line = assert_one_error_line(result, *facts)
    assert "secret" not in line, f"no password may appear in an error: {line}"


# -- the pool on the test servers ----------------------------------------------------------


def test_the_pool_follows_the_db_variables(pg: Pg, empty_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in db_vars(pg, empty_db).items():
        monkeypatch.setenv(name, value)
    with create_pool() as pool:
        assert scalar(pool, "select current_database()") == empty_db
        assert scalar(pool, "select current_setting('application_name')") == "toolsdb-pool"
        assert "(from DB_* variables)" in pool.where


def test_the_pool_defaults_to_1_to_20_connections(pg: Pg, empty_db: str) -> None:
    with create_pool(pg.url(empty_db)) as pool:
        stats = pool.stats()
        assert (stats["pool_min"], stats["pool_max"], stats["pool_size"]) == (1, 20, 1)


def test_the_pool_respects_db_pool_min_and_max(pg: Pg, empty_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_POOL_MIN", "2")
    monkeypatch.setenv("DB_POOL_MAX", "3")
    monkeypatch.setenv("DB_POOL_ACQUIRE_TIMEOUT", "300")
    with create_pool(pg.url(empty_db)) as pool:
        assert (pool.stats()["pool_size"], pool.stats()["pool_min"], pool.stats()["pool_max"]) == (2, 2, 3), (
            "an open pool should hold DB_POOL_MIN connections"
        )
        held = [pool.getconn() for _ in range(3)]
        try:
            assert pool.stats()["pool_size"] == 3
            with pytest.raises(PoolTimeout):
                pool.getconn()  # a fourth: beyond DB_POOL_MAX, after DB_POOL_ACQUIRE_TIMEOUT
            pids = [conn.info.backend_pid for conn in held]
            seen = (
                held[0]
                .execute(
                    "select count(*) from pg_stat_activity where pid = any(%s) and application_name = 'toolsdb-pool'",
                    [pids],
                )
                .fetchone()
            )
            assert len(set(pids)) == 3 and seen == (3,), "the server should see DB_POOL_MAX distinct connections"
            health = pool.health_check(timeout=0.1)
            assert health["healthy"] is False and "all in use" in health["error"], health["error"]
        finally:
            for conn in held:
                pool.putconn(conn)


def test_db_query_timeout_cancels_a_long_statement(pg: Pg, empty_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_QUERY_TIMEOUT", "200")
    with create_pool(pg.url(empty_db)) as pool:
        assert scalar(pool, "show statement_timeout") == "200ms"
        with pytest.raises(psycopg.errors.QueryCanceled) as caught, pool.connection() as conn:
            conn.execute("select pg_sleep(30)")
        assert caught.value.sqlstate == "57014"
        assert pool.stats()["failed_queries"] == 1
        assert scalar(pool, "select 1") == 1, "the connection stays usable after the cancel"


def test_db_query_timeout_0_means_no_statement_timeout(pg: Pg, empty_db: str) -> None:
    with create_pool(pg.url(empty_db), query_timeout_ms=0) as pool:
        assert scalar(pool, "show statement_timeout") == "0"


def test_the_pool_sets_nothing_on_the_server_session(pg: Pg, empty_db: str) -> None:
    """Timeout and read-only mode are the transaction's (a transaction pooler
    hands the server session to other clients): inside every transaction,
    begun by a statement or by transaction(), in or out of a pipeline; gone
    after it; and never in the session's own settings."""
    with (
        create_pool(pg.url(empty_db), query_timeout_ms=1234, read_only=True, max_size=1) as pool,
        pool.connection() as conn,
    ):
        assert conn.execute("show statement_timeout").fetchone()[0] == "1234ms"
        assert conn.execute("show transaction_read_only").fetchone()[0] == "on"
        conn.commit()
        with conn.pipeline():
            cur = conn.execute("show statement_timeout")
        assert cur.fetchone()[0] == "1234ms", "a transaction begun in pipeline mode"
        conn.rollback()
        conn.autocommit = True
        assert conn.execute("show statement_timeout").fetchone()[0] == "0", "nothing left on the session"
        assert conn.execute("show default_transaction_read_only").fetchone()[0] == "off"
        with conn.transaction():
            assert conn.execute("show statement_timeout").fetchone()[0] == "1234ms"
            assert conn.execute("show transaction_read_only").fetchone()[0] == "on"
        assert conn.execute("show statement_timeout").fetchone()[0] == "0"
        conn.autocommit = False


def test_slow_statements_are_logged_shortened_without_parameters(
    pg: Pg, empty_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="toolsdb.pool")
    long_comment = "/* " + "x" * 500 + " */"
    with create_pool(pg.url(empty_db), slow_query_ms=100) as pool, pool.connection() as conn:
        conn.execute("select pg_sleep(0.3), %s::text", ["parameter-secret"])
        conn.execute(sql.SQL("select pg_sleep(0.3), {}::text").format(sql.Literal("literal-secret")))
        conn.execute(f"select pg_sleep(0.3) {long_comment}")
        stats = pool.stats()

    messages = [r.getMessage() for r in caplog.records if r.name == "toolsdb.pool" and r.levelname == "WARNING"]
    assert len(messages) == 3, messages
    assert all(m.startswith("slow query: ") and "threshold 100 ms" in m for m in messages), messages
    assert "select pg_sleep(0.3), %s::text" in messages[0]
    assert "select pg_sleep(0.3), ?::text" in messages[1], "a Literal is shown as ?"
    assert not any("secret" in m for m in messages), f"parameters must never be logged: {messages}"
    shown = messages[2].split("ms): ", 1)[1]
    assert len(shown) == 200 and shown.endswith("..."), f"the SQL should be cut to 200 characters: {shown!r}"
    assert (stats["slow_queries"], stats["total_queries"]) == (3, 3)


def test_slow_query_threshold_0_logs_nothing(pg: Pg, empty_db: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="toolsdb.pool")
    with create_pool(pg.url(empty_db), slow_query_ms=0) as pool:
        scalar(pool, "select pg_sleep(0.05)")
        assert pool.stats()["slow_queries"] == 0
    assert not [r for r in caplog.records if r.name == "toolsdb.pool"]


def test_stats_count_statements_with_seed_004s_names(pg: Pg, empty_db: str) -> None:
    with create_pool(pg.url(empty_db)) as pool:
        with pool.connection() as conn:
            conn.execute("create table t (n int)")
            conn.cursor().executemany("insert into t values (%s)", [(1,), (2,)])
            conn.execute("select count(*) from t")
        with pytest.raises(psycopg.errors.DivisionByZero), pool.connection() as conn:
            conn.execute("select 1 / 0")
        stats = pool.stats()

    assert stats["total_queries"] == 4
    assert (stats["successful_queries"], stats["failed_queries"]) == (3, 1)
    assert stats["success_rate"] == 0.75
    assert stats["avg_execution_ms"] > 0
    assert stats["connection_errors"] == 0
    for key in ("pool_size", "pool_available", "requests_waiting", "pool_min", "pool_max", "slow_queries"):
        assert key in stats, f"stats() should have {key}: {stats}"


def test_health_check_of_a_running_server(pg: Pg, empty_db: str) -> None:
    with create_pool(pg.url(empty_db)) as pool:
        health = pool.health_check()
        assert pool.stats()["total_queries"] == 0, "health checks are not counted as queries"

    assert health["healthy"] is True and health["error"] is None
    assert str(health["server_version"]).startswith(f"{pg.major}.")
    assert isinstance(health["response_ms"], float) and health["response_ms"] > 0, (
        f"the round trip should be measured in ms: {health['response_ms']!r}"
    )
    assert datetime.fromisoformat(health["checked_at"]).utcoffset() == timedelta(0), "checked_at should be in UTC"
    assert health["pool"]["pool_size"] == 1


# -- retried transactions --------------------------------------------------------------------


def test_a_serialization_failure_is_retried(pg: Pg, empty_db: str) -> None:
    """Write skew: two SERIALIZABLE transactions each read who is on call and take
    their own doctor off; the second to write fails with 40001 and is run again."""
    with psycopg.connect(pg.conninfo(empty_db), autocommit=True) as setup:
        setup.execute("create table doctors (id int primary key, on_call bool not null)")
        setup.execute("insert into doctors values (1, true), (2, true)")
    a_read, b_committed = threading.Event(), threading.Event()
    attempts: list[int] = []

    def take_doctor_1_off(conn: psycopg.Connection) -> str:
        attempts.append(len(attempts) + 1)
        on_call = conn.execute("select count(*) from doctors where on_call").fetchone()[0]
        if len(attempts) == 1:
            a_read.set()
            wait_for(b_committed, "the other transaction's commit")
        if on_call < 2:
            return "stays on call"
        conn.execute("update doctors set on_call = false where id = 1")
        return "off call"

    with create_pool(pg.url(empty_db)) as pool:

        def other_transaction() -> None:
            wait_for(a_read, "the first read")
            with psycopg.connect(pg.conninfo(empty_db)) as conn:
                conn.isolation_level = IsolationLevel.SERIALIZABLE
                conn.execute("select count(*) from doctors where on_call").fetchone()
                conn.execute("update doctors set on_call = false where id = 2")
            b_committed.set()

        with ThreadPoolExecutor(1) as executor:
            other = executor.submit(other_transaction)
            outcome = pool.transaction(take_doctor_1_off, isolation=IsolationLevel.SERIALIZABLE, base_delay=0.01)
            other.result(timeout=EVENT_WAIT)
        with pool.connection() as conn:
            on_call = dict(conn.execute("select id, on_call from doctors").fetchall())

    assert attempts == [1, 2], "the transaction should have run twice"
    assert outcome == "stays on call", "the second run sees the other doctor off call"
    assert on_call == {1: True, 2: False}


def test_a_deadlock_is_retried(pg: Pg, empty_db: str) -> None:
    """Two transactions lock rows 1 and 2 in opposite order; the pool's one is
    the deadlock's victim (its deadlock_timeout is the shorter) and runs again."""
    with psycopg.connect(pg.conninfo(empty_db), autocommit=True) as setup:
        setup.execute("create table counters (id int primary key, n int not null)")
        setup.execute("insert into counters values (1, 0), (2, 0)")
    a_locked, b_waiting = threading.Event(), threading.Event()
    attempts: list[int] = []

    def bump_1_then_2(conn: psycopg.Connection) -> None:
        attempts.append(len(attempts) + 1)
        conn.execute("set local deadlock_timeout = '100ms'")
        conn.execute("update counters set n = n + 1 where id = 1")
        if len(attempts) == 1:
            a_locked.set()
            wait_for(b_waiting, "the other transaction waiting for row 1")
        conn.execute("update counters set n = n + 1 where id = 2")

    def bump_2_then_1(conn: psycopg.Connection) -> None:
        wait_for(a_locked, "row 1 locked")
        with conn.transaction():
            conn.execute("update counters set n = n + 1 where id = 2")
            conn.execute("update counters set n = n + 1 where id = 1")  # waits for the pool's transaction

    with (
        create_pool(pg.url(empty_db)) as pool,
        psycopg.connect(pg.conninfo(empty_db), autocommit=True) as other,
        psycopg.connect(pg.conninfo(empty_db), autocommit=True) as observer,
    ):
        other.execute("set deadlock_timeout = '60s'")
        other_pid = other.info.backend_pid
        with ThreadPoolExecutor(2) as executor:
            mine = executor.submit(pool.transaction, bump_1_then_2, base_delay=0.01)
            theirs = executor.submit(bump_2_then_1, other)
            deadline = time.monotonic() + EVENT_WAIT
            while time.monotonic() < deadline:
                waiting = observer.execute(
                    "select wait_event_type = 'Lock' from pg_stat_activity where pid = %s", [other_pid]
                ).fetchone()
                if waiting and waiting[0]:
                    b_waiting.set()
                    break
                time.sleep(0.01)
            mine.result(timeout=EVENT_WAIT)
            theirs.result(timeout=EVENT_WAIT)
        counts = dict(observer.execute("select id, n from counters").fetchall())

    assert attempts == [1, 2], "the deadlocked transaction should have run twice"
    assert counts == {1: 2, 2: 2}, "both transactions' updates should be kept, once each"


def test_retries_stop_after_the_last_attempt(pg: Pg, empty_db: str) -> None:
    attempts: list[int] = []

    def always_conflicts(conn: psycopg.Connection) -> None:
        attempts.append(1)
        conn.execute("do $$ begin raise exception 'conflict' using errcode = 'serialization_failure'; end $$")

    with create_pool(pg.url(empty_db)) as pool, pytest.raises(psycopg.errors.SerializationFailure):
        pool.transaction(always_conflicts, attempts=3, base_delay=0.001)
    assert len(attempts) == 3


def test_other_errors_are_not_retried(pg: Pg, empty_db: str) -> None:
    attempts: list[int] = []

    def duplicate(conn: psycopg.Connection) -> None:
        attempts.append(1)
        conn.execute("create table if not exists u (id int primary key)")
        conn.execute("insert into u values (1), (1)")

    with create_pool(pg.url(empty_db)) as pool, pytest.raises(psycopg.errors.UniqueViolation):
        pool.transaction(duplicate)
    assert attempts == [1], "a unique violation is raised at once"


def test_retrying_runs_any_function_and_checks_attempts(pg: Pg, empty_db: str) -> None:
    calls: list[int] = []

    def deadlock_once() -> str:
        calls.append(1)
        with psycopg.connect(pg.conninfo(empty_db)) as conn:
            if len(calls) == 1:
                conn.execute("do $$ begin raise exception 'victim' using errcode = 'deadlock_detected'; end $$")
            return "done"

    assert retrying(deadlock_once, base_delay=0.001) == "done"
    assert len(calls) == 2
    with pytest.raises(ValueError, match="attempts"):
        retrying(deadlock_once, attempts=0)


# -- an unreachable server -------------------------------------------------------------------


def test_an_unreachable_server_fails_create_pool_with_one_line() -> None:
    port = closed_port()
    url = f"postgresql://postgres:hunter2@127.0.0.1:{port}/toolsdb"

    with pytest.raises(ToolsdbError) as caught:
        create_pool(url, connect_attempts=2)

    message = one_line(caught.value)
    assert f"127.0.0.1:{port}" in message and "tried 2 times" in message, message
    assert "hunter2" not in message and "***" in message, f"the password must be hidden: {message}"


def test_health_check_of_an_unreachable_server_reports_unhealthy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres:hunter2@127.0.0.1:{closed_port()}/toolsdb")
    with create_pool(wait=False) as pool:
        health = pool.health_check(timeout=0.5)

    assert health["healthy"] is False and health["server_version"] is None
    assert one_line(health["error"]) and "hunter2" not in health["error"], health["error"]
    assert "refused" in health["error"] and "(from DATABASE_URL)" in health["error"], health["error"]
    assert health["pool"]["connection_errors"] >= 1, health["pool"]


# -- the read replica ------------------------------------------------------------------------


def test_read_only_pools_use_the_replica_url(pg: Pg, db: str, empty_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_REPLICA_URL", pg.url(empty_db))
    with create_pool(pg.url(db)) as primary, create_pool(pg.url(db), read_only=True) as replica:
        assert scalar(primary, "select current_database()") == db
        assert scalar(primary, "show transaction_read_only") == "off"
        assert scalar(replica, "select current_database()") == empty_db, "read-only work goes to the replica"
        assert scalar(replica, "show transaction_read_only") == "on"
        assert "DATABASE_REPLICA_URL" in replica.where
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction) as caught, replica.connection() as conn:
            conn.execute("create table t (n int)")
        assert caught.value.sqlstate == "25006"


def test_read_only_without_a_replica_reads_the_primary(pg: Pg, db: str) -> None:
    with create_pool(pg.url(db), read_only=True) as pool:
        assert scalar(pool, "select current_database()") == db
        assert scalar(pool, "show transaction_read_only") == "on"
        assert scalar(pool, "select current_setting('application_name')") == "toolsdb-pool-ro"


def test_a_bad_replica_url_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_REPLICA_URL", "mysql://u:pw@h/d")
    with pytest.raises(ToolsdbError) as caught:
        create_pool("postgresql://u@h/d", read_only=True)
    message = one_line(caught.value)
    assert "DATABASE_REPLICA_URL" in message and "pw" not in message, message


# -- the process's pool ----------------------------------------------------------------------


def test_get_pool_is_built_once_and_reset(pg: Pg, empty_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", pg.url(empty_db))
    first = get_pool()
    assert get_pool() is first
    assert scalar(first, "select current_database()") == empty_db
    read_only = get_pool(read_only=True)
    assert read_only is not first and scalar(read_only, "show transaction_read_only") == "on"

    reset_pool()

    assert first.closed and read_only.closed
    again = get_pool()
    assert again is not first and not again.closed
    assert poolmod._defaults[False] is again
