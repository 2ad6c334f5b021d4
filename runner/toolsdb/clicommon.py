"""What every ``toolsdb`` command shares: --database/--verbose and table output.

Commands defined outside cli.py (backup, replica, health, ...) import these and
are registered on the group in cli.py with ``cli.add_command``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import click

from .errors import MissingExtra, ToolsdbError
from .target import Target, resolve

if TYPE_CHECKING:
    import psycopg

DATABASE_HELP = (
    "PostgreSQL URL (postgresql://user:pass@host:port/db) or libpq 'key=value' string. "
    "Default: $DATABASE_URL (or $TOOLS_DB_URL), else libpq's PG* variables (or their DB_* aliases), "
    "else the embedded server in .toolsdb/."
)


# The optional extras: the top-level module each brings, its extra and what to call it.
EXTRAS = {
    "redis": ("redis", "redis-py"),
    "mcp": ("mcp", "the MCP SDK"),
    "pglast": ("validate", "pglast"),
    "httpx": ("worker", "httpx"),
    "matplotlib": ("chart", "matplotlib"),
}


@contextlib.contextmanager
def needs_extra() -> Iterator[None]:
    """Around a command's imports of an optional extra: a missing one is one line
    (``toolsdb mcp needs the MCP SDK: pip install 'toolsdb[mcp]'``), not a traceback."""
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in EXTRAS:
            raise
        extra, what = EXTRAS[top]
        ctx = click.get_current_context(silent=True)
        command = ctx.command_path if ctx is not None else "this command"
        raise MissingExtra(f"{command} needs {what}: pip install 'toolsdb[{extra}]'") from None


class Settings:
    """Options given on the group or on the command (the command's win)."""

    def __init__(self) -> None:
        self.database: str | None = None
        self.verbose = False

    def echo(self) -> Callable[[str], None] | None:
        """The statement echo of --verbose, also on with the statement-logging
        switch DB_LOG_QUERIES (or AUTOMAGIK_LOG_SQL)."""
        from .pool import statement_logging

        if not (self.verbose or statement_logging()):
            return None
        return lambda sql: click.echo(f"{sql.rstrip().rstrip(';')};", err=True)

    def target(self, create: bool = False) -> Target:
        """The database to use; ``create``: the set-up commands may create the embedded server."""
        return resolve(self.database, create=create)


def common_options(func: Callable) -> Callable:
    """--database and --verbose, accepted before or after the command name."""

    @click.option("--database", "-d", metavar="URL", help=DATABASE_HELP)
    @click.option(
        "--verbose",
        "-v",
        is_flag=True,
        help="Echo the statements of the SQL files that migrate, rollback and seed run (to stderr).",
    )
    @click.pass_context
    @functools.wraps(func)
    def wrapper(ctx: click.Context, database: str | None, verbose: bool, **kwargs):
        settings = ctx.ensure_object(Settings)
        if database is not None:
            settings.database = database
        settings.verbose = settings.verbose or verbose
        return ctx.invoke(func, settings, **kwargs)

    return wrapper


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print rows as an aligned, psql-like table."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    click.echo(" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    click.echo("-+-".join("-" * w for w in widths))
    for row in cells:
        click.echo(" | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    click.echo(f"({len(cells)} row{'s' if len(cells) != 1 else ''})")


# How a command line names a row: its id, or a name (users: username or email,
# any case; agents: name; projects: slug or name).
LOOKUP_SQL = {
    "user": "select user_id from toolsdb.users where user_id::text = %(v)s "
    "or lower(username) = lower(%(v)s) or lower(email) = lower(%(v)s)",
    "agent": "select agent_id from toolsdb.agents where agent_id::text = %(v)s or name = %(v)s",
    "project": "select project_id from toolsdb.projects where project_id::text = %(v)s or slug = %(v)s or name = %(v)s",
}


def one_id(conn: psycopg.Connection, what: str, sql: str, value: str) -> str:
    """The one id ``sql`` (with parameter ``v``) finds for ``value``; ToolsdbError when none or several."""
    found = conn.execute(sql, {"v": value}).fetchall()
    if not found:
        raise ToolsdbError(f"no {what} {value!r}")
    if len(found) > 1:
        raise ToolsdbError(f"{what} {value!r} names {len(found)} rows; give its id")
    return str(found[0][0])


def lookup_id(conn: psycopg.Connection, what: str, value: str) -> str:
    """The id of the user, agent or project a command line names (LOOKUP_SQL)."""
    return one_id(conn, what, LOOKUP_SQL[what], value)
