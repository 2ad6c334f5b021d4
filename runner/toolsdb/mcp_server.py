"""``toolsdb mcp``: the agent tools as an MCP server on stdio.

Tools: validate_schema, vision_cache_lookup, vision_cache_store, audit_query,
audit_record, bug_report, bug_list; each calls the thin API of toolsdb.tools
(so the SQL functions) in one transaction. A refused call (bad arguments, a
broken constraint, no database) is an MCP tool error (isError) with one line;
the server goes on serving. One connection, used by one call at a time and
opened again on the next call after it broke. Logs go to stderr; stdout
carries only the protocol.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import psycopg
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import ToolAnnotations
from pydantic import Field, ValidationError

from . import __version__
from .errors import ToolsdbError
from .target import Target
from .tools import AuditTrail, BugEscalation, SchemaValidator, VisionCache

T = TypeVar("T")

INSTRUCTIONS = (
    "toolsdb: a PostgreSQL database for teams running AI coding agents. Validate schema SQL, cache "
    "vision-analysis results by image SHA-256, record and query audit events, report and list bugs to escalate."
)

ImageHash = Annotated[
    str,
    Field(
        description="The image's key: SHA-256 of its bytes (64 lowercase hex digits) "
        "or another id of up to 128 letters, digits, _ . : -."
    ),
]
ModelVersion = Annotated[str, Field(description="The model (and version) that analysed the image, e.g. 'v1.0'.")]
Limit = Annotated[int, Field(ge=1, le=1000, description="At most this many rows (1-1000).")]
JsonObject = Annotated[dict[str, Any] | None, Field(description="A JSON object, or omit.")]


class Database:
    """The one connection of the server: one call at a time (tools run on
    worker threads), opened on first use and again after it broke."""

    def __init__(self, target: Target):
        self.target = target
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def call(self, use: Callable[[psycopg.Connection], T]) -> T:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self.target.connect(autocommit=True, application_name="toolsdb-mcp")
                return use(self._conn)
            except ToolsdbError as exc:
                raise ToolError(exc.format_message()) from exc


class ToolsdbMCP(MCPServer):
    """MCPServer whose tool errors are one line, without the SDK's prefix."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                problems = "; ".join(
                    f"{'.'.join(map(str, err['loc'])) or 'arguments'}: {err['msg']}" for err in cause.errors()
                )
                raise ToolError(f"{name}: invalid arguments: {problems}") from cause
            if isinstance(cause, ToolError):
                raise ToolError(str(cause)) from cause
            raise


