"""The agent tools from Python: a thin layer over the SQL functions.

Each class wraps one connection and calls toolsdb's functions; the rules (hash
format, confidence range, impact names, lifecycle, audit actor) live in SQL.
Every method runs in its own transaction (a savepoint when the caller already
has one open), so a failure leaves nothing half written, and a database error
comes back as :class:`DatabaseError`: one line with the SQLSTATE and the
constraint it broke.

    with VisionCache.connect() as cache:  # DATABASE_URL, PG*, or the embedded server
        key = VisionCache.hash_image(image_bytes)
        hit = cache.get(key, "v1.0") or ...
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .errors import MissingExtra, ToolsdbError
from .target import resolve

Row = dict[str, Any]

AUDIT_COLUMNS = (
    "audit_id",
    "logged_at",
    "actor",
    "actor_user_id",
    "actor_agent_id",
    "session_id",
    "action",
    "entity_type",
    "entity_id",
    "old_values",
    "new_values",
    "details",
)


class DatabaseError(ToolsdbError):
    """A toolsdb function refused the call (or the database was unreachable); one line."""

    def __init__(self, operation: str, exc: psycopg.Error):
        self.operation = operation
        self.sqlstate = exc.sqlstate
        self.constraint = exc.diag.constraint_name
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        text = exc.diag.message_primary or (lines[0] if lines else type(exc).__name__)
        notes = [f"SQLSTATE {self.sqlstate}"] if self.sqlstate else []
        if self.constraint:
            notes.append(f"constraint {self.constraint}")
        super().__init__(f"{operation}: {text}" + (f" ({', '.join(notes)})" if notes else ""))


def connect(database: str | None = None, **kwargs: Any) -> psycopg.Connection:
    """A connection picked as the CLI picks it: ``database``, else DATABASE_URL,
    else libpq's PG* variables, else the one embedded server `make migrate`
    created (found from any folder, started if needed, never created here)."""
    kwargs.setdefault("autocommit", True)
    kwargs.setdefault("application_name", "toolsdb-tools")
    return resolve(database).connect(**kwargs)


class _Tool:
    """One connection; each method one transaction; errors as DatabaseError."""

    def __init__(self, conn: psycopg.Connection | None = None, database: str | None = None):
        """On ``conn``; without one, on a new connection to ``database`` or, with
        neither, to the database the CLI would use (closed by ``close()``)."""
        self.conn = conn if conn is not None else connect(database)

    @classmethod
    def connect(cls, database: str | None = None):
        """An instance on a new connection (see :func:`connect`); ``with`` closes it."""
        return cls(database=database)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self, operation: str) -> Iterator[psycopg.Cursor[Row]]:
        try:
            with self.conn.transaction(), self.conn.cursor(row_factory=dict_row) as cur:
                yield cur
        except psycopg.Error as exc:
            raise DatabaseError(operation, exc) from exc

    def _rows(self, operation: str, query: str | sql.Composable, params: Any = None) -> list[Row]:
        with self._transaction(operation) as cur:
            return cur.execute(query, params).fetchall()

    def _one(self, operation: str, query: str | sql.Composable, params: Any = None) -> Row | None:
        found = self._rows(operation, query, params)
        return found[0] if found else None

    def _scalar(self, operation: str, query: str, params: Any = None) -> Any:
        """The one value of ``select toolsdb.f(...) as value``."""
        return self._rows(operation, query, params)[0]["value"]


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


class VisionCache(_Tool):
    """The vision-analysis cache (schema/50_vision_cache.sql)."""

    @staticmethod
    def hash_image(data: bytes) -> str:
        """The cache key of an image: SHA-256 of its bytes, 64 lowercase hex digits."""
        return hashlib.sha256(data).hexdigest()

    def store(
        self,
        image_hash: str,
        extracted_data: dict[str, Any],
        confidence_score: float,
        model_version: str,
        ttl: timedelta | str | None = None,
    ) -> datetime:
        """Store (or replace) an analysis, live for ``ttl`` (a timedelta or an
        interval such as '7 days'; default the SQL's 30 days); returns its expiry."""
        args = "image_hash => %s, extracted_data => %s, confidence_score => %s, model_version => %s"
        params: list[Any] = [image_hash, _json(extracted_data), confidence_score, model_version]
        if ttl is not None:
            args += ", ttl => %s::interval"
            params.append(ttl)
        return self._scalar("vision_cache_store", f"select toolsdb.vision_cache_store({args}) as value", params)

    def get(self, image_hash: str, model_version: str | None = None) -> Row | None:
        """The live entry (without a version: the newest live one), counting the hit; None on a miss."""
        return self._one(
            "vision_cache_get", "select * from toolsdb.vision_cache_get(%s, %s)", (image_hash, model_version)
        )

    def stats(self) -> list[Row]:
        """Per model version: entries, live, expired, hits, hit_ratio."""
        return self._rows("vision_cache_stats", "select * from toolsdb.vision_cache_stats()")

    def purge_expired(self) -> int:
        """Delete the expired entries; how many."""
        return self._scalar("vision_cache_purge_expired", "select toolsdb.vision_cache_purge_expired() as value")


class AuditTrail(_Tool):
    """Explicit audit events and reading the log (schema/13_audit.sql)."""

    def record_event(
        self,
        event_type: str,
        entity_type: str | None = None,
        entity_id: str | int | UUID | None = None,
        old_value: dict[str, Any] | None = None,
        new_value: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
        user: str | None = None,
    ) -> int:
        """Record an event (toolsdb.audit_event); ``user`` becomes the actor
        (setting toolsdb.actor of the transaction). Returns its audit_id."""
        with self._transaction("audit_event") as cur:
            if user is not None:
                cur.execute("select set_config('toolsdb.actor', %s, true)", (user,))
            row = cur.execute(
                "select toolsdb.audit_event(action => %s, entity_type => %s, entity_id => %s,"
                " details => %s, old_values => %s, new_values => %s) as value",
                (
                    event_type,
                    entity_type,
                    None if entity_id is None else str(entity_id),
                    _json(details),
                    _json(old_value),
                    _json(new_value),
                ),
            ).fetchone()
        return row["value"] if row else None

    def get_events(
        self,
        entity_type: str | None = None,
        entity_id: str | int | UUID | None = None,
        action: str | None = None,
        since: datetime | str | None = None,
        limit: int = 100,
    ) -> list[Row]:
        """Entries of toolsdb.audit_logs matching every filter given, newest first."""
        filters = {"entity_type": entity_type, "entity_id": entity_id, "action": action}
        where = [sql.SQL("{} = %s").format(sql.Identifier(k)) for k, v in filters.items() if v is not None]
        params: list[Any] = [str(v) for v in filters.values() if v is not None]
        if since is not None:
            where.append(sql.SQL("logged_at >= %s::timestamptz"))
            params.append(since)
        query = sql.SQL(
            "select {columns} from toolsdb.audit_logs{where} order by logged_at desc, audit_id desc limit %s"
        )
        return self._rows(
            "audit_logs",
            query.format(
                columns=sql.SQL(", ").join(map(sql.Identifier, AUDIT_COLUMNS)),
                where=sql.SQL(" where ") + sql.SQL(" and ").join(where) if where else sql.SQL(""),
            ),
            [*params, limit],
        )


ESCALATION_COLUMNS = (
    "bug_id",
    "error_type",
    "error_message",
    "user_impact",
    "frequency",
    "escalation_priority",
    "status",
    "assigned_to",
    "reopened_count",
    "first_seen_at",
    "last_seen_at",
)


class BugEscalation(_Tool):
    """Bug escalation (schema/35_bug_escalations.sql, repeatable/84_agent_tools_views.sql)."""

    def report_bug(self, bug_id: str, error_type: str, error_message: str, user_impact: str = "medium") -> Row:
        """Report an occurrence (toolsdb.report_bug); returns the bug's row."""
        return self._rows(
            "report_bug",
            "select * from toolsdb.report_bug(%s, %s, %s, %s)",
            (bug_id, error_type, error_message, user_impact),
        )[0]

    def get_escalations(self, status: str | None = None, limit: int = 100) -> list[Row]:
        """Without ``status``, the open bugs of toolsdb.escalation_queue; with one
        (pending, acknowledged or resolved), the bugs in that status; in escalation order."""
        if status is None:
            return self._rows(
                "escalation_queue",
                "select * from toolsdb.escalation_queue order by escalation_priority desc, last_seen_at desc limit %s",
                [limit],
            )
        columns = ", ".join(ESCALATION_COLUMNS)
        return self._rows(
            "bug_escalations",
            f"select {columns} from toolsdb.bug_escalations where status = %s"
            " order by escalation_priority desc, last_seen_at desc limit %s",
            [status, limit],
        )

    def move(self, bug_id: str, status: str, assigned_to: str | UUID | None = None) -> str:
        """Move a bug along its lifecycle (and assign it); returns the status it left."""
        return self._scalar(
            "bug_escalation_move",
            "select toolsdb.bug_escalation_move(%s, %s, %s::uuid) as value",
            (bug_id, status, None if assigned_to is None else str(assigned_to)),
        )


class SchemaValidator(_Tool):
    """The schema validator (toolsdb.validator) on this connection."""

    def validate(self, sql_text: str, refresh: bool = False, strict: bool = False) -> dict[str, Any]:
        """The validator's report (valid, statement_hash, cached, errors, warnings,
        findings); ``refresh`` runs a script again whose report is stored;
        the conventions are warnings unless ``strict``.
        Raises ToolsdbError (ValidationRefused) for anything but definitions,
        MissingExtra when pglast (toolsdb[validate]) is not installed."""
        try:
            from .validator import validate
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] != "pglast":
                raise
            raise MissingExtra("validate_schema needs pglast: pip install 'toolsdb[validate]'") from None

        try:
            with self.conn.transaction():
                return validate(self.conn, sql_text, refresh=refresh, strict=strict)
        except psycopg.Error as exc:
            raise DatabaseError("validate_schema", exc) from exc

    validate_create_statement = validate
