"""Apply, roll back and report migrations with yoyo, all-or-nothing.

Order of one ``toolsdb migrate`` (see docs/architecture.md):

1. take a session advisory lock on the database, so concurrent migrates
   queue up instead of racing;
2. apply ``schema/00_bootstrap.sql`` (schemas, roles: tolerant of existing ones);
3. refuse a database with an applied migration this code has no file for,
   and a migration file with transaction control, before anything runs;
4. in ONE transaction: every pending yoyo migration (each in a savepoint),
   then the definitions of ``repeatable/`` (each object only where it
   differs, see repeatable.py), then commit. Any failure rolls the whole
   run back.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from . import paths, pooler, repeatable
from .errors import MigrationError, ToolsdbError
from .sqlfiles import Echo, StatementError, apply_file, apply_folder, display_name, split
from .target import Target, connect
from .treestate import (
    CITUS_PRESENT,
    LOCK_KEY,
    MIGRATION_SCHEMA,
    MIGRATION_TABLE,
    OWNER,
    Tree,
    lock_timeout,
    tree,
)

if TYPE_CHECKING:
    from yoyo.migrations import MigrationList

    from .yoyobackend import Backend

MIGRATION_NAME = re.compile(r"^(?P<number>\d{4})\.(?P<name>[a-z][a-z0-9_]*)(?P<rollback>\.rollback)?\.sql$")


def _bootstrap(conn: psycopg.Connection, echo: Echo) -> None:
    """Apply schema/00_bootstrap.sql in a transaction of its own: the whole
    file in one round trip, or, echoing or when that fails, statement by
    statement (which names the statement that failed)."""
    path = paths.bootstrap_file()
    if not echo:
        try:
            with conn.transaction():
                conn.execute(path.read_text(encoding="utf-8"))
            return
        except psycopg.Error as exc:
            _raise_interrupt(exc)
    try:
        with conn.transaction():
            apply_file(conn, path, echo)
    except StatementError as exc:
        # e.g. 42501 "toolsdb needs the role toolsdb_owner and alice may not create roles"
        raise MigrationError(exc.file, exc.statement, exc.sqlstate, exc.message) from None


def _run_actions(conn: psycopg.Connection, actions: str) -> bool:
    """Run the recorded actions script in one transaction; False (nothing
    done) when it fails: the full migrate then runs them one by one and names
    the statement that failed."""
    try:
        with conn.transaction():
            conn.execute(f"set local lock_timeout = '{lock_timeout()}'")
            conn.execute(actions)
    except psycopg.Error as exc:
        _raise_interrupt(exc)
        return False
    return True


# Citus creates a distributed or reference table's triggers on its shards only
# with this on (docs/citus.md): for the migrating transaction only.
CITUS_TRIGGERS = "set local citus.enable_unsafe_triggers = on"

# What a Citus node must be for migrate: the coordinator, registered in the
# metadata (its copy of each reference table holds what the audit log
# captures), with at least one active worker.
CITUS_NODE = """
select pg_catalog.citus_is_coordinator(),
    exists (select from pg_catalog.pg_dist_node as n where n.groupid = 0),
    exists (select from pg_catalog.pg_dist_node as n where n.groupid <> 0 and n.isactive and n.noderole = 'primary'),
    pg_catalog.to_regclass('toolsdb.sessions') is not null and not exists (
        select from pg_catalog.pg_dist_partition as p
        where p.logicalrelid = pg_catalog.to_regclass('toolsdb.sessions') and p.partmethod = 'h'
    )
