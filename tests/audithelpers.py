"""Helpers of the audit log's test modules (test_audit_*.py): queries, rows
to audit, the transaction context, events and seals, and the body of the
modules' ``committed`` fixture (a clone holding one sealed entry).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .conftest import Pg
from .dbhelpers import Clone, module_clone

Row = dict[str, Any]
_serial = itertools.count(1)

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def unique(prefix: str) -> str:
    """A name not used by another helper call in this run."""
    return f"{prefix}{os.getpid()}-{next(_serial)}"


def scalar(conn: psycopg.Connection, query: str, params: tuple | dict | None = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None, f"The query should have returned a row: {query}"
    return row[0]


def column(conn: psycopg.Connection, query: str, params: tuple | dict | None = None) -> list[Any]:
    return [row[0] for row in conn.execute(query, params).fetchall()]


def rows(conn: psycopg.Connection, query: str, params: tuple | dict | None = None) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def one(conn: psycopg.Connection, query: str, params: tuple | dict | None = None) -> Row:
    found = rows(conn, query, params)
    assert len(found) == 1, f"The query should have returned exactly one row, but it returned {found}: {query}"
    return found[0]


def set_context(conn: psycopg.Connection, **settings: str) -> None:
    """set local toolsdb.<name> = <value> for each setting, in the current transaction."""
    for name, value in settings.items():
        conn.execute("select set_config(%s, %s, true)", (f"toolsdb.{name}", value))


def new_agent(conn: psycopg.Connection, **values: object) -> Row:
    values = {"name": unique("agent-"), "agent_type": "coding", **values}
    query = sql.SQL("insert into toolsdb.agents ({columns}) values ({values}) returning *").format(
        columns=sql.SQL(", ").join(map(sql.Identifier, values)),
        values=sql.SQL(", ").join(sql.Placeholder() * len(values)),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, list(values.values())).fetchone()
    assert row is not None, "The insert into toolsdb.agents should have returned the new row."
    return row


def new_server(conn: psycopg.Connection) -> Row:
    return one(
        conn,
        "insert into toolsdb.mcp_servers (name, transport, command) values (%s, 'stdio', 'npx') returning *",
        (unique("server-"),),
    )


def as_json(conn: psycopg.Connection, table: str, key: str, value: object) -> Row:
    """The row of toolsdb.<table> whose <key> = value, as to_jsonb() sees it."""
    query = sql.SQL("select to_jsonb(t) from toolsdb.{} as t where {} = %s").format(
        sql.Identifier(table), sql.Identifier(key)
    )
    return scalar(conn, query.as_string(conn), (value,))


def entries(conn: psycopg.Connection, entity_type: str, entity_id: str | None = None) -> list[Row]:
    """Audit entries about one entity (or one entity type), oldest first."""
    return rows(
        conn,
        "select * from toolsdb.audit_logs where entity_type = %s and (%s::text is null or entity_id = %s) "
        "order by audit_id",
        (entity_type, entity_id, entity_id),
    )


def event(conn: psycopg.Connection, action: str = "test_event", entity_id: str | None = None) -> int:
    return scalar(
        conn, "select toolsdb.audit_event(%s, 'test', %s, %s)", (action, entity_id or unique("e"), Jsonb({"n": 1}))
    )


def expect_error(
    conn: psycopg.Connection,
    error: type[psycopg.Error],
    statement: Callable[[], object],
    *,
    contains: str | None = None,
    constraint: str | None = None,
) -> psycopg.Error:
    """Run ``statement`` in a savepoint and check it fails with ``error`` (its
    SQLSTATE), a message containing ``contains`` and naming ``constraint``; the
    connection stays usable afterwards."""
    try:
        with conn.transaction():
            statement()
    except error as exc:
        caught = exc
    except psycopg.Error as exc:
        pytest.fail(
            f"The statement should have failed with {error.__name__} ({error.sqlstate}), but it failed with "
            f"{type(exc).__name__} ({exc.sqlstate}): {exc}"
        )
    else:
        pytest.fail(f"The statement should have failed with {error.__name__} ({error.sqlstate}), but it succeeded.")
    assert caught.sqlstate == error.sqlstate, (
        f"The error should carry SQLSTATE {error.sqlstate}, but it carries {caught.sqlstate}: {caught}"
    )
    if contains is not None:
        assert contains in str(caught), f"The error message should contain {contains!r}, but it reads: {caught}"
    if constraint is not None:
        assert caught.diag.constraint_name == constraint, (
            f"The error should name constraint {constraint}, but it names {caught.diag.constraint_name!r}: {caught}"
        )
    assert conn.execute("select 1").fetchone() == (1,), "The connection should still be usable after the error."
    return caught


def partition_of(conn: psycopg.Connection, months_from_now: str) -> str:
    """Name of the monthly partition for now() + the given interval (UTC month)."""
    return scalar(
        conn,
        "select toolsdb_private.partition_name("
        "'toolsdb.audit_logs', 'month', date_trunc('month', (now() + %s::interval) at time zone 'UTC')::date)",
        (months_from_now,),
    )


def monthly_partitions(conn: psycopg.Connection) -> list[str]:
    return column(
        conn,
        """
        select c.relname::text
        from pg_catalog.pg_inherits as i
        join pg_catalog.pg_class as c on c.oid = i.inhrelid
        where i.inhparent = 'toolsdb.audit_logs'::regclass and c.relname ~ '^audit_logs_y[0-9]{4}m[0-9]{2}$'
        order by 1
        """,
    )


def verify(conn: psycopg.Connection) -> list[Row]:
    return rows(conn, "select * from toolsdb.audit_verify()")


def seal(conn: psycopg.Connection) -> int:
    """Seal in a transaction of its own and commit: only finished transactions are sealed."""
    conn.commit()
    sealed = scalar(conn, "select toolsdb.audit_seal()")
    conn.commit()
    return sealed


def seals(conn: psycopg.Connection) -> list[Row]:
    return rows(conn, "select * from toolsdb.audit_seals order by seal_id")


def sealed_log(conn: psycopg.Connection) -> list[Row]:
    """Two sealed batches of committed entries (captured changes and events); returns the seals."""
    for _ in range(2):
        for _ in range(3):
            agent = new_agent(conn)
            conn.execute("update toolsdb.agents set description = 'changed' where agent_id = %s", (agent["agent_id"],))
        event(conn)
        assert seal(conn) > 0, "Sealing after committed writes should write at least one seal row."
    found = seals(conn)
    assert len({(s["first_transaction_id"], s["end_transaction_id"]) for s in found}) == 2, (
        f"Two seal calls with new entries in between should have sealed two transaction ranges, but the seals are "
        f"{found}."
    )
    assert verify(conn) == [], "A freshly sealed log should verify without problems."
    return found


def covered_by(conn: psycopg.Connection, seal_row: Row) -> list[Row]:
    """The entries inside a seal's transaction range and month."""
    return rows(
        conn,
        "select * from toolsdb.audit_logs where transaction_id >= %s and transaction_id < %s "
        "and date_trunc('month', logged_at at time zone 'UTC')::date = %s order by audit_id",
        (seal_row["first_transaction_id"], seal_row["end_transaction_id"], seal_row["period"]),
    )


