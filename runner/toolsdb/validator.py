"""The schema validator's Python side (``toolsdb validate``, the MCP tool).

Thin, as everywhere: pglast parses the script with PostgreSQL's own parser
(libpg_query), which gives a syntax error its exact line; everything else
(refusing what is not a definition, by the one list of what may run;
running the statements in the always rolled back scratch schema; the
conventions; the
stored reports) is ``toolsdb.validate_schema()`` in SQL, the same path a psql
user calls. docs/agent-tools.md, "Schema validator", has the rules.
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
from pglast import parser as pg_parser

from .errors import ToolsdbError

# The longest a validation may run when the session sets no tighter limit.
STATEMENT_TIMEOUT = "60s"


class ValidationRefused(ToolsdbError):
    """The script holds something other than definitions; nothing ran."""


def line_of(text: str, offset: int) -> int:
    """1-based line of a 0-based character offset."""
    return text.count("\n", 0, max(offset, 0)) + 1


def script_hash(sql: str) -> str:
    """SHA-256 of the script as the database computes it (UTF-8 bytes)."""
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


def parse(sql: str) -> dict[str, Any] | None:
    """Parse with PostgreSQL's parser. Returns a report for a syntax error
    (with its exact line), None when the script parses. What may run is not
    decided here: toolsdb_private.validation_refusal() holds the one list,
    for psql users and this module alike."""
    try:
        statements = pg_parser.parse_sql(sql)
    except pg_parser.ParseError as exc:
        message, offset = (*exc.args, None)[:2]
        # "syntax error at end of input" carries no location: the end it is.
        at = len(sql.rstrip()) if offset is None else int(offset)
        return {
            "valid": False,
            "statement_hash": script_hash(sql),
            "cached": False,
            "statements": None,
            "errors": 1,
            "warnings": 0,
            "findings": [
                {
                    "rule": "syntax",
                    "severity": "error",
                    "line": line_of(sql, at),
                    "message": f"{message} (the PostgreSQL parser, through pglast)",
                    "object": None,
                }
            ],
        }
    if not statements:
        raise ToolsdbError("the script holds no statement")
    return None


def validate(conn: psycopg.Connection, sql: str, refresh: bool = False, strict: bool = False) -> dict[str, Any]:
    """Validate a script: parse it here, then run toolsdb.validate_schema().

    Returns the report (valid, statement_hash, cached, strict, statements,
    errors, warnings, findings: [{rule, severity, line, message, object}]).
    Syntax and execution errors make it invalid; the house conventions are
    warnings unless ``strict``, which keeps each rule's own severity. A syntax
    error is reported at once and not stored. Raises ValidationRefused for
    anything but definitions, ToolsdbError for an empty or oversized script.
    """
    if not sql.strip():
        raise ToolsdbError("the script is empty")
    syntax_report = parse(sql)
    if syntax_report is not None:
        return {**syntax_report, "strict": strict}
    try:
        with conn.transaction():
            # The statements run for real: bound the time they may take,
            # unless the session already has a tighter limit.
            conn.execute(
                "select set_config('statement_timeout', %s, true)"
                " where current_setting('statement_timeout')::interval not between '1 ms' and %s::interval",
                (STATEMENT_TIMEOUT, STATEMENT_TIMEOUT),
            )
            report = conn.execute("select toolsdb.validate_schema(%s, %s, %s)", (sql, refresh, strict)).fetchone()[0]
    except psycopg.errors.InsufficientPrivilege as exc:
        message = exc.diag.message_primary or str(exc)
        if message.startswith("validate_schema refuses "):
            raise ValidationRefused(f"refused: {message.removeprefix('validate_schema refuses ')}") from None
        raise ToolsdbError(f"{message} (SQLSTATE 42501): the role needs toolsdb_app to validate") from None
    except (
        psycopg.errors.InvalidParameterValue,
        psycopg.errors.ProgramLimitExceeded,
        psycopg.errors.FeatureNotSupported,  # a Citus database
    ) as exc:
        raise ToolsdbError(exc.diag.message_primary or str(exc)) from None
    except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as exc:
        # Over its time budget, or a lock it waited for too long: no report
        # was kept, and the same script may pass another time.
        message = exc.diag.message_primary or str(exc)
        raise ToolsdbError(f"{message} (SQLSTATE {exc.sqlstate}): nothing was stored; try again") from None
    return report


def format_findings(report: dict[str, Any], name: str) -> list[str]:
    """Lines in the compiler style: NAME:LINE: severity [rule] message."""
    return [
        f"{name}:{finding['line']}: {finding['severity']} [{finding['rule']}] {finding['message']}"
        for finding in report["findings"]
    ]


__all__ = ["ValidationRefused", "format_findings", "parse", "script_hash", "validate"]
