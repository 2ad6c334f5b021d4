"""Behaviour of the agent runtime tables against a real, migrated database, on
each PostgreSQL major of the suite: toolsdb.sessions (schema/40_sessions.sql)
and the view toolsdb.active_sessions (repeatable/83_runtime_views.sql), toolsdb.messages
(41), toolsdb.memories (42) and toolsdb.metrics with its daily partitions
(45), plus row-level security over sessions, messages, events (43),
notifications (44) and metrics for a login in toolsdb_app.

Most tests run in ``tx``: one clone of the migrated template per module and
major, in a transaction that is always rolled back (DDL of the metrics
partitions included). Tests that must commit (for time or xmin to move, or
for other connections to see their rows) get a fresh clone of their own
(``conn`` or ``db``). Every statement that must fail runs in a savepoint
(``expect_error``).
"""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from .conftest import Pg
from .dbhelpers import (
    Row,
    connect_app,
    expect_error,
    insert,
    one,
    rows,
    scalar,
    unique,
)

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def session_of(conn: psycopg.Connection, session_id: str) -> Row:
    return one(conn, "select * from toolsdb.sessions where session_id = %s", (session_id,))


def new_session(conn: psycopg.Connection, prefix: str = "sess-") -> str:
    session_id = unique(prefix)
    assert scalar(conn, "select toolsdb.create_session(%s)", (session_id,)) == session_id
    return session_id


def new_user(conn: psycopg.Connection) -> Any:
    username = unique("runtime-user-")
    return insert(conn, "users", username=username, email=f"{username}@example.com")["user_id"]


def new_agent(conn: psycopg.Connection) -> Any:
    return insert(
        conn,
        "agents",
        name=unique("runtime-agent-"),
        agent_type="coding",
        model_provider="acme",
        model_name=unique("model-"),
    )["agent_id"]


def new_project(conn: psycopg.Connection, owner_id: Any) -> Any:
    slug = unique("runtime-project-")
    return insert(conn, "projects", slug=slug, name=slug, owner_id=owner_id)["project_id"]


def partition_name(day: date) -> str:
    return f"metrics_y{day:%Y}m{day:%m}d{day:%d}"


def utc_day(conn: psycopg.Connection, moment: datetime | None = None) -> date:
    """The UTC day of ``moment`` (default: the transaction's now()) as the database sees it."""
    return scalar(conn, "select (coalesce(%s::timestamptz, now()) at time zone 'UTC')::date", (moment,))


def partition_of_metric(conn: psycopg.Connection, metric_id: int) -> str:
    return scalar(conn, "select tableoid::regclass::text from toolsdb.metrics where metric_id = %s", (metric_id,))


def table_exists(conn: psycopg.Connection, name: str) -> bool:
    return scalar(conn, "select to_regclass(%s) is not null", (f"toolsdb.{name}",))


def metric_at(
    conn: psycopg.Connection, name: str, value: float, moment: datetime, session_id: str | None = None
) -> int:
    return scalar(
        conn,
        "select toolsdb.insert_metric(%s, %s, %s, '{}', %s)",
        (name, value, session_id, moment),
    )


# ---------------------------------------------------------------------------
# Sessions
# ---------------------------------------------------------------------------


def test_create_session_inserts_then_keeps_what_null_arguments_leave_out(tx: psycopg.Connection) -> None:
    user_id = new_user(tx)
    agent_id = new_agent(tx)
    project_id = new_project(tx, user_id)
    session_id = unique("sess-")
    created = scalar(
        tx,
        "select toolsdb.create_session(session_id => %s, cwd => %s, git_branch => %s, terminal_type => %s,"
        " terminal_info => %s, project_id => %s, user_id => %s, agent_id => %s)",
        (session_id, "/work/app", "main", "tmux", Jsonb({"pane": "%1"}), project_id, user_id, agent_id),
    )
    assert created == session_id
    first = session_of(tx, session_id)
    assert (first["cwd"], first["git_branch"], first["terminal_type"], first["terminal_info"]) == (
        "/work/app",
        "main",
        "tmux",
        {"pane": "%1"},
    )
    assert (first["user_id"], first["agent_id"], first["project_id"]) == (user_id, agent_id, project_id)
    assert first["ended_at"] is None and first["is_idle"] is False and first["message_count"] == 0

    # Null (and default) arguments keep what the session had; terminal_info merges.
    assert scalar(tx, "select toolsdb.create_session(%s)", (session_id,)) == session_id
    assert scalar(
        tx,
        "select toolsdb.create_session(%s, null, null, null, null, null, null, null)",
        (session_id,),
    )
    again = session_of(tx, session_id)
    for column in ("cwd", "git_branch", "terminal_type", "terminal_info", "user_id", "agent_id", "project_id"):
        assert again[column] == first[column], f"create_session with null {column} should keep it"

    # Given arguments replace; terminal_info keys are merged into the old ones.
    scalar(
        tx,
        "select toolsdb.create_session(session_id => %s, cwd => %s, terminal_info => %s)",
        (session_id, "/work/other", Jsonb({"window": "2"})),
    )
    changed = session_of(tx, session_id)
    assert changed["cwd"] == "/work/other"
    assert changed["git_branch"] == "main"
    assert changed["terminal_info"] == {"pane": "%1", "window": "2"}
    assert scalar(tx, "select count(*) from toolsdb.sessions where session_id = %s", (session_id,)) == 1


