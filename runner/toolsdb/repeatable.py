"""The re-applied definitions of repeatable/: applied after the migrations,
in the same transaction, on every ``toolsdb migrate``.

A file is a sequence of *definitions* and *actions*:

* a definition is one ``create or replace function|procedure|view|trigger``
  statement with the ``comment on`` statements for that object right after
  it. It runs only when its statements (SHA-256) or its definition in the
  catalog (MD5 of pg_get_functiondef/viewdef/triggerdef and its comments)
  differ from what ``toolsdb_migrations.definitions`` recorded when it was
  last applied: a migrate with nothing to do rewrites no catalog row and
  invalidates no cached plan, and an object changed or dropped behind
  toolsdb's back is put back;
* an action is any other statement (``select toolsdb.audit_table(...)``,
  the grants' ``do`` block, partitions created ahead). It runs on every
  migrate, and is written to change nothing when there is nothing to do.

Objects are named ``schema.name`` in lowercase, functions are not
overloaded, and a comment follows its object, so each object has one
definition in one file (tests/test_migration_model.py holds the tree to it).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from . import paths
from .errors import ToolsdbError
from .sqlfiles import Echo, Statement, display_name, execute, split
from .treestate import CATALOG_DIGEST, RECORD_TREE, TREE_RECORDED, TREE_UP_TO_DATE

_NAME = r"([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)"
_CREATE = re.compile(r"create\s+or\s+replace\s+(function|procedure|view|trigger)\b", re.I)
# Unquoted names only (PostgreSQL folds them to lowercase, and so do we).
_ROUTINE = re.compile(r"create\s+or\s+replace\s+(?:function|procedure)\s+" + _NAME + r"\s*\(", re.I)
_VIEW = re.compile(r"create\s+or\s+replace\s+view\s+" + _NAME + r"[\s(]", re.I)
_TRIGGER = re.compile(r"create\s+or\s+replace\s+trigger\s+([a-z_][a-z0-9_]*)\s.*?\bon\s+" + _NAME + r"\s", re.S | re.I)
_COMMENT = re.compile(r"comment\s+on\s+", re.I)
_COMMENT_ROUTINE = re.compile(r"comment\s+on\s+(?:function|procedure)\s+" + _NAME + r"\s*\(", re.I)
_COMMENT_VIEW = re.compile(
    r"comment\s+on\s+(?:view\s+" + _NAME + r"|column\s+" + _NAME + r"\.[a-z_][a-z0-9_]*)\s+is\b", re.I
)
_COMMENT_TRIGGER = re.compile(r"comment\s+on\s+trigger\s+([a-z_][a-z0-9_]*)\s+on\s+" + _NAME + r"\s+is\b", re.I)
# Statements that would end or split toolsdb's one transaction.
TRANSACTION_CONTROL = frozenset(
    {"begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release", "prepare"}
)


class DefinitionError(ToolsdbError):
    """A file of repeatable/ breaks the rules of the folder."""


def transaction_control(stmt: Statement) -> str | None:
    """The statement's keyword if it is transaction control, else None."""
    words = stmt.first_words(2)
    if not words or words[0] not in TRANSACTION_CONTROL:
        return None
    if words[0] == "prepare" and words[1:] != ["transaction"]:
        return None  # PREPARE name AS ... (a prepared statement)
    return " ".join(words).upper() if words[0] == "prepare" else words[0].upper()


@dataclass
class Unit:
    """A definition (kind function, view or trigger) or an action."""

    kind: str
    name: str
    path: Path
    statements: list[Statement] = field(default_factory=list)
    schema: str = ""
    obj: str = ""
    table: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def digest(self) -> str:
        return hashlib.sha256("\n".join(s.sql for s in self.statements).encode()).hexdigest()


def _where(path: Path, stmt: Statement) -> str:
    return f"{display_name(path)} line {stmt.line}"


def _definition(path: Path, stmt: Statement) -> Unit | None:
    """The unit a ``create or replace`` statement starts, None for others."""
    head = " ".join(stmt.sql[:600].split()).lower()
    if not _CREATE.match(head):
        return None
    if m := _ROUTINE.match(head):
        return Unit("function", f"{m[1]}.{m[2]}", path, [stmt], m[1], m[2])
    if m := _VIEW.match(head):
        return Unit("view", f"{m[1]}.{m[2]}", path, [stmt], m[1], m[2])
    if m := _TRIGGER.match(head):
        return Unit("trigger", f"{m[1]} on {m[2]}.{m[3]}", path, [stmt], m[2], m[1], f"{m[2]}.{m[3]}")
    raise DefinitionError(
        f"{_where(path, stmt)}: cannot tell which object this defines; write "
        "`create or replace function|view|trigger` with a lowercase schema.name"
    )


