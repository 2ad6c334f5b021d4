"""Helpers shared by the database test modules.

* Queries: ``unique`` names, ``scalar``, ``rows``, ``one``, ``insert`` into
  toolsdb.<table> and ``call`` of a toolsdb function returning a row.
* ``expect_error``: run a statement in a savepoint and check its SQLSTATE
  (and constraint), so the caller's transaction stays usable.
* Connections: ``connect`` as the superuser or as a login role;
  ``connect_app`` connects as a login role and rolls back at the end;
  ``ensure_login`` creates a login role in a group role once, idempotently
  (conftest.py's ``app_login``, ``worker_login`` and ``readonly_login``
  fixtures use it); ``set_project`` sets toolsdb.project_id for the
  transaction.
* ``run_workers``: threads that start together on a barrier.
* Module databases: conftest.py's ``committed`` (an empty clone per module
  and major), ``shared_conn`` and ``tx`` (a transaction on it, always rolled
  back). A module that needs committed rows in its clone overrides
  ``committed`` with a module-scoped fixture yielding a ``HasDbname``, such
  as ``committed = pytest.fixture(body, scope="module")`` with a body kept
  in a helper module: importing a fixture by name would clash with the test
  arguments of the same name (ruff F811). ``module_clone(request, pg,
  template)`` names such a clone after its module.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.rows import dict_row

from .conftest import SUPERUSER, Pg

Row = dict[str, Any]
T = TypeVar("T")
Params = tuple | dict | None
_serial = itertools.count(1)


class HasDbname(Protocol):
    """What conftest.py's ``shared_conn`` needs of the ``committed`` fixture."""

    dbname: str


@dataclass(frozen=True)
class Clone:
    """A module's database, by name (a ``HasDbname``)."""

    dbname: str


@contextmanager
def module_clone(request: pytest.FixtureRequest, pg: Pg, template: str | None) -> Iterator[str]:
    """A clone of ``template`` for the requesting module and major, named
    after the module (without its test_ prefix), dropped on exit."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with pg.clone(f"{module}_{os.getpid()}_{pg.major}", template) as name:
        yield name


# ---------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------


def unique(prefix: str) -> str:
    """``prefix`` followed by the process id and a counter: unique in the run."""
    return f"{prefix}{os.getpid()}-{next(_serial)}"


def scalar(conn: psycopg.Connection, query: str, params: Params = None) -> Any:
    """The first column of the first row the query returns (which must exist)."""
    row = conn.execute(query, params).fetchone()
    assert row is not None, f"The query should have returned a row: {query}"
    return row[0]


def rows(conn: psycopg.Connection, query: str, params: Params = None) -> list[Row]:
    """Every row the query returns, as dicts."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def one(conn: psycopg.Connection, query: str, params: Params = None) -> Row:
    """The one row the query returns (exactly one), as a dict."""
    found = rows(conn, query, params)
    assert len(found) == 1, f"The query should have returned exactly one row, but returned {found}: {query}"
    return found[0]


def insert(conn: psycopg.Connection, table: str, **values: object) -> Row:
    """Insert one row into toolsdb.<table> and return it as stored (after triggers)."""
    query = sql.SQL("insert into toolsdb.{table} ({columns}) values ({values}) returning *").format(
        table=sql.Identifier(table),
        columns=sql.SQL(", ").join(map(sql.Identifier, values)),
        values=sql.SQL(", ").join(sql.Placeholder() * len(values)),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, list(values.values())).fetchone()
    assert row is not None, f"The insert into toolsdb.{table} should have returned the new row."
    return row


def call(conn: psycopg.Connection, function: str, *args: object, returns: str = "row") -> Row:
    """Call toolsdb.<function>(args) returning a row of a table (``returns``
    names that row in the failure message)."""
    query = sql.SQL("select * from toolsdb.{fn}({args})").format(
        fn=sql.Identifier(function), args=sql.SQL(", ").join(sql.Placeholder() * len(args))
    )
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, args).fetchone()
    assert row is not None, f"toolsdb.{function} should have returned the {returns}."
    return row