def test_create_session_reopens_an_ended_session(conn: psycopg.Connection) -> None:
    session_id = new_session(conn)
    assert scalar(conn, "select toolsdb.end_session(%s, 'logout')", (session_id,)) is True
    conn.commit()
    ended = session_of(conn, session_id)
    assert ended["ended_at"] is not None and ended["end_reason"] == "logout"
    assert scalar(conn, "select count(*) from toolsdb.active_sessions where session_id = %s", (session_id,)) == 0

    scalar(conn, "select toolsdb.create_session(%s, '/work/again')", (session_id,))
    reopened = session_of(conn, session_id)
    assert reopened["ended_at"] is None and reopened["end_reason"] is None
    assert reopened["cwd"] == "/work/again"
    assert reopened["last_activity_at"] > ended["last_activity_at"]
    assert scalar(conn, "select count(*) from toolsdb.active_sessions where session_id = %s", (session_id,)) == 1


def test_update_session_activity_moves_last_activity_forward(conn: psycopg.Connection) -> None:
    session_id = new_session(conn)
    conn.commit()
    before = session_of(conn, session_id)["last_activity_at"]
    conn.commit()
    assert scalar(conn, "select toolsdb.update_session_activity(%s)", (session_id,)) is True
    conn.commit()
    after = session_of(conn, session_id)["last_activity_at"]
    assert after > before
    assert scalar(conn, "select toolsdb.update_session_activity(%s)", (unique("no-such-"),)) is None


def test_set_session_idle(tx: psycopg.Connection) -> None:
    session_id = new_session(tx)
    assert session_of(tx, session_id)["is_idle"] is False
    assert scalar(tx, "select toolsdb.set_session_idle(%s)", (session_id,)) is True
    assert session_of(tx, session_id)["is_idle"] is True
    assert scalar(tx, "select toolsdb.set_session_idle(%s, false)", (session_id,)) is True
    assert session_of(tx, session_id)["is_idle"] is False
    # A null flag means the default, idle.
    assert scalar(tx, "select toolsdb.set_session_idle(%s, null)", (session_id,)) is True
    assert session_of(tx, session_id)["is_idle"] is True
    assert scalar(tx, "select toolsdb.set_session_idle(%s)", (unique("no-such-"),)) is None


def test_end_session(tx: psycopg.Connection) -> None:
    session_id = new_session(tx)
    scalar(tx, "select toolsdb.set_session_idle(%s)", (session_id,))
    assert scalar(tx, "select toolsdb.end_session(%s, 'prompt_input_exit')", (session_id,)) is True
    ended = session_of(tx, session_id)
    assert ended["ended_at"] is not None and ended["ended_at"] >= ended["started_at"]
    assert ended["end_reason"] == "prompt_input_exit"
    assert ended["is_idle"] is False
    # Already ended, or unknown: null, and nothing changes.
    assert scalar(tx, "select toolsdb.end_session(%s, 'logout')", (session_id,)) is None
    assert session_of(tx, session_id)["end_reason"] == "prompt_input_exit"
    assert scalar(tx, "select toolsdb.end_session(%s)", (unique("no-such-"),)) is None
    # No reason: ended without one.
    other = new_session(tx)
    assert scalar(tx, "select toolsdb.end_session(%s)", (other,)) is True
    assert session_of(tx, other)["end_reason"] is None


