"""The notification queue (schema/44_notifications.sql) on each PostgreSQL
major of the suite: insert_notification, claims with leases (batch size,
due order, one token per batch, not yet due rows), acks
(mark_notification(s)_sent) and failures with exponential backoff and
jitter (mark_notification_failed), dead letters (get_dead_notifications)
and their redrive (redrive_notifications), idempotency keys, and the view
toolsdb.queue_depth (repeatable/83_runtime_views.sql).

Isolation: every test runs in ``tx``, a transaction on one clone per module
and major that is always rolled back (``now()`` stays put in it, so an
expired lease is simulated by moving next_attempt_at into the past as the
superuser).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import psycopg
from psycopg import sql

from .dbhelpers import (
    Row,
    expect_error,
    rows,
    scalar,
)
from .queuehelpers import (
    LEASE_LOST,
    ack,
    ack_one,
    add_event,
    claim,
    claim_events,
    enqueue,
    enqueue_many,
    expire,
    expire_events,
    fail,
    ids_of,
    mark_events,
    notification,
    notifications,
    now,
    seconds_from_now,
    session,
    tokens,
)

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