def _belongs(unit: Unit | None, stmt: Statement) -> bool:
    """Whether a ``comment on`` statement comments the object of ``unit``."""
    if unit is None:
        return False
    head = " ".join(stmt.sql[:600].split()).lower()
    if unit.kind == "function":
        m = _COMMENT_ROUTINE.match(head)
        return bool(m) and f"{m[1]}.{m[2]}" == unit.name
    if unit.kind == "view":
        m = _COMMENT_VIEW.match(head)
        return bool(m) and f"{m[1] or m[3]}.{m[2] or m[4]}" == unit.name
    m = _COMMENT_TRIGGER.match(head)
    return bool(m) and f"{m[1]} on {m[2]}.{m[3]}" == unit.name


def load(folder: Path | None = None) -> list[Unit]:
    """Every unit of the folder's files, in name order and file order."""
    units: list[Unit] = []
    seen: dict[str, Unit] = {}
    for path in paths.sql_files(folder or paths.repeatable_dir()):
        current: Unit | None = None
        for stmt in split(path.read_text(encoding="utf-8")):
            if keyword := transaction_control(stmt):
                raise DefinitionError(
                    f"{_where(path, stmt)}: {keyword} is not allowed: migrate runs in one transaction"
                )
            if unit := _definition(path, stmt):
                if unit.key in seen:
                    raise DefinitionError(
                        f"{_where(path, stmt)}: {unit.key} is defined twice "
                        f"(also in {display_name(seen[unit.key].path)})"
                    )
                seen[unit.key] = current = unit
                units.append(unit)
            elif _COMMENT.match(stmt.sql):
                if not _belongs(current, stmt):
                    raise DefinitionError(
                        f"{_where(path, stmt)}: a comment must follow the definition of its object "
                        "(comments on tables and columns belong in schema/)"
                    )
                assert current is not None
                current.statements.append(stmt)
            else:
                current = None
                units.append(Unit("action", f"{display_name(path)}:{stmt.line}", path, [stmt]))
    return units


# The definition of each unit's object as the catalog shows it, comments
# included; null when the object does not exist.
_CATALOG_DIGESTS = (
    "select u.key, "
    + CATALOG_DIGEST
    + """, d.source_digest, d.catalog_digest, d.source_file
from unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) as u (key, kind, schema, obj, tbl)
left join toolsdb_migrations.definitions as d on u.key = d.object_name
"""
)


def actions_script(units: list[Unit]) -> str:
    """The actions of ``units`` in order, as one script (each statement ends on
    a line of its own, so a trailing ``--`` comment cannot swallow its ';')."""
    return "".join(s.sql + "\n;\n" for u in units if u.kind == "action" for s in u.statements)


def tree_up_to_date(conn: psycopg.Connection, tree_digest: str, migration_ids: list[str]) -> str | None:
    """The recorded actions script when the database is as the last migrate of
    the tree ``tree_digest`` left it, with exactly ``migration_ids`` applied;
    else None (and None before any migrate recorded a tree)."""
    if not conn.execute(TREE_RECORDED).fetchone()[0]:
        return None  # before the first migrate, or last migrated by a toolsdb that kept no record
    row = conn.execute(TREE_UP_TO_DATE.format(tree="%s", ids="%s"), (tree_digest, sorted(migration_ids))).fetchone()
    return None if row is None else row[0]


def record_tree(conn: psycopg.Connection, tree_digest: str, units: list[Unit]) -> None:
    """Record, in the caller's transaction, that the tree ``tree_digest`` is
    applied (after ``apply`` of all its ``units``); writes nothing when the
    record is already so."""
    conn.execute(
        RECORD_TREE.format(tree="%s", actions="%s"),
        (tree_digest, actions_script(units)),
    )


def _catalog(conn: psycopg.Connection, units: list[Unit]) -> dict[str, tuple[str | None, ...]]:
    """key -> (catalog digest now, recorded source digest, recorded catalog
    digest, recorded file)."""
    if not units:
        return {}
    rows = conn.execute(
        _CATALOG_DIGESTS,
        (
            [u.key for u in units],
            [u.kind for u in units],
            [u.schema for u in units],
            [u.obj for u in units],
            [u.table for u in units],
        ),
    ).fetchall()
    return {key: tuple(rest) for key, *rest in rows}


