"""Change capture of the audit log (docs/security.md): toolsdb.audit_table
and its triggers, and the transaction context (toolsdb.* settings) that
fills the actor columns.

Everything runs on each PostgreSQL major of the suite, connected as the
superuser ``postgres``. Isolation, kept cheap: tests that never need a
committed write run in ``tx``, a transaction that is always rolled back, on
one clone of the template per module and major holding one committed,
sealed entry (so the guards of toolsdb.audit_seals have a row to refuse to
touch); tests that need committed transactions get a fresh clone
(``conn``). Every statement that must fail runs in ``conn.transaction()``
(a savepoint inside ``tx``), so a failure never poisons the statements
after it.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from .audithelpers import (
    as_json,
    column,
    entries,
    event,
    expect_error,
    new_agent,
    new_server,
    one,
    rows,
    scalar,
    sealed_clone,
    set_context,
)

committed = pytest.fixture(sealed_clone, scope="module")


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


def test_a_capture_trigger_made_by_hand_with_a_missing_key_names_the_rule_and_writes_nothing(
    tx: psycopg.Connection,
) -> None:
    # The rule "a captured change names its entity" is the trigger's, not a table CHECK of the
    # log (docs/security.md, "What capture costs"): audit_table() always names the primary key.
    tx.execute("create temporary table audit_by_hand (id integer primary key, note text) on commit drop")
    tx.execute(
        "create trigger _900_audit after insert on audit_by_hand"
        " for each row execute function toolsdb_private.tg__audit('no_such_column', '')"
    )
    before = scalar(tx, "select coalesce(max(audit_id), 0) from toolsdb.audit_logs")
    expect_error(
        tx,
        errors.CheckViolation,
        lambda: tx.execute("insert into audit_by_hand (id, note) values (1, 'x')"),
        contains="names no entity",
        constraint="captured_change_names_its_entity",
    )
    left = scalar(tx, "select count(*) from audit_by_hand") + scalar(
        tx, "select count(*) from toolsdb.audit_logs where audit_id > %s", (before,)
    )
    assert left == 0, f"The refused insert should leave neither the row nor an entry, but {left} rows are there."


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
