"""The work queues' claim queries use their partial indexes (the inner select
of each claim, checked against the function's source, explained), the
notification settlements find their rows by primary key, and bad input fails
with named errors.

Isolation: every test runs in ``tx``, a transaction on one clone per module
and major that is always rolled back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

from .dbhelpers import (
    expect_error,
    one,
    scalar,
)
from .queuehelpers import (
    CHECK,
    EVENTS_CLAIM_SELECT,
    INVALID,
    NOTIFICATIONS_CLAIM_SELECT,
    NOTIFICATIONS_LEASE_HELD,
    SESSION,
    add_event,
    claim,
    claim_events,
    enqueue,
    enqueue_many,
    event,
    fail,
    notification,
    session,
    tokens,
)

# ---------------------------------------------------------------------------
# Partial indexes of the claims
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "inner_select", "index"),
    [
        pytest.param(
            "toolsdb_private.claim_due_notifications(integer,interval,text)",
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


def test_an_event_claim_is_a_hot_update(tx: psycopg.Connection) -> None:
    """A claim changes no indexed column and the table keeps room for each
    row's second version (fillfactor 50), so it writes no index entry (it was
    never HOT while the claim index held visible_at); the ack moves the row
    out of the claim index, so it cannot be HOT."""
    session(tx)
    tx.execute(
        "insert into toolsdb.events (session_id, event_type, payload) "
        "select %s, 'Stop', jsonb_build_object('n', g) from generate_series(1, 300) as g",
        (SESSION,),
    )
    hot = "select pg_stat_get_xact_tuples_hot_updated('toolsdb.events'::regclass)"
    updated = "select pg_stat_get_xact_tuples_updated('toolsdb.events'::regclass)"
    hot_before, updated_before = scalar(tx, hot), scalar(tx, updated)
    claimed = claim_events(tx, 300)
    assert len(claimed) == 300
    assert [r["event_id"] for r in claimed] == sorted(r["event_id"] for r in claimed)
    assert scalar(tx, updated) - updated_before == 300
    # A claimed row is a few bytes longer (its token, its worker), so the last
    # row of a page may not fit beside its first version: most, not all.
    claims_hot = scalar(tx, hot) - hot_before
    assert claims_hot >= 0.8 * 300
    token = claimed[0]["claim_token"]
    assert scalar(tx, "select toolsdb.mark_events_processed(%s, %s)", ([r["event_id"] for r in claimed], token)) == 300
    assert scalar(tx, hot) - hot_before == claims_hot  # the acks were not HOT


@pytest.mark.parametrize(
    "function",
    [
        "toolsdb_private.settle_sent_notifications(bigint[],uuid)",
        "toolsdb_private.settle_failed_notification(bigint,uuid,text,interval,interval,interval)",
    ],
)
def test_the_settlements_find_their_rows_by_primary_key(conn: psycopg.Connection, function: str) -> None:
    source = scalar(conn, "select prosrc from pg_proc where oid = %s::regprocedure", (function,))
    assert " ".join(NOTIFICATIONS_LEASE_HELD.split()) in " ".join(source.split()), (
        f"The lease check explained here should be the one in {function}; copy it again from the function."
    )
    session(conn)
    # A backlog whose statistics know no lease: 5,000 rows waiting, due now.
    # With "next_attempt_at > now()" the planner took that range of
    # notifications_claim_idx, which walks every lease of the last minutes (the
    # ended ones' dead entries too) to find one row.
    conn.execute(
        "insert into toolsdb.notifications (session_id, notification_type, backend) "
        "select %s, 'bulk', 'email' from generate_series(1, 5000) as g",
        (SESSION,),
    )
    conn.commit()
    conn.execute("analyze toolsdb.notifications")
    # Generic plans, as the helpers run them (plan_cache_mode force_generic_plan).
    conn.execute("set local plan_cache_mode = force_generic_plan")
    conn.execute(
        "prepare settle(bigint[], uuid) as update toolsdb.notifications as n set status = 'sent' "
        f"where n.notification_id = any($1) and n.claim_token = $2 {NOTIFICATIONS_LEASE_HELD}"
    )
    plan = "\n".join(r[0] for r in conn.execute("explain execute settle('{1}', gen_random_uuid())").fetchall())
    assert "notifications_pkey" in plan and "notifications_claim_idx" not in plan, (
        f"The settlement should find its rows by primary key, but the plan is:\n{plan}"
    )


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
    pytest.param(lambda c: add_event(c, event_type="Pre Tool"), CHECK, "hook_event_name_is_valid", id="event-type"),
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