def test_delete_session_removes_what_names_the_session(tx: psycopg.Connection) -> None:
    """delete_session() removes the session, its messages and the rows that
    name it (on Citus the keys that cascade here are gone, docs/citus.md)."""
    session_id = new_session(tx)
    scalar(tx, "select toolsdb.create_message(%s, 'user', 'hello')", (session_id,))
    event_id = scalar(tx, "select toolsdb.insert_event(%s, 'PreToolUse')", (session_id,))
    scalar(tx, "select toolsdb.insert_notification(%s, 'idle', 'slack', '{}', %s)", (session_id, event_id))
    scalar(tx, "select toolsdb.insert_metric('latency_ms', 12, session_id => %s)", (session_id,))
    file_id = scalar(
        tx,
        "insert into toolsdb.transcript_files (source_host, path, session_id) values ('h', %s, %s) returning file_id",
        (f"/t/{session_id}.jsonl", session_id),
    )
    other = new_session(tx)
    scalar(tx, "select toolsdb.insert_event(%s, 'PreToolUse')", (other,))
    assert scalar(tx, "select toolsdb.delete_session(%s)", (session_id,)) is True
    for table in ("sessions", "messages", "events", "notifications", "metrics"):
        assert scalar(tx, f"select count(*) from toolsdb.{table} where session_id = %s", (session_id,)) == 0, table
    assert scalar(tx, "select session_id from toolsdb.transcript_files where file_id = %s", (file_id,)) is None
    assert scalar(tx, "select count(*) from toolsdb.events where session_id = %s", (other,)) == 1
    assert scalar(tx, "select toolsdb.delete_session(%s)", (session_id,)) is False


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        pytest.param({"session_id": "has\ttab"}, "session_id_is_valid", id="control-character"),
        pytest.param({"session_id": "x" * 201}, "session_id_is_valid", id="201-chars"),
        pytest.param({"session_id": ""}, "session_id_is_valid", id="empty"),
        pytest.param({"terminal_type": "Bad Type"}, "terminal_type_is_valid", id="terminal-type"),
        pytest.param({"permission_mode": "not a mode"}, "permission_mode_is_valid", id="permission-mode"),
        pytest.param({"end_reason": "other"}, "end_reason_needs_end", id="reason-without-end"),
        pytest.param({"terminal_info": Jsonb([])}, "terminal_info_is_object", id="terminal-info"),
        pytest.param({"message_count": -1}, "message_count_is_not_negative", id="message-count"),
    ],
)
def test_session_checks(tx: psycopg.Connection, values: dict, constraint: str) -> None:
    row = {"session_id": unique("sess-"), **values}
    expect_error(tx, "23514", lambda: insert(tx, "sessions", **row), constraint)


def test_session_id_of_200_characters_of_any_script_is_valid(tx: psycopg.Connection) -> None:
    session_id = "x" * 198 + "日本"
    assert scalar(tx, "select toolsdb.create_session(%s)", (session_id,)) == session_id
    assert scalar(tx, "select toolsdb.create_session(%s)", ("with a space",)) == "with a space"
    expect_error(
        tx,
        "23514",
        lambda: tx.execute("select toolsdb.create_session(%s)", ("bad\nid",)),
        "session_id_is_valid",
    )


def test_active_sessions_lists_only_sessions_that_have_not_ended(tx: psycopg.Connection) -> None:
    open_a, open_b, ended = new_session(tx), new_session(tx), new_session(tx)
    scalar(tx, "select toolsdb.end_session(%s, 'clear')", (ended,))
    listed = rows(
        tx,
        "select session_id, inactive_for from toolsdb.active_sessions where session_id = any(%s) order by session_id",
        ([open_a, open_b, ended],),
    )
    assert [r["session_id"] for r in listed] == sorted([open_a, open_b])
    assert all(r["inactive_for"] is not None for r in listed)


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------


def test_create_message_assigns_gapless_positions_per_session(tx: psycopg.Connection) -> None:
    first, second = new_session(tx), new_session(tx)
    for session_id, role, content in [
        (first, "user", "fix the login bug"),
        (second, "user", "write docs"),
        (first, "assistant", "looking at auth.py"),
        (first, "tool", "tests pass"),
        (second, "assistant", "done"),
    ]:
        scalar(tx, "select toolsdb.create_message(%s, %s, %s)", (session_id, role, content))
    positions = rows(
        tx,
        "select session_id, position, role from toolsdb.messages where session_id = any(%s) order by 1, 2",
        ([first, second],),
    )
    assert [(r["session_id"], r["position"]) for r in positions if r["session_id"] == first] == [
        (first, 1),
        (first, 2),
        (first, 3),
    ]
    assert [r["position"] for r in positions if r["session_id"] == second] == [1, 2]
    assert session_of(tx, first)["message_count"] == 3
    assert session_of(tx, second)["message_count"] == 2

    # Defaults of create_message: null content is '', null tool_calls is [].
    message_id = scalar(tx, "select toolsdb.create_message(%s, 'system', null, null)", (first,))
    message = one(tx, "select * from toolsdb.messages where message_id = %s", (message_id,))
    assert (message["position"], message["content"], message["tool_calls"], message["metadata"]) == (4, "", [], {})
    # Position is assigned by the database, whatever the insert says.
    forced = insert(tx, "messages", session_id=first, role="user", content="x", position=99)
    assert forced["position"] == 5


def test_message_count_matches_the_messages_and_positions_are_never_reused(tx: psycopg.Connection) -> None:
    session_id = new_session(tx)
    ids = [scalar(tx, "select toolsdb.create_message(%s, 'user', %s)", (session_id, f"m{i}")) for i in range(3)]
    assert session_of(tx, session_id)["message_count"] == scalar(
        tx, "select count(*) from toolsdb.messages where session_id = %s", (session_id,)
    )
    tx.execute("delete from toolsdb.messages where message_id = %s", (ids[1],))
    new_id = scalar(tx, "select toolsdb.create_message(%s, 'user', 'after delete')", (session_id,))
    assert scalar(tx, "select position from toolsdb.messages where message_id = %s", (new_id,)) == 4


