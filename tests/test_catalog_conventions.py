"""Schema conventions, read from the catalog of a migrated database.

Every later domain keeps these green: they run over every toolsdb schema,
not over a list of known tables.
"""

from __future__ import annotations

import re

import psycopg
import pytest

# Our namespaces: everything but yoyo's bookkeeping (which yoyo owns).
APP_SCHEMAS = ("toolsdb", "toolsdb_private")
ALL_SCHEMAS = (*APP_SCHEMAS, "toolsdb_migrations")
SNAKE = re.compile(r"^_?[a-z][a-z0-9_]*$")
# Triggers fire in name order: _NNN_task (Graphile's convention).
TRIGGER = re.compile(r"^_[0-9]{3}_[a-z][a-z0-9_]*$")


def rows(conn: psycopg.Connection, query: str, *params) -> list[tuple]:
    if len(params) == 1 and isinstance(params[0], dict):
        return conn.execute(query, params[0]).fetchall()
    return conn.execute(query, params or None).fetchall()


def tables(conn) -> list[tuple]:
    return rows(
        conn,
        """
        select n.nspname, c.relname, c.oid
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%s) and c.relkind in ('r', 'p')
        order by 1, 2""",
        list(APP_SCHEMAS),
    )


def test_there_are_tables_to_check(conn) -> None:
    assert len(tables(conn)) >= 6


def test_every_table_has_a_primary_key(conn) -> None:
    missing = rows(
        conn,
        """
        select c.oid::regclass::text
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%s) and c.relkind in ('r', 'p')
          and not exists (select from pg_constraint k where k.conrelid = c.oid and k.contype = 'p')
        """,
        list(APP_SCHEMAS),
    )
    assert missing == [], f"tables without a primary key: {missing}"


def test_every_table_view_and_column_has_a_comment(conn) -> None:
    missing = rows(
        conn,
        """
        select c.oid::regclass::text
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm')
          and coalesce(obj_description(c.oid, 'pg_class'), '') = ''
        """,
        list(APP_SCHEMAS),
    )
    assert missing == [], f"tables or views without a COMMENT: {missing}"
    missing_columns = rows(
        conn,
        """
        select c.oid::regclass::text || '.' || a.attname
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm') and not c.relispartition
          and coalesce(col_description(c.oid, a.attnum), '') = ''
        """,
        list(APP_SCHEMAS),
    )
    assert missing_columns == [], f"columns without a COMMENT: {missing_columns}"


def test_every_schema_and_function_has_a_comment(conn) -> None:
    missing = rows(
        conn,
        """
        select n.nspname from pg_namespace n
        where n.nspname = any(%s) and coalesce(obj_description(n.oid, 'pg_namespace'), '') = ''
        union all
        select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = any(%s) and coalesce(obj_description(p.oid, 'pg_proc'), '') = ''
        """,
        list(ALL_SCHEMAS),
        list(APP_SCHEMAS),
    )
    assert missing == [], f"schemas or functions without a COMMENT: {missing}"


def test_every_foreign_key_is_covered_by_an_index(conn) -> None:
    # An index covers a foreign key when its leading columns are the key's
    # columns (in any order), so deletes on the parent need no scan.
    uncovered = rows(
        conn,
        """
        select k.conrelid::regclass::text, k.conname
        from pg_constraint k
        join pg_namespace n on n.oid = k.connamespace
        where k.contype = 'f' and n.nspname = any(%s)
          and not exists (
            select from pg_index i
            where i.indrelid = k.conrelid
              and i.indpred is null
              and (select array_agg(x order by x)
                   from unnest((i.indkey::int2[])[0:cardinality(k.conkey) - 1]) x)
                  = (select array_agg(y order by y) from unnest(k.conkey) y))
        """,
        list(APP_SCHEMAS),
    )
    assert uncovered == [], f"foreign keys without an index: {uncovered}"


def test_every_foreign_key_says_what_happens_on_delete(conn) -> None:
    # 'a' (no action) is the default one gets by saying nothing.
    implicit = rows(
        conn,
        """
        select k.conrelid::regclass::text, k.conname from pg_constraint k
        join pg_namespace n on n.oid = k.connamespace
        where k.contype = 'f' and n.nspname = any(%s) and k.confdeltype = 'a'
        """,
        list(APP_SCHEMAS),
    )
    assert implicit == [], f"foreign keys with no explicit on delete: {implicit}"


