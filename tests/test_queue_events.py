"""The event queue (schema/43_events.sql: insert_event,
get_unprocessed_events, mark_event(s)_processed, purge_processed_events) and
the pg_notify wake-ups of both queues (one per inserting statement, folded
per transaction).

Isolation: tests that need no commit run in ``tx``, a transaction on one
clone per module and major that is always rolled back (``now()`` stays put
in it, so an expired lease is simulated by moving visible_at into the past
as the superuser); LISTEN needs committed rows, in a fresh clone (``db``).
"""

from __future__ import annotations

import psycopg
import pytest

from .conftest import Pg
from .dbhelpers import (
    connect,
    expect_error,
    rows,
    scalar,
)
from .queuehelpers import (
    INVALID,
    LEASE_LOST,
    MARKER,
    SESSION,
    add_event,
    bulk_notifications,
    claim,
    claim_events,
    enqueue,
    enqueue_many,
    event,
    expire_events,
    fail,
    ids_of,
    mark_event,
    mark_events,
    notification,
    now,
    session,
    tokens,
)

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