def test_concurrent_writers_get_positions_one_to_a_hundred(pg: Pg, db: str) -> None:
    writers, per_writer = 4, 25
    with psycopg.connect(pg.conninfo(db), autocommit=True) as su:
        session_id = new_session(su)
    barrier = threading.Barrier(writers)
    failures: list[BaseException] = []
    seen: dict[int, list[int]] = {}

    def write(writer: int) -> None:
        try:
            with psycopg.connect(pg.conninfo(db), autocommit=True) as own:
                barrier.wait(timeout=30)
                mine = []
                for i in range(per_writer):
                    message_id = scalar(
                        own, "select toolsdb.create_message(%s, 'assistant', %s)", (session_id, f"w{writer}-{i}")
                    )
                    mine.append(
                        scalar(own, "select position from toolsdb.messages where message_id = %s", (message_id,))
                    )
                seen[writer] = mine
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, f"a concurrent writer failed: {failures!r}"
    with psycopg.connect(pg.conninfo(db), autocommit=True) as su:
        positions = [
            r[0]
            for r in su.execute(
                "select position from toolsdb.messages where session_id = %s order by position", (session_id,)
            )
        ]
        assert positions == list(range(1, writers * per_writer + 1))
        assert session_of(su, session_id)["message_count"] == writers * per_writer
    for writer, mine in seen.items():
        assert mine == sorted(mine), f"writer {writer} got positions out of order: {mine}"


def test_message_for_an_unknown_session_is_refused(tx: psycopg.Connection) -> None:
    missing = unique("no-such-")
    expect_error(
        tx,
        "23503",
        lambda: tx.execute("select toolsdb.create_message(%s, 'user', 'hello')", (missing,)),
        "messages_session_id_fkey",
    )
    expect_error(
        tx,
        "23503",
        lambda: insert(tx, "messages", session_id=missing, role="user", content="hello"),
        "messages_session_id_fkey",
    )


def test_a_message_keeps_its_session_and_position(tx: psycopg.Connection) -> None:
    session_id, other = new_session(tx), new_session(tx)
    message_id = scalar(tx, "select toolsdb.create_message(%s, 'user', 'hello')", (session_id,))
    scalar(tx, "select toolsdb.create_message(%s, 'user', 'there')", (other,))
    for statement, params in [
        ("update toolsdb.messages set position = 7 where message_id = %s", (message_id,)),
        ("update toolsdb.messages set session_id = %s where message_id = %s", (other, message_id)),
    ]:
        expect_error(tx, "23514", lambda s=statement, p=params: tx.execute(s, p), "position_is_fixed")
    tx.execute("update toolsdb.messages set content = 'hello!', tokens = 3 where message_id = %s", (message_id,))
    kept = one(tx, "select * from toolsdb.messages where message_id = %s", (message_id,))
    assert (kept["session_id"], kept["position"], kept["content"]) == (session_id, 1, "hello!")


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        pytest.param({"role": "robot"}, "role_is_valid", id="role"),
        pytest.param({"tool_calls": Jsonb({"name": "Edit"})}, "tool_calls_is_array", id="tool-calls"),
        pytest.param({"tokens": -1}, "tokens_is_not_negative", id="tokens"),
        pytest.param({"metadata": Jsonb([])}, "metadata_is_object", id="metadata"),
    ],
)
def test_message_checks(tx: psycopg.Connection, values: dict, constraint: str) -> None:
    session_id = new_session(tx)
    row = {"session_id": session_id, "role": "user", "content": "hi", **values}
    expect_error(tx, "23514", lambda: insert(tx, "messages", **row), constraint)
    assert session_of(tx, session_id)["message_count"] == 0


# ---------------------------------------------------------------------------
# Memories
# ---------------------------------------------------------------------------


def memory(conn: psycopg.Connection, memory_id: Any) -> Row:
    return one(conn, "select *, xmin::text as row_xmin from toolsdb.memories where memory_id = %s", (memory_id,))


def test_memory_set_replaces_the_entry_of_the_same_agent_user_and_key(tx: psycopg.Connection) -> None:
    agent_id, user_id = new_agent(tx), new_user(tx)
    global_id = scalar(tx, "select toolsdb.memory_set(%s, 'indent', 'tabs')", (agent_id,))
    own_id = scalar(tx, "select toolsdb.memory_set(%s, 'indent', 'spaces', %s)", (agent_id, user_id))
    assert global_id != own_id
    replaced = scalar(
        tx, "select toolsdb.memory_set(%s, 'indent', 'two spaces', %s, %s)", (agent_id, user_id, Jsonb({"v": 2}))
    )
    assert replaced == own_id
    assert scalar(tx, "select toolsdb.memory_set(%s, 'indent', 'tabs, always')", (agent_id,)) == global_id
    entries = rows(
        tx,
        "select user_id, content, metadata from toolsdb.memories where agent_id = %s order by user_id nulls first",
        (agent_id,),
    )
    assert entries == [
        {"user_id": None, "content": "tabs, always", "metadata": {}},
        {"user_id": user_id, "content": "two spaces", "metadata": {"v": 2}},
    ]


