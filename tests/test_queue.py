"""The two work queues of the agent runtime against a real, migrated database,
on each PostgreSQL major of the suite: toolsdb.notifications
(schema/44_notifications.sql: insert_notification, claim_notifications,
mark_notification(s)_sent, mark_notification_failed, get_dead_notifications,
redrive_notifications) and toolsdb.events (schema/43_events.sql: insert_event,
get_unprocessed_events, mark_event(s)_processed, purge_processed_events), and
the view toolsdb.queue_depth (views/50_runtime.sql).

Covers claims with leases (batch size, due order, one token per batch, not
yet due rows), acks and failures with exponential backoff and jitter, dead
letters and their redrive, idempotency keys, concurrent claimers on
connections of their own, lease loss (a late ack is refused with 55000 and
changes nothing), the pg_notify wake-ups (one per inserting statement, folded
per transaction), the partial indexes of the claim queries, named errors for
bad input, and what the roles toolsdb_worker and toolsdb_app may do.

Isolation: tests that need no commit run in ``tx``, a transaction on one
clone per module and major that is always rolled back (``now()`` stays put
in it, so an expired lease is simulated by moving next_attempt_at or
visible_at into the past as the superuser). Tests that need committed rows
(other connections, LISTEN, login roles) get a fresh clone of their own
(``db``, with ``su`` an autocommit superuser connection to it, or ``conn``).
Only test_a_late_ack_after_a_real_lease_loss_is_refused waits, for one real
1-second lease.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from .conftest import Pg
from .dbhelpers import (
    Row,
    connect,
    connect_app,
    expect_error,
    one,
    rows,
    run_workers,
    scalar,
)

SESSION = "queue-s1"
OTHER_SESSION = "queue-s2"
LEASE_LOST = "55000"  # object_not_in_prerequisite_state
INVALID = "22023"  # invalid_parameter_value
CHECK = "23514"  # check_violation
DENIED = "42501"  # insufficient_privilege
MARKER = "marker"

# The inner select of each claim, exactly as in the function (checked
# against the function's source before it is explained).
NOTIFICATIONS_CLAIM_SELECT = """
            select p.notification_id
            from toolsdb.notifications as p
            where p.status in ('pending', 'sending', 'failed') and p.next_attempt_at <= pg_catalog.now()
            order by p.next_attempt_at, p.notification_id
            limit batch_size
            for update skip locked
"""
EVENTS_CLAIM_SELECT = """
            select p.event_id
            from toolsdb.events as p
            where p.processed_at is null and p.visible_at <= pg_catalog.now()
            order by p.visible_at, p.event_id
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


# ---------------------------------------------------------------------------
# Notifications: enqueue, claim, ack, fail, dead letters
# ---------------------------------------------------------------------------


def test_enqueue_returns_the_ids_of_pending_rows(tx: psycopg.Connection) -> None:
    session(tx)
    ids = enqueue_many(tx, 3)
    assert len(set(ids)) == 3 and ids == sorted(ids), f"insert_notification should return new increasing ids: {ids}"
    for row in notifications(tx, ids):
        assert row["status"] == "pending", f"A new notification should be pending: {row}"
        assert (row["attempts"], row["max_attempts"]) == (0, 3), f"It should start at 0 of 3 attempts: {row}"
        assert row["next_attempt_at"] == now(tx), f"It should be due now (no deliver_at): {row}"
        assert row["claim_token"] is None and row["sent_at"] is None and row["last_error"] is None, row


def test_a_claim_takes_at_most_batch_size_rows_oldest_due_first_under_one_token(tx: psycopg.Connection) -> None:
    session(tx)
    # Due times out of id order: the claim must follow next_attempt_at, not the id.
    minutes_ago = [3, 5, 1, 4, 2]
    due = [
        enqueue(tx, payload={"n": n}, deliver_at=scalar(tx, "select now() - make_interval(mins => %s)", (m,)))
        for n, m in enumerate(minutes_ago)
    ]
    later = enqueue(tx, deliver_at=scalar(tx, "select now() + interval '1 hour'"))
    by_due = [nid for _, nid in sorted(zip(minutes_ago, due, strict=True), reverse=True)]

    first = claim(tx, batch_size=3, lease="2 minutes", worker="w1")
    assert ids_of(first) == sorted(by_due[:3]), (
        f"A claim of 3 should take the 3 notifications due first {sorted(by_due[:3])}, but took {ids_of(first)}."
    )
    assert len(tokens(first)) == 1 and None not in tokens(first), f"One batch should share one token: {first}"
    for row in first:
        assert row["status"] == "sending" and row["attempts"] == 1, f"A claimed row is sending, attempt 1: {row}"
        assert row["claimed_by"] == "w1", row
        assert row["next_attempt_at"] == scalar(tx, "select now() + interval '2 minutes'"), (
            f"A claimed row should be leased until now() + lease: {row}"
        )
    assert [r["status"] for r in notifications(tx, ids_of(first))] == ["sending"] * 3, "The claim should be stored."

    second = claim(tx, batch_size=10, worker="w2")
    assert ids_of(second) == sorted(by_due[3:]), (
        f"The next claim should take the 2 remaining due rows {sorted(by_due[3:])}, not the leased ones nor the "
        f"one due in an hour ({later}), but took {ids_of(second)}."
    )
    assert tokens(second).isdisjoint(tokens(first)) and len(tokens(second)) == 1, "Each claim has a token of its own."
    assert claim(tx) == [], "Nothing due should be left to claim."
    assert notification(tx, later)["status"] == "pending" and notification(tx, later)["attempts"] == 0, (
        "The notification not yet due should stay pending and untried."
    )

    expire(tx, [later])
    assert ids_of(claim(tx)) == [later], "Once due, the scheduled notification should be claimed."


