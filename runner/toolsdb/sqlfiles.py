"""Run a hand-written SQL file statement by statement, naming what failed.

The splitter is a small lexer of PostgreSQL's own rules, linear in the
input: statements end at a semicolon outside quotes ('', E'', "", dollar
quotes), comments (--, nested /* */) and the body of a SQL-standard
function (BEGIN ATOMIC ... END, where CASE ... END nests).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from . import paths

Echo = Callable[[str], None] | None

# What the lexer stops at; everything between two matches is plain text.
_TOKEN = re.compile(
    r"""
      (?P<line_comment>--[^\r\n]*)
    | (?P<block_comment>/\*)
    | (?P<estring>(?<![A-Za-z0-9_$])[eE]'(?:[^'\\]|\\.|'')*')
    | (?P<string>'(?:[^']|'')*')
    | (?P<ident>"(?:[^"]|"")*")
    | (?P<dollar>\$(?:[A-Za-z_\x80-\uffff][A-Za-z_0-9\x80-\uffff]*)?\$)
    | (?P<word>(?<![A-Za-z0-9_$])(?:begin|atomic|case|end)(?![A-Za-z0-9_$]))
    | (?P<semicolon>;)
    | (?P<stray>['"])
    """,
    re.S | re.X | re.I,
)
_BLOCK = re.compile(r"/\*|\*/")
_FIRST_WORDS = re.compile(r"[A-Za-z_]+")


class SqlSyntaxError(ValueError):
    """The text cannot be split: an unterminated quote or comment."""


@dataclass(frozen=True)
class Statement:
    """One statement: its text from the first token through the semicolon
    (leading comments left out) and the 1-based line where it starts."""

    sql: str
    line: int

    def first_words(self, count: int = 2) -> list[str]:
        """The statement's first ``count`` words, lowercase."""
        return [w.lower() for w in _FIRST_WORDS.findall(self.sql)[:count]]


def _skip_block_comment(text: str, start: int) -> int:
    """Position after the block comment opening at ``start`` (they nest)."""
    depth, pos = 0, start
    while True:
        match = _BLOCK.search(text, pos)
        if match is None:
            raise SqlSyntaxError(f"unterminated /* comment at line {text.count(chr(10), 0, start) + 1}")
        depth += 1 if match.group() == "/*" else -1
        pos = match.end()
        if depth == 0:
            return pos


def split(text: str) -> list[Statement]:
    """Split SQL text into statements; chunks holding only comments are dropped."""
    out: list[Statement] = []
    pos = 0  # scan position
    start: int | None = None  # where the current statement's first token is
    atomic_depth = 0  # > 0 inside BEGIN ATOMIC ... END
    after_begin = False  # the previous word was BEGIN

    def begin_here(at: int) -> None:
        nonlocal start
        if start is None:
            start = at

    while True:
        match = _TOKEN.search(text, pos)
        end = match.start() if match else len(text)
        gap = text[pos:end]
        if gap.strip():
            begin_here(pos + len(gap) - len(gap.lstrip()))
            after_begin = False
        if match is None:
            break
        kind = match.lastgroup
        pos = match.end()
        if kind == "line_comment":
            continue
        if kind == "block_comment":
            pos = _skip_block_comment(text, match.start())
            continue
        begin_here(match.start())
        if kind == "dollar":
            close = text.find(match.group(), pos)
            if close < 0:
                line = text.count("\n", 0, match.start()) + 1
                raise SqlSyntaxError(f"unterminated dollar quote {match.group()} at line {line}")
            pos = close + len(match.group())
            after_begin = False
        elif kind == "stray":
            raise SqlSyntaxError(f"unterminated quoted text at line {text.count(chr(10), 0, match.start()) + 1}")
        elif kind in ("string", "estring", "ident"):
            after_begin = False
        elif kind == "word":
            word = match.group().lower()
            if word == "atomic" and after_begin and atomic_depth == 0:
                atomic_depth = 1
            elif atomic_depth and word == "case":
                atomic_depth += 1
            elif atomic_depth and word == "end":
                atomic_depth -= 1
            after_begin = word == "begin"
        elif kind == "semicolon":
            after_begin = False
            if atomic_depth:
                continue
            assert start is not None
            sql = text[start:pos]
            if sql.strip() != ";":
                out.append(Statement(sql, text.count("\n", 0, start) + 1))
            start = None
    if start is not None and text[start:].strip():
        out.append(Statement(text[start:].rstrip(), text.count("\n", 0, start) + 1))
    return out


def statements(text: str) -> list[str]:
    """The statements of ``text`` as strings (see :func:`split`)."""
    return [s.sql for s in split(text)]


class StatementError(Exception):
    """A statement of a SQL file failed; carries file, statement and SQLSTATE."""

    def __init__(self, file: str, statement: str, error: psycopg.Error):
        self.file = file
        self.statement = statement
        self.sqlstate = error.sqlstate
        self.message = error.diag.message_primary or str(error).splitlines()[0]
        super().__init__(f"{file}: {self.sqlstate}: {self.message}")


def display_name(path: Path) -> str:
    """``schema/20_users.sql``: the path relative to the SQL root."""
    try:
        return str(path.resolve().relative_to(paths.sql_root().resolve()))
    except ValueError:
        return str(path)


def execute(conn: psycopg.Connection, path: Path, stmt: str, echo: Echo = None) -> None:
    """Execute one statement of ``path`` (no parameters: '%' is literal)."""
    if echo:
        echo(stmt)
    try:
        conn.execute(stmt)
    except psycopg.Error as exc:
        raise StatementError(display_name(path), stmt, exc) from exc


def apply_file(conn: psycopg.Connection, path: Path, echo: Echo = None) -> int:
    """Execute every statement of ``path`` on ``conn`` (in the caller's
    transaction); return how many ran. A failure raises StatementError."""
    found = statements(path.read_text(encoding="utf-8"))
    for stmt in found:
        execute(conn, path, stmt, echo)
    return len(found)


def apply_folder(conn: psycopg.Connection, folder: Path, echo: Echo = None) -> list[Path]:
    """Apply every ``*.sql`` file of ``folder`` in name order."""
    files = paths.sql_files(folder)
    for path in files:
        apply_file(conn, path, echo)
    return files
