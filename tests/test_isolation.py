"""Isolation between the roles of docs/security.md, proven by connecting as
login members of each group role (not by ``set role`` from the superuser):
what each of toolsdb_app, toolsdb_readonly and toolsdb_owner may do and what
is denied, and row-level security on toolsdb.projects (per project) and
toolsdb.audit_logs (per session), directly and through the views.

Most tests share one seeded database per server and module and never commit;
the few that commit an attempt (to check afterwards, as the superuser, that
nothing changed) get a fresh clone of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import errors, sql

from .conftest import Pg
from .dbhelpers import connect_app, ensure_login

# Login roles are cluster-wide and outlive a test; their names must not start
# with toolsdb_, which test_roles.py reserves for the three group roles.
LOGINS = {
    "app": ("isolation_app", "toolsdb_app"),
    "readonly": ("isolation_readonly", "toolsdb_readonly"),
    "owner": ("isolation_owner", "toolsdb_owner"),
}
SESSIONS = ("s1", "s2")
EVENTS_PER_SESSION = 2


@dataclass(frozen=True)
class Seeded:
    """A database holding two projects and audit events of two sessions."""

    dbname: str
    project_a: str
    project_b: str
    events: dict[str | None, list[int]]


@contextmanager
def connect_as(pg: Pg, dbname: str, who: str) -> Iterator[psycopg.Connection]:
    """A connection as the login role of `who` (app, readonly, owner) that
    rolls back whatever it did unless the test commits explicitly."""
    with connect_app(pg, dbname, LOGINS[who][0]) as connection:
        yield connection


@contextmanager
def connect_super(pg: Pg, dbname: str) -> Iterator[psycopg.Connection]:
    connection = psycopg.connect(pg.conninfo(dbname), autocommit=True)
    try:
        yield connection
    finally:
        connection.close()


def set_local(connection: psycopg.Connection, setting: str, value: str) -> None:
    connection.execute("select pg_catalog.set_config(%s, %s, true)", (setting, value))


def seed(pg: Pg, dbname: str) -> Seeded:
    """Two projects (as the superuser), audit events written by the app login
    in sessions s1 and s2, a seal over them, then one unsealed event without
    a session."""
    with connect_super(pg, dbname) as su:
        owner_id = su.execute(
            "insert into toolsdb.users (username, email) values ('iso-owner', 'iso-owner@example.com') "
            "returning user_id"
        ).fetchone()[0]
        project_a, project_b = (
            str(
                su.execute(
                    "insert into toolsdb.projects (slug, name, owner_id) values (%s, %s, %s) returning project_id",
                    (slug, slug.upper(), owner_id),
                ).fetchone()[0]
            )
            for slug in ("iso-a", "iso-b")
        )
    events: dict[str | None, list[int]] = {}
    with connect_as(pg, dbname, "app") as app:
        for session in SESSIONS:
            set_local(app, "toolsdb.session_id", session)
            events[session] = [
                app.execute(
                    "select toolsdb.audit_event('isolation_probe', 'probe', %s, %s::jsonb)",
                    (session, f'{{"n": {n}}}'),
                ).fetchone()[0]
                for n in range(EVENTS_PER_SESSION)
            ]
            app.commit()
    with connect_super(pg, dbname) as su:
        su.execute("select toolsdb.audit_seal()")
        events[None] = [su.execute("select toolsdb.audit_event('isolation_probe', 'probe', 'none')").fetchone()[0]]
    return Seeded(dbname, project_a, project_b, events)


@pytest.fixture(scope="session")
def logins(pg: Pg, template: str) -> dict[str, str]:
    """Login roles in each group role (cluster-wide, so once per server)."""
    for name, group in LOGINS.values():
        ensure_login(pg, name, group)
    return {who: name for who, (name, _group) in LOGINS.items()}


@pytest.fixture(scope="module")
def shared(pg: Pg, template: str, logins: dict[str, str]) -> Iterator[Seeded]:
    """One seeded clone per server for the tests that commit nothing."""
    with pg.clone(f"isolation_shared_{pg.major}", template) as name:
        yield seed(pg, name)


@pytest.fixture
def fresh(pg: Pg, db: str, logins: dict[str, str]) -> Seeded:
    """A seeded clone of its own, for a test that commits."""
    return seed(pg, db)


def current_partition(pg: Pg, dbname: str) -> str:
    with connect_super(pg, dbname) as su:
        return su.execute(
            "select toolsdb_private.partition_name('toolsdb.audit_logs', 'month', (now() at time zone 'UTC')::date)"
        ).fetchone()[0]


def toolsdb_relations(pg: Pg, dbname: str, kinds: str = "rpv") -> list[str]:
    """Tables (not partitions) and views of schema toolsdb."""
    with connect_super(pg, dbname) as su:
        rows = su.execute(
            "select c.relname from pg_catalog.pg_class as c "
            "where c.relnamespace = 'toolsdb'::regnamespace and c.relkind = any(%s) and not c.relispartition "
            "order by 1",
            (list(kinds),),
        ).fetchall()
    return [row[0] for row in rows]


def project_row(pg: Pg, dbname: str, project_id: str) -> tuple | None:
    with connect_super(pg, dbname) as su:
        return su.execute(
            "select slug, name, status, updated_at from toolsdb.projects where project_id = %s", (project_id,)
        ).fetchone()


def count(connection: psycopg.Connection, query: str, params: tuple = ()) -> int:
    return connection.execute(query, params).fetchone()[0]


# ---------------------------------------------------------------------------
# The login roles themselves
# ---------------------------------------------------------------------------


def test_each_login_role_connects_as_itself_and_is_no_superuser(pg: Pg, shared: Seeded) -> None:
    for who, (name, group) in LOGINS.items():
        with connect_as(pg, shared.dbname, who) as connection:
            row = connection.execute(
                "select session_user, current_user, rolsuper, rolbypassrls, pg_has_role(current_user, %s, 'member') "
                "from pg_catalog.pg_roles where rolname = current_user",
                (group,),
            ).fetchone()
        assert row == (name, name, False, False, True), (
            f"The {who} login must connect as itself, be neither superuser nor BYPASSRLS, and be a member of {group}."
        )


# ---------------------------------------------------------------------------
# toolsdb_app: what works
# ---------------------------------------------------------------------------


def test_the_app_selects_inserts_updates_and_deletes_rows_of_an_ordinary_table(pg: Pg, shared: Seeded) -> None:
    with connect_as(pg, shared.dbname, "app") as app:
        agent_id = app.execute(
            "insert into toolsdb.agents (name, agent_type) values ('iso-agent', 'coding') returning agent_id"
        ).fetchone()[0]
        assert count(app, "select count(*) from toolsdb.agents where agent_id = %s", (agent_id,)) == 1, (
            "The app must read back the agent it inserted."
        )
        updated = app.execute("update toolsdb.agents set description = 'probe' where agent_id = %s", (agent_id,))
        assert updated.rowcount == 1, "The app must be able to update an agent."
        deleted = app.execute("delete from toolsdb.agents where agent_id = %s", (agent_id,))
        assert deleted.rowcount == 1, "The app must be able to delete an agent."


def test_the_app_sets_and_reads_plain_config_through_the_functions(pg: Pg, shared: Seeded) -> None:
    with connect_as(pg, shared.dbname, "app") as app:
        app.execute("select toolsdb.config_set('iso.probe', '\"on\"'::jsonb, 'isolation test')")
        value = app.execute("select toolsdb.config_get('iso.probe')").fetchone()[0]
    assert value == "on", "The app must set a config value with config_set and read it back with config_get."


def test_the_app_appends_to_the_audit_log_through_audit_event(pg: Pg, shared: Seeded) -> None:
    with connect_as(pg, shared.dbname, "app") as app:
        set_local(app, "toolsdb.session_id", "s-append")
        audit_id = app.execute("select toolsdb.audit_event('isolation_append', 'probe', 'x')").fetchone()[0]
        row = app.execute(
            "select action, session_id, db_role from toolsdb.audit_logs where audit_id = %s", (audit_id,)
        ).fetchone()
    assert row == ("isolation_append", "s-append", LOGINS["app"][0]), (
        "An event the app writes through audit_event must land in the log with its session and login role."
    )


# ---------------------------------------------------------------------------
# toolsdb_app: what is denied
# ---------------------------------------------------------------------------

APP_DENIED = {
    "alter_table": ("alter table toolsdb.agents add column x int", "must be owner of table agents"),
    "disable_trigger": ("alter table toolsdb.agents disable trigger _900_audit", "must be owner of table agents"),
    "disable_rls": ("alter table toolsdb.projects disable row level security", "must be owner of table projects"),
    "session_replication_role": (
        "set session_replication_role = replica",
        'permission denied to set parameter "session_replication_role"',
    ),
    "set_role_owner": ("set role toolsdb_owner", "permission denied to set role"),
    "read_private_schema": (
        "select * from toolsdb_private.audit_exemptions",
        "permission denied for schema toolsdb_private",
    ),
    "call_private_trigger_function": (
        "select toolsdb_private.tg__timestamps()",
        "permission denied for schema toolsdb_private",
    ),
    "call_private_audit_write": (
        "select toolsdb_private.audit_write('forged', null, null, null, null, null)",
        "permission denied for schema toolsdb_private",
    ),
    "insert_audit_logs": (
        "insert into toolsdb.audit_logs (action) values ('forged')",
        "permission denied for table audit_logs",
    ),
    "update_audit_logs": ("update toolsdb.audit_logs set action = 'forged'", "permission denied for table audit_logs"),
    "delete_audit_logs": ("delete from toolsdb.audit_logs", "permission denied for table audit_logs"),
    "truncate_audit_logs": ("truncate toolsdb.audit_logs", "permission denied for table audit_logs"),
    "select_partition": ("select * from toolsdb.{partition}", "permission denied for table {partition}"),
    "insert_partition": (
        "insert into toolsdb.{partition} (action) values ('forged')",
        "permission denied for table {partition}",
    ),
    "select_default_partition": (
        "select * from toolsdb.audit_logs_default",
        "permission denied for table audit_logs_default",
    ),
    "insert_audit_seals": (
        "insert into toolsdb.audit_seals (period, first_transaction_id, end_transaction_id, row_count, "
        "first_audit_id, last_audit_id, rows_hash, seal_hash) values (current_date, '1', '2', 1, 1, 1, "
        "sha256(''), sha256(''))",
        "permission denied for table audit_seals",
    ),
    "create_table": ("create table toolsdb.x (id int)", "permission denied for schema toolsdb"),
    "truncate_agents": ("truncate toolsdb.agents", "permission denied for table agents"),
    "insert_config": (
        "insert into toolsdb.config (key, value) values ('iso.forged', '1')",
        "permission denied for table config",
    ),
    "update_config": ("update toolsdb.config set value = '1'", "permission denied for table config"),
    "delete_config": ("delete from toolsdb.config", "permission denied for table config"),
    "audit_seal": ("select toolsdb.audit_seal()", "permission denied for function audit_seal"),
    "audit_apply_retention": (
        "select toolsdb.audit_apply_retention()",
        "permission denied for function audit_apply_retention",
    ),
    "audit_create_partitions": (
        "select toolsdb.audit_create_partitions()",
        "permission denied for function audit_create_partitions",
    ),
    "audit_table": ("select toolsdb.audit_table('toolsdb.agents')", "permission denied for function audit_table"),
    "audit_verify": ("select * from toolsdb.audit_verify()", "permission denied for function audit_verify"),
}


@pytest.mark.parametrize("case", list(APP_DENIED))
def test_the_app_is_denied(pg: Pg, shared: Seeded, case: str) -> None:
    statement, message = APP_DENIED[case]
    if "{partition}" in statement:
        partition = current_partition(pg, shared.dbname)
        statement, message = statement.format(partition=partition), message.format(partition=partition)
    with connect_as(pg, shared.dbname, "app") as app, pytest.raises(errors.InsufficientPrivilege) as caught:
        app.execute(statement)
    assert caught.value.sqlstate == "42501", f"The app's `{statement}` must fail with SQLSTATE 42501."
    assert message in str(caught.value), f"The app's `{statement}` must be refused with {message!r}."


def test_the_app_cannot_turn_row_level_security_off_for_itself(pg: Pg, shared: Seeded) -> None:
    with connect_as(pg, shared.dbname, "app") as app:
        app.execute("set local row_security = off")
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            app.execute("select * from toolsdb.projects")


@pytest.mark.parametrize("action", ["insert", "update", "delete", "truncate", "audit_retention"])
def test_the_app_cannot_forge_a_captured_change_through_audit_event(pg: Pg, shared: Seeded, action: str) -> None:
    with (
        connect_as(pg, shared.dbname, "app") as app,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="is reserved for toolsdb itself"),
    ):
        app.execute(
            "select toolsdb.audit_event(%s, 'projects', %s, '{}', %s::jsonb)",
            (action, shared.project_b, '{"name": "forged"}'),
        )


# ---------------------------------------------------------------------------
# toolsdb_readonly
# ---------------------------------------------------------------------------


def test_readonly_reads_every_table_and_view_of_schema_toolsdb_but_config(pg: Pg, shared: Seeded) -> None:
    # config, system_config (the CI/CD trackers' view of its non-secret values) and
    # api_tokens (toolsdb serve's token hashes) are not for readers.
    hidden = ("config", "system_config", "api_tokens")
    relations = [name for name in toolsdb_relations(pg, shared.dbname) if name not in hidden]
    assert "audit_logs" in relations and "projects" in relations, "The catalog query must list the toolsdb tables."
    with connect_as(pg, shared.dbname, "readonly") as readonly:
        for name in relations:
            readonly.execute(sql.SQL("select count(*) from toolsdb.{}").format(sql.Identifier(name))).fetchone()


@pytest.mark.parametrize("relation", ["config", "system_config", "api_tokens"])
def test_readonly_cannot_read_config(pg: Pg, shared: Seeded, relation: str) -> None:
    with (
        connect_as(pg, shared.dbname, "readonly") as readonly,
        pytest.raises(errors.InsufficientPrivilege, match=r"permission denied for (table|view) .*(config|api_tokens)"),
    ):
        readonly.execute(f"select * from toolsdb.{relation}")


def test_readonly_reads_the_audit_rows_of_every_session(pg: Pg, shared: Seeded) -> None:
    with connect_super(pg, shared.dbname) as su:
        everything = count(su, "select count(*) from toolsdb.audit_logs")
    with connect_as(pg, shared.dbname, "readonly") as readonly:
        seen = count(readonly, "select count(*) from toolsdb.audit_logs")
        sessions = {
            row[0]
            for row in readonly.execute(
                "select distinct session_id from toolsdb.audit_trail_events where event_type = 'isolation_probe'"
            ).fetchall()
        }
    assert seen == everything, "Readonly must read every audit row, like the superuser."
    assert sessions == {None, *SESSIONS}, "Readonly must read the events of every session through the view."


def test_readonly_runs_audit_verify(pg: Pg, shared: Seeded) -> None:
    with connect_as(pg, shared.dbname, "readonly") as readonly:
        seals = count(readonly, "select count(*) from toolsdb.audit_seals")
        problems = readonly.execute("select * from toolsdb.audit_verify()").fetchall()
    assert seals >= 1, "Readonly must read the seals, and the seed made at least one."
    assert problems == [], "Readonly must be able to run audit_verify, which finds no problem in an intact log."


@pytest.mark.parametrize("verb", ["insert", "update", "delete", "truncate"])
def test_readonly_cannot_write_any_table_of_schema_toolsdb(pg: Pg, shared: Seeded, verb: str) -> None:
    with connect_super(pg, shared.dbname) as su:
        first_columns = dict(
            su.execute(
                "select distinct on (c.relname) c.relname, a.attname from pg_catalog.pg_class as c "
                "inner join pg_catalog.pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 "
                "and not a.attisdropped and a.attidentity = '' and a.attgenerated = '' "
                "where c.relnamespace = 'toolsdb'::regnamespace and c.relkind in ('r', 'p') and not c.relispartition "
                "order by c.relname, a.attnum"
            ).fetchall()
        )
    statements = {
        "insert": "insert into toolsdb.{table} default values",
        "update": "update toolsdb.{table} set {column} = {column}",
        "delete": "delete from toolsdb.{table}",
        "truncate": "truncate toolsdb.{table}",
    }
    allowed = []
    with connect_as(pg, shared.dbname, "readonly") as readonly:
        for table, column in sorted(first_columns.items()):
            statement = sql.SQL(statements[verb]).format(table=sql.Identifier(table), column=sql.Identifier(column))
            try:
                with readonly.transaction():
                    readonly.execute(statement)
            except errors.InsufficientPrivilege:
                continue
            allowed.append(table)
    assert allowed == [], f"Readonly must not be able to {verb} any toolsdb table, but could on {allowed}."


@pytest.mark.parametrize(
    "statement",
    [
        "select toolsdb.audit_event('forged')",
        "select toolsdb.config_set('iso.forged', '1')",
        "select toolsdb.audit_seal()",
        "insert into toolsdb.audit_logs (action) values ('forged')",
    ],
)
def test_readonly_cannot_write_through_the_functions(pg: Pg, shared: Seeded, statement: str) -> None:
    with (
        connect_as(pg, shared.dbname, "readonly") as readonly,
        pytest.raises(errors.InsufficientPrivilege, match="permission denied"),
    ):
        readonly.execute(statement)


# ---------------------------------------------------------------------------
# toolsdb_owner: the maintenance path
# ---------------------------------------------------------------------------


def test_the_owner_alters_its_tables(pg: Pg, shared: Seeded) -> None:
    with connect_as(pg, shared.dbname, "owner") as owner:
        owner.execute("alter table toolsdb.agents add column iso_probe int")
        owner.execute("alter table toolsdb.agents drop column iso_probe")
        owner.execute("alter table toolsdb.agents disable trigger _900_audit")
        owner.execute("alter table toolsdb.agents enable trigger _900_audit")


def test_the_owner_runs_the_maintenance_functions(pg: Pg, shared: Seeded) -> None:
    with connect_as(pg, shared.dbname, "owner") as owner:
        created = owner.execute("select toolsdb.audit_create_partitions(0)").fetchone()[0]
        sealed = owner.execute("select toolsdb.audit_seal()").fetchone()[0]
        owner.execute("select toolsdb.audit_table('toolsdb.agents')")
    assert created == 0, "This month's partition exists, so audit_create_partitions(0) creates none."
    assert sealed >= 1, "The owner must seal the audit entries written since the seed's seal."


@pytest.mark.parametrize(
    "statement",
    [
        "update toolsdb.audit_logs set action = 'forged'",
        "delete from toolsdb.audit_logs",
        "truncate toolsdb.audit_logs",
        "truncate toolsdb.{partition}",
    ],
)
def test_the_owner_cannot_change_the_audit_log(pg: Pg, shared: Seeded, statement: str) -> None:
    statement = statement.format(partition=current_partition(pg, shared.dbname))
    with (
        connect_as(pg, shared.dbname, "owner") as owner,
        pytest.raises(errors.InsufficientPrivilege, match=r"toolsdb\.audit_logs is append-only") as caught,
    ):
        owner.execute(statement)
    assert caught.value.sqlstate == "42501", f"The owner's `{statement}` must fail with SQLSTATE 42501."


def test_the_owner_cannot_set_session_replication_role(pg: Pg, shared: Seeded) -> None:
    with (
        connect_as(pg, shared.dbname, "owner") as owner,
        pytest.raises(errors.InsufficientPrivilege, match="session_replication_role"),
    ):
        owner.execute("set session_replication_role = replica")


def test_the_owner_sees_every_project_without_any_setting(pg: Pg, shared: Seeded) -> None:
    with connect_super(pg, shared.dbname) as su:
        everything = count(su, "select count(*) from toolsdb.projects")
    with connect_as(pg, shared.dbname, "owner") as owner:
        seen = count(owner, "select count(*) from toolsdb.projects")
        seen_in_view = count(owner, "select count(*) from toolsdb.project_overview")
    assert everything >= 2, "The seed holds at least the two test projects."
    assert seen == everything, "The owner is exempt from row-level security: it sees every project."
    assert seen_in_view == everything, "The owner sees every project through project_overview too."


def test_functions_the_owner_creates_are_not_executable_by_the_app(pg: Pg, shared: Seeded) -> None:
    with connect_as(pg, shared.dbname, "owner") as owner:
        owner.execute("set local role toolsdb_owner")
        owner.execute("create function toolsdb.test_fn() returns int language sql return 1")
        executable = owner.execute(
            "select has_function_privilege('toolsdb_app', 'toolsdb.test_fn()', 'execute'), "
            "has_function_privilege('public', 'toolsdb.test_fn()', 'execute')"
        ).fetchone()
    assert executable == (False, False), (
        "A function toolsdb_owner creates must not be executable by public, hence not by the app, until granted."
    )


# The one function owned by another role, on purpose: the schema validator
# runs statements with the rights of toolsdb_validator, never the owner's.
OWNER = (
    "case p.oid::regprocedure::text when 'toolsdb_private.validate_execute(text[],integer[])' "
    "then 'toolsdb_validator' else 'toolsdb_owner' end"
)


def test_every_migrated_function_belongs_to_toolsdb_owner_and_is_not_executable_by_public(
    pg: Pg, shared: Seeded
) -> None:
    with connect_super(pg, shared.dbname) as su:
        offenders = su.execute(
            "select p.oid::regprocedure::text from pg_catalog.pg_proc as p "
            "where p.pronamespace in ('toolsdb'::regnamespace, 'toolsdb_private'::regnamespace) "
            "and (p.proowner <> (" + OWNER + ")::regrole or has_function_privilege('public', p.oid, 'execute')) "
            "order by 1"
        ).fetchall()
    assert offenders == [], f"Every toolsdb function must be owned by toolsdb_owner and closed to public: {offenders}."


# ---------------------------------------------------------------------------
# Project isolation on toolsdb.projects
# ---------------------------------------------------------------------------


def test_the_app_sees_only_the_project_of_its_transaction(pg: Pg, shared: Seeded) -> None:
    with connect_as(pg, shared.dbname, "app") as app:
        set_local(app, "toolsdb.project_id", shared.project_a)
        rows = app.execute("select project_id::text from toolsdb.projects").fetchall()
    assert rows == [(shared.project_a,)], "With toolsdb.project_id set to A, the app must see project A only."


def test_the_app_cannot_read_another_project_by_its_id(pg: Pg, shared: Seeded) -> None:
    with connect_as(pg, shared.dbname, "app") as app:
        set_local(app, "toolsdb.project_id", shared.project_a)
        row = app.execute("select * from toolsdb.projects where project_id = %s", (shared.project_b,)).fetchone()
    assert row is None, "Selecting project B by its id from project A's transaction must return nothing."


def test_the_app_updates_the_project_of_its_transaction(pg: Pg, shared: Seeded) -> None:
    with connect_as(pg, shared.dbname, "app") as app:
        set_local(app, "toolsdb.project_id", shared.project_a)
        updated = app.execute("update toolsdb.projects set name = 'A renamed'").rowcount
    assert updated == 1, "The app must change its own project, and only it."


def test_the_app_cannot_update_another_project(pg: Pg, fresh: Seeded) -> None:
    before = project_row(pg, fresh.dbname, fresh.project_b)
    with connect_as(pg, fresh.dbname, "app") as app:
        set_local(app, "toolsdb.project_id", fresh.project_a)
        updated = app.execute(
            "update toolsdb.projects set name = 'hijacked', status = 'archived' where project_id = %s",
            (fresh.project_b,),
        ).rowcount
        app.commit()
    assert updated == 0, "Updating project B from project A's transaction must affect no row."
    assert project_row(pg, fresh.dbname, fresh.project_b) == before, "Project B must be unchanged."


def test_the_app_cannot_delete_another_project(pg: Pg, fresh: Seeded) -> None:
    with connect_as(pg, fresh.dbname, "app") as app:
        set_local(app, "toolsdb.project_id", fresh.project_a)
        deleted = app.execute("delete from toolsdb.projects where project_id = %s", (fresh.project_b,)).rowcount
        everything = app.execute("delete from toolsdb.projects where project_id <> %s", (fresh.project_a,)).rowcount
        app.commit()
    assert (deleted, everything) == (0, 0), "Deleting other projects from project A's transaction must affect no row."
    assert project_row(pg, fresh.dbname, fresh.project_b) is not None, "Project B must still exist."


def test_the_app_cannot_insert_a_project_of_another_id(pg: Pg, shared: Seeded) -> None:
    with connect_as(pg, shared.dbname, "app") as app:
        set_local(app, "toolsdb.project_id", shared.project_a)
        owner_id = app.execute("select user_id from toolsdb.users where username = 'iso-owner'").fetchone()[0]
        with pytest.raises(errors.InsufficientPrivilege, match="violates row-level security policy") as caught:
            app.execute(
                "insert into toolsdb.projects (project_id, slug, name, owner_id) values (%s, 'iso-c', 'C', %s)",
                (str(uuid.uuid4()), owner_id),
            )
    assert caught.value.sqlstate == "42501", "The RLS with check violation must carry SQLSTATE 42501."


def test_the_app_cannot_move_its_project_to_another_id(pg: Pg, shared: Seeded) -> None:
    with connect_as(pg, shared.dbname, "app") as app:
        set_local(app, "toolsdb.project_id", shared.project_a)
        with pytest.raises(errors.InsufficientPrivilege, match="violates row-level security policy"):
            app.execute("update toolsdb.projects set project_id = %s", (str(uuid.uuid4()),))


def test_the_app_sees_only_its_project_through_project_overview(pg: Pg, shared: Seeded) -> None:
    with connect_as(pg, shared.dbname, "app") as app:
        set_local(app, "toolsdb.project_id", shared.project_a)
        rows = app.execute("select project_id::text from toolsdb.project_overview").fetchall()
    assert rows == [(shared.project_a,)], "project_overview must show the app project A only, not leak project B."


def test_the_app_cannot_change_another_project_through_project_overview(pg: Pg, shared: Seeded) -> None:
    with connect_as(pg, shared.dbname, "app") as app:
        set_local(app, "toolsdb.project_id", shared.project_a)
        with pytest.raises(errors.ObjectNotInPrerequisiteState, match='cannot update view "project_overview"'):
            app.execute(
                "update toolsdb.project_overview set name = 'hijacked' where project_id = %s", (shared.project_b,)
            )


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_without_a_project_the_app_sees_no_project(pg: Pg, shared: Seeded, value: str | None) -> None:
    with connect_as(pg, shared.dbname, "app") as app:
        if value is not None:
            set_local(app, "toolsdb.project_id", value)
        direct = count(app, "select count(*) from toolsdb.projects")
        through_view = count(app, "select count(*) from toolsdb.project_overview")
    assert (direct, through_view) == (0, 0), "Without a project setting the app must see no project (fail closed)."


def test_a_malformed_project_setting_is_an_error_naming_the_setting(pg: Pg, shared: Seeded) -> None:
    with connect_as(pg, shared.dbname, "app") as app:
        set_local(app, "toolsdb.project_id", "not-a-uuid")
        with pytest.raises(errors.InvalidParameterValue, match=r"toolsdb\.project_id") as caught:
            app.execute("select * from toolsdb.projects")
    assert caught.value.sqlstate == "22023", "A malformed project_id must raise invalid_parameter_value (22023)."


def test_readonly_sees_every_project(pg: Pg, shared: Seeded) -> None:
    with connect_super(pg, shared.dbname) as su:
        everything = count(su, "select count(*) from toolsdb.projects")
    with connect_as(pg, shared.dbname, "readonly") as readonly:
        seen = count(readonly, "select count(*) from toolsdb.projects")
        seen_in_view = count(readonly, "select count(*) from toolsdb.project_overview")
    assert (seen, seen_in_view) == (everything, everything), (
        "Readonly must see every project, directly and in the view."
    )


# ---------------------------------------------------------------------------
# Session isolation on toolsdb.audit_logs
# ---------------------------------------------------------------------------


def probe_ids(connection: psycopg.Connection, relation: str) -> set[int]:
    rows = connection.execute(
        sql.SQL("select audit_id from toolsdb.{} where entity_type = 'probe'").format(sql.Identifier(relation))
    ).fetchall()
    return {row[0] for row in rows}


@pytest.mark.parametrize("relation", ["audit_logs", "audit_trail_events"])
def test_the_app_reads_only_its_sessions_audit_rows(pg: Pg, shared: Seeded, relation: str) -> None:
    with connect_as(pg, shared.dbname, "app") as app:
        set_local(app, "toolsdb.session_id", "s1")
        seen = probe_ids(app, relation)
        sessions = {
            row[0]
            for row in app.execute(
                sql.SQL("select distinct session_id from toolsdb.{}").format(sql.Identifier(relation))
            ).fetchall()
        }
    assert seen == set(shared.events["s1"]), f"In session s1 the app must read exactly s1's events from {relation}."
    assert sessions == {"s1"}, f"In session s1 the app must read no other session's row from {relation}."


@pytest.mark.parametrize("relation", ["audit_logs", "audit_trail_events"])
def test_the_app_cannot_read_another_sessions_audit_rows_by_id(pg: Pg, shared: Seeded, relation: str) -> None:
    with connect_as(pg, shared.dbname, "app") as app:
        set_local(app, "toolsdb.session_id", "s1")
        rows = app.execute(
            sql.SQL("select * from toolsdb.{} where audit_id = any(%s)").format(sql.Identifier(relation)),
            (shared.events["s2"],),
        ).fetchall()
    assert rows == [], f"Session s1 must not read s2's events from {relation}, even by their ids."


@pytest.mark.parametrize("relation", ["audit_logs", "audit_trail_events"])
def test_without_a_session_the_app_reads_no_audit_row(pg: Pg, shared: Seeded, relation: str) -> None:
    with connect_as(pg, shared.dbname, "app") as app:
        rows = count(app, sql.SQL("select count(*) from toolsdb.{}").format(sql.Identifier(relation)))
    assert rows == 0, f"Without toolsdb.session_id the app must read no row of {relation} (fail closed)."


@pytest.mark.parametrize(
    "statement",
    [
        "update toolsdb.audit_logs set details = '{}' where audit_id = any(%s)",
        "delete from toolsdb.audit_logs where audit_id = any(%s)",
        "update toolsdb.audit_trail_events set details = '{}' where audit_id = any(%s)",
        "delete from toolsdb.audit_trail_events where audit_id = any(%s)",
    ],
)
@pytest.mark.parametrize("target", SESSIONS)
def test_the_app_cannot_update_or_delete_audit_rows(pg: Pg, shared: Seeded, statement: str, target: str) -> None:
    with connect_as(pg, shared.dbname, "app") as app:
        set_local(app, "toolsdb.session_id", "s1")
        with pytest.raises(errors.InsufficientPrivilege, match="permission denied") as caught:
            app.execute(statement, (shared.events[target],))
    assert caught.value.sqlstate == "42501", f"The app in s1 must not change {target}'s audit rows."


# ---------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------


def test_every_view_of_schema_toolsdb_is_security_invoker(pg: Pg, shared: Seeded) -> None:
    with connect_super(pg, shared.dbname) as su:
        definer_views = su.execute(
            "select c.relname from pg_catalog.pg_class as c "
            "where c.relnamespace = 'toolsdb'::regnamespace and c.relkind in ('v', 'm') "
            "and not coalesce('security_invoker=true' = any(c.reloptions) "
            "or 'security_invoker=on' = any(c.reloptions), false) order by 1"
        ).fetchall()
        views = count(su, "select count(*) from pg_catalog.pg_views where schemaname = 'toolsdb'")
    assert views >= 2, "Schema toolsdb has views (audit_trail_events, project_overview) to check."
    assert definer_views == [], (
        f"Every view of schema toolsdb must be security_invoker; these are not: {definer_views}."
    )


def test_the_app_cannot_change_the_audit_retention(pg: Pg, shared: Seeded) -> None:
    with (
        connect_as(pg, shared.dbname, "app") as app,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="may only be changed by toolsdb_owner"),
    ):
        app.execute("select toolsdb.config_set('audit.retention', '\"1 month\"')")


def test_the_owner_may_change_the_audit_retention(pg: Pg, shared: Seeded) -> None:
    with connect_as(pg, shared.dbname, "owner") as owner:
        owner.execute("select toolsdb.config_set('audit.retention', '\"2 years\"')")
        owner.rollback()