def test_ties_in_due_time_are_claimed_in_id_order(tx: psycopg.Connection) -> None:
    session(tx)
    ids = enqueue_many(tx, 5)  # one transaction: the same now() for all
    assert ids_of(claim(tx, batch_size=2)) == ids[:2], "Rows due at the same time go out in id order."


def test_acks_mark_sent_and_clear_the_token(tx: psycopg.Connection) -> None:
    session(tx)
    ids = enqueue_many(tx, 3)
    claimed = claim(tx, batch_size=3)
    (token,) = tokens(claimed)
    assert ack_one(tx, ids[0], token) is True, "mark_notification_sent should return true."
    assert ack(tx, ids[1:], token) == 2, "mark_notifications_sent should return how many it marked."
    for row in notifications(tx, ids):
        assert row["status"] == "sent" and row["sent_at"] == now(tx), f"An acked row is sent, with sent_at: {row}"
        assert row["claim_token"] is None and row["attempts"] == 1, f"An ack clears the token: {row}"
    expect_error(tx, LEASE_LOST, lambda: ack_one(tx, ids[0], token))
    assert scalar(tx, "select count(*) from toolsdb.notifications where status = 'sent'") == 3, (
        "Acking a sent row again should be refused, not counted twice."
    )
    assert ack(tx, [], token) == 0, "Acking nothing should mark nothing."


def test_an_ack_with_another_token_is_refused(tx: psycopg.Connection) -> None:
    session(tx)
    (nid,) = enqueue_many(tx, 1)
    claim(tx)
    expect_error(tx, LEASE_LOST, lambda: ack_one(tx, nid, uuid.uuid4()))
    expect_error(tx, LEASE_LOST, lambda: fail(tx, nid, uuid.uuid4()))
    assert notification(tx, nid)["status"] == "sending", "A refused ack or failure should change nothing."


def test_a_failure_backs_off_by_the_default_bounds_and_retries(tx: psycopg.Connection) -> None:
    session(tx)
    (nid,) = enqueue_many(tx, 1)
    (token,) = tokens(claim(tx))
    assert fail(tx, nid, token, error="smtp down") == "failed", "A first failure should return status failed."
    row = notification(tx, nid)
    assert row["status"] == "failed" and row["last_error"] == "smtp down" and row["claim_token"] is None, row
    (delay,) = seconds_from_now(tx, [nid])
    assert 5.0 <= delay <= 10.0, f"The first retry should wait 10 s * [0.5, 1.0] by default, but waits {delay} s."
    assert claim(tx) == [], "A failed row should not be claimed before its retry time."
    expire(tx, [nid])
    (again,) = claim(tx)
    assert again["attempts"] == 2 and again["status"] == "sending", f"The retry should be attempt 2: {again}"
    assert again["last_error"] == "smtp down", "The last error stays until the next failure."


def test_a_failure_backs_off_exponentially_with_jitter_within_the_documented_bounds(tx: psycopg.Connection) -> None:
    """next_attempt_at = now() + min(retry_max, retry_base * 2^(attempts-1)) * [0.5, 1.0]."""
    session(tx)
    ids = enqueue_many(tx, 20, max_attempts=5)
    capped = ids[10:]

    def fail_all(retry_max_of: Callable[[int], str]) -> None:
        (token,) = tokens(claim(tx, batch_size=20))
        for nid in ids:
            assert fail(tx, nid, token, retry_base="100 seconds", retry_max=retry_max_of(nid)) == "failed"

    fail_all(lambda _nid: "1 hour")
    first = seconds_from_now(tx, ids)
    assert all(50.0 <= d <= 100.0 for d in first), f"Attempt 1 should wait 100 s * [0.5, 1.0], got {first}."
    assert len(set(first)) > 1, f"The delays should be jittered, not all equal: {first}."

    expire(tx, ids)
    fail_all(lambda nid: "150 seconds" if nid in capped else "1 hour")
    second = dict(zip(ids, seconds_from_now(tx, ids), strict=True))
    uncapped = [second[nid] for nid in ids if nid not in capped]
    assert all(100.0 <= d <= 200.0 for d in uncapped), f"Attempt 2 should wait 200 s * [0.5, 1.0], got {uncapped}."
    at_cap = [second[nid] for nid in capped]
    assert all(75.0 <= d <= 150.0 for d in at_cap), (
        f"Attempt 2 with retry_max 150 s should wait 150 s * [0.5, 1.0], got {at_cap}."
    )
    assert {r["attempts"] for r in notifications(tx, ids)} == {2}, "Both claims should count as attempts."


def test_a_failure_keeps_a_bounded_error_and_names_an_empty_one(tx: psycopg.Connection) -> None:
    session(tx)
    ids = enqueue_many(tx, 2)
    (token,) = tokens(claim(tx))
    fail(tx, ids[0], token, error="")
    fail(tx, ids[1], token, error="x" * 5000)
    first, second = notifications(tx, ids)
    assert first["last_error"] == "unknown error", f"An empty error should read 'unknown error': {first}"
    assert second["last_error"] == "x" * 4000, "A long error should be cut to 4000 characters."


