"""Leases of the two work queues (schema/43_events.sql,
schema/44_notifications.sql): a claim whose lease was lost (a late ack is
refused with 55000 and changes nothing), and concurrent claimers on
connections of their own that never get the same row.

Isolation: tests that need no commit run in ``tx``, a transaction on one
clone per module and major that is always rolled back; the others commit in
a fresh clone (``db``, with ``su`` an autocommit superuser connection to
it). Only test_a_late_ack_after_a_real_lease_loss_is_refused waits, for one
real 1-second lease.
"""

from __future__ import annotations

import threading
import time

import psycopg

from .conftest import Pg
from .dbhelpers import (
    connect,
    expect_error,
    one,
    rows,
    run_workers,
    scalar,
)
from .queuehelpers import (
    LEASE_LOST,
    SESSION,
    ack,
    ack_one,
    bulk_notifications,
    claim,
    claim_events,
    enqueue,
    enqueue_many,
    expire,
    fail,
    ids_of,
    mark_events,
    notification,
    notifications,
    session,
    tokens,
)

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
