"""toolsdb.hook_ingest() (schema/43_events.sql), the SQL behind ``toolsdb
hook``, called directly on each PostgreSQL major of the suite.

The command runs as Claude Code runs it: the installed console script in a
subprocess, one JSON payload on stdin, in an environment the test controls
(no PG* variables, no terminal variables unless a test sets them, the
failure log in the test's folder), with the payload's cwd in a temporary
folder holding a fake ``.git``; payloads follow the Claude Code hooks
reference (tests/hookhelpers.py). The tests share one clone of the migrated
template per module and major (conftest.py's ``committed``), tell their rows
apart by session id, and read it through an autocommit superuser connection
(``su``).
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from .dbhelpers import Row, expect_error, scalar
from .hookhelpers import (
    DOCUMENTED_EVENTS,
    EVENT_FIELDS,
    TMUX,
    Hook,
    events_of,
    git_repo,
    hook_runner,
    module_su,
    new_session_id,
    payload,
    session_of,
    totals,
)

hook = pytest.fixture(hook_runner)
su = pytest.fixture(module_su)


# ---------------------------------------------------------------------------
# 5. toolsdb.hook_ingest() in SQL
# ---------------------------------------------------------------------------


def test_hook_ingest_in_sql_stores_what_the_command_stores(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "app", "ref: refs/heads/feature-x")
    by_command, by_sql = new_session_id(), new_session_id()
    event = payload(
        "PreToolUse", by_command, repo, tool_name="Bash", tool_input={"command": "ls"}, tool_use_id="toolu_1"
    )
    hook.ingest(event, env=TMUX)
    context = {
        "git_branch": "feature-x",
        "terminal_type": "tmux",
        "terminal_info": {"tmux": TMUX["TMUX"], "tmux_pane": "%3", "term": "tmux-256color"},
    }
    same = {**event, "session_id": by_sql}
    event_id = scalar(su, "select toolsdb.hook_ingest(%s, %s)", (Jsonb(same), Jsonb(context)))
    assert event_id == events_of(su, by_sql)[0]["event_id"]
    assert events_of(su, by_sql)[0]["payload"] == same
    skip = {"session_id", "started_at", "last_activity_at", "created_at", "updated_at"}
    command_row, sql_row = session_of(su, by_command), session_of(su, by_sql)
    assert {k: v for k, v in sql_row.items() if k not in skip} == {
        k: v for k, v in command_row.items() if k not in skip
    }
    # The context is optional.
    bare = new_session_id()
    scalar(su, "select toolsdb.hook_ingest(%s)", (Jsonb({**event, "session_id": bare}),))
    scalar(su, "select toolsdb.hook_ingest(%s, null)", (Jsonb({**event, "session_id": bare}),))
    assert session_of(su, bare)["terminal_info"] == {} and len(events_of(su, bare)) == 2


@pytest.mark.parametrize(
    ("payload_sql", "context_sql"),
    [
        pytest.param("'[]'::jsonb", "'{}'::jsonb", id="array"),
        pytest.param("'\"Stop\"'::jsonb", "'{}'::jsonb", id="string"),
        pytest.param("'42'::jsonb", "'{}'::jsonb", id="number"),
        pytest.param("'null'::jsonb", "'{}'::jsonb", id="json-null"),
        pytest.param("null::jsonb", "'{}'::jsonb", id="sql-null"),
        pytest.param('\'{"hook_event_name": "Stop"}\'::jsonb', "'{}'::jsonb", id="no-session-id"),
        pytest.param("'{\"session_id\": 42}'::jsonb", "'{}'::jsonb", id="number-session-id"),
        pytest.param("'{\"session_id\": null}'::jsonb", "'{}'::jsonb", id="null-session-id"),
        pytest.param('\'{"session_id": ""}\'::jsonb', "'{}'::jsonb", id="empty-session-id"),
        pytest.param('\'{"session_id": "s1"}\'::jsonb', "'[]'::jsonb", id="context-array"),
    ],
)
def test_hook_ingest_in_sql_refuses_bad_input(su: psycopg.Connection, payload_sql: str, context_sql: str) -> None:
    before = totals(su)
    expect_error(su, "22023", lambda: su.execute(f"select toolsdb.hook_ingest({payload_sql}, {context_sql})"))
    assert totals(su) == before


# What each of Claude Code's hook events does to its session (docs/claude-code.md,
# "The 30 hook events"): these wake it (they come only while a turn runs or
# the user starts one); SessionEnd ends it; the others leave idleness as it was.
WAKING = frozenset(
    {
        "SessionStart",
        "UserPromptSubmit",
        "UserPromptExpansion",
        "PreToolUse",
        "PermissionRequest",
        "PermissionDenied",
        "PostToolUse",
        "PostToolUseFailure",
        "PostToolBatch",
        "SubagentStart",
        "TaskCreated",
        "TaskCompleted",
        "Elicitation",
        "ElicitationResult",
        "PreCompact",
        "PostCompact",
        "CwdChanged",
        "MessageDisplay",
    }
)
IDLE_PROMPT = {"notification_type": "idle_prompt", "message": "Claude is waiting for your input"}
# The columns an event after SessionEnd must leave as they were.
END_STATE = ("ended_at", "end_reason", "is_idle", "last_event_type", "last_activity_at")


def ingest_sql(su: psycopg.Connection, session_id: str, event: str, /, **fields) -> Row:
    """hook_ingest() one event (its own transaction), then the session row."""
    scalar(su, "select toolsdb.hook_ingest(%s)", (Jsonb(payload(event, session_id, "/work/app", **fields)),))
    return session_of(su, session_id)


def session_in_state(su: psycopg.Connection, state: str) -> str:
    """A new session, started, then idle (the idle notification), active (a prompt) or ended."""
    session_id = new_session_id()
    ingest_sql(su, session_id, "SessionStart", source="startup")
    if state == "idle":
        assert ingest_sql(su, session_id, "Notification", **IDLE_PROMPT)["is_idle"] is True
    elif state == "active":
        ingest_sql(su, session_id, "UserPromptSubmit", prompt="Go on.")
    else:
        assert ingest_sql(su, session_id, "SessionEnd", reason="logout")["ended_at"] is not None
    return session_id


def test_the_documented_events_are_claude_codes_30() -> None:
    assert len(DOCUMENTED_EVENTS) == len(set(DOCUMENTED_EVENTS)) == 30
    assert set(EVENT_FIELDS) == set(DOCUMENTED_EVENTS)
    assert set(DOCUMENTED_EVENTS) > WAKING


@pytest.mark.parametrize("event", DOCUMENTED_EVENTS)
def test_each_event_on_an_idle_an_active_and_an_ended_session(su: psycopg.Connection, event: str) -> None:
    for state in ("idle", "active", "ended"):
        where = f"{event} on an {state} session"
        session_id = session_in_state(su, state)
        before = session_of(su, session_id)
        after = ingest_sql(su, session_id, event, **EVENT_FIELDS[event])
        stored = events_of(su, session_id)[-1]
        assert (stored["event_type"], stored["payload"]["hook_event_name"]) == (event, event), where
        if state == "ended" and event != "SessionStart":
            # Stored, and the session stays as its end left it.
            assert {k: after[k] for k in END_STATE} == {k: before[k] for k in END_STATE}, where
            continue
        assert after["last_event_type"] == event, where
        assert after["last_activity_at"] > before["last_activity_at"], where
        if event == "SessionEnd":
            assert (after["ended_at"] is not None, after["end_reason"], after["is_idle"]) == (True, "logout", False)
            continue
        # Only SessionStart reopens an ended session (claude --resume).
        assert (after["ended_at"], after["end_reason"]) == (None, None), where
        expected_idle = False if event in WAKING else before["is_idle"]
        assert after["is_idle"] is expected_idle, f"{where}: is_idle should be {expected_idle}"


def test_the_idle_notification_and_other_notifications(su: psycopg.Connection) -> None:
    active = session_in_state(su, "active")
    assert (
        ingest_sql(su, active, "Notification", notification_type="auth_success", message="Logged in")["is_idle"]
        is False
    )
    assert ingest_sql(su, active, "Notification", **IDLE_PROMPT)["is_idle"] is True
    # Older Claude Code versions sent no notification_type.
    active = session_in_state(su, "active")
    assert ingest_sql(su, active, "Notification", message="Claude is waiting for your input")["is_idle"] is True
    # A session first seen through an idle notification starts idle.
    assert ingest_sql(su, new_session_id(), "Notification", **IDLE_PROMPT)["is_idle"] is True
    ended = session_in_state(su, "ended")
    assert ingest_sql(su, ended, "Notification", **IDLE_PROMPT)["is_idle"] is False
    # A future event is stored and changes nothing but the last event and activity.
    idle = session_in_state(su, "idle")
    after = ingest_sql(su, idle, "FutureEvent", something={"new": True})
    assert (after["is_idle"], after["last_event_type"], after["ended_at"]) == (True, "FutureEvent", None)
    assert events_of(su, idle)[-1]["payload"]["something"] == {"new": True}


def test_a_stop_failure_after_session_end_keeps_the_session_ended(
    hook: Hook, su: psycopg.Connection, tmp_path: Path
) -> None:
    """Claude Code can send StopFailure (the turn's API error) after SessionEnd
    when the user quits while a request fails: stored, the end kept."""
    session_id = new_session_id()
    hook.ingest(payload("SessionStart", session_id, tmp_path, source="startup"))
    hook.ingest(payload("UserPromptSubmit", session_id, tmp_path, prompt="Fix it."))
    hook.ingest(payload("SessionEnd", session_id, tmp_path, reason="prompt_input_exit"))
    ended = session_of(su, session_id)
    hook.ingest(payload("StopFailure", session_id, tmp_path, **EVENT_FIELDS["StopFailure"]))
    hook.ingest(payload("SessionEnd", session_id, tmp_path, reason="other"))
    row = session_of(su, session_id)
    assert {k: row[k] for k in END_STATE} == {k: ended[k] for k in END_STATE}
    assert (row["end_reason"], row["last_event_type"]) == ("prompt_input_exit", "SessionEnd")
    assert [e["event_type"] for e in events_of(su, session_id)][-2:] == ["StopFailure", "SessionEnd"]
    # claude --resume reopens it.
    hook.ingest(payload("SessionStart", session_id, tmp_path, source="resume"))
    row = session_of(su, session_id)
    assert (row["ended_at"], row["end_reason"], row["last_event_type"]) == (None, None, "SessionStart")


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"message": "Claude needs your permission to use Bash"}, id="permission-message"),
        pytest.param({}, id="no-message"),
    ],
)
def test_a_notification_without_type_that_is_not_idle_is_stored(
    hook: Hook, su: psycopg.Connection, tmp_path: Path, fields: dict
) -> None:
    """Older Claude Code versions sent Notification without notification_type;
    only "waiting for your input" means idle, anything else must be stored, not idle."""
    session_id = new_session_id()
    hook.ingest(payload("SessionStart", session_id, tmp_path, source="startup"))
    notification = payload("Notification", session_id, tmp_path, **fields)
    hook.ingest(notification)
    assert events_of(su, session_id)[-1]["payload"] == notification
    assert session_of(su, session_id)["is_idle"] is False
    # A new session seen first through such a notification too.
    other = new_session_id()
    hook.ingest({**notification, "session_id": other})
    assert session_of(su, other)["is_idle"] is False


def test_an_idempotency_key_stores_an_event_once(su: psycopg.Connection) -> None:
    """A spool replayed or a hook retried after a lost reply sends the event again
    with the same context idempotency_key: the first row comes back and nothing changes."""
    session_id = new_session_id()
    stop = payload("Stop", session_id, "/work/app")
    first = scalar(su, "select toolsdb.hook_ingest(%s, %s)", (Jsonb(stop), Jsonb({"idempotency_key": "spool:a:1"})))
    before = session_of(su, session_id)
    again = scalar(
        su,
        "select toolsdb.hook_ingest(%s, %s)",
        (Jsonb({**stop, "hook_event_name": "SessionEnd"}), Jsonb({"idempotency_key": "spool:a:1"})),
    )
    assert again == first
    assert len(events_of(su, session_id)) == 1
    assert session_of(su, session_id) == before
    # Another key is another event.
    other = scalar(su, "select toolsdb.hook_ingest(%s, %s)", (Jsonb(stop), Jsonb({"idempotency_key": "spool:a:2"})))
    assert other != first and len(events_of(su, session_id)) == 2


def test_an_idempotency_key_of_another_session_or_malformed_is_refused(su: psycopg.Connection) -> None:
    one, two = new_session_id(), new_session_id()
    scalar(
        su, "select toolsdb.hook_ingest(%s, %s)", (Jsonb(payload("Stop", one, "/w")), Jsonb({"idempotency_key": "k-1"}))
    )
    before = totals(su)

    def as_the_application() -> None:
        su.execute("set local role toolsdb_app")
        su.execute(
            "select toolsdb.hook_ingest(%s, %s)", (Jsonb(payload("Stop", two, "/w")), Jsonb({"idempotency_key": "k-1"}))
        )

    expect_error(su, "23505", as_the_application, constraint="events_idempotency_key_key")
    for bad in ({"idempotency_key": ""}, {"idempotency_key": 7}, {"idempotency_key": "x" * 301}):
        expect_error(
            su,
            "22023",
            lambda bad=bad: su.execute(
                "select toolsdb.hook_ingest(%s, %s)", (Jsonb(payload("Stop", two, "/w")), Jsonb(bad))
            ),
        )
    assert totals(su) == before