def apply(conn: psycopg.Connection, units: list[Unit], echo: Echo = None) -> list[str]:
    """Apply ``units`` in the caller's transaction; return the keys of the
    definitions that were (re)created."""
    definitions = [u for u in units if u.kind != "action"]
    state = _catalog(conn, definitions)
    applied: list[Unit] = []
    moved: list[Unit] = []
    for unit in units:
        if unit.kind != "action":
            now, source, recorded, file = state[unit.key]
            if now is not None and source == unit.digest and recorded == now:
                if file != display_name(unit.path):
                    moved.append(unit)  # the same statements, now in another file
                continue
            applied.append(unit)
        for stmt in unit.statements:
            execute(conn, unit.path, stmt.sql, echo)
    if applied:
        after = _catalog(conn, applied)
        for unit in applied:
            if after[unit.key][0] is None:
                raise DefinitionError(
                    f"{_where(unit.path, unit.statements[0])}: ran, but the catalog has no {unit.key} afterwards"
                )
        conn.execute(
            """
            insert into toolsdb_migrations.definitions as d (object_name, source_file, source_digest, catalog_digest)
            select * from unnest(%s::text[], %s::text[], %s::text[], %s::text[])
            on conflict (object_name) do update
                set source_file = excluded.source_file,
                    source_digest = excluded.source_digest,
                    catalog_digest = excluded.catalog_digest,
                    applied_at = pg_catalog.now()
            """,
            (
                [u.key for u in applied],
                [display_name(u.path) for u in applied],
                [u.digest for u in applied],
                [after[u.key][0] for u in applied],
            ),
        )
    if moved:
        conn.execute(
            "update toolsdb_migrations.definitions as d set source_file = m.file"
            " from unnest(%s::text[], %s::text[]) as m (object_name, file) where d.object_name = m.object_name",
            ([u.key for u in moved], [display_name(u.path) for u in moved]),
        )
    # Objects no file defines any more: their drop is a migration's; forget them.
    conn.execute(
        "delete from toolsdb_migrations.definitions where object_name <> all(%s::text[])",
        ([u.key for u in definitions],),
    )
    return [u.key for u in applied]


# Functions, views and triggers in toolsdb's schemas that no unit defines:
# objects of extensions and the triggers that actions make (change capture by
# audit_table(), the truncate guard of each partition) aside.
_UNDEFINED = """
select o.key from (
    select 'function ' || n.nspname || '.' || p.proname as key
    from pg_catalog.pg_proc as p
    inner join pg_catalog.pg_namespace as n on p.pronamespace = n.oid
    where n.nspname like 'toolsdb%%'
        and not exists (select from pg_catalog.pg_depend as d where d.objid = p.oid and d.deptype = 'e')
    union all
    select 'view ' || c.oid::regclass::text
    from pg_catalog.pg_class as c
    where c.relnamespace::regnamespace::text like 'toolsdb%%' and c.relkind = 'v'
        and not exists (select from pg_catalog.pg_depend as d where d.objid = c.oid and d.deptype = 'e')
    union all
    select 'trigger ' || t.tgname || ' on ' || t.tgrelid::regclass::text
    from pg_catalog.pg_trigger as t
    inner join pg_catalog.pg_class as c on t.tgrelid = c.oid
    where c.relnamespace::regnamespace::text like 'toolsdb%%' and not t.tgisinternal and t.tgparentid = 0
        and t.tgname not in ('_900_audit', '_900_audit_truncate')
        and not (c.relispartition and t.tgname = '_010_append_only_truncate' and c.relname !~ '_default$')
) as o
where o.key <> all(%s::text[])
order by o.key
"""


def drift(conn: psycopg.Connection, units: list[Unit]) -> list[str]:
    """What differs between the catalog and ``units``, one line each, empty
    when they agree; reads only (``toolsdb verify``)."""
    definitions = [u for u in units if u.kind != "action"]
    state = _catalog(conn, definitions)
    lines = []
    for unit in definitions:
        now, source, recorded, _ = state[unit.key]
        where = display_name(unit.path)
        if now is None:
            lines.append(f"missing: {unit.key} ({where})")
        elif source is None:
            lines.append(f"not applied: {unit.key} ({where}): run toolsdb migrate")
        elif recorded != now:
            lines.append(f"changed in the database: {unit.key} differs from {where}")
        elif source != unit.digest:
            lines.append(f"changed in {where}: {unit.key} (not applied yet): run toolsdb migrate")
    for (key,) in conn.execute(_UNDEFINED, ([u.key for u in definitions],)).fetchall():
        lines.append(f"undefined: {key} is in the database and no file of repeatable/ defines it")
    return lines
