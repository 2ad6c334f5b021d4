"""The hook-notification API's README, run against toolsdb.

Every code block of that design's README that touches the database runs
here, in its order, changed only in its import line (``from database import
Database`` becomes ``from toolsdb.compat.notifications import Database``) and
its connection: ``DATABASE_URL`` names the test's database, and the SQLite
path the blocks pass (``~/.claude/state/notifications.db``) is kept as
written: toolsdb accepts it and names no file with it (HOME is a temporary
folder, and the test checks nothing appeared there). Where a block as
written would be wrong, the nearest correct form runs and a comment says
why (docs/runtime.md, "Coming from the hook-notification API"). Each test
asserts what the README says the block returns.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import psycopg
import pytest

from tests.dbhelpers import conninfo_as, ensure_login
from toolsdb.compat.notifications import Database, IntegrityError
from toolsdb.errors import ToolsdbError

DB_PATH = "~/.claude/state/notifications.db"


@pytest.fixture
def url(pg, db, monkeypatch, tmp_path) -> str:
    """The test database as DATABASE_URL; HOME (where the SQLite path points) a temporary folder."""
    # As toolsdb migrate does (a database setting, which a clone of the template lacks).
    with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as su:
        su.execute(f"alter database {db} set search_path = toolsdb, public")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    for name in [n for n in os.environ if n.startswith("PG")] + ["TOOLS_DB_URL"]:
        monkeypatch.delenv(name, raising=False)
    url = pg.url(db)
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture
def db_(url):
    """An open Database, as the blocks after "Basic Usage" assume one is."""
    database = Database(DB_PATH)
    yield database
    database.close()
    assert not Path(DB_PATH).expanduser().exists(), "a toolsdb Database never writes at the SQLite path"


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def test_basic_usage(url):
    from toolsdb.compat.notifications import Database  # was: from database import Database

    # Initialize database
    db = Database("~/.claude/state/notifications.db")

    # Insert event
    event_id = db.insert_event(
        session_id="abc123", event_type="pre_tool_use", payload={"tool_name": "Edit", "file": "app.ts"}
    )

    # Create notification
    notif_id = db.insert_notification(
        event_id=event_id,
        session_id="abc123",
        notification_type="permission",
        backend="slack",
        payload={"text": "Claude wants to edit app.ts"},
    )

    # Mark as sent
    db.mark_notification_sent(notif_id)

    # Close connection
    db.close()

    assert isinstance(event_id, int) and isinstance(notif_id, int)
    assert query(
        url, "select status, attempts, event_id from notifications where notification_id = %s", (notif_id,)
    ) == [("sent", 1, event_id)]
    assert not Path("~/.claude/state/notifications.db").expanduser().exists()


def test_context_manager_commits_on_success_and_rolls_back_on_exception(url):
    with Database("~/.claude/state/notifications.db") as db:
        # Auto-commits on success, rolls back on exception
        db.insert_event("session1", "test", {})
        # Connection auto-closed
    assert db.conn.closed
    assert query(url, "select event_type, payload from events where session_id = 'session1'") == [("test", {})]

    with pytest.raises(RuntimeError), Database(DB_PATH) as db:
        db.insert_event("session1", "rolled_back", {})
        raise RuntimeError("boom")
    assert db.conn.closed
    assert query(url, "select count(*) from events where event_type = 'rolled_back'") == [(0,)]


def test_event_processing(url):
    with Database(DB_PATH) as setup:
        ids = [setup.insert_event("abc123", "pre_tool_use", {"n": n}) for n in range(3)]
    processed = []

    def process_event(event):
        processed.append((event["id"], event["hook_payload"]["n"]))

    # Get unprocessed events
    db = Database("~/.claude/state/notifications.db")
    events = db.get_unprocessed_events()

    for event in events:
        # Process event
        process_event(event)

        # Mark as processed
        db.mark_event_processed(event["id"])

    db.close()

    assert processed == [(i, n) for n, i in enumerate(ids)]
    assert query(url, "select count(*) from events where processed_at is null") == [(0,)]
    with Database(DB_PATH) as db:
        assert db.get_unprocessed_events() == []
        # An event nobody claimed can be marked by id (claimed first, inside the object)...
        late = db.insert_event("abc123", "stop", {})
        assert db.mark_event_processed(late) is True
        # ...and one already processed is refused in one line.
        with pytest.raises(ToolsdbError, match=rf"event {late} cannot be claimed"):
            db.mark_event_processed(late)
        assert db.get_event_by_id(late)["processed_at"] is not None


def test_session_tracking(db_):
    db = db_
    # Create session
    db.create_session(
        session_id="abc123",
        cwd="/Users/dev/project",
        project_name="my-project",
        git_branch="main",
        terminal_type="tmux",
        terminal_info='{"pane": "0:0.0"}',
    )
    session = db.get_session("abc123")
    assert session["project_name"] == "my-project" and session["terminal_info"] == {"pane": "0:0.0"}
    before = session["last_activity_at"]

    # Update activity
    db.update_session_activity("abc123")

    # Set idle
    db.set_session_idle("abc123", is_idle=True)
    assert db.get_session("abc123")["is_idle"] is True
    assert db.get_session("abc123")["last_activity_at"] >= before

    db.create_session("other", "/tmp")
    # End session
    db.end_session("abc123")

    # Get active sessions
    active = db.get_active_sessions()

    assert [s["session_id"] for s in active] == ["other"]
    assert db.get_session("abc123")["ended_at"] is not None


def test_config_storage(db_, url):
    db = db_
    # Store plaintext config
    db.set_config("enabled", "true")

    # Store encrypted config
    db.set_config("slack_webhook_url", "https://hooks.slack.com/services/...", encrypted=True)

    # Retrieve (auto-decrypts)
    webhook_url = db.get_config("slack_webhook_url")
    enabled = db.get_config("enabled", default="false")

    # Get all config
    config = db.get_all_config()

    assert webhook_url == "https://hooks.slack.com/services/..."
    assert enabled == "true"
    assert config == {"enabled": "true", "slack_webhook_url": "https://hooks.slack.com/services/..."}
    assert db.get_config("nonexistent_key", default="fallback") == "fallback"
    # Only ciphertext is stored.
    [(is_secret, stored)] = query(url, "select is_secret, secret_value from config where key = 'slack_webhook_url'")
    assert is_secret and "hooks.slack.com" not in stored


def test_audit_logging(db_):
    db = db_
    # Log action
    db.insert_audit_log(
        session_id="abc123", action="notification_sent", details={"notification_id": 123, "backend": "slack"}
    )
    db.insert_audit_log(session_id="other", action="config_updated", details={"key": "enabled"})

    # Query logs
    logs = db.get_audit_logs_by_session("abc123")
    sent_logs = db.get_audit_logs_by_action("notification_sent")
    recent = db.get_recent_audit_logs(limit=50)

    assert [(r["session_id"], r["action"], r["details"]) for r in logs] == [
        ("abc123", "notification_sent", {"notification_id": 123, "backend": "slack"})
    ]
    assert [r["id"] for r in sent_logs] == [logs[0]["id"]]
    assert [r["action"] for r in recent][:2] == ["config_updated", "notification_sent"]
    assert isinstance(recent[0]["created_at"], int)


def test_metrics(db_, url):
    db = db_
    db.create_session("abc123", "/tmp")
    # Record metric
    db.insert_metric(metric_name="notification_latency_ms", metric_value=123.45, session_id="abc123")
    for value in (50, 500):
        db.insert_metric("notification_latency_ms", value)
    # One from two hours ago, left out of the last hour.
    db.execute_query(
        "select toolsdb.insert_metric('notification_latency_ms', 1000, null, '{}', now() - interval '2 hours')"
    )

    # Get statistics
    stats = db.get_metric_stats("notification_latency_ms")
    # Returns: {'count': 100, 'avg': 150.5, 'min': 50, 'max': 500}
    assert {k: stats[k] for k in ("count", "min", "max")} == {"count": 4, "min": 50, "max": 1000}
    assert stats["avg"] == pytest.approx((123.45 + 50 + 500 + 1000) / 4)

    # Time-filtered stats
    import time

    since = int(time.time()) - 3600  # Last hour
    stats = db.get_metric_stats("notification_latency_ms", since=since)
    assert {k: stats[k] for k in ("count", "min", "max")} == {"count": 3, "min": 50, "max": 500}
    assert set(stats) >= {"count", "avg", "min", "max", "p50", "p95", "p99"}


def test_notification_retry(db_, url):
    db = db_
    good = db.insert_notification(None, "abc123", "task_complete", "slack", {"text": "done"})
    bad = db.insert_notification(None, "abc123", "permission", "discord", {"text": "may I?"})
    attempts = []

    def send_notification(notif):
        attempts.append(notif["id"])
        if notif["backend"] == "discord":
            raise ConnectionError("HTTP 500 from Discord")

    def retry_round():
        # Get pending notifications
        pending = db.get_pending_notifications()

        # Get failed notifications that can retry (retry_count < 3)
        failed = db.get_failed_notifications_for_retry(max_retries=3)

        for notif in pending + failed:
            try:
                send_notification(notif)
                db.mark_notification_sent(notif["id"])
            except Exception as e:
                db.mark_notification_failed(notif["id"], str(e))

    retry_round()
    assert attempts == [good, bad]
    retry_round()  # the failed one is retried at once, as in the README (its backoff is not waited for)
    retry_round()
    retry_round()  # out of attempts: nothing left to retry
    assert attempts == [good, bad, bad, bad]
    assert query(url, "select notification_id, status, attempts, last_error from notifications order by 1") == [
        (good, "sent", 1, None),
        (bad, "dead", 3, "HTTP 500 from Discord"),
    ]


def test_v1_migration(db_, url, tmp_path, monkeypatch):
    db = db_
    home = Path.home()
    (home / ".claude/config").mkdir(parents=True)
    (home / ".claude/config/slack-config.json").write_text(
        json.dumps({"webhookUrl": "https://hooks.slack.com/services/T/B/X", "channel": "#dev"})
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tool_requests").mkdir()
    (tmp_path / "tool_requests/abc123_1234567890.json").write_text(json.dumps({"tool_name": "Bash", "cwd": "/w"}))
    (tmp_path / "notification_states.json").write_text(
        json.dumps(
            [{"id": "n1", "session_id": "abc123", "status": "sent", "created_at": 1234567800, "sent_at": 1234567890}]
        )
    )

    # Import V1 config
    # The README's open("~/.claude/...") opens a folder named "~" in the working
    # directory (open() does not expand ~): the nearest correct form expands it.
    with open(os.path.expanduser("~/.claude/config/slack-config.json")) as f:
        v1_config = json.load(f)
    db.import_v1_config(v1_config)

    # Import V1 tool request
    with open("tool_requests/abc123_1234567890.json") as f:
        tool_request = json.load(f)
    db.import_v1_tool_request(session_id="abc123", tool_request=tool_request, timestamp=1234567890)

    # Import V1 notification state
    with open("notification_states.json") as f:
        states = json.load(f)
    for state in states:
        db.import_v1_notification_state(state)

    assert db.get_config("slack.webhook_url") == "https://hooks.slack.com/services/T/B/X"
    assert db.get_config("slack.channel") == "#dev"
    [event] = db.get_events_by_session("abc123")
    assert event["created_at"] == 1234567890 and event["processed_at"] == 1234567890
    assert [(n["status"], n["sent_at"]) for n in db.get_notifications_by_session("abc123")] == [("sent", 1234567890)]
    # Idempotent, as the import command is.
    assert db.import_v1_tool_request("abc123", tool_request, 1234567890) is False


def test_migration_from_v1_complete_example(url, capsys):
    home = Path.home()
    (home / ".claude/config").mkdir(parents=True)
    (home / ".claude/config/slack-config.json").write_text(json.dumps({"enabled": True}))
    (home / ".claude/state/tool_requests").mkdir(parents=True)
    for name in ("s1_1700000000.json", "s2_1700000100.json"):
        (home / ".claude/state/tool_requests" / name).write_text(json.dumps({"tool_name": "Edit"}))
    (home / ".claude/state/notification_states.json").write_text(
        json.dumps([{"session_id": "s1", "status": "pending", "created_at": 1700000000}])
    )

    from toolsdb.compat.notifications import Database  # was: from database import Database

    db = Database("~/.claude/state/notifications.db")

    # 1. Import config
    config_path = Path.home() / ".claude/config/slack-config.json"
    if config_path.exists():
        with open(config_path) as f:
            v1_config = json.load(f)
        db.import_v1_config(v1_config)
        print("✓ Imported config")

    # 2. Import tool requests
    tool_requests_dir = Path.home() / ".claude/state/tool_requests"
    if tool_requests_dir.exists():
        for file_path in tool_requests_dir.glob("*.json"):
            # Parse filename: {session_id}_{timestamp}.json
            parts = file_path.stem.split("_")
            if len(parts) >= 2:
                session_id = parts[0]
                timestamp = int(parts[1])

                with open(file_path) as f:
                    tool_request = json.load(f)

                db.import_v1_tool_request(session_id, tool_request, timestamp)
        print(f"✓ Imported {len(list(tool_requests_dir.glob('*.json')))} tool requests")

    # 3. Import notification states
    states_path = Path.home() / ".claude/state/notification_states.json"
    if states_path.exists():
        with open(states_path) as f:
            states = json.load(f)

        for state in states:
            db.import_v1_notification_state(state)
        print(f"✓ Imported {len(states)} notification states")

    db.close()
    print("Migration complete!")

    out = capsys.readouterr().out
    assert out.splitlines() == [
        "✓ Imported config",
        "✓ Imported 2 tool requests",
        "✓ Imported 1 notification states",
        "Migration complete!",
    ]
    assert query(url, "select count(*) from events where processed_at is not null") == [(2,)]
    # A V1 notification that was not sent is a dead letter, never sent by surprise.
    assert query(url, "select status from notifications") == [("dead",)]
    assert not (home / ".claude/state/notifications.db").exists()


def test_session_isolation(db_):
    db = db_
    for session in ("session1", "session2"):
        event = db.insert_event(session, "pre_tool_use", {"session": session})
        db.insert_notification(event, session, "permission", "slack", {})
        db.insert_audit_log(session, "notification_sent", {})

    # Only returns events for session1
    events = db.get_events_by_session("session1")

    # Only returns notifications for session1
    notifs = db.get_notifications_by_session("session1")

    # Only returns audit logs for session1
    logs = db.get_audit_logs_by_session("session1")

    assert {e["session_id"] for e in events} == {"session1"} and len(events) == 1
    assert {n["session_id"] for n in notifs} == {"session1"} and len(notifs) == 1
    assert {a["session_id"] for a in logs} == {"session1"} and len(logs) == 1


def test_error_handling(db_, capsys):
    db = db_
    # Handle missing events
    event = db.get_event_by_id(99999)
    if event is None:
        print("Event not found")

    # Handle missing config
    value = db.get_config("nonexistent_key", default="fallback")

    # Handle duplicate session
    import sqlite3  # kept as written: toolsdb's IntegrityError is also a sqlite3.IntegrityError

    try:
        db.create_session("session1", "/tmp")
        db.create_session("session1", "/tmp")  # Raises IntegrityError
    except sqlite3.IntegrityError:
        # Use upsert instead
        db.upsert_session("session1", "/tmp")

    assert capsys.readouterr().out == "Event not found\n"
    assert value == "fallback"
    assert db.get_session("session1")["cwd"] == "/tmp"


def test_duplicate_session_is_one_line_naming_the_constraint(db_):
    db_.create_session("dup", "/tmp", project_name="p")
    with pytest.raises(IntegrityError) as caught:
        db_.create_session("dup", "/elsewhere")
    assert isinstance(caught.value, sqlite3.IntegrityError) and isinstance(caught.value, ToolsdbError)
    assert "\n" not in str(caught.value) and "sessions_pkey" in str(caught.value) and "23505" in str(caught.value)
    # upsert keeps the label and refreshes the rest.
    db_.upsert_session("dup", "/elsewhere")
    assert (db_.get_session("dup")["cwd"], db_.get_session("dup")["project_name"]) == ("/elsewhere", "p")


def test_debugging_queries_in_psql(pg, db, db_):
    """The README's queries of "View Database Contents", in psql (sqlite3's
    .tables and .schema events are psql's \\dt and \\d events)."""
    db_.create_session("abc123", "/tmp")
    db_.create_session("gone", "/tmp")
    db_.end_session("gone")
    event = db_.insert_event("abc123", "pre_tool_use", {})
    db_.insert_notification(event, "abc123", "permission", "slack", {"text": "hi"})
    out = pg.psql(
        db,
        "-A",
        "-t",
        "-c",
        "SELECT * FROM events ORDER BY created_at DESC LIMIT 10;",
        "-c",
        "SELECT notification_type, status FROM notifications WHERE status='pending';",
        "-c",
        "SELECT session_id FROM sessions WHERE ended_at IS NULL;",
        "-c",
        r"\dt events",
    ).stdout.splitlines()
    assert out[0].startswith(f"{event}|abc123|pre_tool_use|")
    assert out[1:3] == ["permission|pending", "abc123"]
    assert "events" in out[3]