def test_after_max_attempts_a_notification_is_dead_until_redriven(tx: psycopg.Connection) -> None:
    session(tx)
    nid, bystander = enqueue_many(tx, 2)
    outcomes = []
    for attempt in (1, 2, 3):
        claimed = claim(tx, batch_size=1)
        assert ids_of(claimed) == [nid] and claimed[0]["attempts"] == attempt, f"Attempt {attempt}: {claimed}"
        outcomes.append(fail(tx, nid, claimed[0]["claim_token"], error=f"attempt {attempt} failed"))
        expire(tx, [nid])
    assert outcomes == ["failed", "failed", "dead"], f"The third failure of 3 should be dead: {outcomes}"
    row = notification(tx, nid)
    assert row["status"] == "dead" and row["attempts"] == 3 and row["last_error"] == "attempt 3 failed", row
    assert ids_of(claim(tx, batch_size=10)) == [bystander], "A dead letter should never be claimed."
    dead = rows(tx, "select * from toolsdb.get_dead_notifications()")
    assert ids_of(dead) == [nid], f"get_dead_notifications should list the dead letter: {dead}"

    assert scalar(tx, "select toolsdb.redrive_notifications(array[%s]::bigint[])", (bystander,)) == 0, (
        "Redriving a row that is not dead should move nothing."
    )
    assert scalar(tx, "select toolsdb.redrive_notifications()") == 1, "Redriving all should move the one dead letter."
    row = notification(tx, nid)
    assert (row["status"], row["attempts"], row["claim_token"]) == ("pending", 0, None), row
    assert row["last_error"] == "attempt 3 failed", "The redrive keeps the last error for the record."
    assert rows(tx, "select * from toolsdb.get_dead_notifications()") == [], "No dead letter should be left."
    (again,) = claim(tx)
    assert again["notification_id"] == nid and again["attempts"] == 1, f"It should be claimable afresh: {again}"


def test_get_dead_notifications_returns_at_most_max_rows_oldest_first(tx: psycopg.Connection) -> None:
    session(tx)
    ids = enqueue_many(tx, 3, max_attempts=1)
    (token,) = tokens(claim(tx))
    for nid in ids:
        assert fail(tx, nid, token) == "dead", "With max_attempts 1 the first failure is dead."
    assert ids_of(rows(tx, "select * from toolsdb.get_dead_notifications(2)")) == ids[:2]
    assert scalar(tx, "select toolsdb.redrive_notifications(array[%s]::bigint[])", (ids[1],)) == 1
    assert ids_of(rows(tx, "select * from toolsdb.get_dead_notifications()")) == [ids[0], ids[2]], (
        "Redriving a listed id should move only that one."
    )


def test_an_idempotency_key_returns_the_first_id_and_inserts_once(tx: psycopg.Connection) -> None:
    session(tx)
    first = enqueue(tx, payload={"v": 1}, idempotency_key="v1:perm-42")
    second = enqueue(tx, payload={"v": 2}, idempotency_key="v1:perm-42")
    assert first == second, f"The same key should return the same id, got {first} and {second}."
    found = rows(tx, "select payload from toolsdb.notifications where idempotency_key = 'v1:perm-42'")
    assert found == [{"payload": {"v": 1}}], f"The key should insert once and keep the first payload: {found}"

    event_first = add_event(tx, payload={"v": 1}, idempotency_key="v1:evt-7")
    assert add_event(tx, payload={"v": 2}, idempotency_key="v1:evt-7") == event_first
    assert scalar(tx, "select count(*) from toolsdb.events where idempotency_key = 'v1:evt-7'") == 1


# ---------------------------------------------------------------------------
# Lease loss
# ---------------------------------------------------------------------------


def test_a_late_ack_after_a_real_lease_loss_is_refused(pg: Pg, db: str, su: psycopg.Connection) -> None:
    """The one test that waits: worker A claims with a 1-second lease and dies; B gets the rows once the lease
    is over; A's late ack is refused before and after B's ack and changes nothing."""
    session(su)
    ids = enqueue_many(su, 2)
    with connect(pg, db) as worker_a, connect(pg, db) as worker_b:
        claimed_a = claim(worker_a, lease="1 second", worker="a")
        (token_a,) = tokens(claimed_a)
        assert ids_of(claimed_a) == ids and claim(worker_b, worker="b") == [], "B should find the rows leased."
        # Wait for the end of the lease by the server's clock, no longer.
        remaining = scalar(
            su,
            "select greatest(extract(epoch from max(next_attempt_at) - clock_timestamp()), 0)::float8 "
            "from toolsdb.notifications",
        )
        time.sleep(remaining + 0.05)

        expect_error(worker_a, LEASE_LOST, lambda: ack(worker_a, ids, token_a))
        assert [r["status"] for r in notifications(su, ids)] == ["sending"] * 2, "A late ack changes nothing."

        claimed_b = claim(worker_b, worker="b")
        (token_b,) = tokens(claimed_b)
        assert ids_of(claimed_b) == ids, f"B should get the rows of the dead worker: {claimed_b}"
        assert token_b != token_a and {r["attempts"] for r in claimed_b} == {2}, claimed_b
        assert {r["claimed_by"] for r in claimed_b} == {"b"}, claimed_b

        expect_error(worker_a, LEASE_LOST, lambda: ack_one(worker_a, ids[0], token_a))
        assert ack(worker_b, ids, token_b) == 2, "B's ack should mark both rows sent."
        sent = {r["notification_id"]: r["sent_at"] for r in notifications(su, ids)}
        error = expect_error(worker_a, LEASE_LOST, lambda: ack_one(worker_a, ids[0], token_a))
        assert "lease lost" in str(error), f"The refusal should say the lease was lost: {error}"
        expect_error(worker_a, LEASE_LOST, lambda: fail(worker_a, ids[1], token_a))
    after = notifications(su, ids)
    assert {r["notification_id"]: r["sent_at"] for r in after} == sent, "A's late acks must not touch sent_at."
    assert [(r["status"], r["attempts"]) for r in after] == [("sent", 2)] * 2, after
    assert scalar(su, "select count(*) from toolsdb.notifications where status = 'sent'") == 2, (
        "Each row should be counted sent once."
    )