"""


def _refuse_citus_node(conn: psycopg.Connection) -> None:
    """One line when a Citus node is not a coordinator toolsdb can migrate."""
    coordinator, registered, workers, undistributed = conn.execute(CITUS_NODE).fetchone()
    if undistributed:
        # Distributing tables that hold rows and triggers copies the rows through
        # the triggers, on the workers (docs/citus.md): toolsdb distributes only
        # the schema it creates on an empty coordinator.
        raise ToolsdbError(
            "this database was migrated before it had Citus, and toolsdb distributes only a schema it creates: "
            "migrate an empty coordinator, then copy the rows into it (docs/citus.md); nothing was changed"
        )
    if not coordinator:
        raise ToolsdbError("this database is a Citus worker: migrate the coordinator; nothing was changed")
    if not registered:
        raise ToolsdbError(
            "this Citus coordinator is not in its own metadata: run select citus_set_coordinator_host(...) "
            "first (docs/citus.md); nothing was changed"
        )
    if not workers:
        raise ToolsdbError(
            "this Citus coordinator has no active worker: add one with select citus_add_node(...) "
            "first (docs/citus.md); nothing was changed"
        )


def _recorded_actions(conn: psycopg.Connection, current: Tree) -> str | None:
    """The actions a migrate of ``current`` would run when the database is as
    the last migrate of the same tree left it (read only); else None."""
    try:
        with conn.transaction():
            return repeatable.tree_up_to_date(conn, current.digest, current.migration_ids)
    except psycopg.errors.InsufficientPrivilege:
        return None  # not a member of toolsdb_owner yet: the full migrate says what it can do


@contextlib.contextmanager
def _session(
    target: Target, echo: Echo, current: Tree | None = None, before_changes: Callable[[], object] | None = None
) -> Iterator[Backend | None]:
    """A backend holding the migration lock, with bootstrap applied.

    With ``current`` (the no-op path): when the database is as the last
    migrate of that tree left it, apply bootstrap, run the recorded actions as
    toolsdb_owner and yield None instead: nothing else would change.
    ``before_changes`` runs before the first statement that can change
    anything (reading repeatable/, whose errors then leave the database as
    it was)."""
    conn = connect(pooler.session_target(target, "toolsdb migrate").conninfo, autocommit=True)
    try:
        conn.execute(f"set search_path = {MIGRATION_SCHEMA}")
        citus = bool(conn.execute(CITUS_PRESENT).fetchone()[0])
        if citus:
            _refuse_citus_node(conn)
        conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
        # On Citus the full path always runs: it applies the distribution, which a
        # database migrated before it had Citus lacks while its tree is recorded.
        actions = _recorded_actions(conn, current) if current is not None and not citus else None
        if actions is None and before_changes is not None:
            before_changes()
        _bootstrap(conn, echo)
        # Objects belong to toolsdb_owner: act as it when we may (docs/security.md).
        owner = conn.execute(OWNER).fetchone()[0]
        if owner:
            conn.execute("set role toolsdb_owner")
        # The recorded actions run only as toolsdb_owner, which owns the record.
        if actions is not None:
            if owner and _run_actions(conn, actions):
                yield None
                return
            if before_changes is not None:
                before_changes()
        from .yoyobackend import Backend

        backend = Backend(conn, echo)
        backend.citus = citus
        backend.init_database()
        backend.ensure_internal_schema_updated()
        yield backend
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.close()


def _all_migrations() -> MigrationList:
    from yoyo import read_migrations

    return read_migrations(str(paths.migrations_dir()))


@contextlib.contextmanager
def _one_transaction(backend: Backend) -> Iterator[None]:
    timeout = lock_timeout()
    backend.failed_sql = None
    backend.begin()
    try:
        # Never queue behind live traffic for long: fail (SQLSTATE 55P03) and
        # roll back instead. Set after the advisory lock, which must wait.
        backend.execute(f"set local lock_timeout = '{timeout}'")
        yield
    except StatementError as exc:
        with contextlib.suppress(psycopg.Error):
            backend.rollback()
        _raise_interrupt(exc)
        raise MigrationError(exc.file, exc.statement, exc.sqlstate, exc.message) from None
    except psycopg.Error as exc:
        with contextlib.suppress(psycopg.Error):
            backend.rollback()
        _raise_interrupt(exc)
        raise MigrationError(
            backend.current_file or "?",
            backend.failed_sql or backend.last_sql or "?",
            exc.sqlstate,
            exc.diag.message_primary or str(exc).splitlines()[0],
        ) from None
    except BaseException:
        with contextlib.suppress(psycopg.Error):
            backend.rollback()
        raise
    else:
        backend.commit()


def _raise_interrupt(exc: BaseException) -> None:
    """Raise the Ctrl-C or termination signal that ``exc`` happened while
    handling (yoyo's savepoint rollback after an interrupted statement, say):
    the user stopped the command, and that is what they are told."""
    seen = exc.__context__
    while seen is not None:
        if not isinstance(seen, Exception):
            raise seen.with_traceback(None) from None
        seen = seen.__context__


def _applied_ids(conn: psycopg.Connection) -> dict[str, datetime]:
    """Applied migration ids and when; empty before the first migrate."""
    table = f"{MIGRATION_SCHEMA}.{MIGRATION_TABLE}"
    if not conn.execute("select to_regclass(%s)", (table,)).fetchone()[0]:
        return {}
    rows = conn.execute(f"select migration_id, applied_at_utc from {table} order by applied_at_utc, migration_id")
    return dict(rows.fetchall())


def _refuse_unknown(applied: dict[str, datetime] | list[str], migrations: MigrationList) -> None:
    """One line naming an applied migration this code has no file for."""
    known = {m.id for m in migrations}
    unknown = [mid for mid in applied if mid not in known]
    if unknown:
        raise ToolsdbError(
            f"the database has migration {unknown[-1]} applied, and migrations/ has no file for it"
            f"{f' (nor for {len(unknown) - 1} more)' if len(unknown) > 1 else ''}: it was migrated by a "
            "newer toolsdb or files were deleted; nothing was done"
        )


def _refuse_transaction_control(files: list[Path]) -> None:
    """Refuse, before anything runs, a migration file that would end or split
    the one transaction (its first half would persist)."""
    for path in files:
        if not path.exists():
            continue
        for stmt in split(path.read_text(encoding="utf-8")):  # as yoyo runs it (yoyobackend.py)
            if keyword := repeatable.transaction_control(stmt):
                raise ToolsdbError(
                    f"{display_name(path)} line {stmt.line}: {keyword} is not allowed in a migration "
                    "(toolsdb runs every migration in one transaction); nothing was applied"
                )


def prepare(target: Target, echo: Echo = None) -> None:
    """Apply the bootstrap and create the bookkeeping tables, no migration:
    the state "migrated to nothing" (the rollback tests start from it)."""
    with _session(target, echo):
        pass


def migrate(
    target: Target,
    echo: Echo = None,
    *,
    to: str | None = None,
    definitions: bool = True,
    replaced: list[str] | None = None,
) -> list[str]:
    """Apply pending migrations (up to and including ``to``), then the
    definitions of repeatable/ (unless ``definitions`` is false); return the
    ids applied. ``replaced``, when given, receives the definitions that were
    (re)created, as "function toolsdb.maintain"."""
    current = tree() if definitions and to is None else None
    units: list[repeatable.Unit] = []
    load = (lambda: units.extend(repeatable.load())) if definitions else None
    with _session(target, echo, None if echo else current, load) as backend:
        if backend is None:
            return []
        migrations = _all_migrations()
        _refuse_unknown(_applied_ids(backend.connection), migrations)
        pending = list(backend.to_apply(migrations))
        if to is not None:
            ids = [m.id for m in migrations]
            if to not in ids:
                raise ToolsdbError(f"unknown migration id {to!r}: `toolsdb status` lists the migrations")
            pending = [m for m in pending if ids.index(m.id) <= ids.index(to)]
        _refuse_transaction_control([Path(m.path) for m in pending])
        with _one_transaction(backend):
            if backend.citus:
                backend.execute(CITUS_TRIGGERS)
            for migration in pending:
                backend.apply_one(migration)
            if backend.citus:
                # The distribution (docs/citus.md): after the tables, before the definitions.
                backend.current_file = None
                apply_file(backend.connection, paths.citus_file(), echo)
            if units:
                backend.current_file = None
                done = repeatable.apply(backend.connection, units, echo)
                if replaced is not None:
                    replaced.extend(done)
                if current is not None:
                    repeatable.record_tree(backend.connection, current.digest, units)
        return [m.id for m in pending]


def _tables_with_rows(conn: psycopg.Connection) -> list[str]:
    """The toolsdb tables (partitions aside) that hold at least one row."""
    tables = [
        r[0]
        for r in conn.execute(
            "select pg_catalog.format('%I.%I', n.nspname, c.relname) from pg_catalog.pg_class as c"
            " join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
            " where n.nspname in ('toolsdb', 'toolsdb_private') and c.relkind in ('r', 'p')"
            " and not c.relispartition order by 1"
        ).fetchall()
    ]
    return [t for t in tables if conn.execute(f"select exists (select from {t})").fetchone()[0]]


def rollback(target: Target, migration_id: str | None = None, echo: Echo = None, *, force: bool = False) -> list[str]:
    """Roll back the newest migration, or every one down to ``migration_id``.
    Unless ``force``, a rollback that would drop tables holding rows is
    refused (and nothing is done)."""
    with _session(target, echo) as backend:
        if backend.citus:
            raise ToolsdbError(
                "rollback is not supported on a Citus cluster: the distribution (docs/citus.md) has no way "
                "back; nothing was done"
            )
        migrations = _all_migrations()
        _refuse_unknown(_applied_ids(backend.connection), migrations)
        known = {m.id for m in migrations}
        applied = list(backend.to_rollback(migrations))  # newest first
        if migration_id is not None and migration_id not in known:
            raise ToolsdbError(f"unknown migration id {migration_id!r}: `toolsdb status` lists the migrations")
        if not applied:
            raise ToolsdbError("nothing to roll back: no migration is applied")
        if migration_id is None:
            chosen = applied[:1]
        else:
            ids = [m.id for m in applied]
            if migration_id not in ids:
                raise ToolsdbError(f"migration {migration_id!r} is not applied: nothing to roll back")
            chosen = applied[: ids.index(migration_id) + 1]
        _refuse_transaction_control([Path(m.path).with_suffix(".rollback.sql") for m in chosen])
        with _one_transaction(backend):
            holding = [] if force else _tables_with_rows(backend.connection)
            for migration in chosen:
                backend.rollback_one(migration)
            lost = [
                t for t in holding if backend.connection.execute("select to_regclass(%s)", (t,)).fetchone()[0] is None
            ]
            if lost:
                shown = ", ".join(lost[:3]) + (f" and {len(lost) - 3} more" if len(lost) > 3 else "")
                raise ToolsdbError(
                    f"rolling back {', '.join(m.id for m in chosen)} would drop {len(lost)} table(s) holding rows "
                    f"({shown}); nothing was done: pass --force to drop them (make rollback force=1)"
                )
        return [m.id for m in chosen]


@dataclass
class MigrationStatus:
    id: str
    applied_at: datetime | None

    @property
    def state(self) -> str:
        return "applied" if self.applied_at else "pending"


def status(target: Target) -> list[MigrationStatus]:
    """Every migration, applied or pending; reads only, creates nothing."""
    migrations = _all_migrations()
    with target.connect(autocommit=True) as conn:
        applied = _applied_ids(conn)
    _refuse_unknown(applied, migrations)
    return [MigrationStatus(m.id, applied.get(m.id)) for m in migrations]


def seed(target: Target, echo: Echo = None) -> list[Path]:
    """Apply seeds/ (idempotent demo data) in one transaction."""
    pending = [s.id for s in status(target) if s.applied_at is None]
    if pending:
        raise ToolsdbError(
            f"the database is not migrated ({len(pending)} pending, first {pending[0]}): run `toolsdb migrate` first"
        )
    with target.connect() as conn:
        try:
            with conn.transaction():
                if conn.execute(CITUS_PRESENT).fetchone()[0] and conn.execute(OWNER).fetchone()[0]:
                    # Citus reaches a shard that this transaction wrote through one
                    # connection per user, and toolsdb's functions run as toolsdb_owner
                    # (security definer): the seeds' own writes must too (docs/citus.md).
                    # A worker sees only that role, so the audit log's actor is named
                    # (it would fall back to the login on one node).
                    # Citus passes SET LOCAL on to the workers, not set_config().
                    actor = conn.execute(
                        "select coalesce(nullif(current_setting('toolsdb.actor', true), ''), session_user)"
                    ).fetchone()[0]
                    conn.execute(sql.SQL("set local toolsdb.actor = {}").format(sql.Literal(actor)))
                    conn.execute("set local role toolsdb_owner")
                return apply_folder(conn, paths.seeds_dir(), echo)
        except StatementError as exc:
            raise MigrationError(exc.file, exc.statement, exc.sqlstate, exc.message) from None


def new_migration(name: str) -> tuple[Path, Path]:
    """Create ``NNNN.name.sql`` and its ``.rollback.sql``, depending on the newest."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ToolsdbError(f"migration name {name!r} is not valid: use lowercase letters, digits and _")
    folder = paths.migrations_dir()
    if folder.parent.name == "sql" and folder.parent.parent.name == "toolsdb":
        raise ToolsdbError("new-migration needs a source checkout, not an installed package")
    numbered = sorted(
        (int(m["number"]), p.stem)
        for p in folder.glob("*.sql")
        if (m := MIGRATION_NAME.match(p.name)) and not m["rollback"]
    )
    number = numbered[-1][0] + 1 if numbered else 1
    migration_id = f"{number:04d}.{name}"
    forward = folder / f"{migration_id}.sql"
    backward = folder / f"{migration_id}.rollback.sql"
    depends = f"-- depends: {numbered[-1][1]}\n" if numbered else ""
    forward.write_text(
        f"-- {migration_id}: describe what this migration changes.\n{depends}\n"
        "-- Tables, columns, constraints, indexes, data: write the change here and the result in\n"
        "-- schema/ (the tests compare them). Functions, views and triggers live in repeatable/.\n"
    )
    backward.write_text(f"-- {migration_id} rollback: undo {migration_id}.sql exactly.\n")
    return forward, backward


_TABLE = re.compile(r"create\s+table\s+(?:if\s+not\s+exists\s+)?([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)", re.I)


def verify(target: Target) -> list[str]:
    """What differs between the live database and this code, one line each
    (empty when they agree): migrations applied that migrations/ does not
    know, migrations not applied, tables of schema/ missing, and definitions
    of repeatable/ missing, changed behind toolsdb's back, not yet applied or
    no longer defined. Reads only: one read-only transaction, no lock, no
    bootstrap (``toolsdb verify``)."""
    migrations = _all_migrations()
    units = repeatable.load()
    tables = [
        m[1].lower()
        for path in paths.sql_files(paths.schema_dir())
        for stmt in split(path.read_text(encoding="utf-8"))
        if (m := _TABLE.match(" ".join(stmt.sql.split())))
    ]
    with target.connect() as conn:
        conn.read_only = True
        with conn.transaction():
            # The catalog renders names relative to the search_path: as migrate sees them.
            conn.execute(f"set local search_path = {MIGRATION_SCHEMA}")
            applied = _applied_ids(conn)
            if not applied:
                return [f"not migrated: no migration is applied ({len(migrations)} pending): run toolsdb migrate"]
            known = {m.id for m in migrations}
            lines = [
                f"unknown migration: {mid} is applied and migrations/ has no file for it"
                for mid in applied
                if mid not in known
            ]
            lines += [f"pending migration: {m.id}: run toolsdb migrate" for m in migrations if m.id not in applied]
            missing = conn.execute(
                "select t from unnest(%s::text[]) as t where to_regclass(t) is null order by t", (tables,)
            ).fetchall()
            lines += [f"missing: table {t} (schema/)" for (t,) in missing]
            lines += repeatable.drift(conn, units)
    return lines