def test_query_helper(db_, capsys):
    db = db_
    for kind in ("pre_tool_use", "pre_tool_use", "stop"):
        db.insert_event("abc123", kind, {})
    db.execute_query("SELECT * FROM notifications WHERE status='pending'")
    assert db.execute_query("SELECT * FROM sessions WHERE ended_at IS NULL")[0]["session_id"] == "abc123"

    # Execute raw SQL
    results = db.execute_query("SELECT event_type, COUNT(*) as count FROM events GROUP BY event_type")
    for row in results:
        print(f"{row['event_type']}: {row['count']}")

    assert sorted(capsys.readouterr().out.splitlines()) == ["pre_tool_use: 2", "stop: 1"]


def test_inspect_schema(db_):
    db = db_
    # Get table names
    tables = db._get_table_names()
    print(f"Tables: {tables}")

    # Get index names
    indexes = db._get_index_names()
    print(f"Indexes: {indexes}")

    assert {"events", "notifications", "sessions", "config", "audit_logs", "metrics"} <= set(tables)
    # The design's indexes, under toolsdb's names (docs/names.md).
    assert {
        "events_session_id_idx",
        "events_created_at_idx",
        "events_claim_idx",
        "notifications_claim_idx",
        "notifications_session_id_idx",
        "metrics_name_created_at_idx",
    } <= set(indexes)


