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

from .dbhelpers import expect_error, scalar
from .hookhelpers import (
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


def test_idle_rules_in_sql(su: psycopg.Connection) -> None:
    session_id = new_session_id()

    def ingest(event: str, **fields) -> bool:
        scalar(su, "select toolsdb.hook_ingest(%s)", (Jsonb(payload(event, session_id, "/work/app", **fields)),))
        return session_of(su, session_id)["is_idle"]

    def go_idle() -> None:
        assert ingest("Notification", notification_type="idle_prompt", message="Claude is waiting for your input")

    # A session first seen through an idle notification starts idle.
    go_idle()
    for waking in ("UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolUseFailure", "SessionStart"):
        go_idle()
        assert ingest(waking) is False, f"{waking} should wake the session"
    for neutral in ("Stop", "SubagentStop", "PermissionRequest", "PreCompact", "PostCompact", "FutureEvent"):
        go_idle()
        assert ingest(neutral) is True, f"{neutral} should leave the session idle"
    go_idle()
    assert ingest("Notification", notification_type="permission_prompt", message="Claude needs your permission")
    assert ingest("Notification", notification_type="auth_success", message="Logged in") is True
    assert ingest("SessionEnd", reason="other") is False
    # Not idle: other notifications do not make it idle.
    assert ingest("SessionStart", source="resume") is False
    assert (
        ingest("Notification", notification_type="permission_prompt", message="Claude needs your permission") is False
    )


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
