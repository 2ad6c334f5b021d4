"""``toolsdb hook`` (runner/toolsdb/hook.py): the context it takes from its
process (git branch, terminal, configured ids), and unknown events and
fields stored rather than rejected.

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

import json
import uuid
from pathlib import Path

import psycopg
import pytest

from .dbhelpers import insert, unique
from .hookhelpers import (
    SHA,
    TMUX,
    VSCODE,
    Hook,
    events_of,
    git_repo,
    git_worktree,
    hook_runner,
    module_su,
    new_session_id,
    payload,
    session_of,
)

hook = pytest.fixture(hook_runner)
su = pytest.fixture(module_su)


# ---------------------------------------------------------------------------
# Context from the hook's process: git branch, terminal, configured ids
# ---------------------------------------------------------------------------


def test_git_branch_of_the_payloads_cwd(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    main = git_repo(tmp_path / "main", "ref: refs/heads/feature-x")
    (main / "src" / "pkg").mkdir(parents=True)
    cases = {
        "branch": (main, "feature-x"),
        "subfolder": (main / "src" / "pkg", "feature-x"),
        "slashes": (git_repo(tmp_path / "slashes", "ref: refs/heads/feat/login-form"), "feat/login-form"),
        "detached": (git_repo(tmp_path / "detached", SHA), SHA[:12]),
        "worktree": (git_worktree(tmp_path / "wt-abs", main, "wt-abs", "hotfix"), "hotfix"),
        "worktree-relative": (git_worktree(tmp_path / "wt-rel", main, "wt-rel", "docs", relative=True), "docs"),
        "no-repo": (tmp_path / "plain", None),
    }
    (tmp_path / "plain").mkdir()
    for name, (cwd, branch) in cases.items():
        session_id = f"git-{name}-{uuid.uuid4()}"
        hook.ingest(payload("PreToolUse", session_id, cwd, tool_name="Bash", tool_input={"command": "ls"}))
        assert session_of(su, session_id)["git_branch"] == branch, name

    # A later event from a folder without a repository keeps the branch seen.
    session_id = f"git-keep-{uuid.uuid4()}"
    hook.ingest(payload("SessionStart", session_id, main, source="startup"))
    hook.ingest(payload("Stop", session_id, tmp_path / "plain", stop_hook_active=False))
    assert session_of(su, session_id)["git_branch"] == "feature-x"


def test_terminal_from_the_hooks_environment(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    cases: list[tuple[dict[str, str], str | None, dict[str, str] | None]] = [
        (TMUX, "tmux", {"tmux": TMUX["TMUX"], "tmux_pane": "%3", "term": "tmux-256color"}),
        ({"STY": "4242.pts-1.devbox", "TERM": "screen"}, "screen", {"sty": "4242.pts-1.devbox", "term": "screen"}),
        (VSCODE, "vscode", {"term_program": "vscode", "term_program_version": "1.99.3", "term": "xterm-256color"}),
        ({"TERM_PROGRAM": "iTerm.app", "TERM_PROGRAM_VERSION": "3.5.4"}, "iterm", None),
        ({"TERM_PROGRAM": "Apple_Terminal"}, "apple_terminal", None),
        ({"TERM_PROGRAM": "WezTerm"}, "wezterm", None),
        ({"TERM_PROGRAM": "ghostty", "COLORTERM": "truecolor"}, "ghostty", None),
        ({"KITTY_WINDOW_ID": "3", "TERM": "xterm-kitty"}, "kitty", None),
        ({"WT_SESSION": "a3c1b2d4-0000-4000-8000-000000000000"}, "windows_terminal", None),
        ({"ALACRITTY_WINDOW_ID": "94392829", "TERM": "alacritty"}, "alacritty", None),
        ({"TERM": "xterm-256color", "SSH_TTY": "/dev/pts/4"}, "xterm-256color", None),
        ({"TERM_PROGRAM": "Some Odd Term 2"}, "some_odd_term_2", None),
        ({}, None, {}),
    ]
    repo = git_repo(tmp_path / "app", "ref: refs/heads/main")
    for env, kind, info in cases:
        session_id = new_session_id()
        hook.ingest(payload("UserPromptSubmit", session_id, repo, prompt="hi"), env=env)
        row = session_of(su, session_id)
        assert row["terminal_type"] == kind, env
        assert row["terminal_info"] == (info if info is not None else {k.lower(): v for k, v in env.items()}), env


def test_configured_ids_link_the_session_only_when_they_exist(
    hook: Hook, su: psycopg.Connection, tmp_path: Path
) -> None:
    username = unique("hook-user-")
    user_id = insert(su, "users", username=username, email=f"{username}@example.com")["user_id"]
    agent_id = insert(
        su, "agents", name=unique("hook-agent-"), agent_type="coding", model_provider="acme", model_name="m1"
    )["agent_id"]
    project_id = insert(su, "projects", slug=unique("hook-project-"), name="app", owner_id=user_id)["project_id"]
    repo = git_repo(tmp_path / "app", "ref: refs/heads/main")

    # Ids of nothing (well-formed or not) are ignored: the event is stored all the same.
    unknown = new_session_id()
    hook.ingest(
        payload("SessionStart", unknown, repo, source="startup"),
        env={"TOOLSDB_USER_ID": str(uuid.uuid4()), "TOOLSDB_AGENT_ID": "not-a-uuid", "TOOLSDB_PROJECT_ID": "42"},
    )
    row = session_of(su, unknown)
    assert (row["user_id"], row["agent_id"], row["project_id"]) == (None, None, None)
    assert len(events_of(su, unknown)) == 1

    linked = new_session_id()
    ids = {"TOOLSDB_USER_ID": str(user_id), "TOOLSDB_AGENT_ID": str(agent_id), "TOOLSDB_PROJECT_ID": str(project_id)}
    hook.ingest(payload("SessionStart", linked, repo, source="startup"), env=ids)
    row = session_of(su, linked)
    assert (row["user_id"], row["agent_id"], row["project_id"]) == (user_id, agent_id, project_id)
    # Later events without ids, or with unknown ones, keep the link.
    hook.ingest(payload("UserPromptSubmit", linked, repo, prompt="hi"))
    hook.ingest(payload("Stop", linked, repo), env={"TOOLSDB_USER_ID": str(uuid.uuid4())})
    row = session_of(su, linked)
    assert (row["user_id"], row["agent_id"], row["project_id"]) == (user_id, agent_id, project_id)


def test_configured_ids_in_capitals_link_the_session(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    """A uuid is the same uuid in capitals (RFC 9562: case-insensitive on input)."""
    username = unique("hook-user-")
    user_id = insert(su, "users", username=username, email=f"{username}@example.com")["user_id"]
    session_id = new_session_id()
    hook.ingest(
        payload("SessionStart", session_id, tmp_path, source="startup"),
        env={"TOOLSDB_USER_ID": str(user_id).upper()},
    )
    assert session_of(su, session_id)["user_id"] == user_id


# ---------------------------------------------------------------------------
# 2. Unknown events and fields are stored, not rejected
# ---------------------------------------------------------------------------


def test_unknown_events_and_fields_are_stored_as_they_are(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    session_id = new_session_id()
    future = payload(
        "PreWorldDomination",
        session_id,
        tmp_path,
        permission_mode="galaxyBrain",
        plan={"steps": [1, 2.5, None, True], "nested": {"deep": ["é", "日本語", "✓"]}},
        big_number=123456789012345678901234567890,
        empty={},
    )
    hook.ingest(future)
    stored = events_of(su, session_id)
    assert [(e["event_type"], e["payload"]) for e in stored] == [("PreWorldDomination", future)]
    row = session_of(su, session_id)
    assert (row["last_event_type"], row["permission_mode"]) == ("PreWorldDomination", "galaxyBrain")

    # No hook_event_name (or an empty one): event type "unknown".
    for nameless in (payload(None, session_id, tmp_path, extra=1), payload("", session_id, tmp_path)):
        hook.ingest(nameless)
        assert events_of(su, session_id)[-1]["event_type"] == "unknown"
        assert events_of(su, session_id)[-1]["payload"] == nameless
    assert session_of(su, session_id)["last_event_type"] == "unknown"

    # A name with blanks or of more than 100 characters is made a valid type; the payload keeps it.
    odd = payload("Tool Use\tDone", session_id, tmp_path)
    long_name = payload("E" * 150, session_id, tmp_path)
    hook.ingest(odd)
    hook.ingest(long_name)
    last_two = events_of(su, session_id)[-2:]
    assert [e["event_type"] for e in last_two] == ["Tool_Use_Done", "E" * 100]
    assert [e["payload"] for e in last_two] == [odd, long_name]


def test_a_payload_that_is_not_utf8_is_stored_with_replacement_characters(
    hook: Hook, su: psycopg.Connection, tmp_path: Path
) -> None:
    session_id = new_session_id()
    raw = json.dumps(payload("PostToolUse", session_id, tmp_path, tool_name="Bash", tool_response="@@")).encode()
    hook.ingest(raw.replace(b"@@", b"caf\xe9 \xff"))
    assert events_of(su, session_id)[0]["payload"]["tool_response"] == "caf\ufffd \ufffd"


@pytest.mark.parametrize(
    ("command", "stdout"),
    [
        pytest.param("find . -name '*.py' -print0", "./a.py\x00./b.py\x00", id="nul"),
        pytest.param("cat notes.md | head -c 100", "done \ud83d", id="lone-surrogate"),
    ],
)
def test_a_payload_with_text_jsonb_cannot_hold_is_stored(
    hook: Hook, su: psycopg.Connection, tmp_path: Path, command: str, stdout: str
) -> None:
    """Bash output may hold NUL bytes (find -print0, a binary file) or half of
    an emoji cut by a byte limit; the JSON on stdin escapes them (\\u0000,
    \\ud83d) and jsonb refuses both: the event must not be lost."""
    session_id = new_session_id()
    event = payload(
        "PostToolUse",
        session_id,
        tmp_path,
        tool_name="Bash",
        tool_input={"command": command},
        tool_response={"stdout": stdout, "stderr": "", "interrupted": False, "isImage": False},
        tool_use_id="toolu_0NUL",
    )
    hook.ingest(event)
    stored = events_of(su, session_id)
    assert len(stored) == 1
    assert stored[0]["payload"]["tool_input"] == event["tool_input"]
    assert stored[0]["payload"]["tool_use_id"] == "toolu_0NUL"


def test_a_large_tool_response_is_stored(hook: Hook, su: psycopg.Connection, tmp_path: Path) -> None:
    session_id = new_session_id()
    content = "x = 1\n" * 200_000  # 1.2 MB, a Read of a large file
    event = payload(
        "PostToolUse",
        session_id,
        tmp_path,
        tool_name="Read",
        tool_input={"file_path": f"{tmp_path}/big.py"},
        tool_response={"type": "text", "file": {"filePath": f"{tmp_path}/big.py", "content": content}},
    )
    hook.ingest(event)
    assert events_of(su, session_id)[0]["payload"] == event
