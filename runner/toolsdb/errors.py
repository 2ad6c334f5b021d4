"""User-facing errors: one line, non-zero exit, no traceback."""

from __future__ import annotations

import click


class ToolsdbError(click.ClickException):
    """A mistake or condition the user can act on; printed as one line."""

    exit_code = 1

    def format_message(self) -> str:
        # One line, whatever the cause carried.
        return " ".join(str(self.message).split())


class MigrationError(ToolsdbError):
    """A migration (or seed, or view) statement failed; nothing was kept."""

    def __init__(self, file: str, statement: str, sqlstate: str | None, message: str):
        self.file = file
        self.statement = statement
        self.sqlstate = sqlstate
        short = " ".join(statement.split())
        if len(short) > 120:
            short = short[:117] + "..."
        super().__init__(
            f"{file}: statement `{short}` failed with SQLSTATE {sqlstate or '?????'}: {message}; nothing was applied"
        )