def test_a_batch_ack_with_one_lost_row_marks_nothing(tx: psycopg.Connection) -> None:
    session(tx)
    ids = enqueue_many(tx, 3)
    (token_a,) = tokens(claim(tx, worker="a"))
    lost = ids[1]
    expire(tx, [lost])
    (token_b,) = tokens(claim(tx, worker="b"))
    assert notification(tx, lost)["claim_token"] == token_b, "B should have re-claimed the row whose lease ended."

    expect_error(tx, LEASE_LOST, lambda: ack(tx, ids, token_a))
    statuses = [(r["status"], r["claim_token"]) for r in notifications(tx, ids)]
    assert statuses == [("sending", token_a), ("sending", token_b), ("sending", token_a)], (
        f"A batch ack with one lost row should mark none of them: {statuses}"
    )
    expect_error(tx, LEASE_LOST, lambda: fail(tx, lost, token_a))
    assert ack(tx, [ids[0], ids[2], ids[2]], token_a) == 2, "The rows A still holds can be acked (duplicates once)."
    assert ack_one(tx, lost, token_b) is True
    assert scalar(tx, "select count(*) from toolsdb.notifications where status = 'sent'") == 3


def test_an_ack_after_the_lease_ended_but_before_a_new_claim_is_refused(tx: psycopg.Connection) -> None:
    session(tx)
    ids = enqueue_many(tx, 2)
    (token,) = tokens(claim(tx))
    expire(tx, ids)
    expect_error(tx, LEASE_LOST, lambda: ack(tx, ids, token))
    expect_error(tx, LEASE_LOST, lambda: fail(tx, ids[0], token))
    assert [r["status"] for r in notifications(tx, ids)] == ["sending", "sending"], "Nothing should change."


def test_a_lease_that_ends_after_the_last_attempt_makes_the_row_dead(tx: psycopg.Connection) -> None:
    session(tx)
    nid = enqueue(tx, max_attempts=2)
    for attempt in (1, 2):
        (claimed,) = claim(tx)
        assert claimed["attempts"] == attempt, claimed
        expire(tx, [nid])  # the worker died on it
    other = enqueue(tx)
    claimed = claim(tx, worker="w")
    assert ids_of(claimed) == [other], f"The exhausted row should not be handed out again: {claimed}"
    row = notification(tx, nid)
    assert (row["status"], row["attempts"], row["claim_token"]) == ("dead", 2, None), row
    assert row["last_error"] == "lease ended after the last attempt (worker lost)", row
    assert ids_of(rows(tx, "select * from toolsdb.get_dead_notifications()")) == [nid]


# ---------------------------------------------------------------------------
# Concurrent claimers
# ---------------------------------------------------------------------------

CONCURRENT_WORKERS = 6
CONCURRENT_ROWS = 500


def test_concurrent_claimers_get_every_notification_exactly_once(pg: Pg, db: str, su: psycopg.Connection) -> None:
    session(su)
    expected = bulk_notifications(su, CONCURRENT_ROWS)
    got: dict[int, list[int]] = {n: [] for n in range(CONCURRENT_WORKERS)}

    def work(n: int, start: threading.Barrier) -> None:
        with connect(pg, db) as c:
            start.wait()
            while claimed := claim(c, batch_size=10, worker=f"w{n}"):
                (token,) = tokens(claimed)
                got[n].extend(r["notification_id"] for r in claimed)
                assert ack(c, ids_of(claimed), token) == len(claimed)

    run_workers(CONCURRENT_WORKERS, work)
    everything = [nid for ids in got.values() for nid in ids]
    assert len(everything) == len(set(everything)), "No two claims should have handed out the same row."
    assert sorted(everything) == sorted(expected), (
        f"Together the workers should get all {len(expected)} rows, but got {len(set(everything))}."
    )
    stored = one(
        su,
        "select count(*) filter (where status = 'sent') as sent, max(attempts) as max_attempts "
        "from toolsdb.notifications",
    )
    assert stored["sent"] == CONCURRENT_ROWS and stored["max_attempts"] == 1, (
        f"Every row should be sent after exactly one attempt: {stored}"
    )


def test_concurrent_claimers_get_every_event_exactly_once(pg: Pg, db: str, su: psycopg.Connection) -> None:
    session(su)
    expected = [
        r[0]
        for r in su.execute(
            "insert into toolsdb.events (session_id, event_type, payload) "
            "select %s, 'PostToolUse', jsonb_build_object('n', g) from generate_series(1, %s) as g "
            "returning event_id",
            (SESSION, CONCURRENT_ROWS),
        ).fetchall()
    ]
    got: dict[int, list[int]] = {n: [] for n in range(CONCURRENT_WORKERS)}

    def work(n: int, start: threading.Barrier) -> None:
        with connect(pg, db) as c:
            start.wait()
            while claimed := claim_events(c, batch_size=10, worker=f"w{n}"):
                (token,) = tokens(claimed)
                got[n].extend(r["event_id"] for r in claimed)
                assert mark_events(c, ids_of(claimed, "event_id"), token) == len(claimed)

    run_workers(CONCURRENT_WORKERS, work)
    everything = [eid for ids in got.values() for eid in ids]
    assert len(everything) == len(set(everything)), "No two claims should have handed out the same event."
    assert sorted(everything) == sorted(expected), (
        f"Together the workers should get all {len(expected)} events, but got {len(set(everything))}."
    )
    stored = one(
        su,
        "select count(*) filter (where processed_at is not null) as processed, max(attempts) as max_attempts "
        "from toolsdb.events",
    )
    assert stored == {"processed": CONCURRENT_ROWS, "max_attempts": 1}, stored


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------


