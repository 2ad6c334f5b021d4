"""The schema validator's Python side (``toolsdb validate``, the MCP tool).

Thin, as everywhere: pglast parses the script with PostgreSQL's own parser
(libpg_query), which gives a syntax error its exact line and each statement
its kind; everything else (refusing what is not a definition, running the
statements in the always rolled back scratch schema, the conventions, the
stored reports) is ``toolsdb.validate_schema()`` in SQL, the same path a psql
user calls. docs/agent-tools.md, "Schema validator", has the rules.
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
from pglast import parser as pg_parser
from pglast.enums.parsenodes import AlterTableType

from .errors import ToolsdbError

# Statement kinds (pglast node names) the validator runs: definitions only,
# none that reads or writes rows or runs a query or code. The SQL side
# (toolsdb_private.validation_refusal) enforces the same list for psql users.
DEFINITIONS = frozenset(
    {
        "CreateStmt",
        "IndexStmt",
        "ViewStmt",
        "CompositeTypeStmt",
        "CreateEnumStmt",
        "CreateRangeStmt",
        "CreateDomainStmt",
        "CreateSeqStmt",
        "CreateFunctionStmt",
        "CreateTrigStmt",
        "CreateStatsStmt",
        "CreatePolicyStmt",
        "AlterTableStmt",
        "AlterSeqStmt",
        "AlterEnumStmt",
        "AlterDomainStmt",
        "AlterFunctionStmt",
        "AlterPolicyStmt",
        "AlterStatsStmt",
        "RenameStmt",
        "CommentStmt",
    }
)
EVALUATING_COMMANDS = (AlterTableType.AT_AddColumn, AlterTableType.AT_AttachPartition)
# Names a refusal gives for the common kinds (others: the node name).
KIND_NAMES = {
    "CreateTableAsStmt": "CREATE TABLE ... AS / CREATE MATERIALIZED VIEW (runs a query)",
    "SelectStmt": "SELECT",
    "InsertStmt": "INSERT",
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "MergeStmt": "MERGE",
    "DropStmt": "DROP",
    "TruncateStmt": "TRUNCATE",
    "DoStmt": "DO",
    "CallStmt": "CALL",
    "CopyStmt": "COPY",
    "GrantStmt": "GRANT/REVOKE",
    "TransactionStmt": "a transaction command",
    "VariableSetStmt": "SET",
    "CreateSchemaStmt": "CREATE SCHEMA",
    "CreateExtensionStmt": "CREATE EXTENSION",
}


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


def evaluates_expressions(statement: object) -> bool:
    """True for the definitions whose expressions PostgreSQL evaluates at
    once: ADD COLUMN (a non-volatile default, the "fast default") and a
    partition bound (CREATE TABLE ... PARTITION OF, ATTACH PARTITION)."""
    kind = type(statement).__name__
    if kind == "CreateStmt":
        return getattr(statement, "partbound", None) is not None
    if kind == "AlterTableStmt":
        commands = getattr(statement, "cmds", None) or ()
        return any(getattr(cmd, "subtype", None) in EVALUATING_COMMANDS for cmd in commands)
    return False


def parse(sql: str) -> dict[str, Any] | None:
    """Parse with PostgreSQL's parser. Returns a report for a syntax error,
    None when the script parses; raises ValidationRefused for a statement
    that is not a definition."""
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
    defines_functions = any(type(raw.stmt).__name__ == "CreateFunctionStmt" for raw in statements or ())
    for number, raw in enumerate(statements or (), start=1):
        kind = type(raw.stmt).__name__
        start = raw.stmt_location or 0
        start += len(sql[start:]) - len(sql[start:].lstrip())
        where = f"statement {number} (line {line_of(sql, start)})"
        if kind not in DEFINITIONS:
            raise ValidationRefused(
                f"refused: {where} is {KIND_NAMES.get(kind, kind)}, "
                "not a definition; only CREATE TABLE, INDEX, VIEW, TYPE, DOMAIN, SEQUENCE, FUNCTION, TRIGGER, "
                "ALTER of those and COMMENT ON are validated"
            )
        if defines_functions and evaluates_expressions(raw.stmt):
            raise ValidationRefused(
                f"refused: {where}: ALTER TABLE ... ADD COLUMN or a partition bound would evaluate its "
                "expressions now, and this script defines functions they could call; validate the functions "
                "in a script of their own"
            )
    if not statements:
        raise ToolsdbError("the script holds no statement")
    return None


def validate(conn: psycopg.Connection, sql: str, refresh: bool = False) -> dict[str, Any]:
    """Validate a script: parse it here, then run toolsdb.validate_schema().

    Returns the report (valid, statement_hash, cached, statements, errors,
    warnings, findings: [{rule, severity, line, message, object}]). A syntax
    error is reported at once and not stored. Raises ValidationRefused for
    anything but definitions, ToolsdbError for an empty or oversized script.
    """
    if not sql.strip():
        raise ToolsdbError("the script is empty")
    syntax_report = parse(sql)
    if syntax_report is not None:
        return syntax_report
    try:
        with conn.transaction():
            # The statements run for real: bound the time they may take,
            # unless the session already has a tighter limit.
            conn.execute(
                "select set_config('statement_timeout', %s, true)"
                " where current_setting('statement_timeout')::interval not between '1 ms' and %s::interval",
                (STATEMENT_TIMEOUT, STATEMENT_TIMEOUT),
            )
            report = conn.execute("select toolsdb.validate_schema(%s, %s)", (sql, refresh)).fetchone()[0]
    except psycopg.errors.InsufficientPrivilege as exc:
        message = exc.diag.message_primary or str(exc)
        if message.startswith("validate_schema refuses"):
            raise ValidationRefused(f"refused: {message}") from None
        raise ToolsdbError(f"{message} (SQLSTATE 42501): the role needs toolsdb_app to validate") from None
    except (psycopg.errors.InvalidParameterValue, psycopg.errors.ProgramLimitExceeded) as exc:
        raise ToolsdbError(exc.diag.message_primary or str(exc)) from None
    return report


def format_findings(report: dict[str, Any], name: str) -> list[str]:
    """Lines in the compiler style: NAME:LINE: severity [rule] message."""
    return [
        f"{name}:{finding['line']}: {finding['severity']} [{finding['rule']}] {finding['message']}"
        for finding in report["findings"]
    ]


__all__ = ["DEFINITIONS", "ValidationRefused", "format_findings", "parse", "script_hash", "validate"]
