"""Every configuration variable the source designs name is read, checked and never silently ignored.

* ``POSTGRES_HOST/PORT/DB/USER/PASSWORD`` (platform and agents-framework
  setups) pick the database like libpq's ``PG*`` and the CI/CD trackers'
  ``DB_*`` (runner/toolsdb/target.py); two variables of one setting that
  disagree are one error line (before: silently ignored, the embedded server
  was used instead).
* ``POSTGRES_POOL_MIN/MAX`` size the pool like ``DB_POOL_MIN/MAX``;
  ``DB_HEALTH_CHECK_ENABLED/_INTERVAL`` check idle pool connections in the
  background; ``DB_LOGGING_ENABLED/_LEVEL``, ``DB_LOG_SLOW_QUERIES`` and the
  statement-logging switch ``DB_LOG_QUERIES`` (alias ``AUTOMAGIK_LOG_SQL``)
  steer the ``toolsdb.pool`` logger (runner/toolsdb/pool.py); the switch
  also makes the CLI echo the statements it runs, as ``--verbose`` does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import psycopg
import pytest

from toolsdb.errors import ToolsdbError
from toolsdb.pool import PoolSettings, create_pool, logger, logging_from_env
from toolsdb.target import ALIASES, libpq_aliases

from .conftest import Pg, run_cli

NAMES = [
    *ALIASES,
    *(variable for variable, _ in PoolSettings.VARIABLES.values()),
    *PoolSettings.ALIASES,
    "DB_HEALTH_CHECK_ENABLED",
    "DB_HEALTH_CHECK_INTERVAL",
    "DB_LOGGING_ENABLED",
    "DB_LOGGING_LEVEL",
    "DB_LOG_QUERIES",
    "DB_LOG_SLOW_QUERIES",
    "AUTOMAGIK_LOG_SQL",
    "DATABASE_URL",
    "TOOLS_DB_URL",
    "PGHOST",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
]


@pytest.fixture(autouse=True)
def no_variables(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    disabled, level = logger.disabled, logger.level
    yield
    logger.disabled, logger.level = disabled, level


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, text
    return text


# -- POSTGRES_* pick the database --------------------------------------------------------


def test_postgres_variables_pick_the_database(pg: Pg, db: str) -> None:
    env = {"POSTGRES_HOST": pg.host, "POSTGRES_PORT": str(pg.port), "POSTGRES_DB": db, "POSTGRES_USER": "postgres"}

    result = run_cli("status", env=env)

    assert result.returncode == 0, result.stderr
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("database: "))
    assert line.endswith("(from POSTGRES_* variables)") and f"POSTGRES_DB={db}" in line, line
    assert result.stdout.strip().splitlines()[-1].endswith("0 pending"), result.stdout


@pytest.mark.parametrize(
    ("env", "facts"),
    [
        ({"POSTGRES_PORT": "5433", "PGPORT": "5434"}, ["POSTGRES_PORT", "PGPORT", "'5433'", "'5434'"]),
        ({"POSTGRES_DB": "a", "DB_NAME": "b"}, ["POSTGRES_DB", "DB_NAME"]),
        ({"POSTGRES_PORT": "http"}, ["POSTGRES_PORT", "'http'", "65535"]),
    ],
)
def test_postgres_variables_that_disagree_or_are_wrong_are_one_line(env: dict[str, str], facts: list[str]) -> None:
    with pytest.raises(ToolsdbError) as caught:
        libpq_aliases(env)
    message = one_line(caught.value)
    for fact in facts:
        assert fact in message, message


def test_disagreeing_passwords_are_named_but_never_shown() -> None:
    with pytest.raises(ToolsdbError) as caught:
        libpq_aliases({"POSTGRES_PASSWORD": "one-secret", "DB_PASSWORD": "two-secret"})
    message = one_line(caught.value)
    assert "POSTGRES_PASSWORD" in message and "DB_PASSWORD" in message and "secret" not in message, message


def test_the_same_value_under_several_names_is_no_conflict(pg: Pg, db: str) -> None:
    env = {"POSTGRES_DB": db, "DB_NAME": db, "PGDATABASE": db, "POSTGRES_HOST": pg.host, "DB_PORT": str(pg.port)}
    assert libpq_aliases(env) == {"dbname": db, "host": pg.host, "port": str(pg.port)}


# -- the pool --------------------------------------------------------------------------------


def test_postgres_pool_sizes_are_read_and_a_conflict_is_one_line() -> None:
    settings = PoolSettings.from_env({"POSTGRES_POOL_MIN": "2", "POSTGRES_POOL_MAX": "7", "DB_POOL_MIN": "2"})
    assert (settings.min_size, settings.max_size) == (2, 7)

    with pytest.raises(ToolsdbError) as caught:
        PoolSettings.from_env({"POSTGRES_POOL_MAX": "25", "DB_POOL_MAX": "20"})
    message = one_line(caught.value)
    assert "DB_POOL_MAX" in message and "POSTGRES_POOL_MAX" in message, message


@pytest.mark.parametrize(
    ("env", "fact"),
    [
        ({"DB_LOG_QUERIES": "maybe"}, "DB_LOG_QUERIES must be true or false"),
        ({"DB_LOG_QUERIES": "false", "AUTOMAGIK_LOG_SQL": "true"}, "disagree"),
        ({"DB_LOG_SLOW_QUERIES": "sometimes"}, "DB_LOG_SLOW_QUERIES"),
        ({"DB_HEALTH_CHECK_ENABLED": "yes please"}, "DB_HEALTH_CHECK_ENABLED"),
        ({"DB_HEALTH_CHECK_ENABLED": "true", "DB_HEALTH_CHECK_INTERVAL": "30s"}, "DB_HEALTH_CHECK_INTERVAL"),
    ],
)
def test_a_bad_switch_is_one_line_naming_it(env: dict[str, str], fact: str) -> None:
    with pytest.raises(ToolsdbError) as caught:
        PoolSettings.from_env(env)
    assert fact in one_line(caught.value)


def test_switches_are_read() -> None:
    settings = PoolSettings.from_env(
        {"AUTOMAGIK_LOG_SQL": "true", "DB_LOG_QUERIES": "1", "DB_LOG_SLOW_QUERIES": "off",
         "DB_HEALTH_CHECK_ENABLED": "true", "DB_HEALTH_CHECK_INTERVAL": "250"}
    )  # fmt: skip
    assert (settings.log_queries, settings.log_slow_queries, settings.health_check_interval_ms) == (True, False, 250)
    assert PoolSettings.from_env({}).health_check_interval_ms == 0, "health checks are off unless enabled"
    assert PoolSettings.from_env({"DB_HEALTH_CHECK_ENABLED": "true"}).health_check_interval_ms == 30_000


def test_the_logging_variables_steer_the_pool_logger() -> None:
    logging_from_env({"DB_LOGGING_LEVEL": "debug"})
    assert logger.level == logging.DEBUG and not logger.disabled
    logging_from_env({"DB_LOGGING_ENABLED": "false"})
    assert logger.disabled
    with pytest.raises(ToolsdbError) as caught:
        logging_from_env({"DB_LOGGING_LEVEL": "loud"})
    assert "DB_LOGGING_LEVEL" in one_line(caught.value)


def test_the_statement_switch_logs_every_statement_and_slow_lines_can_be_turned_off(
    pg: Pg, db: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AUTOMAGIK_LOG_SQL", "true")
    monkeypatch.setenv("DB_LOG_SLOW_QUERIES", "false")
    monkeypatch.setenv("DB_SLOW_QUERY_THRESHOLD", "1")
    caplog.set_level(logging.INFO, logger="toolsdb.pool")
    with create_pool(pg.conninfo(db), min_size=1, max_size=1) as pool, pool.connection() as conn:
        conn.cursor().execute("select pg_sleep(0.05), %s::text as secret", ("do-not-log-me",))
        stats = pool.stats()

    lines = [r.getMessage() for r in caplog.records if r.name == "toolsdb.pool"]
    assert any(ln.startswith("query: ") and "pg_sleep(0.05)" in ln for ln in lines), lines
    assert not any("do-not-log-me" in ln for ln in lines), "parameters are never logged"
    assert not any(ln.startswith("slow query") for ln in lines), "DB_LOG_SLOW_QUERIES=false: no slow lines"
    assert stats["slow_queries"] >= 1, "slow statements are still counted"


def test_the_statement_switch_makes_the_cli_echo_its_statements(pg: Pg, db: str) -> None:
    result = run_cli("seed", "--database", pg.url(db), env={"DB_LOG_QUERIES": "true"})

    assert result.returncode == 0, result.stderr
    assert "insert into toolsdb.users" in result.stderr, "the seed statements are echoed on stderr"


def test_health_checks_replace_broken_idle_connections(pg: Pg, db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HEALTH_CHECK_ENABLED", "true")
    monkeypatch.setenv("DB_HEALTH_CHECK_INTERVAL", "100")
    with create_pool(pg.conninfo(db), min_size=2, max_size=2) as pool:
        with psycopg.connect(pg.conninfo(db), autocommit=True) as su:
            su.execute("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'toolsdb-pool'")
            deadline = time.monotonic() + 60  # a safeguard against a hang, not a timing assertion
            while pool.get_stats().get("connections_lost", 0) < 2:
                assert time.monotonic() < deadline, f"the idle connections were never checked: {pool.get_stats()}"
                time.sleep(0.05)
            while (
                su.execute("select count(*) from pg_stat_activity where application_name = 'toolsdb-pool'").fetchone()[
                    0
                ]
                < 2
            ):
                assert time.monotonic() < deadline, "the broken connections were never replaced"
                time.sleep(0.05)
        assert pool.get_stats().get("requests_num", 0) == 0, "found by the background check, not by a client"
