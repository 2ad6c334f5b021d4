"""The audit log's explicit events (toolsdb.audit_event and the view
toolsdb.audit_trail_events), its append-only guards for everyone, and the
redaction of secrets (docs/security.md).

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

import secrets

import psycopg
import pytest
from psycopg import errors, sql

from .audithelpers import (
    column,
    entries,
    event,
    expect_error,
    new_agent,
    one,
    partition_of,
    rows,
    scalar,
    sealed_clone,
)

committed = pytest.fixture(sealed_clone, scope="module")


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
        constraint="audit_name_is_valid",
    )
    # The log's rules are domains (docs/security.md, "What capture costs"): the error names the domain.
    assert (caught.diag.schema_name, caught.diag.datatype_name) == ("toolsdb", "audit_name"), (
        f"The violation should name the audit log's domain toolsdb.audit_name, but it names "
        f"{caught.diag.schema_name}.{caught.diag.datatype_name}."
    )


def test_a_session_id_longer_than_200_characters_is_rejected_by_its_domain(tx: psycopg.Connection) -> None:
    tx.execute("select set_config('toolsdb.session_id', %s, true)", ("s" * 201,))
    caught = expect_error(
        tx,
        errors.CheckViolation,
        lambda: tx.execute("select toolsdb.audit_event('permission_changed')"),
        constraint="audit_text_200_length_is_valid",
    )
    assert caught.diag.datatype_name == "audit_text_200", (
        f"The violation should name the domain toolsdb.audit_text_200, but it names {caught.diag.datatype_name}."
    )
    tx.execute("select set_config('toolsdb.session_id', %s, true)", ("s" * 200,))
    audit_id = scalar(tx, "select toolsdb.audit_event('permission_changed')")
    kept = scalar(tx, "select session_id from toolsdb.audit_logs where audit_id = %s", (audit_id,))
    assert kept == "s" * 200, f"A session id of 200 characters should be kept as it is, not {kept!r}."


def test_the_log_has_no_table_check(tx: psycopg.Connection) -> None:
    # Every audited write inserts into the log, and PostgreSQL reads back and plans a table's
    # CHECKs at every statement that writes the table: its rules are domains and the capture
    # trigger's (docs/security.md, "What capture costs").
    checks = column(
        tx,
        "select c.conrelid::regclass::text || ': ' || c.conname from pg_catalog.pg_constraint as c"
        " where c.contype = 'c' and c.conrelid in (select 'toolsdb.audit_logs'::regclass"
        " union all select p.relid from pg_catalog.pg_partition_tree('toolsdb.audit_logs') as p)"
        " order by 1",
    )
    assert checks == [], f"toolsdb.audit_logs and its partitions should have no table CHECK, but have {checks}."


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
# No secrets in the log
# ---------------------------------------------------------------------------


def fernet_looking_token() -> str:
    return "gAAAAAB" + secrets.token_urlsafe(90).rstrip("=")


def write_secret_history(conn: psycopg.Connection) -> tuple[str, str]:
    """Set a secret, replace it, delete it; returns both tokens."""
    first, second = fernet_looking_token(), fernet_looking_token()
    conn.execute("select toolsdb.config_set_secret('slack.webhook', %s, '0123456789ab', 'Slack webhook')", (first,))
    conn.execute("select toolsdb.config_set_secret('slack.webhook', %s, '0123456789ab')", (second,))
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
