"""The hook-notification API's ``Database``, over toolsdb's SQL functions.

Code written for the hook-notification database (events, notifications,
sessions, encrypted config, audit log, metrics, V1 import) runs with its
import line changed::

    from toolsdb.compat.notifications import Database

    with Database("~/.claude/state/notifications.db") as db:
        event_id = db.insert_event("abc123", "pre_tool_use", {"tool_name": "Edit"})

**The path.** That design kept a SQLite file; toolsdb is PostgreSQL. A
``postgresql://`` URL or a libpq ``key=value`` string is the database to use.
Any other path (``~/.claude/state/notifications.db``) is accepted and names
no file: the database is the one every ``toolsdb`` command uses
(``DATABASE_URL``, the ``PG*`` variables, else the embedded server ``make
migrate`` created), and nothing is written at that path. ``database=``
names one explicitly.

**Transactions.** Outside a ``with`` block every method is its own
transaction, committed when it returns. In a ``with`` block the whole block
is one transaction: committed when it ends, rolled back when it raises (each
method is then a savepoint, so a failed call leaves the rest of the block
intact); the connection is closed either way.

**Claims.** toolsdb's queues hand out rows with a lease and a claim token
(docs/runtime.md). ``get_unprocessed_events``, ``get_pending_notifications``
and ``get_failed_notifications_for_retry`` claim the rows they return and
keep the tokens in the object, so ``mark_event_processed(id)``,
``mark_notification_sent(id)`` and ``mark_notification_failed(id, error)``
take the id alone, as they did. Marking a row this object did not claim
claims it by id first (``toolsdb.claim_event``, ``claim_notification``): a
row another worker holds is refused, in one line, never settled twice.

**Roles.** On the embedded server the object connects as its superuser and
may do everything. A dedicated login needs, for the parts it uses:
``toolsdb_app`` (writes; each call acts for its ``session_id``, so row-level
security keeps sessions apart), ``toolsdb_worker`` (the claims and marks of
the queues, which see every session) and ``toolsdb_readonly`` (reads across
sessions: ``get_active_sessions``, ``get_recent_audit_logs``,
``get_event_by_id``, ...). A call the login may not make fails in one line
naming the role it needs.

**Rows** are dicts with the design's column names and types: ``id``, times
in Unix seconds, ``hook_payload``, ``retry_count``, ``error``,
``project_name``; JSON comes back parsed. toolsdb's own columns follow under
toolsdb's names (``attempts``, ``max_attempts``, ...). Notification statuses
are toolsdb's: ``pending``, ``sending`` (claimed), ``sent``, ``failed``
(waiting for its retry) and ``dead`` (out of attempts).

Errors are one line (:class:`toolsdb.tools.DatabaseError`, a
``ToolsdbError``); a duplicate key is :class:`IntegrityError`, which is
also a ``sqlite3.IntegrityError``, so ``except sqlite3.IntegrityError``
written for the SQLite original still catches it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .. import config, importv1
from ..errors import ToolsdbError
from ..target import resolve
from ..tools import DatabaseError

Row = dict[str, Any]

# The functions a login may call only as a member of toolsdb_worker.
WORKER_CALLS = (
    "get_unprocessed_events",
    "mark_event_processed",
    "get_pending_notifications",
    "get_failed_notifications_for_retry",
    "mark_notification_sent",
    "mark_notification_failed",
)


class IntegrityError(DatabaseError, sqlite3.IntegrityError):
    """A unique key already holds the value (SQLSTATE 23505): a duplicate
    session, say. Also a ``sqlite3.IntegrityError``, as the original raised."""


def _unix(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def _json_arg(value: Any) -> Jsonb | None:
    """A JSON argument: a dict as it is, a JSON text (the design passed
    terminal_info as one) parsed first."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            raise ToolsdbError(f"not JSON: {value[:80]!r}") from None
    return Jsonb(value)


def _event(row: Row) -> Row:
    return {
        "id": row["event_id"],
        "session_id": row["session_id"],
        "event_type": row["event_type"],
        "hook_payload": row["payload"],
        "created_at": _unix(row["created_at"]),
        "processed_at": _unix(row["processed_at"]),
        "attempts": row["attempts"],
    }


def _notification(row: Row) -> Row:
    return {
        "id": row["notification_id"],
        "event_id": row["event_id"],
        "session_id": row["session_id"],
        "notification_type": row["notification_type"],
        "backend": row["backend"],
        "status": row["status"],
        "retry_count": row["attempts"],
        "payload": row["payload"],
        "error": row["last_error"],
        "created_at": _unix(row["created_at"]),
        "sent_at": _unix(row["sent_at"]),
        "max_attempts": row["max_attempts"],
        "next_attempt_at": _unix(row["next_attempt_at"]),
    }


