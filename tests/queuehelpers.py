"""Helpers of the work queues' test modules (test_queue_*.py): enqueueing,
claiming and reading notifications and events, and the inner select of each
claim as the functions run it.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from .dbhelpers import (
    Row,
    one,
    rows,
    scalar,
)

SESSION = "queue-s1"
OTHER_SESSION = "queue-s2"
LEASE_LOST = "55000"  # object_not_in_prerequisite_state
INVALID = "22023"  # invalid_parameter_value
CHECK = "23514"  # check_violation
DENIED = "42501"  # insufficient_privilege
MARKER = "marker"

# The inner select of each claim, exactly as in the function (claim_notifications
# and settle_and_claim_notifications share toolsdb_private.claim_due_notifications; checked
# against the function's source before it is explained).
NOTIFICATIONS_CLAIM_SELECT = """
            select p.notification_id
            from toolsdb.notifications as p
            where p.status in ('pending', 'sending', 'failed') and p.next_attempt_at <= pg_catalog.now()
            order by p.next_attempt_at, p.notification_id
            limit batch_size
            for update skip locked
"""
# The lease check of the notification settlements (settle_sent_notifications
# and settle_failed_notification), exactly as in the functions: time left, so
# the rows are found by primary key (checked against the source, explained).
NOTIFICATIONS_LEASE_HELD = """
        and n.status = 'sending'
        and n.next_attempt_at - pg_catalog.now() > interval '0'
"""
EVENTS_CLAIM_SELECT = """
            select p.event_id
            from toolsdb.events as p
            where p.processed_at is null and p.visible_at <= pg_catalog.now()
            order by p.event_id
            limit batch_size
            for update skip locked
