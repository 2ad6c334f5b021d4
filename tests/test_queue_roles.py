"""What the roles toolsdb_worker and toolsdb_app may do with the two work
queues (repeatable/99_grants.sql), through the login roles of conftest.py on a
fresh clone (``db``, with ``su`` an autocommit superuser connection to it).
"""

from __future__ import annotations

import psycopg
import pytest

from .conftest import Pg
from .dbhelpers import (
    connect,
    connect_app,
    expect_error,
    rows,
    scalar,
)
from .queuehelpers import (
    DENIED,
    OTHER_SESSION,
    SESSION,
    ack,
    add_event,
    claim,
    claim_events,
    enqueue,
    ids_of,
    mark_events,
    session,
)

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