def test_a_path_that_is_a_url_is_the_database(url):
    with Database(url) as db:
        assert db.insert_event("s", "stop", {}) > 0


@pytest.fixture
def login(pg, template) -> str:
    """A login in the three roles a Database doing the design's every job needs."""
    name = ensure_login(pg, "tests_notifications_all", group="toolsdb_app")
    with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as su:
        su.execute("grant toolsdb_worker, toolsdb_readonly to tests_notifications_all")
    return name


def test_a_login_in_app_worker_and_readonly_runs_the_readme(pg, db, login, url):
    with Database(database=conninfo_as(pg, db, login)) as db_:
        db_.create_session("abc123", "/w", project_name="p")
        event_id = db_.insert_event("abc123", "pre_tool_use", {"tool_name": "Edit"})
        notif_id = db_.insert_notification(event_id, "abc123", "permission", "slack", {"text": "x"})
        db_.mark_notification_sent(notif_id)
        [event] = db_.get_unprocessed_events()
        db_.mark_event_processed(event["id"])
        db_.insert_audit_log("abc123", "notification_sent", {"notification_id": notif_id})
        db_.insert_metric("notification_latency_ms", 12.5, "abc123")
        assert db_.get_metric_stats("notification_latency_ms")["count"] == 1
        assert [s["session_id"] for s in db_.get_active_sessions()] == ["abc123"]
        assert [a["action"] for a in db_.get_recent_audit_logs()][:1] == ["notification_sent"]
        assert db_.get_event_by_id(event_id)["processed_at"] is not None