def test_events_are_claimed_with_a_lease_and_marked_processed(tx: psycopg.Connection) -> None:
    ids = [add_event(tx, payload={"n": n}) for n in range(5)]
    assert scalar(tx, "select count(*) from toolsdb.sessions where session_id = %s", (SESSION,)) == 1, (
        "insert_event should create the bare session."
    )
    first = claim_events(tx, batch_size=3, lease="2 minutes", worker="w1")
    assert ids_of(first, "event_id") == ids[:3], f"A claim of 3 should take the 3 oldest events: {first}"
    assert len(tokens(first)) == 1 and None not in tokens(first), "One batch should share one token."
    lease_end = scalar(tx, "select now() + interval '2 minutes'")
    for row in first:
        assert (row["attempts"], row["claimed_by"], row["visible_at"]) == (1, "w1", lease_end), row
    second = claim_events(tx, batch_size=10)
    assert ids_of(second, "event_id") == ids[3:], "The next claim should take only the unleased events."
    assert tokens(second).isdisjoint(tokens(first))
    assert claim_events(tx) == [], "Nothing should be left to claim."

    (token,) = tokens(first)
    assert mark_event(tx, ids[0], token) is True
    assert mark_events(tx, ids[1:3], token) == 2
    for eid in ids[:3]:
        row = event(tx, eid)
        assert row["processed_at"] == now(tx) and row["claim_token"] is None, row
    expect_error(tx, LEASE_LOST, lambda: mark_events(tx, [ids[0]], token))
    expire_events(tx, ids)
    assert ids_of(claim_events(tx), "event_id") == ids[3:], "Processed events are never claimed again."


def test_an_event_ack_after_lease_loss_is_refused_and_changes_nothing(tx: psycopg.Connection) -> None:
    ids = [add_event(tx) for _ in range(3)]
    (token_a,) = tokens(claim_events(tx, worker="a"))
    lost = ids[1]
    expire_events(tx, [lost])
    expect_error(tx, LEASE_LOST, lambda: mark_event(tx, lost, token_a))
    claimed_b = claim_events(tx, worker="b")
    (token_b,) = tokens(claimed_b)
    assert ids_of(claimed_b, "event_id") == [lost], f"B should get only the event whose lease ended: {claimed_b}"
    assert claimed_b[0]["attempts"] == 2 and token_b != token_a, claimed_b

    error = expect_error(tx, LEASE_LOST, lambda: mark_event(tx, lost, token_a))
    assert "lease lost" in str(error), f"The refusal should say the lease was lost: {error}"
    expect_error(tx, LEASE_LOST, lambda: mark_events(tx, ids, token_a))
    assert scalar(tx, "select count(*) from toolsdb.events where processed_at is not null") == 0, (
        "A batch with one lost event should mark none."
    )
    assert mark_events(tx, [ids[0], ids[2]], token_a) == 2, "A may still mark the events it holds."
    assert mark_event(tx, lost, token_b) is True
    expect_error(tx, LEASE_LOST, lambda: mark_event(tx, lost, token_a))
    assert scalar(tx, "select count(*) from toolsdb.events where processed_at is not null") == 3


def test_purge_deletes_only_processed_events_older_than_the_interval(tx: psycopg.Connection) -> None:
    old_done, new_done, old_open = (add_event(tx) for _ in range(3))
    (token,) = tokens(claim_events(tx, batch_size=2))
    mark_events(tx, [old_done, new_done], token)
    tx.execute(
        "update toolsdb.events set processed_at = now() - interval '40 days', created_at = now() - interval '41 days'"
        " where event_id = %s",
        (old_done,),
    )
    tx.execute("update toolsdb.events set processed_at = now() - interval '29 days' where event_id = %s", (new_done,))
    tx.execute("update toolsdb.events set created_at = now() - interval '90 days' where event_id = %s", (old_open,))
    caused = enqueue(tx, event_id=old_done)

    assert scalar(tx, "select toolsdb.purge_processed_events('30 days')") == 1, "Only one event is old and processed."
    left = [r["event_id"] for r in rows(tx, "select event_id from toolsdb.events order by event_id")]
    assert left == [new_done, old_open], f"The recent and the unprocessed events should stay: {left}"
    assert notification(tx, caused)["event_id"] is None, "A notification keeps its row, without the purged event."
    expect_error(tx, INVALID, lambda: scalar(tx, "select toolsdb.purge_processed_events('-1 day')"))


# ---------------------------------------------------------------------------
# pg_notify wake-ups
# ---------------------------------------------------------------------------


def wake_ups(listener: psycopg.Connection, marker_sender: psycopg.Connection, channel: str) -> list[str]:
    """Notifications the listener got on channel, up to a marker sent after them
    (delivery follows commit order, so no timeout decides the count)."""
    marker_sender.execute("select pg_notify(%s, %s)", (channel, MARKER))
    got = []
    for notify in listener.notifies(timeout=10):
        if notify.payload == MARKER:
            return got
        got.append(notify.channel)
    pytest.fail(f"The marker on {channel} never arrived (got {got}).")