def tamper(conn: psycopg.Connection) -> None:
    """Switch off every trigger for the rest of the transaction, as only a superuser can."""
    conn.execute("set local session_replication_role = replica")


def expect_first_problem(conn: psycopg.Connection, problem: str, seal_row: Row) -> Row:
    found = verify(conn)
    assert found, f"audit_verify should report {problem!r} after tampering, but it reports nothing."
    first = found[0]
    assert first["problem"] == problem, f"The first problem should be {problem!r}, but audit_verify reports {found}."
    assert (first["first_transaction_id"], first["end_transaction_id"]) == (
        seal_row["first_transaction_id"],
        seal_row["end_transaction_id"],
    ), (
        f"The first problem should name the tampered seal's range [{seal_row['first_transaction_id']}, "
        f"{seal_row['end_transaction_id']}), but it names [{first['first_transaction_id']}, "
        f"{first['end_transaction_id']})."
    )
    return first


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


def strand(conn: psycopg.Connection, age: str, action: str = "stranded") -> Row:
    """As superuser, write an entry dated now() + age: it lands wherever its month lives (the default partition
    when that month has none); returns it with the partition it landed in."""
    return one(
        conn,
        "insert into toolsdb.audit_logs (action, entity_type, entity_id, logged_at) "
        "values (%s, 'test', %s, now() + %s::interval) returning *, tableoid::regclass::text as part",
        (action, age, age),
    )


def sealed_clone(request: pytest.FixtureRequest, pg: Pg, template: str) -> Iterator[Clone]:
    """Body of each audit test module's ``committed`` fixture: one clone of
    the migrated template per module and major, with one committed and
    sealed audit entry; tests only see it through ``tx`` (conftest.py)."""
    with module_clone(request, pg, template) as name:
        with psycopg.connect(pg.conninfo(name)) as connection:
            event(connection, "fixture_entry")
            assert seal(connection) > 0, "The module fixture should have sealed its entry."
        yield Clone(name)