def test_one_entry_per_agent_user_and_key_nulls_not_distinct(tx: psycopg.Connection) -> None:
    agent_id, user_id = new_agent(tx), new_user(tx)
    insert(tx, "memories", agent_id=agent_id, key="style", content="global")
    expect_error(
        tx,
        "23505",
        lambda: insert(tx, "memories", agent_id=agent_id, key="style", content="another global"),
        "memories_agent_id_user_id_key_key",
    )
    insert(tx, "memories", agent_id=agent_id, user_id=user_id, key="style", content="mine")
    expect_error(
        tx,
        "23505",
        lambda: insert(tx, "memories", agent_id=agent_id, user_id=user_id, key="style", content="mine again"),
        "memories_agent_id_user_id_key_key",
    )


def test_memory_get_prefers_the_users_entry_then_the_global_one(tx: psycopg.Connection) -> None:
    agent_id, other_agent = new_agent(tx), new_agent(tx)
    me, someone = new_user(tx), new_user(tx)
    scalar(tx, "select toolsdb.memory_set(%s, 'style', 'global style')", (agent_id,))
    scalar(tx, "select toolsdb.memory_set(%s, 'style', 'my style', %s)", (agent_id, me))
    scalar(tx, "select toolsdb.memory_set(%s, 'only mine', 'secret', %s)", (agent_id, me))

    def get(agent: Any, key: str, user: Any) -> list[str]:
        return [r["content"] for r in rows(tx, "select * from toolsdb.memory_get(%s, %s, %s)", (agent, key, user))]

    assert get(agent_id, "style", me) == ["my style"]
    assert get(agent_id, "style", someone) == ["global style"]
    assert get(agent_id, "style", None) == ["global style"]
    assert get(agent_id, "only mine", me) == ["secret"]
    assert get(agent_id, "only mine", someone) == []
    assert get(agent_id, "only mine", None) == []
    assert get(agent_id, "nothing here", me) == []
    assert get(other_agent, "style", me) == []


def test_memory_set_with_unchanged_content_writes_nothing(conn: psycopg.Connection) -> None:
    agent_id = new_agent(conn)
    memory_id = scalar(conn, "select toolsdb.memory_set(%s, 'lang', 'python', null, %s)", (agent_id, Jsonb({"a": 1})))
    conn.commit()
    before = memory(conn, memory_id)
    audits = scalar(conn, "select count(*) from toolsdb.audit_logs where entity_type = 'memories'")
    conn.commit()

    assert (
        scalar(conn, "select toolsdb.memory_set(%s, 'lang', 'python', null, %s)", (agent_id, Jsonb({"a": 1}))) is None
    )
    conn.commit()
    after = memory(conn, memory_id)
    assert after["row_xmin"] == before["row_xmin"], "an unchanged memory_set should not rewrite the row"
    assert after["updated_at"] == before["updated_at"]
    assert scalar(conn, "select count(*) from toolsdb.audit_logs where entity_type = 'memories'") == audits

    # Changed metadata alone is a change.
    assert scalar(conn, "select toolsdb.memory_set(%s, 'lang', 'python')", (agent_id,)) == memory_id
    conn.commit()
    changed = memory(conn, memory_id)
    assert changed["row_xmin"] != before["row_xmin"] and changed["metadata"] == {}


def test_memories_are_audited(tx: psycopg.Connection) -> None:
    agent_id = new_agent(tx)
    memory_id = scalar(tx, "select toolsdb.memory_set(%s, 'lang', 'python')", (agent_id,))
    logged = rows(
        tx,
        "select action, entity_type, entity_id, new_values, old_values from toolsdb.audit_logs"
        " where entity_type = 'memories' and entity_id = %s order by audit_id",
        (str(memory_id),),
    )
    assert len(logged) == 1
    assert logged[0]["action"] == "insert"
    assert logged[0]["new_values"]["key"] == "lang" and logged[0]["new_values"]["content"] == "python"
    scalar(tx, "select toolsdb.memory_set(%s, 'lang', 'rust')", (agent_id,))
    update = rows(
        tx,
        "select action, old_values, new_values from toolsdb.audit_logs"
        " where entity_type = 'memories' and entity_id = %s and action = 'update'",
        (str(memory_id),),
    )
    assert len(update) == 1
    assert update[0]["old_values"]["content"] == "python" and update[0]["new_values"]["content"] == "rust"


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def stats(conn: psycopg.Connection, name: str, since: Any = None, until: Any = None) -> Row:
    return one(conn, "select * from toolsdb.get_metric_stats(%s, %s, %s)", (name, since, until))