def test_a_statement_wakes_notification_workers_once(pg: Pg, db: str, su: psycopg.Connection) -> None:
    session(su)
    with connect(pg, db) as listener, psycopg.connect(pg.conninfo(db)) as writer:
        listener.execute("listen toolsdb_notifications")
        bulk_notifications(writer, 100)
        writer.commit()
        assert wake_ups(listener, su, "toolsdb_notifications") == ["toolsdb_notifications"], (
            "A 100-row insert statement should notify once."
        )
        enqueue_many(writer, 50)
        writer.commit()
        assert wake_ups(listener, su, "toolsdb_notifications") == ["toolsdb_notifications"], (
            "50 insert_notification calls in one transaction should notify once."
        )
        enqueue_many(writer, 3)
        writer.rollback()
        assert wake_ups(listener, su, "toolsdb_notifications") == [], "A rolled back insert should notify nobody."

        # Due before the 150 pending rows above, so a claim of one takes it.
        nid = enqueue(writer, max_attempts=1, deliver_at=scalar(writer, "select now() - interval '1 day'"))
        writer.commit()
        wake_ups(listener, su, "toolsdb_notifications")
        (token,) = tokens(claim(writer, batch_size=1))
        fail(writer, nid, token)
        writer.commit()
        assert wake_ups(listener, su, "toolsdb_notifications") == [], "Claims and failures should not notify."
        assert scalar(writer, "select toolsdb.redrive_notifications()") == 1
        writer.commit()
        assert wake_ups(listener, su, "toolsdb_notifications") == ["toolsdb_notifications"], (
            "A redrive should wake the workers once."
        )


def test_a_statement_wakes_event_workers_once(pg: Pg, db: str, su: psycopg.Connection) -> None:
    session(su)
    with connect(pg, db) as listener, psycopg.connect(pg.conninfo(db)) as writer:
        listener.execute("listen toolsdb_events")
        listener.execute("listen toolsdb_notifications")
        writer.execute(
            "insert into toolsdb.events (session_id, event_type, payload) "
            "select %s, 'PreToolUse', '{}' from generate_series(1, 100)",
            (SESSION,),
        )
        writer.commit()
        assert wake_ups(listener, su, "toolsdb_events") == ["toolsdb_events"], (
            "A 100-row insert into events should notify once, on toolsdb_events only."
        )
        for _ in range(50):
            add_event(writer)
        writer.commit()
        assert wake_ups(listener, su, "toolsdb_events") == ["toolsdb_events"], (
            "50 insert_event calls in one transaction should notify once."
        )


# ---------------------------------------------------------------------------
# Partial indexes of the claims
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "inner_select", "index"),
    [
        pytest.param(
            "toolsdb.claim_notifications(integer,interval,text)",
            NOTIFICATIONS_CLAIM_SELECT,
            "notifications_claim_idx",
            id="notifications",
        ),
        pytest.param(
            "toolsdb.get_unprocessed_events(integer,interval,text)",
            EVENTS_CLAIM_SELECT,
            "events_claim_idx",
            id="events",
        ),
    ],
)
def test_the_claim_query_uses_its_partial_index(
    conn: psycopg.Connection, function: str, inner_select: str, index: str
) -> None:
    source = scalar(conn, "select prosrc from pg_proc where oid = %s::regprocedure", (function,))
    assert " ".join(inner_select.split()) in " ".join(source.split()), (
        f"The select explained here should be the one in {function}; copy it again from the function."
    )
    session(conn)
    # A realistic queue: 5,000 rows, nearly all settled, 50 waiting.
    conn.execute(
        "insert into toolsdb.notifications (session_id, notification_type, backend, status, sent_at) "
        "select %s, 'bulk', 'email', case when g <= 4950 then 'sent' else 'pending' end, "
        "case when g <= 4950 then now() end from generate_series(1, 5000) as g",
        (SESSION,),
    )
    conn.execute(
        "insert into toolsdb.events (session_id, event_type, payload, processed_at) "
        "select %s, 'Stop', '{}', case when g <= 4950 then now() end from generate_series(1, 5000) as g",
        (SESSION,),
    )
    conn.commit()
    conn.execute("analyze toolsdb.notifications")
    conn.execute("analyze toolsdb.events")
    # The function's plan is generic (batch_size is a parameter): explain the
    # same. Seq scans are off because this tests that the claim's predicate
    # matches the partial index, not the planner's cost choice on a tiny table.
    conn.execute("set local enable_seqscan = off")
    conn.execute("set local plan_cache_mode = force_generic_plan")
    conn.execute(f"prepare claim_select(integer) as {inner_select.replace('limit batch_size', 'limit $1')}")
    plan = "\n".join(r[0] for r in conn.execute("explain execute claim_select(10)").fetchall())
    assert index in plan, f"The claim should scan {index}, but the plan is:\n{plan}"


# ---------------------------------------------------------------------------
# Bad input, named errors
# ---------------------------------------------------------------------------


def raw_notification(conn: psycopg.Connection, **values: Any) -> Any:
    """Insert directly into toolsdb.notifications (for columns no function sets)."""
    base = {"session_id": SESSION, "notification_type": "bulk", "backend": "slack", **values}
    query = sql.SQL("insert into toolsdb.notifications ({}) values ({})").format(
        sql.SQL(", ").join(map(sql.Identifier, base)), sql.SQL(", ").join(sql.Placeholder() * len(base))
    )
    return conn.execute(query, list(base.values()))


