"""The group roles made by the bootstrap, and the grants of repeatable/99_grants.sql,
exercised by switching roles: what is allowed and what is denied."""

from __future__ import annotations

import psycopg
import pytest


def as_role(conn: psycopg.Connection, role: str) -> None:
    conn.execute(f"set local role {role}")


def test_the_bootstrap_creates_the_five_group_roles_without_login(conn: psycopg.Connection) -> None:
    roles = conn.execute(
        "select rolname, rolcanlogin from pg_roles where rolname like 'toolsdb\\_%' order by 1"
    ).fetchall()
    assert roles == [
        ("toolsdb_app", False),
        ("toolsdb_owner", False),
        ("toolsdb_readonly", False),
        ("toolsdb_validator", False),
        ("toolsdb_worker", False),
    ], "the group roles are NOLOGIN"


def test_the_app_role_writes_and_the_timestamps_trigger_fires_for_it(conn: psycopg.Connection) -> None:
    as_role(conn, "toolsdb_app")
    row = conn.execute(
        "insert into toolsdb.users (username, email, created_at) values ('app-writer', 'app@example.com', "
        "'2000-01-01') returning created_at > '2020-01-01'"
    ).fetchone()
    assert row == (True,), "the app role can insert, and created_at is set by the trigger, not the client"
    conn.execute("update toolsdb.users set display_name = 'App' where username = 'app-writer'")
    conn.execute("delete from toolsdb.users where username = 'app-writer'")


def test_the_readonly_role_reads_but_cannot_write(conn: psycopg.Connection) -> None:
    conn.execute("insert into toolsdb.agents (name, agent_type) values ('roles-reader-probe', 'coding')")
    everything = conn.execute("select count(*) from toolsdb.agents").fetchone()
    as_role(conn, "toolsdb_readonly")
    assert everything[0] >= 1 and conn.execute("select count(*) from toolsdb.agents").fetchone() == everything, (
        "the readonly role should read every agent, the one just added included"
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for table users"):
        conn.execute("insert into toolsdb.users (username, email) values ('nope', 'nope@example.com')")


def test_no_client_role_can_call_the_private_functions(conn: psycopg.Connection) -> None:
    as_role(conn, "toolsdb_app")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for schema toolsdb_private"):
        conn.execute("select toolsdb_private.tg__timestamps()")


def test_isolate_rows_refuses_a_column_it_does_not_isolate_by(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="by project_id or session_id, not owner_id"):
        conn.execute("select toolsdb.isolate_rows('toolsdb.projects', 'owner_id')")


def test_isolate_rows_refuses_a_table_without_that_column(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.UndefinedColumn, match=r"toolsdb\.agents: it has no column project_id"):
        conn.execute("select toolsdb.isolate_rows('toolsdb.agents', 'project_id')")


def test_isolate_rows_twice_leaves_the_same_two_policies(conn: psycopg.Connection) -> None:
    query = (
        "select polname, polcmd, polroles::regrole[]::text, pg_get_expr(polqual, polrelid) from pg_policy"
        " where polrelid = 'toolsdb.tasks'::regclass order by 1"
    )
    before = conn.execute(query).fetchall()
    conn.execute("select toolsdb.isolate_rows('toolsdb.tasks', 'project_id')")
    assert conn.execute(query).fetchall() == before
    assert [row[0] for row in before] == ["project_isolation", "readonly_reads_all"]


def test_act_as_session_sets_the_session_for_the_transaction_only(conn: psycopg.Connection) -> None:
    """toolsdb.act_as_session() is SET LOCAL from a function (what Citus passes
    on to the workers): the application sees that session's rows, the value is
    taken as it is (a quote in it runs nothing), null unsets it, and the next
    transaction starts without it."""
    for sid in ("act-a", "act-b"):
        conn.execute(
            "select toolsdb.hook_ingest(%s::jsonb)", (f'{{"session_id": "{sid}", "hook_event_name": "Stop"}}',)
        )
    conn.commit()
    as_role(conn, "toolsdb_app")
    conn.execute("select toolsdb.act_as_session('act-a')")
    assert conn.execute("select session_id from toolsdb.sessions").fetchall() == [("act-a",)]
    assert conn.execute("select toolsdb.current_session_id()").fetchone() == ("act-a",)
    conn.execute("select toolsdb.act_as_session(%s)", ("x'; reset role; select '",))
    assert conn.execute("select toolsdb.current_session_id(), current_user").fetchone() == (
        "x'; reset role; select '",
        "toolsdb_app",
    )
    conn.execute("select toolsdb.act_as_session(null)")
    assert conn.execute("select toolsdb.current_session_id()").fetchone() == (None,)
    conn.execute("select toolsdb.act_as_session('act-b')")
    conn.commit()
    assert conn.execute("select toolsdb.current_session_id(), current_user").fetchone() == (None, "postgres")