def test_metric_stats_of_known_values(tx: psycopg.Connection) -> None:
    name = "hook_duration_ms"
    for value in range(1, 101):
        scalar(tx, "select toolsdb.insert_metric(%s, %s)", (name, float(value)))
    scalar(tx, "select toolsdb.insert_metric('other.metric', 1000)")
    found = stats(tx, name)
    assert found["metric_name"] == name and found["count"] == 100
    assert found["avg"] == pytest.approx(50.5)
    assert (found["min"], found["max"]) == (1.0, 100.0)
    assert found["p50"] == pytest.approx(50.5)
    assert found["p95"] == pytest.approx(95.05)
    assert found["p99"] == pytest.approx(99.01)

    empty = stats(tx, "never.measured")
    assert empty["count"] == 0
    assert all(empty[k] is None for k in ("avg", "min", "max", "p50", "p95", "p99"))


def test_metric_stats_over_a_window(tx: psycopg.Connection) -> None:
    name = "notification_latency_ms"
    t0 = scalar(tx, "select date_trunc('second', now())")
    for hours_ago, value in [(3, 30.0), (2, 20.0), (1, 10.0), (0, 5.0)]:
        metric_at(tx, name, value, t0 - timedelta(hours=hours_ago))
    # [since, until): since included, until excluded.
    window = stats(tx, name, t0 - timedelta(hours=2), t0)
    assert (window["count"], window["min"], window["max"]) == (2, 10.0, 20.0)
    assert stats(tx, name, since=t0 - timedelta(hours=1))["count"] == 2
    assert stats(tx, name, until=t0 - timedelta(hours=2))["count"] == 1
    assert stats(tx, name, t0 + timedelta(seconds=1))["count"] == 0
    assert stats(tx, name)["count"] == 4


@pytest.mark.parametrize(
    ("name", "value", "tags", "constraint"),
    [
        pytest.param("latency_ms", float("nan"), {}, "metric_value_is_finite", id="nan"),
        pytest.param("latency_ms", float("inf"), {}, "metric_value_is_finite", id="infinity"),
        pytest.param("latency_ms", float("-inf"), {}, "metric_value_is_finite", id="minus-infinity"),
        pytest.param("Bad Name", 1.0, {}, "metric_name_is_valid", id="name"),
        pytest.param("latency_ms", 1.0, ["slack"], "tags_is_object", id="tags"),
    ],
)
def test_metric_checks(tx: psycopg.Connection, name: str, value: float, tags: Any, constraint: str) -> None:
    expect_error(
        tx,
        "23514",
        lambda: tx.execute("select toolsdb.insert_metric(%s, %s, null, %s)", (name, value, Jsonb(tags))),
        constraint,
    )


def test_metrics_are_append_only(tx: psycopg.Connection) -> None:
    metric_id = scalar(tx, "select toolsdb.insert_metric('hook_duration_ms', 12)")
    error = expect_error(
        tx,
        "42501",
        lambda: tx.execute("update toolsdb.metrics set metric_value = 13 where metric_id = %s", (metric_id,)),
    )
    assert "append-only" in str(error)
    assert scalar(tx, "select metric_value from toolsdb.metrics where metric_id = %s", (metric_id,)) == 12.0


def test_a_metric_lands_in_the_partition_of_its_utc_day(tx: psycopg.Connection) -> None:
    metric_id = scalar(tx, "select toolsdb.insert_metric('hook_duration_ms', 1)")
    assert partition_of_metric(tx, metric_id) == f"toolsdb.{partition_name(utc_day(tx))}"
    # The partitions of the next days exist already (toolsdb migrate made them).
    tomorrow = scalar(tx, "select now() + interval '1 day'")
    ahead = metric_at(tx, "hook_duration_ms", 2, tomorrow)
    assert partition_of_metric(tx, ahead) == f"toolsdb.{partition_name(utc_day(tx, tomorrow))}"


def test_a_row_of_a_day_without_partition_is_moved_to_its_own_day(tx: psycopg.Connection) -> None:
    old = scalar(tx, "select now() - interval '40 days'")
    metric_id = metric_at(tx, "hook_duration_ms", 40.0, old)
    assert partition_of_metric(tx, metric_id) == "toolsdb.metrics_default"
    day = partition_name(utc_day(tx, old))
    assert not table_exists(tx, day)

    assert scalar(tx, "select toolsdb.metrics_create_partitions()") >= 1
    assert partition_of_metric(tx, metric_id) == f"toolsdb.{day}"
    assert scalar(tx, "select count(*) from toolsdb.metrics_default") == 0
    moved = one(
        tx, "select metric_name, metric_value, created_at from toolsdb.metrics where metric_id = %s", (metric_id,)
    )
    assert moved == {"metric_name": "hook_duration_ms", "metric_value": 40.0, "created_at": old}
    # Running it again creates nothing; the re-created default still takes stray rows and stays append-only.
    assert scalar(tx, "select toolsdb.metrics_create_partitions()") == 0
    stray = metric_at(tx, "hook_duration_ms", 50.0, scalar(tx, "select now() - interval '50 days'"))
    assert partition_of_metric(tx, stray) == "toolsdb.metrics_default"
    expect_error(
        tx,
        "42501",
        lambda: tx.execute("update toolsdb.metrics set metric_value = 0 where metric_id = %s", (stray,)),
    )
    new_id = scalar(tx, "select toolsdb.insert_metric('hook_duration_ms', 1)")
    assert new_id > stray > metric_id


