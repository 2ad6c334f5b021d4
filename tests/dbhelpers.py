"""Helpers shared by the database test modules (test_tasks.py,
test_executions.py, test_collaboration.py, test_work_views.py and
test_isolation.py).

* Queries: ``unique`` names, ``scalar``, ``rows``, ``one``, ``insert`` into
  toolsdb.<table> and ``call`` of a toolsdb function returning a row.
* ``expect_error``: run a statement in a savepoint and check its SQLSTATE
  (and constraint), so the caller's transaction stays usable.
* Login roles: ``ensure_login`` creates a login role in a group role once,
  idempotently; ``connect_app`` connects as it and rolls back at the end;
  ``set_project`` sets toolsdb.project_id for the transaction.
* Fixture bodies, declared by each module so that it picks them up
  (``tx = pytest.fixture(rolled_back_tx)``, ``shared_conn =
  pytest.fixture(committed_conn, scope="module")``, ``su =
  pytest.fixture(autocommit_conn)``): importing a fixture by name would
  clash with the test arguments of the same name (ruff F811).
  ``committed = empty_module_clone("name")`` makes a module's empty clone.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.rows import dict_row

from .conftest import SUPERUSER, Pg

Row = dict[str, Any]
Params = tuple | dict | None
_serial = itertools.count(1)


class HasDbname(Protocol):
    """What ``committed_conn`` needs of a module's ``committed`` fixture."""

    dbname: str


@dataclass(frozen=True)
class Clone:
    """A module's database, by name (a ``HasDbname``)."""

    dbname: str


def empty_module_clone(prefix: str) -> Callable:
    """A module-scoped ``committed`` fixture: one clone of the template per
    module and major, with nothing committed in it by the fixture."""

    @pytest.fixture(scope="module")
    def committed(pg: Pg, template: str) -> Iterator[Clone]:
        with pg.clone(f"{prefix}_{os.getpid()}_{pg.major}", template) as name:
            yield Clone(name)

    return committed


def autocommit_conn(pg: Pg, db: str) -> Iterator[psycopg.Connection]:
    """A superuser connection in autocommit to the test's fresh clone (``db``)."""
    with psycopg.connect(pg.conninfo(db), autocommit=True) as connection:
        yield connection


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


@contextmanager
def connect_app(pg: Pg, dbname: str, login: str) -> Iterator[psycopg.Connection]:
    """A connection as the login role ``login`` that rolls back whatever it
    did unless the test commits explicitly."""
    connection = psycopg.connect(pg.conninfo(dbname).replace(f"user={SUPERUSER}", f"user={login}"))
    try:
        yield connection
    finally:
        connection.rollback()
        connection.close()


def set_project(connection: psycopg.Connection, project_id: str) -> None:
    """toolsdb.project_id for the rest of the transaction."""
    connection.execute("select set_config('toolsdb.project_id', %s, true)", (project_id,))


# ---------------------------------------------------------------------------
# Fixture bodies (each module declares its fixtures with pytest.fixture)
# ---------------------------------------------------------------------------


def committed_conn(pg: Pg, committed: HasDbname) -> Iterator[psycopg.Connection]:
    """A superuser connection to the module database of ``committed``."""
    with psycopg.connect(pg.conninfo(committed.dbname)) as connection:
        yield connection


def rolled_back_tx(shared_conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """The module database as the superuser, in a transaction always rolled back."""
    with shared_conn.transaction(force_rollback=True):
        yield shared_conn
