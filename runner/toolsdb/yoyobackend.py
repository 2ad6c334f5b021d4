"""yoyo's PostgreSQL backend as toolsdb migrate uses it (imported only when
a migrate has something to do: yoyo's import is a third of a no-op's time).

yoyo splits a SQL migration into statements with sqlparse, which took 0.45 s
for the baseline migration (twice per migrate: once to order the migrations,
once to apply them), a quarter of a migrate from empty. Here it splits them
with toolsdb's own splitter instead (sqlfiles.split, the one repeatable/ and
the seeds go through; it knows dollar quotes, nested comments and BEGIN
ATOMIC bodies), in milliseconds: ``read_sql_migration`` below replaces
yoyo's, with the same result shape (directives, leading comment, statements).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import psycopg
import yoyo.migrations
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import parse_uri

from .sqlfiles import Echo, display_name, split
from .treestate import MIGRATION_TABLE


def read_sql_migration(path: str) -> tuple[dict[str, str], str, list[str]]:
    """yoyo's ``read_sql_migration``, split by sqlfiles.split: the directives
    (``-- depends:``, ``-- transactional:``) and comment lines leading the
    file, and its statements (none when the file does not exist)."""
    if not os.path.exists(path):
        return {}, "", []
    text = Path(path).read_text(encoding="utf-8")
    directives, leading_comment, sql = yoyo.migrations.parse_metadata_from_sql_comments(text)
    return directives, leading_comment, [s.sql for s in split(sql)]


yoyo.migrations.read_sql_migration = read_sql_migration


class Backend(PostgresqlPsycopgBackend):
    """yoyo's psycopg 3 backend on a libpq conninfo, sharing one connection.

    * adopts the connection of toolsdb migrate's session (which keeps
      yoyo's tables in toolsdb_migrations by its search_path, so an
      unqualified name in a migration fails instead of landing in public);
    * runs statements without parameters as plain SQL ('%' is literal) and
      remembers the migration file and statement running, for error lines;
    * ``copy()`` shares the connection, so migrations, their bookkeeping and
      the re-applied definitions all run in the caller's single transaction;
    """

    def __init__(self, conn: psycopg.Connection, echo: Echo = None):
        self._conn = conn
        self.echo = echo
        self.current_file: str | None = None
        self.last_sql: str | None = None
        self.failed_sql: str | None = None
        self.citus = False  # a Citus coordinator (docs/citus.md)
        super().__init__(parse_uri("postgresql+psycopg://"), MIGRATION_TABLE)

    def connect(self, dburi):
        return self._conn

    def cursor(self):
        return _TracingCursor(self, self.connection.cursor())

    def trace(self, sql: str) -> None:
        self.last_sql = sql
        echo = self.echo
        if echo and not sql.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO")):
            echo(sql)

    def copy(self):
        return contextlib.nullcontext(self)

    def apply_one(self, migration, force=False, mark=True):
        self.current_file = display_name(Path(migration.path))
        super().apply_one(migration, force=force, mark=mark)

    def rollback_one(self, migration, force=False):
        rollback_path = Path(migration.path).with_suffix(".rollback.sql")
        self.current_file = display_name(rollback_path)
        super().rollback_one(migration, force=force)


class _TracingCursor:
    """A psycopg cursor that reports each statement to its backend and runs
    statements without parameters as plain SQL ('%' is literal)."""

    def __init__(self, backend: Backend, cursor: psycopg.Cursor):
        self._backend = backend
        self._cursor = cursor

    def execute(self, sql, params=None):
        self._backend.trace(sql)
        try:
            if params:
                return self._cursor.execute(sql, params)
            return self._cursor.execute(sql)
        except psycopg.Error:
            # The first failure is the one to report: yoyo's savepoint
            # rollback runs after it.
            if self._backend.failed_sql is None:
                self._backend.failed_sql = sql
            raise

    @property
    def description(self):
        # yoyo prints the rows of any migration statement that returns some
        # (a `select toolsdb.audit_table(...)`); migrations are quiet here.
        return None

    def __getattr__(self, name):
        return getattr(self._cursor, name)