def seed_days(conn: psycopg.Connection) -> tuple[dict[int, list[int]], dict[int, str], int]:
    """Metrics 40 (3 rows), 20 (2), 5 (1) and 0 (1) days ago, each day in its
    own partition, and one row 50 days ago stranded in the default partition.
    Returns the ids by age in days, the partition names by age, and the stranded id."""
    now = scalar(conn, "select now()")
    ids: dict[int, list[int]] = {}
    for days_ago, count in [(40, 3), (20, 2), (5, 1), (0, 1)]:
        ids[days_ago] = [metric_at(conn, "hook_duration_ms", i, now - timedelta(days=days_ago)) for i in range(count)]
    scalar(conn, "select toolsdb.metrics_create_partitions()")
    days = {d: partition_name(utc_day(conn, now - timedelta(days=d))) for d in ids}
    assert all(table_exists(conn, name) for name in days.values())
    stranded = metric_at(conn, "hook_duration_ms", 99, now - timedelta(days=50))
    assert partition_of_metric(conn, stranded) == "toolsdb.metrics_default"
    return ids, days, stranded


def kept_ids(conn: psycopg.Connection) -> list[int]:
    return [r["metric_id"] for r in rows(conn, "select metric_id from toolsdb.metrics order by metric_id")]


def test_metrics_retention_keeps_todays_and_the_coming_days_partitions(tx: psycopg.Connection) -> None:
    today = utc_day(tx)
    coming = [partition_name(today + timedelta(days=i)) for i in range(7)]
    assert all(table_exists(tx, name) for name in coming), "toolsdb migrate should have made them"
    metric_id = scalar(tx, "select toolsdb.insert_metric('hook_duration_ms', 1)")
    dropped = scalar(tx, "select toolsdb.metrics_apply_retention('30 days')")
    missing = [name for name in coming if not table_exists(tx, name)]
    assert not missing, f"metrics_apply_retention('30 days') dropped today's and the coming days' partitions: {missing}"
    assert dropped == 0
    assert kept_ids(tx) == [metric_id]


def test_metrics_retention_drops_whole_days_older_than_30_days_by_default(tx: psycopg.Connection) -> None:
    ids, days, _ = seed_days(tx)
    # No argument and no config: 30 days; the stranded default row goes too.
    assert scalar(tx, "select toolsdb.metrics_apply_retention()") == 3 + 1
    assert not table_exists(tx, days[40])
    assert scalar(tx, "select count(*) from toolsdb.metrics_default") == 0
    assert all(table_exists(tx, days[d]) for d in (20, 5, 0))
    assert kept_ids(tx) == sorted(ids[20] + ids[5] + ids[0])
    assert scalar(tx, "select toolsdb.metrics_apply_retention('30 days')") == 0


def test_metrics_retention_reads_the_config_when_given_no_argument(tx: psycopg.Connection) -> None:
    ids, days, _ = seed_days(tx)
    tx.execute("select toolsdb.config_set('metrics.retention', '\"10 days\"'::jsonb, null)")
    assert scalar(tx, "select toolsdb.metrics_apply_retention()") == 3 + 2 + 1
    assert not table_exists(tx, days[40]) and not table_exists(tx, days[20])
    assert table_exists(tx, days[5]) and table_exists(tx, days[0])
    assert kept_ids(tx) == sorted(ids[5] + ids[0])
    # An explicit argument wins over the config.
    assert scalar(tx, "select toolsdb.metrics_apply_retention('1 day')") == 1
    assert not table_exists(tx, days[5]) and table_exists(tx, days[0])
    assert kept_ids(tx) == ids[0]


def test_metrics_retention_keeps_at_least_one_day(tx: psycopg.Connection) -> None:
    metric_id = scalar(tx, "select toolsdb.insert_metric('hook_duration_ms', 1)")
    for too_short in ("1 hour", "23 hours", "-1 day"):
        expect_error(
            tx,
            "22023",
            lambda t=too_short: tx.execute("select toolsdb.metrics_apply_retention(%s::interval)", (t,)),
        )
    tx.execute("select toolsdb.config_set('metrics.retention', '\"1 hour\"'::jsonb, null)")
    expect_error(tx, "22023", lambda: tx.execute("select toolsdb.metrics_apply_retention()"))
    assert kept_ids(tx) == [metric_id]


# ---------------------------------------------------------------------------
# Row-level security for the application
# ---------------------------------------------------------------------------