"""

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def named_call(function: str, args: dict[str, Any]) -> tuple[sql.Composed, list[Any]]:
    """select toolsdb.<function>(name => value, ...), jsonb values wrapped."""
    query = sql.SQL("select toolsdb.{fn}({args})").format(
        fn=sql.Identifier(function),
        args=sql.SQL(", ").join(sql.SQL("{} => {}").format(sql.Identifier(k), sql.Placeholder()) for k in args),
    )
    return query, [Jsonb(v) if k == "payload" else v for k, v in args.items()]


def session(conn: psycopg.Connection, session_id: str = SESSION) -> str:
    return scalar(conn, "select toolsdb.create_session(%s)", (session_id,))


def enqueue(
    conn: psycopg.Connection,
    session_id: str = SESSION,
    notification_type: str = "task_complete",
    backend: str = "slack",
    **extra: Any,
) -> int:
    """toolsdb.insert_notification with named arguments; returns the id."""
    args = {"session_id": session_id, "notification_type": notification_type, "backend": backend, **extra}
    query, params = named_call("insert_notification", args)
    return scalar(conn, query, params)


def enqueue_many(conn: psycopg.Connection, count: int, session_id: str = SESSION, **extra: Any) -> list[int]:
    return [enqueue(conn, session_id, payload={"n": n}, **extra) for n in range(count)]


def bulk_notifications(conn: psycopg.Connection, count: int, session_id: str = SESSION) -> list[int]:
    """count pending notifications in one insert statement."""
    found = conn.execute(
        "insert into toolsdb.notifications (session_id, notification_type, backend, payload) "
        "select %s, 'bulk', 'webhook', jsonb_build_object('n', g) from generate_series(1, %s) as g "
        "returning notification_id",
        (session_id, count),
    ).fetchall()
    return [r[0] for r in found]


def claim(
    conn: psycopg.Connection, batch_size: int = 10, lease: str = "1 minute", worker: str | None = None
) -> list[Row]:
    return rows(
        conn,
        "select * from toolsdb.claim_notifications(%s::integer, %s::interval, %s::text)",
        (batch_size, lease, worker),
    )


def ack(conn: psycopg.Connection, ids: list[int], token: uuid.UUID) -> int:
    return scalar(conn, "select toolsdb.mark_notifications_sent(%s::bigint[], %s::uuid)", (ids, token))


def ack_one(conn: psycopg.Connection, notification_id: int, token: uuid.UUID) -> bool:
    return scalar(conn, "select toolsdb.mark_notification_sent(%s::bigint, %s::uuid)", (notification_id, token))


def fail(conn: psycopg.Connection, notification_id: int, token: uuid.UUID, error: str = "boom", **retry: str) -> str:
    """toolsdb.mark_notification_failed; retry_base / retry_max as interval text when given."""
    casts = {"notification_id": "bigint", "claim_token": "uuid", "error": "text", "retry_base": "interval"}
    args: dict[str, Any] = {"notification_id": notification_id, "claim_token": token, "error": error, **retry}
    query = sql.SQL("select toolsdb.mark_notification_failed({})").format(
        sql.SQL(", ").join(
            sql.SQL("{} => {}::{}").format(sql.Identifier(k), sql.Placeholder(), sql.SQL(casts.get(k, "interval")))
            for k in args
        )
    )
    return scalar(conn, query, list(args.values()))


def notification(conn: psycopg.Connection, notification_id: int) -> Row:
    return one(conn, "select * from toolsdb.notifications where notification_id = %s", (notification_id,))


def notifications(conn: psycopg.Connection, ids: list[int]) -> list[Row]:
    return rows(
        conn, "select * from toolsdb.notifications where notification_id = any(%s) order by notification_id", (ids,)
    )


def expire(conn: psycopg.Connection, ids: list[int]) -> None:
    """End the lease or the backoff of notifications now (as the superuser)."""
    conn.execute(
        "update toolsdb.notifications set next_attempt_at = now() - interval '1 second' "
        "where notification_id = any(%s)",
        (ids,),
    )


def add_event(conn: psycopg.Connection, session_id: str = SESSION, event_type: str = "PreToolUse", **extra: Any) -> int:
    query, params = named_call("insert_event", {"session_id": session_id, "event_type": event_type, **extra})
    return scalar(conn, query, params)


def claim_events(
    conn: psycopg.Connection, batch_size: int = 10, lease: str = "5 minutes", worker: str | None = None
) -> list[Row]:
    return rows(
        conn,
        "select * from toolsdb.get_unprocessed_events(%s::integer, %s::interval, %s::text)",
        (batch_size, lease, worker),
    )


def mark_events(conn: psycopg.Connection, ids: list[int], token: uuid.UUID) -> int:
    return scalar(conn, "select toolsdb.mark_events_processed(%s::bigint[], %s::uuid)", (ids, token))


def mark_event(conn: psycopg.Connection, event_id: int, token: uuid.UUID) -> bool:
    return scalar(conn, "select toolsdb.mark_event_processed(%s::bigint, %s::uuid)", (event_id, token))


def event(conn: psycopg.Connection, event_id: int) -> Row:
    return one(conn, "select * from toolsdb.events where event_id = %s", (event_id,))


def expire_events(conn: psycopg.Connection, ids: list[int]) -> None:
    conn.execute("update toolsdb.events set visible_at = now() - interval '1 second' where event_id = any(%s)", (ids,))


def now(conn: psycopg.Connection) -> Any:
    return scalar(conn, "select now()")


def seconds_from_now(conn: psycopg.Connection, ids: list[int]) -> list[float]:
    """next_attempt_at - now() of each notification, in seconds, by id."""
    found = conn.execute(
        "select extract(epoch from next_attempt_at - now())::float8 from toolsdb.notifications "
        "where notification_id = any(%s) order by notification_id",
        (ids,),
    ).fetchall()
    return [r[0] for r in found]


def tokens(claimed: list[Row]) -> set[Any]:
    return {r["claim_token"] for r in claimed}


def ids_of(claimed: list[Row], key: str = "notification_id") -> list[int]:
    return sorted(r[key] for r in claimed)