BAD_INPUT = [
    pytest.param(lambda c: enqueue(c, backend="pager"), CHECK, "backend_is_valid", id="unknown-backend"),
    pytest.param(lambda c: raw_notification(c, attempts=-1), CHECK, "attempts_is_not_negative", id="neg-attempts"),
    pytest.param(lambda c: enqueue(c, max_attempts=0), CHECK, "max_attempts_is_valid", id="max-attempts-0"),
    pytest.param(lambda c: enqueue(c, max_attempts=101), CHECK, "max_attempts_is_valid", id="max-attempts-101"),
    pytest.param(lambda c: enqueue(c, payload=[1, 2]), CHECK, "payload_is_object", id="payload-array"),
    pytest.param(lambda c: enqueue(c, notification_type="Bad Type"), CHECK, "notification_type_is_valid", id="type"),
    pytest.param(lambda c: add_event(c, payload="text"), CHECK, "payload_is_object", id="event-payload-string"),
    pytest.param(lambda c: add_event(c, event_type="Pre Tool"), CHECK, "event_type_is_valid", id="event-type"),
    pytest.param(lambda c: claim(c, batch_size=0), INVALID, None, id="claim-batch-0"),
    pytest.param(lambda c: claim(c, batch_size=10001), INVALID, None, id="claim-batch-10001"),
    pytest.param(lambda c: claim(c, lease="0 seconds"), INVALID, None, id="claim-lease-0"),
    pytest.param(lambda c: claim(c, lease="2 days"), INVALID, None, id="claim-lease-2-days"),
    pytest.param(lambda c: claim_events(c, batch_size=0), INVALID, None, id="events-batch-0"),
    pytest.param(lambda c: claim_events(c, lease="0 seconds"), INVALID, None, id="events-lease-0"),
]


@pytest.mark.parametrize(("statement", "sqlstate", "constraint"), BAD_INPUT)
def test_bad_input_fails_with_a_named_error_and_leaves_no_row(
    tx: psycopg.Connection, statement: Callable[[psycopg.Connection], object], sqlstate: str, constraint: str | None
) -> None:
    session(tx)
    waiting = enqueue(tx, payload={"waiting": True})
    waiting_event = add_event(tx)
    error = expect_error(tx, sqlstate, lambda: statement(tx), constraint)
    if constraint is None:
        assert "must be between" in str(error), f"The error should say what is allowed: {error}"
    counts = one(
        tx,
        "select (select count(*) from toolsdb.notifications) as notifications, "
        "(select count(*) from toolsdb.events) as events",
    )
    assert counts == {"notifications": 1, "events": 1}, f"The failed call should leave no row: {counts}"
    assert (notification(tx, waiting)["status"], event(tx, waiting_event)["attempts"]) == ("pending", 0), (
        "A refused claim should claim nothing."
    )


def test_a_failure_with_a_bad_retry_interval_is_refused(tx: psycopg.Connection) -> None:
    session(tx)
    (nid,) = enqueue_many(tx, 1)
    (token,) = tokens(claim(tx))
    expect_error(tx, INVALID, lambda: fail(tx, nid, token, retry_base="-1 second"))
    expect_error(tx, INVALID, lambda: fail(tx, nid, token, retry_base="2 hours", retry_max="1 hour"))
    assert notification(tx, nid)["status"] == "sending", "A refused failure should change nothing."


# ---------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------


def test_a_worker_claims_and_acks_across_sessions_but_cannot_read_the_table(
    pg: Pg, db: str, su: psycopg.Connection, worker_login: str
) -> None:
    session(su, SESSION)
    session(su, OTHER_SESSION)
    ids = [enqueue(su, SESSION), enqueue(su, OTHER_SESSION)]
    event_ids = [add_event(su, SESSION), add_event(su, OTHER_SESSION)]
    with connect(pg, db, worker_login) as first:
        claimed = claim(first, worker="w")
        claimed_events = claim_events(first, worker="w")
    assert ids_of(claimed) == ids, "A worker should claim the notifications of every session."
    assert ids_of(claimed_events, "event_id") == event_ids, "A worker should claim the events of every session."
    with connect(pg, db, worker_login) as second:
        assert ack(second, ids, claimed[0]["claim_token"]) == 2, "Another worker session may ack with the token."
        assert mark_events(second, event_ids, claimed_events[0]["claim_token"]) == 2
        assert rows(second, "select * from toolsdb.get_dead_notifications()") == []
        assert scalar(second, "select toolsdb.redrive_notifications()") == 0
        for query in (
            "select * from toolsdb.notifications",
            "select * from toolsdb.events",
            "select * from toolsdb.queue_depth",
            "select toolsdb.insert_notification('queue-s1', 'idle', 'slack')",
        ):
            expect_error(second, DENIED, lambda q=query: second.execute(q))
    assert scalar(su, "select count(*) from toolsdb.notifications where status = 'sent'") == 2


def test_the_app_enqueues_for_its_session_and_sees_only_its_rows(
    pg: Pg, db: str, su: psycopg.Connection, app_login: str
) -> None:
    session(su, SESSION)
    session(su, OTHER_SESSION)
    theirs = enqueue(su, OTHER_SESSION)
    with connect_app(pg, db, app_login) as app:
        app.execute("select set_config('toolsdb.session_id', %s, false)", (SESSION,))
        mine = enqueue(app, SESSION)
        assert enqueue(app, SESSION, idempotency_key="app-key") == enqueue(app, SESSION, idempotency_key="app-key")
        app.commit()
        visible = [r["notification_id"] for r in rows(app, "select * from toolsdb.notifications")]
        assert theirs not in visible and mine in visible and len(visible) == 2, (
            f"The app should see only its session's notifications, saw {visible}."
        )
        expect_error(app, DENIED, lambda: enqueue(app, OTHER_SESSION))
        for query in (
            "update toolsdb.notifications set status = 'sent', sent_at = now()",
            "delete from toolsdb.notifications",
            "select * from toolsdb.claim_notifications()",
            "select * from toolsdb.get_unprocessed_events()",
            f"select toolsdb.mark_notification_sent({mine}, gen_random_uuid())",
            "select toolsdb.redrive_notifications()",
        ):
            expect_error(app, DENIED, lambda q=query: app.execute(q))
    stored = rows(su, "select session_id, status from toolsdb.notifications order by notification_id")
    assert stored == [
        {"session_id": OTHER_SESSION, "status": "pending"},
        {"session_id": SESSION, "status": "pending"},
        {"session_id": SESSION, "status": "pending"},
    ], f"The app's two notifications should be stored pending in its session: {stored}"


