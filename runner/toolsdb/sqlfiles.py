"""Run a hand-written SQL file statement by statement, naming what failed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import sqlparse

from . import paths

Echo = Callable[[str], None] | None


class StatementError(Exception):
    """A statement of a SQL file failed; carries file, statement and SQLSTATE."""

    def __init__(self, file: str, statement: str, error: psycopg.Error):
        self.file = file
        self.statement = statement
        self.sqlstate = error.sqlstate
        self.message = error.diag.message_primary or str(error).splitlines()[0]
        super().__init__(f"{file}: {self.sqlstate}: {self.message}")


def statements(text: str) -> list[str]:
    """Split SQL text into statements (dollar quotes respected), dropping
    chunks that hold only comments."""
    out = []
    for chunk in sqlparse.split(text):
        if sqlparse.format(chunk, strip_comments=True).strip():
            out.append(chunk.strip())
    return out


def display_name(path: Path) -> str:
    """``schema/20_users.sql``: the path relative to the SQL root."""
    try:
        return str(path.resolve().relative_to(paths.sql_root().resolve()))
    except ValueError:
        return str(path)


def apply_file(conn: psycopg.Connection, path: Path, echo: Echo = None) -> int:
    """Execute every statement of ``path`` on ``conn`` (in the caller's
    transaction); return how many ran. A failure raises StatementError."""
    count = 0
    for stmt in statements(path.read_text(encoding="utf-8")):
        if echo:
            echo(stmt)
        try:
            conn.execute(stmt)  # no parameters: '%' is literal
        except psycopg.Error as exc:
            raise StatementError(display_name(path), stmt, exc) from exc
        count += 1
    return count


def apply_folder(conn: psycopg.Connection, folder: Path, echo: Echo = None) -> list[Path]:
    """Apply every ``*.sql`` file of ``folder`` in name order."""
    files = paths.sql_files(folder)
    for path in files:
        apply_file(conn, path, echo)
    return files
