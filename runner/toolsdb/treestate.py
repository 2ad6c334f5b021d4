"""What a migrate leaves recorded about the tree of SQL it applied, and the
check that a database is exactly so: the no-op of ``toolsdb migrate``.

Without psycopg: the launcher's fast path (migrate_fast.py, over libpq) and
the full migrate (migrate.py, over psycopg) share these. A full migrate
records, in the transaction that applies the tree, its digest and the actions
of repeatable/ (toolsdb_migrations.tree_state); a later migrate of the same
tree, finding every migration applied and every definition as recorded,
applies bootstrap and re-runs those actions, nothing else: the same outcome
as the full migrate, which would find nothing else to do.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from . import __version__, paths
from .errors import ToolsdbError

# pg_advisory_lock key: 'toolsdb' as an integer; one migrator per database.
LOCK_KEY = int.from_bytes(b"toolsdb", "big")
MIGRATION_SCHEMA = "toolsdb_migrations"
MIGRATION_TABLE = "_yoyo_migration"

# Both migrate paths (migrate.py over psycopg, migrate_fast.py over libpq) ask these.
CITUS_PRESENT = "select exists (select from pg_catalog.pg_extension where extname = 'citus')"
# Whether the connecting user may act as toolsdb_owner (migrate then does: docs/security.md).
OWNER = (
    "select case when exists (select from pg_catalog.pg_roles where rolname = 'toolsdb_owner')"
    " then pg_catalog.pg_has_role(current_user, 'toolsdb_owner', 'MEMBER') else false end"
)

# The definition of a unit's object as the catalog shows it, comments included
# (null when the object does not exist), for u (kind, schema, obj, tbl).
CATALOG_DIGEST = """pg_catalog.md5(case u.kind
    when 'function' then (
        select pg_catalog.string_agg(
            pg_catalog.pg_get_functiondef(p.oid) || coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), ''),
            e'\\n' order by p.oid
        )
        from pg_catalog.pg_proc as p
        where p.pronamespace = pg_catalog.to_regnamespace(u.schema) and p.proname = u.obj
    )
    when 'view' then (
        select pg_catalog.concat_ws(
            e'\\n', pg_catalog.pg_get_viewdef(c.oid), c.reloptions::text,
            pg_catalog.obj_description(c.oid, 'pg_class'),
            (
                select pg_catalog.string_agg(
                    a.attname || ': ' || coalesce(pg_catalog.col_description(c.oid, a.attnum), ''),
                    e'\\n' order by a.attnum
                )
                from pg_catalog.pg_attribute as a
                where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
            )
        )
        from pg_catalog.pg_class as c
        where c.oid = pg_catalog.to_regclass(u.schema || '.' || u.obj) and c.relkind = 'v'
    )
    when 'trigger' then (
        select pg_catalog.pg_get_triggerdef(t.oid) || coalesce(pg_catalog.obj_description(t.oid, 'pg_trigger'), '')
        from pg_catalog.pg_trigger as t
        where t.tgrelid = pg_catalog.to_regclass(u.tbl) and t.tgname = u.obj
    )
end)"""

# The rows of toolsdb_migrations.definitions, digested as a whole: recorded with
# the tree (record_tree) and compared by the no-op check (tree_up_to_date).
DEFINITIONS_DIGEST = """(
    select pg_catalog.md5(coalesce(pg_catalog.string_agg(
        d.object_name || ' ' || d.source_digest || ' ' || d.catalog_digest || ' ' || d.source_file,
        e'\\n' order by d.object_name
    ), ''))
    from toolsdb_migrations.definitions as d
)"""

# The recorded tree, when the database is exactly as a migrate of it left it:
# the same tree digest, the given migrations applied (and no other), the same
# definitions rows, and each recorded object in the catalog as recorded. Its
# actions then are all a migrate would run.
TREE_UP_TO_DATE = (
    """
select s.actions
from toolsdb_migrations.tree_state as s
where s.state_id = 'tree'
    and s.tree_digest = {tree}
    and (
        select coalesce(pg_catalog.array_agg(m.migration_id::text order by m.migration_id), array[]::text[])
        from toolsdb_migrations._yoyo_migration as m
    ) = {ids}::text[]
    and s.definitions_digest = """
    + DEFINITIONS_DIGEST
    + """
    and not exists (
        select
        from (
            select
                d.catalog_digest,
                pg_catalog.split_part(d.object_name, ' ', 1) as kind,
                pg_catalog.split_part(
                    pg_catalog.split_part(d.object_name, ' ', case when t.is_trigger then 4 else 2 end), '.', 1
                ) as schema,
                case when t.is_trigger then pg_catalog.split_part(d.object_name, ' ', 2)
                    else pg_catalog.split_part(pg_catalog.split_part(d.object_name, ' ', 2), '.', 2)
                end as obj,
                case when t.is_trigger then pg_catalog.split_part(d.object_name, ' ', 4) else '' end as tbl
            from toolsdb_migrations.definitions as d
            cross join lateral (select pg_catalog.starts_with(d.object_name, 'trigger ') as is_trigger) as t
        ) as u
        where """
    + CATALOG_DIGEST
    + """ is distinct from u.catalog_digest
    )
"""
)

# Whether a tree can have been recorded: yoyo's table and the record exist.
TREE_RECORDED = (
    "select pg_catalog.to_regclass('toolsdb_migrations._yoyo_migration') is not null"
    " and pg_catalog.to_regclass('toolsdb_migrations.tree_state') is not null"
)

RECORD_TREE = (
    """
insert into toolsdb_migrations.tree_state as s (state_id, tree_digest, definitions_digest, actions)
select 'tree', {tree}, """
    + DEFINITIONS_DIGEST
    + """, {actions}
on conflict on constraint tree_state_pkey do update
    set tree_digest = excluded.tree_digest,
        definitions_digest = excluded.definitions_digest,
        actions = excluded.actions,
        recorded_at = pg_catalog.now()
    where (s.tree_digest, s.definitions_digest, s.actions)
        is distinct from (excluded.tree_digest, excluded.definitions_digest, excluded.actions)
"""
)


@dataclass(frozen=True)
class Tree:
    """The SQL this toolsdb applies, as a whole: its digest and migration ids."""

    digest: str
    migration_ids: list[str]


def tree() -> Tree:
    """SHA-256 over toolsdb's version and the relative names and bytes of
    schema/00_bootstrap.sql, migrations/ and repeatable/; and the ids of the
    migrations (yoyo's: the file name without .sql)."""
    root = paths.sql_root()
    migrations = paths.sql_files(paths.migrations_dir())
    digest = hashlib.sha256(f"toolsdb {__version__}\n".encode())
    for path in [paths.bootstrap_file(), *migrations, *paths.sql_files(paths.repeatable_dir())]:
        name = path.relative_to(root) if path.is_relative_to(root) else path
        digest.update(f"{name}\0".encode() + path.read_bytes() + b"\0")
    ids = [p.name[: -len(".sql")] for p in migrations if not p.name.endswith(".rollback.sql")]
    return Tree(digest.hexdigest(), ids)


def lock_timeout() -> str:
    """How long a migration may wait for a table lock (TOOLSDB_LOCK_TIMEOUT)."""
    value = os.environ.get("TOOLSDB_LOCK_TIMEOUT", "10s")
    if not re.fullmatch(r"\d+\s*(ms|s|min|h)?", value.strip()):
        raise ToolsdbError(f"TOOLSDB_LOCK_TIMEOUT={value!r} is not a duration such as 10s or 500ms")
    return value.strip()
