"""Well-formed hook events that once were refused: each JSON object with a
session id is stored as an event and reads back; a field the session's rules
refuse is left out of (or cut in) the session only (hardening item 5)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
import pytest

from .hookhelpers import Hook, events_of, git_repo, hook_runner, module_su, new_session_id, payload, session_of

hook = pytest.fixture(hook_runner)
su = pytest.fixture(module_su)


def test_a_session_end_reason_over_100_characters_is_cut_in_the_session_only(
    hook: Hook, su: psycopg.Connection, tmp_path: Path
) -> None:
    sid = new_session_id()
    reason = "r" * 250
    hook.ingest(payload("SessionEnd", sid, tmp_path, reason=reason))
    assert session_of(su, sid)["end_reason"] == "r" * 100
    assert events_of(su, sid)[0]["payload"]["reason"] == reason


@pytest.mark.parametrize("cwd", ["/tmp/with\u0000nul", "/tmp/half\udc80surrogate"])
def test_a_cwd_no_folder_can_have_still_stores_the_event(hook: Hook, su: psycopg.Connection, cwd: str) -> None:
    sid = new_session_id()
    raw = json.dumps(payload("PreToolUse", sid, "/tmp", tool_name="Bash") | {"cwd": cwd})
    hook.ingest(raw)
    [event] = events_of(su, sid)
    assert event["payload"]["session_id"] == sid
    assert session_of(su, sid)["git_branch"] is None


def test_a_head_that_is_a_fifo_or_a_device_is_not_read(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    fifo_repo = tmp_path / "fifo"
    (fifo_repo / ".git").mkdir(parents=True)
    os.mkfifo(fifo_repo / ".git" / "HEAD")  # reading it would wait forever
    zero_repo = tmp_path / "zero"
    (zero_repo / ".git").mkdir(parents=True)
    (zero_repo / ".git" / "HEAD").symlink_to("/dev/zero")  # reading it would never end
    for repo in (fifo_repo, zero_repo):
        sid = new_session_id()
        result = hook.ingest(payload("PreToolUse", sid, repo, tool_name="Bash"))
        assert result.code == 0
        assert session_of(su, sid)["git_branch"] is None
    normal = git_repo(tmp_path / "normal", "ref: refs/heads/main")
    sid = new_session_id()
    hook.ingest(payload("PreToolUse", sid, normal, tool_name="Bash"))
    assert session_of(su, sid)["git_branch"] == "main"


def test_numbers_beyond_numeric_are_kept_as_their_text(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    sid = new_session_id()
    raw = json.dumps(payload("PostToolUse", sid, tmp_path, tool_name="Bash"))[:-1] + ', "huge": 1e999999, "ok": 2.5}'
    hook.ingest(raw)
    stored = events_of(su, sid)[0]["payload"]
    assert stored["huge"] == "1e999999" and stored["ok"] == 2.5


def test_json_nested_deeper_than_python_parses_is_stored(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    sid = new_session_id()
    deep = "[" * 3000 + "]" * 3000
    raw = json.dumps(payload("PostToolUse", sid, tmp_path, tool_name="Bash"))[:-1] + f', "deep": {deep}}}'
    hook.ingest(raw)
    # Read in SQL: Python's own json module would not parse it back either.
    stored = su.execute(
        "select payload ->> 'tool_name', length(payload ->> 'deep') from toolsdb.events where session_id = %s", (sid,)
    ).fetchone()
    assert stored == ("Bash", 6000)


@pytest.mark.parametrize("session_id", ["sesión-ß-日本-1", "with a space", "x" * 200])
def test_a_session_id_of_any_script_is_stored(hook: Hook, su: psycopg.Connection, tmp_path: Path, session_id) -> None:
    sid = f"{session_id[:190]}-{new_session_id()[:8]}"[-200:]
    hook.ingest(payload("UserPromptSubmit", sid, tmp_path, prompt="hi"))
    assert session_of(su, sid)["session_id"] == sid
    assert events_of(su, sid)[0]["payload"]["prompt"] == "hi"
