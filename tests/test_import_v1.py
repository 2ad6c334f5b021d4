"""`toolsdb import-v1 DIR`: seed 001's V1 JSON files, imported once, bad files named."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet

from .conftest import Pg, run_cli
from .dbhelpers import scalar

SLACK_CONFIG = {
    "webhook_url": "https://hooks.slack.com/services/T000/B000/XXXX",
    "channel": "#agents",
    "enabled": True,
    "notifyOnIdle": False,
}


def write_v1(root: Path, requests: int = 3) -> Path:
    """A ~/.claude-shaped V1 folder: config, tool requests, notification states."""
    (root / "config").mkdir(parents=True)
    (root / "state" / "tool_requests").mkdir(parents=True)
    (root / "config" / "slack-config.json").write_text(json.dumps(SLACK_CONFIG))
    for i in range(requests):
        request = {"tool_name": "Edit", "tool_input": {"file_path": f"src/{i}.ts"}, "cwd": "/work/app"}
        (root / "state" / "tool_requests" / f"sess_a_{1700000000 + i}.json").write_text(json.dumps(request))
    # Milliseconds since the epoch are accepted too.
    (root / "state" / "tool_requests" / "sess-b_1700000000123.json").write_text('{"tool_name": "Bash"}')
    states = [
        {"id": "n1", "session_id": "sess_a", "notification_type": "permission", "backend": "slack",
         "status": "sent", "created_at": 1700000000, "sent_at": 1700000003},
        {"id": "n2", "session_id": "sess_a", "notification_type": "task_complete", "status": "failed",
         "retry_count": 3, "error": "HTTP 500", "created_at": "2023-11-14T22:13:30Z"},
        {"id": "n3", "session_id": "sess-b", "type": "idle", "status": "pending", "timestamp": 1700000100},
    ]  # fmt: skip
    (root / "state" / "notification_states.json").write_text(json.dumps(states))
    return root


def import_v1(pg: Pg, db: str, folder: Path, key: str):
    return run_cli("import-v1", str(folder), env={"DATABASE_URL": pg.url(db), "TOOLSDB_KEY": key})


@pytest.fixture
def key() -> str:
    return Fernet.generate_key().decode()


def tuples(conn: psycopg.Connection, query: str) -> list[tuple]:
    return conn.execute(query).fetchall()


def counts(conn: psycopg.Connection) -> tuple:
    return conn.execute(
        """
        select (select count(*) from toolsdb.events where idempotency_key like 'v1:%'),
               (select count(*) from toolsdb.notifications where idempotency_key like 'v1:%'),
               (select count(*) from toolsdb.config where key like 'slack.%'),
               (select count(*) from toolsdb.sessions where session_id in ('sess_a', 'sess-b'))
        """
    ).fetchone()


def test_import_v1_imports_every_file_once(pg: Pg, db: str, conn: psycopg.Connection, tmp_path: Path, key) -> None:
    folder = write_v1(tmp_path / "claude")
    first = import_v1(pg, db, folder, key)
    assert first.returncode == 0, first.stderr
    assert "tool requests: 4 imported" in first.stdout
    assert "notification states: 3 imported" in first.stdout
    assert "config: 4 key(s) set (1 encrypted)" in first.stdout
    conn.commit()
    assert counts(conn) == (4, 3, 4, 2)

    # Session ids may contain underscores: the timestamp follows the last one.
    events = tuples(
        conn,
        "select session_id, event_type, created_at = processed_at, extract(epoch from created_at)::bigint"
        " from toolsdb.events where idempotency_key like 'v1:%' order by created_at, session_id",
    )
    assert ("sess-b", "PreToolUse", True, 1700000000) in events  # from milliseconds
    assert [e[0] for e in events].count("sess_a") == 3
    # Imported tool requests are history: no worker claims them.
    assert scalar(conn, "select count(*) from toolsdb.events where processed_at is null") == 0

    states = dict(
        (r[0], r[1:])
        for r in tuples(
            conn,
            "select payload -> 'v1_state' ->> 'id', status, attempts, last_error, sent_at is not null"
            " from toolsdb.notifications where idempotency_key like 'v1:%'",
        )
    )
    assert states["n1"] == ("sent", 0, None, True)
    assert states["n2"] == ("dead", 3, "imported from V1 as failed: HTTP 500", False)
    assert states["n3"][0] == "dead"  # an unsent V1 notification waits for a redrive, never goes out by itself

    # The webhook URL is stored encrypted, and decrypts with the key.
    secret = tuples(conn, "select is_secret, value, secret_value from toolsdb.config where key = 'slack.webhook_url'")[
        0
    ]
    assert secret[0] is True and SLACK_CONFIG["webhook_url"] not in str(secret[1:])
    assert Fernet(key.encode()).decrypt(secret[2].encode()).decode() == SLACK_CONFIG["webhook_url"]
    assert scalar(conn, "select value from toolsdb.config where key = 'slack.notify_on_idle'") is False

    # Again: nothing imported twice, nothing rewritten.
    before = scalar(conn, "select max(xmin::text::bigint) from toolsdb.config")
    second = import_v1(pg, db, folder, key)
    assert second.returncode == 0, second.stderr
    assert "tool requests: 0 imported, 4 already there" in second.stdout
    assert "notification states: 0 imported, 3 already there" in second.stdout
    assert "config: 0 key(s) set (0 encrypted), 4 already there" in second.stdout
    conn.commit()
    assert counts(conn) == (4, 3, 4, 2)
    assert scalar(conn, "select max(xmin::text::bigint) from toolsdb.config") == before


def test_import_v1_reports_bad_files_by_name_and_imports_the_rest(
    pg: Pg, db: str, conn: psycopg.Connection, tmp_path: Path, key
) -> None:
    folder = write_v1(tmp_path / "claude", requests=2)
    requests = folder / "state" / "tool_requests"
    (requests / "broken_1700000500.json").write_text("{not json")
    (requests / "no-timestamp.json").write_text("{}")
    (requests / "array_1700000600.json").write_text("[1, 2]")
    states = json.loads((folder / "state" / "notification_states.json").read_text())
    states += [{"session_id": "sess_a", "backend": "pager", "notification_type": "permission"}, 7]
    (folder / "state" / "notification_states.json").write_text(json.dumps(states))

    result = import_v1(pg, db, folder, key)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    bad = [line for line in result.stderr.splitlines() if line.startswith("bad: ")]
    assert len(bad) == 5, result.stderr
    assert any("broken_1700000500.json: not JSON" in line for line in bad)
    assert any("no-timestamp.json: the name is not {session_id}_{timestamp}.json" in line for line in bad)
    assert any("array_1700000600.json: a tool request is a JSON object, not list" in line for line in bad)
    assert any("notification_states.json[3]" in line and "backend_is_valid" in line for line in bad)
    assert any("notification_states.json[4]: a notification state is a JSON object, not int" in line for line in bad)
    assert "problems: 5" in result.stdout
    conn.commit()
    assert counts(conn) == (3, 3, 4, 2), "the good files were imported all the same"


def test_import_v1_refuses_a_folder_without_v1_files(pg: Pg, db: str, tmp_path: Path, key) -> None:
    result = import_v1(pg, db, tmp_path, key)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("Error: no V1 files in")
    missing = run_cli("import-v1", str(tmp_path / "nope"), env={"DATABASE_URL": pg.url(db)})
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_import_v1_functions_are_idempotent_in_sql(conn: psycopg.Connection) -> None:
    request = '{"tool_name": "Read"}'
    first = scalar(conn, "select toolsdb.import_v1_tool_request('s1', %s, now(), 's1_1.json')", (request,))
    again = scalar(conn, "select toolsdb.import_v1_tool_request('s1', %s, now(), 's1_1.json')", (request,))
    assert (first, again) == (True, False)
    state = '{"id": "x", "session_id": "s1", "status": "sent", "created_at": 1700000000}'
    assert scalar(conn, "select toolsdb.import_v1_notification_state(%s, 'f')", (state,)) is True
    assert scalar(conn, "select toolsdb.import_v1_notification_state(%s, 'f')", (state,)) is False
    with pytest.raises(psycopg.errors.InvalidDatetimeFormat):
        conn.execute(
            'select toolsdb.import_v1_notification_state(\'{"session_id": "s1", "created_at": "soon"}\', \'f\')'
        )


def test_imported_history_survives_maintenance(pg: Pg, db: str, conn: psycopg.Connection, tmp_path: Path, key) -> None:
    # V1 requests are from 2023: far older than the 30-day event retention.
    result = import_v1(pg, db, write_v1(tmp_path / "v1"), key)
    assert result.returncode == 0, result.stderr
    imported = scalar(conn, "select count(*) from toolsdb.events where idempotency_key like 'v1:%'")
    assert imported == 4
    conn.execute(
        "insert into toolsdb.sessions (session_id) values ('live') on conflict do nothing;"
        " insert into toolsdb.events (session_id, event_type, payload, created_at, visible_at, processed_at)"
        " values ('live', 'Stop', '{}', now() - interval '40 days', now() - interval '40 days',"
        " now() - interval '40 days')"
    )
    conn.commit()
    done = run_cli("maintain", "--database", pg.url(db))
    assert done.returncode == 0, done.stderr
    assert scalar(conn, "select count(*) from toolsdb.events where idempotency_key like 'v1:%'") == imported
    assert scalar(conn, "select count(*) from toolsdb.events where session_id = 'live'") == 0, "queue traffic goes"