@pytest.mark.parametrize(
    ("type_sql", "why"),
    [
        ("timestamp without time zone", "use timestamptz"),
        ("json", "use jsonb"),
        ("character varying", "use text with a named length CHECK"),
        ("character", "use text with a named length CHECK"),
        ("money", "use numeric"),
        ("serial", "use identity or uuid keys"),
    ],
)
def test_no_column_has_a_discouraged_type(conn, type_sql: str, why: str) -> None:
    bad = rows(
        conn,
        """
        select c.oid::regclass::text || '.' || a.attname
        from pg_attribute a
        join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm', 'c')
          and a.attnum > 0 and not a.attisdropped
          and format_type(a.atttypid, null) = %s
        """,
        list(APP_SCHEMAS),
        type_sql,
    )
    assert bad == [], f"columns of type {type_sql} ({why}): {bad}"


def test_no_column_defaults_to_a_serial_sequence(conn) -> None:
    serials = rows(
        conn,
        """
        select c.oid::regclass::text || '.' || a.attname
        from pg_attrdef d
        join pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum
        join pg_class c on c.oid = d.adrelid
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%s) and pg_get_expr(d.adbin, d.adrelid) like 'nextval(%%'
        """,
        list(APP_SCHEMAS),
    )
    assert serials == [], f"serial columns (use generated ... as identity): {serials}"


def test_every_table_with_updated_at_has_the_timestamps_trigger(conn) -> None:
    missing = rows(
        conn,
        """
        select c.oid::regclass::text
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        join pg_attribute a on a.attrelid = c.oid and a.attname = 'updated_at' and not a.attisdropped
        where n.nspname = any(%s) and c.relkind in ('r', 'p')
          and not exists (
            select from pg_trigger t
            where t.tgrelid = c.oid and not t.tgisinternal
              and t.tgfoid = 'toolsdb_private.tg__timestamps()'::regprocedure
              and t.tgtype & 2 = 2                     -- before
              and t.tgtype & (4 | 16) = (4 | 16))      -- insert and update
        """,
        list(APP_SCHEMAS),
    )
    assert missing == [], f"tables with updated_at but no _100_timestamps trigger: {missing}"


def test_nothing_lives_in_public(conn) -> None:
    objects = rows(
        conn,
        """
        select 'relation ' || c.relname from pg_class c where c.relnamespace = 'public'::regnamespace
        union all
        select 'function ' || p.proname from pg_proc p where p.pronamespace = 'public'::regnamespace
        union all
        select 'type ' || t.typname from pg_type t where t.typnamespace = 'public'::regnamespace
        """,
    )
    assert objects == [], f"objects in schema public: {objects}"


def test_every_identifier_is_snake_case_and_short(conn) -> None:
    names = rows(
        conn,
        """
        select 'schema', nspname from pg_namespace where nspname = any(%(s)s)
        union all
        select 'relation', c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = any(%(s)s)
        union all
        select 'column', c.relname || '.' || a.attname from pg_attribute a
          join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = any(%(s)s) and a.attnum > 0 and not a.attisdropped
        union all
        select 'constraint', k.conname from pg_constraint k join pg_namespace n on n.oid = k.connamespace
         where n.nspname = any(%(s)s)
        union all
        select 'function', p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = any(%(s)s)
        union all
        select 'trigger', t.tgname from pg_trigger t join pg_class c on c.oid = t.tgrelid
          join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = any(%(s)s) and not t.tgisinternal
        """,
        {"s": list(APP_SCHEMAS)},
    )
    bad = []
    for kind, name in names:
        pattern = TRIGGER if kind == "trigger" else SNAKE
        for part in name.split("."):
            if not pattern.match(part) or len(part.encode()) >= 63:
                bad.append(f"{kind} {name}")
    assert bad == [], f"identifiers not snake_case or too long: {bad}"


