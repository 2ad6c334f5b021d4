"""Behaviour of the identity domain against a real, migrated database.

Covers the shared timestamps trigger (toolsdb_private.tg__timestamps()), the
identity tables (users, projects, agents, mcp_servers, agent_mcp_servers,
preferences), the view toolsdb.agent_tools and the idempotence of
seeds/10_identity.sql. Everything runs on each PostgreSQL major of the suite.

Isolation, kept cheap (a template clone costs ~0.2 s, so one per test would
not fit the runtime budget):

* ``tx``: most tests run in a transaction that is always rolled back, on one
  clone per module and major loaded once with seeds/10_identity.sql. They see
  exactly the seed and leave nothing behind.
* ``conn``: tests that must commit or run psql (seed re-runs, the catalog-wide
  timestamps tests) get a fresh clone of the migrated template.

Every rejected statement runs inside ``conn.transaction()`` (a savepoint when a
transaction is already open), so a failure never poisons the statements after
it; the error must name the constraint (``diag.constraint_name``), its table and
carry an SQLSTATE of class 23 (integrity constraint violation).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.rows import dict_row

from toolsdb import paths

from .conftest import ROOT, Pg

IDENTITY_SEED = ROOT / "seeds" / "10_identity.sql"
IDENTITY_TABLES = ("agent_mcp_servers", "agents", "mcp_servers", "preferences", "projects", "users")
APP_SCHEMAS = ("toolsdb", "toolsdb_private")
FORGED_PAST = "2000-01-01 00:00:00+00"
FORGED_FUTURE = "2999-01-01 00:00:00+00"
_serial = itertools.count(1)

Row = dict[str, Any]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def unique(prefix: str) -> str:
    """A name not used by the seeds nor by another helper call in this run."""
    return f"{prefix}{next(_serial)}"


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


def scalar(conn: psycopg.Connection, query: str, params: tuple | dict | None = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None, f"The query should have returned a row: {query}"
    return row[0]


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


def load(pg: Pg, dbname: str, *files: Path) -> None:
    for path in files:
        pg.psql(dbname, "-f", str(path))


@pytest.fixture(scope="module")
def shared_db(pg: Pg, template: str) -> Iterator[str]:
    """One clone of the migrated template per module and major, loaded once with
    seeds/10_identity.sql through psql; tests only see it through ``tx``."""
    with pg.clone(f"identity_{os.getpid()}_{pg.major}", template) as name:
        load(pg, name, IDENTITY_SEED)
        yield name


@pytest.fixture(scope="module")
def shared_conn(pg: Pg, shared_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg.conninfo(shared_db)) as connection:
        yield connection


@pytest.fixture
def tx(shared_conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """A connection to the seeded module database, inside a transaction that is
    always rolled back: each test sees exactly the seed, cheaply. Statements
    that must fail run in ``conn.transaction()`` blocks, i.e. savepoints here.
    Tests that commit or run psql use the ``conn`` fixture (a fresh clone)."""
    with shared_conn.transaction(force_rollback=True):
        yield shared_conn


@pytest.fixture
def all_seeded(pg: Pg, db: str, conn: psycopg.Connection) -> psycopg.Connection:
    """``conn`` on a database where every file of seeds/ was loaded in order, so
    tables of later domains have rows for the generic trigger tests."""
    load(pg, db, *paths.sql_files(ROOT / "seeds"))
    return conn


def id_of(conn: psycopg.Connection, table: str, key: str, value: str) -> Any:
    """The primary key of the toolsdb.<table> row whose natural key <key> = value."""
    id_column = {"users": "user_id", "projects": "project_id", "agents": "agent_id", "mcp_servers": "mcp_server_id"}
    query = sql.SQL("select {} from toolsdb.{} where {} = %s").format(
        sql.Identifier(id_column[table]), sql.Identifier(table), sql.Identifier(key)
    )
    return scalar(conn, query.as_string(conn), (value,))


# ---------------------------------------------------------------------------
# Timestamps trigger (toolsdb_private.tg__timestamps())
# ---------------------------------------------------------------------------


def test_every_table_with_updated_at_has_the_timestamps_trigger(tx: psycopg.Connection) -> None:
    tables = timestamped_tables(tx)
    assert {short(t) for t in tables} >= set(IDENTITY_TABLES), (
        f"Every identity table should have an updated_at column, but the catalog lists only {tables}."
    )
    # tgtype bits: ROW 1 | BEFORE 2 | INSERT 4 | UPDATE 16 = 23.
    missing = column(
        tx,
        """
        select format('%%I.%%I', n.nspname, c.relname)
        from pg_catalog.pg_class as c
        join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        where format('%%I.%%I', n.nspname, c.relname) = any(%s)
          and not exists (
              select from pg_catalog.pg_trigger as t
              where t.tgrelid = c.oid
                and t.tgname = '_100_timestamps'
                and t.tgfoid = 'toolsdb_private.tg__timestamps()'::regprocedure
                and t.tgtype & 23 = 23
                and t.tgenabled <> 'D'
          )
        """,
        (tables,),
    )
    assert missing == [], (
        f"Every table with updated_at should have an enabled BEFORE INSERT OR UPDATE row trigger _100_timestamps "
        f"calling toolsdb_private.tg__timestamps(), but these do not: {missing}."
    )


@pytest.mark.parametrize("table", sorted(NEW_ROW))
def test_insert_replaces_forged_timestamps_with_now(tx: psycopg.Connection, table: str) -> None:
    now = scalar(tx, "select now()")
    row = NEW_ROW[table](tx, created_at=FORGED_PAST, updated_at=FORGED_FUTURE)
    assert row["created_at"] == now, (
        f"A forged created_at on insert into toolsdb.{table} should be replaced by now() ({now}), "
        f"but {row['created_at']} was stored."
    )
    assert row["updated_at"] == now, (
        f"A forged updated_at on insert into toolsdb.{table} should be replaced by now() ({now}), "
        f"but {row['updated_at']} was stored."
    )


def _update_one_row(conn: psycopg.Connection, table: str, ctid: str, assignments: str) -> tuple:
    query = sql.SQL("update {} set {} where ctid = %s::tid returning ctid::text, created_at, updated_at").format(
        sql.SQL(table), sql.SQL(assignments)
    )
    row = conn.execute(query, (ctid,)).fetchone()
    assert row is not None, f"The update of one row of {table} should have returned it."
    return row


# A finished run or a settled validation is frozen by its domain's rules: pick
# a row that may still change (one that is not finished, if the table has a status).
FROZEN_STATUSES = ("success", "failure", "timeout", "passed", "failed", "cancelled")


def _seeded_row(conn: psycopg.Connection, table: str) -> tuple | None:
    query = sql.SQL(
        "select ctid::text, created_at, updated_at from {} as t"
        " order by coalesce(to_jsonb(t) ->> 'status' = any(%s), false), created_at limit 1"
    ).format(sql.SQL(table))
    return conn.execute(query, (list(FROZEN_STATUSES),)).fetchone()


def _rows_to_update(conn: psycopg.Connection) -> dict[str, tuple]:
    """One seeded row per table with updated_at; tables of later domains without
    seed rows are left to test_every_table_with_updated_at_has_the_timestamps_trigger."""
    found = {}
    for table in timestamped_tables(conn):
        row = _seeded_row(conn, table)
        if row is not None:
            found[table] = row
    assert {short(t) for t in found} >= set(IDENTITY_TABLES), (
        f"The identity seed should give every identity table a row to update, but only {sorted(found)} have one."
    )
    return found


def test_update_cannot_change_created_at_on_any_table(all_seeded: psycopg.Connection) -> None:
    conn = all_seeded
    changed = []
    for table, (ctid, created_at, _) in _rows_to_update(conn).items():
        _, stored, _ = _update_one_row(conn, table, ctid, f"created_at = '{FORGED_PAST}'")
        if stored != created_at:
            changed.append(f"{table}: {created_at} became {stored}")
    assert changed == [], f"An update should never change created_at, but it did on: {changed}."


def test_update_replaces_a_forged_updated_at_with_now_on_any_table(all_seeded: psycopg.Connection) -> None:
    conn = all_seeded
    now = scalar(conn, "select now()")
    wrong = []
    for table, (ctid, _, _) in _rows_to_update(conn).items():
        _, _, updated_at = _update_one_row(conn, table, ctid, f"updated_at = '{FORGED_FUTURE}'")
        if updated_at != now:
            wrong.append(f"{table}: {updated_at}")
    assert wrong == [], (
        f"An update of a row last changed in an earlier transaction should set updated_at to now() ({now}) "
        f"whatever the client sent, but these tables stored something else: {wrong}."
    )


def test_updated_at_strictly_increases_across_updates_in_one_transaction_on_any_table(
    all_seeded: psycopg.Connection,
) -> None:
    conn = all_seeded
    with conn.transaction():
        now = scalar(conn, "select now()")
        problems = []
        for table, (ctid, _, first) in _rows_to_update(conn).items():
            seen = [first]
            for _ in range(3):
                ctid, _, updated_at = _update_one_row(conn, table, ctid, "updated_at = updated_at")
                seen.append(updated_at)
            if not all(earlier < later for earlier, later in itertools.pairwise(seen)):
                problems.append(f"{table}: {seen}")
        assert scalar(conn, "select now()") == now, "now() should be constant inside one transaction."
    assert problems == [], (
        f"updated_at should strictly increase on every update, even several in one transaction where now() is "
        f"constant, but it did not on: {problems}."
    )


def test_updates_in_one_transaction_step_updated_at_by_one_millisecond(tx: psycopg.Connection) -> None:
    with tx.transaction():
        now = scalar(tx, "select now()")
        update = "update toolsdb.users set display_name = %s where username = 'alice' returning updated_at"
        stamps = [scalar(tx, update, (name,)) for name in ("A", "B", "C")]
        expected = column(tx, "select now() + i * interval '1 millisecond' from generate_series(0, 2) as i")
    assert stamps == expected, (
        f"Three updates of one user in one transaction should stamp now(), now() + 1 ms and now() + 2 ms "
        f"(now() = {now}), but they stamped {stamps}."
    )


# ---------------------------------------------------------------------------
# toolsdb.users
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "manager", "user", "service"])
def test_users_accept_every_documented_role(tx: psycopg.Connection, role: str) -> None:
    assert new_user(tx, role=role)["role"] == role, f"A user with role {role} should be stored as such."


def test_users_default_role_is_user(tx: psycopg.Connection) -> None:
    assert new_user(tx)["role"] == "user", "A user created without a role should get the role user."


@pytest.mark.parametrize("role", ["superuser", "Admin", ""])
def test_users_reject_an_unknown_role(tx: psycopg.Connection, role: str) -> None:
    expect_violation(tx, errors.CheckViolation, "role_is_valid", "users", lambda: new_user(tx, role=role))


def test_users_accept_well_formed_emails(tx: psycopg.Connection) -> None:
    for email in ("a@b.co", "first.last+tag@mail.example.org", "Dave@Example.COM"):
        with tx.transaction():
            stored = new_user(tx, email=email)["email"]
        assert stored == email, f"The well-formed email {email} should be accepted and stored unchanged."


@pytest.mark.parametrize(
    "email",
    ["no-at-sign.example.com", "two@@example.com", "space in@example.com", "alice@localhost", "@example.com"],
)
def test_users_reject_a_malformed_email(tx: psycopg.Connection, email: str) -> None:
    expect_violation(tx, errors.CheckViolation, "email_is_valid", "users", lambda: new_user(tx, email=email))


def test_users_username_is_unique_regardless_of_case(tx: psycopg.Connection) -> None:
    new_user(tx, username="Dave", email="dave1@example.com")
    exc = expect_violation(
        tx,
        errors.UniqueViolation,
        "users_lower_username_key",
        "users",
        lambda: new_user(tx, username="dAVE", email="dave2@example.com"),
    )
    assert exc.sqlstate == "23505", f"A duplicate username should raise unique_violation (23505), not {exc.sqlstate}."


def test_users_email_is_unique_regardless_of_case(tx: psycopg.Connection) -> None:
    new_user(tx, email="dave@example.com")
    expect_violation(
        tx,
        errors.UniqueViolation,
        "users_lower_email_key",
        "users",
        lambda: new_user(tx, email="DAVE@Example.COM"),
    )


def test_users_github_id_is_unique(tx: psycopg.Connection) -> None:
    new_user(tx, github_id=4242)
    expect_violation(tx, errors.UniqueViolation, "users_github_id_key", "users", lambda: new_user(tx, github_id=4242))


def test_users_without_github_id_do_not_collide(tx: psycopg.Connection) -> None:
    first, second = new_user(tx), new_user(tx)
    assert first["github_id"] is None and second["github_id"] is None, (
        "Several users not linked to GitHub (github_id null) should coexist."
    )


@pytest.mark.parametrize("metadata", ["[]", '"text"', "42", "null"])
def test_users_metadata_must_be_an_object(tx: psycopg.Connection, metadata: str) -> None:
    expect_violation(tx, errors.CheckViolation, "metadata_is_object", "users", lambda: new_user(tx, metadata=metadata))


def test_users_preferences_must_be_an_object(tx: psycopg.Connection) -> None:
    expect_violation(
        tx, errors.CheckViolation, "preferences_is_object", "users", lambda: new_user(tx, preferences="[]")
    )


# ---------------------------------------------------------------------------
# toolsdb.projects
# ---------------------------------------------------------------------------


def test_projects_accept_well_formed_slugs(tx: psycopg.Connection) -> None:
    for slug in ("a", "agent-notify-2", "v2-api-3", "x" * 100):
        with tx.transaction():
            stored = new_project(tx, slug=slug)["slug"]
        assert stored == slug, f"The well-formed slug {slug!r} should be accepted."


@pytest.mark.parametrize(
    "slug", ["Agent-Notify", "double--hyphen", "-leading", "trailing-", "under_score", "with space", "dot.ted"]
)
def test_projects_reject_a_malformed_slug(tx: psycopg.Connection, slug: str) -> None:
    expect_violation(tx, errors.CheckViolation, "slug_is_valid", "projects", lambda: new_project(tx, slug=slug))


def test_projects_slug_is_unique(tx: psycopg.Connection) -> None:
    new_project(tx, slug="same-slug")
    expect_violation(
        tx, errors.UniqueViolation, "projects_slug_key", "projects", lambda: new_project(tx, slug="same-slug")
    )


def test_projects_accept_every_documented_repository_url_form(tx: psycopg.Connection) -> None:
    for url in (
        "https://github.com/example/toolsdb.git",
        "ssh://git@github.com/example/toolsdb.git",
        "git://example.org/toolsdb.git",
        "git@github.com:example/agent-notify.git",
        "deploy.bot@git.example.org:team/repo",
        None,
    ):
        with tx.transaction():
            stored = new_project(tx, repository_url=url)["repository_url"]
        assert stored == url, f"The repository_url {url!r} should be accepted and stored unchanged."


@pytest.mark.parametrize(
    "url",
    [
        "http://github.com/example/toolsdb.git",
        "file:///srv/git/toolsdb.git",
        "ftp://example.org/toolsdb.git",
        "github.com/example/toolsdb",
        "https://github.com/example/my repo.git",
        "git@github.com",
        "github.com:example/toolsdb.git",
    ],
)
def test_projects_reject_a_malformed_repository_url(tx: psycopg.Connection, url: str) -> None:
    expect_violation(
        tx,
        errors.CheckViolation,
        "repository_url_is_valid",
        "projects",
        lambda: new_project(tx, repository_url=url),
    )


def test_projects_accept_every_documented_status_and_default_to_active(tx: psycopg.Connection) -> None:
    assert new_project(tx)["status"] == "active", "A project created without a status should be active."
    for status in ("active", "paused", "archived"):
        assert new_project(tx, status=status)["status"] == status, f"The status {status} should be accepted."


@pytest.mark.parametrize("status", ["deleted", "Active", ""])
def test_projects_reject_an_unknown_status(tx: psycopg.Connection, status: str) -> None:
    expect_violation(tx, errors.CheckViolation, "status_is_valid", "projects", lambda: new_project(tx, status=status))


def test_projects_owner_must_exist(tx: psycopg.Connection) -> None:
    expect_violation(
        tx,
        errors.ForeignKeyViolation,
        "projects_owner_id_fkey",
        "projects",
        lambda: new_project(tx, owner_id="00000000-0000-0000-0000-000000000000"),
    )


def test_deleting_a_user_who_owns_a_project_is_restricted(pg: Pg, tx: psycopg.Connection) -> None:
    # PostgreSQL 18 reports a triggered ON DELETE RESTRICT as restrict_violation (23001), the SQL standard's code;
    # up to 17 it was foreign_key_violation (23503). Both are class 23 and name the constraint.
    expected: type[psycopg.Error] = errors.RestrictViolation if int(pg.major) >= 18 else errors.ForeignKeyViolation
    owner = new_user(tx)
    project = new_project(tx, owner_id=owner["user_id"])
    with (
        pytest.raises(expected, match='foreign key constraint "projects_owner_id_fkey"') as caught,
        tx.transaction(),
    ):
        tx.execute("delete from toolsdb.users where user_id = %s", (owner["user_id"],))
    diag = caught.value.diag
    assert diag.constraint_name == "projects_owner_id_fkey", (
        f"Deleting a project owner should fail on projects_owner_id_fkey, not on {diag.constraint_name}."
    )
    assert caught.value.sqlstate == expected.sqlstate, (
        f"Deleting a project owner on PostgreSQL {pg.major} should raise SQLSTATE {expected.sqlstate}, "
        f"not {caught.value.sqlstate}."
    )
    still_there = scalar(tx, "select count(*) from toolsdb.projects where project_id = %s", (project["project_id"],))
    assert still_there == 1, "The owned project should survive the refused deletion of its owner."


def test_a_user_can_be_deleted_once_their_projects_are_gone(tx: psycopg.Connection) -> None:
    owner = new_user(tx)
    project = new_project(tx, owner_id=owner["user_id"])
    tx.execute("delete from toolsdb.projects where project_id = %s", (project["project_id"],))
    deleted = tx.execute("delete from toolsdb.users where user_id = %s", (owner["user_id"],)).rowcount
    assert deleted == 1, "A user who no longer owns any project should be deletable."


@pytest.mark.parametrize("stack", ['{"python": true}', '"python"', "null"])
def test_projects_technology_stack_must_be_an_array(tx: psycopg.Connection, stack: str) -> None:
    expect_violation(
        tx,
        errors.CheckViolation,
        "technology_stack_is_array",
        "projects",
        lambda: new_project(tx, technology_stack=stack),
    )


def test_projects_technology_stack_defaults_to_an_empty_array(tx: psycopg.Connection) -> None:
    assert new_project(tx)["technology_stack"] == [], "A project's technology_stack should default to []."


# ---------------------------------------------------------------------------
# toolsdb.agents
# ---------------------------------------------------------------------------


def test_agents_name_is_unique(tx: psycopg.Connection) -> None:
    new_agent(tx, name="same-agent")
    expect_violation(tx, errors.UniqueViolation, "agents_name_key", "agents", lambda: new_agent(tx, name="same-agent"))


def test_agents_name_is_case_sensitive(tx: psycopg.Connection) -> None:
    assert new_agent(tx, name="Claude-Code")["name"] == "Claude-Code", (
        "Agent names are documented as case-sensitive: Claude-Code should coexist with the seeded claude-code."
    )


def test_agents_tags_containment_finds_the_tagged_agents(tx: psycopg.Connection) -> None:
    found = column(tx, "select name from toolsdb.agents where tags @> array['coding', 'mcp'] order by name")
    assert found == ["claude-code", "codex"], (
        f"tags @> array['coding', 'mcp'] should find exactly the seeded claude-code and codex, but found {found}."
    )


def test_agents_tags_containment_uses_the_gin_index(tx: psycopg.Connection) -> None:
    tx.execute("set local enable_seqscan = off")
    plan = "\n".join(column(tx, "explain select name from toolsdb.agents where tags @> array['mcp']"))
    assert "agents_tags_idx" in plan, f"tags @> array[...] should be answered through agents_tags_idx, but:\n{plan}"


@pytest.mark.parametrize("tags", [[""], ["ok", None], [f"t{i}" for i in range(65)]], ids=["empty", "null", "65"])
def test_agents_reject_invalid_tags(tx: psycopg.Connection, tags: list[str | None]) -> None:
    expect_violation(tx, errors.CheckViolation, "tags_are_valid", "agents", lambda: new_agent(tx, tags=tags))


@pytest.mark.parametrize("column_name", ["capabilities", "config"])
def test_agents_json_settings_must_be_objects(tx: psycopg.Connection, column_name: str) -> None:
    expect_violation(
        tx,
        errors.CheckViolation,
        f"{column_name}_is_object",
        "agents",
        lambda: new_agent(tx, **{column_name: '["not", "an", "object"]'}),
    )


# ---------------------------------------------------------------------------
# toolsdb.mcp_servers
# ---------------------------------------------------------------------------


def test_mcp_servers_accept_each_transport_with_its_target(tx: psycopg.Connection) -> None:
    stdio = new_server(tx, transport="stdio", command="uvx", args=["mcp-server-git"])
    http = new_server(tx, transport="http", command=None, url="https://mcp.example.com/mcp")
    sse = new_server(tx, transport="sse", command=None, url="http://127.0.0.1:9000/sse")
    assert [stdio["transport"], http["transport"], sse["transport"]] == ["stdio", "http", "sse"], (
        "A stdio server with a command and http/sse servers with a url should all be accepted."
    )


@pytest.mark.parametrize(
    "values",
    [
        {"transport": "stdio", "command": None, "url": "https://mcp.example.com/mcp"},
        {"transport": "http", "command": "npx", "url": None},
        {"transport": "sse", "command": "npx", "url": None},
    ],
    ids=["stdio-without-command", "http-without-url", "sse-without-url"],
)
def test_mcp_servers_require_the_target_of_their_transport(tx: psycopg.Connection, values: dict) -> None:
    expect_violation(
        tx, errors.CheckViolation, "transport_target_is_given", "mcp_servers", lambda: new_server(tx, **values)
    )


@pytest.mark.parametrize("transport", ["websocket", "STDIO", ""])
def test_mcp_servers_reject_an_unknown_transport(tx: psycopg.Connection, transport: str) -> None:
    expect_violation(
        tx,
        errors.CheckViolation,
        "transport_is_valid",
        "mcp_servers",
        lambda: new_server(tx, transport=transport, url="https://mcp.example.com/mcp"),
    )


def test_mcp_servers_name_is_unique(tx: psycopg.Connection) -> None:
    expect_violation(
        tx,
        errors.UniqueViolation,
        "mcp_servers_name_key",
        "mcp_servers",
        lambda: new_server(tx, name="filesystem"),
    )


def test_mcp_servers_url_must_be_http_or_https(tx: psycopg.Connection) -> None:
    expect_violation(
        tx,
        errors.CheckViolation,
        "url_is_valid",
        "mcp_servers",
        lambda: new_server(tx, transport="http", command=None, url="ws://mcp.example.com/mcp"),
    )


def test_mcp_servers_env_rejects_a_number_value(tx: psycopg.Connection) -> None:
    expect_violation(
        tx,
        errors.CheckViolation,
        "env_values_are_strings",
        "mcp_servers",
        lambda: new_server(tx, env='{"PORT": 8080}'),
    )


def test_mcp_servers_env_rejects_an_array_of_strings_value(tx: psycopg.Connection) -> None:
    expect_violation(
        tx,
        errors.CheckViolation,
        "env_values_are_strings",
        "mcp_servers",
        lambda: new_server(tx, env='{"ARGS": ["--verbose"]}'),
    )


# ---------------------------------------------------------------------------
# toolsdb.agent_mcp_servers
# ---------------------------------------------------------------------------


def test_agent_mcp_servers_reject_a_duplicate_link(tx: psycopg.Connection) -> None:
    link = new_link(tx)
    expect_violation(
        tx,
        errors.UniqueViolation,
        "agent_mcp_servers_pkey",
        "agent_mcp_servers",
        lambda: new_link(tx, agent_id=link["agent_id"], mcp_server_id=link["mcp_server_id"]),
    )


def test_agent_mcp_servers_reject_a_link_to_a_missing_agent(tx: psycopg.Connection) -> None:
    expect_violation(
        tx,
        errors.ForeignKeyViolation,
        "agent_mcp_servers_agent_id_fkey",
        "agent_mcp_servers",
        lambda: new_link(tx, agent_id="00000000-0000-0000-0000-000000000000"),
    )


def _links_of(conn: psycopg.Connection, agent_id: Any = None, mcp_server_id: Any = None) -> int:
    return scalar(
        conn,
        "select count(*) from toolsdb.agent_mcp_servers where agent_id = %s or mcp_server_id = %s",
        (agent_id, mcp_server_id),
    )


def test_deleting_an_agent_deletes_its_links(tx: psycopg.Connection) -> None:
    agent_id = id_of(tx, "agents", "name", "claude-code")
    before = _links_of(tx, agent_id=agent_id)
    tx.execute("delete from toolsdb.agents where agent_id = %s", (agent_id,))
    after = _links_of(tx, agent_id=agent_id)
    assert (before, after) == (2, 0), (
        f"Deleting claude-code should cascade to its 2 links, but it had {before} and {after} remain."
    )
    servers = scalar(tx, "select count(*) from toolsdb.mcp_servers")
    assert servers == 2, f"Deleting an agent should not delete the MCP servers it used; {servers} remain of 2."


def test_deleting_an_mcp_server_deletes_its_links(tx: psycopg.Connection) -> None:
    server_id = id_of(tx, "mcp_servers", "name", "filesystem")
    before = _links_of(tx, mcp_server_id=server_id)
    tx.execute("delete from toolsdb.mcp_servers where mcp_server_id = %s", (server_id,))
    after = _links_of(tx, mcp_server_id=server_id)
    assert (before, after) == (3, 0), (
        f"Deleting the filesystem server should cascade to its 3 links, but it had {before} and {after} remain."
    )
    agents = scalar(tx, "select count(*) from toolsdb.agents")
    assert agents == 5, f"Deleting an MCP server should not delete the agents using it; {agents} remain of 5."


# ---------------------------------------------------------------------------
# toolsdb.preferences
# ---------------------------------------------------------------------------


def test_preferences_are_unique_per_user_and_category(tx: psycopg.Connection) -> None:
    pref = new_preference(tx, category="ui_settings")
    new_preference(tx, user_id=pref["user_id"], category="notifications")
    expect_violation(
        tx,
        errors.UniqueViolation,
        "preferences_user_id_category_key",
        "preferences",
        lambda: new_preference(tx, user_id=pref["user_id"], category="ui_settings"),
    )


def test_preferences_must_be_an_object(tx: psycopg.Connection) -> None:
    expect_violation(
        tx,
        errors.CheckViolation,
        "preferences_is_object",
        "preferences",
        lambda: new_preference(tx, preferences='["dark"]'),
    )


def test_preferences_containment_finds_the_users_with_a_setting(tx: psycopg.Connection) -> None:
    found = column(
        tx,
        """
        select u.username
        from toolsdb.preferences as p join toolsdb.users as u using (user_id)
        where p.preferences @> '{"theme": "dark"}'
        order by 1
        """,
    )
    assert found == ["alice", "carol"], f"preferences @> theme dark should find alice and carol, but found {found}."


def test_preferences_containment_uses_the_gin_index(tx: psycopg.Connection) -> None:
    tx.execute("set local enable_seqscan = off")
    plan = "\n".join(
        column(tx, """explain select user_id from toolsdb.preferences where preferences @> '{"theme": "dark"}'""")
    )
    assert "preferences_preferences_idx" in plan, (
        f"preferences @> {{...}} should be answered through preferences_preferences_idx, but:\n{plan}"
    )


def test_preferences_nested_path_queries_work(tx: psycopg.Connection) -> None:
    found = column(
        tx,
        """
        select u.username
        from toolsdb.preferences as p join toolsdb.users as u using (user_id)
        where p.category = 'ui_settings' and (p.preferences -> 'notifications' ->> 'email')::boolean
        order by 1
        """,
    )
    assert found == ["alice", "carol"], (
        f"preferences -> 'notifications' ->> 'email' should be true for alice and carol only, but found {found}."
    )


def test_deleting_a_user_deletes_their_preferences(tx: psycopg.Connection) -> None:
    user_id = id_of(tx, "users", "username", "bob")
    count = "select count(*) from toolsdb.preferences where user_id = %s"
    before = scalar(tx, count, (user_id,))
    tx.execute("delete from toolsdb.users where user_id = %s", (user_id,))
    after = scalar(tx, count, (user_id,))
    assert (before, after) == (1, 0), (
        f"Deleting bob should cascade to his preferences, but he had {before} rows and {after} remain."
    )


# ---------------------------------------------------------------------------
# View toolsdb.agent_tools
# ---------------------------------------------------------------------------


def agent_tools(conn: psycopg.Connection) -> dict[str, tuple[list[str], int]]:
    rows = conn.execute("select agent_name, mcp_server_names, mcp_server_count from toolsdb.agent_tools").fetchall()
    return {name: (names, count) for name, names, count in rows}


def test_agent_tools_lists_the_enabled_servers_of_each_agent_sorted(tx: psycopg.Connection) -> None:
    tools = agent_tools(tx)
    assert tools["claude-code"] == (["filesystem", "toolsdb-http"], 2), (
        f"claude-code should list its two enabled servers sorted by name, but the view shows {tools['claude-code']}."
    )
    assert tools["codex"] == (["filesystem"], 1), f"codex should list filesystem only, not {tools['codex']}."


def test_agent_tools_omits_a_disabled_link(tx: psycopg.Connection) -> None:
    link_enabled = scalar(
        tx,
        """
        select l.is_enabled from toolsdb.agent_mcp_servers as l
        join toolsdb.agents as a using (agent_id) join toolsdb.mcp_servers as s using (mcp_server_id)
        where a.name = 'gemini-cli' and s.name = 'filesystem'
        """,
    )
    assert link_enabled is False, "The seed should link gemini-cli to filesystem with is_enabled = false."
    assert agent_tools(tx)["gemini-cli"] == ([], 0), (
        "gemini-cli's only link is disabled, so the view should show it with no server and a count of 0."
    )


def test_agent_tools_omits_a_disabled_server(tx: psycopg.Connection) -> None:
    tx.execute("update toolsdb.mcp_servers set is_enabled = false where name = 'toolsdb-http'")
    tools = agent_tools(tx)
    assert tools["claude-code"] == (["filesystem"], 1), (
        f"With toolsdb-http disabled claude-code should list filesystem only, but the view shows "
        f"{tools['claude-code']}."
    )
    assert tools["pr-reviewer"] == ([], 0), (
        f"With its only server disabled pr-reviewer should show no server, but the view shows {tools['pr-reviewer']}."
    )


def test_agent_tools_shows_agents_without_links_with_an_empty_list(tx: psycopg.Connection) -> None:
    tools = agent_tools(tx)
    assert sorted(tools) == column(tx, "select name from toolsdb.agents order by name"), (
        "The view should have exactly one row per agent, including agents without any MCP server."
    )
    assert tools["local-coder"] == ([], 0), (
        f"local-coder has no link, so it should appear with an empty array (not null) and a count of 0, but the "
        f"view shows {tools['local-coder']}."
    )


def test_agent_tools_count_matches_the_listed_names(tx: psycopg.Connection) -> None:
    tx.execute(
        """
        update toolsdb.agent_mcp_servers set is_enabled = false
        where agent_id = (select agent_id from toolsdb.agents where name = 'claude-code')
          and mcp_server_id = (select mcp_server_id from toolsdb.mcp_servers where name = 'filesystem')
        """
    )
    new_link(tx, agent_id=id_of(tx, "agents", "name", "local-coder"))
    mismatched = {name: value for name, value in agent_tools(tx).items() if len(value[0]) != value[1]}
    assert mismatched == {}, f"mcp_server_count should equal the number of mcp_server_names, but: {mismatched}."


# ---------------------------------------------------------------------------
# seeds/10_identity.sql
# ---------------------------------------------------------------------------


def test_identity_seed_loads_the_documented_demo_data(tx: psycopg.Connection) -> None:
    counts = {t: scalar(tx, f"select count(*) from toolsdb.{t}") for t in IDENTITY_TABLES}
    expected = {"users": 4, "projects": 2, "agents": 5, "mcp_servers": 2, "agent_mcp_servers": 5, "preferences": 5}
    assert counts == expected, f"The identity seed should load {expected} rows, but the tables hold {counts}."


def test_identity_seed_run_twice_changes_nothing(pg: Pg, db: str, conn: psycopg.Connection) -> None:
    load(pg, db, IDENTITY_SEED)
    before = table_contents(conn)
    load(pg, db, IDENTITY_SEED)
    after = table_contents(conn)
    changed = {t: sorted(set(after[t]) ^ set(before[t])) for t in before if before[t] != after[t]}
    assert after == before, (
        f"A second run of the identity seed should leave every row identical (values, updated_at and xmin), "
        f"but these changed: {changed}."
    )


def test_identity_seed_restores_an_altered_row(pg: Pg, db: str, conn: psycopg.Connection) -> None:
    load(pg, db, IDENTITY_SEED)
    identity = "select user_id, created_at from toolsdb.users where username = 'alice'"
    alice_before = conn.execute(identity).fetchone()
    conn.execute(
        """
        update toolsdb.users
        set role = 'user', display_name = 'Hacked', metadata = '{"team": "none"}', is_active = false
        where username = 'alice'
        """
    )
    conn.commit()
    before = table_contents(conn)
    load(pg, db, IDENTITY_SEED)
    after = table_contents(conn)
    alice = conn.execute(
        "select role, display_name, metadata, is_active from toolsdb.users where username = 'alice'"
    ).fetchone()
    assert alice == ("admin", "Alice Admin", {"team": "platform"}, True), (
        f"Re-running the identity seed should restore alice's seeded values, but she is now {alice}."
    )
    assert conn.execute(identity).fetchone() == alice_before, (
        "Re-running the identity seed should restore alice in place, keeping her user_id and created_at."
    )
    changed = [(t, row) for t in before for row in sorted(set(after[t]) - set(before[t]))]
    assert len(changed) == 1 and '"username": "alice"' in changed[0][1][1], (
        f"Re-running the identity seed should rewrite only the altered row, but it rewrote: {changed}."
    )
    audited = conn.execute(
        "select action, entity_type, new_values ->> 'display_name' from toolsdb.audit_logs"
        " where action <> 'insert' order by audit_id"
    ).fetchall()
    assert audited == [("update", "users", "Hacked"), ("update", "users", "Alice Admin")], (
        f"The audit log should hold the tampering and the restore, and nothing else: {audited}."
    )


def test_identity_seed_recreates_a_deleted_link(pg: Pg, db: str, conn: psycopg.Connection) -> None:
    load(pg, db, IDENTITY_SEED)
    conn.execute(
        """
        delete from toolsdb.agent_mcp_servers
        where agent_id = (select agent_id from toolsdb.agents where name = 'codex')
        """
    )
    conn.commit()
    load(pg, db, IDENTITY_SEED)
    assert agent_tools(conn)["codex"] == (["filesystem"], 1), (
        "Re-running the identity seed should recreate codex's deleted link to filesystem."
    )