@pytest.mark.parametrize(
    "function",
    [
        pytest.param("insert_notification('{session}', 'idle', 'slack', idempotency_key => %s)", id="notification"),
        pytest.param("insert_event('{session}', 'Stop', '{{}}', %s)", id="event"),
    ],
)
def test_an_idempotency_key_of_another_session_is_not_silently_dropped(
    pg: Pg, db: str, su: psycopg.Connection, app_login: str, function: str
) -> None:
    """The key is unique across sessions but row-level security hides the other session's row from the app: the
    enqueue must then fail or return an id, never return null having queued nothing."""
    session(su, SESSION)
    session(su, OTHER_SESSION)
    enqueue(su, OTHER_SESSION, idempotency_key="v1:shared-key")
    add_event(su, OTHER_SESSION, idempotency_key="v1:shared-key")
    query = "select toolsdb." + function.format(session=SESSION)
    with connect_app(pg, db, app_login) as app:
        app.execute("select set_config('toolsdb.session_id', %s, false)", (SESSION,))
        try:
            returned = scalar(app, query, ("v1:shared-key",))
        except psycopg.Error:
            return  # refusing the key is an honest answer
    assert returned is not None, (
        f"toolsdb.{function.split('(')[0]} returned null for a key stored in another session and queued nothing: "
        "the caller cannot tell its notification or event was dropped."
    )


# ---------------------------------------------------------------------------
# queue_depth
# ---------------------------------------------------------------------------


def queue_depth(conn: psycopg.Connection) -> dict[str, Row]:
    return {r.pop("queue_name"): r for r in rows(conn, "select * from toolsdb.queue_depth")}


def known_queues(tx: psycopg.Connection) -> dict[str, int]:
    """Notifications: 2 ready, 1 scheduled, 1 leased, 1 lease ended, 1 failed,
    1 dead, 1 sent. Events: 2 ready, 1 leased, 1 lease ended, 1 processed."""
    session(tx)
    leased, lease_ended, failed, dead, sent = (enqueue(tx, max_attempts=1 if n == 3 else 3) for n in range(5))
    (token,) = tokens(claim(tx))
    ack(tx, [sent], token)
    fail(tx, failed, token)
    assert fail(tx, dead, token) == "dead"
    expire(tx, [lease_ended])
    ready = enqueue_many(tx, 2)
    enqueue(tx, deliver_at=scalar(tx, "select now() + interval '1 day'"))

    ev_leased, ev_lease_ended, ev_processed = (add_event(tx) for _ in range(3))
    (ev_token,) = tokens(claim_events(tx))
    mark_events(tx, [ev_processed], ev_token)
    expire_events(tx, [ev_lease_ended])
    ev_ready = [add_event(tx) for _ in range(2)]
    return {
        "leased": leased,
        "lease_ended": lease_ended,
        "ready": ready[0],
        "ev_leased": ev_leased,
        "ev_lease_ended": ev_lease_ended,
        "ev_ready": ev_ready[0],
    }


def test_queue_depth_counts_ready_leased_retrying_and_dead(tx: psycopg.Connection) -> None:
    known_queues(tx)
    depth = {q: {k: v for k, v in r.items() if k != "oldest_ready_at"} for q, r in queue_depth(tx).items()}
    assert depth == {
        "events": {"ready": 2, "leased": 1, "retrying": 1, "dead": 0},
        "notifications": {"ready": 2, "leased": 1, "retrying": 2, "dead": 1},
    }, f"queue_depth should count the known setup: {depth}"


def test_queue_depth_oldest_ready_at_is_the_oldest_claimable_row(tx: psycopg.Connection) -> None:
    """A row whose worker died (sending, lease over) is claimable: it is the queue's lag as much as a
    failed row due for retry."""
    known = known_queues(tx)
    for key, table, column in (
        ("lease_ended", "notifications", "notification_id"),
        ("ready", "notifications", "notification_id"),
        ("ev_lease_ended", "events", "event_id"),
        ("ev_ready", "events", "event_id"),
    ):
        hours = 2 if "lease_ended" in key else 1
        tx.execute(
            sql.SQL("update toolsdb.{} set created_at = now() - make_interval(hours => %s) where {} = %s").format(
                sql.Identifier(table), sql.Identifier(column)
            ),
            (hours, known[key]),
        )
    # Leased rows are older still, but not claimable.
    tx.execute(
        "update toolsdb.notifications set created_at = now() - interval '1 day' where notification_id = %s",
        (known["leased"],),
    )
    tx.execute(
        "update toolsdb.events set created_at = now() - interval '1 day' where event_id = %s", (known["ev_leased"],)
    )
    two_hours_ago = scalar(tx, "select now() - interval '2 hours'")
    depth = queue_depth(tx)
    assert depth["events"]["oldest_ready_at"] == two_hours_ago, (
        f"The events' oldest ready row is the one whose lease ended: {depth['events']}"
    )
    assert depth["notifications"]["oldest_ready_at"] == two_hours_ago, (
        "The notifications' oldest claimable row is the one whose lease ended (claim_notifications would take "
        f"it now), but queue_depth says {depth['notifications']['oldest_ready_at']} (two hours ago: {two_hours_ago})."
    )