def test_an_app_only_login_cannot_claim_and_is_told_which_role(pg, db, app_login, url):
    with Database(database=conninfo_as(pg, db, app_login)) as db_:
        db_.insert_event("abc123", "pre_tool_use", {})
        assert len(db_.get_events_by_session("abc123")) == 1
        with pytest.raises(ToolsdbError) as caught:
            db_.get_unprocessed_events()
    assert "toolsdb_worker" in str(caught.value) and "42501" in str(caught.value)


def test_a_row_held_by_another_worker_is_not_marked(url):
    with Database(DB_PATH) as producer:
        event_id = producer.insert_event("abc123", "stop", {})
        notif_id = producer.insert_notification(event_id, "abc123", "task_complete", "email", {})
    worker_a, worker_b = Database(DB_PATH, worker="a"), Database(DB_PATH, worker="b")
    try:
        assert [e["id"] for e in worker_a.get_unprocessed_events()] == [event_id]
        assert [n["id"] for n in worker_a.get_pending_notifications()] == [notif_id]
        with pytest.raises(ToolsdbError, match="held by another worker"):
            worker_b.mark_event_processed(event_id)
        with pytest.raises(ToolsdbError, match="held by another worker"):
            worker_b.mark_notification_sent(notif_id)
        assert worker_a.mark_event_processed(event_id) and worker_a.mark_notification_sent(notif_id)
    finally:
        worker_a.close()
        worker_b.close()
