"""User-facing errors: one line, non-zero exit, no traceback.

Plain exceptions: the library (toolsdb.tools, toolsdb.redis, the validator,
the pool) raises them without importing click. The command line (the root
group in toolsdb.cli) prints any of them as ``Error: <message>`` on stderr
and exits with its ``exit_code``.
"""

from __future__ import annotations


class ToolsdbError(Exception):
    """A mistake or condition the user can act on; its message is one line."""

    exit_code = 1

    def __init__(self, message: object) -> None:
        # One line, whatever the cause carried.
        self.message = " ".join(str(message).split())
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def format_message(self) -> str:
        """The one-line message (the name click's exceptions use for it)."""
        return self.message


class MigrationError(ToolsdbError):
    """A migration (or seed, or view) statement failed; nothing was kept."""

    def __init__(self, file: str, statement: str, sqlstate: str | None, message: str):
        self.file = file
        self.statement = statement
        self.sqlstate = sqlstate
        short = " ".join(statement.split())
        if len(short) > 120:
            short = short[:117] + "..."
        # No SQLSTATE: the client's own error (most often the connection was lost).
        how = f"with SQLSTATE {sqlstate}" if sqlstate else "(no answer from the server)"
        super().__init__(f"{file}: statement `{short}` failed {how}: {message}; nothing was applied")


class MissingExtra(ToolsdbError):
    """A command needs a package of an optional extra (toolsdb[redis], [mcp], [validate]) that is not installed."""