def test_every_constraint_is_named_by_the_convention(conn) -> None:
    # Postgres would invent <table>_<col>_check / _fkey / _key names for
    # unnamed constraints; ours are explicit: pkey, fkey, key, or a CHECK
    # named for the rule it states (never the generated *_check).
    bad = rows(
        conn,
        """
        select k.conrelid::regclass::text, k.conname, k.contype
        from pg_constraint k join pg_namespace n on n.oid = k.connamespace
        where n.nspname = any(%s) and k.conrelid <> 0 and (
              (k.contype = 'p' and k.conname <> (select relname from pg_class where oid = k.conrelid) || '_pkey')
           or (k.contype = 'f' and k.conname !~ '_fkey$')
           or (k.contype = 'u' and k.conname !~ '_key$')
           or (k.contype = 'c' and k.conname ~ '_check\\d*$'))
        """,
        list(APP_SCHEMAS),
    )
    assert bad == [], f"constraints not named by the convention: {bad}"


def test_every_text_column_is_bounded_by_a_check(conn) -> None:
    # text instead of varchar(n): each text column of a table is named in at
    # least one CHECK constraint (length, format or allowed values), or is a
    # foreign key, bounded by the CHECKs of the column it references.
    unbounded = rows(
        conn,
        """
        select c.oid::regclass::text || '.' || a.attname
        from pg_attribute a
        join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%s) and c.relkind in ('r', 'p')
          and a.attnum > 0 and not a.attisdropped and a.atttypid = 'text'::regtype
          and not exists (select from pg_constraint k
                          where k.conrelid = c.oid and k.contype in ('c', 'f') and a.attnum = any(k.conkey))
        """,
        list(APP_SCHEMAS),
    )
    assert unbounded == [], f"text columns without any CHECK: {unbounded}"


def test_every_security_definer_function_pins_search_path(conn) -> None:
    unpinned = rows(
        conn,
        """
        select p.oid::regprocedure::text
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = any(%s) and p.prosecdef
          and not exists (select from unnest(coalesce(p.proconfig, '{}')) cfg
                          where cfg like 'search_path=%%')
        """,
        list(APP_SCHEMAS),
    )
    assert unpinned == [], f"security definer functions without search_path: {unpinned}"


def test_every_plpgsql_function_pins_search_path(conn) -> None:
    # Stricter than the rule for security definer: our functions run inside
    # triggers fired by any role with any search_path.
    unpinned = rows(
        conn,
        """
        select p.oid::regprocedure::text
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = any(%s) and p.prolang = (select oid from pg_language where lanname = 'plpgsql')
          and not exists (select from unnest(coalesce(p.proconfig, '{}')) cfg
                          where cfg like 'search_path=%%')
        """,
        list(APP_SCHEMAS),
    )
    assert unpinned == [], f"plpgsql functions without search_path: {unpinned}"


def test_every_table_is_audited_or_exempt_with_a_reason(conn) -> None:
    unaudited = rows(
        conn,
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


def test_every_audited_table_also_captures_truncate(conn) -> None:
    missing = rows(
        conn,
        """
        select t.tgrelid::regclass::text from pg_trigger t
        where t.tgname = '_900_audit'
          and not exists (select from pg_trigger u where u.tgrelid = t.tgrelid and u.tgname = '_900_audit_truncate')
        """,
    )
    assert missing == [], f"audited tables without the truncate trigger: {missing}"


def test_every_view_is_security_invoker(conn) -> None:
    definer_views = rows(
        conn,
        """
        select c.oid::regclass::text
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%s) and c.relkind = 'v'
          and not coalesce('security_invoker=true' = any(c.reloptions), false)
        """,
        list(APP_SCHEMAS),
    )
    assert definer_views == [], f"views that would bypass row-level security (not security_invoker): {definer_views}"


def test_every_table_with_a_session_or_project_has_row_level_security(conn) -> None:
    exposed = rows(
        conn,
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


def test_no_function_is_executable_by_public(conn) -> None:
    # A null proacl means the default: execute for public.
    public_functions = rows(
        conn,
        """
        select p.oid::regprocedure::text
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = any(%s)
          and (p.proacl is null
               or exists (select from aclexplode(p.proacl) x where x.grantee = 0 and x.privilege_type = 'EXECUTE'))
        """,
        list(APP_SCHEMAS),
    )
    assert public_functions == [], f"functions executable by public: {public_functions}"