def _session(row: Row) -> Row:
    return {
        "session_id": row["session_id"],
        "project_name": row["metadata"].get("project_name"),
        "cwd": row["cwd"],
        "git_branch": row["git_branch"],
        "terminal_type": row["terminal_type"],
        "terminal_info": row["terminal_info"],
        "started_at": _unix(row["started_at"]),
        "last_activity_at": _unix(row["last_activity_at"]),
        "ended_at": _unix(row["ended_at"]),
        "is_idle": row["is_idle"],
        "project_id": row["project_id"],
        "end_reason": row["end_reason"],
        "last_event_type": row["last_event_type"],
    }


def _audit(row: Row) -> Row:
    return {
        "id": row["audit_id"],
        "session_id": row["session_id"],
        "action": row["action"],
        "details": row["details"],
        "created_at": _unix(row["logged_at"]),
        "actor": row["actor"],
        "entity_type": row["entity_type"],
        "entity_id": row["entity_id"],
    }


def _is_conninfo(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://")) or ("=" in text and "/" not in text.split("=", 1)[0])


class Database(AbstractContextManager):
    """The hook-notification database (see the module's docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        database: str | None = None,
        worker: str = "toolsdb-compat",
    ) -> None:
        self.path = None if path is None else os.fspath(path)
        if database is None and self.path is not None and _is_conninfo(self.path):
            database = self.path
        self.worker = worker
        self.conn = resolve(database).connect(autocommit=True, application_name="toolsdb-notifications")
        self._block: psycopg.Transaction | None = None
        self._event_claims: dict[int, Any] = {}
        self._notification_claims: dict[int, Any] = {}

    # -- connection and transactions --------------------------------------

    def __enter__(self) -> Database:
        self._block = self.conn.transaction()
        self._block.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        block, self._block = self._block, None
        try:
            if block is not None:
                try:
                    block.__exit__(exc_type, exc, tb)
                except psycopg.Error as error:
                    raise DatabaseError("commit", error) from None
        finally:
            self.close()

    def close(self) -> None:
        """Close the connection (a ``with`` block's transaction is rolled back if still open)."""
        self.conn.close()

    @contextmanager
    def _call(self, operation: str, session_id: str | None = None) -> Iterator[psycopg.Cursor[Row]]:
        """One transaction (a savepoint in a ``with`` block) acting for ``session_id``."""
        try:
            with self.conn.transaction(), self.conn.cursor(row_factory=dict_row) as cur:
                # SET LOCAL, not set_config(): Citus passes it on to the workers.
                cur.execute(sql.SQL("set local toolsdb.session_id = {}").format(sql.Literal(session_id or "")))
                yield cur
        except psycopg.errors.UniqueViolation as exc:
            raise IntegrityError(operation, exc) from None
        except psycopg.errors.InsufficientPrivilege as exc:
            role = "toolsdb_worker" if operation in WORKER_CALLS else "toolsdb_app or toolsdb_readonly"
            raise ToolsdbError(f"{DatabaseError(operation, exc)}; this call needs a login in {role}") from None
        except psycopg.Error as exc:
            raise DatabaseError(operation, exc) from None

    def _rows(self, operation: str, query: str, params: Any = None, session_id: str | None = None) -> list[Row]:
        with self._call(operation, session_id) as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    def _value(self, operation: str, query: str, params: Any = None, session_id: str | None = None) -> Any:
        rows = self._rows(operation, query, params, session_id)
        return next(iter(rows[0].values())) if rows else None

    # -- events ------------------------------------------------------------

    def insert_event(self, session_id: str, event_type: str, payload: dict[str, Any] | None = None) -> int:
        """Queue a raw hook event (toolsdb.insert_event); returns its id."""
        return self._value(
            "insert_event",
            "select toolsdb.insert_event(%s, %s, %s)",
            (session_id, event_type, _json_arg(payload or {})),
            session_id,
        )

    def get_unprocessed_events(self, limit: int = 100) -> list[Row]:
        """Claim up to ``limit`` unprocessed events, oldest first, for 5 minutes
        (toolsdb.get_unprocessed_events); the claim is kept for mark_event_processed."""
        rows = self._rows(
            "get_unprocessed_events",
            "select * from toolsdb.get_unprocessed_events(%s, '5 minutes', %s)",
            (limit, self.worker),
        )
        for row in rows:
            self._event_claims[row["event_id"]] = row["claim_token"]
        return [_event(r) for r in rows]

    def mark_event_processed(self, event_id: int) -> bool:
        """Mark an event processed with this object's claim on it (claimed now
        if it holds none); one line when another worker holds it or it is done."""
        with self._call("mark_event_processed") as cur:
            token = self._event_claims.get(event_id)
            if token is None:
                row = cur.execute(
                    "select claim_token from toolsdb.claim_event(%s, '5 minutes', %s)", (event_id, self.worker)
                ).fetchone()
                if row is None:
                    raise ToolsdbError(
                        f"mark_event_processed: event {event_id} cannot be claimed: it is processed, "
                        "held by another worker, or does not exist"
                    )
                token = row["claim_token"]
            cur.execute("select toolsdb.mark_event_processed(%s, %s)", (event_id, token))
        self._event_claims.pop(event_id, None)
        return True

    def get_event_by_id(self, event_id: int) -> Row | None:
        """The event, or None."""
        rows = self._rows("get_event_by_id", "select * from toolsdb.events where event_id = %s", (event_id,))
        return _event(rows[0]) if rows else None

    def get_events_by_session(self, session_id: str, limit: int | None = None) -> list[Row]:
        """The session's events, oldest first (only that session's: row-level security)."""
        rows = self._rows(
            "get_events_by_session",
            "select * from toolsdb.events where session_id = %s order by event_id limit %s",
            (session_id, limit),
            session_id,
        )
        return [_event(r) for r in rows]

    # -- notifications -----------------------------------------------------

    def insert_notification(
        self,
        event_id: int | None,
        session_id: str,
        notification_type: str,
        backend: str,
        payload: dict[str, Any] | None = None,
    ) -> int:
        """Queue a notification, pending (toolsdb.insert_notification); returns its id."""
        return self._value(
            "insert_notification",
            "select toolsdb.insert_notification(%s, %s, %s, %s, %s)",
            (session_id, notification_type, backend, _json_arg(payload or {}), event_id),
            session_id,
        )

    def _claimed(self, rows: list[Row]) -> list[Row]:
        for row in rows:
            self._notification_claims[row["notification_id"]] = row["claim_token"]
        return [_notification(r) for r in rows]

    def get_pending_notifications(self, limit: int = 100) -> list[Row]:
        """Claim the notifications due now, oldest first: pending ones and failed
        ones whose retry time came (toolsdb.claim_notifications, 1-minute lease)."""
        return self._claimed(
            self._rows(
                "get_pending_notifications",
                "select * from toolsdb.claim_notifications(%s, '1 minute', %s)",
                (limit, self.worker),
            )
        )

    def get_failed_notifications_for_retry(self, max_retries: int = 3, limit: int = 100) -> list[Row]:
        """Claim failed notifications tried fewer than ``max_retries`` times,
        retry time come or not (toolsdb.claim_failed_notifications)."""
        return self._claimed(
            self._rows(
                "get_failed_notifications_for_retry",
                "select * from toolsdb.claim_failed_notifications(%s, %s, '1 minute', %s)",
                (max_retries, limit, self.worker),
            )
        )

    def _notification_token(self, operation: str, cur: psycopg.Cursor[Row], notification_id: int) -> Any:
        token = self._notification_claims.get(notification_id)
        if token is not None:
            return token
        row = cur.execute(
            "select claim_token from toolsdb.claim_notification(%s, '1 minute', %s)", (notification_id, self.worker)
        ).fetchone()
        if row is None:
            raise ToolsdbError(
                f"{operation}: notification {notification_id} cannot be claimed: it is sent, dead, "
                "held by another worker, or does not exist"
            )
        return row["claim_token"]

    def mark_notification_sent(self, notification_id: int) -> bool:
        """Mark a notification sent (toolsdb.mark_notification_sent), with this
        object's claim on it, claimed now if it holds none."""
        with self._call("mark_notification_sent") as cur:
            token = self._notification_token("mark_notification_sent", cur, notification_id)
            cur.execute("select toolsdb.mark_notification_sent(%s, %s)", (notification_id, token))
        self._notification_claims.pop(notification_id, None)
        return True

    def mark_notification_failed(self, notification_id: int, error: str) -> str:
        """Record a failed delivery (toolsdb.mark_notification_failed); returns the
        new status: ``failed`` (retried later, with backoff) or ``dead`` (out of attempts)."""
        with self._call("mark_notification_failed") as cur:
            token = self._notification_token("mark_notification_failed", cur, notification_id)
            status = cur.execute(
                "select toolsdb.mark_notification_failed(%s, %s, %s) as status", (notification_id, token, error)
            ).fetchone()["status"]
        self._notification_claims.pop(notification_id, None)
        return status

    def get_notifications_by_session(self, session_id: str, limit: int | None = None) -> list[Row]:
        """The session's notifications, oldest first (only that session's)."""
        rows = self._rows(
            "get_notifications_by_session",
            "select * from toolsdb.notifications where session_id = %s order by notification_id limit %s",
            (session_id, limit),
            session_id,
        )
        return [_notification(r) for r in rows]

    # -- sessions ----------------------------------------------------------

    def create_session(
        self,
        session_id: str,
        cwd: str | None = None,
        project_name: str | None = None,
        git_branch: str | None = None,
        terminal_type: str | None = None,
        terminal_info: dict[str, Any] | str | None = None,
    ) -> str:
        """Create a new session (toolsdb.insert_session); an existing id raises
        :class:`IntegrityError` (use upsert_session)."""
        return self._value(
            "create_session",
            "select toolsdb.insert_session(%s, %s, %s, %s, %s, %s)",
            (session_id, cwd, project_name, git_branch, terminal_type, _json_arg(terminal_info or {})),
            session_id,
        )

    def upsert_session(
        self,
        session_id: str,
        cwd: str | None = None,
        project_name: str | None = None,
        git_branch: str | None = None,
        terminal_type: str | None = None,
        terminal_info: dict[str, Any] | str | None = None,
    ) -> str:
        """Create the session or refresh (and reopen) it (toolsdb.upsert_session)."""
        return self._value(
            "upsert_session",
            "select toolsdb.upsert_session(%s, %s, %s, %s, %s, %s)",
            (session_id, cwd, project_name, git_branch, terminal_type, _json_arg(terminal_info or {})),
            session_id,
        )

    def get_session(self, session_id: str) -> Row | None:
        """The session, or None."""
        rows = self._rows(
            "get_session", "select * from toolsdb.sessions where session_id = %s", (session_id,), session_id
        )
        return _session(rows[0]) if rows else None

    def update_session_activity(self, session_id: str) -> bool:
        """Mark the session active now; False when there is no such session."""
        return bool(
            self._value(
                "update_session_activity", "select toolsdb.update_session_activity(%s)", (session_id,), session_id
            )
        )

    def set_session_idle(self, session_id: str, is_idle: bool = True) -> bool:
        """Set whether the session waits for the user; False when there is no such session."""
        return bool(
            self._value(
                "set_session_idle", "select toolsdb.set_session_idle(%s, %s)", (session_id, is_idle), session_id
            )
        )

    def end_session(self, session_id: str) -> bool:
        """End the session; False when there is no such active session."""
        return bool(self._value("end_session", "select toolsdb.end_session(%s)", (session_id,), session_id))

    def get_active_sessions(self) -> list[Row]:
        """Sessions not ended, most recently active first."""
        rows = self._rows(
            "get_active_sessions",
            "select * from toolsdb.sessions where ended_at is null order by last_activity_at desc, session_id",
        )
        return [_session(r) for r in rows]

    # -- config --------------------------------------------------------------

    def set_config(self, key: str, value: Any, encrypted: bool = False) -> None:
        """Set a value; ``encrypted`` encrypts it here with the Fernet key
        (TOOLSDB_KEY or the key file, docs/security.md) before it is stored."""
        with self._call("set_config"):
            if encrypted:
                config.set_secret(self.conn, key, str(value))
            else:
                config.set_value(self.conn, key, value)

    def get_config(self, key: str, default: Any = None) -> Any:
        """The value (decrypted when encrypted), or ``default``."""
        with self._call("get_config"):
            return config.get(self.conn, key, default)

    def get_all_config(self) -> dict[str, Any]:
        """Every key and its value, decrypted."""
        with self._call("get_all_config"):
            return {item.key: item.value for item in config.items(self.conn, reveal=True)}

    # -- audit log -----------------------------------------------------------

    def insert_audit_log(self, session_id: str | None, action: str, details: dict[str, Any] | None = None) -> int:
        """Record an explicit audit event for the session (toolsdb.audit_event); returns its id."""
        return self._value(
            "insert_audit_log",
            "select toolsdb.audit_event(action => %s, details => %s)",
            (action, _json_arg(details or {})),
            session_id,
        )

    def _audit_rows(self, operation: str, where: str, params: tuple, limit: int, session_id: str | None) -> list[Row]:
        rows = self._rows(
            operation,
            f"select * from toolsdb.audit_logs where {where} order by audit_id desc limit %s",
            (*params, limit),
            session_id,
        )
        return [_audit(r) for r in rows]

    def get_audit_logs_by_session(self, session_id: str, limit: int = 100) -> list[Row]:
        """The session's audit entries, newest first."""
        return self._audit_rows("get_audit_logs_by_session", "session_id = %s", (session_id,), limit, session_id)

    def get_audit_logs_by_action(self, action: str, limit: int = 100) -> list[Row]:
        """Entries of one action, newest first."""
        return self._audit_rows("get_audit_logs_by_action", "action = %s", (action,), limit, None)

    def get_recent_audit_logs(self, limit: int = 100) -> list[Row]:
        """The latest entries, newest first."""
        return self._audit_rows("get_recent_audit_logs", "true", (), limit, None)

    # -- metrics -------------------------------------------------------------

    def insert_metric(self, metric_name: str, metric_value: float, session_id: str | None = None) -> int:
        """Record a measurement (toolsdb.insert_metric); returns its id."""
        return self._value(
            "insert_metric",
            "select toolsdb.insert_metric(%s, %s, %s)",
            (metric_name, metric_value, session_id),
            session_id,
        )

    def get_metric_stats(self, metric_name: str, since: float | None = None, until: float | None = None) -> Row:
        """count, avg, min, max (and p50, p95, p99) of a metric; ``since`` and
        ``until`` in Unix seconds (toolsdb.get_metric_stats)."""

        def when(seconds: float | None) -> datetime | None:
            return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)

        rows = self._rows(
            "get_metric_stats",
            "select count, avg, min, max, p50, p95, p99 from toolsdb.get_metric_stats(%s, %s, %s)",
            (metric_name, when(since), when(until)),
        )
        return rows[0]

    # -- V1 import -----------------------------------------------------------

    def import_v1_config(self, v1_config: dict[str, Any]) -> None:
        """The V1 slack-config.json settings into config as ``slack.<key>``,
        webhook URLs and tokens encrypted (as ``toolsdb import-v1``)."""
        with self._call("import_v1_config"):
            try:
                importv1.import_config_data(self.conn, v1_config, None, importv1.Summary())
            except ValueError as exc:
                raise ToolsdbError(f"import_v1_config: {exc}") from None

    def import_v1_tool_request(self, session_id: str, tool_request: dict[str, Any], timestamp: float) -> bool:
        """One V1 tool request as a processed event at ``timestamp`` (Unix
        seconds); False when it was imported before."""
        when = datetime.fromtimestamp(timestamp / 1000 if timestamp > 1e11 else timestamp, tz=timezone.utc)
        return self._value(
            "import_v1_tool_request",
            "select toolsdb.import_v1_tool_request(%s, %s, %s, %s)",
            (session_id, _json_arg(tool_request), when, f"{session_id}_{timestamp}.json"),
            session_id,
        )

    def import_v1_notification_state(self, state: dict[str, Any]) -> bool:
        """One V1 notification state: sent ones as sent, others as dead letters;
        False when it was imported before."""
        session_id = state.get("session_id") or state.get("sessionId") if isinstance(state, dict) else None
        return self._value(
            "import_v1_notification_state",
            "select toolsdb.import_v1_notification_state(%s, %s)",
            (_json_arg(state), "notification_states.json"),
            session_id,
        )

    # -- queries -------------------------------------------------------------

    def execute_query(self, query: str, params: Any = None) -> list[Row]:
        """Run one SQL statement; its rows as dicts (the tables are on the search_path)."""
        return self._rows("execute_query", query, params)

    def _get_table_names(self) -> list[str]:
        """toolsdb's tables, by name (partitions left out)."""
        rows = self._rows(
            "_get_table_names",
            "select c.relname from pg_catalog.pg_class as c where c.relnamespace = 'toolsdb'::regnamespace"
            " and c.relkind in ('r', 'p') and not c.relispartition order by 1",
        )
        return [r["relname"] for r in rows]

    def _get_index_names(self) -> list[str]:
        """toolsdb's indexes, by name (those of partitions left out)."""
        rows = self._rows(
            "_get_index_names",
            "select c.relname from pg_catalog.pg_class as c where c.relnamespace = 'toolsdb'::regnamespace"
            " and c.relkind in ('i', 'I') and not c.relispartition order by 1",
        )
        return [r["relname"] for r in rows]