def expect_error(
    conn: psycopg.Connection,
    sqlstate: str | tuple[str, ...],
    statement: Callable[[], object],
    constraint: str | None = None,
) -> psycopg.Error:
    """Run ``statement`` in a savepoint and check it fails with ``sqlstate``
    (one of them, if a tuple) and, if given, names ``constraint``; the
    transaction stays usable."""
    wanted = (sqlstate,) if isinstance(sqlstate, str) else sqlstate
    try:
        with conn.transaction():
            statement()
    except psycopg.Error as exc:
        caught = exc
    else:
        pytest.fail(f"The statement should have failed with SQLSTATE {sqlstate} ({constraint}), but it succeeded.")
    assert caught.sqlstate in wanted, (
        f"The statement should fail with SQLSTATE {' or '.join(wanted)}, but it failed with {caught.sqlstate}: {caught}"
    )
    if constraint is not None:
        assert caught.diag.constraint_name == constraint, (
            f"The error should name constraint {constraint}, but it names {caught.diag.constraint_name!r}: {caught}"
        )
    return caught


# ---------------------------------------------------------------------------
# Login roles
# ---------------------------------------------------------------------------


def ensure_login(pg: Pg, name: str, group: str = "toolsdb_app") -> str:
    """A login role ``name`` in ``group`` (cluster-wide, created once, idempotently)."""
    with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as su:
        if su.execute("select from pg_catalog.pg_roles where rolname = %s", (name,)).fetchone() is None:
            with suppress(errors.DuplicateObject):
                su.execute(
                    sql.SQL("create role {} login in role {}").format(sql.Identifier(name), sql.Identifier(group))
                )
    return name


def conninfo_as(pg: Pg, dbname: str, login: str | None = None) -> str:
    """The conninfo of ``dbname`` as the login role ``login`` (the superuser when None)."""
    conninfo = pg.conninfo(dbname)
    return conninfo if login is None else conninfo.replace(f"user={SUPERUSER}", f"user={login}")


def connect(pg: Pg, dbname: str, login: str | None = None, autocommit: bool = True) -> psycopg.Connection:
    """A connection (autocommit by default) as the superuser or as the login
    role ``login``; as a ``with`` block, psycopg commits unless it failed."""
    return psycopg.connect(conninfo_as(pg, dbname, login), autocommit=autocommit)


@contextmanager
def connect_app(pg: Pg, dbname: str, login: str) -> Iterator[psycopg.Connection]:
    """A connection as the login role ``login`` that rolls back whatever it
    did unless the test commits explicitly."""
    connection = connect(pg, dbname, login, autocommit=False)
    try:
        yield connection
    finally:
        connection.rollback()
        connection.close()


def set_project(connection: psycopg.Connection, project_id: str) -> None:
    """toolsdb.project_id for the rest of the transaction."""
    connection.execute("select set_config('toolsdb.project_id', %s, true)", (project_id,))


# ---------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------


def run_workers(count: int, work: Callable[[int, threading.Barrier], T]) -> list[T]:
    """Run ``work(n, barrier)`` in ``count`` threads, which wait on ``barrier``
    to start together; their results in thread order. The first exception a
    worker raised is raised again here (a worker that fails breaks the
    barrier, so that the others stop waiting)."""
    start = threading.Barrier(count, timeout=60)
    failures: list[BaseException] = []
    results: list[Any] = [None] * count

    def guarded(n: int) -> None:
        try:
            results[n] = work(n, start)
        except BaseException as exc:
            failures.append(exc)
            start.abort()

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "Every worker thread should have finished."
    real = [f for f in failures if not isinstance(f, threading.BrokenBarrierError)] or failures
    if real:
        raise real[0]
    return results