def test_the_application_sees_only_its_session(pg: Pg, db: str, app_login: str) -> None:
    with psycopg.connect(pg.conninfo(db), autocommit=True) as su:
        a, b = new_session(su, "rls-a-"), new_session(su, "rls-b-")
        for sid in (a, b):
            scalar(su, "select toolsdb.create_message(%s, 'user', %s)", (sid, f"hello from {sid}"))
            scalar(su, "select toolsdb.insert_event(%s, 'PreToolUse', %s)", (sid, Jsonb({"session_id": sid})))
            scalar(su, "select toolsdb.insert_notification(%s, 'permission', 'slack')", (sid,))
            scalar(su, "select toolsdb.insert_metric('hook_duration_ms', 1, %s)", (sid,))
        scalar(su, "select toolsdb.insert_metric('hook_duration_ms', 2)")

    with connect_app(pg, db, app_login) as app:
        # Nothing at all without a session.
        for table in ("sessions", "messages", "events", "notifications"):
            assert scalar(app, f"select count(*) from toolsdb.{table}") == 0, table
        app.execute(sql.SQL("set toolsdb.session_id = {}").format(sql.Literal(a)))
        for table in ("sessions", "messages", "events", "notifications"):
            seen = {r["session_id"] for r in rows(app, f"select session_id from toolsdb.{table}")}
            assert seen == {a}, f"toolsdb.{table} should show only session {a}, it shows {seen}"
        assert sorted((r["session_id"] or "") for r in rows(app, "select session_id from toolsdb.metrics")) == sorted(
            ["", a]
        )
        assert [r["session_id"] for r in rows(app, "select session_id from toolsdb.active_sessions")] == [a]
        assert stats(app, "hook_duration_ms")["count"] == 2

        # Its own session: it may write.
        scalar(app, "select toolsdb.create_message(%s, 'assistant', 'mine')", (a,))
        scalar(app, "select toolsdb.insert_metric('hook_duration_ms', 3, %s)", (a,))
        # Another session: refused. A message for a session it cannot see is
        # refused by the position trigger before row-level security checks the
        # new row: 23503 "no session ..." (as for a session that does not exist).
        for attempt in (
            lambda: app.execute("select toolsdb.create_message(%s, 'user', 'intruder')", (b,)),
            lambda: insert(app, "messages", session_id=b, role="user", content="intruder"),
        ):
            expect_error(app, ("42501", "23503"), attempt)
        expect_error(
            app,
            "42501",
            lambda: app.execute(
                "insert into toolsdb.events (session_id, event_type, payload) values (%s, 'Stop', '{}')", (b,)
            ),
        )
        expect_error(app, "42501", lambda: app.execute("select toolsdb.insert_metric('x', 1, %s)", (b,)))
        expect_error(
            app, "42501", lambda: app.execute("select toolsdb.insert_notification(%s, 'permission', 'slack')", (b,))
        )
        app.commit()
    with psycopg.connect(pg.conninfo(db), autocommit=True) as su:
        assert scalar(su, "select count(*) from toolsdb.messages where session_id = %s", (b,)) == 1
        assert scalar(su, "select count(*) from toolsdb.messages where session_id = %s", (a,)) == 2


def test_hook_ingest_by_the_application_acts_as_the_payloads_session(pg: Pg, db: str, app_login: str) -> None:
    with psycopg.connect(pg.conninfo(db), autocommit=True) as su:
        a, b = new_session(su, "rls-a-"), new_session(su, "rls-b-")
    payload = {
        "session_id": b,
        "transcript_path": f"/home/dev/.claude/projects/app/{b}.jsonl",
        "cwd": "/work/app",
        "permission_mode": "default",
        "hook_event_name": "UserPromptSubmit",
        "prompt": "run the tests",
    }
    with connect_app(pg, db, app_login) as app:
        app.execute(sql.SQL("set toolsdb.session_id = {}").format(sql.Literal(a)))
        event_id = scalar(app, "select toolsdb.hook_ingest(%s, %s)", (Jsonb(payload), Jsonb({"git_branch": "main"})))
        assert event_id is not None
        assert scalar(app, "select current_setting('toolsdb.session_id')") == a
        assert [r["session_id"] for r in rows(app, "select session_id from toolsdb.sessions")] == [a]
        assert scalar(app, "select count(*) from toolsdb.events") == 0
        # A brand-new session too.
        fresh = unique("rls-new-")
        scalar(app, "select toolsdb.hook_ingest(%s)", (Jsonb({**payload, "session_id": fresh}),))
        assert scalar(app, "select current_setting('toolsdb.session_id')") == a
        app.commit()
        assert scalar(app, "select current_setting('toolsdb.session_id')") == a
    with psycopg.connect(pg.conninfo(db), autocommit=True) as su:
        stored = session_of(su, b)
        assert (stored["last_event_type"], stored["cwd"], stored["git_branch"]) == (
            "UserPromptSubmit",
            "/work/app",
            "main",
        )
        assert one(su, "select session_id, payload from toolsdb.events where event_id = %s", (event_id,)) == {
            "session_id": b,
            "payload": payload,
        }
        assert session_of(su, fresh)["last_event_type"] == "UserPromptSubmit"
