"""Behaviour of the audit log (docs/security.md) against a real, migrated database.

Covers change capture (toolsdb.audit_table and its triggers), the transaction
context that fills the actor columns, explicit events (toolsdb.audit_event and
the view toolsdb.audit_trail_events), the append-only guards, the monthly
partitions and retention, the seals (toolsdb.audit_seal, toolsdb.audit_verify),
also under concurrent writers, and the redaction of secrets. Everything runs on
each PostgreSQL major of the suite, connected as the superuser ``postgres``.

Isolation, kept cheap (as in test_identity.py):

* ``tx``: tests that never need a committed write run in a transaction that is
  always rolled back, on one clone of the template per module and major. That
  clone holds one committed, sealed entry (so the guards of toolsdb.audit_seals
  have a row to refuse to touch).
* ``conn``: tests of seals need committed transactions (a seal covers finished
  transactions only), so they get a fresh clone of the migrated template.

Every statement that must fail runs in ``conn.transaction()`` (a savepoint
inside ``tx``), so a failure never poisons the statements after it.
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .conftest import Pg

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
        "select toolsdb_private.audit_partition_name(date_trunc('month', (now() + %s::interval) at time zone 'UTC')"
        "::date)",
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


@pytest.fixture(scope="module")
def shared_db(pg: Pg, template: str) -> Iterator[str]:
    """One clone of the migrated template per module and major, with one
    committed and sealed audit entry; tests only see it through ``tx``."""
    with pg.clone(f"audit_{os.getpid()}_{pg.major}", template) as name:
        with psycopg.connect(pg.conninfo(name)) as connection:
            event(connection, "fixture_entry")
            assert seal(connection) > 0, "The module fixture should have sealed its entry."
        yield name


@pytest.fixture(scope="module")
def shared_conn(pg: Pg, shared_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg.conninfo(shared_db)) as connection:
        yield connection


@pytest.fixture
def tx(shared_conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """A connection to the shared module database inside a transaction that is
    always rolled back. Tests that must commit use ``conn`` (a fresh clone)."""
    with shared_conn.transaction(force_rollback=True):
        yield shared_conn


# ---------------------------------------------------------------------------
# Change capture (toolsdb.audit_table)
# ---------------------------------------------------------------------------


def test_insert_records_the_whole_new_row(tx: psycopg.Connection) -> None:
    agent = new_agent(tx, description="writes code")
    found = entries(tx, "agents", str(agent["agent_id"]))
    assert [e["action"] for e in found] == ["insert"], (
        f"Inserting an agent should leave exactly one 'insert' entry with entity_type 'agents' and entity_id its "
        f"agent_id, but found {found}."
    )
    whole = as_json(tx, "agents", "agent_id", agent["agent_id"])
    assert found[0]["new_values"] == whole, (
        f"An insert should record the whole new row in new_values, but it recorded {found[0]['new_values']} "
        f"instead of {whole}."
    )
    assert found[0]["old_values"] is None, f"An insert should have no old_values, but it has {found[0]['old_values']}."


def test_update_records_only_the_changed_columns_on_both_sides(tx: psycopg.Connection) -> None:
    agent = new_agent(tx)
    tx.execute("update toolsdb.agents set description = 'reviews code' where agent_id = %s", (agent["agent_id"],))
    found = entries(tx, "agents", str(agent["agent_id"]))
    assert [e["action"] for e in found] == ["insert", "update"], (
        f"An insert then an update of an agent should leave an 'insert' then an 'update' entry, but found {found}."
    )
    change = found[1]
    assert set(change["old_values"]) == set(change["new_values"]) == {"description", "updated_at"}, (
        f"An update of description should record only the changed columns (description and updated_at, which the "
        f"timestamps trigger moves) on both sides, but it recorded old {change['old_values']} and new "
        f"{change['new_values']}."
    )
    assert (change["old_values"]["description"], change["new_values"]["description"]) == (None, "reviews code"), (
        f"The update entry should hold the old description (null) and the new one, but it holds "
        f"{change['old_values']['description']!r} and {change['new_values']['description']!r}."
    )
    stamps = tx.execute(
        "select (%s::jsonb ->> 'updated_at')::timestamptz, (%s::jsonb ->> 'updated_at')::timestamptz",
        (Jsonb(change["old_values"]), Jsonb(change["new_values"])),
    ).fetchone()
    updated_at = scalar(tx, "select updated_at from toolsdb.agents where agent_id = %s", (agent["agent_id"],))
    assert stamps == (agent["updated_at"], updated_at), (
        f"The update entry should hold the row's updated_at before ({agent['updated_at']}) and after ({updated_at}), "
        f"but it holds {stamps}."
    )


def test_delete_records_the_whole_old_row(tx: psycopg.Connection) -> None:
    agent = new_agent(tx, tags=["a", "b"])
    whole = as_json(tx, "agents", "agent_id", agent["agent_id"])
    tx.execute("delete from toolsdb.agents where agent_id = %s", (agent["agent_id"],))
    found = entries(tx, "agents", str(agent["agent_id"]))
    assert [e["action"] for e in found] == ["insert", "delete"], (
        f"An insert then a delete of an agent should leave an 'insert' then a 'delete' entry, but found {found}."
    )
    assert (found[1]["old_values"], found[1]["new_values"]) == (whole, None), (
        f"A delete should record the whole old row in old_values and no new_values, but it recorded old "
        f"{found[1]['old_values']} and new {found[1]['new_values']} (the row was {whole})."
    )


def test_truncate_records_one_statement_entry(tx: psycopg.Connection) -> None:
    before = scalar(tx, "select coalesce(max(audit_id), 0) from toolsdb.audit_logs")
    tx.execute("truncate toolsdb.agent_mcp_servers")
    found = rows(tx, "select * from toolsdb.audit_logs where audit_id > %s order by audit_id", (before,))
    assert [(e["action"], e["entity_type"], e["entity_id"]) for e in found] == [
        ("truncate", "agent_mcp_servers", None)
    ], f"TRUNCATE of an audited table should leave one 'truncate' entry naming the table, but found {found}."


def test_composite_key_is_recorded_as_a_json_object(tx: psycopg.Connection) -> None:
    agent, server = new_agent(tx), new_server(tx)
    tx.execute(
        "insert into toolsdb.agent_mcp_servers (agent_id, mcp_server_id) values (%s, %s)",
        (agent["agent_id"], server["mcp_server_id"]),
    )
    entity_id = one(tx, "select * from toolsdb.audit_logs where entity_type = 'agent_mcp_servers'")["entity_id"]
    as_object = scalar(tx, "select %s::jsonb", (entity_id,))
    assert as_object == {"agent_id": str(agent["agent_id"]), "mcp_server_id": str(server["mcp_server_id"])}, (
        f"The entity_id of a row with a composite primary key should be a JSON object of its key columns, but it "
        f"is {entity_id!r}."
    )


def test_audit_table_twice_keeps_one_set_of_triggers_and_one_entry_per_change(tx: psycopg.Connection) -> None:
    tx.execute("select toolsdb.audit_table('toolsdb.agents')")
    tx.execute("select toolsdb.audit_table('toolsdb.agents')")
    triggers = column(
        tx,
        "select tgname::text from pg_catalog.pg_trigger where tgrelid = 'toolsdb.agents'::regclass "
        "and tgname like '\\_900\\_audit%%' order by 1",
    )
    assert triggers == ["_900_audit", "_900_audit_truncate"], (
        f"Calling audit_table again should keep exactly the two capture triggers, but toolsdb.agents has {triggers}."
    )
    agent = new_agent(tx)
    found = entries(tx, "agents", str(agent["agent_id"]))
    assert len(found) == 1, f"One insert should still leave exactly one entry, but it left {found}."


def test_audit_table_again_updates_the_redacted_columns(tx: psycopg.Connection) -> None:
    tx.execute("select toolsdb.audit_table('toolsdb.agents', redact => array['description'])")
    agent = new_agent(tx, description="a secret plan")
    tx.execute("update toolsdb.agents set description = 'another plan' where agent_id = %s", (agent["agent_id"],))
    seen = [
        ((e["old_values"] or {}).get("description"), (e["new_values"] or {}).get("description"))
        for e in entries(tx, "agents", str(agent["agent_id"]))
    ]
    assert seen == [(None, "[redacted]"), ("[redacted]", "[redacted]")], (
        f"After audit_table(..., redact => array['description']) the description should read '[redacted]' in "
        f"every captured row, but the entries read {seen}."
    )


def test_audit_table_rejects_a_table_without_primary_key(tx: psycopg.Connection) -> None:
    tx.execute("create temporary table audit_no_key (x integer) on commit drop")
    expect_error(
        tx,
        errors.InvalidTableDefinition,
        lambda: tx.execute("select toolsdb.audit_table('audit_no_key')"),
        contains="no primary key",
    )


def test_audit_table_rejects_an_unknown_redact_column(tx: psycopg.Connection) -> None:
    expect_error(
        tx,
        errors.UndefinedColumn,
        lambda: tx.execute("select toolsdb.audit_table('toolsdb.agents', redact => array['no_such_column'])"),
        contains="no_such_column",
    )


# ---------------------------------------------------------------------------
# Transaction context (toolsdb.* settings)
# ---------------------------------------------------------------------------


def test_context_settings_fill_the_actor_columns(tx: psycopg.Connection) -> None:
    user_id, agent_id = scalar(tx, "select gen_random_uuid()"), scalar(tx, "select gen_random_uuid()")
    set_context(
        tx,
        actor="alice",
        user_id=str(user_id),
        agent_id=str(agent_id),
        session_id="session-42",
        client_addr="203.0.113.7",
        user_agent="toolsdb-tests/1.0",
    )
    agent = new_agent(tx)
    entry = entries(tx, "agents", str(agent["agent_id"]))[0]
    seen = {k: entry[k] for k in ("actor", "actor_user_id", "actor_agent_id", "session_id", "user_agent")}
    expected = {
        "actor": "alice",
        "actor_user_id": user_id,
        "actor_agent_id": agent_id,
        "session_id": "session-42",
        "user_agent": "toolsdb-tests/1.0",
    }
    assert seen == expected, f"The toolsdb.* settings should fill the entry's columns as {expected}, but got {seen}."
    assert str(entry["client_addr"]) == "203.0.113.7", (
        f"toolsdb.client_addr should fill client_addr, but it reads {entry['client_addr']}."
    )


def test_without_context_the_actor_is_the_session_user(tx: psycopg.Connection) -> None:
    session_user = scalar(tx, "select session_user::text")
    tx.execute("set local role toolsdb_owner")
    entry = one(tx, "select * from toolsdb.audit_logs where audit_id = %s", (event(tx),))
    seen = {k: entry[k] for k in ("actor", "db_role", "actor_user_id", "actor_agent_id", "session_id", "user_agent")}
    expected = {
        "actor": session_user,
        "db_role": session_user,
        "actor_user_id": None,
        "actor_agent_id": None,
        "session_id": None,
        "user_agent": None,
    }
    assert seen == expected, (
        f"Without toolsdb.* settings the actor and db_role should be the login role ({session_user}, even under "
        f"set role) and the other context columns null, but the entry reads {seen}."
    )
    assert entry["client_addr"] == scalar(tx, "select inet_client_addr()"), (
        f"Without toolsdb.client_addr the entry should hold the connection's address, but it holds "
        f"{entry['client_addr']}."
    )


@pytest.mark.parametrize(
    ("settings", "expected"), [(("user_id", "agent_id"), "user_id"), (("agent_id",), "agent_id")], ids=str
)
def test_actor_falls_back_to_the_user_then_the_agent(
    tx: psycopg.Connection, settings: tuple[str, ...], expected: str
) -> None:
    ids = {name: str(scalar(tx, "select gen_random_uuid()")) for name in settings}
    set_context(tx, **ids)
    entry = one(tx, "select * from toolsdb.audit_logs where audit_id = %s", (event(tx),))
    assert entry["actor"] == ids[expected], (
        f"Without toolsdb.actor but with {sorted(ids)} set, the actor should be toolsdb.{expected} "
        f"({ids[expected]}), but it is {entry['actor']!r}."
    )


def test_transaction_id_and_logged_at_are_those_of_the_writing_transaction(tx: psycopg.Connection) -> None:
    agent = new_agent(tx)
    entry = entries(tx, "agents", str(agent["agent_id"]))[0]
    xid, now = tx.execute("select pg_current_xact_id()::text, now()").fetchone()
    assert (str(entry["transaction_id"]), entry["logged_at"]) == (xid, now), (
        f"An entry should carry its transaction's pg_current_xact_id() ({xid}) and now() ({now}), but it carries "
        f"{entry['transaction_id']} and {entry['logged_at']}."
    )


@pytest.mark.parametrize("write", ["captured change", "explicit event"])
def test_a_malformed_user_id_setting_is_an_error_naming_it(tx: psycopg.Connection, write: str) -> None:
    def statement() -> None:
        set_context(tx, user_id="not-a-uuid")
        if write == "captured change":
            new_agent(tx)
        else:
            event(tx)

    expect_error(tx, errors.InvalidParameterValue, statement, contains="toolsdb.user_id")


# ---------------------------------------------------------------------------
# Explicit events (toolsdb.audit_event, toolsdb.audit_trail_events)
# ---------------------------------------------------------------------------


def test_audit_event_returns_the_id_of_its_entry(tx: psycopg.Connection) -> None:
    audit_id = scalar(
        tx, "select toolsdb.audit_event('permission_changed', 'permission', 'x', '{\"granted\": \"write\"}')"
    )
    entry = one(tx, "select * from toolsdb.audit_logs where audit_id = %s", (audit_id,))
    seen = {k: entry[k] for k in ("action", "entity_type", "entity_id", "details", "old_values", "new_values")}
    expected = {
        "action": "permission_changed",
        "entity_type": "permission",
        "entity_id": "x",
        "details": {"granted": "write"},
        "old_values": None,
        "new_values": None,
    }
    assert seen == expected, f"audit_event should return the id of an entry reading {expected}, but it reads {seen}."


def test_audit_trail_events_lists_explicit_events_only(tx: psycopg.Connection) -> None:
    before = scalar(tx, "select coalesce(max(audit_id), 0) from toolsdb.audit_logs")
    audit_id = scalar(tx, "select toolsdb.audit_event('permission_changed', 'permission', 'x')")
    agent = new_agent(tx)
    tx.execute("update toolsdb.agents set description = 'd' where agent_id = %s", (agent["agent_id"],))
    tx.execute("delete from toolsdb.agents where agent_id = %s", (agent["agent_id"],))
    tx.execute("truncate toolsdb.agent_mcp_servers")
    listed = rows(
        tx,
        "select audit_id, event_type from toolsdb.audit_trail_events where audit_id > %s order by audit_id",
        (before,),
    )
    assert listed == [{"audit_id": audit_id, "event_type": "permission_changed"}], (
        f"audit_trail_events should list the explicit event and none of the captured changes (insert, update, "
        f"delete, truncate), but it lists {listed}."
    )


def test_an_invalid_event_name_is_rejected(tx: psycopg.Connection) -> None:
    caught = expect_error(
        tx,
        errors.CheckViolation,
        lambda: tx.execute("select toolsdb.audit_event('Bad Name')"),
        constraint="action_is_valid",
    )
    assert (caught.diag.table_name or "").startswith("audit_logs"), (
        f"The violation should be reported on the audit log (or one of its partitions), but it names "
        f"{caught.diag.table_name}."
    )


# ---------------------------------------------------------------------------
# Append-only, for everyone
# ---------------------------------------------------------------------------


APPEND_ONLY_STATEMENTS = {
    "update": "update {table} set {column} = {column}",
    "delete": "delete from {table}",
    "truncate": "truncate {table}",
}


@pytest.mark.parametrize("role", ["superuser", "toolsdb_owner"])
@pytest.mark.parametrize("statement", sorted(APPEND_ONLY_STATEMENTS))
@pytest.mark.parametrize("target", ["audit_logs", "this month's partition", "audit_seals"])
def test_the_log_and_its_seals_are_append_only(tx: psycopg.Connection, target: str, statement: str, role: str) -> None:
    event(tx)  # the log has a row of this transaction too; the seals have the fixture's
    table, key, col = {
        "audit_logs": ("audit_logs", "audit_id", "actor"),
        "this month's partition": (partition_of(tx, "0 days"), "audit_id", "actor"),
        "audit_seals": ("audit_seals", "seal_id", "sealed_by"),
    }[target]
    contents = sql.SQL("select to_jsonb(t)::text from toolsdb.{} as t order by t.{}").format(
        sql.Identifier(table), sql.Identifier(key)
    )
    before = column(tx, contents.as_string(tx))
    assert before, f"toolsdb.{table} should hold rows for the guard to protect."
    query = sql.SQL(APPEND_ONLY_STATEMENTS[statement]).format(
        table=sql.SQL("toolsdb.") + sql.Identifier(table), column=sql.Identifier(col)
    )

    def attempt() -> None:
        if role != "superuser":
            tx.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
        tx.execute(query)

    expect_error(tx, errors.InsufficientPrivilege, attempt, contains="append-only")
    assert column(tx, contents.as_string(tx)) == before, f"A refused {statement} should leave toolsdb.{table} as is."


# ---------------------------------------------------------------------------
# Partitions
# ---------------------------------------------------------------------------


def test_migrate_creates_this_month_and_the_next_three(tx: psycopg.Connection) -> None:
    expected = column(
        tx,
        "select toolsdb_private.audit_partition_name("
        "date_trunc('month', (now() at time zone 'UTC') + make_interval(months => i))::date) "
        "from generate_series(0, 3) as i",
    )
    missing = sorted(set(expected) - set(monthly_partitions(tx)))
    assert missing == [], f"After migrate, this month's and the next three months' partitions should exist: {missing}."


def test_every_partition_has_the_append_only_guards(tx: psycopg.Connection) -> None:
    unguarded = column(
        tx,
        """
        select c.relname::text
        from pg_catalog.pg_inherits as i
        join pg_catalog.pg_class as c on c.oid = i.inhrelid
        where i.inhparent = 'toolsdb.audit_logs'::regclass
          and 2 <> (
              select count(*) from pg_catalog.pg_trigger as t
              where t.tgrelid = c.oid
                and t.tgname in ('_010_append_only', '_010_append_only_truncate')
                and t.tgfoid = 'toolsdb_private.tg__append_only()'::regprocedure
                and t.tgenabled <> 'D'
          )
        order by 1
        """,
    )
    assert unguarded == [], (
        f"Every partition (the default one included) should have the row guard and its own truncate guard, but "
        f"these lack one: {unguarded}."
    )


def test_audit_create_partitions_is_idempotent(tx: psycopg.Connection) -> None:
    first = scalar(tx, "select toolsdb.audit_create_partitions(5)")
    second = scalar(tx, "select toolsdb.audit_create_partitions(5)")
    third = scalar(tx, "select toolsdb.audit_create_partitions(3)")
    assert (first, second, third) == (2, 0, 0), (
        f"After migrate (months 0-3), audit_create_partitions(5) should create 2 partitions, then nothing when run "
        f"again, nor with 3; it created {first}, {second} and {third}."
    )
    assert partition_of(tx, "5 months") in monthly_partitions(tx), "The partition five months ahead should exist."


@pytest.mark.parametrize("months_ahead", [-1, 121, None])
def test_months_ahead_out_of_range_is_rejected(tx: psycopg.Connection, months_ahead: int | None) -> None:
    expect_error(
        tx,
        errors.InvalidParameterValue,
        lambda: tx.execute("select toolsdb.audit_create_partitions(%s::integer)", (months_ahead,)),
        contains="months_ahead",
    )


def strand(conn: psycopg.Connection, age: str, action: str = "stranded") -> Row:
    """As superuser, write an entry dated now() + age: it lands wherever its month lives (the default partition
    when that month has none); returns it with the partition it landed in."""
    return one(
        conn,
        "insert into toolsdb.audit_logs (action, entity_type, entity_id, logged_at) "
        "values (%s, 'test', %s, now() + %s::interval) returning *, tableoid::regclass::text as part",
        (action, age, age),
    )


def test_entries_in_the_default_partition_move_to_their_month(tx: psycopg.Connection) -> None:
    entry = strand(tx, "2 years")
    assert entry["part"] == "toolsdb.audit_logs_default", (
        f"An entry two years ahead should land in the default partition, but it landed in {entry['part']}."
    )
    created = scalar(tx, "select toolsdb.audit_create_partitions(3)")
    moved = one(
        tx,
        "select *, tableoid::regclass::text as part from toolsdb.audit_logs where audit_id = %s",
        (entry["audit_id"],),
    )
    month = partition_of(tx, "2 years")
    assert (created, moved["part"]) == (1, f"toolsdb.{month}"), (
        f"audit_create_partitions should create the stranded entry's month ({month}) and move it there, but it "
        f"created {created} partitions and the entry is in {moved['part']}."
    )
    assert {**moved, "part": None} == {**entry, "part": None}, (
        f"A moved entry should keep every column (audit_id, transaction_id, ...), but {entry} became {moved}."
    )
    assert scalar(tx, "select count(*) from toolsdb.audit_logs_default") == 0, "The default partition should be empty."


def test_the_default_partition_is_still_guarded_after_a_move(tx: psycopg.Connection) -> None:
    strand(tx, "2 years")
    tx.execute("select toolsdb.audit_create_partitions(3)")
    entry = strand(tx, "3 years")
    assert entry["part"] == "toolsdb.audit_logs_default", "An entry three years ahead should land in the default."
    for statement in ("update toolsdb.audit_logs_default set actor = 'x'", "delete from toolsdb.audit_logs_default"):
        expect_error(tx, errors.InsufficientPrivilege, lambda s=statement: tx.execute(s), contains="append-only")
    expect_error(
        tx,
        errors.InsufficientPrivilege,
        lambda: tx.execute("truncate toolsdb.audit_logs_default"),
        contains="append-only",
    )


def test_moving_sealed_entries_keeps_the_seals_valid(conn: psycopg.Connection) -> None:
    event(conn)
    strand(conn, "2 years")
    assert seal(conn) == 2, "Entries of two months should be sealed as two seal rows."
    assert scalar(conn, "select toolsdb.audit_create_partitions(3)") == 1, "The stranded month should be created."
    conn.commit()
    assert verify(conn) == [], "Moving sealed entries out of the default partition should keep the seals valid."


# ---------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------

# Ages of old entries, relative to now(), and whether a 13-month retention
# drops their month: the month containing now() - 13 months ends after the
# cutoff (kept), the month before it ended before the cutoff (dropped).
OLD_ENTRIES = {"20 months": True, "14 months": True, "13 months": False, "12 months": False}


def add_old_entries(conn: psycopg.Connection) -> dict[str, Row]:
    """Entries dated in the past (they land in the default partition), moved into
    their own months by audit_create_partitions; returns them by age, with their partition."""
    old = {}
    for age in OLD_ENTRIES:
        old[age] = strand(conn, f"-{age}", "old_entry")
        old[age]["part"] = partition_of(conn, f"-{age}")
    assert scalar(conn, "select toolsdb.audit_create_partitions()") == len(OLD_ENTRIES), (
        "audit_create_partitions should have created one partition per old month."
    )
    return old


def test_retention_drops_only_months_that_ended_before_the_cutoff(tx: psycopg.Connection) -> None:
    old = add_old_entries(tx)
    before = monthly_partitions(tx)
    dropped = scalar(tx, "select toolsdb.audit_apply_retention(interval '13 months')")
    expected_gone = sorted(old[age]["part"] for age, gone in OLD_ENTRIES.items() if gone)
    gone = sorted(set(before) - set(monthly_partitions(tx)))
    assert (dropped, gone) == (len(expected_gone), expected_gone), (
        f"A 13-month retention should drop only the months that ended before now() - 13 months ({expected_gone}) and "
        f"return their count, but it returned {dropped} and dropped {gone}."
    )


def test_retention_never_deletes_entries_of_kept_months(tx: psycopg.Connection) -> None:
    old = add_old_entries(tx)
    recent = event(tx)
    tx.execute("select toolsdb.audit_apply_retention(interval '13 months')")
    kept = [old[age]["audit_id"] for age, gone in OLD_ENTRIES.items() if not gone] + [recent]
    present = column(tx, "select audit_id from toolsdb.audit_logs where audit_id = any(%s) order by 1", (kept,))
    assert present == sorted(kept), (
        f"Retention should keep every entry of the months it keeps (this month's too): {sorted(kept)}, but only "
        f"{present} are left."
    )


def test_retention_records_each_dropped_month_in_audit_prunes(tx: psycopg.Connection) -> None:
    old = add_old_entries(tx)
    tx.execute("select toolsdb.audit_apply_retention(interval '13 months')")
    prunes = rows(tx, "select period, partition_name, row_count, max_age::text from toolsdb.audit_prunes order by 1")
    expected = [
        {
            "period": scalar(tx, "select date_trunc('month', %s at time zone 'UTC')::date", (old[age]["logged_at"],)),
            "partition_name": old[age]["part"],
            "row_count": 1,
            "max_age": "1 year 1 mon",
        }
        for age in sorted(OLD_ENTRIES, key=lambda a: old[a]["logged_at"])
        if OLD_ENTRIES[age]
    ]
    assert prunes == expected, f"audit_prunes should record each dropped month as {expected}, but it holds {prunes}."


def test_retention_leaves_one_event_naming_the_dropped_partitions(tx: psycopg.Connection) -> None:
    old = add_old_entries(tx)
    tx.execute("select toolsdb.audit_apply_retention(interval '13 months')")
    found = rows(tx, "select * from toolsdb.audit_logs where action = 'audit_retention'")
    expected = sorted(old[age]["part"] for age, gone in OLD_ENTRIES.items() if gone)
    assert len(found) == 1, f"Retention should leave exactly one audit_retention event, but left {found}."
    details = found[0]["details"]
    assert (sorted(details.get("dropped_partitions", [])), details.get("dropped_rows")) == (expected, len(expected)), (
        f"The audit_retention event should name the dropped partitions {expected} and their row count, but its "
        f"details are {details}."
    )


def test_retention_age_comes_from_config(tx: psycopg.Connection) -> None:
    old = add_old_entries(tx)
    tx.execute("select toolsdb.config_set('audit.retention', '\"18 months\"')")
    before = monthly_partitions(tx)
    dropped = scalar(tx, "select toolsdb.audit_apply_retention()")
    gone = sorted(set(before) - set(monthly_partitions(tx)))
    assert (dropped, gone) == (1, [old["20 months"]["part"]]), (
        f"With audit.retention = '18 months' in config, retention should drop only the month 20 months ago "
        f"({old['20 months']['part']}), but it returned {dropped} and dropped {gone}."
    )


@pytest.mark.parametrize("age", ["29 days", "1 week", "0 seconds", "-13 months"])
def test_retention_under_one_month_is_rejected(tx: psycopg.Connection, age: str) -> None:
    before = monthly_partitions(tx)
    expect_error(
        tx,
        errors.InvalidParameterValue,
        lambda: tx.execute("select toolsdb.audit_apply_retention(%s::interval)", (age,)),
        contains="at least one month",
    )
    assert monthly_partitions(tx) == before, f"A refused retention of {age} should drop nothing."


def test_verify_passes_after_retention_drops_a_sealed_month(conn: psycopg.Connection) -> None:
    strand(conn, "-20 months", "old_entry")
    conn.execute("select toolsdb.audit_create_partitions()")
    event(conn)
    seal(conn)
    old_period = scalar(conn, "select date_trunc('month', (now() - interval '20 months') at time zone 'UTC')::date")
    assert old_period in {s["period"] for s in seals(conn)}, "The old month should have been sealed."
    assert scalar(conn, "select toolsdb.audit_apply_retention(interval '13 months')") == 1, (
        "Retention should drop the one old month."
    )
    conn.commit()
    found = verify(conn)
    assert found == [], f"After retention drops a sealed month, audit_verify should pass, but it reports {found}."


# ---------------------------------------------------------------------------
# Seals and verification
# ---------------------------------------------------------------------------


def test_seal_then_verify_is_clean(conn: psycopg.Connection) -> None:
    for _ in range(3):
        new_agent(conn)
    event(conn)
    sealed = seal(conn)
    assert sealed > 0, f"Sealing committed entries should write at least one seal row, but it wrote {sealed}."
    found = verify(conn)
    assert found == [], f"audit_verify right after sealing should report nothing, but it reports {found}."


def test_sealing_again_with_nothing_new_returns_zero(conn: psycopg.Connection) -> None:
    event(conn)
    assert seal(conn) > 0, "The first seal should write a seal row."
    count = len(seals(conn))
    again = seal(conn)
    assert (again, len(seals(conn))) == (0, count), (
        f"Sealing again with nothing new should return 0 and write nothing, but it returned {again} and there are "
        f"now {len(seals(conn))} seals instead of {count}."
    )


def test_seals_chain_their_hashes(conn: psycopg.Connection) -> None:
    sealed_log(conn)
    event(conn)
    strand(conn, "1 month")  # a second month in the same batch: two seal rows share one range
    assert seal(conn) == 2, "A batch with entries of two months should write two seal rows."
    chain = rows(
        conn,
        "select s.*, toolsdb_private.audit_seal_hash(s.previous_hash, s.period, s.first_transaction_id, "
        "s.end_transaction_id, s.row_count, s.rows_hash) as recomputed from toolsdb.audit_seals as s order by seal_id",
    )
    assert chain[0]["previous_hash"] is None, "The first seal should have no previous hash."
    for prior, seal_row in itertools.pairwise(chain):
        assert seal_row["previous_hash"] == prior["seal_hash"], (
            f"Seal {seal_row['seal_id']}'s previous_hash should be seal {prior['seal_id']}'s seal_hash."
        )
        assert seal_row["first_transaction_id"] in (prior["end_transaction_id"], prior["first_transaction_id"]), (
            f"Seal {seal_row['seal_id']} should start where the previous batch ended (or share its batch)."
        )
    assert all(s["recomputed"] == s["seal_hash"] for s in chain), "Every seal_hash should hash its own fields."
    assert verify(conn) == [], "The chained seals should verify."


def test_seals_cover_every_entry_under_concurrent_writers(pg: Pg, db: str, conn: psycopg.Connection) -> None:
    """8 writers on connections of their own run 50 short transactions each (captured inserts and updates,
    explicit events) while two sealers call audit_seal() in a loop: the seals must end up covering every entry
    exactly once and verify. (Sealing with the snapshot's xmax instead of its xmin, or without the sealers' lock,
    makes this test fail.)"""
    writers, transactions, sealers = 8, 50, 2
    start = threading.Barrier(writers + sealers, timeout=60)
    writing = threading.Event()
    failures: list[BaseException] = []
    seal_calls = [0]

    def write(n: int) -> None:
        try:
            with psycopg.connect(pg.conninfo(db), autocommit=True) as c:
                start.wait()
                for i in range(transactions):
                    with c.transaction():
                        set_context(c, actor=f"writer-{n}", session_id=f"s{n}")
                        c.execute("insert into toolsdb.agents (name, agent_type) values (%s, 'coding')", (f"w{n}-{i}",))
                        if i % 5 == 0:
                            c.execute("update toolsdb.agents set description = 'busy' where name = %s", (f"w{n}-{i}",))
                            c.execute("select toolsdb.audit_event('writer_progress', 'writer', %s)", (f"{n}-{i}",))
        except BaseException as exc:
            failures.append(exc)
            start.abort()

    def sealer() -> None:
        try:
            with psycopg.connect(pg.conninfo(db), autocommit=True) as c:
                start.wait()
                while writing.is_set():
                    c.execute("select toolsdb.audit_seal()")
                    seal_calls[0] += 1
        except BaseException as exc:
            failures.append(exc)

    writing.set()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    sealing = [threading.Thread(target=sealer) for _ in range(sealers)]
    for thread in [*threads, *sealing]:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    writing.clear()
    for thread in sealing:
        thread.join(timeout=120)
    assert failures == [], f"Writers and sealers should run without errors, but got {failures}."
    assert not any(t.is_alive() for t in [*threads, *sealing]), "Every thread should have finished."
    sealed_while_writing = len(seals(conn))
    conn.commit()
    seal(conn)

    expected = writers * transactions + writers * (transactions // 5) * 2
    total = scalar(conn, "select count(*) from toolsdb.audit_logs")
    assert total == expected, f"The writers should have left {expected} entries, but the log holds {total}."
    assert sealed_while_writing >= 2, (
        f"The sealers should have sealed several times while the writers wrote, but they ran {seal_calls[0]} times "
        f"and wrote {sealed_while_writing} seal rows."
    )
    found = verify(conn)
    assert found == [], f"audit_verify should pass after concurrent writes and seals, but it reports {found[:5]}."
    covered = scalar(
        conn,
        "select sum(row_count) from toolsdb.audit_seals as s "
        "where not exists (select from toolsdb.audit_prunes as p where p.period = s.period)",
    )
    assert covered == total, f"The seals should cover exactly every entry ({total}), but they count {covered}."
    not_once = scalar(
        conn,
        """
        select count(*) from toolsdb.audit_logs as l
        where 1 <> (
            select count(*) from toolsdb.audit_seals as s
            where l.transaction_id >= s.first_transaction_id and l.transaction_id < s.end_transaction_id
              and s.period = date_trunc('month', l.logged_at at time zone 'UTC')::date
        )
        """,
    )
    assert not_once == 0, f"Every entry should lie in exactly one seal, but {not_once} do not."


def test_verify_reports_a_changed_sealed_entry(conn: psycopg.Connection) -> None:
    last = sealed_log(conn)[-1]
    target = covered_by(conn, last)[0]
    tamper(conn)
    conn.execute("update toolsdb.audit_logs set actor = 'mallory' where audit_id = %s", (target["audit_id"],))
    expect_first_problem(conn, "sealed entries changed", last)


def test_verify_reports_a_deleted_sealed_entry(conn: psycopg.Connection) -> None:
    last = sealed_log(conn)[-1]
    target = covered_by(conn, last)[0]
    tamper(conn)
    conn.execute("delete from toolsdb.audit_logs where audit_id = %s", (target["audit_id"],))
    first = expect_first_problem(conn, "sealed entries missing", last)
    assert (first["sealed_rows"], first["found_rows"]) == (last["row_count"], last["row_count"] - 1), (
        f"The report should count {last['row_count']} sealed rows and one fewer found, but it reads {first}."
    )


@pytest.mark.parametrize(
    ("month", "problem"),
    [("0 days", "entries added to a sealed range"), ("1 month", "entries in a sealed range that no seal covers")],
    ids=["sealed month", "other month"],
)
def test_verify_reports_an_entry_added_to_a_sealed_range(conn: psycopg.Connection, month: str, problem: str) -> None:
    last = sealed_log(conn)[-1]
    target = covered_by(conn, last)[0]
    conn.execute(
        "insert into toolsdb.audit_logs (audit_id, action, transaction_id, logged_at) overriding system value "
        "values ((select max(audit_id) + 1000 from toolsdb.audit_logs), 'forged', %s, %s + %s::interval)",
        (target["transaction_id"], target["logged_at"], month),
    )
    expect_first_problem(conn, problem, last)


def test_verify_reports_a_tampered_seal(conn: psycopg.Connection) -> None:
    first_seal = sealed_log(conn)[0]
    tamper(conn)
    conn.execute(
        "update toolsdb.audit_seals set seal_hash = sha256('forged'::bytea) where seal_id = %s",
        (first_seal["seal_id"],),
    )
    expect_first_problem(conn, "seal hash does not match its fields", first_seal)


def test_verify_reports_a_deleted_seal(conn: psycopg.Connection) -> None:
    first_seal, second_seal = sealed_log(conn)[:2]
    tamper(conn)
    conn.execute("delete from toolsdb.audit_seals where seal_id = %s", (first_seal["seal_id"],))
    expect_first_problem(conn, "seal chain broken: previous_hash differs", second_seal)


def test_verify_ignores_entries_not_sealed_yet(conn: psycopg.Connection) -> None:
    sealed_log(conn)
    agent = new_agent(conn)
    conn.commit()
    assert verify(conn) == [], "Entries written after the last seal should not be flagged."
    tamper(conn)
    conn.execute("update toolsdb.audit_logs set actor = 'mallory' where entity_id = %s", (str(agent["agent_id"]),))
    found = verify(conn)
    assert found == [], f"Seals do not cover entries written after them, so changing one is not flagged: {found}."


# ---------------------------------------------------------------------------
# No secrets in the log
# ---------------------------------------------------------------------------


def fernet_looking_token() -> str:
    return "gAAAAAB" + secrets.token_urlsafe(90).rstrip("=")


def write_secret_history(conn: psycopg.Connection) -> tuple[str, str]:
    """Set a secret, replace it, delete it; returns both tokens."""
    first, second = fernet_looking_token(), fernet_looking_token()
    conn.execute("select toolsdb.config_set_secret('slack.webhook', %s, 'Slack webhook')", (first,))
    conn.execute("select toolsdb.config_set_secret('slack.webhook', %s)", (second,))
    assert scalar(conn, "select toolsdb.config_unset('slack.webhook')") is True, "The secret should be removed."
    return first, second


def test_secret_tokens_appear_nowhere_in_the_log(tx: psycopg.Connection) -> None:
    tokens = write_secret_history(tx)
    assert len(entries(tx, "config", "slack.webhook")) == 3, "Setting, replacing, deleting should leave 3 entries."
    for token in tokens:
        leaks = column(
            tx,
            "select audit_id from toolsdb.audit_logs as l where strpos(to_jsonb(l)::text, %s) > 0",
            (token,),
        )
        assert leaks == [], f"A secret token should appear in no audit entry, but it appears in {leaks}."


def test_secret_value_reads_redacted_in_captured_rows(tx: psycopg.Connection) -> None:
    write_secret_history(tx)
    found = entries(tx, "config", "slack.webhook")
    seen = [
        (e["action"], (e["old_values"] or {}).get("secret_value"), (e["new_values"] or {}).get("secret_value"))
        for e in found
    ]
    assert seen == [
        ("insert", None, "[redacted]"),
        ("update", "[redacted]", "[redacted]"),
        ("delete", "[redacted]", None),
    ], f"secret_value should read '[redacted]' wherever a captured row holds it, but the entries read {seen}."
