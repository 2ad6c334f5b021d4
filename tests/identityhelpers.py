"""Helpers of the identity domain's test modules (test_identity_*.py): the
smallest valid row of each identity table, ``expect_violation`` (a rejected
statement must name its constraint and table), catalog queries, the full
contents of the toolsdb tables, psql loads of seed files, the view
toolsdb.agent_tools, and the body of the modules' ``committed`` fixture (a
clone loaded once with seeds/10_identity.sql).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from .conftest import ROOT, Pg
from .dbhelpers import Clone, Row, insert, module_clone, scalar

IDENTITY_SEED = ROOT / "seeds" / "10_identity.sql"
IDENTITY_TABLES = ("agent_mcp_servers", "agents", "mcp_servers", "preferences", "projects", "users")
APP_SCHEMAS = ("toolsdb", "toolsdb_private")
FORGED_PAST = "2000-01-01 00:00:00+00"
FORGED_FUTURE = "2999-01-01 00:00:00+00"
_serial = itertools.count(1)


# ---------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------


def unique(prefix: str) -> str:
    """A name not used by the seeds nor by another helper call in this run."""
    return f"{prefix}{next(_serial)}"


def new_user(conn: psycopg.Connection, **values: object) -> Row:
    name = unique("user")
    return insert(conn, "users", **{"username": name, "email": f"{name}@example.com", **values})


def new_project(conn: psycopg.Connection, **values: object) -> Row:
    if "owner_id" not in values:
        values["owner_id"] = new_user(conn)["user_id"]
    slug = unique("project-")
    return insert(conn, "projects", **{"slug": slug, "name": slug, **values})


def new_agent(conn: psycopg.Connection, **values: object) -> Row:
    return insert(conn, "agents", **{"name": unique("agent-"), "agent_type": "coding", **values})


def new_server(conn: psycopg.Connection, **values: object) -> Row:
    defaults: dict[str, object] = {"name": unique("server-"), "transport": "stdio", "command": "npx"}
    return insert(conn, "mcp_servers", **{**defaults, **values})


def new_link(conn: psycopg.Connection, **values: object) -> Row:
    if "agent_id" not in values:
        values["agent_id"] = new_agent(conn)["agent_id"]
    if "mcp_server_id" not in values:
        values["mcp_server_id"] = new_server(conn)["mcp_server_id"]
    return insert(conn, "agent_mcp_servers", **values)


def new_preference(conn: psycopg.Connection, **values: object) -> Row:
    if "user_id" not in values:
        values["user_id"] = new_user(conn)["user_id"]
    return insert(conn, "preferences", **{"category": "ui_settings", **values})


# The smallest valid row of each identity table (with its parents).
NEW_ROW: dict[str, Callable[..., Row]] = {
    "users": new_user,
    "projects": new_project,
    "agents": new_agent,
    "mcp_servers": new_server,
    "agent_mcp_servers": new_link,
    "preferences": new_preference,
}


def expect_violation(
    conn: psycopg.Connection,
    error: type[psycopg.Error],
    constraint: str,
    table: str,
    statement: Callable[[], object],
) -> psycopg.Error:
    """Run ``statement`` in a savepoint and check it fails with ``error`` on
    ``constraint`` of toolsdb.<table>; the connection stays usable afterwards."""
    try:
        with conn.transaction():
            statement()
    except error as exc:
        caught = exc
    else:
        pytest.fail(f"The statement should have been rejected by {constraint} on toolsdb.{table}, but it succeeded.")
    diag = caught.diag
    assert diag.constraint_name == constraint, (
        f"The error should name constraint {constraint}, but it names {diag.constraint_name!r}: {caught}"
    )
    assert (diag.schema_name, diag.table_name) == ("toolsdb", table), (
        f"The error should be reported on toolsdb.{table}, but it names {diag.schema_name}.{diag.table_name}."
    )
    assert caught.sqlstate is not None and caught.sqlstate.startswith("23"), (
        f"The error should be an integrity constraint violation (SQLSTATE class 23), but its SQLSTATE is "
        f"{caught.sqlstate}."
    )
    assert conn.execute("select 1").fetchone() == (1,), "The connection should still be usable after the violation."
    return caught


# ---------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------


def column(conn: psycopg.Connection, query: str, params: tuple | dict | None = None) -> list[Any]:
    return [row[0] for row in conn.execute(query, params).fetchall()]


def timestamped_tables(conn: psycopg.Connection) -> list[str]:
    """Every application table with an updated_at column, read from the catalog."""
    return column(
        conn,
        """
        select format('%%I.%%I', n.nspname, c.relname)
        from pg_catalog.pg_class as c
        join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        join pg_catalog.pg_attribute as a on a.attrelid = c.oid and a.attname = 'updated_at' and not a.attisdropped
        where n.nspname = any(%s) and c.relkind in ('r', 'p')
        order by 1
        """,
        (list(APP_SCHEMAS),),
    )


def app_tables(conn: psycopg.Connection) -> list[str]:
    """Every table in the toolsdb schema, read from the catalog."""
    return column(
        conn,
        """
        select format('%I.%I', n.nspname, c.relname)
        from pg_catalog.pg_class as c
        join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = 'toolsdb' and c.relkind in ('r', 'p')
        order by 1
        """,
    )


def short(qualified: str) -> str:
    """toolsdb.users -> users."""
    return qualified.rsplit(".", 1)[-1]


def table_contents(conn: psycopg.Connection) -> dict[str, list[tuple[str, str]]]:
    """Full contents of every toolsdb table but the audit log (which records
    every change by design): (xmin, whole row as JSON) sorted, per table."""
    contents = {}
    for table in app_tables(conn):
        if table.startswith("toolsdb.audit_"):
            continue
        query = sql.SQL("select t.xmin::text, to_jsonb(t)::text from {} as t order by 2").format(sql.SQL(table))
        contents[table] = [tuple(row) for row in conn.execute(query).fetchall()]
    conn.rollback()
    return contents


def id_of(conn: psycopg.Connection, table: str, key: str, value: str) -> Any:
    """The primary key of the toolsdb.<table> row whose natural key <key> = value."""
    id_column = {"users": "user_id", "projects": "project_id", "agents": "agent_id", "mcp_servers": "mcp_server_id"}
    query = sql.SQL("select {} from toolsdb.{} where {} = %s").format(
        sql.Identifier(id_column[table]), sql.Identifier(table), sql.Identifier(key)
    )
    return scalar(conn, query.as_string(conn), (value,))


def agent_tools(conn: psycopg.Connection) -> dict[str, tuple[list[str], int]]:
    rows = conn.execute("select agent_name, mcp_server_names, mcp_server_count from toolsdb.agent_tools").fetchall()
    return {name: (names, count) for name, names, count in rows}


# ---------------------------------------------------------------------------
# Seeds and the module database
# ---------------------------------------------------------------------------


def load(pg: Pg, dbname: str, *files: Path) -> None:
    for path in files:
        pg.psql(dbname, "-f", str(path))


def seeded_clone(request: pytest.FixtureRequest, pg: Pg, template: str) -> Iterator[Clone]:
    """Body of each identity test module's ``committed`` fixture: one clone of
    the migrated template per module and major, loaded once with
    seeds/10_identity.sql through psql; tests only see it through ``tx``
    (conftest.py), a transaction always rolled back, so each test sees
    exactly the seed, cheaply."""
    with module_clone(request, pg, template) as name:
        load(pg, name, IDENTITY_SEED)
        yield Clone(name)