def build_server(target: Target, log_level: Literal["DEBUG", "INFO", "WARNING"] = "WARNING") -> ToolsdbMCP:
    """The server with its tools, on the database ``target``."""
    db = Database(target)
    server = ToolsdbMCP("toolsdb", version=__version__, instructions=INSTRUCTIONS, log_level=log_level)
    reads = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    writes = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=True, open_world_hint=False))
    def validate_schema(
        sql: Annotated[
            str, Field(min_length=1, description="The script: CREATE, ALTER and COMMENT ON statements only.")
        ],
        refresh: Annotated[bool, Field(description="Run the script again even when a report of it is stored.")] = False,
        strict: Annotated[
            bool, Field(description="Report the conventions at their rules' own severity (some are errors).")
        ] = False,
    ) -> dict[str, Any]:
        """Validate a PostgreSQL schema script: it parses, it runs (in a scratch schema, always rolled
        back) and what it makes meets toolsdb's conventions (primary key, timestamptz, CHECKs, indexed
        foreign keys, comments, names). Returns valid, statement_hash, cached, errors, warnings and
        findings (rule, severity, line, message). Syntax and execution errors make it invalid; the
        conventions are warnings unless strict. Statements other than definitions are refused."""
        return db.call(lambda conn: SchemaValidator(conn).validate(sql, refresh, strict))

    @server.tool(annotations=reads)
    def vision_cache_lookup(
        image_hash: ImageHash,
        model_version: Annotated[str | None, Field(description="Omit for the newest live entry of any model.")] = None,
    ) -> dict[str, Any]:
        """Look up the cached vision analysis of an image (by SHA-256) before analysing it again.
        Returns hit (true/false) and the entry: extracted_data, confidence_score, model_version, expires_at."""
        entry = db.call(lambda conn: VisionCache(conn).get(image_hash, model_version))
        return {"hit": entry is not None, "entry": entry}

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=True, open_world_hint=False))
    def vision_cache_store(
        image_hash: ImageHash,
        extracted_data: Annotated[dict[str, Any], Field(description="What the analysis found (a JSON object).")],
        confidence_score: Annotated[float, Field(ge=0, le=1, description="Confidence of the analysis, 0 to 1.")],
        model_version: ModelVersion,
        ttl: Annotated[
            str | None,
            Field(description="How long the entry lives, a PostgreSQL interval such as '7 days'; default 30 days."),
        ] = None,
    ) -> dict[str, Any]:
        """Store (or replace) the vision analysis of an image for a model version. Returns when it expires."""
        expires_at = db.call(
            lambda conn: VisionCache(conn).store(image_hash, extracted_data, confidence_score, model_version, ttl)
        )
        return {"image_hash": image_hash, "model_version": model_version, "expires_at": expires_at}

    @server.tool(annotations=reads)
    def audit_query(
        entity_type: Annotated[str | None, Field(description="Only this kind of entity, e.g. 'project'.")] = None,
        entity_id: Annotated[str | None, Field(description="Only this entity (its id as text).")] = None,
        action: Annotated[str | None, Field(description="Only this action, e.g. 'permission_changed'.")] = None,
        since: Annotated[
            datetime | None, Field(description="Only entries logged at or after this ISO 8601 time.")
        ] = None,
        limit: Limit = 100,
    ) -> dict[str, Any]:
        """Query the audit log, newest first: who (actor) did what (action) to which entity, with details
        and the old and new values."""
        events = db.call(lambda conn: AuditTrail(conn).get_events(entity_type, entity_id, action, since, limit))
        return {"events": events}

    @server.tool(annotations=writes)
    def audit_record(
        action: Annotated[
            str, Field(description="The event, snake_case, e.g. 'permission_changed' (insert, update, ... reserved).")
        ],
        entity_type: Annotated[
            str | None, Field(description="Kind of thing acted on, snake_case, e.g. 'project'.")
        ] = None,
        entity_id: Annotated[str | None, Field(description="Which one: its id as text.")] = None,
        details: JsonObject = None,
        old_values: JsonObject = None,
        new_values: JsonObject = None,
        actor: Annotated[str | None, Field(description="Who acted (default: the database user).")] = None,
    ) -> dict[str, Any]:
        """Record an explicit event in the append-only audit log. Returns its audit_id."""
        audit_id = db.call(
            lambda conn: AuditTrail(conn).record_event(
                action, entity_type, entity_id, old_values, new_values, details, actor
            )
        )
        return {"audit_id": audit_id}

    @server.tool(annotations=writes)
    def bug_report(
        bug_id: Annotated[str, Field(description="Your stable identifier of the bug, e.g. 'hook-timeout'.")],
        error_type: Annotated[str, Field(description="Classification, e.g. 'TimeoutError'.")],
        error_message: Annotated[str, Field(description="The error message (the latest one is kept).")],
        user_impact: Annotated[
            Literal["low", "medium", "high", "critical"], Field(description="Whom it hurts and how much.")
        ] = "medium",
    ) -> dict[str, Any]:
        """Report an occurrence of a bug to escalate: a new bug starts pending; a known one counts one
        more occurrence and keeps its highest impact; a resolved one reopens. Returns the bug."""
        return db.call(lambda conn: BugEscalation(conn).report_bug(bug_id, error_type, error_message, user_impact))

    @server.tool(annotations=reads)
    def bug_list(
        status: Annotated[
            Literal["pending", "acknowledged"] | None, Field(description="Only bugs in this status; omit for both.")
        ] = None,
        limit: Limit = 100,
    ) -> dict[str, Any]:
        """List the open bugs (pending or acknowledged) in escalation order: highest priority (impact, then
        frequency) first, then the most recently seen."""
        return {"bugs": db.call(lambda conn: BugEscalation(conn).get_escalations(status, limit))}

    return server


def serve(target: Target, verbose: bool = False) -> None:
    """Serve on stdin/stdout until the client closes stdin."""
    build_server(target, "INFO" if verbose else "WARNING").run("stdio")
