"""Schema conventions, read from the catalog of a migrated database.

One engine: toolsdb_private.convention_findings() is the checker that
toolsdb.validate_schema() applies to the scripts it validates, and these
tests hold toolsdb's own schemas to it (and prove each of its rules fires
on a planted violation). The tests after that are the rules the checker
cannot express because they are toolsdb's own policies (change capture,
row-level security, privileges, comments on functions and schemas).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest

from .conftest import ROOT, Pg

# Our namespaces: everything but yoyo's bookkeeping (which yoyo owns).
APP_SCHEMAS = ("toolsdb", "toolsdb_private", "toolsdb_monitoring")
ALL_SCHEMAS = (*APP_SCHEMAS, "toolsdb_migrations")
SNAKE = re.compile(r"^_?[a-z][a-z0-9_]*$")


@pytest.fixture(scope="module")
def catalog(pg: Pg, template: str) -> Iterator[psycopg.Connection]:
    """One clone of the migrated template for the whole module: these tests
    only read the catalog (the planted violations roll back)."""
    with pg.clone(f"catalog_{pg.major}", template) as name, psycopg.connect(pg.conninfo(name)) as conn:
        yield conn


def rows(conn: psycopg.Connection, query: str, *params) -> list[tuple]:
    try:
        return conn.execute(query, params or None).fetchall()
    finally:
        conn.rollback()


def findings(conn: psycopg.Connection, namespaces: list[str]) -> list[tuple]:
    return conn.execute(
        "select object_name, column_name, rule, message from toolsdb_private.convention_findings(%s::regnamespace[])"
        " order by rule, object_name, column_name",
        (namespaces,),
    ).fetchall()


def test_there_are_tables_to_check(catalog: psycopg.Connection) -> None:
    count = rows(
        catalog,
        "select count(*) from pg_class where relnamespace = 'toolsdb'::regnamespace and relkind in ('r', 'p')",
    )[0][0]
    assert count >= 30


def test_toolsdb_meets_every_rule_of_the_convention_checker(catalog: psycopg.Connection) -> None:
    found = findings(catalog, list(APP_SCHEMAS))
    catalog.rollback()
    assert found == [], "toolsdb's schemas should meet the rules validate_schema() holds scripts to"


def test_the_runners_bookkeeping_table_meets_them_too(catalog: psycopg.Connection) -> None:
    # yoyo's own tables (varchar, timestamp) are yoyo's; ours is not.
    found = [f for f in findings(catalog, ["toolsdb_migrations"]) if f[0] == "definitions"]
    catalog.rollback()
    assert found == []


# One object per rule that breaks it, in a schema that never commits.
PLANTED = """
create schema conventions_probe;
create table conventions_probe.no_key (a integer);
create table conventions_probe.typed (
    id integer primary key, at timestamp, v varchar(3), j json, m money, s serial
);
create table conventions_probe.noted (id integer primary key, note text);
create table conventions_probe.child (
    id integer primary key,
    parent_id integer,
    constraint child_parent_fk foreign key (parent_id) references conventions_probe.noted (id)
);
create table conventions_probe.stamped (id integer primary key, updated_at timestamptz);
create view conventions_probe.definer as select 1 as x;
create table conventions_probe."BadName" (id integer primary key);
create function conventions_probe.tg() returns trigger language plpgsql as $$ begin return new; end $$;
create function conventions_probe."camelCase"() returns integer language sql return 1;
create trigger audit before insert on conventions_probe.noted
for each row execute function conventions_probe.tg();
"""

# rule -> (object, column) a finding must name
EXPECTED = {
    "primary_key": ("no_key", None),
    "table_comment": ("no_key", None),
    "column_comment": ("no_key", "a"),
    "timestamptz": ("typed", "at"),
    "text_not_varchar": ("typed", "v"),
    "jsonb_not_json": ("typed", "j"),
    "numeric_not_money": ("typed", "m"),
    "identity_not_serial": ("typed", "s"),
    "text_bounded": ("noted", "note"),
    "foreign_key_index": ("child", None),
    "foreign_key_on_delete": ("child", None),
    "constraint_name": ("child", None),
    "updated_at_trigger": ("stamped", None),
    "view_security_invoker": ("definer", None),
    "snake_case": ("BadName", None),
    "trigger_name": ("noted", None),
    "function_search_path": ("tg", None),
}


def test_every_rule_of_the_checker_is_planted_here(catalog: psycopg.Connection) -> None:
    # The rules the function can report, read from its own source.
    source = rows(catalog, "select prosrc from pg_proc where oid = 'toolsdb_private.convention_findings'::regproc")
    rules = set(re.findall(r"'([a-z_]+)', '(?:error|warning)'", source[0][0]))
    rules |= {"timestamptz", "text_not_varchar", "jsonb_not_json", "numeric_not_money"}  # from its values list
    assert rules == set(EXPECTED)


@pytest.mark.parametrize("rule", sorted(EXPECTED))
def test_each_rule_fires_on_a_planted_violation(catalog: psycopg.Connection, rule: str) -> None:
    try:
        catalog.execute(PLANTED)
        found = {(o, c, r) for o, c, r, _ in findings(catalog, ["conventions_probe"])}
    finally:
        catalog.rollback()
    obj, column = EXPECTED[rule]
    assert (obj, column, rule) in found, sorted(found)


def test_a_domain_over_text_bounds_its_columns_only_with_a_check(catalog: psycopg.Connection) -> None:
    # The audit log's rules are domains (docs/security.md, "What capture costs").
    try:
        catalog.execute(
            "create schema conventions_probe;"
            " create domain conventions_probe.loose as text;"
            " create domain conventions_probe.bounded as text constraint bounded_length_is_valid"
            " check (char_length(value) <= 10);"
            " create table conventions_probe.domained ("
            " id integer primary key, loose conventions_probe.loose, bounded conventions_probe.bounded)"
        )
        found = {(o, c, r) for o, c, r, _ in findings(catalog, ["conventions_probe"])}
    finally:
        catalog.rollback()
    assert ("domained", "loose", "text_bounded") in found, sorted(found)
    assert ("domained", "bounded", "text_bounded") not in found, sorted(found)


def test_a_function_name_is_held_to_snake_case(catalog: psycopg.Connection) -> None:
    try:
        catalog.execute(PLANTED)
        found = [f[2] for f in findings(catalog, ["conventions_probe"]) if f[0] == "camelCase"]
    finally:
        catalog.rollback()
    assert found == ["snake_case"]


# ---------------------------------------------------------------------------
# toolsdb's own policies, which the checker does not express
# ---------------------------------------------------------------------------


def test_every_schema_and_function_has_a_comment(catalog: psycopg.Connection) -> None:
    missing = rows(
        catalog,
        """
        select n.nspname from pg_namespace n
        where n.nspname = any(%s) and coalesce(obj_description(n.oid, 'pg_namespace'), '') = ''
        union all
        select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = any(%s) and coalesce(obj_description(p.oid, 'pg_proc'), '') = ''
          and not exists (select from pg_depend d where d.objid = p.oid and d.deptype = 'e')
        """,
        list(ALL_SCHEMAS),
        list(APP_SCHEMAS),
    )
    assert missing == [], f"schemas or functions without a COMMENT: {missing}"


def test_every_schema_name_is_snake_case(catalog: psycopg.Connection) -> None:
    names = [r[0] for r in rows(catalog, "select nspname from pg_namespace where nspname like 'toolsdb%%'")]
    assert len(names) == 5, names
    assert [n for n in names if not SNAKE.match(n)] == []


def test_nothing_lives_in_public(catalog: psycopg.Connection) -> None:
    objects = rows(
        catalog,
        """
        select 'relation ' || c.relname from pg_class c where c.relnamespace = 'public'::regnamespace
        union all
        select 'function ' || p.proname from pg_proc p where p.pronamespace = 'public'::regnamespace
        union all
        select 'type ' || t.typname from pg_type t where t.typnamespace = 'public'::regnamespace
        """,
    )
    assert objects == [], f"objects in schema public: {objects}"


def test_every_table_is_audited_or_exempt_with_a_reason(catalog: psycopg.Connection) -> None:
    unaudited = rows(
        catalog,
        """
        select c.oid::regclass::text
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%s) and c.relkind in ('r', 'p') and not c.relispartition
          and not exists (
            select from pg_trigger t
            where t.tgrelid = c.oid and t.tgname = '_900_audit'
              and t.tgfoid = 'toolsdb_private.tg__audit()'::regprocedure)
          and not exists (
            select from toolsdb_private.audit_exemptions e
            where e.table_name = n.nspname || '.' || c.relname)
        """,
        list(APP_SCHEMAS),
    )
    assert unaudited == [], f"tables neither audited (toolsdb.audit_table) nor exempt with a reason: {unaudited}"


def test_every_audited_table_also_captures_truncate(catalog: psycopg.Connection) -> None:
    missing = rows(
        catalog,
        """
        select t.tgrelid::regclass::text from pg_trigger t
        where t.tgname = '_900_audit'
          and not exists (select from pg_trigger u where u.tgrelid = t.tgrelid and u.tgname = '_900_audit_truncate')
        """,
    )
    assert missing == [], f"audited tables without the truncate trigger: {missing}"


def test_every_table_with_a_session_or_project_has_row_level_security(catalog: psycopg.Connection) -> None:
    exposed = rows(
        catalog,
        """
        select c.oid::regclass::text
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'toolsdb' and c.relkind in ('r', 'p') and not c.relispartition
          and exists (select from pg_attribute a where a.attrelid = c.oid and not a.attisdropped
                      and a.attname in ('session_id', 'project_id'))
          and not (c.relrowsecurity
                   and exists (select from pg_policy p where p.polrelid = c.oid
                               and 'toolsdb_app'::regrole = any(p.polroles)))
        """,
    )
    assert exposed == [], f"tables with a session or project but no row-level security for toolsdb_app: {exposed}"


def test_no_function_is_executable_by_public(catalog: psycopg.Connection) -> None:
    # A null proacl means the default: execute for public.
    public_functions = rows(
        catalog,
        """
        select p.oid::regprocedure::text
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = any(%s)
          and not exists (select from pg_depend d where d.objid = p.oid and d.deptype = 'e')
          and (p.proacl is null
               or exists (select from aclexplode(p.proacl) x where x.grantee = 0 and x.privilege_type = 'EXECUTE'))
        """,
        list(APP_SCHEMAS),
    )
    assert public_functions == [], f"functions executable by public: {public_functions}"


def test_the_citus_map_gives_every_table_a_role(catalog: psycopg.Connection) -> None:
    # docs/scaling.md, "Every table's role": migrating onto Citus distributes
    # the tables as it says, so a new table needs its line there.
    text = (ROOT / "docs" / "scaling.md").read_text(encoding="utf-8")
    section = text.split("### Every table's role", 1)[1].split("### What would have to change", 1)[0]
    tables = rows(
        catalog,
        "select n.nspname, c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname in ('toolsdb', 'toolsdb_private') and c.relkind in ('r', 'p') and not c.relispartition",
    )
    missing = [
        f"{schema}.{name}"
        for schema, name in tables
        if f"`{name}`" not in section and f"`{schema}.{name}`" not in section
    ]
    assert not missing, f"docs/scaling.md maps no Citus role for: {', '.join(sorted(missing))}"
